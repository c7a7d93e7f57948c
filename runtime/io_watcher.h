// evactor::IoWatcher — readiness of one file descriptor on a Loop (libevent's event
// on an fd, with an optional timeout).
//
//   evactor::IoWatcher w(*loop, fd, evactor::kRead,
//                        [&](uint32_t bits) {
//                          if (bits & evactor::kTimeout) { /* idle too long */ }
//                          if (bits & evactor::kRead) { /* read(fd, ...) */ }
//                        },
//                        {.persistent = true, .timeout = absl::Seconds(30)});
//   absl::Status s = w.Start();   // EBADF, mode conflicts, select's fd limit: an error
//
// Interest: any of kRead, kWrite, kClosed (peer hang-up; epoll and poll only). The
// callback gets the bits that happened, ORed (kRead|kTimeout when both occurred before
// its turn). A hang-up or socket error makes a watcher readable and writable (as far
// as it asked for them) so that the next read or write reports it.
//
// Persistent or one-shot: a one-shot watcher is stopped just before its callback
// runs, so the callback may Start() it again; re-arming in the same iteration costs no
// system call (changes to the kernel's interest set are collected and applied once,
// just before the loop next waits). A persistent watcher stays started; its timeout
// restarts from now after readiness, and from its previous deadline after a timeout
// (so a slow loop collapses missed timeouts into one, never a burst).
//
// Level- or edge-triggered (edge: epoll only). Several watchers may share an fd; they
// must agree on the triggering mode (InvalidArgument otherwise), and stopping one never
// changes the mode for the others.
//
// Binding: a watcher is bound to the open file behind `fd` when it first starts (or
// after set_fd()). Closing the fd while the watcher is started is allowed: with epoll
// the watcher stops hearing from it — unless the file is still open through a dup(),
// in which case the kernel keeps reporting it under the closed number (epoll(7)), so
// stop watchers before closing a dup'ed fd; with poll/select it reports kRead|kWrite
// so the owner notices. Stop or destroy it afterwards. If the number is reused for another
// file, call set_fd() (or use a new watcher) before starting again.
//
// Thread safety: the loop's owner thread only. Destroying or stopping the watcher from
// any callback of its loop, its own included, is safe; after destroying it inside its
// own callback, the callback must not touch its captures.
#ifndef EVACTOR_RUNTIME_IO_WATCHER_H_
#define EVACTOR_RUNTIME_IO_WATCHER_H_

#include <cstdint>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/events.h"
#include "runtime/internal/event.h"

namespace evactor {

class Loop;
namespace internal {
class FdTable;
}  // namespace internal

struct IoOptions {
  bool persistent = true;
  bool edge_triggered = false;
  // -1: the loop's default priority.
  int priority = -1;
  // Fire with kTimeout when no readiness came for this long (restarted by Start()).
  std::optional<absl::Duration> timeout;
};

class IoWatcher : private internal::Event {
 public:
  using Callback = absl::AnyInvocable<void(uint32_t bits)>;

  // Does not start watching. `events` is a subset of kIoInterestMask.
  IoWatcher(Loop& loop, int fd, uint32_t events, Callback cb, IoOptions options = {});
  ~IoWatcher() override;

  // Starts (or restarts) watching, with the timeout from the options. On a started
  // watcher it only restarts the timeout (libevent: a second event_add replaces the
  // timeout). Errors, with the watcher left stopped: InvalidArgument for fd < 0, no
  // interest bits, or a triggering mode that conflicts with other watchers on the fd;
  // FailedPrecondition for edge-triggering or kClosed on a backend without them,
  // OutOfRange for an fd select cannot hold (>= FD_SETSIZE); the kernel's errno (for
  // example EBADF, EPERM for a regular file under epoll) as an absl status.
  absl::Status Start();
  // As Start(), with `timeout` replacing the option's (nullopt: no timeout).
  absl::Status Start(std::optional<absl::Duration> timeout);
  // Stops watching; removes the timeout and any pending activation. Idempotent.
  void Stop();
  // Removes only the timeout; readiness stays watched (libevent's event_remove_timer).
  void RemoveTimeout();

  // Makes the callback run with `bits` in the loop's next pass, as if they had
  // happened (libevent's event_active); merged with bits already pending.
  void Activate(uint32_t bits);

  // Rebinds to another fd (or the same number now naming another file).
  // REQUIRES: stopped.
  void set_fd(int fd);
  void set_events(uint32_t events);  // REQUIRES: stopped
  void set_priority(int priority);   // REQUIRES: not active; clamped to the loop's range
  void set_callback(Callback cb) { cb_ = std::move(cb); }
  // Whether this watcher, while started, keeps Run() from returning kNoEvents
  // (default true; false for plumbing such as a wake-up fd, like libev's ev_unref).
  // REQUIRES: stopped.
  void set_keeps_loop_alive(bool keep) { counts_as_pending_ = keep; }

  int fd() const { return fd_; }
  uint32_t events() const { return events_; }
  bool started() const { return started_; }
  bool persistent() const { return options_.persistent; }
  bool edge_triggered() const { return options_.edge_triggered; }
  // Started, or activated and waiting for its turn.
  bool pending() const { return started_ || in_active; }
  Loop& loop() const { return *loop_; }

 private:
  friend class Loop;
  friend class internal::FdTable;

  void Fire(uint32_t bits) override;
  void OnTimeout() override;

  Loop* loop_;
  int fd_;
  uint32_t events_;
  Callback cb_;
  IoOptions options_;
  std::optional<absl::Duration> timeout_;  // as last started
  int64_t timeout_ns_ = -1;
  bool started_ = false;
  bool bound_ = false;  // the fd table has verified the binding with the kernel
  // In the fd table's list. A fired one-shot watcher stays linked (disarmed, so it
  // does not run) until the table's next Flush: re-armed by then, it cost nothing.
  bool linked_ = false;
  bool counts_as_pending_ = true;  // false for the loop's internal watchers

  // Position in the fd table's list of watchers for fd_.
  IoWatcher* fd_next_ = nullptr;
  IoWatcher* fd_prev_ = nullptr;
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_IO_WATCHER_H_
