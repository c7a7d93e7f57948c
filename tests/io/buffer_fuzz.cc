// Fuzzer for evactor::Buffer's line reading and searching, differential against a
// std::string model of libevent's rules.
//
// The input is a little program: each step is an opcode byte, an argument byte and,
// for some opcodes, bytes of data. Steps build a chain with segment boundaries where
// the input says (appends into fresh segments, copies into the tail, references to
// the input itself, prepends, moves through a second buffer), and then read lines in
// every EOL style, search for needles and EOLs from arbitrary positions, pull up and
// drain. Every result is compared with the model, and the invariants are checked;
// any difference aborts.
//
// Two ways to run it:
//   - the real fuzzer: tools/fuzz buffer [seconds] builds this file with
//     clang++ -fsanitize=fuzzer,address,undefined -DEVACTOR_LIBFUZZER and runs it;
//   - the corpus replay (//tests/io:buffer_fuzz_replay_test, part of every
//     `bazel test`): without EVACTOR_LIBFUZZER this file also defines a test that feeds
//     every file of tests/io/buffer_fuzz_corpus/ through LLVMFuzzerTestOneInput.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "io/buffer.h"
#include "tests/io/eol_model.h"

namespace evactor {
namespace {

using test_model::ModelEol;


[[noreturn]] void Fail(const char* what, size_t step) {
  std::fprintf(stderr, "buffer_fuzz: mismatch in %s at step %zu\n", what, step);
  std::abort();
}

void Check(bool ok, const char* what, size_t step) {
  if (!ok) Fail(what, step);
}

constexpr EolStyle kStyles[] = {EolStyle::kAny, EolStyle::kCrlf, EolStyle::kCrlfStrict,
                                EolStyle::kLf, EolStyle::kNul};

// Reads the input as steps; see the file comment.
class Program {
 public:
  Program(const uint8_t* data, size_t size) : in_(reinterpret_cast<const char*>(data), size) {}

  void Run() {
    size_t step = 0;
    while (!in_.empty()) {
      const uint8_t op = Byte();
      const uint8_t arg = Byte();
      Step(op, arg, step);
      const absl::Status inv = b_.CheckInvariants();
      if (!inv.ok()) {
        std::fprintf(stderr, "%s\n", std::string(inv.message()).c_str());
        Fail("invariants", step);
      }
      Check(b_.size() == model_.size(), "size", step);
      ++step;
    }
    Check(b_.ToString() == model_, "final contents", step);
  }

 private:
  uint8_t Byte() {
    if (in_.empty()) return 0;
    const uint8_t c = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return c;
  }
  std::string_view Take(size_t n) {
    n = std::min(n, in_.size());
    std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }
  // A position in [0, size + 1] from an argument byte, scaled for big buffers.
  size_t Pos(uint8_t arg) const {
    const size_t range = model_.size() + 2;
    return range <= 256 ? arg % range : static_cast<size_t>(arg) * range / 256;
  }

  void Step(uint8_t op, uint8_t arg, size_t step) {
    switch (op % 13) {
      case 0: {  // bytes in a segment of their own
        const std::string_view s = Take(arg % 64);
        Buffer piece;
        piece.Append(s);
        b_.Append(std::move(piece));
        model_ += s;
        break;
      }
      case 1: {  // bytes copied into the tail
        const std::string_view s = Take(arg % 64);
        b_.Append(s);
        model_ += s;
        break;
      }
      case 2: {  // a reference to the input itself (it outlives the buffer)
        const std::string_view s = Take(arg % 64);
        b_.AppendReference(s.data(), s.size());
        model_ += s;
        break;
      }
      case 3: {  // a long run, to cross the 4 KiB segment size
        const std::string_view s = Take(4);
        std::string run;
        for (int i = 0; i < (arg % 32) * 64; ++i) {
          run += s.empty() ? 'x' : s[static_cast<size_t>(i) % s.size()];
        }
        b_.Append(run);
        model_ += run;
        break;
      }
      case 4:
      case 5: {  // read a line
        const EolStyle style = kStyles[arg % 5];
        std::optional<EolMatch> m = ModelEol(model_, style, 0);
        std::optional<std::string> want;
        if (m) {
          want = model_.substr(0, m->position);
          model_.erase(0, m->position + m->length);
        }
        if (arg & 0x80) {
          std::string line = "unchanged";
          const bool got = b_.ReadLineInto(style, &line);
          Check(got == want.has_value(), "ReadLineInto found", step);
          Check(got ? line == *want : line == "unchanged", "ReadLineInto line", step);
        } else {
          Check(b_.ReadLine(style) == want, "ReadLine", step);
        }
        break;
      }
      case 6: {  // search for bytes from the input
        const std::string_view needle = Take(1 + arg % 8);
        const size_t from = Pos(Byte());
        const size_t to = (arg & 0x80) ? Buffer::kAll : Pos(Byte());
        std::optional<size_t> want;
        const size_t end = std::min(to, model_.size());
        if (from <= end) {
          const size_t p = std::string_view(model_).substr(0, end).find(needle, from);
          if (p != std::string_view::npos) want = p;
        }
        Check(b_.Search(needle, from, to) == want, "Search", step);
        break;
      }
      case 7: {  // search for a needle that is in the buffer
        if (model_.empty()) break;
        const size_t at = Pos(arg) % model_.size();
        const std::string needle = model_.substr(at, 1 + Byte() % 12);
        const size_t from = Pos(Byte());
        const size_t p = from <= model_.size() ? model_.find(needle, from) : std::string::npos;
        Check(b_.Search(needle, from) ==
                  (p == std::string::npos ? std::nullopt : std::optional<size_t>(p)),
              "Search present", step);
        break;
      }
      case 8: {  // SearchEol from a position
        const EolStyle style = kStyles[arg % 5];
        const size_t from = Pos(Byte());
        const std::optional<EolMatch> got = b_.SearchEol(style, from);
        const std::optional<EolMatch> want = ModelEol(model_, style, from);
        Check(got.has_value() == want.has_value(), "SearchEol found", step);
        if (got) {
          Check(got->position == want->position && got->length == want->length, "SearchEol", step);
        }
        break;
      }
      case 9: {  // drain
        const size_t n = Pos(arg);
        Check(b_.Drain(n) == std::min(n, model_.size()), "Drain", step);
        model_.erase(0, std::min(n, model_.size()));
        break;
      }
      case 10: {  // prepend
        const std::string_view s = Take(arg % 32);
        b_.Prepend(s);
        model_.insert(0, s);
        break;
      }
      case 11: {  // pull up
        const size_t n = Pos(arg);
        const std::string_view v = b_.Pullup(n);
        if (n == 0 || n > model_.size()) {
          Check(v.empty(), "Pullup empty", step);
        } else {
          Check(v == std::string_view(model_).substr(0, n), "Pullup", step);
        }
        break;
      }
      case 12: {  // move a prefix out and back in front: new segment boundaries
        const size_t n = Pos(arg);
        Buffer other;
        const size_t moved = b_.RemoveTo(other, n);
        Check(moved == std::min(n, model_.size()), "RemoveTo", step);
        b_.Prepend(std::move(other));
        break;
      }
    }
  }

  std::string_view in_;
  Buffer b_;
  std::string model_;
};

}  // namespace
}  // namespace evactor

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evactor::Program(data, size).Run();
  return 0;
}

#ifndef EVACTOR_LIBFUZZER
// ---- Corpus replay (the normal build) -------------------------------------------------

#include "gtest/gtest.h"
#include "tests/fuzz_corpus.h"

namespace evactor {
namespace {

TEST(BufferFuzzReplay, EveryCorpusInputPasses) {
  test::ReplayCorpus("tests/io/buffer_fuzz_corpus", LLVMFuzzerTestOneInput);
}

}  // namespace
}  // namespace evactor
#endif  // EVACTOR_LIBFUZZER
