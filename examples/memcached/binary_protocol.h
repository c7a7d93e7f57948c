// evactor::memcached binary protocol: memcached's binary wire format (protocol_binary.h)
// on top of the same Store as the ASCII protocol (protocol.h), designed to be routed by
// the server exactly like ASCII requests.
//
//   BinaryParser parser;
//   parser.Feed(bytes_from_socket);
//   BinaryRequest request;
//   while (parser.Next(&request) == ParseStatus::kRequest) {
//     switch (RouteOf(request)) { ... }                  // same Route values as ASCII
//     if (ExecuteBinary(request, &store, &out) == Disposition::kClose) ...
//   }
//
// Packets: a 24-byte header (magic 0x80 for requests, 0x81 for responses, opcode,
// key length, extras length, datatype, vbucket/status, total body length, opaque, CAS),
// then extras, key and value. Every response echoes the request's opcode and opaque.
// Responses carry CAS 0 except: a stored item's new CAS (set/add/replace/append/
// prepend), the item's CAS on a get/gat/touch hit, and the new CAS after incr/decr.
// Errors carry memcached's message as their body ("Not found", "Data exists for key.",
// "Too large.", "Invalid arguments", "Not stored.", "Non-numeric server-side value for
// incr or decr", "Out of memory", "Unknown command").
//
// Quiet opcodes (GETQ, GETKQ, GATQ, GATKQ, SETQ, ADDQ, REPLACEQ, APPENDQ, PREPENDQ,
// DELETEQ, INCREMENTQ, DECREMENTQ, FLUSHQ, QUITQ) suppress the success response; the
// quiet gets instead suppress misses (hits are always sent). Errors are always sent.
//
// Behaviour matches memcached 1.6.18's proto_bin.c, checked against the real daemon:
//   - a request whose magic byte is not 0x80: the connection is closed, no reply
//     (Next returns kClose);
//   - a malformed packet for a known opcode (wrong extras length, missing key, key over
//     250 bytes, body too short): 0x0004 "Invalid arguments", then close
//     (BinaryRequest::invalid; ExecuteBinary returns Disposition::kClose);
//   - an unknown opcode: 0x0081 "Unknown command"; its body is skipped and the
//     connection continues (memcached 1.6.18 closes it when the unknown packet has a
//     body — an artifact of its swallow state, not reproduced);
//   - a non-zero CAS in a set/add/replace header makes it a compare-and-swap (missing
//     key -> 0x0001, mismatch -> 0x0002); add of an existing key answers 0x0002,
//     replace of a missing one 0x0001, append/prepend of a missing one 0x0005;
//     DELETE, APPEND, PREPEND, INCREMENT and DECREMENT compare a non-zero CAS too;
//   - incr/decr on a missing key create it with `initial` (response value = initial)
//     unless the expiration is 0xffffffff (then 0x0001);
//   - a storage value over max_item_size is skipped as it arrives (never buffered) and
//     answered 0x0003 "Too large." (set also drops the key's old item, as memcached).
//
// Thread safety: as protocol.h. A BinaryRequest is a set of views into the parser's
// buffer, valid until the next Feed; ship it to another shard as an OwnedBinaryRequest.
#ifndef EVACTOR_EXAMPLES_MEMCACHED_BINARY_PROTOCOL_H_
#define EVACTOR_EXAMPLES_MEMCACHED_BINARY_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "examples/memcached/protocol.h"
#include "examples/memcached/store.h"

namespace evactor::memcached {

inline constexpr uint8_t kBinaryRequestMagic = 0x80;
inline constexpr uint8_t kBinaryResponseMagic = 0x81;
inline constexpr size_t kBinaryHeaderSize = 24;

// Opcodes (protocol_binary.h).
enum BinaryOpcode : uint8_t {
  kBinGet = 0x00,
  kBinSet = 0x01,
  kBinAdd = 0x02,
  kBinReplace = 0x03,
  kBinDelete = 0x04,
  kBinIncrement = 0x05,
  kBinDecrement = 0x06,
  kBinQuit = 0x07,
  kBinFlush = 0x08,
  kBinGetQ = 0x09,
  kBinNoop = 0x0a,
  kBinVersion = 0x0b,
  kBinGetK = 0x0c,
  kBinGetKQ = 0x0d,
  kBinAppend = 0x0e,
  kBinPrepend = 0x0f,
  kBinStat = 0x10,
  kBinSetQ = 0x11,
  kBinAddQ = 0x12,
  kBinReplaceQ = 0x13,
  kBinDeleteQ = 0x14,
  kBinIncrementQ = 0x15,
  kBinDecrementQ = 0x16,
  kBinQuitQ = 0x17,
  kBinFlushQ = 0x18,
  kBinAppendQ = 0x19,
  kBinPrependQ = 0x1a,
  kBinTouch = 0x1c,
  kBinGat = 0x1d,
  kBinGatQ = 0x1e,
  kBinGatK = 0x23,
  kBinGatKQ = 0x24,
};

// Response status codes (protocol_binary.h).
enum BinaryStatus : uint16_t {
  kBinStatusOk = 0x0000,
  kBinStatusKeyNotFound = 0x0001,
  kBinStatusKeyExists = 0x0002,
  kBinStatusTooLarge = 0x0003,
  kBinStatusInvalid = 0x0004,
  kBinStatusNotStored = 0x0005,
  kBinStatusNonNumeric = 0x0006,
  kBinStatusAuthError = 0x0020,  // also memcached's answer to a flush that -F forbids
  kBinStatusUnknownCommand = 0x0081,
  kBinStatusNoMemory = 0x0082,
};

// One parsed request packet. Views point into the parser's buffer (or an
// OwnedBinaryRequest's copy).
struct BinaryRequest {
  uint8_t opcode = 0;
  uint32_t opaque = 0;  // as sent (echoed byte for byte)
  uint64_t cas = 0;
  std::string_view key;
  std::string_view extras;  // raw extras, decoded below
  std::string_view value;   // body after extras and key
  // Decoded extras: set/add/replace: flags, exptime; incr/decr: delta, initial,
  // exptime; flush (optional extras), touch/gat: exptime.
  uint32_t flags = 0;
  uint32_t exptime = 0;
  uint64_t delta = 0;
  uint64_t initial = 0;
  // The packet is malformed for its opcode: answer 0x0004 and close.
  bool invalid = false;
  // Storage value over max_item_size: it was skipped, `value` is empty; answer 0x0003.
  bool too_large = false;

  bool quiet() const;  // one of the Q opcodes
  bool known() const;  // an opcode this server implements
};

// A BinaryRequest owning copies of its bytes. Move-only; moving keeps the views valid.
class OwnedBinaryRequest {
 public:
  explicit OwnedBinaryRequest(const BinaryRequest& request);
  OwnedBinaryRequest(OwnedBinaryRequest&&) noexcept = default;
  OwnedBinaryRequest& operator=(OwnedBinaryRequest&&) noexcept = default;
  const BinaryRequest& request() const { return request_; }

 private:
  std::unique_ptr<char[]> bytes_;  // extras, key, value (heap: moves keep views valid)
  BinaryRequest request_;
};

struct BinaryParserOptions {
  // Must equal the Store's: storage values at or over it are skipped, not buffered.
  size_t max_item_size = size_t{1} << 20;
  // Any other packet with a longer body closes the connection (keys are at most 250
  // bytes and extras at most 20, so only unknown opcodes carry more).
  size_t max_body_length = size_t{1} << 20;
};

// Splits a connection's bytes into BinaryRequests (see RequestParser for the contract:
// views are valid until the next Feed; Next never moves bytes).
class BinaryParser {
 public:
  explicit BinaryParser(const BinaryParserOptions& options = {});
  BinaryParser(const BinaryParser&) = delete;
  BinaryParser& operator=(const BinaryParser&) = delete;

  void Feed(std::string_view bytes);
  // kNeedMore, kRequest (*request overwritten), or kClose (bad magic, or a non-storage
  // body over max_body_length); after kClose, always kClose.
  ParseStatus Next(BinaryRequest* request);
  size_t buffered() const { return buffer_.size() - head_; }
  // Whether the rest of a too-large value is still to be discarded.
  bool swallowing() const { return swallow_ > 0; }

 private:
  BinaryParserOptions options_;
  std::string buffer_;
  size_t head_ = 0;
  uint64_t swallow_ = 0;  // bytes of a too-large value still to discard
  bool closed_ = false;
};

// Where the request runs (same meaning as for ASCII requests; kKeys never occurs):
// kKey for keyed opcodes (valid ones), kAllShards for FLUSH/FLUSHQ and STAT "reset",
// kStats for STAT with no key or "settings"/"items"/"slabs"/"sizes" (see
// AppendBinaryStats), kLocal for everything else (pass a null Store).
Route RouteOf(const BinaryRequest& request);

// STAT's group, or nullopt for a key this server does not know (answered "Not found"
// locally).
std::optional<StatsGroup> BinaryStatsGroup(const BinaryRequest& request);

struct BinaryExecuteOptions {
  std::string_view version = kDefaultVersion;
  // memcached's -F turns this off: FLUSH and FLUSHQ answer kBinStatusAuthError and
  // flush nothing (store may then be null).
  bool flush_enabled = true;
};

// Runs the request and appends the exact response packets to *out (possibly none).
// kClose for QUIT, QUITQ and invalid packets: close once earlier responses are written.
// `store` may be null only for Route::kLocal requests. A kStats request run here reports
// this Store only (with default server numbers).
Disposition ExecuteBinary(const BinaryRequest& request, Store* store, std::string* out,
                          const BinaryExecuteOptions& options = {});

// The STAT response for a kStats request: one packet per stat (key = name, value =
// value, opcode STAT, the request's opaque), then an empty terminating packet.
void AppendBinaryStats(const BinaryRequest& request, StatsGroup group, const ServerStats& server,
                       const StoreStats& store, std::string* out);

// Appends one response packet. Exposed for the server and tests.
void AppendBinaryResponse(uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas,
                          std::string_view extras, std::string_view key, std::string_view value,
                          std::string* out);

}  // namespace evactor::memcached

#endif  // EVACTOR_EXAMPLES_MEMCACHED_BINARY_PROTOCOL_H_
