// evactor::SocketAddress — an IPv4, IPv6 or UNIX-domain socket address, parsed from
// and printed as text (libevent's evutil_parse_sockaddr_port and friends).
//
//   absl::StatusOr<SocketAddress> a = SocketAddress::Parse("127.0.0.1:11211");
//   absl::StatusOr<SocketAddress> b = SocketAddress::Parse("[::1]:8080");
//   absl::StatusOr<SocketAddress> c = SocketAddress::Parse("unix:/run/evactor.sock");
//   a->ToString();   // "127.0.0.1:11211"
//
// Text forms: "host:port" with a numeric IPv4 host, "[v6]:port" (a bare IPv6 literal
// without a port is accepted only by ParseHost), "unix:PATH" (abstract socket:
// "unix:@name"). Names are not resolved here (that is dns/): a name is an
// InvalidArgument error. Ports are 0..65535.
//
// Thread safety: a value type; const methods are safe from any thread.
#ifndef EVACTOR_IO_ADDRESS_H_
#define EVACTOR_IO_ADDRESS_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace evactor {

class SocketAddress {
 public:
  // An empty address (family AF_UNSPEC).
  SocketAddress() = default;

  // "host:port", "[v6]:port" or "unix:PATH".
  static absl::StatusOr<SocketAddress> Parse(std::string_view text);
  // A numeric IPv4 or IPv6 host (brackets optional) and a port.
  static absl::StatusOr<SocketAddress> ParseHost(std::string_view host, uint16_t port);
  // A UNIX-domain path ('@' first: Linux abstract namespace). InvalidArgument when it
  // does not fit sun_path.
  static absl::StatusOr<SocketAddress> Unix(std::string_view path);
  // 127.0.0.1:port / [::1]:port.
  static SocketAddress Loopback4(uint16_t port);
  static SocketAddress Loopback6(uint16_t port);
  // From a kernel-filled sockaddr (accept, getsockname); `len` as the kernel gave it.
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t len);
  // The local / peer address of a socket; the errno as a status.
  static absl::StatusOr<SocketAddress> LocalOf(int fd);
  static absl::StatusOr<SocketAddress> PeerOf(int fd);

  int family() const { return storage_.ss_family; }
  bool is_unix() const { return family() == AF_UNIX; }
  bool empty() const { return family() == AF_UNSPEC; }
  // 0 for UNIX addresses.
  uint16_t port() const;
  SocketAddress WithPort(uint16_t port) const;

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return len_; }

  // "1.2.3.4:80", "[::1]:80", "unix:/path", "unix:@abstract", "" when empty.
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace evactor

#endif  // EVACTOR_IO_ADDRESS_H_
