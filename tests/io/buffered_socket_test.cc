// BufferedSocket over real sockets and in-memory pairs: watermarks both ways,
// timeouts, EOF with output pending, peer reset, a 64 MiB transfer checked byte for
// byte, connect success and failure (exactly once), pairs, and freeing inside a
// callback.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "io/buffered_socket.h"
#include "io/listener.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

namespace evactor {
namespace {

std::unique_ptr<Loop> NewLoop() { return Loop::Create({.ignore_env = true}).value(); }

struct SocketPair {
  int a = -1;
  int b = -1;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  int take_a() { return std::exchange(a, -1); }
};

// Runs the loop until `done` or `limit`.
void RunUntil(Loop& loop, const bool& done, absl::Duration limit = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + limit;
  while (!done && absl::Now() < end) ASSERT_TRUE(loop.RunOnce().ok());
}

void RunFor(Loop& loop, absl::Duration d) {
  bool done = false;
  Timer t(loop, [&](uint32_t) { done = true; });
  t.Start(d);
  RunUntil(loop, done, d + absl::Seconds(5));
}

TEST(BufferedSocketTest, ReadsIntoInputAndWritesOutput) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  std::string got;
  bool done = false;
  bs.SetCallbacks([&](BufferedSocket& s) {
                    got += s.input().ToString();
                    s.input().Clear();
                    s.Write("pong");
                    done = true;
                  },
                  nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "ping", 4), 4);
  RunUntil(*loop, done);
  EXPECT_EQ(got, "ping");
  RunFor(*loop, absl::Milliseconds(10));
  char buf[8];
  ASSERT_EQ(read(sp.b, buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
}

// ReleaseFd hands the fd back open: no more reading, writing or callbacks from the
// socket, what it buffered stays readable, and another owner can serve the fd.
TEST(BufferedSocketTest, ReleaseFdHandsTheOpenFdBack) {
  auto loop = NewLoop();
  SocketPair sp;
  const int fd = sp.take_a();
  int reads = 0;
  int events = 0;
  bool got_first = false;
  auto bs = std::make_unique<BufferedSocket>(*loop, fd);
  bs->SetCallbacks([&](BufferedSocket&) { ++reads, got_first = true; }, nullptr,
                   [&](BufferedSocket&, uint32_t, int) { ++events; });
  ASSERT_TRUE(bs->Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "first", 5), 5);
  RunUntil(*loop, got_first);
  ASSERT_EQ(reads, 1);
  EXPECT_EQ(bs->ReleaseFd(), fd);
  EXPECT_EQ(bs->fd(), -1);
  EXPECT_EQ(bs->ReleaseFd(), -1);  // once only
  EXPECT_EQ(bs->input().ToString(), "first");
  // Not watched any more: new data and the peer's close reach nobody.
  ASSERT_EQ(write(sp.b, "second", 6), 6);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(events, 0);
  bs.reset();  // does not close the fd
  ASSERT_NE(fcntl(fd, F_GETFD), -1);
  char buf[16];
  ASSERT_EQ(read(fd, buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "second");
  // A new owner on the same loop serves it.
  BufferedSocket next(*loop, fd);
  bool echoed = false;
  next.SetCallbacks([&](BufferedSocket& s) {
                      s.Write(s.input().ToString());
                      s.input().Clear();
                      echoed = true;
                    },
                    nullptr, nullptr);
  ASSERT_TRUE(next.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "third", 5), 5);
  RunUntil(*loop, echoed);
  RunFor(*loop, absl::Milliseconds(10));
  ASSERT_EQ(read(sp.b, buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "third");
}

TEST(BufferedSocketTest, ReleaseFdOfAClosedSocketIsMinusOne) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bs.Close();
  EXPECT_EQ(bs.ReleaseFd(), -1);
}

TEST(BufferedSocketTest, ReadWatermarksGateTheCallbackAndPauseReading) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  int calls = 0;
  size_t seen = 0;
  bs.SetCallbacks([&](BufferedSocket& s) {
                    ++calls;
                    seen = s.input().size();
                  },
                  nullptr, nullptr);
  bs.SetWatermark(kBevReading, 10, 20);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "12345", 5), 5);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(calls, 0);  // 5 < low mark 10
  ASSERT_EQ(write(sp.b, "1234567890", 10), 10);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, 15u);
  // 100 more bytes: reading stops at the high mark (20) and the rest waits.
  const std::string more(100, 'x');
  ASSERT_EQ(write(sp.b, more.data(), more.size()), 100);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(bs.input().size(), 20u);
  // Draining below the mark resumes reading, 20 bytes at a time, until all 115
  // bytes have come through.
  size_t total = 0;
  size_t largest = 0;
  for (int i = 0; i < 20 && total < 115; ++i) {
    largest = std::max(largest, bs.input().size());
    total += bs.input().size();
    bs.input().Clear();
    RunFor(*loop, absl::Milliseconds(10));
  }
  EXPECT_EQ(total, 115u);
  EXPECT_EQ(largest, 20u);
}

TEST(BufferedSocketTest, WriteCallbackWhenOutputDrainsToTheLowMark) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  int calls = 0;
  size_t left_at_call = 99;
  bs.SetCallbacks(nullptr, [&](BufferedSocket& s) {
    ++calls;
    left_at_call = s.output().size();
  }, nullptr);
  bs.Write(std::string(1000, 'a'));
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(left_at_call, 0u);
  char buf[2000];
  EXPECT_EQ(read(sp.b, buf, sizeof buf), 1000);
}

TEST(BufferedSocketTest, ReadTimeoutFiresOnlyWhileReadingAndDisablesIt) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  uint32_t what = 0;
  int calls = 0;
  bs.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int) {
    ++calls;
    what = events;
  });
  bs.SetTimeouts(absl::Milliseconds(50), std::nullopt);
  // Not reading yet: no timeout.
  RunFor(*loop, absl::Milliseconds(100));
  EXPECT_EQ(calls, 0);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  RunFor(*loop, absl::Milliseconds(150));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(what, kBevReading | kBevTimeout);
  EXPECT_EQ(bs.enabled() & kBevReading, 0u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

TEST(BufferedSocketTest, WriteTimeoutWhenThePeerDoesNotRead) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  uint32_t what = 0;
  bool done = false;
  bs.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int) {
    what = events;
    done = true;
  });
  bs.SetTimeouts(std::nullopt, absl::Milliseconds(80));
  bs.Write(std::string(8 << 20, 'z'));  // far more than the socket buffers hold
  RunUntil(*loop, done, absl::Seconds(3));
  EXPECT_EQ(what, kBevWriting | kBevTimeout);
  EXPECT_GT(bs.output().size(), 0u);
}

TEST(BufferedSocketTest, EofWhileOutputIsPendingStillDeliversTheOutput) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bool eof = false;
  bs.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int) {
    if (events == (kBevReading | kBevEof)) eof = true;
  });
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  bs.Write("reply after eof");
  ASSERT_EQ(shutdown(sp.b, SHUT_WR), 0);  // the peer says it is done sending
  RunUntil(*loop, eof);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_TRUE(eof);
  char buf[64];
  ASSERT_EQ(read(sp.b, buf, sizeof buf), 15);
  EXPECT_EQ(std::string(buf, 15), "reply after eof");
}

TEST(BufferedSocketTest, PeerResetIsAnErrorWithItsErrno) {
  auto loop = NewLoop();
  // TCP, so that SO_LINGER 0 sends a reset.
  int server_fd = -1;
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0),
                          [&](int fd, const SocketAddress&) { server_fd = fd; });
  ASSERT_TRUE(l.ok());
  auto client = BufferedSocket::Connect(*loop, SocketAddress::Loopback4((*l)->local_address().port()),
                                        absl::Seconds(5));
  ASSERT_TRUE(client.ok());
  uint32_t what = 0;
  int error = 0;
  bool connected = false;
  bool failed = false;
  (*client)->SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int err) {
    if (events & kBevConnected) {
      connected = true;
      return;
    }
    what = events;
    error = err;
    failed = true;
  });
  RunUntil(*loop, connected);
  while (server_fd < 0) ASSERT_TRUE(loop->RunOnce().ok());
  ASSERT_TRUE((*client)->Enable(kBevReading).ok());
  linger lg{1, 0};
  ASSERT_EQ(setsockopt(server_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(server_fd);
  RunUntil(*loop, failed);
  EXPECT_EQ(what, kBevReading | kBevError);
  EXPECT_EQ(error, ECONNRESET);
}

TEST(BufferedSocketTest, SixtyFourMebibytesCheckedByteForByte) {
  auto loop = NewLoop();
  std::unique_ptr<BufferedSocket> server;
  auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0), [&](int fd, const SocketAddress&) {
    server = std::make_unique<BufferedSocket>(*loop, fd);
  });
  ASSERT_TRUE(l.ok());
  auto client = BufferedSocket::Connect(*loop, SocketAddress::Loopback4((*l)->local_address().port()),
                                        absl::Seconds(5));
  ASSERT_TRUE(client.ok());
  constexpr size_t kTotal = 64u << 20;
  auto byte_at = [](size_t i) { return static_cast<char>((i * 131 + (i >> 12)) & 0xff); };
  // The client writes in 1 MiB pieces as output drains.
  size_t produced = 0;
  auto produce = [&](BufferedSocket& s) {
    std::string chunk(1 << 20, '\0');
    while (produced < kTotal && s.output().size() < (2u << 20)) {
      for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = byte_at(produced + i);
      s.Write(chunk);
      produced += chunk.size();
    }
  };
  (*client)->SetCallbacks(nullptr, produce, [&](BufferedSocket& s, uint32_t events, int) {
    if (events & kBevConnected) produce(s);
  });
  (*client)->SetWatermark(kBevWriting, 1 << 20, 0);
  while (server == nullptr) ASSERT_TRUE(loop->RunOnce().ok());
  size_t consumed = 0;
  size_t mismatches = 0;
  server->SetCallbacks([&](BufferedSocket& s) {
    char buf[65536];
    while (size_t n = s.Read(buf, sizeof buf)) {
      for (size_t i = 0; i < n; ++i) mismatches += buf[i] != byte_at(consumed + i);
      consumed += n;
    }
  }, nullptr, nullptr);
  ASSERT_TRUE(server->Enable(kBevReading).ok());
  const absl::Time end = absl::Now() + absl::Seconds(60);
  while (consumed < kTotal && absl::Now() < end) ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(consumed, kTotal);
  EXPECT_EQ(mismatches, 0u);
}

TEST(BufferedSocketTest, ConnectFailureIsReportedExactlyOnce) {
  auto loop = NewLoop();
  const int probe = socket(AF_INET, SOCK_STREAM, 0);
  SocketAddress any = SocketAddress::Loopback4(0);
  ASSERT_EQ(bind(probe, any.sockaddr_ptr(), any.length()), 0);
  const uint16_t port = SocketAddress::LocalOf(probe)->port();
  close(probe);
  auto bs = BufferedSocket::Connect(*loop, SocketAddress::Loopback4(port), absl::Seconds(5));
  ASSERT_TRUE(bs.ok());
  int calls = 0;
  uint32_t what = 0;
  int error = 0;
  (*bs)->SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int err) {
    ++calls;
    what = events;
    error = err;
  });
  EXPECT_TRUE((*bs)->connecting());
  RunFor(*loop, absl::Milliseconds(100));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(what, kBevError);  // without kBevConnected
  EXPECT_EQ(error, ECONNREFUSED);
}

TEST(BufferedSocketTest, PairDeliversInALaterPassAndReportsEofWhenThePartnerGoes) {
  auto loop = NewLoop();
  auto [a, b] = BufferedSocket::Pair(*loop);
  std::string got;
  bool eof = false;
  b->SetCallbacks([&](BufferedSocket& s) {
                    got += s.input().ToString();
                    s.input().Clear();
                  },
                  nullptr, [&](BufferedSocket&, uint32_t events, int) {
                    if (events == (kBevReading | kBevEof)) eof = true;
                  });
  ASSERT_TRUE(b->Enable(kBevReading).ok());
  a->Write("hello ");
  a->Write("pair");
  EXPECT_EQ(got, "");  // never inside Write
  RunFor(*loop, absl::Milliseconds(10));
  EXPECT_EQ(got, "hello pair");
  EXPECT_EQ(a->partner(), b.get());
  a.reset();
  RunUntil(*loop, eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(b->partner(), nullptr);
}

TEST(BufferedSocketTest, PairHonoursTheReadersHighWatermark) {
  auto loop = NewLoop();
  auto [a, b] = BufferedSocket::Pair(*loop);
  b->SetWatermark(kBevReading, 0, 8);
  ASSERT_TRUE(b->Enable(kBevReading).ok());
  a->Write(std::string(20, 'q'));
  RunFor(*loop, absl::Milliseconds(10));
  EXPECT_EQ(b->input().size(), 8u);
  EXPECT_EQ(a->output().size(), 12u);
  b->input().Clear();
  RunFor(*loop, absl::Milliseconds(10));
  EXPECT_EQ(b->input().size(), 8u);
  EXPECT_EQ(a->output().size(), 4u);
}

TEST(BufferedSocketTest, FreeingTheSocketInsideItsOwnCallbackIsSafe) {
  auto loop = NewLoop();
  SocketPair sp;
  auto bs = std::make_unique<BufferedSocket>(*loop, sp.take_a());
  int reads = 0;
  bs->SetCallbacks([&](BufferedSocket&) {
                     ++reads;
                     bs.reset();  // the usual way a connection ends
                   },
                   nullptr, nullptr);
  ASSERT_TRUE(bs->Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "x", 1), 1);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(bs, nullptr);
  // close_on_free: the peer sees EOF.
  char c;
  EXPECT_EQ(read(sp.b, &c, 1), 0);
}

// Keeps `fd` (the peer's end, non-blocking) full of data for as long as the loop runs.
struct Flooder {
  Flooder(Loop& loop, int fd)
      : watcher(loop, fd, kWrite, [this, fd](uint32_t) {
          static const std::string chunk(65536, 'r');
          while (write(fd, chunk.data(), chunk.size()) > 0) {
          }
        }) {
    EXPECT_TRUE(watcher.Start().ok());
  }
  IoWatcher watcher;
};

// Reads as fast as the limit allows for `d`; returns the bytes read.
size_t ReadFor(Loop& loop, BufferedSocket& bs, absl::Duration d) {
  size_t got = 0;
  bs.SetCallbacks([&](BufferedSocket& s) {
                    got += s.input().size();
                    s.input().Clear();
                  },
                  nullptr, nullptr);
  EXPECT_TRUE(bs.Enable(kBevReading).ok());
  RunFor(loop, d);
  return got;
}

TEST(BufferedSocketTest, ReadRateLimitHoldsWithinTenPercent) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  // 64 KiB per 50 ms tick: 1.25 MiB/s, plus one burst at the start.
  const RateLimit cfg{.read_rate = 64 << 10, .read_burst = 64 << 10,
                      .tick = absl::Milliseconds(50)};
  bs.SetRateLimit(cfg);
  Flooder flood(*loop, sp.b);
  const absl::Time start = absl::Now();
  const size_t got = ReadFor(*loop, bs, absl::Seconds(1));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double expected = (64 << 10) + (64 << 10) * (seconds / 0.05);
  EXPECT_GT(got, expected * 0.9) << got;
  EXPECT_LT(got, expected * 1.1) << got;
}

TEST(BufferedSocketTest, WriteRateLimitHoldsWithinTenPercent) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bs.SetRateLimit(RateLimit{.write_rate = 32 << 10, .write_burst = 32 << 10,
                            .tick = absl::Milliseconds(50)});
  // The peer drains everything it gets; we keep the output full.
  size_t received = 0;
  IoWatcher drain(*loop, sp.b, kRead, [&](uint32_t) {
    char buf[65536];
    ssize_t n;
    while ((n = read(sp.b, buf, sizeof buf)) > 0) received += static_cast<size_t>(n);
  });
  ASSERT_TRUE(drain.Start().ok());
  bs.SetCallbacks(nullptr, [](BufferedSocket& s) { s.Write(std::string(256 << 10, 'w')); },
                  nullptr);
  bs.SetWatermark(kBevWriting, 128 << 10, 0);
  bs.Write(std::string(256 << 10, 'w'));
  const absl::Time start = absl::Now();
  RunFor(*loop, absl::Seconds(1));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double expected = (32 << 10) + (32 << 10) * (seconds / 0.05);
  EXPECT_GT(received, expected * 0.9) << received;
  EXPECT_LT(received, expected * 1.1) << received;
}

TEST(BufferedSocketTest, GroupRateLimitIsSharedByItsMembers) {
  auto loop = NewLoop();
  SocketPair p1;
  SocketPair p2;
  BufferedSocket a(*loop, p1.take_a());
  BufferedSocket b(*loop, p2.take_a());
  RateLimitGroup group(*loop, RateLimit{.read_rate = 64 << 10, .read_burst = 64 << 10,
                                        .tick = absl::Milliseconds(50)});
  a.JoinGroup(&group);
  b.JoinGroup(&group);
  EXPECT_EQ(group.members(), 2u);
  Flooder f1(*loop, p1.b);
  Flooder f2(*loop, p2.b);
  size_t got_a = 0;
  size_t got_b = 0;
  a.SetCallbacks([&](BufferedSocket& s) { got_a += s.input().size(); s.input().Clear(); }, nullptr, nullptr);
  b.SetCallbacks([&](BufferedSocket& s) { got_b += s.input().size(); s.input().Clear(); }, nullptr, nullptr);
  ASSERT_TRUE(a.Enable(kBevReading).ok());
  ASSERT_TRUE(b.Enable(kBevReading).ok());
  const absl::Time start = absl::Now();
  RunFor(*loop, absl::Seconds(1));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double expected = (64 << 10) + (64 << 10) * (seconds / 0.05);  // together
  EXPECT_GT(got_a + got_b, expected * 0.9);
  EXPECT_LT(got_a + got_b, expected * 1.1);
  EXPECT_EQ(group.total_read(), got_a + got_b);
  // Both members got a fair part.
  EXPECT_GT(got_a, (got_a + got_b) / 4);
  EXPECT_GT(got_b, (got_a + got_b) / 4);
  a.LeaveGroup();
  b.LeaveGroup();
  EXPECT_EQ(group.members(), 0u);
}

// A byte-wise transform as a filter: moves up to `limit` bytes, mapping each one.
Filter MapFilter(char (*map)(char)) {
  return [map](Buffer& src, Buffer& dst, size_t limit, FilterMode) {
    const size_t n = std::min(src.size(), limit);
    std::string bytes(n, '\0');
    src.Remove(bytes.data(), n);
    for (char& c : bytes) c = map(c);
    dst.Append(bytes);
    return FilterResult::kOk;
  };
}

char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char Rot13(char c) {
  if (c >= 'a' && c <= 'z') return static_cast<char>('a' + (c - 'a' + 13) % 26);
  return c;
}

TEST(BufferedSocketTest, FiltersTransformBothWays) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bs.SetFilters(MapFilter(Upper), MapFilter(Rot13));
  std::string got;
  bs.SetCallbacks([&](BufferedSocket& s) {
                    got += s.input().ToString();
                    s.input().Clear();
                  },
                  nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "hello", 5), 5);
  bs.Write("abcxyz");
  RunFor(*loop, absl::Milliseconds(30));
  EXPECT_EQ(got, "HELLO");
  char buf[16];
  ASSERT_EQ(read(sp.b, buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "nopklm");
}

TEST(BufferedSocketTest, FilterDataIsNotStuckAtTheHighWatermark) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bs.SetFilters(MapFilter(Upper), nullptr);
  bs.SetWatermark(kBevReading, 0, 4);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "abcdefghij", 10), 10);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(bs.input().ToString(), "ABCD");
  std::string all;
  for (int i = 0; i < 10 && all.size() < 10; ++i) {
    all += bs.input().ToString();
    bs.input().Clear();  // the held-back filtered bytes come through
    RunFor(*loop, absl::Milliseconds(10));
  }
  EXPECT_EQ(all, "ABCDEFGHIJ");
}

TEST(BufferedSocketTest, AFailingFilterIsAnErrorForThatDirection) {
  auto loop = NewLoop();
  SocketPair sp;
  BufferedSocket bs(*loop, sp.take_a());
  bs.SetFilters([](Buffer&, Buffer&, size_t, FilterMode) { return FilterResult::kError; },
                nullptr);
  uint32_t what = 0;
  int err = 0;
  bs.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t events, int e) {
    what = events;
    err = e;
  });
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_EQ(write(sp.b, "bad", 3), 3);
  RunFor(*loop, absl::Milliseconds(20));
  EXPECT_EQ(what, kBevReading | kBevError);
  EXPECT_EQ(err, EINVAL);
}

}  // namespace
}  // namespace evactor
