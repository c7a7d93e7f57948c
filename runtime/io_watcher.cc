#include "runtime/io_watcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/loop.h"

namespace evactor {

namespace {
int16_t ClampPriority(const Loop& loop, int priority) {
  if (priority < 0) return static_cast<int16_t>(loop.default_priority());
  return static_cast<int16_t>(std::min(priority, loop.priorities() - 1));
}
}  // namespace

IoWatcher::IoWatcher(Loop& loop, int fd, uint32_t events, Callback cb, IoOptions options)
    : loop_(&loop),
      fd_(fd),
      events_(events & kIoInterestMask),
      cb_(std::move(cb)),
      options_(std::move(options)) {
  priority = ClampPriority(loop, options_.priority);
}

IoWatcher::~IoWatcher() { Stop(); }

absl::Status IoWatcher::Start() { return Start(options_.timeout); }

absl::Status IoWatcher::Start(std::optional<absl::Duration> timeout) {
  loop_->CheckOwner("IoWatcher::Start");
  if (!started_) {
    if (!linked_) {
      if (fd_ < 0) return absl::InvalidArgumentError(absl::StrCat("bad fd ", fd_));
      if (events_ == 0) {
        return absl::InvalidArgumentError("IoWatcher needs kRead, kWrite or kClosed");
      }
      absl::Status s = loop_->AddIo(this);
      if (!s.ok()) return s;
    }
    // else: a one-shot re-armed before the loop dropped it: still registered.
    started_ = true;
    if (counts_as_pending_) loop_->AddPending(1);
  }
  if (timeout.has_value()) {
    timeout_ns_ = std::max<int64_t>(0, absl::ToInt64Nanoseconds(*timeout));
    loop_->AddTimeout(this, loop_->NowNanos() + timeout_ns_, timeout_ns_);
  } else {
    timeout_ns_ = -1;
    loop_->RemoveTimeout(this);
  }
  return absl::OkStatus();
}

void IoWatcher::Stop() {
  if (linked_) {
    loop_->CheckOwner("IoWatcher::Stop");
    loop_->RemoveIo(this);
  }
  if (started_) {
    started_ = false;
    if (counts_as_pending_) loop_->AddPending(-1);
  }
  loop_->RemoveTimeout(this);
  loop_->Deactivate(this);
}

void IoWatcher::RemoveTimeout() {
  loop_->CheckOwner("IoWatcher::RemoveTimeout");
  timeout_ns_ = -1;
  loop_->RemoveTimeout(this);
}

void IoWatcher::Activate(uint32_t bits) {
  loop_->CheckOwner("IoWatcher::Activate");
  loop_->Activate(this, bits | kActivated);
}

void IoWatcher::set_fd(int fd) {
  if (linked_) loop_->RemoveIo(this);
  fd_ = fd;
  bound_ = false;
}

void IoWatcher::set_events(uint32_t events) {
  if (linked_) loop_->RemoveIo(this);
  events_ = events & kIoInterestMask;
}

void IoWatcher::set_priority(int p) { priority = ClampPriority(*loop_, p); }

void IoWatcher::Fire(uint32_t bits) {
  if (!options_.persistent) {
    // One-shot: stopped before the callback, so the callback may start it again.
    // It stays in the fd table, disarmed, until the loop's next flush; a Start()
    // before then re-arms it without touching the table or the kernel.
    if (started_) {
      started_ = false;
      if (counts_as_pending_) loop_->AddPending(-1);
      if (linked_) loop_->DisarmIo(this);
    }
    loop_->RemoveTimeout(this);
  } else if (timeout_ns_ >= 0 && started_ && (bits & ~kTimeout) != 0) {
    // Readiness or activation restarts the timeout from now (libevent's rule).
    loop_->AddTimeout(this, loop_->NowNanos() + timeout_ns_, timeout_ns_);
  }
  cb_(bits);
}

void IoWatcher::OnTimeout() {
  if (options_.persistent && started_) {
    // From the previous deadline, keeping the cadence; if that is already past (the
    // loop stalled), from now: missed timeouts collapse into this one.
    int64_t next = deadline_ns + timeout_ns_;
    if (next <= loop_->NowNanos()) next = loop_->NowNanos() + timeout_ns_;
    loop_->AddTimeout(this, next, timeout_ns_);
  }
  loop_->Activate(this, kTimeout);
}

}  // namespace evactor
