// SpscRing and MpscRing: FIFO order, capacity, values destroyed exactly once, and
// cross-thread transfer with every value accounted for.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/mpsc_ring.h"
#include "runtime/spsc_ring.h"

namespace evactor {
namespace {

TEST(SpscRingTest, FifoAndCapacityRoundedUp) {
  SpscRing<int> ring(5);
  EXPECT_EQ(ring.capacity(), 8u);
  for (int i = 0; i < 8; ++i) {
    int v = i;
    ASSERT_TRUE(ring.TryPush(std::move(v)));
  }
  int extra = 99;
  EXPECT_FALSE(ring.TryPush(std::move(extra)));
  EXPECT_EQ(extra, 99);  // left with the caller
  std::vector<int> got;
  EXPECT_EQ(ring.Consume([&](int& v) { got.push_back(v); }, 3), 3u);
  EXPECT_EQ(ring.ConsumeAll([&](int& v) { got.push_back(v); }), 5u);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(ring.Empty());
  EXPECT_EQ(ring.pushed(), 8u);
  EXPECT_EQ(ring.popped(), 8u);
}

TEST(SpscRingTest, MoveOnlyValuesDestroyedOnceIncludingLeftovers) {
  auto counter = std::make_shared<int>(0);
  {
    SpscRing<std::shared_ptr<int>> ring(4);
    for (int i = 0; i < 3; ++i) {
      auto p = counter;
      ASSERT_TRUE(ring.TryPush(std::move(p)));
    }
    EXPECT_EQ(counter.use_count(), 4);
    ring.Consume([](std::shared_ptr<int>&) {}, 1);
    EXPECT_EQ(counter.use_count(), 3);
  }
  EXPECT_EQ(counter.use_count(), 1);  // the ring's destructor freed the two left
}

TEST(SpscRingTest, TwoThreadsTransferEveryValueInOrder) {
  constexpr uint64_t kCount = 2'000'000;
  SpscRing<uint64_t> ring(1024);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount;) {
      uint64_t v = i;
      if (ring.TryPush(std::move(v))) ++i;
    }
  });
  uint64_t expected = 0;
  bool in_order = true;
  while (expected < kCount) {
    ring.ConsumeAll([&](uint64_t& v) {
      in_order &= (v == expected);
      ++expected;
    });
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expected, kCount);
}

TEST(MpscRingTest, FullRingRefusesAndKeepsValue) {
  MpscRing<int> ring(2);
  int a = 1, b = 2, c = 3;
  EXPECT_TRUE(ring.TryPush(std::move(a)));
  EXPECT_TRUE(ring.TryPush(std::move(b)));
  EXPECT_FALSE(ring.TryPush(std::move(c)));
  EXPECT_EQ(c, 3);
  std::vector<int> got;
  ring.ConsumeAll([&](int& v) { got.push_back(v); });
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_EQ(ring.claimed(), 2u);
  EXPECT_EQ(ring.popped(), 2u);
}

TEST(MpscRingTest, FourProducersEveryValueOnceAndPerProducerOrder) {
  constexpr int kProducers = 4;
  constexpr uint64_t kPer = 250'000;
  MpscRing<uint64_t> ring(4096);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPer;) {
        uint64_t v = (static_cast<uint64_t>(p) << 32) | i;
        if (ring.TryPush(std::move(v))) ++i;
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 0);
  uint64_t total = 0;
  uint64_t sum = 0;
  bool ordered = true;
  while (total < kProducers * kPer) {
    total += ring.ConsumeAll([&](uint64_t& v) {
      const int p = static_cast<int>(v >> 32);
      const uint64_t i = v & 0xffffffff;
      ordered &= (i == next[p]);
      next[p] = i + 1;
      sum += i;
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_TRUE(ordered);
  EXPECT_EQ(sum, kProducers * (kPer * (kPer - 1) / 2));
  EXPECT_TRUE(ring.Empty());
}

}  // namespace
}  // namespace evactor
