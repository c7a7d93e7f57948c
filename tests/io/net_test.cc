// Listener and Connector on real loopback sockets: accept and connect, connect
// failures reported exactly once, timeouts, cancellation, UNIX sockets, IPv6, and
// running out of file descriptors without a busy loop.
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "io/connector.h"
#include "io/listener.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

namespace evactor {
namespace {

std::unique_ptr<Loop> NewLoop() { return Loop::Create({.ignore_env = true}).value(); }

// Runs the loop until `done` or the deadline.
void RunUntil(Loop& loop, const bool& done, absl::Duration limit = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + limit;
  while (!done && absl::Now() < end) ASSERT_TRUE(loop.RunOnce().ok());
}

TEST(NetTest, ConnectAndAcceptOnLoopback) {
  auto loop = NewLoop();
  std::vector<int> accepted;
  SocketAddress peer_seen;
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0), [&](int fd, const SocketAddress& peer) {
    accepted.push_back(fd);
    peer_seen = peer;
  });
  ASSERT_TRUE(l.ok()) << l.status();
  const uint16_t port = (*l)->local_address().port();
  ASSERT_NE(port, 0);
  int connected = -1;
  int calls = 0;
  bool done = false;
  auto c = Connector::Connect(*loop, SocketAddress::Loopback4(port), absl::Seconds(5),
                              [&](absl::StatusOr<int> fd) {
                                ++calls;
                                ASSERT_TRUE(fd.ok()) << fd.status();
                                connected = *fd;
                                done = true;
                              });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(calls, 0);  // never inside Connect
  RunUntil(*loop, done);
  bool got = false;
  Timer settle(*loop, [&](uint32_t) { got = true; });
  settle.Start(absl::Milliseconds(20));
  RunUntil(*loop, got);
  ASSERT_EQ(calls, 1);
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(peer_seen, *SocketAddress::LocalOf(connected));
  // The two ends talk.
  ASSERT_EQ(write(connected, "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(read(accepted[0], buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
  close(connected);
  close(accepted[0]);
  EXPECT_EQ((*l)->accepted(), 1u);
}

TEST(NetTest, RefusedConnectIsReportedExactlyOnce) {
  auto loop = NewLoop();
  // A port that nobody listens on: bind, read the port, close.
  const int probe = socket(AF_INET, SOCK_STREAM, 0);
  SocketAddress any = SocketAddress::Loopback4(0);
  ASSERT_EQ(bind(probe, any.sockaddr_ptr(), any.length()), 0);
  const uint16_t port = SocketAddress::LocalOf(probe)->port();
  close(probe);
  int calls = 0;
  absl::Status error;
  bool done = false;
  auto c = Connector::Connect(*loop, SocketAddress::Loopback4(port), absl::Seconds(5),
                              [&](absl::StatusOr<int> fd) {
                                ++calls;
                                error = fd.status();
                                done = true;
                              });
  ASSERT_TRUE(c.ok());
  RunUntil(*loop, done);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error.ok());
  EXPECT_NE(error.message().find("Connection refused"), absl::string_view::npos) << error;
  EXPECT_TRUE((*c)->done());
}

TEST(NetTest, ConnectTimesOutWhenTheBacklogIsFull) {
  auto loop = NewLoop();
  // Backlog 0 and no accept: once the accept queue is full, SYNs are dropped and a
  // connect cannot complete.
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0), [](int fd, const SocketAddress&) { close(fd); },
                          {.socket = {.backlog = 0}, .start_disabled = true});
  ASSERT_TRUE(l.ok());
  const uint16_t port = (*l)->local_address().port();
  std::vector<std::unique_ptr<Connector>> fillers;
  std::vector<int> open_fds;
  int timeouts = 0;
  int successes = 0;
  for (int i = 0; i < 4; ++i) {
    auto c = Connector::Connect(*loop, SocketAddress::Loopback4(port), absl::Milliseconds(300),
                                [&](absl::StatusOr<int> fd) {
                                  if (fd.ok()) {
                                    ++successes;
                                    open_fds.push_back(*fd);
                                  } else if (fd.status().code() ==
                                             absl::StatusCode::kDeadlineExceeded) {
                                    ++timeouts;
                                  }
                                });
    ASSERT_TRUE(c.ok());
    fillers.push_back(*std::move(c));
  }
  const absl::Time start = absl::Now();
  bool stop = false;
  Timer guard(*loop, [&](uint32_t) { stop = true; });
  guard.Start(absl::Seconds(2));
  while (!stop && timeouts + successes < 4) ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_GE(timeouts, 1) << "some connect should have hit the 300 ms timeout";
  EXPECT_EQ(timeouts + successes, 4);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  for (int fd : open_fds) close(fd);
}

TEST(NetTest, DestroyingAConnectorCancelsIt) {
  auto loop = NewLoop();
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0), [](int fd, const SocketAddress&) { close(fd); });
  ASSERT_TRUE(l.ok());
  int calls = 0;
  auto c = Connector::Connect(*loop, SocketAddress::Loopback4((*l)->local_address().port()),
                              absl::Seconds(5), [&](absl::StatusOr<int>) { ++calls; });
  ASSERT_TRUE(c.ok());
  c->reset();
  bool done = false;
  Timer t(*loop, [&](uint32_t) { done = true; });
  t.Start(absl::Milliseconds(30));
  RunUntil(*loop, done);
  EXPECT_EQ(calls, 0);
}

TEST(NetTest, UnixAndIpv6) {
  auto loop = NewLoop();
  // Test sandboxes share the abstract namespace and may reuse pids: add the time.
  const std::string path =
      absl::StrCat("@evactor-net-test-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
  for (const SocketAddress& addr :
       {*SocketAddress::Unix(path), SocketAddress::Loopback6(0)}) {
    int accepted = 0;
    auto l = Listener::Bind(*loop, addr, [&](int fd, const SocketAddress&) {
      ++accepted;
      close(fd);
    });
    ASSERT_TRUE(l.ok()) << addr.ToString() << ": " << l.status();
    const SocketAddress target = addr.is_unix() ? addr : addr.WithPort((*l)->local_address().port());
    bool done = false;
    absl::Status result;
    auto c = Connector::Connect(*loop, target, absl::Seconds(5), [&](absl::StatusOr<int> fd) {
      result = fd.status();
      if (fd.ok()) close(*fd);
      done = true;
    });
    ASSERT_TRUE(c.ok());
    RunUntil(*loop, done);
    EXPECT_TRUE(result.ok()) << target.ToString() << ": " << result;
    bool got = false;
    Timer t(*loop, [&](uint32_t) { got = true; });
    t.Start(absl::Milliseconds(20));
    RunUntil(*loop, got);
    EXPECT_EQ(accepted, 1) << target.ToString();
  }
}

TEST(NetTest, BindErrorsAreStatuses) {
  auto loop = NewLoop();
  auto a = Listener::Bind(*loop, SocketAddress::Loopback4(0), [](int fd, const SocketAddress&) { close(fd); });
  ASSERT_TRUE(a.ok());
  // The same port again without SO_REUSEPORT: EADDRINUSE.
  auto b = Listener::Bind(*loop, (*a)->local_address(), [](int fd, const SocketAddress&) { close(fd); });
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("in use"), absl::string_view::npos) << b.status();
  EXPECT_FALSE(Listener::Bind(*loop, SocketAddress(), [](int, const SocketAddress&) {}).ok());
}

TEST(NetTest, RunningOutOfFdsDoesNotSpinAndAcceptingResumes) {
  auto loop = NewLoop();
  std::vector<int> server_fds;
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0),
                          [&](int fd, const SocketAddress&) { server_fds.push_back(fd); });
  ASSERT_TRUE(l.ok());
  const SocketAddress target = SocketAddress::Loopback4((*l)->local_address().port());

  // Leave room for only a few more fds in this process.
  rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) highest = fd;
  }
  rlimit low = old;
  low.rlim_cur = highest + 1 + 8;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  // Clients: blocking connects complete through the kernel backlog even when the
  // server cannot accept. Connect until the client side itself runs out.
  std::vector<int> clients;
  while (true) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    if (connect(fd, target.sockaddr_ptr(), target.length()) < 0) {
      close(fd);
      break;
    }
    clients.push_back(fd);
    if (clients.size() > 50) break;
  }
  ASSERT_GE(clients.size(), 2u);

  // Run for 200 ms: the listener must hit EMFILE, pause, and not spin.
  const uint64_t iterations_before = loop->stats().iterations;
  bool done = false;
  Timer t(*loop, [&](uint32_t) { done = true; });
  t.Start(absl::Milliseconds(200));
  RunUntil(*loop, done);
  const uint64_t iterations = loop->stats().iterations - iterations_before;
  EXPECT_GE((*l)->fd_exhaustions(), 1u);
  // With a 10 ms retry, about 20 wake-ups; a spinning loop makes hundreds of thousands.
  EXPECT_LT(iterations, 200u) << "the loop spun while out of fds";
  const size_t accepted_while_short = server_fds.size();
  EXPECT_LT(accepted_while_short, clients.size());

  // Free fds: accepting resumes within 100 ms and takes every waiting client.
  for (int fd : server_fds) close(fd);
  server_fds.clear();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  const absl::Time freed = absl::Now();
  const uint64_t before = (*l)->accepted();
  while ((*l)->accepted() < clients.size() && absl::Now() - freed < absl::Seconds(2)) {
    ASSERT_TRUE(loop->RunOnce().ok());
  }
  EXPECT_EQ((*l)->accepted(), clients.size());
  EXPECT_GT((*l)->accepted(), before);
  EXPECT_LT(absl::Now() - freed, absl::Milliseconds(100 + 50));
  for (int fd : server_fds) close(fd);
  for (int fd : clients) close(fd);
}

}  // namespace
}  // namespace evactor
