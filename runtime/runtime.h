// evactor::Runtime and evactor::Shard — N threads, each owning one Loop (a shard),
// that share nothing and talk only through lock-free mailboxes (the model Steven
// Grimm built memcached's threads on, made safe by construction).
//
//   auto rt = evactor::Runtime::Create({.shards = 4}).value();
//   std::atomic<int> hits{0};
//   rt->ForEachShard([&](evactor::Shard& s) { hits += s.id(); });
//   rt->SubmitTo(2, [] { /* runs on shard 2's thread, in its loop */ });
//   rt->Shutdown();   // from any thread, also from a callback on a shard
//   rt->Wait();       // joins the threads (the destructor does both)
//
// Placement: SubmitTo(i, fn) runs `fn` on shard i. From a shard thread the closure is
// moved into that pair's single-producer ring (runtime/message_ring.h) and becomes
// visible to shard i when the sender's loop iteration ends, or earlier once a
// kilobyte of messages has gathered (publication and the wake-up check are batched,
// not per message); from any other thread it goes through the shard's multi-producer
// ring at once. Messages from one sender to one shard run in the order sent. A shard
// may send to itself; the message still goes through its ring and runs later, never
// inline: after the current callback and everything else the shard runs directly in
// the meantime. Work that must stay in order with what the caller does next on its
// own shard runs directly, not as a message to itself.
//
// Shutdown: Shutdown() stops taking messages from threads that are not shards, lets
// the shards run until no message is in flight anywhere (messages that shards send
// while finishing are still delivered), then closes every mailbox, runs what slipped
// in before the close, runs each shard's stop callbacks on that shard, and ends the
// loops (their remaining timers and watchers do not keep them alive). If messages
// keep flowing past RuntimeOptions::shutdown_grace, shards stop anyway. A message that
// never ran (one that slipped in after its shard's final drain) is destroyed, not run
// elsewhere, and Runtime::dropped() counts it; an off-shard caller blocked on an Ask
// inside it gets Cancelled (runtime/future.h). Sends after the close fail with
// FailedPrecondition. A second Shutdown() is harmless.
//
// Thread safety: SubmitTo, ForEachShard, Shutdown, Wait(*) and the accessors may be
// called from any thread; a Shard's loop() only from that shard's thread.
// (*) Wait() not from a shard thread (it would join itself): FailedPrecondition.
#ifndef EVACTOR_RUNTIME_RUNTIME_H_
#define EVACTOR_RUNTIME_RUNTIME_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/loop.h"
#include "runtime/mailbox.h"

namespace evactor {

class Runtime;
class Timer;
template <typename T>
class ActorRef;
struct SpawnOptions;
namespace internal {
// An actor's home on its shard (runtime/actor.h); the shard owns it.
class ActorCellBase {
 public:
  virtual ~ActorCellBase() = default;
};
}  // namespace internal

struct RuntimeOptions {
  // Number of shards; 0: one per core.
  int shards = 0;
  // Each shard's loop (the backend, priorities). run_forever is forced on.
  LoopOptions loop;
  MailboxOptions mailbox;
  // How long Shutdown() waits for messages to stop flowing before it stops anyway.
  absl::Duration shutdown_grace = absl::Seconds(5);

  // Pinning each shard's thread to one CPU (Seastar's thread affinity). A pinned
  // shard's caches stay warm, and connections steered to it by the CPU the kernel
  // handles their packets on (ShardedListenerOptions::steer_to_incoming_cpu) have
  // their wake-ups and socket buffers on that CPU too.
  //  kNone: the kernel places the threads (the default).
  //  kAuto: pin when there are at least as many CPUs to pin to as shards; with fewer,
  //         or when the kernel refuses, the threads are left unpinned. A shard
  //         pinned this way moves to a less busy CPU when its own is crowded
  //         (rebalance_interval below).
  //  kPin:  pin, or Create() fails: InvalidArgument with fewer CPUs than shards, a
  //         duplicate or negative CPU; the kernel's error when it refuses.
  // Pinned shards run only on their CPU even if another CPU idles: pin when the
  // shards have the CPUs to themselves (or share them evenly), not when the machine
  // is shared with unpinned work that the kernel could balance better. kAuto with
  // more CPUs than shards does the balancing for the shards itself (see below).
  enum class Affinity : uint8_t { kNone, kAuto, kPin };
  Affinity affinity = Affinity::kNone;
  // Where to pin: shard i to cpus[i]. Empty: the CPUs this process may run on
  // (the affinity of the thread calling Create(), which is the process's unless that
  // thread was pinned itself), in ascending order.
  std::vector<int> cpus;
  // kAuto with at least two CPUs: every interval each shard compares its last window,
  // from the kernel's accounting, with the other CPUs it may use (those of `cpus`, or
  // of the allowed set). When it spent at least 10% of the window waiting for its CPU
  // while other threads ran there, and another CPU was less busy than those threads
  // by at least 15 points, it moves to the least busy such CPU (Shard::cpu() follows;
  // Shard::moves() counts). The margin also leaves room for the shard there. A CPU
  // no shard holds becomes the mover's (Runtime::ShardOnCpu() names it); on a CPU
  // another shard holds, the mover is a guest (ShardOnCpu() keeps naming the holder). The case this is for: a busy client
  // on the same machine that the shard's wake-ups keep on the shard's CPU while
  // another CPU idles (runtime/internal/rebalance.h). Zero: never move. kPin shards
  // never move.
  absl::Duration rebalance_interval = absl::Seconds(1);
};

class Shard {
 public:
  ~Shard();
  int id() const { return id_; }
  // The CPU this shard's thread is pinned to, or -1 (RuntimeOptions::affinity).
  // Any thread. Under kAuto it may change (RuntimeOptions::rebalance_interval).
  int cpu() const { return cpu_.load(std::memory_order_relaxed); }
  // How often this shard has moved to another CPU. Any thread.
  uint64_t moves() const { return moves_.load(std::memory_order_relaxed); }
  Runtime& runtime() const { return *runtime_; }
  // REQUIRES: called on this shard's thread.
  Loop& loop() const { return *loop_; }
  Mailbox& mailbox() const { return *mailbox_; }

  // Runs `fn` on this shard's thread when the runtime shuts down, before the loop
  // ends (for handles and per-shard state that must die on their own thread).
  // REQUIRES: this shard's thread.
  void OnStop(absl::AnyInvocable<void()> fn) { on_stop_.push_back(std::move(fn)); }

  // The shard whose thread is calling, or nullptr.
  static Shard* Current() { return current_; }

  // Takes ownership of an actor cell placed here; cells (and the actors in them) are
  // destroyed on this shard when it stops. REQUIRES: this shard's thread.
  void AdoptActorCell(std::unique_ptr<internal::ActorCellBase> cell) {
    cells_.push_back(std::move(cell));
  }
  // What this shard has done so far. Any thread (see metrics.h).
  struct Metrics {
    LoopMetrics::Snapshot loop;
    uint64_t messages_sent = 0;      // to shards, from this shard
    uint64_t messages_received = 0;  // run here, from shards and other threads
    uint64_t wakeups_written = 0;    // eventfd writes that woke this shard
    uint64_t mailbox_full = 0;       // sends to this shard refused: ring full
    uint64_t dead_letters = 0;
    Histogram::Snapshot mailbox_depth;  // messages waiting per drain
  };
  Metrics metrics() const;

  // Messages for actors that had stopped (Tell) on this shard. Any thread.
  uint64_t dead_letters() const { return dead_letters_.load(std::memory_order_relaxed); }
  void CountDeadLetter() { dead_letters_.fetch_add(1, std::memory_order_relaxed); }

 private:
  friend class Runtime;
  class Hooks;
  Shard(Runtime* runtime, int id);
  void ThreadMain(std::atomic<int>* ready, absl::Status* error);
  // After a send to `target`: counted, and its publication and wake-up are due
  // before this shard's loop polls.
  [[gnu::always_inline]] void MarkSent(int target) {
    sent_.Add();
    if (!sent_flag_[target]) [[unlikely]] {
      sent_flag_[target] = 1;
      sent_to_.push_back(target);
    }
  }
  void FlushWakeups();
  void FlushBacklog();
  bool CheckShutdown();  // true: the loop must not block this time
  void Finish();
  // RuntimeOptions::rebalance_interval: starts the periodic check (shard thread).
  void StartRebalancing(absl::Duration interval);
  void CheckPlacement();

  static inline thread_local Shard* current_ = nullptr;
  Runtime* runtime_;
  int id_;
  std::atomic<int> cpu_{-1};  // set by Runtime::Create before it returns
  std::atomic<uint64_t> moves_{0};
  std::thread thread_;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<Mailbox> mailbox_;
  std::unique_ptr<Hooks> hooks_;
  std::vector<std::deque<absl::AnyInvocable<void()>>> backlog_;  // per target (SubmitToRetrying)
  std::atomic<size_t> backlog_count_{0};  // written by this shard, read by shard 0
  std::vector<int> sent_to_;       // shards this one published to since its last poll
  std::vector<char> sent_flag_;    // sent_flag_[i]: i is in sent_to_
  std::vector<absl::AnyInvocable<void()>> on_stop_;
  std::unique_ptr<Timer> shutdown_timer_;
  std::unique_ptr<Timer> rebalance_timer_;
  struct PlacementSample;
  std::unique_ptr<PlacementSample> placement_;  // the last window's start
  bool finishing_ = false;
  std::vector<std::unique_ptr<internal::ActorCellBase>> cells_;
  std::atomic<uint64_t> dead_letters_{0};
  Counter sent_;  // written by this shard only
};

class Runtime {
 public:
  using Message = Mailbox::Message;

  // Starts the shards' threads; returns once every shard runs its loop.
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(RuntimeOptions options = {});
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  // Shutdown() and Wait(). REQUIRES: not called on one of its shards.
  ~Runtime();

  int size() const { return static_cast<int>(shards_.size()); }
  Shard& shard(int i) { return *shards_[i]; }
  // The shard pinned to `cpu`, or -1 (none is, or shards are not pinned). Any thread.
  // While a shard moves (RuntimeOptions::rebalance_interval), both its CPUs may name
  // it for a moment.
  int ShardOnCpu(int cpu) const {
    return cpu >= 0 && static_cast<size_t>(cpu) < cpu_slots_
               ? shard_on_cpu_[cpu].load(std::memory_order_relaxed)
               : -1;
  }
  // Whether the shards are pinned to CPUs (RuntimeOptions::affinity).
  bool pinned() const { return cpu_slots_ != 0; }

  // Runs `fn` (any callable `void()`, moved) on shard `target`. From a shard the
  // closure is moved straight into the pair's ring (no allocation up to
  // MessageRing::kMaxInlineBytes); from other threads it is wrapped in a Message.
  // Errors: InvalidArgument for a bad index, ResourceExhausted when the ring to that
  // shard is full (fn is dropped), and FailedPrecondition after shutdown began (for
  // non-shard senders) or after the shard closed its mailbox.
  template <typename F>
  absl::Status SubmitTo(int target, F&& fn) {
    std::decay_t<F> local(std::forward<F>(fn));
    return TrySubmitTo(target, local);
  }
  // As SubmitTo, leaving `fn` with the caller, untouched, when it fails (for
  // retrying).
  template <typename F>
  absl::Status TrySubmitTo(int target, F& fn) {
    Shard* from = Shard::current_;
    if (from != nullptr && from->runtime_ == this &&
        static_cast<size_t>(target) < shards_.size()) [[likely]] {
      absl::Status s = shards_[target]->mailbox_->Send(from->id_, fn);
      if (s.ok()) [[likely]] from->MarkSent(target);
      return s;
    }
    if (target < 0 || target >= size()) return BadShard(target);
    if (stopping()) return ShuttingDown();
    return shards_[target]->mailbox_->SendForeign(fn);
  }
  // As SubmitTo, but a full ring is not an error: called on a shard, the message
  // waits in that shard's backlog for `target` and is sent from its loop, before it
  // blocks, in order with every later SubmitToRetrying to the same target (so
  // per-sender order holds). The loop keeps draining its own mailbox meanwhile, so
  // two shards flooding each other cannot deadlock. A backlog counts as in flight for
  // Shutdown. Errors: a bad index, or the target has stopped (fn is dropped); off a
  // shard it behaves as SubmitTo.
  template <typename F>
  absl::Status SubmitToRetrying(int target, F&& fn) {
    std::decay_t<F> local(std::forward<F>(fn));
    Shard* here = Shard::current_;
    if (here == nullptr || here->runtime_ != this || target < 0 || target >= size()) {
      return TrySubmitTo(target, local);
    }
    if (here->backlog_[target].empty()) {
      absl::Status s = TrySubmitTo(target, local);
      if (s.code() != absl::StatusCode::kResourceExhausted) return s;
    }
    return AddToBacklog(*here, target, Message(std::move(local)));
  }
  // Runs a copy of `fn` on every shard. Returns the first error; shards that
  // accepted their copy run it.
  absl::Status ForEachShard(std::function<void(Shard&)> fn);

  // Creates an actor of type T on a shard (runtime/actor.h has the definition and
  // the details): Spawn<Counter>({.shard = 2}, initial_value).
  template <typename T, typename... Args>
  absl::StatusOr<ActorRef<T>> Spawn(const SpawnOptions& options, Args&&... args);

  // A shard index for round-robin placement. Any thread.
  int NextShard() { return static_cast<int>(next_shard_.fetch_add(1) % shards_.size()); }

  void Shutdown();
  // Blocks until every shard thread has ended. FailedPrecondition on a shard thread.
  absl::Status Wait();
  bool stopping() const { return phase_.load(std::memory_order_acquire) != kRunning; }

  // Every shard's metrics, in shard order. Any thread.
  std::vector<Shard::Metrics> Metrics() const;

  // Messages destroyed without running because the runtime stopped.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  friend class Shard;
  enum Phase : int { kRunning, kDraining, kClosing };
  Runtime() = default;
  [[gnu::cold, gnu::noinline]] absl::Status BadShard(int target) const;
  // The CPU of each shard (RuntimeOptions::affinity), or empty: do not pin; and the
  // CPUs left over, which kAuto shards may move to.
  struct PinningPlanResult {
    std::vector<int> cpus;
    std::vector<int> spare;
  };
  static absl::StatusOr<PinningPlanResult> PinningPlan(const RuntimeOptions& options,
                                                       int shards);
  // Pins the started shard threads to `plan.cpus` and records the mapping (kAuto: on
  // failure leaves them unpinned and returns OK).
  absl::Status Pin(const PinningPlanResult& plan);
  // Moves `shard` (calling, on its thread) to `cpu` if no other shard took it.
  bool MoveShard(Shard& shard, int cpu);
  [[gnu::cold, gnu::noinline]] static absl::Status ShuttingDown();
  static absl::Status AddToBacklog(Shard& here, int target, Message fn);
  // Shard 0, while draining: true when no message was in flight in two consecutive
  // looks with nothing published in between.
  bool Quiescent();

  std::vector<std::unique_ptr<Shard>> shards_;
  // By CPU number, cpu_slots_ of them; none when not pinned.
  std::unique_ptr<std::atomic<int>[]> shard_on_cpu_;
  size_t cpu_slots_ = 0;
  std::vector<int> usable_cpus_;  // the shards' CPUs and the spare ones
  RuntimeOptions options_;
  std::atomic<int> started_{0};             // shards up (or failed)
  std::vector<absl::Status> start_errors_;  // written by each shard before `started_`
  std::atomic<int> phase_{kRunning};
  std::atomic<int64_t> drain_deadline_ns_{0};
  uint64_t last_published_ = ~uint64_t{0};  // shard 0 only
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> next_shard_{0};
  std::mutex join_mu_;
  bool joined_ = false;
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_RUNTIME_H_
