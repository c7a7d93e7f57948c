// Tests for evactor::SignalWatcher (runtime/signal_watcher.h): delivery to one or
// several watchers and loops, arrivals between iterations, counts, restoring the
// original disposition, and lifetime inside callbacks. Every case runs on epoll,
// poll and select (the signal plumbing wakes the loop through its backend).
#include "runtime/signal_watcher.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
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
using ::evactor::test::Returned;
using ::evactor::test::Stopwatch;
using ::testing::ElementsAre;

class SignalWatcherTest : public BackendTest {};

// What a watcher heard: the signal numbers of its calls and the summed counts.
struct Heard {
  std::vector<int> signos;
  int total = 0;
};

TEST_P(SignalWatcherTest, SignalRaisedBeforeRunIsDelivered) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  Heard heard;
  SignalWatcher w(*loop, SIGUSR1, [&](int signo, int count) {
    heard.signos.push_back(signo);
    heard.total += count;
    w.Stop();
  });
  EXPECT_EQ(w.signo(), SIGUSR1);
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(w.started());
  ASSERT_EQ(raise(SIGUSR1), 0);  // arrives between iterations
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(heard.signos, ElementsAre(SIGUSR1));
  EXPECT_EQ(heard.total, 1);
  EXPECT_FALSE(w.started());
}

// Several arrivals before the loop runs may be merged; the counts add up.
TEST_P(SignalWatcherTest, CountsEveryArrival) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  Heard heard;
  SignalWatcher w(*loop, SIGUSR2, [&](int signo, int count) {
    heard.signos.push_back(signo);
    heard.total += count;
    if (heard.total >= 3) w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(raise(SIGUSR2), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(heard.total, 3);
  EXPECT_GE(heard.signos.size(), 1u);
  EXPECT_LE(heard.signos.size(), 3u);
}

TEST_P(SignalWatcherTest, EveryWatcherOnALoopHears) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int first = 0;
  int second = 0;
  SignalWatcher w1(*loop, SIGUSR1, [&](int, int count) { first += count; });
  SignalWatcher w2(*loop, SIGUSR1, [&](int, int count) { second += count; });
  ASSERT_TRUE(w1.Start().ok());
  ASSERT_TRUE(w2.Start().ok());
  Timer end(*loop, [&](uint32_t) {
    w1.Stop();
    w2.Stop();
  });
  ASSERT_EQ(raise(SIGUSR1), 0);
  end.Start(absl::Milliseconds(30));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);

  // With one stopped, the other still hears.
  ASSERT_TRUE(w1.Start().ok());
  ASSERT_TRUE(w2.Start().ok());
  w1.Stop();
  ASSERT_EQ(raise(SIGUSR1), 0);
  end.Start(absl::Milliseconds(30));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
}

// libevent signal/signal_while_processing: a signal raised inside a callback is
// delivered in a later pass of the same Run.
TEST_P(SignalWatcherTest, SignalRaisedInsideACallbackIsDelivered) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  SignalWatcher w(*loop, SIGUSR1, [&](int, int) {
    order.push_back("signal");
    w.Stop();
  });
  ASSERT_TRUE(w.Start().ok());
  Timer t(*loop, [&](uint32_t) {
    order.push_back("timer");
    ASSERT_EQ(raise(SIGUSR1), 0);
  });
  t.Start(absl::Milliseconds(10));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_THAT(order, ElementsAre("timer", "signal"));
}

// A started watcher keeps Run() going; a stopped one does not.
TEST_P(SignalWatcherTest, StartedWatcherKeepsTheLoopRunning) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  SignalWatcher w(*loop, SIGUSR2, [](int, int) {});
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(w.Start().ok());  // idempotent
  EXPECT_EQ(loop->pending_count(), 1);
  Stopwatch sw;
  loop->UpdateTime();
  loop->Exit(absl::Milliseconds(60));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
  EXPECT_GE(sw.Elapsed(), absl::Milliseconds(60));
  w.Stop();
  w.Stop();  // idempotent
  EXPECT_EQ(loop->pending_count(), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
}

TEST_P(SignalWatcherTest, UncatchableAndOutOfRangeSignalsAreInvalid) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  for (int signo : {SIGKILL, SIGSTOP, 0, -1, NSIG, 1000}) {
    SignalWatcher w(*loop, signo, [](int, int) {});
    absl::Status s = w.Start();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << "signal " << signo << ": " << s;
    EXPECT_FALSE(w.started());
  }
  EXPECT_EQ(loop->pending_count(), 0);
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
}

// Destroying a watcher inside its own callback (ASan proves no use-after-free); the
// other watcher of the signal keeps hearing it.
TEST_P(SignalWatcherTest, WatcherDestroyedInsideItsOwnCallback) {
  std::unique_ptr<Loop> loop = NewLoop();
  ASSERT_NE(loop, nullptr);
  int doomed_calls = 0;
  int survivor_calls = 0;
  std::unique_ptr<SignalWatcher> doomed;
  doomed = std::make_unique<SignalWatcher>(*loop, SIGUSR1, [&doomed, &doomed_calls](int, int) {
    ++doomed_calls;
    doomed.reset();
  });
  SignalWatcher survivor(*loop, SIGUSR1, [&](int, int count) {
    survivor_calls += count;
    if (survivor_calls == 2) survivor.Stop();
  });
  ASSERT_TRUE(doomed->Start().ok());
  ASSERT_TRUE(survivor.Start().ok());
  Timer again(*loop, [&](uint32_t) { ASSERT_EQ(raise(SIGUSR1), 0); });
  ASSERT_EQ(raise(SIGUSR1), 0);
  again.Start(absl::Milliseconds(20));
  EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents));
  EXPECT_EQ(doomed_calls, 1);
  EXPECT_EQ(doomed, nullptr);
  EXPECT_EQ(survivor_calls, 2);
}

// Two loops on two threads, each with its own watcher: both hear one signal.
TEST_P(SignalWatcherTest, EveryLoopOnEveryThreadHears) {
  constexpr int kLoops = 2;
  std::atomic<int> ready{0};
  std::atomic<int> heard[kLoops] = {0, 0};
  std::atomic<bool> timed_out[kLoops] = {false, false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kLoops; ++i) {
    threads.emplace_back([&, i] {
      std::unique_ptr<Loop> loop = NewLoop();
      if (loop == nullptr) {
        ready.fetch_add(1);
        return;
      }
      SignalWatcher w(*loop, SIGUSR1, [&](int signo, int count) {
        if (signo == SIGUSR1) heard[i].fetch_add(count);
        loop->Exit();
      });
      Timer guard(*loop, [&](uint32_t) {
        timed_out[i] = true;
        loop->Exit();
      });
      guard.Start(absl::Milliseconds(1500));
      EXPECT_TRUE(w.Start().ok());
      ready.fetch_add(1);
      EXPECT_TRUE(Returned(loop->Run(), RunResult::kExit));
    });
  }
  Stopwatch sw;
  while (ready.load() < kLoops && sw.Elapsed() < absl::Seconds(2)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(ready.load(), kLoops);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  for (std::thread& th : threads) th.join();
  for (int i = 0; i < kLoops; ++i) {
    EXPECT_EQ(heard[i].load(), 1) << "loop " << i;
    EXPECT_FALSE(timed_out[i].load()) << "loop " << i;
  }
}

std::atomic<int> g_custom_handler_calls{0};
void CustomHandler(int) { g_custom_handler_calls.fetch_add(1); }

void* CurrentHandler(int signo) {
  struct sigaction now = {};
  sigaction(signo, nullptr, &now);
  if (now.sa_flags & SA_SIGINFO) return reinterpret_cast<void*>(now.sa_sigaction);
  return reinterpret_cast<void*>(now.sa_handler);
}

// libevent signal/signal_restore: the disposition in place before the first watcher
// of the process started comes back when the last one stops, whichever loop it is on.
TEST_P(SignalWatcherTest, OriginalDispositionRestoredAfterTheLastWatcherStops) {
  struct sigaction custom = {};
  custom.sa_handler = &CustomHandler;
  sigemptyset(&custom.sa_mask);
  struct sigaction saved = {};
  ASSERT_EQ(sigaction(SIGUSR2, &custom, &saved), 0);
  g_custom_handler_calls = 0;
  void* const custom_ptr = reinterpret_cast<void*>(&CustomHandler);

  {
    std::unique_ptr<Loop> loop1 = NewLoop();
    std::unique_ptr<Loop> loop2 = NewLoop();
    ASSERT_NE(loop1, nullptr);
    ASSERT_NE(loop2, nullptr);
    int heard2 = 0;
    SignalWatcher w1(*loop1, SIGUSR2, [](int, int) {});
    auto w2 =
        std::make_unique<SignalWatcher>(*loop2, SIGUSR2, [&](int, int count) { heard2 += count; });
    ASSERT_TRUE(w1.Start().ok());
    EXPECT_NE(CurrentHandler(SIGUSR2), custom_ptr);
    ASSERT_TRUE(w2->Start().ok());
    w1.Stop();
    EXPECT_NE(CurrentHandler(SIGUSR2), custom_ptr) << "loop2's watcher still started";

    ASSERT_EQ(raise(SIGUSR2), 0);
    EXPECT_TRUE(Returned(loop2->RunNonBlocking(), RunResult::kDone));
    EXPECT_EQ(heard2, 1);
    EXPECT_EQ(g_custom_handler_calls.load(), 0);

    w2.reset();  // the last watcher in the process goes
    EXPECT_EQ(CurrentHandler(SIGUSR2), custom_ptr);
    ASSERT_EQ(raise(SIGUSR2), 0);
    EXPECT_EQ(g_custom_handler_calls.load(), 1);

    // Starting again saves it again; Stop restores it again.
    ASSERT_TRUE(w1.Start().ok());
    EXPECT_NE(CurrentHandler(SIGUSR2), custom_ptr);
    w1.Stop();
    EXPECT_EQ(CurrentHandler(SIGUSR2), custom_ptr);
  }
  ASSERT_EQ(sigaction(SIGUSR2, &saved, nullptr), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, SignalWatcherTest, AllBackends(), BackendParamName);

}  // namespace
}  // namespace evactor
