// evactor::Loop — one event loop, owned by one thread (libevent's event_base).
//
// A Loop waits for readiness on file descriptors (IoWatcher), for timeouts (Timer,
// and IoWatcher timeouts), and for signals (SignalWatcher), and runs the callbacks of
// the handles that became ready, most urgent priority first. Time is read once per
// iteration and cached: callbacks ask the loop for Now().
//
//   auto loop = evactor::Loop::Create().value();
//   evactor::Timer tick(*loop, [&](uint32_t) { std::puts("tick"); });
//   tick.StartPeriodic(absl::Seconds(1));
//   loop->Exit(absl::Seconds(5));
//   loop->Run();   // ticks four or five times, then returns kExit
//
// Backends: epoll (the default), poll and select. Choose one with
// LoopOptions::backend, or with the environment: EVACTOR_BACKEND=epoll|poll|select,
// or libevent-style switches EVACTOR_NOEPOLL / EVACTOR_NOPOLL / EVACTOR_NOSELECT that
// skip a backend (LoopOptions::ignore_env turns the environment off).
//
// Thread safety: a Loop and every handle on it are used only by the loop's owner
// thread: the thread that created it, or the one that called AttachToCurrentThread().
// Debug builds abort with a message when another thread uses it. Work from other
// threads reaches a loop through the runtime's mailboxes (runtime/mailbox.h), never
// by calling the loop directly.
//
// Handles are RAII: destroying or stopping one removes it from the loop, also from
// inside any callback of the same iteration, its own included; a handle stopped before
// its turn does not run. Handles must be destroyed before their Loop.
//
// Where evactor deliberately differs from libevent, docs/LOOP.md says so and why.
#ifndef EVACTOR_RUNTIME_LOOP_H_
#define EVACTOR_RUNTIME_LOOP_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/events.h"
#include "runtime/internal/event.h"
#include "runtime/metrics.h"

namespace evactor {

class IoWatcher;
class SignalWatcher;
namespace internal {
class Backend;
class TimerHeap;
class FdTable;
class SignalHub;
}  // namespace internal

enum class BackendKind { kEpoll, kPoll, kSelect };

// Lets a component that feeds the loop from other threads (the shard's mailbox) take
// part in every iteration. Runs on the loop's thread.
class LoopHooks {
 public:
  virtual ~LoopHooks() = default;
  // Called before every backend wait. `may_block` says the loop is about to block
  // (nothing active, no timer due). Return true when work is already waiting: the
  // loop then polls without blocking. An implementation typically publishes what it
  // sent this iteration here, and, when `may_block`, announces "asleep" and
  // re-checks its queues.
  virtual bool BeforePoll(bool may_block) = 0;
  // Called after every backend wait, before timers and callbacks run: drain inbound
  // work here.
  virtual void AfterPoll() = 0;
  // True when the hooks hold work that should keep Run() from returning kNoEvents.
  virtual bool HasWork() const = 0;
};

// Per-loop state that a higher layer attaches to a loop (io's SendBatch): created on
// demand through Loop::SetExtension, destroyed with the loop, and told once per
// iteration, after the iteration's callbacks and deferred calls have run and before
// the loop waits again or Run() returns. Runs on the loop's thread.
class LoopExtension {
 public:
  virtual ~LoopExtension() = default;
  // Returns true when it left work that the next iteration must pick up without
  // blocking (for example, callbacks it ran queued more of its own work).
  virtual bool EndOfIteration() = 0;
  // Loop::ReinitAfterFork() in the child: kernel objects shared with the parent must
  // be replaced here.
  virtual void AfterFork() {}
};

// "epoll", "poll" or "select".
std::string_view BackendName(BackendKind kind);

struct LoopOptions {
  // The readiness mechanism. Unset: the environment decides (see above), else epoll.
  std::optional<BackendKind> backend;
  // Ignore EVACTOR_BACKEND and EVACTOR_NO* (libevent's EVENT_BASE_FLAG_IGNORE_ENV).
  bool ignore_env = false;
  // Number of priority levels, 1..256. 0 is the most urgent; handles start at
  // priorities / 2 (libevent's default).
  int priorities = 1;
  // Run() keeps running when no handle is pending, until Exit() or Break()
  // (libevent's EVLOOP_NO_EXIT_ON_EMPTY).
  bool run_forever = false;
  // libevent's event_config_set_max_dispatch_interval. An iteration normally runs
  // every active callback of the most urgent ready priority before it polls again.
  // With a limit, it stops after max_dispatch_callbacks callbacks (0: no limit) or
  // once max_dispatch_interval has passed since it started running them (checked
  // after each callback; zero: no limit), finishes the iteration (deferred callbacks,
  // extensions such as io/'s send batch) and polls again without blocking; the
  // callbacks not run stay active, in order, for the next iteration. Only queues of
  // priority >= dispatch_limit_min_priority are limited (0: all).
  int max_dispatch_callbacks = 0;
  absl::Duration max_dispatch_interval = absl::ZeroDuration();
  int dispatch_limit_min_priority = 0;
};

// Why Run(), RunOnce() or RunNonBlocking() returned.
enum class RunResult {
  kNoEvents,  // nothing pending or active: nothing could ever wake the loop
  kExit,      // Exit() took effect
  kBreak,     // Break() took effect
  kDone,      // RunOnce()/RunNonBlocking() finished their iteration
};

class Loop {
 public:
  using Callback = absl::AnyInvocable<void()>;

  // Creates a loop owned by the calling thread. Fails when the chosen backend cannot
  // be created (for example when the environment switched every backend off).
  static absl::StatusOr<std::unique_ptr<Loop>> Create(LoopOptions options = {});

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  // REQUIRES: not running; every handle on this loop destroyed. Once-events and
  // RunInLoop() calls that never ran are freed without running (libevent's
  // event_once_never).
  ~Loop();

  // Runs iterations until no handle is pending or active (unless run_forever),
  // or Exit()/Break() takes effect. Returns FailedPrecondition when called while
  // this loop is already running (re-entrantly), and the backend's error if polling
  // fails for good. Entering Run resets GotExit()/GotBreak().
  absl::StatusOr<RunResult> Run();
  // One iteration: waits for at least one event (if any can arrive), runs the ready
  // callbacks of the most urgent ready priority, returns.
  absl::StatusOr<RunResult> RunOnce();
  // One iteration without waiting.
  absl::StatusOr<RunResult> RunNonBlocking();

  // Ends Run() after `after` has passed: the iteration in which the delay expires
  // finishes running its active callbacks, then Run() returns kExit (libevent's
  // event_base_loopexit). Exit() with no delay ends the loop after the current
  // iteration. Safe to call while not running: then the next Run() exits once the
  // delay has passed.
  void Exit(absl::Duration after = absl::ZeroDuration());
  // Ends Run() after the callback now running returns; active callbacks that have
  // not run yet stay active for the next Run() (libevent's event_base_loopbreak).
  void Break();
  bool GotExit() const { return got_exit_; }
  bool GotBreak() const { return got_break_; }

  // The monotonic time cached at the start of the iteration (and refreshed after the
  // backend wakes up). absl::Time here counts from an arbitrary epoch: compare and
  // subtract, don't print it as a date.
  absl::Time Now() const { return absl::FromUnixNanos(now_ns_); }
  int64_t NowNanos() const { return now_ns_; }
  // Re-reads the clock (libevent's event_base_update_cache_time).
  void UpdateTime();

  BackendKind backend() const { return backend_kind_; }
  std::string_view backend_name() const { return BackendName(backend_kind_); }
  int priorities() const { return priorities_; }
  int default_priority() const { return priorities_ / 2; }

  // Runs `fn` once on this loop in its next pass over active callbacks, at the default
  // priority (libevent's event_base_once with no fd and no timeout). REQUIRES: owner
  // thread. Pending calls keep Run() from returning kNoEvents.
  void RunInLoop(Callback fn);
  // Runs `fn` once when `fd` becomes ready for `events` (kRead/kWrite) or after
  // `timeout`, whichever comes first; `fn` gets the bits (libevent's event_base_once).
  // fd < 0 means a pure timer. Errors: those of IoWatcher::Start().
  absl::Status Once(int fd, uint32_t events, std::optional<absl::Duration> timeout,
                    absl::AnyInvocable<void(uint32_t)> fn);
  // Runs `fn` at the end of the current iteration, after the active callbacks (or at
  // the end of the next iteration when called outside one). Deferred calls queued
  // while deferred calls run go to the next iteration.
  void Defer(Callback fn);

  // Makes timers and IoWatcher timeouts of exactly `duration` cheap: they go into one
  // FIFO (O(1) start and stop) instead of the timer heap (libevent's common
  // timeouts). Idempotent; at most 256 durations per loop (ResourceExhausted beyond).
  absl::Status UseCommonTimeout(absl::Duration duration);

  // Rebuilds kernel state after fork() in the child (libevent's event_reinit): a new
  // epoll instance with every registered fd re-added, new signal plumbing. Handles
  // keep working. REQUIRES: called in the child before the loop runs there.
  absl::Status ReinitAfterFork();

  // Moves ownership to the calling thread (for a loop created on one thread and run
  // on another). REQUIRES: not running.
  void AttachToCurrentThread();
  bool IsOwnerThread() const { return std::this_thread::get_id() == owner_; }

  // Installs (or, with nullptr, removes) the iteration hooks. Not owned; one set.
  void SetHooks(LoopHooks* hooks) { hooks_ = hooks; }

  // Counters and histograms, always on; readable from any thread (metrics.h).
  const LoopMetrics& metrics() const { return metrics_; }
  // A snapshot of the counters (owner thread or not; see metrics.h).
  struct Stats {
    uint64_t iterations = 0;
    uint64_t callbacks = 0;
    uint64_t backend_changes = 0;  // kernel registration changes (epoll_ctl calls etc.)
    uint64_t sleeps = 0;           // backend waits that could block
  };
  Stats stats() const {
    return Stats{metrics_.iterations.Read(), metrics_.callbacks.Read(),
                 metrics_.backend_changes.Read(), metrics_.sleeps.Read()};
  }

  // Registrations that keep Run() going: started watchers and signal watchers,
  // scheduled timeouts (a watcher's own timeout counts separately, and so does a
  // pending Exit(after)), active callbacks waiting for their turn (RunInLoop calls
  // among them), and Defer()red calls.
  int64_t pending_count() const;

  // Extensions (see LoopExtension). A slot number names one kind of extension in
  // every loop of the process; NewExtensionSlot() hands out a new one (any thread).
  static int NewExtensionSlot();
  // The extension in `slot`, or nullptr. Loop thread.
  LoopExtension* extension(int slot) const {
    return slot >= 0 && static_cast<size_t>(slot) < extensions_.size()
               ? extensions_[slot].get()
               : nullptr;
  }
  // Installs (or, with nullptr, removes) the extension in `slot`; returns it. Loop
  // thread; not from inside that extension's EndOfIteration.
  LoopExtension* SetExtension(int slot, std::unique_ptr<LoopExtension> extension);
  // True while Run(), RunOnce() or RunNonBlocking() is on the stack.
  bool running() const { return running_; }

 private:
  friend class IoWatcher;
  friend class Timer;
  friend class SignalWatcher;
  friend class internal::SignalHub;
  class OnceEvent;
  class ExitEvent;

  explicit Loop(const LoopOptions& options);
  absl::Status Init(BackendKind kind);

  absl::StatusOr<RunResult> RunImpl(bool once, bool nonblock);
  // Debug builds abort when `what` is called from a thread that does not own the
  // loop; release builds compile this away.
  void CheckOwner([[maybe_unused]] const char* what) const {
#ifndef NDEBUG
    if (!IsOwnerThread()) OwnerViolation(what);
#endif
  }
  [[noreturn]] void OwnerViolation(const char* what) const;

  // Active queues.
  void Activate(internal::Event* ev, uint32_t bits);
  void Deactivate(internal::Event* ev) {
    if (ev->in_active) DeactivateSlow(ev);
  }
  void DeactivateSlow(internal::Event* ev);
  bool HasActive() const { return active_count_ > 0; }
  void ProcessActive();
  void RunDeferred();

  // Timeouts.
  void AddTimeout(internal::Event* ev, int64_t deadline_ns, int64_t duration_ns);
  void RemoveTimeout(internal::Event* ev) {
    if (ev->timer_pending()) RemoveTimeoutSlow(ev);
  }
  void RemoveTimeoutSlow(internal::Event* ev);
  void ExpireTimeouts();
  int64_t NextTimeoutNanos() const;  // -1: none

  // Fds (IoWatcher).
  absl::Status AddIo(IoWatcher* w);
  void RemoveIo(IoWatcher* w);
  void DisarmIo(IoWatcher* w);
  void DispatchIo(int fd, uint32_t bits);
  absl::Status FlushChanges();

  // Signals.
  absl::Status AddSignal(SignalWatcher* w);
  void RemoveSignal(SignalWatcher* w);
  void DrainSignals();

  void AddPending(int64_t n) { pending_ += n; }
  bool HasEvents() const;
  void DestroyOnce(OnceEvent* once);

  LoopOptions options_;
  BackendKind backend_kind_ = BackendKind::kEpoll;
  int priorities_ = 1;
  std::thread::id owner_;
  std::unique_ptr<internal::Backend> backend_;
  std::unique_ptr<internal::TimerHeap> timers_;
  std::unique_ptr<internal::FdTable> fds_;

  struct ActiveQueue {
    internal::Event* head = nullptr;
    internal::Event* tail = nullptr;
  };
  std::vector<ActiveQueue> active_;
  int64_t active_count_ = 0;
  int running_priority_ = -1;  // priority being processed, -1 outside ProcessActive
  bool preempt_ = false;       // something more urgent became active

  std::vector<Callback> deferred_;
  OnceEvent* onces_ = nullptr;  // owned list of once-events until they fire

  int64_t now_ns_ = 0;
  int64_t woke_ns_ = 0;  // when the backend last returned
  int64_t pending_ = 0;
  bool running_ = false;
  bool got_exit_ = false;
  bool got_break_ = false;
  std::unique_ptr<ExitEvent> exit_event_;

  // Signals: this loop's slot in the process-wide hub and its wake-up eventfd.
  int signal_slot_ = -1;
  int signal_fd_ = -1;
  std::unique_ptr<IoWatcher> signal_io_;
  std::vector<std::vector<SignalWatcher*>> signal_watchers_;  // by signal number

  LoopHooks* hooks_ = nullptr;
  LoopMetrics metrics_;
  std::vector<std::unique_ptr<LoopExtension>> extensions_;  // by slot
  bool extension_pending_ = false;  // an extension asked for a non-blocking pass
  bool RunExtensions();
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_LOOP_H_
