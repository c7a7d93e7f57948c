// Helpers shared by the runtime tests: a fixture parameterized over the loop's
// backends, socket pairs that close themselves, and small fd and clock utilities.
//
// Every loop test runs once per backend (epoll, poll, select). A case that does not
// apply to a backend asserts the error that backend documents instead of skipping.
#ifndef EVACTOR_TESTS_RUNTIME_TEST_UTIL_H_
#define EVACTOR_TESTS_RUNTIME_TEST_UTIL_H_

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "runtime/events.h"
#include "runtime/loop.h"

namespace evactor {

// Prints a BackendKind by name in gtest messages.
inline void PrintTo(BackendKind kind, std::ostream* os) { *os << BackendName(kind); }

}  // namespace evactor

namespace evactor::test {

inline constexpr unsigned kWatchdogSeconds = 30;

inline auto AllBackends() {
  return ::testing::Values(BackendKind::kEpoll, BackendKind::kPoll, BackendKind::kSelect);
}

// "epoll", "poll", "select" as the test name suffix.
inline std::string BackendParamName(const ::testing::TestParamInfo<BackendKind>& info) {
  return std::string(BackendName(info.param));
}

inline const char* RunResultName(RunResult r) {
  switch (r) {
    case RunResult::kNoEvents:
      return "kNoEvents";
    case RunResult::kExit:
      return "kExit";
    case RunResult::kBreak:
      return "kBreak";
    case RunResult::kDone:
      return "kDone";
  }
  return "?";
}

// EXPECT_TRUE(Returned(loop->Run(), RunResult::kNoEvents)): an ok status holding `want`.
inline ::testing::AssertionResult Returned(const absl::StatusOr<RunResult>& result,
                                           RunResult want) {
  if (!result.ok()) {
    return ::testing::AssertionFailure()
           << "error status " << result.status() << ", want " << RunResultName(want);
  }
  if (*result != want) {
    return ::testing::AssertionFailure()
           << "returned " << RunResultName(*result) << ", want " << RunResultName(want);
  }
  return ::testing::AssertionSuccess();
}

// Base fixture: one Loop per test on the backend under test, environment ignored.
class BackendTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  // A watchdog: a loop that never returns kills the binary with SIGALRM in this
  // test (the log's last "[ RUN ]" line names it) instead of at Bazel's timeout.
  void SetUp() override { alarm(kWatchdogSeconds); }
  void TearDown() override { alarm(0); }

  BackendKind backend() const { return GetParam(); }
  bool is_epoll() const { return GetParam() == BackendKind::kEpoll; }
  bool is_select() const { return GetParam() == BackendKind::kSelect; }

  LoopOptions Options(int priorities = 1, bool run_forever = false) const {
    return LoopOptions{.backend = GetParam(),
                       .ignore_env = true,
                       .priorities = priorities,
                       .run_forever = run_forever};
  }

  // A fresh loop on the backend under test; fails the test if it cannot be created.
  std::unique_ptr<Loop> NewLoop(int priorities = 1, bool run_forever = false) const {
    absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create(Options(priorities, run_forever));
    EXPECT_TRUE(loop.ok()) << loop.status();
    if (!loop.ok()) return nullptr;
    EXPECT_EQ((*loop)->backend(), GetParam());
    return *std::move(loop);
  }
};

// A connected AF_UNIX stream socket pair; both ends close on destruction unless closed
// (or released) before.
class SocketPair {
 public:
  SocketPair() {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) != 0) {
      ADD_FAILURE() << "socketpair: " << errno;
      fds_[0] = fds_[1] = -1;
    }
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  ~SocketPair() {
    Close(0);
    Close(1);
  }

  int fd(int end) const { return fds_[end]; }
  // The end the loop watches and the end the test writes to.
  int watched() const { return fds_[0]; }
  int peer() const { return fds_[1]; }

  void Close(int end) {
    if (fds_[end] >= 0) {
      close(fds_[end]);
      fds_[end] = -1;
    }
  }

 private:
  int fds_[2];
};

// Writes `n` bytes to `fd`; true when all of them went out.
inline bool WriteBytes(int fd, int n = 1) {
  std::string data(n, 'x');
  ssize_t w = write(fd, data.data(), data.size());
  return w == static_cast<ssize_t>(data.size());
}

// Reads everything available from a non-blocking fd. Returns the number of bytes
// read, 0 on EOF with nothing read, -1 on an error other than EAGAIN.
inline ssize_t Drain(int fd) {
  char buf[4096];
  ssize_t total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r > 0) {
      total += r;
      continue;
    }
    if (r == 0) return total;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return total;
    if (errno == EINTR) continue;
    return total > 0 ? total : -1;
  }
}

// A number that names no open file right now (until the next open).
inline int ClosedFdNumber() {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) close(fd);
  return fd;
}

// Real elapsed time on the monotonic clock (the one the loop uses).
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  absl::Duration Elapsed() const {
    return absl::FromChrono(std::chrono::steady_clock::now() - start_);
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Burns the thread for `d` (a blocked loop, as a slow callback would block it).
inline void Block(absl::Duration d) { absl::SleepFor(d); }

// Sets (or unsets) an environment variable for the scope, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value.has_value()) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_RUNTIME_TEST_UTIL_H_
