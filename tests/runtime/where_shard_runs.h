// evactor::test::WhereShardRuns — asks a shard, on its own thread, which CPU it runs
// on and how many CPUs its thread may use (for the affinity and rebalancing tests).
#ifndef EVACTOR_TESTS_RUNTIME_WHERE_SHARD_RUNS_H_
#define EVACTOR_TESTS_RUNTIME_WHERE_SHARD_RUNS_H_

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <utility>

#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "tests/runtime/notification.h"

namespace evactor::test {

// {CPU now, CPUs allowed}; {-2, -2} if the message could not be sent.
inline std::pair<int, int> WhereShardRuns(Runtime& rt, int shard) {
  std::atomic<int> cpu{-2};
  std::atomic<int> allowed{-2};
  Notification done;
  const bool sent = rt.SubmitTo(shard, [&] {
                        cpu_set_t set;
                        CPU_ZERO(&set);
                        pthread_getaffinity_np(pthread_self(), sizeof set, &set);
                        allowed = CPU_COUNT(&set);
                        cpu = sched_getcpu();
                        done.Notify();
                      }).ok();
  EXPECT_TRUE(sent);
  if (sent) done.WaitForNotification();
  return {cpu.load(), allowed.load()};
}

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_RUNTIME_WHERE_SHARD_RUNS_H_
