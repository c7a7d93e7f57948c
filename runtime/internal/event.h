// The part of every loop handle (IoWatcher, Timer, SignalWatcher, once-events) that
// the loop's active queues and timer structures work with.
//
// Thread safety: none. An Event belongs to one Loop and is touched only on that
// loop's thread.
//
// Invariants:
//  1. `in_active` is true exactly when the event is linked in its loop's active queue
//     for priority `active_priority`; `result` then holds the bits it will run with.
//  2. `heap_index >= 0` exactly when the event's timeout is in the timer heap, and
//     `common != nullptr` exactly when it is in a common-timeout FIFO instead; never
//     both. `timer_pending()` is true in either case.
//  3. The loop never touches an Event after calling its Fire(): Fire may destroy it.
#ifndef EVACTOR_RUNTIME_INTERNAL_EVENT_H_
#define EVACTOR_RUNTIME_INTERNAL_EVENT_H_

#include <cstdint>

namespace evactor {
class Loop;
namespace internal {

struct CommonTimeoutQueue;

struct Event {
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  virtual ~Event() = default;

  // Runs the handle's callback with `bits`. The loop calls it after unlinking the
  // event from the active queue. May destroy `this`.
  virtual void Fire(uint32_t bits) = 0;

  // The loop calls this when the event's timeout expires (after removing the timeout).
  // Handles re-arm persistent timeouts here, then activate themselves.
  virtual void OnTimeout() = 0;

  bool timer_pending() const { return heap_index >= 0 || common != nullptr; }

  // Active queue (intrusive, doubly linked).
  Event* active_next = nullptr;
  Event* active_prev = nullptr;
  uint32_t result = 0;
  int16_t priority = 0;
  int16_t active_priority = 0;
  bool in_active = false;

  // Timeout, on the loop's monotonic clock in nanoseconds.
  int64_t deadline_ns = 0;
  uint64_t timer_seq = 0;  // FIFO order among equal deadlines
  int32_t heap_index = -1;
  CommonTimeoutQueue* common = nullptr;
  Event* common_next = nullptr;
  Event* common_prev = nullptr;
  // True for the stand-in a common-timeout FIFO keeps in the heap.
  bool is_common_proxy = false;
};

}  // namespace internal
}  // namespace evactor

#endif  // EVACTOR_RUNTIME_INTERNAL_EVENT_H_
