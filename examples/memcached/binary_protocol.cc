#include "examples/memcached/binary_protocol.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace evactor::memcached {
namespace {

uint16_t Load16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] << 8 | u[1]);
}
uint32_t Load32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | uint32_t{u[3]};
}
uint64_t Load64(const char* p) { return uint64_t{Load32(p)} << 32 | Load32(p + 4); }

void Put8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
void Put16(std::string* out, uint16_t v) {
  Put8(out, static_cast<uint8_t>(v >> 8));
  Put8(out, static_cast<uint8_t>(v));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}
void Put64(std::string* out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v >> 32));
  Put32(out, static_cast<uint32_t>(v));
}

bool IsStorage(uint8_t op) {
  switch (op) {
    case kBinSet:
    case kBinAdd:
    case kBinReplace:
    case kBinSetQ:
    case kBinAddQ:
    case kBinReplaceQ:
    case kBinAppend:
    case kBinPrepend:
    case kBinAppendQ:
    case kBinPrependQ:
      return true;
    default:
      return false;
  }
}

// memcached's per-opcode packet checks (proto_bin.c dispatch_bin_command).
bool Valid(const BinaryRequest& r, size_t keylen, size_t extlen, size_t bodylen) {
  if (keylen > kMaxKeyLength || keylen + extlen > bodylen) return false;
  switch (r.opcode) {
    case kBinVersion:
    case kBinNoop:
    case kBinQuit:
    case kBinQuitQ:
      return extlen == 0 && keylen == 0 && bodylen == 0;
    case kBinFlush:
    case kBinFlushQ:
      return keylen == 0 && bodylen == extlen && (extlen == 0 || extlen == 4);
    case kBinSet:
    case kBinAdd:
    case kBinReplace:
    case kBinSetQ:
    case kBinAddQ:
    case kBinReplaceQ:
      return extlen == 8 && keylen != 0;
    case kBinGet:
    case kBinGetQ:
    case kBinGetK:
    case kBinGetKQ:
      return extlen == 0 && bodylen == keylen && keylen > 0;
    case kBinDelete:
    case kBinDeleteQ:
      return keylen > 0 && extlen == 0 && bodylen == keylen;
    case kBinIncrement:
    case kBinDecrement:
    case kBinIncrementQ:
    case kBinDecrementQ:
      return keylen > 0 && extlen == 20 && bodylen == keylen + extlen;
    case kBinAppend:
    case kBinPrepend:
    case kBinAppendQ:
    case kBinPrependQ:
      return keylen > 0 && extlen == 0;
    case kBinStat:
      return extlen == 0;
    case kBinTouch:
    case kBinGat:
    case kBinGatQ:
    case kBinGatK:
    case kBinGatKQ:
      return extlen == 4 && keylen != 0 && bodylen == keylen + 4;
    default:
      return true;  // unknown: answered 0x81 whatever the packet holds
  }
}

void DecodeExtras(BinaryRequest* r) {
  const std::string_view e = r->extras;
  if (r->invalid || !r->known()) return;
  if (e.size() == 8) {  // set/add/replace
    r->flags = Load32(e.data());
    r->exptime = Load32(e.data() + 4);
  } else if (e.size() == 20) {  // incr/decr
    r->delta = Load64(e.data());
    r->initial = Load64(e.data() + 8);
    r->exptime = Load32(e.data() + 16);
  } else if (e.size() == 4) {  // flush, touch, gat
    r->exptime = Load32(e.data());
  }
}

std::string_view ErrorText(uint16_t status) {
  switch (status) {
    case kBinStatusKeyNotFound:
      return "Not found";
    case kBinStatusKeyExists:
      return "Data exists for key.";
    case kBinStatusTooLarge:
      return "Too large.";
    case kBinStatusInvalid:
      return "Invalid arguments";
    case kBinStatusNotStored:
      return "Not stored.";
    case kBinStatusNonNumeric:
      return "Non-numeric server-side value for incr or decr";
    case kBinStatusUnknownCommand:
      return "Unknown command";
    case kBinStatusNoMemory:
      return "Out of memory";
    case kBinStatusAuthError:
      return "Auth failure.";
    default:
      return "UNHANDLED ERROR";
  }
}

void AppendError(const BinaryRequest& r, uint16_t status, std::string* out) {
  AppendBinaryResponse(r.opcode, status, r.opaque, 0, {}, {}, ErrorText(status), out);
}

void AppendOk(const BinaryRequest& r, uint64_t cas, std::string* out) {
  if (!r.quiet()) AppendBinaryResponse(r.opcode, kBinStatusOk, r.opaque, cas, {}, {}, {}, out);
}

void ExecuteGet(const BinaryRequest& r, Store* store, std::string* out) {
  const uint8_t op = r.opcode;
  const bool touch =
      op == kBinTouch || op == kBinGat || op == kBinGatQ || op == kBinGatK || op == kBinGatKQ;
  const bool with_key = op == kBinGetK || op == kBinGetKQ || op == kBinGatK || op == kBinGatKQ;
  std::optional<ItemView> item =
      touch ? store->GetAndTouch(r.key, static_cast<int64_t>(r.exptime)) : store->Get(r.key);
  if (!item) {
    if (r.quiet()) return;
    if (with_key) {
      AppendBinaryResponse(op, kBinStatusKeyNotFound, r.opaque, 0, {}, r.key, {}, out);
    } else {
      AppendError(r, kBinStatusKeyNotFound, out);
    }
    return;
  }
  std::string flags;
  Put32(&flags, item->flags);
  AppendBinaryResponse(op, kBinStatusOk, r.opaque, item->cas, flags,
                       with_key ? r.key : std::string_view(),
                       op == kBinTouch ? std::string_view() : item->value, out);
}

void ExecuteStore(const BinaryRequest& r, Store* store, std::string* out) {
  const uint8_t op = r.opcode;
  const bool is_set = op == kBinSet || op == kBinSetQ;
  const bool is_add = op == kBinAdd || op == kBinAddQ;
  const bool is_replace = op == kBinReplace || op == kBinReplaceQ;
  if (r.too_large) {
    store->RejectTooLarge(r.key, /*drop_existing=*/is_set);
    AppendError(r, kBinStatusTooLarge, out);
    return;
  }
  StoreMode mode;
  if (op == kBinAppend || op == kBinAppendQ) {
    mode = StoreMode::kAppend;
  } else if (op == kBinPrepend || op == kBinPrependQ) {
    mode = StoreMode::kPrepend;
  } else if (r.cas != 0) {
    mode = StoreMode::kCas;
  } else {
    mode = is_set ? StoreMode::kSet : is_add ? StoreMode::kAdd : StoreMode::kReplace;
  }
  const StoreResult result =
      store->Put(mode, r.key, r.value, r.flags, static_cast<int64_t>(r.exptime), r.cas);
  switch (result.status) {
    case StoreStatus::kStored:
      AppendOk(r, result.cas, out);
      return;
    case StoreStatus::kExists:
      AppendError(r, kBinStatusKeyExists, out);
      return;
    case StoreStatus::kNotFound:
      AppendError(r, kBinStatusKeyNotFound, out);
      return;
    case StoreStatus::kTooLarge:
      AppendError(r, kBinStatusTooLarge, out);
      return;
    case StoreStatus::kNoMemory:
      AppendError(r, kBinStatusNoMemory, out);
      return;
    case StoreStatus::kNotStored:
      AppendError(r,
                  mode == StoreMode::kCas ? kBinStatusNotStored
                  : is_add                ? kBinStatusKeyExists
                  : is_replace            ? kBinStatusKeyNotFound
                                          : kBinStatusNotStored,
                  out);
      return;
  }
}

void ExecuteArithmetic(const BinaryRequest& r, Store* store, std::string* out) {
  ArithmeticOptions options;
  options.decrement = r.opcode == kBinDecrement || r.opcode == kBinDecrementQ;
  options.delta = r.delta;
  options.compare_cas = r.cas;
  if (r.exptime != 0xffffffffu) {
    options.create_exptime = static_cast<int64_t>(r.exptime);
    options.initial = r.initial;
  }
  const ArithmeticResult result = store->Arithmetic(r.key, options);
  switch (result.status) {
    case ArithmeticStatus::kOk:
    case ArithmeticStatus::kCreated: {
      if (r.quiet()) return;
      std::string value;
      Put64(&value, result.value);
      AppendBinaryResponse(r.opcode, kBinStatusOk, r.opaque, result.cas, {}, {}, value, out);
      return;
    }
    case ArithmeticStatus::kNotFound:
      AppendError(r, kBinStatusKeyNotFound, out);
      return;
    case ArithmeticStatus::kNonNumeric:
      AppendError(r, kBinStatusNonNumeric, out);
      return;
    case ArithmeticStatus::kExists:
      AppendError(r, kBinStatusKeyExists, out);
      return;
    case ArithmeticStatus::kNoMemory:
      AppendError(r, kBinStatusNoMemory, out);
      return;
  }
}

}  // namespace

bool BinaryRequest::quiet() const {
  switch (opcode) {
    case kBinGetQ:
    case kBinGetKQ:
    case kBinGatQ:
    case kBinGatKQ:
    case kBinSetQ:
    case kBinAddQ:
    case kBinReplaceQ:
    case kBinAppendQ:
    case kBinPrependQ:
    case kBinDeleteQ:
    case kBinIncrementQ:
    case kBinDecrementQ:
    case kBinFlushQ:
    case kBinQuitQ:
      return true;
    default:
      return false;
  }
}

bool BinaryRequest::known() const {
  return opcode <= kBinPrependQ || opcode == kBinTouch || opcode == kBinGat || opcode == kBinGatQ ||
         opcode == kBinGatK || opcode == kBinGatKQ;
}

OwnedBinaryRequest::OwnedBinaryRequest(const BinaryRequest& request) : request_(request) {
  const size_t n = request.extras.size() + request.key.size() + request.value.size();
  bytes_ = std::make_unique<char[]>(n == 0 ? 1 : n);
  char* p = bytes_.get();
  auto copy = [&p](std::string_view* view) {
    if (!view->empty()) std::memcpy(p, view->data(), view->size());
    *view = std::string_view(p, view->size());
    p += view->size();
  };
  copy(&request_.extras);
  copy(&request_.key);
  copy(&request_.value);
}

BinaryParser::BinaryParser(const BinaryParserOptions& options) : options_(options) {}

void BinaryParser::Feed(std::string_view bytes) {
  if (closed_) return;
  if (swallow_ > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(swallow_, bytes.size()));
    swallow_ -= n;
    bytes.remove_prefix(n);
  }
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
    if (buffer_.capacity() > (size_t{64} << 10)) buffer_.shrink_to_fit();
  } else if (head_ > 0) {
    buffer_.erase(0, head_);
    head_ = 0;
  }
  buffer_.append(bytes);
}

ParseStatus BinaryParser::Next(BinaryRequest* request) {
  *request = BinaryRequest();
  if (closed_) return ParseStatus::kClose;
  const size_t avail = buffer_.size() - head_;
  if (avail == 0) return ParseStatus::kNeedMore;
  const char* h = buffer_.data() + head_;
  if (static_cast<uint8_t>(h[0]) != kBinaryRequestMagic) {
    closed_ = true;
    return ParseStatus::kClose;
  }
  if (avail < kBinaryHeaderSize) return ParseStatus::kNeedMore;
  request->opcode = static_cast<uint8_t>(h[1]);
  const size_t keylen = Load16(h + 2);
  const size_t extlen = static_cast<uint8_t>(h[4]);
  const size_t bodylen = Load32(h + 8);
  request->opaque = Load32(h + 12);
  request->cas = Load64(h + 16);
  const bool valid = Valid(*request, keylen, extlen, bodylen);
  const bool storage = IsStorage(request->opcode);
  if (storage && valid && bodylen - keylen - extlen >= options_.max_item_size) {
    // Too large: answer once extras and key are here, and skip the value unbuffered.
    const size_t prefix = kBinaryHeaderSize + extlen + keylen;
    if (avail < prefix) return ParseStatus::kNeedMore;
    request->extras = std::string_view(h + kBinaryHeaderSize, extlen);
    request->key = std::string_view(h + kBinaryHeaderSize + extlen, keylen);
    request->too_large = true;
    DecodeExtras(request);
    const uint64_t value_length = bodylen - keylen - extlen;
    const size_t here = static_cast<size_t>(std::min<uint64_t>(value_length, avail - prefix));
    head_ += prefix + here;
    swallow_ = value_length - here;
    return ParseStatus::kRequest;
  }
  if (!(storage && valid) && bodylen > options_.max_body_length) {
    closed_ = true;
    return ParseStatus::kClose;
  }
  if (avail < kBinaryHeaderSize + bodylen) return ParseStatus::kNeedMore;
  request->invalid = !valid;
  if (valid) {
    const char* body = h + kBinaryHeaderSize;
    request->extras = std::string_view(body, extlen);
    request->key = std::string_view(body + extlen, keylen);
    request->value = std::string_view(body + extlen + keylen, bodylen - extlen - keylen);
    DecodeExtras(request);
  }
  head_ += kBinaryHeaderSize + bodylen;
  return ParseStatus::kRequest;
}

std::optional<StatsGroup> BinaryStatsGroup(const BinaryRequest& request) {
  const std::string_view k = request.key;
  if (k.empty()) return StatsGroup::kGeneral;
  if (k == "reset") return StatsGroup::kReset;
  if (k == "settings") return StatsGroup::kSettings;
  if (k == "items") return StatsGroup::kItems;
  if (k == "slabs") return StatsGroup::kSlabs;
  if (k == "sizes") return StatsGroup::kSizes;
  return std::nullopt;
}

Route RouteOf(const BinaryRequest& request) {
  if (request.invalid || !request.known()) return Route::kLocal;
  switch (request.opcode) {
    case kBinQuit:
    case kBinQuitQ:
    case kBinNoop:
    case kBinVersion:
      return Route::kLocal;
    case kBinFlush:
    case kBinFlushQ:
      return Route::kAllShards;
    case kBinStat: {
      const std::optional<StatsGroup> group = BinaryStatsGroup(request);
      if (!group) return Route::kLocal;
      return *group == StatsGroup::kReset ? Route::kAllShards : Route::kStats;
    }
    default:
      return Route::kKey;
  }
}

void AppendBinaryResponse(uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas,
                          std::string_view extras, std::string_view key, std::string_view value,
                          std::string* out) {
  Put8(out, kBinaryResponseMagic);
  Put8(out, opcode);
  Put16(out, static_cast<uint16_t>(key.size()));
  Put8(out, static_cast<uint8_t>(extras.size()));
  Put8(out, 0);  // datatype: raw bytes
  Put16(out, status);
  Put32(out, static_cast<uint32_t>(extras.size() + key.size() + value.size()));
  Put32(out, opaque);
  Put64(out, cas);
  out->append(extras);
  out->append(key);
  out->append(value);
}

void AppendBinaryStats(const BinaryRequest& request, StatsGroup group, const ServerStats& server,
                       const StoreStats& store, std::string* out) {
  std::string ascii;
  AppendStats(group, server, store, &ascii);
  std::string_view rest = ascii;
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    if (eol == std::string_view::npos) eol = rest.size();
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(std::min(rest.size(), eol + 2));
    if (line.substr(0, 5) != "STAT ") continue;  // END / RESET
    line.remove_prefix(5);
    const size_t space = line.find(' ');
    const std::string_view name = line.substr(0, space);
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    AppendBinaryResponse(kBinStat, kBinStatusOk, request.opaque, 0, {}, name, value, out);
  }
  AppendBinaryResponse(kBinStat, kBinStatusOk, request.opaque, 0, {}, {}, {}, out);
}

Disposition ExecuteBinary(const BinaryRequest& r, Store* store, std::string* out,
                          const BinaryExecuteOptions& options) {
  if (r.invalid) {
    AppendError(r, kBinStatusInvalid, out);
    return Disposition::kClose;
  }
  if (!r.known()) {
    AppendError(r, kBinStatusUnknownCommand, out);
    return Disposition::kContinue;
  }
  switch (r.opcode) {
    case kBinGet:
    case kBinGetQ:
    case kBinGetK:
    case kBinGetKQ:
    case kBinTouch:
    case kBinGat:
    case kBinGatQ:
    case kBinGatK:
    case kBinGatKQ:
      ExecuteGet(r, store, out);
      break;
    case kBinSet:
    case kBinAdd:
    case kBinReplace:
    case kBinSetQ:
    case kBinAddQ:
    case kBinReplaceQ:
    case kBinAppend:
    case kBinPrepend:
    case kBinAppendQ:
    case kBinPrependQ:
      ExecuteStore(r, store, out);
      break;
    case kBinDelete:
    case kBinDeleteQ: {
      DeleteOptions delete_options;
      if (r.cas != 0) delete_options.compare_cas = r.cas;
      switch (store->Delete(r.key, delete_options)) {
        case DeleteStatus::kDeleted:
        case DeleteStatus::kInvalidated:
          AppendOk(r, 0, out);
          break;
        case DeleteStatus::kNotFound:
          AppendError(r, kBinStatusKeyNotFound, out);
          break;
        case DeleteStatus::kExists:
          AppendError(r, kBinStatusKeyExists, out);
          break;
      }
      break;
    }
    case kBinIncrement:
    case kBinDecrement:
    case kBinIncrementQ:
    case kBinDecrementQ:
      ExecuteArithmetic(r, store, out);
      break;
    case kBinQuit:
    case kBinQuitQ:
      AppendOk(r, 0, out);
      return Disposition::kClose;
    case kBinFlush:
    case kBinFlushQ:
      if (!options.flush_enabled) {
        AppendError(r, kBinStatusAuthError, out);
        break;
      }
      store->FlushAll(static_cast<int64_t>(r.exptime));
      AppendOk(r, 0, out);
      break;
    case kBinNoop:
      AppendOk(r, 0, out);
      break;
    case kBinVersion:
      AppendBinaryResponse(r.opcode, kBinStatusOk, r.opaque, 0, {}, {}, options.version, out);
      break;
    case kBinStat: {
      const std::optional<StatsGroup> group = BinaryStatsGroup(r);
      if (!group) {
        AppendError(r, kBinStatusKeyNotFound, out);
      } else if (*group == StatsGroup::kReset) {
        store->ResetStats();
        AppendBinaryResponse(kBinStat, kBinStatusOk, r.opaque, 0, {}, {}, {}, out);
      } else {
        AppendBinaryStats(r, *group, ServerStats{}, store->stats(), out);
      }
      break;
    }
    default:
      AppendError(r, kBinStatusUnknownCommand, out);
      break;
  }
  return Disposition::kContinue;
}

}  // namespace evactor::memcached
