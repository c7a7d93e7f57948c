// evactor::MpscRing<T> — a bounded, lock-free multi-producer/single-consumer queue.
//
// How threads that are not shards (a main thread, a signal watcher's helper, a
// library callback) send work to a shard. Each slot carries a sequence number
// (Dmitry Vyukov's bounded queue): a producer claims a position with one CAS, fills
// the slot, then publishes it by storing the slot's sequence; the consumer takes
// slots in order as they become published.
//
// Thread safety: TryPush from any number of threads; Consume from one thread.
//
// Invariants:
//  1. Slot i's sequence is i when free for the producer that claims position i,
//     i + 1 when it holds that producer's value, i + capacity after the consumer took
//     it (free for position i + capacity).
//  2. The consumer never passes a claimed but unpublished slot: FIFO per position.
#ifndef EVACTOR_RUNTIME_MPSC_RING_H_
#define EVACTOR_RUNTIME_MPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

#include "runtime/spsc_ring.h"

namespace evactor {

template <typename T>
class MpscRing {
 public:
  explicit MpscRing(size_t capacity) {
    size_t c = 2;
    while (c < capacity) c <<= 1;
    mask_ = c - 1;
    slots_ = std::unique_ptr<Slot[]>(new Slot[c]);
    for (size_t i = 0; i < c; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
  }
  MpscRing(const MpscRing&) = delete;
  MpscRing& operator=(const MpscRing&) = delete;
  ~MpscRing() {
    ConsumeAll([](T&) {});
  }

  size_t capacity() const { return mask_ + 1; }

  // Any thread. Moves `value` in (as a T constructed from it) and returns true, or
  // returns false (leaving `value` untouched) when the ring is full.
  template <typename U>
  bool TryPush(U&& value) {
    size_t pos = tail_.load(std::memory_order_relaxed);
    while (true) {
      Slot& s = slots_[pos & mask_];
      // Acquire: pairs with the consumer's release when it freed the slot.
      const size_t seq = s.seq.load(std::memory_order_acquire);
      const intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          new (s.Ptr()) T(std::move(value));  // NOLINT(bugprone-move-forwarding-reference)
          // Release: the value is visible before the slot reads as published.
          s.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
        // pos was reloaded by the failed CAS; try again.
      } else if (diff < 0) {
        return false;  // the slot still holds a value a lap behind: full
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Consumer. Takes up to `max` published values in order.
  template <typename F>
  size_t Consume(F&& fn, size_t max) {
    size_t n = 0;
    while (n < max) {
      Slot& s = slots_[head_ & mask_];
      // Acquire: pairs with the producer's release store of seq.
      if (s.seq.load(std::memory_order_acquire) != head_ + 1) break;
      T* v = s.Ptr();
      fn(*v);
      v->~T();
      s.seq.store(head_ + mask_ + 1, std::memory_order_release);
      ++head_;
      ++n;
    }
    if (n != 0) popped_.store(head_, std::memory_order_release);
    return n;
  }

  template <typename F>
  size_t ConsumeAll(F&& fn) {
    return Consume(std::forward<F>(fn), ~size_t{0});
  }

  // Positions claimed by producers (some may still be filling), and values consumed.
  // Any thread.
  size_t claimed() const { return tail_.load(std::memory_order_acquire); }
  size_t popped() const { return popped_.load(std::memory_order_acquire); }

  // Consumer only. Approximate; from the consumer, "false" is exact enough to decide to sleep only
  // together with the wake-up protocol of the Mailbox.
  bool Empty() const {
    const Slot& s = slots_[head_ & mask_];
    return s.seq.load(std::memory_order_acquire) != head_ + 1;
  }

 private:
  struct Slot {
    std::atomic<size_t> seq;
    alignas(alignof(T)) unsigned char bytes[sizeof(T)];
    T* Ptr() { return std::launder(reinterpret_cast<T*>(bytes)); }
  };

  alignas(kCacheLine) std::atomic<size_t> tail_{0};
  alignas(kCacheLine) size_t head_ = 0;  // consumer only
  std::atomic<size_t> popped_{0};        // head_, published for other threads
  alignas(kCacheLine) size_t mask_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_MPSC_RING_H_
