// Tests for evactor::IoWatcher (runtime/io_watcher.h): persistence, timeouts, merged
// bits, EOF and hang-up, several watchers per fd, edge triggering, closed and bad fds.
// Every case runs on epoll, poll and select; where a feature is missing on a backend
// the case asserts the documented error there.
#include "runtime/io_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/events.h"
#include "runtime/loop.h"
#include "runtime/timer.h"
#include "tests/runtime/test_util.h"

namespace evactor {
namespace {

using ::evactor::test::AllBackends;
using ::evactor::test::BackendParamName;
using ::evactor::test::BackendTest;
using ::evactor::test::Block;
using ::evactor::test::ClosedFdNumber;
using ::evactor::test::Drain;
using ::evactor::test::Returned;
using ::evactor::test::SocketPair;
using ::evactor::test::Stopwatch;
using ::evactor::test::WriteBytes;

class IoWatcherTest : public BackendTest {};

struct Call {
  uint32_t bits;
  absl::Duration at;  // loop time since the test's start
};

TEST_P(IoWatcherTest, InvalidArgumentsLeaveTheWatcherStopped) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  IoWatcher negative(*loop, -1, kRead, [](uint32_t) {});
  absl::Status s = negative.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(negative.started());

  IoWatcher no_interest(*loop, sp.watched(), 0, [](uint32_t) {});
  s = no_interest.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(no_interest.started());
  EXPECT_EQ(loop->pending_count(), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
}

// A bad fd is an error status for that watcher; the loop keeps running.
TEST_P(IoWatcherTest, BadFdIsAnErrorAndTheLoopKeepsRunning) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int bad_calls = 0;
  IoWatcher bad(*loop, ClosedFdNumber(), kRead, [&](uint32_t) { ++bad_calls; });
  absl::Status s = bad.Start();
  EXPECT_EQ(s.code(), absl::ErrnoToStatusCode(EBADF)) << s;
  EXPECT_FALSE(bad.started());
  EXPECT_EQ(loop->pending_count(), 0);

  SocketPair sp;
  ASSERT_TRUE(WriteBytes(sp.peer()));
  int good_calls = 0;
  IoWatcher good(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    if (bits & kRead) ++good_calls;
    good.Stop();
  });
  ASSERT_TRUE(good.Start().ok());
  int timer_calls = 0;
  Timer t(*loop, [&](uint32_t) { ++timer_calls; });
  t.Start(absl::Milliseconds(20));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(good_calls, 1);
  EXPECT_EQ(timer_calls, 1);
  EXPECT_EQ(bad_calls, 0);
}

TEST_P(IoWatcherTest, FdBeyondFdSetSizeIsOutOfRangeOnSelectOnly) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int high = fcntl(sp.watched(), F_DUPFD_CLOEXEC, FD_SETSIZE + 10);
  ASSERT_GE(high, FD_SETSIZE) << "cannot open an fd above FD_SETSIZE: errno " << errno;
  int calls = 0;
  uint32_t seen = 0;
  IoWatcher w(*loop, high, kRead, [&](uint32_t bits) {
    ++calls;
    seen |= bits;
    w.Stop();
  });
  absl::Status s = w.Start();
  if (is_select()) {
    EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
    EXPECT_FALSE(w.started());
  } else {
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(WriteBytes(sp.peer()));
    EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, kRead);
  }
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  close(high);
}

// epoll cannot watch regular files (EPERM); poll and select report them ready.
TEST_P(IoWatcherTest, RegularFileIsEpermOnEpollAndAlwaysReadyElsewhere) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/io_watcher_test_XXXXXX";
  int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0) << errno;
  unlink(path.c_str());
  int calls = 0;
  uint32_t seen = 0;
  IoWatcher w(*loop, fd, kRead, [&](uint32_t bits) {
    ++calls;
    seen |= bits;
    w.Stop();
  });
  absl::Status s = w.Start();
  if (is_epoll()) {
    EXPECT_EQ(s.code(), absl::ErrnoToStatusCode(EPERM)) << s;
    EXPECT_FALSE(w.started());
    EXPECT_EQ(loop->pending_count(), 0);
  } else {
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, kRead);
  }
  close(fd);
}

TEST_P(IoWatcherTest, EdgeTriggeringIsEpollOnly) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  IoWatcher et(*loop, sp.watched(), kRead, [](uint32_t) {}, {.edge_triggered = true});
  absl::Status s = et.Start();
  if (is_epoll()) {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_TRUE(et.started());
    EXPECT_TRUE(et.edge_triggered());
  } else {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_FALSE(et.started());
  }
}

TEST_P(IoWatcherTest, ClosedInterestIsFailedPreconditionOnSelect) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  IoWatcher closed(*loop, sp.watched(), kRead | kClosed, [](uint32_t) {});
  absl::Status s = closed.Start();
  if (is_select()) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_FALSE(closed.started());
    EXPECT_EQ(loop->pending_count(), 0);
  } else {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_TRUE(closed.started());
  }
}

TEST_P(IoWatcherTest, PersistentWatcherStaysStartedAcrossCallbacks) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int calls = 0;
  std::vector<bool> started_inside;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    ++calls;
    started_inside.push_back(w.started());
    EXPECT_EQ(bits, kRead);
    EXPECT_EQ(Drain(sp.watched()), 1);
    if (calls < 3) {
      EXPECT_TRUE(WriteBytes(sp.peer()));
    } else {
      w.Stop();
    }
  });
  EXPECT_TRUE(w.persistent());
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(sp.peer()));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 3);
  EXPECT_THAT(started_inside, ::testing::ElementsAre(true, true, true));
  EXPECT_FALSE(w.started());
}

// A one-shot watcher is stopped just before its callback runs, and runs once even
// though its fd stays readable.
TEST_P(IoWatcherTest, OneShotWatcherIsStoppedBeforeItsCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int calls = 0;
  bool started_inside = true;
  bool pending_inside = true;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t) {
                ++calls;
                started_inside = w.started();
                pending_inside = w.pending();
              },
              {.persistent = false});
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(sp.peer()));  // never read
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(started_inside);
  EXPECT_FALSE(pending_inside);
  EXPECT_EQ(loop->pending_count(), 0);
}

// Re-arming a one-shot watcher inside its callback works and costs no kernel
// registration change (the changes are collected and cancel out).
TEST_P(IoWatcherTest, OneShotRearmedInsideItsCallbackCostsNoSystemCall) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  std::vector<uint64_t> changes_at_call;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t) {
                changes_at_call.push_back(loop->stats().backend_changes);
                if (changes_at_call.size() < 3) {
                  EXPECT_TRUE(w.Start().ok());
                }
              },
              {.persistent = false});
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(sp.peer()));  // never read: each re-arm fires again
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(changes_at_call.size(), 3u);
  EXPECT_EQ(changes_at_call[1], changes_at_call[0]);
  EXPECT_EQ(changes_at_call[2], changes_at_call[0]);
}

// libevent main/nonpersist_readd: two one-shot watchers re-add each other; afterwards
// exactly the one re-added last is pending.
TEST_P(IoWatcherTest, OneShotWatchersReAddingEachOtherLeaveExactPendingState) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair a;
  SocketPair b;
  IoWatcher* last_added = nullptr;
  int calls = 0;
  std::unique_ptr<IoWatcher> wa;
  std::unique_ptr<IoWatcher> wb;
  auto make = [&](SocketPair& sp, std::unique_ptr<IoWatcher>& self,
                  std::unique_ptr<IoWatcher>& other) {
    self = std::make_unique<IoWatcher>(
        *loop, sp.watched(), kRead,
        [&sp, &self, &other, &last_added, &calls](uint32_t bits) {
          ++calls;
          EXPECT_EQ(bits, kRead);
          EXPECT_FALSE(self->started()) << "removed before its callback";
          EXPECT_GT(Drain(sp.watched()), 0);
          EXPECT_TRUE(other->Start().ok());
          last_added = other.get();
        },
        IoOptions{.persistent = false});
  };
  make(a, wa, wb);
  make(b, wb, wa);
  ASSERT_TRUE(WriteBytes(a.peer()));
  ASSERT_TRUE(WriteBytes(b.peer()));
  ASSERT_TRUE(wa->Start().ok());
  ASSERT_TRUE(wb->Start().ok());
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  ASSERT_EQ(calls, 2);
  ASSERT_NE(last_added, nullptr);
  IoWatcher* other = last_added == wa.get() ? wb.get() : wa.get();
  EXPECT_TRUE(last_added->started());
  EXPECT_FALSE(other->started());
  EXPECT_EQ(loop->pending_count(), 1);
}

// libevent main/persistent_active_timeout: a 200 ms persistent watcher activated by
// hand at 100 ms reports the activation, then times out at ~300 and ~500 ms.
TEST_P(IoWatcherTest, ActivationRestartsThePersistentTimeout) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;  // stays idle
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<Call> calls;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t bits) {
                calls.push_back({bits, loop->Now() - t0});
                if (calls.size() == 3) w.Stop();
              },
              {.timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(w.Start().ok());
  absl::Duration activated_at;
  Timer activate(*loop, [&](uint32_t) {
    activated_at = loop->Now() - t0;
    w.Activate(kRead);
  });
  activate.Start(absl::Milliseconds(100));

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_TRUE(calls[0].bits & kRead);
  EXPECT_FALSE(calls[0].bits & kTimeout);
  EXPECT_EQ(calls[0].bits & ~(kRead | kActivated), 0u);
  EXPECT_GE(calls[0].at, absl::Milliseconds(100));
  EXPECT_LT(calls[0].at, absl::Milliseconds(100 + 150));

  EXPECT_EQ(calls[1].bits, kTimeout);
  EXPECT_GE(calls[1].at - activated_at, absl::Milliseconds(200));
  EXPECT_LT(calls[1].at - activated_at, absl::Milliseconds(200 + 150));
  EXPECT_EQ(calls[2].bits, kTimeout);
  EXPECT_GE(calls[2].at - activated_at, absl::Milliseconds(400));
  EXPECT_LT(calls[2].at - activated_at, absl::Milliseconds(400 + 150));
}

// Readiness restarts a persistent watcher's timeout from now.
TEST_P(IoWatcherTest, ReadinessRestartsThePersistentTimeout) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<Call> calls;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t bits) {
                calls.push_back({bits, loop->Now() - t0});
                if (bits & kRead) Drain(sp.watched());
                if (calls.size() == 2) w.Stop();
              },
              {.timeout = absl::Milliseconds(100)});
  ASSERT_TRUE(w.Start().ok());
  Timer writer(*loop, [&](uint32_t) { EXPECT_TRUE(WriteBytes(sp.peer())); });
  writer.Start(absl::Milliseconds(60));

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].bits, kRead);
  EXPECT_GE(calls[0].at, absl::Milliseconds(60));
  EXPECT_EQ(calls[1].bits, kTimeout);
  EXPECT_GE(calls[1].at - calls[0].at, absl::Milliseconds(100));
  EXPECT_LT(calls[1].at - calls[0].at, absl::Milliseconds(100 + 150));
}

TEST_P(IoWatcherTest, IdlePersistentWatcherTimesOutRepeatedly) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<Call> calls;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t bits) {
                calls.push_back({bits, loop->Now() - t0});
                EXPECT_TRUE(w.started());
                if (calls.size() == 2) w.Stop();
              },
              {.timeout = absl::Milliseconds(40)});
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].bits, kTimeout);
  EXPECT_EQ(calls[1].bits, kTimeout);
  EXPECT_GE(calls[0].at, absl::Milliseconds(40));
  EXPECT_GE(calls[1].at, absl::Milliseconds(80));
  EXPECT_LT(calls[1].at, absl::Milliseconds(80 + 150));
}

// Start() on a started watcher only restarts its timeout; Start(nullopt) drops it.
TEST_P(IoWatcherTest, StartOnAStartedWatcherRestartsTheTimeout) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<Call> calls;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t bits) {
                calls.push_back({bits, loop->Now() - t0});
              },
              {.persistent = false, .timeout = absl::Milliseconds(100)});
  int untimed_calls = 0;
  IoWatcher untimed(*loop, sp.watched(), kRead, [&](uint32_t) { ++untimed_calls; },
                    {.persistent = false, .timeout = absl::Milliseconds(30)});
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(untimed.Start(std::nullopt).ok());
  Timer restart(*loop, [&](uint32_t) { EXPECT_TRUE(w.Start().ok()); });
  restart.Start(absl::Milliseconds(60));
  Timer end(*loop, [&](uint32_t) { untimed.Stop(); });
  end.Start(absl::Milliseconds(250));

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].bits, kTimeout);
  EXPECT_GE(calls[0].at, absl::Milliseconds(160));
  EXPECT_LT(calls[0].at, absl::Milliseconds(160 + 150));
  EXPECT_EQ(untimed_calls, 0);
}

// libevent main/event_timeout_lost: readiness activated by hand and an expired timeout
// before the callback's turn arrive as one call with both bits.
TEST_P(IoWatcherTest, ActivationAndTimeoutBitsAreMerged) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  std::vector<uint32_t> calls;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) { calls.push_back(bits); },
              {.persistent = false, .timeout = absl::Milliseconds(50)});
  ASSERT_TRUE(w.Start().ok());
  w.Activate(kRead);
  EXPECT_TRUE(w.pending());
  Block(absl::Milliseconds(100));  // the timeout expires before the loop runs
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0] & (kRead | kTimeout), kRead | kTimeout);
}

TEST_P(IoWatcherTest, ActivateMergesWithReadinessIntoOneCall) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  std::vector<uint32_t> calls;
  IoWatcher w(*loop, sp.watched(), kRead | kWrite, [&](uint32_t bits) { calls.push_back(bits); },
              {.persistent = false});
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(sp.peer()));
  w.Activate(kTimeout);
  w.Activate(kRead);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0] & (kRead | kWrite | kTimeout), kRead | kWrite | kTimeout);
}

// libevent main/event_remove_timeout: RemoveTimeout() keeps readiness watched and the
// callback never sees kTimeout.
TEST_P(IoWatcherTest, RemoveTimeoutKeepsReadinessWatched) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<Call> calls;
  IoWatcher w(*loop, sp.watched(), kRead,
              [&](uint32_t bits) {
                calls.push_back({bits, loop->Now() - t0});
                Drain(sp.watched());
                w.Stop();
              },
              {.timeout = absl::Milliseconds(50)});
  ASSERT_TRUE(w.Start().ok());
  w.RemoveTimeout();
  EXPECT_TRUE(w.started());
  EXPECT_TRUE(w.pending());
  Timer writer(*loop, [&](uint32_t) { EXPECT_TRUE(WriteBytes(sp.peer())); });
  writer.Start(absl::Milliseconds(150));

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].bits, kRead);
  EXPECT_GE(calls[0].at, absl::Milliseconds(150));
}

TEST_P(IoWatcherTest, ShutdownIsSeenAsReadableEof) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  std::vector<uint32_t> calls;
  ssize_t got = -2;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    calls.push_back(bits);
    char c;
    got = read(sp.watched(), &c, 1);
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_EQ(shutdown(sp.peer(), SHUT_WR), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], kRead);
  EXPECT_EQ(got, 0);  // EOF
}

TEST_P(IoWatcherTest, PeerCloseIsSeenAsReadableEof) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  std::vector<uint32_t> calls;
  ssize_t got = -2;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    calls.push_back(bits);
    char c;
    got = read(sp.watched(), &c, 1);
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  sp.Close(1);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(calls[0] & kRead);
  EXPECT_EQ(calls[0] & ~(kRead | kWrite), 0u);  // only what it could ask for
  EXPECT_EQ(got, 0);
}

// libevent main/simpleclose_*: kClosed reports the peer's hang-up (shutdown and close)
// on epoll and poll; select cannot watch for it.
TEST_P(IoWatcherTest, PeerHangUpIsReportedAsClosed) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair by_shutdown;
  SocketPair by_close;
  std::vector<uint32_t> shutdown_calls;
  std::vector<uint32_t> close_calls;
  IoWatcher ws(*loop, by_shutdown.watched(), kClosed, [&](uint32_t bits) {
    shutdown_calls.push_back(bits);
    ws.Stop();
  });
  IoWatcher wc(*loop, by_close.watched(), kClosed, [&](uint32_t bits) {
    close_calls.push_back(bits);
    wc.Stop();
  });
  absl::Status s1 = ws.Start();
  absl::Status s2 = wc.Start();
  if (is_select()) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s1)) << s1;
    EXPECT_TRUE(absl::IsFailedPrecondition(s2)) << s2;
    EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
    return;
  }
  ASSERT_TRUE(s1.ok()) << s1;
  ASSERT_TRUE(s2.ok()) << s2;
  // Data alone does not wake a kClosed-only watcher.
  ASSERT_TRUE(WriteBytes(by_shutdown.peer()));
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_TRUE(shutdown_calls.empty());

  ASSERT_EQ(shutdown(by_shutdown.peer(), SHUT_WR), 0);
  by_close.Close(1);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(shutdown_calls.size(), 1u);
  ASSERT_EQ(close_calls.size(), 1u);
  EXPECT_EQ(shutdown_calls[0], kClosed);
  EXPECT_TRUE(close_calls[0] & kClosed);
  EXPECT_EQ(close_calls[0] & (kRead | kWrite), 0u) << "not asked for";
}

// libevent main/multiple_events_for_same_fd: separate read and write watchers on one
// fd each get their own bits, and stopping one leaves the other watching.
TEST_P(IoWatcherTest, SeparateReadAndWriteWatchersOnOneFd) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  ASSERT_TRUE(WriteBytes(sp.peer()));  // readable, and writable anyway
  std::vector<uint32_t> reads;
  std::vector<uint32_t> writes;
  IoWatcher r(*loop, sp.watched(), kRead, [&](uint32_t bits) { reads.push_back(bits); },
              {.persistent = false});
  IoWatcher w(*loop, sp.watched(), kWrite, [&](uint32_t bits) { writes.push_back(bits); },
              {.persistent = false});
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(reads, ::testing::ElementsAre(kRead));
  EXPECT_THAT(writes, ::testing::ElementsAre(kWrite));

  EXPECT_FALSE(r.started());
  EXPECT_FALSE(w.started());
  Drain(sp.watched());

  // Both registered with the kernel; stopping the writer keeps the reader watching.
  std::vector<uint32_t> preads;
  std::vector<uint32_t> pwrites;
  IoWatcher pr(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    preads.push_back(bits);
    Drain(sp.watched());
  });
  IoWatcher pw(*loop, sp.watched(), kWrite, [&](uint32_t bits) { pwrites.push_back(bits); });
  ASSERT_TRUE(pr.Start().ok());
  ASSERT_TRUE(pw.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_THAT(pwrites, ::testing::ElementsAre(kWrite));
  EXPECT_TRUE(preads.empty());
  pw.Stop();
  ASSERT_TRUE(WriteBytes(sp.peer()));
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_THAT(preads, ::testing::ElementsAre(kRead));
  EXPECT_EQ(pwrites.size(), 1u);

  // And stopping the reader keeps the writer: unread data no longer wakes anyone
  // but the writer.
  ASSERT_TRUE(pw.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(pwrites.size(), 2u);
  pr.Stop();
  ASSERT_TRUE(WriteBytes(sp.peer()));
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(preads.size(), 1u);
  EXPECT_THAT(pwrites, ::testing::ElementsAre(kWrite, kWrite, kWrite));
  pw.Stop();
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
}

// libevent et/et: an edge-triggered watcher fires once per edge, a level-triggered one
// on every iteration while the data stays unread.
TEST_P(IoWatcherTest, EdgeTriggeredFiresOncePerEdgeLevelTriggeredAgain) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair a;
  SocketPair b;
  int et_calls = 0;
  int lt_calls = 0;
  IoWatcher et(*loop, a.watched(), kRead, [&](uint32_t) { ++et_calls; }, {.edge_triggered = true});
  IoWatcher lt(*loop, b.watched(), kRead, [&](uint32_t) { ++lt_calls; });
  absl::Status s = et.Start();
  if (!is_epoll()) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_FALSE(et.started());
    return;
  }
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(lt.Start().ok());
  ASSERT_TRUE(WriteBytes(a.peer()));
  ASSERT_TRUE(WriteBytes(b.peer()));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(et_calls, 1);
  EXPECT_EQ(lt_calls, 5);

  ASSERT_TRUE(WriteBytes(a.peer()));  // a new edge
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(et_calls, 2);
}

// libevent et/et_multiple_events: stopping some edge-triggered watchers of an fd keeps
// edge triggering for the rest.
TEST_P(IoWatcherTest, StoppingOneEdgeWatcherKeepsEdgeForTheOthers) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int r1 = 0;
  int r2 = 0;
  int wr = 0;
  IoWatcher read1(*loop, sp.watched(), kRead, [&](uint32_t) { ++r1; }, {.edge_triggered = true});
  IoWatcher read2(*loop, sp.watched(), kRead, [&](uint32_t) { ++r2; }, {.edge_triggered = true});
  IoWatcher write(*loop, sp.watched(), kWrite, [&](uint32_t) { ++wr; }, {.edge_triggered = true});
  absl::Status s = read1.Start();
  if (!is_epoll()) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_TRUE(absl::IsFailedPrecondition(read2.Start()));
    EXPECT_TRUE(absl::IsFailedPrecondition(write.Start()));
    EXPECT_EQ(loop->pending_count(), 0);
    return;
  }
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(read2.Start().ok());
  ASSERT_TRUE(write.Start().ok());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(wr, 1);  // writable: one edge
  EXPECT_EQ(r1, 0);

  read1.Stop();
  write.Stop();
  ASSERT_TRUE(WriteBytes(sp.peer()));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(r1, 0);
  EXPECT_EQ(r2, 1);
  EXPECT_EQ(wr, 1);
  EXPECT_TRUE(read2.edge_triggered());
}

// libevent et/et_mix_error: edge and level watchers cannot share an fd.
TEST_P(IoWatcherTest, MixingEdgeAndLevelOnOneFdIsInvalid) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  IoWatcher et(*loop, sp.watched(), kRead, [](uint32_t) {}, {.edge_triggered = true});
  IoWatcher lt(*loop, sp.watched(), kWrite, [](uint32_t) {});
  absl::Status s = et.Start();
  if (!is_epoll()) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_TRUE(lt.Start().ok());  // level triggering alone is fine
    return;
  }
  ASSERT_TRUE(s.ok()) << s;
  s = lt.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(lt.started());
  EXPECT_TRUE(et.started());

  // Once the edge watcher is gone the fd's mode is free again, and the other way round.
  et.Stop();
  ASSERT_TRUE(lt.Start().ok());
  s = et.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(et.started());
  EXPECT_EQ(loop->pending_count(), 1);
}

// Closing an fd while its watcher is started: the loop keeps running, the watcher
// hears nothing more on epoll (poll and select report kRead|kWrite so the owner
// notices), and it can be stopped afterwards.
TEST_P(IoWatcherTest, FdClosedWhileRegistered) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int calls = 0;
  uint32_t seen = 0;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    ++calls;
    seen |= bits;
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));  // registered
  EXPECT_EQ(calls, 0);
  sp.Close(0);
  int guard_calls = 0;
  Timer guard(*loop, [&](uint32_t) {
    ++guard_calls;
    w.Stop();
  });
  guard.Start(absl::Milliseconds(50));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(guard_calls, 1);
  EXPECT_FALSE(w.started());
  if (is_epoll()) {
    EXPECT_EQ(calls, 0);
  } else {
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(seen & kRead);
  }
}

// libevent main/dup_fd: dup'ed fds are tracked independently; closing one (epoll's
// dup/close pitfall) does not make its watcher hear the other's events.
TEST_P(IoWatcherTest, DupedFdsAreTrackedIndependently) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int dup_fd = dup(sp.watched());
  ASSERT_GE(dup_fd, 0);
  int orig_calls = 0;
  uint32_t orig_seen = 0;
  int dup_calls = 0;
  uint32_t dup_seen = 0;
  IoWatcher orig(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    ++orig_calls;
    orig_seen |= bits;
    orig.Stop();
  });
  IoWatcher dupw(*loop, dup_fd, kRead, [&](uint32_t bits) {
    ++dup_calls;
    dup_seen |= bits;
    Drain(dup_fd);
    dupw.Stop();
  });
  ASSERT_TRUE(orig.Start().ok());
  ASSERT_TRUE(dupw.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  sp.Close(0);  // the file stays open through dup_fd
  ASSERT_TRUE(WriteBytes(sp.peer()));
  Timer guard(*loop, [&](uint32_t) {
    orig.Stop();
    dupw.Stop();
  });
  guard.Start(absl::Milliseconds(50));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(dup_calls, 1);
  EXPECT_EQ(dup_seen, kRead);
  if (is_epoll()) {
    // epoll(7): the registration belongs to the open file, which the dup keeps
    // open, so the kernel goes on reporting it under the closed number. The header
    // documents this; the watcher hears the dup's data once (it stops itself).
    EXPECT_EQ(orig_calls, 1);
    EXPECT_EQ(orig_seen, kRead);
  } else {
    EXPECT_EQ(orig_calls, 1);  // poll/select report the closed fd so its owner notices
    EXPECT_TRUE(orig_seen & kRead);
  }
  close(dup_fd);
}

// An fd number reused for another file after a close works once set_fd() rebinds.
TEST_P(IoWatcherTest, SetFdRebindsAfterTheNumberIsReused) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair first;
  SocketPair second;
  const int number = first.watched();
  int calls = 0;
  IoWatcher w(*loop, number, kRead, [&](uint32_t bits) {
    EXPECT_EQ(bits, kRead);
    ++calls;
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));  // registered
  first.Close(0);                                                   // closed while started
  w.Stop();
  ASSERT_EQ(dup2(second.watched(), number), number);  // the number now names `second`
  w.set_fd(number);
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(second.peer()));
  Timer guard(*loop, [&](uint32_t) { w.Stop(); });
  guard.Start(absl::Milliseconds(300));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 1);
  close(number);
}

TEST_P(IoWatcherTest, SetFdMovesAStoppedWatcherToAnotherFd) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair first;
  SocketPair second;
  std::vector<int> fired_on;
  IoWatcher w(*loop, first.watched(), kRead, [&](uint32_t) {
    fired_on.push_back(w.fd());
    Drain(w.fd());
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  w.Stop();
  w.set_fd(second.watched());
  EXPECT_EQ(w.fd(), second.watched());
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WriteBytes(first.peer()));
  ASSERT_TRUE(WriteBytes(second.peer()));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(fired_on, ::testing::ElementsAre(second.watched()));
}

// Destroying a watcher inside its own callback (ASan proves no use-after-free).
TEST_P(IoWatcherTest, WatcherDestroyedInsideItsOwnCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  int calls = 0;
  std::unique_ptr<IoWatcher> w;
  w = std::make_unique<IoWatcher>(
      *loop, sp.watched(), kRead | kWrite,
      [&w, &calls](uint32_t) {
        ++calls;
        w.reset();
      },
      IoOptions{.timeout = absl::Milliseconds(10)});
  ASSERT_TRUE(w->Start().ok());
  ASSERT_TRUE(WriteBytes(sp.peer()));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(loop->pending_count(), 0);
}

// Two ready watchers that destroy each other: exactly one runs.
TEST_P(IoWatcherTest, WatcherDestroyedByAnotherReadyWatcherDoesNotRun) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair a;
  SocketPair b;
  int calls = 0;
  std::unique_ptr<IoWatcher> wa;
  std::unique_ptr<IoWatcher> wb;
  wa = std::make_unique<IoWatcher>(*loop, a.watched(), kRead, [&](uint32_t) {
    ++calls;
    wb.reset();
    Drain(a.watched());
  });
  wb = std::make_unique<IoWatcher>(*loop, b.watched(), kRead, [&](uint32_t) {
    ++calls;
    wa.reset();
    Drain(b.watched());
  });
  ASSERT_TRUE(wa->Start().ok());
  ASSERT_TRUE(wb->Start().ok());
  ASSERT_TRUE(WriteBytes(a.peer()));
  ASSERT_TRUE(WriteBytes(b.peer()));
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE((wa == nullptr) != (wb == nullptr));
  wa.reset();
  wb.reset();
  EXPECT_EQ(loop->pending_count(), 0);
}

TEST_P(IoWatcherTest, MoreUrgentWatcherRunsFirst) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/2);
  ASSERT_NE(loop, nullptr);
  SocketPair a;
  SocketPair b;
  std::vector<std::string> order;
  IoWatcher low(*loop, a.watched(), kRead, [&](uint32_t) { order.push_back("low"); },
                {.persistent = false, .priority = 1});
  IoWatcher high(*loop, b.watched(), kRead, [&](uint32_t) { order.push_back("high"); },
                 {.persistent = false, .priority = 0});
  ASSERT_TRUE(low.Start().ok());
  ASSERT_TRUE(high.Start().ok());
  ASSERT_TRUE(WriteBytes(a.peer()));
  ASSERT_TRUE(WriteBytes(b.peer()));
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_THAT(order, ::testing::ElementsAre("high"));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ::testing::ElementsAre("high", "low"));
}

TEST_P(IoWatcherTest, CommonTimeoutWorksForWatchers) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  ASSERT_TRUE(loop->UseCommonTimeout(absl::Milliseconds(40)).ok());
  SocketPair sp;
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<int> order;
  std::vector<absl::Duration> at;
  std::vector<std::unique_ptr<IoWatcher>> ws;
  for (int i = 0; i < 5; ++i) {
    ws.push_back(std::make_unique<IoWatcher>(
        *loop, sp.watched(), kRead,
        [&, i](uint32_t bits) {
          EXPECT_EQ(bits, kTimeout);
          order.push_back(i);
          at.push_back(loop->Now() - t0);
        },
        IoOptions{.persistent = false, .timeout = absl::Milliseconds(40)}));
    ASSERT_TRUE(ws.back()->Start().ok());
  }
  ws[2]->Stop();
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ::testing::ElementsAre(0, 1, 3, 4));
  for (absl::Duration d : at) EXPECT_GE(d, absl::Milliseconds(40));
}

INSTANTIATE_TEST_SUITE_P(Backends, IoWatcherTest, AllBackends(), BackendParamName);

}  // namespace
}  // namespace evactor
