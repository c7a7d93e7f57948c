// evactor::SpscRing<T> — a bounded, lock-free single-producer/single-consumer queue.
//
// The channel between one pair of shards: one thread pushes, one thread pops, each
// side keeps its own cached copy of the other side's index so that the shared cache
// line is read only when the cached view says the ring looks full (producer) or empty
// (consumer). Consumers take whole batches, publishing their progress once per batch.
//
//   SpscRing<Msg> ring(1024);
//   // producer thread:                // consumer thread:
//   if (!ring.TryPush(std::move(m)))   ring.ConsumeAll([](Msg& m) { Handle(m); });
//     /* full: the sender decides */
//
// Thread safety: TryPush only from the one producer thread, Consume* only from the one
// consumer thread, at any one time; Size/Empty from either (approximate).
//
// Invariants:
//  1. 0 <= tail_ - head_ <= capacity; slots [head_, tail_) hold constructed values.
//  2. Only the producer writes tail_ and only the consumer writes head_.
//  3. A slot is constructed by the producer before the release store of tail_ that
//     publishes it, and destroyed by the consumer before the release store of head_
//     that hands it back (acquire loads on the other side make these visible).
#ifndef EVACTOR_RUNTIME_SPSC_RING_H_
#define EVACTOR_RUNTIME_SPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace evactor {

inline constexpr size_t kCacheLine = 64;

template <typename T>
class SpscRing {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit SpscRing(size_t capacity) {
    size_t c = 2;
    while (c < capacity) c <<= 1;
    mask_ = c - 1;
    slots_ = std::unique_ptr<Slot[]>(new Slot[c]);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;
  ~SpscRing() {
    size_t head = head_.load(std::memory_order_relaxed);
    const size_t tail = tail_.load(std::memory_order_relaxed);
    for (; head != tail; ++head) At(head)->~T();
  }

  size_t capacity() const { return mask_ + 1; }

  // Producer. Moves `value` in and returns true, or returns false (and leaves `value`
  // untouched) when the ring is full.
  bool TryPush(T&& value) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - producer_head_cache_ > mask_) {
      // Looks full: refresh our view of the consumer's progress. Acquire: the
      // consumer destroyed the slots it released before publishing head_.
      producer_head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - producer_head_cache_ > mask_) return false;
    }
    new (At(tail)) T(std::move(value));
    // Release: the constructed value is visible before the consumer sees tail + 1.
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer. Calls `fn(T&)` for up to `max` values in FIFO order, destroying each
  // after its call, and returns how many it took. `fn` may push to other rings, and
  // even to this one if the consumer is also the producer (not the shards' case).
  template <typename F>
  size_t Consume(F&& fn, size_t max) {
    size_t head = head_.load(std::memory_order_relaxed);
    if (consumer_tail_cache_ == head) {
      // Acquire: pairs with the producer's release store of tail_.
      consumer_tail_cache_ = tail_.load(std::memory_order_acquire);
      if (consumer_tail_cache_ == head) return 0;
    }
    size_t end = consumer_tail_cache_;
    if (end - head > max) end = head + max;
    const size_t n = end - head;
    for (; head != end; ++head) {
      T* v = At(head);
      fn(*v);
      v->~T();
    }
    // One release store per batch hands every consumed slot back at once.
    head_.store(end, std::memory_order_release);
    return n;
  }

  template <typename F>
  size_t ConsumeAll(F&& fn) {
    return Consume(std::forward<F>(fn), ~size_t{0});
  }

  // Approximate from other threads; exact from the consumer (for emptiness).
  size_t Size() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }
  bool Empty() const { return Size() == 0; }
  // Values ever pushed / ever consumed (consumed ones have finished their call).
  size_t pushed() const { return tail_.load(std::memory_order_acquire); }
  size_t popped() const { return head_.load(std::memory_order_acquire); }

 private:
  struct alignas(alignof(T)) Slot {
    unsigned char bytes[sizeof(T)];
  };
  T* At(size_t i) { return std::launder(reinterpret_cast<T*>(slots_[i & mask_].bytes)); }

  // Consumer side.
  alignas(kCacheLine) std::atomic<size_t> head_{0};
  size_t consumer_tail_cache_ = 0;
  // Producer side.
  alignas(kCacheLine) std::atomic<size_t> tail_{0};
  size_t producer_head_cache_ = 0;
  // Shared, read-only after construction.
  alignas(kCacheLine) size_t mask_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_SPSC_RING_H_
