// The process-wide side of SignalWatcher: one async-signal-safe handler per signal,
// fanning each arrival out to every loop that watches it.
//
// Thread safety: all functions may be called from any thread; the handler may run on
// any thread at any time.
//
// Design: a static table of slots, one per loop that has signal watchers. A slot
// holds the loop's wake-up eventfd, a counter per signal, and per signal a flag
// "this loop watches it". The handler walks the slots, bumps the counter of each
// watching slot and writes its eventfd. Static storage means the handler can never
// touch freed memory; a slot's `busy` count lets ReleaseSlot wait out a handler that
// is using the slot's fd, so the fd is never closed under a handler's write.
//
// Invariants:
//  1. A signal's handler is installed exactly while at least one slot watches it;
//     the disposition that was in place before is restored when the last stops.
//  2. A slot's eventfd is valid (or -1) whenever a handler can read it.
#ifndef EVACTOR_RUNTIME_INTERNAL_SIGNAL_HUB_H_
#define EVACTOR_RUNTIME_INTERNAL_SIGNAL_HUB_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace evactor::internal {

class SignalHub {
 public:
  static constexpr int kMaxSlots = 256;

  // A slot for a loop whose wake-up eventfd is `wake_fd`. ResourceExhausted when
  // kMaxSlots loops already watch signals.
  static absl::StatusOr<int> AcquireSlot(int wake_fd);
  // Stops every watch of the slot and frees it; returns once no handler uses it.
  static void ReleaseSlot(int slot);
  // Points the slot at a new eventfd (after fork); waits out handlers using the old.
  static void SetWakeFd(int slot, int wake_fd);

  // The slot starts/stops hearing `signo`. Watch installs the handler if it is the
  // first watch of `signo` in the process (the errno of sigaction() on failure).
  static absl::Status Watch(int slot, int signo);
  static void Unwatch(int slot, int signo);

  // Arrivals of `signo` for the slot since the last call.
  static uint32_t Take(int slot, int signo);
};

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_SIGNAL_HUB_H_
