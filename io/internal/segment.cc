#include "io/internal/segment.h"

#include <cstdlib>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define EVACTOR_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define EVACTOR_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define EVACTOR_POISON(p, n) ((void)(p), (void)(n))
#define EVACTOR_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace evactor::internal {
namespace {

constexpr size_t ClassCapacity(int c) { return kMinCapacity << c; }
static_assert(ClassCapacity(kNumClasses - 1) == kMaxPooled);

// The pool is plain data with constant initialisation, so that touching it never
// runs a constructor and stays valid after the thread's destructors ran (a Buffer
// that dies during thread exit, after the reaper below, frees straight to the
// allocator because `dead` is set).
struct Pool {
  Segment* free[kNumClasses];
  uint32_t count[kNumClasses];
  bool reaper_registered;
  bool dead;
};
constinit thread_local Pool pool = {};

void ReleaseStorage(Segment* s) {
  s->~Segment();
  ::operator delete(static_cast<void*>(s));
}

// Frees the pool's segments when its thread exits. A separate object because a
// thread_local with a destructor costs a guard check on every access; this one is
// touched once per thread, the first time the pool takes a segment.
struct Reaper {
  ~Reaper() {
    for (int c = 0; c < kNumClasses; ++c) {
      while (Segment* s = pool.free[c]) {
        pool.free[c] = s->next;
        EVACTOR_UNPOISON(s->storage(), s->capacity);
        ReleaseStorage(s);
      }
      pool.count[c] = 0;
    }
    pool.dead = true;
  }
  void Touch() {}
};

void RegisterReaper() {
  thread_local Reaper reaper;
  reaper.Touch();
  pool.reaper_registered = true;
}

// Smallest class whose capacity holds n, or -1 when n exceeds kMaxPooled.
int ClassFor(size_t n) {
  if (n <= kMinCapacity) return 0;
  if (n > kMaxPooled) return -1;
  // Position of the highest bit of (n - 1), relative to kMinCapacity's.
  const int bits = 64 - __builtin_clzll(static_cast<unsigned long long>(n - 1));
  return bits - 12;  // kMinCapacity == 1 << 12
}
static_assert(kMinCapacity == size_t{1} << 12);

}  // namespace

Segment* NewOwnedSegment(size_t min_capacity) {
  const int c = ClassFor(min_capacity);
  Segment* s = nullptr;
  size_t capacity;
  if (c >= 0) {
    capacity = ClassCapacity(c);
    s = pool.free[c];
    if (s != nullptr) {
      pool.free[c] = s->next;
      --pool.count[c];
      EVACTOR_UNPOISON(s->storage(), capacity);
    }
  } else {
    capacity = (min_capacity + 4095) & ~size_t{4095};
  }
  if (s == nullptr) {
    s = new (::operator new(sizeof(Segment) + capacity)) Segment;
  }
  s->next = nullptr;
  s->data = s->storage();
  s->len = 0;
  s->tailroom = capacity;
  s->capacity = capacity;
  s->kind = SegmentKind::kOwned;
  s->size_class = c >= 0 ? static_cast<uint8_t>(c) : kUnpooled;
  return s;
}

ExternalSegment* NewReferenceSegment(const void* data, size_t len,
                                     absl::AnyInvocable<void() &&> release) {
  auto* s = new ExternalSegment;
  // The bytes are never written through this pointer: a reference has no tailroom
  // or headroom, so nothing appends or prepends into it.
  s->data = const_cast<char*>(static_cast<const char*>(data));
  s->len = len;
  s->kind = SegmentKind::kReference;
  s->size_class = kUnpooled;
  s->release = std::move(release);
  return s;
}

ExternalSegment* NewFileSegment(int fd, off_t offset, size_t len,
                                absl::AnyInvocable<void() &&> release) {
  auto* s = new ExternalSegment;
  s->len = len;
  s->kind = SegmentKind::kFile;
  s->size_class = kUnpooled;
  s->fd = fd;
  s->offset = offset;
  s->release = std::move(release);
  return s;
}

void FreeSegment(Segment* s) {
  if (s->kind != SegmentKind::kOwned) {
    auto* e = static_cast<ExternalSegment*>(s);
    // The callback runs after the segment is gone: whatever it does (free the
    // memory, close the fd) can no longer be observed through the segment.
    absl::AnyInvocable<void()&&> release = std::move(e->release);
    delete e;
    if (release) std::move(release)();
    return;
  }
  const uint8_t c = s->size_class;
  if (c != kUnpooled && !pool.dead && pool.count[c] < kPoolBytesPerClass / ClassCapacity(c)) {
    if (!pool.reaper_registered) RegisterReaper();
    s->next = pool.free[c];
    pool.free[c] = s;
    ++pool.count[c];
    // Under ASan, a pooled segment's bytes are poisoned so that a use after free
    // through a stale view is still caught although the memory is not released.
    EVACTOR_POISON(s->storage(), s->capacity);
    return;
  }
  ReleaseStorage(s);
}

size_t PooledSegmentsForTesting(int size_class) {
  if (size_class < 0 || size_class >= kNumClasses) return 0;
  return pool.count[size_class];
}

}  // namespace evactor::internal
