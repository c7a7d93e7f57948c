#include "io/address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace evactor {

namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::StatusOr<uint16_t> ParsePort(std::string_view text) {
  uint32_t port = 0;
  if (text.empty() || text.size() > 5 || !absl::SimpleAtoi(AbslView(text), &port) ||
      port > 65535 || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad port \"", AbslView(text), "\" (expected 0..65535)"));
  }
  return static_cast<uint16_t>(port);
}

}  // namespace

absl::StatusOr<SocketAddress> SocketAddress::ParseHost(std::string_view host, uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string h(host);
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", h, "\" is not a numeric IPv4 or IPv6 address (names are resolved by dns/)"));
}

absl::StatusOr<SocketAddress> SocketAddress::Unix(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty() || path.size() >= sizeof(un->sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("UNIX socket path must be 1..",
                                                   sizeof(un->sun_path) - 1, " bytes"));
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    un->sun_path[0] = '\0';  // abstract namespace: no terminating NUL in the length
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(std::string_view text) {
  if (text.substr(0, 5) == "unix:") return Unix(text.substr(5));
  size_t colon;
  std::string_view host;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address \"", AbslView(text), "\" (expected [v6]:port)"));
    }
    host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address \"", AbslView(text), "\" (expected host:port, [v6]:port or unix:PATH)"));
    }
    host = text.substr(0, colon);
  }
  absl::StatusOr<uint16_t> port = ParsePort(text.substr(colon + 1));
  if (!port.ok()) return port.status();
  return ParseHost(host, *port);
}

SocketAddress SocketAddress::Loopback4(uint16_t port) {
  return *ParseHost("127.0.0.1", port);
}

SocketAddress SocketAddress::Loopback6(uint16_t port) { return *ParseHost("::1", port); }

SocketAddress SocketAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (len > sizeof(a.storage_)) len = sizeof(a.storage_);
  std::memcpy(&a.storage_, sa, len);
  a.len_ = len;
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::LocalOf(int fd) {
  SocketAddress a;
  a.len_ = sizeof(a.storage_);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage_), &a.len_) < 0) {
    return absl::ErrnoToStatus(errno, "getsockname");
  }
  return a;
}

absl::StatusOr<SocketAddress> SocketAddress::PeerOf(int fd) {
  SocketAddress a;
  a.len_ = sizeof(a.storage_);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage_), &a.len_) < 0) {
    return absl::ErrnoToStatus(errno, "getpeername");
  }
  return a;
}

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

SocketAddress SocketAddress::WithPort(uint16_t port) const {
  SocketAddress a = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  }
  return a;
}

std::string SocketAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  switch (family()) {
    case AF_INET:
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                sizeof buf);
      return absl::StrCat(buf, ":", port());
    case AF_INET6:
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                sizeof buf);
      return absl::StrCat("[", buf, "]:", port());
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const size_t n = len_ > offsetof(sockaddr_un, sun_path)
                           ? len_ - offsetof(sockaddr_un, sun_path)
                           : 0;
      if (n == 0) return "unix:";
      if (un->sun_path[0] == '\0') return absl::StrCat("unix:@", absl::string_view(un->sun_path + 1, n - 1));
      return absl::StrCat("unix:", absl::string_view(un->sun_path, strnlen(un->sun_path, n)));
    }
    default:
      return "";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace evactor
