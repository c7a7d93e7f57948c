#include "runtime/mailbox.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/internal/clock.h"
#include "runtime/internal/errno_status.h"

namespace evactor {

absl::StatusOr<std::unique_ptr<Mailbox>> Mailbox::Create(Loop& loop, int num_shards,
                                                          MailboxOptions options) {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return internal::ErrnoToStatus(errno, "eventfd");
  std::unique_ptr<Mailbox> box(new Mailbox(loop, num_shards, options, fd));
  box->wake_watcher_ = std::make_unique<IoWatcher>(
      loop, fd, kRead, [m = box.get()](uint32_t) { m->ReadWake(); }, IoOptions{.priority = 0});
  box->wake_watcher_->set_keeps_loop_alive(false);
  absl::Status s = box->wake_watcher_->Start();
  if (!s.ok()) return s;
  return box;
}

Mailbox::Mailbox(Loop& loop, int num_shards, MailboxOptions options, int event_fd)
    : loop_(loop),
      options_(options),
      event_fd_(event_fd),
      foreign_(options.foreign_ring_capacity) {
  size_t bytes = options.shard_ring_bytes;
  if (bytes == 0) {
    bytes = (size_t{2} << 20) / static_cast<size_t>(num_shards > 0 ? num_shards : 1);
    bytes = bytes < (size_t{32} << 10) ? (size_t{32} << 10)
                                       : (bytes > (size_t{1} << 20) ? (size_t{1} << 20) : bytes);
  }
  shard_full_ = absl::ResourceExhaustedError(
      absl::StrCat("mailbox ring from a shard is full (", bytes, " bytes)"));
  foreign_full_ = absl::ResourceExhaustedError(absl::StrCat(
      "mailbox ring for non-shard threads is full (", foreign_.capacity(), " messages)"));
  from_shard_.reserve(num_shards);
  for (int i = 0; i < num_shards; ++i) {
    from_shard_.push_back(std::make_unique<MessageRing>(bytes));
  }
}

Mailbox::~Mailbox() {
  wake_watcher_.reset();
  close(event_fd_);
}

absl::Status Mailbox::ClosedError() {
  return absl::FailedPreconditionError("the receiving shard has stopped");
}

absl::Status Mailbox::SendFull(int sender) {
  counters_.full.fetch_add(1, std::memory_order_relaxed);
  // The receiver must drain for this sender to make progress; it may be asleep
  // waiting for the wake-up this sender would only send at the end of its
  // iteration (the ring published what it held when it refused).
  WakeIfSleeping();
  // Built once: a refused send is the normal signal to back off, not a rare error.
  return sender < 0 ? foreign_full_ : shard_full_;
}

void Mailbox::WakeIfSleeping() {
  // An RMW on sleeping_ itself (see the header for why this is enough): either it
  // reads the receiver's "asleep" and this sender wakes it, or the receiver's own
  // RMW comes later, acquires our publication, and finds the message.
  // No plain-load shortcut: a load would not order the receiver after us.
  if (!sleeping_.exchange(false, std::memory_order_acq_rel)) return;
  counters_.wakeups_written.fetch_add(1, std::memory_order_relaxed);
  const uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves the fd readable: the loop wakes.
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

uint64_t Mailbox::published() const {
  uint64_t n = foreign_.claimed();
  for (const auto& ring : from_shard_) n += ring->pushed();
  return n;
}

uint64_t Mailbox::consumed() const {
  uint64_t n = foreign_.popped();
  for (const auto& ring : from_shard_) n += ring->popped();
  return n;
}

bool Mailbox::Empty() const {
  for (const auto& ring : from_shard_) {
    if (!ring->Empty()) return false;
  }
  return foreign_.Empty();
}

bool Mailbox::BeforePoll(bool may_block, absl::FunctionRef<bool()> wake_condition) {
  if (!Empty()) return true;
  if (!may_block) return false;
  if (options_.poll_before_sleep > absl::ZeroDuration()) {
    const int64_t until =
        internal::MonotonicNanos() + absl::ToInt64Nanoseconds(options_.poll_before_sleep);
    do {
      if (!Empty()) return true;
    } while (internal::MonotonicNanos() < until);
  }
  // An RMW, paired with the sender's RMW in WakeIfSleeping: if the sender's came
  // first, this acquires it and the re-check below sees the message.
  sleeping_.exchange(true, std::memory_order_acq_rel);
  if (!Empty() || wake_condition()) {
    sleeping_.store(false, std::memory_order_relaxed);
    return true;
  }
  blocking_.store(true, std::memory_order_relaxed);
  return false;
}

void Mailbox::AfterPoll() {
  blocking_.store(false, std::memory_order_relaxed);
  sleeping_.store(false, std::memory_order_relaxed);
  const size_t n = Drain(options_.batch);
  if (n != 0) depth_.Record(static_cast<int64_t>(n));
}

void Mailbox::ReadWake() {
  uint64_t value;
  [[maybe_unused]] ssize_t n = read(event_fd_, &value, sizeof value);
}

size_t Mailbox::Drain(size_t per_ring) {
  // A handler that drains its own mailbox would consume the ring under the batch
  // that is running it: refuse.
  if (draining_) return 0;
  draining_ = true;
  size_t n = 0;
  for (auto& ring : from_shard_) n += ring->Consume(per_ring);
  n += foreign_.Consume([](Message& m) { m(); }, per_ring);
  draining_ = false;
  if (n != 0) counters_.received.fetch_add(n, std::memory_order_relaxed);
  return n;
}

size_t Mailbox::DrainAll() {
  size_t total = 0;
  while (size_t n = Drain(~size_t{0})) total += n;
  return total;
}

size_t Mailbox::DiscardAll() {
  size_t n = 0;
  for (auto& ring : from_shard_) n += ring->Discard();
  n += foreign_.ConsumeAll([](Message&) {});
  return n;
}

}  // namespace evactor
