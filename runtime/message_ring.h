// evactor::MessageRing — the single-producer/single-consumer channel between two
// shards, carrying closures stored in place.
//
// A message is an 8-byte header (the address of a thunk that knows the closure's
// type) followed by the closure itself, moved straight into the ring: no
// type-erased wrapper, no heap allocation for closures up to kMaxInlineBytes, one
// indirect call on the receiver (the thunk runs the closure, destroys it and returns
// how many bytes the message took). A 16-byte closure takes 24 bytes of ring.
//
//   MessageRing ring(1 << 16);
//   // producer thread:                     // consumer thread:
//   auto msg = [p] { Handle(p); };          ring.Consume(1024);  // runs them in order
//   if (!ring.TryPush(msg)) { /* full */ }
//   ring.Publish();  // or later, once for many pushes
//
// Publication: TryPush writes the message but makes it visible to the consumer only
// when the producer calls Publish() (the Mailbox does when kPublishBytes have
// gathered, and once per sender loop iteration). Publishing per batch instead of per message lets the
// consumer read whole cache lines the producer has finished with (no line bounces
// between the two CPUs per message). A producer must call Publish() before it
// blocks or waits for the consumer (the shards do it once per loop iteration).
//
// Full: TryPush returns false and leaves the closure with the caller, untouched
// (publishing what it had pushed, so that the consumer can make room). After a
// refusal the ring accepts again once an eighth of it is free.
//
// Thread safety: TryPush/Publish from the one producer thread, Consume/Discard from
// the one consumer thread (they may be the same thread: a shard sending to itself);
// Empty() exact on the consumer; pushed()/popped()/Size() from any thread.
//
// Invariants:
//  1. Bytes [head_, tail_) hold published messages; [tail_, local_tail_) pushed ones
//     not yet published; local_tail_ - head_ <= capacity.
//  2. A message never wraps: when it does not fit before the end of the buffer, the
//     producer writes a wrap marker (a null header) and starts it at offset 0.
//  3. Only the producer writes tail_, local_tail_, published_tail_, pushed_; only the consumer writes
//     head_ and popped_. Release stores of tail_/head_ publish the bytes before them.
#ifndef EVACTOR_RUNTIME_MESSAGE_RING_H_
#define EVACTOR_RUNTIME_MESSAGE_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "runtime/spsc_ring.h"  // kCacheLine

namespace evactor {

class MessageRing {
 public:
  // Closures larger than this (or aligned more than 16) are moved to the heap and the
  // ring carries a pointer to them.
  static constexpr size_t kMaxInlineBytes = 256;
  // Pushed bytes after which a sender should publish without waiting for the end
  // of its loop iteration.
  static constexpr size_t kPublishBytes = 1024;

  // `capacity_bytes` is rounded up to a power of two, at least 4096.
  explicit MessageRing(size_t capacity_bytes) {
    size_t c = 4096;
    while (c < capacity_bytes) c <<= 1;
    mask_ = c - 1;
    buffer_ = static_cast<unsigned char*>(::operator new(c, std::align_val_t{kCacheLine}));
  }
  MessageRing(const MessageRing&) = delete;
  MessageRing& operator=(const MessageRing&) = delete;
  // Destroys, without running them, every message still in the ring, published or
  // not. REQUIRES: neither side is running.
  ~MessageRing() {
    Walk(local_tail_, /*run=*/false, ~size_t{0});
    ::operator delete(buffer_, std::align_val_t{kCacheLine});
  }

  size_t capacity_bytes() const { return mask_ + 1; }

  // The ring bytes a closure of type F takes (at offset `at`, for the padding that
  // 16-byte alignment may need).
  template <typename F>
  static constexpr size_t EntryBytes(size_t at = 0) {
    using Stored = StoredType<std::decay_t<F>>;
    return Thunks<Stored>::ObjectOffset(at) + RoundUp8(sizeof(Stored));
  }

  // Producer. Moves `fn` into the ring and returns true, or returns false and leaves
  // `fn` untouched when the ring is full. F: a callable `void()`, move-constructible.
  template <typename F>
  bool TryPush(F& fn) {
    using D = std::decay_t<F>;
    using Stored = StoredType<D>;
    using T = Thunks<Stored>;
    size_t at = local_tail_;
    const size_t offset = at & mask_;
    size_t skip = 0;
    size_t size = T::ObjectOffset(offset) + RoundUp8(sizeof(Stored));
    if (offset + size > mask_ + 1) [[unlikely]] {
      // Does not fit before the end: a wrap marker, and the message at offset 0.
      skip = mask_ + 1 - offset;
      size = T::ObjectOffset(0) + RoundUp8(sizeof(Stored));
    }
    if (at + skip + size + refill_reserve_ - producer_head_cache_ > mask_ + 1) {
      // Looks full: refresh our view of the consumer (acquire: it destroyed the
      // messages it handed back before publishing head_).
      producer_head_cache_ = head_.load(std::memory_order_acquire);
      if (at + skip + size + refill_reserve_ - producer_head_cache_ > mask_ + 1) [[unlikely]] {
        // Full. Accept again only once an eighth of the ring is free: refilling a
        // full ring message by message would make both sides take turns for every
        // message.
        refill_reserve_ = (mask_ + 1) / 8;
        Publish();
        return false;
      }
      refill_reserve_ = 0;
    }
    if (skip != 0) {
      *reinterpret_cast<Thunk*>(buffer_ + offset) = nullptr;
      at += skip;
    }
    unsigned char* header = buffer_ + (at & mask_);
    *reinterpret_cast<Thunk*>(header) = &T::Run;
    if constexpr (std::is_same_v<Stored, D>) {
      new (header + T::ObjectOffset(at & mask_)) Stored(std::move(fn));
    } else {
      new (header + T::ObjectOffset(at & mask_)) Stored{std::make_unique<D>(std::move(fn))};
    }
    local_tail_ = at + size;
    pushed_.store(pushed_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return true;
  }

  // Producer: bytes pushed since the last Publish().
  size_t unpublished_bytes() const { return local_tail_ - published_tail_; }

  // Producer: makes everything pushed so far visible to the consumer.
  void Publish() {
    published_tail_ = local_tail_;
    tail_.store(local_tail_, std::memory_order_release);
  }

  // Consumer. Runs up to `max` published messages in FIFO order (each destroyed
  // right after it ran) and returns how many. A message may push to other rings and
  // to this one (when the consumer is also the producer); what it pushes here runs
  // in a later call.
  size_t Consume(size_t max) { return Walk(0, /*run=*/true, max); }
  // Consumer. Destroys every published message without running it; returns the count.
  size_t Discard() { return Walk(0, /*run=*/false, ~size_t{0}); }

  // Exact on the consumer's thread: no published message waits.
  bool Empty() const {
    return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_acquire);
  }
  // Messages pushed (published or not) and messages consumed (run or discarded,
  // after the fact). Any thread.
  uint64_t pushed() const { return pushed_.load(std::memory_order_acquire); }
  uint64_t popped() const { return popped_.load(std::memory_order_acquire); }
  // Pushed but not yet consumed. Approximate off the producer and consumer.
  uint64_t Size() const { return pushed() - popped(); }

 private:
  // Runs (run = true) or only destroys the closure whose header is at `header`;
  // returns the bytes the message took.
  using Thunk = size_t (*)(unsigned char* header, bool run);

  static constexpr size_t RoundUp8(size_t n) { return (n + 7) & ~size_t{7}; }

  // A closure too large or too aligned to sit in the ring travels as a pointer.
  template <typename D>
  struct Boxed {
    std::unique_ptr<D> fn;
    void operator()() { (*fn)(); }
  };
  template <typename D>
  using StoredType =
      std::conditional_t<(sizeof(D) <= kMaxInlineBytes && alignof(D) <= 16), D, Boxed<D>>;

  template <typename S>
  struct Thunks {
    // Where the object starts relative to a header at ring offset `at`.
    static constexpr size_t ObjectOffset(size_t at) {
      if constexpr (alignof(S) <= 8) {
        return 8;
      } else {
        return ((at + 8 + alignof(S) - 1) & ~(alignof(S) - 1)) - at;
      }
    }
    static size_t Run(unsigned char* header, bool run) {
      const size_t at = reinterpret_cast<uintptr_t>(header);
      // The buffer is cache-line aligned, so alignment padding computed from the
      // address equals the one computed from the ring offset.
      S* obj = std::launder(reinterpret_cast<S*>(header + ObjectOffset(at)));
      if (run) (*obj)();
      obj->~S();
      return ObjectOffset(at) + RoundUp8(sizeof(S));
    }
  };

  // Consumer side of Consume/Discard; `limit_tail` != 0 walks up to that position
  // (the destructor, for unpublished messages too).
  size_t Walk(size_t limit_tail, bool run, size_t max) {
    size_t head = head_.load(std::memory_order_relaxed);
    size_t end = limit_tail != 0 ? limit_tail : consumer_tail_cache_;
    size_t n = 0;
    while (n < max) {
      if (head == end) {
        if (limit_tail != 0) break;
        // Caught up with what we knew: look once more at the producer (acquire:
        // pairs with Publish's release store).
        consumer_tail_cache_ = end = tail_.load(std::memory_order_acquire);
        if (head == end) break;
      }
      unsigned char* header = buffer_ + (head & mask_);
      const Thunk thunk = *reinterpret_cast<Thunk*>(header);
      if (thunk == nullptr) {  // wrap marker
        head += mask_ + 1 - (head & mask_);
        continue;
      }
      head += thunk(header, run);
      ++n;
    }
    // One release store per batch hands the space back (after every destructor ran).
    head_.store(head, std::memory_order_release);
    if (n != 0) {
      popped_.store(popped_.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }
    return n;
  }

  // Consumer side.
  alignas(kCacheLine) std::atomic<size_t> head_{0};
  size_t consumer_tail_cache_ = 0;
  std::atomic<uint64_t> popped_{0};
  // Producer side.
  alignas(kCacheLine) size_t local_tail_ = 0;
  size_t published_tail_ = 0;
  size_t producer_head_cache_ = 0;
  size_t refill_reserve_ = 0;  // free bytes required beyond the message, after a refusal
  std::atomic<uint64_t> pushed_{0};
  // Published by the producer, read by the consumer.
  alignas(kCacheLine) std::atomic<size_t> tail_{0};
  // Shared, read-only after construction.
  alignas(kCacheLine) size_t mask_;
  unsigned char* buffer_;
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_MESSAGE_RING_H_
