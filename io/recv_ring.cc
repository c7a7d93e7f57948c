#include "io/recv_ring.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <utility>

#include "io/buffered_socket.h"
#include "runtime/timer.h"

namespace evactor {

namespace {

int ExtensionSlot() {
  static const int slot = Loop::NewExtensionSlot();
  return slot;
}

constexpr unsigned kSubmissionEntries = 256;
// Multishot receives post many completions per submission: room for a burst from
// every armed socket before the kernel has to hold completions back (it keeps them,
// and stops the receives that overflowed, which are then armed again).
constexpr unsigned kCompletionEntries = 4096;
constexpr uint16_t kGroup = 0;

// user_data: the slot in the low 32 bits, its generation above; cancellations carry
// kCancelTag (their own completion says nothing we need).
constexpr uint64_t kCancelTag = ~uint64_t{0};
// DropAll's argument when no slot is being disarmed.
constexpr uint32_t kNoSlot = ~uint32_t{0};
uint64_t Tag(uint32_t slot, uint32_t generation) {
  return (uint64_t{generation} << 32) | slot;
}

}  // namespace

RecvRing* RecvRing::For(Loop& loop) {
  LoopExtension* ext = loop.extension(ExtensionSlot());
  if (ext == nullptr) {
    // Installed either way: a ring that failed to open remembers that there is none.
    std::unique_ptr<RecvRing> ring(new RecvRing(loop));
    ring->Open();
    ext = loop.SetExtension(ExtensionSlot(), std::move(ring));
  }
  auto* ring = static_cast<RecvRing*>(ext);
  return ring->ring_ != nullptr ? ring : nullptr;
}

RecvRing::RecvRing(Loop& loop) : loop_(loop) {}

RecvRing::~RecvRing() {
  // Sockets die before their loop; any still armed here belong to a loop torn down
  // under them, and the ring's exit cancels their receives.
  watcher_.reset();
  kick_.reset();
  CloseRing();
}

bool RecvRing::Open() {
  if (getenv("EVACTOR_NO_URING") != nullptr || getenv("EVACTOR_NO_RECV_RING") != nullptr) {
    return false;
  }
  auto ring = std::make_unique<io_uring>();
  io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_CQSIZE;
#ifdef IORING_SETUP_COOP_TASKRUN
  // Receives run as task work when the loop's thread next crosses into the kernel,
  // rather than interrupting it.
  params.flags |= IORING_SETUP_COOP_TASKRUN;
#endif
  params.cq_entries = kCompletionEntries;
  int r = io_uring_queue_init_params(kSubmissionEntries, ring.get(), &params);
  if (r == -EINVAL) {  // an older kernel: no COOP_TASKRUN
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCompletionEntries;
    r = io_uring_queue_init_params(kSubmissionEntries, ring.get(), &params);
  }
  if (r < 0) return false;

  // The provided buffers and the ring that hands them to the kernel (5.19 and later;
  // multishot receives need 6.0, which a first arm finds out: see Complete).
  buf_ring_bytes_ = kBuffers * sizeof(io_uring_buf);
  void* br = mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
  if (br == MAP_FAILED) {
    io_uring_queue_exit(ring.get());
    return false;
  }
  io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = reinterpret_cast<uint64_t>(br);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (io_uring_register_buf_ring(ring.get(), &reg, 0) < 0) {
    munmap(br, buf_ring_bytes_);
    io_uring_queue_exit(ring.get());
    return false;
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(br);
  io_uring_buf_ring_init(buf_ring_);
  returned_ = 0;
  Grow();
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(returned_));
  returned_ = 0;
  ring_ = std::move(ring);
  watcher_ = std::make_unique<IoWatcher>(loop_, ring_->ring_fd, kRead,
                                         [this](uint32_t) { OnReadable(); });
  if (kick_ == nullptr) kick_ = std::make_unique<Timer>(loop_, [this](uint32_t) { Dispatch(); });
  return true;
}

void RecvRing::CloseRing() {
  if (ring_ != nullptr) {
    io_uring_queue_exit(ring_.get());
    ring_.reset();
  }
  if (buf_ring_ != nullptr) {
    munmap(buf_ring_, buf_ring_bytes_);
    buf_ring_ = nullptr;
  }
  chunks_.clear();
  provided_ = 0;
}

void RecvRing::AfterFork() {
  if (ring_ == nullptr) return;
  // The child's copy of the ring is the parent's: let go of it (the child's mappings
  // and fd only) and start over; every socket still armed is armed again here.
  watcher_.reset();
  CloseRing();
  unsubmitted_ = false;
  armed_ = 0;
  if (!Open()) {
    DropAll(kNoSlot);  // no ring in the child: every socket reads through its watcher
    return;
  }
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    Slot& slot = slots_[s];
    if (!slot.armed) continue;
    ++slot.generation;
    ++armed_;
    SubmitArm(s);
  }
  UpdateWatcher();
}

void RecvRing::DropAll(uint32_t disarming) {
  armed_ = 0;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (!slot.armed) continue;
    slot.armed = false;
    BufferedSocket* socket = slot.socket;
    slot.socket = nullptr;
    free_slots_.push_back(i);
    // The one being disarmed just stops; the others read through their watchers.
    if (socket != nullptr) socket->RingStopped(i == disarming ? -ECANCELED : -EOPNOTSUPP);
  }
}

io_uring_sqe* RecvRing::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {  // the submission queue is full: send it on its way
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

int RecvRing::Arm(BufferedSocket* socket) {
  if (ring_ == nullptr || socket->fd() < 0) return -1;
  uint32_t s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    s = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[s];
  slot.socket = socket;
  ++slot.generation;
  slot.armed = true;
  ++armed_;
  SubmitArm(s);
  // Inside the loop the arm goes with the iteration's others (EndOfIteration); outside
  // it nothing would submit it before the loop first waits.
  if (!loop_.running()) {
    io_uring_submit(ring_.get());
    unsubmitted_ = false;
  }
  UpdateWatcher();
  return static_cast<int>(s);
}

void RecvRing::SubmitArm(uint32_t s) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_recv_multishot(sqe, slots_[s].socket->fd(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kGroup;
  io_uring_sqe_set_data64(sqe, Tag(s, slots_[s].generation));
  unsubmitted_ = true;
  ++stats_.arms;
}

void RecvRing::Disarm(int slot_index) {
  const uint32_t s = static_cast<uint32_t>(slot_index);
  if (ring_ == nullptr || s >= slots_.size()) return;
  const uint32_t generation = slots_[s].generation;
  if (!slots_[s].armed) return;
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_cancel64(sqe, Tag(s, generation), 0);
  io_uring_sqe_set_data64(sqe, kCancelTag);
  // Wait for the receive's last completion (the cancellation's, or an EOF or error
  // that got there first); whatever else completes meanwhile is reaped as usual.
  while (slots_[s].generation == generation && slots_[s].armed) {
    const int r = io_uring_submit_and_wait(ring_.get(), 1);
    unsubmitted_ = false;
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      // The ring is unusable; nothing can be cancelled any more. Its fd goes with it,
      // which ends every receive: the sockets read through their watchers from now on.
      fprintf(stderr, "evactor: io_uring failed (%s); reading through epoll from now on\n",
              strerror(-r));
      watcher_.reset();
      CloseRing();
      DropAll(s);
      return;
    }
    Reap();
  }
  UpdateWatcher();
  // Sockets that got bytes meanwhile are dispatched by the loop in a moment (the
  // completions that would have woken it are consumed).
  if (!dispatching_ && !ready_.empty() && !kick_->pending()) kick_->Start(absl::ZeroDuration());
}

size_t RecvRing::Ready(BufferedSocket* socket) {
  ready_.push_back(socket);
  if (!dispatching_ && !reaping_ && !kick_->pending()) kick_->Start(absl::ZeroDuration());
  return ready_.size() - 1;
}

bool RecvRing::Grow() {
  if (provided_ >= kBuffers) return false;
  // Not zeroed: the pages are touched only as the kernel fills them.
  chunks_.push_back(std::unique_ptr<char[]>(new char[kBuffersPerChunk * kBufferSize]));
  const unsigned first = provided_;
  provided_ += kBuffersPerChunk;
  for (unsigned bid = first; bid < provided_; ++bid) ReturnBuffer(bid);
  return true;
}

void RecvRing::ReturnBuffer(unsigned bid) {
  io_uring_buf_ring_add(buf_ring_, BufferAt(bid), kBufferSize,
                        static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kBuffers),
                        static_cast<int>(returned_));
  ++returned_;
}

bool RecvRing::Reap() {
  bool any = false;
  reaping_ = true;
  for (;;) {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      Complete(*cqe);
      ++seen;
    }
    if (seen != 0) {
      io_uring_cq_advance(ring_.get(), seen);
      any = true;
    }
    // Completions the kernel held back when the queue was full come next.
    if (!io_uring_cq_has_overflow(ring_.get())) break;
    if (io_uring_get_events(ring_.get()) < 0 && seen == 0) break;
  }
  if (returned_ != 0) {
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(returned_));
    returned_ = 0;
  }
  reaping_ = false;
  if (any) ++stats_.reaps;
  return any;
}

void RecvRing::Complete(const io_uring_cqe& cqe) {
  if (cqe.user_data == kCancelTag) return;
  const uint32_t s = static_cast<uint32_t>(cqe.user_data);
  const uint32_t generation = static_cast<uint32_t>(cqe.user_data >> 32);
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const unsigned bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
  const bool stale = s >= slots_.size() || slots_[s].generation != generation || !slots_[s].armed;
  if (!stale && cqe.res > 0 && has_buffer) {
    ++stats_.completions;
    stats_.bytes += static_cast<uint64_t>(cqe.res);
    if (BufferedSocket* socket = slots_[s].socket) {
      socket->RingData(BufferAt(bid), static_cast<size_t>(cqe.res));
    }
  }
  if (has_buffer) ReturnBuffer(bid);
  if (stale || (cqe.flags & IORING_CQE_F_MORE) != 0) return;
  // The receive's last completion: the slot is free again.
  Slot& slot = slots_[s];
  slot.armed = false;
  --armed_;
  BufferedSocket* socket = slot.socket;
  slot.socket = nullptr;
  free_slots_.push_back(s);
  if (cqe.res == -ENOBUFS) {
    ++stats_.no_buffers;
    Grow();  // every buffer was in use at once: more, up to kBuffers
  }
  // Bytes with the last completion: it stopped for want of room (a full completion
  // queue) and is armed again, like a receive that ran out of buffers.
  if (socket != nullptr) socket->RingStopped(cqe.res > 0 ? -ENOBUFS : cqe.res);
}

void RecvRing::OnReadable() {
  if (Reap()) Dispatch();
}

void RecvRing::Dispatch() {
  if (dispatching_) return;  // the running pass picks up what was added
  dispatching_ = true;
  // By index: callbacks may add sockets (a disarm reaps), or forget them.
  for (size_t i = 0; i < ready_.size(); ++i) {
    BufferedSocket* socket = ready_[i];
    if (socket == nullptr) continue;
    ready_[i] = nullptr;
    socket->OnRingInput();  // may destroy it, or others (they Forget their place)
  }
  ready_.clear();
  dispatching_ = false;
}

void RecvRing::UpdateWatcher() {
  if (watcher_ == nullptr) return;
  if (armed_ > 0 && !watcher_->started()) {
    if (!watcher_->Start().ok()) {
      fprintf(stderr, "evactor: cannot watch the io_uring fd; receives may stall\n");
    }
  } else if (armed_ == 0 && watcher_->started()) {
    watcher_->Stop();
  }
}

bool RecvRing::EndOfIteration() {
  if (ring_ == nullptr || !unsubmitted_) return false;
  const int r = io_uring_submit(ring_.get());
  if (r >= 0) {
    unsubmitted_ = false;
    return false;
  }
  // EBUSY: completions must be reaped before the kernel takes more; the watcher
  // reports them, and the next pass submits again without blocking first.
  return true;
}

}  // namespace evactor
