// MessageRing: closures stored in place run in FIFO order across wrap-arounds, with
// mixed sizes and alignments; oversized closures travel boxed; nothing is visible
// before Publish; a full ring refuses and leaves the closure untouched (and accepts
// again once an eighth is free); every closure is destroyed exactly once, run or
// not, published or not; two threads transfer millions of messages in order.
#include "runtime/message_ring.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace evactor {
namespace {

struct Log {
  std::vector<int> ran;
};

// A closure of N payload bytes (plus the log pointer and id) that records its id.
template <size_t N>
struct Sized {
  Log* log;
  int id;
  std::array<unsigned char, N> pad{};
  void operator()() {
    for (unsigned char c : pad) ASSERT_EQ(c, static_cast<unsigned char>(id));
    log->ran.push_back(id);
  }
};

template <size_t N>
Sized<N> MakeSized(Log* log, int id) {
  Sized<N> s{log, id, {}};
  s.pad.fill(static_cast<unsigned char>(id));
  return s;
}

struct alignas(16) Aligned16 {
  Log* log;
  int id;
  void operator()() {
    ASSERT_EQ(reinterpret_cast<uintptr_t>(this) % 16, 0u);
    log->ran.push_back(id);
  }
};

TEST(MessageRingTest, EntrySizes) {
  auto small = [x = uint64_t{0}, y = uint64_t{0}] { (void)x, (void)y; };
  static_assert(sizeof(small) == 16);
  EXPECT_EQ(MessageRing::EntryBytes<decltype(small)>(), 24u);
  EXPECT_EQ(MessageRing::EntryBytes<Sized<1>>(), 24u);  // 8 + 16 (12 rounded up)
  // 16-byte alignment: padding depends on where the header lands.
  EXPECT_EQ(MessageRing::EntryBytes<Aligned16>(0), 32u);
  EXPECT_EQ(MessageRing::EntryBytes<Aligned16>(8), 24u);
  // Too large to sit in the ring: a boxed pointer.
  EXPECT_EQ(MessageRing::EntryBytes<Sized<1000>>(), 16u);
}

TEST(MessageRingTest, NothingVisibleBeforePublish) {
  Log log;
  MessageRing ring(4096);
  auto m = MakeSized<8>(&log, 1);
  ASSERT_TRUE(ring.TryPush(m));
  EXPECT_TRUE(ring.Empty());
  EXPECT_EQ(ring.Consume(100), 0u);
  EXPECT_EQ(ring.pushed(), 1u);
  EXPECT_EQ(ring.unpublished_bytes(), MessageRing::EntryBytes<Sized<8>>());
  ring.Publish();
  EXPECT_FALSE(ring.Empty());
  EXPECT_EQ(ring.Consume(100), 1u);
  EXPECT_EQ(log.ran, std::vector<int>{1});
  EXPECT_EQ(ring.popped(), 1u);
}

TEST(MessageRingTest, MixedSizesAndAlignmentsInOrderAcrossManyWraps) {
  Log log;
  MessageRing ring(4096);  // small: every few dozen messages wrap
  int next_id = 0;
  int expected_runs = 0;
  for (int round = 0; round < 2000; ++round) {
    // Push a handful of differently sized closures, then drain some of them.
    const int k = 1 + round % 7;
    for (int j = 0; j < k; ++j) {
      const int id = next_id++;
      bool ok = false;
      switch (id % 5) {
        case 0: { auto m = MakeSized<4>(&log, id); ok = ring.TryPush(m); break; }
        case 1: { auto m = MakeSized<40>(&log, id); ok = ring.TryPush(m); break; }
        case 2: { Aligned16 m{&log, id}; ok = ring.TryPush(m); break; }
        case 3: { auto m = MakeSized<200>(&log, id); ok = ring.TryPush(m); break; }
        case 4: { auto m = MakeSized<600>(&log, id); ok = ring.TryPush(m); break; }  // boxed
      }
      ASSERT_TRUE(ok) << "id " << id;  // drained often enough never to fill
      ++expected_runs;
    }
    ring.Publish();
    ring.Consume(round % 3 == 0 ? ~size_t{0} : 3);
  }
  ring.Consume(~size_t{0});
  ASSERT_EQ(log.ran.size(), static_cast<size_t>(expected_runs));
  for (int i = 0; i < expected_runs; ++i) ASSERT_EQ(log.ran[i], i);
  EXPECT_TRUE(ring.Empty());
}

TEST(MessageRingTest, FullRefusesKeepsTheClosureAndAcceptsAgainAfterAnEighth) {
  auto token = std::make_shared<int>(7);
  MessageRing ring(4096);
  const size_t entry = MessageRing::EntryBytes<Sized<16>>();  // 8 + 32 = 40
  size_t pushed = 0;
  Log log;
  while (true) {
    auto m = MakeSized<16>(&log, static_cast<int>(pushed));
    if (!ring.TryPush(m)) break;
    ++pushed;
  }
  EXPECT_GE(pushed * entry, 4096 - 2 * entry);
  EXPECT_LE(pushed * entry, 4096u);
  EXPECT_FALSE(ring.Empty());  // the refusal published what was there

  // The refused closure is still whole.
  auto holder = [token] { ++*token; };
  EXPECT_FALSE(ring.TryPush(holder));
  EXPECT_EQ(token.use_count(), 2);
  // One message consumed is not enough room after a refusal...
  ASSERT_EQ(ring.Consume(1), 1u);
  EXPECT_FALSE(ring.TryPush(holder));
  // ...an eighth of the ring is.
  ring.Consume(4096 / 8 / entry + 1);
  EXPECT_TRUE(ring.TryPush(holder));
  ring.Publish();
  ring.Consume(~size_t{0});
  EXPECT_EQ(*token, 8);
}

struct Counted {
  std::shared_ptr<std::atomic<int>> live;
  std::shared_ptr<std::atomic<int>> runs;
  explicit Counted(std::shared_ptr<std::atomic<int>> l, std::shared_ptr<std::atomic<int>> r)
      : live(std::move(l)), runs(std::move(r)) {
    ++*live;
  }
  Counted(Counted&& o) noexcept : live(o.live), runs(o.runs) { ++*live; }
  Counted(const Counted&) = delete;
  ~Counted() { --*live; }
  void operator()() { ++*runs; }
};

TEST(MessageRingTest, EveryClosureDestroyedOnceRunDiscardedOrLeftOver) {
  auto live = std::make_shared<std::atomic<int>>(0);
  auto runs = std::make_shared<std::atomic<int>>(0);
  {
    MessageRing ring(4096);
    for (int i = 0; i < 30; ++i) {
      Counted c(live, runs);
      ASSERT_TRUE(ring.TryPush(c));
    }
    EXPECT_EQ(live->load(), 30);
    ring.Publish();
    EXPECT_EQ(ring.Consume(10), 10u);  // run and destroyed
    EXPECT_EQ(live->load(), 20);
    EXPECT_EQ(ring.Discard(), 20u);  // destroyed unrun
    EXPECT_EQ(live->load(), 0);
    for (int i = 0; i < 5; ++i) {
      Counted c(live, runs);
      ASSERT_TRUE(ring.TryPush(c));
    }
    ring.Publish();
    for (int i = 0; i < 4; ++i) {
      Counted c(live, runs);
      ASSERT_TRUE(ring.TryPush(c));  // never published
    }
    EXPECT_EQ(live->load(), 9);
  }
  EXPECT_EQ(live->load(), 0);  // the destructor took published and unpublished ones
  EXPECT_EQ(runs->load(), 10);
}

TEST(MessageRingTest, AMessageMayPushToItsOwnRing) {
  MessageRing ring(4096);
  std::vector<int> order;
  struct Chain {
    MessageRing* ring;
    std::vector<int>* order;
    int left;
    void operator()() {
      order->push_back(left);
      if (left > 0) {
        Chain next{ring, order, left - 1};
        ASSERT_TRUE(ring->TryPush(next));
      }
    }
  };
  Chain first{&ring, &order, 300};
  ASSERT_TRUE(ring.TryPush(first));
  ring.Publish();
  int calls = 0;
  while (ring.Consume(~size_t{0}) != 0) {
    ring.Publish();  // what the message pushed runs in a later call
    ++calls;
  }
  EXPECT_EQ(calls, 301);
  ASSERT_EQ(order.size(), 301u);
  for (int i = 0; i <= 300; ++i) ASSERT_EQ(order[i], 300 - i);
}

// Written by the consumer thread only.
uint64_t g_next = 0;
uint64_t g_sum = 0;
uint64_t g_errors = 0;

struct Seq {
  uint64_t seq;
  uint64_t value;
  void operator()() {
    g_errors += seq != g_next;
    g_next = seq + 1;
    g_sum += value;
  }
};

TEST(MessageRingTest, TwoThreadsTransferEveryMessageInOrder) {
  constexpr uint64_t kCount = 3'000'000;
  g_next = g_sum = g_errors = 0;
  MessageRing ring(1 << 14);
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (true) {
      if (ring.Consume(512) != 0) continue;
      if (done.load(std::memory_order_acquire)) {
        ring.Consume(~size_t{0});
        break;
      }
    }
  });
  uint64_t refused = 0;
  uint64_t want_sum = 0;
  for (uint64_t i = 0; i < kCount;) {
    Seq s{i, i * 2654435761u};
    if (ring.TryPush(s)) {
      want_sum += s.value;
      ++i;
      if (ring.unpublished_bytes() >= MessageRing::kPublishBytes) ring.Publish();
    } else {
      ++refused;
    }
  }
  ring.Publish();
  done.store(true, std::memory_order_release);
  consumer.join();
  EXPECT_EQ(g_errors, 0u);
  EXPECT_EQ(g_next, kCount);
  EXPECT_EQ(g_sum, want_sum);
  EXPECT_EQ(ring.pushed(), kCount);
  EXPECT_EQ(ring.popped(), kCount);
}

}  // namespace
}  // namespace evactor
