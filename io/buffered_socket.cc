#include "io/buffered_socket.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <string_view>
#include <utility>

#include "io/socket_util.h"
#include "runtime/timer.h"

namespace evactor {

namespace {
// errno for an I/O status from Buffer (which keeps errno intact on failure).
int ErrnoOr(int fallback) { return errno != 0 ? errno : fallback; }

// What the receive ring left for OnRingInput (BufferedSocket::ring_news_).
enum RingNews : uint8_t {
  kRingNewData = 1,
  kRingEof = 2,
  kRingError = 4,
};

// A socket that gets this much in one pass through the ring is moving bulk data: it
// reads through its watcher, straight into its input (one copy fewer, and one read
// per up to max_single_read bytes instead of one completion per 4 KiB buffer), until
// kSmallReadsToRing reads in a row bring less than kSmallRead bytes each.
constexpr size_t kBulkPassBytes = 2 * RecvRing::kBufferSize;
constexpr size_t kSmallRead = RecvRing::kBufferSize / 2;
constexpr uint8_t kSmallReadsToRing = 4;
}  // namespace

BufferedSocket::BufferedSocket(Loop& loop, int fd, BufferedSocketOptions options)
    : loop_(loop), fd_(fd), options_(options) {
  if (fd_ >= 0) SetNonBlocking(fd_).IgnoreError();
  input_.set_max_read(options_.max_single_read);
  // The input callback matters only with a read high watermark (resume reading when
  // the user drains); it is added by SetWatermark, so that the common case does not
  // pay a callback round per read and per drain.
  output_.AddCallback([this](Buffer&, const SizeChange& c) { OnOutputChanged(c); });
  if (fd_ >= 0) {
    reader_ = std::make_unique<IoWatcher>(loop_, fd_, kRead,
                                          [this](uint32_t bits) { OnReadable(bits); });
    writer_ = std::make_unique<IoWatcher>(loop_, fd_, kWrite,
                                          [this](uint32_t bits) { OnWritable(bits); });
  }
}

BufferedSocket::BufferedSocket(Loop& loop, PairTag) : BufferedSocket(loop, -1, {}) {
  is_pair_ = true;
}

BufferedSocket::~BufferedSocket() {
  if (destroyed_ != nullptr) *destroyed_ = true;
  Close();
}

absl::StatusOr<std::unique_ptr<BufferedSocket>> BufferedSocket::Connect(
    Loop& loop, const SocketAddress& address, absl::Duration timeout,
    BufferedSocketOptions options) {
  std::unique_ptr<BufferedSocket> bs(new BufferedSocket(loop, -1, options));
  BufferedSocket* raw = bs.get();
  auto c = Connector::Connect(loop, address, timeout, [raw](absl::StatusOr<int> fd) {
    const int err = raw->connector_->error();
    // The connector is done; freeing it inside its own callback is allowed.
    std::unique_ptr<Connector> done = std::move(raw->connector_);
    if (!fd.ok()) {
      raw->eof_ = true;
      raw->write_failed_ = true;
      raw->Event(kBevError | (err == ETIMEDOUT ? uint32_t{kBevTimeout} : 0u), err);
      return;
    }
    raw->fd_ = *fd;
    raw->reader_ = std::make_unique<IoWatcher>(raw->loop_, raw->fd_, kRead,
                                               [raw](uint32_t bits) { raw->OnReadable(bits); });
    raw->writer_ = std::make_unique<IoWatcher>(raw->loop_, raw->fd_, kWrite,
                                               [raw](uint32_t bits) { raw->OnWritable(bits); });
    if (!raw->Event(kBevConnected, 0)) return;
    raw->UpdateReadInterest();
    raw->UpdateWriteInterest();
  });
  if (!c.ok()) return c.status();
  bs->connector_ = *std::move(c);
  return bs;
}

std::pair<std::unique_ptr<BufferedSocket>, std::unique_ptr<BufferedSocket>> BufferedSocket::Pair(
    Loop& loop) {
  std::unique_ptr<BufferedSocket> a(new BufferedSocket(loop, PairTag{}));
  std::unique_ptr<BufferedSocket> b(new BufferedSocket(loop, PairTag{}));
  a->partner_ = b.get();
  b->partner_ = a.get();
  return {std::move(a), std::move(b)};
}

void BufferedSocket::SetCallbacks(DataCallback on_read, DataCallback on_write,
                                  EventCallback on_event) {
  on_read_ = std::move(on_read);
  on_write_ = std::move(on_write);
  on_event_ = std::move(on_event);
}

absl::Status BufferedSocket::Enable(uint32_t directions) {
  enabled_ |= directions & (kBevReading | kBevWriting);
  UpdateReadInterest();
  UpdateWriteInterest();
  if (is_pair_ && (directions & kBevReading)) {
    // Data may be waiting at the partner, or its EOF.
    if (partner_ != nullptr) partner_->UpdateWriteInterest();
    UpdateWriteInterest();
  }
  return absl::OkStatus();
}

void BufferedSocket::Disable(uint32_t directions) {
  enabled_ &= ~directions;
  UpdateReadInterest();
  UpdateWriteInterest();
}

void BufferedSocket::SetWatermark(uint32_t directions, size_t low, size_t high) {
  if (directions & kBevReading) {
    read_low_ = low;
    read_high_ = high;
    if (high != 0 && !input_callback_added_) {
      input_callback_added_ = true;
      input_.AddCallback([this](Buffer&, const SizeChange& c) { OnInputChanged(c); });
    }
    UpdateReadInterest();
  }
  if (directions & kBevWriting) write_low_ = low;
}

void BufferedSocket::SetTimeouts(std::optional<absl::Duration> read,
                                 std::optional<absl::Duration> write) {
  read_timeout_ = read;
  write_timeout_ = write;
  // Restart with the new values where active.
  if (reader_ != nullptr && reader_->started()) reader_->Start(read_timeout_).IgnoreError();
  if (ring_slot_ >= 0) StartReadTimer();
  if (writer_ != nullptr && writer_->started()) writer_->Start(write_timeout_).IgnoreError();
}

bool BufferedSocket::RingEligible() const {
  // A read high watermark bounds what one pass reads; the ring takes what arrived.
  return options_.receive_ring && !ring_off_ && !ring_bulk_ && fd_ >= 0 && !is_pair_ &&
         !in_filter_ && limit_ == nullptr && group_ == nullptr && read_high_ == 0;
}

void BufferedSocket::UpdateReadInterest() {
  if (is_pair_ || reader_ == nullptr) return;
  const bool paused = read_high_ != 0 && input_.size() >= read_high_;
  const bool want = (enabled_ & kBevReading) && !eof_ && !closed_ && !paused && !read_throttled_;
  if (want && RingEligible()) {
    if (ring_slot_ < 0) {
      if (ring_ == nullptr) ring_ = RecvRing::For(loop_);
      if (ring_ != nullptr) ring_slot_ = ring_->Arm(this);
      if (ring_slot_ < 0) ring_off_ = true;  // the watcher reads from now on
    }
    if (ring_slot_ >= 0) {
      if (reader_->started()) reader_->Stop();
      if (read_timeout_.has_value() && (read_timer_ == nullptr || !read_timer_->pending())) {
        StartReadTimer();
      }
      if (ring_news_ != 0 && !ring_ready_) MarkRingReady();
      return;
    }
  }
  StopRing();
  // Bytes the ring received before reading was disabled are reported now.
  if (want && ring_news_ != 0 && !ring_ready_) MarkRingReady();
  if (want && !reader_->started()) {
    if (absl::Status s = reader_->Start(read_timeout_); !s.ok()) {
      eof_ = true;
      Event(kBevReading | kBevError, EBADF);
    }
  } else if (!want && reader_->started()) {
    reader_->Stop();
  }
}

void BufferedSocket::UpdateWriteInterest() {
  if (closed_ || write_failed_) return;
  if (is_pair_) {
    // Deliver in a later loop pass (never inside the caller's Write).
    const bool has_work = !output_.empty() || partner_eof_;
    if (has_work && !pair_pending_) {
      pair_pending_ = true;
      if (pair_timer_ == nullptr) {
        pair_timer_ = std::make_unique<Timer>(loop_, [this](uint32_t) {
          pair_pending_ = false;
          PairDeliver();
        });
      }
      pair_timer_->Start(absl::ZeroDuration());
    }
    return;
  }
  if (writer_ == nullptr) return;
  // Inside the read callback: OnReadable writes right after it (see there). Queued
  // in the send batch: it writes at the end of the iteration, then re-arms.
  if (in_read_callback_ || batch_queued_) return;
  const bool pending = !output_.empty() || !raw_out_.empty();
  const bool want = (enabled_ & kBevWriting) && pending && !write_throttled_;
  if (want && !writer_->started()) {
    if (absl::Status s = writer_->Start(write_timeout_); !s.ok()) {
      write_failed_ = true;
      Event(kBevWriting | kBevError, EBADF);
    }
  } else if (!want && writer_->started()) {
    writer_->Stop();
  }
}

void BufferedSocket::OnOutputChanged(const SizeChange& change) {
  if (change.added > 0) UpdateWriteInterest();
}

void BufferedSocket::OnInputChanged(const SizeChange& change) {
  if (change.deleted > 0 && read_high_ != 0) {
    // Bytes a filter held back at the high mark come through first.
    if (in_filter_ && !raw_in_.empty() && !in_filtering_) {
      in_filtering_ = true;
      FilterInput(FilterMode::kNormal);
      in_filtering_ = false;
    }
    UpdateReadInterest();  // drained below the high mark: resume
    if (is_pair_ && partner_ != nullptr) partner_->UpdateWriteInterest();
  }
}

template <typename Fn>
bool BufferedSocket::Guarded(Fn&& fn) {
  bool destroyed = false;
  bool* outer = destroyed_;
  destroyed_ = &destroyed;
  fn();
  if (destroyed) {
    if (outer != nullptr) *outer = true;  // tell enclosing guards too
    return false;
  }
  destroyed_ = outer;
  return true;
}

bool BufferedSocket::Event(uint32_t events, int error) {
  if (!on_event_) return true;
  return Guarded([&] { on_event_(*this, events, error); });
}

bool BufferedSocket::ReadCallback() {
  if (!on_read_) return true;
  return Guarded([&] { on_read_(*this); });
}

bool BufferedSocket::WriteCallback() {
  if (!on_write_) return true;
  return Guarded([&] { on_write_(*this); });
}

void BufferedSocket::StartReadTimer() {
  if (!read_timeout_.has_value()) {
    if (read_timer_ != nullptr) read_timer_->Stop();
    return;
  }
  if (read_timer_ == nullptr) {
    read_timer_ = std::make_unique<Timer>(loop_, [this](uint32_t) {
      Disable(kBevReading);
      Event(kBevReading | kBevTimeout, 0);
    });
  }
  read_timer_->Start(*read_timeout_);
}

void BufferedSocket::StopRing() {
  if (ring_slot_ >= 0) ring_->Disarm(ring_slot_);  // RingStopped(-ECANCELED) clears it
  ring_slot_ = -1;
  if (read_timer_ != nullptr) read_timer_->Stop();
}

void BufferedSocket::MarkRingReady() {
  ring_place_ = ring_->Ready(this);
  ring_ready_ = true;
}

void BufferedSocket::RingData(const char* data, size_t n) {
  // No user code in this phase: input()'s callbacks (if any) wait for OnRingInput.
  if (!ring_suspended_ && input_.has_callbacks()) {
    input_.SuspendCallbacks();
    ring_suspended_ = true;
  }
  input_.Append(std::string_view(data, n));
  ring_news_ |= kRingNewData;
  ring_pass_bytes_ += n;
  if (!ring_ready_) MarkRingReady();
}

void BufferedSocket::RingStopped(int result) {
  ring_slot_ = -1;
  if (result == -ECANCELED) return;  // StopRing's own cancellation
  if (result == 0) {
    ring_news_ |= kRingEof;
  } else if (result == -EINVAL || result == -EOPNOTSUPP || result == -ENOTSOCK) {
    ring_off_ = true;  // not something io_uring can receive from: the watcher reads
  } else if (result != -ENOBUFS) {
    ring_news_ |= kRingError;
    ring_error_ = -result;
  }
  // ENOBUFS and the fallback: OnRingInput arms again (or starts the watcher).
  if (!ring_ready_) MarkRingReady();
}

void BufferedSocket::OnRingInput() {
  ring_ready_ = false;
  if (closed_) return;
  if (ring_suspended_) {
    ring_suspended_ = false;
    if (!Guarded([&] { input_.ResumeCallbacks(); }) || closed_) return;
  }
  // While reading is disabled what arrived stays reported-to-be (UpdateReadInterest
  // queues this again once it is enabled).
  if (!(enabled_ & kBevReading)) return;
  const uint8_t news = ring_news_;
  ring_news_ = 0;
  if (ring_pass_bytes_ >= kBulkPassBytes) {
    ring_bulk_ = true;  // UpdateReadInterest below moves it to the watcher
    ring_small_reads_ = 0;
  }
  ring_pass_bytes_ = 0;
  if (news & (kRingEof | kRingError)) eof_ = true;  // nothing more to receive
  if ((news & kRingNewData) && ring_slot_ >= 0) StartReadTimer();  // progress
  UpdateReadInterest();  // arm again after a stop
  if ((news & kRingNewData) && input_.size() >= read_low_ && input_.size() > 0) {
    // As in OnReadable: the reply the callback produces goes out with the iteration's.
    in_read_callback_ = true;
    if (!ReadCallback()) return;
    in_read_callback_ = false;
    if (!(WritablePending() && QueueForBatch()) && !WriteOutputNow()) return;
  }
  if (closed_) return;
  if (news & kRingError) {
    Event(kBevReading | kBevError, ring_error_);
  } else if (news & kRingEof) {
    Event(kBevReading | kBevEof, 0);
  }
}

void BufferedSocket::OnReadable(uint32_t bits) {
  if ((bits & kTimeout) && !(bits & kRead)) {
    Disable(kBevReading);
    Event(kBevReading | kBevTimeout, 0);
    return;
  }
  size_t max = static_cast<size_t>(ReadAllowance());
  if (max == 0) {
    read_throttled_ = true;
    UpdateReadInterest();
    Throttle();
    return;
  }
  if (read_high_ != 0 && input_.size() < read_high_) max = std::min(max, read_high_ - input_.size());
  errno = 0;
  Buffer& target = in_filter_ ? raw_in_ : input_;
  absl::StatusOr<size_t> n = target.ReadFrom(fd_, max);
  if (!n.ok()) {
    if (IsWouldBlock(n.status())) return;
    const int err = ErrnoOr(EIO);
    eof_ = true;
    UpdateReadInterest();
    Event(kBevReading | kBevError, err);
    return;
  }
  if (*n == 0) {
    eof_ = true;
    UpdateReadInterest();
    if (in_filter_) {
      const size_t before_eof = input_.size();
      if (!FilterInput(FilterMode::kFinished)) return;
      if (input_.size() > before_eof && input_.size() >= read_low_ && !ReadCallback()) return;
    }
    Event(kBevReading | kBevEof, 0);
    return;
  }
  if (ring_bulk_) {
    // Back to the ring once the bulk transfer is over.
    ring_small_reads_ = *n < kSmallRead ? ring_small_reads_ + 1 : 0;
    if (ring_small_reads_ >= kSmallReadsToRing) ring_bulk_ = false;  // armed below
  }
  if (in_filter_ && !FilterInput(FilterMode::kNormal)) return;
  if (limit_ != nullptr) limit_->SpendRead(*n);
  if (group_ != nullptr) {
    group_->bucket().SpendRead(*n);
    group_->total_read_ += *n;
  }
  UpdateReadInterest();  // pause at the high mark
  if (input_.size() < read_low_) return;
  // Output the callback produces (a reply) is written right after it returns,
  // without arming the write watcher: only what the kernel does not take waits for
  // writability. This saves a loop pass and two epoll_ctl calls per request/reply.
  in_read_callback_ = true;
  if (!ReadCallback()) return;
  in_read_callback_ = false;
  // With io_uring, the reply goes out with the iteration's others, in one submission
  // at its end (io/send_batch.h); else right now.
  if (WritablePending() && QueueForBatch()) return;
  WriteOutputNow();
}

bool BufferedSocket::WritablePending() const {
  return !output_.empty() && (enabled_ & kBevWriting) && !write_failed_ && !write_throttled_;
}

bool BufferedSocket::WriteOutputNow() {
  if (WritablePending()) {
    const size_t before = output_.size() + raw_out_.size();
    bool ok = false;
    if (!Guarded([&] { ok = WriteNow(true).ok(); })) return false;
    if (!ok) return false;
    const size_t after = output_.size() + raw_out_.size();
    if (after < before && output_.size() <= write_low_ && !WriteCallback()) return false;
  }
  UpdateWriteInterest();
  return true;
}

absl::Status BufferedSocket::WriteNow(bool report) {
  if (out_filter_ && !FilterOutput(FilterMode::kNormal)) return absl::OkStatus();
  Buffer& source = out_filter_ ? raw_out_ : output_;
  if (fd_ < 0 || source.empty() || write_failed_) return absl::OkStatus();
  const uint64_t allow = WriteAllowance();
  if (allow == 0) {
    write_throttled_ = true;
    if (writer_ != nullptr) writer_->Stop();
    Throttle();
    return absl::OkStatus();
  }
  errno = 0;
  absl::StatusOr<size_t> n = source.WriteTo(fd_, static_cast<size_t>(allow));
  if (n.ok()) {
    if (limit_ != nullptr) limit_->SpendWrite(*n);
    if (group_ != nullptr) {
      group_->bucket().SpendWrite(*n);
      group_->total_written_ += *n;
    }
  }
  if (!n.ok()) {
    if (IsWouldBlock(n.status())) return absl::OkStatus();
    const int err = ErrnoOr(EIO);
    write_failed_ = true;
    if (writer_ != nullptr) writer_->Stop();
    if (report) Event(kBevWriting | kBevError, err);
    return n.status();
  }
  return absl::OkStatus();
}

void BufferedSocket::OnWritable(uint32_t bits) {
  if ((bits & kTimeout) && !(bits & kWrite)) {
    Disable(kBevWriting);
    Event(kBevWriting | kBevTimeout, 0);
    return;
  }
  const size_t before = output_.size() + raw_out_.size();
  if (!WriteNow(true).ok()) return;
  UpdateWriteInterest();  // stop watching once empty
  const size_t after = output_.size() + raw_out_.size();
  if (after < before && output_.size() <= write_low_) WriteCallback();
}

absl::Status BufferedSocket::Flush() {
  if (is_pair_) {
    PairDeliver();
    return absl::OkStatus();
  }
  if (out_filter_ && !FilterOutput(FilterMode::kFlush)) {
    return absl::InvalidArgumentError("the output filter failed");
  }
  absl::Status s = WriteNow(true);
  UpdateWriteInterest();
  return s;
}

void BufferedSocket::FlushAtEndOfIteration() {
  if (QueueForBatch()) return;
  Flush().IgnoreError();  // reported through the event callback
}

bool BufferedSocket::QueueForBatch() {
  if (batch_queued_) return true;
  if (is_pair_ || fd_ < 0 || closed_ || batch_off_ || out_filter_ || limit_ != nullptr ||
      group_ != nullptr || output_.size() > SendBatch::kMaxBytes || !loop_.running()) {
    return false;
  }
  if (batch_ == nullptr) {
    batch_ = SendBatch::For(loop_);
    if (batch_ == nullptr) return false;
  }
  batch_place_ = batch_->Queue(this);
  batch_queued_ = true;
  return true;
}

int BufferedSocket::PrepareBatchedSend(iovec* iov, int max) {
  batch_bytes_ = 0;
  batch_drained_ = 0;
  batch_error_ = 0;
  if (closed_ || fd_ < 0 || write_failed_ || write_throttled_ || !(enabled_ & kBevWriting) ||
      output_.empty() || out_filter_ || limit_ != nullptr || group_ != nullptr) {
    return 0;
  }
  std::string_view pieces[SendBatch::kMaxIov];
  const int cap = std::min(max, SendBatch::kMaxIov);
  const size_t total = output_.Peek(0, Buffer::kAll, std::span<std::string_view>(pieces, cap));
  const int n = static_cast<int>(std::min<size_t>(total, static_cast<size_t>(cap)));
  for (int i = 0; i < n; ++i) {
    iov[i].iov_base = const_cast<char*>(pieces[i].data());
    iov[i].iov_len = pieces[i].size();
    batch_bytes_ += pieces[i].size();
  }
  return n;
}

void BufferedSocket::ApplyBatchedSend(int result) {
  if (result > 0) {
    batch_drained_ = static_cast<size_t>(result);
    output_.Drain(batch_drained_);
  } else if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK && result != -EINTR) {
    batch_error_ = -result;
  }
}

void BufferedSocket::FinishBatchedSend(bool applied) {
  batch_queued_ = false;
  if (closed_) return;
  if (!applied) {
    // Not sent through the batch (nothing to send then, or no ring): as after the
    // read callback without one.
    WriteOutputNow();
    return;
  }
  if (batch_error_ != 0) {
    write_failed_ = true;
    if (writer_ != nullptr) writer_->Stop();
    Event(kBevWriting | kBevError, batch_error_);
    return;
  }
  if (batch_drained_ > 0 && output_.size() <= write_low_ && !WriteCallback()) return;
  UpdateWriteInterest();  // arms the watcher for what the kernel did not take
}

void BufferedSocket::PairDeliver() {
  if (closed_) return;
  BufferedSocket* peer = partner_;
  if (peer == nullptr) {
    // The partner is gone: once our input is read, report EOF (once).
    if (partner_eof_ && !eof_ && (enabled_ & kBevReading)) {
      eof_ = true;
      Event(kBevReading | kBevEof, 0);
    }
    return;
  }
  if (output_.empty() || !(peer->enabled_ & kBevReading) || peer->eof_) return;
  size_t room = output_.size();
  if (peer->read_high_ != 0) {
    if (peer->input_.size() >= peer->read_high_) return;  // resumes when it drains
    room = std::min(room, peer->read_high_ - peer->input_.size());
  }
  output_.RemoveTo(peer->input_, room);
  // The peer's callback may free the peer, or us.
  if (peer->input_.size() >= peer->read_low_ &&
      !Guarded([peer] { peer->ReadCallback(); })) {
    return;
  }
  if (output_.size() <= write_low_ && !WriteCallback()) return;
  if (!output_.empty()) UpdateWriteInterest();
}

void BufferedSocket::SetFilters(Filter in, Filter out) {
  in_filter_ = std::move(in);
  out_filter_ = std::move(out);
  UpdateReadInterest();  // a filtered socket reads through its watcher
}

bool BufferedSocket::FilterInput(FilterMode mode) {
  // Nothing stays stuck: everything the filter can produce is produced now (up to
  // the high watermark; the rest waits in raw_in_ until input drains).
  const size_t limit =
      read_high_ == 0 ? Buffer::kAll : (input_.size() < read_high_ ? read_high_ - input_.size() : 0);
  if (limit == 0) return true;
  if (in_filter_(raw_in_, input_, limit, mode) == FilterResult::kError) {
    eof_ = true;
    UpdateReadInterest();
    Event(kBevReading | kBevError, EINVAL);
    return false;
  }
  return true;
}

bool BufferedSocket::FilterOutput(FilterMode mode) {
  if (output_.empty() && mode == FilterMode::kNormal) return true;
  if (out_filter_(output_, raw_out_, Buffer::kAll, mode) == FilterResult::kError) {
    write_failed_ = true;
    if (writer_ != nullptr) writer_->Stop();
    Event(kBevWriting | kBevError, EINVAL);
    return false;
  }
  return true;
}

uint64_t BufferedSocket::ReadAllowance() {
  uint64_t allow = options_.max_single_read;
  if (limit_ != nullptr) {
    limit_->Refill(loop_.NowNanos());
    allow = std::min(allow, limit_->read_allowance());
  }
  if (group_ != nullptr) allow = std::min(allow, group_->ReadShare());
  return allow;
}

uint64_t BufferedSocket::WriteAllowance() {
  uint64_t allow = options_.max_single_write;
  if (limit_ != nullptr) {
    limit_->Refill(loop_.NowNanos());
    allow = std::min(allow, limit_->write_allowance());
  }
  if (group_ != nullptr) allow = std::min(allow, group_->WriteShare());
  return allow;
}

void BufferedSocket::Throttle() {
  int64_t at = -1;
  if (limit_ != nullptr) at = limit_->next_refill_ns();
  if (group_ != nullptr) {
    const int64_t g = group_->bucket().next_refill_ns();
    at = at < 0 ? g : std::min(at, g);
  }
  if (at < 0) at = loop_.NowNanos();
  if (rate_timer_ == nullptr) {
    rate_timer_ = std::make_unique<Timer>(loop_, [this](uint32_t) {
      read_throttled_ = false;
      write_throttled_ = false;
      UpdateReadInterest();
      UpdateWriteInterest();
    });
  }
  if (!rate_timer_->pending()) rate_timer_->Start(absl::Nanoseconds(at - loop_.NowNanos()));
}

void BufferedSocket::SetRateLimit(std::optional<RateLimit> limit) {
  if (limit.has_value()) {
    limit_ = std::make_unique<TokenBucket>(*limit, loop_.NowNanos());
  } else {
    limit_.reset();
  }
  UpdateReadInterest();  // a limited socket reads through its watcher
}

void BufferedSocket::JoinGroup(RateLimitGroup* group) {
  LeaveGroup();
  group_ = group;
  if (group_ != nullptr) group_->Add(this);
  UpdateReadInterest();  // a limited socket reads through its watcher
}

void BufferedSocket::LeaveGroup() {
  if (group_ == nullptr) return;
  group_->Remove(this);
  group_ = nullptr;
  UpdateReadInterest();
}

int BufferedSocket::ReleaseFd() {
  if (closed_ || fd_ < 0) return -1;
  const int fd = fd_;
  StopRing();  // what the ring received lands in input() first
  fd_ = -1;    // Close() tears everything down but does not close it
  Close();
  if (ring_suspended_) {
    ring_suspended_ = false;
    input_.ResumeCallbacks();
  }
  return fd;
}

void BufferedSocket::Close() {
  if (batch_queued_) {
    batch_->Forget(batch_place_);
    batch_queued_ = false;
  }
  if (closed_) return;
  // Before the fd closes: the ring must let go of it first.
  StopRing();
  if (ring_ready_) {
    ring_->Forget(ring_place_);
    ring_ready_ = false;
  }
  closed_ = true;
  LeaveGroup();
  rate_timer_.reset();
  read_timer_.reset();
  reader_.reset();
  writer_.reset();
  connector_.reset();
  pair_timer_.reset();
  if (partner_ != nullptr) {
    BufferedSocket* peer = partner_;
    partner_ = nullptr;
    peer->partner_ = nullptr;
    peer->partner_eof_ = true;
    peer->UpdateWriteInterest();  // schedules its EOF report
  }
  if (fd_ >= 0 && options_.close_on_free) close(fd_);
  fd_ = -1;
}

}  // namespace evactor
