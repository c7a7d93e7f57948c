// evactor::Histogram and evactor::LoopMetrics — counters and latency histograms a
// shard keeps about itself, cheap enough to stay on in production and readable from
// any thread as a snapshot.
//
//   LoopMetrics::Snapshot s = runtime->shard(1).metrics();   // any thread
//   printf("p99 iteration %lld ns\n", (long long)s.iteration_ns.Percentile(0.99));
//
// Thread safety: one writer (the owning loop's thread) updates with relaxed loads and
// stores — the same instructions as plain integers on x86, no read-modify-write; any
// thread may read. A snapshot taken while the writer runs is not atomic as a whole:
// each counter is exact at some moment, and counters only grow.
#ifndef EVACTOR_RUNTIME_METRICS_H_
#define EVACTOR_RUNTIME_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace evactor {

// Latencies in nanoseconds, in power-of-two buckets: bucket i holds values in
// [2^i, 2^(i+1)) (bucket 0 also holds 0), up to about 2^40 ns (18 minutes).
class Histogram {
 public:
  static constexpr int kBuckets = 41;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    uint64_t sum_ns = 0;
    uint64_t max_ns = 0;
    // An upper bound of the q-quantile (0 < q <= 1): the top of its bucket, capped at
    // the maximum seen. 0 when empty.
    int64_t Percentile(double q) const;
    int64_t Mean() const { return count == 0 ? 0 : static_cast<int64_t>(sum_ns / count); }
  };

  // Writer thread only.
  void Record(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    const int b = v == 0 ? 0 : (63 - __builtin_clzll(v));
    Bump(buckets_[b < kBuckets ? b : kBuckets - 1], 1);
    Bump(count_, 1);
    Bump(sum_ns_, v);
    if (v > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(v, std::memory_order_relaxed);
  }

  // Any thread.
  Snapshot Read() const;

 private:
  static void Bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

// A single-writer counter (see above).
class Counter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Read() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// What a Loop records about itself.
struct LoopMetrics {
  Counter iterations;
  Counter callbacks;       // handle callbacks and deferred calls run
  Counter sleeps;          // backend waits that could block
  Counter backend_changes; // kernel interest-set changes (epoll_ctl calls etc.)
  Histogram busy_ns;       // per iteration: from the backend's return to the end
  Histogram timer_late_ns; // how long a due timeout waited to be noticed
  // Per pass over active callbacks: how long the last ready event of the pass waited
  // between the backend reporting it and its callback starting (the longest wait in
  // that pass; one clock read per pass, not per event).
  Histogram poll_delay_ns;

  struct Snapshot {
    uint64_t iterations = 0;
    uint64_t callbacks = 0;
    uint64_t sleeps = 0;
    uint64_t backend_changes = 0;
    Histogram::Snapshot busy_ns;
    Histogram::Snapshot timer_late_ns;
    Histogram::Snapshot poll_delay_ns;
  };
  Snapshot Read() const {
    Snapshot s;
    s.iterations = iterations.Read();
    s.callbacks = callbacks.Read();
    s.sleeps = sleeps.Read();
    s.backend_changes = backend_changes.Read();
    s.busy_ns = busy_ns.Read();
    s.timer_late_ns = timer_late_ns.Read();
    s.poll_delay_ns = poll_delay_ns.Read();
    return s;
  }
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_METRICS_H_
