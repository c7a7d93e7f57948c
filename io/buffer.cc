#include "io/buffer.h"

#include <errno.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace evactor {

using internal::ExternalSegment;
using internal::Segment;
using internal::SegmentKind;

namespace {

constexpr char kWouldBlockMessage[] = "would block (EAGAIN)";

// One shared status: returning it costs a reference count, not an allocation, on the
// path every non-blocking read loop ends with.
const absl::Status& WouldBlock() {
  static const absl::Status* const status =
      new absl::Status(absl::StatusCode::kUnavailable, kWouldBlockMessage);
  return *status;
}

absl::Status ErrnoError(int err, const char* call, int fd) {
  return absl::ErrnoToStatus(err, absl::StrCat(call, "(fd ", fd, ")"));
}

// A small segment in the tail is realigned (its bytes moved to the front of its
// storage) rather than a new segment allocated when at most this many bytes move
// (libevent's MAX_TO_REALIGN_IN_EXPAND).
constexpr size_t kMaxRealign = 2048;

// How much of a file region WriteTo reads per call when sendfile cannot be used.
constexpr size_t kFileFallbackChunk = 256 * 1024;

// sendfile and read/write transfer at most this much per call on Linux.
constexpr size_t kMaxIoChunk = 0x7ffff000;

#ifdef IOV_MAX
constexpr int kMaxIov = IOV_MAX;
#else
constexpr int kMaxIov = 1024;
#endif

// read(2) or readv(2) as a plain system call. glibc's wrappers are cancellation
// points: in a multi-threaded process each call switches asynchronous cancellation on
// and off around the system call, which cost about 1.5% of a loaded memcached shard.
// Nothing here uses pthread_cancel. Under TSan the wrappers stay: its interceptors
// are what make a byte written on one thread and read on another an ordering edge.
ssize_t ReadNoCancel(int fd, iovec* iov, int n) {
#if defined(__SANITIZE_THREAD__)
  return n == 1 ? ::read(fd, iov[0].iov_base, iov[0].iov_len) : ::readv(fd, iov, n);
#else
  return n == 1 ? ::syscall(SYS_read, fd, iov[0].iov_base, iov[0].iov_len)
                : ::syscall(SYS_readv, fd, iov, n);
#endif
}

// A rough rank of how common a byte is in network text (higher: more common). The
// search prefilter runs memchr on the needle's rarest byte, so that a needle whose
// first byte is everywhere (a letter, a space) still skips quickly.
constexpr int ByteRank(unsigned char c) {
  if (c == ' ') return 10;
  if (c == 'e' || c == 't' || c == 'a' || c == 'o' || c == 'i' || c == 'n' || c == 's' ||
      c == 'r' || c == 'h' || c == 'l') {
    return 9;
  }
  if (c >= 'a' && c <= 'z') return 8;
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 6;
  if (c == '\r' || c == '\n' || c == '\t' || c == 0) return 5;
  if (c < 0x20 || c >= 0x7f) return 2;
  return 4;  // punctuation
}

struct RankTable {
  constexpr RankTable() : rank() {
    for (int c = 0; c < 256; ++c)
      rank[c] = static_cast<uint8_t>(ByteRank(static_cast<unsigned char>(c)));
  }
  uint8_t rank[256];
};
constexpr RankTable kRanks;

// The needle prepared for searching: the index of its rarest byte.
struct Needle {
  explicit Needle(std::string_view n) : text(n) {
    int best = 1000;
    for (size_t i = 0; i < n.size(); ++i) {
      const int r = kRanks.rank[static_cast<unsigned char>(n[i])];
      if (r < best) {
        best = r;
        anchor = i;
      }
    }
  }
  std::string_view text;
  size_t anchor = 0;
};

// First occurrence of the needle (size >= 2) wholly inside [d, d + len).
const char* FindInBlock(const char* d, size_t len, const Needle& needle) {
  const size_t m = needle.text.size();
  if (len < m) return nullptr;
  const char* const last = d + (len - m);  // last possible start
  const size_t k = needle.anchor;
  const char a = needle.text[k];
  const char* p = d;
  size_t misses = 0;
  while (p <= last) {
    const void* hit = std::memchr(p + k, a, static_cast<size_t>(last - p) + 1);
    if (hit == nullptr) return nullptr;
    const char* cand = static_cast<const char*>(hit) - k;
    if (std::memcmp(cand, needle.text.data(), m) == 0) return cand;
    p = cand + 1;
    // Too many false candidates: the anchor byte is common in this data. memmem
    // (two-way) bounds the work from here on.
    if (++misses > 16 && misses * 64 > static_cast<size_t>(p - d)) {
      if (p > last) return nullptr;
      return static_cast<const char*>(
          ::memmem(p, static_cast<size_t>(d + len - p), needle.text.data(), m));
    }
  }
  return nullptr;
}

// Does the needle start at s->data[off] and continue into the following segments?
// (s holds fewer than needle.size() bytes from off.)
bool MatchesAcross(const Segment* s, size_t off, std::string_view needle) {
  while (!needle.empty()) {
    if (s == nullptr) return false;
    const size_t take = std::min(s->len - off, needle.size());
    if (std::memcmp(s->data + off, needle.data(), take) != 0) return false;
    needle.remove_prefix(take);
    s = s->next;
    off = 0;
  }
  return true;
}

}  // namespace

bool IsWouldBlock(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable && status.message() == kWouldBlockMessage;
}

// ---- Callbacks -------------------------------------------------------------------------

struct Buffer::Callbacks {
  struct Entry {
    CallbackId id;
    SizeCallback fn;
    bool enabled = true;
    bool removed = false;
  };
  // unique_ptr: an entry (and the callable in it) stays put while it runs, even if a
  // callback adds entries and the vector reallocates.
  std::vector<std::unique_ptr<Entry>> entries;
  CallbackId next_id = 1;
  int running = 0;  // nesting depth of RunCallbacks
  bool has_removed = false;
  int suspended = 0;
  size_t pending_added = 0;
  size_t pending_deleted = 0;
};

Buffer::CallbackId Buffer::AddCallback(SizeCallback callback) {
  if (callbacks_ == nullptr) callbacks_ = std::make_unique<Callbacks>();
  auto entry = std::make_unique<Callbacks::Entry>();
  entry->id = callbacks_->next_id++;
  entry->fn = std::move(callback);
  const CallbackId id = entry->id;
  callbacks_->entries.push_back(std::move(entry));
  return id;
}

bool Buffer::RemoveCallback(CallbackId id) {
  if (callbacks_ == nullptr) return false;
  auto& entries = callbacks_->entries;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i]->id != id || entries[i]->removed) continue;
    if (callbacks_->running > 0) {
      // It may be running (or an outer frame may be about to look at it): mark it,
      // and erase once no callback runs.
      entries[i]->removed = true;
      callbacks_->has_removed = true;
    } else {
      entries.erase(entries.begin() + static_cast<ptrdiff_t>(i));
      MaybeDropCallbacks();
    }
    return true;
  }
  return false;
}

bool Buffer::SetCallbackEnabled(CallbackId id, bool enabled) {
  if (callbacks_ == nullptr) return false;
  for (auto& e : callbacks_->entries) {
    if (e->id == id && !e->removed) {
      e->enabled = enabled;
      return true;
    }
  }
  return false;
}

void Buffer::SuspendCallbacks() {
  if (callbacks_ == nullptr) callbacks_ = std::make_unique<Callbacks>();
  ++callbacks_->suspended;
}

void Buffer::ResumeCallbacks() {
  if (callbacks_ == nullptr || callbacks_->suspended == 0) return;
  if (--callbacks_->suspended == 0) {
    RunCallbacks(0, 0);
    MaybeDropCallbacks();
  }
}

// Without callbacks (and not suspended), the hot paths should not even look at the
// list: drop it.
void Buffer::MaybeDropCallbacks() {
  Callbacks* cb = callbacks_.get();
  if (cb == nullptr || cb->running > 0) return;
  if (cb->has_removed) {
    auto& e = cb->entries;
    e.erase(std::remove_if(e.begin(), e.end(), [](const auto& x) { return x->removed; }), e.end());
    cb->has_removed = false;
  }
  if (cb->entries.empty() && cb->suspended == 0) callbacks_.reset();
}

void Buffer::RunCallbacks(size_t added, size_t deleted) {
  Callbacks& cb = *callbacks_;
  cb.pending_added += added;
  cb.pending_deleted += deleted;
  if (cb.suspended > 0) return;
  if (cb.pending_added == 0 && cb.pending_deleted == 0) return;
  // libevent's evbuffer_invoke_callbacks_: the counters are reset before the calls, so
  // that a change made by a callback is reported by its own (nested) round.
  const SizeChange change{size_ + cb.pending_deleted - cb.pending_added, cb.pending_added,
                          cb.pending_deleted};
  cb.pending_added = 0;
  cb.pending_deleted = 0;
  ++cb.running;
  // Callbacks added during the round start with the next change.
  const size_t n = cb.entries.size();
  for (size_t i = 0; i < n; ++i) {
    Callbacks::Entry* e = cb.entries[i].get();
    if (e->enabled && !e->removed) e->fn(*this, change);
  }
  --cb.running;
  if (cb.running == 0 && cb.has_removed) MaybeDropCallbacks();
}

// ---- Lifetime ----------------------------------------------------------------------------

Buffer::Buffer() = default;

Buffer::~Buffer() {
  CancelReservation();
  FreeChain();
}

Buffer::Buffer(Buffer&& other) noexcept {
  other.CancelReservation();
  head_ = std::exchange(other.head_, nullptr);
  tail_ = std::exchange(other.tail_, nullptr);
  size_ = std::exchange(other.size_, 0);
  file_segments_ = std::exchange(other.file_segments_, 0);
  max_read_ = other.max_read_;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this == &other) return *this;
  CancelReservation();
  other.CancelReservation();
  FreeChain();
  head_ = std::exchange(other.head_, nullptr);
  tail_ = std::exchange(other.tail_, nullptr);
  size_ = std::exchange(other.size_, 0);
  file_segments_ = std::exchange(other.file_segments_, 0);
  max_read_ = other.max_read_;
  return *this;
}

void Buffer::FreeChain() {
  Segment* s = head_;
  // The buffer is emptied before any release callback can run and look at it.
  head_ = tail_ = nullptr;
  size_ = 0;
  file_segments_ = 0;
  while (s != nullptr) {
    Segment* next = s->next;
    internal::FreeSegment(s);
    s = next;
  }
}

void Buffer::LinkTail(Segment* s) {
  s->next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = s;
  } else {
    head_ = s;
  }
  tail_ = s;
}

// ---- Adding --------------------------------------------------------------------------

void Buffer::AppendBytes(const char* data, size_t n) {
  Segment* t = tail_;
  if (t != nullptr && t->kind == SegmentKind::kOwned && t->tailroom < n) {
    // Realign a small tail instead of allocating when that makes room.
    const size_t head = t->headroom();
    if (head + t->tailroom >= n && t->len <= kMaxRealign && t->len < t->capacity / 2) {
      std::memmove(t->storage(), t->data, t->len);
      t->data = t->storage();
      t->tailroom += head;
    }
  }
  if (t != nullptr && t->tailroom > 0) {
    const size_t k = std::min(n, t->tailroom);
    std::memcpy(t->data + t->len, data, k);
    t->len += k;
    t->tailroom -= k;
    data += k;
    n -= k;
  }
  if (n == 0) return;
  Segment* s = internal::NewOwnedSegment(n);
  std::memcpy(s->data, data, n);
  s->len = n;
  s->tailroom -= n;
  LinkTail(s);
}

void Buffer::AppendSlow(const char* data, size_t n) {
  if (n == 0) return;
  CancelReservation();
  AppendBytes(data, n);
  size_ += n;
  Changed(n, 0);
}

void Buffer::Append(Buffer&& other) {
  if (&other == this) return;
  other.CancelReservation();
  if (other.size_ == 0) return;
  CancelReservation();
  const size_t n = other.size_;
  if (tail_ != nullptr) {
    tail_->next = other.head_;
  } else {
    head_ = other.head_;
  }
  tail_ = other.tail_;
  size_ += n;
  file_segments_ += other.file_segments_;
  other.head_ = other.tail_ = nullptr;
  other.size_ = 0;
  other.file_segments_ = 0;
  Changed(n, 0);
  other.Changed(0, n);
}

void Buffer::AppendReference(const void* data, size_t n, ReleaseCallback release) {
  if (n == 0) {
    if (release) std::move(release)();
    return;
  }
  CancelReservation();
  LinkTail(internal::NewReferenceSegment(data, n, std::move(release)));
  size_ += n;
  Changed(n, 0);
}

absl::Status Buffer::AppendFile(int fd, off_t offset, size_t length, ReleaseCallback release) {
  if (fd < 0) return absl::InvalidArgumentError("AppendFile: negative fd");
  if (offset < 0) return absl::InvalidArgumentError("AppendFile: negative offset");
  constexpr size_t kMaxOff = static_cast<size_t>(std::numeric_limits<off_t>::max());
  if (length > kMaxOff - static_cast<size_t>(offset)) {
    return absl::InvalidArgumentError("AppendFile: offset + length overflows off_t");
  }
  if (length == 0) {
    if (release) std::move(release)();
    return absl::OkStatus();
  }
  CancelReservation();
  LinkTail(internal::NewFileSegment(fd, offset, length, std::move(release)));
  ++file_segments_;
  size_ += length;
  Changed(length, 0);
  return absl::OkStatus();
}

void Buffer::Prepend(const void* data, size_t n) {
  if (n == 0) return;
  if (size_ == 0) {
    Append(data, n);
    return;
  }
  CancelReservation();
  const char* src = static_cast<const char*>(data);
  size_t rest = n;
  Segment* h = head_;
  const size_t room = h->headroom();
  if (room > 0) {
    // The end of the data goes into the head's headroom.
    const size_t k = std::min(room, rest);
    h->data -= k;
    h->len += k;
    std::memcpy(h->data, src + rest - k, k);
    rest -= k;
  }
  if (rest > 0) {
    // The rest goes at the end of a fresh segment, leaving its room in front, where
    // the next Prepend will look.
    Segment* s = internal::NewOwnedSegment(rest);
    s->data = s->storage() + (s->capacity - rest);
    s->len = rest;
    s->tailroom = 0;
    std::memcpy(s->data, src, rest);
    s->next = head_;
    head_ = s;
  }
  size_ += n;
  Changed(n, 0);
}

void Buffer::Prepend(Buffer&& other) {
  if (&other == this) return;
  other.CancelReservation();
  if (other.size_ == 0) return;
  CancelReservation();
  const size_t n = other.size_;
  other.tail_->next = head_;
  head_ = other.head_;
  if (tail_ == nullptr) tail_ = other.tail_;
  size_ += n;
  file_segments_ += other.file_segments_;
  other.head_ = other.tail_ = nullptr;
  other.size_ = 0;
  other.file_segments_ = 0;
  Changed(n, 0);
  other.Changed(0, n);
}

std::span<char> Buffer::Reserve(size_t min_bytes) {
  CancelReservation();
  if (min_bytes == 0) min_bytes = 1;
  reserved_ = true;
  if (tail_ != nullptr && tail_->tailroom >= min_bytes) {
    reserve_segment_ = nullptr;
    reserve_size_ = tail_->tailroom;
    return {tail_->data + tail_->len, tail_->tailroom};
  }
  reserve_segment_ = internal::NewOwnedSegment(min_bytes);
  reserve_size_ = reserve_segment_->tailroom;
  return {reserve_segment_->data, reserve_size_};
}

absl::Status Buffer::Commit(size_t n) {
  if (!reserved_) {
    return absl::FailedPreconditionError(
        "Commit: no reservation (none made, or cancelled by a change to the buffer)");
  }
  if (n > reserve_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Commit: ", n, " bytes exceed the ", reserve_size_, " reserved"));
  }
  Segment* s = reserve_segment_;
  reserved_ = false;
  reserve_segment_ = nullptr;
  reserve_size_ = 0;
  if (n == 0) {
    if (s != nullptr) internal::FreeSegment(s);
    return absl::OkStatus();
  }
  if (s != nullptr) {
    s->len = n;
    s->tailroom -= n;
    LinkTail(s);
  } else {
    tail_->len += n;
    tail_->tailroom -= n;
  }
  size_ += n;
  Changed(n, 0);
  return absl::OkStatus();
}

void Buffer::DropReservation() {
  reserved_ = false;
  reserve_size_ = 0;
  if (reserve_segment_ != nullptr) {
    internal::FreeSegment(reserve_segment_);
    reserve_segment_ = nullptr;
  }
}

// ---- Removing -----------------------------------------------------------------------

size_t Buffer::DrainSlow(size_t n) {
  n = std::min(n, size_);
  if (n == 0) return 0;
  CancelReservation();
  size_t rest = n;
  while (rest > 0) {
    Segment* s = head_;
    if (s->len > rest) {
      internal::ConsumeFront(s, rest);
      size_ -= rest;
      break;
    }
    rest -= s->len;
    head_ = s->next;
    if (head_ == nullptr) tail_ = nullptr;
    if (s->kind == SegmentKind::kFile) --file_segments_;
    // Bookkeeping first: a release callback runs on a consistent buffer.
    size_ -= s->len;
    internal::FreeSegment(s);
  }
  Changed(0, n);
  return n;
}

size_t Buffer::Remove(void* out, size_t n) {
  const size_t copied = CopyOut(0, out, n);
  Drain(copied);
  return copied;
}

size_t Buffer::RemoveTo(Buffer& dst, size_t n) {
  if (&dst == this) return 0;
  n = std::min(n, size_);
  if (n == 0) return 0;
  CancelReservation();
  dst.CancelReservation();
  size_t moved = 0;
  while (moved < n) {
    Segment* s = head_;
    const size_t want = n - moved;
    if (s->len > want) {
      if (s->kind == SegmentKind::kFile) {
        // Load just the bytes that move; the owned prefix is then moved whole.
        if (!LoadFilePrefix(nullptr, s, want).ok()) break;
        continue;
      }
      dst.AppendBytes(s->data, want);
      internal::ConsumeFront(s, want);
      moved += want;
      break;
    }
    head_ = s->next;
    if (head_ == nullptr) tail_ = nullptr;
    if (s->kind == SegmentKind::kFile) {
      --file_segments_;
      ++dst.file_segments_;
    }
    dst.LinkTail(s);
    moved += s->len;
  }
  size_ -= moved;
  dst.size_ += moved;
  dst.Changed(moved, 0);
  Changed(0, moved);
  return moved;
}

void Buffer::CopyLine(size_t n, std::string* line) const {
  if (head_ != nullptr && head_->len >= n) {
    line->assign(head_->data, n);
    return;
  }
  line->clear();
  line->reserve(n);
  for (const Segment* s = head_; n > 0; s = s->next) {
    const size_t k = std::min(n, s->len);
    line->append(s->data, k);
    n -= k;
  }
}

bool Buffer::ReadLineInto(EolStyle style, std::string* line) {
  const std::optional<EolMatch> eol = SearchEol(style, 0);
  if (!eol.has_value()) return false;
  CopyLine(eol->position, line);
  Drain(eol->position + eol->length);
  return true;
}

std::optional<std::string> Buffer::ReadLine(EolStyle style) {
  const std::optional<EolMatch> eol = SearchEol(style, 0);
  if (!eol.has_value()) return std::nullopt;
  std::optional<std::string> line(std::in_place);
  CopyLine(eol->position, &*line);
  Drain(eol->position + eol->length);
  return line;
}

// ---- Looking --------------------------------------------------------------------------

size_t Buffer::CopyOut(size_t from, void* out, size_t n) {
  if (from >= size_ || n == 0) return 0;
  size_t end = n > size_ - from ? size_ : from + n;
  end = Loaded(end);
  if (end <= from) return 0;
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  char* dst = static_cast<char*>(out);
  size_t off = from - base;
  size_t rest = end - from;
  while (rest > 0) {
    const size_t k = std::min(rest, s->len - off);
    std::memcpy(dst, s->data + off, k);
    dst += k;
    rest -= k;
    off = 0;
    s = s->next;
  }
  return end - from;
}

std::string Buffer::ToString() {
  std::string out(size_, '\0');
  out.resize(CopyOut(0, out.data(), size_));
  return out;
}

std::string_view Buffer::Pullup(size_t n) {
  if (n == kAll) n = size_;
  if (n == 0 || n > size_) return {};
  Segment* h = head_;
  if (h->len >= n && h->kind != SegmentKind::kFile) return {h->data, n};
  if (Loaded(n) < n) return {};
  CancelReservation();
  h = head_;  // loading may have replaced it
  if (h->len >= n) return {h->data, n};
  // Gather into the head when it is owned and has (or can make) room; else into a
  // fresh segment in front of it. (h is not the tail here: it holds < n <= size.)
  Segment* dst;
  size_t need;
  if (h->kind == SegmentKind::kOwned && h->headroom() + h->tailroom >= n - h->len) {
    if (h->tailroom < n - h->len) {
      std::memmove(h->storage(), h->data, h->len);
      h->tailroom += h->headroom();
      h->data = h->storage();
    }
    dst = h;
    need = n - h->len;
  } else {
    dst = internal::NewOwnedSegment(n);
    dst->next = h;
    head_ = dst;
    need = n;
  }
  while (need > 0) {
    Segment* s = dst->next;
    const size_t k = std::min(need, s->len);
    std::memcpy(dst->data + dst->len, s->data, k);
    dst->len += k;
    dst->tailroom -= k;
    need -= k;
    if (k == s->len) {
      dst->next = s->next;
      if (tail_ == s) tail_ = dst;
      internal::FreeSegment(s);
    } else {
      internal::ConsumeFront(s, k);
    }
  }
  return {dst->data, n};
}

size_t Buffer::Peek(size_t from, size_t n, std::span<std::string_view> out) {
  if (from >= size_ || n == 0) return 0;
  size_t end = n > size_ - from ? size_ : from + n;
  end = Loaded(end);
  if (end <= from) return 0;
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  size_t pieces = 0;
  size_t off = from - base;
  size_t pos = from;
  while (pos < end) {
    const size_t k = std::min(end - pos, s->len - off);
    if (pieces < out.size()) out[pieces] = std::string_view(s->data + off, k);
    ++pieces;
    pos += k;
    off = 0;
    s = s->next;
  }
  return pieces;
}

std::optional<size_t> Buffer::Search(std::string_view needle, size_t from, size_t to) {
  size_t limit = std::min(to, size_);
  if (from > limit) return std::nullopt;
  const size_t m = needle.size();
  if (m == 0) return from;
  if (limit - from < m) return std::nullopt;
  limit = Loaded(limit);
  if (limit < from || limit - from < m) return std::nullopt;
  if (m == 1) return FindByte(needle[0], from, limit);

  const Needle prepared(needle);
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  for (size_t off = from - base; s != nullptr && base < limit;
       base += s->len, s = s->next, off = 0) {
    const size_t usable = std::min(s->len, limit - base);
    size_t c = off;
    if (prepared.anchor == 0) {
      // The first byte is the rarest: one memchr pass over every possible start, as
      // libevent's evbuffer_search does; a start near the end is checked across the
      // boundary. If the byte turns out to be common here, the two-phase search below
      // (which can switch to memmem) takes over.
      size_t misses = 0;
      while (c < usable) {
        const void* q = std::memchr(s->data + c, needle[0], usable - c);
        if (q == nullptr) {
          c = usable;
          break;
        }
        c = static_cast<size_t>(static_cast<const char*>(q) - s->data);
        if (base + c + m > limit) return std::nullopt;
        if (c + m <= s->len ? std::memcmp(s->data + c, needle.data(), m) == 0
                            : MatchesAcross(s, c, needle)) {
          return base + c;
        }
        ++c;
        if (++misses > 16) break;
      }
      if (c >= usable) continue;
    }
    // Phase 1: matches wholly inside this segment.
    if (usable - c >= m) {
      const char* p = FindInBlock(s->data + c, usable - c, prepared);
      if (p != nullptr) return base + static_cast<size_t>(p - s->data);
    }
    if (usable < s->len) break;  // the range ends inside this segment
    // Phase 2: matches that start in the last m-1 bytes and run into the next segments.
    c = std::max(c, s->len >= m - 1 ? s->len - (m - 1) : size_t{0});
    while (c < s->len) {
      if (base + c + m > limit) return std::nullopt;
      const void* q = std::memchr(s->data + c, needle[0], s->len - c);
      if (q == nullptr) break;
      c = static_cast<size_t>(static_cast<const char*>(q) - s->data);
      if (base + c + m > limit) return std::nullopt;
      if (MatchesAcross(s, c, needle)) return base + c;
      ++c;
    }
  }
  return std::nullopt;
}

const internal::Segment* Buffer::SegmentAt(size_t pos, size_t* base) const {
  const Segment* s = head_;
  size_t b = 0;
  while (b + s->len <= pos) {
    b += s->len;
    s = s->next;
  }
  *base = b;
  return s;
}

std::optional<size_t> Buffer::FindByte(char c, size_t from, size_t limit) const {
  if (from >= limit) return std::nullopt;
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  for (size_t off = from - base; s != nullptr && base < limit;
       base += s->len, s = s->next, off = 0) {
    const size_t usable = std::min(s->len, limit - base);
    if (off >= usable) continue;
    const void* p = std::memchr(s->data + off, c, usable - off);
    if (p != nullptr) return base + static_cast<size_t>(static_cast<const char*>(p) - s->data);
  }
  return std::nullopt;
}

std::optional<size_t> Buffer::FindCrOrLf(size_t from, size_t limit) const {
  if (from >= limit) return std::nullopt;
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  for (size_t off = from - base; s != nullptr && base < limit;
       base += s->len, s = s->next, off = 0) {
    const size_t usable = std::min(s->len, limit - base);
    if (off >= usable) continue;
    const char* d = s->data + off;
    size_t len = usable - off;
    // LF first (the usual EOL), then CR only before it: two bounded memchr passes.
    const void* lf = std::memchr(d, '\n', len);
    if (lf != nullptr) len = static_cast<size_t>(static_cast<const char*>(lf) - d);
    const void* cr = std::memchr(d, '\r', len);
    const void* p = cr != nullptr ? cr : lf;
    if (p != nullptr) return base + static_cast<size_t>(static_cast<const char*>(p) - s->data);
  }
  return std::nullopt;
}

// kLf finds the first LF. kCrlf (strict == false) the first LF, widened to include a CR
// just before it (not before `from`). kCrlfStrict (strict == true) the first LF that
// has a CR just before it (at or after `from`).
std::optional<EolMatch> Buffer::FindLfEol(size_t from, size_t limit, bool strict) const {
  if (from >= limit) return std::nullopt;
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  // The byte before the current segment's first one, or -1 when that is before
  // `from` (or there is none).
  int before = -1;
  for (size_t off = from - base; s != nullptr && base < limit;
       base += s->len, s = s->next, off = 0) {
    const size_t usable = std::min(s->len, limit - base);
    size_t at = off;
    while (at < usable) {
      const void* p = std::memchr(s->data + at, '\n', usable - at);
      if (p == nullptr) break;
      const size_t i = static_cast<size_t>(static_cast<const char*>(p) - s->data);
      int prev;
      if (i > off) {
        prev = static_cast<unsigned char>(s->data[i - 1]);
      } else {
        prev = off > 0 ? static_cast<unsigned char>(s->data[i - 1]) : before;
        if (base + i == from) prev = -1;
      }
      if (prev == '\r') return EolMatch{base + i - 1, 2};
      if (!strict) return EolMatch{base + i, 1};
      at = i + 1;
    }
    before = usable > 0 ? static_cast<unsigned char>(s->data[usable - 1]) : before;
  }
  return std::nullopt;
}

size_t Buffer::CountCrLfRun(size_t from, size_t limit) const {
  size_t base = 0;
  const Segment* s = SegmentAt(from, &base);
  size_t run = 0;
  for (size_t off = from - base; s != nullptr && base < limit;
       base += s->len, s = s->next, off = 0) {
    const size_t usable = std::min(s->len, limit - base);
    size_t i = off;
    while (i < usable && (s->data[i] == '\r' || s->data[i] == '\n')) ++i;
    run += i - off;
    if (i < s->len) break;
  }
  return run;
}

std::optional<EolMatch> Buffer::SearchEol(EolStyle style, size_t from) {
  if (from >= size_) return std::nullopt;
  // Only loaded bytes are looked at: every scan below stops at `limit`.
  const size_t limit = Loaded(size_);
  switch (style) {
    case EolStyle::kLf: {
      std::optional<size_t> p = FindByte('\n', from, limit);
      if (!p) return std::nullopt;
      return EolMatch{*p, 1};
    }
    case EolStyle::kNul: {
      std::optional<size_t> p = FindByte('\0', from, limit);
      if (!p) return std::nullopt;
      return EolMatch{*p, 1};
    }
    case EolStyle::kCrlf:
      return FindLfEol(from, limit, /*strict=*/false);
    case EolStyle::kCrlfStrict:
      return FindLfEol(from, limit, /*strict=*/true);
    case EolStyle::kAny: {
      std::optional<size_t> p = FindCrOrLf(from, limit);
      if (!p) return std::nullopt;
      return EolMatch{*p, CountCrLfRun(*p, limit)};
    }
  }
  return std::nullopt;
}

// ---- File regions -------------------------------------------------------------------

absl::Status Buffer::LoadFilePrefix(Segment* prev, Segment* s, size_t k) {
  auto* fs = static_cast<ExternalSegment*>(s);
  Segment* mem = internal::NewOwnedSegment(k);
  size_t got = 0;
  while (got < k) {
    const size_t chunk = std::min(k - got, kMaxIoChunk);
    const ssize_t r = ::pread(fs->fd, mem->data + got, chunk, fs->offset + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      internal::FreeSegment(mem);
      return ErrnoError(err, "pread", fs->fd);
    }
    if (r == 0) {
      internal::FreeSegment(mem);
      return absl::DataLossError(absl::StrCat("file region of fd ", fs->fd,
                                              " runs past the end of the file (at offset ",
                                              fs->offset + static_cast<off_t>(got), ")"));
    }
    got += static_cast<size_t>(r);
  }
  mem->len = k;
  mem->tailroom -= k;
  mem->next = s;
  if (prev != nullptr) {
    prev->next = mem;
  } else {
    head_ = mem;
  }
  if (k == s->len) {
    mem->next = s->next;
    if (tail_ == s) tail_ = mem;
    --file_segments_;
    internal::FreeSegment(s);
  } else {
    internal::ConsumeFront(s, k);
  }
  return absl::OkStatus();
}

size_t Buffer::LoadUpTo(size_t limit, absl::Status* error) {
  Segment* prev = nullptr;
  size_t base = 0;
  for (Segment* s = head_; s != nullptr && base < limit && file_segments_ > 0;) {
    if (s->kind == SegmentKind::kFile) {
      // Load what the caller needs, in pieces of at least 64 KiB so that reading a
      // region bit by bit does not make a chain of tiny segments.
      const size_t k = std::min(s->len, std::max(limit - base, internal::kMaxPooled));
      absl::Status st = LoadFilePrefix(prev, s, k);
      if (!st.ok()) {
        if (error != nullptr) *error = std::move(st);
        return base;
      }
      s = prev != nullptr ? prev->next : head_;
    }
    base += s->len;
    prev = s;
    s = s->next;
  }
  return limit;
}

absl::Status Buffer::LoadFileRegions() {
  if (file_segments_ == 0) return absl::OkStatus();
  CancelReservation();
  absl::Status error;
  LoadUpTo(size_, &error);
  return error;
}

// ---- I/O ------------------------------------------------------------------------------

absl::StatusOr<size_t> Buffer::ReadFrom(int fd, size_t max) {
  if (max == 0) return absl::InvalidArgumentError("ReadFrom: max must be > 0");
  if (fd < 0) return absl::InvalidArgumentError("ReadFrom: negative fd");
  CancelReservation();
  max = std::min(max, kMaxIoChunk);
  iovec iov[2];
  int n = 0;
  Segment* t = tail_;
  size_t in_tail = 0;
  if (t != nullptr && t->tailroom > 0) {
    in_tail = std::min(t->tailroom, max);
    iov[n++] = {t->data + t->len, in_tail};
  }
  Segment* fresh = nullptr;
  if (in_tail < max) {
    size_t want = max - in_tail;
    if (want > internal::kMaxPooled) {
      // A big cap: size the fresh segment by what is queued rather than allocate (and
      // likely free) megabytes for a short read.
      int queued = 0;
      if (::ioctl(fd, FIONREAD, &queued) == 0 && queued >= 0) {
        want = std::min(want, std::max(static_cast<size_t>(queued), internal::kMinCapacity));
      }
    }
    fresh = internal::NewOwnedSegment(want);
    iov[n++] = {fresh->data, want};
  }
  ssize_t r;
  do {
    r = ReadNoCancel(fd, iov, n);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    const int err = errno;
    if (fresh != nullptr) internal::FreeSegment(fresh);
    if (r == 0) return size_t{0};
    if (err == EAGAIN || err == EWOULDBLOCK) return WouldBlock();
    return ErrnoError(err, n == 1 ? "read" : "readv", fd);
  }
  const size_t got = static_cast<size_t>(r);
  const size_t a = std::min(got, in_tail);
  if (a > 0) {
    t->len += a;
    t->tailroom -= a;
  }
  if (got > a) {
    fresh->len = got - a;
    fresh->tailroom -= got - a;
    LinkTail(fresh);
  } else if (fresh != nullptr) {
    internal::FreeSegment(fresh);
  }
  size_ += got;
  Changed(got, 0);
  return got;
}

absl::StatusOr<size_t> Buffer::SendFileHead(int fd, size_t max, bool* unsupported) {
  auto* fs = static_cast<ExternalSegment*>(head_);
  const size_t want = std::min({fs->len, max, kMaxIoChunk});
  off_t off = fs->offset;
  ssize_t r;
  do {
    r = ::sendfile(fd, fs->fd, &off, want);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return WouldBlock();
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
      *unsupported = true;
      return size_t{0};
    }
    return ErrnoError(err, "sendfile", fd);
  }
  if (r == 0) {
    return absl::DataLossError(absl::StrCat("file region of fd ", fs->fd,
                                            " runs past the end of the file (at offset ",
                                            fs->offset, ")"));
  }
  return static_cast<size_t>(r);
}

absl::StatusOr<size_t> Buffer::WriteTo(int fd, size_t max) {
  if (size_ == 0 || max == 0) return size_t{0};
  if (fd < 0) return absl::InvalidArgumentError("WriteTo: negative fd");
  CancelReservation();
  if (head_->kind == SegmentKind::kFile) {
    bool unsupported = false;
    absl::StatusOr<size_t> sent = SendFileHead(fd, max, &unsupported);
    if (!sent.ok()) return sent;
    if (!unsupported) {
      Drain(*sent);
      return sent;
    }
    // sendfile cannot write to this descriptor: read a chunk and write it normally.
    absl::Status st =
        LoadFilePrefix(nullptr, head_, std::min({head_->len, max, kFileFallbackChunk}));
    if (!st.ok()) return st;
  }
  iovec iov[kMaxIov];
  int n = 0;
  size_t total = 0;
  const size_t limit = std::min(max, kMaxIoChunk);
  for (const Segment* s = head_; s != nullptr && n < kMaxIov && total < limit; s = s->next) {
    if (s->kind == SegmentKind::kFile) break;
    const size_t k = std::min(s->len, limit - total);
    iov[n++] = {s->data, k};
    total += k;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  ssize_t r;
  const char* call = "sendmsg";
  do {
    r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno == ENOTSOCK) {
    call = "writev";
    do {
      r = ::writev(fd, iov, n);
    } while (r < 0 && errno == EINTR);
  }
  if (r < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return WouldBlock();
    return ErrnoError(err, call, fd);
  }
  const size_t written = static_cast<size_t>(r);
  Drain(written);
  return written;
}

// ---- Introspection --------------------------------------------------------------------

size_t Buffer::segment_count() const {
  size_t n = 0;
  for (const Segment* s = head_; s != nullptr; s = s->next) ++n;
  return n;
}

absl::Status Buffer::CheckInvariants() const {
  auto broken = [](const std::string& what) {
    return absl::InternalError(absl::StrCat("Buffer invariant broken: ", what));
  };
  if ((head_ == nullptr) != (tail_ == nullptr)) return broken("head/tail nullness differ");
  if ((head_ == nullptr) != (size_ == 0)) return broken("empty chain iff size 0");
  size_t total = 0;
  size_t files = 0;
  size_t index = 0;
  const Segment* last = nullptr;
  for (const Segment* s = head_; s != nullptr; s = s->next, ++index) {
    const std::string where = absl::StrCat("segment ", index, ": ");
    if (s->len == 0) return broken(where + "empty segment in the chain");
    switch (s->kind) {
      case SegmentKind::kOwned:
        if (s->capacity < s->len || s->capacity - s->len < s->tailroom) {
          return broken(where + "len + tailroom exceed capacity");
        }
        if (s->data != s->storage() + s->headroom()) {
          return broken(where + "data does not start after the headroom");
        }
        break;
      case SegmentKind::kReference:
        if (s->tailroom != 0 || s->data == nullptr) return broken(where + "bad reference");
        break;
      case SegmentKind::kFile:
        if (s->tailroom != 0) return broken(where + "file region with tailroom");
        if (static_cast<const ExternalSegment*>(s)->offset < 0) {
          return broken(where + "negative file offset");
        }
        ++files;
        break;
      default:
        return broken(where + "unknown kind");
    }
    total += s->len;
    last = s;
  }
  if (last != tail_) return broken("tail is not the last segment");
  if (total != size_) {
    return broken(absl::StrCat("size ", size_, " != sum of segments ", total));
  }
  if (files != file_segments_) return broken("file region count");
  if (reserved_) {
    if (reserve_segment_ != nullptr) {
      if (reserve_segment_->len != 0 || reserve_segment_->tailroom < reserve_size_) {
        return broken("reserved segment");
      }
    } else if (tail_ == nullptr || tail_->tailroom < reserve_size_) {
      return broken("reservation exceeds the tail's room");
    }
  } else if (reserve_segment_ != nullptr || reserve_size_ != 0) {
    return broken("stale reservation");
  }
  if (callbacks_ != nullptr && callbacks_->running == 0 &&
      (callbacks_->pending_added != 0 || callbacks_->pending_deleted != 0) &&
      callbacks_->suspended == 0) {
    return broken("unreported size change");
  }
  return absl::OkStatus();
}

}  // namespace evactor
