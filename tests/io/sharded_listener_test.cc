// ShardedListener: 10,000 connections handed to 4 shards, each served exactly once
// by the shard that received it; round-robin, least-connections and SO_REUSEPORT.
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/runtime/cpus.h"
#include "io/sharded_listener.h"
#include "runtime/runtime.h"

namespace evactor {
namespace {

// Connects `n` times in a row; each connection reads one byte (the id of the shard
// that served it) and closes. Returns how many replies came from each shard.
std::vector<int> Hammer(const SocketAddress& target, int n, int shards, int* bad) {
  std::vector<int> per_shard(shards, 0);
  for (int i = 0; i < n; ++i) {
    const int fd = socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, target.sockaddr_ptr(), target.length()) < 0) {
      ++*bad;
      if (fd >= 0) close(fd);
      continue;
    }
    unsigned char id = 0xff;
    char extra;
    if (read(fd, &id, 1) != 1 || id >= shards || read(fd, &extra, 1) != 0) {
      ++*bad;  // no reply, a bad one, or more than one byte
    } else {
      ++per_shard[id];
    }
    close(fd);
  }
  return per_shard;
}

class ShardedListenerTest : public ::testing::TestWithParam<ShardedListenerOptions> {};

TEST_P(ShardedListenerTest, TenThousandConnectionsEachServedOnceByItsShard) {
  auto rt = Runtime::Create({.shards = 4}).value();
  std::atomic<int> served{0};
  std::atomic<int> wrong_thread{0};
  ShardedListener* raw = nullptr;
  auto sl = ShardedListener::Start(
      *rt, SocketAddress::Loopback4(0),
      [&](Shard& shard, int fd, const SocketAddress&) {
        if (Shard::Current() != &shard) wrong_thread++;
        const unsigned char id = static_cast<unsigned char>(shard.id());
        if (write(fd, &id, 1) != 1) wrong_thread++;
        // Bookkeeping before the close: the client checks right after it sees EOF.
        served++;
        raw->ConnectionClosed(shard.id());
        close(fd);
      },
      GetParam());
  ASSERT_TRUE(sl.ok()) << sl.status();
  raw = sl->get();
  int bad = 0;
  constexpr int kConnections = 10000;
  std::vector<int> per_shard = Hammer((*sl)->address(), kConnections, 4, &bad);
  EXPECT_EQ(bad, 0);
  int total = 0;
  for (int i = 0; i < 4; ++i) {
    total += per_shard[i];
    EXPECT_EQ(static_cast<uint64_t>(per_shard[i]), (*sl)->handed_to(i)) << "shard " << i;
    EXPECT_EQ((*sl)->live(i), 0) << "shard " << i;
  }
  EXPECT_EQ(total, kConnections);
  EXPECT_EQ(served.load(), kConnections);
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ((*sl)->refused(), 0u);
  if (GetParam().mode == ShardedListenerOptions::Mode::kDispatcher &&
      GetParam().policy == ShardedListenerOptions::Policy::kRoundRobin) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(per_shard[i], kConnections / 4) << "shard " << i;
  } else if (GetParam().mode == ShardedListenerOptions::Mode::kDispatcher) {
    // Least connections with sequential clients: all tie at zero open connections,
    // and ties go round-robin, so every shard gets work.
    for (int i = 0; i < 4; ++i) EXPECT_GT(per_shard[i], 0) << "shard " << i;
  }
  (*sl)->Stop();
  // Stopped: nobody listens any more.
  const SocketAddress target = (*sl)->address();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_NE(connect(fd, target.sockaddr_ptr(), target.length()), 0);
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ShardedListenerTest,
    ::testing::Values(
        ShardedListenerOptions{.mode = ShardedListenerOptions::Mode::kDispatcher,
                               .policy = ShardedListenerOptions::Policy::kRoundRobin},
        ShardedListenerOptions{.mode = ShardedListenerOptions::Mode::kDispatcher,
                               .policy = ShardedListenerOptions::Policy::kLeastConnections},
        ShardedListenerOptions{.mode = ShardedListenerOptions::Mode::kReusePort}),
    [](const ::testing::TestParamInfo<ShardedListenerOptions>& info) {
      if (info.param.mode == ShardedListenerOptions::Mode::kReusePort) return std::string("ReusePort");
      return std::string(info.param.policy == ShardedListenerOptions::Policy::kRoundRobin
                             ? "DispatcherRoundRobin"
                             : "DispatcherLeastConnections");
    });

TEST(ShardedListenerPolicyTest, LeastConnectionsAvoidsTheBusyShard) {
  auto rt = Runtime::Create({.shards = 3}).value();
  std::atomic<int> held_by_0{0};
  std::vector<int> held;  // fds kept open by shard 0 (touched only there)
  std::atomic<int> replies{0};
  ShardedListener* raw = nullptr;
  auto sl = ShardedListener::Start(
      *rt, SocketAddress::Loopback4(0),
      [&](Shard& shard, int fd, const SocketAddress&) {
        const unsigned char id = static_cast<unsigned char>(shard.id());
        if (write(fd, &id, 1) == 1) replies++;
        if (shard.id() == 0 && held_by_0.load() < 5) {
          held_by_0++;
          held.push_back(fd);  // stays open: shard 0 now has live connections
          return;
        }
        raw->ConnectionClosed(shard.id());  // before the client can see the close
        close(fd);
      },
      {.policy = ShardedListenerOptions::Policy::kLeastConnections});
  ASSERT_TRUE(sl.ok());
  raw = sl->get();
  int bad = 0;
  // The first connection lands on shard 0 and stays open; from then on shard 0 has
  // the most connections and must get none of the next 300.
  const SocketAddress target = (*sl)->address();
  const int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(first, target.sockaddr_ptr(), target.length()), 0);
  unsigned char first_id = 0xff;
  ASSERT_EQ(read(first, &first_id, 1), 1);
  EXPECT_EQ(first_id, 0);
  const uint64_t zero_before = (*sl)->handed_to(0);
  std::vector<int> per_shard = Hammer((*sl)->address(), 300, 3, &bad);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ((*sl)->handed_to(0), zero_before);
  EXPECT_EQ(per_shard[0], 0);
  EXPECT_EQ(per_shard[1] + per_shard[2], 300);
  EXPECT_EQ((*sl)->live(0), held_by_0.load());
  (*sl)->Stop();
  close(first);
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  for (int fd : held) close(fd);
                }).ok());
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
}

// Opens `n` connections from a thread pinned to `cpu`; returns the shard id each one
// was served by (0xff: none), keeping the sockets open in `*open` when given.
std::vector<int> ConnectFromCpu(const SocketAddress& target, int cpu, int n,
                                std::vector<int>* open = nullptr) {
  std::vector<int> ids;
  std::thread client([&] {
    if (!test::PinThisThread(cpu)) return;
    for (int i = 0; i < n; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      unsigned char id = 0xff;
      if (fd >= 0 && connect(fd, target.sockaddr_ptr(), target.length()) == 0 &&
          read(fd, &id, 1) == 1) {
        ids.push_back(id);
      } else {
        ids.push_back(0xff);
      }
      if (open != nullptr && fd >= 0) {
        open->push_back(fd);
      } else if (fd >= 0) {
        close(fd);
      }
    }
  });
  client.join();
  return ids;
}

// Serves each connection by writing its shard's id; closes it unless `hold`.
struct SteeringServer {
  explicit SteeringServer(Runtime& rt, bool hold, ShardedListenerOptions options) : rt(rt) {
    auto sl = ShardedListener::Start(
        rt, SocketAddress::Loopback4(0),
        [this, hold](Shard& shard, int fd, const SocketAddress&) {
          const unsigned char id = static_cast<unsigned char>(shard.id());
          [[maybe_unused]] ssize_t w = write(fd, &id, 1);
          if (hold) {
            std::lock_guard<std::mutex> lock(mu);
            held.push_back(fd);
            return;
          }
          listener->ConnectionClosed(shard.id());
          close(fd);
        },
        options);
    EXPECT_TRUE(sl.ok()) << sl.status();
    if (sl.ok()) listener = *std::move(sl);
  }
  ~SteeringServer() {
    if (listener != nullptr) listener->Stop();
    for (int fd : held) close(fd);
  }
  Runtime& rt;
  std::unique_ptr<ShardedListener> listener;
  std::mutex mu;
  std::vector<int> held;
};

// Connects `per_shard` times from each pinned shard's CPU; returns how many
// connections the shard on the client's CPU served. Over loopback the kernel handles
// the handshake on the client's CPU.
int ServedOnTheClientsCpu(Runtime& rt, const ShardedListener& listener, int per_shard) {
  int local = 0;
  for (int shard = 0; shard < rt.size(); ++shard) {
    for (int id : ConnectFromCpu(listener.address(), rt.shard(shard).cpu(), per_shard)) {
      EXPECT_NE(id, 0xff);
      if (id == shard) ++local;
    }
  }
  return local;
}

TEST(ShardedListenerSteeringTest, ConnectionsGoToTheShardOnTheirCpu) {
  const std::vector<int> cpus = test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  auto rt = Runtime::Create({.shards = 2, .affinity = RuntimeOptions::Affinity::kPin}).value();
  SteeringServer server(*rt, /*hold=*/false,
                        {.policy = ShardedListenerOptions::Policy::kRoundRobin,
                         .steer_to_incoming_cpu = true});
  ASSERT_NE(server.listener, nullptr);
  const int local = ServedOnTheClientsCpu(*rt, *server.listener, 20);
  EXPECT_GE(local, 36);  // a busy machine may defer a packet to ksoftirqd now and then
  EXPECT_EQ(server.listener->steered(), static_cast<uint64_t>(local));
}

// SO_REUSEPORT: the kernel runs the attached program and puts each connection in the
// accept queue of the shard on its CPU.
TEST(ShardedListenerSteeringTest, ReusePortConnectionsGoToTheShardOnTheirCpu) {
  const std::vector<int> cpus = test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  const int n = static_cast<int>(std::min<size_t>(cpus.size(), 4));
  auto rt = Runtime::Create({.shards = n, .affinity = RuntimeOptions::Affinity::kPin}).value();
  SteeringServer server(*rt, /*hold=*/false,
                        {.mode = ShardedListenerOptions::Mode::kReusePort,
                         .steer_to_incoming_cpu = true});
  ASSERT_NE(server.listener, nullptr);
  EXPECT_TRUE(server.listener->cpu_steering());
  EXPECT_GE(ServedOnTheClientsCpu(*rt, *server.listener, 10), n * 9);
  // Without steering the kernel spreads them by hash, pinned or not.
  SteeringServer plain(*rt, /*hold=*/false, {.mode = ShardedListenerOptions::Mode::kReusePort});
  ASSERT_NE(plain.listener, nullptr);
  EXPECT_FALSE(plain.listener->cpu_steering());
}

TEST(ShardedListenerSteeringTest, SlackBoundsTheImbalance) {
  const std::vector<int> cpus = test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  auto rt = Runtime::Create({.shards = 2, .affinity = RuntimeOptions::Affinity::kPin}).value();
  SteeringServer server(*rt, /*hold=*/true,
                        {.policy = ShardedListenerOptions::Policy::kLeastConnections,
                         .steer_to_incoming_cpu = true,
                         .steer_slack = 4});
  ASSERT_NE(server.listener, nullptr);
  // Every client on shard 0's CPU, every connection kept open: shard 0 takes them
  // until it is 4 (+ a quarter of the smaller count) ahead, then the least loaded
  // shard does.
  std::vector<int> open;
  std::vector<int> ids = ConnectFromCpu(server.listener->address(), rt->shard(0).cpu(), 40, &open);
  int on[2] = {0, 0};
  for (int id : ids) {
    ASSERT_TRUE(id == 0 || id == 1);
    ++on[id];
  }
  EXPECT_EQ(on[0] + on[1], 40);
  EXPECT_GT(on[1], 10);
  EXPECT_LE(on[0], on[1] + 4 + on[1] / 4 + 1);
  EXPECT_LT(server.listener->steered(), 40u);
  EXPECT_EQ(server.listener->live(0), on[0]);
  for (int fd : open) close(fd);
}

TEST(ShardedListenerSteeringTest, MovesAreBoundedBySlackAndCounted) {
  auto rt = Runtime::Create({.shards = 2}).value();
  SteeringServer server(*rt, /*hold=*/true,
                        {.policy = ShardedListenerOptions::Policy::kRoundRobin,
                         .steer_to_incoming_cpu = true,
                         .steer_slack = 2});
  ASSERT_NE(server.listener, nullptr);
  std::vector<int> open;
  ConnectFromCpu(server.listener->address(), test::AllowedCpus().front(), 8, &open);
  ShardedListener& l = *server.listener;
  ASSERT_EQ(l.live(0), 4);
  ASSERT_EQ(l.live(1), 4);
  // Shard 1 may take connections from shard 0 until it is 2 (+ min/4) ahead.
  int moves = 0;
  while (l.MayMoveConnectionTo(1) && moves < 10) {
    l.ConnectionMoved(0, 1);
    ++moves;
  }
  EXPECT_EQ(moves, 2);  // 4/4 -> 3/5 -> 2/6; then 6 > 2 + 2 + 2/4 is refused
  EXPECT_EQ(l.live(0), 2);
  EXPECT_EQ(l.live(1), 6);
  EXPECT_EQ(l.moved(), 2u);
  EXPECT_FALSE(l.MayMoveConnectionTo(1));
  EXPECT_TRUE(l.MayMoveConnectionTo(0));
  EXPECT_FALSE(l.MayMoveConnectionTo(2));  // no such shard
  for (int fd : open) close(fd);
}

TEST(ShardedListenerSteeringTest, UnpinnedShardsAreNotSteered) {
  auto rt = Runtime::Create({.shards = 2}).value();
  SteeringServer server(*rt, /*hold=*/false,
                        {.policy = ShardedListenerOptions::Policy::kRoundRobin,
                         .steer_to_incoming_cpu = true});
  ASSERT_NE(server.listener, nullptr);
  int on[2] = {0, 0};
  for (int id : ConnectFromCpu(server.listener->address(), test::AllowedCpus().front(), 20)) {
    ASSERT_TRUE(id == 0 || id == 1);
    ++on[id];
  }
  // Round-robin from the one dispatcher: exactly alternating.
  EXPECT_EQ(on[0], 10);
  EXPECT_EQ(on[1], 10);
  EXPECT_EQ(server.listener->steered(), 0u);
}

TEST(ShardedListenerShutdownTest, RuntimeShutdownTearsListenersDownFirst) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto sl = ShardedListener::Start(*rt, SocketAddress::Loopback4(0),
                                   [](Shard&, int fd, const SocketAddress&) { close(fd); },
                                   {.mode = ShardedListenerOptions::Mode::kReusePort});
  ASSERT_TRUE(sl.ok()) << sl.status();
  rt->Shutdown();
  ASSERT_TRUE(rt->Wait().ok());
  sl->reset();  // after the runtime stopped: does nothing, frees nothing twice
  EXPECT_EQ(ShardedListener::Start(*rt, SocketAddress::Loopback4(0),
                                   [](Shard&, int fd, const SocketAddress&) { close(fd); })
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

// A Start or Stop racing a Shutdown returns (with or without an error) instead of
// waiting forever for a shard that dropped its part unrun.
TEST(ShardedListenerShutdownTest, StartAndStopRacingAShutdownReturn) {
  for (int round = 0; round < 60; ++round) {
    auto rt = Runtime::Create({.shards = 2}).value();
    std::thread stopper([&rt, round] {
      std::this_thread::sleep_for(std::chrono::microseconds(round * 7 % 200));
      rt->Shutdown();
    });
    std::atomic<bool> returned{false};
    std::thread starter([&rt, &returned] {
      auto sl = ShardedListener::Start(*rt, SocketAddress::Loopback4(0),
                                       [](Shard&, int fd, const SocketAddress&) { close(fd); });
      if (sl.ok()) (*sl)->Stop();
      returned.store(true);
    });
    for (int waited = 0; waited < 1000 && !returned.load(); ++waited) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (!returned.load()) {
      ADD_FAILURE() << "ShardedListener::Start/Stop did not return within 10 s (round " << round
                    << ")";
      std::abort();  // the blocked thread cannot be joined
    }
    starter.join();
    stopper.join();
    ASSERT_TRUE(rt->Wait().ok());
  }
}

}  // namespace
}  // namespace evactor
