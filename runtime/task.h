// evactor::Task<T> — a C++20 coroutine that runs on a shard and yields a Future<T>.
//
//   Task<int> SumOfTwo(ActorRef<Counter> a, ActorRef<Counter> b) {
//     absl::StatusOr<int> x = co_await a.Ask(&Counter::Total);
//     if (!x.ok()) co_return x.status();
//     absl::StatusOr<int> y = co_await b.Ask(&Counter::Total);
//     if (!y.ok()) co_return y.status();
//     co_return *x + *y;
//   }
//   SumOfTwo(a, b).future().Then([](absl::StatusOr<int> s) { ... });
//
// A Task starts at once (eagerly) on the calling thread and runs until its first
// co_await on something not ready; it resumes on the same shard when that completes
// (futures complete on their home shard, remote answers arrive through its mailbox).
// Its frame frees itself when the body finishes; dropping the Task object does not
// cancel the body, it only drops interest in the result.
//
// co_return a T, an absl::Status error, or an absl::StatusOr<T>; Task<void> uses
// co_return; and yields Future<Done>. co_await accepts Future<U> and Task<U> and gives
// absl::StatusOr<U>.
//
// Thread safety: a Task belongs to the shard that started it. Exceptions are not used
// by evactor: one escaping a Task body aborts the process.
#ifndef EVACTOR_RUNTIME_TASK_H_
#define EVACTOR_RUNTIME_TASK_H_

#include <coroutine>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "runtime/future.h"

namespace evactor {

template <typename T = void>
class Task;

namespace internal {

template <typename T>
using TaskValue = std::conditional_t<std::is_void_v<T>, Done, T>;

template <typename T>
struct TaskPromiseBase {
  Promise<TaskValue<T>> promise;
  std::suspend_never initial_suspend() noexcept { return {}; }
  std::suspend_never final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::abort(); }
};

template <typename T>
struct TaskPromise : TaskPromiseBase<T> {
  Task<T> get_return_object();
  void return_value(absl::StatusOr<T> v) { this->promise.Set(std::move(v)); }
};

template <>
struct TaskPromise<void> : TaskPromiseBase<void> {
  Task<void> get_return_object();
  void return_void() { this->promise.Set(Done{}); }
};

}  // namespace internal

template <typename T>
class Task {
 public:
  using promise_type = internal::TaskPromise<T>;
  using Value = internal::TaskValue<T>;

  Task(Task&&) noexcept = default;
  Task& operator=(Task&&) noexcept = default;

  // The outcome of the body.
  Future<Value>& future() { return future_; }
  Future<Value> TakeFuture() && { return std::move(future_); }

  auto operator co_await() && { return std::move(future_).operator co_await(); }

 private:
  friend struct internal::TaskPromise<T>;
  explicit Task(Future<Value> f) : future_(std::move(f)) {}
  Future<Value> future_;
};

namespace internal {

template <typename T>
Task<T> TaskPromise<T>::get_return_object() {
  return Task<T>(this->promise.GetFuture());
}

inline Task<void> TaskPromise<void>::get_return_object() {
  return Task<void>(this->promise.GetFuture());
}

}  // namespace internal

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_TASK_H_
