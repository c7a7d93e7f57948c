#include "examples/memcached/binary_protocol.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "examples/memcached/protocol.h"
#include "examples/memcached/store.h"
#include "gtest/gtest.h"

namespace evactor::memcached {
namespace {

class FakeClock : public Clock {
 public:
  absl::Time Now() const override { return now; }
  absl::Time now = absl::FromUnixSeconds(1700000000);
};

void Be(std::string* s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
std::string Be32(uint32_t v) {
  std::string s;
  Be(&s, v, 4);
  return s;
}
std::string Be64(uint64_t v) {
  std::string s;
  Be(&s, v, 8);
  return s;
}

// A packet, written independently of the code under test.
std::string Packet(uint8_t magic, uint8_t opcode, std::string_view key, std::string_view extras,
                   std::string_view value, uint32_t opaque, uint64_t cas, uint16_t status = 0) {
  std::string s;
  s.push_back(static_cast<char>(magic));
  s.push_back(static_cast<char>(opcode));
  Be(&s, key.size(), 2);
  s.push_back(static_cast<char>(extras.size()));
  s.push_back(0);
  Be(&s, status, 2);
  Be(&s, extras.size() + key.size() + value.size(), 4);
  Be(&s, opaque, 4);
  Be(&s, cas, 8);
  s.append(extras);
  s.append(key);
  s.append(value);
  return s;
}
std::string Req(uint8_t op, std::string_view key = {}, std::string_view extras = {},
                std::string_view value = {}, uint64_t cas = 0, uint32_t opaque = 0xdeadbeef) {
  return Packet(0x80, op, key, extras, value, opaque, cas);
}
std::string Resp(uint8_t op, uint16_t status, uint64_t cas = 0, std::string_view extras = {},
                 std::string_view key = {}, std::string_view value = {},
                 uint32_t opaque = 0xdeadbeef) {
  return Packet(0x81, op, key, extras, value, opaque, cas, status);
}
std::string Err(uint8_t op, uint16_t status, std::string_view text) {
  return Resp(op, status, 0, {}, {}, text);
}
std::string SetExtras(uint32_t flags, uint32_t exptime) { return Be32(flags) + Be32(exptime); }
std::string IncrExtras(uint64_t delta, uint64_t initial, uint32_t exptime) {
  return Be64(delta) + Be64(initial) + Be32(exptime);
}

const std::string kNotFound = "Not found";
const std::string kExists = "Data exists for key.";
const std::string kNotStored = "Not stored.";

class BinaryProtocolTest : public ::testing::Test {
 protected:
  BinaryProtocolTest() : store_({.max_bytes = 1 << 20, .max_item_size = 1024, .clock = &clock_}) {}

  struct Result {
    std::string out;
    bool closed = false;         // ExecuteBinary said close (quit, invalid)
    bool parser_closed = false;  // Next said kClose
  };

  // Feeds the chunks one after the other, executing every complete request.
  Result RunChunks(const std::vector<std::string>& chunks) {
    BinaryParser parser({.max_item_size = 1024, .max_body_length = 4096});
    Result result;
    for (const std::string& chunk : chunks) {
      parser.Feed(chunk);
      BinaryRequest request;
      while (!result.closed) {
        const ParseStatus status = parser.Next(&request);
        if (status == ParseStatus::kNeedMore) break;
        if (status == ParseStatus::kClose) {
          result.parser_closed = true;
          return result;
        }
        Store* store = RouteOf(request) == Route::kLocal ? nullptr : target_;
        if (ExecuteBinary(request, store, &result.out) == Disposition::kClose) {
          result.closed = true;
        }
      }
      if (result.closed) break;
    }
    return result;
  }
  Result Run(const std::string& bytes) { return RunChunks({bytes}); }
  std::string Out(const std::string& bytes) { return Run(bytes).out; }

  FakeClock clock_;
  Store store_;
  Store* target_ = &store_;
};

TEST_F(BinaryProtocolTest, NoopExactBytes) {
  const std::string request(
      "\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04"
      "\x00\x00\x00\x00\x00\x00\x00\x00",
      24);
  const std::string response(
      "\x81\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04"
      "\x00\x00\x00\x00\x00\x00\x00\x00",
      24);
  EXPECT_EQ(Out(request), response);
}

TEST_F(BinaryProtocolTest, SetThenGetExactBytes) {
  // SET "k" flags 7 exptime 0 value "v", then GET "k".
  const std::string set(
      "\x80\x01\x00\x01\x08\x00\x00\x00\x00\x00\x00\x0a\xaa\xbb\xcc\xdd"
      "\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x07\x00\x00\x00\x00kv",
      34);
  const std::string get(
      "\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01"
      "\x00\x00\x00\x00\x00\x00\x00\x00k",
      25);
  const std::string expected(
      "\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xaa\xbb\xcc\xdd"
      "\x00\x00\x00\x00\x00\x00\x00\x01"
      "\x81\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x01"
      "\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x07v",
      53);
  EXPECT_EQ(Out(set + get), expected);
}

TEST_F(BinaryProtocolTest, GetVariants) {
  EXPECT_EQ(Out(Req(0x00, "k")), Err(0x00, 1, kNotFound));
  EXPECT_EQ(Out(Req(0x0c, "k")), Resp(0x0c, 1, 0, {}, "k"));  // GETK miss: key, no text
  EXPECT_EQ(Out(Req(0x09, "k") + Req(0x0d, "k")), "");        // quiet misses
  EXPECT_EQ(Out(Req(0x01, "k", SetExtras(9, 0), "val")), Resp(0x01, 0, 1));
  const std::string flags = Be32(9);
  EXPECT_EQ(Out(Req(0x00, "k")), Resp(0x00, 0, 1, flags, {}, "val"));
  EXPECT_EQ(Out(Req(0x09, "k")), Resp(0x09, 0, 1, flags, {}, "val"));
  EXPECT_EQ(Out(Req(0x0c, "k")), Resp(0x0c, 0, 1, flags, "k", "val"));
  EXPECT_EQ(Out(Req(0x0d, "k")), Resp(0x0d, 0, 1, flags, "k", "val"));
  const StoreStats stats = store_.stats();
  EXPECT_EQ(stats.get_hits, 4u);
  EXPECT_EQ(stats.get_misses, 4u);
}

TEST_F(BinaryProtocolTest, StorageSemantics) {
  const std::string e = SetExtras(0, 0);
  EXPECT_EQ(Out(Req(0x03, "k", e, "x")), Err(0x03, 1, kNotFound));             // replace missing
  EXPECT_EQ(Out(Req(0x02, "k", e, "a")), Resp(0x02, 0, 1));                    // add
  EXPECT_EQ(Out(Req(0x02, "k", e, "b")), Err(0x02, 2, kExists));               // add existing
  EXPECT_EQ(Out(Req(0x03, "k", e, "c")), Resp(0x03, 0, 2));                    // replace
  EXPECT_EQ(Out(Req(0x01, "k", e, "d", /*cas=*/7)), Err(0x01, 2, kExists));    // cas mismatch
  EXPECT_EQ(Out(Req(0x01, "k", e, "d", /*cas=*/2)), Resp(0x01, 0, 3));         // cas match
  EXPECT_EQ(Out(Req(0x01, "z", e, "d", /*cas=*/2)), Err(0x01, 1, kNotFound));  // cas missing
  EXPECT_EQ(Out(Req(0x03, "k", e, "f", /*cas=*/3)), Resp(0x03, 0, 4));
  // Quiet variants: success is silent, errors are not.
  EXPECT_EQ(Out(Req(0x11, "q", e, "1") + Req(0x12, "r", e, "1") + Req(0x13, "q", e, "2")), "");
  EXPECT_EQ(Out(Req(0x12, "q", e, "3")), Err(0x12, 2, kExists));
  EXPECT_EQ(Out(Req(0x13, "none", e, "3")), Err(0x13, 1, kNotFound));
  EXPECT_EQ(store_.Peek("q")->value, "2");
  EXPECT_EQ(store_.Peek("k")->value, "f");
}

TEST_F(BinaryProtocolTest, AppendPrepend) {
  EXPECT_EQ(Out(Req(0x0e, "k", {}, "x")), Err(0x0e, 5, kNotStored));
  EXPECT_EQ(Out(Req(0x19, "k", {}, "x")), Err(0x19, 5, kNotStored));
  EXPECT_EQ(Out(Req(0x01, "k", SetExtras(3, 0), "mid")), Resp(0x01, 0, 1));
  EXPECT_EQ(Out(Req(0x0e, "k", {}, ">")), Resp(0x0e, 0, 2));
  EXPECT_EQ(Out(Req(0x0f, "k", {}, "<")), Resp(0x0f, 0, 3));
  EXPECT_EQ(Out(Req(0x0e, "k", {}, "!", /*cas=*/1)), Err(0x0e, 2, kExists));
  EXPECT_EQ(Out(Req(0x19, "k", {}, "a") + Req(0x1a, "k", {}, "p")), "");
  EXPECT_EQ(Out(Req(0x00, "k")), Resp(0x00, 0, 5, Be32(3), {}, "p<mid>a"));
}

TEST_F(BinaryProtocolTest, Delete) {
  EXPECT_EQ(Out(Req(0x04, "k")), Err(0x04, 1, kNotFound));
  EXPECT_EQ(Out(Req(0x14, "k")), Err(0x14, 1, kNotFound));
  store_.Set("k", "v", 0, 0);  // cas 1
  EXPECT_EQ(Out(Req(0x04, "k", {}, {}, /*cas=*/9)), Err(0x04, 2, kExists));
  EXPECT_EQ(Out(Req(0x04, "k", {}, {}, /*cas=*/1)), Resp(0x04, 0, 0));
  store_.Set("k", "v", 0, 0);
  EXPECT_EQ(Out(Req(0x14, "k")), "");
  EXPECT_FALSE(store_.Peek("k"));
}

TEST_F(BinaryProtocolTest, IncrDecr) {
  const uint32_t kNoCreate = 0xffffffff;
  EXPECT_EQ(Out(Req(0x05, "n", IncrExtras(1, 5, kNoCreate))), Err(0x05, 1, kNotFound));
  EXPECT_EQ(Out(Req(0x15, "n", IncrExtras(1, 5, kNoCreate))), Err(0x15, 1, kNotFound));
  // Created with the initial value (not incremented).
  EXPECT_EQ(Out(Req(0x05, "n", IncrExtras(1, 5, 0))), Resp(0x05, 0, 1, {}, {}, Be64(5)));
  EXPECT_EQ(store_.Peek("n")->value, "5");
  EXPECT_EQ(Out(Req(0x05, "n", IncrExtras(10, 0, 0))), Resp(0x05, 0, 2, {}, {}, Be64(15)));
  EXPECT_EQ(Out(Req(0x06, "n", IncrExtras(20, 0, 0))), Resp(0x06, 0, 3, {}, {}, Be64(0)));
  EXPECT_EQ(Out(Req(0x06, "m", IncrExtras(1, 9, 0))), Resp(0x06, 0, 4, {}, {}, Be64(9)));
  // CAS compare.
  EXPECT_EQ(Out(Req(0x05, "n", IncrExtras(1, 0, 0), {}, /*cas=*/99)), Err(0x05, 2, kExists));
  EXPECT_EQ(Out(Req(0x05, "n", IncrExtras(1, 0, 0), {}, /*cas=*/3)),
            Resp(0x05, 0, 5, {}, {}, Be64(1)));
  // Quiet.
  EXPECT_EQ(Out(Req(0x15, "n", IncrExtras(1, 0, 0)) + Req(0x16, "n", IncrExtras(2, 0, 0))), "");
  EXPECT_EQ(store_.Peek("n")->value, "0 ");  // written in place, space-padded
  // Wraps at 2^64.
  store_.Set("big", "18446744073709551615", 0, 0);
  EXPECT_EQ(Out(Req(0x05, "big", IncrExtras(2, 0, 0))), Resp(0x05, 0, 9, {}, {}, Be64(1)));
  // Non-numeric.
  store_.Set("s", "abc", 0, 0);
  const std::string text = "Non-numeric server-side value for incr or decr";
  EXPECT_EQ(Out(Req(0x05, "s", IncrExtras(1, 0, 0))), Err(0x05, 6, text));
  EXPECT_EQ(Out(Req(0x16, "s", IncrExtras(1, 0, 0))), Err(0x16, 6, text));
}

TEST_F(BinaryProtocolTest, TouchAndGat) {
  EXPECT_EQ(Out(Req(0x1c, "k", Be32(100))), Err(0x1c, 1, kNotFound));
  EXPECT_EQ(Out(Req(0x1e, "k", Be32(100)) + Req(0x24, "k", Be32(100))), "");
  store_.Set("k", "12", 7, 0);  // cas 1
  EXPECT_EQ(Out(Req(0x1c, "k", Be32(100))), Resp(0x1c, 0, 1, Be32(7)));
  EXPECT_EQ(Out(Req(0x1d, "k", Be32(100))), Resp(0x1d, 0, 1, Be32(7), {}, "12"));
  EXPECT_EQ(Out(Req(0x23, "k", Be32(100))), Resp(0x23, 0, 1, Be32(7), "k", "12"));
  EXPECT_EQ(Out(Req(0x24, "k", Be32(100))), Resp(0x24, 0, 1, Be32(7), "k", "12"));
  clock_.now += absl::Seconds(101);
  EXPECT_EQ(Out(Req(0x00, "k")), Err(0x00, 1, kNotFound));
}

TEST_F(BinaryProtocolTest, QuitFlushNoopVersion) {
  Result r = Run(Req(0x0a) + Req(0x07) + Req(0x0a));
  EXPECT_EQ(r.out, Resp(0x0a, 0) + Resp(0x07, 0));
  EXPECT_TRUE(r.closed);
  r = Run(Req(0x17) + Req(0x0a));
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.closed);

  store_.Set("a", "1", 0, 0);
  EXPECT_EQ(Out(Req(0x08)), Resp(0x08, 0));
  EXPECT_FALSE(store_.Peek("a"));
  store_.Set("a", "1", 0, 0);
  EXPECT_EQ(Out(Req(0x18)), "");
  EXPECT_FALSE(store_.Peek("a"));
  store_.Set("a", "1", 0, 0);
  EXPECT_EQ(Out(Req(0x08, {}, Be32(10))), Resp(0x08, 0));  // delayed flush
  EXPECT_TRUE(store_.Peek("a"));
  clock_.now += absl::Seconds(11);
  EXPECT_FALSE(store_.Peek("a"));

  EXPECT_EQ(Out(Req(0x0b)), Resp(0x0b, 0, 0, {}, {}, kDefaultVersion));
  // Request CAS is not echoed by responses that carry none.
  EXPECT_EQ(Out(Req(0x0a, {}, {}, {}, /*cas=*/5)), Resp(0x0a, 0));
}

// memcached's -F: FLUSH and FLUSHQ answer status 0x20 ("Auth failure.", quiet or not)
// and flush nothing.
TEST_F(BinaryProtocolTest, FlushRefusedWhenDisabled) {
  store_.Set("a", "1", 0, 0);
  for (const uint8_t op : {uint8_t{0x08}, uint8_t{0x18}}) {
    BinaryParser parser({.max_item_size = 1024, .max_body_length = 4096});
    parser.Feed(Req(op));
    BinaryRequest request;
    ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
    std::string out;
    EXPECT_EQ(ExecuteBinary(request, nullptr, &out, {.flush_enabled = false}),
              Disposition::kContinue);
    EXPECT_EQ(out, Resp(op, 0x20, 0, {}, {}, "Auth failure."));
    EXPECT_TRUE(store_.Peek("a"));
  }
}

TEST_F(BinaryProtocolTest, Stats) {
  store_.Set("a", "1", 0, 0);
  const std::string out = Out(Req(0x10));
  // Every packet is a STAT response with the opaque; the last one is empty.
  size_t pos = 0;
  int packets = 0;
  bool saw_curr_items = false;
  std::string last;
  while (pos < out.size()) {
    ASSERT_GE(out.size() - pos, 24u);
    EXPECT_EQ(static_cast<uint8_t>(out[pos]), 0x81);
    EXPECT_EQ(out[pos + 1], 0x10);
    EXPECT_EQ(out.substr(pos + 12, 4), Be32(0xdeadbeef));
    const size_t keylen =
        static_cast<uint8_t>(out[pos + 2]) << 8 | static_cast<uint8_t>(out[pos + 3]);
    const size_t bodylen =
        (static_cast<uint8_t>(out[pos + 10]) << 8) | static_cast<uint8_t>(out[pos + 11]);
    const std::string key = out.substr(pos + 24, keylen);
    const std::string value = out.substr(pos + 24 + keylen, bodylen - keylen);
    if (key == "curr_items") {
      saw_curr_items = true;
      EXPECT_EQ(value, "1");
    }
    last = out.substr(pos, 24 + bodylen);
    pos += 24 + bodylen;
    ++packets;
  }
  EXPECT_TRUE(saw_curr_items);
  EXPECT_GT(packets, 10);
  EXPECT_EQ(last, Resp(0x10, 0));

  EXPECT_EQ(Out(Req(0x10, "reset")), Resp(0x10, 0));
  EXPECT_EQ(Out(Req(0x10, "bogus")), Err(0x10, 1, kNotFound));
  std::string ascii;
  AppendStats(StatsGroup::kSettings, ServerStats{}, store_.stats(), &ascii);
  EXPECT_NE(ascii.find("STAT "), std::string::npos);
  const std::string settings = Out(Req(0x10, "settings"));
  EXPECT_GT(settings.size(), 24u);
  EXPECT_EQ(settings.substr(settings.size() - 24), Resp(0x10, 0));
}

TEST_F(BinaryProtocolTest, AppendBinaryStatsConvertsLines) {
  BinaryRequest request;
  request.opcode = 0x10;
  request.opaque = 0xdeadbeef;
  StoreStats stats;
  stats.curr_items = 42;
  std::string out;
  AppendBinaryStats(request, StatsGroup::kGeneral, ServerStats{.pid = 77}, stats, &out);
  EXPECT_EQ(out.substr(0, 24 + 5), Resp(0x10, 0, 0, {}, "pid", "77"));
  EXPECT_NE(out.find(Resp(0x10, 0, 0, {}, "curr_items", "42")), std::string::npos);
  EXPECT_NE(out.find(Resp(0x10, 0, 0, {}, "version", kDefaultVersion)), std::string::npos);
}

TEST_F(BinaryProtocolTest, UnknownOpcode) {
  EXPECT_EQ(
      Out(Req(0x42) + Req(0x42, "k", {}, "zz") + Req(0x0a)),
      Err(0x42, 0x81, "Unknown command") + Err(0x42, 0x81, "Unknown command") + Resp(0x0a, 0));
}

TEST_F(BinaryProtocolTest, InvalidPacketsCloseAfterEinval) {
  const std::string einval = "Invalid arguments";
  struct Case {
    std::string request;
    uint8_t op;
  };
  const std::vector<Case> cases = {
      {Req(0x00, "k", Be32(0)), 0x00},           // get with extras
      {Req(0x00), 0x00},                         // get without key
      {Req(0x01, "k", Be32(0), "v"), 0x01},      // set with 4 extras
      {Req(0x0e, "k", Be32(0), "v"), 0x0e},      // append with extras
      {Req(0x04, "k", {}, "v"), 0x04},           // delete with a value
      {Req(0x05, "k", Be64(1)), 0x05},           // incr with 8 extras
      {Req(0x0a, "k"), 0x0a},                    // noop with key
      {Req(0x0b, {}, {}, "x"), 0x0b},            // version with body
      {Req(0x08, {}, Be64(1)), 0x08},            // flush with 8 extras
      {Req(0x1c, "k"), 0x1c},                    // touch without extras
      {Req(0x00, std::string(251, 'k')), 0x00},  // key too long
  };
  for (const Case& c : cases) {
    Result r = Run(c.request + Req(0x0a));
    EXPECT_EQ(r.out, Err(c.op, 4, einval)) << static_cast<int>(c.op);
    EXPECT_TRUE(r.closed);
  }
  // The longest key is fine.
  EXPECT_EQ(Out(Req(0x00, std::string(250, 'k'))), Err(0x00, 1, kNotFound));
}

TEST_F(BinaryProtocolTest, BadMagicCloses) {
  Result r = Run(Req(0x0a) + Packet(0x81, 0x0a, {}, {}, {}, 0, 0) + Req(0x0a));
  EXPECT_EQ(r.out, Resp(0x0a, 0));
  EXPECT_TRUE(r.parser_closed);
  // Detected from the first byte, before a whole header.
  r = Run("get k\r\n");
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.parser_closed);
}

TEST_F(BinaryProtocolTest, OversizedBodyCloses) {
  Result r = Run(Req(0x42, {}, {}, std::string(5000, 'x')));
  EXPECT_TRUE(r.parser_closed);
  EXPECT_EQ(r.out, "");
}

TEST_F(BinaryProtocolTest, TooLargeValueIsSkippedUnbuffered) {
  store_.Set("k", "old", 0, 0);
  const std::string big(5000, 'x');  // over max_item_size and max_body_length
  const std::string stream = Req(0x01, "k", SetExtras(0, 0), big) + Req(0x0a);
  const std::string expected = Err(0x01, 3, "Too large.") + Resp(0x0a, 0);
  EXPECT_EQ(Out(stream), expected);
  EXPECT_FALSE(store_.Peek("k"));  // set drops the old item
  // Also when the value arrives in pieces.
  std::vector<std::string> chunks;
  for (size_t i = 0; i < stream.size(); i += 700) chunks.push_back(stream.substr(i, 700));
  EXPECT_EQ(RunChunks(chunks).out, expected);
  // Under the parser limit but over the Store's item limit: the Store says too large.
  EXPECT_EQ(Out(Req(0x12, "k", SetExtras(0, 0), std::string(1000, 'y'))),
            Err(0x12, 3, "Too large."));
  EXPECT_EQ(store_.stats().store_too_large, 3u);
}

TEST_F(BinaryProtocolTest, SplitAtEveryByteBoundary) {
  const std::string e = SetExtras(5, 0);
  const std::string stream =
      Req(0x01, "alpha", e, "one") + Req(0x09, "missing") + Req(0x0d, "alpha") +
      Req(0x0e, "alpha", {}, "+") + Req(0x05, "ctr", IncrExtras(3, 10, 0)) +
      Req(0x05, "ctr", IncrExtras(3, 10, 0)) + Req(0x42, "x", {}, "y") + Req(0x04, "nope") +
      Req(0x0c, "alpha") + Req(0x10, "bogus") + Req(0x0b) +
      Req(0x01, "big", e, std::string(2000, 'z')) + Req(0x0a) + Req(0x07) + Req(0x0a);
  const Result whole = Run(stream);
  EXPECT_TRUE(whole.closed);
  ASSERT_GT(whole.out.size(), 24u * 12);
  const auto fresh = [this] {
    return std::make_unique<Store>(
        StoreOptions{.max_bytes = 1 << 20, .max_item_size = 1024, .clock = &clock_});
  };
  for (size_t split = 0; split <= stream.size(); ++split) {
    auto store = fresh();
    target_ = store.get();
    const Result r = RunChunks({stream.substr(0, split), stream.substr(split)});
    EXPECT_EQ(r.out, whole.out) << split;
    EXPECT_TRUE(r.closed);
  }
  // One byte at a time.
  auto store = fresh();
  target_ = store.get();
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  const Result r = RunChunks(bytes);
  EXPECT_EQ(r.out, whole.out);
  target_ = &store_;
}

TEST_F(BinaryProtocolTest, OwnedRequestOutlivesTheBuffer) {
  BinaryParser parser;
  parser.Feed(Req(0x01, "key", SetExtras(3, 60), "value", /*cas=*/4, /*opaque=*/77));
  BinaryRequest request;
  ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
  OwnedBinaryRequest owned(request);
  parser.Feed(std::string(100000, '\x80'));  // moves the buffer
  OwnedBinaryRequest moved = std::move(owned);
  const BinaryRequest& r = moved.request();
  EXPECT_EQ(r.opcode, 0x01);
  EXPECT_EQ(r.opaque, 77u);
  EXPECT_EQ(r.cas, 4u);
  EXPECT_EQ(r.key, "key");
  EXPECT_EQ(r.value, "value");
  EXPECT_EQ(r.extras, SetExtras(3, 60));
  EXPECT_EQ(r.flags, 3u);
  EXPECT_EQ(r.exptime, 60u);
}

TEST_F(BinaryProtocolTest, Routes) {
  BinaryParser parser;
  const std::vector<std::pair<std::string, Route>> cases = {
      {Req(0x00, "k"), Route::kKey},
      {Req(0x11, "k", SetExtras(0, 0)), Route::kKey},
      {Req(0x16, "k", IncrExtras(1, 1, 1)), Route::kKey},
      {Req(0x1c, "k", Be32(1)), Route::kKey},
      {Req(0x08), Route::kAllShards},
      {Req(0x18), Route::kAllShards},
      {Req(0x10), Route::kStats},
      {Req(0x10, "items"), Route::kStats},
      {Req(0x10, "reset"), Route::kAllShards},
      {Req(0x10, "bogus"), Route::kLocal},
      {Req(0x0a), Route::kLocal},
      {Req(0x0b), Route::kLocal},
      {Req(0x07), Route::kLocal},
      {Req(0x42, "k"), Route::kLocal},
      {Req(0x00), Route::kLocal},  // invalid
  };
  for (const auto& [bytes, route] : cases) {
    parser.Feed(bytes);
    BinaryRequest request;
    ASSERT_EQ(parser.Next(&request), ParseStatus::kRequest);
    EXPECT_EQ(RouteOf(request), route) << static_cast<int>(request.opcode);
  }
}

}  // namespace
}  // namespace evactor::memcached
