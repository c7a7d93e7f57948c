// A plain-string model of Buffer's end-of-line search (libevent's rules), shared by
// buffer_test and the fuzzer, which check the real Buffer against it.
#ifndef EVACTOR_TESTS_IO_EOL_MODEL_H_
#define EVACTOR_TESTS_IO_EOL_MODEL_H_

#include <optional>
#include <string>

#include "io/buffer.h"

namespace evactor::test_model {

// Where the first end of line at or after `from` is in `s`, under `style`.
inline std::optional<EolMatch> ModelEol(const std::string& s, EolStyle style, size_t from = 0) {
  if (from >= s.size()) return std::nullopt;
  size_t p;
  switch (style) {
    case EolStyle::kLf:
      p = s.find('\n', from);
      if (p == std::string::npos) return std::nullopt;
      return EolMatch{p, 1};
    case EolStyle::kNul:
      p = s.find('\0', from);
      if (p == std::string::npos) return std::nullopt;
      return EolMatch{p, 1};
    case EolStyle::kCrlf:
      p = s.find('\n', from);
      if (p == std::string::npos) return std::nullopt;
      if (p > from && s[p - 1] == '\r') return EolMatch{p - 1, 2};
      return EolMatch{p, 1};
    case EolStyle::kCrlfStrict:
      p = s.find("\r\n", from);
      if (p == std::string::npos) return std::nullopt;
      return EolMatch{p, 2};
    case EolStyle::kAny: {
      p = s.find_first_of("\r\n", from);
      if (p == std::string::npos) return std::nullopt;
      size_t q = p;
      while (q < s.size() && (s[q] == '\r' || s[q] == '\n')) ++q;
      return EolMatch{p, q - p};
    }
  }
  return std::nullopt;
}

}  // namespace evactor::test_model

#endif  // EVACTOR_TESTS_IO_EOL_MODEL_H_
