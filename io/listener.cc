#include "io/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace evactor {

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(Loop& loop, const SocketAddress& address,
                                                         AcceptCallback on_accept,
                                                         ListenerOptions options) {
  absl::StatusOr<int> fd = ListenSocket(address, options.socket);
  if (!fd.ok()) return fd.status();
  return Adopt(loop, *fd, std::move(on_accept), options);
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Adopt(Loop& loop, int listen_fd,
                                                          AcceptCallback on_accept,
                                                          ListenerOptions options) {
  if (absl::Status s = SetNonBlocking(listen_fd); !s.ok()) {
    close(listen_fd);
    return s;
  }
  std::unique_ptr<Listener> l(new Listener(loop, listen_fd, std::move(on_accept), options));
  if (absl::StatusOr<SocketAddress> local = SocketAddress::LocalOf(listen_fd); local.ok()) {
    l->local_ = *local;
  }
  l->spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (!options.start_disabled) {
    if (absl::Status s = l->Enable(); !s.ok()) return s;
  }
  return l;
}

Listener::Listener(Loop& loop, int fd, AcceptCallback cb, ListenerOptions options)
    : loop_(loop),
      fd_(fd),
      on_accept_(std::move(cb)),
      options_(options),
      watcher_(loop, fd, kRead, [this](uint32_t) { OnReadable(); }),
      retry_(loop, [this](uint32_t) {
        paused_ = false;
        ReopenSpare();
        if (enabled_) watcher_.Start().IgnoreError();
      }) {}

Listener::~Listener() {
  if (destroyed_ != nullptr) *destroyed_ = true;
  watcher_.Stop();
  retry_.Stop();
  if (spare_fd_ >= 0) close(spare_fd_);
  if (fd_ >= 0) close(fd_);
}

absl::Status Listener::Enable() {
  enabled_ = true;
  if (paused_) return absl::OkStatus();  // the retry timer re-enables
  return watcher_.Start();
}

void Listener::Disable() {
  enabled_ = false;
  watcher_.Stop();
}

int Listener::Release() {
  watcher_.Stop();
  retry_.Stop();
  return std::exchange(fd_, -1);
}

void Listener::ReopenSpare() {
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Listener::OnReadable() {
  bool destroyed = false;
  destroyed_ = &destroyed;
  AcceptBatch(destroyed);
  if (!destroyed) destroyed_ = nullptr;
}

void Listener::AcceptBatch(const bool& destroyed) {
  for (int i = 0; i < options_.max_accepts_per_wakeup; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE) return OnNoFds(err, destroyed);
      if (err != EAGAIN && on_error_) on_error_(absl::ErrnoToStatus(err, "accept"));
      return;
    }
    ++accepted_;
    on_accept_(fd, SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
    if (destroyed || !enabled_) return;  // destroyed or disabled by the callback
  }
}

void Listener::OnNoFds(int err, const bool& destroyed) {
  ++exhaustions_;
  if (spare_fd_ >= 0) {
    // Free our spare slot and take the waiting connection with it.
    close(spare_fd_);
    spare_fd_ = -1;
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ++accepted_;
      on_accept_(fd, SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
      if (destroyed) return;
    }
    ReopenSpare();
  }
  // Out of fds: stop polling the listener (it would be readable forever) and retry.
  paused_ = true;
  watcher_.Stop();
  retry_.Start(options_.emfile_retry);
  if (on_error_) on_error_(absl::ErrnoToStatus(err, "accept: out of file descriptors; paused"));
}

}  // namespace evactor
