// The memcached-compatible server as a real process: memccapable's ASCII and binary
// suites with 1 and 4 shards, and 200 concurrent clients doing mixed operations with
// every value read back checked. Servers listen on 127.0.0.1 on ports the kernel picks and are
// stopped by their own pid.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace {

std::string ServerPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/evactor/examples/memcached/server");
}

uint16_t FreePort() {
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

int Connect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// A server process for one test.
class ServerProcess {
 public:
  explicit ServerProcess(int threads) : port_(FreePort()) {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      const std::string t = std::to_string(threads);
      execl(ServerPath().c_str(), "server", "-p", port.c_str(), "-t", t.c_str(), nullptr);
      _exit(127);
    }
    // Wait (bounded) until it accepts.
    for (int i = 0; i < 200; ++i) {
      const int fd = Connect(port_);
      if (fd >= 0) {
        close(fd);
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "server did not start on port " << port_;
  }
  ~ServerProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      ADD_FAILURE() << "server ignored SIGTERM";
    } else {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
  }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

// Runs a command, returns its exit code and output.
int RunCommand(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class MemccapableTest : public ::testing::TestWithParam<int> {};

TEST_P(MemccapableTest, EveryAsciiAndBinaryTestPasses) {
  ServerProcess server(GetParam());
  std::string out;
  const int rc =
      RunCommand(absl::StrCat("timeout 120 memccapable -h 127.0.0.1 -p ", server.port()), &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("All tests passed"), std::string::npos) << out;
  EXPECT_EQ(out.find("[FAIL]"), std::string::npos) << out;
  // Both suites ran: memccapable names its tests "ascii ..." and "binary ...".
  EXPECT_NE(out.find("ascii stat"), std::string::npos) << out;
  EXPECT_NE(out.find("binary stat"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Shards, MemccapableTest, ::testing::Values(1, 4));

// Reads exactly n bytes (fewer on EOF or the 10 s receive timeout).
std::string ReadExactly(int fd, size_t n) {
  std::string got;
  char buf[8192];
  while (got.size() < n) {
    const ssize_t k = read(fd, buf, std::min(sizeof buf, n - got.size()));
    if (k <= 0) break;
    got.append(buf, static_cast<size_t>(k));
  }
  return got;
}

TEST(MemcachedConcurrencyTest, TwoHundredClientsMixedOperationsEveryValueChecked) {
  ServerProcess server(4);
  constexpr int kClients = 200;
  constexpr int kRounds = 40;
  std::atomic<int> failures{0};
  std::atomic<int> checks{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      const int fd = Connect(server.port());
      if (fd < 0) {
        failures++;
        return;
      }
      for (int r = 0; r < kRounds; ++r) {
        const std::string key = absl::StrCat("c", c, "-k", r % 7);
        const std::string value = absl::StrCat("v", c, "-", r, std::string(r % 50, 'x'));
        std::string req = absl::StrCat("set ", key, " ", r, " 0 ", value.size(), "\r\n", value,
                                       "\r\nget ", key, "\r\n");
        if (r % 5 == 0) absl::StrAppend(&req, "incr ctr-", c, " 1\r\n");
        if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
          failures++;
          break;
        }
        std::string want = absl::StrCat("STORED\r\nVALUE ", key, " ", r, " ", value.size(),
                                        "\r\n", value, "\r\nEND\r\n");
        // The counter does not exist: NOT_FOUND every time (incr never creates).
        if (r % 5 == 0) want += "NOT_FOUND\r\n";
        if (ReadExactly(fd, want.size()) != want) failures++;
        checks++;
      }
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(checks.load(), kClients * kRounds);
}

}  // namespace
