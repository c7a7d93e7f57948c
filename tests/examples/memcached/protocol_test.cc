// Tests of examples/memcached/protocol.h: every command parsed and executed, with the
// exact response bytes memcached 1.6.18 sends (captured from the real daemon); noreply;
// pipelining and requests split at every byte boundary; malformed input; oversized
// values swallowed without losing sync; over-long lines; meta commands; and the pieces
// a sharded server uses (RouteOf, OwnedRequest, write_end, AppendStats).
#include "examples/memcached/protocol.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "examples/memcached/store.h"
#include "gtest/gtest.h"

namespace evactor::memcached {
namespace {

constexpr int64_t kStart = 1'700'000'000;

class FakeClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(kStart);
};

// One client connection: feeds bytes to a parser and executes what comes out, the way
// a server's read callback would. kLocal requests get no Store, to prove they need none.
class Session {
 public:
  explicit Session(Store* store, const ParserOptions& options = {})
      : store_(store), parser_(options) {}

  std::string Send(std::string_view bytes) {
    parser_.Feed(bytes);
    return Drain();
  }

  std::string Drain() {
    std::string out;
    Request request;
    while (!closed_) {
      const ParseStatus status = parser_.Next(&request);
      if (status == ParseStatus::kNeedMore) break;
      if (status == ParseStatus::kClose) {
        closed_ = true;
        break;
      }
      Store* target = RouteOf(request) == Route::kLocal ? nullptr : store_;
      if (Execute(request, target, &out) == Disposition::kClose) closed_ = true;
    }
    return out;
  }

  bool closed() const { return closed_; }
  RequestParser& parser() { return parser_; }

 private:
  Store* store_;
  RequestParser parser_;
  bool closed_ = false;
};

class ProtocolTest : public ::testing::Test {
 protected:
  ProtocolTest() : store_(StoreOptions{.clock = &clock_}), session_(&store_) {}

  // Sends on the test's connection; each call returns what that input produced.
  std::string Send(std::string_view bytes) { return session_.Send(bytes); }
  std::string Cas(std::string_view key) { return std::to_string(store_.Peek(key)->cas); }

  FakeClock clock_;
  Store store_;
  Session session_;
};

// --- Classic commands -----------------------------------------------------------------

TEST_F(ProtocolTest, SetGetGets) {
  EXPECT_EQ(Send("set a 5 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get a b\r\n"), "VALUE a 5 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("gets a\r\n"), "VALUE a 5 1 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("get b\r\n"), "END\r\n");
  EXPECT_EQ(Send("get a a\r\n"), "VALUE a 5 1\r\nx\r\nVALUE a 5 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("set e 0 0 0\r\n\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get e\r\n"), "VALUE e 0 0\r\n\r\nEND\r\n");
  EXPECT_EQ(Send("set f 4294967295 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get f\r\n"), "VALUE f 4294967295 1\r\nx\r\nEND\r\n");
}

TEST_F(ProtocolTest, DataBlocksMayHoldAnyBytes) {
  const std::string value("a\r\nb\0c\n", 7);
  EXPECT_EQ(Send("set k 0 0 7\r\n" + value + "\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get k\r\n"), "VALUE k 0 7\r\n" + value + "\r\nEND\r\n");
}

TEST_F(ProtocolTest, StorageModes) {
  EXPECT_EQ(Send("add k 1 0 1\r\na\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("add k 1 0 1\r\nb\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(Send("replace nope 0 0 1\r\nb\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(Send("replace k 2 0 1\r\nc\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("append k 9 0 2\r\n>>\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("prepend k 9 0 2\r\n<<\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("append nope 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(Send("prepend nope 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(Send("get k\r\n"), "VALUE k 2 5\r\n<<c>>\r\nEND\r\n");  // flags kept
}

TEST_F(ProtocolTest, CasCommand) {
  EXPECT_EQ(Send("cas nope 0 0 1 5\r\nz\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(Send("set k 0 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("gets k\r\n"), "VALUE k 0 1 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("cas k 0 0 1 0\r\nz\r\n"), "EXISTS\r\n");
  EXPECT_EQ(Send("cas k 0 0 1 999\r\nz\r\n"), "EXISTS\r\n");
  EXPECT_EQ(Send("cas k 3 0 1 1\r\ny\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("gets k\r\n"), "VALUE k 3 1 2\r\ny\r\nEND\r\n");
  EXPECT_EQ(Send("cas k 3 0 1 1\r\nw\r\n"), "EXISTS\r\n");
  EXPECT_EQ(Send("cas k 3 0 1 2 noreply\r\nw\r\n"), "");
  EXPECT_EQ(Send("get k\r\n"), "VALUE k 3 1\r\nw\r\nEND\r\n");
  EXPECT_EQ(Send("cas k 0 0 1\r\nw\r\n"), "ERROR\r\nERROR\r\n");  // too few tokens
  EXPECT_EQ(Send("cas k 0 0 1 x\r\nw\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n");
}

TEST_F(ProtocolTest, Delete) {
  Send("set k 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("delete k\r\n"), "DELETED\r\n");
  EXPECT_EQ(Send("delete k\r\n"), "NOT_FOUND\r\n");
  Send("set k 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("delete k 0\r\n"), "DELETED\r\n");
  const std::string usage =
      "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
  EXPECT_EQ(Send("delete k 1\r\n"), usage);
  EXPECT_EQ(Send("delete k x y\r\n"), usage);
  EXPECT_EQ(Send("delete k 1 noreply\r\n"), "");
  Send("set k 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("delete k noreply\r\n"), "");
  Send("set k 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("delete k 0 noreply\r\n"), "");
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
  EXPECT_EQ(Send("delete\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("delete a b c d\r\n"), "ERROR\r\n");
}

TEST_F(ProtocolTest, IncrDecr) {
  EXPECT_EQ(Send("set n 0 0 2\r\n10\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("decr n 1\r\n"), "9\r\n");
  EXPECT_EQ(Send("get n\r\n"), "VALUE n 0 2\r\n9 \r\nEND\r\n");
  EXPECT_EQ(Send("incr n 95\r\n"), "104\r\n");
  EXPECT_EQ(Send("get n\r\n"), "VALUE n 0 3\r\n104\r\nEND\r\n");
  EXPECT_EQ(Send("incr n -1\r\n"), "CLIENT_ERROR invalid numeric delta argument\r\n");
  EXPECT_EQ(Send("incr n abc\r\n"), "CLIENT_ERROR invalid numeric delta argument\r\n");
  EXPECT_EQ(Send("incr n 18446744073709551615\r\n"), "103\r\n");  // wraps
  EXPECT_EQ(Send("incr n 18446744073709551616\r\n"),
            "CLIENT_ERROR invalid numeric delta argument\r\n");
  EXPECT_EQ(Send("decr n 1000\r\n"), "0\r\n");
  EXPECT_EQ(Send("get n\r\n"), "VALUE n 0 3\r\n0  \r\nEND\r\n");
  EXPECT_EQ(Send("incr zz 1\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(Send("decr zz 1\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(Send("incr n\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("incr n 1 noreply\r\n"), "");
  EXPECT_EQ(Send("incr n 1 foo\r\n"), "2\r\n");
  EXPECT_EQ(Send("set s 0 0 3\r\nabc\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("incr s 1\r\n"),
            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  EXPECT_EQ(Send("decr s 1 noreply\r\n"), "");
  EXPECT_EQ(Send("set n 5 100 2\r\n99\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("incr n 1\r\n"), "100\r\n");
  EXPECT_EQ(Send("mg n v f t\r\n"), "VA 3 f5 t100\r\n100\r\n");
}

TEST_F(ProtocolTest, Touch) {
  Send("set t 5 0 2\r\nhi\r\n");
  EXPECT_EQ(Send("touch t 100\r\n"), "TOUCHED\r\n");
  EXPECT_EQ(Send("touch t abc\r\n"), "CLIENT_ERROR invalid exptime argument\r\n");
  EXPECT_EQ(Send("touch nope 1\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(Send("touch t\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("touch t 1 2 3\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("touch t 1 noreply\r\n"), "");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Send("get t\r\n"), "END\r\n");
}

TEST_F(ProtocolTest, GatAndGats) {
  Send("set t 5 10 2\r\nhi\r\n");
  EXPECT_EQ(Send("gat 100 t nope\r\n"), "VALUE t 5 2\r\nhi\r\nEND\r\n");
  EXPECT_EQ(Send("gats 100 t\r\n"), "VALUE t 5 2 1\r\nhi\r\nEND\r\n");
  EXPECT_EQ(Send("mg t t\r\n"), "HD t100\r\n");
  EXPECT_EQ(Send("gat abc t\r\n"), "CLIENT_ERROR invalid exptime argument\r\n");
  EXPECT_EQ(Send("gat 100\r\n"), "END\r\n");
  EXPECT_EQ(Send("gat\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("gat -1 t\r\n"), "VALUE t 5 2\r\nhi\r\nEND\r\n");
  EXPECT_EQ(Send("get t\r\n"), "END\r\n");
}

TEST_F(ProtocolTest, FlushAll) {
  Send("set a 0 0 1\r\n1\r\n");
  EXPECT_EQ(Send("flush_all\r\n"), "OK\r\n");
  EXPECT_EQ(Send("get a\r\n"), "END\r\n");
  Send("set a 0 0 1\r\n1\r\n");
  EXPECT_EQ(Send("flush_all 10\r\n"), "OK\r\n");
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(Send("get a\r\n"), "VALUE a 0 1\r\n1\r\nEND\r\n");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Send("get a\r\n"), "END\r\n");
  EXPECT_EQ(Send("flush_all 0\r\n"), "OK\r\n");
  EXPECT_EQ(Send("flush_all -1\r\n"), "OK\r\n");
  EXPECT_EQ(Send("flush_all abc\r\n"), "CLIENT_ERROR invalid exptime argument\r\n");
  EXPECT_EQ(Send("flush_all foo\r\n"), "CLIENT_ERROR invalid exptime argument\r\n");
  EXPECT_EQ(Send("flush_all abc noreply\r\n"), "");
  EXPECT_EQ(Send("flush_all noreply\r\n"), "");
  EXPECT_EQ(Send("flush_all 10 noreply\r\n"), "");
  EXPECT_EQ(Send("flush_all 10 foo\r\n"), "OK\r\n");
  EXPECT_EQ(Send("flush_all 1 2 3\r\n"), "ERROR\r\n");
}

TEST_F(ProtocolTest, VersionVerbosityQuit) {
  EXPECT_EQ(Send("version\r\n"), "VERSION 1.6.18\r\n");
  EXPECT_EQ(Send("version x\r\n"), "VERSION 1.6.18\r\n");
  EXPECT_EQ(Send("verbosity\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("verbosity 1\r\n"), "OK\r\n");
  EXPECT_EQ(Send("verbosity x\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("verbosity 1 noreply\r\n"), "");
  EXPECT_EQ(Send("verbosity 1 2\r\n"), "OK\r\n");
  EXPECT_FALSE(session_.closed());
  // quit closes after what came before it; nothing after it runs.
  EXPECT_EQ(Send("get a\r\nquit extra\r\nversion\r\n"), "END\r\n");
  EXPECT_TRUE(session_.closed());
}

TEST_F(ProtocolTest, UnknownCommands) {
  EXPECT_EQ(Send("SET k 0 0 1\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("\n"), "ERROR\r\n");
  EXPECT_EQ(Send("   \r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("g\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("quitx\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("get\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("gets \r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("get\tk\r\n"), "ERROR\r\n");  // only spaces separate tokens
  EXPECT_EQ(Send("stats foo\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("mz\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("set\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("set k 0 0\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("shutdown\r\n"), "ERROR: shutdown not enabled\r\n");
}

// memcached's -A: "shutdown" (and "shutdown graceful") close the connection without an
// answer (the server stops itself); other arguments are refused.
TEST(ShutdownCommandTest, EnabledItParsesAndClosesUnanswered) {
  Store store;
  RequestParser parser(ParserOptions{.enable_shutdown = true});
  Request request;
  parser.Feed("shutdown\r\nshutdown graceful\r\nshutdown now\r\nshutdown a b\r\n");
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
    EXPECT_EQ(request.command, Command::kShutdown);
    EXPECT_EQ(RouteOf(request), Route::kLocal);
    std::string out;
    EXPECT_EQ(Execute(request, nullptr, &out), Disposition::kClose);
    EXPECT_EQ(out, "");
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
    std::string out;
    EXPECT_EQ(Execute(request, nullptr, &out), Disposition::kContinue);
    EXPECT_EQ(out, "CLIENT_ERROR invalid shutdown mode\r\n");
  }
}

// memcached's -F: flush_all is refused and flushes nothing; noreply silences it.
TEST(FlushDisabledTest, FlushAllIsRefused) {
  Store store;
  store.Set("k", "v", 0, 0);
  RequestParser parser;
  Request request;
  parser.Feed("flush_all\r\nflush_all 0 noreply\r\n");
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  std::string out;
  EXPECT_EQ(Execute(request, nullptr, &out, {.flush_enabled = false}), Disposition::kContinue);
  EXPECT_EQ(out, "CLIENT_ERROR flush_all not allowed\r\n");
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  out.clear();
  Execute(request, &store, &out, {.flush_enabled = false});
  EXPECT_EQ(out, "");
  EXPECT_TRUE(store.Peek("k").has_value());
  // Enabled (the default), the same request flushes.
  Execute(request, &store, &out);
  EXPECT_FALSE(store.Peek("k").has_value());
}

TEST_F(ProtocolTest, LeadingAndRepeatedSpacesAndBareNewlines) {
  Send("set k 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("  get   k  \r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("get k\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("set j 0 0 1\ny\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("set j 1 0  1\r\ny\r\n"), "STORED\r\n");
}

// --- Malformed input --------------------------------------------------------------------

TEST_F(ProtocolTest, MalformedStorageLinesLeaveTheDataToBeParsedAsACommand) {
  const std::string bad = "CLIENT_ERROR bad command line format\r\n";
  EXPECT_EQ(Send("set k -1 0 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k abc 0 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 1 0 1x\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 1 0 0x1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 1 x 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 1 0 -1\r\n"), bad);
  EXPECT_EQ(Send("set " + std::string(251, 'a') + " 0 0 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 0 0 1 noreply extra\r\nx\r\n"), "ERROR\r\nERROR\r\n");
  // Out-of-range numbers: memcached 1.6.18 truncates them silently; we refuse them.
  EXPECT_EQ(Send("set k 4294967296 0 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 0 2147483648 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("set k 0 0 2147483648\r\n"), bad);
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
}

TEST_F(ProtocolTest, NumbersAreParsedLikeMemcached) {
  EXPECT_EQ(Send("set k +1 0 +1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("set k 1 0 01\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("set k 1 -0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get k\r\n"), "VALUE k 1 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("set k 0 2592001 1\r\nx\r\n"), "STORED\r\n");  // absolute, in 1970
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
  EXPECT_EQ(Send("set k 0 -1 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
}

TEST_F(ProtocolTest, BadDataChunk) {
  // Exactly <bytes>+2 bytes are taken; what follows is the next command.
  EXPECT_EQ(Send("set k 0 0 2\r\nxyz\r\n"), "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
  EXPECT_EQ(Send("set k 0 0 1\r\nx\nget k\r\n"),
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n");  // "x\ng", then "et k"
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
  EXPECT_EQ(Send("ms m 2\r\nbbb\r\n"), "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
  EXPECT_EQ(Send("ms m 2 q\r\nbbb\r\n"), "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
}

TEST_F(ProtocolTest, KeysLongerThan250BytesAreRefused) {
  const std::string k250(250, 'k');
  const std::string k251(251, 'k');
  const std::string bad = "CLIENT_ERROR bad command line format\r\n";
  EXPECT_EQ(Send("set " + k250 + " 0 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("get " + k250 + "\r\n"), "VALUE " + k250 + " 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("get " + k251 + "\r\n"), bad);
  EXPECT_EQ(Send("get " + k250 + " " + k251 + "\r\n"), bad);  // nothing but the error
  EXPECT_EQ(Send("delete " + k251 + "\r\n"), bad);
  EXPECT_EQ(Send("incr " + k251 + " 1\r\n"), bad);
  EXPECT_EQ(Send("touch " + k251 + " 1\r\n"), bad);
  EXPECT_EQ(Send("mg " + k251 + " v\r\n"), bad);
  EXPECT_EQ(Send("ms " + k251 + " 1\r\nx\r\n"), bad + "ERROR\r\n");
  EXPECT_EQ(Send("md " + k251 + "\r\n"), bad);
  EXPECT_EQ(Send("ma " + k251 + "\r\n"), bad);
  EXPECT_EQ(Send("me " + k251 + "\r\n"), bad);
}

// --- noreply --------------------------------------------------------------------------------

TEST_F(ProtocolTest, NoreplySilencesEveryClassicAnswerErrorsIncluded) {
  EXPECT_EQ(Send("set k 0 0 1 noreply\r\nx\r\n"), "");
  EXPECT_EQ(Send("add k 0 0 1 noreply\r\nx\r\n"), "");
  EXPECT_EQ(Send("replace k 0 0 1 noreply\r\ny\r\n"), "");
  EXPECT_EQ(Send("append k 0 0 1 noreply\r\nz\r\n"), "");
  EXPECT_EQ(Send("prepend k 0 0 1 noreply\r\nw\r\n"), "");
  EXPECT_EQ(Send("get k\r\n"), "VALUE k 0 3\r\nwyz\r\nEND\r\n");
  EXPECT_EQ(Send("touch k 10 noreply\r\n"), "");
  EXPECT_EQ(Send("incr k 1 noreply\r\n"), "");  // non-numeric, silently
  EXPECT_EQ(Send("delete k noreply\r\n"), "");
  EXPECT_EQ(Send("touch k abc noreply\r\n"), "");
  EXPECT_EQ(Send("incr k abc noreply\r\n"), "");
  EXPECT_EQ(Send("verbosity x noreply\r\n"), "");
  // The bad data chunk is silenced; the leftover "\n" is an empty command: ERROR.
  EXPECT_EQ(Send("set k 0 0 1 noreply\r\nxy\r\n"), "ERROR\r\n");
  // The malformed line is silenced; its data block is then read as a command.
  EXPECT_EQ(Send("set k abc 0 1 noreply\r\nx\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("get k\r\n"), "END\r\n");
}

// --- Pipelining and splitting ---------------------------------------------------------------

const char kScript[] =
    "set a 1 0 3\r\nabc\r\n"
    "get a\r\n"
    "add a 0 0 1\r\nx\r\n"
    "append a 0 0 2\r\nde\r\n"
    "gets a b\r\n"
    "cas a 0 0 1 2\r\nz\r\n"
    "set n 0 0 2 noreply\r\n10\r\n"
    "decr n 3\r\n"
    "incr n 100\r\n"
    "bogus\r\n"
    "set bad 0 0 1\r\nxx\r\n"
    "touch a 0\r\n"
    "delete a\r\n"
    "get a n\n"
    "ms m 2 T0 F3 c\r\nhi\r\n"
    "mg m v f k s Oq1\r\n"
    "mg missing v q\r\n"
    "ma n D5 v\r\n"
    "md m q\r\n"
    "mn\r\n"
    "version\r\n";

const char kScriptAnswer[] =
    "STORED\r\n"
    "VALUE a 1 3\r\nabc\r\nEND\r\n"
    "NOT_STORED\r\n"
    "STORED\r\n"
    "VALUE a 1 5 2\r\nabcde\r\nEND\r\n"
    "STORED\r\n"
    "7\r\n"
    "107\r\n"
    "ERROR\r\n"
    "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    "TOUCHED\r\n"
    "DELETED\r\n"
    "VALUE n 0 3\r\n107\r\nEND\r\n"
    "HD c7\r\n"
    "VA 2 f3 km s2 Oq1\r\nhi\r\n"
    "VA 3\r\n112\r\n"
    "MN\r\n"
    "VERSION 1.6.18\r\n";

// Runs kScript on a fresh store, fed in pieces cut at `cuts`.
std::string RunScript(const std::vector<size_t>& cuts) {
  FakeClock clock;
  Store store(StoreOptions{.clock = &clock});
  Session session(&store);
  const std::string_view script(kScript);
  std::string out;
  size_t from = 0;
  for (size_t cut : cuts) {
    out += session.Send(script.substr(from, cut - from));
    from = cut;
  }
  out += session.Send(script.substr(from));
  return out;
}

TEST(ProtocolPipelineTest, PipelinedRequestsInOneChunk) { EXPECT_EQ(RunScript({}), kScriptAnswer); }

TEST(ProtocolPipelineTest, SplitAtEveryByteBoundary) {
  const size_t n = std::string_view(kScript).size();
  for (size_t cut = 1; cut < n; ++cut) {
    ASSERT_EQ(RunScript({cut}), kScriptAnswer) << "cut at " << cut;
  }
}

TEST(ProtocolPipelineTest, OneByteAtATime) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < std::string_view(kScript).size(); ++i) cuts.push_back(i);
  EXPECT_EQ(RunScript(cuts), kScriptAnswer);
}

TEST_F(ProtocolTest, RequestsParsedTogetherStayValidUntilTheNextFeed) {
  RequestParser parser;
  parser.Feed("set a 0 0 1\r\nx\r\nget a b c\r\ndelete a\r\nge");
  Request set, get, del, more;
  ASSERT_EQ(parser.Next(&set), ParseStatus::kRequest);
  ASSERT_EQ(parser.Next(&get), ParseStatus::kRequest);
  ASSERT_EQ(parser.Next(&del), ParseStatus::kRequest);
  EXPECT_EQ(parser.Next(&more), ParseStatus::kNeedMore);
  EXPECT_EQ(set.command, Command::kSet);
  EXPECT_EQ(set.key(), "a");
  EXPECT_EQ(set.data, "x");
  EXPECT_EQ(get.command, Command::kGet);
  EXPECT_EQ(get.keys.size(), 3u);
  EXPECT_EQ(get.keys[2], "c");
  EXPECT_EQ(del.command, Command::kDelete);
  EXPECT_EQ(parser.buffered(), 2u);
}

TEST_F(ProtocolTest, OwnedRequestOutlivesTheParserBuffer) {
  RequestParser parser;
  parser.Feed("ms key 5 T10 F7 Oabc k\r\nhello\r\n");
  Request request;
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  OwnedRequest owned(request);
  parser.Feed(std::string(100000, 'z'));  // grows and moves the buffer
  OwnedRequest moved = std::move(owned);
  EXPECT_EQ(moved.request().key(), "key");
  EXPECT_EQ(moved.request().data, "hello");
  EXPECT_EQ(moved.request().meta.tokens, "T10 F7 Oabc k");
  std::string out;
  Execute(moved.request(), &store_, &out);
  EXPECT_EQ(out, "HD Oabc kkey\r\n");
  EXPECT_EQ(Send("mg key v f t\r\n"), "VA 5 f7 t10\r\nhello\r\n");
}

TEST_F(ProtocolTest, ReserveAndCommitReadStraightIntoTheParser) {
  RequestParser parser;
  const std::string_view input = "set k 0 0 3\r\nabc\r\nget k\r\n";
  std::span<char> space = parser.Reserve(input.size());
  ASSERT_GE(space.size(), input.size());
  std::copy(input.begin(), input.end(), space.begin());
  parser.Commit(input.size());
  std::string out;
  Request request;
  while (parser.Next(&request) == ParseStatus::kRequest) Execute(request, &store_, &out);
  EXPECT_EQ(out, "STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\n");
}

TEST_F(ProtocolTest, WantedTellsHowMuchAStorageCommandNeeds) {
  RequestParser parser;
  parser.Feed("set k 0 0 100\r\nabc");
  Request request;
  EXPECT_EQ(parser.Next(&request), ParseStatus::kNeedMore);
  EXPECT_EQ(parser.wanted(), 15u + 100u + 2u);
  parser.Feed(std::string(97, 'x') + "\r\n");
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  EXPECT_EQ(request.data.size(), 100u);
  EXPECT_EQ(parser.wanted(), 0u);
}

// --- Oversized values and long lines -----------------------------------------------------

TEST_F(ProtocolTest, OversizedValueIsSwallowedWithoutBuffering) {
  EXPECT_EQ(Send("set big 0 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(Send("set keep 0 0 1\r\ny\r\n"), "STORED\r\n");
  // The answer comes as soon as the line is read; the 2 MB then stream past.
  EXPECT_EQ(Send("set big 0 0 2000000\r\n"), "SERVER_ERROR object too large for cache\r\n");
  const std::string chunk(64 * 1024, 'v');
  for (size_t sent = 0; sent + chunk.size() <= 2000000; sent += chunk.size()) {
    EXPECT_EQ(Send(chunk), "");
    EXPECT_EQ(session_.parser().buffered(), 0u);
  }
  const size_t rest = 2000000 % chunk.size();
  EXPECT_EQ(Send(std::string(rest, 'v') + "\r\nget big keep\r\n"),
            "VALUE keep 0 1\r\ny\r\nEND\r\n");  // the failed set dropped "big"
  // Other modes keep the old value; noreply silences the error.
  const std::string huge(2000000, 'w');
  EXPECT_EQ(Send("add keep 0 0 2000000\r\n" + huge + "\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  EXPECT_EQ(Send("append keep 0 0 2000000\r\n" + huge + "\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  EXPECT_EQ(Send("cas keep 0 0 2000000 1\r\n" + huge + "\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  EXPECT_EQ(Send("set big 0 0 2000000 noreply\r\n" + huge + "\r\n"), "");
  EXPECT_EQ(Send("get keep\r\n"), "VALUE keep 0 1\r\ny\r\nEND\r\n");
  // Meta set: always answered, and the key is dropped whatever the mode.
  EXPECT_EQ(Send("ms keep 2000000 q MA\r\n" + huge + "\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  EXPECT_EQ(Send("get keep\r\n"), "END\r\n");
  EXPECT_EQ(store_.stats().store_too_large, 6u);
}

TEST_F(ProtocolTest, ItemSizeBoundaryMatchesMemcached) {
  const std::string at_limit(1048576, 'y');
  EXPECT_EQ(Send("set k 0 0 1048576\r\n" + at_limit + "\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  const std::string fits(1048576 - Store::kItemHeaderSize - 1, 'y');
  EXPECT_EQ(Send("set k 0 0 " + std::to_string(fits.size()) + "\r\n" + fits + "\r\n"),
            "STORED\r\n");
}

TEST_F(ProtocolTest, OverLongLineClosesTheConnection) {
  EXPECT_EQ(Send(std::string(2048, 'x')), "");
  EXPECT_FALSE(session_.closed());
  EXPECT_EQ(Send("x"), "");  // 2049 bytes and still no end of line
  EXPECT_TRUE(session_.closed());
  Request request;
  EXPECT_EQ(session_.parser().Next(&request), ParseStatus::kClose);
}

TEST_F(ProtocolTest, LineLimitAppliesWhetherOrNotTheNewlineArrived) {
  Session at_limit(&store_);
  EXPECT_EQ(at_limit.Send(std::string(2048, 'x') + "\r\nversion\r\n"),
            "ERROR\r\nVERSION 1.6.18\r\n");  // 2048 + "\r" is still within the limit
  Session over(&store_);
  EXPECT_EQ(over.Send(std::string(2050, 'x') + "\r\nversion\r\n"), "");
  EXPECT_TRUE(over.closed());
}

TEST_F(ProtocolTest, LongMultiGetLinesAreAllowed) {
  Send("set key7 0 0 1\r\n7\r\n");
  std::string line = "get";
  for (int i = 0; i < 500; ++i) line += " key" + std::to_string(i);
  ASSERT_GT(line.size(), 2048u);
  EXPECT_EQ(Send(line + "\r\n"), "VALUE key7 0 1\r\n7\r\nEND\r\n");
  Session small(&store_, ParserOptions{.max_retrieval_line_length = 1000});
  EXPECT_EQ(small.Send(line + "\r\n"), "");
  EXPECT_TRUE(small.closed());
}

// --- Meta commands -------------------------------------------------------------------------

TEST_F(ProtocolTest, MetaGet) {
  EXPECT_EQ(Send("ms m 2 F5 T0\r\nhi\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m v\r\n"), "VA 2\r\nhi\r\n");
  EXPECT_EQ(Send("mg m s v f t c k Oabc q\r\n"), "VA 2 s2 f5 t-1 c1 km Oabc\r\nhi\r\n");
  EXPECT_EQ(Send("mg m v h l\r\n"), "VA 2 h1 l0\r\nhi\r\n");
  EXPECT_EQ(Send("mg miss v\r\n"), "EN\r\n");
  EXPECT_EQ(Send("mg miss v q\r\n"), "");
  EXPECT_EQ(Send("mg miss v k Oxy\r\n"), "EN kmiss Oxy\r\n");
  EXPECT_EQ(Send("mg m t T30\r\n"), "HD t-1\r\n");  // t before T: the old TTL
  EXPECT_EQ(Send("mg m T40 t\r\n"), "HD t40\r\n");
  EXPECT_EQ(Send("mg m u P/x Lpath v\r\n"), "VA 2\r\nhi\r\n");
  EXPECT_EQ(Send("mg m q\r\n"), "HD\r\n");  // q hides only EN
}

TEST_F(ProtocolTest, MetaGetErrors) {
  EXPECT_EQ(Send("mg\r\n"), "ERROR\r\n");
  EXPECT_EQ(Send("mg m k v k\r\n"), "CLIENT_ERROR duplicate flag\r\n");
  EXPECT_EQ(Send("mg m z\r\n"), "CLIENT_ERROR invalid flag\r\n");
  EXPECT_EQ(Send("mg m Tabc\r\n"), "CLIENT_ERROR bad token in command line format\r\n");
  EXPECT_EQ(Send("mg m Nx v\r\n"), "CLIENT_ERROR bad token in command line format\r\n");
  EXPECT_EQ(Send("mg m Fx v\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("mg m O" + std::string(31, 'a') + "\r\n"), "EN O" + std::string(31, 'a') + "\r\n");
  EXPECT_EQ(Send("mg m O" + std::string(32, 'a') + "\r\n"),
            "CLIENT_ERROR opaque token too long\r\n");
  EXPECT_EQ(Send("mg m 1 2 3 4 5 6 7 8 9 a b c d e f g h i j\r\n"),
            "CLIENT_ERROR options flags are too long\r\n");
  EXPECT_EQ(Send("mg m3 b v\r\n"), "CLIENT_ERROR error decoding key\r\n");
}

TEST_F(ProtocolTest, MetaGetVivifyAndRecache) {
  EXPECT_EQ(Send("mg viv N30 v c t\r\n"), "VA 0 c1 t30 W\r\n\r\n");
  EXPECT_EQ(Send("mg viv N30 v c t\r\n"), "VA 0 c1 t30 Z\r\n\r\n");
  Send("set m 0 30 2\r\nhi\r\n");
  EXPECT_EQ(Send("mg m R20 t\r\n"), "HD t30\r\n");
  clock_.Advance(absl::Seconds(15));
  EXPECT_EQ(Send("mg m R20 t\r\n"), "HD t15 W\r\n");
  EXPECT_EQ(Send("mg m R20 t\r\n"), "HD t15 Z\r\n");
  EXPECT_EQ(store_.stats().get_hits, 5u);
}

TEST_F(ProtocolTest, MetaTtlFlagsApplyInRequestOrder) {
  // Vivified with N30, then T50 overrides it; 't' before T would show the N value.
  EXPECT_EQ(Send("mg b N30 s Oop T50\r\n"), "HD s0 Oop W\r\n");
  EXPECT_EQ(Send("mg b N30 k s t\r\n"), "HD kb s0 t50 Z\r\n");
  EXPECT_EQ(Send("mg c N30 t T50 t\r\n"), "CLIENT_ERROR duplicate flag\r\n");
  EXPECT_EQ(Send("mg c N30 t T50\r\n"), "HD t30 W\r\n");
  EXPECT_EQ(Send("mg c t\r\n"), "HD t50 Z\r\n");
  // ma: T then N0 on a created item leaves it without expiry, so R finds nothing to
  // recache.
  EXPECT_EQ(Send("ma n T20 N0 v\r\n"), "VA 1\r\n0\r\n");
  EXPECT_EQ(Send("mg n R30 c N30 v\r\n"), "VA 1 c" + Cas("n") + "\r\n0\r\n");
  EXPECT_EQ(Send("ma m N0 T20 t\r\n"), "HD t20\r\n");
  EXPECT_EQ(Send("ma m t T30\r\n"), "HD t20\r\n");
  EXPECT_EQ(Send("mg m t\r\n"), "HD t30\r\n");
}

TEST_F(ProtocolTest, MetaSet) {
  EXPECT_EQ(Send("ms m2 2 c k Oop\r\nhi\r\n"), "HD c1 km2 Oop\r\n");
  EXPECT_EQ(Send("ms m2 2 q\r\nhi\r\n"), "");
  EXPECT_EQ(Send("ms m2 2 ME q c k Oz\r\nhi\r\n"), "NS c0 km2 Oz\r\n");
  EXPECT_EQ(Send("ms m2 2 MA\r\nzz\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m2 v\r\n"), "VA 4\r\nhizz\r\n");
  EXPECT_EQ(Send("ms m2 2 MP\r\naa\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m2 v c\r\n"), "VA 6 c" + Cas("m2") + "\r\naahizz\r\n");
  EXPECT_EQ(Send("ms m2 2 C1\r\nbb\r\n"), "EX\r\n");
  EXPECT_EQ(Send("ms m2 2 MR C" + Cas("m2") + " c\r\nbb\r\n"), "HD c5\r\n");
  EXPECT_EQ(Send("ms nope 2 C1\r\nbb\r\n"), "NF\r\n");
  EXPECT_EQ(Send("ms nope 2 MR\r\nbb\r\n"), "NS\r\n");
  EXPECT_EQ(Send("ms nope 2 MA\r\nbb\r\n"), "NS\r\n");
  EXPECT_EQ(Send("ms nope 2 ME C99\r\nbb\r\n"), "HD\r\n");  // add ignores the CAS
  EXPECT_EQ(Send("ms m2 2 v\r\nbb\r\n"), "HD\r\n");
  EXPECT_EQ(Send("ms m2 2 F9 T60\r\nbb\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m2 f t v\r\n"), "VA 2 f9 t60\r\nbb\r\n");
  EXPECT_EQ(Send("ms m2 2 T-1\r\nbb\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg m2 v\r\n"), "EN\r\n");
}

TEST_F(ProtocolTest, MetaSetErrors) {
  // Errors found in the flags swallow the data block; errors before them do not.
  EXPECT_EQ(Send("ms m2 2 MX\r\nbb\r\n"), "CLIENT_ERROR invalid mode for ms M token\r\n");
  EXPECT_EQ(Send("ms m2 2 MEE\r\nbb\r\n"), "CLIENT_ERROR incorrect length for M token\r\n");
  EXPECT_EQ(Send("ms m2 2 z\r\nbb\r\n"), "CLIENT_ERROR invalid flag\r\n");
  EXPECT_EQ(Send("ms m2 2 Fabc\r\nbb\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("ms m2 2 c c\r\nbb\r\n"), "CLIENT_ERROR duplicate flag\r\n");
  EXPECT_EQ(Send("ms m2 1 O" + std::string(32, 'a') + "\r\nx\r\n"),
            "CLIENT_ERROR opaque token too long\r\n");
  EXPECT_EQ(Send("ms !!! 1 b\r\nx\r\n"), "CLIENT_ERROR error decoding key\r\n");
  EXPECT_EQ(Send("ms m2\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("ms m2 abc\r\nbb\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n");
  EXPECT_EQ(Send("ms m2 -1\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("ms m3 1 1 2 3 4 5 6 7 8 9 a b c d e f g h i j\r\nx\r\n"),
            "CLIENT_ERROR options flags too long\r\nERROR\r\n");
  EXPECT_EQ(Send("mg m2\r\n"), "EN\r\n");  // nothing was stored
}

TEST_F(ProtocolTest, MetaBase64Keys) {
  // "bTM=" is base64 for "m3".
  EXPECT_EQ(Send("ms bTM= 1 b k c\r\nx\r\n"), "HD kbTM= b c1\r\n");
  EXPECT_EQ(Send("get m3\r\n"), "VALUE m3 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(Send("mg bTM= b k v\r\n"), "VA 1 kbTM= b\r\nx\r\n");
  EXPECT_EQ(Send("mg bTM= k v\r\n"), "EN kbTM=\r\n");
  EXPECT_EQ(Send("mg m3 k v\r\n"), "VA 1 kbTM= b\r\nx\r\n");
  EXPECT_EQ(Send("me bTM= b\r\n"), "ME bTM= exp=-1 la=0 cas=1 fetch=yes cls=1 size=43\r\n");
  EXPECT_EQ(Send("md bTM= b q\r\n"), "");
  EXPECT_EQ(Send("get m3\r\n"), "END\r\n");
}

TEST_F(ProtocolTest, MetaDelete) {
  Send("ms d 1\r\nx\r\n");
  EXPECT_EQ(Send("md d q\r\n"), "");
  EXPECT_EQ(Send("md d\r\n"), "NF\r\n");
  EXPECT_EQ(Send("md d q k Oo\r\n"), "NF kd Oo\r\n");
  Send("ms d 1\r\nx\r\n");
  EXPECT_EQ(Send("md d C1\r\n"), "EX\r\n");
  EXPECT_EQ(Send("md d I T30\r\n"), "HD\r\n");
  EXPECT_EQ(Send("mg d v t c\r\n"), "VA 1 t30 c3 X W\r\nx\r\n");
  EXPECT_EQ(Send("mg d v t c\r\n"), "VA 1 t30 c3 Z X\r\nx\r\n");
  EXPECT_EQ(Send("ms d 1 C3 c\r\ny\r\n"), "HD c4\r\n");
  EXPECT_EQ(Send("mg d v\r\n"), "VA 1\r\ny\r\n");  // a real write clears the stale mark
  EXPECT_EQ(Send("md d C4 k\r\n"), "HD kd\r\n");
  EXPECT_EQ(Send("md d z\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n");
  EXPECT_EQ(Send("md d Cx\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n");
  EXPECT_EQ(Send("md\r\n"), "ERROR\r\n");
}

TEST_F(ProtocolTest, MetaArithmetic) {
  EXPECT_EQ(Send("ma cnt\r\n"), "NF\r\n");
  EXPECT_EQ(Send("ma cnt q\r\n"), "NF\r\n");
  EXPECT_EQ(Send("ma cnt N0 J10 v\r\n"), "VA 2\r\n10\r\n");
  EXPECT_EQ(Send("ma cnt v\r\n"), "VA 2\r\n11\r\n");
  EXPECT_EQ(Send("ma cnt MD D5 v t c k Oo\r\n"), "VA 1 t-1 c3 kcnt Oo\r\n6\r\n");
  EXPECT_EQ(Send("ma cnt MD D100 v\r\n"), "VA 1\r\n0\r\n");
  EXPECT_EQ(Send("ma cnt q D3\r\n"), "");
  EXPECT_EQ(Send("mg cnt v\r\n"), "VA 2\r\n3 \r\n");
  EXPECT_EQ(Send("ma cnt Dabc\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n");
  EXPECT_EQ(Send("ma cnt Jabc\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n");
  EXPECT_EQ(Send("ma cnt Mx\r\n"), "CLIENT_ERROR invalid mode for ma M token\r\n");
  EXPECT_EQ(Send("ma cnt C1 v\r\n"), "EX\r\n");
  EXPECT_EQ(Send("ma cnt T100 t v\r\n"), "VA 1 t100\r\n4\r\n");
  EXPECT_EQ(Send("ma cnt t T100\r\n"), "HD t100\r\n");
  EXPECT_EQ(Send("ma cnt M- D4 v\r\n"), "VA 1\r\n1\r\n");
  EXPECT_EQ(Send("ma cnt M+\r\n"), "HD\r\n");
  EXPECT_EQ(Send("ma x N0 q\r\n"), "HD\r\n");  // created: answered despite q
  Send("set d 0 0 1\r\nx\r\n");
  EXPECT_EQ(Send("ma d\r\n"), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  EXPECT_EQ(Send("ma\r\n"), "ERROR\r\n");
}

TEST_F(ProtocolTest, MetaNoopAndDebug) {
  EXPECT_EQ(Send("mn\r\n"), "MN\r\n");
  EXPECT_EQ(Send("mn x\r\n"), "MN\r\n");
  Send("set cnt 0 100 2\r\n10\r\n");
  EXPECT_EQ(Send("me cnt\r\n"), "ME cnt exp=-100 la=0 cas=1 fetch=no cls=1 size=45\r\n");
  Send("get cnt\r\n");
  EXPECT_EQ(Send("me cnt x y z\r\n"), "ME cnt exp=-100 la=0 cas=1 fetch=yes cls=1 size=45\r\n");
  EXPECT_EQ(Send("me nope\r\n"), "EN\r\n");
  EXPECT_EQ(Send("me\r\n"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(Send("me cnt b\r\n"), "CLIENT_ERROR bad command line format\r\n");
}

// --- Stats ------------------------------------------------------------------------------------

// "stats settings": memcached's lines where they apply, then evactor's own options.
TEST(StatsSettingsTest, ReportTheConfiguration) {
  ServerStats server;
  server.max_connections = 10;
  server.tcp_port = 11311;
  server.verbosity = 2;
  server.domain_socket = "/tmp/mc.sock";
  server.threads = 3;
  server.item_size_max = 4096;
  server.store_layout = "partitioned";
  server.stripes = 0;
  server.lru_bump_interval = 5;
  server.reuse_port = true;
  server.affinity = "off";
  server.rebalance_ms = 250;
  server.shard_cpus = "none";
  server.umask = 0770;
  server.reqs_per_event = 5;
  server.tcp_backlog = 128;
  server.binding_protocol = "ascii";
  server.flush_enabled = false;
  server.idle_timeout = 30;
  server.shutdown_command = true;
  server.max_unsent_output = 65536;
  StoreStats store;
  store.limit_maxbytes = 1 << 20;
  std::string out;
  AppendStats(StatsGroup::kSettings, server, store, &out);
  EXPECT_EQ(out,
            "STAT maxbytes 1048576\r\nSTAT maxconns 10\r\nSTAT tcpport 11311\r\n"
            "STAT verbosity 2\r\nSTAT evictions on\r\nSTAT domain_socket /tmp/mc.sock\r\n"
            "STAT umask 770\r\nSTAT num_threads 3\r\nSTAT reqs_per_event 5\r\n"
            "STAT cas_enabled yes\r\nSTAT tcp_backlog 128\r\nSTAT binding_protocol ascii\r\n"
            "STAT item_size_max 4096\r\nSTAT flush_enabled no\r\nSTAT idle_timeout 30\r\n"
            "STAT shutdown_command yes\r\nSTAT store partitioned\r\nSTAT stripes 0\r\n"
            "STAT lru_bump_interval 5\r\nSTAT reuse_port yes\r\nSTAT affinity off\r\n"
            "STAT rebalance_ms 250\r\nSTAT max_unsent_output 65536\r\n"
            "STAT shard_cpus none\r\nEND\r\n");
}

TEST_F(ProtocolTest, Stats) {
  Send("set a 0 0 1\r\nx\r\n");
  Send("get a b\r\n");
  const std::string stats = Send("stats\r\n");
  EXPECT_EQ(stats.rfind("STAT pid 0\r\n", 0), 0u);
  EXPECT_NE(stats.find("STAT time 1700000000\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT version 1.6.18\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT rusage_user 0.000000\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT cmd_get 2\r\nSTAT cmd_set 1\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT get_hits 1\r\nSTAT get_misses 1\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT curr_items 1\r\nSTAT total_items 1\r\n"), std::string::npos);
  EXPECT_NE(stats.find("STAT bytes " + std::to_string(Store::ItemCharge(1, 1)) + "\r\n"),
            std::string::npos);
  EXPECT_NE(stats.find("STAT limit_maxbytes 67108864\r\n"), std::string::npos);
  EXPECT_EQ(stats.substr(stats.size() - 5), "END\r\n");

  EXPECT_NE(Send("stats settings\r\n").find("STAT item_size_max 1048576\r\n"), std::string::npos);
  EXPECT_EQ(Send("stats items\r\n"),
            "STAT items:1:number 1\r\nSTAT items:1:evicted 0\r\n"
            "STAT items:1:evicted_unfetched 0\r\nSTAT items:1:expired_unfetched 0\r\n"
            "STAT items:1:reclaimed 0\r\nEND\r\n");
  EXPECT_EQ(Send("stats slabs\r\n"), "STAT active_slabs 1\r\nSTAT total_malloced " +
                                         std::to_string(Store::ItemCharge(1, 1)) + "\r\nEND\r\n");
  EXPECT_EQ(Send("stats sizes\r\n"), "STAT sizes_status disabled\r\nEND\r\n");
  EXPECT_EQ(Send("stats reset\r\n"), "RESET\r\n");
  EXPECT_EQ(store_.stats().cmd_get, 0u);
}

TEST(AppendStatsTest, UsesTheServersNumbersAndTheSummedStore) {
  ServerStats server;
  server.pid = 42;
  server.uptime_seconds = 7;
  server.rusage_user = absl::Microseconds(1500042);
  server.curr_connections = 3;
  server.threads = 4;
  StoreStats store;
  store.get_hits = 9;
  std::string out;
  AppendStats(StatsGroup::kGeneral, server, store, &out);
  EXPECT_EQ(out.rfind("STAT pid 42\r\nSTAT uptime 7\r\n", 0), 0u);
  EXPECT_NE(out.find("STAT rusage_user 1.500042\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT curr_connections 3\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT threads 4\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT get_hits 9\r\n"), std::string::npos);
}

// --- Sharding support ---------------------------------------------------------------------------

TEST(RouteTest, ClassifiesEveryCommand) {
  struct Case {
    std::string_view line;
    Route route;
  };
  const Case cases[] = {
      {"get a b\r\n", Route::kKeys},
      {"gats 1 a\r\n", Route::kKeys},
      {"set a 0 0 0\r\n\r\n", Route::kKey},
      {"cas a 0 0 0 1\r\n\r\n", Route::kKey},
      {"delete a\r\n", Route::kKey},
      {"incr a 1\r\n", Route::kKey},
      {"touch a 1\r\n", Route::kKey},
      {"mg a v\r\n", Route::kKey},
      {"ms a 0\r\n\r\n", Route::kKey},
      {"md a\r\n", Route::kKey},
      {"ma a\r\n", Route::kKey},
      {"me a\r\n", Route::kKey},
      {"flush_all\r\n", Route::kAllShards},
      {"stats reset\r\n", Route::kAllShards},
      {"stats\r\n", Route::kStats},
      {"stats items\r\n", Route::kStats},
      {"version\r\n", Route::kLocal},
      {"verbosity 1\r\n", Route::kLocal},
      {"quit\r\n", Route::kLocal},
      {"mn\r\n", Route::kLocal},
      {"bogus\r\n", Route::kLocal},
      {"set a 0 0 5000000\r\n", Route::kKey},
  };
  for (const Case& c : cases) {
    RequestParser parser;
    parser.Feed(c.line);
    Request request;
    ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest) << c.line;
    EXPECT_EQ(RouteOf(request), c.route) << c.line;
  }
}

TEST(ShardedGetTest, KeysSplitAcrossStoresAnswerWithOneEnd) {
  FakeClock clock;
  Store shard0(StoreOptions{.cas_offset = 1, .cas_stride = 2, .clock = &clock});
  Store shard1(StoreOptions{.cas_offset = 2, .cas_stride = 2, .clock = &clock});
  shard0.Set("a", "A", 0, 0);
  shard1.Set("b", "B", 0, 0);
  RequestParser parser;
  parser.Feed("gets a b c\r\n");
  Request request;
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  // The server groups the keys by owner; here a -> shard0, b and c -> shard1.
  OwnedRequest part0(request);
  part0.mutable_request().keys = {part0.request().keys[0]};
  OwnedRequest part1(request);
  part1.mutable_request().keys = {part1.request().keys[1], part1.request().keys[2]};
  std::string out0, out1;
  Execute(part0.request(), &shard0, &out0, {.write_end = false});
  Execute(part1.request(), &shard1, &out1, {.write_end = false});
  EXPECT_EQ(out0, "VALUE a 0 1 1\r\nA\r\n");
  EXPECT_EQ(out1, "VALUE b 0 1 2\r\nB\r\n");
  EXPECT_EQ(out0 + out1 + std::string(kEnd), "VALUE a 0 1 1\r\nA\r\nVALUE b 0 1 2\r\nB\r\nEND\r\n");
}

TEST(ExecuteOptionsTest, VersionIsConfigurable) {
  RequestParser parser;
  parser.Feed("version\r\n");
  Request request;
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  std::string out;
  Execute(request, nullptr, &out, {.version = "1.6.18-evactor"});
  EXPECT_EQ(out, "VERSION 1.6.18-evactor\r\n");
}

}  // namespace
}  // namespace evactor::memcached
