// evactor::memcached::Server — the memcached-compatible server: memcached's flags and
// ASCII protocol on evactor's shards.
//
//   evactor::memcached::Config config;                 // 127.0.0.1:11211, 4 shards
//   auto server = evactor::memcached::Server::Start(config).value();
//   server->Wait();                                     // until Stop() or a signal
//
// Design (the actor model done properly):
//  - Connections: one dispatcher shard accepts and hands each connection to a shard
//    (round-robin, or least connections), or one SO_REUSEPORT listener per shard
//    (Config::reuse_port). That shard alone owns the socket and its parser.
//  - Keys, StoreLayout::kShared (default): the key space is split by hash into lock
//    stripes, each one Store with its part of the memory limit and a disjoint CAS
//    sequence, guarded by a std::mutex. The connection's shard runs every request
//    itself, against the stripe of its key; nothing crosses shards.
//  - Keys, StoreLayout::kPartitioned: the key space is partitioned across shards by
//    hash; each shard owns one Store with its part of the memory limit and a disjoint
//    CAS sequence, with no lock. A request for a key owned elsewhere is copied into a
//    message, executed on the owner shard, and its response bytes are sent back; a
//    multi-key get is split into runs of consecutive keys with the same owner, so
//    VALUE lines keep request order.
//  - CPUs (Config::affinity): by default each shard is pinned to a CPU when there
//    are enough, and the dispatcher hands a connection to the shard on the CPU its
//    packets arrive on (SO_INCOMING_CPU), so that a connection's wake-ups and socket
//    buffers stay on its shard's CPU (docs/MEMCACHED.md has the measurements). With
//    CPUs to spare, a shard whose CPU other threads crowd moves to a free one
//    (Config::rebalance_interval).
//  - Pipelining: responses are written strictly in request order; a response that
//    waits for another shard takes a slot, and later ones queue behind it.
//
// Thread safety: Start/Stop/Wait from any thread that is not one of the server's
// shards.
#ifndef EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_
#define EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/memcached/protocol.h"
#include "examples/memcached/store.h"
#include "io/sharded_listener.h"
#include "runtime/per_shard.h"
#include "runtime/runtime.h"

namespace evactor::memcached {

// Where items live (-o store=...).
enum class StoreLayout : uint8_t {
  // One Store per lock stripe, shared by every shard: a connection's own shard runs
  // each request against the stripe that owns the key, under that stripe's mutex.
  // No cross-shard messages. The default (see docs/MEMCACHED.md for the measurements).
  kShared,
  // One Store per shard, no locks; requests for keys another shard owns travel there
  // as messages and their responses come back as messages.
  kPartitioned,
};

struct Config {
  uint16_t port = 11211;                // -p
  std::string listen = "127.0.0.1";     // -l
  std::string unix_socket;              // -s (instead of TCP)
  int threads = 4;                      // -t: shards
  size_t memory_mb = 64;                // -m
  size_t max_connections = 1024;        // -c
  size_t max_item_size = size_t{1} << 20;  // -I
  int verbosity = 0;                    // -v / -vv
  bool reuse_port = false;              // -o reuse_port: one SO_REUSEPORT listener per shard
  StoreLayout store = StoreLayout::kShared;  // -o store=shared|partitioned
  // kShared: number of lock stripes (-o stripes=N); 0 picks 1 for one shard (no
  // lock is taken then), else 8 per shard, at most 64, and at most one per
  // 4 * max_item_size of memory (so that every stripe holds the largest item with
  // room to spare).
  size_t stripes = 0;
  // LRU: a read moves an item to the head of its LRU only if it was last moved at
  // least this many seconds ago (memcached's ITEM_UPDATE_INTERVAL, 60 s).
  int64_t lru_bump_interval_seconds = 60;
  // Pinning shards to CPUs and steering connections to the shard on their incoming
  // CPU (-o affinity=auto|on|off; see RuntimeOptions::affinity). kAuto pins when the
  // process may use at least `threads` CPUs; kPin makes Start() fail otherwise.
  RuntimeOptions::Affinity affinity = RuntimeOptions::Affinity::kAuto;
  // With kAuto and more CPUs than threads: how often a shard checks whether other
  // work crowds its CPU while a spare one is free, and moves there (-o rebalance_ms;
  // RuntimeOptions::rebalance_interval). Zero: never.
  absl::Duration rebalance_interval = absl::Seconds(1);
  // memcached's -R: at most this many requests of one connection run per read; when
  // more are buffered (a pipelining client), the connection yields and the rest run
  // after the other connections ready in the same loop iteration. At least 1.
  uint32_t reqs_per_event = 20;
  // -b: the listen backlog.
  int backlog = 1024;
  // -B: the protocols connections may speak. kAuto: the first byte decides (0x80:
  // binary); kAscii: every connection is ASCII (a binary packet reads as a bad
  // command); kBinary: every connection is binary (text is an invalid packet, which
  // closes it).
  enum class Protocols : uint8_t { kAuto, kAscii, kBinary };
  Protocols protocols = Protocols::kAuto;
  // -A: the ASCII "shutdown" command stops the server (as SIGTERM does). Off, it
  // answers "ERROR: shutdown not enabled".
  bool enable_shutdown = false;
  // -F turns flush_all off: it answers "CLIENT_ERROR flush_all not allowed" (binary:
  // status 0x20, as memcached) and flushes nothing.
  bool flush_enabled = true;
  // -M turns this off: a write that does not fit fails ("SERVER_ERROR out of memory
  // storing object") instead of evicting live items (StoreOptions::evict).
  bool evict = true;
  // -a: permission bits of the UNIX socket (-s).
  uint32_t unix_mask = 0700;
  // Backpressure (-o max_unsent_output=N): while a connection has more than this
  // many bytes of answers its client has not read yet, its next requests wait and
  // nothing more is read from it (TCP then slows the client down), so that a client
  // that pipelines without reading cannot make the server buffer without bound.
  // One request's answer may exceed it (a get of a large item). At least 64 KiB.
  size_t max_unsent_output = size_t{4} << 20;
  // -o idle_timeout=S: a connection that sends nothing for this long, or whose
  // client leaves its answers unread for this long, is closed. Zero: never
  // (memcached's default).
  absl::Duration idle_timeout = absl::ZeroDuration();
};

// How many stripes a shared store gets for `config` (see Config::stripes).
size_t StripeCount(const Config& config);

class ShardState;

class Server {
 public:
  // Errors: InvalidArgument for a bad config, the listener's error (address in use,
  // ...), Cancelled when a SIGINT/SIGTERM stopped the server while it started.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);
  ~Server();

  // "0,1,2,3": the CPU of each shard, or "none" when they are not pinned.
  std::string ShardCpus() const;
  // The bound address (with the kernel's port for port 0).
  const SocketAddress& address() const { return listener_->address(); }
  // Stops accepting and shuts the shards down. Any thread; idempotent.
  void Stop();
  // Blocks until the runtime has stopped (after Stop() or a SIGINT/SIGTERM).
  void Wait();

  // Internal, used by connections on the shards.
  int Owner(std::string_view key) const;
  // kShared: one lock stripe, its Store and the mutex that guards it.
  struct alignas(64) Stripe {
    explicit Stripe(const StoreOptions& options) : store(options) {}
    std::mutex mu;
    Store store;
  };
  bool shared() const { return config_.store == StoreLayout::kShared; }
  // Whether stripes must be locked (not with a single shard).
  bool locking() const { return config_.threads > 1; }
  Stripe& StripeOf(std::string_view key) {
    const size_t n = stripes_.size();
    return *stripes_[n == 1 ? 0 : std::hash<std::string_view>()(key) % n];
  }
  std::vector<std::unique_ptr<Stripe>>& stripes() { return stripes_; }
  // -v level; the `verbosity` command changes it (0..2).
  std::atomic<int> verbosity{0};
  Runtime& runtime() { return *runtime_; }
  // The listener, or nullptr in the moment between it starting to accept and Start()
  // storing it (a connection can already close, or ask for stats, then).
  ShardedListener* listener() const { return listener_ptr_.load(std::memory_order_acquire); }
  // Tells the listener a connection on `shard` closed; one closed before the
  // listener was stored is counted and handed over when it is. Any thread.
  void ConnectionClosedOn(int shard);
  PerShard<ShardState>& states() { return *states_; }
  const Config& config() const { return config_; }
  ServerStats Stats() const;
  std::atomic<uint64_t> curr_connections{0};
  std::atomic<uint64_t> total_connections{0};
  // Counters each shard keeps for its own connections, summed by Stats(). Written
  // only by that shard's thread (Add: a plain load and store, no locked instruction,
  // which would wait for the reply just copied to reach the cache); read relaxed by
  // any thread.
  struct alignas(64) ShardCounters {
    std::atomic<uint64_t> bytes_read{0};
    std::atomic<uint64_t> bytes_written{0};
    // Times a connection yielded with requests left (Config::reqs_per_event).
    std::atomic<uint64_t> conn_yields{0};
    // Times a connection stopped running requests until its client read its answers
    // (Config::max_unsent_output).
    std::atomic<uint64_t> conn_throttles{0};
    static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
      counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  };
  // Shard `shard`'s counters; only that shard's thread may Add to them.
  ShardCounters& counters(int shard) { return counters_[shard]; }

 private:
  explicit Server(const Config& config) : config_(config) {}
  Config config_;
  int64_t started_unix_ = 0;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<PerShard<ShardState>> states_;
  std::vector<std::unique_ptr<Stripe>> stripes_;
  std::unique_ptr<ShardedListener> listener_;
  std::atomic<ShardedListener*> listener_ptr_{nullptr};  // listener_, once stored
  std::unique_ptr<std::atomic<int64_t>[]> early_closes_;  // per shard, before that
  std::unique_ptr<ShardCounters[]> counters_;             // per shard
};

}  // namespace evactor::memcached

#endif  // EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_
