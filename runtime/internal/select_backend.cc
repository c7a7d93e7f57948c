#include <errno.h>
#include <fcntl.h>
#include <sys/select.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/internal/backend.h"
#include "runtime/internal/errno_status.h"

namespace evactor::internal {
namespace {

class SelectBackend final : public Backend {
 public:
  SelectBackend() {
    FD_ZERO(&read_);
    FD_ZERO(&write_);
  }

  BackendKind kind() const override { return BackendKind::kSelect; }
  bool supports_edge() const override { return false; }
  bool supports_closed() const override { return false; }

  absl::Status Apply(int fd, uint32_t, uint32_t new_bits, bool) override {
    if (fd < 0 || fd >= FD_SETSIZE) {
      return absl::OutOfRangeError(absl::StrCat("fd ", fd, " does not fit select's FD_SETSIZE (",
                                                FD_SETSIZE, "); use the epoll or poll backend"));
    }
    if (new_bits != 0 && fcntl(fd, F_GETFD) < 0) return ErrnoToStatus(errno, "select: fd");
    if (new_bits & kRead) {
      FD_SET(fd, &read_);
    } else {
      FD_CLR(fd, &read_);
    }
    if (new_bits & kWrite) {
      FD_SET(fd, &write_);
    } else {
      FD_CLR(fd, &write_);
    }
    if (new_bits != 0 && fd >= max_fd_) max_fd_ = fd + 1;
    while (max_fd_ > 0 && !FD_ISSET(max_fd_ - 1, &read_) && !FD_ISSET(max_fd_ - 1, &write_)) {
      --max_fd_;
    }
    return absl::OkStatus();
  }

  absl::Status Poll(int64_t timeout_ns,
                    absl::FunctionRef<void(int, uint32_t)> ready) override {
    fd_set r = read_;
    fd_set w = write_;
    struct timeval tv;
    struct timeval* tvp = nullptr;
    if (timeout_ns >= 0) {
      const int64_t us = (timeout_ns + 999) / 1000;
      tv.tv_sec = us / 1000000;
      tv.tv_usec = us % 1000000;
      tvp = &tv;
    }
    const int n = select(max_fd_, &r, &w, nullptr, tvp);
    if (n < 0) {
      if (errno == EINTR) return absl::OkStatus();
      if (errno == EBADF) {
        // A registered fd was closed. Report the closed ones as ready so that their
        // owners notice and stop watching; the others are polled next time.
        for (int fd = 0; fd < max_fd_; ++fd) {
          if ((FD_ISSET(fd, &read_) || FD_ISSET(fd, &write_)) && fcntl(fd, F_GETFD) < 0) {
            ready(fd, kRead | kWrite);
          }
        }
        return absl::OkStatus();
      }
      return ErrnoToStatus(errno, "select");
    }
    int left = n;
    for (int fd = 0; fd < max_fd_ && left > 0; ++fd) {
      uint32_t bits = 0;
      if (FD_ISSET(fd, &r)) bits |= kRead;
      if (FD_ISSET(fd, &w)) bits |= kWrite;
      if (bits == 0) continue;
      left -= (bits == (kRead | kWrite)) ? 2 : 1;
      ready(fd, bits);
    }
    return absl::OkStatus();
  }

  absl::Status Reinit() override { return absl::OkStatus(); }

 private:
  fd_set read_;
  fd_set write_;
  int max_fd_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewSelectBackend() {
  return std::unique_ptr<Backend>(std::make_unique<SelectBackend>());
}

}  // namespace evactor::internal
