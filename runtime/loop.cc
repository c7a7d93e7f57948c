#include "runtime/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/internal/backend.h"
#include "runtime/internal/clock.h"
#include "runtime/internal/errno_status.h"
#include "runtime/internal/fd_table.h"
#include "runtime/internal/signal_hub.h"
#include "runtime/internal/timer_heap.h"
#include "runtime/io_watcher.h"
#include "runtime/signal_watcher.h"
#include "runtime/timer.h"

namespace evactor {

using internal::Event;

std::string_view BackendName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kEpoll:
      return "epoll";
    case BackendKind::kPoll:
      return "poll";
    case BackendKind::kSelect:
      return "select";
  }
  return "unknown";
}

// Ends Run() when its deadline passes (Exit(after)).
class Loop::ExitEvent final : public Event {
 public:
  explicit ExitEvent(Loop* loop) : loop_(loop) {}
  void Fire(uint32_t) override {}
  void OnTimeout() override { loop_->got_exit_ = true; }

 private:
  Loop* loop_;
};

// A once-call (RunInLoop, Once): owned by the loop in an intrusive list until it
// runs; freed without running when the loop goes first.
class Loop::OnceEvent final : public Event {
 public:
  OnceEvent(Loop* loop, absl::AnyInvocable<void(uint32_t)> fn) : loop_(loop), fn_(std::move(fn)) {}
  ~OnceEvent() override {
    io_.reset();
    timer_.reset();
    loop_->Deactivate(this);
  }
  void Fire(uint32_t bits) override {
    auto fn = std::move(fn_);
    loop_->DestroyOnce(this);  // `this` is gone from here on
    fn(bits);
  }
  void OnTimeout() override {}

  Loop* loop_;
  absl::AnyInvocable<void(uint32_t)> fn_;
  std::unique_ptr<IoWatcher> io_;
  std::unique_ptr<Timer> timer_;
  OnceEvent* next_ = nullptr;
  OnceEvent* prev_ = nullptr;
};

namespace {

absl::StatusOr<BackendKind> ChooseBackend(const LoopOptions& options) {
  if (options.backend.has_value()) return *options.backend;
  if (!options.ignore_env) {
    if (const char* want = getenv("EVACTOR_BACKEND"); want != nullptr && *want != '\0') {
      const std::string_view w(want);
      if (w == "epoll") return BackendKind::kEpoll;
      if (w == "poll") return BackendKind::kPoll;
      if (w == "select") return BackendKind::kSelect;
      return absl::InvalidArgumentError(
          absl::StrCat("EVACTOR_BACKEND=", want, ": expected epoll, poll or select"));
    }
  }
  struct Candidate {
    BackendKind kind;
    const char* off_switch;
  };
  for (const Candidate& c : {Candidate{BackendKind::kEpoll, "EVACTOR_NOEPOLL"},
                             Candidate{BackendKind::kPoll, "EVACTOR_NOPOLL"},
                             Candidate{BackendKind::kSelect, "EVACTOR_NOSELECT"}}) {
    if (!options.ignore_env && getenv(c.off_switch) != nullptr) continue;
    return c.kind;
  }
  return absl::FailedPreconditionError(
      "every backend is switched off by EVACTOR_NOEPOLL/NOPOLL/NOSELECT");
}

absl::StatusOr<std::unique_ptr<internal::Backend>> NewBackend(BackendKind kind) {
  switch (kind) {
    case BackendKind::kEpoll:
      return internal::NewEpollBackend();
    case BackendKind::kPoll:
      return internal::NewPollBackend();
    case BackendKind::kSelect:
      return internal::NewSelectBackend();
  }
  return absl::InvalidArgumentError("unknown backend");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Loop>> Loop::Create(LoopOptions options) {
  if (options.priorities < 1 || options.priorities > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("priorities must be 1..256, not ", options.priorities));
  }
  if (options.max_dispatch_callbacks < 0 || options.max_dispatch_interval < absl::ZeroDuration() ||
      options.dispatch_limit_min_priority < 0) {
    return absl::InvalidArgumentError(
        "max_dispatch_callbacks, max_dispatch_interval and dispatch_limit_min_priority "
        "must not be negative");
  }
  absl::StatusOr<BackendKind> kind = ChooseBackend(options);
  if (!kind.ok()) return kind.status();
  std::unique_ptr<Loop> loop(new Loop(options));
  absl::Status s = loop->Init(*kind);
  if (!s.ok()) return s;
  return loop;
}

Loop::Loop(const LoopOptions& options)
    : options_(options),
      priorities_(options.priorities),
      owner_(std::this_thread::get_id()),
      active_(options.priorities) {}

absl::Status Loop::Init(BackendKind kind) {
  absl::StatusOr<std::unique_ptr<internal::Backend>> backend = NewBackend(kind);
  if (!backend.ok()) return backend.status();
  backend_ = *std::move(backend);
  backend_kind_ = kind;
  timers_ = std::make_unique<internal::TimerHeap>();
  fds_ = std::make_unique<internal::FdTable>(backend_.get());
  exit_event_ = std::make_unique<ExitEvent>(this);
  now_ns_ = internal::MonotonicNanos();
  return absl::OkStatus();
}

Loop::~Loop() {
  CheckOwner("~Loop");
  while (onces_ != nullptr) DestroyOnce(onces_);
  RemoveTimeout(exit_event_.get());
  if (signal_io_ != nullptr) signal_io_.reset();
  if (signal_slot_ >= 0) internal::SignalHub::ReleaseSlot(signal_slot_);
  if (signal_fd_ >= 0) close(signal_fd_);
}

void Loop::OwnerViolation(const char* what) const {
  fprintf(stderr,
          "evactor: %s called on a Loop from a thread that does not own it; a loop and "
          "its handles belong to one thread (see runtime/loop.h)\n",
          what);
  abort();
}

void Loop::AttachToCurrentThread() {
  owner_ = std::this_thread::get_id();
}

void Loop::UpdateTime() { now_ns_ = internal::MonotonicNanos(); }

int64_t Loop::pending_count() const {
  return pending_ + timers_->size() + active_count_ + static_cast<int64_t>(deferred_.size());
}

bool Loop::HasEvents() const {
  return pending_ > 0 || timers_->size() > 0 || active_count_ > 0 || !deferred_.empty() ||
         (hooks_ != nullptr && hooks_->HasWork());
}

absl::StatusOr<RunResult> Loop::Run() { return RunImpl(false, false); }
absl::StatusOr<RunResult> Loop::RunOnce() { return RunImpl(true, false); }
absl::StatusOr<RunResult> Loop::RunNonBlocking() { return RunImpl(true, true); }

absl::StatusOr<RunResult> Loop::RunImpl(bool once, bool nonblock) {
  CheckOwner("Loop::Run");
  if (running_) {
    return absl::FailedPreconditionError("Loop::Run called while the loop is already running");
  }
  running_ = true;
  got_exit_ = false;
  got_break_ = false;
  absl::StatusOr<RunResult> result = RunResult::kDone;
  UpdateTime();
  while (true) {
    if (!options_.run_forever && !HasEvents()) {
      // Tell the kernel about watchers stopped last, so nothing stays registered.
      metrics_.backend_changes.Add(fds_->Flush());
      result = RunResult::kNoEvents;
      break;
    }
    int64_t timeout_ns = -1;
    if (nonblock || active_count_ > 0 || !deferred_.empty() || extension_pending_) {
      timeout_ns = 0;
    } else if (const int64_t next = timers_->NextDeadline(); next >= 0) {
      timeout_ns = std::max<int64_t>(0, next - now_ns_);
    }
    if (hooks_ != nullptr && hooks_->BeforePoll(timeout_ns != 0)) timeout_ns = 0;
    if (timeout_ns != 0) metrics_.sleeps.Add();
    metrics_.backend_changes.Add(fds_->Flush());
    absl::Status s =
        backend_->Poll(timeout_ns, [this](int fd, uint32_t bits) { DispatchIo(fd, bits); });
    if (!s.ok()) {
      result = s;
      break;
    }
    UpdateTime();
    woke_ns_ = now_ns_;
    if (hooks_ != nullptr) hooks_->AfterPoll();
    ExpireTimeouts();
    metrics_.iterations.Add();
    ProcessActive();
    RunDeferred();
    if (!extensions_.empty()) extension_pending_ = RunExtensions();
    metrics_.busy_ns.Record(internal::MonotonicNanos() - woke_ns_);
    if (got_break_) {
      result = RunResult::kBreak;
      break;
    }
    if (got_exit_) {
      result = RunResult::kExit;
      break;
    }
    if (once) break;
  }
  running_ = false;
  return result;
}

int Loop::NewExtensionSlot() {
  static std::atomic<int> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

LoopExtension* Loop::SetExtension(int slot, std::unique_ptr<LoopExtension> extension) {
  CheckOwner("Loop::SetExtension");
  if (slot < 0) return nullptr;
  if (static_cast<size_t>(slot) >= extensions_.size()) extensions_.resize(slot + 1);
  extensions_[slot] = std::move(extension);
  return extensions_[slot].get();
}

bool Loop::RunExtensions() {
  bool pending = false;
  // By index: an extension's callbacks may install another extension.
  for (size_t i = 0; i < extensions_.size(); ++i) {
    if (extensions_[i] != nullptr && extensions_[i]->EndOfIteration()) pending = true;
  }
  return pending;
}

void Loop::Exit(absl::Duration after) {
  CheckOwner("Loop::Exit");
  if (running_ && after <= absl::ZeroDuration()) {
    got_exit_ = true;
    return;
  }
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(after));
  AddTimeout(exit_event_.get(), now_ns_ + ns, ns);
}

void Loop::Break() {
  CheckOwner("Loop::Break");
  got_break_ = true;
}

// ---- Active queues -----------------------------------------------------------

void Loop::Activate(Event* ev, uint32_t bits) {
  if (ev->in_active) {
    ev->result |= bits;
    return;
  }
  const int p = ev->priority;
  ev->result = bits;
  ev->in_active = true;
  ev->active_priority = static_cast<int16_t>(p);
  ev->active_next = nullptr;
  ActiveQueue& q = active_[p];
  ev->active_prev = q.tail;
  if (q.tail != nullptr) {
    q.tail->active_next = ev;
  } else {
    q.head = ev;
  }
  q.tail = ev;
  ++active_count_;
  // libevent's event_continue: a more urgent event preempts the queue being run.
  if (p < running_priority_) preempt_ = true;
}

void Loop::DeactivateSlow(Event* ev) {
  ActiveQueue& q = active_[ev->active_priority];
  if (ev->active_prev != nullptr) {
    ev->active_prev->active_next = ev->active_next;
  } else {
    q.head = ev->active_next;
  }
  if (ev->active_next != nullptr) {
    ev->active_next->active_prev = ev->active_prev;
  } else {
    q.tail = ev->active_prev;
  }
  ev->active_next = ev->active_prev = nullptr;
  ev->in_active = false;
  ev->result = 0;
  --active_count_;
}

void Loop::ProcessActive() {
  if (active_count_ == 0) return;
  for (int p = 0; p < priorities_; ++p) {
    ActiveQueue& q = active_[p];
    if (q.head == nullptr) continue;
    // Run this queue only, then poll again: lower priorities wait (libevent's rule;
    // starvation by busier urgent events is allowed).
    running_priority_ = p;
    preempt_ = false;
    const bool limited = p >= options_.dispatch_limit_min_priority;
    const int max_callbacks = limited ? options_.max_dispatch_callbacks : 0;
    const int64_t max_ns =
        limited ? absl::ToInt64Nanoseconds(options_.max_dispatch_interval) : int64_t{0};
    const int64_t started_ns = max_ns > 0 ? internal::MonotonicNanos() : 0;
    int ran = 0;
    while (q.head != nullptr) {
      Event* ev = q.head;
      const uint32_t bits = ev->result;
      if (ev->active_next == nullptr) {
        // The last one of the pass waited longest since the backend returned.
        metrics_.poll_delay_ns.Record(internal::MonotonicNanos() - woke_ns_);
      }
      Deactivate(ev);
      metrics_.callbacks.Add();
      ev->Fire(bits);  // may destroy ev
      if (got_break_ || preempt_) break;
      if (max_callbacks > 0 && ++ran >= max_callbacks) break;
      if (max_ns > 0 && internal::MonotonicNanos() - started_ns >= max_ns) break;
    }
    running_priority_ = -1;
    return;
  }
}

void Loop::RunDeferred() {
  if (deferred_.empty()) return;
  std::vector<Callback> now;
  now.swap(deferred_);
  for (Callback& fn : now) {
    metrics_.callbacks.Add();
    fn();
  }
}

void Loop::RunInLoop(Callback fn) {
  CheckOwner("Loop::RunInLoop");
  auto* once = new OnceEvent(this, [fn = std::move(fn)](uint32_t) mutable { fn(); });
  once->priority = static_cast<int16_t>(default_priority());
  once->next_ = onces_;
  if (onces_ != nullptr) onces_->prev_ = once;
  onces_ = once;
  Activate(once, kActivated);
}

absl::Status Loop::Once(int fd, uint32_t events, std::optional<absl::Duration> timeout,
                        absl::AnyInvocable<void(uint32_t)> fn) {
  CheckOwner("Loop::Once");
  if (fd < 0 && !timeout.has_value()) {
    return absl::InvalidArgumentError("Loop::Once needs an fd or a timeout");
  }
  auto once = std::make_unique<OnceEvent>(this, std::move(fn));
  OnceEvent* raw = once.get();
  if (fd >= 0) {
    raw->io_ = std::make_unique<IoWatcher>(
        *this, fd, events, [raw](uint32_t bits) { raw->Fire(bits); },
        IoOptions{.persistent = false, .timeout = timeout});
    absl::Status s = raw->io_->Start();
    if (!s.ok()) return s;
  } else {
    raw->timer_ = std::make_unique<Timer>(*this, [raw](uint32_t bits) { raw->Fire(bits); });
    raw->timer_->Start(*timeout);
  }
  once.release();
  raw->next_ = onces_;
  if (onces_ != nullptr) onces_->prev_ = raw;
  onces_ = raw;
  return absl::OkStatus();
}

void Loop::DestroyOnce(OnceEvent* once) {
  if (once->prev_ != nullptr) {
    once->prev_->next_ = once->next_;
  } else {
    onces_ = once->next_;
  }
  if (once->next_ != nullptr) once->next_->prev_ = once->prev_;
  delete once;
}

void Loop::Defer(Callback fn) {
  CheckOwner("Loop::Defer");
  deferred_.push_back(std::move(fn));
}

// ---- Timeouts ----------------------------------------------------------------

void Loop::AddTimeout(Event* ev, int64_t deadline_ns, int64_t duration_ns) {
  timers_->Remove(ev);
  timers_->Add(ev, deadline_ns, duration_ns);
}

void Loop::RemoveTimeoutSlow(Event* ev) { timers_->Remove(ev); }

void Loop::ExpireTimeouts() {
  // Events re-armed while expiring (persistent timeouts of 0) wait for the next pass.
  const uint64_t limit = timers_->next_seq();
  while (Event* ev = timers_->PopExpired(now_ns_, limit)) {
    metrics_.timer_late_ns.Record(now_ns_ - ev->deadline_ns);
    ev->OnTimeout();
  }
}

absl::Status Loop::UseCommonTimeout(absl::Duration duration) {
  CheckOwner("Loop::UseCommonTimeout");
  return timers_->AddCommonDuration(absl::ToInt64Nanoseconds(duration));
}

// ---- I/O ---------------------------------------------------------------------

absl::Status Loop::AddIo(IoWatcher* w) { return fds_->Add(w); }

void Loop::RemoveIo(IoWatcher* w) { fds_->Remove(w); }

void Loop::DisarmIo(IoWatcher* w) { fds_->Disarm(w); }

void Loop::DispatchIo(int fd, uint32_t bits) {
  IoWatcher* w = fds_->Watchers(fd);
  if (w == nullptr) {
    fds_->DropStale(fd);
    return;
  }
  for (; w != nullptr; w = w->fd_next_) {
    const uint32_t mine = bits & w->events_;
    if (mine != 0 && w->started_) Activate(w, mine);
  }
}

absl::Status Loop::ReinitAfterFork() {
  CheckOwner("Loop::ReinitAfterFork");
  absl::Status s = backend_->Reinit();
  if (!s.ok()) return s;
  if (signal_fd_ >= 0) {
    // The eventfd is shared with the parent: the child needs its own.
    const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return internal::ErrnoToStatus(errno, "eventfd");
    signal_io_->Stop();
    internal::SignalHub::SetWakeFd(signal_slot_, fd);
    close(signal_fd_);
    signal_fd_ = fd;
    signal_io_->set_fd(fd);
    s = signal_io_->Start();
    if (!s.ok()) return s;
  }
  for (auto& ext : extensions_) {
    if (ext != nullptr) ext->AfterFork();
  }
  return fds_->ReapplyAll();
}

// ---- Signals -----------------------------------------------------------------

absl::Status Loop::AddSignal(SignalWatcher* w) {
  if (signal_slot_ < 0) {
    const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return internal::ErrnoToStatus(errno, "eventfd");
    absl::StatusOr<int> slot = internal::SignalHub::AcquireSlot(fd);
    if (!slot.ok()) {
      close(fd);
      return slot.status();
    }
    auto io = std::make_unique<IoWatcher>(*this, fd, kRead, [this](uint32_t) { DrainSignals(); },
                                          IoOptions{.priority = 0});
    io->set_keeps_loop_alive(false);
    absl::Status s = io->Start();
    if (!s.ok()) {
      internal::SignalHub::ReleaseSlot(*slot);
      close(fd);
      return s;
    }
    signal_fd_ = fd;
    signal_slot_ = *slot;
    signal_io_ = std::move(io);
    signal_watchers_.resize(NSIG);
  }
  const int signo = w->signo_;
  if (signo <= 0 || signo >= NSIG) {
    return absl::InvalidArgumentError(absl::StrCat("signal ", signo, " is out of range"));
  }
  if (signal_watchers_[signo].empty()) {
    absl::Status s = internal::SignalHub::Watch(signal_slot_, signo);
    if (!s.ok()) return s;
  }
  signal_watchers_[signo].push_back(w);
  return absl::OkStatus();
}

void Loop::RemoveSignal(SignalWatcher* w) {
  auto& list = signal_watchers_[w->signo_];
  list.erase(std::find(list.begin(), list.end(), w));
  if (list.empty()) internal::SignalHub::Unwatch(signal_slot_, w->signo_);
}

void Loop::DrainSignals() {
  uint64_t value;
  while (read(signal_fd_, &value, sizeof value) > 0) {
  }
  for (int signo = 1; signo < static_cast<int>(signal_watchers_.size()); ++signo) {
    auto& list = signal_watchers_[signo];
    if (list.empty()) continue;
    const uint32_t n = internal::SignalHub::Take(signal_slot_, signo);
    if (n == 0) continue;
    for (SignalWatcher* w : list) {
      w->count_ += static_cast<int>(n);
      Activate(w, kSignal);
    }
  }
}

}  // namespace evactor
