// evactor::Mailbox — how work reaches a shard from other threads.
//
// A shard's mailbox has one MessageRing per shard (that shard's thread is the only
// producer; closures are stored in place, see message_ring.h) and one MpscRing for
// threads that are not shards. Messages are closures; the receiving shard runs them
// in its loop, in batches, in the order each sender sent them. A shard's sends become
// visible to the receiver when the sender publishes them: once per loop iteration
// (Mailbox::Publish from its BeforePoll, with the wake-up check), or earlier when a
// kilobyte has gathered or the ring is full.
//
// Waking the receiver: an eventfd write costs a system call on both sides and, across
// virtual CPUs, tens of microseconds; it is needed only when the receiver may be
// blocked in the backend. The receiver announces that in BeforePoll(may_block) by
// setting `sleeping_` and re-checking its rings; a sender that published a message
// checks `sleeping_` and, if set, the one sender that flips it back writes the
// eventfd. Shard senders do that check once per loop iteration for all they sent
// (Mailbox::Flush from their own BeforePoll), not once per message.
//
// Memory ordering (the Dekker pattern, with read-modify-writes instead of fences,
// which ThreadSanitizer cannot see): receiver: exchange(sleeping, true); then load
// the rings. Sender: publish to the ring; then exchange(sleeping, false). All RMWs on
// `sleeping_` are totally ordered. If the receiver's comes first, the sender's reads
// `true` and the sender writes the eventfd. If the sender's comes first, the
// receiver's acquire-RMW reads from it (or from a later RMW in its release
// sequence), so the sender's publication happens-before the receiver's re-check,
// which finds the message and does not block. A wake-up is never lost.
//
// Bounded: each ring has a fixed capacity. When a ring is full, Send returns
// ResourceExhausted and leaves the message with the caller, untouched (nothing is
// lost silently; the sender decides to retry, spill, or fail its own caller).
//
// Thread safety: Send(sender, ...) only from shard `sender`'s thread;
// SendForeign from any thread; everything else from the receiving shard's thread.
#ifndef EVACTOR_RUNTIME_MAILBOX_H_
#define EVACTOR_RUNTIME_MAILBOX_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/message_ring.h"
#include "runtime/metrics.h"
#include "runtime/mpsc_ring.h"

namespace evactor {

struct MailboxOptions {
  // Bytes of each shard-to-shard ring (0: 2 MiB / shards, clamped to 32 KiB..1 MiB,
  // so that N^2 rings stay a few tens of MiB; rounded up to a power of two). A
  // message takes 8 bytes plus its closure (a 16-byte closure: 24 bytes); closures
  // over MessageRing::kMaxInlineBytes take 16 and live on the heap. A bigger ring
  // lets a fast sender run longer before a sleeping receiver must be woken (a
  // wake-up costs tens of microseconds across virtual CPUs).
  size_t shard_ring_bytes = 0;
  // Messages the ring for threads that are not shards holds.
  size_t foreign_ring_capacity = 65536;
  // Messages run per ring per iteration, so that I/O and timers are not starved.
  size_t batch = 1024;
  // Before blocking, keep checking the rings for this long (a busy-poll window that
  // trades CPU for wake-up latency; 0 = block at once).
  absl::Duration poll_before_sleep = absl::ZeroDuration();
};

class Mailbox final : public LoopHooks {
 public:
  using Message = absl::AnyInvocable<void()>;

  // Messages published to this mailbox so far and messages it has finished running
  // (or discarded). Equal sums over all mailboxes, seen twice, mean no message is in
  // flight. Any thread; acquire loads.
  uint64_t published() const;
  uint64_t consumed() const;

  // Counters, readable from any thread (relaxed atomics: a snapshot, not a barrier).
  struct Counters {
    std::atomic<uint64_t> received{0};
    std::atomic<uint64_t> wakeups_written{0};  // eventfd writes aimed at this mailbox
    std::atomic<uint64_t> full{0};             // sends refused because a ring was full
  };

  // A mailbox for `loop` (the receiving shard's), fed by `num_shards` shard senders.
  // Creates the eventfd; errors are eventfd's.
  static absl::StatusOr<std::unique_ptr<Mailbox>> Create(Loop& loop, int num_shards,
                                                         MailboxOptions options = {});
  ~Mailbox() override;

  // From shard `sender`'s thread. On success the message will run on the receiver
  // once the sender publishes it (Publish) and wakes the receiver (WakeIfSleeping).
  // When the ring is full, returns ResourceExhausted, leaves `fn` untouched and
  // publishes and wakes for what this sender had queued. F: a callable void().
  template <typename F>
  absl::Status Send(int sender, F& fn) {
    if (closed()) [[unlikely]] return ClosedError();
    MessageRing& ring = *from_shard_[sender];
    if (!ring.TryPush(fn)) [[unlikely]] return SendFull(sender);
    if (ring.unpublished_bytes() >= MessageRing::kPublishBytes) [[unlikely]] {
      // A long burst: let the receiver start on it, and wake it if it has gone to
      // sleep. The hint (a plain load) may miss a receiver just falling asleep; the
      // sender's end-of-iteration WakeIfSleeping is what makes the protocol safe.
      ring.Publish();
      if (blocking_.load(std::memory_order_relaxed)) [[unlikely]] WakeIfSleeping();
    }
    return absl::OkStatus();
  }
  // Shard `sender`'s thread: makes what it sent visible to the receiver.
  void Publish(int sender) { from_shard_[sender]->Publish(); }
  // From any thread; wakes the receiver at once if needed. ResourceExhausted when
  // full, with `fn` untouched.
  template <typename F>
  absl::Status SendForeign(F& fn) {
    if (closed()) [[unlikely]] return ClosedError();
    if (!foreign_.TryPush(fn)) [[unlikely]] return SendFull(-1);
    WakeIfSleeping();
    return absl::OkStatus();
  }
  // Wakes the receiver if it may be asleep; called by a sender after publishing.
  // Any thread.
  void WakeIfSleeping();

  // Closes the mailbox: later sends fail with FailedPrecondition. Any thread.
  void Close() { closed_.store(true, std::memory_order_seq_cst); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // Receiver thread: runs everything queued now (ignores the batch limit). Called
  // from inside a message handler it does nothing and returns 0.
  size_t DrainAll();
  // Receiver thread: destroys everything queued without running it; returns the count.
  size_t DiscardAll();
  // True when no ring holds a message. Exact only on the receiver's thread.
  bool Empty() const;

  const Counters& counters() const { return counters_; }
  // Messages found waiting per drain that found any (how deep the mailbox ran).
  const Histogram& depth() const { return depth_; }

  // LoopHooks.
  bool BeforePoll(bool may_block) override { return BeforePoll(may_block, [] { return false; }); }
  // As BeforePoll, with a condition re-checked after "asleep" is published: if it is
  // true the loop does not block. A state change that the sender publishes before
  // calling WakeIfSleeping() is seen either here or by that call's wake-up (the
  // same argument as for messages), so such a wake-up cannot be lost.
  bool BeforePoll(bool may_block, absl::FunctionRef<bool()> wake_condition);
  void AfterPoll() override;
  bool HasWork() const override { return !Empty(); }

 private:
  Mailbox(Loop& loop, int num_shards, MailboxOptions options, int event_fd);
  [[gnu::cold, gnu::noinline]] static absl::Status ClosedError();
  [[gnu::cold, gnu::noinline]] absl::Status SendFull(int sender);  // sender -1: the foreign ring
  size_t Drain(size_t per_ring);
  void ReadWake();

  Loop& loop_;
  MailboxOptions options_;
  int event_fd_;
  std::unique_ptr<IoWatcher> wake_watcher_;
  std::vector<std::unique_ptr<MessageRing>> from_shard_;
  MpscRing<Message> foreign_;
  absl::Status shard_full_;    // what a refused send returns
  absl::Status foreign_full_;
  std::atomic<bool> closed_{false};
  bool draining_ = false;  // receiver thread only
  alignas(kCacheLine) std::atomic<bool> sleeping_{false};
  // Set once the receiver's final re-check found nothing and it goes on to block
  // (a hint for senders mid-burst; the protocol itself rests on sleeping_ alone).
  std::atomic<bool> blocking_{false};
  alignas(kCacheLine) Counters counters_;
  Histogram depth_;  // written by the receiver only
};

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_MAILBOX_H_
