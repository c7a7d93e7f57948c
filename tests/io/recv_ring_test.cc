// RecvRing through BufferedSocket: sockets are read with multishot receives; bytes
// arrive intact and in order, also past the provided buffers (ENOBUFS, armed again);
// many sockets are served from one wake-up; disabling reading stops receiving and
// keeps what arrived for when it is enabled again; EOF and errors after data;
// ReleaseFd hands over everything received and the fd keeps working; Close lets go of
// the fd at once (the peer sees EOF); read timeouts; filters, rate limits, high
// watermarks, non-sockets and BufferedSocketOptions::receive_ring=false read through
// the watcher instead.
#include "io/recv_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "io/buffered_socket.h"
#include "runtime/loop.h"
#include "runtime/timer.h"
#include "tests/io/test_sockets.h"

namespace evactor {
namespace {

using io_test::NewLoop;
using io_test::Pair;
using io_test::RunUntil;

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  const absl::Time end = absl::Now() + absl::Seconds(5);
  while (off < data.size() && absl::Now() < end) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n > 0) off += static_cast<size_t>(n);
  }
  ASSERT_EQ(off, data.size());
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

// BufferedSockets on each pair's own end, each collecting what it reads into got[i].
std::vector<std::unique_ptr<BufferedSocket>> Collectors(Loop& loop, std::vector<Pair>& pairs,
                                                        std::vector<std::string>& got) {
  std::vector<std::unique_ptr<BufferedSocket>> sockets;
  for (size_t i = 0; i < pairs.size(); ++i) {
    sockets.push_back(std::make_unique<BufferedSocket>(loop, pairs[i].ours));
    sockets.back()->SetCallbacks(
        [&got, i](BufferedSocket& s) {
          got[i] += s.input().ToString();
          s.input().Clear();
        },
        nullptr, nullptr);
  }
  return sockets;
}

// Skips where this kernel (or a sandbox) has no io_uring multishot receive: sockets
// then read through their watchers, which BufferedSocketTest covers.
#define REQUIRE_RING(loop)                                  \
  RecvRing* ring = RecvRing::For(loop);                     \
  if (ring == nullptr) GTEST_SKIP() << "io_uring unavailable here"

TEST(RecvRingTest, BytesArriveThroughTheRing) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  EXPECT_EQ(ring->buffers(), RecvRing::kBuffersPerChunk);  // grows only when needed
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  std::string got;
  int calls = 0;
  bs.SetCallbacks(
      [&](BufferedSocket& s) {
        ++calls;
        got += s.input().ToString();
        s.input().Clear();
      },
      nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  EXPECT_EQ(ring->armed(), 1u);
  WriteAll(p.peer, "hello ring");
  RunUntil(*loop, [&] { return got.size() >= 10; });
  EXPECT_EQ(got, "hello ring");
  EXPECT_GE(calls, 1);
  EXPECT_GE(ring->stats().arms, 1u);
  EXPECT_GE(ring->stats().completions, 1u);
  EXPECT_EQ(ring->stats().bytes, 10u);
  // The answer goes back as usual.
  bs.SetCallbacks([](BufferedSocket& s) { s.Write(s.input().ToString()); s.input().Clear(); },
                  nullptr, nullptr);
  WriteAll(p.peer, "echo");
  std::string back;
  RunUntil(*loop, [&] {
    char buf[16];
    const ssize_t n = read(p.peer, buf, sizeof buf);
    if (n > 0) back.append(buf, static_cast<size_t>(n));
    return back.size() >= 4;
  });
  EXPECT_EQ(back, "echo");
}

TEST(RecvRingTest, MoreThanTheProvidedBuffersHoldArrivesInOrder) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  // Room for all of it in the socket before the first receive, so that one receive
  // pass needs more buffers than the ring has.
  const int big = 8 << 20;
  setsockopt(p.peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  setsockopt(p.ours, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  const size_t total = RecvRing::kBuffers * RecvRing::kBufferSize * 3 / 2;
  const std::string data = Pattern(total);
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(p.peer, data.data() + off, data.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  BufferedSocket bs(*loop, p.ours);
  std::string got;
  bs.SetCallbacks(
      [&](BufferedSocket& s) {
        got += s.input().ToString();
        s.input().Clear();
      },
      nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  // Whatever did not fit in the socket's buffer up front follows now.
  if (off < data.size()) {
    RunUntil(*loop, [&] {
      const ssize_t n = write(p.peer, data.data() + off, data.size() - off);
      if (n > 0) off += static_cast<size_t>(n);
      return off == data.size();
    });
  }
  RunUntil(*loop, [&] { return got.size() >= total; }, absl::Seconds(10));
  ASSERT_EQ(got.size(), total);
  EXPECT_TRUE(got == data) << "bytes out of order or corrupted";
  if (off == total) {
    // All of it was queued before the first receive: one pass took every buffer and
    // the receive stopped (ENOBUFS).
    EXPECT_GE(ring->stats().no_buffers, 1u);
  }
  // A pass that big is bulk data: the socket moved to its watcher, which reads
  // straight into input.
  EXPECT_EQ(ring->armed(), 0u);
}

TEST(RecvRingTest, SocketsThatRanOutOfBuffersAreArmedAgain) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  // 300 sockets with 7000 bytes each (two buffers apiece) queued before they are
  // armed: the first ones take every buffer, the rest stop with ENOBUFS and must be
  // armed again once the buffers are back.
  constexpr int kSockets = 300;
  constexpr size_t kEach = 7000;
  std::vector<Pair> pairs(kSockets);
  std::vector<std::string> got(kSockets);
  std::vector<std::string> sent(kSockets);
  for (int i = 0; i < kSockets; ++i) {
    sent[i] = Pattern(kEach + static_cast<size_t>(i));
    WriteAll(pairs[i].peer, sent[i]);
  }
  auto sockets = Collectors(*loop, pairs, got);
  for (auto& s : sockets) ASSERT_TRUE(s->Enable(kBevReading).ok());
  RunUntil(*loop, [&] {
    for (int i = 0; i < kSockets; ++i) {
      if (got[i].size() < sent[i].size()) return false;
    }
    return true;
  });
  for (int i = 0; i < kSockets; ++i) ASSERT_TRUE(got[i] == sent[i]) << "socket " << i;
  EXPECT_GE(ring->stats().no_buffers, 1u);
  EXPECT_GT(ring->stats().arms, static_cast<uint64_t>(kSockets));
  EXPECT_EQ(ring->armed(), static_cast<size_t>(kSockets));  // none went bulk
  // Running dry made the ring add buffers, within its bound.
  EXPECT_GT(ring->buffers(), RecvRing::kBuffersPerChunk);
  EXPECT_LE(ring->buffers(), RecvRing::kBuffers);
}

TEST(RecvRingTest, BulkTransfersReadThroughTheWatcherAndComeBack) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  size_t got = 0;
  bs.SetCallbacks([&](BufferedSocket& s) { got += s.input().size(); s.input().Clear(); },
                  nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  ASSERT_TRUE(loop->RunNonBlocking().ok());
  ASSERT_EQ(ring->armed(), 1u);
  WriteAll(p.peer, Pattern(64 * 1024));
  RunUntil(*loop, [&] { return got >= 64 * 1024; });
  EXPECT_EQ(got, 64u * 1024);
  EXPECT_EQ(ring->armed(), 0u);  // the watcher reads now
  // Small messages again: after a few the ring takes over once more.
  for (int i = 0; i < 8 && ring->armed() == 0; ++i) {
    const size_t before = got;
    WriteAll(p.peer, "small");
    RunUntil(*loop, [&] { return got >= before + 5; });
  }
  EXPECT_EQ(ring->armed(), 1u);
  const size_t before = got;
  WriteAll(p.peer, "through the ring");
  RunUntil(*loop, [&] { return got >= before + 16; });
  EXPECT_EQ(got, before + 16);
}

TEST(RecvRingTest, ManySocketsAreServedFromOneWakeUp) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  constexpr int kSockets = 64;
  std::vector<Pair> pairs(kSockets);
  std::vector<std::string> got(kSockets);
  auto sockets = Collectors(*loop, pairs, got);
  for (auto& s : sockets) ASSERT_TRUE(s->Enable(kBevReading).ok());
  EXPECT_EQ(ring->armed(), static_cast<size_t>(kSockets));
  ASSERT_TRUE(loop->RunNonBlocking().ok());  // submits the arms
  const uint64_t reaps = ring->stats().reaps;
  for (int i = 0; i < kSockets; ++i) WriteAll(pairs[i].peer, "req " + std::to_string(i));
  RunUntil(*loop, [&] {
    for (int i = 0; i < kSockets; ++i) {
      if (got[i] != "req " + std::to_string(i)) return false;
    }
    return true;
  });
  for (int i = 0; i < kSockets; ++i) EXPECT_EQ(got[i], "req " + std::to_string(i));
  // All were written before the loop looked: far fewer wake-ups than sockets.
  EXPECT_LT(ring->stats().reaps - reaps, static_cast<uint64_t>(kSockets) / 2);
}

TEST(RecvRingTest, DisabledReadingKeepsWhatArrivedForLater) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  int calls = 0;
  bs.SetCallbacks([&](BufferedSocket&) { ++calls; }, nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  WriteAll(p.peer, "one");
  RunUntil(*loop, [&] { return calls == 1; });
  ASSERT_EQ(calls, 1);
  EXPECT_EQ(bs.input().ToString(), "one");
  bs.Disable(kBevReading);
  EXPECT_EQ(ring->armed(), 0u);
  WriteAll(p.peer, "two");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop->RunNonBlocking().ok());
  usleep(20000);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop->RunNonBlocking().ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(bs.input().ToString(), "one");  // "two" waits in the socket
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  RunUntil(*loop, [&] { return calls == 2; });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(bs.input().ToString(), "onetwo");
}

TEST(RecvRingTest, EofAndErrorsComeAfterTheData) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  std::string got;
  std::vector<uint32_t> events;
  bs.SetCallbacks(
      [&](BufferedSocket& s) {
        EXPECT_TRUE(events.empty()) << "data after EOF";
        got += s.input().ToString();
        s.input().Clear();
      },
      nullptr, [&](BufferedSocket&, uint32_t what, int) { events.push_back(what); });
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  WriteAll(p.peer, "last words");
  ASSERT_EQ(shutdown(p.peer, SHUT_WR), 0);
  RunUntil(*loop, [&] { return !events.empty(); });
  EXPECT_EQ(got, "last words");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], kBevReading | kBevEof);
  EXPECT_EQ(ring->armed(), 0u);
}

TEST(RecvRingTest, ReleaseFdHandsOverEverythingReceived) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  auto bs = std::make_unique<BufferedSocket>(*loop, p.ours);
  int calls = 0;
  bs->SetCallbacks([&](BufferedSocket&) { ++calls; }, nullptr, nullptr);
  ASSERT_TRUE(bs->Enable(kBevReading).ok());
  WriteAll(p.peer, "first ");
  RunUntil(*loop, [&] { return calls == 1; });
  // Received by the kernel for the ring, not yet reported to the socket.
  WriteAll(p.peer, "second");
  usleep(20000);
  const int fd = bs->ReleaseFd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(bs->input().ToString(), "first second");
  EXPECT_EQ(ring->armed(), 0u);
  bs.reset();
  // The fd is open and nothing reads it any more.
  WriteAll(p.peer, "third");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop->RunNonBlocking().ok());
  char buf[16];
  const ssize_t n = read(fd, buf, sizeof buf);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, 5), "third");
  close(fd);
}

TEST(RecvRingTest, CloseLetsGoOfTheFdAtOnce) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  auto bs = std::make_unique<BufferedSocket>(*loop, p.ours);
  ASSERT_TRUE(bs->Enable(kBevReading).ok());
  ASSERT_TRUE(loop->RunNonBlocking().ok());
  ASSERT_EQ(ring->armed(), 1u);
  bs.reset();  // closes the fd
  EXPECT_EQ(ring->armed(), 0u);
  // No receive holds the socket open: the peer sees EOF without the loop running.
  char c;
  EXPECT_EQ(read(p.peer, &c, 1), 0);
}

TEST(RecvRingTest, ReadTimeoutWithoutData) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  uint32_t what = 0;
  bs.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t w, int) { what = w; });
  bs.SetTimeouts(absl::Milliseconds(50), std::nullopt);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  const absl::Time start = absl::Now();
  RunUntil(*loop, [&] { return what != 0; });
  EXPECT_EQ(what, kBevReading | kBevTimeout);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  EXPECT_FALSE(bs.enabled() & kBevReading);
  EXPECT_EQ(ring->armed(), 0u);
}

TEST(RecvRingTest, DataRestartsTheReadTimeout) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  uint32_t what = 0;
  size_t got = 0;
  bs.SetCallbacks([&](BufferedSocket& s) { got += s.input().size(); s.input().Clear(); },
                  nullptr, [&](BufferedSocket&, uint32_t w, int) { what = w; });
  bs.SetTimeouts(absl::Milliseconds(150), std::nullopt);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  // A byte every 50 ms for 400 ms: never 150 ms without progress.
  int sent = 0;
  absl::Time last_sent;
  Timer writer(*loop, [&](uint32_t) {
    WriteAll(p.peer, "x");
    last_sent = absl::Now();
    if (++sent == 8) writer.Stop();
  });
  writer.StartPeriodic(absl::Milliseconds(50));
  RunUntil(*loop, [&] { return what != 0; });
  EXPECT_EQ(what, kBevReading | kBevTimeout);
  EXPECT_EQ(sent, 8);
  EXPECT_EQ(got, 8u);
  EXPECT_GE(absl::Now() - last_sent, absl::Milliseconds(140));
}

TEST(RecvRingTest, SocketsTheRingCannotServeReadThroughTheWatcher) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  // A pipe is not a socket: the first receive fails and the watcher takes over.
  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC), 0);
  {
    BufferedSocket bs(*loop, pipefd[0]);
    std::string got;
    bs.SetCallbacks([&](BufferedSocket& s) { got += s.input().ToString(); s.input().Clear(); },
                    nullptr, nullptr);
    ASSERT_TRUE(bs.Enable(kBevReading).ok());
    WriteAll(pipefd[1], "through a pipe");
    RunUntil(*loop, [&] { return got.size() >= 14; });
    EXPECT_EQ(got, "through a pipe");
    EXPECT_EQ(ring->armed(), 0u);
  }
  close(pipefd[1]);

  // Opted out, rate limited, or with a read high watermark: never armed.
  const uint64_t arms = ring->stats().arms;
  Pair a, b, c;
  BufferedSocket opted_out(*loop, a.ours, BufferedSocketOptions{.receive_ring = false});
  BufferedSocket limited(*loop, b.ours);
  limited.SetRateLimit(RateLimit{.read_rate = 1 << 20, .read_burst = 1 << 20,
                                 .write_rate = 1 << 20, .write_burst = 1 << 20});
  BufferedSocket marked(*loop, c.ours);
  marked.SetWatermark(kBevReading, 0, 1024);
  std::string got_a, got_b, got_c;
  opted_out.SetCallbacks([&](BufferedSocket& s) { got_a = s.input().ToString(); }, nullptr,
                         nullptr);
  limited.SetCallbacks([&](BufferedSocket& s) { got_b = s.input().ToString(); }, nullptr,
                       nullptr);
  marked.SetCallbacks([&](BufferedSocket& s) { got_c = s.input().ToString(); }, nullptr, nullptr);
  ASSERT_TRUE(opted_out.Enable(kBevReading).ok());
  ASSERT_TRUE(limited.Enable(kBevReading).ok());
  ASSERT_TRUE(marked.Enable(kBevReading).ok());
  EXPECT_EQ(ring->armed(), 0u);
  WriteAll(a.peer, "a");
  WriteAll(b.peer, "b");
  WriteAll(c.peer, "c");
  RunUntil(*loop, [&] { return got_a == "a" && got_b == "b" && got_c == "c"; });
  EXPECT_EQ(got_a, "a");
  EXPECT_EQ(got_b, "b");
  EXPECT_EQ(got_c, "c");
  EXPECT_EQ(ring->stats().arms, arms);
}

TEST(RecvRingTest, ARateLimitSetWhileArmedMovesTheSocketToTheWatcher) {
  auto loop = NewLoop();
  REQUIRE_RING(*loop);
  Pair p;
  BufferedSocket bs(*loop, p.ours);
  std::string got;
  bs.SetCallbacks([&](BufferedSocket& s) { got += s.input().ToString(); s.input().Clear(); },
                  nullptr, nullptr);
  ASSERT_TRUE(bs.Enable(kBevReading).ok());
  EXPECT_EQ(ring->armed(), 1u);
  bs.SetRateLimit(RateLimit{.read_rate = 1 << 20, .read_burst = 1 << 20,
                            .write_rate = 1 << 20, .write_burst = 1 << 20});
  EXPECT_EQ(ring->armed(), 0u);
  WriteAll(p.peer, "limited");
  RunUntil(*loop, [&] { return got == "limited"; });
  EXPECT_EQ(got, "limited");
  bs.SetRateLimit(std::nullopt);
  EXPECT_EQ(ring->armed(), 1u);
  WriteAll(p.peer, " free");
  RunUntil(*loop, [&] { return got == "limited free"; });
  EXPECT_EQ(got, "limited free");
}

}  // namespace
}  // namespace evactor
