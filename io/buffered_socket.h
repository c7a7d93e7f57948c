// evactor::BufferedSocket — a socket with an input and an output Buffer that the
// loop fills and drains (libevent's bufferevent).
//
//   auto bs = std::make_unique<BufferedSocket>(*loop, fd);
//   bs->SetCallbacks(
//       [](BufferedSocket& s) {                       // input reached the low mark
//         while (auto line = s.input().ReadLine(EolStyle::kCrlf)) s.Write(*line + "\r\n");
//       },
//       nullptr,                                       // output drained to its low mark
//       [&](BufferedSocket& s, uint32_t what, int err) {
//         if (what & (kBevEof | kBevError | kBevTimeout)) conns.erase(&s);   // frees it
//       });
//   bs->SetTimeouts(absl::Seconds(30), absl::Seconds(30));
//   bs->Enable(kBevReading).IgnoreError();   // writing is enabled from the start
//
// Reading: while reading is enabled, the loop reads into input() (at most
// max_single_read bytes a time; a socket read through the receive ring, below, gets
// what the kernel has in chunks of up to RecvRing::kBufferSize). The read callback runs when input holds at least the
// read low watermark. With a read high watermark, reading pauses once input holds that
// much and resumes when the user drains it below (it may overshoot by one read).
// EOF disables reading and reports kBevReading|kBevEof; a read error reports
// kBevReading|kBevError with the errno.
//
// Writing: bytes added to output() inside the read callback are written as soon as
// that callback returns (a reply costs no extra loop pass and no epoll_ctl); bytes
// added elsewhere, and whatever the kernel did not take, go out when the loop finds
// the socket writable. At most max_single_write per call. The write callback runs
// when output drains to the write low watermark (0: empty). An
// error reports kBevWriting|kBevError (EPIPE/ECONNRESET for a peer that went away).
//
// Timeouts count only while the socket is trying to do that direction's work (reading
// enabled and not paused; output pending); progress restarts them. On expiry that
// direction is disabled and the event callback gets kBevReading|kBevTimeout or
// kBevWriting|kBevTimeout (libevent's rules).
//
// Receive ring (io/recv_ring.h): a plain socket fd (no filter, no rate limit, no read
// high watermark, not a pair, BufferedSocketOptions::receive_ring left on) is read
// through the loop's io_uring with a multishot receive instead of readiness and
// read(2); where io_uring cannot do it (no ring, an old kernel, not a socket) it falls
// back to the watcher by itself. A socket that receives 8 KiB or more in one pass is
// moving bulk data and reads through its watcher, straight into input() (one copy
// fewer), until four reads in a row bring less than 2 KiB. What differs, visibly: the read callback runs once
// per loop pass with everything that arrived (max_single_read does not apply); an EOF
// or error that arrived with data is reported after the data's callback even if that
// callback disabled reading; bytes that arrive while reading is being disabled stay
// in input() and are reported once it is enabled again.
//
// Rate limits (SetRateLimit, JoinGroup): token buckets per socket and per group; a
// direction out of tokens pauses until the next tick (io/rate_limit.h).
//
// Connect(): kBevConnected once connected, or kBevError (with the errno; a timeout
// gives kBevError|kBevTimeout) exactly once, always from the loop.
//
// Pairs: Pair() makes two BufferedSockets joined in memory (no fd), like
// bufferevent_pair: what one writes, the other reads in a later loop pass; freeing or
// Close()ing one gives the other EOF once its input is read.
//
// Ownership: the BufferedSocket owns its fd when close_on_free is set (the default).
// Callbacks may destroy the BufferedSocket (that is how connections usually end).
//
// Thread safety: the loop's thread only (a BufferedSocket belongs to the shard that
// owns its fd).
#ifndef EVACTOR_IO_BUFFERED_SOCKET_H_
#define EVACTOR_IO_BUFFERED_SOCKET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/address.h"
#include "io/buffer.h"
#include "io/connector.h"
#include "io/rate_limit.h"
#include "io/recv_ring.h"
#include "io/send_batch.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

namespace evactor {

// Directions and events (libevent's BEV_EVENT_* values).
enum BevBits : uint32_t {
  kBevReading = 0x01,
  kBevWriting = 0x02,
  kBevEof = 0x10,
  kBevError = 0x20,
  kBevTimeout = 0x40,
  kBevConnected = 0x80,
};

// Filters (libevent's bufferevent_filter): a transform between the socket and the
// user's buffers — decompression or framing on the way in, compression on the way out.
enum class FilterResult {
  kOk,        // produced what it could
  kNeedMore,  // needs more input before it can produce anything
  kError,     // the data is bad: reported as kBevError (EINVAL), that direction stops
};
enum class FilterMode {
  kNormal,    // more data will follow
  kFlush,     // push out everything that can be produced now (Flush())
  kFinished,  // no more data will follow (EOF on input)
};
// Moves (transformed) bytes from `src` to `dst`, adding at most `limit` bytes to dst.
using Filter = absl::AnyInvocable<FilterResult(Buffer& src, Buffer& dst, size_t limit,
                                               FilterMode mode)>;

struct BufferedSocketOptions {
  bool close_on_free = true;
  size_t max_single_read = 16384;
  size_t max_single_write = 16384 * 4;
  // Read through the loop's receive ring where possible (see above).
  bool receive_ring = true;
};

class BufferedSocket {
 public:
  using DataCallback = absl::AnyInvocable<void(BufferedSocket& socket)>;
  // `events`: kBevReading/kBevWriting with kBevEof, kBevError, kBevTimeout, or
  // kBevConnected. `error`: the errno for kBevError, else 0.
  using EventCallback = absl::AnyInvocable<void(BufferedSocket& socket, uint32_t events, int error)>;

  // Wraps a connected, non-blocking socket (made non-blocking here if it is not).
  // Writing is enabled, reading is not (as libevent's bufferevent_socket_new).
  BufferedSocket(Loop& loop, int fd, BufferedSocketOptions options = {});
  ~BufferedSocket();
  BufferedSocket(const BufferedSocket&) = delete;
  BufferedSocket& operator=(const BufferedSocket&) = delete;

  // A socket that connects to `address`; see the header comment for the events.
  static absl::StatusOr<std::unique_ptr<BufferedSocket>> Connect(
      Loop& loop, const SocketAddress& address, absl::Duration timeout,
      BufferedSocketOptions options = {});
  // Two sockets joined in memory.
  static std::pair<std::unique_ptr<BufferedSocket>, std::unique_ptr<BufferedSocket>> Pair(
      Loop& loop);

  void SetCallbacks(DataCallback on_read, DataCallback on_write, EventCallback on_event);

  Buffer& input() { return input_; }
  Buffer& output() { return output_; }
  // Queue bytes for writing (the same as output().Append).
  void Write(std::string_view data) { output_.Append(data); }
  void Write(Buffer&& data) { output_.Append(std::move(data)); }
  // Take up to n bytes from input.
  size_t Read(void* out, size_t n) { return input_.Remove(out, n); }

  // kBevReading and/or kBevWriting.
  absl::Status Enable(uint32_t directions);
  void Disable(uint32_t directions);
  uint32_t enabled() const { return enabled_; }

  // Watermarks for kBevReading (low: callback threshold, high: pause threshold, 0 =
  // none) and kBevWriting (low only: callback when output <= low).
  void SetWatermark(uint32_t directions, size_t low, size_t high);
  // nullopt: no timeout for that direction.
  void SetTimeouts(std::optional<absl::Duration> read, std::optional<absl::Duration> write);

  // Installs filters (either may be null: no transform that way). Input read from
  // the socket goes through `in` into input(); output() goes through `out` to the
  // socket. Set them before enabling reading. Fd sockets only.
  void SetFilters(Filter in, Filter out);

  // Limits this socket's bandwidth (nullopt: none). See io/rate_limit.h.
  void SetRateLimit(std::optional<RateLimit> limit);
  // Shares `group`'s bandwidth with its other members (one group at a time; the
  // group must outlive the membership).
  void JoinGroup(RateLimitGroup* group);
  void LeaveGroup();

  // Writes what it can now, without waiting for the loop. Returns the error that
  // writing met (also reported through the event callback).
  absl::Status Flush();
  // Writes the output at the end of the current loop iteration, in one io_uring
  // submission with every other socket's (io/send_batch.h); where that is not
  // possible (no io_uring, a filter or rate limit, a pair, a large output, the loop
  // not running) it flushes now. Errors are reported through the event callback.
  // Output produced in the read callback is sent this way without asking.
  void FlushAtEndOfIteration();
  // Closes the fd (or, for a pair, tells the partner EOF) and stops all activity; no
  // callbacks after this. Idempotent.
  void Close();
  // Hands the fd back, open: stops watching it (no callbacks after this, nothing more
  // is read or written; what input() and output() hold stays there for the caller)
  // and returns it, so that another loop, or another shard, can take the connection
  // over. Returns -1 for a closed socket or one without an fd (a pair).
  int ReleaseFd();

  int fd() const { return fd_; }
  Loop& loop() const { return loop_; }
  bool connecting() const { return connector_ != nullptr; }
  // A pair's other end (nullptr for fd sockets, or once it is gone).
  BufferedSocket* partner() const { return partner_; }

 private:
  friend class SendBatch;
  friend class RecvRing;
  struct PairTag {};
  BufferedSocket(Loop& loop, PairTag);
  void OnReadable(uint32_t bits);
  void OnWritable(uint32_t bits);
  void UpdateReadInterest();
  void UpdateWriteInterest();
  void OnOutputChanged(const SizeChange& change);
  void OnInputChanged(const SizeChange& change);
  // Runs fn (which may call user code); returns false when that destroyed this
  // socket, so that the caller stops touching it.
  template <typename Fn>
  bool Guarded(Fn&& fn);
  // Run the user's callbacks under Guarded.
  bool Event(uint32_t events, int error);
  bool ReadCallback();
  bool WriteCallback();
  void PairDeliver();
  absl::Status WriteNow(bool report);
  // Runs the input filter over raw_in_; false when it failed (and was reported) or
  // the socket went away.
  bool FilterInput(FilterMode mode);
  bool FilterOutput(FilterMode mode);
  uint64_t ReadAllowance();
  uint64_t WriteAllowance();
  void Throttle();  // wait for the next refill
  // SendBatch: queue this socket's output for the end of the iteration (false: not
  // eligible, write directly); describe it (0 pieces: nothing to send); take the
  // result (no user code runs); then report and re-arm (user code may run).
  bool QueueForBatch();
  // Output is waiting and may be written (enabled, not failed, not throttled).
  bool WritablePending() const;
  // Writes the output now, reports a drained output to the write callback and
  // re-arms the watcher; false when a callback destroyed this socket.
  bool WriteOutputNow();
  int PrepareBatchedSend(iovec* iov, int max);
  size_t BatchedBytes() const { return batch_bytes_; }
  void ApplyBatchedSend(int result);
  void FinishBatchedSend(bool applied);
  // The receive ring: whether this socket may use it now; stop it (synchronously:
  // bytes already received land in input()); phase 1 of a reap (no user code): bytes
  // received, or the receive stopped (0: EOF; -ECANCELED: disarmed; -ENOBUFS: arm
  // again; other: an error); phase 2: report them.
  bool RingEligible() const;
  void StopRing();
  void RingData(const char* data, size_t n);
  void RingStopped(int result);
  void OnRingInput();
  void MarkRingReady();
  void StartReadTimer();

  Loop& loop_;
  int fd_ = -1;
  BufferedSocketOptions options_;
  Buffer input_;
  Buffer output_;
  DataCallback on_read_;
  DataCallback on_write_;
  EventCallback on_event_;
  std::unique_ptr<IoWatcher> reader_;
  std::unique_ptr<IoWatcher> writer_;
  std::unique_ptr<Connector> connector_;
  uint32_t enabled_ = kBevWriting;
  size_t read_low_ = 0;
  size_t read_high_ = 0;
  size_t write_low_ = 0;
  std::optional<absl::Duration> read_timeout_;
  std::optional<absl::Duration> write_timeout_;
  bool eof_ = false;      // no more reading (EOF, error, or closed)
  bool closed_ = false;
  bool write_failed_ = false;
  // Pairs.
  bool is_pair_ = false;
  BufferedSocket* partner_ = nullptr;
  bool partner_eof_ = false;  // the partner closed: EOF after input is consumed
  bool pair_pending_ = false; // a delivery pass is queued on the loop
  std::unique_ptr<Timer> pair_timer_;  // runs that pass (dies with the socket)
  // Filters: the socket side of each filtered direction.
  Filter in_filter_;
  Filter out_filter_;
  Buffer raw_in_;
  Buffer raw_out_;
  bool in_filtering_ = false;  // guards FilterInput re-entry from input callbacks
  bool in_read_callback_ = false;  // output is written when the read callback returns
  // The send batch (io/send_batch.h): this socket's place in its queue while queued.
  SendBatch* batch_ = nullptr;
  size_t batch_place_ = 0;
  bool batch_queued_ = false;
  bool batch_off_ = false;    // not a socket (ENOTSOCK): always written directly
  size_t batch_bytes_ = 0;    // described to the kernel by the send in progress
  size_t batch_drained_ = 0;  // what it took
  int batch_error_ = 0;
  // The receive ring: its slot while armed, its queue place while queued, what the
  // next OnRingInput reports (RingNews bits), and the read timeout while armed.
  RecvRing* ring_ = nullptr;
  int ring_slot_ = -1;
  size_t ring_place_ = 0;
  bool ring_ready_ = false;
  bool ring_off_ = false;        // the ring cannot read this fd: the watcher does
  bool ring_suspended_ = false;  // input()'s callbacks wait for OnRingInput
  bool ring_bulk_ = false;       // moving bulk data: the watcher reads (see .cc)
  uint8_t ring_small_reads_ = 0;
  size_t ring_pass_bytes_ = 0;   // received through the ring since the last pass
  uint8_t ring_news_ = 0;
  int ring_error_ = 0;
  std::unique_ptr<Timer> read_timer_;
  bool input_callback_added_ = false;
  // Rate limits.
  std::unique_ptr<TokenBucket> limit_;
  RateLimitGroup* group_ = nullptr;
  std::unique_ptr<Timer> rate_timer_;
  bool read_throttled_ = false;
  bool write_throttled_ = false;
  // Set by the destructor while a callback runs, so the caller stops touching this.
  bool* destroyed_ = nullptr;
};

}  // namespace evactor

#endif  // EVACTOR_IO_BUFFERED_SOCKET_H_
