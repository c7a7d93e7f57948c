// evactor::Promise<T>, Future<T>, RemotePromise<T> — one value (or an error) handed
// from whoever computes it to whoever waits for it.
//
//   Promise<int> p;                       // on a shard
//   Future<int> f = p.GetFuture();
//   f.Then([](absl::StatusOr<int> v) { ... });   // runs on this shard when set
//   p.Set(42);
//
//   // Across shards: the waiting shard keeps the future; the computing shard gets a
//   // RemotePromise, whose Set() travels back through the waiting shard's mailbox.
//   RemotePromise<int> rp = p.ToRemote(runtime);
//   runtime.SubmitTo(other, [rp = std::move(rp)]() mutable { rp.Set(Compute()); });
//
// Shard-local: a Promise and its Future live on one shard, so their shared state has
// no atomics and no locks; the continuation (Then, or a coroutine waiting in
// co_await) runs on that shard. A Promise created on a thread that is not a shard
// makes a *blocking* future instead: Get() waits for it (its state takes a mutex,
// since it is set from a shard thread).
//
// Errors: a Promise or RemotePromise destroyed without a value fails its Future with
// Cancelled, so a waiter always learns the outcome. (A RemotePromise whose home shard
// has already stopped cannot deliver anything; its state is then left alone.)
//
// Thread safety: Promise, Future and their state belong to the creating thread (for
// shard futures, its shard). A RemotePromise may be moved to and set from any shard.
#ifndef EVACTOR_RUNTIME_FUTURE_H_
#define EVACTOR_RUNTIME_FUTURE_H_

#include <condition_variable>
#include <coroutine>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/runtime.h"

namespace evactor {

// The value of a future that only reports success or failure.
struct Done {
  bool operator==(const Done&) const = default;
};

template <typename T>
class Future;
template <typename T>
class RemotePromise;

namespace internal {

template <typename T>
struct FutureState {
  std::optional<absl::StatusOr<T>> result;
  absl::AnyInvocable<void(absl::StatusOr<T>)> then;
  bool has_future = true;
  bool has_promise = true;
  bool retrieved = false;
  // Blocking mode only (created off-shard): guards everything above.
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
  };
  std::unique_ptr<Sync> sync;

  void Set(absl::StatusOr<T> v) {
    if (sync != nullptr) {
      std::lock_guard<std::mutex> lock(sync->mu);
      if (!result.has_value()) result = std::move(v);
      sync->cv.notify_all();
      return;
    }
    if (result.has_value()) return;  // first value wins
    if (then) {
      auto cb = std::move(then);
      result = absl::StatusOr<T>(absl::InternalError("consumed by Then"));
      cb(std::move(v));
    } else {
      result = std::move(v);
    }
  }

  // Drops one side; returns true when the state should be freed.
  bool Release(bool promise_side) {
    if (sync != nullptr) {
      std::lock_guard<std::mutex> lock(sync->mu);
      (promise_side ? has_promise : has_future) = false;
      return !has_promise && !has_future;
    }
    (promise_side ? has_promise : has_future) = false;
    return !has_promise && !has_future;
  }
};

}  // namespace internal

template <typename T>
class Promise {
 public:
  Promise() : state_(new internal::FutureState<T>()) {
    if (Shard::Current() == nullptr) {
      state_->sync = std::make_unique<typename internal::FutureState<T>::Sync>();
    }
  }
  Promise(Promise&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      Abandon();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~Promise() { Abandon(); }

  // The future of this promise. REQUIRES: called at most once.
  Future<T> GetFuture();

  // Completes the future (the first value wins). Runs a waiting continuation now,
  // on this thread. REQUIRES: on the promise's home thread.
  void Set(absl::StatusOr<T> value) {
    if (state_ != nullptr) state_->Set(std::move(value));
  }

  // A promise that can be completed from any shard of `runtime`: its Set() sends the
  // value home through the mailbox. Consumes this promise.
  RemotePromise<T> ToRemote(Runtime& runtime) &&;

 private:
  friend class RemotePromise<T>;
  void Abandon() {
    if (state_ == nullptr) return;
    state_->Set(absl::CancelledError("the promise was destroyed without a value"));
    if (state_->Release(true)) delete state_;
    state_ = nullptr;
  }
  internal::FutureState<T>* state_;
};

template <typename T>
class Future {
 public:
  Future() = default;
  Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Future& operator=(Future&& other) noexcept {
    if (this != &other) {
      Drop();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~Future() { Drop(); }

  // A future that is already complete.
  static Future Ready(absl::StatusOr<T> value) {
    Promise<T> p;
    Future f = p.GetFuture();
    p.Set(std::move(value));
    return f;
  }

  bool valid() const { return state_ != nullptr; }
  // True once a value or error is there.
  bool ready() const {
    if (state_ == nullptr) return false;
    if (state_->sync != nullptr) {
      std::lock_guard<std::mutex> lock(state_->sync->mu);
      return state_->result.has_value();
    }
    return state_->result.has_value();
  }

  // Runs `cb` with the outcome: now, if it is there, else when the promise is set, on
  // the future's shard. At most one continuation; it runs even if this Future is
  // destroyed first. REQUIRES: a shard future (not a blocking one).
  void Then(absl::AnyInvocable<void(absl::StatusOr<T>)> cb) {
    if (state_ == nullptr) {
      cb(absl::FailedPreconditionError("Then on an empty future"));
      return;
    }
    if (state_->sync != nullptr) {
      cb(absl::FailedPreconditionError("Then needs a future created on a shard; use Get()"));
      return;
    }
    if (state_->result.has_value()) {
      cb(std::move(*state_->result));
      state_->result = absl::StatusOr<T>(absl::InternalError("consumed by Then"));
      return;
    }
    state_->then = std::move(cb);
  }

  // Blocks until the outcome is there and returns it. For futures created off-shard
  // (on a shard it would deadlock the loop): FailedPrecondition there unless ready.
  absl::StatusOr<T> Get() {
    if (state_ == nullptr) return absl::FailedPreconditionError("Get on an empty future");
    if (state_->sync == nullptr) {
      if (state_->result.has_value()) return std::move(*state_->result);
      return absl::FailedPreconditionError(
          "Get would block a shard's loop; use Then or co_await");
    }
    std::unique_lock<std::mutex> lock(state_->sync->mu);
    state_->sync->cv.wait(lock, [this] { return state_->result.has_value(); });
    return std::move(*state_->result);
  }

  // co_await future: suspends the coroutine until the outcome is there; resumes it
  // on this shard. Yields absl::StatusOr<T>.
  auto operator co_await() && {
    struct Awaiter {
      Future fut;
      std::optional<absl::StatusOr<T>> value;
      bool await_ready() {
        if (fut.state_ == nullptr) {
          value = absl::FailedPreconditionError("co_await on an empty future");
          return true;
        }
        if (fut.state_->sync != nullptr) {
          value = fut.Get();  // a blocking future outside shards: wait here
          return true;
        }
        if (fut.state_->result.has_value()) {
          value = std::move(*fut.state_->result);
          return true;
        }
        return false;
      }
      void await_suspend(std::coroutine_handle<> h) {
        fut.state_->then = [this, h](absl::StatusOr<T> v) {
          value = std::move(v);
          h.resume();
        };
      }
      absl::StatusOr<T> await_resume() { return std::move(*value); }
    };
    return Awaiter{std::move(*this), std::nullopt};
  }

 private:
  friend class Promise<T>;
  explicit Future(internal::FutureState<T>* state) : state_(state) {}
  void Drop() {
    if (state_ == nullptr) return;
    // A continuation set with Then() stays: dropping the future after Then() is
    // the usual way to fire and forget.
    if (state_->Release(false)) delete state_;
    state_ = nullptr;
  }
  internal::FutureState<T>* state_ = nullptr;
};

template <typename T>
Future<T> Promise<T>::GetFuture() {
  if (state_ == nullptr || state_->retrieved) return Future<T>();
  state_->retrieved = true;
  return Future<T>(state_);
}

// The far end of a Promise: movable to any shard of the runtime; Set() completes the
// future on its home shard (through that shard's mailbox), or directly for a
// blocking future. Destroyed unset, it fails the future with Cancelled.
template <typename T>
class RemotePromise {
 public:
  RemotePromise() = default;
  RemotePromise(RemotePromise&& other) noexcept
      : runtime_(other.runtime_),
        home_(other.home_),
        state_(std::exchange(other.state_, nullptr)) {}
  RemotePromise& operator=(RemotePromise&& other) noexcept {
    if (this != &other) {
      if (state_ != nullptr) Set(absl::CancelledError("the promise was destroyed without a value"));
      runtime_ = other.runtime_;
      home_ = other.home_;
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~RemotePromise() {
    if (state_ != nullptr) Set(absl::CancelledError("the promise was destroyed without a value"));
  }

  bool valid() const { return state_ != nullptr; }

  // Any shard of the runtime (or any thread, for a blocking future). Sets once.
  void Set(absl::StatusOr<T> value) {
    internal::FutureState<T>* state = std::exchange(state_, nullptr);
    if (state == nullptr) return;
    if (home_ < 0) {  // blocking future: the mutex makes this safe from any thread
      state->Set(std::move(value));
      if (state->Release(true)) delete state;
      return;
    }
    Shard* here = Shard::Current();
    if (here != nullptr && here->id() == home_ && &here->runtime() == runtime_) {
      state->Set(std::move(value));
      if (state->Release(true)) delete state;
      return;
    }
    Deliver(state, std::move(value));
  }

 private:
  friend class Promise<T>;
  RemotePromise(Runtime* runtime, int home, internal::FutureState<T>* state)
      : runtime_(runtime), home_(home), state_(state) {}

  // Sends the value home (a full ring is retried from the sender's loop). A closed
  // home (the runtime is stopping) leaves the state alone: nobody waits there any
  // more, and it must not be touched from this thread.
  void Deliver(internal::FutureState<T>* state, absl::StatusOr<T> value) {
    runtime_
        ->SubmitToRetrying(home_,
                           [state, v = std::move(value)]() mutable {
                             state->Set(std::move(v));
                             if (state->Release(true)) delete state;
                           })
        .IgnoreError();
  }

  Runtime* runtime_ = nullptr;
  int home_ = -1;
  internal::FutureState<T>* state_ = nullptr;
};

template <typename T>
RemotePromise<T> Promise<T>::ToRemote(Runtime& runtime) && {
  Shard* here = Shard::Current();
  const bool blocking = state_ != nullptr && state_->sync != nullptr;
  const int home =
      (!blocking && here != nullptr && &here->runtime() == &runtime) ? here->id() : -1;
  if (home < 0 && state_ != nullptr && !blocking) {
    // A shard future of another runtime cannot be completed through this one.
    std::abort();
  }
  return RemotePromise<T>(&runtime, home, std::exchange(state_, nullptr));
}

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_FUTURE_H_
