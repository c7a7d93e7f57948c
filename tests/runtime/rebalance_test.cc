// A kAuto-pinned shard whose CPU other threads crowd moves to a spare CPU
// (RuntimeOptions::rebalance_interval): the parsers of the kernel's accounting, the
// decision, and real moves of a real shard.
#include "runtime/internal/rebalance.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "tests/runtime/cpus.h"
#include "tests/runtime/where_shard_runs.h"

namespace evactor {
namespace {

using internal::BusyShares;
using internal::ChooseCpu;
using internal::CpuTimes;
using internal::ParseProcStat;
using internal::ParseSchedstat;
using internal::RebalanceWindow;

TEST(ParseProcStatTest, ReadsEachCpuLineSkipsTheAggregateAndOtherLines) {
  const char* text =
      "cpu  100 0 50 1000 10 0 5 0 0 0\n"
      "cpu0 10 1 20 300 7 1 2 3 4 0\n"
      "cpu1 60 0 30 700 3 0 3 0 0 0\n"
      "cpu3 1 2 3 4 5 6 7 8\n"
      "cpuX 1 2 3 4 5\n"
      "intr 12345 0 0\n"
      "ctxt 999\n";
  std::vector<CpuTimes> cpus = ParseProcStat(text);
  ASSERT_EQ(cpus.size(), 4u);
  // user+nice+system+idle+iowait+irq+softirq+steal; guest is part of user already.
  EXPECT_EQ(cpus[0].total, 10u + 1 + 20 + 300 + 7 + 1 + 2 + 3);
  EXPECT_EQ(cpus[0].busy, cpus[0].total - 300 - 7);
  EXPECT_EQ(cpus[1].total, 60u + 30 + 700 + 3 + 3);
  EXPECT_EQ(cpus[1].busy, 60u + 30 + 3);
  EXPECT_EQ(cpus[2].total, 0u);  // not listed (offline)
  EXPECT_EQ(cpus[3].total, 36u);
  EXPECT_EQ(cpus[3].busy, 36u - 4 - 5);
  EXPECT_TRUE(ParseProcStat("").empty());
  EXPECT_TRUE(ParseProcStat("cpu0 a b c d\n").empty());
}

TEST(ParseSchedstatTest, RunAndWaitNanoseconds) {
  auto t = ParseSchedstat("123456789 987654321 42\n");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->run_ns, 123456789u);
  EXPECT_EQ(t->wait_ns, 987654321u);
  EXPECT_FALSE(ParseSchedstat("").has_value());
  EXPECT_FALSE(ParseSchedstat("12\n").has_value());
  EXPECT_FALSE(ParseSchedstat("x y z\n").has_value());
}

TEST(ParseSchedstatTest, ThisThreadsAccountingIsReadable) {
  auto text = internal::ReadSmallFile("/proc/thread-self/schedstat");
  if (!text.has_value()) GTEST_SKIP() << "no /proc/thread-self/schedstat here";
  auto before = ParseSchedstat(*text);
  ASSERT_TRUE(before.has_value()) << *text;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(30);
  while (std::chrono::steady_clock::now() < until) {
  }
  auto after = ParseSchedstat(*internal::ReadSmallFile("/proc/thread-self/schedstat"));
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(after->run_ns - before->run_ns, 10'000'000u);  // it spun 30 ms
}

TEST(BusySharesTest, SharesOfTheWindowPerCpu) {
  std::vector<CpuTimes> a = {{10, 100}, {0, 100}, {0, 0}, {5, 50}};
  std::vector<CpuTimes> b = {{60, 200}, {0, 200}, {10, 100}, {5, 50}};
  std::vector<double> busy = BusyShares(a, b);
  ASSERT_EQ(busy.size(), 4u);
  EXPECT_DOUBLE_EQ(busy[0], 0.5);
  EXPECT_DOUBLE_EQ(busy[1], 0.0);
  EXPECT_LT(busy[2], 0);  // absent from the first sample
  EXPECT_LT(busy[3], 0);  // no time passed
}

// The two cases measured with the memcached server at -t 1 on two CPUs.
TEST(ChooseCpuTest, ACrowdedShardMovesToTheIdleSpareCpu) {
  // memcaslap -T 1: the client shares CPU 0 with the shard; CPU 1 idles.
  RebalanceWindow w{.run = 0.49, .wait = 0.48, .own_cpu = 0, .busy = {1.0, 0.01}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), 1);
}

TEST(ChooseCpuTest, NoMoveWhenTheSpareCpuIsBusierThanWhatCrowdsThisOne) {
  // memcaslap -T 2: one client thread shares CPU 0, the other runs on CPU 1 (56%).
  RebalanceWindow w{.run = 0.59, .wait = 0.35, .own_cpu = 0, .busy = {1.0, 0.56}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), -1);
  // Within the margin: no trading back and forth between two similar CPUs.
  w = {.run = 0.5, .wait = 0.4, .own_cpu = 0, .busy = {1.0, 0.40}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), -1);
  w.busy[1] = 0.30;
  EXPECT_EQ(ChooseCpu(w), 1);
}

TEST(ChooseCpuTest, NoMoveWithoutWaitingOrWithoutKnownCandidates) {
  RebalanceWindow w{.run = 0.3, .wait = 0.05, .own_cpu = 0, .busy = {0.9, 0.0}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), -1);  // the shard hardly waited, and its CPU had room
  w.wait = 0.5;
  EXPECT_EQ(ChooseCpu(w), 1);
  w.wait = 0.05;
  w.busy[0] = 1.0;  // saturated: a client it preempts did the waiting
  EXPECT_EQ(ChooseCpu(w), 1);
  w.wait = 0.5;
  w.busy[0] = 1.0;
  w.candidates = {};
  EXPECT_EQ(ChooseCpu(w), -1);
  w.candidates = {0, 7, -1};  // itself, unknown, bad
  EXPECT_EQ(ChooseCpu(w), -1);
  w.candidates = {1};
  w.busy = {-1.0, 0.0};  // own CPU unknown
  EXPECT_EQ(ChooseCpu(w), -1);
  w.own_cpu = 5;
  EXPECT_EQ(ChooseCpu(w), -1);
}

TEST(ChooseCpuTest, PicksTheLeastBusyCandidate) {
  RebalanceWindow w{.run = 0.2,
                    .wait = 0.6,
                    .own_cpu = 2,
                    .busy = {0.3, 0.1, 1.0, 0.05, -1.0},
                    .candidates = {0, 1, 3, 4}};
  EXPECT_EQ(ChooseCpu(w), 3);
}

// -t 2 with one memcaslap thread (measured): the client shares CPU 0 with shard 0,
// which preempts it with every wake-up (so shard 0 hardly waits), while shard 1 has
// CPU 1 to itself with room to spare. Shard 0 joins shard 1.
TEST(ChooseCpuTest, ACrowdedShardJoinsAnotherShardsCpuWithRoomForBoth) {
  RebalanceWindow w{.run = 0.33, .wait = 0.02, .own_cpu = 0, .busy = {1.0, 0.45}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), 1);
  // A busier shard would not fit beside it (0.47 + 0.45 > 1 - margin): it stays.
  w.run = 0.45;
  EXPECT_EQ(ChooseCpu(w), -1);
}

TEST(ChooseCpuTest, NoJoiningWhenEveryCpuIsFull) {
  // -t 2 with memcaslap -T 2: each shard shares its CPU with a client thread.
  RebalanceWindow w{.run = 0.5, .wait = 0.2, .own_cpu = 0, .busy = {1.0, 0.95}, .candidates = {1}};
  EXPECT_EQ(ChooseCpu(w), -1);
}

// A thread spinning on `cpu` until `stop`.
class Spinner {
 public:
  Spinner(int cpu, std::atomic<bool>* stop) {
    thread_ = std::thread([cpu, stop] {
      test::PinThisThread(cpu);
      while (!stop->load(std::memory_order_relaxed)) {
      }
    });
  }
  ~Spinner() { thread_.join(); }

 private:
  std::thread thread_;
};

// Keeps shard 0 busy (so that it is always runnable) until `stop`: each message
// spins a millisecond and sends the next.
void KeepBusy(Runtime& rt, std::atomic<bool>* stop, std::atomic<int>* running) {
  if (stop->load(std::memory_order_relaxed)) {
    running->fetch_sub(1);
    return;
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
  while (std::chrono::steady_clock::now() < until) {
  }
  if (!rt.SubmitTo(0, [&rt, stop, running] { KeepBusy(rt, stop, running); }).ok()) {
    running->fetch_sub(1);
  }
}

class RebalanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cpus_ = test::AllowedCpus();
    if (cpus_.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus_.size();
    if (!internal::ReadSmallFile("/proc/thread-self/schedstat").has_value()) {
      GTEST_SKIP() << "no scheduler statistics (/proc/thread-self/schedstat) here";
    }
  }

  // Runs shard 0 busy while `crowd` spinners share its CPU and `elsewhere` spin on
  // the other listed CPU, for at most `limit` or until it moves. With two shards the
  // second holds that other CPU (idle). Returns the runtime.
  std::unique_ptr<Runtime> Crowd(RuntimeOptions::Affinity affinity, int crowd, int elsewhere,
                                 absl::Duration limit,
                                 absl::Duration interval = absl::Milliseconds(100),
                                 int shards = 1) {
    // kPin takes the list too (shard 0 on its first CPU) but never moves.
    auto rt = Runtime::Create({.shards = shards,
                               .affinity = affinity,
                               .cpus = {cpus_[0], cpus_[1]},
                               .rebalance_interval = interval});
    EXPECT_TRUE(rt.ok()) << rt.status();
    if (!rt.ok()) return nullptr;
    std::unique_ptr<Runtime> runtime = *std::move(rt);
    EXPECT_EQ(runtime->shard(0).cpu(), cpus_[0]);
    std::atomic<bool> stop{false};
    std::atomic<int> running{1};
    std::vector<std::unique_ptr<Spinner>> spinners;
    for (int i = 0; i < crowd; ++i) spinners.push_back(std::make_unique<Spinner>(cpus_[0], &stop));
    for (int i = 0; i < elsewhere; ++i) {
      spinners.push_back(std::make_unique<Spinner>(cpus_[1], &stop));
    }
    Runtime* raw = runtime.get();
    EXPECT_TRUE(raw->SubmitTo(0, [raw, &stop, &running] { KeepBusy(*raw, &stop, &running); }).ok());
    const absl::Time deadline = absl::Now() + limit;
    while (absl::Now() < deadline && runtime->shard(0).moves() == 0) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    stop = true;
    spinners.clear();  // joins
    while (running.load() != 0) absl::SleepFor(absl::Milliseconds(1));
    return runtime;
  }

  std::vector<int> cpus_;
};

TEST_F(RebalanceTest, ACrowdedAutoPinnedShardMovesToTheSpareCpu) {
  // Two spinners share CPU 0 with the shard (it waits about two thirds of the time)
  // while CPU 1 idles.
  std::unique_ptr<Runtime> rt = Crowd(RuntimeOptions::Affinity::kAuto, 2, 0, absl::Seconds(10));
  ASSERT_NE(rt, nullptr);
  ASSERT_EQ(rt->shard(0).moves(), 1u) << "the shard stayed on its crowded CPU for 10 s";
  EXPECT_EQ(rt->shard(0).cpu(), cpus_[1]);
  EXPECT_EQ(rt->ShardOnCpu(cpus_[1]), 0);
  EXPECT_EQ(rt->ShardOnCpu(cpus_[0]), -1);
  EXPECT_EQ(test::WhereShardRuns(*rt, 0), std::make_pair(cpus_[1], 1));
  // Nothing crowds it there: it stays.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(rt->shard(0).moves(), 1u);
  EXPECT_EQ(rt->shard(0).cpu(), cpus_[1]);
}

TEST_F(RebalanceTest, ACrowdedShardJoinsAnIdleShardsCpuAsItsGuest) {
  // Two shards on two CPUs, no spare one: two spinners crowd shard 0 while shard 1
  // idles on CPU 1. Shard 0 joins it there; shard 1 keeps the CPU's name (the shard
  // connections arriving on that CPU are steered to).
  std::unique_ptr<Runtime> rt = Crowd(RuntimeOptions::Affinity::kAuto, 2, 0, absl::Seconds(10),
                                      absl::Milliseconds(100), /*shards=*/2);
  ASSERT_NE(rt, nullptr);
  ASSERT_EQ(rt->shard(0).moves(), 1u) << "the shard stayed on its crowded CPU for 10 s";
  EXPECT_EQ(rt->shard(0).cpu(), cpus_[1]);
  EXPECT_EQ(rt->shard(1).cpu(), cpus_[1]);
  EXPECT_EQ(rt->ShardOnCpu(cpus_[1]), 1);
  EXPECT_EQ(rt->ShardOnCpu(cpus_[0]), -1);
  EXPECT_EQ(test::WhereShardRuns(*rt, 0), std::make_pair(cpus_[1], 1));
  EXPECT_EQ(rt->shard(1).moves(), 0u);
}

TEST_F(RebalanceTest, NoMoveToASpareCpuThatIsBusierStill) {
  // One spinner with the shard, two on the spare CPU.
  std::unique_ptr<Runtime> rt = Crowd(RuntimeOptions::Affinity::kAuto, 1, 2, absl::Seconds(1));
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->shard(0).moves(), 0u);
  EXPECT_EQ(rt->shard(0).cpu(), cpus_[0]);
  EXPECT_EQ(test::WhereShardRuns(*rt, 0), std::make_pair(cpus_[0], 1));
}

TEST_F(RebalanceTest, ExplicitPinningNeverMoves) {
  std::unique_ptr<Runtime> rt = Crowd(RuntimeOptions::Affinity::kPin, 2, 0, absl::Seconds(1));
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->shard(0).moves(), 0u);
  EXPECT_EQ(test::WhereShardRuns(*rt, 0), std::make_pair(cpus_[0], 1));
}

TEST_F(RebalanceTest, ZeroIntervalNeverMoves) {
  std::unique_ptr<Runtime> rt = Crowd(RuntimeOptions::Affinity::kAuto, 2, 0,
                                      absl::Milliseconds(600), absl::ZeroDuration());
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->shard(0).moves(), 0u);
  EXPECT_EQ(rt->shard(0).cpu(), cpus_[0]);
}

}  // namespace
}  // namespace evactor
