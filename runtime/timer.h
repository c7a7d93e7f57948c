// evactor::Timer — a one-shot or periodic timer on a Loop (libevent's evtimer).
//
//   evactor::Timer t(*loop, [&](uint32_t) { Flush(); });
//   t.Start(absl::Milliseconds(10));            // once, in 10 ms
//   t.StartPeriodic(absl::Seconds(1));           // every second from now on
//
// Deadlines are on the loop's cached monotonic clock: Start(d) fires at Now() + d, in
// the first iteration whose time has reached it. Timers with the same deadline fire
// in the order they were started. A timer set for 0 fires in the next iteration.
// Periodic timers keep their cadence (next deadline = previous deadline + interval);
// when the loop was stalled past one or more deadlines they fire once and continue
// from now, never in a catch-up burst. Many timers of one duration are cheap when the
// loop was told about it (Loop::UseCommonTimeout).
//
// Thread safety: the loop's owner thread only. Stopping, restarting or destroying the
// timer from any callback of its loop, its own included, is safe.
#ifndef EVACTOR_RUNTIME_TIMER_H_
#define EVACTOR_RUNTIME_TIMER_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "runtime/events.h"
#include "runtime/internal/event.h"

namespace evactor {

class Loop;

class Timer : private internal::Event {
 public:
  // The callback gets kTimeout, or kActivated|... after Activate().
  using Callback = absl::AnyInvocable<void(uint32_t bits)>;

  // `priority` -1: the loop's default.
  Timer(Loop& loop, Callback cb, int priority = -1);
  ~Timer() override;

  // Fires once, `after` from now (negative counts as zero). Restarts a pending timer.
  void Start(absl::Duration after);
  // Fires every `interval` (> 0), first `interval` from now. Restarts a pending timer.
  void StartPeriodic(absl::Duration interval);
  // Idempotent; removes a pending activation too.
  void Stop();
  // Runs the callback in the loop's next pass with kActivated|bits, as libevent's
  // event_active; a periodic timer's period then restarts from now.
  void Activate(uint32_t bits = 0);

  bool pending() const { return timer_pending() || in_active; }
  bool periodic() const { return interval_ns_ > 0; }
  void set_priority(int priority);  // REQUIRES: not active
  void set_callback(Callback cb) { cb_ = std::move(cb); }
  Loop& loop() const { return *loop_; }

 private:
  friend class Loop;
  void Fire(uint32_t bits) override;
  void OnTimeout() override;

  Loop* loop_;
  Callback cb_;
  int64_t interval_ns_ = 0;  // > 0: periodic
  bool counted_ = false;     // counted in the loop's pending handles
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_TIMER_H_
