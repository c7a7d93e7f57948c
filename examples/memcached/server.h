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
//  - Keys: the key space is partitioned across shards by hash; each shard owns one
//    Store with its part of the memory limit and a disjoint CAS sequence, with no lock.
//    A request for a key owned elsewhere is copied into a message, executed on the
//    owner shard, and its response bytes are sent back; a multi-key get is split into
//    runs of consecutive keys with the same owner, so VALUE lines keep request order.
//  - Pipelining: every request of a connection gets a response slot; slots are written
//    strictly in request order, whichever shard answers first.
//
// Thread safety: Start/Stop/Wait from any thread that is not one of the server's
// shards.
#ifndef EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_
#define EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "examples/memcached/protocol.h"
#include "examples/memcached/store.h"
#include "io/sharded_listener.h"
#include "runtime/per_shard.h"
#include "runtime/runtime.h"

namespace evactor::memcached {

struct Config {
  uint16_t port = 11211;                // -p
  std::string listen = "127.0.0.1";     // -l
  std::string unix_socket;              // -s (instead of TCP)
  int threads = 4;                      // -t: shards
  size_t memory_mb = 64;                // -m
  size_t max_connections = 1024;        // -c
  size_t max_item_size = size_t{1} << 20;  // -I
  int verbosity = 0;                    // -v / -vv
  bool reuse_port = false;              // one SO_REUSEPORT listener per shard
};

class ShardState;

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);
  ~Server();

  // The bound address (with the kernel's port for port 0).
  const SocketAddress& address() const { return listener_->address(); }
  // Stops accepting and shuts the shards down. Any thread; idempotent.
  void Stop();
  // Blocks until the runtime has stopped (after Stop() or a SIGINT/SIGTERM).
  void Wait();

  // Internal, used by connections on the shards.
  int Owner(std::string_view key) const;
  Runtime& runtime() { return *runtime_; }
  PerShard<ShardState>& states() { return *states_; }
  const Config& config() const { return config_; }
  ServerStats Stats() const;
  std::atomic<uint64_t> curr_connections{0};
  std::atomic<uint64_t> total_connections{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};

 private:
  explicit Server(const Config& config) : config_(config) {}
  Config config_;
  int64_t started_unix_ = 0;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<PerShard<ShardState>> states_;
  std::unique_ptr<ShardedListener> listener_;
};

}  // namespace evactor::memcached

#endif  // EVACTOR_EXAMPLES_MEMCACHED_SERVER_H_
