// Actors: Spawn, Tell, Ask across shards, order per sender, stop, supervision,
// coroutines chaining Asks across shards, and actor timers on their own shard.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/actor.h"
#include "runtime/task.h"
#include "runtime/timer.h"
#include "tests/runtime/notification.h"

namespace evactor {
namespace {

class Counter : public Actor {
 public:
  explicit Counter(int start) : total_(start) { ++constructed; }
  ~Counter() override { ++destroyed; }
  void Add(int n) { total_ += n; }
  int Total() const { return total_; }
  int ShardId() const { return shard().id(); }
  absl::Status FailIfOver(int limit) {
    if (total_ > limit) return absl::OutOfRangeError("over the limit");
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Name(int id) {
    if (id < 0) return absl::InvalidArgumentError("negative id");
    return "counter-" + std::to_string(id);
  }
  void AppendSeen(int v) { seen_.push_back(v); }
  std::vector<int> Seen() const { return seen_; }

  static inline std::atomic<int> constructed{0};
  static inline std::atomic<int> destroyed{0};

 private:
  int total_;
  std::vector<int> seen_;
};

TEST(ActorTest, AskFromOffShardBlocksForTheAnswer) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto ref = rt->Spawn<Counter>({.shard = 1}, 10).value();
  ASSERT_TRUE(ref.Tell(&Counter::Add, 5).ok());
  absl::StatusOr<int> total = ref.Ask(&Counter::Total).Get();
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, 15);
  EXPECT_EQ(*ref.Ask(&Counter::ShardId).Get(), 1);
}

TEST(ActorTest, AskResultKinds) {
  auto rt = Runtime::Create({.shards = 1}).value();
  auto ref = rt->Spawn<Counter>({}, 0).value();
  absl::StatusOr<std::string> name = ref.Ask(&Counter::Name, 7).Get();
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "counter-7");
  absl::StatusOr<Done> done = ref.Ask(&Counter::Add, 1).Get();  // void → Done
  EXPECT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(ref.Ask(&Counter::FailIfOver, 100).Get().ok());  // Status → Done
  // An error result reaches the asker (and, by the default policy, stops the actor).
  EXPECT_EQ(ref.Ask(&Counter::Name, -1).Get().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ActorTest, MessagesFromOneSenderRunInOrderEvenRightAfterSpawn) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto ref = rt->Spawn<Counter>({.shard = 1}, 0).value();
  for (int i = 0; i < 5000; ++i) {
    absl::Status s;
    while (!(s = ref.Tell(&Counter::AppendSeen, i)).ok()) {
      ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
      std::this_thread::yield();
    }
  }
  std::vector<int> seen = *ref.Ask(&Counter::Seen).Get();
  ASSERT_EQ(seen.size(), 5000u);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(seen[i], i);
}

TEST(ActorTest, AskAcrossShardsCompletesOnTheCallersShard) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto ref = rt->Spawn<Counter>({.shard = 1}, 41).value();
  std::atomic<int> value{0};
  std::atomic<int> completed_on{-1};
  test::Notification done;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  ref.Ask(&Counter::Total).Then([&](absl::StatusOr<int> v) {
                    value = v.ok() ? *v : -1;
                    completed_on = Shard::Current()->id();
                    done.Notify();
                  });
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(value.load(), 41);
  EXPECT_EQ(completed_on.load(), 0);
}

TEST(ActorTest, AskToAStoppedActorFailsAndTellsAreCountedAsDeadLetters) {
  auto rt = Runtime::Create({.shards = 2}).value();
  const int destroyed_before = Counter::destroyed.load();
  auto ref = rt->Spawn<Counter>({.shard = 1}, 0).value();
  ASSERT_TRUE(ref.Stop().ok());
  absl::StatusOr<int> r = ref.Ask(&Counter::Total).Get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("stopped"), absl::string_view::npos);
  EXPECT_EQ(Counter::destroyed.load(), destroyed_before + 1);  // destroyed at Stop
  ASSERT_TRUE(ref.Tell(&Counter::Add, 1).ok());
  // The dead letter is counted on the actor's shard.
  ASSERT_TRUE(ref.Ask(&Counter::Total).Get().status().code() ==
              absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rt->shard(1).dead_letters(), 1u);
}

TEST(ActorTest, SupervisionStopPolicyStopsOnError) {
  auto rt = Runtime::Create({.shards = 1}).value();
  auto ref = rt->Spawn<Counter>({.supervision = Supervision::kStop}, 50).value();
  // The asker gets the handler's error...
  EXPECT_EQ(ref.Ask(&Counter::FailIfOver, 10).Get().status().code(),
            absl::StatusCode::kOutOfRange);
  // ...and the actor is gone.
  EXPECT_EQ(ref.Ask(&Counter::Total).Get().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ActorTest, SupervisionRestartRebuildsFromTheSpawnArguments) {
  auto rt = Runtime::Create({.shards = 1}).value();
  auto ref = rt->Spawn<Counter>({.supervision = Supervision::kRestart, .max_restarts = 2}, 5)
                 .value();
  ASSERT_TRUE(ref.Tell(&Counter::Add, 100).ok());
  EXPECT_EQ(*ref.Ask(&Counter::Total).Get(), 105);
  // An error from a Tell handler restarts it: state back to the spawn value.
  ASSERT_TRUE(ref.Tell(&Counter::FailIfOver, 10).ok());
  EXPECT_EQ(*ref.Ask(&Counter::Total).Get(), 5);
  ASSERT_TRUE(ref.Tell(&Counter::Add, 100).ok());
  ASSERT_TRUE(ref.Tell(&Counter::FailIfOver, 10).ok());  // second restart
  EXPECT_EQ(*ref.Ask(&Counter::Total).Get(), 5);
  ASSERT_TRUE(ref.Tell(&Counter::Add, 100).ok());
  ASSERT_TRUE(ref.Tell(&Counter::FailIfOver, 10).ok());  // over max_restarts: stopped
  EXPECT_EQ(ref.Ask(&Counter::Total).Get().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A coroutine on shard 0 that chains Asks to actors on shards 1 and 2.
Task<int> SumOf(ActorRef<Counter> a, ActorRef<Counter> b, std::atomic<int>* resumed_on) {
  absl::StatusOr<int> x = co_await a.Ask(&Counter::Total);
  if (!x.ok()) co_return x.status();
  resumed_on->store(Shard::Current()->id());
  absl::StatusOr<int> y = co_await b.Ask(&Counter::Total);
  if (!y.ok()) co_return y.status();
  co_return *x + *y;
}

Task<int> SumTwice(ActorRef<Counter> a, ActorRef<Counter> b, std::atomic<int>* resumed_on) {
  absl::StatusOr<int> first = co_await SumOf(a, b, resumed_on);
  if (!first.ok()) co_return first.status();
  absl::StatusOr<int> second = co_await SumOf(a, b, resumed_on);
  if (!second.ok()) co_return second.status();
  co_return *first + *second;
}

TEST(ActorTest, CoroutineChainsAcrossShards) {
  auto rt = Runtime::Create({.shards = 3}).value();
  auto a = rt->Spawn<Counter>({.shard = 1}, 20).value();
  auto b = rt->Spawn<Counter>({.shard = 2}, 22).value();
  std::atomic<int> result{0};
  std::atomic<int> resumed_on{-1};
  test::Notification done;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  SumTwice(a, b, &resumed_on).future().Then([&](absl::StatusOr<int> v) {
                    result = v.ok() ? *v : -1;
                    done.Notify();
                  });
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(result.load(), 84);
  EXPECT_EQ(resumed_on.load(), 0);  // coroutines resume on their own shard
}

TEST(ActorTest, CoroutinePropagatesErrors) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto a = rt->Spawn<Counter>({.shard = 1}, 1).value();
  auto b = rt->Spawn<Counter>({.shard = 1}, 2).value();
  ASSERT_TRUE(b.Stop().ok());
  std::atomic<int> code{-1};
  test::Notification done;
  std::atomic<int> resumed_on{-1};
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  SumOf(a, b, &resumed_on).future().Then([&](absl::StatusOr<int> v) {
                    code = static_cast<int>(v.status().code());
                    done.Notify();
                  });
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(code.load(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
}

class Ticker : public Actor {
 public:
  Ticker() : timer_(loop(), [this](uint32_t) { ++ticks_; }) {
    timer_.StartPeriodic(absl::Milliseconds(1));
  }
  int Ticks() const { return ticks_; }
  int TimerShard() const { return shard().id(); }

 private:
  Timer timer_;
  int ticks_ = 0;
};

TEST(ActorTest, ActorTimersRunOnItsShard) {
  auto rt = Runtime::Create({.shards = 2}).value();
  auto t = rt->Spawn<Ticker>({.shard = 1}).value();
  int ticks = 0;
  for (int i = 0; i < 500 && ticks < 5; ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    ticks = *t.Ask(&Ticker::Ticks).Get();
  }
  EXPECT_GE(ticks, 5);
  EXPECT_EQ(*t.Ask(&Ticker::TimerShard).Get(), 1);
  // Shutdown destroys the actor (and its timer) on its shard.
}

TEST(ActorTest, RoundRobinPlacement) {
  auto rt = Runtime::Create({.shards = 3}).value();
  std::vector<int> shards;
  for (int i = 0; i < 6; ++i) {
    auto ref = rt->Spawn<Counter>({}, 0).value();
    shards.push_back(*ref.Ask(&Counter::ShardId).Get());
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(std::count(shards.begin(), shards.end(), i), 2);
  EXPECT_EQ(rt->Spawn<Counter>({.shard = 3}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ActorTest, ActorsAreDestroyedOnShutdown) {
  const int before_c = Counter::constructed.load();
  const int before_d = Counter::destroyed.load();
  {
    auto rt = Runtime::Create({.shards = 2}).value();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(rt->Spawn<Counter>({}, i).ok());
    rt->Shutdown();
    ASSERT_TRUE(rt->Wait().ok());
  }
  EXPECT_EQ(Counter::constructed.load() - before_c, 10);
  EXPECT_EQ(Counter::destroyed.load() - before_d, 10);
}

}  // namespace
}  // namespace evactor
