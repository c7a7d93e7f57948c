// evactor::SignalWatcher — runs a callback on the loop's thread when a signal
// arrives (libevent's evsignal).
//
//   evactor::SignalWatcher stop(*loop, SIGTERM, [&](int signo, int count) {
//     loop->Exit();
//   });
//   absl::Status s = stop.Start();
//
// Any number of loops, on any threads, and any number of watchers per loop may watch
// the same signal: each started watcher hears every arrival (several arrivals before
// the loop runs may be merged; `count` says how many were seen). The process's
// original disposition of a signal is saved when the first watcher in the process
// starts and restored when the last one stops.
//
// How: an async-signal-safe handler bumps a per-loop counter in a process-wide table
// and writes the loop's eventfd; the loop drains the counters in its own thread. A
// started SignalWatcher keeps its loop's Run() going.
//
// Thread safety: the loop's owner thread only. Stopping or destroying it from any
// callback, its own included, is safe. SIGKILL and SIGSTOP cannot be watched.
#ifndef EVACTOR_RUNTIME_SIGNAL_WATCHER_H_
#define EVACTOR_RUNTIME_SIGNAL_WATCHER_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "runtime/internal/event.h"

namespace evactor {

class Loop;

class SignalWatcher : private internal::Event {
 public:
  using Callback = absl::AnyInvocable<void(int signo, int count)>;

  // `priority` -1: the loop's default.
  SignalWatcher(Loop& loop, int signo, Callback cb, int priority = -1);
  ~SignalWatcher() override;

  // Installs the process-wide handler if needed. InvalidArgument for a signal number
  // out of range or one that cannot be caught; the errno of sigaction() or eventfd()
  // otherwise. Idempotent.
  absl::Status Start();
  void Stop();  // idempotent

  int signo() const { return signo_; }
  bool started() const { return started_; }
  Loop& loop() const { return *loop_; }

 private:
  friend class Loop;
  void Fire(uint32_t bits) override;
  void OnTimeout() override {}

  Loop* loop_;
  int signo_;
  Callback cb_;
  bool started_ = false;
  int count_ = 0;  // arrivals not yet reported
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_SIGNAL_WATCHER_H_
