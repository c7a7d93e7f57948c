// Tests for evactor::Loop (runtime/loop.h): run modes, Exit/Break, priorities,
// once-calls, deferred calls, the time cache, ownership, backend selection and fork.
// Every case runs on epoll, poll and select.
#include "runtime/loop.h"

#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/events.h"
#include "runtime/io_watcher.h"
#include "runtime/signal_watcher.h"
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
using ::evactor::test::ScopedEnv;
using ::evactor::test::SocketPair;
using ::evactor::test::Stopwatch;
using ::evactor::test::WriteBytes;
using ::testing::ElementsAre;

class LoopTest : public BackendTest {};

TEST_P(LoopTest, ReportsItsBackendAndPriorities) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  const char* want = GetParam() == BackendKind::kEpoll  ? "epoll"
                     : GetParam() == BackendKind::kPoll ? "poll"
                                                        : "select";
  EXPECT_EQ(loop->backend_name(), want);
  EXPECT_EQ(BackendName(GetParam()), want);
  EXPECT_EQ(loop->priorities(), 1);
  EXPECT_EQ(loop->default_priority(), 0);
  EXPECT_TRUE(loop->IsOwnerThread());

  std::unique_ptr<Loop> eight = NewLoop(/*priorities=*/8);
  ASSERT_NE(eight, nullptr);
  EXPECT_EQ(eight->priorities(), 8);
  EXPECT_EQ(eight->default_priority(), 4);
}

TEST_P(LoopTest, LoopWithNothingToDoReturnsNoEventsAtOnce) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  // Handles that exist but are not started keep nothing going.
  Timer never_started(*loop, [](uint32_t) {});
  Timer stopped(*loop, [](uint32_t) {});
  stopped.Start(absl::Hours(1));
  stopped.Stop();
  EXPECT_EQ(loop->pending_count(), 0);

  Stopwatch sw;
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(100));
  EXPECT_FALSE(loop->GotExit());
  EXPECT_FALSE(loop->GotBreak());
}

TEST_P(LoopTest, PendingCountTracksHandlesThatKeepTheLoopGoing) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SocketPair sp;
  Timer t(*loop, [](uint32_t) {});
  IoWatcher w(*loop, sp.watched(), kRead, [](uint32_t) {});
  EXPECT_EQ(loop->pending_count(), 0);
  t.Start(absl::Hours(1));
  EXPECT_EQ(loop->pending_count(), 1);
  t.Start(absl::Hours(2));  // a restart is still one pending handle
  EXPECT_EQ(loop->pending_count(), 1);
  ASSERT_TRUE(w.Start().ok());
  EXPECT_EQ(loop->pending_count(), 2);
  loop->RunInLoop([] {});
  EXPECT_EQ(loop->pending_count(), 3);
  w.Stop();
  t.Stop();
  EXPECT_EQ(loop->pending_count(), 1);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(loop->pending_count(), 0);
}

TEST_P(LoopTest, RunOnceRunsOneIteration) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int soon = 0;
  int late = 0;
  Timer a(*loop, [&](uint32_t) { ++soon; });
  Timer b(*loop, [&](uint32_t) { ++late; });
  Stopwatch sw;
  loop->UpdateTime();
  a.Start(absl::Milliseconds(30));
  b.Start(absl::Seconds(5));

  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(30));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(30 + 150));
  EXPECT_EQ(soon, 1);
  EXPECT_EQ(late, 0);
  EXPECT_TRUE(b.pending());
}

TEST_P(LoopTest, RunNonBlockingDoesNotWait) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int later = 0;
  int now = 0;
  Timer t(*loop, [&](uint32_t) { ++later; });
  Timer zero(*loop, [&](uint32_t) { ++now; });
  t.Start(absl::Milliseconds(300));
  zero.Start(absl::ZeroDuration());

  Stopwatch sw;
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(100));
  EXPECT_EQ(now, 1);
  EXPECT_EQ(later, 0);
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(100));
  EXPECT_EQ(later, 0);
}

TEST_P(LoopTest, StatsCountIterationsAndCallbacks) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  Timer a(*loop, [](uint32_t) {});
  Timer b(*loop, [](uint32_t) {});
  Timer later(*loop, [](uint32_t) {});
  later.Start(absl::Hours(1));  // keeps the loop from running out of events
  const Loop::Stats before = loop->stats();
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(loop->stats().iterations, before.iterations + 1);
  EXPECT_EQ(loop->stats().callbacks, before.callbacks + 2);
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_EQ(loop->stats().iterations, before.iterations + 2);
  EXPECT_EQ(loop->stats().callbacks, before.callbacks + 2);

  // With nothing pending there is no iteration to run.
  later.Stop();
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kNoEvents));
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kNoEvents));
}

// libevent main/loopexit: Exit(300 ms) ends the loop on time although a timer a day
// away is pending; GotExit() is set, GotBreak() is not.
TEST_P(LoopTest, ExitAfterDelayEndsTheLoopDespiteADayLongTimer) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  bool day_fired = false;
  Timer day(*loop, [&](uint32_t) { day_fired = true; });
  day.Start(absl::Hours(24));

  Stopwatch sw;
  loop->UpdateTime();
  loop->Exit(absl::Milliseconds(300));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(300));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(300 + 150));
  EXPECT_TRUE(loop->GotExit());
  EXPECT_FALSE(loop->GotBreak());
  EXPECT_FALSE(day_fired);
  EXPECT_TRUE(day.pending());
}

// libevent main/loopexit_multiple: entering Run resets GotExit()/GotBreak().
TEST_P(LoopTest, EnteringRunResetsExitAndBreakFlags) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  Timer day(*loop, [](uint32_t) {});
  day.Start(absl::Hours(24));
  Timer breaker(*loop, [&](uint32_t) { loop->Break(); });

  breaker.Start(absl::ZeroDuration());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kBreak));
  EXPECT_TRUE(loop->GotBreak());
  EXPECT_FALSE(loop->GotExit());

  loop->Exit(absl::Milliseconds(20));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  EXPECT_TRUE(loop->GotExit());
  EXPECT_FALSE(loop->GotBreak());

  day.Stop();
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_FALSE(loop->GotExit());
  EXPECT_FALSE(loop->GotBreak());
}

// Exit() without delay: the callbacks already active in this iteration still run,
// nothing of the next iteration does.
TEST_P(LoopTest, ExitWithoutDelayFinishesTheCurrentIteration) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer day(*loop, [](uint32_t) {});
  day.Start(absl::Hours(24));
  Timer next(*loop, [&](uint32_t) {
    order.push_back("next");
    day.Stop();
  });
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    loop->Exit();
    next.Start(absl::ZeroDuration());  // fires in the next iteration, not this one
  });
  Timer b(*loop, [&](uint32_t) { order.push_back("b"); });
  Timer c(*loop, [&](uint32_t) { order.push_back("c"); });
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  c.Start(absl::ZeroDuration());

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  EXPECT_THAT(order, ElementsAre("a", "b", "c"));
  EXPECT_TRUE(next.pending());

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("a", "b", "c", "next"));
}

// run_forever keeps Run() waiting with nothing pending; without it the same loop
// returns kNoEvents at once. The watcher that ends the wait does not keep the loop
// alive itself (set_keeps_loop_alive(false)); another thread makes its fd readable.
TEST_P(LoopTest, RunForeverWaitsWithNothingPending) {
  for (bool forever : {false, true}) {
    SCOPED_TRACE(forever ? "run_forever" : "default");
    std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/1, /*run_forever=*/forever);
    ASSERT_NE(loop, nullptr);
    SocketPair sp;
    int woke = 0;
    IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t) {
      ++woke;
      Drain(sp.watched());
      loop->Break();
    });
    w.set_keeps_loop_alive(false);
    ASSERT_TRUE(w.Start().ok());
    EXPECT_EQ(loop->pending_count(), 0);
    Stopwatch sw;
    std::thread writer([fd = sp.peer()] {
      absl::SleepFor(absl::Milliseconds(100));
      WriteBytes(fd);
    });
    absl::StatusOr<RunResult> result = loop->Run();
    const absl::Duration elapsed = sw.Elapsed();
    writer.join();
    if (forever) {
      EXPECT_TRUE(Returned(result, RunResult::kBreak));
      EXPECT_GE(elapsed, absl::Milliseconds(90));
      EXPECT_LT(elapsed, absl::Milliseconds(100 + 150));
      EXPECT_EQ(woke, 1);
    } else {
      EXPECT_TRUE(Returned(result, RunResult::kNoEvents));
      EXPECT_LT(elapsed, absl::Milliseconds(90));
      EXPECT_EQ(woke, 0);
    }
  }
}

TEST_P(LoopTest, ExitWithDelayEndsARunForeverLoop) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/1, /*run_forever=*/true);
  ASSERT_NE(loop, nullptr);
  Stopwatch sw;
  loop->UpdateTime();
  loop->Exit(absl::Milliseconds(50));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(50));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(50 + 150));
  EXPECT_TRUE(loop->GotExit());
}

// Break() ends Run after the running callback; the others stay active for the next Run.
TEST_P(LoopTest, BreakLeavesOtherActiveCallbacksForTheNextRun) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    loop->Break();
  });
  Timer b(*loop, [&](uint32_t) { order.push_back("b"); });
  Timer c(*loop, [&](uint32_t) { order.push_back("c"); });
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  c.Start(absl::ZeroDuration());

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kBreak));
  EXPECT_THAT(order, ElementsAre("a"));
  EXPECT_TRUE(loop->GotBreak());
  EXPECT_FALSE(loop->GotExit());
  EXPECT_TRUE(b.pending());
  EXPECT_TRUE(c.pending());

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("a", "b", "c"));
  EXPECT_FALSE(loop->GotBreak());
}

// libevent main/bad_reentrant.
TEST_P(LoopTest, ReentrantRunFailsWithFailedPrecondition) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<absl::Status> inner;
  Timer t(*loop, [&](uint32_t) {
    inner.push_back(loop->Run().status());
    inner.push_back(loop->RunOnce().status());
    inner.push_back(loop->RunNonBlocking().status());
  });
  t.Start(absl::ZeroDuration());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(inner.size(), 3u);
  for (const absl::Status& s : inner) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  }
}

// libevent main/priority_active_inversion: with 8 priorities, A (4) activates B (4)
// and then C (0); C preempts B.
TEST_P(LoopTest, MoreUrgentActivationPreemptsTheRunningPriority) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/8);
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer b(
      *loop, [&](uint32_t) { order.push_back("B"); }, 4);
  Timer c(
      *loop, [&](uint32_t) { order.push_back("C"); }, 0);
  Timer a(
      *loop,
      [&](uint32_t) {
        order.push_back("A");
        b.Activate();
        c.Activate();
      },
      4);
  a.Activate();
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("A", "C", "B"));
}

TEST_P(LoopTest, RunOnceRunsOnlyTheMostUrgentReadyPriority) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/2);
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer low(
      *loop, [&](uint32_t) { order.push_back("low"); }, 1);
  Timer high(
      *loop, [&](uint32_t) { order.push_back("high"); }, 0);
  Timer high2(
      *loop, [&](uint32_t) { order.push_back("high2"); }, 0);
  low.Start(absl::ZeroDuration());
  high.Start(absl::ZeroDuration());
  high2.Start(absl::ZeroDuration());
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("high", "high2"));
  EXPECT_TRUE(low.pending());
  EXPECT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("high", "high2", "low"));
}

// libevent's max_dispatch_interval(callbacks): at most N callbacks per iteration; the
// rest stay active, in order, and the iteration's end-of-iteration work (deferred
// callbacks) runs between the chunks.
TEST_P(LoopTest, MaxDispatchCallbacksSplitsAQueueAcrossIterations) {
  LoopOptions o = Options();
  o.max_dispatch_callbacks = 2;
  auto loop = Loop::Create(o).value();
  std::vector<std::string> order;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 5; ++i) {
    timers.push_back(std::make_unique<Timer>(*loop, [&order, i, &loop](uint32_t) {
      order.push_back(absl::StrCat("t", i));
      loop->Defer([&order, i] { order.push_back(absl::StrCat("d", i)); });
    }));
    timers.back()->Activate();
  }
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("t0", "t1", "d0", "d1"));
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("t0", "t1", "d0", "d1", "t2", "t3", "d2", "d3", "t4", "d4"));
  EXPECT_EQ(loop->stats().iterations, 3u);
}

// The limit applies from dispatch_limit_min_priority on: more urgent queues run whole.
TEST_P(LoopTest, MaxDispatchCallbacksSparesMoreUrgentPriorities) {
  LoopOptions o = Options(/*priorities=*/2);
  o.max_dispatch_callbacks = 1;
  o.dispatch_limit_min_priority = 1;
  auto loop = Loop::Create(o).value();
  int urgent = 0;
  int other = 0;
  Timer u1(*loop, [&](uint32_t) { ++urgent; }, 0);
  Timer u2(*loop, [&](uint32_t) { ++urgent; }, 0);
  Timer u3(*loop, [&](uint32_t) { ++urgent; }, 0);
  Timer o1(*loop, [&](uint32_t) { ++other; }, 1);
  Timer o2(*loop, [&](uint32_t) { ++other; }, 1);
  for (Timer* t : {&u1, &u2, &u3, &o1, &o2}) t->Activate();
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_EQ(urgent, 3);  // priority 0: not limited
  EXPECT_EQ(other, 0);
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_EQ(other, 1);  // priority 1: one per iteration
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_EQ(other, 2);
}

// libevent's max_dispatch_interval(time): the loop polls again once the interval has
// passed, even with callbacks left.
TEST_P(LoopTest, MaxDispatchIntervalBoundsAnIterationsCallbackTime) {
  LoopOptions o = Options();
  o.max_dispatch_interval = absl::Milliseconds(5);
  auto loop = Loop::Create(o).value();
  int ran = 0;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 10; ++i) {
    timers.push_back(std::make_unique<Timer>(*loop, [&ran](uint32_t) {
      ++ran;
      absl::SleepFor(absl::Milliseconds(2));
    }));
    timers.back()->Activate();
  }
  ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  // 2 ms each: the third callback takes it past 5 ms (a slow machine may stop sooner
  // but never runs all ten).
  EXPECT_GE(ran, 1);
  EXPECT_LE(ran, 3);
  while (ran < 10) ASSERT_TRUE(Returned(loop->RunOnce(), RunResult::kDone));
  EXPECT_EQ(ran, 10);
}

TEST_P(LoopTest, NegativeDispatchLimitsAreRefused) {
  LoopOptions o = Options();
  o.max_dispatch_callbacks = -1;
  EXPECT_EQ(Loop::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.max_dispatch_interval = absl::Milliseconds(-1);
  EXPECT_EQ(Loop::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// libevent main/priorities: strict priorities may starve the less urgent ones.
TEST_P(LoopTest, UrgentWorkStarvesLessUrgentPriorities) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/3);
  ASSERT_NE(loop, nullptr);
  int high_runs = 0;
  int low_runs = 0;
  int low_runs_when_high_done = -1;
  Timer low(
      *loop, [&](uint32_t) { ++low_runs; }, 2);
  Timer high(
      *loop,
      [&](uint32_t) {
        ++high_runs;
        if (high_runs < 200) {
          high.Activate();
        } else {
          low_runs_when_high_done = low_runs;
          loop->Break();
        }
      },
      0);
  low.Activate();
  high.Activate();
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kBreak));
  EXPECT_EQ(high_runs, 200);
  EXPECT_EQ(low_runs_when_high_done, 0);
  EXPECT_TRUE(low.pending());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(low_runs, 1);
}

// Stopping another handle that is ready in the same iteration: it must not run.
TEST_P(LoopTest, StoppedReadyHandleDoesNotRun) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer b(*loop, [&](uint32_t) { order.push_back("b"); });
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    b.Stop();
  });
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("a"));
  EXPECT_FALSE(b.pending());
}

// Destroying another ready handle inside a callback (ASan proves no use-after-free).
TEST_P(LoopTest, DestroyedReadyHandleDoesNotRun) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  SocketPair sp;
  ASSERT_TRUE(WriteBytes(sp.peer()));
  auto b = std::make_unique<Timer>(*loop, [&](uint32_t) { order.push_back("b"); });
  auto w = std::make_unique<IoWatcher>(
      *loop, sp.watched(), kRead, [&](uint32_t) { order.push_back("w"); },
      IoOptions{.persistent = false});
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    b.reset();
    w.reset();
  });
  a.Start(absl::ZeroDuration());
  b->Start(absl::ZeroDuration());
  ASSERT_TRUE(w->Start().ok());
  // The one-shot watcher's fd is ready too: it may run before a, never after.
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(std::count(order.begin(), order.end(), "a"), 1);
  EXPECT_EQ(std::count(order.begin(), order.end(), "b"), 0);
  EXPECT_LE(std::count(order.begin(), order.end(), "w"), 1);
  EXPECT_EQ(order.back(), "a");  // w, if it ran, ran before a destroyed it
  EXPECT_EQ(loop->pending_count(), 0);
}

// A handle destroyed inside its own callback (ASan proves no use-after-free).
TEST_P(LoopTest, HandleDestroyedInsideItsOwnCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int once_runs = 0;
  int periodic_runs = 0;
  int after_runs = 0;
  std::unique_ptr<Timer> once;
  std::unique_ptr<Timer> periodic;
  once = std::make_unique<Timer>(*loop, [&once, &once_runs](uint32_t) {
    ++once_runs;
    once.reset();  // nothing of the callback is touched after this
  });
  periodic = std::make_unique<Timer>(*loop, [&periodic, &periodic_runs](uint32_t) {
    if (++periodic_runs == 2) periodic.reset();
  });
  Timer after(*loop, [&](uint32_t) { ++after_runs; });
  once->Start(absl::ZeroDuration());
  periodic->StartPeriodic(absl::Milliseconds(5));
  after.Start(absl::Milliseconds(40));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(once_runs, 1);
  EXPECT_EQ(periodic_runs, 2);
  EXPECT_EQ(after_runs, 1);
  EXPECT_EQ(once, nullptr);
  EXPECT_EQ(periodic, nullptr);
}

TEST_P(LoopTest, RunInLoopRunsOnceAtTheDefaultPriority) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/3);
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer high(
      *loop, [&](uint32_t) { order.push_back("high"); }, 0);
  Timer low(
      *loop, [&](uint32_t) { order.push_back("low"); }, 2);
  low.Activate();
  high.Activate();
  loop->RunInLoop([&] {
    order.push_back("fn");
    loop->RunInLoop([&] { order.push_back("fn2"); });
  });
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], "high");
  EXPECT_EQ(order[1], "fn");
  // fn2 is queued at priority 1 while priority 1 runs; it still runs before "low".
  EXPECT_EQ(order[2], "fn2");
  EXPECT_EQ(order[3], "low");
  EXPECT_EQ(loop->pending_count(), 0);
}

TEST_P(LoopTest, OnceFiresOnReadinessBeforeItsTimeout) {
  SocketPair sp;
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  ASSERT_TRUE(WriteBytes(sp.peer()));
  std::vector<uint32_t> calls;
  Stopwatch sw;
  absl::Status s = loop->Once(sp.watched(), kRead, absl::Seconds(1),
                              [&](uint32_t bits) { calls.push_back(bits); });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(500));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(calls[0] & kRead);
  EXPECT_FALSE(calls[0] & kTimeout);
}

TEST_P(LoopTest, OnceFiresOnTimeoutWhenTheFdStaysIdle) {
  SocketPair sp;
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<uint32_t> calls;
  Stopwatch sw;
  loop->UpdateTime();
  absl::Status s = loop->Once(sp.watched(), kRead, absl::Milliseconds(50),
                              [&](uint32_t bits) { calls.push_back(bits); });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(50));
  EXPECT_LT(sw.Elapsed(), absl::Milliseconds(50 + 150));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(calls[0] & kTimeout);
  EXPECT_FALSE(calls[0] & kRead);
}

TEST_P(LoopTest, OnceWithoutAnFdIsATimer) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<uint32_t> calls;
  Stopwatch sw;
  loop->UpdateTime();
  absl::Status s =
      loop->Once(-1, 0, absl::Milliseconds(30), [&](uint32_t bits) { calls.push_back(bits); });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(30));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(calls[0] & kTimeout);
}

TEST_P(LoopTest, OnceReportsTheWatcherErrorAndNeverRuns) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int runs = 0;
  absl::Status s =
      loop->Once(ClosedFdNumber(), kRead, absl::Milliseconds(10), [&](uint32_t) { ++runs; });
  EXPECT_EQ(s.code(), absl::ErrnoToStatusCode(EBADF)) << s;
  // Neither an fd nor a timeout: nothing could ever run it.
  s = loop->Once(-1, kRead, std::nullopt, [&](uint32_t) { ++runs; });
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(loop->pending_count(), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(runs, 0);
}

// Counts its destruction (not that of moved-from copies).
class DestructionCounter {
 public:
  explicit DestructionCounter(int* count) : count_(count) {}
  DestructionCounter(DestructionCounter&& other) noexcept : count_(other.count_) {
    other.count_ = nullptr;
  }
  DestructionCounter& operator=(DestructionCounter&&) = delete;
  ~DestructionCounter() {
    if (count_ != nullptr) ++*count_;
  }

 private:
  int* count_;
};

// libevent main/event_once_never: once-events that never fired are freed by ~Loop
// without running.
TEST_P(LoopTest, OncesThatNeverRanAreFreedWithoutRunningByTheLoopDestructor) {
  SocketPair sp;
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int destroyed = 0;
  int ran = 0;
  ASSERT_TRUE(loop->Once(sp.watched(), kRead, std::nullopt,
                         [c = DestructionCounter(&destroyed), &ran](uint32_t) { ++ran; })
                  .ok());
  ASSERT_TRUE(loop->Once(-1, 0, absl::Hours(24),
                         [c = DestructionCounter(&destroyed), &ran](uint32_t) { ++ran; })
                  .ok());
  loop->Exit(absl::Milliseconds(20));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  loop->RunInLoop([c = DestructionCounter(&destroyed), &ran] { ++ran; });
  EXPECT_EQ(destroyed, 0);
  loop.reset();
  EXPECT_EQ(destroyed, 3);
  EXPECT_EQ(ran, 0);
}

TEST_P(LoopTest, OnceThatRanIsFreed) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int destroyed = 0;
  int ran = 0;
  ASSERT_TRUE(loop->Once(-1, 0, absl::ZeroDuration(),
                         [c = DestructionCounter(&destroyed), &ran](uint32_t) { ++ran; })
                  .ok());
  loop->RunInLoop([c = DestructionCounter(&destroyed), &ran] { ++ran; });
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(destroyed, 2);
}

// Defer runs after the iteration's active callbacks; a Defer queued by a deferred call
// goes to a later iteration.
TEST_P(LoopTest, DeferRunsAfterTheActiveCallbacks) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  uint64_t d1_iteration = 0;
  uint64_t d2_iteration = 0;
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    loop->Defer([&] {
      order.push_back("d1");
      d1_iteration = loop->stats().iterations;
      loop->Defer([&] {
        order.push_back("d2");
        d2_iteration = loop->stats().iterations;
      });
    });
  });
  Timer b(*loop, [&](uint32_t) { order.push_back("b"); });
  Timer c(*loop, [&](uint32_t) { order.push_back("c"); });
  Timer guard(*loop, [&](uint32_t) { order.push_back("guard"); });
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  c.Start(absl::ZeroDuration());
  guard.Start(absl::Milliseconds(50));  // keeps the loop iterating
  loop->Defer([&] { order.push_back("d0"); });

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_GE(order.size(), 6u);
  EXPECT_THAT(std::vector<std::string>(order.begin(), order.begin() + 5),
              ElementsAre("a", "b", "c", "d0", "d1"));
  EXPECT_EQ(std::count(order.begin(), order.end(), "d2"), 1);
  EXPECT_EQ(std::count(order.begin(), order.end(), "guard"), 1);
  EXPECT_GT(d2_iteration, d1_iteration);
}

// libevent main/gettimeofday_cached: Now() is cached for the iteration, UpdateTime()
// refreshes it, and it advances across iterations.
TEST_P(LoopTest, NowIsStableWithinAnIterationAndAdvancesAcross) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  absl::Time in_a;
  absl::Time in_b;
  absl::Time in_b_updated;
  absl::Time in_c;
  int64_t in_b_nanos = 0;
  Timer a(*loop, [&](uint32_t) {
    in_a = loop->Now();
    Block(absl::Milliseconds(20));
  });
  Timer b(*loop, [&](uint32_t) {
    in_b = loop->Now();
    in_b_nanos = loop->NowNanos();
    loop->UpdateTime();
    in_b_updated = loop->Now();
  });
  Timer c(*loop, [&](uint32_t) { in_c = loop->Now(); });
  a.Start(absl::ZeroDuration());
  b.Start(absl::ZeroDuration());
  c.Start(absl::Milliseconds(60));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));

  EXPECT_EQ(in_a, in_b);  // same iteration, although 20 ms went by
  EXPECT_EQ(absl::ToUnixNanos(in_b), in_b_nanos);
  EXPECT_GE(in_b_updated - in_b, absl::Milliseconds(20));
  EXPECT_GE(in_a, t0);
  EXPECT_GE(in_c - t0, absl::Milliseconds(60));
  EXPECT_GT(in_c, in_b_updated);
}

TEST_P(LoopTest, AttachToCurrentThreadMovesOwnership) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  EXPECT_TRUE(loop->IsOwnerThread());
  bool owner_before = true;
  bool owner_after = false;
  int fired = 0;
  std::optional<absl::StatusOr<RunResult>> result;
  std::thread th([&] {
    owner_before = loop->IsOwnerThread();
    loop->AttachToCurrentThread();
    owner_after = loop->IsOwnerThread();
    Timer t(*loop, [&](uint32_t) { ++fired; });
    t.Start(absl::Milliseconds(10));
    result = loop->Run();
  });
  th.join();
  EXPECT_FALSE(owner_before);
  EXPECT_TRUE(owner_after);
  EXPECT_EQ(fired, 1);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(Returned(*result, RunResult::kNoEvents));
  EXPECT_FALSE(loop->IsOwnerThread());
  loop->AttachToCurrentThread();
  EXPECT_TRUE(loop->IsOwnerThread());
}

// libevent main/fork: after ReinitAfterFork the child's watchers, timers and signals
// keep working, and the parent's loop is unharmed. The child reports by exit code.
TEST_P(LoopTest, ReinitAfterForkKeepsHandlesWorkingInTheChild) {
  SocketPair sp;
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int reads = 0;
  int timeouts = 0;
  int signals = 0;
  IoWatcher w(*loop, sp.watched(), kRead, [&](uint32_t bits) {
    if ((bits & kRead) && Drain(sp.watched()) > 0) ++reads;
    w.Stop();
  });
  Timer t(*loop, [&](uint32_t) { ++timeouts; });
  SignalWatcher sig(*loop, SIGUSR2, [&](int signo, int) {
    if (signo == SIGUSR2) ++signals;
    sig.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(sig.Start().ok());
  t.Start(absl::Hours(1));
  // Registers everything with the kernel before the fork.
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));

  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(5);  // a hung child dies, and the parent sees it
    if (!loop->ReinitAfterFork().ok()) _exit(10);
    t.Start(absl::Milliseconds(20));
    if (!WriteBytes(sp.peer())) _exit(11);
    if (raise(SIGUSR2) != 0) _exit(12);
    absl::StatusOr<RunResult> r = loop->Run();
    if (!r.ok() || *r != RunResult::kNoEvents) _exit(13);
    if (reads != 1) _exit(14);
    if (timeouts != 1) _exit(15);
    if (signals != 1) _exit(16);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10 reinit failed, 11/12 setup, 13 Run result, 14 read, 15 timer, 16 signal";

  // The parent's loop is unaffected by the child's re-initialisation.
  EXPECT_EQ(reads, 0);
  t.Start(absl::Milliseconds(10));
  ASSERT_TRUE(WriteBytes(sp.peer()));
  ASSERT_EQ(raise(SIGUSR2), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(timeouts, 1);
  EXPECT_EQ(signals, 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopTest, AllBackends(), BackendParamName);

// The debug owner-thread check.
class LoopDeathTest : public BackendTest {};

TEST_P(LoopDeathTest, RunFromAThreadThatDoesNotOwnTheLoopAborts) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  bool owner_elsewhere = true;
  std::thread([&] { owner_elsewhere = loop->IsOwnerThread(); }).join();
  EXPECT_FALSE(owner_elsewhere);
#ifdef NDEBUG
  GTEST_SKIP() << "the owner-thread check exists only in debug builds";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Timer t(*loop, [](uint32_t) {});
        t.Start(absl::Milliseconds(1));
        std::thread([&] { (void)loop->Run(); }).join();
      },
      "own");  // a message about the loop's owner thread
#endif
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopDeathTest, AllBackends(), BackendParamName);

// Backend selection through the environment (LoopOptions::ignore_env = false).
class LoopEnvTest : public BackendTest {
 protected:
  // The switches start unset whatever the caller's environment holds.
  ScopedEnv backend_{"EVACTOR_BACKEND", std::nullopt};
  ScopedEnv noepoll_{"EVACTOR_NOEPOLL", std::nullopt};
  ScopedEnv nopoll_{"EVACTOR_NOPOLL", std::nullopt};
  ScopedEnv noselect_{"EVACTOR_NOSELECT", std::nullopt};
};

TEST_P(LoopEnvTest, EvactorBackendChoosesTheBackend) {
  ScopedEnv env("EVACTOR_BACKEND", std::string(BackendName(GetParam())));
  absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_EQ((*loop)->backend(), GetParam());
  EXPECT_EQ((*loop)->backend_name(), BackendName(GetParam()));
}

TEST_P(LoopEnvTest, IgnoreEnvAndExplicitBackendOverrideTheEnvironment) {
  ScopedEnv env("EVACTOR_BACKEND", std::string(BackendName(GetParam())));
  absl::StatusOr<std::unique_ptr<Loop>> ignoring = Loop::Create(LoopOptions{.ignore_env = true});
  ASSERT_TRUE(ignoring.ok()) << ignoring.status();
  EXPECT_EQ((*ignoring)->backend_name(), "epoll");

  const BackendKind other =
      GetParam() == BackendKind::kSelect ? BackendKind::kPoll : BackendKind::kSelect;
  absl::StatusOr<std::unique_ptr<Loop>> expl = Loop::Create(LoopOptions{.backend = other});
  ASSERT_TRUE(expl.ok()) << expl.status();
  EXPECT_EQ((*expl)->backend(), other);
}

TEST_P(LoopEnvTest, NoSwitchesSkipBackends) {
  // Switch off every backend before the one under test: it is the one chosen.
  std::optional<ScopedEnv> noepoll;
  std::optional<ScopedEnv> nopoll;
  if (GetParam() != BackendKind::kEpoll) noepoll.emplace("EVACTOR_NOEPOLL", "1");
  if (GetParam() == BackendKind::kSelect) nopoll.emplace("EVACTOR_NOPOLL", "1");
  absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_EQ((*loop)->backend_name(), BackendName(GetParam()));

  // With ignore_env the switches do not apply.
  absl::StatusOr<std::unique_ptr<Loop>> ignoring = Loop::Create(LoopOptions{.ignore_env = true});
  ASSERT_TRUE(ignoring.ok()) << ignoring.status();
  EXPECT_EQ((*ignoring)->backend_name(), "epoll");
}

TEST_P(LoopEnvTest, EverySwitchOffFailsCreate) {
  ScopedEnv noepoll("EVACTOR_NOEPOLL", "1");
  ScopedEnv nopoll("EVACTOR_NOPOLL", "1");
  ScopedEnv noselect("EVACTOR_NOSELECT", "1");
  absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create();
  EXPECT_FALSE(loop.ok());
  // With ignore_env the switches do not apply: the backend under test is available.
  absl::StatusOr<std::unique_ptr<Loop>> ignoring = Loop::Create(Options());
  ASSERT_TRUE(ignoring.ok()) << ignoring.status();
  EXPECT_EQ((*ignoring)->backend(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopEnvTest, AllBackends(), BackendParamName);

// An extension that records when it is told, and can ask for another pass.
class RecordingExtension : public LoopExtension {
 public:
  explicit RecordingExtension(std::vector<std::string>* log) : log_(log) {}
  bool EndOfIteration() override {
    log_->push_back("end");
    if (more_passes_ == 0) return false;
    --more_passes_;
    return true;
  }
  int more_passes_ = 0;

 private:
  std::vector<std::string>* log_;
};

TEST(LoopExtensionTest, ToldOnceAtTheEndOfEveryIterationAfterCallbacksAndDeferred) {
  auto loop = Loop::Create({.ignore_env = true}).value();
  const int slot = Loop::NewExtensionSlot();
  EXPECT_NE(slot, Loop::NewExtensionSlot());  // every call a new slot
  EXPECT_EQ(loop->extension(slot), nullptr);
  std::vector<std::string> log;
  LoopExtension* ext = loop->SetExtension(slot, std::make_unique<RecordingExtension>(&log));
  EXPECT_EQ(loop->extension(slot), ext);
  loop->RunInLoop([&] {
    log.push_back("callback");
    loop->Defer([&] { log.push_back("deferred"); });
  });
  ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_EQ(log, (std::vector<std::string>{"callback", "deferred", "end"}));
  // Exit() still lets the iteration's extensions run before Run() returns.
  log.clear();
  loop->RunInLoop([&] {
    log.push_back("callback");
    loop->Exit();
  });
  ASSERT_TRUE(loop->Run().ok());
  EXPECT_EQ(log, (std::vector<std::string>{"callback", "end"}));
  loop->SetExtension(slot, nullptr);
  EXPECT_EQ(loop->extension(slot), nullptr);
}

TEST(LoopExtensionTest, AskingForAnotherPassKeepsTheLoopFromBlocking) {
  auto loop = Loop::Create({.ignore_env = true, .run_forever = true}).value();
  std::vector<std::string> log;
  auto* ext = static_cast<RecordingExtension*>(loop->SetExtension(
      Loop::NewExtensionSlot(), std::make_unique<RecordingExtension>(&log)));
  ext->more_passes_ = 3;
  // The first pass has a callback to run; after it nothing is pending and the loop
  // runs forever: without the extension's requests the next RunOnce would block
  // until the guard timer (10 s).
  Timer guard(*loop, [&](uint32_t) { loop->Exit(); });
  guard.Start(absl::Seconds(10));
  loop->RunInLoop([] {});
  const absl::Time start = absl::Now();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(loop->RunOnce().ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(log.size(), 4u);
  EXPECT_EQ(loop->stats().sleeps, 0u);  // no pass could block
}

}  // namespace
}  // namespace evactor
