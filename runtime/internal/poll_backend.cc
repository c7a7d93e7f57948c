#include <errno.h>
#include <fcntl.h>
#include <poll.h>

#include <vector>

#include "absl/status/status.h"
#include "runtime/internal/backend.h"
#include "runtime/internal/errno_status.h"

namespace evactor::internal {
namespace {

short ToPoll(uint32_t bits) {
  short e = 0;
  if (bits & kRead) e |= POLLIN;
  if (bits & kWrite) e |= POLLOUT;
  if (bits & kClosed) e |= POLLRDHUP;
  return e;
}

// One pollfd per registered fd, kept dense: removal moves the last entry into the
// hole, and index_[fd] says where each fd lives.
class PollBackend final : public Backend {
 public:
  BackendKind kind() const override { return BackendKind::kPoll; }
  bool supports_edge() const override { return false; }
  bool supports_closed() const override { return true; }

  absl::Status Apply(int fd, uint32_t old_bits, uint32_t new_bits, bool) override {
    // poll() reports a bad fd only as POLLNVAL later; say so now instead.
    if (old_bits == 0 && new_bits != 0 && fcntl(fd, F_GETFD) < 0) {
      return ErrnoToStatus(errno, "poll: fd");
    }
    if (fd >= static_cast<int>(index_.size())) index_.resize(fd + 1, -1);
    int& at = index_[fd];
    if (new_bits == 0) {
      if (at >= 0) {
        const int last = static_cast<int>(fds_.size()) - 1;
        if (at != last) {
          fds_[at] = fds_[last];
          index_[fds_[at].fd] = at;
        }
        fds_.pop_back();
        at = -1;
      }
      return absl::OkStatus();
    }
    if (at < 0) {
      at = static_cast<int>(fds_.size());
      fds_.push_back(pollfd{fd, 0, 0});
    }
    fds_[at].events = ToPoll(new_bits);
    return absl::OkStatus();
  }

  absl::Status Poll(int64_t timeout_ns,
                    absl::FunctionRef<void(int, uint32_t)> ready) override {
    const int n = poll(fds_.data(), fds_.size(), TimeoutMillis(timeout_ns));
    if (n < 0) {
      if (errno == EINTR) return absl::OkStatus();
      return ErrnoToStatus(errno, "poll");
    }
    int left = n;
    for (size_t i = 0; i < fds_.size() && left > 0; ++i) {
      const short r = fds_[i].revents;
      if (r == 0) continue;
      --left;
      uint32_t bits = 0;
      if (r & (POLLHUP | POLLERR | POLLNVAL)) {
        bits = kRead | kWrite | kClosed;
      } else {
        if (r & POLLIN) bits |= kRead;
        if (r & POLLOUT) bits |= kWrite;
        if (r & POLLRDHUP) bits |= kClosed | kRead;
      }
      ready(fds_[i].fd, bits);
    }
    return absl::OkStatus();
  }

  absl::Status Reinit() override { return absl::OkStatus(); }

 private:
  std::vector<pollfd> fds_;
  std::vector<int> index_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewPollBackend() {
  return std::unique_ptr<Backend>(std::make_unique<PollBackend>());
}

}  // namespace evactor::internal
