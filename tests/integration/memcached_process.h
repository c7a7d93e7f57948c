// Helpers for the tests that run the memcached-compatible server as a real process:
// free ports, connecting, a server process per test (stopped by its pid, which must
// then exit 0), one-shot commands, and reading answers and stats.
#ifndef EVACTOR_TESTS_INTEGRATION_MEMCACHED_PROCESS_H_
#define EVACTOR_TESTS_INTEGRATION_MEMCACHED_PROCESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace evactor::test {

inline std::string ServerPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/evactor/examples/memcached/server");
}

inline uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

// Connects `fd` to `address`, with a 10 s receive timeout; the fd, or -1 (closed).
inline int ConnectSocket(int fd, const sockaddr* address, socklen_t length) {
  if (connect(fd, address, length) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline int Connect(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ConnectSocket(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
                       reinterpret_cast<sockaddr*>(&sa), sizeof sa);
}

inline int ConnectUnix(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return -1;
  memcpy(sa.sun_path, path.data(), path.size());
  return ConnectSocket(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
                       reinterpret_cast<sockaddr*>(&sa), sizeof sa);
}

// A server process for one test.
class ServerProcess {
 public:
  // `extra`: more flags (with "-s <path>" it is waited for on that UNIX socket);
  // `stderr_path`: where the server's stderr goes (if not empty). `program`: the binary
  // to run (default: this server; the differential test also runs /usr/bin/memcached,
  // which takes the same flags).
  explicit ServerProcess(int threads, std::vector<std::string> extra = {},
                         const std::string& stderr_path = "",
                         const std::string& program = ServerPath())
      : port_(FreePort()) {
    std::vector<std::string> args = {program, "-p", std::to_string(port_), "-t",
                                     std::to_string(threads)};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto unix_flag = std::find(extra.begin(), extra.end(), "-s");
    if (unix_flag != extra.end() && unix_flag + 1 != extra.end()) unix_path_ = *(unix_flag + 1);
    pid_ = fork();
    if (pid_ == 0) {
      if (!stderr_path.empty()) {
        const int fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    // Wait (bounded) until it accepts.
    for (int i = 0; i < 200; ++i) {
      const int fd = Connect();
      if (fd >= 0) {
        close(fd);
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "server did not start on " << (unix_path_.empty() ? "port " : "")
                  << (unix_path_.empty() ? std::to_string(port_) : unix_path_);
  }
  ~ServerProcess() {
    if (exit_code_.has_value()) return;  // WaitForExit reaped it
    kill(pid_, SIGTERM);
    const std::optional<int> code = WaitForExit(absl::Seconds(4));
    if (!code.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      ADD_FAILURE() << "server ignored SIGTERM";
    } else {
      EXPECT_EQ(*code, 0);
    }
  }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // A new connection to the server (its UNIX socket with -s), or -1.
  int Connect() const {
    return unix_path_.empty() ? evactor::test::Connect(port_) : ConnectUnix(unix_path_);
  }
  // Waits (bounded) for the server to exit by itself and reaps it: its exit code, -1
  // if a signal ended it, nullopt if it still runs after `limit`.
  std::optional<int> WaitForExit(absl::Duration limit) {
    if (exit_code_.has_value()) return exit_code_;
    const absl::Time deadline = absl::Now() + limit;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(10));
    }
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

 private:
  uint16_t port_;
  std::string unix_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Runs a command, returns its exit code and output.
inline int RunCommand(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reads exactly n bytes (fewer on EOF or the 10 s receive timeout).
inline std::string ReadExactly(int fd, size_t n) {
  std::string got;
  char buf[8192];
  while (got.size() < n) {
    const ssize_t k = read(fd, buf, std::min(sizeof buf, n - got.size()));
    if (k <= 0) break;
    got.append(buf, static_cast<size_t>(k));
  }
  return got;
}

inline std::string ReadFile(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

// Sends `request` and reads until `want` bytes arrived.
inline std::string RoundTrip(int fd, const std::string& request, size_t want) {
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return "";
  return ReadExactly(fd, want);
}

inline std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// The value of `name` in the answer to `command` ("stats", "stats settings"), read
// until END; "" if it is missing or the connection fails.
inline std::string StatValue(int fd, const std::string& command, const std::string& name) {
  const std::string request = command + "\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return "";
  std::string in;
  char buf[4096];
  while (in.find("END\r\n") == std::string::npos) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    in.append(buf, static_cast<size_t>(n));
  }
  const std::string key = "STAT " + name + " ";
  const size_t at = in.find(key);
  if (at == std::string::npos) return "";
  const size_t end = in.find("\r\n", at);
  return in.substr(at + key.size(), end - at - key.size());
}

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_INTEGRATION_MEMCACHED_PROCESS_H_
