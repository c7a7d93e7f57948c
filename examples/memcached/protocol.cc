#include "examples/memcached/protocol.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace evactor::memcached {
namespace {

// memcached's response strings, verbatim.
constexpr std::string_view kError = "ERROR";
constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";
constexpr std::string_view kBadDataChunk = "CLIENT_ERROR bad data chunk";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument";
constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr std::string_view kBadDeleteUsage =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
constexpr std::string_view kNonNumeric =
    "CLIENT_ERROR cannot increment or decrement non-numeric value";
constexpr std::string_view kTooLarge = "SERVER_ERROR object too large for cache";
constexpr std::string_view kNoMemoryStoring = "SERVER_ERROR out of memory storing object";
constexpr std::string_view kNoMemory = "SERVER_ERROR out of memory";
constexpr std::string_view kShutdownRefused = "ERROR: shutdown not enabled";
constexpr std::string_view kBadShutdownMode = "CLIENT_ERROR invalid shutdown mode";
constexpr std::string_view kFlushNotAllowed = "CLIENT_ERROR flush_all not allowed";
constexpr std::string_view kDuplicateFlag = "CLIENT_ERROR duplicate flag";
constexpr std::string_view kInvalidFlag = "CLIENT_ERROR invalid flag";
constexpr std::string_view kBadToken = "CLIENT_ERROR bad token in command line format";
constexpr std::string_view kBadKeyEncoding = "CLIENT_ERROR error decoding key";
constexpr std::string_view kBadMLength = "CLIENT_ERROR incorrect length for M token";
constexpr std::string_view kBadInitial = "CLIENT_ERROR invalid numeric initial value";
constexpr std::string_view kBadDeltaToken = "CLIENT_ERROR invalid numeric delta value";
constexpr std::string_view kInvalidOrDuplicateFlag = "CLIENT_ERROR invalid or duplicate flag";
constexpr std::string_view kOpaqueTooLong = "CLIENT_ERROR opaque token too long";
constexpr std::string_view kMgFlagsTooLong = "CLIENT_ERROR options flags are too long";
constexpr std::string_view kFlagsTooLong = "CLIENT_ERROR options flags too long";
constexpr std::string_view kBadMsMode = "CLIENT_ERROR invalid mode for ms M token";
constexpr std::string_view kBadMaMode = "CLIENT_ERROR invalid mode for ma M token";

// memcached tokenizes into at most 24 tokens (the last one holding the rest) and
// counts the terminal one; "too many tokens" checks compare against these counts.
constexpr size_t kMaxMetaTokens = 20;  // MFLAG_MAX_OPT_LENGTH, terminal token included
constexpr size_t kMaxOpaqueLength = 32;

constexpr size_t kInitialCapacity = 16 * 1024;
// A buffer grown past this for one large request is given back once drained.
constexpr size_t kRetainedCapacity = 64 * 1024;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// The common core of memcached's safe_strtoul/strtol/strtoull: optional whitespace and
// sign, at least one digit, then the end of the token or a whitespace character.
bool ParseDigits(std::string_view s, bool* negative, uint64_t* magnitude) {
  size_t i = 0;
  while (i < s.size() && IsSpace(s[i])) ++i;
  *negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    *negative = s[i] == '-';
    ++i;
  }
  const size_t first = i;
  uint64_t n = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    n = n * 10 + digit;
  }
  if (i == first || (i < s.size() && !IsSpace(s[i]))) return false;
  *magnitude = n;
  return true;
}

// Unsigned fields reject any negative number but zero, as memcached's safe_strto*u do.
bool ParseU32(std::string_view s, uint32_t* out) {
  bool negative;
  uint64_t n;
  if (!ParseDigits(s, &negative, &n) || (negative && n != 0) ||
      n > std::numeric_limits<uint32_t>::max()) {
    return false;
  }
  *out = static_cast<uint32_t>(n);
  return true;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  bool negative;
  uint64_t n;
  if (!ParseDigits(s, &negative, &n) || (negative && n != 0)) return false;
  *out = n;
  return true;
}

bool ParseI32(std::string_view s, int64_t* out) {
  bool negative;
  uint64_t n;
  if (!ParseDigits(s, &negative, &n)) return false;
  constexpr uint64_t kMax = std::numeric_limits<int32_t>::max();
  if (n > kMax + (negative ? 1 : 0)) return false;
  *out = negative ? -static_cast<int64_t>(n) : static_cast<int64_t>(n);
  return true;
}

// memcached splits command lines on spaces only (a tab is part of a token).
void Tokenize(std::string_view line, absl::InlinedVector<std::string_view, 24>* tokens) {
  tokens->clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) tokens->push_back(line.substr(start, i - start));
  }
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Decodes a base64 key (meta b flag) into *out the way memcached's base64_decode does:
// characters outside the alphabet are skipped, the rest must come in whole 4-character
// groups, and decoding stops after the first group with padding. False if that fails
// or yields nothing.
bool DecodeKey(std::string_view encoded, std::string* out) {
  auto sextet = [](unsigned char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    if (c == '=') return 0;
    return -1;
  };
  out->clear();
  size_t count = 0;
  for (char c : encoded) count += sextet(static_cast<unsigned char>(c)) >= 0 ? 1 : 0;
  if (count == 0 || count % 4 != 0) return false;
  int block[4];
  int filled = 0;
  int padding = 0;
  for (char c : encoded) {
    const int v = sextet(static_cast<unsigned char>(c));
    if (v < 0) continue;
    if (c == '=') ++padding;
    block[filled++] = v;
    if (filled < 4) continue;
    out->push_back(static_cast<char>((block[0] << 2) | (block[1] >> 4)));
    out->push_back(static_cast<char>((block[1] << 4) | (block[2] >> 2)));
    out->push_back(static_cast<char>((block[2] << 6) | block[3]));
    filled = 0;
    if (padding > 0) {
      if (padding > 2) return false;
      out->resize(out->size() - padding);
      break;
    }
  }
  return !out->empty();
}

}  // namespace

// ---------------------------------------------------------------------------------
// Request

// Field by field: assigning a fresh Request trips g++ 12's -Wuninitialized false
// positive on absl::InlinedVector's move at -O1. Keep in step with the struct.
void Request::Clear() {
  command = Command::kError;
  keys.clear();
  data = {};
  flags = 0;
  exptime = 0;
  cas = 0;
  delta = 0;
  verbosity = 0;
  noreply = false;
  too_large = false;
  key_binary = false;
  stats_group = StatsGroup::kGeneral;
  meta = MetaFlags();
  error = {};
}

OwnedRequest::OwnedRequest(const Request& request) : request_(request) {
  size_t total = request.data.size() + request.meta.tokens.size();
  for (std::string_view key : request.keys) total += key.size();
  bytes_ = std::make_unique<char[]>(std::max<size_t>(total, 1));
  char* p = bytes_.get();
  auto copy = [&p](std::string_view s) {
    if (s.empty()) return std::string_view();
    std::memcpy(p, s.data(), s.size());
    std::string_view copied(p, s.size());
    p += s.size();
    return copied;
  };
  for (std::string_view& key : request_.keys) key = copy(key);
  request_.data = copy(request.data);
  request_.meta.tokens = copy(request.meta.tokens);
  // request_.error always points at a string literal; nothing to copy.
}

// ---------------------------------------------------------------------------------
// RequestParser

struct RequestParser::LineResult {
  bool needs_data = false;  // a data block of data_length bytes + "\r\n" follows
  size_t data_length = 0;
  uint64_t swallow = 0;  // bytes to discard after the line (rejected data block)
};

RequestParser::RequestParser(const ParserOptions& options) : options_(options) {}

void RequestParser::MakeRoom(size_t n) {
  const size_t live = buffered();
  const size_t needed = live + n;
  const bool oversized = capacity_ > kRetainedCapacity && needed <= kRetainedCapacity / 2;
  if (!oversized && tail_ + n <= capacity_) return;
  if (!oversized && needed <= capacity_) {
    std::memmove(buffer_.get(), buffer_.get() + head_, live);
  } else {
    size_t capacity = kInitialCapacity;
    while (capacity < needed) capacity *= 2;
    auto grown = std::make_unique<char[]>(capacity);
    if (live > 0) std::memcpy(grown.get(), buffer_.get() + head_, live);
    buffer_ = std::move(grown);
    capacity_ = capacity;
  }
  head_ = 0;
  tail_ = live;
}

void RequestParser::Feed(std::string_view bytes) {
  if (closed_) return;
  if (swallow_ > 0 && head_ == tail_) {
    // Rejected data: drop it on arrival rather than buffering up to its full size.
    const size_t skip = static_cast<size_t>(std::min<uint64_t>(swallow_, bytes.size()));
    bytes.remove_prefix(skip);
    swallow_ -= skip;
  }
  if (bytes.empty()) return;
  MakeRoom(bytes.size());
  std::memcpy(buffer_.get() + tail_, bytes.data(), bytes.size());
  tail_ += bytes.size();
}

std::span<char> RequestParser::Reserve(size_t min_bytes) {
  MakeRoom(std::max<size_t>(min_bytes, 1));
  return std::span<char>(buffer_.get() + tail_, capacity_ - tail_);
}

void RequestParser::Commit(size_t n) {
  tail_ += std::min(n, capacity_ - tail_);
  DiscardSwallowed();
}

void RequestParser::DiscardSwallowed() {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(swallow_, buffered()));
  head_ += n;
  swallow_ -= n;
  if (n > 0) scan_ = 0;
}

size_t RequestParser::LineLimit(const char* line, size_t length) const {
  // Multi-key gets are the one legitimately long line (memcached makes the same
  // exception, for leading spaces up to 100 bytes).
  std::string_view s(line, std::min<size_t>(length, 110));
  size_t spaces = 0;
  while (spaces < s.size() && s[spaces] == ' ') ++spaces;
  if (spaces <= 100) {
    s.remove_prefix(spaces);
    if (StartsWith(s, "get ") || StartsWith(s, "gets ") || StartsWith(s, "gat ") ||
        StartsWith(s, "gats ")) {
      return std::max(options_.max_retrieval_line_length, options_.max_line_length);
    }
  }
  return options_.max_line_length;
}

ParseStatus RequestParser::Next(Request* request) {
  if (closed_) return ParseStatus::kClose;
  DiscardSwallowed();
  if (swallow_ > 0 || buffered() == 0) return ParseStatus::kNeedMore;
  if (wanted_ > buffered()) return ParseStatus::kNeedMore;
  char* begin = buffer_.get() + head_;
  const size_t available = buffered();
  const void* newline = std::memchr(begin + scan_, '\n', available - scan_);
  if (newline == nullptr) {
    scan_ = available;
    // A trailing '\r' may be the first half of the end of line, which does not count.
    const size_t partial = available - (begin[available - 1] == '\r' ? 1 : 0);
    if (partial > LineLimit(begin, available)) {
      closed_ = true;
      return ParseStatus::kClose;
    }
    return ParseStatus::kNeedMore;
  }
  const size_t line_length = static_cast<const char*>(newline) - begin;
  // "\r\n" or a bare "\n" (memcached only strips the '\r' of a line with content).
  size_t content = line_length;
  if (content > 1 && begin[content - 1] == '\r') --content;
  if (content > LineLimit(begin, content)) {
    closed_ = true;
    return ParseStatus::kClose;
  }

  request->Clear();
  LineResult result;
  ParseLine(std::string_view(begin, content), request, &result);
  size_t consumed = line_length + 1;
  if (result.needs_data) {
    const size_t total = consumed + result.data_length + 2;
    if (available < total) {
      // Parsed again once the block is here; ParseLine left the buffer untouched.
      wanted_ = total;
      scan_ = line_length;
      return ParseStatus::kNeedMore;
    }
    const char* data = begin + consumed;
    if (data[result.data_length] == '\r' && data[result.data_length + 1] == '\n') {
      request->data = std::string_view(data, result.data_length);
    } else {
      // Exactly <bytes>+2 were consumed, as memcached does; what follows is parsed as
      // the next command. Meta commands report errors despite q.
      const bool noreply = request->command != Command::kMetaSet && request->noreply;
      request->Clear();
      request->command = Command::kError;
      request->error = kBadDataChunk;
      request->noreply = noreply;
    }
    consumed = total;
  }
  if (request->key_binary && request->command != Command::kError) {
    // The decoded key is never longer than its base64 form: decode in place, so the
    // view lives as long as the others.
    char* key = begin + (request->keys[0].data() - begin);
    std::memcpy(key, key_scratch_.data(), key_scratch_.size());
    request->keys[0] = std::string_view(key, key_scratch_.size());
  }
  last_line_ = std::string_view(begin, content);
  head_ += consumed;
  scan_ = 0;
  wanted_ = 0;
  swallow_ = result.swallow;
  DiscardSwallowed();
  return ParseStatus::kRequest;
}

void RequestParser::ParseLine(std::string_view line, Request* request, LineResult* result) {
  Tokenize(line, &tokens_);
  const size_t n = tokens_.size();
  auto fail = [request](std::string_view error) {
    const bool noreply = request->noreply;
    request->Clear();
    request->command = Command::kError;
    request->error = error;
    request->noreply = noreply;
  };
  // noreply is only recognised as the last token (memcached's set_noreply_maybe).
  auto last_is_noreply = [&] { return n >= 2 && tokens_[n - 1] == "noreply"; };

  if (n == 0 || tokens_[0].size() < 2) return fail(kError);
  const std::string_view command = tokens_[0];
  if (command[0] == 'm' && command.size() == 2) return ParseMeta(command, request, result);

  if (command == "get" || command == "gets" || command == "gat" || command == "gats") {
    if (n < 2) return fail(kError);
    const bool touch = command[1] == 'a';
    request->command = command == "get"    ? Command::kGet
                       : command == "gets" ? Command::kGets
                       : command == "gat"  ? Command::kGat
                                           : Command::kGats;
    size_t first_key = 1;
    if (touch) {
      if (!ParseI32(tokens_[1], &request->exptime)) return fail(kBadExptime);
      first_key = 2;
    }
    for (size_t i = first_key; i < n; ++i) {
      if (tokens_[i].size() > kMaxKeyLength) return fail(kBadFormat);
    }
    request->keys.assign(tokens_.begin() + first_key, tokens_.end());
    return;
  }

  Command storage = Command::kError;
  if (command == "set") storage = Command::kSet;
  if (command == "add") storage = Command::kAdd;
  if (command == "replace") storage = Command::kReplace;
  if (command == "append") storage = Command::kAppend;
  if (command == "prepend") storage = Command::kPrepend;
  if (command == "cas") storage = Command::kCas;
  if (storage != Command::kError) {
    const size_t base = storage == Command::kCas ? 6 : 5;
    if (n != base && n != base + 1) return fail(kError);
    request->noreply = last_is_noreply();
    if (tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
    int64_t length = 0;
    if (!ParseU32(tokens_[2], &request->flags) || !ParseI32(tokens_[3], &request->exptime) ||
        !ParseI32(tokens_[4], &length)) {
      return fail(kBadFormat);
    }
    if (storage == Command::kCas && !ParseU64(tokens_[5], &request->cas)) {
      return fail(kBadFormat);
    }
    if (length < 0) return fail(kBadFormat);
    request->command = storage;
    request->keys.assign(1, tokens_[1]);
    if (Store::ItemSize(tokens_[1].size(), static_cast<size_t>(length)) > options_.max_item_size) {
      request->too_large = true;
      result->swallow = static_cast<uint64_t>(length) + 2;
      return;
    }
    result->needs_data = true;
    result->data_length = static_cast<size_t>(length);
    return;
  }

  if (command == "incr" || command == "decr") {
    if (n != 3 && n != 4) return fail(kError);
    request->noreply = last_is_noreply();
    if (tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
    if (!ParseU64(tokens_[2], &request->delta)) return fail(kBadDelta);
    request->command = command == "incr" ? Command::kIncr : Command::kDecr;
    request->keys.assign(1, tokens_[1]);
    return;
  }
  if (command == "delete") {
    if (n < 2 || n > 4) return fail(kError);
    if (n > 2) {
      // "delete <key> 0" is an old form memcached still accepts; any other hold time
      // is refused.
      const bool hold_is_zero = tokens_[2] == "0";
      request->noreply = last_is_noreply();
      const bool valid = (n == 3 && (hold_is_zero || request->noreply)) ||
                         (n == 4 && hold_is_zero && request->noreply);
      if (!valid) return fail(kBadDeleteUsage);
    }
    if (tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
    request->command = Command::kDelete;
    request->keys.assign(1, tokens_[1]);
    return;
  }
  if (command == "touch") {
    if (n != 3 && n != 4) return fail(kError);
    request->noreply = last_is_noreply();
    if (tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
    if (!ParseI32(tokens_[2], &request->exptime)) return fail(kBadExptime);
    request->command = Command::kTouch;
    request->keys.assign(1, tokens_[1]);
    return;
  }
  if (command == "flush_all") {
    if (n > 3) return fail(kError);
    request->noreply = last_is_noreply();
    if (n != (request->noreply ? 2u : 1u) && !ParseI32(tokens_[1], &request->exptime)) {
      return fail(kBadExptime);
    }
    request->command = Command::kFlushAll;
    return;
  }
  if (command == "stats") {
    request->command = Command::kStats;
    if (n == 1) return;
    const std::string_view group = tokens_[1];
    if (group == "settings") {
      request->stats_group = StatsGroup::kSettings;
    } else if (group == "items") {
      request->stats_group = StatsGroup::kItems;
    } else if (group == "slabs") {
      request->stats_group = StatsGroup::kSlabs;
    } else if (group == "sizes") {
      request->stats_group = StatsGroup::kSizes;
    } else if (group == "reset") {
      request->stats_group = StatsGroup::kReset;
    } else {
      return fail(kError);
    }
    return;
  }
  if (command == "version") {
    request->command = Command::kVersion;
    return;
  }
  if (command == "quit") {
    request->command = Command::kQuit;
    return;
  }
  if (command == "verbosity") {
    if (n != 2 && n != 3) return fail(kError);
    request->noreply = last_is_noreply();
    if (!ParseU32(tokens_[1], &request->verbosity)) return fail(kBadFormat);
    request->command = Command::kVerbosity;
    return;
  }
  if (command == "shutdown") {
    if (!options_.enable_shutdown) return fail(kShutdownRefused);
    if (n == 1 || (n == 2 && tokens_[1] == "graceful")) {
      request->command = Command::kShutdown;
      return;
    }
    return fail(kBadShutdownMode);
  }
  return fail(kError);
}

void RequestParser::ParseMeta(std::string_view command, Request* request, LineResult* result) {
  const size_t n = tokens_.size();
  // Meta errors are always reported: q only hides nominal responses.
  auto fail = [request](std::string_view error) {
    request->Clear();
    request->command = Command::kError;
    request->error = error;
  };
  const char kind = command[1];
  if (kind == 'n') {
    request->command = Command::kMetaNoop;
    return;
  }
  if (kind == 'e') {
    if (n < 2 || tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
    request->command = Command::kMetaDebug;
    request->keys.assign(1, tokens_[1]);
    if (n >= 3 && tokens_[2] == "b") {
      if (!DecodeKey(tokens_[1], &key_scratch_)) return fail(kBadFormat);
      request->key_binary = true;
    }
    return;
  }
  if (kind != 'g' && kind != 's' && kind != 'd' && kind != 'a') return fail(kError);
  if (n < 2) return fail(kError);
  if (tokens_[1].size() > kMaxKeyLength) return fail(kBadFormat);
  const bool set = kind == 's';
  if (set && n == 2) return fail(kBadFormat);
  if (n + 1 > kMaxMetaTokens) return fail(kind == 'g' ? kMgFlagsTooLong : kFlagsTooLong);
  int64_t length = 0;
  if (set && (!ParseI32(tokens_[2], &length) || length < 0)) return fail(kBadFormat);
  // From here on an ms error still swallows the data block, whose length is known.
  auto fail_set = [&](std::string_view error) {
    fail(error);
    if (set) result->swallow = static_cast<uint64_t>(length) + 2;
  };

  // memcached's _meta_flag_preparse: a duplicate or unknown flag stops at once; a bad
  // token records its error and parsing goes on (a later error message wins). md and
  // ma report every preparse failure with one generic message.
  auto fail_flags = [&](std::string_view error) {
    fail_set(kind == 'd' || kind == 'a' ? kInvalidOrDuplicateFlag : error);
  };
  const size_t first_flag = set ? 3 : 2;
  MetaFlags& meta = request->meta;
  std::string_view error = kBadFormat;
  bool has_error = false;
  for (size_t i = first_flag; i < n; ++i) {
    const std::string_view token = tokens_[i];
    const auto c = static_cast<unsigned char>(token[0]);
    if (c >= 127 || meta.Has(static_cast<char>(c))) return fail_flags(kDuplicateFlag);
    meta.present[c / 64] |= uint64_t{1} << (c % 64);
    const std::string_view arg = token.substr(1);
    int64_t i32 = 0;
    switch (c) {
      case 'b':
        if (!DecodeKey(tokens_[1], &key_scratch_)) {
          error = kBadKeyEncoding;
          has_error = true;
        }
        request->key_binary = true;
        break;
      case 'N':
      case 'T':
      case 'R':
        if (!ParseI32(arg, &i32)) {
          error = kBadToken;
          has_error = true;
        } else {
          (c == 'N' ? meta.vivify_ttl : c == 'T' ? meta.ttl : meta.recache_ttl) = i32;
          meta.ttl_flag_order[std::string_view(meta.ttl_flag_order).size()] =
              static_cast<char>(c);  // at most three: a repeated flag is refused above
        }
        break;
      case 'F':
        if (!ParseU32(arg, &meta.client_flags)) has_error = true;  // keeps the message
        break;
      case 'C': {
        uint64_t cas = 0;
        if (!ParseU64(arg, &cas)) {
          error = kBadToken;
          has_error = true;
        } else {
          meta.compare_cas = cas;
        }
        break;
      }
      case 'M':
        if (token.size() != 2) {
          error = kBadMLength;
          has_error = true;
        } else {
          meta.mode = token[1];
        }
        break;
      case 'J':
        if (!ParseU64(arg, &meta.initial)) {
          error = kBadInitial;
          has_error = true;
        }
        break;
      case 'D':
        if (!ParseU64(arg, &meta.delta)) {
          error = kBadDeltaToken;
          has_error = true;
        }
        break;
      case 'O':
      case 'P':
      case 'L':
      case 'k':
      case 's':
      case 't':
      case 'c':
      case 'f':
      case 'v':
      case 'h':
      case 'l':
      case 'u':
      case 'q':
      case 'I':
        break;
      default:
        return fail_flags(kInvalidFlag);
    }
  }
  if (has_error) return fail_flags(error);
  if (set && meta.mode != 0 &&
      std::string_view("EAPRS").find(meta.mode) == std::string_view::npos) {
    return fail_set(kBadMsMode);
  }
  if (kind == 'a' && meta.mode != 0 &&
      std::string_view("I+D-").find(meta.mode) == std::string_view::npos) {
    return fail(kBadMaMode);
  }
  for (size_t i = first_flag; i < n; ++i) {
    if (tokens_[i][0] == 'O' && tokens_[i].size() > kMaxOpaqueLength) {
      return fail_set(kOpaqueTooLong);
    }
  }
  if (first_flag < n) {
    const char* start = tokens_[first_flag].data();
    meta.tokens = std::string_view(start, tokens_[n - 1].data() + tokens_[n - 1].size() - start);
  }
  request->keys.assign(1, tokens_[1]);
  switch (kind) {
    case 'g':
      request->command = Command::kMetaGet;
      return;
    case 'd':
      request->command = Command::kMetaDelete;
      return;
    case 'a':
      request->command = Command::kMetaArithmetic;
      return;
    default:
      break;
  }
  request->command = Command::kMetaSet;
  const size_t key_length = request->key_binary ? key_scratch_.size() : tokens_[1].size();
  if (Store::ItemSize(key_length, static_cast<size_t>(length)) > options_.max_item_size) {
    request->too_large = true;
    result->swallow = static_cast<uint64_t>(length) + 2;
    return;
  }
  result->needs_data = true;
  result->data_length = static_cast<size_t>(length);
}

// ---------------------------------------------------------------------------------
// Routing and execution

Route RouteOf(const Request& request) {
  switch (request.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      return Route::kKeys;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
    case Command::kDelete:
    case Command::kIncr:
    case Command::kDecr:
    case Command::kTouch:
    case Command::kMetaGet:
    case Command::kMetaSet:
    case Command::kMetaDelete:
    case Command::kMetaArithmetic:
    case Command::kMetaDebug:
      return Route::kKey;
    case Command::kFlushAll:
      return Route::kAllShards;
    case Command::kStats:
      return request.stats_group == StatsGroup::kReset ? Route::kAllShards : Route::kStats;
    case Command::kVersion:
    case Command::kVerbosity:
    case Command::kQuit:
    case Command::kShutdown:
    case Command::kMetaNoop:
    case Command::kError:
      return Route::kLocal;
  }
  return Route::kLocal;
}

namespace {

void Append(std::string* out, std::string_view s) { out->append(s.data(), s.size()); }

void AppendNumber(std::string* out, uint64_t n) {
  char digits[24];
  out->append(digits, std::to_chars(digits, digits + sizeof(digits), n).ptr);
}

// Writes n in decimal at p (at most 20 bytes); returns the end.
char* PutDecimal(char* p, uint64_t n) {
  char digits[20];
  size_t i = sizeof(digits);
  do {
    digits[--i] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  std::memcpy(p, digits + i, sizeof(digits) - i);
  return p + (sizeof(digits) - i);
}

void AppendSigned(std::string* out, int64_t n) {
  char digits[24];
  out->append(digits, std::to_chars(digits, digits + sizeof(digits), n).ptr);
}

void AppendLine(std::string* out, std::string_view line) {
  Append(out, line);
  Append(out, "\r\n");
}

// Meta 'k': the key, or for a binary key its base64 form followed by the b flag.
void AppendMetaKey(std::string* out, std::string_view key, bool binary) {
  Append(out, " k");
  if (!binary) {
    Append(out, key);
    return;
  }
  std::string encoded;
  absl::Base64Escape(absl::string_view(key.data(), key.size()), &encoded);
  Append(out, encoded);
  Append(out, " b");
}

// Meta 't': remaining seconds, -1 for none. memcached prints the difference as an
// unsigned 32-bit number, so an already expired item shows a huge value; so do we.
void AppendMetaTtl(std::string* out, int64_t expires_at, int64_t now) {
  Append(out, " t");
  if (expires_at == 0) {
    Append(out, "-1");
  } else {
    AppendNumber(out, static_cast<uint32_t>(expires_at - now));
  }
}

template <typename F>
void ForEachToken(std::string_view tokens, F f) {
  size_t i = 0;
  while (i < tokens.size()) {
    while (i < tokens.size() && tokens[i] == ' ') ++i;
    const size_t start = i;
    while (i < tokens.size() && tokens[i] != ' ') ++i;
    if (i > start) f(tokens.substr(start, i - start));
  }
}

// Flags every meta response echoes, whatever the outcome: O(paque) and k(ey).
void AppendOpaqueAndKey(std::string* out, const Request& request) {
  ForEachToken(request.meta.tokens, [&](std::string_view token) {
    if (token[0] == 'O') {
      Append(out, " ");
      Append(out, token);
    } else if (token[0] == 'k') {
      AppendMetaKey(out, request.key(), request.key_binary);
    }
  });
}

StoreMode ModeOf(Command command) {
  switch (command) {
    case Command::kAdd:
      return StoreMode::kAdd;
    case Command::kReplace:
      return StoreMode::kReplace;
    case Command::kAppend:
      return StoreMode::kAppend;
    case Command::kPrepend:
      return StoreMode::kPrepend;
    case Command::kCas:
      return StoreMode::kCas;
    default:
      return StoreMode::kSet;
  }
}

std::string_view StoreReply(StoreStatus status) {
  switch (status) {
    case StoreStatus::kStored:
      return "STORED";
    case StoreStatus::kNotStored:
      return "NOT_STORED";
    case StoreStatus::kExists:
      return "EXISTS";
    case StoreStatus::kNotFound:
      return "NOT_FOUND";
    case StoreStatus::kTooLarge:
      return kTooLarge;
    case StoreStatus::kNoMemory:
      return kNoMemoryStoring;
  }
  return kError;
}

void ExecuteRetrieval(const Request& request, Store& store, std::string* out,
                      const ExecuteOptions& options) {
  const bool with_cas = request.command == Command::kGets || request.command == Command::kGats;
  const bool touch = request.command == Command::kGat || request.command == Command::kGats;
  for (std::string_view key : request.keys) {
    std::optional<ItemView> item = touch ? store.GetAndTouch(key, request.exptime) : store.Get(key);
    if (!item.has_value()) continue;
    // The header line is built on the stack and appended once, with the value and its
    // "\r\n" in the same reserved room: three appends instead of nine small ones.
    char line[6 + kMaxKeyLength + 3 * 21 + 2];
    char* p = line;
    std::memcpy(p, "VALUE ", 6);
    p += 6;
    std::memcpy(p, item->key.data(), item->key.size());
    p += item->key.size();
    *p++ = ' ';
    p = PutDecimal(p, item->flags);
    *p++ = ' ';
    p = PutDecimal(p, item->value.size());
    if (with_cas) {
      *p++ = ' ';
      p = PutDecimal(p, item->cas);
    }
    *p++ = '\r';
    *p++ = '\n';
    const size_t header = static_cast<size_t>(p - line);
    out->reserve(out->size() + header + item->value.size() + 2);
    out->append(line, header);
    Append(out, item->value);
    out->append("\r\n", 2);
  }
  if (options.write_end) Append(out, kEnd);
}

void ExecuteMetaGet(const Request& request, Store& store, std::string* out) {
  const MetaFlags& meta = request.meta;
  MetaGetResult r = store.MetaGet(request.key(), {.no_bump = meta.Has('u'),
                                                  .exptime = meta.ttl,
                                                  .vivify_exptime = meta.vivify_ttl,
                                                  .recache_seconds = meta.recache_ttl,
                                                  .key_binary = request.key_binary,
                                                  .flag_order = meta.TtlFlagOrder()});
  if (!r.found) {
    if (meta.Has('q')) return;  // q: a miss says nothing
    Append(out, "EN");
    AppendOpaqueAndKey(out, request);
    Append(out, "\r\n");
    return;
  }
  const int64_t now = store.Now();
  if (meta.Has('v')) {
    Append(out, "VA ");
    AppendNumber(out, r.item.value.size());
  } else {
    Append(out, "HD");
  }
  // Flags are echoed in request order, and T/N take effect where they stand: a 't'
  // before 'T' reports the old TTL, as memcached's single pass over the flags does.
  int64_t expires_at = r.expires_at_before;
  ForEachToken(meta.tokens, [&](std::string_view token) {
    switch (token[0]) {
      case 'T':
        expires_at = r.ttl_expires_at;
        break;
      case 'N':
        if (r.created) expires_at = r.vivify_expires_at;
        break;
      case 's':
        Append(out, " s");
        AppendNumber(out, r.item.value.size());
        break;
      case 't':
        AppendMetaTtl(out, expires_at, now);
        break;
      case 'c':
        Append(out, " c");
        AppendNumber(out, r.item.cas);
        break;
      case 'f':
        Append(out, " f");
        AppendNumber(out, r.item.flags);
        break;
      case 'l':
        Append(out, " l");
        AppendSigned(out, r.last_access_seconds);
        break;
      case 'h':
        Append(out, r.hit_before ? " h1" : " h0");
        break;
      case 'O':
        Append(out, " ");
        Append(out, token);
        break;
      case 'k':
        AppendMetaKey(out, r.item.key, r.item.key_binary);
        break;
      default:
        break;
    }
  });
  if (r.token_sent) Append(out, " Z");
  if (r.stale) Append(out, " X");
  if (r.won) Append(out, " W");
  Append(out, "\r\n");
  if (meta.Has('v')) {
    Append(out, r.item.value);
    Append(out, "\r\n");
  }
}

void ExecuteMetaSet(const Request& request, Store& store, std::string* out) {
  const MetaFlags& meta = request.meta;
  if (request.too_large) {
    // Like memcached, in every mode: stale data must not outlive a failed write.
    store.RejectTooLarge(request.key(), /*drop_existing=*/true);
    AppendLine(out, kTooLarge);
    return;
  }
  StoreMode mode = StoreMode::kSet;
  switch (meta.mode) {
    case 'E':
      mode = StoreMode::kAdd;
      break;
    case 'A':
      mode = StoreMode::kAppend;
      break;
    case 'P':
      mode = StoreMode::kPrepend;
      break;
    case 'R':
      mode = StoreMode::kReplace;
      break;
    default:
      break;
  }
  // A CAS turns set and replace into cas (memcached's NREAD_CAS); append/prepend
  // compare it themselves; add ignores it.
  if (meta.compare_cas.has_value() && (mode == StoreMode::kSet || mode == StoreMode::kReplace)) {
    mode = StoreMode::kCas;
  }
  if (Store::ItemSize(request.key().size(), request.data.size()) > store.max_item_size()) {
    store.RejectTooLarge(request.key(), /*drop_existing=*/true);
    AppendLine(out, kTooLarge);
    return;
  }
  const StoreResult r = store.Put(mode, request.key(), request.data, meta.client_flags,
                                  meta.ttl.value_or(0), meta.compare_cas.value_or(0),
                                  {.allow_stale = meta.Has('I'), .key_binary = request.key_binary});
  switch (r.status) {
    case StoreStatus::kStored:
      if (meta.Has('q')) return;
      Append(out, "HD");
      break;
    case StoreStatus::kNotStored:
      Append(out, "NS");
      break;
    case StoreStatus::kExists:
      Append(out, "EX");
      break;
    case StoreStatus::kNotFound:
      Append(out, "NF");
      break;
    case StoreStatus::kTooLarge:
    case StoreStatus::kNoMemory:
      AppendLine(out, StoreReply(r.status));
      return;
  }
  ForEachToken(meta.tokens, [&](std::string_view token) {
    if (token[0] == 'O') {
      Append(out, " ");
      Append(out, token);
    } else if (token[0] == 'k') {
      AppendMetaKey(out, request.key(), request.key_binary);
    } else if (token[0] == 'c') {
      Append(out, " c");
      AppendNumber(out, r.cas);  // 0 unless stored, as memcached
    }
  });
  Append(out, "\r\n");
}

void ExecuteMetaDelete(const Request& request, Store& store, std::string* out) {
  const MetaFlags& meta = request.meta;
  const bool invalidate = meta.Has('I');
  const DeleteStatus status =
      store.Delete(request.key(), {.compare_cas = meta.compare_cas,
                                   .invalidate = invalidate,
                                   .exptime = invalidate ? meta.ttl : std::nullopt});
  switch (status) {
    case DeleteStatus::kDeleted:
    case DeleteStatus::kInvalidated:
      if (meta.Has('q')) return;
      Append(out, "HD");
      break;
    case DeleteStatus::kNotFound:
      Append(out, "NF");
      break;
    case DeleteStatus::kExists:
      Append(out, "EX");
      break;
  }
  AppendOpaqueAndKey(out, request);
  Append(out, "\r\n");
}

void ExecuteMetaArithmetic(const Request& request, Store& store, std::string* out) {
  const MetaFlags& meta = request.meta;
  const ArithmeticResult r =
      store.Arithmetic(request.key(), {.decrement = meta.mode == 'D' || meta.mode == '-',
                                       .delta = meta.delta,
                                       .compare_cas = meta.compare_cas.value_or(0),
                                       .create_exptime = meta.vivify_ttl,
                                       .initial = meta.initial,
                                       .exptime = meta.ttl,
                                       .flag_order = meta.TtlFlagOrder()});
  switch (r.status) {
    case ArithmeticStatus::kNonNumeric:
      AppendLine(out, kNonNumeric);
      return;
    case ArithmeticStatus::kNoMemory:
      AppendLine(out, kNoMemory);
      return;
    case ArithmeticStatus::kNotFound:
    case ArithmeticStatus::kExists:
      Append(out, r.status == ArithmeticStatus::kNotFound ? "NF" : "EX");
      AppendOpaqueAndKey(out, request);
      Append(out, "\r\n");
      return;
    case ArithmeticStatus::kOk:
    case ArithmeticStatus::kCreated:
      break;
  }
  // q hides a plain success; memcached still answers when the item was created.
  if (r.status == ArithmeticStatus::kOk && meta.Has('q')) return;
  char digits[24];
  const std::string_view number(
      digits, std::to_chars(digits, digits + sizeof(digits), r.value).ptr - digits);
  if (meta.Has('v')) {
    Append(out, "VA ");
    AppendNumber(out, number.size());
  } else {
    Append(out, "HD");
  }
  const int64_t now = store.Now();
  const bool created = r.status == ArithmeticStatus::kCreated;
  int64_t expires_at = r.expires_at_before;
  ForEachToken(meta.tokens, [&](std::string_view token) {
    switch (token[0]) {
      case 'c':
        Append(out, " c");
        AppendNumber(out, r.cas);
        break;
      case 't':
        AppendMetaTtl(out, expires_at, now);
        break;
      case 'T':
        expires_at = r.ttl_expires_at;
        break;
      case 'N':
        if (created) expires_at = r.vivify_expires_at;
        break;
      case 'O':
        Append(out, " ");
        Append(out, token);
        break;
      case 'k':
        AppendMetaKey(out, request.key(), request.key_binary);
        break;
      default:
        break;
    }
  });
  Append(out, "\r\n");
  if (meta.Has('v')) {
    Append(out, number);
    Append(out, "\r\n");
  }
}

void ExecuteMetaDebug(const Request& request, Store& store, std::string* out) {
  std::optional<ItemDebugInfo> info = store.Inspect(request.key());
  if (!info.has_value()) {
    AppendLine(out, "EN");
    return;
  }
  const int64_t now = store.Now();
  Append(out, "ME ");
  if (info->key_binary) {
    std::string encoded;
    absl::Base64Escape(absl::string_view(info->key.data(), info->key.size()), &encoded);
    Append(out, encoded);
  } else {
    Append(out, info->key);
  }
  // memcached prints exp as current_time - exptime: negative while the item lives.
  Append(out, " exp=");
  AppendSigned(out, info->expires_at == 0 ? -1 : now - info->expires_at);
  Append(out, " la=");
  AppendSigned(out, info->last_access_seconds);
  Append(out, " cas=");
  AppendNumber(out, info->cas);
  Append(out, info->fetched ? " fetch=yes" : " fetch=no");
  Append(out, " cls=1 size=");  // one "slab class": items are individually allocated
  AppendNumber(out, info->size);
  Append(out, "\r\n");
}

}  // namespace

Disposition Execute(const Request& request, Store* store, std::string* out,
                    const ExecuteOptions& options) {
  // Classic commands: noreply silences every answer, errors included.
  auto reply = [&](std::string_view line) {
    if (!request.noreply) AppendLine(out, line);
  };
  switch (request.command) {
    case Command::kError:
      reply(request.error);
      return Disposition::kContinue;
    case Command::kVersion:
      Append(out, "VERSION ");
      AppendLine(out, options.version);
      return Disposition::kContinue;
    case Command::kVerbosity:
      reply("OK");
      return Disposition::kContinue;
    case Command::kQuit:
    case Command::kShutdown:  // the server stops itself; the connection closes unanswered
      return Disposition::kClose;
    case Command::kMetaNoop:
      AppendLine(out, "MN");
      return Disposition::kContinue;
    case Command::kFlushAll:
      if (!options.flush_enabled) {
        reply(kFlushNotAllowed);
        return Disposition::kContinue;
      }
      break;
    default:
      break;
  }
  Store& s = *store;
  switch (request.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      ExecuteRetrieval(request, s, out, options);
      break;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      if (request.too_large) {
        // memcached drops the old value only for set.
        s.RejectTooLarge(request.key(), /*drop_existing=*/request.command == Command::kSet);
        reply(kTooLarge);
      } else {
        reply(StoreReply(s.Put(ModeOf(request.command), request.key(), request.data, request.flags,
                               request.exptime, request.cas)
                             .status));
      }
      break;
    case Command::kDelete:
      reply(s.Delete(request.key()) == DeleteStatus::kDeleted ? "DELETED" : "NOT_FOUND");
      break;
    case Command::kIncr:
    case Command::kDecr: {
      const ArithmeticResult r = s.Arithmetic(
          request.key(), {.decrement = request.command == Command::kDecr, .delta = request.delta});
      switch (r.status) {
        case ArithmeticStatus::kOk:
        case ArithmeticStatus::kCreated: {
          char digits[24];
          reply(std::string_view(
              digits, std::to_chars(digits, digits + sizeof(digits), r.value).ptr - digits));
          break;
        }
        case ArithmeticStatus::kNotFound:
        case ArithmeticStatus::kExists:
          reply("NOT_FOUND");
          break;
        case ArithmeticStatus::kNonNumeric:
          reply(kNonNumeric);
          break;
        case ArithmeticStatus::kNoMemory:
          reply(kNoMemory);
          break;
      }
      break;
    }
    case Command::kTouch:
      reply(s.Touch(request.key(), request.exptime) ? "TOUCHED" : "NOT_FOUND");
      break;
    case Command::kFlushAll:
      s.FlushAll(request.exptime);
      reply("OK");
      break;
    case Command::kStats:
      if (request.stats_group == StatsGroup::kReset) {
        s.ResetStats();
        AppendLine(out, "RESET");
      } else {
        ServerStats server;
        server.time = s.Now();
        server.version = options.version;
        server.item_size_max = s.max_item_size();
        AppendStats(request.stats_group, server, s.stats(), out);
      }
      break;
    case Command::kMetaGet:
      ExecuteMetaGet(request, s, out);
      break;
    case Command::kMetaSet:
      ExecuteMetaSet(request, s, out);
      break;
    case Command::kMetaDelete:
      ExecuteMetaDelete(request, s, out);
      break;
    case Command::kMetaArithmetic:
      ExecuteMetaArithmetic(request, s, out);
      break;
    case Command::kMetaDebug:
      ExecuteMetaDebug(request, s, out);
      break;
    default:
      break;
  }
  return Disposition::kContinue;
}

namespace {

void AppendStat(std::string* out, std::string_view name, uint64_t value) {
  Append(out, "STAT ");
  Append(out, name);
  Append(out, " ");
  AppendNumber(out, value);
  Append(out, "\r\n");
}

void AppendStat(std::string* out, std::string_view name, std::string_view value) {
  Append(out, "STAT ");
  Append(out, name);
  Append(out, " ");
  AppendLine(out, value);
}

// rusage as memcached prints it: seconds.microseconds, six digits.
void AppendStatDuration(std::string* out, std::string_view name, absl::Duration d) {
  const int64_t us = absl::ToInt64Microseconds(d);
  std::string value;
  AppendSigned(&value, us / 1000000);
  value += '.';
  std::string fraction;
  AppendSigned(&fraction, us % 1000000);
  value.append(6 - fraction.size(), '0');
  value += fraction;
  AppendStat(out, name, value);
}

}  // namespace

void AppendStats(StatsGroup group, const ServerStats& server, const StoreStats& store,
                 std::string* out) {
  switch (group) {
    case StatsGroup::kReset:
      AppendLine(out, "RESET");
      return;
    case StatsGroup::kGeneral:
      AppendStat(out, "pid", static_cast<uint64_t>(server.pid));
      AppendStat(out, "uptime", static_cast<uint64_t>(server.uptime_seconds));
      AppendStat(out, "time", static_cast<uint64_t>(server.time));
      AppendStat(out, "version", server.version);
      AppendStat(out, "pointer_size", uint64_t{8 * sizeof(void*)});
      AppendStatDuration(out, "rusage_user", server.rusage_user);
      AppendStatDuration(out, "rusage_system", server.rusage_system);
      AppendStat(out, "max_connections", server.max_connections);
      AppendStat(out, "curr_connections", server.curr_connections);
      AppendStat(out, "total_connections", server.total_connections);
      AppendStat(out, "moved_connections", server.moved_connections);
      AppendStat(out, "moved_shards", server.moved_shards);
      AppendStat(out, "cmd_get", store.cmd_get);
      AppendStat(out, "cmd_set", store.cmd_set);
      AppendStat(out, "cmd_flush", store.cmd_flush);
      AppendStat(out, "cmd_touch", store.cmd_touch);
      AppendStat(out, "get_hits", store.get_hits);
      AppendStat(out, "get_misses", store.get_misses);
      AppendStat(out, "get_expired", store.get_expired);
      AppendStat(out, "get_flushed", store.get_flushed);
      AppendStat(out, "delete_misses", store.delete_misses);
      AppendStat(out, "delete_hits", store.delete_hits);
      AppendStat(out, "incr_misses", store.incr_misses);
      AppendStat(out, "incr_hits", store.incr_hits);
      AppendStat(out, "decr_misses", store.decr_misses);
      AppendStat(out, "decr_hits", store.decr_hits);
      AppendStat(out, "cas_misses", store.cas_misses);
      AppendStat(out, "cas_hits", store.cas_hits);
      AppendStat(out, "cas_badval", store.cas_badval);
      AppendStat(out, "touch_hits", store.touch_hits);
      AppendStat(out, "touch_misses", store.touch_misses);
      AppendStat(out, "store_too_large", store.store_too_large);
      AppendStat(out, "store_no_memory", store.store_no_memory);
      AppendStat(out, "bytes_read", server.bytes_read);
      AppendStat(out, "bytes_written", server.bytes_written);
      AppendStat(out, "limit_maxbytes", store.limit_maxbytes);
      AppendStat(out, "threads", server.threads);
      AppendStat(out, "conn_yields", server.conn_yields);
      AppendStat(out, "conn_throttles", server.conn_throttles);
      AppendStat(out, "bytes", store.bytes);
      AppendStat(out, "curr_items", store.curr_items);
      AppendStat(out, "total_items", store.total_items);
      AppendStat(out, "expired_unfetched", store.expired_unfetched);
      AppendStat(out, "evicted_unfetched", store.evicted_unfetched);
      AppendStat(out, "evictions", store.evictions);
      AppendStat(out, "reclaimed", store.reclaimed);
      break;
    case StatsGroup::kSettings:
      AppendStat(out, "maxbytes", store.limit_maxbytes);
      AppendStat(out, "maxconns", server.max_connections);
      AppendStat(out, "tcpport", server.tcp_port);
      AppendStat(out, "verbosity", server.verbosity);
      AppendStat(out, "evictions", server.evictions ? "on" : "off");
      AppendStat(out, "domain_socket", server.domain_socket);
      AppendStat(out, "umask", absl::StrFormat("%o", server.umask));
      AppendStat(out, "num_threads", server.threads);
      AppendStat(out, "reqs_per_event", server.reqs_per_event);
      AppendStat(out, "cas_enabled", "yes");
      AppendStat(out, "tcp_backlog", server.tcp_backlog);
      AppendStat(out, "binding_protocol", server.binding_protocol);
      AppendStat(out, "item_size_max", server.item_size_max);
      AppendStat(out, "flush_enabled", server.flush_enabled ? "yes" : "no");
      AppendStat(out, "idle_timeout", server.idle_timeout);
      AppendStat(out, "shutdown_command", server.shutdown_command ? "yes" : "no");
      // evactor's own (-o and -R; docs/MEMCACHED.md).
      AppendStat(out, "store", server.store_layout);
      AppendStat(out, "stripes", server.stripes);
      AppendStat(out, "lru_bump_interval", server.lru_bump_interval);
      AppendStat(out, "reuse_port", server.reuse_port ? "yes" : "no");
      AppendStat(out, "affinity", server.affinity);
      AppendStat(out, "rebalance_ms", server.rebalance_ms);
      AppendStat(out, "max_unsent_output", server.max_unsent_output);
      AppendStat(out, "shard_cpus", server.shard_cpus);
      break;
    case StatsGroup::kItems:
      // No slab classes: everything is reported as class 1, and an empty cache has
      // no class at all (memcached lists only classes holding items).
      if (store.curr_items > 0) {
        AppendStat(out, "items:1:number", store.curr_items);
        AppendStat(out, "items:1:evicted", store.evictions);
        AppendStat(out, "items:1:evicted_unfetched", store.evicted_unfetched);
        AppendStat(out, "items:1:expired_unfetched", store.expired_unfetched);
        AppendStat(out, "items:1:reclaimed", store.reclaimed);
      }
      break;
    case StatsGroup::kSlabs:
      AppendStat(out, "active_slabs", uint64_t{store.curr_items > 0 ? 1u : 0u});
      AppendStat(out, "total_malloced", store.bytes);
      break;
    case StatsGroup::kSizes:
      AppendStat(out, "sizes_status", "disabled");
      break;
  }
  Append(out, kEnd);
}

}  // namespace evactor::memcached
