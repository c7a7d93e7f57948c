#include "runtime/internal/signal_hub.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "runtime/internal/errno_status.h"

namespace evactor::internal {
namespace {

constexpr int kNumSignals = NSIG;

struct Slot {
  std::atomic<bool> used{false};
  std::atomic<int> wake_fd{-1};
  // Handlers currently between reading wake_fd and finishing their write.
  std::atomic<int> busy{0};
  std::atomic<bool> watching[kNumSignals];
  std::atomic<uint32_t> counts[kNumSignals];
};

// Static storage: the handler only ever touches this table.
Slot g_slots[SignalHub::kMaxSlots];

// Guards installation and the reference counts below (never taken by the handler).
std::mutex g_mu;
int g_refs[kNumSignals];
struct sigaction g_saved[kNumSignals];

void Handler(int signo) {
  const int saved_errno = errno;
  for (Slot& slot : g_slots) {
    // Acquire pairs with the release in Watch(): a slot seen watching has its fd set.
    if (!slot.watching[signo].load(std::memory_order_acquire)) continue;
    slot.busy.fetch_add(1, std::memory_order_acq_rel);
    slot.counts[signo].fetch_add(1, std::memory_order_relaxed);
    const int fd = slot.wake_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
      const uint64_t one = 1;
      // EAGAIN means the counter is saturated: the loop will wake anyway.
      [[maybe_unused]] ssize_t n = write(fd, &one, sizeof one);
    }
    slot.busy.fetch_sub(1, std::memory_order_acq_rel);
  }
  errno = saved_errno;
}

void WaitIdle(Slot& slot) {
  while (slot.busy.load(std::memory_order_acquire) != 0) {
    // A handler holds the slot for a few instructions.
  }
}

}  // namespace

absl::StatusOr<int> SignalHub::AcquireSlot(int wake_fd) {
  for (int i = 0; i < kMaxSlots; ++i) {
    bool expected = false;
    if (g_slots[i].used.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      for (int s = 0; s < kNumSignals; ++s) {
        g_slots[i].counts[s].store(0, std::memory_order_relaxed);
      }
      g_slots[i].wake_fd.store(wake_fd, std::memory_order_release);
      return i;
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("at most ", kMaxSlots, " loops can watch signals at once"));
}

void SignalHub::ReleaseSlot(int slot) {
  Slot& s = g_slots[slot];
  for (int signo = 1; signo < kNumSignals; ++signo) {
    if (s.watching[signo].load(std::memory_order_relaxed)) Unwatch(slot, signo);
  }
  s.wake_fd.store(-1, std::memory_order_release);
  WaitIdle(s);
  s.used.store(false, std::memory_order_release);
}

void SignalHub::SetWakeFd(int slot, int wake_fd) {
  g_slots[slot].wake_fd.store(wake_fd, std::memory_order_release);
  WaitIdle(g_slots[slot]);
}

absl::Status SignalHub::Watch(int slot, int signo) {
  if (signo <= 0 || signo >= kNumSignals || signo == SIGKILL || signo == SIGSTOP) {
    return absl::InvalidArgumentError(absl::StrCat("signal ", signo, " cannot be watched"));
  }
  std::lock_guard<std::mutex> lock(g_mu);
  Slot& s = g_slots[slot];
  if (s.watching[signo].load(std::memory_order_relaxed)) return absl::OkStatus();
  if (g_refs[signo] == 0) {
    struct sigaction sa = {};
    sa.sa_handler = Handler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(signo, &sa, &g_saved[signo]) < 0) {
      return ErrnoToStatus(errno, absl::StrCat("sigaction(", signo, ")"));
    }
  }
  ++g_refs[signo];
  s.counts[signo].store(0, std::memory_order_relaxed);
  s.watching[signo].store(true, std::memory_order_release);
  return absl::OkStatus();
}

void SignalHub::Unwatch(int slot, int signo) {
  std::lock_guard<std::mutex> lock(g_mu);
  Slot& s = g_slots[slot];
  if (!s.watching[signo].load(std::memory_order_relaxed)) return;
  s.watching[signo].store(false, std::memory_order_release);
  if (--g_refs[signo] == 0) sigaction(signo, &g_saved[signo], nullptr);
}

uint32_t SignalHub::Take(int slot, int signo) {
  return g_slots[slot].counts[signo].exchange(0, std::memory_order_acq_rel);
}

}  // namespace evactor::internal
