#include "runtime/signal_watcher.h"

#include <algorithm>
#include <utility>

#include "runtime/loop.h"

namespace evactor {

SignalWatcher::SignalWatcher(Loop& loop, int signo, Callback cb, int prio)
    : loop_(&loop), signo_(signo), cb_(std::move(cb)) {
  priority = static_cast<int16_t>(prio < 0 ? loop.default_priority()
                                           : std::min(prio, loop.priorities() - 1));
}

SignalWatcher::~SignalWatcher() { Stop(); }

absl::Status SignalWatcher::Start() {
  loop_->CheckOwner("SignalWatcher::Start");
  if (started_) return absl::OkStatus();
  absl::Status s = loop_->AddSignal(this);
  if (!s.ok()) return s;
  started_ = true;
  loop_->AddPending(1);
  return absl::OkStatus();
}

void SignalWatcher::Stop() {
  if (started_) {
    loop_->CheckOwner("SignalWatcher::Stop");
    loop_->RemoveSignal(this);
    started_ = false;
    loop_->AddPending(-1);
  }
  loop_->Deactivate(this);
  count_ = 0;
}

void SignalWatcher::Fire(uint32_t) {
  const int n = count_;
  count_ = 0;
  cb_(signo_, n);
}

}  // namespace evactor
