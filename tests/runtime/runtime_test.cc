// Runtime, Shard and Mailbox: placement, per-sender order, the wake-up protocol,
// full rings, and shutdown that accounts for every message.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/cpus.h"
#include "runtime/per_shard.h"
#include "runtime/runtime.h"
#include "runtime/signal_watcher.h"
#include "runtime/timer.h"
#include "tests/runtime/notification.h"
#include "tests/runtime/where_shard_runs.h"

namespace evactor {
namespace {

TEST(RuntimeTest, SubmitRunsOnTheTargetShardThread) {
  auto rt = Runtime::Create({.shards = 3}).value();
  ASSERT_EQ(rt->size(), 3);
  std::atomic<int> seen[3] = {-1, -1, -1};
  std::atomic<int> done{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(rt->SubmitTo(i, [&, i] {
                    Shard* s = Shard::Current();
                    seen[i] = s == nullptr ? -2 : s->id();
                    done++;
                  }).ok());
  }
  while (done.load() < 3) std::this_thread::yield();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(seen[i].load(), i);
  EXPECT_EQ(Shard::Current(), nullptr);
}

using test::WhereShardRuns;

TEST(RuntimeAffinityTest, NotPinnedByDefault) {
  auto rt = Runtime::Create({.shards = 2}).value();
  EXPECT_FALSE(rt->pinned());
  EXPECT_EQ(rt->shard(0).cpu(), -1);
  EXPECT_EQ(rt->shard(1).cpu(), -1);
  EXPECT_EQ(rt->ShardOnCpu(0), -1);
  EXPECT_EQ(WhereShardRuns(*rt, 0).second, static_cast<int>(test::AllowedCpus().size()));
}

TEST(RuntimeAffinityTest, PinnedShardsRunOnlyOnTheirCpu) {
  const std::vector<int> cpus = test::AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  const int n = static_cast<int>(std::min<size_t>(cpus.size(), 4));
  auto rt = Runtime::Create({.shards = n, .affinity = RuntimeOptions::Affinity::kPin});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_TRUE((*rt)->pinned());
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ((*rt)->shard(i).cpu(), cpus[i]);
    EXPECT_EQ((*rt)->ShardOnCpu(cpus[i]), i);
    const auto [cpu, allowed] = WhereShardRuns(**rt, i);
    EXPECT_EQ(cpu, cpus[i]) << "shard " << i;
    EXPECT_EQ(allowed, 1) << "shard " << i;
  }
  EXPECT_EQ((*rt)->ShardOnCpu(-1), -1);
  EXPECT_EQ((*rt)->ShardOnCpu(CPU_SETSIZE + 5), -1);
}

TEST(RuntimeAffinityTest, AutoPinsWhenThereAreEnoughCpus) {
  const std::vector<int> cpus = test::AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  auto rt = Runtime::Create({.shards = 1, .affinity = RuntimeOptions::Affinity::kAuto});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_TRUE((*rt)->pinned());
  EXPECT_EQ((*rt)->shard(0).cpu(), cpus[0]);
  EXPECT_EQ(WhereShardRuns(**rt, 0), std::make_pair(cpus[0], 1));
}

TEST(RuntimeAffinityTest, ExplicitCpuListIsFollowedInItsOrder) {
  const std::vector<int> cpus = test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  // Reversed: shard 0 on the higher CPU.
  auto rt = Runtime::Create(
      {.shards = 2, .affinity = RuntimeOptions::Affinity::kPin, .cpus = {cpus[1], cpus[0]}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(WhereShardRuns(**rt, 0).first, cpus[1]);
  EXPECT_EQ(WhereShardRuns(**rt, 1).first, cpus[0]);
  EXPECT_EQ((*rt)->ShardOnCpu(cpus[1]), 0);
}

TEST(RuntimeAffinityTest, MoreShardsThanCpus) {
  const int n = static_cast<int>(test::AllowedCpus().size()) + 1;
  // kPin refuses...
  auto pinned = Runtime::Create({.shards = n, .affinity = RuntimeOptions::Affinity::kPin});
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kInvalidArgument);
  // ...kAuto runs unpinned.
  auto rt = Runtime::Create({.shards = n, .affinity = RuntimeOptions::Affinity::kAuto});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_FALSE((*rt)->pinned());
  for (int i = 0; i < n; ++i) EXPECT_EQ((*rt)->shard(i).cpu(), -1);
  EXPECT_EQ(WhereShardRuns(**rt, 0).second, n - 1);
}

TEST(RuntimeAffinityTest, BadCpuListsAreRefused) {
  const int c = test::AllowedCpus().front();
  for (RuntimeOptions::Affinity a : {RuntimeOptions::Affinity::kAuto, RuntimeOptions::Affinity::kPin}) {
    EXPECT_EQ(Runtime::Create({.shards = 2, .affinity = a, .cpus = {c, c}}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Runtime::Create({.shards = 1, .affinity = a, .cpus = {-1}}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Runtime::Create({.shards = 1, .affinity = a, .cpus = {CPU_SETSIZE}}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(RuntimeAffinityTest, CpuTheKernelRefusesFailsPinAndIsIgnoredByAuto) {
  // A CPU outside this process's set: pthread_setaffinity_np fails with EINVAL.
  const std::vector<int> cpus = test::AllowedCpus();
  int outside = 0;
  while (std::find(cpus.begin(), cpus.end(), outside) != cpus.end()) ++outside;
  ASSERT_LT(outside, CPU_SETSIZE);
  auto pinned =
      Runtime::Create({.shards = 1, .affinity = RuntimeOptions::Affinity::kPin, .cpus = {outside}});
  EXPECT_FALSE(pinned.ok());
  auto rt =
      Runtime::Create({.shards = 1, .affinity = RuntimeOptions::Affinity::kAuto, .cpus = {outside}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_FALSE((*rt)->pinned());
  EXPECT_EQ((*rt)->shard(0).cpu(), -1);
}

TEST(RuntimeTest, BadShardIndexIsAnError) {
  auto rt = Runtime::Create({.shards = 2}).value();
  EXPECT_EQ(rt->SubmitTo(2, [] {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rt->SubmitTo(-1, [] {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RuntimeTest, MessagesFromOneSenderRunInOrder) {
  auto rt = Runtime::Create({.shards = 2}).value();
  constexpr int kCount = 20000;
  std::vector<int> order;  // touched only on shard 1
  test::Notification done;
  // Sender: shard 0 (shard-to-shard ring).
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < kCount; ++i) {
                    Runtime::Message m = [&, i] {
                      order.push_back(i);
                      if (i == kCount - 1) done.Notify();
                    };
                    // Retry while the ring is full: the receiver drains it meanwhile.
                    while (!rt->TrySubmitTo(1, m).ok()) std::this_thread::yield();
                  }
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  std::atomic<bool> ok{false};
  test::Notification checked;
  ASSERT_TRUE(rt->SubmitTo(1, [&] {
                  bool in_order = order.size() == kCount;
                  for (int i = 0; in_order && i < kCount; ++i) in_order = order[i] == i;
                  ok = in_order;
                  checked.Notify();
                }).ok());
  ASSERT_TRUE(checked.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(ok.load());
}

// Sends `count` messages from the calling shard to `target`, yielding to the loop
// whenever the ring is full (a sender must never spin inside a handler: the receiver
// may be doing the same towards it).
struct Pump {
  Runtime* rt;
  int target;
  uint64_t base;
  int count;
  int next = 0;
  std::atomic<uint64_t>* sum;
  std::atomic<int>* received;
  void Run() {
    for (; next < count; ++next) {
      const uint64_t v = base + next;
      Runtime::Message m = [sum = sum, received = received, v] {
        sum->fetch_add(v, std::memory_order_relaxed);
        received->fetch_add(1, std::memory_order_relaxed);
      };
      if (!rt->TrySubmitTo(target, m).ok()) {
        // Full: come back after the loop has drained our own inbound messages.
        Shard::Current()->loop().Defer([this] { Run(); });
        return;
      }
    }
  }
};

TEST(RuntimeTest, OneMillionMessagesAcrossFourShardsSumChecked) {
  auto rt = Runtime::Create({.shards = 4}).value();
  constexpr int kPerShard = 250000;
  std::atomic<uint64_t> sum{0};
  std::atomic<int> received{0};
  std::vector<std::unique_ptr<Pump>> pumps;
  for (int i = 0; i < 4; ++i) {
    pumps.push_back(std::make_unique<Pump>(Pump{rt.get(), (i + 1) % 4,
                                                static_cast<uint64_t>(i) * kPerShard, kPerShard,
                                                0, &sum, &received}));
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(rt->SubmitTo(i, [p = pumps[i].get()] { p->Run(); }).ok());
  }
  const uint64_t n = 4ull * kPerShard;
  for (int i = 0; i < 2000 && received.load() < static_cast<int>(n); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(received.load(), static_cast<int>(n));
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());  // before the pumps go
}

TEST(RuntimeTest, FullForeignRingIsReportedAndKeepsTheMessage) {
  RuntimeOptions opts{.shards = 1};
  opts.mailbox.foreign_ring_capacity = 4;
  auto rt = Runtime::Create(opts).value();
  // Block the shard so that its mailbox fills up.
  test::Notification release;
  test::Notification blocked;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  blocked.Notify();
                  release.WaitForNotification();
                }).ok());
  blocked.WaitForNotification();
  std::atomic<int> ran{0};
  int accepted = 0;
  absl::Status last;
  for (int i = 0; i < 10; ++i) {
    Runtime::Message m = [&] { ran++; };
    last = rt->TrySubmitTo(0, m);
    if (last.ok()) {
      ++accepted;
    } else {
      EXPECT_TRUE(static_cast<bool>(m));  // still ours
    }
  }
  // Capacity 4, and the running message keeps its slot until it returns.
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_GE(rt->shard(0).mailbox().counters().full.load(), 7u);
  release.Notify();
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(rt->dropped(), 0u);
}

TEST(RuntimeTest, FullShardRingIsReportedAndKeepsTheClosure) {
  RuntimeOptions opts{.shards = 2};
  opts.mailbox.shard_ring_bytes = 4096;
  auto rt = Runtime::Create(opts).value();
  // Shard 1 is held in a handler, so nothing drains its ring from shard 0.
  std::atomic<bool> release{false};
  test::Notification blocked;
  ASSERT_TRUE(rt->SubmitTo(1, [&] {
                  blocked.Notify();
                  while (!release.load()) std::this_thread::yield();
                }).ok());
  blocked.WaitForNotification();
  std::atomic<int> ran{0};
  auto token = std::make_shared<int>(1);
  std::atomic<int> accepted{0};
  std::atomic<bool> refused_intact{false};
  test::Notification sent;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < 1000; ++i) {
                    // The closure holds a shared_ptr: a refused one must still hold it
                    // (an accepted one was moved into the ring).
                    auto msg = [&ran, token] { ran += *token; };
                    absl::Status s = rt->TrySubmitTo(1, msg);
                    if (!s.ok()) {
                      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
                      refused_intact = token.use_count() == accepted + 2;  // the ring's, ours, msg's
                      break;
                    }
                    accepted++;
                  }
                  sent.Notify();
                }).ok());
  sent.WaitForNotification();
  // 4096 bytes of 32-byte messages (8 + a closure of a reference and a shared_ptr).
  EXPECT_EQ(accepted.load(), 4096 / 32);
  EXPECT_TRUE(refused_intact.load());
  EXPECT_GE(rt->shard(1).metrics().mailbox_full, 1u);
  release = true;
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  EXPECT_EQ(ran.load(), accepted.load());
  EXPECT_EQ(rt->dropped(), 0u);
  EXPECT_EQ(token.use_count(), 1);  // every copy destroyed exactly once
}

TEST(RuntimeTest, ClosuresOfEverySizeArriveInOrder) {
  auto rt = Runtime::Create({.shards = 2}).value();
  std::vector<int> got;  // shard 1 only
  test::Notification done;
  constexpr int kCount = 3000;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < kCount; ++i) {
                    absl::Status s;
                    if (i % 3 == 0) {
                      s = rt->SubmitToRetrying(1, [&got, i] { got.push_back(i); });
                    } else if (i % 3 == 1) {
                      std::array<int, 40> big{};  // 160 bytes: still in the ring
                      big.fill(i);
                      s = rt->SubmitToRetrying(1, [&got, big] { got.push_back(big[39]); });
                    } else {
                      std::array<int, 200> huge{};  // 800 bytes: boxed on the heap
                      huge.fill(i);
                      s = rt->SubmitToRetrying(1, [&got, &done, huge] {
                        got.push_back(huge[199]);
                        if (huge[0] == 2999) done.Notify();  // the last one
                      });
                    }
                    ASSERT_TRUE(s.ok());
                  }
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], i);
}

TEST(RuntimeTest, NoWakeupsWhileTheReceiverIsBusy) {
  auto rt = Runtime::Create({.shards = 2}).value();
  test::Notification go;
  std::atomic<int> got{0};
  // Shard 1 stays awake (a busy callback) while shard 0 sends 1000 messages.
  ASSERT_TRUE(rt->SubmitTo(1, [&] {
                  go.WaitForNotification();
                  absl::SleepFor(absl::Milliseconds(50));  // shard 0 sends meanwhile
                }).ok());
  absl::SleepFor(absl::Milliseconds(20));  // shard 1 is now inside the callback
  const uint64_t before = rt->shard(1).mailbox().counters().wakeups_written.load();
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  go.Notify();
                  for (int i = 0; i < 1000; ++i) {
                    ASSERT_TRUE(rt->SubmitTo(1, [&] { got++; }).ok());
                  }
                }).ok());
  for (int i = 0; i < 500 && got.load() < 1000; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(got.load(), 1000);
  // All of shard 0's sends happened while shard 1 was awake: none needed a wake-up.
  EXPECT_EQ(rt->shard(1).mailbox().counters().wakeups_written.load(), before);
}

TEST(RuntimeTest, SleepingShardIsWokenOnce) {
  auto rt = Runtime::Create({.shards = 1}).value();
  absl::SleepFor(absl::Milliseconds(20));  // the shard is asleep in epoll_wait
  const uint64_t before = rt->shard(0).mailbox().counters().wakeups_written.load();
  test::Notification done;
  ASSERT_TRUE(rt->SubmitTo(0, [&] { done.Notify(); }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(rt->shard(0).mailbox().counters().wakeups_written.load(), before + 1);
}

TEST(RuntimeTest, ShutdownDeliversMessagesInFlightAndCountsEveryOne) {
  auto rt = Runtime::Create({.shards = 4}).value();
  std::atomic<int> delivered{0};
  std::atomic<int> refused{0};
  constexpr int kHops = 2000;
  // Each shard starts a chain that hops across shards; shutdown begins mid-way.
  for (int i = 0; i < 4; ++i) {
    struct Hop {
      static void Go(Runtime* rt, int left, std::atomic<int>* delivered,
                     std::atomic<int>* refused) {
        delivered->fetch_add(1);
        if (left == 0) return;
        const int next = (Shard::Current()->id() + 1) % rt->size();
        if (!rt->SubmitTo(next, [=] { Go(rt, left - 1, delivered, refused); }).ok()) {
          refused->fetch_add(1);
        }
      }
    };
    ASSERT_TRUE(rt->SubmitTo(i, [&, r = rt.get()] { Hop::Go(r, kHops, &delivered, &refused); })
                    .ok());
  }
  absl::SleepFor(absl::Milliseconds(1));
  rt->Shutdown();
  rt->Shutdown();  // harmless
  ASSERT_TRUE(rt->Wait().ok());
  // Messages sent while finishing are still delivered: every chain completes, and
  // every hop is either delivered, refused at the sender, or counted as dropped.
  EXPECT_EQ(delivered.load() + refused.load() + static_cast<int>(rt->dropped()),
            4 * (kHops + 1));
  EXPECT_EQ(delivered.load(), 4 * (kHops + 1));
  EXPECT_EQ(rt->SubmitTo(0, [] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RuntimeTest, ShutdownFromAShardCallbackAndStopCallbacksRunOnTheirShard) {
  auto rt = Runtime::Create({.shards = 2}).value();
  std::atomic<int> stopped_on[2] = {-1, -1};
  ASSERT_TRUE(rt->ForEachShard([&](Shard& s) {
                  s.OnStop([&stopped_on, &s] { stopped_on[s.id()] = Shard::Current()->id(); });
                }).ok());
  absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(rt->SubmitTo(1, [&] {
                  rt->Shutdown();
                  EXPECT_EQ(rt->Wait().code(), absl::StatusCode::kFailedPrecondition);
                }).ok());
  ASSERT_TRUE(rt->Wait().ok());
  EXPECT_EQ(stopped_on[0].load(), 0);
  EXPECT_EQ(stopped_on[1].load(), 1);
}

TEST(RuntimeTest, ShardTimersRunOnTheShardAndDoNotBlockShutdown) {
  auto rt = Runtime::Create({.shards = 1}).value();
  std::atomic<int> ticks{0};
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  Shard* s = Shard::Current();
                  auto timer = std::make_shared<std::unique_ptr<Timer>>();
                  *timer = std::make_unique<Timer>(s->loop(), [&](uint32_t) { ticks++; });
                  (*timer)->StartPeriodic(absl::Milliseconds(2));
                  s->OnStop([timer] { timer->reset(); });
                }).ok());
  for (int i = 0; i < 500 && ticks.load() < 5; ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_GE(ticks.load(), 5);
  const absl::Time start = absl::Now();
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(RuntimeTest, PerShardGivesEachShardItsOwnInstance) {
  auto rt = Runtime::Create({.shards = 3}).value();
  struct Slot {
    int owner;
    int hits = 0;
  };
  auto per = PerShard<Slot>::Create(*rt, [](Shard& s) {
               return std::make_unique<Slot>(Slot{s.id()});
             }).value();
  std::atomic<int> mismatches{0};
  std::atomic<int> done{0};
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(rt->ForEachShard([&](Shard& s) {
                    Slot& mine = per->local();
                    if (mine.owner != s.id()) mismatches++;
                    mine.hits++;
                    done++;
                  }).ok());
  }
  while (done.load() < 30) std::this_thread::yield();
  std::atomic<int> total{0};
  test::Notification counted;
  std::atomic<int> left{3};
  ASSERT_TRUE(rt->ForEachShard([&](Shard&) {
                  total += per->local().hits;
                  if (--left == 0) counted.Notify();
                }).ok());
  counted.WaitForNotification();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(total.load(), 30);
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
}

TEST(RuntimeTest, ShutdownFromASignalWatcherOnAShard) {
  auto rt = Runtime::Create({.shards = 2}).value();
  test::Notification armed;
  std::unique_ptr<SignalWatcher> watcher;  // created and destroyed on shard 1
  ASSERT_TRUE(rt->SubmitTo(1, [&] {
                  Shard* s = Shard::Current();
                  watcher = std::make_unique<SignalWatcher>(
                      s->loop(), SIGUSR2, [r = rt.get()](int, int) { r->Shutdown(); });
                  ASSERT_TRUE(watcher->Start().ok());
                  s->OnStop([&] { watcher.reset(); });
                  armed.Notify();
                }).ok());
  armed.WaitForNotification();
  ASSERT_EQ(raise(SIGUSR2), 0);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(rt->Wait().ok());  // returns because the watcher shut the runtime down
  EXPECT_TRUE(rt->stopping());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(watcher, nullptr);
}

TEST(RuntimeTest, MetricsCountWhatHappened) {
  auto rt = Runtime::Create({.shards = 2}).value();
  const Shard::Metrics before = rt->shard(1).metrics();
  test::Notification done;
  std::atomic<int> got{0};
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < 100; ++i) {
                    ASSERT_TRUE(rt->SubmitTo(1, [&] {
                                   if (++got == 100) done.Notify();
                                 }).ok());
                  }
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // Counters are published after the batch that ran the messages: wait for them.
  Shard::Metrics s1 = rt->shard(1).metrics();
  for (int i = 0; i < 1000 && (s1.messages_received - before.messages_received < 100 ||
                               s1.loop.busy_ns.count == 0);
       ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    s1 = rt->shard(1).metrics();
  }
  const Shard::Metrics s0 = rt->shard(0).metrics();
  EXPECT_EQ(s0.messages_sent, 100u);
  EXPECT_EQ(s1.messages_received - before.messages_received, 100u);
  EXPECT_GE(s1.mailbox_depth.count, 1u);
  EXPECT_LE(s1.mailbox_depth.count, 100u);  // drained in batches
  EXPECT_GE(s1.mailbox_depth.max_ns, 1u);
  EXPECT_GT(s1.loop.iterations, before.loop.iterations);
  EXPECT_GE(s1.loop.busy_ns.count, 1u);
  // An active callback on shard 0 (RunInLoop): its pass's poll delay is measured.
  std::atomic<bool> ran{false};
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  Shard::Current()->loop().RunInLoop([&] { ran = true; });
                }).ok());
  Shard::Metrics m0 = rt->shard(0).metrics();
  for (int i = 0; i < 1000 && (!ran.load() || m0.loop.poll_delay_ns.count == 0); ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    m0 = rt->shard(0).metrics();
  }
  EXPECT_TRUE(ran.load());
  EXPECT_GE(m0.loop.poll_delay_ns.count, 1u);
  EXPECT_EQ(s1.dead_letters, 0u);
  EXPECT_EQ(rt->Metrics().size(), 2u);
}

// Regression: a shard inside its poll-before-sleep window when Shutdown() began could
// miss the wake-up and sleep forever (Wait() never returned).
TEST(RuntimeTest, ShutdownIsNeverLostDuringThePollWindow) {
  for (int i = 0; i < 30; ++i) {
    RuntimeOptions opts{.shards = 2};
    opts.mailbox.poll_before_sleep = absl::Microseconds(50);
    auto rt = Runtime::Create(opts).value();
    absl::SleepFor(absl::Microseconds(20 * (i % 5)));
    const absl::Time start = absl::Now();
    rt->Shutdown();
    ASSERT_TRUE(rt->Wait().ok());
    EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "round " << i;
  }
}

TEST(RuntimeTest, SubmitToRetryingKeepsOrderThroughAFullRing) {
  RuntimeOptions opts{.shards = 2};
  opts.mailbox.shard_ring_bytes = 32768;
  auto rt = Runtime::Create(opts).value();
  constexpr int kCount = 20000;
  std::vector<int> order;  // shard 1 only
  test::Notification done;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < kCount; ++i) {
                    // Far more than the ring holds, from one handler: the rest waits in
                    // the backlog and goes out, in order, from shard 0's loop.
                    ASSERT_TRUE(rt->SubmitToRetrying(1, [&, i] {
                                    order.push_back(i);
                                    if (i == kCount - 1) done.Notify();
                                  }).ok());
                  }
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  ASSERT_EQ(order.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(order[i], i);
  EXPECT_EQ(rt->dropped(), 0u);
}

TEST(RuntimeTest, ShutdownWaitsForABacklog) {
  RuntimeOptions opts{.shards = 2};
  opts.mailbox.shard_ring_bytes = 32768;
  auto rt = Runtime::Create(opts).value();
  std::atomic<int> ran{0};
  constexpr int kCount = 10000;
  test::Notification sent;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int i = 0; i < kCount; ++i) {
                    ASSERT_TRUE(rt->SubmitToRetrying(1, [&] { ran++; }).ok());
                  }
                  rt->Shutdown();  // with most of the messages still in the backlog
                  sent.Notify();
                }).ok());
  sent.WaitForNotification();
  ASSERT_TRUE(rt->Wait().ok());
  EXPECT_EQ(ran.load() + static_cast<int>(rt->dropped()), kCount);
  EXPECT_EQ(ran.load(), kCount);  // drained well within the grace period
}

}  // namespace
}  // namespace evactor
