// Tests for evactor::Buffer (io/buffer.h): every operation across segment boundaries,
// zero-copy moves of large buffers, libevent's end-of-line rules (regress_buffer.c's
// readln, search_eol, search, prepend, add_reference and callbacks cases), references
// released exactly once, file regions through sendfile and pread, readv/writev on
// socketpairs, reserve/commit, size callbacks with exact numbers, and invariants under
// every sequence that could leave an empty segment behind. A randomized differential
// test runs long operation sequences against a std::string model.
#include "io/buffer.h"
#include "tests/io/eol_model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/internal/segment.h"

namespace evactor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

#define EXPECT_INVARIANTS(b) EXPECT_TRUE((b).CheckInvariants().ok()) << (b).CheckInvariants()
#define ASSERT_INVARIANTS(b) ASSERT_TRUE((b).CheckInvariants().ok()) << (b).CheckInvariants()

// ---- Helpers ------------------------------------------------------------------------

// A buffer whose segments are exactly `parts` (owned segments, one per part: each part
// is appended to a fresh buffer, which is then moved in whole).
Buffer Segmented(const std::vector<std::string>& parts) {
  Buffer b;
  for (const std::string& p : parts) {
    Buffer piece;
    piece.Append(p);
    b.Append(std::move(piece));
  }
  return b;
}

// Splits s at the given cut points (sorted, within (0, size)).
std::vector<std::string> Cut(std::string_view s, std::vector<size_t> cuts) {
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t c : cuts) {
    if (c <= at || c >= s.size()) continue;
    parts.emplace_back(s.substr(at, c - at));
    at = c;
  }
  parts.emplace_back(s.substr(at));
  return parts;
}

// Where each segment's bytes are (pointer and length): equal layouts mean no byte moved.
std::vector<std::pair<const void*, size_t>> Layout(Buffer& b) {
  std::vector<std::string_view> pieces(b.segment_count() + 1);
  pieces.resize(std::min(b.Peek(0, b.size(), std::span<std::string_view>(pieces)), pieces.size()));
  std::vector<std::pair<const void*, size_t>> out;
  for (std::string_view v : pieces) out.emplace_back(v.data(), v.size());
  return out;
}

std::vector<std::string_view> Pieces(Buffer& b) {
  std::vector<std::string_view> out(b.segment_count() + 1);
  const size_t n = b.Peek(0, b.size(), std::span<std::string_view>(out));
  out.resize(std::min(n, out.size()));
  return out;
}

using test_model::ModelEol;


std::optional<std::string> ModelReadLine(std::string& s, EolStyle style) {
  std::optional<EolMatch> m = ModelEol(s, style);
  if (!m) return std::nullopt;
  std::string line = s.substr(0, m->position);
  s.erase(0, m->position + m->length);
  return line;
}

constexpr EolStyle kAllStyles[] = {EolStyle::kAny, EolStyle::kCrlf, EolStyle::kCrlfStrict,
                                   EolStyle::kLf, EolStyle::kNul};

// A connected, non-blocking AF_UNIX stream socketpair, closed on destruction.
struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
  int a = -1;
  int b = -1;
};

// Reads everything available from a non-blocking fd.
std::string DrainFd(int fd) {
  std::string out;
  char tmp[65536];
  for (;;) {
    const ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r <= 0) break;
    out.append(tmp, static_cast<size_t>(r));
  }
  return out;
}

// A temporary file with the given contents, removed on destruction.
struct TempFile {
  explicit TempFile(const std::string& contents) {
    const char* dir = std::getenv("TEST_TMPDIR");
    path = std::string(dir != nullptr ? dir : "/tmp") + "/evactor_buffer_XXXXXX";
    fd = ::mkstemp(path.data());
    EXPECT_GE(fd, 0);
    size_t done = 0;
    while (done < contents.size()) {
      const ssize_t r = ::write(fd, contents.data() + done, contents.size() - done);
      EXPECT_GT(r, 0);
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
  }
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
  }
  std::string path;
  int fd = -1;
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// ---- Append, prepend, drain, copy out ------------------------------------------------

TEST(BufferTest, StartsEmptyWithNoSegments) {
  Buffer b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.segment_count(), 0u);
  EXPECT_EQ(b.ToString(), "");
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, SmallAppendsShareTheTailSegmentUntilItIsFull) {
  Buffer b;
  std::string model;
  const std::string chunk(64, 'x');
  b.Append(chunk);
  model += chunk;
  const char* first = Pieces(b)[0].data();
  // 4096 / 64 = 64 appends fit in the first segment without any allocation.
  for (int i = 1; i < 64; ++i) {
    b.Append(chunk);
    model += chunk;
    ASSERT_EQ(b.segment_count(), 1u);
  }
  EXPECT_EQ(Pieces(b)[0].data(), first);
  b.Append("y");
  model += "y";
  EXPECT_EQ(b.segment_count(), 2u);
  EXPECT_EQ(b.ToString(), model);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, AppendFillsTheTailThenSpillsIntoANewSegment) {
  Buffer b;
  b.Append(std::string(4000, 'a'));
  b.Append(std::string(200, 'b'));  // 96 fit in the first segment, 104 spill
  const auto pieces = Pieces(b);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), 4096u);
  EXPECT_EQ(pieces[1], std::string(104, 'b'));
  EXPECT_EQ(b.size(), 4200u);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ManyAppendsOfEveryLengthMatchTheModel) {
  Buffer b;
  std::string model;
  const std::string abc = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int round = 0; round < 200; ++round) {
    for (size_t j = 1; j < abc.size(); ++j) {
      b.Append(abc.substr(0, j));
      model += abc.substr(0, j);
    }
  }
  EXPECT_GT(b.segment_count(), 10u);
  EXPECT_EQ(b.size(), model.size());
  EXPECT_EQ(b.ToString(), model);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, LargeAppendIsOneSegment) {
  Buffer b;
  const std::string big = RandomBytes(1 << 20, 1);
  b.Append(big);
  EXPECT_EQ(b.segment_count(), 1u);
  EXPECT_EQ(b.ToString(), big);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, DrainedSegmentsAreRecycled) {
  Buffer b;
  b.Append("hello");
  const char* p = Pieces(b)[0].data();
  EXPECT_EQ(b.Drain(5), 5u);
  EXPECT_EQ(b.segment_count(), 0u);
  EXPECT_GE(internal::PooledSegmentsForTesting(0), 1u);
  b.Append("again");
  // The pool is LIFO: the segment just freed comes back.
  EXPECT_EQ(Pieces(b)[0].data(), p);
  EXPECT_EQ(b.ToString(), "again");
}

TEST(BufferTest, PrependCasesFromLibevent) {
  // test_evbuffer_prepend.
  Buffer b1;
  b1.Append("This string has 29 characters");
  // Case 1: goes entirely into a new segment.
  b1.Prepend("Short.");
  EXPECT_INVARIANTS(b1);
  EXPECT_EQ(b1.ToString(), "Short.This string has 29 characters");
  // Case 2: goes entirely into the headroom of the first segment.
  b1.Drain(6 + 11);
  b1.Prepend("it");
  EXPECT_INVARIANTS(b1);
  EXPECT_EQ(Pieces(b1)[0].substr(0, 6), "it has");
  // Case 3: split over the headroom and a new segment.
  b1.Prepend("It is no longer true to say ");
  EXPECT_INVARIANTS(b1);
  EXPECT_EQ(b1.ToString(), "It is no longer true to say it has 29 characters");
  b1.Clear();

  Buffer b2;
  // Case 4: prepend a buffer to an empty buffer.
  b1.Append("Here is string 999. ");
  b2.Prepend(std::move(b1));
  EXPECT_INVARIANTS(b2);
  EXPECT_TRUE(b1.empty());
  // Case 5: prepend a buffer to a non-empty buffer.
  b1.Append("Here is string 1000. ");
  b2.Prepend(std::move(b1));
  EXPECT_INVARIANTS(b2);
  EXPECT_EQ(b2.ToString(), "Here is string 1000. Here is string 999. ");
}

TEST(BufferTest, PrependToAnEmptyBufferAppends) {
  Buffer b;
  b.Prepend("abc");
  b.Append("def");
  EXPECT_EQ(b.ToString(), "abcdef");
  EXPECT_EQ(b.segment_count(), 1u);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, PrependNeverWritesIntoAReference) {
  const std::string chunk = "If you have found the answer";
  Buffer b;
  b.AppendReference(chunk.data(), chunk.size());
  b.Drain(3);  // the reference has no headroom even though its front was drained
  b.Prepend("I have ");
  EXPECT_EQ(chunk, "If you have found the answer");
  EXPECT_EQ(b.ToString(), "I have you have found the answer");
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, RepeatedPrependsFillTheNewSegmentBackwards) {
  Buffer b;
  b.Append("end");
  std::string model = "end";
  for (int i = 0; i < 3000; ++i) {
    const std::string piece = std::to_string(i) + ",";
    b.Prepend(piece);
    model = piece + model;
  }
  EXPECT_EQ(b.ToString(), model);
  // 3000 small prepends into 4 KiB segments: a handful of segments, not thousands.
  EXPECT_LT(b.segment_count(), 10u);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, DrainAcrossSegmentBoundaries) {
  const std::string s = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (size_t n = 0; n <= s.size() + 2; ++n) {
    Buffer b = Segmented(Cut(s, {3, 4, 10, 20, 21, 30}));
    EXPECT_EQ(b.Drain(n), std::min(n, s.size()));
    EXPECT_EQ(b.ToString(), s.substr(std::min(n, s.size())));
    EXPECT_INVARIANTS(b);
  }
}

TEST(BufferTest, CopyOutFromEveryPositionAcrossSegments) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  Buffer b = Segmented(Cut(s, {1, 2, 5, 9, 10, 17, 30, 42}));
  ASSERT_EQ(b.segment_count(), 9u);
  for (size_t from = 0; from <= s.size() + 1; ++from) {
    for (size_t n = 0; n <= s.size() + 1; ++n) {
      std::string out(n, '#');
      const size_t got = b.CopyOut(from, out.data(), n);
      const std::string want = from < s.size() ? s.substr(from, n) : "";
      ASSERT_EQ(got, want.size()) << from << " " << n;
      ASSERT_EQ(out.substr(0, got), want) << from << " " << n;
    }
  }
  EXPECT_EQ(b.ToString(), s);  // CopyOut does not drain
}

TEST(BufferTest, RemoveCopiesThenDrains) {
  Buffer b = Segmented({"abc", "defg", "h"});
  char out[16] = {};
  EXPECT_EQ(b.Remove(out, 5), 5u);
  EXPECT_EQ(std::string(out, 5), "abcde");
  EXPECT_EQ(b.ToString(), "fgh");
  EXPECT_EQ(b.Remove(out, 16), 3u);
  EXPECT_EQ(std::string(out, 3), "fgh");
  EXPECT_TRUE(b.empty());
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, RemoveToMovesWholeSegmentsWithoutCopying) {
  Buffer src = Segmented({std::string(3000, 'a'), std::string(3000, 'b'), std::string(3000, 'c')});
  const auto before = Pieces(src);
  Buffer dst;
  dst.Append("head:");
  EXPECT_EQ(src.RemoveTo(dst, 6000), 6000u);
  const auto moved = Pieces(dst);
  ASSERT_EQ(moved.size(), 3u);
  EXPECT_EQ(moved[1].data(), before[0].data());
  EXPECT_EQ(moved[2].data(), before[1].data());
  EXPECT_EQ(src.ToString(), std::string(3000, 'c'));
  EXPECT_EQ(Pieces(src)[0].data(), before[2].data());
  EXPECT_EQ(dst.size(), 6005u);
  EXPECT_INVARIANTS(src);
  EXPECT_INVARIANTS(dst);
}

TEST(BufferTest, RemoveToCopiesOnlyTheSegmentItSplits) {
  Buffer src = Segmented({"hello", "wonderful", "world"});
  Buffer dst;
  EXPECT_EQ(src.RemoveTo(dst, 8), 8u);
  EXPECT_EQ(dst.ToString(), "hellowon");
  EXPECT_EQ(src.ToString(), "derfulworld");
  EXPECT_EQ(src.RemoveTo(dst, 100), 11u);
  EXPECT_EQ(dst.ToString(), "hellowonderfulworld");
  EXPECT_TRUE(src.empty());
  EXPECT_EQ(src.RemoveTo(dst, 5), 0u);
  EXPECT_EQ(dst.RemoveTo(dst, 5), 0u);  // to itself: nothing
  EXPECT_EQ(dst.size(), 19u);
  EXPECT_INVARIANTS(src);
  EXPECT_INVARIANTS(dst);
}

// ---- Pullup and Peek -------------------------------------------------------------------

TEST(BufferTest, PullupWithinTheHeadReturnsItsBytesInPlace) {
  Buffer b = Segmented({"abcdef", "ghi"});
  const char* head = Pieces(b)[0].data();
  const std::string_view v = b.Pullup(4);
  EXPECT_EQ(v, "abcd");
  EXPECT_EQ(v.data(), head);
  EXPECT_EQ(b.segment_count(), 2u);
}

TEST(BufferTest, PullupGathersAcrossSegments) {
  const std::string s = "0123456789abcdefghij";
  for (size_t n = 1; n <= s.size(); ++n) {
    Buffer b = Segmented(Cut(s, {2, 3, 7, 12, 13}));
    const std::string_view v = b.Pullup(n);
    ASSERT_EQ(v, s.substr(0, n)) << n;
    ASSERT_GE(Pieces(b)[0].size(), n);
    ASSERT_EQ(b.ToString(), s);
    ASSERT_INVARIANTS(b);
  }
}

TEST(BufferTest, PullupAllMakesOneSegment) {
  Buffer b = Segmented({"ab", "cd", "ef"});
  EXPECT_EQ(b.Pullup(Buffer::kAll), "abcdef");
  EXPECT_EQ(b.segment_count(), 1u);
  b.Append("gh");  // the gathered segment is the tail now: appends still go in order
  EXPECT_EQ(b.ToString(), "abcdefgh");
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, PullupOfMoreThanTheSizeOrOfNothingReturnsEmpty) {
  Buffer b = Segmented({"ab", "cd"});
  EXPECT_TRUE(b.Pullup(5).empty());
  EXPECT_EQ(b.Pullup(5).data(), nullptr);
  EXPECT_TRUE(b.Pullup(0).empty());
  EXPECT_EQ(b.segment_count(), 2u);
  Buffer empty;
  EXPECT_TRUE(empty.Pullup(Buffer::kAll).empty());
  EXPECT_INVARIANTS(b);
  EXPECT_INVARIANTS(empty);
}

TEST(BufferTest, PullupLargerThanASegmentAllocatesOneBigSegment) {
  std::string model;
  Buffer b;
  for (int i = 0; i < 10; ++i) {
    Buffer piece;
    piece.Append(std::string(5000, static_cast<char>('a' + i)));
    model += std::string(5000, static_cast<char>('a' + i));
    b.Append(std::move(piece));
  }
  EXPECT_EQ(b.Pullup(32000), model.substr(0, 32000));
  EXPECT_EQ(b.ToString(), model);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, PeekDescribesPiecesWithoutCopying) {
  Buffer b = Segmented({"abc", "defg", "hi"});
  std::string_view out[2];
  EXPECT_EQ(b.Peek(1, 7, out), 3u);  // three pieces needed, two filled
  EXPECT_EQ(out[0], "bc");
  EXPECT_EQ(out[1], "defg");
  std::string_view all[4];
  EXPECT_EQ(b.Peek(0, Buffer::kAll, all), 3u);
  EXPECT_EQ(all[2], "hi");
  EXPECT_EQ(b.Peek(9, 1, all), 0u);
  EXPECT_EQ(b.Peek(0, 0, all), 0u);
  EXPECT_EQ(b.Peek(4, 100, all), 2u);
  EXPECT_EQ(all[0], "efg");
}

// ---- Search ---------------------------------------------------------------------------

TEST(BufferTest, SearchCasesFromLibevent) {
  // test_evbuffer_search: chains "hello", "foo", "cat", "attack".
  Buffer b;
  EXPECT_EQ(b.Search("x"), std::nullopt);
  EXPECT_EQ(b.Search("x", 0, 0), std::nullopt);
  b = Segmented({"hello", "foo", "cat", "attack"});
  EXPECT_EQ(b.segment_count(), 4u);
  EXPECT_EQ(b.Search("attack"), 11u);
  EXPECT_EQ(b.Search("attacker"), std::nullopt);
  EXPECT_EQ(b.Search("oc"), 7u);
  EXPECT_EQ(b.Search("cat", 7), 8u);
  EXPECT_EQ(b.Search("tacking", 8), std::nullopt);
  EXPECT_EQ(b.Search("foo", 5), 5u);
  EXPECT_EQ(b.Search("tat", 7), 10u);
  // Bounded: the match must end by `to` (12: the first t in "attack").
  EXPECT_EQ(b.Search("foo", 0, 12), 5u);
  EXPECT_EQ(b.Search("foocata", 0, 12), 5u);
  EXPECT_EQ(b.Search("foocatat", 0, 12), std::nullopt);
  EXPECT_EQ(b.Search("ack", 0, 12), std::nullopt);
  EXPECT_EQ(b.Search("attack", 0, 17), 11u);
  EXPECT_EQ(b.Search("attack", 11, 17), 11u);
  EXPECT_EQ(b.Search("attack", 17, 17), std::nullopt);
  EXPECT_EQ(b.Search("attack", 17), std::nullopt);
  EXPECT_EQ(b.Search("", 3), 3u);
  EXPECT_EQ(b.Search("", 17), 17u);
  EXPECT_EQ(b.Search("", 18), std::nullopt);
}

TEST(BufferTest, FindDoesNotMatchPastTheEnd) {
  // test_evbuffer_find.
  Buffer b;
  b.Append("1234567890\r\n");
  b.Drain(12);
  b.Append("1234567890\r");
  EXPECT_EQ(b.Search("\r\n"), std::nullopt);
  b.Drain(11);
  std::string test3(256, 'a');
  test3[255] = 'x';
  b.Append(test3);
  EXPECT_EQ(b.Search("xy"), std::nullopt);
  EXPECT_EQ(b.Search("ax"), 254u);
}

TEST(BufferTest, SearchAcrossSegmentsMatchesStdFind) {
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    // A small alphabet makes partial matches, and matches across boundaries, common.
    std::string s(1 + rng() % 200, 'a');
    for (char& c : s) c = "abc\r\n"[rng() % (round % 2 == 0 ? 3 : 5)];
    std::vector<size_t> cuts;
    for (int i = 0, n = static_cast<int>(rng() % 12); i < n; ++i) cuts.push_back(rng() % s.size());
    std::sort(cuts.begin(), cuts.end());
    Buffer b = Segmented(Cut(s, cuts));
    for (int q = 0; q < 20; ++q) {
      std::string needle;
      if (q % 2 == 0) {
        const size_t at = rng() % s.size();
        needle = s.substr(at, 1 + rng() % 9);
      } else {
        needle.resize(1 + rng() % 6);
        for (char& c : needle) c = "abc"[rng() % 3];
      }
      const size_t from = rng() % (s.size() + 2);
      const size_t to = q % 3 == 0 ? Buffer::kAll : rng() % (s.size() + 2);
      std::optional<size_t> want;
      const size_t end = std::min(to, s.size());
      if (from <= end) {
        const size_t p = s.substr(0, end).find(needle, from);
        if (p != std::string::npos) want = p;
      }
      ASSERT_EQ(b.Search(needle, from, to), want)
          << "round " << round << " needle '" << needle << "' from " << from << " to " << to;
    }
  }
}

TEST(BufferTest, SearchForAFarNeedleInAManySegmentBuffer) {
  std::string model;
  std::vector<size_t> cuts;
  for (int i = 0; i < 300; ++i) {
    model += std::string(4096, static_cast<char>('a' + i % 26));
    if (i > 0) cuts.push_back(static_cast<size_t>(i) * 4096);
  }
  // A needle straddling the boundary of segments 250 and 251.
  const size_t at = 251 * 4096 - 3;
  const std::string needle = "XYZ|needle";
  model.replace(at, needle.size(), needle);
  Buffer b = Segmented(Cut(model, cuts));
  ASSERT_EQ(b.segment_count(), 300u);
  EXPECT_EQ(b.ToString(), model);
  EXPECT_EQ(b.Search(needle), at);
  EXPECT_EQ(b.Search("X"), at);
  EXPECT_EQ(b.Search(needle, at + 1), std::nullopt);
  // Text whose letters are the needle's common bytes: the prefilter must not stall.
  EXPECT_EQ(b.Search("zzzzzzzzzzzzzzzzzzzza"), model.find("zzzzzzzzzzzzzzzzzzzza"));
}

TEST(BufferTest, SearchEolCasesFromLibevent) {
  // test_evbuffer_search_eol.
  Buffer b;
  b.Append("string! \r\n\r\nx\n");
  auto eq = [](std::optional<EolMatch> m, size_t pos, size_t len) {
    return m.has_value() && m->position == pos && m->length == len;
  };
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kCrlf), 8, 2));
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kCrlf, 8), 8, 2));
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kCrlf, 9), 9, 1));  // the CR before `from` is not seen
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kCrlfStrict, 9), 10, 2));
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kLf), 9, 1));
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kLf, 9), 9, 1));
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kLf, 10), 11, 1));
  EXPECT_EQ(b.SearchEol(EolStyle::kLf, b.size()), std::nullopt);
  EXPECT_TRUE(eq(b.SearchEol(EolStyle::kAny), 8, 4));
}

// ---- ReadLine --------------------------------------------------------------------------

TEST(BufferTest, ReadLineAnyFromLibevent) {
  Buffer b;
  const char s[] = "complex silly newline\r\n\n\r\n\n\rmore\0\n";
  b.Append(s, sizeof(s) - 1);  // through the "\n" after "more\0"
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "complex silly newline");
  EXPECT_INVARIANTS(b);
  const std::optional<std::string> more = b.ReadLine(EolStyle::kAny);
  ASSERT_TRUE(more.has_value());
  EXPECT_EQ(*more, std::string("more\0", 5));
  EXPECT_EQ(b.size(), 0u);
  b.Append("\nno newline");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), std::nullopt);
  EXPECT_EQ(b.ToString(), "no newline");  // nothing consumed
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ReadLineCrlfFromLibevent) {
  Buffer b;
  b.Append("Line with\rin the middle\nLine with good crlf\r\n\nfinal\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "Line with\rin the middle");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "Line with good crlf");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "final");
  b.Append("x");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), std::nullopt);
  EXPECT_EQ(b.ToString(), "x");
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ReadLineCrlfStrictFromLibevent) {
  Buffer b;
  b.Append("x and a bad crlf\nand a good one\r\n\r\nMore\r");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "x and a bad crlf\nand a good one");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "");
  // A trailing CR is not an EOL until its LF arrives.
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), std::nullopt);
  EXPECT_EQ(b.ToString(), "More\r");
  b.Append("\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "More");
  EXPECT_TRUE(b.empty());

  b.Append("An internal CR\r is not an eol\r\nNor is a lack of one");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "An internal CR\r is not an eol");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), std::nullopt);
  b.Append("\r\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "Nor is a lack of one");
  EXPECT_TRUE(b.empty());
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ReadLineLfFromLibevent) {
  Buffer b;
  b.Append("An\rand a nl\n\nText");
  EXPECT_EQ(b.ReadLine(EolStyle::kLf), "An\rand a nl");
  EXPECT_EQ(b.ReadLine(EolStyle::kLf), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kLf), std::nullopt);
  b.Append("\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kLf), "Text");
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, ReadLineNulFromLibevent) {
  Buffer b;
  const char x[] =
      "NUL\n\0\0"
      "The all-zeros character which may serve\0"
      "to accomplish time fill\0and media fill";
  b.Append(x, sizeof(x) - 1);  // all but the final NUL
  EXPECT_EQ(b.ReadLine(EolStyle::kNul), "NUL\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kNul), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kNul), "The all-zeros character which may serve");
  EXPECT_EQ(b.ReadLine(EolStyle::kNul), "to accomplish time fill");
  EXPECT_EQ(b.ReadLine(EolStyle::kNul), std::nullopt);
  EXPECT_EQ(b.ToString(), "and media fill");
}

TEST(BufferTest, ReadLineCrlfStrictAcrossBoundariesFromLibevent) {
  Buffer b;
  for (const char* part : {" and a bad crlf\nand a good one\r", "\n\r", "\nMore\r"}) {
    Buffer tmp;
    tmp.Append(part);
    b.Append(std::move(tmp));
  }
  EXPECT_EQ(b.segment_count(), 3u);
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), " and a bad crlf\nand a good one");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), std::nullopt);
  b.Append("\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlfStrict), "More");
  EXPECT_TRUE(b.empty());
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, CrlfSplitAcrossSegmentsIsOneEolForCrlfStyles) {
  for (EolStyle style : {EolStyle::kCrlf, EolStyle::kCrlfStrict}) {
    Buffer b = Segmented({"line one\r", "\nline two\r", "\n"});
    EXPECT_EQ(b.ReadLine(style), "line one");
    EXPECT_EQ(b.ReadLine(style), "line two");
    EXPECT_TRUE(b.empty());
  }
}

TEST(BufferTest, AnyEndsTwoLinesWhenACrlfArrivesInTwoReads) {
  Buffer b;
  b.Append("first\r");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "first");
  b.Append("\nsecond\r\n");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "second");
  EXPECT_TRUE(b.empty());
  // ...but one EOL when the whole run is present, across segments too.
  b = Segmented({"a\r", "\n\n", "\r\nb\n"});
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "a");
  EXPECT_EQ(b.ReadLine(EolStyle::kAny), "b");
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, ReadLineMatchesTheModelForEveryStyleAndEverySplit) {
  const std::vector<std::string> inputs = {
      std::string("ab\r\ncd\nef\r\r\ngh\n\rij\0kl\r", 23),
      "\r\n\r\n",
      "\n\n\r\r",
      "x\ry\r\nz",
      std::string("\0\0a\0", 4),
      "no eol at all",
      "\r",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody",
  };
  for (const std::string& s : inputs) {
    for (EolStyle style : kAllStyles) {
      for (size_t c1 = 0; c1 < s.size(); ++c1) {
        for (size_t c2 = c1; c2 < s.size(); ++c2) {
          Buffer b = Segmented(Cut(s, {c1, c2}));
          std::string model = s;
          for (;;) {
            std::optional<std::string> want = ModelReadLine(model, style);
            std::optional<std::string> got = b.ReadLine(style);
            ASSERT_EQ(got, want) << "style " << static_cast<int>(style) << " cuts " << c1 << ","
                                 << c2;
            ASSERT_EQ(b.ToString(), model);
            ASSERT_INVARIANTS(b);
            if (!want) break;
          }
        }
      }
    }
  }
}

TEST(BufferTest, ReadLineIntoReusesTheString) {
  Buffer b;
  b.Append("first line\r\nsecond\r\nthird");
  std::string line = "previous contents";
  EXPECT_TRUE(b.ReadLineInto(EolStyle::kCrlf, &line));
  EXPECT_EQ(line, "first line");
  EXPECT_TRUE(b.ReadLineInto(EolStyle::kCrlf, &line));
  EXPECT_EQ(line, "second");
  EXPECT_FALSE(b.ReadLineInto(EolStyle::kCrlf, &line));
  EXPECT_EQ(line, "second");  // unchanged
  EXPECT_EQ(b.ToString(), "third");
}

TEST(BufferTest, LongLineAcrossManySegments) {
  std::string line;
  for (int i = 0; i < 20000; ++i) line += static_cast<char>('a' + i % 26);
  Buffer b = Segmented(Cut(line + "\r\nrest", {100, 5000, 5001, 12000, 20000, 20001}));
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), line);
  EXPECT_EQ(b.ToString(), "rest");
}

// ---- Moving without copying -----------------------------------------------------------

TEST(BufferTest, Moving100MiBBetweenBuffersCopiesNothing) {
  constexpr size_t kChunk = 64 * 1024;
  constexpr size_t kTotal = 100u << 20;
  Buffer a;
  for (size_t done = 0; done < kTotal; done += kChunk) {
    std::span<char> room = a.Reserve(kChunk);
    ASSERT_GE(room.size(), kChunk);
    std::memset(room.data(), static_cast<int>('a' + (done / kChunk) % 26), kChunk);
    ASSERT_TRUE(a.Commit(kChunk).ok());
  }
  ASSERT_EQ(a.size(), kTotal);
  const auto original = Layout(a);
  ASSERT_EQ(original.size(), kTotal / kChunk);

  Buffer b;
  b.Append(std::move(a));  // O(1): the chains are linked
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_EQ(b.size(), kTotal);
  EXPECT_EQ(Layout(b), original);  // same pointers, same lengths: nothing copied

  Buffer c(std::move(b));  // move construction
  EXPECT_EQ(Layout(c), original);
  Buffer d;
  d = std::move(c);  // move assignment
  EXPECT_EQ(Layout(d), original);

  // Half of it, on a segment boundary, through RemoveTo: relinked, not copied.
  Buffer e;
  EXPECT_EQ(d.RemoveTo(e, kTotal / 2), kTotal / 2);
  auto halves = Layout(e);
  for (const auto& v : Layout(d)) halves.push_back(v);
  EXPECT_EQ(halves, original);
  // And back in front.
  d.Prepend(std::move(e));
  EXPECT_EQ(Layout(d), original);

  char probe[4];
  ASSERT_EQ(d.CopyOut(kTotal - 4, probe, 4), 4u);
  EXPECT_EQ(std::string(probe, 4),
            std::string(4, static_cast<char>('a' + (kTotal / kChunk - 1) % 26)));
  EXPECT_INVARIANTS(d);
}

TEST(BufferTest, AppendingABufferToItselfDoesNothing) {
  Buffer b;
  b.Append("abc");
  b.Append(std::move(b));
  b.Prepend(std::move(b));
  EXPECT_EQ(b.ToString(), "abc");
  EXPECT_INVARIANTS(b);
}

// ---- References -----------------------------------------------------------------------

struct ReleaseCounter {
  int count = 0;
  Buffer::ReleaseCallback Callback() {
    return [this] { ++count; };
  }
};

TEST(BufferTest, ReferenceReleasedOnceWhenDrained) {
  const std::string data = "external bytes";
  ReleaseCounter r;
  Buffer b;
  b.AppendReference(data.data(), data.size(), r.Callback());
  EXPECT_EQ(Pieces(b)[0].data(), data.data());  // not copied
  b.Drain(5);
  EXPECT_EQ(r.count, 0);
  b.Drain(data.size() - 6);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(b.ToString(), "s");
  b.Drain(1);
  EXPECT_EQ(r.count, 1);
  b.Append("more");
  b.Clear();
  EXPECT_EQ(r.count, 1);
}

TEST(BufferTest, ReferenceReleasedOnceWhenTheBufferDies) {
  const std::string data = "external bytes";
  ReleaseCounter r;
  {
    Buffer b;
    b.Append("before ");
    b.AppendReference(data.data(), data.size(), r.Callback());
    b.Append(" after");
    b.Drain(9);  // partly into the reference
    EXPECT_EQ(r.count, 0);
  }
  EXPECT_EQ(r.count, 1);
}

TEST(BufferTest, ReferenceReleasedOnceAfterBeingMovedAround) {
  const std::string data = "external bytes";
  ReleaseCounter r;
  {
    Buffer a;
    a.AppendReference(data.data(), data.size(), r.Callback());
    Buffer b;
    b.Append(std::move(a));
    Buffer c(std::move(b));
    Buffer d;
    d.Prepend(std::move(c));
    Buffer e;
    d.RemoveTo(e, data.size());  // the whole segment moves
    EXPECT_EQ(Pieces(e)[0].data(), data.data());
    EXPECT_EQ(r.count, 0);
  }
  EXPECT_EQ(r.count, 1);
}

TEST(BufferTest, ReferenceSplitByRemoveToIsCopiedAndReleasedOnce) {
  const std::string data = "0123456789";
  ReleaseCounter r;
  Buffer src;
  src.AppendReference(data.data(), data.size(), r.Callback());
  {
    Buffer dst;
    EXPECT_EQ(src.RemoveTo(dst, 4), 4u);
    EXPECT_NE(Pieces(dst)[0].data(), data.data());  // the part that moved was copied
    EXPECT_EQ(dst.ToString(), "0123");
  }
  EXPECT_EQ(r.count, 0);  // src still uses the rest
  EXPECT_EQ(src.ToString(), "456789");
  src.Drain(6);
  EXPECT_EQ(r.count, 1);
}

TEST(BufferTest, ReferenceReleasedWhenPullupConsumesIt) {
  const std::string data = "referenced";
  ReleaseCounter r;
  Buffer b;
  b.Append("ab");
  b.AppendReference(data.data(), data.size(), r.Callback());
  b.Append("cd");
  EXPECT_EQ(b.Pullup(5), "abref");  // part of the reference: not released yet
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(b.Pullup(13), "abreferencedc");
  EXPECT_EQ(r.count, 1);
  EXPECT_EQ(b.ToString(), "abreferencedcd");
  EXPECT_EQ(data, "referenced");
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ReferenceReleasedWhenAssignedOver) {
  const std::string data = "xyz";
  ReleaseCounter r;
  Buffer b;
  b.AppendReference(data.data(), data.size(), r.Callback());
  b = Buffer();
  EXPECT_EQ(r.count, 1);
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, EmptyReferenceIsReleasedAtOnceAndAddsNoSegment) {
  ReleaseCounter r;
  Buffer b;
  b.AppendReference("", 0, r.Callback());
  EXPECT_EQ(r.count, 1);
  EXPECT_EQ(b.segment_count(), 0u);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, AddReferenceSequenceFromLibevent) {
  // test_evbuffer_add_reference.
  const char chunk1[] = "If you have found the answer to such a problem";
  const char chunk2[] = "you ought to write it up for publication";
  const size_t len1 = std::strlen(chunk1), len2 = std::strlen(chunk2);
  std::vector<int> released;
  char tmp[16];
  auto buf1 = std::make_unique<Buffer>();
  buf1->AppendReference(chunk1, len1, [&] { released.push_back(111); });
  buf1->Append(", ");
  buf1->AppendReference(chunk2, len2, [&] { released.push_back(222); });
  EXPECT_EQ(buf1->size(), len1 + len2 + 2);
  EXPECT_EQ(buf1->Remove(tmp, 6), 6u);
  EXPECT_EQ(std::string(tmp, 6), "If you");
  EXPECT_EQ(buf1->Remove(tmp, 5), 5u);
  EXPECT_EQ(std::string(tmp, 5), " have");
  buf1->Prepend("I have ");
  EXPECT_EQ(std::string(chunk1, 6), "If you");
  buf1->Drain(7);
  buf1->Drain(len1 - 11 - 1);
  EXPECT_TRUE(released.empty());
  buf1->Remove(tmp, 1);
  EXPECT_EQ(tmp[0], 'm');
  EXPECT_THAT(released, ElementsAre(111));
  buf1->Drain(6);
  Buffer buf2;
  buf2.Append("I ");
  buf2.Append(std::move(*buf1));
  EXPECT_THAT(released, ElementsAre(111));
  EXPECT_EQ(buf2.Remove(tmp, 16), 16u);
  EXPECT_EQ(std::string(tmp, 16), "I ought to write");
  buf2.Clear();
  EXPECT_THAT(released, ElementsAre(111, 222));
  buf1->Append("You shake and shake the ");
  buf1->AppendReference("ketchup bottle", 14, [&] { released.push_back(3333); });
  buf1->Append(". Nothing comes and then a lot'll.");
  buf1.reset();
  EXPECT_THAT(released, ElementsAre(111, 222, 3333));
}

// ---- File regions -------------------------------------------------------------------

// Writes everything in `b` to `p.a` while reading `p.b`; returns what arrived.
std::string PumpThroughSocket(Buffer& b, SocketPair& p) {
  std::string got;
  while (!b.empty()) {
    absl::StatusOr<size_t> n = b.WriteTo(p.a);
    if (!n.ok()) {
      EXPECT_TRUE(IsWouldBlock(n.status())) << n.status();
      if (!IsWouldBlock(n.status())) break;
    }
    got += DrainFd(p.b);
  }
  got += DrainFd(p.b);
  return got;
}

TEST(BufferTest, FileRegionGoesOutWithSendfileBetweenMemorySegments) {
  const std::string contents = RandomBytes(300000, 7);
  TempFile file(contents);
  ReleaseCounter r;
  Buffer b;
  b.Append("header|");
  ASSERT_TRUE(b.AppendFile(file.fd, 1000, 200000, r.Callback()).ok());
  b.Append("|trailer");
  EXPECT_EQ(b.size(), 7u + 200000u + 8u);
  EXPECT_EQ(b.segment_count(), 3u);
  EXPECT_INVARIANTS(b);
  SocketPair p;
  const std::string got = PumpThroughSocket(b, p);
  EXPECT_EQ(got, "header|" + contents.substr(1000, 200000) + "|trailer");
  EXPECT_EQ(r.count, 1);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, FileRegionToAPipe) {
  const std::string contents = RandomBytes(50000, 8);
  TempFile file(contents);
  Buffer b;
  ASSERT_TRUE(b.AppendFile(file.fd, 123, 40000).ok());
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  std::string got;
  while (!b.empty()) {
    absl::StatusOr<size_t> n = b.WriteTo(fds[1]);
    ASSERT_TRUE(n.ok() || IsWouldBlock(n.status())) << n.status();
    got += DrainFd(fds[0]);
  }
  got += DrainFd(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(got, contents.substr(123, 40000));
}

TEST(BufferTest, FileRegionFallsBackToPreadWhenSendfileCannotWrite) {
  // sendfile refuses an O_APPEND destination (EINVAL): the region is read and written.
  const std::string contents = RandomBytes(600000, 9);
  TempFile file(contents);
  TempFile out("");
  const int append_fd = ::open(out.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(append_fd, 0);
  ReleaseCounter r;
  Buffer b;
  b.Append("<");
  ASSERT_TRUE(b.AppendFile(file.fd, 5, 500000, r.Callback()).ok());
  b.Append(">");
  int calls = 0;
  while (!b.empty()) {
    absl::StatusOr<size_t> n = b.WriteTo(append_fd);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_GT(*n, 0u);
    ASSERT_INVARIANTS(b);
    ++calls;
  }
  ::close(append_fd);
  EXPECT_GE(calls, 2);  // at most 256 KiB of a region per fallback write
  EXPECT_EQ(r.count, 1);
  std::string written(500002, '\0');
  ASSERT_EQ(::pread(out.fd, written.data(), written.size(), 0), 500002);
  EXPECT_EQ(written, "<" + contents.substr(5, 500000) + ">");
}

TEST(BufferTest, FileRegionIsReadWithPreadWhenItsBytesAreNeeded) {
  const std::string contents = "0123456789\r\nline two\r\nthe needle is here\r\n";
  TempFile file(contents);
  ReleaseCounter r;
  Buffer b;
  b.Append("mem:");
  ASSERT_TRUE(b.AppendFile(file.fd, 0, contents.size(), r.Callback()).ok());
  EXPECT_EQ(r.count, 0);
  char probe[6];
  EXPECT_EQ(b.CopyOut(3, probe, 6), 6u);
  EXPECT_EQ(std::string(probe, 6), ":01234");
  EXPECT_EQ(r.count, 1);  // the region is memory now: released
  EXPECT_EQ(b.Search("needle"), 4 + contents.find("needle"));
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "mem:0123456789");
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "line two");
  EXPECT_EQ(r.count, 1);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, SearchLoadsFileRegionsAndFindsMatchesIntoThem) {
  TempFile file("needle tail");
  Buffer b;
  b.Append("...nee");
  ASSERT_TRUE(b.AppendFile(file.fd, 3, 8).ok());  // "dle tail"
  EXPECT_EQ(b.Search("needle"), 3u);
  EXPECT_EQ(b.ToString(), "...needle tail");
}

TEST(BufferTest, RemoveToSplittingAFileRegionLoadsOnlyThePart) {
  const std::string contents = RandomBytes(100000, 10);
  TempFile file(contents);
  ReleaseCounter r;
  Buffer src;
  ASSERT_TRUE(src.AppendFile(file.fd, 0, contents.size(), r.Callback()).ok());
  Buffer dst;
  EXPECT_EQ(src.RemoveTo(dst, 1000), 1000u);
  EXPECT_EQ(dst.ToString(), contents.substr(0, 1000));
  EXPECT_EQ(r.count, 0);  // the rest is still a file region in src
  EXPECT_EQ(src.size(), contents.size() - 1000);
  EXPECT_INVARIANTS(src);
  EXPECT_INVARIANTS(dst);
  SocketPair p;
  EXPECT_EQ(PumpThroughSocket(src, p), contents.substr(1000));
  EXPECT_EQ(r.count, 1);
}

TEST(BufferTest, FileRegionPastTheEndOfTheFileIsDataLoss) {
  TempFile file("short file");
  ReleaseCounter r;
  {
    Buffer b;
    b.Append("abc");
    ASSERT_TRUE(b.AppendFile(file.fd, 0, 100, r.Callback()).ok());
    // The bytes are unavailable: the buffer reads as if it ended before the region.
    EXPECT_EQ(b.Search("file"), std::nullopt);
    EXPECT_EQ(b.ToString(), "abc");
    EXPECT_TRUE(b.Pullup(5).empty());
    const absl::Status loaded = b.LoadFileRegions();
    EXPECT_EQ(loaded.code(), absl::StatusCode::kDataLoss) << loaded;
    EXPECT_EQ(b.size(), 103u);  // nothing was lost from the buffer
    SocketPair p;
    std::string got;
    absl::Status last;
    for (int i = 0; i < 10; ++i) {
      absl::StatusOr<size_t> n = b.WriteTo(p.a);
      if (!n.ok()) {
        last = n.status();
        break;
      }
      got += DrainFd(p.b);
    }
    EXPECT_EQ(last.code(), absl::StatusCode::kDataLoss) << last;
    EXPECT_EQ(got, "abcshort file");
    EXPECT_EQ(r.count, 0);
    EXPECT_INVARIANTS(b);
  }
  EXPECT_EQ(r.count, 1);  // released with the buffer
}

TEST(BufferTest, FileRegionReleasedOnceWhenDrainedOrDestroyed) {
  TempFile file("0123456789");
  ReleaseCounter drained, destroyed;
  {
    Buffer b;
    ASSERT_TRUE(b.AppendFile(file.fd, 0, 10, drained.Callback()).ok());
    ASSERT_TRUE(b.AppendFile(file.fd, 2, 5, destroyed.Callback()).ok());
    b.Drain(4);
    EXPECT_EQ(drained.count, 0);
    b.Drain(6);
    EXPECT_EQ(drained.count, 1);
    EXPECT_EQ(b.ToString(), "23456");
    Buffer moved(std::move(b));
    EXPECT_EQ(destroyed.count, 1);  // ToString loaded it
  }
  EXPECT_EQ(drained.count, 1);
  EXPECT_EQ(destroyed.count, 1);
}

TEST(BufferTest, AppendFileRejectsBadArguments) {
  ReleaseCounter r;
  Buffer b;
  EXPECT_EQ(b.AppendFile(-1, 0, 10, r.Callback()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.AppendFile(0, -5, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.AppendFile(0, 1, SIZE_MAX).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.count, 0);  // not taken: not released
  EXPECT_TRUE(b.AppendFile(0, 0, 0, r.Callback()).ok());
  EXPECT_EQ(r.count, 1);  // empty region: released at once
  EXPECT_TRUE(b.empty());
  EXPECT_INVARIANTS(b);
}

// ---- readv / writev -----------------------------------------------------------------------

TEST(BufferTest, ReadFromAndWriteToThroughASocketPair) {
  SocketPair p;
  const std::string data = RandomBytes(100000, 11);
  Buffer out;
  out.Append(data);
  Buffer in;
  std::string got;
  while (!out.empty() || got.size() < data.size()) {
    if (!out.empty()) {
      absl::StatusOr<size_t> w = out.WriteTo(p.a);
      ASSERT_TRUE(w.ok() || IsWouldBlock(w.status())) << w.status();
    }
    for (;;) {
      absl::StatusOr<size_t> r = in.ReadFrom(p.b);
      if (!r.ok()) {
        ASSERT_TRUE(IsWouldBlock(r.status())) << r.status();
        break;
      }
      ASSERT_GT(*r, 0u);
      ASSERT_LE(*r, Buffer::kDefaultMaxRead);
    }
    ASSERT_INVARIANTS(in);
    got = in.ToString();
  }
  EXPECT_EQ(got, data);
  ::shutdown(p.a, SHUT_WR);
  absl::StatusOr<size_t> eof = in.ReadFrom(p.b);
  ASSERT_TRUE(eof.ok()) << eof.status();
  EXPECT_EQ(*eof, 0u);  // 0: end of file
  EXPECT_EQ(in.size(), data.size());
}

TEST(BufferTest, ReadFromHonoursTheCapAndUsesTheTailsRoomFirst) {
  SocketPair p;
  const std::string data(5000, 'z');
  ASSERT_EQ(::write(p.a, data.data(), data.size()), 5000);
  Buffer in;
  in.Append("0123456789");
  in.set_max_read(1000);
  absl::StatusOr<size_t> r = in.ReadFrom(p.b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 1000u);
  EXPECT_EQ(in.segment_count(), 1u);  // went into the tail's free room
  r = in.ReadFrom(p.b, 3000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3000u);
  EXPECT_EQ(in.segment_count(), 1u);  // 3086 bytes of room were left: still the tail
  EXPECT_EQ(in.ToString(), "0123456789" + std::string(4000, 'z'));
  in.set_max_read(0);
  EXPECT_EQ(in.max_read(), Buffer::kDefaultMaxRead);
  r = in.ReadFrom(p.b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1000u);
  EXPECT_EQ(in.segment_count(), 2u);  // 86 bytes in the tail's room, 914 in a fresh one
  EXPECT_EQ(Pieces(in)[0].size(), 4096u);
  r = in.ReadFrom(p.b);
  EXPECT_TRUE(IsWouldBlock(r.status())) << r.status();
  EXPECT_EQ(in.ReadFrom(p.b, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_INVARIANTS(in);
}

TEST(BufferTest, ReadFromWithABigCapSizesItsSegmentByWhatIsQueued) {
  SocketPair p;
  ASSERT_EQ(::write(p.a, "hello", 5), 5);
  Buffer in;
  absl::StatusOr<size_t> r = in.ReadFrom(p.b, 64u << 20);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 5u);
  EXPECT_EQ(in.ToString(), "hello");
  EXPECT_INVARIANTS(in);
}

TEST(BufferTest, IoErrorsCarryErrnoAndAreNotWouldBlock) {
  Buffer b;
  b.Append("x");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ::close(fds[1]);
  absl::StatusOr<size_t> r = b.ReadFrom(fds[0]);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(IsWouldBlock(r.status()));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("read"));
  absl::StatusOr<size_t> w = b.WriteTo(fds[1]);
  ASSERT_FALSE(w.ok());
  EXPECT_FALSE(IsWouldBlock(w.status()));
  EXPECT_EQ(b.ToString(), "x");  // nothing drained on error
  EXPECT_EQ(b.ReadFrom(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BufferTest, WriteToAClosedPeerIsAnErrorNotASignal) {
  SocketPair p;
  ::close(p.b);
  p.b = -1;
  Buffer b;
  b.Append("data");
  absl::StatusOr<size_t> w = b.WriteTo(p.a);  // EPIPE, with MSG_NOSIGNAL
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("sendmsg"));
}

TEST(BufferTest, WriteToGathersAtMostIovMaxSegments) {
  // 2000 reference segments of 8 bytes: one call writes IOV_MAX of them.
  std::vector<std::string> parts;
  for (int i = 0; i < 2000; ++i) {
    char tmp[16];
    std::snprintf(tmp, sizeof tmp, "%07d|", i);
    parts.emplace_back(tmp);
  }
  Buffer b;
  std::string all;
  for (const std::string& s : parts) {
    b.AppendReference(s.data(), s.size());
    all += s;
  }
  ASSERT_EQ(b.segment_count(), 2000u);
  SocketPair p;
  absl::StatusOr<size_t> w = b.WriteTo(p.a);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(*w, static_cast<size_t>(IOV_MAX) * 8);
  EXPECT_EQ(b.segment_count(), 2000u - IOV_MAX);
  w = b.WriteTo(p.a, 12);  // max: a piece of a segment
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, 12u);
  std::string got = DrainFd(p.b) + PumpThroughSocket(b, p);
  EXPECT_EQ(got, all);
}

TEST(BufferTest, WriteToPipeFallsBackToWritev) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Buffer b = Segmented({"to ", "a ", "pipe"});
  absl::StatusOr<size_t> w = b.WriteTo(fds[1]);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(*w, 9u);
  EXPECT_EQ(DrainFd(fds[0]), "to a pipe");
  EXPECT_EQ(b.WriteTo(fds[1]).value(), 0u);  // empty: no system call
  ::close(fds[0]);
  ::close(fds[1]);
}

// ---- Reserve / Commit ---------------------------------------------------------------

TEST(BufferTest, ReserveUsesTheTailsRoomThenCommitAppends) {
  Buffer b;
  b.Append("abc");
  std::span<char> room = b.Reserve(100);
  ASSERT_GE(room.size(), 100u);
  EXPECT_EQ(room.data(), Pieces(b)[0].data() + 3);  // right after the data
  std::memcpy(room.data(), "defg", 4);
  ASSERT_TRUE(b.Commit(4).ok());
  EXPECT_EQ(b.ToString(), "abcdefg");
  EXPECT_EQ(b.segment_count(), 1u);
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, ReserveMoreThanTheRoomGivesAFreshSegment) {
  Buffer b;
  b.Append(std::string(4000, 'a'));
  std::span<char> room = b.Reserve(5000);
  ASSERT_GE(room.size(), 5000u);
  EXPECT_EQ(b.segment_count(), 1u);  // not linked until committed
  EXPECT_INVARIANTS(b);
  std::memset(room.data(), 'b', 5000);
  ASSERT_TRUE(b.Commit(5000).ok());
  EXPECT_EQ(b.segment_count(), 2u);
  EXPECT_EQ(b.ToString(), std::string(4000, 'a') + std::string(5000, 'b'));
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, CommitChecksTheReservation) {
  Buffer b;
  EXPECT_EQ(b.Commit(1).code(), absl::StatusCode::kFailedPrecondition);  // none
  std::span<char> room = b.Reserve(10);
  EXPECT_EQ(b.Commit(room.size() + 1).code(), absl::StatusCode::kInvalidArgument);
  room[0] = 'x';
  ASSERT_TRUE(b.Commit(1).ok());  // still valid after the rejected commit
  EXPECT_EQ(b.Commit(1).code(), absl::StatusCode::kFailedPrecondition);  // used up
  room = b.Reserve(10);
  b.Append("y");  // any change cancels the reservation
  EXPECT_EQ(b.Commit(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.ToString(), "xy");
  room = b.Reserve(10000);
  b.Drain(1);
  EXPECT_EQ(b.Commit(1).code(), absl::StatusCode::kFailedPrecondition);
  b.Reserve(10);
  ASSERT_TRUE(b.Commit(0).ok());
  EXPECT_EQ(b.ToString(), "y");
  EXPECT_INVARIANTS(b);
}

// ---- Size callbacks ------------------------------------------------------------------

// (orig_size, added, deleted).
using Change = std::tuple<size_t, size_t, size_t>;

// libevent's log_change_callback: "old->new; ".
Buffer::SizeCallback LogChanges(std::string* log) {
  return [log](Buffer&, const SizeChange& c) {
    *log += std::to_string(c.orig_size) + "->" + std::to_string(c.orig_size + c.added - c.deleted) +
            "; ";
  };
}

TEST(BufferTest, CallbacksFromLibevent) {
  // test_evbuffer_callbacks.
  Buffer buf;
  std::string out1, out2;
  const Buffer::CallbackId cb1 = buf.AddCallback(LogChanges(&out1));
  const Buffer::CallbackId cb2 = buf.AddCallback(LogChanges(&out2));
  buf.Append("The 2 magic words are spotty pudding");  // 0 -> 36
  EXPECT_TRUE(buf.SetCallbackEnabled(cb2, false));
  buf.Drain(10);         // 36 -> 26
  buf.Prepend("Hello");  // 26 -> 31
  EXPECT_TRUE(buf.SetCallbackEnabled(cb2, true));
  buf.AppendReference("Goodbye", 7);  // 31 -> 38
  EXPECT_TRUE(buf.RemoveCallback(cb1));
  buf.Clear();  // 38 -> 0
  EXPECT_FALSE(buf.RemoveCallback(cb1));
  buf.Append("X");  // 0 -> 1
  EXPECT_TRUE(buf.RemoveCallback(cb2));
  EXPECT_EQ(out1, "0->36; 36->26; 26->31; 31->38; ");
  EXPECT_EQ(out2, "0->36; 31->38; 38->0; 0->1; ");

  // A callback that drains what was added, right away.
  buf.Clear();
  buf.AddCallback([](Buffer& b, const SizeChange& c) {
    if (c.added > c.deleted) b.Drain(b.size());
  });
  buf.Append("This should get drained right away.");
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_INVARIANTS(buf);
}

TEST(BufferTest, CallbacksGetExactNumbersForEveryOperation) {
  std::vector<Change> seen;
  Buffer b;
  b.AddCallback([&](Buffer& buf, const SizeChange& c) {
    seen.emplace_back(c.orig_size, c.added, c.deleted);
    EXPECT_EQ(c.orig_size + c.added - c.deleted, buf.size());
  });
  b.Append("hello");                // (0, 5, 0)
  b.Prepend("<<");                  // (5, 2, 0)
  b.Drain(1);                       // (7, 0, 1)
  EXPECT_TRUE(b.Pullup(3).size());  // no change
  char tmp[3];
  b.CopyOut(tmp, 3);                               // no change
  b.Remove(tmp, 2);                                // (6, 0, 2)
  b.Append("\r\nrest");                            // (4, 6, 0)
  EXPECT_EQ(b.ReadLine(EolStyle::kCrlf), "ello");  // (10, 0, 6): line + EOL at once
  std::span<char> room = b.Reserve(3);
  std::memcpy(room.data(), "abc", 3);
  ASSERT_TRUE(b.Commit(3).ok());  // (4, 3, 0)
  b.Drain(0);                     // nothing
  b.Append("");                   // nothing
  EXPECT_THAT(seen, ElementsAre(Change{0, 5, 0}, Change{5, 2, 0}, Change{7, 0, 1}, Change{6, 0, 2},
                                Change{4, 6, 0}, Change{10, 0, 6}, Change{4, 3, 0}));
}

TEST(BufferTest, CallbacksOnBothSidesOfAMove) {
  std::string log_a, log_b;
  Buffer a, b;
  a.Append("12345");
  b.Append("ab");
  a.AddCallback(LogChanges(&log_a));
  b.AddCallback(LogChanges(&log_b));
  b.Append(std::move(a));
  EXPECT_EQ(log_b, "2->7; ");
  EXPECT_EQ(log_a, "5->0; ");
  b.RemoveTo(a, 3);
  EXPECT_EQ(log_a, "5->0; 0->3; ");
  EXPECT_EQ(log_b, "2->7; 7->4; ");
  a.Prepend(std::move(b));
  EXPECT_EQ(log_a, "5->0; 0->3; 3->7; ");
  EXPECT_EQ(log_b, "2->7; 7->4; 4->0; ");
  // Moving the object itself runs no callback, and they stay with their object.
  Buffer c(std::move(a));
  EXPECT_EQ(log_a, "5->0; 0->3; 3->7; ");
  c.Append("x");
  EXPECT_EQ(log_a, "5->0; 0->3; 3->7; ");
  a.Append("y");
  EXPECT_EQ(log_a, "5->0; 0->3; 3->7; 0->1; ");
}

TEST(BufferTest, CallbacksOnSocketIo) {
  SocketPair p;
  std::string log;
  Buffer out, in;
  out.Append("0123456789");
  out.AddCallback(LogChanges(&log));
  in.AddCallback(LogChanges(&log));
  ASSERT_EQ(out.WriteTo(p.a, 4).value(), 4u);
  ASSERT_EQ(in.ReadFrom(p.b).value(), 4u);
  EXPECT_EQ(log, "10->6; 0->4; ");
}

TEST(BufferTest, CallbacksMayRemoveThemselvesAndOthersAndAddMore) {
  Buffer b;
  std::vector<std::string> calls;
  Buffer::CallbackId first = 0, second = 0, third = 0;
  first = b.AddCallback([&](Buffer& buf, const SizeChange&) {
    calls.push_back("first");
    buf.RemoveCallback(first);   // itself
    buf.RemoveCallback(second);  // one not yet called in this round
    buf.AddCallback([&](Buffer&, const SizeChange&) { calls.push_back("added"); });
  });
  second = b.AddCallback([&](Buffer&, const SizeChange&) { calls.push_back("second"); });
  third = b.AddCallback([&](Buffer&, const SizeChange&) { calls.push_back("third"); });
  b.Append("x");
  EXPECT_THAT(calls, ElementsAre("first", "third"));
  calls.clear();
  b.Append("y");
  EXPECT_THAT(calls, ElementsAre("third", "added"));
  EXPECT_TRUE(b.RemoveCallback(third));
  EXPECT_FALSE(b.RemoveCallback(second));
  EXPECT_INVARIANTS(b);
}

TEST(BufferTest, NestedChangesFromACallbackAreReportedByTheirOwnRound) {
  Buffer b;
  std::string log;
  b.AddCallback(LogChanges(&log));
  b.AddCallback([](Buffer& buf, const SizeChange& c) {
    if (c.added == 5) buf.Append("!!");  // runs the callbacks again, nested
  });
  b.Append("hello");
  // The outer round told both callbacks 0->5; the nested one 5->7.
  EXPECT_EQ(log, "0->5; 5->7; ");
  EXPECT_EQ(b.ToString(), "hello!!");
}

TEST(BufferTest, SuspendedCallbacksRunOnceWithTheSum) {
  Buffer b;
  b.Append("abc");
  std::vector<Change> seen;
  b.AddCallback(
      [&](Buffer&, const SizeChange& c) { seen.emplace_back(c.orig_size, c.added, c.deleted); });
  b.SuspendCallbacks();
  b.SuspendCallbacks();
  b.Append("defg");
  b.Drain(2);
  b.ResumeCallbacks();
  EXPECT_TRUE(seen.empty());  // still suspended once
  b.Append("h");
  b.ResumeCallbacks();
  EXPECT_THAT(seen, ElementsAre(Change{3, 5, 2}));
  b.SuspendCallbacks();
  b.ResumeCallbacks();  // nothing changed: no call
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_INVARIANTS(b);
}

// ---- Empty segments (libevent's *_with_empty cases) --------------------------------------

TEST(BufferTest, NoSequenceLeavesAnEmptySegmentInTheChain) {
  Buffer a, b;
  // Moves of empty buffers, both ways.
  a.Append(std::move(b));
  a.Prepend(std::move(b));
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_INVARIANTS(a);
  // A reservation on the source is cancelled, not moved as an empty segment.
  b.Reserve(100000);
  a.Append(std::move(b));
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_INVARIANTS(a);
  EXPECT_INVARIANTS(b);
  // Reserve then commit nothing.
  a.Reserve(10);
  ASSERT_TRUE(a.Commit(0).ok());
  EXPECT_EQ(a.segment_count(), 0u);
  // Zero-length operations.
  a.Append("", 0);
  a.Append(nullptr, 0);
  a.Prepend("", 0);
  a.AppendReference(nullptr, 0);
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_TRUE(a.Pullup(Buffer::kAll).empty());
  EXPECT_EQ(a.RemoveTo(b, 10), 0u);
  EXPECT_EQ(a.Drain(10), 0u);
  EXPECT_EQ(a.ReadLine(EolStyle::kAny), std::nullopt);
  EXPECT_EQ(a.Search("x"), std::nullopt);
  EXPECT_INVARIANTS(a);
  // Drain to empty in the middle of a chain of references, then add again.
  a.AppendReference("ab", 2);
  a.Append("cd");
  a.AppendReference("ef", 2);
  a.Drain(6);
  EXPECT_EQ(a.segment_count(), 0u);
  EXPECT_INVARIANTS(a);
  a.Append("gh");
  a.Prepend(std::move(b));  // empty prepend onto non-empty
  EXPECT_EQ(a.ToString(), "gh");
  EXPECT_EQ(a.segment_count(), 1u);
  // Remove everything through RemoveTo, then pull up the destination.
  Buffer c;
  c.AppendReference("xy", 2);
  EXPECT_EQ(a.RemoveTo(c, 2), 2u);
  EXPECT_EQ(c.Pullup(4), "xygh");
  EXPECT_INVARIANTS(a);
  EXPECT_INVARIANTS(c);
}

// ---- Randomized differential test ------------------------------------------------------

TEST(BufferTest, RandomOperationsMatchAStringModel) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    Buffer b[2];
    std::string m[2];
    std::vector<std::unique_ptr<std::string>> referenced;
    int released = 0;
    int references = 0;
    auto rand_text = [&](size_t max_len) {
      std::string s(rng() % (max_len + 1), 'a');
      for (char& c : s) c = "ab\r\n\0x"[rng() % 6];
      return s;
    };
    for (int step = 0; step < 3000; ++step) {
      const int i = static_cast<int>(rng() % 2);
      Buffer& x = b[i];
      std::string& mx = m[i];
      switch (rng() % 15) {
        case 0: {
          std::string s = rand_text(rng() % 4 == 0 ? 9000 : 60);
          x.Append(s);
          mx += s;
          break;
        }
        case 1: {
          std::string s = rand_text(40);
          x.Prepend(s);
          mx = s + mx;
          break;
        }
        case 2: {
          const size_t n = rng() % (mx.size() + 5);
          x.Drain(n);
          mx.erase(0, std::min(n, mx.size()));
          break;
        }
        case 3: {
          b[1 - i].Append(std::move(x));
          m[1 - i] += mx;
          mx.clear();
          break;
        }
        case 4: {
          const size_t n = rng() % (mx.size() + 5);
          const size_t moved = x.RemoveTo(b[1 - i], n);
          ASSERT_EQ(moved, std::min(n, mx.size()));
          m[1 - i] += mx.substr(0, moved);
          mx.erase(0, moved);
          break;
        }
        case 5: {
          referenced.push_back(std::make_unique<std::string>(rand_text(30)));
          const std::string& r = *referenced.back();
          ++references;
          x.AppendReference(r.data(), r.size(), [&released] { ++released; });
          mx += r;
          break;
        }
        case 6: {
          const size_t n = rng() % (mx.size() + 3);
          const std::string_view v = x.Pullup(n);
          if (n == 0 || n > mx.size()) {
            ASSERT_TRUE(v.empty());
          } else {
            ASSERT_EQ(v, mx.substr(0, n));
          }
          break;
        }
        case 7:
        case 8: {
          const EolStyle style = kAllStyles[rng() % 5];
          ASSERT_EQ(x.ReadLine(style), ModelReadLine(mx, style));
          break;
        }
        case 9: {
          std::string needle = rand_text(4);
          if (needle.empty()) needle = "a";
          const size_t from = rng() % (mx.size() + 2);
          const size_t p = from <= mx.size() ? mx.find(needle, from) : std::string::npos;
          ASSERT_EQ(x.Search(needle, from),
                    p == std::string::npos ? std::nullopt : std::optional<size_t>(p));
          break;
        }
        case 10: {
          const size_t want = 1 + rng() % 6000;
          std::span<char> room = x.Reserve(want);
          ASSERT_GE(room.size(), want);
          const size_t n = rng() % (want + 1);
          for (size_t k = 0; k < n; ++k) room[k] = static_cast<char>('A' + k % 26);
          ASSERT_TRUE(x.Commit(n).ok());
          for (size_t k = 0; k < n; ++k) mx += static_cast<char>('A' + k % 26);
          break;
        }
        case 11: {
          const size_t from = rng() % (mx.size() + 2);
          const size_t n = rng() % 100;
          std::string out(n, '\0');
          const size_t got = x.CopyOut(from, out.data(), n);
          const std::string want = from < mx.size() ? mx.substr(from, n) : "";
          ASSERT_EQ(out.substr(0, got), want);
          break;
        }
        case 12: {
          const size_t from = rng() % (mx.size() + 2);
          const EolStyle style = kAllStyles[rng() % 5];
          const std::optional<EolMatch> got = x.SearchEol(style, from);
          const std::optional<EolMatch> want = ModelEol(mx, style, from);
          ASSERT_EQ(got.has_value(), want.has_value());
          if (got) {
            ASSERT_EQ(got->position, want->position);
            ASSERT_EQ(got->length, want->length);
          }
          break;
        }
        case 13: {
          Buffer moved(std::move(x));
          x = std::move(moved);
          break;
        }
        case 14: {
          // A reservation abandoned by the next change.
          x.Reserve(1 + rng() % 9000);
          break;
        }
      }
      ASSERT_INVARIANTS(b[0]) << "seed " << seed << " step " << step;
      ASSERT_INVARIANTS(b[1]) << "seed " << seed << " step " << step;
      ASSERT_EQ(b[0].size(), m[0].size());
      ASSERT_EQ(b[1].size(), m[1].size());
    }
    ASSERT_EQ(b[0].ToString(), m[0]);
    ASSERT_EQ(b[1].ToString(), m[1]);
    b[0] = Buffer();
    b[1] = Buffer();
    EXPECT_EQ(released, references) << "seed " << seed;
  }
}

}  // namespace
}  // namespace evactor
