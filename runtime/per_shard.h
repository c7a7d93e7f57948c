// evactor::PerShard<T> — one instance of T on every shard, each touched only by its
// own shard (Seastar's sharded<T>, without the cross-shard calls: use SubmitTo or
// actors for those).
//
//   auto counts = PerShard<Stats>::Create(*runtime, [](Shard& s) {
//     return std::make_unique<Stats>(s.id());
//   }).value();
//   // in any handler on a shard:
//   counts->local().hits++;
//
// Create() builds each instance on its own shard and returns once all exist; it must
// be called off-shard (it blocks). Instances are destroyed on their shards when the
// runtime stops; the PerShard object must not be used after that.
//
// Thread safety: local() from a shard thread of the runtime; the PerShard object
// itself is immutable after Create().
#ifndef EVACTOR_RUNTIME_PER_SHARD_H_
#define EVACTOR_RUNTIME_PER_SHARD_H_

#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/runtime.h"

namespace evactor {

template <typename T>
class PerShard {
 public:
  using Factory = std::function<std::unique_ptr<T>(Shard&)>;

  static absl::StatusOr<std::unique_ptr<PerShard>> Create(Runtime& runtime, Factory factory) {
    if (Shard::Current() != nullptr) {
      return absl::FailedPreconditionError("PerShard::Create blocks: call it off-shard");
    }
    std::unique_ptr<PerShard> ps(new PerShard(runtime.size()));
    // std::latch (atomics TSan can see), not absl::BlockingCounter.
    std::latch made(runtime.size());
    PerShard* raw = ps.get();
    for (int i = 0; i < runtime.size(); ++i) {
      absl::Status s = runtime.SubmitTo(i, [raw, &factory, &made] {
        Shard& shard = *Shard::Current();
        raw->instances_[shard.id()] = factory(shard).release();
        T* mine = raw->instances_[shard.id()];
        shard.OnStop([mine] { delete mine; });
        made.count_down();
      });
      if (!s.ok()) {
        // Count the shards that will never run the factory, then report.
        for (int j = i; j < runtime.size(); ++j) made.count_down();
        made.wait();
        return s;
      }
    }
    made.wait();
    return ps;
  }

  // This shard's instance. REQUIRES: on a shard of the runtime.
  T& local() const { return *instances_[Shard::Current()->id()]; }

 private:
  explicit PerShard(int n) : instances_(n, nullptr) {}
  std::vector<T*> instances_;  // instances_[i] is owned by shard i
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_PER_SHARD_H_
