#include "runtime/internal/timer_heap.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace evactor::internal {

namespace {
constexpr int kArity = 4;
}  // namespace

void TimerHeap::Add(Event* ev, int64_t deadline_ns, int64_t duration_ns) {
  ev->deadline_ns = deadline_ns;
  ev->timer_seq = seq_++;
  ++size_;
  if (!common_.empty()) {
    auto it = common_.find(duration_ns);
    if (it != common_.end()) {
      CommonTimeoutQueue* q = it->second.get();
      // FIFO order holds only if the new deadline is not before the tail's.
      if (q->tail == nullptr || q->tail->deadline_ns <= deadline_ns) {
        ev->common = q;
        ev->common_next = nullptr;
        ev->common_prev = q->tail;
        if (q->tail != nullptr) {
          q->tail->common_next = ev;
        } else {
          q->head = ev;
          q->deadline_ns = ev->deadline_ns;
          q->timer_seq = ev->timer_seq;
          HeapPush(q);
        }
        q->tail = ev;
        return;
      }
    }
  }
  HeapPush(ev);
}

void TimerHeap::Remove(Event* ev) {
  if (ev->common != nullptr) {
    UnlinkFromQueue(ev);
    --size_;
  } else if (ev->heap_index >= 0) {
    HeapErase(ev->heap_index);
    --size_;
  }
}

Event* TimerHeap::PopExpired(int64_t now_ns, uint64_t seq_limit) {
  if (heap_.empty()) return nullptr;
  const Node& top = heap_[0];
  if (top.deadline > now_ns || top.ev->timer_seq >= seq_limit) return nullptr;
  Event* ev = top.ev;
  if (ev->is_common_proxy) {
    ev = static_cast<CommonTimeoutQueue*>(ev)->head;
    UnlinkFromQueue(ev);
  } else {
    HeapErase(0);
  }
  --size_;
  return ev;
}

absl::Status TimerHeap::AddCommonDuration(int64_t duration_ns) {
  if (duration_ns < 0) {
    return absl::InvalidArgumentError("a common timeout cannot be negative");
  }
  if (common_.contains(duration_ns)) return absl::OkStatus();
  if (common_.size() >= kMaxCommonTimeouts) {
    return absl::ResourceExhaustedError(
        absl::StrCat("at most ", kMaxCommonTimeouts, " common timeouts per loop"));
  }
  auto q = std::make_unique<CommonTimeoutQueue>();
  q->is_common_proxy = true;
  q->duration_ns = duration_ns;
  common_.emplace(duration_ns, std::move(q));
  return absl::OkStatus();
}

void TimerHeap::UnlinkFromQueue(Event* ev) {
  CommonTimeoutQueue* q = ev->common;
  const bool was_head = q->head == ev;
  if (ev->common_prev != nullptr) {
    ev->common_prev->common_next = ev->common_next;
  } else {
    q->head = ev->common_next;
  }
  if (ev->common_next != nullptr) {
    ev->common_next->common_prev = ev->common_prev;
  } else {
    q->tail = ev->common_prev;
  }
  ev->common = nullptr;
  ev->common_next = ev->common_prev = nullptr;
  if (!was_head) return;
  if (q->head == nullptr) {
    HeapErase(q->heap_index);
  } else {
    // The proxy takes the new head's key, which is never earlier: sift down.
    q->deadline_ns = q->head->deadline_ns;
    q->timer_seq = q->head->timer_seq;
    const int32_t i = q->heap_index;
    heap_[i].deadline = q->deadline_ns;
    SiftDown(i);
  }
}

void TimerHeap::HeapPush(Event* ev) {
  heap_.push_back(Node{ev->deadline_ns, ev});
  ev->heap_index = static_cast<int32_t>(heap_.size() - 1);
  SiftUp(ev->heap_index);
}

void TimerHeap::HeapErase(int32_t index) {
  Event* gone = heap_[index].ev;
  gone->heap_index = -1;
  const int32_t last = static_cast<int32_t>(heap_.size() - 1);
  if (index != last) {
    Place(index, heap_[last]);
    heap_.pop_back();
    HeapFix(index);
  } else {
    heap_.pop_back();
  }
}

void TimerHeap::HeapFix(int32_t index) {
  if (index > 0 && Less(heap_[index], heap_[(index - 1) / kArity])) {
    SiftUp(index);
  } else {
    SiftDown(index);
  }
}

void TimerHeap::SiftUp(int32_t index) {
  Node node = heap_[index];
  while (index > 0) {
    const int32_t parent = (index - 1) / kArity;
    if (!Less(node, heap_[parent])) break;
    Place(index, heap_[parent]);
    index = parent;
  }
  Place(index, node);
}

void TimerHeap::SiftDown(int32_t index) {
  const int32_t n = static_cast<int32_t>(heap_.size());
  Node node = heap_[index];
  while (true) {
    const int32_t first = index * kArity + 1;
    if (first >= n) break;
    int32_t best = first;
    const int32_t end = first + kArity < n ? first + kArity : n;
    for (int32_t c = first + 1; c < end; ++c) {
      if (Less(heap_[c], heap_[best])) best = c;
    }
    if (!Less(heap_[best], node)) break;
    Place(index, heap_[best]);
    index = best;
  }
  Place(index, node);
}

}  // namespace evactor::internal
