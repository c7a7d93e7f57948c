// mailbox_bench — evactor's cross-shard messaging against a mutex+condvar queue,
// libevent's cross-thread posting and a bare eventfd pair.
//
//   bazel run --config=opt //bench:mailbox_bench             # full run
//   bazel run --config=opt //bench:mailbox_bench -- --quick  # a smoke run, under a minute
//
// Every message carries the same 16-byte payload (Payload: a sequence number and a
// value derived from it), moved from sender to receiver.
//
// 1. One-way throughput between two threads (messages/s). The sender sends M
//    messages; the receiver checks that they arrive in order and sums the values;
//    the sum is compared with the one computed independently afterwards. Timed from
//    the sender's first send to the receiver's handling of the last message.
//    - evactor: a 2-shard Runtime; shard 0 sends to shard 1 with TrySubmitTo, a
//      closure that captures only the payload (16 bytes: it stays in AnyInvocable's
//      inline storage; the receiver's sink is a global that only shard 1 touches).
//      When the ring is full the sender yields to its loop with Loop::Defer and
//      continues there (the Pump pattern of tests/runtime/runtime_test.cc).
//      Also measured, for the analysis (no speedup line): the same closure that also
//      captures a pointer to the sink (24 bytes, still stored in the ring), and the
//      16-byte closure with a 4 MiB ring instead of the default (1 MiB for 2 shards).
//      Counted during the timed window: eventfd writes aimed at shard 1
//      (Mailbox::Counters::wakeups_written), the receiver's blocking waits
//      (Loop::Stats::sleeps) and refused sends (ring full).
//    - vector-swap queue: two plain threads; std::mutex + std::condition_variable;
//      the producer appends one message per lock and notifies only a consumer that
//      waits; the consumer swaps the whole vector out under the lock.
//    - libevent: evthread_use_pthreads(); a receiver thread runs event_base_loop
//      (EVLOOP_NO_EXIT_ON_EMPTY) on its own base; the sender posts each message with
//      event_base_once(base, -1, EV_TIMEOUT, cb, &msg, &zero_tv) — libevent's
//      cross-thread posting. Bounded by a count and a time (--libevent_messages,
//      --libevent_seconds); a sentinel posted last carries the count sent.
// 2. Ping-pong round trip between two idle threads (median and p99): shard 0 sends to
//    shard 1, shard 1 replies to shard 0, the next ping follows the reply. Against two
//    plain threads that each epoll_wait on their own eventfd and write the other's
//    (the payload passes through a shared slot). Then evactor again with
//    MailboxOptions::poll_before_sleep = --poll_us (the busy-poll window).
// 3. Fan-out/fan-in over all shards: one actor per shard (runtime/actor.h); shard 0
//    Asks every actor (its own included) and starts the next round when every Future
//    has completed (Then, on shard 0); rounds/s (`fanout_ask`). The same pattern with
//    bare SubmitTo and a SubmitTo reply (`fanout_submit`) shows what Ask adds; both
//    again with the poll window (analysis only). No peer.
//
// Placement: by default the two sides of every pair run pinned to two different CPUs
// (--pin; see PinRole for why). Shutdown: StopRuntime watches for a lost shutdown
// wake-up (a bug this benchmark once found, since fixed) and reports it if it recurs.
//
// Implementations alternate within each round (the order rotates) so that drift on this
// shared machine hits them alike; throughput is the median over rounds, round-trip
// percentiles come from all samples pooled. Every run checks counts, order and sums and
// aborts on a mismatch, so a broken implementation cannot look fast. Every wait is
// bounded: a stuck run aborts the program.
//
// The closing lines read `speedup <name> <x>` with x = peer's cost / evactor's cost
// (inverse throughput or round-trip time; x > 1: evactor is faster), then
// `fanout_ask <rounds_per_s>` and `fanout_submit <rounds_per_s>` (figures, not ratios:
// there is no peer).
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "runtime/actor.h"
#include "runtime/future.h"
#include "runtime/loop.h"
#include "runtime/mailbox.h"
#include "runtime/runtime.h"

namespace {

using evactor::Runtime;
using evactor::Shard;

// ---------------------------------------------------------------------------
// Small utilities.

using evactor::bench::Die;
using evactor::bench::Median;
using evactor::bench::NowNs;
using evactor::bench::Percentile;

// A stuck implementation must not hang the benchmark (generous, so that a run under
// valgrind still finishes).
constexpr int64_t kStuckNs = int64_t{300} * 1'000'000'000;

// A one-shot completion signal with a bounded wait. Signal() is called after the
// timed window has closed, so its futex wake costs nothing that is measured.
class Done {
 public:
  void Signal() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void WaitOrDie(const char* what) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::nanoseconds(kStuckNs), [this] { return done_; })) {
      Die("%s: no result after %" PRId64 " s", what, kStuckNs / 1'000'000'000);
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

// ---------------------------------------------------------------------------
// Thread placement. On this kind of VM the scheduler's wake-affine placement sometimes
// puts two communicating threads on one CPU (a wake-up is then a context switch of a
// few microseconds) and sometimes on two (a wake-up is an inter-processor interrupt to
// a halted virtual CPU: tens of microseconds). Left alone, a run lands in either mode
// at random. --pin=cross (the default) puts the two sides on two different CPUs, which
// is what shards are for; --pin=same puts both on one CPU; --pin=none leaves it to the
// kernel. Every implementation is placed the same way.

enum class PinMode { kCross, kSame, kNone };
PinMode g_pin = PinMode::kCross;
std::vector<int> g_cpus;  // the CPUs this process may run on

void InitCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) Die("sched_getaffinity: %s", std::strerror(errno));
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) g_cpus.push_back(c);
  }
  if (g_cpus.empty()) g_cpus.push_back(0);
}

// Pins the calling thread for role `role` (0: the sender / shard 0, 1: the receiver /
// shard 1, i: shard i).
void PinRole(int role) {
  if (g_pin == PinMode::kNone) return;
  const int cpu = g_pin == PinMode::kSame
                      ? g_cpus[0]
                      : g_cpus[static_cast<size_t>(role) % g_cpus.size()];
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    Die("pthread_setaffinity_np(cpu %d) failed", cpu);
  }
}

const char* PinName() {
  switch (g_pin) {
    case PinMode::kCross: return "cross (sender and receiver on different CPUs)";
    case PinMode::kSame: return "same (every thread on one CPU)";
    case PinMode::kNone: return "none (the kernel places threads)";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The message: 16 bytes, trivially copyable, moved by every implementation.

struct Payload {
  uint64_t seq;
  uint64_t value;
};
static_assert(sizeof(Payload) == 16);

// splitmix64: the value carried with sequence number `seq`.
inline uint64_t Mix(uint64_t seq) {
  uint64_t z = seq + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline Payload MakePayload(uint64_t seq) { return Payload{seq, Mix(seq)}; }

// The checksum a receiver must reach after messages 0..n-1 (computed independently
// of any implementation).
uint64_t ExpectedSum(uint64_t n) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s += Mix(i);
  return s;
}

// ---------------------------------------------------------------------------
// Configuration.

struct Config {
  bool quick = false;
  int rounds = 5;                      // one-way rounds per implementation
  uint64_t messages = 10'000'000;      // one-way messages per round (evactor, mutex)
  uint64_t libevent_messages = 2'000'000;
  double libevent_seconds = 1.0;       // libevent's sender stops posting after this
  int pingpong = 20'000;               // round trips per implementation per round
  int pingpong_rounds = 3;
  int warmup = 200;                    // round trips discarded at the start of each run
  int poll_us = 50;                    // MailboxOptions::poll_before_sleep for *_poll
  int fanout_shards = 0;               // 0: one per core
  int fanout_rounds = 200'000;
  double fanout_seconds = 1.0;
  // Empty: everything. Else a comma-separated list of task names or prefixes
  // ("oneway", "oneway/evactor", "pingpong/eventfd", ...) — for profiling.
  std::string only;
  // Analysis knobs for the evactor one-way runs (defaults: the runtime's defaults).
  int oneway_poll_us = 0;      // MailboxOptions::poll_before_sleep
  uint64_t sender_chunk = 0;   // >0: the sender also yields to its loop every this many
  uint64_t oneway_ring = 0;    // >0: MailboxOptions::shard_ring_bytes
  uint64_t oneway_batch = 0;   // >0: MailboxOptions::batch
};

bool Selected(const Config& cfg, std::string_view name) {
  if (cfg.only.empty()) return true;
  std::string_view list = cfg.only;
  while (!list.empty()) {
    const size_t comma = std::min(list.find(','), list.size());
    std::string_view want = list.substr(0, comma);
    list.remove_prefix(std::min(comma + 1, list.size()));
    if (want.empty()) continue;
    if (want.back() == '$') {
      if (name == want.substr(0, want.size() - 1)) return true;
      continue;
    }
    if (name == want) return true;
    if (name.size() > want.size() && name.substr(0, want.size()) == want &&
        (name[want.size()] == '/' || name[want.size()] == '_')) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Part 1: one-way throughput.

// What the receiver keeps: in-order check, count and checksum. Touched only by the
// receiving thread while a run is on.
struct alignas(64) OneWaySink {
  uint64_t n = 0;  // messages expected (~0: until a sentinel says)
  uint64_t count = 0;
  uint64_t sum = 0;
  uint64_t next_seq = 0;
  uint64_t order_errors = 0;
  void (*on_last)(OneWaySink*) = nullptr;  // called after message n-1

  void Reset(uint64_t expected, void (*last)(OneWaySink*)) {
    n = expected;
    count = sum = next_seq = order_errors = 0;
    on_last = last;
  }
  inline void Take(const Payload& p) {
    order_errors += p.seq != next_seq;
    next_seq = p.seq + 1;
    sum += p.value;
    if (++count == n && on_last != nullptr) on_last(this);
  }
};

struct OneWayResult {
  uint64_t messages = 0;
  double seconds = 0;
  double per_s() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
  // evactor only.
  uint64_t wakeups = 0;        // eventfd writes aimed at the receiver, timed window
  uint64_t receiver_waits = 0;  // the receiver's blocking backend waits, timed window
  uint64_t full = 0;           // sends refused because the ring was full
  uint64_t sender_yields = 0;  // times the sender went back to its loop
  uint64_t receiver_iterations = 0;
};

void CheckSink(const OneWaySink& s, uint64_t n, const char* what) {
  if (s.count != n || s.order_errors != 0 || s.next_seq != n || s.sum != ExpectedSum(n)) {
    Die("%s: broken: received %" PRIu64 " of %" PRIu64 ", %" PRIu64
        " out of order, checksum %016" PRIx64 " want %016" PRIx64,
        what, s.count, n, s.order_errors, s.sum, ExpectedSum(n));
  }
}

// ---- evactor runtime set-up --------------------------------------------------

// Creates a runtime and pins shard i for role i.
std::unique_ptr<Runtime> StartRuntime(int shards, const evactor::MailboxOptions& mo,
                                      const char* what) {
  auto created = Runtime::Create({.shards = shards, .mailbox = mo});
  if (!created.ok()) Die("%s: Runtime::Create: %s", what, created.status().ToString().c_str());
  std::unique_ptr<Runtime> rt = *std::move(created);
  std::atomic<int> pinned{0};
  Done all;
  for (int i = 0; i < shards; ++i) {
    absl::Status st = rt->SubmitTo(i, [i, shards, &pinned, &all] {
      PinRole(i);
      if (pinned.fetch_add(1) + 1 == shards) all.Signal();
    });
    if (!st.ok()) Die("%s: pin: %s", what, st.ToString().c_str());
  }
  all.WaitOrDie(what);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // every shard idle
  return rt;
}

// Runtimes whose Shutdown() did not end the shards by itself (see StopRuntime).
int g_shutdown_stuck = 0;

// Shutdown() and Wait(), bounded. This benchmark once found a lost wake-up in the
// runtime: a shard read the shutdown phase in its BeforePoll hook before the mailbox's
// busy-poll window, and the mailbox's final re-check looked only at its rings, so a
// Shutdown() during the window left the shard blocked in epoll_wait(-1) for good. The
// mailbox now re-checks the phase after publishing "asleep" (Mailbox::BeforePoll's
// wake_condition; regression test in tests/runtime/runtime_test.cc). Should it recur,
// this keeps calling WakeIfSleeping on every mailbox once a millisecond after 200 ms,
// so the benchmark still ends, and counts the runtime (reported at the end).
void StopRuntime(std::unique_ptr<Runtime>& rt, const char* what) {
  rt->Shutdown();
  // Wait() runs here: it hands the loops to the calling thread, which must be the one
  // that destroys the runtime. A helper thread does the waking.
  std::atomic<bool> joined{false};
  std::atomic<bool> poked{false};
  Runtime* r = rt.get();
  std::thread poker([&joined, &poked, r, what] {
    const int64_t t0 = NowNs();
    while (!joined.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const int64_t waited = NowNs() - t0;
      if (waited > 200'000'000) {
        poked.store(true, std::memory_order_relaxed);
        for (int i = 0; i < r->size(); ++i) r->shard(i).mailbox().WakeIfSleeping();
      }
      if (waited > 30'000'000'000) Die("%s: shards did not stop within 30 s of Shutdown()", what);
    }
  });
  absl::Status wait_status = rt->Wait();
  joined.store(true, std::memory_order_release);
  poker.join();
  if (!wait_status.ok()) Die("%s: Wait: %s", what, wait_status.ToString().c_str());
  if (poked.load(std::memory_order_relaxed)) ++g_shutdown_stuck;
  if (rt->dropped() != 0) Die("%s: %" PRIu64 " messages dropped", what, rt->dropped());
  rt.reset();
}

// ---- evactor ----------------------------------------------------------------

// The receiver's state for the evactor runs: a global so that the message closure needs
// to capture nothing but the payload.
OneWaySink g_sink;

struct EvactorOneWay {
  Runtime* rt = nullptr;
  uint64_t n = 0;
  uint64_t chunk = 0;  // >0: also yield every this many messages
  Done done;
  // Sender side (shard 0).
  uint64_t next = 0;
  int64_t t0 = 0;
  uint64_t wakeups0 = 0;
  uint64_t full0 = 0;
  uint64_t yields = 0;
  // Receiver side (shard 1).
  uint64_t sleeps0 = 0;
  uint64_t iterations0 = 0;
  int64_t t1 = 0;
  uint64_t wakeups1 = 0;
  uint64_t full1 = 0;
  uint64_t sleeps1 = 0;
  uint64_t iterations1 = 0;
};
EvactorOneWay* g_oneway = nullptr;

// The message closures, moved into the ring as they are (Runtime::TrySubmitTo takes
// any callable). InlineMsg is the 16-byte payload alone; WideMsg adds the one pointer
// a handler usually needs (its actor or sink), which makes it 24 bytes.
struct InlineMsg {
  Payload p;
  void operator()() { g_sink.Take(p); }
};
struct WideMsg {
  Payload p;
  OneWaySink* sink;
  void operator()() { sink->Take(p); }
};
static_assert(sizeof(InlineMsg) == 16 && sizeof(WideMsg) == 24);

void EvactorLast(OneWaySink*) {
  // Runs on shard 1, in the handler of the last message: close the window.
  EvactorOneWay& s = *g_oneway;
  s.t1 = NowNs();
  Shard* me = Shard::Current();
  s.wakeups1 = me->mailbox().counters().wakeups_written.load(std::memory_order_relaxed);
  s.full1 = me->mailbox().counters().full.load(std::memory_order_relaxed);
  s.sleeps1 = me->loop().stats().sleeps;
  s.iterations1 = me->loop().stats().iterations;
  s.done.Signal();
}

template <bool kWide>
void EvactorSend() {
  EvactorOneWay& s = *g_oneway;
  Runtime& rt = *s.rt;
  const uint64_t stop = s.chunk != 0 ? std::min(s.n, s.next + s.chunk) : s.n;
  while (s.next < stop) {
    const Payload p = MakePayload(s.next);
    absl::Status st;
    if constexpr (kWide) {
      WideMsg m{p, &g_sink};
      st = rt.TrySubmitTo(1, m);
    } else {
      InlineMsg m{p};
      st = rt.TrySubmitTo(1, m);
    }
    if (!st.ok()) [[unlikely]] {
      if (!absl::IsResourceExhausted(st)) Die("evactor one-way: %s", st.ToString().c_str());
      break;  // full
    }
    ++s.next;
  }
  if (s.next < s.n) {
    // Full (or --sender_chunk): go back to the loop, which flushes the wake-up and
    // drains our own inbox, and continue from there.
    ++s.yields;
    Shard::Current()->loop().Defer([] { EvactorSend<kWide>(); });
  }
}

OneWayResult RunEvactorOneWay(uint64_t n, bool wide, const evactor::MailboxOptions& mailbox,
                              uint64_t chunk) {
  const char* what = wide ? "evactor one-way (24-byte closure)" : "evactor one-way";
  std::unique_ptr<Runtime> rt = StartRuntime(2, mailbox, what);
  EvactorOneWay s;
  s.rt = rt.get();
  s.n = n;
  s.chunk = chunk;
  g_oneway = &s;
  g_sink.Reset(n, &EvactorLast);

  // Arm the receiver: note its counters before anything is sent.
  Done armed;
  absl::Status st = rt->SubmitTo(1, [&s, &armed] {
    Shard* me = Shard::Current();
    s.sleeps0 = me->loop().stats().sleeps;
    s.iterations0 = me->loop().stats().iterations;
    armed.Signal();
  });
  if (!st.ok()) Die("%s: arm: %s", what, st.ToString().c_str());
  armed.WaitOrDie(what);

  st = rt->SubmitTo(0, [&s, wide, &rt] {
    s.t0 = NowNs();
    const evactor::Mailbox& box = rt->shard(1).mailbox();
    s.wakeups0 = box.counters().wakeups_written.load(std::memory_order_relaxed);
    s.full0 = box.counters().full.load(std::memory_order_relaxed);
    if (wide) {
      EvactorSend<true>();
    } else {
      EvactorSend<false>();
    }
  });
  if (!st.ok()) Die("%s: start: %s", what, st.ToString().c_str());
  s.done.WaitOrDie(what);
  StopRuntime(rt, what);
  CheckSink(g_sink, n, what);
  g_oneway = nullptr;

  OneWayResult r;
  r.messages = n;
  r.seconds = (s.t1 - s.t0) / 1e9;
  r.wakeups = s.wakeups1 - s.wakeups0;
  r.full = s.full1 - s.full0;
  r.receiver_waits = s.sleeps1 - s.sleeps0;
  r.receiver_iterations = s.iterations1 - s.iterations0;
  r.sender_yields = s.yields;
  return r;
}

// ---- vector-swap queue --------------------------------------------------------

class VectorSwapQueue {
 public:
  void Push(Payload&& p) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(p));
      wake = waiting_;
      waiting_ = false;
    }
    if (wake) cv_.notify_one();
  }
  // Swaps everything queued into `out` (which must be empty), waiting for at least one.
  void PopAll(std::vector<Payload>& out) {
    std::unique_lock<std::mutex> lock(mu_);
    while (q_.empty()) {
      waiting_ = true;
      if (cv_.wait_for(lock, std::chrono::nanoseconds(kStuckNs)) == std::cv_status::timeout) {
        Die("vector-swap queue: consumer starved");
      }
    }
    out.swap(q_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Payload> q_;
  bool waiting_ = false;
};

OneWayResult RunMutexOneWay(uint64_t n) {
  VectorSwapQueue q;
  OneWaySink sink;
  int64_t t1 = 0;
  sink.Reset(n, nullptr);
  Done consumer_ready;
  std::thread consumer([&] {
    PinRole(1);
    consumer_ready.Signal();
    std::vector<Payload> batch;
    while (sink.count < n) {
      q.PopAll(batch);
      for (const Payload& p : batch) sink.Take(p);
      batch.clear();
    }
    t1 = NowNs();
  });
  int64_t t0 = 0;
  std::thread producer([&] {
    PinRole(0);
    consumer_ready.WaitOrDie("vector-swap one-way start");
    // Let the consumer reach its wait, as the evactor receiver is asleep at the start.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    t0 = NowNs();
    for (uint64_t i = 0; i < n; ++i) q.Push(MakePayload(i));
  });
  producer.join();
  consumer.join();
  CheckSink(sink, n, "vector-swap one-way");
  OneWayResult r;
  r.messages = n;
  r.seconds = (t1 - t0) / 1e9;
  return r;
}

// ---- libevent -----------------------------------------------------------------

struct LibeventOneWay {
  event_base* base = nullptr;
  OneWaySink sink;
  std::vector<Payload> msgs;
  Payload sentinel{};
  Payload ready{};
  Done started;
  Done done;
  int64_t t1 = 0;
  uint64_t sent = 0;
};
LibeventOneWay* g_le = nullptr;

void LibeventOnMessage(evutil_socket_t, short, void* arg) {
  LibeventOneWay& s = *g_le;
  const Payload* p = static_cast<const Payload*>(arg);
  if (p == &s.sentinel) {
    s.t1 = NowNs();
    s.sent = p->seq;
    event_base_loopbreak(s.base);
    s.done.Signal();
    return;
  }
  if (p == &s.ready) {
    s.started.Signal();
    return;
  }
  s.sink.Take(*p);
}

OneWayResult RunLibeventOneWay(const Config& cfg) {
  auto state = std::make_unique<LibeventOneWay>();
  LibeventOneWay& s = *state;
  // Zero-filled now, so that the timed loop does not take the page faults.
  s.msgs.resize(cfg.libevent_messages);
  s.base = event_base_new();
  if (s.base == nullptr) Die("libevent: event_base_new failed");
  s.sink.Reset(~uint64_t{0}, nullptr);
  g_le = &s;
  static const timeval kZero = {0, 0};

  std::thread receiver([&s] {
    PinRole(1);
    if (event_base_loop(s.base, EVLOOP_NO_EXIT_ON_EMPTY) < 0) Die("libevent: loop failed");
  });
  if (event_base_once(s.base, -1, EV_TIMEOUT, LibeventOnMessage, &s.ready, &kZero) != 0) {
    Die("libevent: event_base_once failed");
  }
  s.started.WaitOrDie("libevent one-way start");
  const uint64_t limit = cfg.libevent_messages;
  const int64_t budget = static_cast<int64_t>(cfg.libevent_seconds * 1e9);
  int64_t t0 = 0;
  uint64_t i = 0;
  std::thread sender([&] {
    PinRole(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the receiver go idle
    t0 = NowNs();
    const int64_t stop = t0 + budget;
    for (; i < limit; ++i) {
      s.msgs[i] = MakePayload(i);
      if (event_base_once(s.base, -1, EV_TIMEOUT, LibeventOnMessage, &s.msgs[i], &kZero) != 0) {
        Die("libevent: event_base_once failed after %" PRIu64 " messages", i);
      }
      if ((i & 255) == 255 && NowNs() > stop) {
        ++i;
        break;
      }
    }
    s.sentinel.seq = i;
    if (event_base_once(s.base, -1, EV_TIMEOUT, LibeventOnMessage, &s.sentinel, &kZero) != 0) {
      Die("libevent: event_base_once (sentinel) failed");
    }
  });
  s.done.WaitOrDie("libevent one-way");
  sender.join();
  receiver.join();
  event_base_free(s.base);
  s.base = nullptr;
  g_le = nullptr;
  if (s.sent != i) Die("libevent: sentinel says %" PRIu64 ", sent %" PRIu64, s.sent, i);
  CheckSink(s.sink, i, "libevent one-way");
  OneWayResult r;
  r.messages = i;
  r.seconds = (s.t1 - t0) / 1e9;
  return r;
}

// ---------------------------------------------------------------------------
// Part 2: ping-pong.

struct PingPongResult {
  std::vector<double> rtt_us;  // after warm-up
  uint64_t wakeups = 0;        // eventfd writes, both directions (evactor)
  uint64_t round_trips = 0;    // including warm-up
};

struct EvactorPingPong {
  Runtime* rt = nullptr;
  int total = 0;
  int warmup = 0;
  int done_count = 0;
  int64_t t_send = 0;
  int64_t deadline = 0;
  std::vector<int64_t> rtt_ns;
  Done done;
};
EvactorPingPong* g_pp = nullptr;

void SendPing();

struct PongMsg {
  Payload p;
  void operator()() {
    const int64_t t = NowNs();
    EvactorPingPong& s = *g_pp;
    const uint64_t seq = static_cast<uint64_t>(s.done_count);
    if (p.seq != seq || p.value != Mix(seq) + 1) {
      Die("evactor ping-pong: reply %" PRIu64 " does not answer ping %" PRIu64, p.seq, seq);
    }
    if (s.done_count >= s.warmup) s.rtt_ns.push_back(t - s.t_send);
    ++s.done_count;
    if (s.done_count < s.total && t < s.deadline) {
      SendPing();
    } else {
      s.done.Signal();
    }
  }
};

struct PingMsg {
  Payload p;
  void operator()() {
    // On shard 1: answer at once.
    absl::Status st = g_pp->rt->SubmitTo(0, PongMsg{Payload{p.seq, p.value + 1}});
    if (!st.ok()) Die("evactor ping-pong: reply: %s", st.ToString().c_str());
  }
};
static_assert(sizeof(PingMsg) == 16 && sizeof(PongMsg) == 16);

void SendPing() {
  EvactorPingPong& s = *g_pp;
  const Payload p = MakePayload(static_cast<uint64_t>(s.done_count));
  s.t_send = NowNs();
  absl::Status st = s.rt->SubmitTo(1, PingMsg{p});
  if (!st.ok()) Die("evactor ping-pong: ping: %s", st.ToString().c_str());
}

PingPongResult RunEvactorPingPong(const Config& cfg, absl::Duration poll) {
  const char* what = poll > absl::ZeroDuration() ? "evactor ping-pong (poll)" : "evactor ping-pong";
  evactor::MailboxOptions mo;
  mo.poll_before_sleep = poll;
  std::unique_ptr<Runtime> rt = StartRuntime(2, mo, what);
  EvactorPingPong s;
  s.rt = rt.get();
  s.total = cfg.pingpong + cfg.warmup;
  s.warmup = cfg.warmup;
  s.rtt_ns.reserve(cfg.pingpong);
  g_pp = &s;
  const uint64_t w0 = rt->shard(0).mailbox().counters().wakeups_written.load() +
                      rt->shard(1).mailbox().counters().wakeups_written.load();
  s.deadline = NowNs() + 20'000'000'000;  // 20 s at most per run
  absl::Status st = rt->SubmitTo(0, [] { SendPing(); });
  if (!st.ok()) Die("%s: start: %s", what, st.ToString().c_str());
  s.done.WaitOrDie(what);
  const uint64_t w1 = rt->shard(0).mailbox().counters().wakeups_written.load() +
                      rt->shard(1).mailbox().counters().wakeups_written.load();
  StopRuntime(rt, what);
  g_pp = nullptr;
  PingPongResult r;
  for (int64_t ns : s.rtt_ns) r.rtt_us.push_back(ns / 1e3);
  r.round_trips = static_cast<uint64_t>(s.done_count);
  // The start message (from the main thread) woke shard 0 once.
  r.wakeups = w1 - w0;
  if (r.rtt_us.empty()) Die("%s: no round trip measured", what);
  return r;
}

// Two plain threads: A writes B's eventfd and epoll_waits on its own; B does the
// opposite. The payload goes through a shared slot (relaxed atomics: the eventfd
// write/read pair orders it).
PingPongResult RunEventfdPingPong(const Config& cfg) {
  struct Side {
    int efd = -1;
    int ep = -1;
  };
  Side a, b;
  for (Side* s : {&a, &b}) {
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->efd < 0 || s->ep < 0) Die("eventfd/epoll_create1: %s", std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s->efd;
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &ev) != 0) Die("epoll_ctl: %s", std::strerror(errno));
  }
  std::atomic<uint64_t> slot_seq{0}, slot_value{0};
  std::atomic<bool> stop{false};
  auto wait_read = [](const Side& s, const char* who) {
    epoll_event ev;
    for (;;) {
      const int k = epoll_wait(s.ep, &ev, 1, 10'000);
      if (k == 1) break;
      if (k == 0) Die("eventfd ping-pong: %s waited 10 s", who);
      if (errno != EINTR) Die("epoll_wait: %s", std::strerror(errno));
    }
    uint64_t v;
    if (read(s.efd, &v, sizeof v) != sizeof v) Die("eventfd read: %s", std::strerror(errno));
  };
  const uint64_t one = 1;
  std::thread tb([&] {
    PinRole(1);
    for (;;) {
      wait_read(b, "B");
      if (stop.load(std::memory_order_relaxed)) return;
      slot_value.store(slot_value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      if (write(a.efd, &one, sizeof one) != sizeof one) Die("eventfd write: %s", std::strerror(errno));
    }
  });
  PingPongResult r;
  r.rtt_us.reserve(cfg.pingpong);
  const int total = cfg.pingpong + cfg.warmup;
  int i = 0;
  std::thread ta([&] {
    PinRole(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // B idle
    const int64_t deadline = NowNs() + 20'000'000'000;
    for (; i < total; ++i) {
      const Payload p = MakePayload(static_cast<uint64_t>(i));
      const int64_t t0 = NowNs();
      slot_seq.store(p.seq, std::memory_order_relaxed);
      slot_value.store(p.value, std::memory_order_relaxed);
      if (write(b.efd, &one, sizeof one) != sizeof one) Die("eventfd write: %s", std::strerror(errno));
      wait_read(a, "A");
      const int64_t t1 = NowNs();
      if (slot_seq.load(std::memory_order_relaxed) != p.seq ||
          slot_value.load(std::memory_order_relaxed) != p.value + 1) {
        Die("eventfd ping-pong: reply %d broken", i);
      }
      if (i >= cfg.warmup) r.rtt_us.push_back((t1 - t0) / 1e3);
      if (t1 > deadline) {
        ++i;
        break;
      }
    }
  });
  ta.join();
  stop.store(true, std::memory_order_relaxed);
  if (write(b.efd, &one, sizeof one) != sizeof one) Die("eventfd write: %s", std::strerror(errno));
  tb.join();
  for (Side* s : {&a, &b}) {
    close(s->efd);
    close(s->ep);
  }
  r.round_trips = static_cast<uint64_t>(i);
  r.wakeups = 2 * r.round_trips;
  if (r.rtt_us.empty()) Die("eventfd ping-pong: no round trip measured");
  return r;
}

// ---------------------------------------------------------------------------
// Part 3: fan-out / fan-in with SubmitTo.

struct EvactorFanout {
  Runtime* rt = nullptr;
  int shards = 0;
  int rounds = 0;
  int64_t deadline = 0;
  uint64_t round = 0;
  int replies = 0;
  uint64_t id_sum = 0;
  int64_t t0 = 0;
  int64_t t1 = 0;
  Done done;
};
EvactorFanout* g_fan = nullptr;

void StartFanoutRound();

struct FanReply {
  Payload p;  // {round, replying shard}
  void operator()() {
    EvactorFanout& s = *g_fan;
    if (p.seq != s.round) Die("fan-out: reply for round %" PRIu64 " in round %" PRIu64, p.seq, s.round);
    s.id_sum += p.value + 1;
    if (++s.replies < s.shards) return;
    const uint64_t n = static_cast<uint64_t>(s.shards);
    if (s.id_sum != n * (n + 1) / 2) Die("fan-out: round %" PRIu64 " got the wrong replies", s.round);
    ++s.round;
    const int64_t t = NowNs();
    if (s.round < static_cast<uint64_t>(s.rounds) && t < s.deadline) {
      StartFanoutRound();
    } else {
      s.t1 = t;
      s.done.Signal();
    }
  }
};

struct FanRequest {
  Payload p;  // {round, target shard}
  void operator()() {
    Shard* me = Shard::Current();
    if (me == nullptr || static_cast<uint64_t>(me->id()) != p.value) Die("fan-out: request on the wrong shard");
    absl::Status st = g_fan->rt->SubmitTo(0, FanReply{Payload{p.seq, p.value}});
    if (!st.ok()) Die("fan-out: reply: %s", st.ToString().c_str());
  }
};
static_assert(sizeof(FanRequest) == 16 && sizeof(FanReply) == 16);

void StartFanoutRound() {
  EvactorFanout& s = *g_fan;
  s.replies = 0;
  s.id_sum = 0;
  for (int i = 0; i < s.shards; ++i) {
    absl::Status st = s.rt->SubmitTo(i, FanRequest{Payload{s.round, static_cast<uint64_t>(i)}});
    if (!st.ok()) Die("fan-out: request: %s", st.ToString().c_str());
  }
}


struct FanoutResult {
  uint64_t rounds = 0;
  double seconds = 0;
  double per_s() const { return seconds > 0 ? static_cast<double>(rounds) / seconds : 0; }
};

FanoutResult RunEvactorFanout(const Config& cfg, int shards, absl::Duration poll) {
  const char* what = poll > absl::ZeroDuration() ? "evactor fan-out (poll)" : "evactor fan-out";
  evactor::MailboxOptions mo;
  mo.poll_before_sleep = poll;
  std::unique_ptr<Runtime> rt = StartRuntime(shards, mo, what);
  EvactorFanout s;
  s.rt = rt.get();
  s.shards = shards;
  s.rounds = cfg.fanout_rounds;
  g_fan = &s;
  const int64_t budget = static_cast<int64_t>(cfg.fanout_seconds * 1e9);
  absl::Status st = rt->SubmitTo(0, [budget] {
    g_fan->t0 = NowNs();
    g_fan->deadline = g_fan->t0 + budget;
    StartFanoutRound();
  });
  if (!st.ok()) Die("%s: start: %s", what, st.ToString().c_str());
  s.done.WaitOrDie(what);
  StopRuntime(rt, what);
  g_fan = nullptr;
  FanoutResult r;
  r.rounds = s.round;
  r.seconds = (s.t1 - s.t0) / 1e9;
  if (r.rounds == 0) Die("%s: no round completed", what);
  return r;
}

// ---- fan-out with actors and Ask --------------------------------------------------

// One per shard: answers a request with the round and its own shard.
class EchoActor : public evactor::Actor {
 public:
  explicit EchoActor(int id) : id_(id) {}
  Payload Handle(Payload p) {
    if (Shard::Current() == nullptr || Shard::Current()->id() != id_) {
      Die("fan-out ask: actor %d runs on the wrong shard", id_);
    }
    return Payload{p.seq, static_cast<uint64_t>(id_)};
  }

 private:
  int id_;
};

struct AskFanout {
  std::vector<evactor::ActorRef<EchoActor>> refs;
  int rounds = 0;
  int64_t deadline = 0;
  uint64_t round = 0;
  size_t replies = 0;
  uint64_t id_sum = 0;
  int64_t t0 = 0;
  int64_t t1 = 0;
  Done done;
};
AskFanout* g_ask = nullptr;

void StartAskRound();

void OnAskReply(absl::StatusOr<Payload> v) {
  AskFanout& s = *g_ask;
  if (!v.ok()) Die("fan-out ask: %s", v.status().ToString().c_str());
  if (v->seq != s.round) Die("fan-out ask: reply for round %" PRIu64 " in round %" PRIu64, v->seq, s.round);
  s.id_sum += v->value + 1;
  if (++s.replies < s.refs.size()) return;
  const uint64_t n = s.refs.size();
  if (s.id_sum != n * (n + 1) / 2) Die("fan-out ask: round %" PRIu64 " got the wrong replies", s.round);
  ++s.round;
  const int64_t t = NowNs();
  if (s.round < static_cast<uint64_t>(s.rounds) && t < s.deadline) {
    StartAskRound();
  } else {
    s.t1 = t;
    s.done.Signal();
  }
}

void StartAskRound() {
  AskFanout& s = *g_ask;
  s.replies = 0;
  s.id_sum = 0;
  for (size_t i = 0; i < s.refs.size(); ++i) {
    evactor::Future<Payload> f =
        s.refs[i].Ask(&EchoActor::Handle, Payload{s.round, static_cast<uint64_t>(i)});
    f.Then([](absl::StatusOr<Payload> v) { OnAskReply(std::move(v)); });
  }
}

FanoutResult RunEvactorAskFanout(const Config& cfg, int shards, absl::Duration poll) {
  const char* what = poll > absl::ZeroDuration() ? "evactor fan-out (Ask, poll)" : "evactor fan-out (Ask)";
  evactor::MailboxOptions mo;
  mo.poll_before_sleep = poll;
  std::unique_ptr<Runtime> rt = StartRuntime(shards, mo, what);
  AskFanout s;
  s.rounds = cfg.fanout_rounds;
  for (int i = 0; i < shards; ++i) {
    auto ref = rt->Spawn<EchoActor>({.shard = i}, i);
    if (!ref.ok()) Die("%s: Spawn: %s", what, ref.status().ToString().c_str());
    s.refs.push_back(*ref);
  }
  g_ask = &s;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // actors built, shards idle
  const int64_t budget = static_cast<int64_t>(cfg.fanout_seconds * 1e9);
  absl::Status st = rt->SubmitTo(0, [budget] {
    g_ask->t0 = NowNs();
    g_ask->deadline = g_ask->t0 + budget;
    StartAskRound();
  });
  if (!st.ok()) Die("%s: start: %s", what, st.ToString().c_str());
  s.done.WaitOrDie(what);
  StopRuntime(rt, what);
  g_ask = nullptr;
  FanoutResult r;
  r.rounds = s.round;
  r.seconds = (s.t1 - s.t0) / 1e9;
  if (r.rounds == 0) Die("%s: no round completed", what);
  return r;
}

// ---------------------------------------------------------------------------
// Driver.

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: mailbox_bench [--quick] [--rounds=R] [--messages=M]\n"
               "  [--libevent_messages=N] [--libevent_seconds=S]\n"
               "  [--pingpong=N] [--pingpong_rounds=R] [--poll_us=U]\n"
               "  [--fanout_shards=N] [--fanout_rounds=N] [--fanout_seconds=S]\n"
               "  [--pin=cross|same|none]\n"
               "  analysis knobs for the evactor one-way runs (defaults: the runtime's):\n"
               "  [--oneway_poll_us=U] [--oneway_ring=N] [--oneway_batch=N] [--sender_chunk=N]\n"
               "  [--only=NAME[,NAME...]]   names: oneway/evactor, oneway/evactor_24b,\n"
               "      oneway/mutex, oneway/libevent, pingpong/evactor, pingpong/evactor_poll,\n"
               "      pingpong/eventfd, fanout/evactor_ask, fanout/evactor_submit,\n"
               "      fanout/evactor_ask_poll, fanout/evactor_submit_poll,\n"
               "      oneway/evactor_ring4m; a prefix selects a group,\n"
               "      a trailing '$' one name exactly\n");
  std::exit(1);
}

Config ParseArgs(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--quick") cfg.quick = true;
  }
  if (cfg.quick) {
    cfg.rounds = 3;
    cfg.messages = 4'000'000;  // shorter runs are dominated by the receiver's first wake-ups
    cfg.libevent_messages = 300'000;
    cfg.libevent_seconds = 0.3;
    cfg.pingpong = 2'000;
    cfg.pingpong_rounds = 2;
    cfg.warmup = 100;
    cfg.fanout_rounds = 50'000;
    cfg.fanout_seconds = 0.3;
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view key) -> std::optional<std::string> {
      if (a.substr(0, key.size()) == key && a.size() > key.size() && a[key.size()] == '=') {
        return std::string(a.substr(key.size() + 1));
      }
      return std::nullopt;
    };
    if (a == "--quick") {
    } else if (auto v = value("--rounds")) {
      cfg.rounds = std::max(1, std::atoi(v->c_str()));
    } else if (auto v = value("--messages")) {
      cfg.messages = std::max<uint64_t>(1, std::strtoull(v->c_str(), nullptr, 10));
    } else if (auto v = value("--libevent_messages")) {
      cfg.libevent_messages = std::max<uint64_t>(1, std::strtoull(v->c_str(), nullptr, 10));
    } else if (auto v = value("--libevent_seconds")) {
      cfg.libevent_seconds = std::atof(v->c_str());
    } else if (auto v = value("--pingpong")) {
      cfg.pingpong = std::max(1, std::atoi(v->c_str()));
    } else if (auto v = value("--pingpong_rounds")) {
      cfg.pingpong_rounds = std::max(1, std::atoi(v->c_str()));
    } else if (auto v = value("--warmup")) {
      cfg.warmup = std::max(0, std::atoi(v->c_str()));
    } else if (auto v = value("--poll_us")) {
      cfg.poll_us = std::max(0, std::atoi(v->c_str()));
    } else if (auto v = value("--fanout_shards")) {
      cfg.fanout_shards = std::max(0, std::atoi(v->c_str()));
    } else if (auto v = value("--fanout_rounds")) {
      cfg.fanout_rounds = std::max(1, std::atoi(v->c_str()));
    } else if (auto v = value("--fanout_seconds")) {
      cfg.fanout_seconds = std::atof(v->c_str());
    } else if (auto v = value("--pin")) {
      if (*v == "cross") {
        g_pin = PinMode::kCross;
      } else if (*v == "same") {
        g_pin = PinMode::kSame;
      } else if (*v == "none") {
        g_pin = PinMode::kNone;
      } else {
        Usage();
      }
    } else if (auto v = value("--oneway_poll_us")) {
      cfg.oneway_poll_us = std::max(0, std::atoi(v->c_str()));
    } else if (auto v = value("--oneway_ring")) {
      cfg.oneway_ring = std::strtoull(v->c_str(), nullptr, 10);
    } else if (auto v = value("--oneway_batch")) {
      cfg.oneway_batch = std::strtoull(v->c_str(), nullptr, 10);
    } else if (auto v = value("--sender_chunk")) {
      cfg.sender_chunk = std::strtoull(v->c_str(), nullptr, 10);
    } else if (auto v = value("--only")) {
      cfg.only = *v;
    } else {
      Usage();
    }
  }
  if (cfg.fanout_shards == 0) {
    cfg.fanout_shards = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  }
  return cfg;
}

struct OneWayStats {
  std::vector<OneWayResult> runs;
  double MedianPerS() const {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(r.per_s());
    return Median(v);
  }
  double MinPerS() const {
    double m = 0;
    for (const auto& r : runs) m = (m == 0 || r.per_s() < m) ? r.per_s() : m;
    return m;
  }
  double MaxPerS() const {
    double m = 0;
    for (const auto& r : runs) m = std::max(m, r.per_s());
    return m;
  }
};

struct PingPongStats {
  std::vector<double> rtt_us;  // pooled
  uint64_t wakeups = 0;
  uint64_t round_trips = 0;
  bool sorted = false;
  void Add(const PingPongResult& r) {
    rtt_us.insert(rtt_us.end(), r.rtt_us.begin(), r.rtt_us.end());
    wakeups += r.wakeups;
    round_trips += r.round_trips;
  }
  double P(double q) {
    if (!sorted) std::sort(rtt_us.begin(), rtt_us.end());
    sorted = true;
    return Percentile(rtt_us, q);
  }
};

int Run(int argc, char** argv) {
  InitCpus();
  Config cfg = ParseArgs(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (evthread_use_pthreads() != 0) Die("evthread_use_pthreads failed");

  std::printf("mailbox_bench: libevent %s, %u CPUs%s\n", event_get_version(),
              std::thread::hardware_concurrency(), cfg.quick ? " [--quick]" : "");
  std::printf("one-way: %" PRIu64 " messages x %d rounds (libevent: at most %" PRIu64
              " messages or %.1f s); ping-pong: %d round trips x %d rounds (+%d warm-up); "
              "poll window %d us; fan-out: %d shards, %.1f s or %d rounds\n",
              cfg.messages, cfg.rounds, cfg.libevent_messages, cfg.libevent_seconds,
              cfg.pingpong, cfg.pingpong_rounds, cfg.warmup, cfg.poll_us, cfg.fanout_shards,
              cfg.fanout_seconds, cfg.fanout_rounds);
  std::printf("thread placement: %s; %zu CPUs usable\n", PinName(), g_cpus.size());
  if (cfg.oneway_poll_us != 0 || cfg.sender_chunk != 0 || cfg.oneway_ring != 0 ||
      cfg.oneway_batch != 0) {
    const evactor::MailboxOptions defaults;
    std::printf("evactor one-way [non-default]: poll_before_sleep %d us, ring %zu (0: auto), batch %zu, "
                "sender yields every %" PRIu64 " messages (0: only when full)\n",
                cfg.oneway_poll_us,
                cfg.oneway_ring != 0 ? static_cast<size_t>(cfg.oneway_ring) : defaults.shard_ring_bytes,
                cfg.oneway_batch != 0 ? static_cast<size_t>(cfg.oneway_batch) : defaults.batch,
                cfg.sender_chunk);
  }

  // ---- Part 1.
  // evactor_24b and evactor_ring4m are for the analysis (no speedup line): the same
  // sender with a closure that is one pointer larger, and with 16x the ring capacity.
  const std::vector<std::string> oneway_names = {"oneway/evactor", "oneway/evactor_24b",
                                                 "oneway/evactor_ring4m", "oneway/mutex",
                                                 "oneway/libevent"};
  std::map<std::string, OneWayStats> oneway;
  evactor::MailboxOptions oneway_mailbox;
  oneway_mailbox.poll_before_sleep = absl::Microseconds(cfg.oneway_poll_us);
  if (cfg.oneway_ring != 0) oneway_mailbox.shard_ring_bytes = cfg.oneway_ring;
  if (cfg.oneway_batch != 0) oneway_mailbox.batch = cfg.oneway_batch;
  for (int round = 0; round < cfg.rounds; ++round) {
    for (size_t k = 0; k < oneway_names.size(); ++k) {
      const std::string& name = oneway_names[(k + round) % oneway_names.size()];
      if (!Selected(cfg, name)) continue;
      OneWayResult r;
      if (name == "oneway/evactor") {
        r = RunEvactorOneWay(cfg.messages, /*wide=*/false, oneway_mailbox, cfg.sender_chunk);
      } else if (name == "oneway/evactor_24b") {
        r = RunEvactorOneWay(cfg.messages, /*wide=*/true, oneway_mailbox, cfg.sender_chunk);
      } else if (name == "oneway/evactor_ring4m") {
        evactor::MailboxOptions big = oneway_mailbox;
        big.shard_ring_bytes = size_t{4} << 20;
        r = RunEvactorOneWay(cfg.messages, /*wide=*/false, big, cfg.sender_chunk);
      } else if (name == "oneway/mutex") {
        r = RunMutexOneWay(cfg.messages);
      } else {
        r = RunLibeventOneWay(cfg);
      }
      oneway[name].runs.push_back(r);
      std::printf("  round %d %-20s %8.2f M msgs/s", round + 1, name.c_str(), r.per_s() / 1e6);
      if (name.rfind("oneway/evactor", 0) == 0) {
        std::printf("  (eventfd writes %" PRIu64 ", receiver waits %" PRIu64 ", ring full %" PRIu64
                    ", receiver iterations %" PRIu64 ")",
                    r.wakeups, r.receiver_waits, r.full, r.receiver_iterations);
      }
      if (name == "oneway/libevent") std::printf("  (%" PRIu64 " messages)", r.messages);
      std::printf("\n");
    }
  }

  // ---- Part 2.
  const std::vector<std::string> pp_names = {"pingpong/evactor", "pingpong/eventfd",
                                             "pingpong/evactor_poll"};
  std::map<std::string, PingPongStats> pp;
  for (int round = 0; round < cfg.pingpong_rounds; ++round) {
    for (size_t k = 0; k < pp_names.size(); ++k) {
      const std::string& name = pp_names[(k + round) % pp_names.size()];
      if (!Selected(cfg, name)) continue;
      PingPongResult r;
      if (name == "pingpong/evactor") {
        r = RunEvactorPingPong(cfg, absl::ZeroDuration());
      } else if (name == "pingpong/evactor_poll") {
        r = RunEvactorPingPong(cfg, absl::Microseconds(cfg.poll_us));
      } else {
        r = RunEventfdPingPong(cfg);
      }
      pp[name].Add(r);
      std::vector<double> v = r.rtt_us;
      std::sort(v.begin(), v.end());
      std::printf("  round %d %-22s median %7.2f us  p99 %8.2f us  eventfd writes/round trip %.2f\n",
                  round + 1, name.c_str(), Percentile(v, 0.5), Percentile(v, 0.99),
                  static_cast<double>(r.wakeups) / static_cast<double>(r.round_trips));
    }
  }

  // ---- Part 3. fanout/evactor_submit* and *_poll are for the analysis: what Ask adds,
  // and what the poll window does.
  const std::vector<std::string> fan_names = {"fanout/evactor_ask", "fanout/evactor_submit",
                                              "fanout/evactor_ask_poll",
                                              "fanout/evactor_submit_poll"};
  std::map<std::string, std::vector<FanoutResult>> fan;
  for (int round = 0; round < std::max(1, cfg.pingpong_rounds); ++round) {
    for (size_t k = 0; k < fan_names.size(); ++k) {
      const std::string& name = fan_names[(k + round) % fan_names.size()];
      if (!Selected(cfg, name)) continue;
      const bool poll = name.size() > 5 && name.substr(name.size() - 5) == "_poll";
      if (name.rfind("fanout/evactor_ask", 0) == 0) {
        fan[name].push_back(RunEvactorAskFanout(
            cfg, cfg.fanout_shards, poll ? absl::Microseconds(cfg.poll_us) : absl::ZeroDuration()));
      } else {
        fan[name].push_back(RunEvactorFanout(
            cfg, cfg.fanout_shards, poll ? absl::Microseconds(cfg.poll_us) : absl::ZeroDuration()));
      }
      std::printf("  round %d %-26s %9.0f rounds/s (%" PRIu64 " rounds)\n", round + 1,
                  name.c_str(), fan[name].back().per_s(), fan[name].back().rounds);
    }
  }

  // ---- Table.
  std::printf("\n%-44s %14s %12s %12s\n", "one-way, shard 0 -> shard 1 (16-byte payload)",
              "M msgs/s (med)", "min", "max");
  const std::map<std::string, std::string> labels = {
      {"oneway/evactor", "evactor TrySubmitTo (16 B closure, inline)"},
      {"oneway/evactor_24b", "evactor TrySubmitTo (24 B closure)"},
      {"oneway/evactor_ring4m", "evactor TrySubmitTo (16 B, 4 MiB ring)"},
      {"oneway/mutex", "vector-swap queue (mutex + condvar)"},
      {"oneway/libevent", "libevent event_base_once cross-thread"},
      {"pingpong/evactor", "evactor SubmitTo, idle shards"},
      {"pingpong/evactor_poll", "evactor SubmitTo, poll window"},
      {"pingpong/eventfd", "two threads, eventfd + epoll_wait"},
  };
  for (const std::string& name : oneway_names) {
    auto it = oneway.find(name);
    if (it == oneway.end()) continue;
    const OneWayStats& st = it->second;
    std::printf("%-44s %14.2f %12.2f %12.2f   (%.1f ns/msg)\n", labels.at(name).c_str(),
                st.MedianPerS() / 1e6, st.MinPerS() / 1e6, st.MaxPerS() / 1e6,
                1e9 / st.MedianPerS());
  }
  uint64_t writes = 0, waits = 0, full = 0, yields = 0, msgs = 0;
  bool writes_ok = true;
  if (auto it = oneway.find("oneway/evactor"); it != oneway.end()) {
    for (const auto& r : it->second.runs) {
      writes += r.wakeups;
      waits += r.receiver_waits;
      full += r.full;
      yields += r.sender_yields;
      msgs += r.messages;
      if (r.wakeups > r.receiver_waits) writes_ok = false;
    }
    std::printf("  evactor (16 B), all rounds: %" PRIu64 " messages, %" PRIu64
                " eventfd writes to shard 1, %" PRIu64 " blocking waits of shard 1, %" PRIu64
                " sends refused (ring full), %" PRIu64 " sender yields\n",
                msgs, writes, waits, full, yields);
  }

  const std::string pp_title = "ping-pong round trip (" + std::to_string(cfg.poll_us) + " us poll window)";
  std::printf("\n%-44s %10s %10s %10s %10s %14s\n", pp_title.c_str(), "p50 us", "p90 us",
              "p99 us", "max us", "efd writes/rt");
  for (const std::string& name : pp_names) {
    auto it = pp.find(name);
    if (it == pp.end()) continue;
    PingPongStats& st = it->second;
    std::printf("%-44s %10.2f %10.2f %10.2f %10.2f %14.2f\n", labels.at(name).c_str(), st.P(0.5),
                st.P(0.9), st.P(0.99), st.P(1.0),
                static_cast<double>(st.wakeups) / static_cast<double>(st.round_trips));
  }

  std::map<std::string, double> fan_median;
  if (!fan.empty()) {
    std::printf("\n%-44s %14s\n",
                ("fan-out/fan-in over " + std::to_string(cfg.fanout_shards) + " shards").c_str(),
                "rounds/s (med)");
    const std::map<std::string, std::string> fan_labels = {
        {"fanout/evactor_ask", "evactor actors, Ask + Future::Then"},
        {"fanout/evactor_submit", "evactor SubmitTo + SubmitTo reply"},
        {"fanout/evactor_ask_poll", "evactor actors, Ask + Then, poll window"},
        {"fanout/evactor_submit_poll", "evactor SubmitTo + reply, poll window"},
    };
    for (const std::string& name : fan_names) {
      auto it = fan.find(name);
      if (it == fan.end()) continue;
      std::vector<double> v;
      for (const auto& f : it->second) v.push_back(f.per_s());
      const double m = Median(v);
      fan_median[name] = m;
      std::printf("%-44s %14.0f   (%.2f us per round)\n", fan_labels.at(name).c_str(), m,
                  1e6 / m);
    }
  }

  if (g_shutdown_stuck != 0) {
    std::printf("\nnote: %d runtime(s) did not stop after Shutdown() until their mailboxes were "
                "woken again (lost shutdown wake-up; see StopRuntime)\n",
                g_shutdown_stuck);
  }

  // ---- Goals.
  std::printf("\ngoals:\n");
  auto goal = [](const char* text, bool met, const std::string& got) {
    std::printf("  [%s] %-52s %s\n", met ? "met" : "NOT met", text, got.c_str());
  };
  char buf[160];
  const bool have_ev = oneway.count("oneway/evactor") != 0;
  const double ev_rate = have_ev ? oneway["oneway/evactor"].MedianPerS() : 0;
  if (have_ev) {
    std::snprintf(buf, sizeof buf, "%.1f M msgs/s", ev_rate / 1e6);
    goal("one-way >= 100M msgs/s between two shards", ev_rate >= 1e8, buf);
    if (oneway.count("oneway/mutex")) {
      const double x = ev_rate / oneway["oneway/mutex"].MedianPerS();
      std::snprintf(buf, sizeof buf, "%.2fx", x);
      goal("one-way >= 2x the vector-swap queue", x >= 2, buf);
    }
    if (oneway.count("oneway/libevent")) {
      const double x = ev_rate / oneway["oneway/libevent"].MedianPerS();
      std::snprintf(buf, sizeof buf, "%.2fx", x);
      goal("one-way >= 20x libevent's cross-thread posting", x >= 20, buf);
    }
    std::snprintf(buf, sizeof buf, "%" PRIu64 " writes, %" PRIu64 " receiver waits", writes, waits);
    goal("no eventfd write while the receiver is awake", writes_ok, buf);
  }
  if (pp.count("pingpong/evactor") && pp.count("pingpong/eventfd")) {
    const double x = pp["pingpong/evactor"].P(0.5) / pp["pingpong/eventfd"].P(0.5);
    std::snprintf(buf, sizeof buf, "%.2fx the eventfd pair's median", x);
    goal("idle ping-pong within 1.2x of the bare eventfd pair", x <= 1.2, buf);
  }
  if (pp.count("pingpong/evactor_poll")) {
    const double m = pp["pingpong/evactor_poll"].P(0.5);
    std::snprintf(buf, sizeof buf, "median %.2f us", m);
    goal("ping-pong under 5 us with the poll window", m < 5, buf);
  }

  // ---- Ratios: peer's cost / evactor's cost.
  std::printf("\n");
  if (have_ev && oneway.count("oneway/mutex")) {
    std::printf("speedup oneway_vs_mutex %.3f\n", ev_rate / oneway["oneway/mutex"].MedianPerS());
  }
  if (have_ev && oneway.count("oneway/libevent")) {
    std::printf("speedup oneway_vs_libevent %.3f\n",
                ev_rate / oneway["oneway/libevent"].MedianPerS());
  }
  if (pp.count("pingpong/evactor") && pp.count("pingpong/eventfd")) {
    std::printf("speedup pingpong_vs_eventfd %.3f\n",
                pp["pingpong/eventfd"].P(0.5) / pp["pingpong/evactor"].P(0.5));
  }
  if (pp.count("pingpong/evactor_poll") && pp.count("pingpong/eventfd")) {
    std::printf("speedup pingpong_polling_vs_eventfd %.3f\n",
                pp["pingpong/eventfd"].P(0.5) / pp["pingpong/evactor_poll"].P(0.5));
  }
  // Not ratios (there is no peer): fan-out/fan-in rounds per second over all shards,
  // with actors' Ask, and with bare SubmitTo and a SubmitTo reply.
  if (fan_median.count("fanout/evactor_ask")) {
    std::printf("fanout_ask %.0f\n", fan_median["fanout/evactor_ask"]);
  }
  if (fan_median.count("fanout/evactor_submit")) {
    std::printf("fanout_submit %.0f\n", fan_median["fanout/evactor_submit"]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  evactor::bench::g_die_name = "mailbox_bench";
  return Run(argc, argv);
}
