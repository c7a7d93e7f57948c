// evactor::SendBatch — the replies a loop iteration produced, sent to the kernel in one
// io_uring submission at the end of the iteration instead of one sendmsg each.
//
// A request/reply server answers in its read callbacks. Written one sendmsg per
// connection, every reply is a system call, and on a loaded machine each one that
// wakes a client may hand the CPU to that client before it returns (measured with the
// memcached server: about one preemption per three replies). Queued here, a whole
// iteration's replies go out in one io_uring_enter: one system call, one preemption
// point, and the clients' wake-ups arrive together.
//
// BufferedSocket uses it by itself: output produced in the read callback, or flushed
// with BufferedSocket::FlushAtEndOfIteration(), is queued here when the socket is
// eligible (a plain fd socket: no filter, no rate limit, at most kMaxBytes waiting).
// Each send is MSG_DONTWAIT, so the kernel completes it during the submission: it
// takes what fits in the socket buffer and the rest is written when the socket is
// writable, as after a short sendmsg. Errors reach the socket's event callback as
// from a direct write.
//
// Availability: For() returns nullptr where io_uring cannot be set up (an old kernel,
// kernel.io_uring_disabled, a seccomp filter) or when the environment has
// EVACTOR_NO_URING set; sockets then write directly, as before.
//
// Thread safety: a batch belongs to its loop's thread.
#ifndef EVACTOR_IO_SEND_BATCH_H_
#define EVACTOR_IO_SEND_BATCH_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/loop.h"

struct io_uring;

namespace evactor {

class BufferedSocket;

class SendBatch final : public LoopExtension {
 public:
  // Output larger than this is written directly (it would not fit one send anyway).
  static constexpr size_t kMaxBytes = 256 * 1024;
  // Pieces of one socket's output described per send.
  static constexpr int kMaxIov = 16;

  // The loop's batch, created on first use; nullptr when io_uring is unavailable.
  // Loop thread.
  static SendBatch* For(Loop& loop);
  ~SendBatch() override;

  // Queues `socket` for the end of this iteration (once, however often it is
  // called). Returns its place, for Forget().
  size_t Queue(BufferedSocket* socket);
  // The socket at `place` goes away: it is skipped.
  void Forget(size_t place) { queue_[place] = nullptr; }

  // What the batch has done so far (for tests and benchmarks).
  struct Stats {
    uint64_t submissions = 0;  // io_uring_enter calls that carried sends
    uint64_t sends = 0;        // sends submitted
    uint64_t short_sends = 0;  // sends the kernel took only part of (or none: EAGAIN)
  };
  const Stats& stats() const { return stats_; }

  bool EndOfIteration() override;
  // The child of a fork gets a ring of its own (the parent's is shared memory).
  void AfterFork() override;

 private:
  explicit SendBatch(std::unique_ptr<io_uring> ring);
  // A new ring, or nullptr where io_uring is unavailable or switched off.
  static std::unique_ptr<io_uring> NewRing();
  // Sends queue_[from, from + n) (non-null entries), at most the ring's size.
  void SendChunk(size_t from, size_t n);

  std::unique_ptr<io_uring> ring_;
  unsigned ring_entries_;
  std::vector<BufferedSocket*> queue_;
  // Per send in flight: its message header and pieces (valid until its completion).
  std::vector<msghdr> headers_;
  std::vector<iovec> iovs_;
  std::vector<int> results_;
  Stats stats_;
};

}  // namespace evactor

#endif  // EVACTOR_IO_SEND_BATCH_H_
