// The memcached-compatible server as a real process: memccapable's ASCII and binary
// suites with 1 and 4 shards in both store layouts (shared, partitioned), 200 concurrent
// clients doing mixed operations with every value read back checked, the -v/-vv log
// lines on stderr, -o affinity (pinned threads serve and report their CPUs), and
// differential tests: random pipelined ASCII and binary streams answered byte for byte
// as /usr/bin/memcached answers them (CAS values compared by identity), with one shard
// and with four in both layouts.
// Servers listen on 127.0.0.1 on ports the kernel picks and are stopped by their own
// pid.
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/memcached_process.h"
#include "tests/runtime/cpus.h"

namespace {

using namespace evactor::test;  // NOLINT: the helpers of memcached_process.h

std::string StoreFlag(const std::string& layout) { return "store=" + layout; }

class MemccapableTest : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(MemccapableTest, EveryAsciiAndBinaryTestPasses) {
  const auto& [threads, layout] = GetParam();
  ServerProcess server(threads, {"-o", StoreFlag(layout)});
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

INSTANTIATE_TEST_SUITE_P(ShardsAndLayouts, MemccapableTest,
                         ::testing::Combine(::testing::Values(1, 4),
                                            ::testing::Values("shared", "partitioned")));

class MemcachedConcurrencyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MemcachedConcurrencyTest, TwoHundredClientsMixedOperationsEveryValueChecked) {
  ServerProcess server(4, {"-o", StoreFlag(GetParam())});
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

INSTANTIATE_TEST_SUITE_P(Layouts, MemcachedConcurrencyTest,
                         ::testing::Values("shared", "partitioned"));

class VerbosityTest : public ::testing::TestWithParam<std::string> {};

// -vv logs, like memcached 1.6, one line per connection event, command and response
// line; `verbosity 0` turns that off at run time and `verbosity 2` back on.
TEST_P(VerbosityTest, VeryVerboseLogsConnectionsCommandsAndResponses) {
  const std::string log = TempPath("vv_" + GetParam() + ".log");
  {
    ServerProcess server(2, {"-vv", "-o", StoreFlag(GetParam())}, log);
    const int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(RoundTrip(fd, "set vkey 0 0 3\r\nabc\r\n", 8), "STORED\r\n");
    const std::string hit = "VALUE vkey 0 3\r\nabc\r\nEND\r\n";
    ASSERT_EQ(RoundTrip(fd, "get vkey\r\n", hit.size()), hit);
    ASSERT_EQ(RoundTrip(fd, "get nokey\r\n", 5), "END\r\n");
    ASSERT_EQ(RoundTrip(fd, "verbosity 0\r\n", 4), "OK\r\n");
    ASSERT_EQ(RoundTrip(fd, "get silent\r\n", 5), "END\r\n");
    ASSERT_EQ(RoundTrip(fd, "verbosity 2\r\n", 4), "OK\r\n");
    ASSERT_EQ(RoundTrip(fd, "delete nokey\r\n", 11), "NOT_FOUND\r\n");
    close(fd);
    // The close is logged by the server's loop: give it a moment before stopping.
    absl::SleepFor(absl::Milliseconds(200));
  }
  const std::string out = ReadFile(log);
  for (const char* want :
       {" new auto-negotiating client connection\n", " set vkey 0 0 3\n", " STORED\n",
        " get vkey\n", " sending key vkey\n", " END\n", " get nokey\n", " verbosity 0\n",
        " delete nokey\n", " NOT_FOUND\n", " connection closed.\n"}) {
    EXPECT_NE(out.find(want), std::string::npos) << "missing \"" << want << "\" in:\n" << out;
  }
  // Commands go with '<', responses with '>', both followed by the connection's fd.
  EXPECT_NE(out.find(">"), std::string::npos) << out;
  EXPECT_EQ(out.find("get silent"), std::string::npos) << out;  // logged at verbosity 0
}

TEST_P(VerbosityTest, QuietByDefault) {
  const std::string log = TempPath("quiet_" + GetParam() + ".log");
  {
    ServerProcess server(2, {"-o", StoreFlag(GetParam())}, log);
    const int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(RoundTrip(fd, "get vkey\r\n", 5), "END\r\n");
    close(fd);
  }
  EXPECT_EQ(ReadFile(log), "");
}

TEST(VerboseTest, VerboseReportsRefusedConnections) {
  const std::string log = TempPath("v_refused.log");
  {
    ServerProcess server(1, {"-v", "-c", "2"}, log);
    std::vector<int> fds;
    for (int i = 0; i < 4; ++i) fds.push_back(Connect(server.port()));
    absl::SleepFor(absl::Milliseconds(300));
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
  const std::string out = ReadFile(log);
  EXPECT_NE(out.find("Too many open connections"), std::string::npos) << out;
  EXPECT_EQ(out.find("new auto-negotiating"), std::string::npos) << out;  // -vv only
}

// -o affinity: pinned threads report their CPUs (the first ones this process may
// use) and serve as usual; off reports none; "on" with more threads than CPUs does
// not start.
TEST(AffinityTest, PinnedThreadsServeAndReportTheirCpus) {
  const std::vector<int> cpus = evactor::test::AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  const int threads = static_cast<int>(std::min<size_t>(cpus.size(), 2));
  std::string want;
  for (int i = 0; i < threads; ++i) absl::StrAppend(&want, i == 0 ? "" : ",", cpus[i]);
  ServerProcess server(threads, {"-o", "affinity=on"});
  for (int c = 0; c < 8; ++c) {  // connections land on every shard
    const int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    const std::string key = absl::StrCat("pin", c);
    EXPECT_EQ(RoundTrip(fd, absl::StrCat("set ", key, " 0 0 1\r\nx\r\n"), 8), "STORED\r\n");
    const std::string value = absl::StrCat("VALUE ", key, " 0 1\r\nx\r\nEND\r\n");
    EXPECT_EQ(RoundTrip(fd, absl::StrCat("get ", key, "\r\n"), value.size()), value);
    if (c == 0) {
      EXPECT_EQ(StatValue(fd, "stats settings", "shard_cpus"), want);
    }
    close(fd);
  }
}

// A client that moves to another CPU after connecting: its connection follows it to
// that CPU's shard, and nothing in flight is lost — pipelined requests and requests
// split across writes around the move all get their answers, in order.
TEST(AffinityTest, ConnectionFollowsItsClientToAnotherCpu) {
  const std::vector<int> cpus = evactor::test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  ServerProcess server(2, {"-o", "affinity=on"});
  std::string failure;
  std::string moved;
  std::thread client([&] {
    using evactor::test::PinThisThread;
    if (!PinThisThread(cpus[0])) return void(failure = "cannot pin the client");
    const int fd = Connect(server.port());
    if (fd < 0) return void(failure = "cannot connect");
    const int one = 1;  // the split writes must not wait for delayed ACKs (Nagle)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (RoundTrip(fd, "set warm 0 0 1\r\nw\r\n", 8) != "STORED\r\n") {
      return void(failure = "first set failed");
    }
    // Now on the other shard's CPU: placement is checked every 128 reads, and two
    // checks in a row move the connection.
    if (!PinThisThread(cpus[1])) return void(failure = "cannot re-pin the client");
    for (int i = 0; i < 600 && failure.empty(); ++i) {
      const std::string key = absl::StrCat("mv", i);
      const std::string value = absl::StrCat("value-", i, "-", std::string(i % 50, 'x'));
      const std::string set =
          absl::StrCat("set ", key, " ", i, " 0 ", value.size(), "\r\n", value, "\r\n");
      const std::string get = absl::StrCat("get ", key, "\r\n");
      const std::string want = absl::StrCat("STORED\r\nVALUE ", key, " ", i, " ",
                                            value.size(), "\r\n", value, "\r\nEND\r\n");
      std::string got;
      if (i % 3 == 0) {
        got = RoundTrip(fd, set + get, want.size());  // pipelined: one write
      } else {
        // Split inside the command line: the halves arrive in separate reads.
        const std::string both = set + get;
        const size_t cut = 3 + static_cast<size_t>(i) % (both.size() - 6);
        if (write(fd, both.data(), cut) != static_cast<ssize_t>(cut)) failure = "write failed";
        absl::SleepFor(absl::Microseconds(200));
        got = RoundTrip(fd, both.substr(cut), want.size());
      }
      if (got != want) failure = absl::StrCat("request ", i, ": got [", got, "]");
    }
    moved = StatValue(fd, "stats", "moved_connections");
    close(fd);
  });
  client.join();
  EXPECT_EQ(failure, "");
  // Once (a busy machine may hand a packet to another CPU's softirq thread now and
  // then, but never twice in a row at 128 reads apart in this test's short run).
  EXPECT_GE(atoi(moved.c_str()), 1) << moved;
}

// Many clients hopping between CPUs while they work, in both store layouts: their
// connections move between shards again and again, and every answer is still right.
TEST(AffinityTest, ClientsHoppingBetweenCpusLoseNothing) {
  const std::vector<int> cpus = evactor::test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  for (const char* layout : {"store=shared", "store=partitioned"}) {
    ServerProcess server(2, {"-o", absl::StrCat("affinity=on,", layout)});
    constexpr int kClients = 8;
    constexpr int kRounds = 1500;
    std::atomic<int> failures{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        const int fd = Connect(server.port());
        if (fd < 0) return void(failures++);
        for (int r = 0; r < kRounds && failures.load() == 0; ++r) {
          if (r % 300 == 0) {  // hop: long enough to be seen by two placement checks
            if (!evactor::test::PinThisThread(cpus[(c + r / 300) % 2])) failures++;
          }
          const std::string key = absl::StrCat("hop", c, "-", r % 5);
          const std::string value = absl::StrCat("v", r, std::string(r % 40, 'y'));
          const std::string req = absl::StrCat("set ", key, " ", r, " 0 ", value.size(), "\r\n",
                                               value, "\r\nget ", key, "\r\n");
          const std::string want = absl::StrCat("STORED\r\nVALUE ", key, " ", r, " ",
                                                value.size(), "\r\n", value, "\r\nEND\r\n");
          if (RoundTrip(fd, req, want.size()) != want) failures++;
        }
        close(fd);
      });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(failures.load(), 0) << layout;
    const int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    const std::string moved = StatValue(fd, "stats", "moved_connections");
    close(fd);
    ASSERT_NE(moved, "");
    // Four hops per client; most of them move its connection.
    EXPECT_GE(atoi(moved.c_str()), kClients) << layout;
  }
}

// A binary-protocol request: header, extras, key, value.
std::string BinaryPacket(uint8_t opcode, const std::string& key, const std::string& extras,
                         const std::string& value, uint32_t opaque) {
  std::string p(24, '\0');
  p[0] = static_cast<char>(0x80);
  p[1] = static_cast<char>(opcode);
  p[2] = static_cast<char>(key.size() >> 8);
  p[3] = static_cast<char>(key.size() & 0xff);
  p[4] = static_cast<char>(extras.size());
  const uint32_t body = static_cast<uint32_t>(extras.size() + key.size() + value.size());
  for (int i = 0; i < 4; ++i) {
    p[8 + i] = static_cast<char>(body >> (24 - 8 * i));
    p[12 + i] = static_cast<char>(opaque >> (24 - 8 * i));
  }
  return p + extras + key + value;
}

// The binary protocol moves too: a binary client that changes CPU keeps getting
// right answers (SET then GET, pipelined, opaque and value checked) after its
// connection has moved.
TEST(AffinityTest, BinaryConnectionFollowsItsClient) {
  const std::vector<int> cpus = evactor::test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  ServerProcess server(2, {"-o", "affinity=on"});
  std::string failure;
  std::thread client([&] {
    using evactor::test::PinThisThread;
    if (!PinThisThread(cpus[0])) return void(failure = "cannot pin the client");
    const int fd = Connect(server.port());
    if (fd < 0) return void(failure = "cannot connect");
    for (int i = 0; i < 600 && failure.empty(); ++i) {
      if (i == 10 && !PinThisThread(cpus[1])) failure = "cannot re-pin the client";
      const std::string key = absl::StrCat("bin", i % 9);
      const std::string value = absl::StrCat("value-", i, std::string(i % 30, 'b'));
      const std::string set =
          BinaryPacket(0x01, key, std::string(8, '\0'), value, static_cast<uint32_t>(2 * i));
      const std::string get = BinaryPacket(0x00, key, "", "", static_cast<uint32_t>(2 * i + 1));
      const size_t want = 24 + 24 + 4 + value.size();
      const std::string got = RoundTrip(fd, set + get, want);
      if (got.size() != want || static_cast<uint8_t>(got[0]) != 0x81 || got[6] != 0 ||
          got[7] != 0 || static_cast<uint8_t>(got[24]) != 0x81 || got[24 + 1] != 0x00 ||
          got[24 + 6] != 0 || got[24 + 7] != 0 ||
          static_cast<uint8_t>(got[24 + 15]) != static_cast<uint8_t>(2 * i + 1) ||
          got.substr(24 + 24 + 4) != value) {
        failure = absl::StrCat("request ", i, ": ", got.size(), " bytes back");
      }
    }
    close(fd);
  });
  client.join();
  EXPECT_EQ(failure, "");
  const int fd = Connect(server.port());
  ASSERT_GE(fd, 0);
  EXPECT_GE(atoi(StatValue(fd, "stats", "moved_connections").c_str()), 1);
  close(fd);
}

// -t 1 with CPUs to spare: when other threads crowd the shard's CPU (a busy client
// there, as a one-thread memcaslap ends up, and a spinning thread), the shard moves
// to a spare CPU, keeps serving, and `stats` show it.
TEST(AffinityTest, ACrowdedThreadMovesToASpareCpu) {
  const std::vector<int> cpus = evactor::test::AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs; this process may use " << cpus.size();
  ServerProcess server(1, {"-o", "rebalance_ms=100"});
  const int probe = Connect(server.port());
  ASSERT_GE(probe, 0);
  ASSERT_EQ(StatValue(probe, "stats settings", "shard_cpus"), absl::StrCat(cpus[0]));
  EXPECT_EQ(StatValue(probe, "stats", "moved_shards"), "0");
  std::atomic<bool> stop{false};
  std::string failure;
  int round_trips = 0;
  std::thread client([&] {
    if (!evactor::test::PinThisThread(cpus[0])) return void(failure = "cannot pin the client");
    const int fd = Connect(server.port());
    if (fd < 0) return void(failure = "cannot connect");
    if (RoundTrip(fd, "set crowd 0 0 5\r\nhello\r\n", 8) != "STORED\r\n") failure = "set failed";
    const std::string want = "VALUE crowd 0 5\r\nhello\r\nEND\r\n";
    while (!stop.load() && failure.empty()) {
      if (RoundTrip(fd, "get crowd\r\n", want.size()) != want) failure = "a get went wrong";
      ++round_trips;
    }
    close(fd);
  });
  std::thread spinner([&] {
    evactor::test::PinThisThread(cpus[0]);
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  // Normally within a few hundred milliseconds; a generous bound for a loaded machine
  // (the spare CPU must be the less busy one for a window).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string moved = "0";
  while (moved == "0" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    moved = StatValue(probe, "stats", "moved_shards");
  }
  stop = true;
  client.join();
  spinner.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(round_trips, 0);
  EXPECT_EQ(moved, "1");
  const std::string now = StatValue(probe, "stats settings", "shard_cpus");
  EXPECT_NE(now, absl::StrCat(cpus[0]));
  EXPECT_NE(std::find_if(cpus.begin(), cpus.end(),
                         [&](int c) { return absl::StrCat(c) == now; }),
            cpus.end())
      << now;
  EXPECT_EQ(RoundTrip(probe, "get crowd\r\n", 29), "VALUE crowd 0 5\r\nhello\r\nEND\r\n");
  close(probe);
}

TEST(AffinityTest, OffReportsNoCpus) {
  ServerProcess server(1, {"-o", "affinity=off"});
  const int fd = Connect(server.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(StatValue(fd, "stats settings", "shard_cpus"), "none");
  close(fd);
}

// "stats settings" reports the options the server was started with.
TEST(SettingsTest, ReportTheOptionsAsStarted) {
  ServerProcess server(
      2, {"-o", "store=partitioned,lru_bump_interval=5,affinity=off,rebalance_ms=250"});
  const int fd = Connect(server.port());
  ASSERT_GE(fd, 0);
  const std::pair<std::string, std::string> started[] = {
      {"num_threads", "2"},        {"store", "partitioned"}, {"stripes", "0"},
      {"lru_bump_interval", "5"},  {"affinity", "off"},      {"rebalance_ms", "250"},
      {"reuse_port", "no"},        {"domain_socket", "NULL"},
      {"tcpport", absl::StrCat(server.port())}};
  for (const auto& [name, want] : started) {
    EXPECT_EQ(StatValue(fd, "stats settings", name), want) << name;
  }
  close(fd);
  // The defaults, and the verbosity as the `verbosity` command left it.
  ServerProcess plain(2, {});
  const int fd2 = Connect(plain.port());
  ASSERT_GE(fd2, 0);
  EXPECT_EQ(RoundTrip(fd2, "verbosity 1\r\n", 4), "OK\r\n");
  const std::pair<std::string, std::string> defaults[] = {
      {"verbosity", "1"},          {"store", "shared"},    {"stripes", "16"},
      {"lru_bump_interval", "60"}, {"affinity", "auto"},   {"rebalance_ms", "1000"}};
  for (const auto& [name, want] : defaults) {
    EXPECT_EQ(StatValue(fd2, "stats settings", name), want) << name;
  }
  close(fd2);
}

TEST(AffinityTest, OnWithMoreThreadsThanCpusDoesNotStart) {
  const int threads = static_cast<int>(evactor::test::AllowedCpus().size()) + 1;
  std::string out;
  const int rc = RunCommand(absl::StrCat(ServerPath(), " -p ", FreePort(), " -t ", threads,
                                         " -o affinity=on"),
                            &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("cannot be pinned"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Layouts, VerbosityTest, ::testing::Values("shared", "partitioned"));

// ---- Differential: the same pipelined stream to memcached and to this server -----------

// A compare-CAS no item has.
constexpr char kNeverCas[] = " C1152921504606846976";

// The answers with every CAS value (the fifth field of a VALUE line, a c<number> token
// of a meta answer) replaced by the order of its first appearance: CAS values are
// numbered per shard here and differ from memcached's, but the same item must show
// the same value, and a changed item a new one, in both.
std::string NormalizeCas(const std::string& answers) {
  std::map<std::string, int> ids;
  auto id = [&](const std::string& cas) {
    return absl::StrCat("#", ids.try_emplace(cas, static_cast<int>(ids.size())).first->second);
  };
  std::vector<std::string> lines = absl::StrSplit(answers, "\r\n");
  for (std::string& line : lines) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() == 5 && fields[0] == "VALUE") {
      fields[4] = id(fields[4]);
    } else if (line.size() >= 2 && absl::ascii_isupper(line[0]) && absl::ascii_isupper(line[1]) &&
               (line.size() == 2 || line[2] == ' ')) {
      for (size_t i = 1; i < fields.size(); ++i) {
        if (fields[i].size() > 1 && fields[i][0] == 'c' && absl::ascii_isdigit(fields[i][1])) {
          fields[i] = "c" + id(fields[i].substr(1));
        }
      }
    }
    line = absl::StrJoin(fields, " ");
  }
  return absl::StrJoin(lines, "\r\n");
}

// A random pipelined workload over a few keys (so that commands collide), every command
// answered identically by memcached 1.6 by design: storage commands, multi-key gets,
// delete, incr/decr, touch, flush_all, the meta commands, noreply/q, an unknown command,
// gets and the CAS flags of the meta commands (compared through NormalizeCas), and cas
// and ms C with a CAS that never matches. Left out: stats and version. Values and keys are
// lowercase letters and digits, so the "mn" that ends a stream is the only "MN" in its answers. One
// string per command. `prefix` starts every key; `flush` allows flush_all (which reaches every
// key).
std::vector<std::string> RandomWorkload(uint32_t seed, int commands,
                                        const std::string& prefix = "k", bool flush = true) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  auto key = [&] { return absl::StrCat(prefix, pick(12)); };
  auto value = [&] {
    if (pick(3) == 0) return std::to_string(pick(1000));  // incr/decr targets
    std::string v(pick(30), 'a');
    for (char& c : v) c = "abcdefghijklmnopqrstuvwxyz0123456789"[pick(36)];
    return v;
  };
  auto noreply = [&] { return pick(4) == 0 ? " noreply" : ""; };
  static constexpr const char* kStorage[] = {"set", "add", "replace", "append", "prepend"};
  static constexpr const char* kModes[] = {"", " MS", " ME", " MA", " MP", " MR"};
  std::vector<std::string> all;
  for (int i = 0; i < commands; ++i) {
    std::string out;
    switch (pick(16)) {
      case 0:
      case 1:
      case 2: {
        const std::string v = value();
        absl::StrAppend(&out, kStorage[pick(5)], " ", key(), " ", pick(1000), " 0 ", v.size(),
                        noreply(), "\r\n", v, "\r\n");
        break;
      }
      case 3:
      case 4: {
        std::string line = "get";
        for (int k = 1 + pick(4); k > 0; --k) absl::StrAppend(&line, " ", key());
        absl::StrAppend(&out, line, "\r\n");
        break;
      }
      case 5:
        absl::StrAppend(&out, "delete ", key(), noreply(), "\r\n");
        break;
      case 6:
        absl::StrAppend(&out, pick(2) ? "incr " : "decr ", key(), " ", pick(100), noreply(),
                        "\r\n");
        break;
      case 7:
        absl::StrAppend(&out, "touch ", key(), " 0", noreply(), "\r\n");
        break;
      case 8: {
        static constexpr const char* kFlags[] = {" v", " f", " k", " s", " t", " q", " O77", " c"};
        std::string line = absl::StrCat("mg ", key());
        for (const char* f : kFlags) {
          if (pick(2)) line += f;
        }
        absl::StrAppend(&out, line, "\r\n");
        break;
      }
      case 9: {
        const std::string v = value();
        absl::StrAppend(&out, "ms ", key(), " ", v.size(), pick(2) ? " F5" : "", kModes[pick(6)],
                        pick(4) == 0 ? " q" : "", pick(3) == 0 ? " k" : "",
                        pick(3) == 0 ? " c" : "", pick(6) == 0 ? kNeverCas : "", "\r\n", v, "\r\n");
        break;
      }
      case 10:
        absl::StrAppend(&out, "md ", key(), pick(3) == 0 ? " q" : "", pick(3) == 0 ? " k" : "",
                        "\r\n");
        break;
      case 11:
        absl::StrAppend(&out, "ma ", key(), pick(2) ? " MD" : "", pick(2) ? " v" : "",
                        pick(3) == 0 ? " c" : "", pick(3) == 0 ? " N0 J5" : "", " D", pick(50),
                        "\r\n");
        break;
      case 12:
        absl::StrAppend(&out, flush && pick(20) == 0 ? "flush_all" : "bogus", "\r\n");
        break;
      case 13:
        absl::StrAppend(&out, "gets ", key(), pick(2) ? absl::StrCat(" ", key()) : "", "\r\n");
        break;
      case 14: {  // a CAS that never matches: EXISTS or NOT_FOUND
        const std::string v = value();
        absl::StrAppend(&out, "cas ", key(), " 0 0 ", v.size(), " 1152921504606846976", noreply(),
                        "\r\n", v, "\r\n");
        break;
      }
      default:
        absl::StrAppend(&out, "get ", key(), "\r\n");
        break;
    }
    all.push_back(std::move(out));
  }
  return all;
}

// Whether the ASCII answers are complete: they end with the answer to the final "mn".
bool EndsWithMn(const std::string& got) { return absl::EndsWith(got, "MN\r\n"); }

// Sends `stream` in writes of random sizes (1 to `max_write` bytes) from another thread
// while reading the answers, until `done` says they are complete (or 10 s pass
// without data).
std::string Exchange(uint16_t port, const std::string& stream, uint32_t seed,
                     size_t max_write = 700,
                     const std::function<bool(const std::string&)>& done = EndsWithMn) {
  const int fd = Connect(port);
  if (fd < 0) return "<connect failed>";
  std::thread writer([&] {
    std::mt19937 rng(seed);
    for (size_t at = 0; at < stream.size();) {
      const size_t n = std::min<size_t>(stream.size() - at, 1 + rng() % max_write);
      if (write(fd, stream.data() + at, n) != static_cast<ssize_t>(n)) return;
      at += n;
    }
  });
  std::string got;
  char buf[16384];
  while (!done(got)) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  writer.join();
  close(fd);
  return got;
}

// memcached's background LRU threads (crawler and maintainer) take references to items
// now and then, and an item with a reference is not rewritten in place (see OneByOne):
// without them a command sent alone is answered the same way every time.
constexpr char kQuietMemcached[] = "no_lru_crawler,no_lru_maintainer";

// The reference answers: each command sent alone, followed by `marker`, and its answers
// read up to the marker's (`marker_answer`, left out). Sent one at a time, memcached
// answers every command the same way. Pipelined it may not: an incr or decr whose
// result is shorter than the value it replaces is padded with spaces when the item can
// be rewritten in place, which memcached does only while no earlier reply in the same
// batch still holds the item (its refcount test), so the answer depends on how the
// reads were cut. This server always pads, as memcached does for a command alone.
std::string OneByOne(uint16_t port, const std::vector<std::string>& commands,
                     const std::string& marker, const std::string& marker_answer) {
  const int fd = Connect(port);
  if (fd < 0) return "<connect failed>";
  std::string all;
  char buf[16384];
  for (const std::string& command : commands) {
    const std::string request = command + marker;
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) break;
    std::string got;
    while (!absl::EndsWith(got, marker_answer)) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    if (!absl::EndsWith(got, marker_answer)) {
      all += "<no answer>";
      break;
    }
    all += got.substr(0, got.size() - marker_answer.size());
  }
  close(fd);
  return all;
}

// The first line where two answers differ, for the failure message.
std::string FirstDifference(const std::string& want, const std::string& got) {
  size_t at = 0;
  while (at < want.size() && at < got.size() && want[at] == got[at]) ++at;
  const size_t line = want.rfind('\n', at == 0 ? 0 : at - 1);
  const size_t from = line == std::string::npos ? 0 : line + 1;
  return absl::StrCat("at byte ", at, ": memcached \"", absl::CEscape(want.substr(from, 120)),
                      "\" vs \"", absl::CEscape(got.substr(from, 120)), "\"");
}

// flush_all runs on every shard. The connection's own shard must run its part at once:
// requests after it for keys this shard owns run at once as well, and a flush that
// arrived later as a message to itself used to delete what they had just stored.
TEST(PartitionedTest, FlushAllIsOrderedWithTheRequestsAfterIt) {
  ServerProcess server(4, {"-o", "store=partitioned", "-o", "affinity=off"});
  // 32 keys, so that several belong to the connection's own shard, set before and
  // after a flush_all in one write (the server runs it in one go)...
  std::string request, expected, keys, values;
  for (int k = 0; k < 32; ++k) {
    absl::StrAppend(&request, "set f", k, " 0 0 3\r\nold\r\n");
    expected += "STORED\r\n";
  }
  request += "flush_all\r\n";
  expected += "OK\r\n";
  for (int k = 0; k < 32; ++k) {
    absl::StrAppend(&request, "set f", k, " 0 0 3\r\nnew\r\n");
    expected += "STORED\r\n";
    absl::StrAppend(&keys, " f", k);
    absl::StrAppend(&values, "VALUE f", k, " 0 3\r\nnew\r\n");
  }
  EXPECT_EQ(Exchange(server.port(), request + "mn\r\n", 7, request.size() + 4),
            expected + "MN\r\n");
  // ...and afterwards every key holds the later value.
  EXPECT_EQ(Exchange(server.port(), absl::StrCat("get", keys, "\r\nmn\r\n"), 7),
            absl::StrCat(values, "END\r\nMN\r\n"));
}

// The servers the differential tests compare: memcached (its LRU threads off, see
// kQuietMemcached) and this server with one shard and with four in both layouts.
class DifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/memcached", X_OK) != 0) {
      GTEST_SKIP() << "/usr/bin/memcached not installed";
    }
    memcached_.emplace(
        1,
        std::vector<std::string>{"-l", "127.0.0.1", "-U", "0", "-u", "root", "-o", kQuietMemcached},
        "", "/usr/bin/memcached");
    one_.emplace(1, std::vector<std::string>{"-o", "affinity=off"});
    shared_.emplace(4, std::vector<std::string>{"-o", "store=shared", "-o", "affinity=off"});
    partitioned_.emplace(4,
                         std::vector<std::string>{"-o", "store=partitioned", "-o", "affinity=off"});
    ours_ = {{"-t 1", &*one_}, {"-t 4 shared", &*shared_}, {"-t 4 partitioned", &*partitioned_}};
  }

  std::optional<ServerProcess> memcached_, one_, shared_, partitioned_;
  std::vector<std::pair<const char*, const ServerProcess*>> ours_;
};

TEST_F(DifferentialTest, PipelinedStreamsAnswerAsMemcachedDoes) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const std::vector<std::string> commands = RandomWorkload(seed, 3000);
    const std::string stream = absl::StrJoin(commands, "") + "mn\r\n";
    const std::string want =
        NormalizeCas(OneByOne(memcached_->port(), commands, "mn\r\n", "MN\r\n") + "MN\r\n");
    ASSERT_FALSE(absl::StrContains(want, "<no answer>")) << "memcached did not answer";
    for (const auto& [name, server] : ours_) {
      const std::string got = NormalizeCas(Exchange(server->port(), stream, seed + 100));
      if (got != want) ADD_FAILURE() << name << ": " << FirstDifference(want, got);
    }
    // A fresh start for the next seed everywhere.
    for (const ServerProcess* server : {&*memcached_, &*one_, &*shared_, &*partitioned_}) {
      EXPECT_EQ(Exchange(server->port(), "flush_all\r\nmn\r\n", 0), "OK\r\nMN\r\n");
    }
  }
}

// Many connections at once, each with keys of its own (so that every connection's
// answers are determined by its own stream) and no flush_all: each must get exactly
// what memcached answers to the same stream. In the layouts with four shards the
// connections land on different shards and their requests cross between them.
TEST_F(DifferentialTest, ConcurrentConnectionsEachAnswerAsMemcachedDoes) {
  constexpr int kConnections = 12;
  std::vector<std::string> streams, want;
  for (int c = 0; c < kConnections; ++c) {
    const std::vector<std::string> commands =
        RandomWorkload(1000 + c, 1500, absl::StrCat("c", c, "k"), false);
    streams.push_back(absl::StrJoin(commands, "") + "mn\r\n");
    want.push_back(
        NormalizeCas(OneByOne(memcached_->port(), commands, "mn\r\n", "MN\r\n") + "MN\r\n"));
    ASSERT_FALSE(absl::StrContains(want[c], "<no answer>")) << "memcached, stream " << c;
  }
  for (const auto& [name, server] : ours_) {
    std::vector<std::string> got(kConnections);
    std::vector<std::thread> clients;
    for (int c = 0; c < kConnections; ++c) {
      clients.emplace_back([&, c, port = server->port()] {
        got[c] = NormalizeCas(Exchange(port, streams[c], 500 + c));
      });
    }
    for (std::thread& t : clients) t.join();
    for (int c = 0; c < kConnections; ++c) {
      if (got[c] != want[c]) {
        ADD_FAILURE() << name << " connection " << c << ": " << FirstDifference(want[c], got[c]);
      }
    }
  }
}

// The binary protocol's counterpart: random pipelined packets (storage commands and
// their quiet forms, get/getk/getq/getkq, delete, incr/decr, append/prepend, touch,
// gat, flush, noop), ending with a noop whose opaque marks the end. Requests carry no
// CAS or one that never matches; the responses' CAS values are compared by identity
// (WithCasIds), as they are numbered per shard here.
constexpr uint32_t kLastOpaque = 0xfeedface;

std::vector<std::string> RandomBinaryWorkload(uint32_t seed, int commands) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  auto be = [](uint64_t v, int bytes) {
    std::string out;
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
    return out;
  };
  auto value = [&] {
    if (pick(3) == 0) return std::to_string(pick(1000));
    return std::string(pick(20), static_cast<char>('a' + pick(26)));
  };
  std::vector<std::string> out;
  for (int i = 0; i < commands; ++i) {
    const std::string key = absl::StrCat("k", pick(12));
    const uint32_t opaque = static_cast<uint32_t>(i);
    std::string packet;
    switch (pick(10)) {
      case 0:
      case 1: {  // set/add/replace, loud or quiet
        static constexpr uint8_t kOps[] = {0x01, 0x02, 0x03, 0x11, 0x12, 0x13};
        packet = BinaryPacket(kOps[pick(6)], key, be(pick(100), 4) + be(0, 4), value(), opaque);
        if (pick(6) == 0) packet.replace(16, 8, be(uint64_t{1} << 60, 8));  // never matches
        break;
      }
      case 2:
      case 3: {
        static constexpr uint8_t kOps[] = {0x00, 0x09, 0x0c, 0x0d};
        packet = BinaryPacket(kOps[pick(4)], key, "", "", opaque);
        break;
      }
      case 4:
        packet = BinaryPacket(pick(2) ? 0x04 : 0x14, key, "", "", opaque);
        break;
      case 5: {  // incr/decr (quiet too); an exptime of all ones: no auto-create
        static constexpr uint8_t kOps[] = {0x05, 0x06, 0x15, 0x16};
        packet = BinaryPacket(kOps[pick(4)], key,
                              be(pick(50), 8) + be(pick(10), 8) + be(pick(2) ? 0 : 0xffffffff, 4),
                              "", opaque);
        break;
      }
      case 6: {
        static constexpr uint8_t kOps[] = {0x0e, 0x0f, 0x19, 0x1a};
        packet = BinaryPacket(kOps[pick(4)], key, "", value(), opaque);
        break;
      }
      case 7: {  // touch, gat, gatq, gatk, gatkq
        static constexpr uint8_t kOps[] = {0x1c, 0x1d, 0x1e, 0x23, 0x24};
        packet = BinaryPacket(kOps[pick(5)], key, be(0, 4), "", opaque);
        break;
      }
      case 8:
        packet = pick(15) == 0 ? BinaryPacket(0x08, "", "", "", opaque)
                               : BinaryPacket(0x0a, "", "", "", opaque);
        break;
      default:
        packet = BinaryPacket(0x00, key, "", "", opaque);
        break;
    }
    out.push_back(std::move(packet));
  }
  return out;
}

// Splits binary responses into packets; nullopt while the last one is incomplete.
std::optional<std::vector<std::string>> BinaryResponses(const std::string& got) {
  std::vector<std::string> packets;
  for (size_t at = 0; at < got.size();) {
    if (got.size() - at < 24) return std::nullopt;
    uint32_t body = 0;
    for (int i = 0; i < 4; ++i) body = body << 8 | static_cast<uint8_t>(got[at + 8 + i]);
    if (got.size() - at < 24 + body) return std::nullopt;
    packets.push_back(got.substr(at, 24 + body));
    at += 24 + body;
  }
  return packets;
}

bool EndsWithLastNoop(const std::string& got) {
  const auto packets = BinaryResponses(got);
  if (!packets.has_value() || packets->empty()) return false;
  const std::string& last = packets->back();
  uint32_t opaque = 0;
  for (int i = 0; i < 4; ++i) opaque = opaque << 8 | static_cast<uint8_t>(last[12 + i]);
  return static_cast<uint8_t>(last[1]) == 0x0a && opaque == kLastOpaque;
}

// The response packets with each non-zero CAS field replaced by the order of its first
// appearance (1, 2, ...), as NormalizeCas does for ASCII answers.
std::vector<std::string> WithCasIds(const std::string& got) {
  std::vector<std::string> packets = BinaryResponses(got).value_or(std::vector<std::string>{});
  std::map<std::string, uint64_t> ids;
  for (std::string& p : packets) {
    const std::string cas = p.substr(16, 8);
    if (cas == std::string(8, '\0')) continue;
    const uint64_t id = ids.try_emplace(cas, ids.size() + 1).first->second;
    for (int i = 0; i < 8; ++i) p[16 + i] = static_cast<char>(id >> (56 - 8 * i));
  }
  return packets;
}

TEST_F(DifferentialTest, PipelinedBinaryStreamsAnswerAsMemcachedDoes) {
  const std::string last_noop = BinaryPacket(0x0a, "", "", "", kLastOpaque);
  std::string last_noop_answer = last_noop;  // a header only, as the request
  last_noop_answer[0] = static_cast<char>(0x81);
  const std::string flush = BinaryPacket(0x08, "", "", "", 1) + last_noop;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const std::vector<std::string> packets = RandomBinaryWorkload(seed, 3000);
    const std::string stream = absl::StrJoin(packets, "") + last_noop;
    const std::string reference =
        OneByOne(memcached_->port(), packets, last_noop, last_noop_answer) + last_noop_answer;
    ASSERT_FALSE(absl::StrContains(reference, "<no answer>")) << "memcached did not answer";
    const std::vector<std::string> want = WithCasIds(reference);
    ASSERT_GT(want.size(), 1000u) << "memcached did not answer the whole stream";
    for (const auto& [name, server] : ours_) {
      const std::vector<std::string> got =
          WithCasIds(Exchange(server->port(), stream, seed + 100, 700, EndsWithLastNoop));
      size_t i = 0;
      while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
      if (i < want.size() || i < got.size()) {
        ADD_FAILURE() << name << ": response " << i << " of " << want.size()
                      << " differs: memcached \""
                      << absl::BytesToHexString(i < want.size() ? want[i] : "") << "\" vs \""
                      << absl::BytesToHexString(i < got.size() ? got[i] : "") << "\"";
      }
    }
    for (const ServerProcess* server : {&*memcached_, &*one_, &*shared_, &*partitioned_}) {
      EXPECT_EQ(WithCasIds(Exchange(server->port(), flush, 0, 700, EndsWithLastNoop)).size(), 2u);
    }
  }
}

}  // namespace
