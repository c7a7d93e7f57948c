#include "examples/memcached/store.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <new>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace evactor::memcached {
namespace {

constexpr uint8_t kFetched = 1 << 0;    // read by a client since it was written
constexpr uint8_t kStale = 1 << 1;      // invalidated by md I / ms I
constexpr uint8_t kTokenSent = 1 << 2;  // a client was told it won the recache (W)
constexpr uint8_t kKeyBinary = 1 << 3;  // key arrived base64-encoded (meta b flag)

// Expiry marker for "already expired": any time in the past works, and 1 is never a
// legitimate future expiry.
constexpr int64_t kExpiredAt = 1;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool ValidKey(std::string_view key) { return !key.empty() && key.size() <= kMaxKeyLength; }

// memcpy that accepts an empty source with a null pointer (std::string_view{}).
void CopyBytes(char* to, std::string_view from) {
  if (!from.empty()) std::memcpy(to, from.data(), from.size());
}

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

// 40 bytes, then the key, then the value. The field order packs it without padding.
struct Store::Item {
  Item* prev;  // toward the LRU head (more recently used)
  Item* next;  // toward the LRU tail
  uint64_t cas;
  uint32_t expires_at;  // unix seconds; 0 = never
  uint32_t flags;
  uint32_t value_length;
  uint16_t atime;  // minute stamp of the last access (see MinuteStamp)
  uint8_t key_length;
  uint8_t bits;

  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  std::string_view key() const { return {data(), key_length}; }
  std::string_view value() const { return {data() + key_length, value_length}; }
  char* mutable_value() { return data() + key_length; }
};

const Clock* Clock::Real() {
  static const RealClock* clock = new RealClock;
  return clock;
}

StoreStats& StoreStats::operator+=(const StoreStats& o) {
  curr_items += o.curr_items;
  total_items += o.total_items;
  bytes += o.bytes;
  limit_maxbytes += o.limit_maxbytes;
  evictions += o.evictions;
  reclaimed += o.reclaimed;
  expired_unfetched += o.expired_unfetched;
  evicted_unfetched += o.evicted_unfetched;
  cmd_get += o.cmd_get;
  cmd_set += o.cmd_set;
  cmd_touch += o.cmd_touch;
  cmd_flush = std::max(cmd_flush, o.cmd_flush);
  get_hits += o.get_hits;
  get_misses += o.get_misses;
  get_expired += o.get_expired;
  get_flushed += o.get_flushed;
  delete_hits += o.delete_hits;
  delete_misses += o.delete_misses;
  incr_hits += o.incr_hits;
  incr_misses += o.incr_misses;
  decr_hits += o.decr_hits;
  decr_misses += o.decr_misses;
  cas_hits += o.cas_hits;
  cas_misses += o.cas_misses;
  cas_badval += o.cas_badval;
  touch_hits += o.touch_hits;
  touch_misses += o.touch_misses;
  store_too_large += o.store_too_large;
  store_no_memory += o.store_no_memory;
  return *this;
}

size_t Store::KeyHash::operator()(std::string_view key) const {
  return absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size()));
}
size_t Store::KeyHash::operator()(const Item* item) const { return (*this)(item->key()); }
bool Store::KeyEq::operator()(const Item* a, const Item* b) const { return a->key() == b->key(); }
bool Store::KeyEq::operator()(const Item* a, std::string_view b) const { return a->key() == b; }
bool Store::KeyEq::operator()(std::string_view a, const Item* b) const { return a == b->key(); }

Store::Store(const StoreOptions& options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {
  static_assert(sizeof(Item) == kItemHeaderSize, "Item header must stay packed");
  options_.cas_offset = std::max<uint64_t>(options_.cas_offset, 1);
  options_.cas_stride = std::max<uint64_t>(options_.cas_stride, 1);
  // value_length is 32 bits; memcached caps -I at 1 GiB anyway.
  options_.max_item_size = std::min<size_t>(options_.max_item_size, size_t{1} << 31);
  next_cas_ = options_.cas_offset;
  epoch_ = absl::ToUnixSeconds(clock_->Now());
}

Store::~Store() {
  Item* item = lru_head_;
  while (item != nullptr) {
    Item* next = item->next;
    Free(item);
    item = next;
  }
}

int64_t Store::Now() {
  const int64_t now = absl::ToUnixSeconds(clock_->Now());
  // A delayed flush takes effect lazily, but before anything else this call does: every
  // item written so far has a CAS below next_cas_, every later write gets one above.
  if (pending_flush_at_.has_value() && now >= *pending_flush_at_) {
    flush_cas_ = next_cas_;
    pending_flush_at_.reset();
  }
  return now;
}

int64_t Store::ToExpiresAt(int64_t exptime, int64_t now) const {
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  if (exptime == 0) return 0;
  if (exptime < 0) return kExpiredAt;
  if (exptime > kMaxRelativeExptime) return exptime <= now ? kExpiredAt : std::min(exptime, kMax);
  return std::min(now + exptime, kMax);
}

bool Store::IsDead(const Item* item, int64_t now, Miss* why) const {
  if (item->cas < flush_cas_) {
    *why = Miss::kFlushed;
    return true;
  }
  if (item->expires_at != 0 && item->expires_at <= now) {
    *why = Miss::kExpired;
    return true;
  }
  return false;
}

Store::Item* Store::Find(std::string_view key, int64_t now, Miss* why) {
  Miss ignored;
  if (why == nullptr) why = &ignored;
  *why = Miss::kAbsent;
  if (!ValidKey(key)) return nullptr;
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  Item* item = *it;
  if (IsDead(item, now, why)) {
    if (*why == Miss::kExpired && (item->bits & kFetched) == 0) ++stats_.expired_unfetched;
    Unlink(item);
    return nullptr;
  }
  return item;
}

Store::Item* Store::Allocate(std::string_view key, size_t value_length) {
  void* memory = ::operator new(ItemSize(key.size(), value_length));
  Item* item = new (memory) Item{};
  item->key_length = static_cast<uint8_t>(key.size());
  item->value_length = static_cast<uint32_t>(value_length);
  std::memcpy(item->data(), key.data(), key.size());
  return item;
}

void Store::Free(Item* item) { ::operator delete(static_cast<void*>(item)); }

uint64_t Store::NextCas() {
  const uint64_t cas = next_cas_;
  next_cas_ += options_.cas_stride;
  return cas;
}

uint64_t Store::Link(Item* item, int64_t now) {
  item->cas = NextCas();
  ++stats_.total_items;
  const uint64_t cas = item->cas;
  if (item->expires_at != 0 && item->expires_at <= now) {
    // Stored and expired at once (negative or past exptime): nothing to keep.
    Free(item);
    return cas;
  }
  const size_t charge = ItemCharge(item->key_length, item->value_length);
  MakeRoom(charge, now);
  index_.insert(item);
  LruPushHead(item);
  item->atime = MinuteStamp(now);
  used_bytes_ += charge;
  return cas;
}

void Store::Unlink(Item* item) {
  index_.erase(item);
  LruRemove(item);
  used_bytes_ -= ItemCharge(item->key_length, item->value_length);
  Free(item);
}

void Store::MakeRoom(size_t charge, int64_t now) {
  while (used_bytes_ + charge > options_.max_bytes && lru_tail_ != nullptr) {
    Item* victim = lru_tail_;
    Miss why;
    const bool fetched = (victim->bits & kFetched) != 0;
    if (IsDead(victim, now, &why)) {
      ++stats_.reclaimed;
      if (why == Miss::kExpired && !fetched) ++stats_.expired_unfetched;
    } else {
      if (!options_.evict) return;  // callers checked Fits(): it fits without this
      ++stats_.evictions;
      if (!fetched) ++stats_.evicted_unfetched;
    }
    Unlink(victim);
  }
}

bool Store::Fits(size_t charge, const Item* replaced, int64_t now) {
  if (options_.evict) return true;
  const size_t freed =
      replaced != nullptr ? ItemCharge(replaced->key_length, replaced->value_length) : 0;
  // Like memcached without eviction: look at the last few items for dead ones.
  Item* item = lru_tail_;
  for (int looked = 0; looked < kNoEvictSearch && item != nullptr &&
                       used_bytes_ - freed + charge > options_.max_bytes;
       ++looked) {
    Item* newer = item->prev;
    Miss why;
    if (item != replaced && IsDead(item, now, &why)) {
      ++stats_.reclaimed;
      if (why == Miss::kExpired && (item->bits & kFetched) == 0) ++stats_.expired_unfetched;
      Unlink(item);
    }
    item = newer;
  }
  return used_bytes_ - freed + charge <= options_.max_bytes;
}

void Store::LruRemove(Item* item) {
  (item->prev != nullptr ? item->prev->next : lru_head_) = item->next;
  (item->next != nullptr ? item->next->prev : lru_tail_) = item->prev;
  item->prev = item->next = nullptr;
}

void Store::LruPushHead(Item* item) {
  item->prev = nullptr;
  item->next = lru_head_;
  (lru_head_ != nullptr ? lru_head_->prev : lru_tail_) = item;
  lru_head_ = item;
}

void Store::Bump(Item* item, int64_t now, bool mark_fetched) {
  if (mark_fetched) item->bits |= kFetched;
  const uint16_t stamp = MinuteStamp(now);
  if (options_.lru_bump_interval_seconds > 0 &&
      int64_t{static_cast<uint16_t>(stamp - item->atime)} * 60 <
          options_.lru_bump_interval_seconds) {
    return;  // moved recently enough: spare the relink (and its cache misses)
  }
  if (item != lru_head_) {
    LruRemove(item);
    LruPushHead(item);
  }
  item->atime = stamp;
}

// Access times cost two bytes per item: minutes since the Store was created, modulo
// 2^16 (45 days). memcached itself refreshes an item's access time at most once a
// minute, so nothing finer is promised.
uint16_t Store::MinuteStamp(int64_t now) const {
  return static_cast<uint16_t>(std::max<int64_t>(now - epoch_, 0) / 60);
}

int64_t Store::SecondsSinceAccess(const Item* item, int64_t now) const {
  return int64_t{static_cast<uint16_t>(MinuteStamp(now) - item->atime)} * 60;
}

ItemView Store::View(const Item* item) const {
  return ItemView{
      .key = item->key(),
      .value = item->value(),
      .flags = item->flags,
      .cas = item->cas,
      .expires_at = item->expires_at,
      .key_binary = (item->bits & kKeyBinary) != 0,
  };
}

std::optional<ItemView> Store::Get(std::string_view key) {
  const int64_t now = Now();
  ++stats_.cmd_get;
  Miss why;
  Item* item = Find(key, now, &why);
  if (item == nullptr) {
    ++stats_.get_misses;
    if (why == Miss::kExpired) ++stats_.get_expired;
    if (why == Miss::kFlushed) ++stats_.get_flushed;
    return std::nullopt;
  }
  ++stats_.get_hits;
  Bump(item, now, /*mark_fetched=*/true);
  return View(item);
}

std::optional<ItemView> Store::GetAndTouch(std::string_view key, int64_t exptime) {
  const int64_t now = Now();
  ++stats_.cmd_touch;
  Item* item = Find(key, now);
  if (item == nullptr) {
    ++stats_.touch_misses;
    return std::nullopt;
  }
  ++stats_.touch_hits;
  item->expires_at = static_cast<uint32_t>(ToExpiresAt(exptime, now));
  Bump(item, now, /*mark_fetched=*/true);
  return View(item);
}

bool Store::Touch(std::string_view key, int64_t exptime) {
  return GetAndTouch(key, exptime).has_value();
}

MetaGetResult Store::MetaGet(std::string_view key, const MetaGetOptions& options) {
  const int64_t now = Now();
  const bool touch = options.exptime.has_value();
  MetaGetResult result;
  Miss why;
  Item* item = Find(key, now, &why);
  if (item == nullptr && options.vivify_exptime.has_value() && ValidKey(key) &&
      ItemCharge(key.size(), 0) <= options_.max_bytes &&
      Fits(ItemCharge(key.size(), 0), nullptr, now)) {
    // Vivify: an empty placeholder whose creator is told it won (W); later readers
    // see Z until someone stores the real value.
    Item* created = Allocate(key, 0);
    if (options.key_binary) created->bits |= kKeyBinary;
    Link(created, now);
    item = created;
    result.created = true;
  }
  if (item == nullptr) {
    ++(touch ? stats_.cmd_touch : stats_.cmd_get);
    ++(touch ? stats_.touch_misses : stats_.get_misses);
    if (!touch && why == Miss::kExpired) ++stats_.get_expired;
    if (!touch && why == Miss::kFlushed) ++stats_.get_flushed;
    return result;
  }
  result.found = true;
  result.hit_before = (item->bits & kFetched) != 0;
  result.last_access_seconds = SecondsSinceAccess(item, now);
  result.expires_at_before = item->expires_at;
  result.token_sent = (item->bits & kTokenSent) != 0;
  result.stale = (item->bits & kStale) != 0;
  // memcached walks the flags in request order; only N, T and R interact.
  int64_t expires_at = item->expires_at;
  for (char flag : options.flag_order.empty() ? std::string_view("NTR") : options.flag_order) {
    if (flag == 'T' && touch) {
      result.ttl_expires_at = ToExpiresAt(*options.exptime, now);
      expires_at = result.ttl_expires_at;
    } else if (flag == 'N' && result.created) {
      result.vivify_expires_at = ToExpiresAt(*options.vivify_exptime, now);
      expires_at = result.vivify_expires_at;
      result.won = true;
    } else if (flag == 'R' && options.recache_seconds.has_value() && !result.token_sent &&
               !result.created && expires_at != 0 &&
               expires_at < ToExpiresAt(*options.recache_seconds, now)) {
      result.won = true;
    }
  }
  item->expires_at = static_cast<uint32_t>(expires_at);
  if (result.stale && !result.token_sent) result.won = true;
  if (result.won) item->bits |= kTokenSent;
  ++(touch ? stats_.cmd_touch : stats_.cmd_get);
  ++(touch ? stats_.touch_hits : stats_.get_hits);
  if (!options.no_bump) Bump(item, now, /*mark_fetched=*/true);
  result.item = View(item);
  return result;
}

std::optional<ItemDebugInfo> Store::Inspect(std::string_view key) {
  const int64_t now = Now();
  Item* item = Find(key, now);
  if (item == nullptr) return std::nullopt;
  return ItemDebugInfo{
      .key = item->key(),
      .key_binary = (item->bits & kKeyBinary) != 0,
      .expires_at = item->expires_at,
      .last_access_seconds = SecondsSinceAccess(item, now),
      .cas = item->cas,
      .fetched = (item->bits & kFetched) != 0,
      .size = ItemSize(item->key_length, item->value_length),
  };
}

std::optional<ItemView> Store::Peek(std::string_view key) {
  Item* item = Find(key, Now());
  if (item == nullptr) return std::nullopt;
  return View(item);
}

StoreResult Store::Put(StoreMode mode, std::string_view key, std::string_view value, uint32_t flags,
                       int64_t exptime, uint64_t cas, const PutOptions& options) {
  if (!ValidKey(key)) return {StoreStatus::kNotStored};
  if (ItemSize(key.size(), value.size()) > options_.max_item_size) {
    RejectTooLarge(key, /*drop_existing=*/mode == StoreMode::kSet);
    return {StoreStatus::kTooLarge};
  }
  const int64_t now = Now();
  ++stats_.cmd_set;
  if (ItemCharge(key.size(), value.size()) > options_.max_bytes) {
    // Bigger than the whole cache: nothing to evict would make it fit. Like a failed
    // allocation in memcached, a set still removes the old value.
    ++stats_.store_no_memory;
    if (mode == StoreMode::kSet) {
      if (Item* old = Find(key, now)) Unlink(old);
    }
    return {StoreStatus::kNoMemory};
  }
  const uint8_t binary = options.key_binary ? kKeyBinary : 0;
  Item* old = Find(key, now);
  if (old == nullptr) {
    switch (mode) {
      case StoreMode::kSet:
      case StoreMode::kAdd:
        break;
      case StoreMode::kCas:
        ++stats_.cas_misses;
        return {StoreStatus::kNotFound};
      case StoreMode::kReplace:
      case StoreMode::kAppend:
      case StoreMode::kPrepend:
        return {StoreStatus::kNotStored};
    }
    if (!Fits(ItemCharge(key.size(), value.size()), nullptr, now)) {
      ++stats_.store_no_memory;
      return {StoreStatus::kNoMemory};
    }
    Item* item = Allocate(key, value.size());
    CopyBytes(item->mutable_value(), value);
    item->flags = flags;
    item->expires_at = static_cast<uint32_t>(ToExpiresAt(exptime, now));
    item->bits = binary;
    return {StoreStatus::kStored, Link(item, now)};
  }

  // memcached's do_store_item: the CAS comparison first, then the mode.
  enum class CasCheck { kNone, kMatch, kStale, kBadValue };
  const CasCheck check = cas == 0                                ? CasCheck::kNone
                         : cas == old->cas                       ? CasCheck::kMatch
                         : options.allow_stale && cas < old->cas ? CasCheck::kStale
                                                                 : CasCheck::kBadValue;
  Item* item = nullptr;
  switch (mode) {
    case StoreMode::kAdd:
      // add never overwrites, but the attempt counts as a use of the old item.
      Bump(old, now, /*mark_fetched=*/false);
      return {StoreStatus::kNotStored};
    case StoreMode::kCas:
      if (check != CasCheck::kMatch && check != CasCheck::kStale) {
        ++stats_.cas_badval;
        return {StoreStatus::kExists};
      }
      ++stats_.cas_hits;
      item = Allocate(key, value.size());
      CopyBytes(item->mutable_value(), value);
      item->flags = flags;
      item->expires_at = static_cast<uint32_t>(ToExpiresAt(exptime, now));
      item->bits = binary;
      if (check == CasCheck::kStale) {
        // A late writer may store, but the result stays marked stale and keeps the TTL.
        item->expires_at = old->expires_at;
        item->bits |= kStale | (old->bits & kTokenSent);
      }
      break;
    case StoreMode::kAppend:
    case StoreMode::kPrepend: {
      if (check != CasCheck::kNone && check != CasCheck::kMatch) {
        return {StoreStatus::kExists};
      }
      const size_t length = size_t{old->value_length} + value.size();
      if (ItemSize(key.size(), length) > options_.max_item_size ||
          ItemCharge(key.size(), length) > options_.max_bytes) {
        return {StoreStatus::kNotStored};  // memcached: allocation failed, NOT_STORED
      }
      item = Allocate(key, length);
      const std::string_view old_value = old->value();
      char* out = item->mutable_value();
      if (mode == StoreMode::kAppend) {
        CopyBytes(out, old_value);
        CopyBytes(out + old_value.size(), value);
      } else {
        CopyBytes(out, value);
        CopyBytes(out + value.size(), old_value);
      }
      item->flags = old->flags;
      item->expires_at = old->expires_at;
      item->bits = static_cast<uint8_t>(binary | (old->bits & kKeyBinary));
      break;
    }
    case StoreMode::kSet:
    case StoreMode::kReplace:
      item = Allocate(key, value.size());
      CopyBytes(item->mutable_value(), value);
      item->flags = flags;
      item->expires_at = static_cast<uint32_t>(ToExpiresAt(exptime, now));
      item->bits = binary;
      break;
  }
  if (!Fits(ItemCharge(key.size(), item->value_length), old, now)) {
    Free(item);
    if (mode == StoreMode::kAppend || mode == StoreMode::kPrepend) {
      return {StoreStatus::kNotStored};  // memcached: the combined allocation failed
    }
    ++stats_.store_no_memory;
    if (mode == StoreMode::kSet) Unlink(old);  // as memcached: a failed set drops the old value
    return {StoreStatus::kNoMemory};
  }
  Unlink(old);
  return {StoreStatus::kStored, Link(item, now)};
}

void Store::RejectTooLarge(std::string_view key, bool drop_existing) {
  ++stats_.store_too_large;
  if (!drop_existing) return;
  if (Item* old = Find(key, Now())) Unlink(old);
}

DeleteStatus Store::Delete(std::string_view key, const DeleteOptions& options) {
  const int64_t now = Now();
  Item* item = Find(key, now);
  if (item == nullptr) {
    ++stats_.delete_misses;
    return DeleteStatus::kNotFound;
  }
  if (options.compare_cas.has_value() && *options.compare_cas != item->cas) {
    ++stats_.delete_misses;
    return DeleteStatus::kExists;
  }
  if (options.invalidate) {
    // Keep serving the old value, flagged stale, with a new CAS so that a writer
    // holding the old one fails; the next reader wins the right to recache.
    if (options.exptime.has_value()) {
      item->expires_at = static_cast<uint32_t>(ToExpiresAt(*options.exptime, now));
    }
    item->bits = static_cast<uint8_t>((item->bits | kStale) & ~kTokenSent);
    item->cas = NextCas();
    return DeleteStatus::kInvalidated;
  }
  ++stats_.delete_hits;
  Unlink(item);
  return DeleteStatus::kDeleted;
}

ArithmeticResult Store::Arithmetic(std::string_view key, const ArithmeticOptions& options) {
  const int64_t now = Now();
  ArithmeticResult result;
  char digits[24];
  Item* item = Find(key, now);
  if (item == nullptr) {
    if (!options.create_exptime.has_value() || !ValidKey(key)) {
      ++(options.decrement ? stats_.decr_misses : stats_.incr_misses);
      result.status = ArithmeticStatus::kNotFound;
      return result;
    }
    const size_t n = std::to_chars(digits, digits + sizeof(digits), options.initial).ptr - digits;
    if (ItemCharge(key.size(), n) > options_.max_bytes ||
        !Fits(ItemCharge(key.size(), n), nullptr, now)) {
      result.status = ArithmeticStatus::kNoMemory;
      return result;
    }
    Item* created = Allocate(key, n);
    std::memcpy(created->mutable_value(), digits, n);
    result.vivify_expires_at = ToExpiresAt(*options.create_exptime, now);
    if (options.exptime.has_value()) result.ttl_expires_at = ToExpiresAt(*options.exptime, now);
    // N and T both set the new item's TTL; the later flag wins, as in memcached.
    for (char flag : options.flag_order.empty() ? std::string_view("NT") : options.flag_order) {
      if (flag == 'N') created->expires_at = static_cast<uint32_t>(result.vivify_expires_at);
      if (flag == 'T' && options.exptime.has_value()) {
        created->expires_at = static_cast<uint32_t>(result.ttl_expires_at);
      }
    }
    result.status = ArithmeticStatus::kCreated;
    result.value = options.initial;
    result.expires_at = created->expires_at;
    result.cas = Link(created, now);
    return result;
  }
  // Same order of checks as memcached's do_add_delta.
  if (item->value_length == 0) {
    result.status = ArithmeticStatus::kNonNumeric;
    return result;
  }
  if (options.compare_cas != 0 && options.compare_cas != item->cas) {
    result.status = ArithmeticStatus::kExists;
    return result;
  }
  std::optional<uint64_t> current = ParseStoredNumber(item->value());
  if (!current.has_value()) {
    result.status = ArithmeticStatus::kNonNumeric;
    return result;
  }
  uint64_t value = *current;
  if (options.decrement) {
    value = options.delta > value ? 0 : value - options.delta;  // stops at zero
    ++stats_.decr_hits;
  } else {
    value += options.delta;  // wraps at 2^64, as the protocol says
    ++stats_.incr_hits;
  }
  const size_t n = std::to_chars(digits, digits + sizeof(digits), value).ptr - digits;
  if (n <= item->value_length) {
    // Rewrite in place, space-padded to the old length, as memcached does.
    char* out = item->mutable_value();
    std::memcpy(out, digits, n);
    std::memset(out + n, ' ', item->value_length - n);
    item->cas = NextCas();
    Bump(item, now, /*mark_fetched=*/false);
  } else {
    if (ItemCharge(key.size(), n) > options_.max_bytes || !Fits(ItemCharge(key.size(), n), item, now)) {
      result.status = ArithmeticStatus::kNoMemory;
      return result;
    }
    Item* grown = Allocate(key, n);
    std::memcpy(grown->mutable_value(), digits, n);
    grown->flags = item->flags;
    grown->expires_at = item->expires_at;
    grown->bits = item->bits & kKeyBinary;
    Unlink(item);
    Link(grown, now);  // alive: it has the unexpired exptime of the item it replaces
    item = grown;
  }
  result.expires_at_before = item->expires_at;
  if (options.exptime.has_value()) {
    result.ttl_expires_at = ToExpiresAt(*options.exptime, now);
    item->expires_at = static_cast<uint32_t>(result.ttl_expires_at);
  }
  result.status = ArithmeticStatus::kOk;
  result.value = value;
  result.cas = item->cas;
  result.expires_at = item->expires_at;
  return result;
}

void Store::FlushAll(int64_t delay) {
  const int64_t now = Now();
  ++stats_.cmd_flush;
  const int64_t at = delay <= 0 ? now : ToExpiresAt(delay, now);
  if (at <= now) {
    flush_cas_ = next_cas_;
    pending_flush_at_.reset();
  } else {
    pending_flush_at_ = at;
  }
}

StoreStats Store::stats() const {
  StoreStats stats = stats_;
  stats.curr_items = index_.size();
  stats.bytes = used_bytes_;
  stats.limit_maxbytes = options_.max_bytes;
  return stats;
}

void Store::ResetStats() { stats_ = StoreStats{}; }

std::optional<uint64_t> ParseStoredNumber(std::string_view value) {
  size_t i = 0;
  while (i < value.size() && IsSpace(value[i])) ++i;
  bool negative = false;
  if (i < value.size() && (value[i] == '+' || value[i] == '-')) {
    negative = value[i] == '-';
    ++i;
  }
  const size_t first_digit = i;
  uint64_t n = 0;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    const uint64_t digit = static_cast<uint64_t>(value[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  if (i == first_digit) return std::nullopt;
  if (i < value.size() && !IsSpace(value[i])) return std::nullopt;
  if (negative && n != 0) return std::nullopt;
  return n;
}

}  // namespace evactor::memcached
