// evactor::Buffer — a byte queue made of a chain of segments (libevent's evbuffer).
//
// A Buffer is what sockets read into and write from: bytes go in at the back (and,
// for framing, at the front) and come out at the front. Data is never moved when it
// need not be: appending one Buffer to another moves its segments, external memory can
// be referenced instead of copied, a file region is sent with sendfile, and a socket
// reads straight into free space at the tail.
//
//   evactor::Buffer in;
//   absl::StatusOr<size_t> n = in.ReadFrom(fd);     // readv, at most max_read() bytes
//   if (n.ok() && *n == 0) { /* EOF */ }
//   else if (!n.ok() && evactor::IsWouldBlock(n.status())) { /* wait for kRead */ }
//   while (std::optional<std::string> line = in.ReadLine(evactor::EolStyle::kCrlf)) {
//     Handle(*line);                                 // without its CRLF
//   }
//
//   evactor::Buffer out;
//   out.Append("HTTP/1.1 200 OK\r\n\r\n");
//   out.AppendReference(blob.data(), blob.size(), [&] { blob_in_use = false; });
//   absl::Status ok = out.AppendFile(file_fd, 0, file_size,
//                                    [file_fd] { close(file_fd); });  // sent, then closed
//   absl::StatusOr<size_t> sent = out.WriteTo(socket_fd);  // sendmsg, or sendfile
//
// Operations (libevent's name in brackets):
//   add      Append (copy) [evbuffer_add], Append(Buffer&&) (moves segments, no copy)
//            [evbuffer_add_buffer], AppendReference [evbuffer_add_reference],
//            AppendFile [evbuffer_add_file], Prepend, Prepend(Buffer&&)
//            [evbuffer_prepend(_buffer)], Reserve + Commit [evbuffer_reserve_space,
//            evbuffer_commit_space], ReadFrom [evbuffer_read]
//   remove   Drain, Clear, Remove [evbuffer_remove], RemoveTo [evbuffer_remove_buffer],
//            ReadLine [evbuffer_readln], WriteTo [evbuffer_write_atmost]
//   look     CopyOut [evbuffer_copyout(_from)], Pullup [evbuffer_pullup], Peek
//            [evbuffer_peek], Search [evbuffer_search(_range)], SearchEol
//            [evbuffer_search_eol]
//   notice   AddCallback and friends [evbuffer_add_cb]
//
// End-of-line styles (ReadLine, SearchEol), exactly libevent's rules:
//   kAny         the first CR or LF, and the whole run of CR and LF characters after
//                it, is one end of line. So a CRLF that arrives split across two reads
//                ends two lines (the second one empty), and "\n\r\n\n" is one EOL.
//   kCrlf        LF, optionally preceded by CR. A CR not followed by LF is data.
//   kCrlfStrict  exactly CR LF. A lone LF is data; a trailing CR is not an end of line
//                until its LF arrives.
//   kLf          LF. A CR before it stays in the line.
//   kNul         a NUL byte.
// Lines may contain NULs. The line returned excludes the EOL; the EOL is consumed with
// it. When no complete EOL is present nothing is returned and nothing is consumed.
// Segment boundaries never matter (a CRLF split across two segments is one CRLF).
//
// Errors and I/O results: ReadFrom returns the number of bytes read, 0 at end of file
// (the peer closed); WriteTo returns the number of bytes written. A descriptor that
// would block gives an error status for which IsWouldBlock() is true (code
// kUnavailable, no allocation); EINTR is retried; any other errno becomes
// absl::ErrnoToStatus's code with the failing call in the message. Arguments that
// cannot be right (a negative fd or offset) give kInvalidArgument and change nothing.
//
// File regions are read with pread when their bytes must be in memory (CopyOut,
// Pullup, Peek, Search, SearchEol, ReadLine, Remove, a partial RemoveTo, and WriteTo
// to a descriptor sendfile does not support); the region then becomes ordinary memory
// and its release callback runs. If that pread fails, or the file is shorter than the
// region, those operations see the buffer as ending where the region starts (Search
// finds nothing beyond it, CopyOut copies less, Pullup returns an empty view) and the
// region stays; LoadFileRegions() and WriteTo() report the error itself.
//
// Where evactor differs from libevent on purpose: ReadLine drains the line and its EOL
// as one change (one callback, not two); callbacks run in the order they were added;
// a partial RemoveTo of a file region reads the moved part with pread; RemoveTo
// and Append(Buffer&&) never share a segment between buffers. Not provided (yet):
// freeze, deferred callbacks, read-only buffer sharing (evbuffer_add_buffer_reference),
// printf-style appends (use absl::StrFormat and Append).
//
// Thread safety: none; a Buffer belongs to one thread (its shard) at a time. It may
// be moved to another thread inside a message; its segments go with it. Callbacks run
// on the thread that changed the buffer; release callbacks run on the thread that
// frees the segment (drains it or destroys the buffer).
//
// Ownership: the Buffer owns its segments. Views it returns (Pullup, Peek, Reserve)
// point into them and stay valid until the next call that changes the buffer.
// References: the caller keeps the memory alive and unchanged until its release
// callback runs. File regions: the caller keeps the fd open until the region's release
// callback runs (close it there if the buffer should own it).
//
// Invariants (checked by CheckInvariants()):
//   1. size() is the sum of the live bytes of the segments in the chain.
//   2. No segment in the chain is empty. An empty buffer has no segments at all
//      (head == tail == nullptr), so no operation ever skips or special-cases empty
//      segments, whatever sequence of moves, drains and reservations led there.
//   3. tail is the last segment of the chain.
//   4. Only owned segments have headroom or tailroom; references and file regions
//      are immutable. Appends and reads write only into the tail's tailroom; prepends
//      only into the head's headroom; Pullup only into the head's tailroom, and only
//      while the head is not the tail.
//   5. Every segment has exactly one owner. Segments move between buffers whole;
//      when only part of one moves (RemoveTo), those bytes are copied. So a release
//      callback runs exactly once: when its last byte is drained, or when the buffer
//      that holds it is destroyed or assigned over.
//   6. The number of file regions in the chain is tracked; when it is 0 (the usual
//      case), operations that read bytes skip looking for regions to load.
//   7. A reservation (Reserve) is space that belongs to the buffer but holds no data:
//      the tail's tailroom, or one fresh segment outside the chain. Any other call
//      that changes the buffer cancels it; Commit then fails and commits nothing.
//   8. Size callbacks see orig_size + added - deleted == size() when they start.
#ifndef EVACTOR_IO_BUFFER_H_
#define EVACTOR_IO_BUFFER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/optimization.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/internal/segment.h"

namespace evactor {

enum class EolStyle { kAny, kCrlf, kCrlfStrict, kLf, kNul };

// Where an end of line starts (absolute position from the front of the buffer) and how
// many bytes it has (1 or 2; for kAny the whole CR/LF run).
struct EolMatch {
  size_t position;
  size_t length;
};

// What a size callback is told: the size before the change, and the bytes added and
// removed by it (libevent's evbuffer_cb_info). orig_size + added - deleted is the size
// now.
struct SizeChange {
  size_t orig_size;
  size_t added;
  size_t deleted;
};

// True for the status ReadFrom/WriteTo return when the descriptor would block
// (EAGAIN/EWOULDBLOCK): not an error, wait for readiness and try again.
bool IsWouldBlock(const absl::Status& status);

class Buffer {
 public:
  // Runs once, when the buffer no longer needs a reference's memory or a file region,
  // on the thread that frees it. It may run in the middle of an operation on the
  // buffer, so it must not use that buffer.
  using ReleaseCallback = absl::AnyInvocable<void() &&>;
  // Runs after each operation that changed the size. May change this buffer (which
  // runs the callbacks again, nested), add callbacks (they run from the next change),
  // and remove any callback, itself included. Must not destroy the buffer.
  using SizeCallback = absl::AnyInvocable<void(Buffer& buffer, const SizeChange& change)>;
  // Names a size callback; never 0.
  using CallbackId = uint64_t;

  // "Up to the end" for Pullup, Search and WriteTo.
  static constexpr size_t kAll = std::numeric_limits<size_t>::max();
  // What one ReadFrom(fd) takes at most, unless set_max_read() changed it. libevent
  // 2.1 reads 4096 bytes per call; evactor reads 16 KiB: a quarter of the system calls
  // on bulk transfers, one TLS record, and still small enough that one busy connection
  // cannot keep a shard's other connections waiting long.
  static constexpr size_t kDefaultMaxRead = 16 * 1024;
  // The smallest owned segment's capacity: small appends share one allocation.
  static constexpr size_t kMinSegmentCapacity = internal::kMinCapacity;

  Buffer();
  // Frees every segment (running release callbacks). Size callbacks do not run.
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  // Moving a Buffer object moves its bytes, not its size callbacks: callbacks belong to
  // the object they were added to and none runs for the move. `other` is left empty.
  // Any reservation on either side is cancelled.
  Buffer(Buffer&& other) noexcept;
  // Frees this buffer's old segments (running their release callbacks) first.
  Buffer& operator=(Buffer&& other) noexcept;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // ---- Adding ----------------------------------------------------------------------

  // Copies n bytes to the end. No allocation when the tail segment has room.
  void Append(const void* data, size_t n);
  void Append(std::string_view data) { Append(data.data(), data.size()); }
  // Moves all of `other` to the end of this buffer without copying a byte (O(1): the
  // chains are linked). `other` is left empty. Appending a buffer to itself does
  // nothing. Callbacks: this buffer's (added), then other's (deleted).
  void Append(Buffer&& other);
  // Appends n bytes of external memory without copying. `release` runs exactly once,
  // when those bytes have all been drained or the buffer is destroyed (at once when
  // n == 0). The memory must stay valid and unchanged until then.
  void AppendReference(const void* data, size_t n, ReleaseCallback release = nullptr);
  // Appends `length` bytes of the file `fd` starting at `offset`, without reading them
  // now: WriteTo sends them with sendfile. `release` runs exactly once, when the region
  // is drained, loaded into memory, or the buffer is destroyed (at once when
  // length == 0); keep fd open until then. InvalidArgument (and nothing appended,
  // nothing released) for fd < 0, offset < 0, or offset + length beyond off_t.
  absl::Status AppendFile(int fd, off_t offset, size_t length, ReleaseCallback release = nullptr);
  // Copies n bytes to the front (into the head's headroom when it has some).
  void Prepend(const void* data, size_t n);
  void Prepend(std::string_view data) { Prepend(data.data(), data.size()); }
  // Moves all of `other` to the front without copying. `other` is left empty.
  void Prepend(Buffer&& other);

  // Zero-copy writes: returns at least `min_bytes` (at least 1) of contiguous writable
  // space at the end of the buffer, possibly more. Write into it, then Commit() how
  // many bytes were written. The space is the tail's free room when it is big enough,
  // else a fresh segment. A new Reserve replaces an uncommitted one.
  std::span<char> Reserve(size_t min_bytes);
  // Appends the first n bytes of the reserved space. FailedPrecondition (nothing
  // appended) when there is no reservation or another call changed the buffer since
  // Reserve; InvalidArgument (reservation kept) when n exceeds it. Commit(0) cancels.
  absl::Status Commit(size_t n);

  // ---- Removing ----------------------------------------------------------------------

  // Removes the first min(n, size()) bytes; returns how many.
  size_t Drain(size_t n);
  void Clear() { Drain(size_); }
  // Copies the first bytes out and drains them; returns how many (at most n).
  size_t Remove(void* out, size_t n);
  // Moves the first min(n, size()) bytes to the end of `dst`: whole segments are
  // relinked, the one split at n is copied. Returns the bytes moved. Callbacks: dst's
  // (added), then this buffer's (deleted). RemoveTo(*this, n) does nothing.
  size_t RemoveTo(Buffer& dst, size_t n);
  // Removes one line and its end of line and returns the line without it; nullopt,
  // consuming nothing, when the buffer holds no complete EOL (see the styles above).
  std::optional<std::string> ReadLine(EolStyle style);
  // As ReadLine, into *line (replacing its contents, reusing its capacity). Returns
  // false, leaving *line unchanged, when there is no complete line.
  bool ReadLineInto(EolStyle style, std::string* line);

  // ---- Looking (these may load file regions; see above) ------------------------------

  // Copies up to n bytes from position `from` (default: the front) without draining
  // them; returns how many were copied.
  size_t CopyOut(void* out, size_t n) { return CopyOut(0, out, n); }
  size_t CopyOut(size_t from, void* out, size_t n);
  // The whole content as a string (a copy).
  std::string ToString();
  // Makes the first n bytes (kAll: all of them) contiguous and returns them. Copies
  // only when the head segment holds fewer than n bytes. Returns an empty view when
  // n == 0 or n > size().
  std::string_view Pullup(size_t n);
  // Describes bytes [from, from + n) (clamped to size()) as the pieces the segments
  // hold, without copying. Fills out[0..] and returns how many pieces cover the range,
  // which may exceed out.size() (then only the first out.size() are filled).
  size_t Peek(size_t from, size_t n, std::span<std::string_view> out);
  // First position >= from where `needle` starts and ends at or before `to` (clamped
  // to size()); nullopt if none. An empty needle matches at `from` (if from <= size()).
  // Matches across segment boundaries are found. memchr/memmem per segment.
  std::optional<size_t> Search(std::string_view needle, size_t from = 0, size_t to = kAll);
  // The first end of line at or after `from` in the given style. For kCrlf a CR before
  // `from` is not looked at (libevent's evbuffer_search_eol does the same).
  std::optional<EolMatch> SearchEol(EolStyle style, size_t from = 0);
  // Loads every file region into memory with pread. The first failure is returned
  // (regions before it stay loaded; it and those after stay file regions).
  absl::Status LoadFileRegions();

  // ---- I/O ---------------------------------------------------------------------------

  // One read(v) of at most max_read() (or `max`, which must be > 0) bytes from fd into
  // the tail's free room and, if that is short, a fresh segment. Returns the bytes
  // read, 0 at end of file. Would-block: IsWouldBlock(status). InvalidArgument for
  // max == 0.
  absl::StatusOr<size_t> ReadFrom(int fd) { return ReadFrom(fd, max_read_); }
  absl::StatusOr<size_t> ReadFrom(int fd, size_t max);
  // One system call writing up to `max` bytes from the front to fd, then drains what
  // was written and returns how many. Memory segments go out with one sendmsg
  // (MSG_NOSIGNAL; writev for non-sockets) of up to IOV_MAX pieces, stopping before a
  // file region; a file region at the front goes out with sendfile (which, unlike
  // sendmsg, raises SIGPIPE on a closed socket: ignore SIGPIPE when sending files).
  // If sendfile cannot serve the descriptor, up to 256 KiB of the region are read
  // with pread and written instead. Returns 0 without a system call when empty.
  // DataLoss when a file region runs past the end of its file.
  absl::StatusOr<size_t> WriteTo(int fd, size_t max = kAll);
  size_t max_read() const { return max_read_; }
  // 0 restores kDefaultMaxRead.
  void set_max_read(size_t n) { max_read_ = n == 0 ? kDefaultMaxRead : n; }

  // ---- Size callbacks (libevent's evbuffer_add_cb) -----------------------------------

  // Callbacks run in the order they were added, after every operation that changed
  // the size, each with the same SizeChange. A Buffer without callbacks pays one
  // predictable branch per operation.
  CallbackId AddCallback(SizeCallback callback);
  // False if no such callback. Safe from inside any callback (the removed one, if it
  // is running, finishes; it is not called again).
  bool RemoveCallback(CallbackId id);
  // A disabled callback is skipped; changes made meanwhile are not replayed to it.
  bool SetCallbackEnabled(CallbackId id, bool enabled);
  // While suspended (calls nest), changes accumulate; the last Resume runs the
  // callbacks once with the sum (orig_size is the size before the first change), if
  // anything changed.
  void SuspendCallbacks();
  void ResumeCallbacks();
  // Whether any callback is registered (or callbacks are suspended).
  bool has_callbacks() const { return callbacks_ != nullptr; }

  // ---- Introspection -----------------------------------------------------------------

  // Segments in the chain (O(segments)).
  size_t segment_count() const;
  // OK, or Internal naming the first broken invariant. O(segments).
  absl::Status CheckInvariants() const;

 private:
  struct Callbacks;

  void AppendSlow(const char* data, size_t n);
  size_t DrainSlow(size_t n);
  // Copies bytes into the tail (allocating as needed) without notifying callbacks.
  void AppendBytes(const char* data, size_t n);
  void LinkTail(internal::Segment* s);
  void FreeChain();
  void CancelReservation() {
    if (ABSL_PREDICT_FALSE(reserved_)) DropReservation();
  }
  void DropReservation();
  // Notes a size change for the callbacks.
  void Changed(size_t added, size_t deleted) {
    if (ABSL_PREDICT_FALSE(callbacks_ != nullptr)) RunCallbacks(added, deleted);
  }
  void RunCallbacks(size_t added, size_t deleted);
  void MaybeDropCallbacks();

  // Loads the file regions that start before `limit` into memory; returns how far the
  // bytes are now in memory: `limit`, or less where a load failed (*error says why).
  size_t LoadUpTo(size_t limit, absl::Status* error = nullptr);
  // Usable end for a read of bytes below `limit` (limit itself when no file regions).
  size_t Loaded(size_t limit) {
    return ABSL_PREDICT_TRUE(file_segments_ == 0) ? limit : LoadUpTo(limit);
  }
  // Replaces the first k bytes of the file segment `s` (preceded by `prev`, nullptr
  // at the head) by an owned segment holding them.
  absl::Status LoadFilePrefix(internal::Segment* prev, internal::Segment* s, size_t k);
  absl::StatusOr<size_t> SendFileHead(int fd, size_t max, bool* unsupported);

  // The segment holding byte `pos` (REQUIRES: pos < size_), and in *base the offset
  // of its first byte.
  const internal::Segment* SegmentAt(size_t pos, size_t* base) const;
  std::optional<size_t> FindByte(char c, size_t from, size_t limit) const;
  std::optional<size_t> FindCrOrLf(size_t from, size_t limit) const;
  std::optional<EolMatch> FindLfEol(size_t from, size_t limit, bool strict) const;
  size_t CountCrLfRun(size_t from, size_t limit) const;
  void CopyLine(size_t n, std::string* line) const;

  internal::Segment* head_ = nullptr;
  internal::Segment* tail_ = nullptr;
  size_t size_ = 0;
  size_t file_segments_ = 0;
  size_t max_read_ = kDefaultMaxRead;
  // Reservation: a fresh segment outside the chain, or nullptr for the tail's room.
  internal::Segment* reserve_segment_ = nullptr;
  size_t reserve_size_ = 0;
  bool reserved_ = false;
  std::unique_ptr<Callbacks> callbacks_;
};

// ---- Inline fast paths ----------------------------------------------------------------

inline void Buffer::Append(const void* data, size_t n) {
  internal::Segment* t = tail_;
  // n - 1 < tailroom: 1 <= n <= tailroom (n == 0 takes the slow path, which returns).
  if (ABSL_PREDICT_TRUE(t != nullptr && n - 1 < t->tailroom && !reserved_ &&
                        callbacks_ == nullptr)) {
    std::memcpy(t->data + t->len, data, n);
    t->len += n;
    t->tailroom -= n;
    size_ += n;
    return;
  }
  AppendSlow(static_cast<const char*>(data), n);
}

inline size_t Buffer::Drain(size_t n) {
  internal::Segment* h = head_;
  if (ABSL_PREDICT_TRUE(h != nullptr && n < h->len && h->kind != internal::SegmentKind::kFile &&
                        !reserved_ && callbacks_ == nullptr)) {
    h->data += n;
    h->len -= n;
    size_ -= n;
    return n;
  }
  return DrainSlow(n);
}

}  // namespace evactor

#endif  // EVACTOR_IO_BUFFER_H_
