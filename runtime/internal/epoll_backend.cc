#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/internal/backend.h"
#include "runtime/internal/errno_status.h"

namespace evactor::internal {
namespace {

uint32_t ToEpoll(uint32_t bits, bool edge) {
  uint32_t e = 0;
  if (bits & kRead) e |= EPOLLIN;
  if (bits & kWrite) e |= EPOLLOUT;
  if (bits & kClosed) e |= EPOLLRDHUP;
  if (edge) e |= EPOLLET;
  return e;
}

class EpollBackend final : public Backend {
 public:
  ~EpollBackend() override {
    if (epfd_ >= 0) close(epfd_);
  }

  absl::Status Open() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return ErrnoToStatus(errno, "epoll_create1");
    events_.resize(256);
    return absl::OkStatus();
  }

  BackendKind kind() const override { return BackendKind::kEpoll; }
  bool supports_edge() const override { return true; }
  bool supports_closed() const override { return true; }

  absl::Status Apply(int fd, uint32_t old_bits, uint32_t new_bits, bool edge) override {
    struct epoll_event ev = {};
    ev.data.fd = fd;
    if (new_bits == 0) {
      if (epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT &&
          errno != EBADF) {
        return ErrnoToStatus(errno, absl::StrCat("epoll_ctl(DEL, ", fd, ")"));
      }
      return absl::OkStatus();
    }
    ev.events = ToEpoll(new_bits, edge);
    int op = old_bits == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(epfd_, op, fd, &ev) == 0) return absl::OkStatus();
    // The loop's idea of the kernel's state can be stale when an fd was closed and
    // its number reused, or dup'ed: retry with the other operation.
    if (op == EPOLL_CTL_ADD && errno == EEXIST) {
      op = EPOLL_CTL_MOD;
    } else if (op == EPOLL_CTL_MOD && errno == ENOENT) {
      op = EPOLL_CTL_ADD;
    } else {
      return ErrnoToStatus(errno, absl::StrCat("epoll_ctl(fd ", fd, ")"));
    }
    if (epoll_ctl(epfd_, op, fd, &ev) == 0) return absl::OkStatus();
    return ErrnoToStatus(errno, absl::StrCat("epoll_ctl(fd ", fd, ")"));
  }

  absl::Status Poll(int64_t timeout_ns,
                    absl::FunctionRef<void(int, uint32_t)> ready) override {
    const int n = epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()),
                             TimeoutMillis(timeout_ns));
    if (n < 0) {
      if (errno == EINTR) return absl::OkStatus();
      return ErrnoToStatus(errno, "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const uint32_t e = events_[i].events;
      uint32_t bits = 0;
      if (e & (EPOLLHUP | EPOLLERR)) {
        bits = kRead | kWrite | kClosed;
      } else {
        if (e & EPOLLIN) bits |= kRead;
        if (e & EPOLLOUT) bits |= kWrite;
        if (e & EPOLLRDHUP) bits |= kClosed | kRead;
      }
      ready(events_[i].data.fd, bits);
    }
    // A full batch suggests more are waiting: take more next time.
    if (n == static_cast<int>(events_.size()) && events_.size() < 65536) {
      events_.resize(events_.size() * 2);
    }
    return absl::OkStatus();
  }

  absl::Status Reinit() override {
    if (epfd_ >= 0) close(epfd_);
    epfd_ = -1;
    return Open();
  }

 private:
  int epfd_ = -1;
  std::vector<struct epoll_event> events_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewEpollBackend() {
  auto b = std::make_unique<EpollBackend>();
  absl::Status s = b->Open();
  if (!s.ok()) return s;
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace evactor::internal
