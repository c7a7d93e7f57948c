// The loop's clock: CLOCK_MONOTONIC in nanoseconds (a vDSO read, no system call).
#ifndef EVACTOR_RUNTIME_INTERNAL_CLOCK_H_
#define EVACTOR_RUNTIME_INTERNAL_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace evactor::internal {

inline int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_CLOCK_H_
