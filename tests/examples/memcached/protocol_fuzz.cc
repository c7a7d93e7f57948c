// Fuzzer for the memcached server's wire protocols (examples/memcached/protocol.h and
// binary_protocol.h), differential against itself: how the network cuts a client's
// bytes into reads must not change what the server answers or stores.
//
// The input: byte 0 picks the protocol (bit 0 set: binary), byte 1 seeds the cuts, and
// the rest is what one connection sends. It runs twice, each time against a fresh Store
// with small limits (so that eviction and the too-large paths run) on a fixed clock:
// once fed whole, once cut into pieces of 1 to 64 bytes (ASCII pieces go in through
// Reserve/Commit, the server's path; the whole run uses Feed). After each piece every
// complete request is executed, as the server's read callback does, with no Store for
// requests that route kLocal. The two runs must agree on the answer bytes, on whether
// the connection was closed, and on the Store afterwards (every counter, the item
// count, the bytes held). Also checked on the way: the Store never holds more than its
// limit, and after a drain the parser never holds more than one incomplete request (a
// line within the line limit plus a value within the item limit; an over-long line
// closes the connection, a value over the item limit is swallowed, not buffered).
// Under the sanitizers any memory error or undefined behaviour fails as well.
//
// Two ways to run it, as with tests/io/buffer_fuzz.cc:
//   - the real fuzzer: tools/fuzz_memcached [seconds] builds this file with
//     clang++ -fsanitize=fuzzer,address,undefined -DEVACTOR_LIBFUZZER and runs it with
//     the dictionary tests/examples/memcached/protocol_fuzz.dict;
//   - the corpus replay (//tests/examples/memcached:protocol_fuzz_replay_test, part of
//     every `bazel test`): without EVACTOR_LIBFUZZER this file also defines a test that
//     feeds every file of tests/examples/memcached/protocol_fuzz_corpus/ through
//     LLVMFuzzerTestOneInput.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/time/time.h"
#include "examples/memcached/binary_protocol.h"
#include "examples/memcached/protocol.h"
#include "examples/memcached/store.h"

namespace evactor::memcached {
namespace {

constexpr size_t kMaxItemSize = 1024;
constexpr size_t kMaxLine = 256;
constexpr size_t kMaxRetrievalLine = 2048;
constexpr size_t kMaxBody = 4096;
constexpr size_t kMaxBytes = 16 * 1024;

class FixedClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::FromUnixSeconds(1'700'000'000); }
};

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "protocol_fuzz: %s\n", what);
  std::abort();
}

// The pieces of a split run: 1 to 64 bytes each, from a xorshift generator.
class Cuts {
 public:
  explicit Cuts(uint8_t seed) : state_(0x9e3779b97f4a7c15ull ^ seed) {}
  size_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return 1 + static_cast<size_t>(state_ % 64);
  }

 private:
  uint64_t state_;
};

struct Outcome {
  std::string out;
  bool closed = false;
  std::set<std::string> keys;  // every key a request named
  StoreStats stats;
  size_t items = 0;
  size_t bytes = 0;
  std::string contents;  // what the store holds under `keys`, as Peek shows it
};

StoreOptions SmallStore(Clock* clock) {
  return StoreOptions{.max_bytes = kMaxBytes, .max_item_size = kMaxItemSize, .clock = clock};
}

void CheckStore(const Store& store) {
  if (store.bytes() > kMaxBytes) Fail("the store holds more than its limit");
}

// Reads the store's final state into `o`; `keys` (the whole run's) name what to look
// at, so that both runs are read alike.
void Finish(Store& store, const std::set<std::string>& keys, Outcome* o) {
  o->stats = store.stats();
  o->items = o->stats.curr_items;
  o->bytes = store.bytes();
  for (const std::string& key : keys) {
    std::optional<ItemView> item = store.Peek(key);
    if (!item.has_value()) continue;
    o->contents += key;
    o->contents += '=';
    o->contents += item->value;
    o->contents += ' ';
    o->contents += std::to_string(item->flags) + ' ' + std::to_string(item->cas) + ' ' +
                   std::to_string(item->expires_at) + (item->key_binary ? " b" : "") + '\n';
  }
}

// ---- The two protocols -------------------------------------------------------------

struct Ascii {
  using Parser = RequestParser;
  using Req = Request;
  static Parser NewParser() {
    return Parser(ParserOptions{.max_line_length = kMaxLine,
                                .max_retrieval_line_length = kMaxRetrievalLine,
                                .max_item_size = kMaxItemSize});
  }
  // A read in pieces goes straight into the parser's buffer, as the server reads.
  static void Read(Parser& parser, std::string_view bytes) {
    std::span<char> room = parser.Reserve(bytes.size());
    if (room.size() < bytes.size()) Fail("Reserve gave less room than asked for");
    std::memcpy(room.data(), bytes.data(), bytes.size());
    parser.Commit(bytes.size());
  }
  static void AddKeys(const Req& r, std::set<std::string>* keys) {
    for (std::string_view key : r.keys) keys->emplace(key);
  }
  static Disposition Exec(const Req& r, Store* store, std::string* out) {
    return Execute(r, store, out);
  }
  // One incomplete request: a line within the retrieval limit, then a value.
  static constexpr size_t kMaxBuffered = kMaxRetrievalLine + 2 + kMaxItemSize + 2;
};

struct Binary {
  using Parser = BinaryParser;
  using Req = BinaryRequest;
  static Parser NewParser() {
    return Parser(BinaryParserOptions{.max_item_size = kMaxItemSize, .max_body_length = kMaxBody});
  }
  static void Read(Parser& parser, std::string_view bytes) { parser.Feed(bytes); }
  static void AddKeys(const Req& r, std::set<std::string>* keys) {
    if (!r.key.empty()) keys->emplace(r.key);
  }
  static Disposition Exec(const Req& r, Store* store, std::string* out) {
    return ExecuteBinary(r, store, out);
  }
  // One incomplete packet: the header and a body within the limit.
  static constexpr size_t kMaxBuffered = 24 + kMaxBody;
};

// One client connection of protocol P, run as the server's read callback runs it.
template <typename P>
class Connection {
 public:
  explicit Connection(Store* store) : store_(store), parser_(P::NewParser()) {}

  void Feed(std::string_view bytes) { parser_.Feed(bytes); }
  void Read(std::string_view bytes) { P::Read(parser_, bytes); }

  // Executes every complete request; false once the connection is closed.
  bool Drain(Outcome* o) {
    typename P::Req request;
    while (!o->closed) {
      const ParseStatus status = parser_.Next(&request);
      if (status == ParseStatus::kNeedMore) break;
      if (status == ParseStatus::kClose) {
        o->closed = true;
        break;
      }
      P::AddKeys(request, &o->keys);
      Store* target = RouteOf(request) == Route::kLocal ? nullptr : store_;
      if (P::Exec(request, target, &o->out) == Disposition::kClose) o->closed = true;
      CheckStore(*store_);
    }
    if (!o->closed && parser_.buffered() > P::kMaxBuffered) {
      Fail("the parser holds more than one incomplete request");
    }
    return !o->closed;
  }

 private:
  Store* store_;
  typename P::Parser parser_;
};

template <typename P>
Outcome Whole(std::string_view stream) {
  FixedClock clock;
  Store store(SmallStore(&clock));
  Connection<P> c(&store);
  Outcome o;
  c.Feed(stream);
  c.Drain(&o);
  Finish(store, o.keys, &o);
  return o;
}

// `keys`: the keys to read the final state under (the whole run's).
template <typename P>
Outcome Split(std::string_view stream, uint8_t seed, const std::set<std::string>& keys) {
  FixedClock clock;
  Store store(SmallStore(&clock));
  Connection<P> c(&store);
  Outcome o;
  Cuts cuts(seed);
  while (!stream.empty()) {
    const size_t n = std::min(stream.size(), cuts.Next());
    c.Read(stream.substr(0, n));
    stream.remove_prefix(n);
    if (!c.Drain(&o)) break;
  }
  Finish(store, keys, &o);
  return o;
}

void Compare(const Outcome& whole, const Outcome& split) {
  if (whole.out != split.out) {
    const size_t n = std::min(whole.out.size(), split.out.size());
    size_t i = 0;
    while (i < n && whole.out[i] == split.out[i]) ++i;
    std::fprintf(stderr, "answers differ at byte %zu (whole %zu bytes, split %zu)\n", i,
                 whole.out.size(), split.out.size());
    Fail("the answers depend on how the stream was cut");
  }
  if (whole.closed != split.closed) Fail("closing depends on how the stream was cut");
  static_assert(std::has_unique_object_representations_v<StoreStats>);
  if (std::memcmp(&whole.stats, &split.stats, sizeof(StoreStats)) != 0 ||
      whole.items != split.items || whole.bytes != split.bytes ||
      whole.contents != split.contents) {
    Fail("the store depends on how the stream was cut");
  }
}

}  // namespace
}  // namespace evactor::memcached

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evactor::memcached;
  if (size < 2) return 0;
  const bool binary = (data[0] & 1) != 0;
  const uint8_t seed = data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (binary) {
    const Outcome whole = Whole<Binary>(stream);
    Compare(whole, Split<Binary>(stream, seed, whole.keys));
  } else {
    const Outcome whole = Whole<Ascii>(stream);
    Compare(whole, Split<Ascii>(stream, seed, whole.keys));
  }
  return 0;
}

#ifndef EVACTOR_LIBFUZZER
// ---- Corpus replay (the normal build) -------------------------------------------------

#include "gtest/gtest.h"
#include "tests/fuzz_corpus.h"

namespace evactor::memcached {
namespace {

TEST(ProtocolFuzzReplay, EveryCorpusInputPasses) {
  test::ReplayCorpus("tests/examples/memcached/protocol_fuzz_corpus", LLVMFuzzerTestOneInput);
}

// The comparison itself must be able to fail: run it on runs of two different streams
// (read under the same keys), one difference at a time.
Outcome Other(std::string_view stream, const Outcome& like) {
  return Split<Ascii>(stream, 0, like.keys);
}

TEST(ProtocolFuzzReplay, DifferentStreamsAreCaught) {
  const Outcome set_a = Whole<Ascii>("set a 0 0 1\r\nx\r\n");
  EXPECT_DEATH(Compare(set_a, Other("set a 0 0 1\r\nx\r\nget a\r\n", set_a)),
               "answers depend");
  EXPECT_DEATH(Compare(set_a, Other("set a 0 0 1\r\ny\r\n", set_a)), "store depends");
  EXPECT_DEATH(Compare(set_a, Other("set a 0 0 1\r\nx\r\nquit\r\n", set_a)),
               "closing depends");
  // And the same stream cut anywhere passes.
  const std::string script = "set a 0 0 1\r\nx\r\nget a b\r\nincr a 1\r\nmg a v\r\n";
  for (uint8_t seed = 0; seed < 16; ++seed) {
    const Outcome whole = Whole<Ascii>(script);
    Compare(whole, Split<Ascii>(script, seed, whole.keys));
  }
}

}  // namespace
}  // namespace evactor::memcached
#endif  // EVACTOR_LIBFUZZER
