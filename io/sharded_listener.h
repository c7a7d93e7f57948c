// evactor::ShardedListener — accepts TCP (or UNIX) connections for a whole Runtime and
// hands each one to a shard, which owns it from then on (the memcached model).
//
//   auto sl = ShardedListener::Start(*runtime, SocketAddress::Loopback4(11211),
//       [](Shard& shard, int fd, const SocketAddress& peer) {
//         // on `shard`'s thread: wrap fd in a BufferedSocket, serve it here
//       },
//       {.mode = ShardedListener::Mode::kDispatcher,
//        .policy = ShardedListener::Policy::kLeastConnections});
//
// Modes:
//  - kDispatcher: one Listener on `dispatcher_shard` accepts; each fd travels to the
//    chosen shard through its mailbox. Policies: round-robin, or least connections
//    (the shard with the fewest open connections, ties broken round-robin; shards
//    report closes with ConnectionClosed()). If the chosen shard's ring is full the next one is tried;
//    if every ring is full the connection is closed and counted in refused().
//  - kReusePort: one SO_REUSEPORT listening socket per shard; the kernel spreads
//    connections and each shard accepts its own (no hand-off at all).
//
// Start() and Stop() block until every shard has set up / torn down its part, so call
// them off-shard. Shutting the runtime down also tears the listeners down (on their
// shards); after that, Stop() and the destructor do nothing. Racing a Shutdown, they
// still return: Start() with FailedPrecondition (the runtime no longer takes messages)
// or Cancelled (a shard stopped before it ran its part). Connections in flight
// carry their own copy of the callback, so destroying the ShardedListener does not
// strand them.
//
// Thread safety: Start/Stop off-shard; ConnectionClosed from the owning shard (any
// thread is safe: it is an atomic); counters from any thread.
#ifndef EVACTOR_IO_SHARDED_LISTENER_H_
#define EVACTOR_IO_SHARDED_LISTENER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "io/address.h"
#include "io/listener.h"
#include "runtime/runtime.h"

namespace evactor {

struct ShardedListenerOptions {
  enum class Mode { kDispatcher, kReusePort };
  enum class Policy { kRoundRobin, kLeastConnections };
  Mode mode = Mode::kDispatcher;
  Policy policy = Policy::kRoundRobin;
  int dispatcher_shard = 0;
  // Steering (kDispatcher, shards pinned: RuntimeOptions::affinity): a connection
  // goes to the shard pinned to the CPU the kernel last handled its packets on
  // (SO_INCOMING_CPU: for a NIC, the CPU that serves its receive queue; over
  // loopback, the CPU the client ran on), so that its wake-ups, its socket buffers
  // and the shard's work stay on one CPU (measured with the memcached server at two
  // shards: ~30% less CPU per request). `policy` decides instead when no shard is
  // pinned to that CPU, the kernel does not say, or that shard already holds more
  // than `steer_slack` + min/4 open connections beyond the least loaded shard's min
  // (open counts come from ConnectionClosed(); without those reports, from the
  // connections handed out). Ignored when the shards are not pinned.
  // kReusePort: the kernel itself picks the socket of the shard on the CPU that
  // handles the connection's first packet (a classic BPF program attached to the
  // group, SO_ATTACH_REUSEPORT_CBPF); there is no slack then (connections from a CPU
  // without a shard are spread by hash, as without steering). cpu_steering() says
  // whether the program is attached. The program holds the placement at Start(): a
  // shard that moves later (RuntimeOptions::rebalance_interval) still gets the
  // connections from its old CPU, and those from its new one are spread by hash.
  // The dispatcher asks Runtime::ShardOnCpu() per connection and follows moves.
  bool steer_to_incoming_cpu = false;
  int steer_slack = 4;
  ListenerOptions listener;
};

class ShardedListener {
 public:
  using Options = ShardedListenerOptions;
  using Mode = ShardedListenerOptions::Mode;
  using Policy = ShardedListenerOptions::Policy;
  // Runs on the shard that owns `fd` (and must take care of closing it).
  using OnConnection = std::function<void(Shard& shard, int fd, const SocketAddress& peer)>;

  static absl::StatusOr<std::unique_ptr<ShardedListener>> Start(Runtime& runtime,
                                                               const SocketAddress& address,
                                                               OnConnection on_connection,
                                                               Options options = {});
  // Stop(); connections already handed out stay with their shards.
  ~ShardedListener();
  // Closes the listening sockets. Blocks until every shard has done so. Idempotent.
  void Stop();

  // The bound address (with the port the kernel chose for port 0).
  const SocketAddress& address() const { return address_; }
  // A connection owned by `shard` was closed (least-connections bookkeeping).
  void ConnectionClosed(int shard) { live_[shard].fetch_sub(1, std::memory_order_relaxed); }
  // Moving connections between shards (a shard that finds, after accept, that a
  // connection's packets now arrive on another shard's CPU, because its client moved):
  // whether shard `to` is within the steering slack (see Options) and may take one
  // more, and the bookkeeping once a connection did move. Any thread.
  bool MayMoveConnectionTo(int to) const;
  void ConnectionMoved(int from, int to);
  // Connections handed to `shard` so far; open ones it holds now (as reported).
  uint64_t handed_to(int shard) const { return handed_[shard].load(std::memory_order_relaxed); }
  int64_t live(int shard) const { return live_[shard].load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  // Connections that went to the shard on their incoming CPU (steer_to_incoming_cpu).
  uint64_t steered() const { return steered_.load(std::memory_order_relaxed); }
  // kReusePort: whether the kernel steers connections by CPU (see Options).
  bool cpu_steering() const { return cpu_steering_; }
  // Connections moved between shards (ConnectionMoved).
  uint64_t moved() const { return moved_.load(std::memory_order_relaxed); }

 private:
  ShardedListener(Runtime& runtime, OnConnection cb, Options options);
  void Dispatch(int fd, const SocketAddress& peer);
  void AddSlot(Shard& shard);  // on `shard`'s thread
  int Pick();
  // kReusePort: attaches the program that picks the shard on the connection's CPU.
  absl::Status AttachCpuSteering();
  // The shard on `fd`'s incoming CPU if steering applies (see Options), else -1.
  int Steer(int fd) const;
  absl::Status RunOnEveryShard(std::function<absl::Status(Shard&)> fn);

  Runtime& runtime_;
  OnConnection on_connection_;
  Options options_;
  SocketAddress address_;
  // One per shard, owned by that shard (freed by its stop callback), so that the
  // runtime's shutdown tears listeners down on their own threads whatever the order.
  struct Slot {
    std::unique_ptr<Listener> listener;
  };
  std::vector<Slot*> slots_;
  std::unique_ptr<std::atomic<uint64_t>[]> handed_;
  std::unique_ptr<std::atomic<int64_t>[]> live_;
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> steered_{0};
  std::atomic<uint64_t> moved_{0};
  uint64_t next_ = 0;  // dispatcher shard only
  bool stopped_ = false;
  bool cpu_steering_ = false;
};

}  // namespace evactor

#endif  // EVACTOR_IO_SHARDED_LISTENER_H_
