// Tests of examples/memcached/store.h: memory accounting and LRU eviction, CAS values
// and semantics, expiry (relative, absolute, negative) on a fake clock, flush_all with
// and without delay, incr/decr edge cases, append/prepend, the item size limit, the
// meta-command helpers, and the stats counters.
#include "examples/memcached/store.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace evactor::memcached {
namespace {

constexpr int64_t kStart = 1'700'000'000;  // a plausible "now", in unix seconds

class FakeClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Set(int64_t unix_seconds) { now_ = absl::FromUnixSeconds(unix_seconds); }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(kStart);
};

class StoreTest : public ::testing::Test {
 protected:
  StoreOptions Options(size_t max_bytes = size_t{64} << 20) {
    // Exact LRU order: every access moves the item (the server's default is 60 s).
    return StoreOptions{.max_bytes = max_bytes, .clock = &clock_, .lru_bump_interval_seconds = 0};
  }
  static std::string Value(Store& store, std::string_view key) {
    std::optional<ItemView> item = store.Peek(key);
    return item.has_value() ? std::string(item->value) : std::string("<missing>");
  }

  FakeClock clock_;
};

// --- Memory accounting and eviction -------------------------------------------------

TEST_F(StoreTest, ItemChargeFollowsTheAllocatorAndIndexCost) {
  // 40-byte header + key + value, plus glibc's 8-byte chunk header, rounded up to 16,
  // plus 16 bytes of index.
  EXPECT_EQ(Store::ItemSize(1, 1), 42u);
  EXPECT_EQ(Store::ItemCharge(1, 1), 64u + 16u);    // 42 + 8 = 50 -> 64
  EXPECT_EQ(Store::ItemCharge(3, 5), 64u + 16u);    // 48 + 8 = 56 -> 64
  EXPECT_EQ(Store::ItemCharge(4, 5), 64u + 16u);    // 49 + 8 = 57 -> 64
  EXPECT_EQ(Store::ItemCharge(10, 10), 80u + 16u);  // 60 + 8 = 68 -> 80
  EXPECT_EQ(Store::ItemCharge(10, 1000), 1072u + 16u);
}

TEST_F(StoreTest, BytesIsTheExactSumOfItemCharges) {
  Store store(Options());
  EXPECT_EQ(store.bytes(), 0u);
  store.Set("a", "1", 0, 0);
  store.Set("bb", std::string(100, 'x'), 0, 0);
  store.Set("ccc", std::string(1000, 'y'), 0, 0);
  const size_t expected =
      Store::ItemCharge(1, 1) + Store::ItemCharge(2, 100) + Store::ItemCharge(3, 1000);
  EXPECT_EQ(store.bytes(), expected);
  EXPECT_EQ(store.stats().bytes, expected);
  EXPECT_EQ(store.stats().curr_items, 3u);

  // Overwriting replaces the old charge by the new one.
  store.Set("ccc", "small", 0, 0);
  EXPECT_EQ(store.bytes(),
            Store::ItemCharge(1, 1) + Store::ItemCharge(2, 100) + Store::ItemCharge(3, 5));
  // Append re-charges the combined item.
  store.Put(StoreMode::kAppend, "a", std::string(200, 'z'), 0, 0);
  EXPECT_EQ(store.bytes(),
            Store::ItemCharge(1, 201) + Store::ItemCharge(2, 100) + Store::ItemCharge(3, 5));
  // Growing incr re-charges too.
  store.Set("n", "9", 0, 0);
  const size_t before = store.bytes();
  ASSERT_EQ(store.Incr("n", 1).value, 10u);
  EXPECT_EQ(store.bytes(), before - Store::ItemCharge(1, 1) + Store::ItemCharge(1, 2));

  EXPECT_EQ(store.Delete("bb"), DeleteStatus::kDeleted);
  EXPECT_EQ(store.Delete("ccc"), DeleteStatus::kDeleted);
  EXPECT_EQ(store.Delete("a"), DeleteStatus::kDeleted);
  EXPECT_EQ(store.Delete("n"), DeleteStatus::kDeleted);
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(store.item_count(), 0u);
}

TEST_F(StoreTest, EvictsLeastRecentlyUsedFirst) {
  const size_t charge = Store::ItemCharge(2, 10);
  Store store(Options(5 * charge));
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(store.Set("k" + std::to_string(i), std::string(10, 'v'), 0, 0).status,
              StoreStatus::kStored);
  }
  EXPECT_EQ(store.bytes(), 5 * charge);
  // Touch k0 and k2: the LRU order (oldest first) becomes k1 k3 k4 k0 k2.
  ASSERT_TRUE(store.Get("k0").has_value());
  ASSERT_TRUE(store.Get("k2").has_value());

  store.Set("k5", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k1").has_value());
  EXPECT_TRUE(store.Peek("k0").has_value());
  store.Set("k6", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k3").has_value());
  store.Set("k7", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k4").has_value());
  store.Set("k8", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k0").has_value());  // now the oldest
  for (std::string key : {"k2", "k5", "k6", "k7", "k8"}) {
    EXPECT_TRUE(store.Peek(key).has_value()) << key;
  }
  EXPECT_EQ(store.bytes(), 5 * charge);
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.evictions, 4u);
  EXPECT_EQ(stats.evicted_unfetched, 3u);  // k1, k3 and k4 were never read; k0 was
  EXPECT_EQ(stats.curr_items, 5u);
}

TEST_F(StoreTest, ReadsMoveAnItemAtMostOncePerBumpInterval) {
  // memcached's ITEM_UPDATE_INTERVAL: a hit moves an item to the LRU head only if it
  // was last moved at least lru_bump_interval_seconds ago.
  const size_t charge = Store::ItemCharge(2, 10);
  StoreOptions options = Options(3 * charge);
  options.lru_bump_interval_seconds = 60;
  Store store(options);
  store.Set("k0", std::string(10, 'v'), 0, 0);
  store.Set("k1", std::string(10, 'v'), 0, 0);
  store.Set("k2", std::string(10, 'v'), 0, 0);
  // Read right after it was written: not moved, k0 stays the oldest.
  ASSERT_TRUE(store.Get("k0").has_value());
  store.Set("k3", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k0").has_value());
  // Two minutes later a read moves k1 to the head, so k2 goes first.
  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(store.Get("k1").has_value());
  store.Set("k4", std::string(10, 'v'), 0, 0);
  EXPECT_FALSE(store.Peek("k2").has_value());
  EXPECT_TRUE(store.Peek("k1").has_value());
  // A read that does not move the item still marks it fetched.
  EXPECT_EQ(store.stats().evicted_unfetched, 1u);  // k2 (k0 had been read)
}

TEST_F(StoreTest, EvictedUnfetchedCountsOnlyItemsNeverRead) {
  const size_t charge = Store::ItemCharge(2, 10);
  Store store(Options(2 * charge));
  store.Set("k0", std::string(10, 'v'), 0, 0);
  store.Set("k1", std::string(10, 'v'), 0, 0);
  ASSERT_TRUE(store.Get("k0").has_value());
  ASSERT_TRUE(store.Get("k1").has_value());
  store.Set("k2", std::string(10, 'v'), 0, 0);  // evicts k0, which was read
  store.Set("k3", std::string(10, 'v'), 0, 0);  // evicts k1, which was read
  store.Set("k4", std::string(10, 'v'), 0, 0);  // evicts k2, never read
  EXPECT_EQ(store.stats().evictions, 3u);
  EXPECT_EQ(store.stats().evicted_unfetched, 1u);
}

TEST_F(StoreTest, BigItemEvictsAsManyAsNeededAndNeverExceedsTheLimit) {
  const size_t small = Store::ItemCharge(2, 10);
  const size_t limit = 10 * small;
  Store store(Options(limit));
  for (int i = 0; i < 10; ++i) store.Set("k" + std::to_string(i), std::string(10, 'v'), 0, 0);
  ASSERT_EQ(store.bytes(), limit);
  // Worth about four small items: the four oldest go.
  const size_t value_length = 3 * small;
  ASSERT_EQ(store.Set("big", std::string(value_length, 'b'), 0, 0).status, StoreStatus::kStored);
  EXPECT_LE(store.bytes(), limit);
  const size_t big = Store::ItemCharge(3, value_length);
  const size_t evicted = (big + small - 1) / small;
  EXPECT_EQ(store.stats().evictions, evicted);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(store.Peek("k" + std::to_string(i)).has_value(), i >= evicted) << i;
  }
  EXPECT_EQ(store.bytes(), big + (10 - evicted) * small);
}

TEST_F(StoreTest, ItemLargerThanTheWholeCacheIsOutOfMemory) {
  Store store(Options(1000));
  store.Set("k", "old", 0, 0);
  EXPECT_EQ(store.Set("k", std::string(2000, 'x'), 0, 0).status, StoreStatus::kNoMemory);
  EXPECT_FALSE(store.Peek("k").has_value());  // like memcached: a failed set drops the key
  store.Set("k", "old", 0, 0);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k", std::string(2000, 'x'), 0, 0).status,
            StoreStatus::kNoMemory);
  EXPECT_EQ(Value(store, "k"), "old");
  EXPECT_EQ(store.stats().store_no_memory, 2u);
}

TEST_F(StoreTest, ExpiredItemsAtTheTailAreReclaimedNotEvicted) {
  const size_t charge = Store::ItemCharge(2, 10);
  Store store(Options(2 * charge));
  store.Set("k0", std::string(10, 'v'), 0, 5);
  store.Set("k1", std::string(10, 'v'), 0, 0);
  clock_.Advance(absl::Seconds(5));
  store.Set("k2", std::string(10, 'v'), 0, 0);
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.evictions, 0u);
  EXPECT_EQ(stats.reclaimed, 1u);
  EXPECT_EQ(stats.expired_unfetched, 1u);
  EXPECT_TRUE(store.Peek("k1").has_value());
  EXPECT_TRUE(store.Peek("k2").has_value());
}

// memcached's -M (StoreOptions::evict = false): a write that does not fit fails
// instead of evicting; dead items at the tail are still reclaimed; a write that
// replaces a value may use that value's room.
TEST_F(StoreTest, WithoutEvictionAFullStoreRefusesWrites) {
  const size_t charge = Store::ItemCharge(2, 10);
  StoreOptions options = Options(3 * charge);
  options.evict = false;
  Store store(options);
  for (const char* key : {"k0", "k1", "k2"}) {
    EXPECT_EQ(store.Set(key, std::string(10, 'v'), 0, 0).status, StoreStatus::kStored);
  }
  EXPECT_EQ(store.Set("k3", std::string(10, 'v'), 0, 0).status, StoreStatus::kNoMemory);
  EXPECT_EQ(store.item_count(), 3u);
  EXPECT_EQ(store.stats().evictions, 0u);
  EXPECT_EQ(store.stats().store_no_memory, 1u);
  // Replacing a value with one of the same size fits; a bigger one does not, and a
  // failed set drops the old value (as memcached), a failed append keeps it.
  EXPECT_EQ(store.Set("k0", std::string(10, 'w'), 0, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k1", std::string(40, 'm'), 0, 0).status,
            StoreStatus::kNotStored);
  EXPECT_EQ(Value(store, "k1"), std::string(10, 'v'));
  EXPECT_EQ(store.Set("k1", std::string(30, 'w'), 0, 0).status, StoreStatus::kNoMemory);
  EXPECT_FALSE(store.Peek("k1").has_value());
  // Counters that would grow, and vivifying incr: no room either.
  EXPECT_EQ(store.Set("n", "9", 0, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Set("k1", std::string(10, 'v'), 0, 0).status, StoreStatus::kNoMemory);
  EXPECT_EQ(store.Arithmetic("new", {.delta = 1, .create_exptime = 0}).status,
            ArithmeticStatus::kNoMemory);
  // An expired item near the LRU tail is reclaimed to make room.
  EXPECT_EQ(store.Set("k2", std::string(10, 'v'), 0, 5).status, StoreStatus::kStored);
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(store.Set("k4", std::string(10, 'v'), 0, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.stats().evictions, 0u);
  EXPECT_GE(store.stats().reclaimed, 1u);
  EXPECT_LE(store.bytes(), 3 * charge);
}

// --- Item size limit ----------------------------------------------------------------

TEST_F(StoreTest, ItemSizeLimitCountsHeaderKeyAndValue) {
  StoreOptions options = Options();
  options.max_item_size = 1000;
  Store store(options);
  const size_t fits = 1000 - Store::kItemHeaderSize - 3;
  EXPECT_EQ(store.Set("key", std::string(fits, 'x'), 0, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Set("key", std::string(fits + 1, 'x'), 0, 0).status, StoreStatus::kTooLarge);
  EXPECT_EQ(store.stats().store_too_large, 1u);
}

TEST_F(StoreTest, DefaultLimitRejectsAOneMebibyteValueAsMemcachedDoes) {
  Store store(Options());
  EXPECT_EQ(store.Set("k", std::string(1 << 20, 'x'), 0, 0).status, StoreStatus::kTooLarge);
  EXPECT_EQ(store.Set("k", std::string((1 << 20) - 41, 'x'), 0, 0).status, StoreStatus::kStored);
}

TEST_F(StoreTest, TooLargeSetDropsTheOldValueOtherModesKeepIt) {
  StoreOptions options = Options();
  options.max_item_size = 100;
  Store store(options);
  const std::string huge(200, 'x');
  store.Set("k", "old", 0, 0);
  for (StoreMode mode : {StoreMode::kAdd, StoreMode::kReplace, StoreMode::kAppend,
                         StoreMode::kPrepend, StoreMode::kCas}) {
    EXPECT_EQ(store.Put(mode, "k", huge, 0, 0, 1).status, StoreStatus::kTooLarge);
    EXPECT_EQ(Value(store, "k"), "old");
  }
  EXPECT_EQ(store.Put(StoreMode::kSet, "k", huge, 0, 0).status, StoreStatus::kTooLarge);
  EXPECT_FALSE(store.Peek("k").has_value());

  store.Set("k", "old", 0, 0);
  store.RejectTooLarge("k", /*drop_existing=*/false);
  EXPECT_EQ(Value(store, "k"), "old");
  store.RejectTooLarge("k", /*drop_existing=*/true);
  EXPECT_FALSE(store.Peek("k").has_value());
  EXPECT_EQ(store.stats().store_too_large, 8u);
}

TEST_F(StoreTest, AppendBeyondTheItemSizeLimitIsNotStored) {
  StoreOptions options = Options();
  options.max_item_size = 100;
  Store store(options);
  store.Set("k", std::string(50, 'a'), 0, 0);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k", std::string(50, 'b'), 0, 0).status,
            StoreStatus::kNotStored);
  EXPECT_EQ(Value(store, "k"), std::string(50, 'a'));
}

TEST_F(StoreTest, BadKeysFindAndStoreNothing) {
  Store store(Options());
  EXPECT_EQ(store.Set("", "v", 0, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(store.Set(std::string(251, 'k'), "v", 0, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(store.Set(std::string(250, 'k'), "v", 0, 0).status, StoreStatus::kStored);
  EXPECT_FALSE(store.Get(std::string(251, 'k')).has_value());
  EXPECT_TRUE(store.Get(std::string(250, 'k')).has_value());
  // An empty value, even one without a buffer behind it, is a value.
  EXPECT_EQ(store.Set("empty", std::string_view(), 0, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "empty", std::string_view(), 0, 0).status,
            StoreStatus::kStored);
  EXPECT_EQ(Value(store, "empty"), "");
}

// --- CAS ----------------------------------------------------------------------------

TEST_F(StoreTest, EveryWriteGetsAFreshCas) {
  Store store(Options());
  const uint64_t first = store.Set("a", "1", 0, 0).cas;
  const uint64_t second = store.Set("b", "1", 0, 0).cas;
  const uint64_t third = store.Set("a", "2", 0, 0).cas;
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(second, 2u);
  EXPECT_EQ(third, 3u);
  EXPECT_EQ(store.Get("a")->cas, 3u);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "a", "x", 0, 0).cas, 4u);
  EXPECT_EQ(store.Incr("b", 1).cas, 5u);
  EXPECT_EQ(store.Touch("b", 10), true);
  EXPECT_EQ(store.Get("b")->cas, 5u);  // touch does not change the CAS
}

TEST_F(StoreTest, CasOffsetAndStrideGiveShardsDisjointValues) {
  StoreOptions a = Options();
  a.cas_offset = 1;
  a.cas_stride = 4;
  StoreOptions b = a;
  b.cas_offset = 3;
  Store shard_a(a);
  Store shard_b(b);
  std::vector<uint64_t> seen;
  for (int i = 0; i < 3; ++i) {
    seen.push_back(shard_a.Set("k", "v", 0, 0).cas);
    seen.push_back(shard_b.Set("k", "v", 0, 0).cas);
  }
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 3, 5, 7, 9, 11}));
}

TEST_F(StoreTest, CasSemanticsMatchMemcached) {
  Store store(Options());
  // Missing key: NOT_FOUND.
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "v", 0, 0, 42).status, StoreStatus::kNotFound);
  const uint64_t cas = store.Set("k", "v1", 7, 0).cas;
  // Wrong value, and 0: EXISTS.
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "v2", 0, 0, cas + 100).status, StoreStatus::kExists);
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "v2", 0, 0, 0).status, StoreStatus::kExists);
  EXPECT_EQ(Value(store, "k"), "v1");
  // Matching value: stored, with the new flags and a new CAS.
  const StoreResult stored = store.Put(StoreMode::kCas, "k", "v2", 9, 0, cas);
  EXPECT_EQ(stored.status, StoreStatus::kStored);
  EXPECT_GT(stored.cas, cas);
  EXPECT_EQ(store.Peek("k")->flags, 9u);
  // The old CAS no longer matches.
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "v3", 0, 0, cas).status, StoreStatus::kExists);
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.cas_misses, 1u);
  EXPECT_EQ(stats.cas_hits, 1u);
  EXPECT_EQ(stats.cas_badval, 3u);
}

TEST_F(StoreTest, AppendAndPrependCompareANonZeroCas) {
  Store store(Options());
  const uint64_t cas = store.Set("k", "mid", 0, 0).cas;
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k", "X", 0, 0, cas + 1).status, StoreStatus::kExists);
  const StoreResult appended = store.Put(StoreMode::kAppend, "k", "-end", 0, 0, cas);
  EXPECT_EQ(appended.status, StoreStatus::kStored);
  EXPECT_EQ(store.Put(StoreMode::kPrepend, "k", "start-", 0, 0, appended.cas).status,
            StoreStatus::kStored);
  EXPECT_EQ(Value(store, "k"), "start-mid-end");
}

TEST_F(StoreTest, StaleCasWriteIsAcceptedOnlyWithAllowStale) {
  Store store(Options());
  const uint64_t old_cas = store.Set("k", "v1", 0, 100).cas;
  const uint64_t current = store.Set("k", "v2", 0, 100).cas;
  ASSERT_LT(old_cas, current);
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "late", 0, 0, old_cas).status, StoreStatus::kExists);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(store.Put(StoreMode::kCas, "k", "late", 0, 0, old_cas, {.allow_stale = true}).status,
            StoreStatus::kStored);
  MetaGetResult r = store.MetaGet("k", {});
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.item.value, "late");
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.item.expires_at, kStart + 100);  // kept the old TTL, ignored exptime 0
  EXPECT_TRUE(r.won);
}

// --- Storage modes -------------------------------------------------------------------

TEST_F(StoreTest, AddReplaceAppendPrependConditions) {
  Store store(Options());
  EXPECT_EQ(store.Put(StoreMode::kReplace, "k", "v", 0, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k", "v", 0, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(store.Put(StoreMode::kPrepend, "k", "v", 0, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(store.Put(StoreMode::kAdd, "k", "first", 1, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Put(StoreMode::kAdd, "k", "second", 2, 0).status, StoreStatus::kNotStored);
  EXPECT_EQ(Value(store, "k"), "first");
  EXPECT_EQ(store.Put(StoreMode::kReplace, "k", "third", 3, 0).status, StoreStatus::kStored);
  EXPECT_EQ(Value(store, "k"), "third");
  EXPECT_EQ(store.Peek("k")->flags, 3u);
  EXPECT_EQ(store.stats().cmd_set, 6u);
  EXPECT_EQ(store.stats().total_items, 2u);
}

TEST_F(StoreTest, AppendAndPrependKeepFlagsAndExptime) {
  Store store(Options());
  store.Set("k", "mid", 5, 100);
  EXPECT_EQ(store.Put(StoreMode::kAppend, "k", ">", 99, 0).status, StoreStatus::kStored);
  EXPECT_EQ(store.Put(StoreMode::kPrepend, "k", "<", 98, 0).status, StoreStatus::kStored);
  std::optional<ItemView> item = store.Peek("k");
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(item->value, "<mid>");
  EXPECT_EQ(item->flags, 5u);
  EXPECT_EQ(item->expires_at, kStart + 100);
  clock_.Advance(absl::Seconds(100));
  EXPECT_FALSE(store.Get("k").has_value());
}

TEST_F(StoreTest, AddOfAnExistingKeyBumpsItInTheLru) {
  const size_t charge = Store::ItemCharge(1, 1);
  Store store(Options(2 * charge));
  store.Set("a", "1", 0, 0);
  store.Set("b", "1", 0, 0);
  EXPECT_EQ(store.Put(StoreMode::kAdd, "a", "2", 0, 0).status, StoreStatus::kNotStored);
  store.Set("c", "1", 0, 0);  // evicts b, not a
  EXPECT_TRUE(store.Peek("a").has_value());
  EXPECT_FALSE(store.Peek("b").has_value());
}

TEST_F(StoreTest, FlagsAreThirtyTwoBits) {
  Store store(Options());
  store.Set("k", "v", std::numeric_limits<uint32_t>::max(), 0);
  EXPECT_EQ(store.Get("k")->flags, std::numeric_limits<uint32_t>::max());
}

// --- Expiry ---------------------------------------------------------------------------

TEST_F(StoreTest, RelativeExptimeExpiresAtTheSecond) {
  Store store(Options());
  store.Set("k", "v", 0, 10);
  EXPECT_EQ(store.Peek("k")->expires_at, kStart + 10);
  clock_.Advance(absl::Seconds(9) + absl::Milliseconds(999));
  EXPECT_TRUE(store.Get("k").has_value());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(store.Get("k").has_value());
  EXPECT_EQ(store.stats().get_expired, 1u);
  EXPECT_EQ(store.item_count(), 0u);  // dropped on access
  EXPECT_EQ(store.bytes(), 0u);
}

TEST_F(StoreTest, ThirtyDaysIsTheLastRelativeExptime) {
  Store store(Options());
  store.Set("relative", "v", 0, kMaxRelativeExptime);
  EXPECT_EQ(store.Peek("relative")->expires_at, kStart + kMaxRelativeExptime);
  // One more second is an absolute unix time: 1970-01-31, long gone.
  store.Set("absolute", "v", 0, kMaxRelativeExptime + 1);
  EXPECT_FALSE(store.Get("absolute").has_value());
}

TEST_F(StoreTest, AbsoluteExptimeExpiresAtThatUnixTime) {
  Store store(Options());
  store.Set("k", "v", 0, kStart + 3600);
  EXPECT_EQ(store.Peek("k")->expires_at, kStart + 3600);
  clock_.Set(kStart + 3599);
  EXPECT_TRUE(store.Get("k").has_value());
  clock_.Set(kStart + 3600);
  EXPECT_FALSE(store.Get("k").has_value());
  // An absolute time in the past is expired at once.
  store.Set("past", "v", 0, kStart - 10);
  EXPECT_FALSE(store.Get("past").has_value());
}

TEST_F(StoreTest, NegativeExptimeIsExpiredImmediatelyAndRemovesTheOldValue) {
  Store store(Options());
  store.Set("k", "old", 0, 0);
  const StoreResult r = store.Set("k", "new", 0, -1);
  EXPECT_EQ(r.status, StoreStatus::kStored);  // as memcached: STORED, then invisible
  EXPECT_GT(r.cas, 0u);
  EXPECT_FALSE(store.Get("k").has_value());
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(store.Put(StoreMode::kAdd, "k", "again", 0, 0).status, StoreStatus::kStored);
}

TEST_F(StoreTest, TouchAndGetAndTouchReplaceTheExptime) {
  Store store(Options());
  store.Set("a", "1", 0, 10);
  store.Set("b", "2", 0, 10);
  EXPECT_TRUE(store.Touch("a", 100));
  std::optional<ItemView> b = store.GetAndTouch("b", 0);  // 0: never expires
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->value, "2");
  EXPECT_EQ(b->expires_at, 0);
  clock_.Advance(absl::Seconds(50));
  EXPECT_TRUE(store.Get("a").has_value());
  EXPECT_TRUE(store.Get("b").has_value());
  clock_.Advance(absl::Seconds(50));
  EXPECT_FALSE(store.Get("a").has_value());
  EXPECT_TRUE(store.Get("b").has_value());
  EXPECT_FALSE(store.Touch("a", 10));
  // gat with a negative exptime returns the value once, then it is gone.
  ASSERT_TRUE(store.GetAndTouch("b", -1).has_value());
  EXPECT_FALSE(store.Get("b").has_value());
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.cmd_touch, 4u);
  EXPECT_EQ(stats.touch_hits, 3u);
  EXPECT_EQ(stats.touch_misses, 1u);
}

TEST_F(StoreTest, ExpiredUnfetchedCountsItemsThatExpiredUnread) {
  Store store(Options());
  store.Set("read", "v", 0, 5);
  store.Set("unread", "v", 0, 5);
  ASSERT_TRUE(store.Get("read").has_value());
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(store.Get("read").has_value());
  EXPECT_FALSE(store.Get("unread").has_value());
  EXPECT_EQ(store.stats().expired_unfetched, 1u);
  EXPECT_EQ(store.stats().get_expired, 2u);
}

// --- flush_all ------------------------------------------------------------------------

TEST_F(StoreTest, FlushAllInvalidatesEverythingWrittenBefore) {
  Store store(Options());
  store.Set("a", "1", 0, 0);
  store.Set("b", "2", 0, 0);
  store.FlushAll();
  EXPECT_FALSE(store.Get("a").has_value());
  EXPECT_EQ(store.Put(StoreMode::kReplace, "b", "x", 0, 0).status, StoreStatus::kNotStored);
  store.Set("c", "3", 0, 0);  // written after the flush, same second
  EXPECT_TRUE(store.Get("c").has_value());
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.cmd_flush, 1u);
  EXPECT_EQ(stats.get_flushed, 1u);
}

TEST_F(StoreTest, FlushAllWithDelayTakesEffectLater) {
  Store store(Options());
  store.Set("before", "1", 0, 0);
  store.FlushAll(10);
  clock_.Advance(absl::Seconds(5));
  store.Set("during", "2", 0, 0);  // still before the flush time: flushed too
  EXPECT_TRUE(store.Get("before").has_value());
  EXPECT_TRUE(store.Get("during").has_value());
  clock_.Advance(absl::Seconds(4));
  EXPECT_TRUE(store.Get("before").has_value());
  clock_.Advance(absl::Seconds(1));  // t = 10: the flush happens
  store.Set("after", "3", 0, 0);
  EXPECT_FALSE(store.Get("before").has_value());
  EXPECT_FALSE(store.Get("during").has_value());
  EXPECT_TRUE(store.Get("after").has_value());
  clock_.Advance(absl::Seconds(100));
  EXPECT_TRUE(store.Get("after").has_value());  // one flush, not a recurring one
}

TEST_F(StoreTest, LaterFlushAllReplacesAPendingOne) {
  Store store(Options());
  store.Set("k", "1", 0, 0);
  store.FlushAll(10);
  store.FlushAll(20);
  clock_.Advance(absl::Seconds(15));
  EXPECT_TRUE(store.Get("k").has_value());
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(store.Get("k").has_value());
}

TEST_F(StoreTest, FlushAllDelayAboveThirtyDaysIsAnAbsoluteTime) {
  Store store(Options());
  store.Set("k", "1", 0, 0);
  store.FlushAll(kStart + 60);
  clock_.Set(kStart + 59);
  EXPECT_TRUE(store.Get("k").has_value());
  clock_.Set(kStart + 60);
  EXPECT_FALSE(store.Get("k").has_value());
  // An absolute time already past flushes at once.
  store.Set("k", "1", 0, 0);
  store.FlushAll(kStart - 100);
  EXPECT_FALSE(store.Get("k").has_value());
}

TEST_F(StoreTest, FlushedItemsAreReclaimedByEviction) {
  const size_t charge = Store::ItemCharge(2, 10);
  Store store(Options(3 * charge));
  store.Set("k0", std::string(10, 'v'), 0, 0);
  store.Set("k1", std::string(10, 'v'), 0, 0);
  store.Set("k2", std::string(10, 'v'), 0, 0);
  store.FlushAll();
  store.Set("k3", std::string(10, 'v'), 0, 0);
  EXPECT_EQ(store.stats().reclaimed, 1u);
  EXPECT_EQ(store.stats().evictions, 0u);
}

// --- incr / decr ------------------------------------------------------------------------

TEST_F(StoreTest, IncrAndDecrBasics) {
  Store store(Options());
  EXPECT_EQ(store.Incr("n", 1).status, ArithmeticStatus::kNotFound);
  EXPECT_EQ(store.Decr("n", 1).status, ArithmeticStatus::kNotFound);
  store.Set("n", "10", 3, 0);
  ArithmeticResult r = store.Incr("n", 5);
  EXPECT_EQ(r.status, ArithmeticStatus::kOk);
  EXPECT_EQ(r.value, 15u);
  EXPECT_EQ(Value(store, "n"), "15");
  r = store.Decr("n", 100);
  EXPECT_EQ(r.value, 0u);  // stops at zero
  EXPECT_EQ(Value(store, "n"), "0 ");
  EXPECT_EQ(store.Peek("n")->flags, 3u);
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.incr_hits, 1u);
  EXPECT_EQ(stats.incr_misses, 1u);
  EXPECT_EQ(stats.decr_hits, 1u);
  EXPECT_EQ(stats.decr_misses, 1u);
}

TEST_F(StoreTest, IncrWrapsAtTwoToTheSixtyFour) {
  Store store(Options());
  store.Set("n", "18446744073709551615", 0, 0);
  ArithmeticResult r = store.Incr("n", 2);
  EXPECT_EQ(r.value, 1u);
  EXPECT_EQ(Value(store, "n"), "1" + std::string(19, ' '));  // in place, 20 bytes
  r = store.Incr("n", std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(r.value, 0u);
}

TEST_F(StoreTest, ShorterResultIsSpacePaddedLongerResultGrows) {
  Store store(Options());
  store.Set("n", "10", 7, 100);
  EXPECT_EQ(store.Decr("n", 1).value, 9u);
  EXPECT_EQ(Value(store, "n"), "9 ");  // memcached: "9 ", same length
  EXPECT_EQ(store.Incr("n", 91).value, 100u);
  EXPECT_EQ(Value(store, "n"), "100");  // grew to exactly the digits
  std::optional<ItemView> item = store.Peek("n");
  EXPECT_EQ(item->flags, 7u);                 // kept
  EXPECT_EQ(item->expires_at, kStart + 100);  // kept
  store.Set("z", "000000000000000000001", 0, 0);
  EXPECT_EQ(store.Incr("z", 1).value, 2u);
  EXPECT_EQ(Value(store, "z"), "2" + std::string(20, ' '));
}

TEST_F(StoreTest, NonNumericValuesAreRefused) {
  Store store(Options());
  for (std::string value :
       {"abc", "12abc", "-5", "", "   ", "0x10", "99999999999999999999", "1.5"}) {
    store.Set("n", value, 0, 0);
    EXPECT_EQ(store.Incr("n", 1).status, ArithmeticStatus::kNonNumeric) << value;
    EXPECT_EQ(store.Decr("n", 1).status, ArithmeticStatus::kNonNumeric) << value;
    EXPECT_EQ(Value(store, "n"), value);
  }
}

TEST_F(StoreTest, NumbersAreReadLikeStrtoull) {
  Store store(Options());
  store.Set("n", " 12", 0, 0);  // leading whitespace is skipped
  EXPECT_EQ(store.Incr("n", 1).value, 13u);
  store.Set("n", "+5", 0, 0);
  EXPECT_EQ(store.Incr("n", 1).value, 6u);
  store.Set("n", "1 2", 0, 0);  // stops at whitespace
  EXPECT_EQ(store.Incr("n", 1).value, 2u);
  EXPECT_EQ(Value(store, "n"), "2  ");
  store.Set("n", "-0", 0, 0);
  EXPECT_EQ(store.Incr("n", 4).value, 4u);

  EXPECT_EQ(ParseStoredNumber("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(ParseStoredNumber("18446744073709551616"), std::nullopt);
  EXPECT_EQ(ParseStoredNumber("7\r\n"), 7u);
  EXPECT_EQ(ParseStoredNumber("-"), std::nullopt);
}

TEST_F(StoreTest, ArithmeticChangesTheCasAndHonoursCompareCas) {
  Store store(Options());
  const uint64_t cas = store.Set("n", "5", 0, 0).cas;
  EXPECT_EQ(store.Arithmetic("n", {.compare_cas = cas + 1}).status, ArithmeticStatus::kExists);
  ArithmeticResult r = store.Arithmetic("n", {.compare_cas = cas});
  EXPECT_EQ(r.status, ArithmeticStatus::kOk);
  EXPECT_EQ(r.value, 6u);
  EXPECT_GT(r.cas, cas);
  EXPECT_EQ(store.Peek("n")->cas, r.cas);
}

TEST_F(StoreTest, ArithmeticCanCreateOnMissAndSetTheTtl) {
  Store store(Options());
  ArithmeticResult r =
      store.Arithmetic("n", {.create_exptime = 0, .initial = 10, .exptime = std::nullopt});
  EXPECT_EQ(r.status, ArithmeticStatus::kCreated);
  EXPECT_EQ(r.value, 10u);
  EXPECT_EQ(Value(store, "n"), "10");
  r = store.Arithmetic("n", {.delta = 5, .exptime = 60});
  EXPECT_EQ(r.value, 15u);
  EXPECT_EQ(r.expires_at_before, 0);
  EXPECT_EQ(r.expires_at, kStart + 60);
}

// --- Deletion and meta helpers ----------------------------------------------------------

TEST_F(StoreTest, DeleteCountsHitsAndMisses) {
  Store store(Options());
  store.Set("k", "v", 0, 0);
  EXPECT_EQ(store.Delete("k"), DeleteStatus::kDeleted);
  EXPECT_EQ(store.Delete("k"), DeleteStatus::kNotFound);
  EXPECT_EQ(store.stats().delete_hits, 1u);
  EXPECT_EQ(store.stats().delete_misses, 1u);
}

TEST_F(StoreTest, DeleteWithCasAndInvalidate) {
  Store store(Options());
  const uint64_t cas = store.Set("k", "v", 0, 0).cas;
  EXPECT_EQ(store.Delete("k", {.compare_cas = cas + 1}), DeleteStatus::kExists);
  EXPECT_EQ(store.Delete("k", {.compare_cas = 0}), DeleteStatus::kExists);
  EXPECT_EQ(store.Delete("k", {.compare_cas = cas, .invalidate = true, .exptime = 30}),
            DeleteStatus::kInvalidated);
  MetaGetResult first = store.MetaGet("k", {});
  ASSERT_TRUE(first.found);
  EXPECT_TRUE(first.stale);
  EXPECT_TRUE(first.won);
  EXPECT_GT(first.item.cas, cas);
  EXPECT_EQ(first.item.expires_at, kStart + 30);
  MetaGetResult second = store.MetaGet("k", {});
  EXPECT_TRUE(second.stale);
  EXPECT_FALSE(second.won);
  EXPECT_TRUE(second.token_sent);
  EXPECT_EQ(store.Delete("k", {.compare_cas = second.item.cas}), DeleteStatus::kDeleted);
}

TEST_F(StoreTest, MetaGetVivifiesOnceAndHandsOutOneWin) {
  Store store(Options());
  MetaGetResult first = store.MetaGet("k", {.vivify_exptime = 30});
  ASSERT_TRUE(first.found);
  EXPECT_TRUE(first.created);
  EXPECT_TRUE(first.won);
  EXPECT_EQ(first.item.value, "");
  EXPECT_EQ(first.item.expires_at, kStart + 30);
  MetaGetResult second = store.MetaGet("k", {.vivify_exptime = 30});
  EXPECT_FALSE(second.created);
  EXPECT_FALSE(second.won);
  EXPECT_TRUE(second.token_sent);
}

TEST_F(StoreTest, MetaGetRecacheWinsWhenTheTtlRunsLow) {
  Store store(Options());
  store.Set("k", "v", 0, 100);
  EXPECT_FALSE(store.MetaGet("k", {.recache_seconds = 50}).won);
  clock_.Advance(absl::Seconds(60));
  MetaGetResult r = store.MetaGet("k", {.recache_seconds = 50});
  EXPECT_TRUE(r.won);
  EXPECT_TRUE(store.MetaGet("k", {.recache_seconds = 50}).token_sent);
}

TEST_F(StoreTest, MetaGetAppliesTtlFlagsInTheGivenOrder) {
  Store store(Options());
  MetaGetResult r = store.MetaGet("a", {.exptime = 50, .vivify_exptime = 30, .flag_order = "NT"});
  EXPECT_EQ(r.item.expires_at, kStart + 50);  // T after N wins
  EXPECT_EQ(r.vivify_expires_at, kStart + 30);
  EXPECT_EQ(r.ttl_expires_at, kStart + 50);
  r = store.MetaGet("b", {.exptime = 50, .vivify_exptime = 30, .flag_order = "TN"});
  EXPECT_EQ(r.item.expires_at, kStart + 30);  // N after T wins
  // R compares against the TTL as it stands where R appears.
  store.Set("c", "v", 0, 100);
  EXPECT_FALSE(store.MetaGet("c", {.exptime = 10, .recache_seconds = 50, .flag_order = "RT"}).won);
  store.Set("d", "v", 0, 100);
  EXPECT_TRUE(store.MetaGet("d", {.exptime = 10, .recache_seconds = 50, .flag_order = "TR"}).won);
}

TEST_F(StoreTest, MetaGetReportsHitBeforeAndHonoursNoBump) {
  const size_t charge = Store::ItemCharge(1, 1);
  Store store(Options(2 * charge));
  store.Set("a", "1", 0, 0);
  store.Set("b", "1", 0, 0);
  MetaGetResult r = store.MetaGet("a", {.no_bump = true});
  EXPECT_FALSE(r.hit_before);
  EXPECT_FALSE(store.MetaGet("a", {.no_bump = true}).hit_before);  // u: not marked
  store.Set("c", "1", 0, 0);  // a was not bumped: it is the one evicted
  EXPECT_FALSE(store.Peek("a").has_value());
  EXPECT_FALSE(store.MetaGet("b", {}).hit_before);
  EXPECT_TRUE(store.MetaGet("b", {}).hit_before);
}

TEST_F(StoreTest, MetaGetTouchCountsAsTouch) {
  Store store(Options());
  store.Set("k", "v", 0, 0);
  MetaGetResult r = store.MetaGet("k", {.exptime = 60});
  EXPECT_EQ(r.expires_at_before, 0);
  EXPECT_EQ(r.item.expires_at, kStart + 60);
  EXPECT_FALSE(store.MetaGet("missing", {.exptime = 60}).found);
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.touch_hits, 1u);
  EXPECT_EQ(stats.touch_misses, 1u);
  EXPECT_EQ(stats.cmd_touch, 2u);
  EXPECT_EQ(stats.cmd_get, 0u);
}

TEST_F(StoreTest, LastAccessIsTrackedInMinutes) {
  Store store(Options());
  store.Set("k", "v", 0, 0);
  clock_.Advance(absl::Minutes(3));
  EXPECT_EQ(store.MetaGet("k", {}).last_access_seconds, 180);
  EXPECT_EQ(store.MetaGet("k", {}).last_access_seconds, 0);
  std::optional<ItemDebugInfo> info = store.Inspect("k");
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->fetched);
  EXPECT_EQ(info->size, Store::ItemSize(1, 1));
}

// --- Stats ------------------------------------------------------------------------------

TEST_F(StoreTest, GetCountersAndGauges) {
  Store store(Options(1 << 20));
  store.Set("a", "1", 0, 0);
  store.Set("b", "2", 0, 0);
  ASSERT_TRUE(store.Get("a").has_value());
  ASSERT_FALSE(store.Get("zz").has_value());
  const StoreStats stats = store.stats();
  EXPECT_EQ(stats.cmd_get, 2u);
  EXPECT_EQ(stats.get_hits, 1u);
  EXPECT_EQ(stats.get_misses, 1u);
  EXPECT_EQ(stats.cmd_set, 2u);
  EXPECT_EQ(stats.curr_items, 2u);
  EXPECT_EQ(stats.total_items, 2u);
  EXPECT_EQ(stats.limit_maxbytes, 1u << 20);

  store.ResetStats();
  const StoreStats reset = store.stats();
  EXPECT_EQ(reset.cmd_get, 0u);
  EXPECT_EQ(reset.total_items, 0u);
  EXPECT_EQ(reset.curr_items, 2u);  // gauges survive a reset
  EXPECT_EQ(reset.bytes, 2 * Store::ItemCharge(1, 1));
}

TEST_F(StoreTest, StatsSumAcrossShardsButFlushCountsOnce) {
  StoreStats a;
  a.get_hits = 3;
  a.curr_items = 10;
  a.limit_maxbytes = 100;
  a.cmd_flush = 2;
  StoreStats b;
  b.get_hits = 4;
  b.curr_items = 5;
  b.limit_maxbytes = 100;
  b.cmd_flush = 2;
  a += b;
  EXPECT_EQ(a.get_hits, 7u);
  EXPECT_EQ(a.curr_items, 15u);
  EXPECT_EQ(a.limit_maxbytes, 200u);
  EXPECT_EQ(a.cmd_flush, 2u);
}

}  // namespace
}  // namespace evactor::memcached
