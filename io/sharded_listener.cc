#include "io/sharded_listener.h"

#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <latch>
#include <mutex>
#include <utility>

#include "runtime/internal/errno_status.h"

namespace evactor {

ShardedListener::ShardedListener(Runtime& runtime, OnConnection cb, Options options)
    : runtime_(runtime),
      on_connection_(std::move(cb)),
      options_(options),
      slots_(runtime.size(), nullptr),
      handed_(new std::atomic<uint64_t>[runtime.size()]),
      live_(new std::atomic<int64_t>[runtime.size()]) {
  for (int i = 0; i < runtime.size(); ++i) {
    handed_[i].store(0);
    live_[i].store(0);
  }
}

absl::Status ShardedListener::RunOnEveryShard(std::function<absl::Status(Shard&)> fn) {
  if (Shard::Current() != nullptr) {
    return absl::FailedPreconditionError("ShardedListener blocks: use it off-shard");
  }
  const int n = runtime_.size();
  // std::latch, not absl::BlockingCounter: Debian's Abseil is not built with TSan,
  // and the result written on the shards must be seen to happen-before our return.
  std::latch done(n);
  std::mutex mu;
  absl::Status first;
  std::atomic<int> ran{0};
  // Counts the latch down when its closure is destroyed, run or not: a runtime that
  // starts shutting down meanwhile may destroy an accepted message without running it,
  // and this call must not wait for it forever.
  struct CountDown {
    explicit CountDown(std::latch* l) : latch(l) {}
    CountDown(CountDown&& other) noexcept : latch(std::exchange(other.latch, nullptr)) {}
    CountDown& operator=(CountDown&&) = delete;
    ~CountDown() {
      if (latch != nullptr) latch->count_down();
    }
    std::latch* latch;
  };
  for (int i = 0; i < n; ++i) {
    absl::Status s = runtime_.SubmitTo(i, [&, guard = CountDown(&done)]() mutable {
      const CountDown last = std::move(guard);  // counts down as this body returns
      absl::Status r = fn(*Shard::Current());
      if (!r.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = r;
      }
      ran.fetch_add(1, std::memory_order_relaxed);
    });
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first.ok()) first = s;
    }
  }
  done.wait();
  if (first.ok() && ran.load(std::memory_order_relaxed) != n) {
    return absl::CancelledError("the runtime stopped before every shard ran its part");
  }
  return first;
}

absl::StatusOr<std::unique_ptr<ShardedListener>> ShardedListener::Start(
    Runtime& runtime, const SocketAddress& address, OnConnection on_connection, Options options) {
  if (options.dispatcher_shard < 0 || options.dispatcher_shard >= runtime.size()) {
    return absl::InvalidArgumentError("dispatcher_shard out of range");
  }
  std::unique_ptr<ShardedListener> sl(new ShardedListener(runtime, std::move(on_connection), options));
  ShardedListener* self = sl.get();
  if (options.mode == Mode::kDispatcher) {
    SocketAddress bound = address;
    absl::Status s = sl->RunOnEveryShard([self, &bound](Shard& shard) -> absl::Status {
      self->AddSlot(shard);
      if (shard.id() != self->options_.dispatcher_shard) return absl::OkStatus();
      auto l = Listener::Bind(
          shard.loop(), bound,
          [self](int fd, const SocketAddress& peer) { self->Dispatch(fd, peer); },
          self->options_.listener);
      if (!l.ok()) return l.status();
      self->address_ = (*l)->local_address();
      self->slots_[shard.id()]->listener = *std::move(l);
      return absl::OkStatus();
    });
    if (!s.ok()) {
      sl->Stop();
      return s;
    }
    return sl;
  }
  // kReusePort: bind shard 0 first to learn the port (for port 0), then the others,
  // one after another: the kernel keeps the group's sockets in the order they
  // started listening, and the steering program below returns indices into it.
  ListenerOptions lo = options.listener;
  lo.socket.reuse_port = true;
  SocketAddress bound = address;
  for (int i = 0; i < runtime.size(); ++i) {
    absl::Status s = sl->RunOnEveryShard([self, &bound, &lo, i](Shard& shard) -> absl::Status {
      if (shard.id() != i) return absl::OkStatus();
      self->AddSlot(shard);
      auto l = Listener::Bind(
          shard.loop(), bound,
          [self](int fd, const SocketAddress& peer) {
            Shard& here = *Shard::Current();
            self->handed_[here.id()].fetch_add(1, std::memory_order_relaxed);
            self->live_[here.id()].fetch_add(1, std::memory_order_relaxed);
            self->on_connection_(here, fd, peer);
          },
          lo);
      if (!l.ok()) return l.status();
      if (i == 0) self->address_ = (*l)->local_address();
      self->slots_[shard.id()]->listener = *std::move(l);
      return absl::OkStatus();
    });
    if (s.ok() && i == 0) bound = sl->address_;
    if (s.ok() && i == runtime.size() - 1 && options.steer_to_incoming_cpu && runtime.pinned()) {
      s = sl->AttachCpuSteering();
    }
    if (!s.ok()) {
      sl->Stop();
      return s;
    }
  }
  return sl;
}

ShardedListener::~ShardedListener() { Stop(); }

absl::Status ShardedListener::AttachCpuSteering() {
  // Classic BPF run by the kernel for each new connection to the group: load the
  // CPU handling it, return the index of the socket of the shard pinned there, or
  // an index past the end (the kernel then picks by hash, as without a program).
  auto insn = [](int op, uint32_t k, uint8_t jump_false = 0) {
    sock_filter f{};
    f.code = static_cast<uint16_t>(op);
    f.jf = jump_false;
    f.k = k;
    return f;
  };
  std::vector<sock_filter> code;
  code.push_back(insn(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_CPU)));
  for (int i = 0; i < runtime_.size(); ++i) {
    // if (cpu == shard i's CPU) return i;
    code.push_back(insn(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(runtime_.shard(i).cpu()), 1));
    code.push_back(insn(BPF_RET | BPF_K, static_cast<uint32_t>(i)));
  }
  code.push_back(insn(BPF_RET | BPF_K, 0xffffffffu));
  sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
  // The program belongs to the group: attaching it on shard 0's socket is enough.
  absl::Status s = RunOnEveryShard([this, &program](Shard& shard) -> absl::Status {
    if (shard.id() != 0) return absl::OkStatus();
    const int fd = slots_[0]->listener->fd();
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) != 0) {
      return internal::ErrnoToStatus(errno, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)");
    }
    return absl::OkStatus();
  });
  if (s.ok()) cpu_steering_ = true;
  return s;
}

void ShardedListener::AddSlot(Shard& shard) {
  Slot* slot = new Slot;
  slots_[shard.id()] = slot;
  shard.OnStop([slot] { delete slot; });
}

void ShardedListener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Once the runtime stops, each shard frees its slot (and listener) itself.
  if (runtime_.stopping()) return;
  RunOnEveryShard([this](Shard& shard) {
    if (Slot* slot = slots_[shard.id()]; slot != nullptr) slot->listener.reset();
    return absl::OkStatus();
  }).IgnoreError();
}

int ShardedListener::Pick() {
  const int n = runtime_.size();
  const int start = static_cast<int>(next_++ % n);
  if (options_.policy == Policy::kRoundRobin) return start;
  // Fewest open connections; ties go round-robin (scanning from a rotating start).
  int best = start;
  int64_t best_live = live_[start].load(std::memory_order_relaxed);
  for (int k = 1; k < n; ++k) {
    const int i = (start + k) % n;
    const int64_t v = live_[i].load(std::memory_order_relaxed);
    if (v < best_live) {
      best = i;
      best_live = v;
    }
  }
  return best;
}

int ShardedListener::Steer(int fd) const {
  if (!options_.steer_to_incoming_cpu || !runtime_.pinned()) return -1;
  int cpu = -1;
  socklen_t len = sizeof cpu;
  if (getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0) return -1;
  const int local = runtime_.ShardOnCpu(cpu);
  return local >= 0 && MayMoveConnectionTo(local) ? local : -1;
}

bool ShardedListener::MayMoveConnectionTo(int to) const {
  if (to < 0 || to >= runtime_.size()) return false;
  int64_t min_live = live_[0].load(std::memory_order_relaxed);
  for (int i = 1; i < runtime_.size(); ++i) {
    min_live = std::min(min_live, live_[i].load(std::memory_order_relaxed));
  }
  const int64_t allowed = min_live + std::max(options_.steer_slack, 0) + min_live / 4;
  return live_[to].load(std::memory_order_relaxed) <= allowed;
}

void ShardedListener::ConnectionMoved(int from, int to) {
  live_[from].fetch_sub(1, std::memory_order_relaxed);
  live_[to].fetch_add(1, std::memory_order_relaxed);
  moved_.fetch_add(1, std::memory_order_relaxed);
}

void ShardedListener::Dispatch(int fd, const SocketAddress& peer) {
  const int n = runtime_.size();
  const int local = Steer(fd);
  const int first = local >= 0 ? local : Pick();
  for (int k = 0; k < n; ++k) {
    const int target = (first + k) % n;
    live_[target].fetch_add(1, std::memory_order_relaxed);
    // Moved into the target's ring as it is (no type-erased wrapper, no allocation
    // beyond the callback's own copy).
    auto m = [cb = on_connection_, fd, peer] { cb(*Shard::Current(), fd, peer); };
    if (runtime_.TrySubmitTo(target, m).ok()) {
      handed_[target].fetch_add(1, std::memory_order_relaxed);
      if (target == local) steered_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    live_[target].fetch_sub(1, std::memory_order_relaxed);
  }
  refused_.fetch_add(1, std::memory_order_relaxed);
  close(fd);
}

}  // namespace evactor
