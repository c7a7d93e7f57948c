// The server's command line (examples/memcached/main.cc) as memcached's users and init
// scripts use it: -R (requests per event), -F, -A and the shutdown command, -B, -d with
// -P, -u, -a with -s, -b, -o idle_timeout, memcached's tuning flags accepted and
// ignored, and the flags this server refuses. Each test runs the real binary on
// 127.0.0.1 (or a UNIX socket in the test's temporary directory) and stops it by pid.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/memcached_process.h"

namespace {

using namespace evactor::test;  // NOLINT: the helpers of memcached_process.h

// A binary-protocol request header with no key, extras or body.
std::string BinaryHeader(uint8_t opcode) {
  std::string h(24, '\0');
  h[0] = static_cast<char>(0x80);
  h[1] = static_cast<char>(opcode);
  return h;
}

bool ProcessGone(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;
  // A zombie no one reaps (the daemon's parent exited) is gone as far as we care.
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// -R 1: every connection runs one request per turn; a pipelined burst still gets
// every answer, in order, and the server counts the yields (stats conn_yields).
TEST(FlagsTest, MaxReqsPerEventYieldsAndKeepsOrder) {
  ServerProcess server(1, {"-R", "1"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  std::string burst;
  std::string want;
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&burst, "set k", i, " 0 0 1\r\n", i % 10, "\r\nget k", i, "\r\n");
    absl::StrAppend(&want, "STORED\r\nVALUE k", i, " 0 1\r\n", i % 10, "\r\nEND\r\n");
  }
  EXPECT_EQ(RoundTrip(fd, burst, want.size()), want);
  uint64_t yields = 0;
  ASSERT_TRUE(absl::SimpleAtoi(StatValue(fd, "stats", "conn_yields"), &yields));
  EXPECT_GT(yields, 0u);
  EXPECT_EQ(StatValue(fd, "stats settings", "reqs_per_event"), "1");
  close(fd);

  // The default, 20: a burst of ten runs in one turn.
  ServerProcess plain(1, {});
  const int fd2 = plain.Connect();
  ASSERT_GE(fd2, 0);
  std::string ten;
  std::string answers;
  for (int i = 0; i < 10; ++i) {
    ten += "mn\r\n";
    answers += "MN\r\n";
  }
  EXPECT_EQ(RoundTrip(fd2, ten, answers.size()), answers);
  EXPECT_EQ(StatValue(fd2, "stats", "conn_yields"), "0");
  EXPECT_EQ(StatValue(fd2, "stats settings", "reqs_per_event"), "20");
  close(fd2);
}

// A client that pipelines many requests and then shuts its side down (or ends with
// quit) gets every answer before the server closes: the requests left after each
// -R turn, and answers larger than the socket buffer, are not lost at the EOF.
TEST(FlagsTest, EveryPipelinedRequestIsAnsweredBeforeTheClose) {
  for (const char* per_event : {"1", "20"}) {
    ServerProcess server(2, {"-R", per_event});
    for (const bool quit : {false, true}) {
      const int fd = server.Connect();
      ASSERT_GE(fd, 0);
      std::string burst;
      std::string want;
      const std::string value(100, 'v');
      for (int i = 0; i < 2000; ++i) {
        absl::StrAppend(&burst, "set p", i, " 0 0 100\r\n", value, "\r\nget p", i, "\r\n");
        absl::StrAppend(&want, "STORED\r\nVALUE p", i, " 0 100\r\n", value, "\r\nEND\r\n");
      }
      if (quit) burst += "quit\r\n";
      ASSERT_EQ(write(fd, burst.data(), burst.size()), static_cast<ssize_t>(burst.size()));
      if (!quit) shutdown(fd, SHUT_WR);
      // Everything, then the server's close.
      const std::string got = ReadExactly(fd, want.size() + 1);
      EXPECT_EQ(got.size(), want.size()) << "-R " << per_event << (quit ? " quit" : " EOF");
      EXPECT_TRUE(got == want) << "-R " << per_event << (quit ? " quit" : " EOF");
      close(fd);
    }
  }
}

// The memory checks below read the server's resident size. Under ASan (whose
// quarantine keeps freed memory resident) and TSan (shadow memory) that size does not
// follow what the server holds, so there they check nothing and the tests check the
// answers only; the plain build, which CI runs too, checks both.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kResidentSizeMeaningful = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kResidentSizeMeaningful = false;
#else
constexpr bool kResidentSizeMeaningful = true;
#endif
#else
constexpr bool kResidentSizeMeaningful = true;
#endif

// Whether the server grew by less than `limit` since `before` (see above).
bool GrewLessThan(size_t before, size_t now, size_t limit) {
  return !kResidentSizeMeaningful || now < before + limit;
}

// The server's resident memory in bytes (VmRSS), or 0.
size_t ResidentBytes(pid_t pid) {
  const std::string status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  size_t kb = 0;
  const size_t end = status.find('\n', at);
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(
                            status.substr(at + 6, end - at - 6), "kB")),
                        &kb)) {
    return 0;
  }
  return kb << 10;
}

// Backpressure (-o max_unsent_output): a client that pipelines gets of a large value
// and reads nothing costs the server about the limit, not the answers' total (here
// 200 MB); once it reads, every answer arrives, in order. Both store layouts.
TEST(FlagsTest, AClientThatDoesNotReadIsThrottledNotBuffered) {
  for (const char* layout : {"store=shared", "store=partitioned"}) {
    ServerProcess server(2, {"-m", "64", "-o", absl::StrCat(layout, ",max_unsent_output=256k")});
    const int fd = server.Connect();
    ASSERT_GE(fd, 0);
    const std::string value(100000, 'b');
    ASSERT_EQ(RoundTrip(fd, absl::StrCat("set big 0 0 ", value.size(), "\r\n", value, "\r\n"), 8),
              "STORED\r\n");
    const size_t before = ResidentBytes(server.pid());
    std::string gets;
    for (int i = 0; i < 2000; ++i) gets += "get big\r\n";
    ASSERT_EQ(write(fd, gets.data(), gets.size()), static_cast<ssize_t>(gets.size()));
    absl::SleepFor(absl::Milliseconds(500));  // the server runs what it may meanwhile
    const size_t during = ResidentBytes(server.pid());
    EXPECT_TRUE(GrewLessThan(before, during, 32u << 20)) << layout << ": " << before << " -> "
                                                         << during;
    const int probe = server.Connect();
    ASSERT_GE(probe, 0);
    uint64_t throttles = 0;
    EXPECT_TRUE(absl::SimpleAtoi(StatValue(probe, "stats", "conn_throttles"), &throttles));
    EXPECT_GE(throttles, 1u) << layout;
    EXPECT_EQ(StatValue(probe, "stats settings", "max_unsent_output"), "262144");
    close(probe);
    // Now read: all 2000 answers, whole.
    const std::string one = absl::StrCat("VALUE big 0 ", value.size(), "\r\n", value, "\r\nEND\r\n");
    size_t matched = 0;
    for (int i = 0; i < 2000; ++i) {
      if (ReadExactly(fd, one.size()) != one) break;
      ++matched;
    }
    EXPECT_EQ(matched, 2000u) << layout;
    EXPECT_EQ(RoundTrip(fd, "mn\r\n", 4), "MN\r\n");  // and it serves on

    // One get naming the item 3000 times (300 MB of answer): it streams as the
    // client reads, instead of being built whole.
    std::string many = "get";
    for (int i = 0; i < 3000; ++i) many += " big";
    many += "\r\nmn\r\n";
    ASSERT_EQ(write(fd, many.data(), many.size()), static_cast<ssize_t>(many.size()));
    absl::SleepFor(absl::Milliseconds(500));
    const size_t streaming = ResidentBytes(server.pid());
    EXPECT_TRUE(GrewLessThan(before, streaming, 32u << 20))
        << layout << ": " << before << " -> " << streaming;
    const std::string value_line = absl::StrCat("VALUE big 0 ", value.size(), "\r\n", value, "\r\n");
    matched = 0;
    for (int i = 0; i < 3000; ++i) {
      if (ReadExactly(fd, value_line.size()) != value_line) break;
      ++matched;
    }
    EXPECT_EQ(matched, 3000u) << layout;
    EXPECT_EQ(ReadExactly(fd, 9), "END\r\nMN\r\n") << layout;  // then the next request
    close(fd);
  }
}

// Polls (talking on `probe`, which idle_timeout then spares) until `probe` is the
// server's only connection; how long that took, or `limit`.
absl::Duration WaitUntilAlone(int probe, absl::Duration limit) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < limit) {
    if (StatValue(probe, "stats", "curr_connections") == "1") return absl::Now() - start;
    EXPECT_EQ(RoundTrip(probe, "mn\r\n", 4), "MN\r\n");
    absl::SleepFor(absl::Milliseconds(200));
  }
  return limit;
}

// A client that ends a pipeline with quit and then never reads: the answers get ten
// seconds without progress to drain, then the connection closes anyway.
TEST(FlagsTest, AnUnreadAnswerBeforeQuitDoesNotHoldTheConnectionForever) {
  // A limit above the 20 MB of answers, so that quit is reached (not the throttle)
  // with more unsent than the kernel's socket buffers take.
  ServerProcess server(1, {"-o", "max_unsent_output=64m"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  const std::string value(100000, 'q');
  ASSERT_EQ(RoundTrip(fd, absl::StrCat("set q 0 0 ", value.size(), "\r\n", value, "\r\n"), 8),
            "STORED\r\n");
  std::string burst;
  for (int i = 0; i < 200; ++i) burst += "get q\r\n";  // 20 MB of answers
  burst += "quit\r\n";
  ASSERT_EQ(write(fd, burst.data(), burst.size()), static_cast<ssize_t>(burst.size()));
  const int probe = server.Connect();
  ASSERT_GE(probe, 0);
  EXPECT_EQ(StatValue(probe, "stats", "curr_connections"), "2");
  const absl::Duration waited = WaitUntilAlone(probe, absl::Seconds(20));
  EXPECT_GE(waited, absl::Seconds(9));
  EXPECT_LT(waited, absl::Seconds(20)) << "still open";
  close(probe);
  close(fd);
}

// A client that pipelines faster than its -R turns run, while reading every answer:
// the server reads it at the pace it serves it (its memory stays put), and at the
// client's EOF every request it sent has an answer.
TEST(FlagsTest, AFastPipelineIsReadAtThePaceItIsServed) {
  ServerProcess server(1, {});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  const size_t before = ResidentBytes(server.pid());
  std::atomic<size_t> answered{0};
  std::thread reader([fd, &answered] {
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) answered += static_cast<size_t>(n);
  });
  std::string block;
  for (int i = 0; i < 16384; ++i) block += "mn\r\n";
  size_t sent = 0;
  size_t peak = before;
  const absl::Time until = absl::Now() + absl::Milliseconds(1500);
  while (absl::Now() < until) {
    const ssize_t n = send(fd, block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n) / 4 * 4;
      if (static_cast<size_t>(n) % 4 != 0) {  // finish the request it cut
        const size_t rest = 4 - static_cast<size_t>(n) % 4;
        ASSERT_EQ(write(fd, block.data() + (n % 4), rest), static_cast<ssize_t>(rest));
        sent += 4;
      }
    } else {
      absl::SleepFor(absl::Milliseconds(1));
    }
    peak = std::max(peak, ResidentBytes(server.pid()));
  }
  shutdown(fd, SHUT_WR);
  reader.join();  // until the server's close
  close(fd);
  EXPECT_GT(sent, size_t{1} << 20);
  EXPECT_TRUE(GrewLessThan(before, peak, 32u << 20)) << before << " -> " << peak;
  EXPECT_EQ(answered.load(), sent);  // "MN\r\n" for every "mn\r\n"
}

// Large data blocks still arrive whole with one request per turn (a request being
// received never holds reading back).
TEST(FlagsTest, LargeValuesPipelinedWithOneRequestPerTurn) {
  ServerProcess server(2, {"-R", "1", "-I", "2m", "-m", "128"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  const std::string value(1500000, 'z');
  std::string burst;
  std::string want;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&burst, "set z", i, " 0 0 ", value.size(), "\r\n", value, "\r\n");
    want += "STORED\r\n";
  }
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&burst, "get z", i, "\r\n");
    absl::StrAppend(&want, "VALUE z", i, " 0 ", value.size(), "\r\n", value, "\r\nEND\r\n");
  }
  std::thread writer([fd, &burst] {
    ASSERT_EQ(write(fd, burst.data(), burst.size()), static_cast<ssize_t>(burst.size()));
  });
  EXPECT_TRUE(ReadExactly(fd, want.size()) == want);
  writer.join();
  close(fd);
}

// -M: a full server answers out of memory instead of evicting, and says so.
TEST(FlagsTest, DisableEvictionsAnswersOutOfMemory) {
  ServerProcess server(1, {"-M", "-m", "2"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  const std::string value(100000, 'm');
  const std::string refused = "SERVER_ERROR out of memory storing object\r\n";
  int stored = 0;
  std::string last;
  for (int i = 0; i < 40; ++i) {  // 4 MB into 2 MB
    last = RoundTrip(fd, absl::StrCat("set m", i, " 0 0 ", value.size(), "\r\n", value, "\r\n"), 8);
    if (last != "STORED\r\n") break;
    ++stored;
  }
  EXPECT_GT(stored, 10);
  EXPECT_LT(stored, 21);
  EXPECT_EQ(last + ReadExactly(fd, refused.size() - last.size()), refused);
  // Nothing was evicted: the first value is still there.
  const std::string first = absl::StrCat("VALUE m0 0 ", value.size(), "\r\n", value, "\r\nEND\r\n");
  EXPECT_EQ(RoundTrip(fd, "get m0\r\n", first.size()), first);
  EXPECT_EQ(StatValue(fd, "stats", "evictions"), "0");
  EXPECT_EQ(StatValue(fd, "stats settings", "evictions"), "off");
  // Room made by a delete is used again.
  EXPECT_EQ(RoundTrip(fd, "delete m0\r\n", 9), "DELETED\r\n");
  EXPECT_EQ(RoundTrip(fd, absl::StrCat("set again 0 0 ", value.size(), "\r\n", value, "\r\n"), 8),
            "STORED\r\n");
  close(fd);
}

// -F: flush_all is refused (noreply silences the refusal), nothing is flushed, and the
// binary FLUSH gets memcached's status 0x20.
TEST(FlagsTest, DisableFlushAllRefusesFlushes) {
  ServerProcess server(2, {"-F"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "set k 0 0 1\r\nv\r\n", 8), "STORED\r\n");
  const std::string refused = "CLIENT_ERROR flush_all not allowed\r\n";
  EXPECT_EQ(RoundTrip(fd, "flush_all\r\n", refused.size()), refused);
  const std::string value = "VALUE k 0 1\r\nv\r\nEND\r\n";
  EXPECT_EQ(RoundTrip(fd, "flush_all 0 noreply\r\nget k\r\n", value.size()), value);
  EXPECT_EQ(StatValue(fd, "stats settings", "flush_enabled"), "no");
  close(fd);

  const int bin = server.Connect();
  ASSERT_GE(bin, 0);
  const std::string reply = RoundTrip(bin, BinaryHeader(0x08), 24 + 13);
  ASSERT_EQ(reply.size(), 37u);
  EXPECT_EQ(static_cast<uint8_t>(reply[0]), 0x81);
  EXPECT_EQ(static_cast<uint8_t>(reply[1]), 0x08);
  EXPECT_EQ((static_cast<uint8_t>(reply[6]) << 8) | static_cast<uint8_t>(reply[7]), 0x20);
  EXPECT_EQ(reply.substr(24), "Auth failure.");
  close(bin);

  const int again = server.Connect();
  ASSERT_GE(again, 0);
  EXPECT_EQ(RoundTrip(again, "get k\r\n", value.size()), value);
  close(again);
}

// "shutdown" is refused by default; with -A it stops the server, which exits 0, and
// the asking connection closes unanswered. Other arguments are refused.
TEST(FlagsTest, ShutdownCommandNeedsEnableShutdown) {
  {
    ServerProcess server(1, {});
    const int fd = server.Connect();
    ASSERT_GE(fd, 0);
    const std::string refused = "ERROR: shutdown not enabled\r\n";
    EXPECT_EQ(RoundTrip(fd, "shutdown\r\n", refused.size()), refused);
    EXPECT_EQ(StatValue(fd, "stats settings", "shutdown_command"), "no");
    close(fd);
  }
  ServerProcess server(2, {"-A"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(StatValue(fd, "stats settings", "shutdown_command"), "yes");
  const std::string bad = "CLIENT_ERROR invalid shutdown mode\r\n";
  EXPECT_EQ(RoundTrip(fd, "shutdown now\r\n", bad.size()), bad);
  EXPECT_EQ(RoundTrip(fd, "shutdown\r\n", 1), "");  // closed, no answer
  close(fd);
  EXPECT_EQ(server.WaitForExit(absl::Seconds(5)), std::optional<int>(0));
}

// -B: binary only closes a text connection (an invalid packet); ascii only reads a
// binary packet as a bad command line.
TEST(FlagsTest, ProtocolFlagRestrictsConnections) {
  {
    ServerProcess server(1, {"-B", "binary"});
    const int fd = server.Connect();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(RoundTrip(fd, "version\r\n", 1), "");
    close(fd);
    const int bin = server.Connect();
    ASSERT_GE(bin, 0);
    const std::string noop = RoundTrip(bin, BinaryHeader(0x0a), 24);  // NOOP
    ASSERT_EQ(noop.size(), 24u);
    EXPECT_EQ(static_cast<uint8_t>(noop[0]), 0x81);
    close(bin);
  }
  ServerProcess server(1, {"-B", "ascii"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, BinaryHeader(0x0a) + "\r\n", 7), "ERROR\r\n");
  EXPECT_EQ(StatValue(fd, "stats settings", "binding_protocol"), "ascii");
  close(fd);
}

// -d: the command returns once the daemon listens; -P names its pid, which serves
// and stops on SIGTERM, removing the file. A daemon that cannot start fails the
// command instead, with its error.
TEST(FlagsTest, DaemonReturnsWhenListeningAndWritesItsPid) {
  const std::string pid_file = TempPath("memcached_flags_test.pid");
  unlink(pid_file.c_str());
  const uint16_t port = FreePort();
  std::string out;
  ASSERT_EQ(RunCommand(absl::StrCat(ServerPath(), " -d -t 1 -p ", port, " -P ", pid_file), &out),
            0)
      << out;
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)), &pid))
      << "pid file: " << ReadFile(pid_file);
  ASSERT_GT(pid, 1);
  const int fd = Connect(port);  // no waiting: it listens already
  EXPECT_GE(fd, 0);
  if (fd >= 0) {
    EXPECT_EQ(StatValue(fd, "stats", "pid"), std::to_string(pid));
    // Another daemon on the same port cannot start, and says why.
    std::string busy;
    EXPECT_EQ(RunCommand(absl::StrCat(ServerPath(), " -d -t 1 -p ", port), &busy), 1) << busy;
    EXPECT_NE(busy.find("memcached:"), std::string::npos) << busy;
    close(fd);
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!ProcessGone(pid) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(ProcessGone(pid));
  if (!ProcessGone(pid)) kill(pid, SIGKILL);
  EXPECT_EQ(ReadFile(pid_file), "") << "the pid file outlived the daemon";
}

// Whether this process could take `uid`'s identity (a root test run inside a user
// namespace, such as Bazel's sandbox, cannot).
bool CanBecome(uid_t uid, gid_t gid) {
  const pid_t child = fork();
  if (child == 0) _exit(setgroups(0, nullptr) == 0 && setgid(gid) == 0 && setuid(uid) == 0 ? 0 : 1);
  int status = 0;
  return child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

// -u as root: the server listens as root, then runs as that user.
TEST(FlagsTest, UserFlagDropsRootPrivileges) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: -u is ignored then, as in memcached";
  const passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user 'nobody' here";
  const uid_t uid = nobody->pw_uid;
  if (!CanBecome(uid, nobody->pw_gid)) {
    GTEST_SKIP() << "root here cannot change identity (a user namespace without that mapping)";
  }
  ServerProcess server(2, {"-u", "nobody"});
  // It changes identity just after it starts listening, which is when ServerProcess
  // returns: look (bounded) until it has.
  const std::string want = absl::StrCat("\nUid:\t", uid, "\t", uid, "\t", uid);
  std::string status;
  for (int i = 0; i < 200; ++i) {
    status = ReadFile(absl::StrCat("/proc/", server.pid(), "/status"));
    if (status.find(want) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_NE(status.find(want), std::string::npos) << status;
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "set u 0 0 1\r\nx\r\n", 8), "STORED\r\n");
  close(fd);
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(ServerPath(), " -t 1 -p ", FreePort(),
                                    " -u no-such-user-here"),
                       &out),
            1);
  EXPECT_NE(out.find("can't find the user no-such-user-here"), std::string::npos) << out;
}

// -s with -a: the socket file gets the mask; -b is the listen backlog.
TEST(FlagsTest, UnixSocketMaskAndBacklog) {
  // Not under TEST_TMPDIR: a UNIX socket path must fit in 108 bytes.
  const std::string path = absl::StrCat("/tmp/evactor_flags_test_", getpid(), ".sock");
  ServerProcess server(1, {"-s", path, "-a", "770", "-b", "64"});
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0770u);
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(StatValue(fd, "stats settings", "umask"), "770");
  EXPECT_EQ(StatValue(fd, "stats settings", "tcp_backlog"), "64");
  EXPECT_EQ(StatValue(fd, "stats settings", "domain_socket"), path);
  close(fd);
  unlink(path.c_str());  // the server leaves it, as memcached does
}

// -o idle_timeout also ends a connection whose client stopped reading: output that
// makes no progress for that long closes it (here one throttled by the output limit).
TEST(FlagsTest, IdleTimeoutClosesAClientThatStoppedReading) {
  ServerProcess server(1, {"-o", "idle_timeout=1"});
  const int fd = server.Connect();
  ASSERT_GE(fd, 0);
  const std::string value(100000, 'r');
  ASSERT_EQ(RoundTrip(fd, absl::StrCat("set r 0 0 ", value.size(), "\r\n", value, "\r\n"), 8),
            "STORED\r\n");
  std::string burst;
  for (int i = 0; i < 500; ++i) burst += "get r\r\n";  // 50 MB of answers, never read
  ASSERT_EQ(write(fd, burst.data(), burst.size()), static_cast<ssize_t>(burst.size()));
  const int probe = server.Connect();
  ASSERT_GE(probe, 0);
  EXPECT_LT(WaitUntilAlone(probe, absl::Seconds(10)), absl::Seconds(6));
  close(probe);
  close(fd);
}

// -o idle_timeout=1: a silent connection is closed after about a second; one that
// keeps talking is not.
TEST(FlagsTest, IdleTimeoutClosesIdleConnections) {
  ServerProcess server(1, {"-o", "idle_timeout=1"});
  const int idle = server.Connect();
  const int busy = server.Connect();
  ASSERT_GE(idle, 0);
  ASSERT_GE(busy, 0);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 8; ++i) {  // 2 s of requests on `busy`
    EXPECT_EQ(RoundTrip(busy, "mn\r\n", 4), "MN\r\n");
    absl::SleepFor(absl::Milliseconds(250));
  }
  char c;
  EXPECT_EQ(read(idle, &c, 1), 0);  // closed by then (the read timeout is 10 s)
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(900));
  EXPECT_LT(waited, absl::Seconds(6));
  EXPECT_EQ(RoundTrip(busy, "mn\r\n", 4), "MN\r\n");
  EXPECT_EQ(StatValue(busy, "stats settings", "idle_timeout"), "1");
  close(idle);
  close(busy);
}

// memcached's flags for parts this server does not have are accepted and ignored;
// those that would change what clients rely on are refused with a reason; -V prints
// the version.
TEST(FlagsTest, TuningFlagsAreIgnoredAndUnsupportedOnesRefused) {
  {
    ServerProcess server(1, {"-U", "0", "-f", "1.25", "-n", "48", "-L", "-o",
                             "hashpower=20,no_lru_crawler,slab_chunk_max=512,modern"});
    const int fd = server.Connect();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(RoundTrip(fd, "mn\r\n", 4), "MN\r\n");
    close(fd);
  }
  struct Refused {
    std::string flags;
    std::string says;
  };
  for (const Refused& r : {Refused{"-U 11211", "UDP is not supported"},
                           Refused{"-C", "-C is not supported"},
                           Refused{"-S", "-S is not supported"},
                           Refused{"-o no_such_option", "bad -o option"},
                           Refused{"-R 0", "bad -R"},
                           Refused{"stray", "unexpected argument"}}) {
    std::string out;
    EXPECT_EQ(RunCommand(absl::StrCat(ServerPath(), " -p ", FreePort(), " ", r.flags), &out), 2)
        << r.flags;
    EXPECT_NE(out.find(r.says), std::string::npos) << r.flags << ": " << out;
  }
  std::string version;
  EXPECT_EQ(RunCommand(ServerPath() + " -V", &version), 0);
  EXPECT_EQ(version.rfind("memcached 1.6.18", 0), 0u) << version;
}

}  // namespace
