// evactor::internal::Segment — one link of a Buffer's chain, and the per-thread pool
// that recycles the memory of owned segments.
//
// Not part of the public API: only io/buffer.{h,cc} and their tests use it. The header
// is included by io/buffer.h so that Buffer's hot paths (small Append, small Drain)
// can be inline.
//
// A segment is one of three kinds:
//   kOwned      heap memory that the segment owns. The header and the bytes come from
//               one allocation: storage starts right after the header. Only owned
//               segments have headroom (bytes before the data, where Prepend writes)
//               and tailroom (bytes after it, where Append and reads write).
//   kReference  external memory the Buffer borrows; an optional release callback runs
//               exactly once, when the segment is freed.
//   kFile       a region of a file (fd, offset, length), sent with sendfile and read
//               with pread when its bytes are needed in memory; it has an optional
//               release callback too. `data` is unused.
//
// Thread safety: a segment belongs to one Buffer (or to a pending reservation) at a
// time and is touched only by the thread that owns that Buffer. The pool is
// thread-local: a segment freed on another thread than the one that allocated it
// simply joins that thread's pool.
#ifndef EVACTOR_IO_INTERNAL_SEGMENT_H_
#define EVACTOR_IO_INTERNAL_SEGMENT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "absl/functional/any_invocable.h"

namespace evactor::internal {

enum class SegmentKind : uint8_t { kOwned, kReference, kFile };

struct Segment {
  Segment* next = nullptr;
  // First live byte (kOwned, kReference). Unused (nullptr) for kFile.
  char* data = nullptr;
  // Live bytes.
  size_t len = 0;
  // Writable bytes after the live ones. Always 0 for kReference and kFile, so that
  // "does the tail have room" needs no check of the kind.
  size_t tailroom = 0;
  // Bytes of storage (kOwned); 0 otherwise. headroom = capacity - len - tailroom.
  size_t capacity = 0;
  SegmentKind kind = SegmentKind::kOwned;
  // Pool class of an owned segment, or kUnpooled.
  uint8_t size_class = 0;

  char* storage() { return reinterpret_cast<char*>(this + 1); }
  const char* storage() const { return reinterpret_cast<const char*>(this + 1); }
  size_t headroom() const { return kind == SegmentKind::kOwned ? capacity - len - tailroom : 0; }
};

// kReference and kFile segments: a separate, smaller allocation with no inline storage.
struct ExternalSegment : Segment {
  absl::AnyInvocable<void() &&> release;
  int fd = -1;       // kFile
  off_t offset = 0;  // kFile: file position of the first live byte
};

inline constexpr uint8_t kUnpooled = 0xff;

// Owned segments come in power-of-two capacities from kMinCapacity to kMaxPooled; those
// are recycled through the thread's pool. Larger ones are allocated to size (rounded
// up to 4 KiB) and freed at once.
inline constexpr size_t kMinCapacity = 4096;
inline constexpr size_t kMaxPooled = 64 * 1024;
inline constexpr int kNumClasses = 5;  // 4, 8, 16, 32, 64 KiB
// Each class keeps at most this many bytes of free segments per thread.
inline constexpr size_t kPoolBytesPerClass = 1024 * 1024;

// An empty owned segment with at least `min_capacity` bytes of tailroom (at least
// kMinCapacity). Never fails (allocation failure throws std::bad_alloc, like new).
Segment* NewOwnedSegment(size_t min_capacity);
ExternalSegment* NewReferenceSegment(const void* data, size_t len,
                                     absl::AnyInvocable<void() &&> release);
ExternalSegment* NewFileSegment(int fd, off_t offset, size_t len,
                                absl::AnyInvocable<void() &&> release);
// Frees a segment of any kind: runs an external segment's release callback (once),
// returns owned memory to the pool or to the allocator.
void FreeSegment(Segment* segment);

// Drops the first n (< len) live bytes.
inline void ConsumeFront(Segment* s, size_t n) {
  s->len -= n;
  if (s->kind == SegmentKind::kFile) {
    static_cast<ExternalSegment*>(s)->offset += static_cast<off_t>(n);
  } else {
    s->data += n;
  }
}

// For tests: free owned segments the calling thread's pool holds, per class.
size_t PooledSegmentsForTesting(int size_class);

}  // namespace evactor::internal

#endif  // EVACTOR_IO_INTERNAL_SEGMENT_H_
