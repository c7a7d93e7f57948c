#include "runtime/metrics.h"

namespace evactor {

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  for (int i = 0; i < kBuckets; ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  s.max_ns = max_ns_.load(std::memory_order_relaxed);
  return s;
}

int64_t Histogram::Snapshot::Percentile(double q) const {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets[i];
    if (static_cast<double>(seen) >= want) {
      const uint64_t top = (i >= 63) ? ~uint64_t{0} : ((uint64_t{2} << i) - 1);
      return static_cast<int64_t>(top < max_ns ? top : max_ns);
    }
  }
  return static_cast<int64_t>(max_ns);
}

}  // namespace evactor
