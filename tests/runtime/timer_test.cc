// Tests for evactor::Timer (runtime/timer.h): deadlines and their order, periodic
// cadence without catch-up storms, activation, restarts and cancellation from
// callbacks, and common timeouts. Every case runs on epoll, poll and select.
#include "runtime/timer.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/events.h"
#include "runtime/loop.h"
#include "tests/runtime/test_util.h"

namespace evactor {
namespace {

using ::evactor::test::AllBackends;
using ::evactor::test::BackendParamName;
using ::evactor::test::BackendTest;
using ::evactor::test::Block;
using ::evactor::test::Returned;
using ::testing::ElementsAre;

class TimerTest : public BackendTest {};

TEST_P(TimerTest, OneShotFiresOnceAtItsDeadline) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<uint32_t> bits_seen;
  absl::Duration at;
  bool pending_inside = true;
  Timer t(*loop, [&](uint32_t bits) {
    bits_seen.push_back(bits);
    at = loop->Now() - t0;
    pending_inside = t.pending();
  });
  EXPECT_FALSE(t.pending());
  t.Start(absl::Milliseconds(50));
  EXPECT_TRUE(t.pending());
  EXPECT_FALSE(t.periodic());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(bits_seen, ElementsAre(kTimeout));
  EXPECT_GE(at, absl::Milliseconds(50));
  EXPECT_LT(at, absl::Milliseconds(50 + 150));
  EXPECT_FALSE(pending_inside);
  EXPECT_FALSE(t.pending());
}

// A timer set for 0 (or less) fires in the next iteration, not in the current one.
TEST_P(TimerTest, ZeroAndNegativeDelaysFireInTheNextIteration) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer c(*loop, [&](uint32_t) { order.push_back("c"); });
  Timer a(*loop, [&](uint32_t) {
    order.push_back("a");
    c.Start(absl::ZeroDuration());
  });
  Timer b(*loop, [&](uint32_t) { order.push_back("b"); });
  a.Start(absl::ZeroDuration());
  b.Start(absl::Seconds(-1));
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("a", "b"));
  EXPECT_TRUE(c.pending());
  EXPECT_TRUE(Returned(loop->RunNonBlocking(), RunResult::kDone));
  EXPECT_THAT(order, ElementsAre("a", "b", "c"));
}

TEST_P(TimerTest, StartRestartsAPendingTimer) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<absl::Duration> at;
  Timer t(*loop, [&](uint32_t) { at.push_back(loop->Now() - t0); });
  t.Start(absl::Milliseconds(20));
  t.Start(absl::Milliseconds(120));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(at.size(), 1u);
  EXPECT_GE(at[0], absl::Milliseconds(120));
  EXPECT_LT(at[0], absl::Milliseconds(120 + 150));
}

// libevent's heap test at scale: 10,000 timers fire in deadline order, and those with
// equal deadlines in the order they were started.
TEST_P(TimerTest, TenThousandTimersFireInDeadlineOrder) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  constexpr int kTimers = 10000;
  std::vector<absl::Duration> delay(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    // 500 distinct delays in 0..199.6 ms, 20 timers each, in scrambled order.
    delay[i] = absl::Microseconds(400) * ((i * 7919) % 500);
  }
  std::vector<int> fired;
  fired.reserve(kTimers);
  std::vector<std::unique_ptr<Timer>> timers;
  timers.reserve(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>(*loop, [&fired, i](uint32_t) { fired.push_back(i); }));
  }
  // No UpdateTime() in between: every Start() reads the same cached Now().
  for (int i = 0; i < kTimers; ++i) timers[i]->Start(delay[i]);

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  std::vector<int> want(kTimers);
  std::iota(want.begin(), want.end(), 0);
  std::stable_sort(want.begin(), want.end(), [&](int x, int y) { return delay[x] < delay[y]; });
  ASSERT_EQ(fired.size(), want.size());
  EXPECT_TRUE(fired == want) << "first mismatch at position "
                             << (std::mismatch(fired.begin(), fired.end(), want.begin()).first -
                                 fired.begin());
}

// Equal deadlines fire in start order; restarting a timer moves it behind the others.
TEST_P(TimerTest, EqualDeadlinesFireInStartOrder) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 100; ++i) {
    timers.push_back(std::make_unique<Timer>(*loop, [&fired, i](uint32_t) { fired.push_back(i); }));
    timers.back()->Start(absl::Milliseconds(10));
  }
  timers[0]->Start(absl::Milliseconds(10));  // same deadline (same cached Now), later start
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  std::vector<int> want;
  for (int i = 1; i < 100; ++i) want.push_back(i);
  want.push_back(0);
  EXPECT_EQ(fired, want);
}

// Timers that cancel each other: whichever runs first stops the other.
TEST_P(TimerTest, TimersThatCancelEachOther) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> fired;
  Timer a(*loop, [](uint32_t) {});
  Timer b(*loop, [](uint32_t) {});
  Timer c(*loop, [](uint32_t) {});
  Timer d(*loop, [](uint32_t) {});
  a.set_callback([&](uint32_t) {
    fired.push_back("a");
    b.Stop();
  });
  b.set_callback([&](uint32_t) {
    fired.push_back("b");
    a.Stop();
  });
  c.set_callback([&](uint32_t) {
    fired.push_back("c");
    d.Stop();
  });
  d.set_callback([&](uint32_t) {
    fired.push_back("d");
    c.Stop();
  });
  a.Start(absl::Milliseconds(10));  // same deadline as b, started first
  b.Start(absl::Milliseconds(10));
  d.Start(absl::Milliseconds(60));
  c.Start(absl::Milliseconds(30));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(fired, ElementsAre("a", "c"));
  EXPECT_FALSE(b.pending());
  EXPECT_FALSE(d.pending());
}

TEST_P(TimerTest, OneShotRestartedInsideItsOwnCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int calls = 0;
  std::vector<bool> pending_after_restart;
  Timer t(*loop, [&](uint32_t bits) {
    EXPECT_EQ(bits, kTimeout);
    if (++calls < 3) {
      t.Start(absl::Milliseconds(5));
      pending_after_restart.push_back(t.pending());
    }
  });
  t.Start(absl::Milliseconds(5));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 3);
  EXPECT_THAT(pending_after_restart, ElementsAre(true, true));
}

TEST_P(TimerTest, PeriodicStoppedInsideItsOwnCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<absl::Duration> at;
  Timer t(*loop, [&](uint32_t bits) {
    EXPECT_EQ(bits, kTimeout);
    EXPECT_TRUE(t.pending());  // a periodic timer stays pending in its callback
    at.push_back(loop->Now() - t0);
    if (at.size() == 3) t.Stop();
  });
  t.StartPeriodic(absl::Milliseconds(20));
  EXPECT_TRUE(t.periodic());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[0], absl::Milliseconds(20));
  EXPECT_GE(at[1], absl::Milliseconds(40));
  EXPECT_GE(at[2], absl::Milliseconds(60));
  EXPECT_FALSE(t.pending());
}

// Periodic timers keep their cadence: after a late tick the next deadline is the
// previous deadline + interval, not now + interval.
TEST_P(TimerTest, PeriodicKeepsItsCadenceAfterALateTick) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<absl::Duration> at;
  Timer periodic(*loop, [&](uint32_t) {
    at.push_back(loop->Now() - t0);
    if (at.size() == 2) periodic.Stop();
  });
  // Busy from 90 ms to ~170 ms: the 100 ms tick runs late, at ~170 ms.
  Timer blocker(*loop, [](uint32_t) { Block(absl::Milliseconds(80)); });
  periodic.StartPeriodic(absl::Milliseconds(100));
  blocker.Start(absl::Milliseconds(90));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(at.size(), 2u);
  EXPECT_GE(at[0], absl::Milliseconds(170));
  EXPECT_GE(at[1], absl::Milliseconds(200));
  // From the schedule: ~200 ms. From now (the bug): >= 270 ms.
  EXPECT_LT(at[1], absl::Milliseconds(265));
}

// libevent main/persistent_timeout_jump: a 100 ms periodic timer whose loop was
// blocked for 300 ms fires once, not in a burst, and continues from now.
TEST_P(TimerTest, PeriodicFiresOnceAfterAStallNoCatchUpStorm) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<absl::Duration> at;
  Timer t(*loop, [&](uint32_t) {
    at.push_back(loop->Now() - t0);
    if (at.size() == 1) Block(absl::Milliseconds(300));  // misses 200, 300 and 400
    if (at.size() == 3) t.Stop();
  });
  t.StartPeriodic(absl::Milliseconds(100));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[0], absl::Milliseconds(100));
  EXPECT_GE(at[1], absl::Milliseconds(400));
  // One tick after the stall, then the period again: no burst of missed ticks.
  EXPECT_GE(at[2] - at[1], absl::Milliseconds(90));
  EXPECT_LT(at[2] - at[1], absl::Milliseconds(100 + 150));
}

// libevent main/persistent_active_timeout, for a timer: activation at 100 ms restarts
// the 200 ms period from then.
TEST_P(TimerTest, ActivatingAPeriodicTimerRestartsItsPeriod) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<uint32_t> bits_seen;
  std::vector<absl::Duration> at;
  Timer periodic(*loop, [&](uint32_t bits) {
    bits_seen.push_back(bits);
    at.push_back(loop->Now() - t0);
    if (at.size() == 3) periodic.Stop();
  });
  absl::Duration activated_at;
  Timer activate(*loop, [&](uint32_t) {
    activated_at = loop->Now() - t0;
    periodic.Activate();
  });
  periodic.StartPeriodic(absl::Milliseconds(200));
  activate.Start(absl::Milliseconds(100));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(at.size(), 3u);
  EXPECT_TRUE(bits_seen[0] & kActivated);
  EXPECT_FALSE(bits_seen[0] & kTimeout);
  EXPECT_LT(at[0], absl::Milliseconds(100 + 150));
  EXPECT_EQ(bits_seen[1], kTimeout);
  EXPECT_GE(at[1] - activated_at, absl::Milliseconds(200));
  EXPECT_LT(at[1] - activated_at, absl::Milliseconds(200 + 150));
  EXPECT_EQ(bits_seen[2], kTimeout);
  EXPECT_GE(at[2] - activated_at, absl::Milliseconds(400));
  EXPECT_LT(at[2] - activated_at, absl::Milliseconds(400 + 150));
}

// Activate() on a timer: one call with kActivated and the given bits ORed; Stop()
// removes a pending activation.
TEST_P(TimerTest, ActivateMergesBitsAndStopCancelsIt) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<uint32_t> calls;
  int cancelled_calls = 0;
  Timer t(*loop, [&](uint32_t bits) { calls.push_back(bits); });
  Timer cancelled(*loop, [&](uint32_t) { ++cancelled_calls; });
  t.Activate(kRead);
  t.Activate(kWrite);
  EXPECT_TRUE(t.pending());
  cancelled.Activate();
  EXPECT_TRUE(cancelled.pending());
  cancelled.Stop();
  EXPECT_FALSE(cancelled.pending());
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(calls, ElementsAre(kActivated | kRead | kWrite));
  EXPECT_EQ(cancelled_calls, 0);
}

// Activated by hand, then its deadline passes before its turn: one call, both bits.
TEST_P(TimerTest, ActivationAndExpiryBeforeItsTurnAreMerged) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<uint32_t> calls;
  Timer t(*loop, [&](uint32_t bits) { calls.push_back(bits); });
  t.Start(absl::Milliseconds(20));
  t.Activate();
  Block(absl::Milliseconds(60));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], kActivated | kTimeout);
}

TEST_P(TimerTest, PriorityDecidesWhichExpiredTimerRunsFirst) {
  std::unique_ptr<Loop> loop = NewLoop(/*priorities=*/4);
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  Timer late_urgent(
      *loop, [&](uint32_t) { order.push_back("urgent"); }, 0);
  Timer early_default(*loop, [&](uint32_t) { order.push_back("default"); });
  Timer early_lazy(*loop, [&](uint32_t) { order.push_back("lazy"); });
  early_lazy.set_priority(3);
  early_default.Start(absl::Milliseconds(5));
  early_lazy.Start(absl::Milliseconds(5));
  late_urgent.Start(absl::Milliseconds(10));
  Block(absl::Milliseconds(30));  // all three expire in the first iteration
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("urgent", "default", "lazy"));
}

// Many timers of one common duration: they fire in start order, and stopping some
// in the middle of the FIFO removes exactly those.
TEST_P(TimerTest, CommonTimeoutFiresInOrderAndCancelsFromTheMiddle) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  const absl::Duration common = absl::Milliseconds(50);
  ASSERT_TRUE(loop->UseCommonTimeout(common).ok());
  ASSERT_TRUE(loop->UseCommonTimeout(common).ok());  // idempotent
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<std::string> fired;
  std::vector<absl::Duration> at;
  constexpr int kTimers = 1000;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>(*loop, [&, i](uint32_t bits) {
      EXPECT_EQ(bits, kTimeout);
      fired.push_back(std::to_string(i));
      at.push_back(loop->Now() - t0);
    }));
    timers.back()->Start(common);
    if (i == kTimers / 2) {
      Block(absl::Milliseconds(2));
      loop->UpdateTime();  // the second half has later deadlines
    }
  }
  Timer before(*loop, [&](uint32_t) { fired.push_back("before"); });
  Timer after(*loop, [&](uint32_t) { fired.push_back("after"); });
  before.Start(absl::Milliseconds(30));
  after.Start(absl::Milliseconds(90));
  std::vector<std::string> want = {"before"};
  for (int i = 0; i < kTimers; ++i) {
    if (i % 3 == 1 && i > 100 && i < 900) {
      timers[i]->Stop();
    } else {
      want.push_back(std::to_string(i));
    }
  }
  want.push_back("after");
  timers[0]->Stop();         // the head of the FIFO
  timers[0]->Start(common);  // restarted: now the tail
  want.erase(std::find(want.begin(), want.end(), "0"));
  want.insert(want.end() - 1, "0");

  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(fired.size(), want.size());
  auto diff = std::mismatch(fired.begin(), fired.end(), want.begin());
  EXPECT_TRUE(diff.first == fired.end()) << "at position " << (diff.first - fired.begin())
                                         << ": fired " << *diff.first << ", want " << *diff.second;
  for (absl::Duration d : at) EXPECT_GE(d, common);
}

// A timer moves between the common FIFO and the heap when restarted with another
// duration.
TEST_P(TimerTest, TimerMovesBetweenCommonTimeoutAndHeap) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  ASSERT_TRUE(loop->UseCommonTimeout(absl::Milliseconds(40)).ok());
  ASSERT_TRUE(loop->UseCommonTimeout(absl::Milliseconds(70)).ok());
  loop->UpdateTime();
  const absl::Time t0 = loop->Now();
  std::vector<std::pair<std::string, absl::Duration>> fired;
  Timer to_heap(*loop, [&](uint32_t) { fired.push_back({"to_heap", loop->Now() - t0}); });
  Timer to_common(*loop, [&](uint32_t) { fired.push_back({"to_common", loop->Now() - t0}); });
  Timer across(*loop, [&](uint32_t) { fired.push_back({"across", loop->Now() - t0}); });
  to_heap.Start(absl::Milliseconds(40));
  to_heap.Start(absl::Milliseconds(100));
  to_common.Start(absl::Milliseconds(150));
  to_common.Start(absl::Milliseconds(40));
  across.Start(absl::Milliseconds(40));
  across.Start(absl::Milliseconds(70));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[0].first, "to_common");
  EXPECT_GE(fired[0].second, absl::Milliseconds(40));
  EXPECT_EQ(fired[1].first, "across");
  EXPECT_GE(fired[1].second, absl::Milliseconds(70));
  EXPECT_EQ(fired[2].first, "to_heap");
  EXPECT_GE(fired[2].second, absl::Milliseconds(100));
}

TEST_P(TimerTest, AtMost256CommonTimeouts) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  for (int i = 1; i <= 256; ++i) {
    absl::Status s = loop->UseCommonTimeout(absl::Milliseconds(i));
    ASSERT_TRUE(s.ok()) << i << ": " << s;
  }
  absl::Status s = loop->UseCommonTimeout(absl::Milliseconds(257));
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_TRUE(loop->UseCommonTimeout(absl::Milliseconds(17)).ok());  // already known
  int calls = 0;
  Timer t(*loop, [&](uint32_t) { ++calls; });
  t.Start(absl::Milliseconds(3));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(calls, 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, TimerTest, AllBackends(), BackendParamName);

}  // namespace
}  // namespace evactor
