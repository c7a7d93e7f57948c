// evactor::test::Notification — a one-shot signal between threads for tests, built on
// std::mutex and std::condition_variable so that ThreadSanitizer sees the
// synchronisation (Debian's Abseil is not TSan-instrumented: absl::Notification would
// hide from TSan the very ordering a test relies on, and with it a real race).
#ifndef EVACTOR_TESTS_RUNTIME_NOTIFICATION_H_
#define EVACTOR_TESTS_RUNTIME_NOTIFICATION_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/time/time.h"

namespace evactor::test {

class Notification {
 public:
  // Any thread; at most once.
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  bool HasBeenNotified() const {
    std::lock_guard<std::mutex> lock(mu_);
    return notified_;
  }
  void WaitForNotification() const {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return notified_; });
  }
  // True when notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout)),
                        [this] { return notified_; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool notified_ = false;
};

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_RUNTIME_NOTIFICATION_H_
