// evactor actors: an object that lives on one shard and is reached only by messages.
//
//   class Counter : public evactor::Actor {
//    public:
//     explicit Counter(int start) : total_(start) {}
//     void Add(int n) { total_ += n; }
//     int Total() const { return total_; }
//     absl::Status Check() { return total_ < 0 ? absl::InternalError("negative") : absl::OkStatus(); }
//    private:
//     int total_;
//   };
//
//   auto ref = runtime->Spawn<Counter>({.shard = 1}, 10).value();
//   ref.Tell(&Counter::Add, 5);                        // runs Add(5) on shard 1
//   evactor::Future<int> f = ref.Ask(&Counter::Total);  // completes on the caller's shard
//   // in a Task on a shard:  absl::StatusOr<int> n = co_await ref.Ask(&Counter::Total);
//   // off-shard (main thread): f.Get() blocks for the answer.
//
// Order: messages from one sender to one actor run in the order sent. Messages sent
// right after Spawn (by anyone) wait until the actor is constructed.
//
// Ask results: a handler returning U gives Future<U>; absl::StatusOr<U> gives Future<U>
// with the error passed through; absl::Status or void gives Future<Done>; Future<U> or
// Task<U> (an asynchronous handler) gives Future<U>, completed when that completes.
//
// Stopping: ref.Stop() destroys the actor on its shard after the messages already
// queued before it from the same sender. Later Asks fail with FailedPrecondition
// ("actor stopped"); later Tells are dropped and counted in Shard::dead_letters().
//
// Supervision (chosen at spawn): when a handler returns an error status (absl::Status
// or absl::StatusOr), SpawnOptions::supervision decides: kStop stops the actor;
// kRestart destroys it and constructs a fresh one from the spawn arguments (state is
// lost, the mailbox is kept), at most max_restarts times, then stops. An Ask still
// receives the handler's error.
//
// An actor can use its shard's loop (timers, sockets) through Actor::loop(); such
// handles must be members, so they die with the actor, on its shard.
//
// Thread safety: an ActorRef is a small copyable handle, usable from any thread; the
// actor object itself is touched only on its shard. A stopped actor leaves a small
// tombstone (its cell, tens of bytes) until its shard stops, so that late messages can
// be answered with an error instead of touching freed memory.
#ifndef EVACTOR_RUNTIME_ACTOR_H_
#define EVACTOR_RUNTIME_ACTOR_H_

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/future.h"
#include "runtime/loop.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace evactor {

enum class Supervision {
  kStop,     // an error status from a handler stops the actor
  kRestart,  // ... destroys it and constructs a new one from the spawn arguments
};

struct SpawnOptions {
  // Shard to place the actor on; -1: round-robin over all shards.
  int shard = -1;
  Supervision supervision = Supervision::kStop;
  // Restarts allowed (kRestart) before the actor is stopped for good.
  int max_restarts = 10;
};

// Optional base class: gives an actor its shard and loop.
class Actor {
 public:
  virtual ~Actor() = default;
  Shard& shard() const { return *Shard::Current(); }
  Loop& loop() const { return Shard::Current()->loop(); }
};

namespace internal {

template <typename R>
struct AskTraits {  // U
  using Value = R;
  static constexpr bool kIsStatus = false;
};
template <>
struct AskTraits<void> {
  using Value = Done;
  static constexpr bool kIsStatus = false;
};
template <>
struct AskTraits<absl::Status> {
  using Value = Done;
  static constexpr bool kIsStatus = true;
};
template <typename U>
struct AskTraits<absl::StatusOr<U>> {
  using Value = U;
  static constexpr bool kIsStatus = true;
};
template <typename U>
struct AskTraits<Future<U>> {
  using Value = U;
  static constexpr bool kIsStatus = false;
};
template <typename U>
struct AskTraits<Task<U>> {
  using Value = internal::TaskValue<U>;
  static constexpr bool kIsStatus = false;
};

template <typename R>
inline constexpr bool kIsAsync = false;
template <typename U>
inline constexpr bool kIsAsync<Future<U>> = true;
template <typename U>
inline constexpr bool kIsAsync<Task<U>> = true;

template <typename T>
class ActorCell final : public ActorCellBase {
 public:
  enum class State { kStarting, kRunning, kStopped };
  using Invocation = absl::AnyInvocable<void(T* actor)>;

  ActorCell(std::function<std::unique_ptr<T>()> factory, SpawnOptions options)
      : factory_(std::move(factory)), options_(options) {}

  // On the actor's shard.
  void Start() {
    actor_ = factory_();
    state_ = State::kRunning;
    std::vector<Invocation> early = std::move(early_);
    for (Invocation& inv : early) Run(std::move(inv));
  }
  void Run(Invocation inv) {
    switch (state_) {
      case State::kStarting:
        early_.push_back(std::move(inv));
        return;
      case State::kStopped:
        inv(nullptr);
        return;
      case State::kRunning:
        inv(actor_.get());
        return;
    }
  }
  void Stop() {
    state_ = State::kStopped;
    actor_.reset();
    std::vector<Invocation> early = std::move(early_);
    for (Invocation& inv : early) inv(nullptr);
  }
  // A handler returned `error`: apply the supervision policy.
  void OnError() {
    if (state_ != State::kRunning) return;
    if (options_.supervision == Supervision::kRestart && restarts_ < options_.max_restarts) {
      ++restarts_;
      actor_.reset();
      actor_ = factory_();
      return;
    }
    Stop();
  }
  int restarts() const { return restarts_; }

 private:
  std::function<std::unique_ptr<T>()> factory_;
  SpawnOptions options_;
  State state_ = State::kStarting;
  std::unique_ptr<T> actor_;
  std::vector<Invocation> early_;
  int restarts_ = 0;
};

}  // namespace internal

template <typename T>
class ActorRef {
 public:
  ActorRef() = default;

  bool valid() const { return cell_ != nullptr; }
  int shard() const { return shard_; }

  // Runs (actor.*method)(args...) on the actor's shard. Arguments are copied or moved
  // into the message. Errors: those of Runtime::SubmitTo (a full ring keeps nothing:
  // the message is dropped and the error says so).
  template <typename Method, typename... Args>
  absl::Status Tell(Method method, Args&&... args) const {
    internal::ActorCell<T>* cell = cell_;
    return runtime_->SubmitTo(
        shard_, [cell, method, tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
          cell->Run([cell, method, tup = std::move(tup)](T* actor) mutable {
            if (actor == nullptr) {
              Shard::Current()->CountDeadLetter();
              return;
            }
            using R = decltype(std::apply(
                [&](auto&&... a) { return std::invoke(method, *actor, std::move(a)...); }, tup));
            if constexpr (internal::AskTraits<R>::kIsStatus) {
              auto r = std::apply(
                  [&](auto&&... a) { return std::invoke(method, *actor, std::move(a)...); }, tup);
              if (!r.ok()) cell->OnError();
            } else {
              std::apply([&](auto&&... a) { std::invoke(method, *actor, std::move(a)...); }, tup);
            }
          });
        });
  }

  // Runs (actor.*method)(args...) on the actor's shard and returns its outcome as a
  // Future that completes on the caller's shard (or, off-shard, a blocking Future).
  // The future fails with the send error if the message could not be queued, with
  // FailedPrecondition if the actor has stopped, and with the handler's own error.
  template <typename Method, typename... Args>
  auto Ask(Method method, Args&&... args) const {
    using R = std::invoke_result_t<Method, T&, std::decay_t<Args>&&...>;
    using V = typename internal::AskTraits<R>::Value;
    Promise<V> promise;
    Future<V> future = promise.GetFuture();
    RemotePromise<V> remote = std::move(promise).ToRemote(*runtime_);
    internal::ActorCell<T>* cell = cell_;
    auto msg = [cell, method, remote = std::move(remote),
                            tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      cell->Run([cell, method, remote = std::move(remote),
                 tup = std::move(tup)](T* actor) mutable {
        if (actor == nullptr) {
          remote.Set(absl::FailedPreconditionError("actor stopped"));
          return;
        }
        auto call = [&] {
          return std::apply(
              [&](auto&&... a) -> R { return std::invoke(method, *actor, std::move(a)...); },
              tup);
        };
        if constexpr (std::is_void_v<R>) {
          call();
          remote.Set(Done{});
        } else if constexpr (std::is_same_v<R, absl::Status>) {
          absl::Status s = call();
          if (!s.ok()) cell->OnError();
          if (s.ok()) {
            remote.Set(Done{});
          } else {
            remote.Set(std::move(s));
          }
        } else if constexpr (internal::AskTraits<R>::kIsStatus) {
          R r = call();
          if (!r.ok()) cell->OnError();
          remote.Set(std::move(r));
        } else if constexpr (internal::kIsAsync<R>) {
          R r = call();
          Future<V> f;
          if constexpr (std::is_same_v<R, Future<V>>) {
            f = std::move(r);
          } else {
            f = std::move(r).TakeFuture();
          }
          f.Then([remote = std::move(remote)](absl::StatusOr<V> v) mutable {
            remote.Set(std::move(v));
          });
        } else {
          remote.Set(call());
        }
      });
    };
    absl::Status s = runtime_->TrySubmitTo(shard_, msg);
    if (!s.ok()) {
      // The message is still ours; dropping it (and the remote promise in it) here,
      // where the future lives, is safe. Answer with the reason instead.
      return Future<V>::Ready(s);
    }
    return future;
  }

  // Stops the actor after what this sender queued before; see the header comment.
  absl::Status Stop() const {
    internal::ActorCell<T>* cell = cell_;
    return runtime_->SubmitTo(shard_, [cell] { cell->Stop(); });
  }

 private:
  friend class Runtime;
  ActorRef(Runtime* runtime, int shard, internal::ActorCell<T>* cell)
      : runtime_(runtime), shard_(shard), cell_(cell) {}
  Runtime* runtime_ = nullptr;
  int shard_ = -1;
  internal::ActorCell<T>* cell_ = nullptr;  // dereferenced only on shard_
};

template <typename T, typename... Args>
absl::StatusOr<ActorRef<T>> Runtime::Spawn(const SpawnOptions& options, Args&&... args) {
  const int shard = options.shard < 0 ? NextShard() : options.shard;
  if (shard >= size()) {
    return absl::InvalidArgumentError("Spawn: no such shard");
  }
  // The factory keeps copies of the arguments, for restarts.
  std::function<std::unique_ptr<T>()> factory =
      [tup = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() {
        return std::apply([](const auto&... a) { return std::make_unique<T>(a...); }, tup);
      };
  auto* cell = new internal::ActorCell<T>(std::move(factory), options);
  auto create = [cell] {
    Shard::Current()->AdoptActorCell(std::unique_ptr<internal::ActorCellBase>(cell));
    cell->Start();
  };
  absl::Status s = TrySubmitTo(shard, create);
  if (!s.ok()) {
    delete cell;  // never reached its shard
    return s;
  }
  return ActorRef<T>(this, shard, cell);
}

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_ACTOR_H_
