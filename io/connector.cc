#include "io/connector.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace evactor {

absl::StatusOr<std::unique_ptr<Connector>> Connector::Connect(Loop& loop,
                                                             const SocketAddress& address,
                                                             absl::Duration timeout, Callback cb) {
  if (address.empty()) return absl::InvalidArgumentError("connect to an empty address");
  std::unique_ptr<Connector> c(new Connector(loop, address, std::move(cb)));
  c->fd_ = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
  int rc;
  do {
    rc = connect(c->fd_, address.sockaddr_ptr(), address.length());
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    // Reported from the loop, like every other outcome: exactly once, never inside
    // Connect (libevent's connect-failure rule).
    c->early_errno_ = errno;
  }
  Connector* raw = c.get();
  // Writable means connected or failed (the error is in SO_ERROR). An immediate
  // success or failure is writable at once, which also defers its report to the loop.
  c->watcher_ = std::make_unique<IoWatcher>(
      loop, c->fd_, kWrite, [raw](uint32_t bits) { raw->OnEvent(bits); },
      IoOptions{.persistent = false, .timeout = timeout});
  if (absl::Status s = c->watcher_->Start(); !s.ok()) return s;
  return c;
}

Connector::Connector(Loop& loop, const SocketAddress& address, Callback cb)
    : loop_(loop), address_(address), cb_(std::move(cb)) {}

Connector::~Connector() {
  watcher_.reset();
  if (fd_ >= 0) close(fd_);
}

void Connector::OnEvent(uint32_t bits) {
  if (early_errno_ != 0) {
    error_ = early_errno_;
    return Finish(absl::ErrnoToStatus(early_errno_,
                                      absl::StrCat("connect(", address_.ToString(), ")")));
  }
  if (bits & kTimeout) {
    error_ = ETIMEDOUT;
    return Finish(absl::DeadlineExceededError(
        absl::StrCat("connect(", address_.ToString(), "): timed out")));
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) {
    error_ = err;
    return Finish(absl::ErrnoToStatus(err, absl::StrCat("connect(", address_.ToString(), ")")));
  }
  Finish(std::exchange(fd_, -1));
}

void Connector::Finish(absl::StatusOr<int> result) {
  if (!result.ok() && fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  Callback cb = std::move(cb_);
  cb_ = nullptr;
  cb(std::move(result));  // may destroy this Connector
}

}  // namespace evactor
