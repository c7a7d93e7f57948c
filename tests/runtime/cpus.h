// evactor::test::AllowedCpus and PinThisThread — the CPUs this process may run on,
// and pinning a client thread to one, for tests of pinned shards and of steering
// connections by CPU (which skip where fewer CPUs are allowed).
#ifndef EVACTOR_TESTS_RUNTIME_CPUS_H_
#define EVACTOR_TESTS_RUNTIME_CPUS_H_

#include <pthread.h>
#include <sched.h>

#include <vector>

namespace evactor::test {

// Ascending; empty if sched_getaffinity fails.
inline std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// Pins the calling thread to `cpu`; false if the kernel refuses.
inline bool PinThisThread(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
}

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_RUNTIME_CPUS_H_
