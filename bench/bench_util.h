// Small helpers every benchmark in bench/ needs: a fatal-error exit, a monotonic
// clock, sleeping, medians and percentiles. Single-threaded use, except Die (any
// thread; it exits the process).
#ifndef EVACTOR_BENCH_BENCH_UTIL_H_
#define EVACTOR_BENCH_BENCH_UTIL_H_

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace evactor::bench {

// The name fatal messages start with ("seed_bench", "echo_bench (server)", ...).
inline const char* g_die_name = "bench";
// Runs before Die exits (for example, to stop child processes). May be null.
inline void (*g_before_die_exit)() = nullptr;

// Prints "<g_die_name>: FATAL: <message>" and exits with status 2 without running
// static destructors (threads may still be running, or stuck).
[[noreturn]] [[gnu::format(printf, 1, 2)]] inline void Die(const char* fmt, ...) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: FATAL: ", g_die_name);
  std::va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  if (g_before_die_exit != nullptr) g_before_die_exit();
  _exit(2);
}

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline void SleepNs(int64_t ns) {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// The median (the mean of the middle two for an even count); 0 for no samples.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The value at fraction q (0..1) of sorted samples (nearest rank); 0 for none.
inline double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (i >= sorted.size()) i = sorted.size() - 1;
  return sorted[i];
}

}  // namespace evactor::bench

#endif  // EVACTOR_BENCH_BENCH_UTIL_H_
