// evactor::memcached protocol — memcached's ASCII protocol: an incremental request
// parser (RequestParser) and an executor (Execute) that runs one parsed Request against
// a Store and appends the exact response bytes.
//
// The two halves are separate so that a sharded server can parse on the connection's
// shard and execute on the shard that owns the key, shipping the response bytes back:
//
//   evactor::memcached::RequestParser parser;          // one per connection
//   evactor::memcached::Request request;
//   std::string out;
//   parser.Feed(bytes_just_read);                      // or Reserve() + read() + Commit()
//   for (;;) {
//     ParseStatus status = parser.Next(&request);
//     if (status == ParseStatus::kNeedMore) break;     // wait for more input
//     if (status == ParseStatus::kClose) { Close(); break; }  // over-long line
//     if (RouteOf(request) == Route::kKey && Owner(request.key()) != this_shard) {
//       SendTo(Owner(request.key()), OwnedRequest(request));  // runs Execute there and
//       continue;                                              // returns the bytes
//     }
//     if (Execute(request, &local_store, &out) == Disposition::kClose) Close();
//   }
//   Write(out);                                        // responses in request order
//
// Protocol: memcached 1.6's protocol.txt, with memcached 1.6.18's exact response text
// (verified against the real daemon): classic commands get/gets/gat/gats, set/add/
// replace/append/prepend/cas, delete, incr/decr, touch, flush_all, stats
// [settings|items|slabs|sizes|reset], version, verbosity, quit, shutdown (refused, as
// memcached refuses it, unless ParserOptions::enable_shutdown); meta commands mg, ms, md, ma, mn, me with
// the flags memcached 1.6.18 knows (b c f h k l O q s t u v N R T on mg; b c C F I k O q
// T M on ms; b C I k O q T on md; b c C N J D T M q t v O k on ma; P and L ignored).
// Lines end in "\r\n" or a bare "\n"; a data block must be followed by exactly "\r\n".
//
// Errors, exactly as memcached writes them:
//   ERROR                                  unknown command, wrong number of tokens
//   CLIENT_ERROR bad command line format   key over 250 bytes, malformed number (the
//                                          data block of a rejected storage command is
//                                          NOT skipped, as in memcached: it is read as
//                                          the next command line)
//   CLIENT_ERROR bad data chunk            data block not followed by "\r\n" (exactly
//                                          <bytes>+2 bytes are consumed either way)
//   CLIENT_ERROR invalid exptime argument / invalid numeric delta argument / ...
//   SERVER_ERROR object too large for cache  the item would exceed max_item_size: the
//                                          data block is swallowed as it arrives, without
//                                          buffering it, so the connection stays in sync
// noreply suppresses every response of a classic command, errors included (memcached
// does the same); meta commands always report errors, and q only hides the nominal
// response (HD for ms/md/ma, EN for mg). A line longer than the configured limit makes
// Next() return kClose: memcached closes such a connection without a reply.
//
// Deliberate differences from memcached 1.6.18 (everything else was checked byte for
// byte against the real daemon, including randomized pipelines):
//   - numbers outside their field's range (flags over 2^32-1, exptime or <bytes>
//     outside 32-bit signed) are refused with the usual CLIENT_ERROR; memcached
//     silently truncates them;
//   - the line limit applies to a line's length whether or not its "\n" has arrived
//     (memcached's check depends on how the bytes were split into reads), and gat/gats
//     lines get the long limit like get/gets;
//   - incr/decr/ma always rewrite a number that fits in place, space-padded; memcached
//     instead reallocates it at its exact length when a pipelined response still holds
//     a reference to the item (a reference-count artifact);
//   - ma T keeps the new TTL when the number grows (memcached 1.6.18 loses it then);
//   - me prints this Store's item size and cls=1 (no slab classes); CAS values are not
//     consumed by flush_all, so they can differ from memcached's after one.
//
// Thread safety: a RequestParser belongs to one connection, used by one thread at a
// time. Execute touches only the Store it is given (single-threaded by its contract)
// and the output string. A Request is a set of views: share it across threads only as
// an OwnedRequest.
#ifndef EVACTOR_EXAMPLES_MEMCACHED_PROTOCOL_H_
#define EVACTOR_EXAMPLES_MEMCACHED_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "absl/time/time.h"
#include "examples/memcached/store.h"

namespace evactor::memcached {

// What `version` answers by default: the memcached release whose behaviour this
// implements (clients gate features such as meta commands on it).
inline constexpr std::string_view kDefaultVersion = "1.6.18";

enum class Command : uint8_t {
  kGet,
  kGets,
  kGat,
  kGats,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kFlushAll,
  kStats,
  kVersion,
  kVerbosity,
  kQuit,
  kMetaGet,         // mg
  kMetaSet,         // ms
  kMetaDelete,      // md
  kMetaArithmetic,  // ma
  kMetaNoop,        // mn
  kMetaDebug,       // me
  kShutdown,        // shutdown [graceful], only with ParserOptions::enable_shutdown
  kError,           // the parser already knows the answer: Request::error
};

enum class StatsGroup : uint8_t { kGeneral, kSettings, kItems, kSlabs, kSizes, kReset };

// Meta command flags, validated. `tokens` keeps them as sent because responses echo
// the return flags in request order.
struct MetaFlags {
  std::string_view tokens;  // the flag tokens, space-separated, as sent
  bool Has(char flag) const {
    const auto c = static_cast<unsigned char>(flag);
    return c < 128 && (present[c / 64] >> (c % 64) & 1) != 0;
  }
  uint64_t present[2] = {0, 0};         // bit per flag character
  std::optional<int64_t> ttl;           // T
  std::optional<int64_t> vivify_ttl;    // N
  std::optional<int64_t> recache_ttl;   // R
  std::optional<uint64_t> compare_cas;  // C
  uint32_t client_flags = 0;            // F
  char mode = 0;                        // M (validated by ms and ma only, as memcached)
  uint64_t delta = 1;                   // D
  uint64_t initial = 0;                 // J
  // N, T and R in the order they were sent (memcached applies them in that order).
  char ttl_flag_order[4] = {0, 0, 0, 0};
  std::string_view TtlFlagOrder() const { return std::string_view(ttl_flag_order); }
};

// One parsed request. Every string_view points into the parser's buffer (or, for
// OwnedRequest, into its own copy); see RequestParser for how long they stay valid.
struct Request {
  Command command = Command::kError;
  // get/gets/gat/gats: the keys in request order (gat/gats may have none). Every other
  // keyed command: exactly one key. Otherwise empty.
  absl::InlinedVector<std::string_view, 1> keys;
  std::string_view data;   // storage commands: the value, without its "\r\n"
  uint32_t flags = 0;      // storage commands: client flags
  int64_t exptime = 0;     // storage, gat/gats, touch: as sent; flush_all: the delay
  uint64_t cas = 0;        // cas: the client's CAS unique
  uint64_t delta = 0;      // incr/decr
  uint32_t verbosity = 0;  // verbosity
  bool noreply = false;    // classic noreply; errors are then suppressed too
  // Storage command whose item exceeds max_item_size: the data block was swallowed
  // and `data` is empty; the answer is SERVER_ERROR object too large for cache.
  bool too_large = false;
  bool key_binary = false;  // meta b flag: keys[0] is the decoded key
  StatsGroup stats_group = StatsGroup::kGeneral;
  MetaFlags meta;
  std::string_view error;  // kError: the response line without "\r\n"

  std::string_view key() const { return keys.empty() ? std::string_view() : keys[0]; }
  void Clear();
};

// A Request that owns copies of its bytes, for moving to another shard (or keeping past
// the parser's next Feed). Move-only; moving keeps the views valid.
class OwnedRequest {
 public:
  explicit OwnedRequest(const Request& request);
  OwnedRequest(OwnedRequest&&) noexcept = default;
  OwnedRequest& operator=(OwnedRequest&&) noexcept = default;

  const Request& request() const { return request_; }
  // For splitting a multi-key get: replace the keys with a subset of them. The views
  // must point into this object's request() (they do if taken from its keys).
  Request& mutable_request() { return request_; }

 private:
  std::unique_ptr<char[]> bytes_;
  Request request_;
};

struct ParserOptions {
  // Longest command line, without its end of line (memcached: 2048).
  size_t max_line_length = 2048;
  // get/gets/gat/gats lines may carry many keys (memcached grows its buffer for them).
  size_t max_retrieval_line_length = size_t{1} << 20;
  // Must equal the Store's: items over it are swallowed, not buffered.
  size_t max_item_size = size_t{1} << 20;
  // memcached's -A: "shutdown" and "shutdown graceful" parse as Command::kShutdown
  // (the server stops; Execute closes the connection without a reply) and any other
  // argument is "CLIENT_ERROR invalid shutdown mode". Off, as by default in memcached:
  // "ERROR: shutdown not enabled".
  bool enable_shutdown = false;
};

enum class ParseStatus : uint8_t {
  kNeedMore,  // no complete request buffered: feed more bytes
  kRequest,   // *request holds the next request (possibly Command::kError)
  kClose,     // the peer broke the line limit: close the connection (no reply)
};

// Splits a connection's byte stream into Requests. Bytes go in with Feed (a copy) or
// Reserve/Commit (read straight into the parser's buffer); Next() hands out one
// complete request at a time, in order.
//
// Ownership: the parser owns its buffer. The views in a Request it returned stay valid
// until the next Feed() or Reserve() (which may move or free the buffer). Next() never
// moves bytes, so all the requests returned since the last Feed/Reserve are valid
// together: a server may parse a batch and execute it, or hand requests to other
// shards, and only then read more. To keep a request longer, copy it (OwnedRequest).
//
// Memory: the buffer grows to hold one complete request (a command line, or a
// storage command's line plus its data block, at most max_item_size), and shrinks
// back when it is drained. Swallowed data (too-large values) is discarded on arrival.
class RequestParser {
 public:
  explicit RequestParser(const ParserOptions& options = {});
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Appends bytes read from the connection.
  void Feed(std::string_view bytes);
  // Writable space at the end of the buffer, at least min_bytes long; then Commit the
  // number of bytes actually written there.
  std::span<char> Reserve(size_t min_bytes);
  void Commit(size_t n);

  // The next request, if a complete one is buffered; *request is overwritten either
  // way (its contents are meaningful only with kRequest). After kClose every call
  // returns kClose again.
  ParseStatus Next(Request* request);

  // The command line (without its end of line) of the request Next() last returned,
  // for logging; valid as long as that request's views.
  std::string_view last_line() const { return last_line_; }

  // Bytes buffered and not yet returned as part of a request.
  size_t buffered() const { return tail_ - head_; }
  // Whether the rest of a rejected data block is still to be discarded.
  bool swallowing() const { return swallow_ > 0; }
  // When Next() last returned kNeedMore for a storage command waiting for its data
  // block, the total buffered() it needs; 0 otherwise. A hint for read sizing.
  size_t wanted() const { return wanted_; }

 private:
  struct LineResult;
  void DiscardSwallowed();
  void MakeRoom(size_t n);
  size_t LineLimit(const char* line, size_t length) const;
  // Parses one command line. Does not modify the buffer (a request waiting for its data
  // block is parsed again when the data has arrived).
  void ParseLine(std::string_view line, Request* request, LineResult* result);
  void ParseMeta(std::string_view command, Request* request, LineResult* result);

  ParserOptions options_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t head_ = 0;  // first unconsumed byte
  size_t tail_ = 0;  // end of the buffered bytes
  size_t scan_ = 0;  // bytes after head_ known to hold no '\n'
  size_t wanted_ = 0;
  uint64_t swallow_ = 0;  // bytes of a rejected data block still to discard
  bool closed_ = false;
  absl::InlinedVector<std::string_view, 24> tokens_;  // scratch for ParseLine
  std::string key_scratch_;                           // scratch for base64 keys
  std::string_view last_line_;
};

// Where a request must run, for a server with one Store per shard.
enum class Route : uint8_t {
  kLocal,      // needs no Store: errors, version, verbosity, quit, mn (pass nullptr)
  kKey,        // one key: run on the shard that owns keys[0]
  kKeys,       // get/gets/gat/gats: group the keys by shard, run each group with
               // ExecuteOptions::write_end = false, concatenate, then append kEnd
  kAllShards,  // flush_all, stats reset: run on every shard, send one shard's bytes
  kStats,      // stats: sum every shard's Store::stats() and call AppendStats
};
Route RouteOf(const Request& request);

inline constexpr std::string_view kEnd = "END\r\n";

struct ExecuteOptions {
  std::string_view version = kDefaultVersion;
  // Retrieval commands: append "END\r\n" after the VALUE lines. A server answering a
  // multi-key get from several shards turns it off and appends kEnd once itself.
  bool write_end = true;
  // memcached's -F turns this off: flush_all answers "CLIENT_ERROR flush_all not
  // allowed" and flushes nothing (store may then be null).
  bool flush_enabled = true;
};

enum class Disposition : uint8_t {
  kContinue,
  kClose,  // quit: close the connection once the earlier responses are written
};

// Runs `request` against `store` and appends the exact response bytes to *out
// (nothing for noreply). `store` may be null only for Route::kLocal requests; a
// Route::kStats request run here reports this one Store (plus defaults for the
// process-wide numbers). Never fails: every outcome is a response line.
Disposition Execute(const Request& request, Store* store, std::string* out,
                    const ExecuteOptions& options = {});

// Process-wide numbers only the server knows, for the stats output. Zero values are
// printed as zero.
struct ServerStats {
  int64_t pid = 0;
  int64_t uptime_seconds = 0;
  int64_t time = 0;  // unix seconds
  std::string_view version = kDefaultVersion;
  absl::Duration rusage_user;
  absl::Duration rusage_system;
  uint64_t max_connections = 0;
  uint64_t curr_connections = 0;
  uint64_t total_connections = 0;
  uint64_t moved_connections = 0;  // evactor: handed to the shard on their CPU later
  uint64_t moved_shards = 0;       // evactor: shards moved to a less busy CPU
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t threads = 0;
  uint64_t conn_yields = 0;     // connections that yielded at the -R limit
  uint64_t conn_throttles = 0;  // evactor: waits for a client to read its answers
  uint64_t tcp_port = 0;
  uint64_t item_size_max = size_t{1} << 20;
  std::string shard_cpus = "none";  // evactor: the CPU of each shard ("0,1"), or "none"
  // For "stats settings": the configuration as started (verbosity as it is now).
  uint64_t verbosity = 0;
  std::string domain_socket = "NULL";  // -s, as memcached prints it
  std::string_view store_layout = "shared";  // evactor: -o store
  uint64_t stripes = 0;                     // evactor: lock stripes (0: partitioned)
  uint64_t lru_bump_interval = 60;          // evactor: -o lru_bump_interval (seconds)
  std::string_view affinity = "auto";       // evactor: -o affinity=auto|on|off
  uint64_t rebalance_ms = 1000;             // evactor: -o rebalance_ms
  bool reuse_port = false;                  // evactor: -o reuse_port
  uint32_t umask = 0700;                    // -a, printed in octal
  uint64_t reqs_per_event = 20;             // -R
  uint64_t tcp_backlog = 1024;              // -b
  std::string_view binding_protocol = "auto-negotiate";  // -B: or "ascii", "binary"
  bool flush_enabled = true;                // -F
  uint64_t idle_timeout = 0;                // -o idle_timeout (seconds)
  bool shutdown_command = false;            // -A
  bool evictions = true;                    // -M turns it off
  uint64_t max_unsent_output = 4 << 20;     // evactor: -o max_unsent_output
};

// Appends the response to "stats <group>" — STAT lines in memcached's order, then END —
// from the server's numbers and the sum of the shards' StoreStats. kReset appends
// "RESET" (the server resets each shard with Execute or Store::ResetStats).
void AppendStats(StatsGroup group, const ServerStats& server, const StoreStats& store,
                 std::string* out);

}  // namespace evactor::memcached

#endif  // EVACTOR_EXAMPLES_MEMCACHED_PROTOCOL_H_
