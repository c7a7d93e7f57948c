// Promise/Future/RemotePromise and Task on their own: local completion, Then before
// and after the value, dropped promises, blocking futures, and coroutine results.
#include <atomic>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/future.h"
#include "runtime/task.h"
#include "tests/runtime/notification.h"

namespace evactor {
namespace {

// Runs `fn` on shard 0 of a one-shard runtime and waits for it.
template <typename Fn>
void OnShard(Runtime& rt, Fn fn) {
  test::Notification done;
  ASSERT_TRUE(rt.SubmitTo(0, [&] {
                  fn();
                  done.Notify();
                }).ok());
  done.WaitForNotification();
}

TEST(FutureTest, ThenBeforeAndAfterTheValue) {
  auto rt = Runtime::Create({.shards = 1}).value();
  OnShard(*rt, [] {
    Promise<int> p;
    Future<int> f = p.GetFuture();
    EXPECT_FALSE(f.ready());
    int got = 0;
    f.Then([&](absl::StatusOr<int> v) { got = *v; });
    EXPECT_EQ(got, 0);
    p.Set(7);
    EXPECT_EQ(got, 7);

    Promise<int> q;
    Future<int> g = q.GetFuture();
    q.Set(absl::NotFoundError("nope"));
    EXPECT_TRUE(g.ready());
    absl::StatusCode code = absl::StatusCode::kOk;
    g.Then([&](absl::StatusOr<int> v) { code = v.status().code(); });
    EXPECT_EQ(code, absl::StatusCode::kNotFound);
  });
}

TEST(FutureTest, FirstValueWinsAndDroppedPromiseCancels) {
  auto rt = Runtime::Create({.shards = 1}).value();
  OnShard(*rt, [] {
    Promise<int> p;
    Future<int> f = p.GetFuture();
    p.Set(1);
    p.Set(2);
    EXPECT_EQ(*f.Get(), 1);  // ready: Get does not block on a shard

    Future<int> g;
    {
      Promise<int> dropped;
      g = dropped.GetFuture();
    }
    EXPECT_EQ(g.Get().status().code(), absl::StatusCode::kCancelled);

    Promise<int> pending;
    Future<int> h = pending.GetFuture();
    EXPECT_EQ(h.Get().status().code(), absl::StatusCode::kFailedPrecondition);  // would block
  });
}

TEST(FutureTest, BlockingFutureOffShardIsSetFromAShard) {
  auto rt = Runtime::Create({.shards = 1}).value();
  Promise<int> p;  // off-shard: blocking
  Future<int> f = p.GetFuture();
  RemotePromise<int> rp = std::move(p).ToRemote(*rt);
  ASSERT_TRUE(rt->SubmitTo(0, [rp = std::move(rp)]() mutable { rp.Set(99); }).ok());
  EXPECT_EQ(*f.Get(), 99);
}

TEST(FutureTest, RemotePromiseCompletesOnTheHomeShardAndCancelsWhenDropped) {
  auto rt = Runtime::Create({.shards = 2}).value();
  std::atomic<int> value{0};
  std::atomic<int> on{-1};
  std::atomic<int> dropped_code{-1};
  test::Notification done;
  ASSERT_TRUE(rt->SubmitTo(0, [&] {
                  Promise<int> p;
                  p.GetFuture().Then([&](absl::StatusOr<int> v) {
                    value = *v;
                    on = Shard::Current()->id();
                  });
                  Runtime& r = Shard::Current()->runtime();
                  ASSERT_TRUE(r.SubmitTo(1, [rp = std::move(p).ToRemote(r)]() mutable {
                                 rp.Set(5);
                               }).ok());
                  Promise<int> q;
                  q.GetFuture().Then([&](absl::StatusOr<int> v) {
                    dropped_code = static_cast<int>(v.status().code());
                    done.Notify();
                  });
                  // Shard 1 drops the remote promise without setting it.
                  ASSERT_TRUE(r.SubmitTo(1, [rq = std::move(q).ToRemote(r)]() mutable {
                                 RemotePromise<int> gone = std::move(rq);
                               }).ok());
                }).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(value.load(), 5);
  EXPECT_EQ(on.load(), 0);
  EXPECT_EQ(dropped_code.load(), static_cast<int>(absl::StatusCode::kCancelled));
}

Task<int> Twice(Future<int> f) {
  absl::StatusOr<int> v = co_await std::move(f);
  if (!v.ok()) co_return v.status();
  co_return *v * 2;
}

Task<> Record(Future<int> f, int* out) {
  absl::StatusOr<int> v = co_await Twice(std::move(f));
  *out = v.ok() ? *v : -1;
  co_return;
}

TEST(TaskTest, SuspendsUntilTheValueAndChains) {
  auto rt = Runtime::Create({.shards = 1}).value();
  OnShard(*rt, [] {
    Promise<int> p;
    int out = 0;
    Task<> t = Record(p.GetFuture(), &out);
    EXPECT_FALSE(t.future().ready());
    EXPECT_EQ(out, 0);
    p.Set(21);
    EXPECT_EQ(out, 42);
    EXPECT_TRUE(t.future().ready());

    // Errors pass through co_return.
    Promise<int> q;
    Task<int> e = Twice(q.GetFuture());
    q.Set(absl::DeadlineExceededError("late"));
    EXPECT_EQ(e.future().Get().status().code(), absl::StatusCode::kDeadlineExceeded);

    // A ready future does not suspend.
    Task<int> r = Twice(Future<int>::Ready(4));
    EXPECT_EQ(*r.future().Get(), 8);
  });
}

}  // namespace
}  // namespace evactor
