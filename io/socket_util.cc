#include "io/socket_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace evactor {

absl::StatusOr<int> ListenSocket(const SocketAddress& address, const ListenSocketOptions& options) {
  if (address.empty()) return absl::InvalidArgumentError("listen on an empty address");
  const int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  const int one = 1;
  auto fail = [fd](const char* what) {
    const int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, what);
  };
  if (!address.is_unix()) {
    if (options.reuse_addr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
      return fail("setsockopt(SO_REUSEADDR)");
    }
    if (options.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      return fail("setsockopt(SO_REUSEPORT)");
    }
    if (address.family() == AF_INET6) {
      const int v6only = options.v6_only ? 1 : 0;
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
        return fail("setsockopt(IPV6_V6ONLY)");
      }
    }
  }
  if (bind(fd, address.sockaddr_ptr(), address.length()) < 0) {
    const int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("bind(", address.ToString(), ")"));
  }
  if (listen(fd, options.backlog) < 0) return fail("listen");
  return fd;
}

absl::Status SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return absl::ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

absl::Status SetNoDelay(int fd) {
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 && errno != EOPNOTSUPP &&
      errno != ENOPROTOOPT) {
    return absl::ErrnoToStatus(errno, "setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

}  // namespace evactor
