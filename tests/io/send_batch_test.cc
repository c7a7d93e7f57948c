// SendBatch through BufferedSocket: an iteration's replies go out in one io_uring
// submission; a short send leaves the rest to the write watcher, intact and in
// order; a send error reaches the event callback once; a socket destroyed while
// queued is skipped; a callback that flushes another queued socket sends nothing
// twice; FlushAtEndOfIteration works outside read callbacks; a pipe (ENOTSOCK) is
// written directly instead of failing; without io_uring
// (EVACTOR_NO_URING) replies are written directly.
#include "io/send_batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

// Reads what the peer end has now (non-blocking).
std::string Drain(int fd) {
  std::string got;
  char buf[65536];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Skips the test where this kernel (or a sandbox) has no io_uring: the batch is then
// never used, and the direct path is what BufferedSocketTest covers.
#define REQUIRE_BATCH(loop)                                           \
  SendBatch* batch = SendBatch::For(loop);                            \
  if (batch == nullptr) GTEST_SKIP() << "io_uring unavailable here"

TEST(SendBatchTest, AnIterationsRepliesGoOutInOneSubmission) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  constexpr int kSockets = 40;
  std::vector<Pair> pairs(kSockets);
  std::vector<std::unique_ptr<BufferedSocket>> sockets;
  int answered = 0;
  for (int i = 0; i < kSockets; ++i) {
    sockets.push_back(std::make_unique<BufferedSocket>(*loop, pairs[i].ours));
    sockets.back()->SetCallbacks(
        [&answered, i](BufferedSocket& s) {
          std::string req = s.input().ToString();
          s.input().Clear();
          s.Write("reply " + std::to_string(i) + " to " + req);
          ++answered;
        },
        nullptr, nullptr);
    ASSERT_TRUE(sockets.back()->Enable(kBevReading).ok());
  }
  // Every request is there before the loop looks: one iteration answers them all.
  for (int i = 0; i < kSockets; ++i) {
    const std::string req = "req" + std::to_string(i);
    ASSERT_EQ(write(pairs[i].peer, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  }
  const SendBatch::Stats before = batch->stats();
  ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(answered, kSockets);
  EXPECT_EQ(batch->stats().submissions - before.submissions, 1u);
  EXPECT_EQ(batch->stats().sends - before.sends, static_cast<uint64_t>(kSockets));
  for (int i = 0; i < kSockets; ++i) {
    EXPECT_EQ(Drain(pairs[i].peer), "reply " + std::to_string(i) + " to req" + std::to_string(i));
    EXPECT_TRUE(sockets[i]->output().empty());
  }
}

TEST(SendBatchTest, AShortSendLeavesTheRestToTheWatcherInOrder) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  Pair p;
  int small = 4096;
  ASSERT_EQ(setsockopt(p.ours, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_EQ(setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  BufferedSocket s(*loop, p.ours);
  s.SetCallbacks(
      [&](BufferedSocket& bs) {
        bs.input().Clear();
        bs.Write(big);
      },
      nullptr, nullptr);
  ASSERT_TRUE(s.Enable(kBevReading).ok());
  ASSERT_EQ(write(p.peer, "go", 2), 2);
  const SendBatch::Stats before = batch->stats();
  ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(batch->stats().short_sends - before.short_sends, 1u);
  EXPECT_FALSE(s.output().empty());  // the kernel took only part
  std::string got;
  RunUntil(*loop, [&] {
    got += Drain(p.peer);
    return got.size() >= big.size();
  });
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big) << "bytes differ";
}

TEST(SendBatchTest, ASendErrorReachesTheEventCallbackOnce) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  Pair p;
  BufferedSocket s(*loop, p.ours);
  int errors = 0;
  int error_code = 0;
  s.SetCallbacks(
      [&](BufferedSocket& bs) {
        bs.input().Clear();
        // The peer goes away before the reply is sent at the end of the iteration.
        close(p.peer);
        p.peer = -1;
        bs.Write("too late");
      },
      nullptr,
      [&](BufferedSocket&, uint32_t what, int error) {
        if (what & kBevError) {
          EXPECT_TRUE(what & kBevWriting);
          ++errors;
          error_code = error;
        }
      });
  ASSERT_TRUE(s.Enable(kBevReading).ok());
  ASSERT_EQ(write(p.peer, "x", 1), 1);
  ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(errors, 1);
  EXPECT_TRUE(error_code == EPIPE || error_code == ECONNRESET) << error_code;
  ASSERT_TRUE(loop->RunNonBlocking().ok());
  EXPECT_EQ(errors, 1);
}

TEST(SendBatchTest, ASocketDestroyedWhileQueuedIsSkipped) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  Pair pa, pb;
  auto a = std::make_unique<BufferedSocket>(*loop, pa.ours);
  auto b = std::make_unique<BufferedSocket>(*loop, pb.ours);
  // Whichever read callback runs second destroys the other socket, which has
  // queued its reply already.
  int ran = 0;
  auto on_read = [&](BufferedSocket& self) {
    self.input().Clear();
    self.Write("reply");
    if (++ran == 2) {
      if (&self == a.get()) {
        b.reset();
      } else {
        a.reset();
      }
    }
  };
  a->SetCallbacks(on_read, nullptr, nullptr);
  b->SetCallbacks(on_read, nullptr, nullptr);
  ASSERT_TRUE(a->Enable(kBevReading).ok());
  ASSERT_TRUE(b->Enable(kBevReading).ok());
  ASSERT_EQ(write(pa.peer, "q", 1), 1);
  ASSERT_EQ(write(pb.peer, "q", 1), 1);
  ASSERT_TRUE(loop->RunOnce().ok());
  ASSERT_EQ(ran, 2);
  ASSERT_TRUE((a == nullptr) != (b == nullptr));
  const int survivor_peer = a != nullptr ? pa.peer : pb.peer;
  const int gone_peer = a != nullptr ? pb.peer : pa.peer;
  EXPECT_EQ(Drain(survivor_peer), "reply");
  EXPECT_EQ(Drain(gone_peer), "");  // destroyed before its turn: nothing sent, no crash
}

TEST(SendBatchTest, ACallbackFlushingAnotherQueuedSocketSendsNothingTwice) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  Pair pa, pb;
  BufferedSocket a(*loop, pa.ours);
  BufferedSocket b(*loop, pb.ours);
  int extra_sent = 0;
  a.SetCallbacks(
      [](BufferedSocket& s) {
        s.input().Clear();
        s.Write("A");
      },
      // Runs after the batch sent A's reply: writes to B and flushes it at once,
      // whether or not B's own batched send has been finished yet.
      [&](BufferedSocket&) {
        if (extra_sent++ == 0) {
          b.Write("+extra");
          ASSERT_TRUE(b.Flush().ok());
        }
      },
      nullptr);
  b.SetCallbacks(
      [](BufferedSocket& s) {
        s.input().Clear();
        s.Write("B");
      },
      nullptr, nullptr);
  ASSERT_TRUE(a.Enable(kBevReading).ok());
  ASSERT_TRUE(b.Enable(kBevReading).ok());
  ASSERT_EQ(write(pa.peer, "q", 1), 1);
  ASSERT_EQ(write(pb.peer, "q", 1), 1);
  ASSERT_TRUE(loop->RunOnce().ok());
  ASSERT_TRUE(loop->RunNonBlocking().ok());
  EXPECT_EQ(extra_sent, 1);
  EXPECT_EQ(Drain(pa.peer), "A");
  EXPECT_EQ(Drain(pb.peer), "B+extra");
}

TEST(SendBatchTest, FlushAtEndOfIterationFromATimer) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  Pair p;
  BufferedSocket s(*loop, p.ours);
  bool fired = false;
  Timer t(*loop, [&](uint32_t) {
    s.Write("tick");
    s.FlushAtEndOfIteration();
    EXPECT_EQ(s.output().size(), 4u);  // not yet: at the end of this iteration
    fired = true;
  });
  t.Start(absl::Milliseconds(1));
  const SendBatch::Stats before = batch->stats();
  RunUntil(*loop, [&] { return fired; });
  EXPECT_EQ(batch->stats().sends - before.sends, 1u);
  EXPECT_TRUE(s.output().empty());
  EXPECT_EQ(Drain(p.peer), "tick");
}

TEST(SendBatchTest, APipeIsWrittenDirectly) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  // Not a socket: the batch's send fails with ENOTSOCK, which must not read as a
  // write error; the output goes out with a plain write instead.
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  BufferedSocket s(*loop, fds[1]);
  int errors = 0;
  s.SetCallbacks(nullptr, nullptr, [&](BufferedSocket&, uint32_t, int) { ++errors; });
  bool fired = false;
  Timer t(*loop, [&](uint32_t) {
    s.Write("through a pipe");
    s.FlushAtEndOfIteration();
    fired = true;
  });
  t.Start(absl::Milliseconds(1));
  RunUntil(*loop, [&] { return fired && s.output().empty(); });
  EXPECT_EQ(errors, 0);
  EXPECT_TRUE(s.output().empty());
  EXPECT_EQ(Drain(fds[0]), "through a pipe");
  close(fds[0]);
}

// Answers one request on a fresh pair through the loop; true when the reply came.
bool OneRoundTrip(Loop& loop) {
  Pair p;
  BufferedSocket s(loop, p.ours);
  s.SetCallbacks(
      [](BufferedSocket& bs) {
        bs.input().Clear();
        bs.Write("pong");
      },
      nullptr, nullptr);
  if (!s.Enable(kBevReading).ok()) return false;
  if (write(p.peer, "ping", 4) != 4) return false;
  if (!loop.RunOnce().ok()) return false;
  return Drain(p.peer) == "pong";
}

TEST(SendBatchTest, AForkedChildGetsARingOfItsOwn) {
  auto loop = NewLoop();
  REQUIRE_BATCH(*loop);
  ASSERT_TRUE(OneRoundTrip(*loop));
  const uint64_t sends_before = batch->stats().sends;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: its own ring after ReinitAfterFork, and replies still flow.
    const bool ok = loop->ReinitAfterFork().ok() && OneRoundTrip(*loop) &&
                    OneRoundTrip(*loop) && SendBatch::For(*loop) == batch &&
                    batch->stats().sends == sends_before + 2;
    _exit(ok ? 0 : 1);
  }
  // The parent's ring is untouched by the child's.
  ASSERT_TRUE(OneRoundTrip(*loop));
  EXPECT_EQ(batch->stats().sends, sends_before + 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SendBatchTest, WithoutIoUringRepliesAreWrittenDirectly) {
  ASSERT_EQ(setenv("EVACTOR_NO_URING", "1", 1), 0);
  auto loop = NewLoop();  // a new loop: its batch is set up (or not) on first use
  EXPECT_EQ(SendBatch::For(*loop), nullptr);
  ASSERT_EQ(unsetenv("EVACTOR_NO_URING"), 0);
  Pair p;
  BufferedSocket s(*loop, p.ours);
  s.SetCallbacks(
      [](BufferedSocket& bs) {
        bs.input().Clear();
        bs.Write("direct");
        bs.FlushAtEndOfIteration();  // no batch: flushes now
        EXPECT_TRUE(bs.output().empty());
      },
      nullptr, nullptr);
  ASSERT_TRUE(s.Enable(kBevReading).ok());
  ASSERT_EQ(write(p.peer, "q", 1), 1);
  ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(Drain(p.peer), "direct");
}

}  // namespace
}  // namespace evactor
