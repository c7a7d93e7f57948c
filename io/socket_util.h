// Small socket helpers shared by io/: creating listening sockets, non-blocking mode.
//
// Thread safety: plain functions on fds; no shared state.
#ifndef EVACTOR_IO_SOCKET_UTIL_H_
#define EVACTOR_IO_SOCKET_UTIL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/address.h"

namespace evactor {

struct ListenSocketOptions {
  int backlog = 1024;
  bool reuse_addr = true;
  // SO_REUSEPORT: several sockets (one per shard) on one port; the kernel spreads
  // connections across them.
  bool reuse_port = false;
  // IPV6_V6ONLY for IPv6 addresses.
  bool v6_only = false;
};

// socket + options + bind + listen, non-blocking and close-on-exec. For UNIX paths a
// stale socket file is not removed (that is the caller's policy). Returns the fd
// (the caller owns it) or the errno of the failing call.
absl::StatusOr<int> ListenSocket(const SocketAddress& address, const ListenSocketOptions& options);

absl::Status SetNonBlocking(int fd);
// TCP_NODELAY on; a no-op (OK) for non-TCP sockets.
absl::Status SetNoDelay(int fd);

}  // namespace evactor

#endif  // EVACTOR_IO_SOCKET_UTIL_H_
