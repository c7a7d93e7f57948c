#include "io/send_batch.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>

#include <cstring>
#include <utility>

#include "io/buffered_socket.h"

namespace evactor {

namespace {

int Slot() {
  static const int slot = Loop::NewExtensionSlot();
  return slot;
}

constexpr unsigned kRingEntries = 256;

// Result slots: no send was prepared (the socket writes directly), or a send was
// prepared and no completion has filled the slot yet.
constexpr int kNotSent = 1 << 30;
constexpr int kPending = (1 << 30) + 1;

}  // namespace

std::unique_ptr<io_uring> SendBatch::NewRing() {
  if (getenv("EVACTOR_NO_URING") != nullptr) return nullptr;
  auto ring = std::make_unique<io_uring>();
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
#ifdef IORING_SETUP_COOP_TASKRUN
  // No interrupt to run completion work: the sends complete while we submit.
  params.flags |= IORING_SETUP_COOP_TASKRUN;
#endif
  int r = io_uring_queue_init_params(kRingEntries, ring.get(), &params);
  if (r == -EINVAL && params.flags != 0) {  // an older kernel: no such flag
    std::memset(&params, 0, sizeof params);
    r = io_uring_queue_init_params(kRingEntries, ring.get(), &params);
  }
  if (r < 0) return nullptr;
  return ring;
}

SendBatch* SendBatch::For(Loop& loop) {
  LoopExtension* ext = loop.extension(Slot());
  if (ext == nullptr) {
    // Installed either way: a batch without a ring remembers that there is none.
    ext = loop.SetExtension(Slot(), std::unique_ptr<LoopExtension>(new SendBatch(NewRing())));
  }
  auto* batch = static_cast<SendBatch*>(ext);
  return batch->ring_ != nullptr ? batch : nullptr;
}

void SendBatch::AfterFork() {
  if (ring_ == nullptr) return;
  io_uring_queue_exit(ring_.get());  // the child's mappings and fd only
  ring_ = NewRing();
  ring_entries_ = ring_ != nullptr ? ring_->sq.ring_entries : 0;
}

SendBatch::SendBatch(std::unique_ptr<io_uring> ring)
    : ring_(std::move(ring)), ring_entries_(ring_ != nullptr ? ring_->sq.ring_entries : 0) {}

SendBatch::~SendBatch() {
  if (ring_ != nullptr) io_uring_queue_exit(ring_.get());
}

size_t SendBatch::Queue(BufferedSocket* socket) {
  queue_.push_back(socket);
  return queue_.size() - 1;
}

bool SendBatch::EndOfIteration() {
  if (queue_.empty()) return false;
  // Callbacks run below may queue sockets again: those go after `end`, for the next
  // pass.
  const size_t end = queue_.size();
  // Without a ring (it failed, or a fork replaced it with none) the sockets write
  // directly, all in one pass.
  const size_t chunk = ring_ != nullptr ? ring_entries_ : end;
  for (size_t from = 0; from < end;) {
    const size_t n = std::min<size_t>(end - from, chunk);
    SendChunk(from, n);
    from += n;
  }
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(end));
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (queue_[i] != nullptr) queue_[i]->batch_place_ = i;
  }
  return !queue_.empty();
}

void SendBatch::SendChunk(size_t from, size_t n) {
  headers_.resize(n);
  iovs_.resize(n * kMaxIov);
  results_.assign(n, kNotSent);
  size_t submitted = 0;
  if (ring_ != nullptr) {
    for (size_t k = 0; k < n; ++k) {
      BufferedSocket* s = queue_[from + k];
      if (s == nullptr) continue;
      iovec* iov = &iovs_[k * kMaxIov];
      const int pieces = s->PrepareBatchedSend(iov, kMaxIov);
      if (pieces == 0) continue;
      io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
      if (sqe == nullptr) break;  // cannot happen: at most ring_entries_ per chunk
      // MSG_DONTWAIT: the kernel completes the send during the submission, taking
      // what fits, instead of waiting for room. One piece (the usual reply) is a
      // plain send: the kernel copies no message header or piece list then.
      if (pieces == 1) {
        io_uring_prep_send(sqe, s->fd(), iov[0].iov_base, iov[0].iov_len,
                           MSG_DONTWAIT | MSG_NOSIGNAL);
      } else {
        msghdr& h = headers_[k];
        std::memset(&h, 0, sizeof h);
        h.msg_iov = iov;
        h.msg_iovlen = static_cast<size_t>(pieces);
        io_uring_prep_sendmsg(sqe, s->fd(), &h, MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      io_uring_sqe_set_data64(sqe, k);
      results_[k] = kPending;
      ++submitted;
    }
  }
  if (submitted != 0) {
    ++stats_.submissions;
    stats_.sends += submitted;
    size_t reaped = 0;
    bool entered = false;  // the kernel took the sends (io_uring_enter counted them)
    while (reaped < submitted) {
      const int r = io_uring_submit_and_wait(ring_.get(), 1);
      if (r > 0) entered = true;
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        // The ring is not used again, so nothing it holds can be sent later. Sends
        // the kernel never took are written directly below; sends it took but did
        // not complete (this should not happen with MSG_DONTWAIT) are reported as
        // write errors rather than risk sending their bytes twice.
        fprintf(stderr, "evactor: io_uring failed (%s); writing directly from now on\n",
                strerror(-r));
        for (size_t k = 0; k < n; ++k) {
          if (results_[k] == kPending) results_[k] = entered ? -EIO : kNotSent;
        }
        io_uring_queue_exit(ring_.get());
        ring_.reset();
        break;
      }
      io_uring_cqe* cqe = nullptr;
      while (reaped < submitted && io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
        const uint64_t k = io_uring_cqe_get_data64(cqe);
        if (k < n) results_[k] = cqe->res;
        io_uring_cqe_seen(ring_.get(), cqe);
        ++reaped;
      }
    }
  }
  // Phase 1, no user code: every socket takes its result (drains what was sent)
  // before any callback can touch any of them (a callback that flushes another
  // socket must not send bytes that are already out).
  for (size_t k = 0; k < n; ++k) {
    BufferedSocket* s = queue_[from + k];
    if (s == nullptr || results_[k] == kNotSent) continue;
    if (results_[k] == -ENOTSOCK) {
      // A pipe or another non-socket: nothing was sent, and it writes directly from
      // now on (write(2) works where send does not).
      results_[k] = kNotSent;
      s->batch_off_ = true;
      continue;
    }
    if (results_[k] >= 0 && static_cast<size_t>(results_[k]) < s->BatchedBytes()) {
      ++stats_.short_sends;
    } else if (results_[k] == -EAGAIN) {
      ++stats_.short_sends;
    }
    s->ApplyBatchedSend(results_[k]);
  }
  // Phase 2: callbacks (errors, the low watermark), and the write watcher for what
  // the kernel did not take; a socket whose send never reached the kernel writes
  // directly. A socket stays queued until its turn here, so a callback that
  // destroys one later in the chunk clears its entry (Forget), and one that writes
  // to a socket already finished queues it again (after `end`).
  for (size_t k = 0; k < n; ++k) {
    BufferedSocket* s = queue_[from + k];
    if (s == nullptr) continue;
    s->FinishBatchedSend(results_[k] != kNotSent);
  }
}

}  // namespace evactor
