// evactor::memcached::Store — one shard's slice of a memcached-compatible cache: items
// with flags, CAS values and expiry, a hard memory limit, and LRU eviction.
//
// The server owns one Store per shard; each shard owns a partition of the key space, so
// a Store takes no lock and is only ever touched by its shard's thread. The protocol
// layer (protocol.h) turns parsed requests into calls on this API; tests and other
// front ends may call it directly:
//
//   evactor::memcached::Store store({.max_bytes = 64 << 20});
//   store.Set("greeting", "hello", /*flags=*/0, /*exptime=*/0);       // never expires
//   store.Set("session", "abc", 0, /*exptime=*/300);                    // 300 s from now
//   if (std::optional<ItemView> item = store.Get("greeting")) {
//     Send(item->value);                              // valid until the next mutating call
//   }
//   ArithmeticResult n = store.Incr("hits", 1);  // kNotFound: incr never creates a key
//   store.FlushAll(/*delay=*/10);                // everything stored before now+10s dies
//
// Semantics are memcached 1.6's, call by call (memcached/proto_text.c, items.c and
// memcached.c's do_store_item / do_add_delta are the reference):
//   - exptime as the protocol sends it: 0 never expires; 1..2592000 (30 days) is relative
//     seconds; larger is an absolute unix time; negative, or an absolute time not in the
//     future, is already expired. Time has one-second resolution: an item with exptime
//     10 set at 100.9 s is gone at 110.0 s, as in memcached ("a TTL of 1 will sometimes
//     immediately expire").
//   - CAS values: every write of an item gives it a fresh value from this Store's
//     counter: cas_offset, cas_offset + cas_stride, ... Shards given the same stride and
//     distinct offsets in [1, stride] hand out disjoint CAS values. 0 never appears (the
//     protocol uses 0 for "no CAS").
//   - Storage modes (Put): add only creates; replace/append/prepend only update;
//     append/prepend keep the old flags and exptime; cas stores only if the item's CAS
//     equals the given one (EXISTS if it differs, NOT_FOUND if the key is absent).
//   - incr/decr: the value must be a decimal unsigned 64-bit number (leading whitespace
//     and a '+' are accepted, like strtoull); incr wraps at 2^64, decr stops at 0. A
//     result no longer than the old value is written in place and padded with spaces
//     ("10" decr 1 -> "9 "); a longer result grows the value (memcached does the same).
//   - flush_all invalidates every item written before the flush takes effect (now, or
//     after the delay); later writes are unaffected.
//   - Expired and flushed items are dropped lazily, when a call finds them, or when
//     they reach the LRU tail while room is being made.
//
// Memory: every item is one allocation holding a 40-byte header, the key and the value
// (no terminators). The charge of an item against max_bytes is what it really costs:
// the allocator's chunk for that allocation (glibc: 8 bytes of chunk header, 16-byte
// granularity, 32 minimum) plus kIndexBytesPerItem for its slot in the hash index
// (see ItemCharge). bytes() is the sum of the charges and never exceeds max_bytes: a
// write first evicts from the LRU tail until the new item fits. (Measured with a
// million items: resident memory grows by the charge, within 3 bytes per item, and
// by less than memcached 1.6.18 needs for the same items.)
//
// Thread safety: none, by contract — one Store belongs to one shard's thread. Views
// returned by the read calls (ItemView::key/value) point into the item and stay valid
// until the next call on this Store that is not const.
//
// Errors: expected outcomes (not found, CAS mismatch, too large, non-numeric) are
// status values, not absl::Status: each maps to one memcached response line. Keys must
// be 1..kMaxKeyLength bytes (the protocol layer checks); a call with another key
// length finds nothing and stores nothing.
#ifndef EVACTOR_EXAMPLES_MEMCACHED_STORE_H_
#define EVACTOR_EXAMPLES_MEMCACHED_STORE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"

namespace evactor::memcached {

// Longest key memcached accepts (KEY_MAX_LENGTH).
inline constexpr size_t kMaxKeyLength = 250;
// exptime values above this are absolute unix times (memcached's REALTIME_MAXDELTA).
inline constexpr int64_t kMaxRelativeExptime = 60 * 60 * 24 * 30;

// Where a Store reads the time. The server can pass a clock that returns its loop's
// cached time (one clock read per loop iteration instead of one per request); tests
// pass a fake one. Called on the Store's thread only.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // absl::Now(). The returned clock lives forever.
  static const Clock* Real();
};

struct StoreOptions {
  // Memory limit for items, in charged bytes (see ItemCharge). memcached's -m.
  size_t max_bytes = size_t{64} << 20;
  // Largest item (header + key + value, see ItemSize). memcached's -I; like memcached,
  // a value of exactly max_item_size bytes is therefore too large. At most 2^31.
  size_t max_item_size = size_t{1} << 20;
  // CAS values are cas_offset, cas_offset + cas_stride, ... (both at least 1).
  uint64_t cas_offset = 1;
  uint64_t cas_stride = 1;
  // Not owned; must outlive the Store. Null means Clock::Real().
  const Clock* clock = nullptr;
  // A read (or a failed add, or an in-place incr/decr) moves an item to the LRU head
  // and refreshes its access time only if the item was last moved at least this many
  // seconds ago, as memcached does (ITEM_UPDATE_INTERVAL, 60 s): a hot item is then
  // not relinked on every hit. Access times have one-minute resolution, so with a
  // positive interval an item moves at most once per minute stamp. 0: every access
  // moves it (exact LRU order).
  int64_t lru_bump_interval_seconds = 60;
  // memcached's -M turns this off: a write that does not fit then fails (kNoMemory,
  // "SERVER_ERROR out of memory storing object") instead of evicting live items.
  // Expired and flushed items among the last few at the LRU tail are still reclaimed.
  bool evict = true;
};

// Counters, named as in memcached's "stats" output. Gauges (curr_items, bytes,
// limit_maxbytes) describe the Store now; the rest count since creation or ResetStats.
// Sum the shards' stats with +=.
struct StoreStats {
  uint64_t curr_items = 0;
  uint64_t total_items = 0;  // items ever linked (every successful write of an item)
  uint64_t bytes = 0;
  uint64_t limit_maxbytes = 0;
  uint64_t evictions = 0;          // live items evicted to make room
  uint64_t reclaimed = 0;          // dead (expired/flushed) items freed to make room
  uint64_t expired_unfetched = 0;  // items that expired without ever being fetched
  uint64_t evicted_unfetched = 0;  // items evicted without ever being fetched
  uint64_t cmd_get = 0;            // keys looked up by get/gets/mg (without T)
  uint64_t cmd_set = 0;            // storage requests with a value (any outcome)
  uint64_t cmd_touch = 0;          // keys looked up by touch/gat/gats/mg with T
  uint64_t cmd_flush = 0;
  uint64_t get_hits = 0;
  uint64_t get_misses = 0;
  uint64_t get_expired = 0;  // misses because the item had expired
  uint64_t get_flushed = 0;  // misses because the item had been flushed
  uint64_t delete_hits = 0;
  uint64_t delete_misses = 0;
  uint64_t incr_hits = 0;
  uint64_t incr_misses = 0;
  uint64_t decr_hits = 0;
  uint64_t decr_misses = 0;
  uint64_t cas_hits = 0;
  uint64_t cas_misses = 0;
  uint64_t cas_badval = 0;
  uint64_t touch_hits = 0;
  uint64_t touch_misses = 0;
  uint64_t store_too_large = 0;
  uint64_t store_no_memory = 0;

  // Adds every field, except cmd_flush, which takes the maximum: the server runs a
  // flush_all on every shard, and the client sent one.
  StoreStats& operator+=(const StoreStats& other);
};

enum class StoreMode : uint8_t { kSet, kAdd, kReplace, kAppend, kPrepend, kCas };

enum class StoreStatus : uint8_t {
  kStored,     // STORED
  kNotStored,  // NOT_STORED: add of an existing key, replace/append/prepend of a missing
               // one, or an append/prepend whose result would exceed max_item_size
  kExists,     // EXISTS: CAS mismatch
  kNotFound,   // NOT_FOUND: cas of a missing key
  kTooLarge,   // SERVER_ERROR object too large for cache
  kNoMemory,   // SERVER_ERROR out of memory storing object (item larger than max_bytes)
};

struct StoreResult {
  StoreStatus status = StoreStatus::kNotStored;
  uint64_t cas = 0;  // the stored item's new CAS when kStored, else 0
};

struct PutOptions {
  // Meta set's I flag: a kCas write whose CAS is lower than the item's still stores,
  // keeps the old exptime and marks the item stale (mg reports X/W).
  bool allow_stale = false;
  // Meta b flag: the key arrived base64-encoded; meta responses echo it encoded.
  bool key_binary = false;
};

// An item as a read call found it. key and value point into the Store: valid until its
// next non-const call.
struct ItemView {
  std::string_view key;
  std::string_view value;
  uint32_t flags = 0;
  uint64_t cas = 0;
  int64_t expires_at = 0;  // unix seconds; 0 = never
  bool key_binary = false;
};

enum class DeleteStatus : uint8_t {
  kDeleted,      // DELETED / HD
  kNotFound,     // NOT_FOUND / NF
  kExists,       // EX: compare_cas given and different
  kInvalidated,  // HD: marked stale instead of deleted (DeleteOptions::invalidate)
};

struct DeleteOptions {
  std::optional<uint64_t> compare_cas;  // md C: act only if the item's CAS equals it
  bool invalidate = false;              // md I: mark stale and give a new CAS instead of deleting
  std::optional<int64_t> exptime;       // md T with I: new exptime for the stale item
};

enum class ArithmeticStatus : uint8_t {
  kOk,          // value holds the new value
  kCreated,     // ArithmeticOptions::create_exptime given and the key was missing
  kNotFound,    // NOT_FOUND / NF
  kNonNumeric,  // CLIENT_ERROR cannot increment or decrement non-numeric value
  kExists,      // EX: compare_cas given and different
  kNoMemory,    // SERVER_ERROR out of memory
};

struct ArithmeticOptions {
  bool decrement = false;
  uint64_t delta = 1;
  uint64_t compare_cas = 0;               // ma C (0 compares nothing, as in memcached)
  std::optional<int64_t> create_exptime;  // ma N: create on miss with this exptime
  uint64_t initial = 0;                   // ma J: value of a created item
  std::optional<int64_t> exptime;         // ma T: new exptime on success
  // The order in which the N and T flags were sent, e.g. "TN": memcached applies them
  // one after the other, so for a created item the later one wins. Empty means "NT".
  std::string_view flag_order;
};

struct ArithmeticResult {
  ArithmeticStatus status = ArithmeticStatus::kNotFound;
  uint64_t value = 0;
  uint64_t cas = 0;
  int64_t expires_at = 0;  // after the call; unix seconds, 0 = never
  // For echoing 't' in flag order: the expiry before T/N applied, and what T and N
  // (on a created item) set it to.
  int64_t expires_at_before = 0;
  int64_t ttl_expires_at = 0;
  int64_t vivify_expires_at = 0;
};

// Meta get (mg). Unset optionals mean "flag absent".
struct MetaGetOptions {
  bool no_bump = false;                    // u: no LRU bump, access time or fetched mark
  std::optional<int64_t> exptime;          // T: new exptime (counts as a touch)
  std::optional<int64_t> vivify_exptime;   // N: on a miss, create an empty item
  std::optional<int64_t> recache_seconds;  // R: win if fewer seconds of TTL remain
  bool key_binary = false;                 // b: mark a vivified item's key as binary
  // The order in which the N, T and R flags were sent, e.g. "TRN": memcached applies
  // them in that order (R compares against the TTL as it stands at that point, and the
  // later of T and N sets a vivified item's TTL). Empty means "NTR".
  std::string_view flag_order;
};

struct MetaGetResult {
  bool found = false;    // false: EN (nothing else below is set)
  bool created = false;  // vivified by N on this call
  ItemView item;
  int64_t expires_at_before = 0;    // before T/N applied
  int64_t ttl_expires_at = 0;       // what T set it to (if T was given)
  int64_t vivify_expires_at = 0;    // what N set it to (if the item was created)
  bool hit_before = false;          // h: fetched before this call
  int64_t last_access_seconds = 0;  // l: seconds since the previous access (1-min steps)
  bool won = false;                 // W: this client should recache
  bool stale = false;               // X: marked stale (md I / ms I)
  bool token_sent = false;          // Z: another client already won
};

// What meta debug (me) shows about an item.
struct ItemDebugInfo {
  std::string_view key;
  bool key_binary = false;
  int64_t expires_at = 0;  // unix seconds, 0 = never
  int64_t last_access_seconds = 0;
  uint64_t cas = 0;
  bool fetched = false;
  size_t size = 0;  // ItemSize of the item
};

class Store {
 public:
  // The index charge per item: an 8-byte pointer slot plus a control byte in an
  // open-addressing table kept between 7/16 and 7/8 full, rounded up.
  static constexpr size_t kIndexBytesPerItem = 16;
  // The fixed part of every item allocation.
  static constexpr size_t kItemHeaderSize = 40;

  explicit Store(const StoreOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Size of an item for the max_item_size check: header + key + value.
  static constexpr size_t ItemSize(size_t key_length, size_t value_length) {
    return kItemHeaderSize + key_length + value_length;
  }
  // Bytes an item is charged against max_bytes: its allocator chunk plus its index slot.
  static constexpr size_t ItemCharge(size_t key_length, size_t value_length) {
    const size_t chunk = (ItemSize(key_length, value_length) + 8 + 15) & ~size_t{15};
    return (chunk < 32 ? 32 : chunk) + kIndexBytesPerItem;
  }

  // --- Retrieval ---------------------------------------------------------------
  // get/gets: the item, bumped to the LRU head (see lru_bump_interval_seconds) and
  // marked fetched. Counts cmd_get and
  // get_hits or get_misses.
  std::optional<ItemView> Get(std::string_view key);
  // gat/gats: like Get, and sets the exptime. Counts cmd_touch and touch_hits/misses.
  std::optional<ItemView> GetAndTouch(std::string_view key, int64_t exptime);
  // mg.
  MetaGetResult MetaGet(std::string_view key, const MetaGetOptions& options);
  // me: no bump, no counters (an expired item is still dropped).
  std::optional<ItemDebugInfo> Inspect(std::string_view key);
  // Tests and tools: the item without any side effect but lazy expiry.
  std::optional<ItemView> Peek(std::string_view key);

  // --- Storage -----------------------------------------------------------------
  // set/add/replace/append/prepend/cas (and ms, which maps its mode and C flag onto
  // these). `cas` is the client's CAS value, 0 for none: kCas compares it; append and
  // prepend compare it when non-zero (EXISTS on mismatch); the other modes ignore it.
  // Counts cmd_set and, for kCas, cas_hits/cas_misses/cas_badval. A value over
  // max_item_size gives kTooLarge (see RejectTooLarge).
  StoreResult Put(StoreMode mode, std::string_view key, std::string_view value, uint32_t flags,
                  int64_t exptime, uint64_t cas = 0, const PutOptions& options = {});
  StoreResult Set(std::string_view key, std::string_view value, uint32_t flags, int64_t exptime) {
    return Put(StoreMode::kSet, key, value, flags, exptime);
  }
  // Records a storage request refused because its value was over the limit, when the
  // value itself never arrived (the parser swallowed it): counts store_too_large and,
  // when `drop_existing` (memcached does it for set, and for every ms mode), removes the
  // key's current item so that stale data does not outlive a failed overwrite.
  void RejectTooLarge(std::string_view key, bool drop_existing);

  // --- Deletion, arithmetic, touch, flush -----------------------------------------
  DeleteStatus Delete(std::string_view key, const DeleteOptions& options = {});
  ArithmeticResult Arithmetic(std::string_view key, const ArithmeticOptions& options);
  ArithmeticResult Incr(std::string_view key, uint64_t delta) {
    return Arithmetic(key, {.delta = delta});
  }
  ArithmeticResult Decr(std::string_view key, uint64_t delta) {
    return Arithmetic(key, {.decrement = true, .delta = delta});
  }
  // touch: true (TOUCHED) if the key exists. Counts cmd_touch and touch_hits/misses.
  bool Touch(std::string_view key, int64_t exptime);
  // flush_all [delay]: delay <= 0 flushes now; otherwise it is read like an exptime
  // (relative seconds, or an absolute unix time above 30 days). A later call replaces
  // a pending delayed flush. Memory is reclaimed lazily.
  void FlushAll(int64_t delay = 0);

  // --- Introspection -------------------------------------------------------------
  StoreStats stats() const;
  void ResetStats();  // zeroes the counters, keeps the gauges
  size_t bytes() const { return used_bytes_; }
  size_t item_count() const { return index_.size(); }
  size_t max_bytes() const { return options_.max_bytes; }
  size_t max_item_size() const { return options_.max_item_size; }
  // The unix time (seconds) as this Store reads it; also applies a due delayed flush.
  int64_t Now();

 private:
  struct Item;
  // The index holds item pointers and is searched by key (heterogeneous lookup), so a
  // key is stored once, inside its item.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const;
    size_t operator()(const Item* item) const;
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(const Item* a, const Item* b) const;
    bool operator()(const Item* a, std::string_view b) const;
    bool operator()(std::string_view a, const Item* b) const;
  };
  enum class Miss : uint8_t { kAbsent, kExpired, kFlushed };

  int64_t ToExpiresAt(int64_t exptime, int64_t now) const;
  bool IsDead(const Item* item, int64_t now, Miss* why) const;
  // Finds a live item; drops a dead one (counting expired_unfetched).
  Item* Find(std::string_view key, int64_t now, Miss* why = nullptr);
  Item* Allocate(std::string_view key, size_t value_length);
  void Free(Item* item);
  // Gives the item a fresh CAS (returned) and adds it to the index and the LRU head,
  // evicting from the tail first so that its charge fits. An item that is already
  // expired is freed instead (the write still happened, as far as the client can
  // tell). REQUIRES: no live item with the same key; ItemCharge <= max_bytes.
  uint64_t Link(Item* item, int64_t now);
  void Unlink(Item* item);  // from index and LRU, and frees it
  void MakeRoom(size_t charge, int64_t now);
  // Whether an item of `charge` fits once `replaced` (if any) is gone: always when
  // evicting; without eviction (StoreOptions::evict), after reclaiming the dead ones
  // among the kNoEvictSearch items at the LRU tail.
  static constexpr int kNoEvictSearch = 5;
  bool Fits(size_t charge, const Item* replaced, int64_t now);
  void LruRemove(Item* item);
  void LruPushHead(Item* item);
  void Bump(Item* item, int64_t now, bool mark_fetched);
  uint64_t NextCas();
  uint16_t MinuteStamp(int64_t now) const;
  int64_t SecondsSinceAccess(const Item* item, int64_t now) const;
  ItemView View(const Item* item) const;

  StoreOptions options_;
  const Clock* clock_;
  absl::flat_hash_set<Item*, KeyHash, KeyEq> index_;
  Item* lru_head_ = nullptr;  // most recently used
  Item* lru_tail_ = nullptr;  // next to evict
  size_t used_bytes_ = 0;
  uint64_t next_cas_;
  // Items whose CAS is below flush_cas_ were written before the last flush took effect.
  uint64_t flush_cas_ = 0;
  std::optional<int64_t> pending_flush_at_;  // unix seconds
  int64_t epoch_;                            // creation time, for minute stamps
  StoreStats stats_;
};

// memcached's safe_strtoull on an item's value: optional leading whitespace and sign,
// decimal digits, then the end of the value or a whitespace character. A '-' is only
// accepted for zero; values over 2^64-1 are rejected.
std::optional<uint64_t> ParseStoredNumber(std::string_view value);

}  // namespace evactor::memcached

#endif  // EVACTOR_EXAMPLES_MEMCACHED_STORE_H_
