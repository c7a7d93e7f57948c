// SocketAddress: parsing, formatting and the error cases.
#include "io/address.h"

#include <netinet/in.h>

#include "gtest/gtest.h"

namespace evactor {
namespace {

TEST(SocketAddressTest, ParsesAndPrintsIpv4) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse("127.0.0.1:11211");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 11211);
  EXPECT_EQ(a->ToString(), "127.0.0.1:11211");
  EXPECT_EQ(a->length(), sizeof(sockaddr_in));
}

TEST(SocketAddressTest, ParsesAndPrintsIpv6) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse("[::1]:8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->ToString(), "[::1]:8080");
  EXPECT_EQ(SocketAddress::ParseHost("[fe80::1]", 1)->ToString(), "[fe80::1]:1");
  EXPECT_EQ(SocketAddress::ParseHost("::", 0)->ToString(), "[::]:0");
}

TEST(SocketAddressTest, ParsesUnixPathsIncludingAbstract) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse("unix:/tmp/x.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_unix());
  EXPECT_EQ(a->port(), 0);
  EXPECT_EQ(a->ToString(), "unix:/tmp/x.sock");
  absl::StatusOr<SocketAddress> b = SocketAddress::Parse("unix:@evactor-test");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ToString(), "unix:@evactor-test");
  EXPECT_FALSE(SocketAddress::Parse("unix:").ok());
  EXPECT_FALSE(SocketAddress::Unix(std::string(200, 'x')).ok());
}

TEST(SocketAddressTest, RejectsBadInputWithAClearError) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:8x", "localhost:80", "[::1]80", "[::1", "::1:80",
                          "1.2.3.4.5:80", "127.0.0.1:123456"}) {
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(bad);
    EXPECT_FALSE(a.ok()) << bad;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(SocketAddressTest, EqualityWithPortAndLoopbacks) {
  SocketAddress a = SocketAddress::Loopback4(80);
  EXPECT_EQ(a, *SocketAddress::Parse("127.0.0.1:80"));
  EXPECT_FALSE(a == a.WithPort(81));
  EXPECT_EQ(a.WithPort(81).port(), 81);
  EXPECT_EQ(SocketAddress::Loopback6(9).ToString(), "[::1]:9");
  EXPECT_TRUE(SocketAddress().empty());
  EXPECT_EQ(SocketAddress().ToString(), "");
}

}  // namespace
}  // namespace evactor
