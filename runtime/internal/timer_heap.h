// The loop's timeouts: a 4-ary min-heap of deadlines, plus FIFOs for durations the
// user declared common (Loop::UseCommonTimeout), which cost O(1) to start and stop.
//
// Thread safety: none; owned by one Loop.
//
// Invariants:
//  1. heap_[i].ev->heap_index == i for every node; each node's (deadline, seq) is no
//     smaller than its parent's.
//  2. A common FIFO holds events in non-decreasing deadline order; a non-empty FIFO is
//     represented in the heap by its proxy, whose (deadline, seq) equal its head's.
//     An event whose deadline would break the FIFO order goes into the heap instead.
//  3. Sequence numbers only grow, so equal deadlines pop in the order they were added.
#ifndef EVACTOR_RUNTIME_INTERNAL_TIMER_HEAP_H_
#define EVACTOR_RUNTIME_INTERNAL_TIMER_HEAP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "runtime/internal/event.h"

namespace evactor::internal {

struct CommonTimeoutQueue : Event {
  void Fire(uint32_t) override {}
  void OnTimeout() override {}
  int64_t duration_ns = 0;
  Event* head = nullptr;
  Event* tail = nullptr;
};

class TimerHeap {
 public:
  static constexpr int kMaxCommonTimeouts = 256;

  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  // Schedules `ev` (REQUIRES: not scheduled) at `deadline_ns`; `duration_ns` selects
  // a common FIFO when one exists for it.
  void Add(Event* ev, int64_t deadline_ns, int64_t duration_ns);
  // Unschedules `ev`; no-op when it is not scheduled.
  void Remove(Event* ev);
  // Earliest deadline, or -1 when nothing is scheduled.
  int64_t NextDeadline() const { return heap_.empty() ? -1 : heap_[0].deadline; }
  // Unschedules and returns the earliest event with deadline <= now_ns that was
  // added before the sequence number `seq_limit`, or nullptr.
  Event* PopExpired(int64_t now_ns, uint64_t seq_limit);
  // The next sequence number to be handed out (a limit for PopExpired).
  uint64_t next_seq() const { return seq_; }
  // Events scheduled (proxies not counted).
  int64_t size() const { return size_; }

  absl::Status AddCommonDuration(int64_t duration_ns);

 private:
  // 16 bytes: the deadline inline (most comparisons end there), the sequence number
  // read from the event only on ties.
  struct Node {
    int64_t deadline;
    Event* ev;
  };
  static bool Less(const Node& a, const Node& b) {
    return a.deadline < b.deadline ||
           (a.deadline == b.deadline && a.ev->timer_seq < b.ev->timer_seq);
  }
  void HeapPush(Event* ev);
  void HeapErase(int32_t index);
  void HeapFix(int32_t index);  // restores order after node `index` changed
  void SiftUp(int32_t index);
  void SiftDown(int32_t index);
  void Place(int32_t index, const Node& node) {
    heap_[index] = node;
    node.ev->heap_index = index;
  }
  void UnlinkFromQueue(Event* ev);

  std::vector<Node> heap_;
  uint64_t seq_ = 0;
  int64_t size_ = 0;
  absl::flat_hash_map<int64_t, std::unique_ptr<CommonTimeoutQueue>> common_;
};

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_TIMER_HEAP_H_
