// evactor::internal — what a pinned shard reads to decide whether to move to
// another CPU (RuntimeOptions::rebalance_interval), and the decision itself.
//
// A shard pinned to a CPU cannot be moved by the kernel. When other threads keep that
// CPU busy (a co-located client, another process), the shard waits for it while
// another CPU may idle; and a client that the shard wakes is placed on the waker's
// CPU, where it then stays. Measured with the memcached server at -t 1 and a
// one-thread memcaslap on two CPUs: the client and the pinned shard shared CPU 0,
// CPU 1 was 99% idle, and the shard spent as long waiting for its CPU as running.
//
// With a shard on every CPU there is no spare CPU. A shard whose CPU a busy client
// crowds may then join another shard on its CPU, if that CPU has room for both: the
// memcached server at -t 2 under a one-thread memcaslap (the client always shares a
// CPU with one pinned shard) went from 139k to 207k-221k ops/s when that shard joined
// the other, which left the client a CPU of its own, as memcached's unpinned threads
// end up. Where every CPU is full (memcaslap -T 2) the margin keeps shards apart.
//
// The inputs are the kernel's own accounting: the shard thread's run and run-queue
// wait time (/proc/thread-self/schedstat) and each CPU's busy time (/proc/stat).
// Pure functions here; Runtime does the sampling and the move.
#ifndef EVACTOR_RUNTIME_INTERNAL_REBALANCE_H_
#define EVACTOR_RUNTIME_INTERNAL_REBALANCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evactor::internal {

// One CPU's counters from /proc/stat, in clock ticks.
struct CpuTimes {
  uint64_t busy = 0;   // everything but idle and iowait
  uint64_t total = 0;  // 0: the CPU is not listed
};
// The "cpuN" lines of /proc/stat, indexed by N.
std::vector<CpuTimes> ParseProcStat(std::string_view text);

// A thread's time on a CPU and waiting on a run queue, in nanoseconds.
struct ThreadTimes {
  uint64_t run_ns = 0;
  uint64_t wait_ns = 0;
};
// /proc/<pid>/task/<tid>/schedstat: "run_ns wait_ns timeslices"; nullopt if malformed.
std::optional<ThreadTimes> ParseSchedstat(std::string_view text);

// Reads a small file whole (procfs); nullopt on any error.
std::optional<std::string> ReadSmallFile(const char* path);

// One window of a pinned shard, as shares of the window's wall time.
struct RebalanceWindow {
  double run = 0;   // the shard ran
  double wait = 0;  // the shard was runnable, waiting for its CPU
  int own_cpu = -1;
  std::vector<double> busy;     // by CPU number; negative: unknown
  std::vector<int> candidates;  // CPUs the shard may move to (other shards' too)
};

// The shard must wait at least this share of the window for its CPU to move, or find
// its CPU at least kRebalanceSaturated busy (a shard that preempts the client it
// wakes hardly waits itself: the client does, and its rate is what suffers)...
inline constexpr double kRebalanceMinWait = 0.10;
inline constexpr double kRebalanceSaturated = 0.95;
// ...and the target must be less busy than what else ran on the shard's CPU by at
// least this much (so two similar CPUs do not trade the shard back and forth). As
// what else ran there is at most 1 - run, a target also has room for the shard:
// its busy share plus the shard's run share stays below 1 - kRebalanceMargin.
inline constexpr double kRebalanceMargin = 0.15;

// The least busy candidate, when the shard waited for its CPU (or found it
// saturated) and the work it competed with there outweighs the candidate's by the
// margin; else -1.
int ChooseCpu(const RebalanceWindow& window);

// Shares of the window from two samples: CPU c's busy share (negative when either
// sample lacks it or no time passed).
std::vector<double> BusyShares(const std::vector<CpuTimes>& before,
                               const std::vector<CpuTimes>& after);

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_REBALANCE_H_
