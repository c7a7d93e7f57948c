#include "examples/memcached/server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <functional>
#include <type_traits>
#include <latch>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "examples/memcached/binary_protocol.h"
#include "absl/time/clock.h"
#include "io/buffered_socket.h"
#include "io/socket_util.h"
#include "runtime/signal_watcher.h"

namespace evactor::memcached {

namespace {

// A reply or a forwarded request must not be lost to a full ring. The closure goes
// into the ring as it is (runtime/message_ring.h), without a type-erased wrapper.
template <typename F>
void SendReliably(Runtime& rt, int target, F&& fn) {
  rt.SubmitToRetrying(target, std::forward<F>(fn)).IgnoreError();
}

}  // namespace

class Connection;

// Everything one shard owns: its part of the key space and its connections.
class ShardState {
 public:
  ShardState(Server* server, int shard, const StoreOptions& options)
      : server_(server), shard_(shard), store_(options) {}
  ~ShardState();

  Store& store() { return store_; }
  void Adopt(int fd);
  // A connection another shard handed over (see Connection::TryMove), its protocol,
  // and the bytes it had read and not parsed yet.
  void AdoptMoved(int fd, bool binary, std::string pending);
  void Remove(uint64_t id);
  // Unlinks and destroys a connection that moved to another shard (its fd stays open).
  void Detach(uint64_t id);
  // A response from another shard for connection `id`, slot `seq`.
  void Deliver(uint64_t id, uint64_t seq, std::string bytes);
  // Runs the rest of connection `id`'s buffered requests (Config::reqs_per_event).
  void Continue(uint64_t id);
  bool Has(uint64_t id) const { return conns_.contains(id); }
  int shard() const { return shard_; }
  Server* server() const { return server_; }
  // For calls deferred on this shard's loop: expires when this state is destroyed
  // (when the runtime stops), so that such a call finds nothing to run.
  std::weak_ptr<ShardState*> weak_self() const { return self_; }

 private:
  Server* server_;
  int shard_;
  Store store_;
  uint64_t next_id_ = 1;
  std::shared_ptr<ShardState*> self_ = std::make_shared<ShardState*>(this);
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> conns_;
};

// A connection on its way to another shard (Connection::TryMove): runs there as a
// message; if it never runs (the server stopped first), the connection is closed.
struct MoveMessage {
  MoveMessage(Server* server, int target, int fd, bool binary, std::string pending)
      : server(server), target(target), fd(fd), binary(binary), pending(std::move(pending)) {}
  MoveMessage(MoveMessage&& other) noexcept
      : server(other.server),
        target(other.target),
        fd(std::exchange(other.fd, -1)),
        binary(other.binary),
        pending(std::move(other.pending)) {}
  MoveMessage& operator=(MoveMessage&&) = delete;
  ~MoveMessage() {
    if (fd < 0) return;
    close(fd);
    server->curr_connections.fetch_sub(1, std::memory_order_relaxed);
    server->ConnectionClosedOn(target);
  }
  void operator()() {
    server->states().local().AdoptMoved(std::exchange(fd, -1), binary, std::move(pending));
  }

  Server* server;
  int target;
  int fd;
  bool binary;  // the connection speaks the binary protocol
  std::string pending;
};

// The two wire protocols behind one set of routing code.
struct AsciiProtocol {
  using Req = Request;
  using Owned = OwnedRequest;
  static Disposition Exec(const Req& r, Store* store, std::string* out,
                          const ExecuteOptions& options) {
    return Execute(r, store, out, options);
  }
  static void Stats(const Req& r, const ServerStats& server, const StoreStats& sum,
                    std::string* out) {
    AppendStats(r.stats_group, server, sum, out);
  }
};

struct BinaryProtocol {
  using Req = BinaryRequest;
  using Owned = OwnedBinaryRequest;
  static Disposition Exec(const Req& r, Store* store, std::string* out,
                          const ExecuteOptions& options) {
    return ExecuteBinary(r, store, out,
                         BinaryExecuteOptions{.version = options.version,
                                              .flush_enabled = options.flush_enabled});
  }
  static void Stats(const Req& r, const ServerStats& server, const StoreStats& sum,
                    std::string* out) {
    AppendBinaryStats(r, BinaryStatsGroup(r).value_or(StatsGroup::kGeneral), server, sum, out);
  }
};

// One client connection, on the shard that owns its socket. Like memcached, the first
// byte decides the protocol: 0x80 is binary, anything else ASCII.
class Connection {
 public:
  Connection(ShardState* state, uint64_t id, int fd)
      : state_(state),
        server_(state->server()),
        counters_(&server_->counters(state->shard())),
        id_(id),
        fd_(fd),
        parser_(ParserOptions{.max_item_size = server_->config().max_item_size,
                              .enable_shutdown = server_->config().enable_shutdown}),
        socket_(std::make_unique<BufferedSocket>(Shard::Current()->loop(), fd)) {
    SetCallbacks(nullptr);
    if (server_->config().idle_timeout > absl::ZeroDuration()) {
      // Idle both ways: no request for that long, or answers the client leaves unread.
      socket_->SetTimeouts(server_->config().idle_timeout, server_->config().idle_timeout);
    }
    socket_->Enable(kBevReading).IgnoreError();
  }

  void Complete(uint64_t seq, std::string bytes) {
    if (seq < base_seq_ || seq - base_seq_ >= slots_.size()) return;
    if (server_->verbosity.load(std::memory_order_relaxed) > 1) [[unlikely]] {
      LogResponse(bytes);
    }
    Slot& slot = slots_[seq - base_seq_];
    slot.bytes = std::move(bytes);
    slot_bytes_ += slot.bytes.size();
    slot.ready = true;
    if (!throttled_) return FlushSlots();  // may destroy this
    const uint64_t id = id_;
    ShardState* state = state_;
    FlushSlots();  // may destroy this
    if (state->Has(id)) Unthrottle();
  }

  // Takes over a connection another shard read `pending` from (idle there).
  void Resume(bool binary, std::string_view pending) {
    if (binary) {
      binary_ = std::make_unique<BinaryParser>(
          BinaryParserOptions{.max_item_size = server_->config().max_item_size});
    } else {
      ascii_ = true;
    }
    socket_->input().Append(pending);
    OnRead();  // may destroy this
  }

  // Config::reqs_per_event: the requests left after a connection's share ran, later in
  // the same loop iteration (once the other ready connections had theirs).
  void Continue() {
    yielded_ = false;
    RunRequests();  // may destroy this
  }

 private:
  struct Slot {
    std::string bytes;
    bool ready = false;
    bool close_after = false;
  };

  void OnRead() {
    Buffer& in = socket_->input();
    const size_t n = in.size();
    if (n == 0) return;
    if (move_to_ >= 0) [[unlikely]] {
      if (TryMove()) return;  // this is gone
    }
    Server::ShardCounters::Add(counters_->bytes_read, n);
    if (binary_ == nullptr && !ascii_) {
      char first = 0;
      in.CopyOut(&first, 1);
      const Config::Protocols protocols = server_->config().protocols;
      if (protocols == Config::Protocols::kBinary ||
          (protocols == Config::Protocols::kAuto && static_cast<unsigned char>(first) == 0x80)) {
        binary_ = std::make_unique<BinaryParser>(
            BinaryParserOptions{.max_item_size = server_->config().max_item_size});
      } else {
        ascii_ = true;
      }
    }
    if (binary_ != nullptr) {
      binary_->Feed(in.Pullup(n));
      in.Drain(n);
    } else {
      std::span<char> room = parser_.Reserve(n);
      parser_.Commit(in.Remove(room.data(), n));
    }
    RunRequests();  // may destroy this
  }

  // The socket's callbacks: reads and events always come here; `on_write` is what
  // waits for the output to drain (Throttle, CloseWhenWritten), if anything.
  void SetCallbacks(BufferedSocket::DataCallback on_write) {
    socket_->SetCallbacks([this](BufferedSocket&) { OnRead(); }, std::move(on_write),
                          [this](BufferedSocket&, uint32_t what, int error) { OnEvent(what, error); });
  }

  void OnEvent(uint32_t what, int error) {
    if ((what & kBevError) && error != 0 &&
        server_->verbosity.load(std::memory_order_relaxed) > 0) {
      fprintf(stderr, "<%d %s error: %s\n", fd_, (what & kBevWriting) ? "write" : "read",
              strerror(error));
    }
    if (what == (kBevReading | kBevEof) && !closing_) {
      // The client finished sending (say a pipeline, then shutdown): answer all it
      // sent, as memcached does, then close once the answers are written.
      return AnswerAllThenClose();
    }
    if (what & (kBevEof | kBevError | kBevTimeout)) Close();
  }

  // Closes once the output has reached the kernel (quit, or the client's EOF after a
  // pipeline): at once when it has, else when the socket's write callback says it
  // drained; nothing more is read meanwhile. A client that does not read them within
  // kCloseLinger of the last progress is closed anyway. May destroy this.
  static constexpr absl::Duration kCloseLinger = absl::Seconds(10);
  void CloseWhenWritten() {
    if (socket_->output().size() == 0 || !socket_->Flush().ok() ||
        socket_->output().size() == 0) {
      return Close();
    }
    closing_ = true;
    socket_->Disable(kBevReading);
    const absl::Duration idle = server_->config().idle_timeout;
    socket_->SetTimeouts(std::nullopt,
                         idle > absl::ZeroDuration() ? std::min(idle, kCloseLinger) : kCloseLinger);
    SetCallbacks([this](BufferedSocket&) { Close(); });
  }

  // After the peer's EOF: runs every request still buffered (yielded ones too), then
  // closes once every answer, those from other shards included, is written. May
  // destroy this.
  void AnswerAllThenClose() {
    peer_done_ = true;
    RunRequests();  // once drained it sets close_after_direct_: FlushSlots closes then
  }

  // Runs the complete requests the parser holds, at most Config::reqs_per_event of
  // them (the rest go to Continue), then writes. May destroy this.
  void RunRequests() {
    // Read once per batch: verbosity 0 costs one relaxed load per read.
    const bool verbose = server_->verbosity.load(std::memory_order_relaxed) > 1;
    uint32_t budget = std::max<uint32_t>(server_->config().reqs_per_event, 1);
    enum class Stop : uint8_t { kDrained, kBudget, kThrottled };
    Stop stop = Stop::kDrained;
    if (pending_keys_ != nullptr && !Throttled()) {
      const size_t stopped = RunKeysInChunks(pending_keys_->request(), pending_from_);
      if (stopped < pending_keys_->request().keys.size()) {
        pending_from_ = stopped;
      } else {
        pending_keys_.reset();
      }
    }
    auto may_run = [&](size_t buffered) {
      if (pending_keys_ != nullptr) {  // a multi-key get still streaming: it goes first
        stop = Stop::kThrottled;
        return false;
      }
      if (buffered == 0) return false;
      if (Throttled()) {
        stop = Stop::kThrottled;
        return false;
      }
      if (budget-- == 0) {
        stop = Stop::kBudget;
        return false;
      }
      return true;
    };
    if (binary_ != nullptr) {
      BinaryRequest request;
      while (!close_pending_ && may_run(binary_->buffered())) {
        const ParseStatus status = binary_->Next(&request);
        if (status == ParseStatus::kNeedMore) break;
        if (status == ParseStatus::kClose) return Close();  // bad magic or body: no reply
        if (verbose) [[unlikely]] {
          fprintf(stderr, "<%d binary opcode 0x%02x key %.*s\n", fd_, request.opcode,
                  static_cast<int>(request.key.size()), request.key.data());
        }
        Dispatch<BinaryProtocol>(request);
      }
    } else {
      Request request;
      while (!close_pending_ && may_run(parser_.buffered())) {
        const ParseStatus status = parser_.Next(&request);
        if (status == ParseStatus::kNeedMore) break;
        if (status == ParseStatus::kClose) return Close();  // line too long: no reply
        if (request.command == Command::kVerbosity) {
          // Like memcached: the level takes effect at once, capped at 2.
          server_->verbosity.store(static_cast<int>(std::min<uint32_t>(request.verbosity, 2)),
                                   std::memory_order_relaxed);
        } else if (request.command == Command::kShutdown) {
          // -A: as a SIGTERM would; this connection closes once its answers are out.
          server_->runtime().Shutdown();
        }
        if (verbose) [[unlikely]] {
          const std::string_view line = parser_.last_line();
          fprintf(stderr, "<%d %.*s\n", fd_, static_cast<int>(line.size()), line.data());
          const size_t before = direct_.size();
          Dispatch<AsciiProtocol>(request);
          if (slots_.empty() && direct_.size() > before) {
            LogResponse(std::string_view(direct_).substr(before));
          }
          continue;
        }
        Dispatch<AsciiProtocol>(request);
      }
    }
    if (++reads_ % kPlacementCheckReads == 0 && server_->runtime().pinned()) CheckPlacement();
    switch (stop) {
      case Stop::kBudget:
        if (!yielded_) {
          yielded_ = true;
          Server::ShardCounters::Add(counters_->conn_yields, 1);
          Shard::Current()->loop().Defer([state = state_->weak_self(), id = id_] {
            if (std::shared_ptr<ShardState*> alive = state.lock()) (*alive)->Continue(id);
          });
        }
        break;
      case Stop::kThrottled:
        Throttle();
        break;
      case Stop::kDrained:
        // After the client's EOF: every request it sent has run; close once written.
        if (peer_done_) close_after_direct_ = true;
        break;
    }
    // A request still being received (a large data block) never holds reading back.
    input_held_ = stop != Stop::kDrained && UnrunInput() > kMaxUnrunInput;
    UpdateReading();  // once, after Throttle() may have set throttled_
    FlushSlots();  // may destroy this (quit)
  }

  // Backpressure. A client that sends requests faster than it reads the answers (a
  // pipeline it never reads) must not make the server buffer without bound: requests
  // stop running while the connection's unsent answers (slots included) exceed
  // Config::max_unsent_output, or kMaxWaitingSlots answers wait on other shards.
  // Reading stops too, so that TCP pushes back on the client. Both resume when the
  // output has drained to half the limit (the socket's write callback) or, for
  // slots, when answers arrive (Complete).
  static constexpr size_t kMaxWaitingSlots = 64;
  // Input side: when requests are left to run (the -R turn ended, or the output
  // throttle) and more than this many bytes wait unparsed, reading stops until they
  // have run: a client that pipelines faster than its turns run cannot make the
  // parser buffer grow without bound (memcached reads only when no complete request
  // is buffered).
  static constexpr size_t kMaxUnrunInput = size_t{64} << 10;
  size_t UnrunInput() const {
    return binary_ != nullptr ? binary_->buffered() : parser_.buffered();
  }
  // Reads while nothing above holds it back.
  void UpdateReading() {
    const bool want = !throttled_ && !closing_ && !peer_done_ && !input_held_;
    if (want == reading_) return;
    reading_ = want;
    if (want) {
      socket_->Enable(kBevReading).IgnoreError();
    } else {
      socket_->Disable(kBevReading);
    }
  }
  bool Throttled() const {
    return direct_.size() + slot_bytes_ + socket_->output().size() >
               server_->config().max_unsent_output ||
           slots_.size() >= kMaxWaitingSlots;
  }
  void Throttle() {
    if (throttled_) return;
    throttled_ = true;  // RunRequests, the caller, stops reading next
    Server::ShardCounters::Add(counters_->conn_throttles, 1);
    socket_->SetWatermark(kBevWriting, server_->config().max_unsent_output / 2, 0);
    SetCallbacks([this](BufferedSocket&) { Unthrottle(); });
  }
  // May destroy this.
  void Unthrottle() {
    if (!throttled_ || closing_ || Throttled()) return;
    throttled_ = false;
    socket_->SetWatermark(kBevWriting, 0, 0);
    SetCallbacks(nullptr);
    RunRequests();  // ends with UpdateReading(): reading resumes there
  }

  // Locality (Config::affinity): a client may have moved to another CPU since its
  // connection was steered at accept. Every kPlacementCheckReads reads the kernel is
  // asked which CPU handles the connection's packets now; when two checks in a row
  // name another shard's CPU, the connection moves there at its next read if it is
  // idle then (TryMove).
  static constexpr uint32_t kPlacementCheckReads = 128;
  void CheckPlacement() {
    int cpu = -1;
    socklen_t len = sizeof cpu;
    if (getsockopt(fd_, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0) return;
    const int target = server_->runtime().ShardOnCpu(cpu);
    if (target < 0 || target == state_->shard()) {
      misplaced_ = 0;
      return;
    }
    if (++misplaced_ >= 2) move_to_ = target;
  }

  // Hands the connection to shard move_to_ if nothing of it is in flight here: its
  // protocol known, no partial request, no response waiting or unsent, and room on
  // the target under the listener's steering slack. The bytes just read travel
  // along, unparsed. Returns true when the connection left (and this is destroyed).
  bool TryMove() {
    const int target = move_to_;
    move_to_ = -1;
    misplaced_ = 0;
    const bool parser_idle = binary_ != nullptr
                                 ? binary_->buffered() == 0 && !binary_->swallowing()
                                 : ascii_ && parser_.buffered() == 0 && !parser_.swallowing();
    if (!parser_idle || !slots_.empty() || !direct_.empty() || close_pending_ ||
        pending_keys_ != nullptr ||
        socket_->output().size() != 0) {
      return false;
    }
    ShardedListener* listener = server_->listener();
    if (listener == nullptr || !listener->MayMoveConnectionTo(target)) return false;
    // Reading stops first: a socket read through the receive ring (io/recv_ring.h)
    // gets what the kernel received for it so far, which then travels along too.
    socket_->Disable(kBevReading);
    Buffer& in = socket_->input();
    MoveMessage adopt(server_, target, fd_, binary_ != nullptr, std::string(in.size(), '\0'));
    in.CopyOut(adopt.pending.data(), adopt.pending.size());
    // The target sees the message at the end of this iteration at the earliest; the
    // fd is released below, before this shard returns to its loop.
    if (!server_->runtime().TrySubmitTo(target, adopt).ok()) {
      adopt.fd = -1;  // still ours: keep serving it here
      if (reading_) socket_->Enable(kBevReading).IgnoreError();
      return false;
    }
    in.Drain(in.size());
    socket_->ReleaseFd();
    listener->ConnectionMoved(state_->shard(), target);
    if (server_->verbosity.load(std::memory_order_relaxed) > 1) [[unlikely]] {
      fprintf(stderr, "<%d moved to thread %d\n", fd_, target);
    }
    state_->Detach(id_);  // destroys this
    return true;
  }

  // Responses computed here go straight into `direct_` (one reused string, written
  // once per read) while no earlier response is still pending on another shard;
  // otherwise they take a slot so that order is kept.
  template <typename P>
  void Answer(const typename P::Req& request, Store* store, const ExecuteOptions& options = {}) {
    if (slots_.empty()) {
      if (P::Exec(request, store, &direct_, options) == Disposition::kClose) {
        close_pending_ = true;
        close_after_direct_ = true;
      }
      return;
    }
    const uint64_t seq = NewSlot();
    std::string out;
    if (P::Exec(request, store, &out, options) == Disposition::kClose) {
      slots_[seq - base_seq_].close_after = true;
      close_pending_ = true;
    }
    Fill(seq, std::move(out));
  }

  // Moves what was answered directly so far behind the slots (called before the
  // first slot is taken, so that it is written first).
  uint64_t NewSlot() {
    if (!direct_.empty() && slots_.empty()) WriteDirect();
    slots_.emplace_back();
    return base_seq_ + slots_.size() - 1;
  }

  // -vv: one line per response line, as memcached prints them (a VALUE line is
  // "sending key <key>" and its data block is skipped).
  void LogResponse(std::string_view out) const {
    while (!out.empty()) {
      size_t eol = out.find("\r\n");
      if (eol == std::string_view::npos) eol = out.size();
      const std::string_view line = out.substr(0, eol);
      out.remove_prefix(std::min(out.size(), eol + 2));
      size_t data = 0;  // bytes of data block that follow this line
      std::string_view shown = line;
      std::string sending;
      if (line.starts_with("VALUE ")) {
        const std::string_view rest = line.substr(6);
        const std::string_view key = rest.substr(0, rest.find(' '));
        sending = absl::StrCat("sending key ", absl::string_view(key.data(), key.size()));
        shown = sending;
        // VALUE <key> <flags> <bytes> [<cas>]
        std::vector<std::string_view> fields;
        for (size_t pos = 0; pos <= line.size();) {
          size_t sp = line.find(' ', pos);
          if (sp == std::string_view::npos) sp = line.size();
          fields.push_back(line.substr(pos, sp - pos));
          pos = sp + 1;
        }
        if (fields.size() >= 4) {
          absl::SimpleAtoi(absl::string_view(fields[3].data(), fields[3].size()), &data);
          data += 2;
        }
      } else if (line.starts_with("VA ")) {  // meta get: VA <bytes> <flags>*
        const std::string_view rest = line.substr(3);
        const std::string_view size = rest.substr(0, rest.find(' '));
        if (absl::SimpleAtoi(absl::string_view(size.data(), size.size()), &data)) data += 2;
      }
      fprintf(stderr, ">%d %.*s\n", fd_, static_cast<int>(shown.size()), shown.data());
      out.remove_prefix(std::min(out.size(), data));
    }
  }

  static bool IsFlush(const Request& r) { return r.command == Command::kFlushAll; }
  static bool IsFlush(const BinaryRequest& r) {
    return r.opcode == kBinFlush || r.opcode == kBinFlushQ;
  }

  template <typename P>
  void Dispatch(const typename P::Req& request) {
    if (!server_->config().flush_enabled && IsFlush(request)) [[unlikely]] {
      // -F: refused here, on no store.
      return Answer<P>(request, nullptr, ExecuteOptions{.flush_enabled = false});
    }
    if constexpr (std::is_same_v<P, AsciiProtocol>) {
      if (request.keys.size() > kKeysPerChunk && RouteOf(request) == Route::kKeys) [[unlikely]] {
        const size_t stopped = RunKeysInChunks(request, 0);
        if (stopped < request.keys.size()) {
          pending_keys_ = std::make_unique<OwnedRequest>(request);  // the rest, next turn
          pending_from_ = stopped;
        }
        return;
      }
    }
    if (server_->shared()) return DispatchShared<P>(request);
    Store& store = state_->store();
    const int here = state_->shard();
    switch (RouteOf(request)) {
      case Route::kLocal:
        Answer<P>(request, nullptr);
        return;
      case Route::kKey: {
        const int owner = server_->Owner(KeyOf(request));
        if (owner == here) {
          Answer<P>(request, &store);
        } else {
          Remote<P>(owner, typename P::Owned(request), NewSlot(), ExecuteOptions{});
        }
        return;
      }
      case Route::kKeys:
        if constexpr (std::is_same_v<P, AsciiProtocol>) MultiGet(request);
        return;
      case Route::kAllShards:
      case Route::kStats:
        FanOut<P>(request, NewSlot());
        return;
    }
  }

  // StoreLayout::kShared: every request runs here, against the stripe(s) of its
  // key(s), each under its stripe's lock; the response goes straight to direct_.
  template <typename P>
  void DispatchShared(const typename P::Req& request) {
    const bool locking = server_->locking();
    switch (RouteOf(request)) {
      case Route::kLocal:
        Answer<P>(request, nullptr);
        return;
      case Route::kKey: {
        Server::Stripe& stripe = server_->StripeOf(KeyOf(request));
        std::unique_lock<std::mutex> lock(stripe.mu, std::defer_lock);
        if (locking) lock.lock();
        Answer<P>(request, &stripe.store);
        return;
      }
      case Route::kKeys:
        if constexpr (std::is_same_v<P, AsciiProtocol>) SharedMultiGet(request);
        return;
      case Route::kAllShards: {
        // flush_all / stats reset: every stripe runs it; the first one's bytes answer.
        std::string first;
        std::string scratch;
        bool have_first = false;
        for (auto& stripe : server_->stripes()) {
          std::unique_lock<std::mutex> lock(stripe->mu, std::defer_lock);
          if (locking) lock.lock();
          scratch.clear();
          P::Exec(request, &stripe->store, &scratch, ExecuteOptions{});
          if (!have_first) {
            first = std::move(scratch);
            have_first = true;
          }
        }
        direct_.append(first);
        return;
      }
      case Route::kStats: {
        StoreStats sum;
        for (auto& stripe : server_->stripes()) {
          std::unique_lock<std::mutex> lock(stripe->mu, std::defer_lock);
          if (locking) lock.lock();
          sum += stripe->store.stats();
        }
        P::Stats(request, server_->Stats(), sum, &direct_);
        return;
      }
    }
  }

  // A multi-key get against the stripes: runs of consecutive keys in one stripe run
  // under one lock, in request order, then one END.
  void SharedMultiGet(const Request& request, bool with_end = true) {
    const bool locking = server_->locking();
    const auto& keys = request.keys;
    size_t begin = 0;
    while (begin < keys.size()) {
      Server::Stripe* stripe = &server_->StripeOf(keys[begin]);
      size_t end = begin + 1;
      while (end < keys.size() && &server_->StripeOf(keys[end]) == stripe) ++end;
      std::unique_lock<std::mutex> lock(stripe->mu, std::defer_lock);
      if (locking) lock.lock();
      if (begin == 0 && end == keys.size()) {
        // One stripe: the common case.
        Answer<AsciiProtocol>(request, &stripe->store, ExecuteOptions{.write_end = with_end});
        return;
      }
      Request part = request;  // views into the parser: valid during this call
      part.keys.assign(keys.begin() + begin, keys.begin() + end);
      Answer<AsciiProtocol>(part, &stripe->store, ExecuteOptions{.write_end = false});
      begin = end;
    }
    if (with_end) direct_.append(kEnd);
  }

  static std::string_view KeyOf(const Request& r) { return r.key(); }
  static std::string_view KeyOf(const BinaryRequest& r) { return r.key; }

  // get/gets/gat/gats with several keys: runs of consecutive keys with one owner keep
  // the VALUE lines in request order.
  void MultiGet(const Request& request, bool with_end = true) {
    Store& store = state_->store();
    const int here = state_->shard();
    const auto& keys = request.keys;
    size_t begin = 0;
    while (begin < keys.size()) {
      const int owner = server_->Owner(keys[begin]);
      size_t end = begin + 1;
      while (end < keys.size() && server_->Owner(keys[end]) == owner) ++end;
      if (owner == here && begin == 0 && end == keys.size()) {
        // All ours: the common single-key get.
        Answer<AsciiProtocol>(request, &store, ExecuteOptions{.write_end = with_end});
        return;
      }
      if (owner == here) {
        Request part = request;  // views into the parser: valid during this call
        part.keys.assign(keys.begin() + begin, keys.begin() + end);
        Answer<AsciiProtocol>(part, &store, ExecuteOptions{.write_end = false});
      } else {
        OwnedRequest owned(request);
        Request& r = owned.mutable_request();
        absl::InlinedVector<std::string_view, 1> subset(r.keys.begin() + begin,
                                                        r.keys.begin() + end);
        r.keys = std::move(subset);
        Remote<AsciiProtocol>(owner, std::move(owned), NewSlot(),
                              ExecuteOptions{.write_end = false});
      }
      begin = end;
    }
    if (with_end) AppendEnd();
  }

  // The END of a multi-key get, behind any of its VALUE lines still on other shards.
  void AppendEnd() {
    if (slots_.empty()) {
      direct_.append(kEnd);
    } else {
      Fill(NewSlot(), std::string(kEnd));
    }
  }

  // A get (gets, gat, gats) with more than kKeysPerChunk keys runs in chunks of that
  // many, from key `from`; between chunks a connection over its output limit
  // (Throttled), or waiting for a chunk's answer from another shard, stops. Returns where it stopped (keys.size(): done, END written), so
  // that a get naming a large item thousands of times streams its answer as the
  // client reads it instead of building it whole in memory.
  static constexpr size_t kKeysPerChunk = 64;
  size_t RunKeysInChunks(const Request& request, size_t from) {
    const auto& keys = request.keys;
    while (from < keys.size()) {
      const size_t end = std::min(keys.size(), from + kKeysPerChunk);
      Request part = request;  // views into `request`: valid during this call
      part.keys.assign(keys.begin() + from, keys.begin() + end);
      if (server_->shared()) {
        SharedMultiGet(part, /*with_end=*/false);
      } else {
        MultiGet(part, /*with_end=*/false);
      }
      from = end;
      // Over the limit, or a chunk's answer still on another shard (its size unknown
      // until it arrives): the rest waits.
      if (from < keys.size() && (Throttled() || !slots_.empty())) return from;
    }
    AppendEnd();
    return from;
  }

  void WriteDirect() {
    Server::ShardCounters::Add(counters_->bytes_written, direct_.size());
    socket_->Write(direct_);
    direct_.clear();  // keeps its capacity: no allocation per request
  }

  void Fill(uint64_t seq, std::string out) {
    if (server_->verbosity.load(std::memory_order_relaxed) > 1) [[unlikely]] LogResponse(out);
    Slot& slot = slots_[seq - base_seq_];
    slot.bytes = std::move(out);
    slot_bytes_ += slot.bytes.size();
    slot.ready = true;
  }

  template <typename P>
  void Remote(int owner, typename P::Owned owned, uint64_t seq, ExecuteOptions options) {
    Server* server = server_;
    const int home = state_->shard();
    const uint64_t id = id_;
    SendReliably(server->runtime(), owner,
                 [server, home, id, seq, owned = std::move(owned), options]() mutable {
                   std::string out;
                   P::Exec(owned.request(), &server->states().local().store(), &out, options);
                   SendReliably(server->runtime(), home,
                                [server, id, seq, out = std::move(out)]() mutable {
                                  server->states().local().Deliver(id, seq, std::move(out));
                                });
                 });
  }

  // flush_all / stats reset (every shard runs it; one shard's bytes answer) and stats
  // (the sum of every shard's counters).
  template <typename P>
  void FanOut(const typename P::Req& request, uint64_t seq) {
    struct Gather {
      int remaining;
      StoreStats sum;
      std::string first;
      typename P::Owned request;
    };
    Server* server = server_;
    const int n = server->runtime().size();
    const int home = state_->shard();
    const uint64_t id = id_;
    const bool stats = RouteOf(request) == Route::kStats;
    auto* gather = new Gather{n, {}, {}, typename P::Owned(request)};
    for (int i = 0; i < n; ++i) {
      auto part = [server, home, id, seq, gather, stats, i,
                   owned = typename P::Owned(request)]() mutable {
        Store& store = server->states().local().store();
        std::string out;
        if (!stats) P::Exec(owned.request(), &store, &out, ExecuteOptions{});
        StoreStats st = store.stats();
        SendReliably(server->runtime(), home,
                     [server, id, seq, gather, stats, i, st, out = std::move(out)]() mutable {
                       gather->sum += st;
                       if (i == 0) gather->first = std::move(out);
                       if (--gather->remaining > 0) return;
                       std::string reply = std::move(gather->first);
                       if (stats) {
                         reply.clear();
                         P::Stats(gather->request.request(), server->Stats(), gather->sum,
                                  &reply);
                       }
                       delete gather;
                       server->states().local().Deliver(id, seq, std::move(reply));
                     });
      };
      // This shard's part runs now: the requests after it on this connection that run
      // here run at once too, and must see the flush (or be counted by the stats) as
      // they follow it. The other shards get theirs in a message, ahead of anything
      // this connection sends them later.
      if (i == home) {
        part();
      } else {
        SendReliably(server->runtime(), i, std::move(part));
      }
    }
  }

  void FlushSlots() {
    bool wrote = false;
    if (!direct_.empty() && slots_.empty()) {
      WriteDirect();
      wrote = true;
    }
    while (!slots_.empty() && slots_.front().ready) {
      Slot& slot = slots_.front();
      if (!slot.bytes.empty()) {
        Server::ShardCounters::Add(counters_->bytes_written, slot.bytes.size());
        socket_->Write(slot.bytes);
        wrote = true;
      }
      const bool close_after = slot.close_after;
      slot_bytes_ -= slot.bytes.size();
      slots_.pop_front();
      ++base_seq_;
      if (close_after) {
        return CloseWhenWritten();
      }
      // Once the slots are drained, answers computed meanwhile follow them.
      if (slots_.empty() && !direct_.empty()) WriteDirect();
    }
    if (close_after_direct_ && slots_.empty()) {
      return CloseWhenWritten();
    }
    // With the iteration's other replies, in one submission (io/send_batch.h).
    if (wrote) socket_->FlushAtEndOfIteration();
  }

  void Close() {
    if (server_->verbosity.load(std::memory_order_relaxed) > 1) [[unlikely]] {
      fprintf(stderr, "<%d connection closed.\n", fd_);
    }
    state_->Remove(id_);  // destroys this
  }

  ShardState* state_;
  Server* server_;
  Server::ShardCounters* counters_;  // this shard's
  uint64_t id_;
  int fd_;  // for log lines, as memcached names connections
  RequestParser parser_;
  std::unique_ptr<BinaryParser> binary_;  // set once the first byte was 0x80
  bool ascii_ = false;
  std::unique_ptr<BufferedSocket> socket_;
  std::deque<Slot> slots_;
  uint64_t base_seq_ = 0;
  std::string direct_;  // answers not waiting behind a slot
  bool close_pending_ = false;
  bool close_after_direct_ = false;  // quit answered directly: close once written
  uint32_t reads_ = 0;     // OnRead calls, for CheckPlacement
  uint8_t misplaced_ = 0;  // placement checks in a row that named another shard
  int move_to_ = -1;       // shard to move to at the next read, or -1
  bool yielded_ = false;   // a Continue is deferred (Config::reqs_per_event)
  bool peer_done_ = false;  // EOF came with requests to answer (AnswerAllThenClose)
  bool closing_ = false;    // CloseWhenWritten: waiting for the output to drain
  bool throttled_ = false;  // Throttle: waiting for the client to read
  bool reading_ = true;     // kBevReading enabled (UpdateReading)
  bool input_held_ = false;  // requests left to run over kMaxUnrunInput
  size_t slot_bytes_ = 0;    // answers in slots, not yet in the socket's output
  // A multi-key get stopped by the output limit (RunKeysInChunks): its copy, and the
  // first key still to run.
  std::unique_ptr<OwnedRequest> pending_keys_;
  size_t pending_from_ = 0;
};

ShardState::~ShardState() = default;

void ShardState::Adopt(int fd) {
  // Replies are small and must not wait for an ACK (memcached sets it too).
  SetNoDelay(fd).IgnoreError();
  const uint64_t id = next_id_++;
  if (server_->verbosity.load(std::memory_order_relaxed) > 1) [[unlikely]] {
    fprintf(stderr, "<%d new auto-negotiating client connection\n", fd);
  }
  conns_.emplace(id, std::make_unique<Connection>(this, id, fd));
}

void ShardState::AdoptMoved(int fd, bool binary, std::string pending) {
  const uint64_t id = next_id_++;
  auto conn = std::make_unique<Connection>(this, id, fd);
  Connection* c = conn.get();
  conns_.emplace(id, std::move(conn));
  c->Resume(binary, pending);
}

void ShardState::Detach(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Connection> gone = std::move(it->second);
  conns_.erase(it);
}

void ShardState::Remove(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  server_->curr_connections.fetch_sub(1, std::memory_order_relaxed);
  server_->ConnectionClosedOn(shard_);
  // Destroy after unlinking: the connection may be running its own callback.
  std::unique_ptr<Connection> gone = std::move(it->second);
  conns_.erase(it);
}

void ShardState::Continue(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;  // closed meanwhile
  it->second->Continue();
}

void ShardState::Deliver(uint64_t id, uint64_t seq, std::string bytes) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;  // closed meanwhile
  it->second->Complete(seq, std::move(bytes));
}

size_t StripeCount(const Config& config) {
  if (config.stripes > 0) return config.stripes;
  // One shard needs no lock at all, and one stripe keeps a single exact LRU.
  if (config.threads <= 1) return 1;
  size_t n = std::min<size_t>(size_t{8} * static_cast<size_t>(config.threads), 64);
  const size_t by_memory = (config.memory_mb << 20) / (4 * config.max_item_size);
  return std::max<size_t>(1, std::min(n, by_memory));
}

int Server::Owner(std::string_view key) const {
  const int n = runtime_->size();
  if (n == 1) return 0;
  return static_cast<int>(std::hash<std::string_view>()(key) % static_cast<size_t>(n));
}

void Server::ConnectionClosedOn(int shard) {
  if (ShardedListener* l = listener(); l != nullptr) return l->ConnectionClosed(shard);
  early_closes_[shard].fetch_add(1);
  // Start() may have stored the listener and taken the early closes meanwhile: then
  // hand over what is left here (each close is taken exactly once, by one side).
  if (ShardedListener* l = listener(); l != nullptr) {
    for (int64_t n = early_closes_[shard].exchange(0); n > 0; --n) l->ConnectionClosed(shard);
  }
}

ServerStats Server::Stats() const {
  ServerStats s;
  s.pid = getpid();
  s.time = absl::ToUnixSeconds(absl::Now());
  s.uptime_seconds = s.time - started_unix_;
  rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s.rusage_user = absl::DurationFromTimeval(ru.ru_utime);
    s.rusage_system = absl::DurationFromTimeval(ru.ru_stime);
  }
  s.max_connections = config_.max_connections;
  s.curr_connections = curr_connections.load(std::memory_order_relaxed);
  s.total_connections = total_connections.load(std::memory_order_relaxed);
  const ShardedListener* l = listener();
  s.moved_connections = l != nullptr ? l->moved() : 0;
  for (int i = 0; i < runtime_->size(); ++i) s.moved_shards += runtime_->shard(i).moves();
  for (int i = 0; i < runtime_->size(); ++i) {
    const ShardCounters& c = counters_[i];
    s.bytes_read += c.bytes_read.load(std::memory_order_relaxed);
    s.bytes_written += c.bytes_written.load(std::memory_order_relaxed);
    s.conn_yields += c.conn_yields.load(std::memory_order_relaxed);
    s.conn_throttles += c.conn_throttles.load(std::memory_order_relaxed);
  }
  s.threads = static_cast<uint64_t>(runtime_->size());
  s.max_unsent_output = config_.max_unsent_output;
  s.tcp_port = !config_.unix_socket.empty() ? 0 : l != nullptr ? l->address().port() : config_.port;
  s.item_size_max = config_.max_item_size;
  s.shard_cpus = ShardCpus();
  s.verbosity = static_cast<uint64_t>(verbosity.load(std::memory_order_relaxed));
  if (!config_.unix_socket.empty()) s.domain_socket = config_.unix_socket;
  s.store_layout = shared() ? "shared" : "partitioned";
  s.stripes = stripes_.size();
  s.lru_bump_interval = static_cast<uint64_t>(config_.lru_bump_interval_seconds);
  s.reuse_port = config_.reuse_port;
  switch (config_.affinity) {
    case RuntimeOptions::Affinity::kNone:
      s.affinity = "off";
      break;
    case RuntimeOptions::Affinity::kAuto:
      s.affinity = "auto";
      break;
    case RuntimeOptions::Affinity::kPin:
      s.affinity = "on";
      break;
  }
  s.rebalance_ms = static_cast<uint64_t>(absl::ToInt64Milliseconds(config_.rebalance_interval));
  s.umask = config_.unix_mask;
  s.reqs_per_event = config_.reqs_per_event;
  s.tcp_backlog = static_cast<uint64_t>(config_.backlog);
  s.binding_protocol = config_.protocols == Config::Protocols::kAscii    ? "ascii"
                       : config_.protocols == Config::Protocols::kBinary ? "binary"
                                                                         : "auto-negotiate";
  s.flush_enabled = config_.flush_enabled;
  s.idle_timeout = static_cast<uint64_t>(absl::ToInt64Seconds(config_.idle_timeout));
  s.shutdown_command = config_.enable_shutdown;
  s.evictions = config_.evict;
  return s;
}

std::string Server::ShardCpus() const {
  if (!runtime_->pinned()) return "none";
  std::string out;
  for (int i = 0; i < runtime_->size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", runtime_->shard(i).cpu());
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  if (config.threads < 1 || config.threads > 256) {
    return absl::InvalidArgumentError("-t must be 1..256");
  }
  std::unique_ptr<Server> server(new Server(config));
  server->started_unix_ = absl::ToUnixSeconds(absl::Now());
  server->early_closes_.reset(new std::atomic<int64_t>[config.threads]);
  server->counters_.reset(new ShardCounters[config.threads]);
  for (int i = 0; i < config.threads; ++i) server->early_closes_[i].store(0);
  absl::StatusOr<std::unique_ptr<Runtime>> rt =
      Runtime::Create({.shards = config.threads,
                       .affinity = config.affinity,
                       .rebalance_interval = config.rebalance_interval});
  if (!rt.ok()) return rt.status();
  server->runtime_ = *std::move(rt);
  Server* raw = server.get();
  const size_t per_shard = (config.memory_mb << 20) / static_cast<size_t>(config.threads);
  absl::StatusOr<std::unique_ptr<PerShard<ShardState>>> states =
      PerShard<ShardState>::Create(*server->runtime_, [raw, per_shard](Shard& shard) {
        StoreOptions o;
        o.max_bytes = per_shard;
        o.max_item_size = raw->config_.max_item_size;
        o.cas_offset = static_cast<uint64_t>(shard.id()) + 1;  // disjoint CAS spaces
        o.cas_stride = static_cast<uint64_t>(raw->config_.threads);
        o.lru_bump_interval_seconds = raw->config_.lru_bump_interval_seconds;
        o.evict = raw->config_.evict;
        return std::make_unique<ShardState>(raw, shard.id(), o);
      });
  if (!states.ok()) return states.status();
  server->states_ = *std::move(states);
  server->verbosity.store(std::min(config.verbosity, 2), std::memory_order_relaxed);
  if (config.store == StoreLayout::kShared) {
    const size_t stripes = StripeCount(config);
    const size_t per_stripe = (config.memory_mb << 20) / stripes;
    for (size_t i = 0; i < stripes; ++i) {
      StoreOptions o;
      o.max_bytes = per_stripe;
      o.max_item_size = config.max_item_size;
      o.cas_offset = i + 1;  // disjoint CAS spaces
      o.cas_stride = stripes;
      o.lru_bump_interval_seconds = config.lru_bump_interval_seconds;
      o.evict = config.evict;
      server->stripes_.push_back(std::make_unique<Stripe>(o));
    }
  }

  // SIGINT/SIGTERM: stop gracefully (watched on shard 0, torn down there). Armed before
  // the listener exists: from the first connection on, a SIGTERM is a graceful stop,
  // never the default action.
  std::latch armed(1);
  absl::Status signal_status;
  absl::Status s = server->runtime_->SubmitTo(0, [raw, &armed, &signal_status] {
    Shard& shard = *Shard::Current();
    auto stop = [raw](int, int) { raw->runtime_->Shutdown(); };
    auto* term = new SignalWatcher(shard.loop(), SIGTERM, stop);
    auto* intr = new SignalWatcher(shard.loop(), SIGINT, stop);
    signal_status = term->Start();
    if (signal_status.ok()) signal_status = intr->Start();
    shard.OnStop([term, intr] {
      delete term;
      delete intr;
    });
    armed.count_down();
  });
  if (!s.ok()) return s;
  armed.wait();
  if (!signal_status.ok()) return signal_status;

  absl::StatusOr<SocketAddress> address =
      config.unix_socket.empty() ? SocketAddress::ParseHost(config.listen, config.port)
                                 : SocketAddress::Unix(config.unix_socket);
  if (!address.ok()) return address.status();
  if (!config.unix_socket.empty()) unlink(config.unix_socket.c_str());
  ShardedListenerOptions lo;
  lo.mode = config.reuse_port && config.unix_socket.empty()
                ? ShardedListenerOptions::Mode::kReusePort
                : ShardedListenerOptions::Mode::kDispatcher;
  lo.policy = ShardedListenerOptions::Policy::kLeastConnections;
  lo.steer_to_incoming_cpu = true;  // when the shards are pinned
  lo.listener.socket.backlog = config.backlog;
  absl::StatusOr<std::unique_ptr<ShardedListener>> listener = ShardedListener::Start(
      *server->runtime_, *address,
      [raw](Shard& shard, int fd, const SocketAddress&) {
        if (raw->curr_connections.load(std::memory_order_relaxed) >= raw->config_.max_connections) {
          static constexpr char kBusy[] = "ERROR Too many open connections\r\n";
          if (raw->verbosity.load(std::memory_order_relaxed) > 0) {
            fprintf(stderr, "Too many open connections\n");
          }
          [[maybe_unused]] ssize_t n = write(fd, kBusy, sizeof kBusy - 1);
          close(fd);
          raw->ConnectionClosedOn(shard.id());
          return;
        }
        raw->curr_connections.fetch_add(1, std::memory_order_relaxed);
        raw->total_connections.fetch_add(1, std::memory_order_relaxed);
        raw->states_->local().Adopt(fd);
      },
      lo);
  if (listener.ok() && !config.unix_socket.empty() &&
      chmod(config.unix_socket.c_str(), static_cast<mode_t>(config.unix_mask)) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("chmod ", config.unix_socket, ": ", strerror(errno)));
  }
  if (!listener.ok()) {
    // A SIGINT/SIGTERM that arrived while the listener started is a stop, not a failure.
    if (server->runtime_->stopping()) {
      return absl::CancelledError("stopped by a signal while starting");
    }
    return listener.status();
  }
  server->listener_ = *std::move(listener);
  server->listener_ptr_.store(server->listener_.get(), std::memory_order_release);
  for (int i = 0; i < config.threads; ++i) {
    for (int64_t n = server->early_closes_[i].exchange(0); n > 0; --n) {
      server->listener_->ConnectionClosed(i);
    }
  }
  return server;
}

Server::~Server() {
  Stop();
  Wait();
}

void Server::Stop() {
  if (runtime_ == nullptr) return;
  if (listener_ != nullptr && !runtime_->stopping()) listener_->Stop();
  runtime_->Shutdown();
}

void Server::Wait() {
  if (runtime_ != nullptr) runtime_->Wait().IgnoreError();
}

}  // namespace evactor::memcached
