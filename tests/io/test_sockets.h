// Helpers shared by the io tests that drive BufferedSockets over socketpairs.
#ifndef EVACTOR_TESTS_IO_TEST_SOCKETS_H_
#define EVACTOR_TESTS_IO_TEST_SOCKETS_H_

#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/loop.h"

namespace evactor::io_test {

inline std::unique_ptr<Loop> NewLoop() { return Loop::Create({.ignore_env = true}).value(); }

// A connected AF_UNIX stream pair: `ours` goes to the BufferedSocket under test (which
// closes it), `peer` is the test's end (closed here).
struct Pair {
  int ours = -1;
  int peer = -1;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ours = fds[0];
    peer = fds[1];
  }
  ~Pair() {
    if (peer >= 0) close(peer);
  }
};

// Runs loop iterations until `done` or `limit`.
inline void RunUntil(Loop& loop, const std::function<bool()>& done,
                     absl::Duration limit = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + limit;
  while (!done() && absl::Now() < end) ASSERT_TRUE(loop.RunOnce().ok());
}

}  // namespace evactor::io_test

#endif  // EVACTOR_TESTS_IO_TEST_SOCKETS_H_
