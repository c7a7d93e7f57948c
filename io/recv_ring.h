// evactor::RecvRing — sockets read through io_uring multishot receives instead of
// epoll readiness and one read(2) each.
//
// With epoll, every request a server receives costs a readiness report (epoll_wait
// polls the socket again to report it) and a read system call. A multishot receive is
// armed once per socket: from then on the kernel copies what arrives into buffers
// from a ring the loop provides and posts one completion per chunk, in the context of
// the loop's own thread (task work, run when it next enters or leaves the kernel). The
// loop watches the ring's fd like any other; one wake-up then hands it every socket's
// new bytes, and reading them costs no system call at all. Measured with the memcached
// server: the readiness and read-call overhead was about 11% of a loaded shard's time.
//
// BufferedSocket uses it by itself (see there for what makes a socket eligible): while
// reading is enabled the socket is armed here and its IoWatcher is not used for
// reading. Arming is submitted at the end of the iteration; disarming (reading
// disabled, the socket closed or its fd released) cancels in the kernel at once and
// waits for the cancellation, so that no bytes arrive afterwards and the fd is no
// longer held by the ring: the bytes that arrived before it are in the socket's input.
//
// Completions are handled in two phases. Reap (no user code) appends each chunk to its
// socket's input and returns the buffer to the ring; Dispatch then runs each socket
// that got something once (BufferedSocket::OnRingInput: the read callback, EOF, an
// error). A disarm reaps too, so it may run while another socket's callback is on the
// stack; it never runs callbacks itself.
//
// Availability: For() returns nullptr where io_uring cannot be set up, lacks
// multishot receives or provided-buffer rings (kernels before 6.0), or when the
// environment has EVACTOR_NO_URING or EVACTOR_NO_RECV_RING set; sockets then read
// through the loop's watchers, as before.
//
// Thread safety: a ring belongs to its loop's thread.
#ifndef EVACTOR_IO_RECV_RING_H_
#define EVACTOR_IO_RECV_RING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

struct io_uring;
struct io_uring_buf_ring;
struct io_uring_cqe;
struct io_uring_sqe;

namespace evactor {

class BufferedSocket;

class RecvRing final : public LoopExtension {
 public:
  // The provided buffers: what one completion can carry, and how many there may be.
  // The ring starts with kBuffersPerChunk and adds as many each time every buffer was
  // in use at once, up to kBuffers. When all are in use a socket's receive stops
  // (ENOBUFS) and is armed again once the loop has returned them.
  static constexpr size_t kBufferSize = 4096;
  static constexpr unsigned kBuffersPerChunk = 64;
  static constexpr unsigned kBuffers = 512;

  // The loop's ring, created on first use; nullptr when unavailable. Loop thread.
  static RecvRing* For(Loop& loop);
  ~RecvRing() override;

  // Starts receiving for `socket`'s fd. Returns its slot, or -1 when the ring cannot
  // take it (the socket then reads through its watcher).
  int Arm(BufferedSocket* socket);
  // Stops receiving for `slot` and waits until the kernel has let go of the fd; bytes
  // that arrived before that are appended to the socket's input (no callback runs).
  void Disarm(int slot);
  // Queues `socket` for Dispatch (the loop runs it soon when no pass is under way).
  // Returns its place, for Forget().
  size_t Ready(BufferedSocket* socket);
  // The socket queued for Dispatch at `place` goes away: it is skipped.
  void Forget(size_t place) { ready_[place] = nullptr; }

  // What the ring has done so far (for tests and benchmarks).
  struct Stats {
    uint64_t arms = 0;         // multishot receives submitted
    uint64_t completions = 0;  // data completions
    uint64_t bytes = 0;        // bytes they carried
    uint64_t no_buffers = 0;   // receives stopped because every buffer was in use
    uint64_t reaps = 0;        // wake-ups that found completions
  };
  const Stats& stats() const { return stats_; }
  // Sockets armed now.
  size_t armed() const { return armed_; }
  // Buffers the ring has now (kBuffersPerChunk..kBuffers).
  unsigned buffers() const { return provided_; }

  bool EndOfIteration() override;
  // The child of a fork gets a ring of its own and re-arms its sockets there.
  void AfterFork() override;

 private:
  struct Slot {
    BufferedSocket* socket = nullptr;
    uint32_t generation = 0;
    bool armed = false;  // the kernel holds a receive for it
  };
  RecvRing(Loop& loop);
  // Sets up the ring, its buffers and its watcher; false where unavailable.
  bool Open();
  void CloseRing();
  void SubmitArm(uint32_t slot);
  // A submission entry, submitting the queue first when it is full.
  io_uring_sqe* NextSqe();
  // The ring is gone: every armed slot is freed and its socket told (the slot being
  // disarmed, if any, as cancelled; the others fall back to their watchers).
  void DropAll(uint32_t disarming);
  // Phase 1: consumes every completion posted so far. Returns whether it found any.
  bool Reap();
  void Complete(const io_uring_cqe& cqe);
  void ReturnBuffer(unsigned bid);
  char* BufferAt(unsigned bid) const {
    return chunks_[bid / kBuffersPerChunk].get() + size_t{bid % kBuffersPerChunk} * kBufferSize;
  }
  // Adds a chunk of buffers (handed to the kernel with the next advance); false at
  // kBuffers.
  bool Grow();
  // Phase 2: runs the sockets that got bytes, EOF or an error.
  void Dispatch();
  void OnReadable();
  void UpdateWatcher();

  Loop& loop_;
  std::unique_ptr<io_uring> ring_;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  std::vector<std::unique_ptr<char[]>> chunks_;
  unsigned provided_ = 0;
  unsigned returned_ = 0;  // buffers given back since the last advance
  std::unique_ptr<IoWatcher> watcher_;
  // Runs Dispatch for sockets queued outside a reap (see Ready).
  std::unique_ptr<Timer> kick_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  size_t armed_ = 0;
  bool unsubmitted_ = false;  // SQEs prepared but not yet submitted
  // Sockets with something for Dispatch, in arrival order (entries may be nullptr).
  std::vector<BufferedSocket*> ready_;
  bool dispatching_ = false;
  bool reaping_ = false;
  Stats stats_;
};

}  // namespace evactor

#endif  // EVACTOR_IO_RECV_RING_H_
