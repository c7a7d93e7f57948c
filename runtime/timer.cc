#include "runtime/timer.h"

#include <algorithm>
#include <utility>

#include "runtime/loop.h"

namespace evactor {

Timer::Timer(Loop& loop, Callback cb, int prio) : loop_(&loop), cb_(std::move(cb)) {
  set_priority(prio);
}

Timer::~Timer() { Stop(); }

void Timer::Start(absl::Duration after) {
  loop_->CheckOwner("Timer::Start");
  interval_ns_ = 0;
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(after));
  loop_->AddTimeout(this, loop_->NowNanos() + ns, ns);
}

void Timer::StartPeriodic(absl::Duration interval) {
  loop_->CheckOwner("Timer::StartPeriodic");
  interval_ns_ = std::max<int64_t>(1, absl::ToInt64Nanoseconds(interval));
  loop_->AddTimeout(this, loop_->NowNanos() + interval_ns_, interval_ns_);
}

void Timer::Stop() {
  loop_->RemoveTimeout(this);
  loop_->Deactivate(this);
  interval_ns_ = 0;
}

void Timer::Activate(uint32_t bits) {
  loop_->CheckOwner("Timer::Activate");
  loop_->Activate(this, bits | kActivated);
}

void Timer::set_priority(int prio) {
  if (prio < 0) {
    priority = static_cast<int16_t>(loop_->default_priority());
  } else {
    priority = static_cast<int16_t>(std::min(prio, loop_->priorities() - 1));
  }
}

void Timer::Fire(uint32_t bits) {
  if (interval_ns_ > 0 && (bits & kTimeout) == 0) {
    // Activated by hand: the period restarts from now (libevent's
    // persistent_active_timeout rule).
    loop_->AddTimeout(this, loop_->NowNanos() + interval_ns_, interval_ns_);
  }
  cb_(bits);
}

void Timer::OnTimeout() {
  if (interval_ns_ > 0) {
    int64_t next = deadline_ns + interval_ns_;
    if (next <= loop_->NowNanos()) next = loop_->NowNanos() + interval_ns_;
    loop_->AddTimeout(this, next, interval_ns_);
  }
  loop_->Activate(this, kTimeout);
}

}  // namespace evactor
