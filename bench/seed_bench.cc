// seed_bench — evactor's event loop against libevent 2.1 and a hand-written epoll floor.
//
//   bazel run --config=opt //bench:seed_bench             # full run (25 rounds)
//   bazel run --config=opt //bench:seed_bench -- --quick  # a smoke run, under a minute
//
// 1. The chain benchmark from libevent's homepage (libevent's test/bench.c): N
//    non-blocking AF_UNIX socketpairs, a persistent read watcher on each; a round
//    seeds A chains by writing one byte to pairs 0, N/A, 2N/A, ...; every read
//    callback reads one byte and, until W writes have happened, writes one byte to the
//    next pair. The round ends after A+W reads. Only the dispatch is timed (repeated
//    non-blocking iterations, as bench.c does); registration and seeding are not.
//    Run for evactor and libevent on epoll, poll and select (select only while every
//    fd < FD_SETSIZE), and for a floor: epoll_wait + recv + send with no abstraction.
// 2. The same chain with one-shot watchers that each callback re-arms (epoll only).
//    The floor for it is what an ideal one-shot loop does: it keeps the kernel
//    registration (the callback re-arms before the loop waits again), so it makes the
//    same system calls as the persistent floor and only tracks the armed state.
// 3. Timers: 1M timers with random deadlines, every other one cancelled, the rest
//    fired; timed add, cancel and fire (the wait until the deadlines pass is not
//    timed). Plus a common-timeout variant (all timers of one duration).
//
// Implementations are interleaved within each N (the order rotates every round) so
// that drift on this shared machine hits them alike. Every round checks that exactly
// A+W bytes were read (timers: that exactly the uncancelled ones fired), and aborts
// otherwise, so a broken implementation cannot look fast.
//
// The closing lines read `speedup <name> <x>` with x = peer's time / evactor's time
// (x > 1: evactor is faster). Every peer is measured in the same run.
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "runtime/events.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

namespace {

// ---------------------------------------------------------------------------
// Small utilities.

using evactor::bench::Die;
using evactor::bench::Median;
using evactor::bench::NowNs;
using evactor::bench::SleepNs;

// A stuck implementation must not hang the benchmark forever (generous, so that a
// run under valgrind still passes).
constexpr int64_t kStuckNs = int64_t{300} * 1'000'000'000;

struct Config {
  bool quick = false;
  int rounds = 25;
  int timer_rounds = 5;
  int active = 100;
  int writes = 1000;
  std::vector<int> ns = {100, 1000, 5000, 9000, 50000};
  int64_t timers = 1'000'000;
  int64_t timer_spread_us = 50'000;  // deadlines uniform in [0, spread]
  int64_t common_timeout_us = 20'000;
  bool chain = true;
  bool timer_bench = true;
  // Empty: all. Else only the variants it names (see Selected) — for profiling.
  std::string only;
};

// `name`: "evactor epoll", "libevent poll", "floor epoll one-shot", ... or, for the
// timers, just the implementation. --only=X keeps the names equal to X or starting
// with X followed by a space ("evactor", "evactor epoll", "evactor epoll one-shot");
// a trailing '$' asks for X exactly ("evactor epoll$": not its one-shot variant).
bool Selected(const Config& cfg, std::string_view name) {
  if (cfg.only.empty()) return true;
  std::string_view want = cfg.only;
  if (name.find(' ') == std::string_view::npos) {
    want = want.substr(0, std::min(want.find(' '), want.find('$')));
  }
  if (!want.empty() && want.back() == '$') return name == want.substr(0, want.size() - 1);
  return name == want ||
         (name.size() > want.size() && name.substr(0, want.size()) == want &&
          name[want.size()] == ' ');
}

// ---------------------------------------------------------------------------
// The socketpairs and the chain, shared by every implementation.

struct Pairs {
  std::vector<int> rd;  // watched for reading
  std::vector<int> wr;  // written to
  int max_fd = -1;

  void Open(int n) {
    rd.resize(n);
    wr.resize(n);
    for (int i = 0; i < n; ++i) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        Die("socketpair #%d: %s", i, std::strerror(errno));
      }
      rd[i] = sv[0];
      wr[i] = sv[1];
      max_fd = std::max({max_fd, sv[0], sv[1]});
    }
  }
  void Close() {
    for (size_t i = 0; i < rd.size(); ++i) {
      close(rd[i]);
      close(wr[i]);
    }
    rd.clear();
    wr.clear();
    max_fd = -1;
  }
  int size() const { return static_cast<int>(rd.size()); }
};

// The state of one round, and the read callback's body (bench.c's read_cb), the same
// for every implementation.
struct Chain {
  const int* rd = nullptr;
  const int* wr = nullptr;
  int n = 0;
  int64_t count = 0;   // bytes read
  int64_t writes = 0;  // writes still to make
  int64_t failures = 0;
  int64_t empty_reads = 0;  // callbacks that found nothing to read

  explicit Chain(const Pairs& p) : rd(p.rd.data()), wr(p.wr.data()), n(p.size()) {}

  void OnRead(int i) {
    unsigned char ch;
    ssize_t r = recv(rd[i], &ch, 1, 0);
    if (r > 0) {
      count += r;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ++empty_reads;
    } else {
      ++failures;
    }
    if (writes > 0) {
      int w = i + 1;
      if (w == n) w = 0;
      if (send(wr[w], "e", 1, 0) != 1) ++failures;
      --writes;
    }
  }

  // Seeds `active` chains; resets the counters. Not timed.
  void Seed(int active, int total_writes) {
    int space = n / active;
    for (int i = 0; i < active; ++i) {
      if (send(wr[i * space], "e", 1, 0) != 1) Die("seed send: %s", std::strerror(errno));
    }
    count = 0;
    writes = total_writes;
    failures = 0;
    empty_reads = 0;
  }
};

struct RoundResult {
  double us = 0;
  int64_t iterations = 0;      // loop iterations (non-blocking dispatch calls)
  int64_t backend_changes = 0;  // evactor only: kernel registration changes while timed
  int64_t empty_reads = 0;
};

// Runs `step` (one non-blocking iteration) until the chain has read `target` bytes;
// checks the round.
template <typename Step>
RoundResult TimeDispatch(Chain& c, int64_t target, const char* what, Step&& step) {
  RoundResult r;
  int64_t t0 = NowNs();
  int64_t iters = 0;
  while (c.count < target) {
    step();
    ++iters;
    if ((iters & 1023) == 0 && NowNs() - t0 > kStuckNs) {
      Die("%s: stuck after %" PRId64 " iterations: %" PRId64 " of %" PRId64 " reads", what,
          iters, c.count, target);
    }
  }
  int64_t t1 = NowNs();
  if (c.count != target || c.writes != 0 || c.failures != 0) {
    Die("%s: round broken: reads %" PRId64 " (want %" PRId64 "), writes left %" PRId64
        ", failures %" PRId64,
        what, c.count, target, c.writes, c.failures);
  }
  r.us = (t1 - t0) / 1e3;
  r.iterations = iters;
  r.empty_reads = c.empty_reads;
  return r;
}

// ---------------------------------------------------------------------------
// evactor.

std::unique_ptr<evactor::Loop> NewEvactorLoop(evactor::BackendKind kind) {
  evactor::LoopOptions opts;
  opts.backend = kind;
  opts.ignore_env = true;
  auto loop = evactor::Loop::Create(opts);
  if (!loop.ok()) {
    Die("evactor Loop::Create(%s): %s", std::string(evactor::BackendName(kind)).c_str(),
        loop.status().ToString().c_str());
  }
  if ((*loop)->backend() != kind) {
    Die("evactor loop runs %s, asked for %s", std::string((*loop)->backend_name()).c_str(),
        std::string(evactor::BackendName(kind)).c_str());
  }
  return std::move(*loop);
}

RoundResult EvactorChainRound(evactor::BackendKind kind, bool oneshot, const Pairs& p,
                              const Config& cfg) {
  const int n = p.size();
  std::string what = "evactor " + std::string(evactor::BackendName(kind)) +
                     (oneshot ? " one-shot" : "") + " n=" + std::to_string(n);
  std::unique_ptr<evactor::Loop> loop = NewEvactorLoop(kind);
  Chain c(p);
  {
    // One-shot callbacks reach their watcher through a slot, as libevent's do (a
    // capture of one pointer stays in the callback's inline storage).
    struct Slot {
      Chain* chain;
      std::optional<evactor::IoWatcher>* watcher;
      int idx;
    };
    std::unique_ptr<Slot[]> slots(oneshot ? new Slot[n] : nullptr);
    // Contiguous, as bench.c's array of struct event. Destroyed first.
    std::unique_ptr<std::optional<evactor::IoWatcher>[]> w(
        new std::optional<evactor::IoWatcher>[n]);
    evactor::IoOptions opts;
    opts.persistent = !oneshot;
    for (int i = 0; i < n; ++i) {
      if (oneshot) {
        slots[i] = Slot{&c, &w[i], i};
        w[i].emplace(
            *loop, p.rd[i], evactor::kRead,
            [s = &slots[i]](uint32_t) {
              s->chain->OnRead(s->idx);
              if (!(*s->watcher)->Start().ok()) ++s->chain->failures;
            },
            opts);
      } else {
        w[i].emplace(
            *loop, p.rd[i], evactor::kRead, [&c, i](uint32_t) { c.OnRead(i); }, opts);
      }
      absl::Status s = w[i]->Start();
      if (!s.ok()) Die("%s: Start(fd %d): %s", what.c_str(), p.rd[i], s.ToString().c_str());
    }
    // Let registrations reach the kernel before the clock starts (bench.c does the same).
    if (auto r = loop->RunNonBlocking(); !r.ok()) {
      Die("%s: RunNonBlocking: %s", what.c_str(), r.status().ToString().c_str());
    }
    c.Seed(cfg.active, cfg.writes);
    const uint64_t changes0 = loop->stats().backend_changes;
    evactor::Loop* l = loop.get();
    RoundResult r = TimeDispatch(c, cfg.active + cfg.writes, what.c_str(), [l, &what] {
      auto res = l->RunNonBlocking();
      if (!res.ok()) Die("%s: RunNonBlocking: %s", what.c_str(), res.status().ToString().c_str());
    });
    r.backend_changes = static_cast<int64_t>(loop->stats().backend_changes - changes0);
    return r;  // the watchers go (end of this block) before the loop
  }
}

// ---------------------------------------------------------------------------
// libevent 2.1.

event_base* NewLibeventBase(const char* method) {
  event_config* cfg = event_config_new();
  if (cfg == nullptr) Die("event_config_new failed");
  for (const char* m : {"epoll", "poll", "select"}) {
    if (std::strcmp(m, method) != 0) event_config_avoid_method(cfg, m);
  }
  event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (base == nullptr) Die("libevent: no base with method %s", method);
  if (std::strcmp(event_base_get_method(base), method) != 0) {
    Die("libevent base runs %s, asked for %s", event_base_get_method(base), method);
  }
  return base;
}

struct LeSlot {
  Chain* chain;
  event* ev;
  int idx;
};

void LeReadPersistent(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<LeSlot*>(arg);
  s->chain->OnRead(s->idx);
}

void LeReadOneShot(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<LeSlot*>(arg);
  s->chain->OnRead(s->idx);
  if (event_add(s->ev, nullptr) != 0) ++s->chain->failures;
}

RoundResult LibeventChainRound(const char* method, bool oneshot, const Pairs& p,
                               const Config& cfg) {
  const int n = p.size();
  std::string what = std::string("libevent ") + method + (oneshot ? " one-shot" : "") +
                     " n=" + std::to_string(n);
  event_base* base = NewLibeventBase(method);
  Chain c(p);
  std::unique_ptr<event[]> events(new event[n]());
  std::unique_ptr<LeSlot[]> slots(new LeSlot[n]);
  for (int i = 0; i < n; ++i) {
    slots[i] = LeSlot{&c, &events[i], i};
    short what_ev = oneshot ? EV_READ : EV_READ | EV_PERSIST;
    if (event_assign(&events[i], base, p.rd[i], what_ev,
                     oneshot ? LeReadOneShot : LeReadPersistent, &slots[i]) != 0 ||
        event_add(&events[i], nullptr) != 0) {
      Die("%s: event_assign/event_add fd %d failed", what.c_str(), p.rd[i]);
    }
  }
  if (event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0) Die("%s: loop", what.c_str());
  c.Seed(cfg.active, cfg.writes);
  RoundResult r = TimeDispatch(c, cfg.active + cfg.writes, what.c_str(), [base, &what] {
    if (event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0) {
      Die("%s: event_base_loop failed", what.c_str());
    }
  });
  for (int i = 0; i < n; ++i) event_del(&events[i]);
  event_base_free(base);
  return r;
}

// ---------------------------------------------------------------------------
// The floor: epoll with no abstraction at all.

constexpr int kFloorMaxEvents = 256;

RoundResult FloorChainRound(bool oneshot, const Pairs& p, const Config& cfg) {
  const int n = p.size();
  std::string what = std::string("floor epoll") + (oneshot ? " one-shot" : "") +
                     " n=" + std::to_string(n);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) Die("epoll_create1: %s", std::strerror(errno));
  for (int i = 0; i < n; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p.rd[i], &ev) != 0) {
      Die("epoll_ctl ADD: %s", std::strerror(errno));
    }
  }
  Chain c(p);
  c.Seed(cfg.active, cfg.writes);
  epoll_event evs[kFloorMaxEvents];
  RoundResult r;
  if (!oneshot) {
    r = TimeDispatch(c, cfg.active + cfg.writes, what.c_str(), [&] {
      int k = epoll_wait(ep, evs, kFloorMaxEvents, 0);
      if (k < 0 && errno != EINTR) Die("epoll_wait: %s", std::strerror(errno));
      for (int j = 0; j < k; ++j) c.OnRead(static_cast<int>(evs[j].data.u32));
    });
  } else {
    // A one-shot watcher is disarmed before its callback and re-armed by it; an ideal
    // loop notices the re-arm before it next waits and leaves the kernel alone. Only a
    // watcher left disarmed would cost an epoll_ctl (never here).
    std::vector<uint8_t> armed(n, 1);
    r = TimeDispatch(c, cfg.active + cfg.writes, what.c_str(), [&] {
      int k = epoll_wait(ep, evs, kFloorMaxEvents, 0);
      if (k < 0 && errno != EINTR) Die("epoll_wait: %s", std::strerror(errno));
      for (int j = 0; j < k; ++j) {
        int i = static_cast<int>(evs[j].data.u32);
        if (!armed[i]) continue;
        armed[i] = 0;
        c.OnRead(i);
        armed[i] = 1;  // the callback's re-arm
      }
      for (int j = 0; j < k; ++j) {
        int i = static_cast<int>(evs[j].data.u32);
        if (!armed[i]) epoll_ctl(ep, EPOLL_CTL_DEL, p.rd[i], nullptr);
      }
    });
  }
  close(ep);
  return r;
}

// ---------------------------------------------------------------------------
// The chain benchmark driver.

struct Variant {
  std::string impl;     // "evactor", "libevent", "floor"
  std::string backend;  // "epoll", "poll", "select"
  bool oneshot = false;
  std::vector<RoundResult> rounds;

  std::string name() const { return impl + " " + backend + (oneshot ? " one-shot" : ""); }
  double MedianUs() const {
    std::vector<double> v;
    for (const auto& r : rounds) v.push_back(r.us);
    return Median(v);
  }
  double MeanIterations() const {
    if (rounds.empty()) return 0;
    double s = 0;
    for (const auto& r : rounds) s += r.iterations;
    return s / rounds.size();
  }
  double MeanChanges() const {
    if (rounds.empty()) return 0;
    double s = 0;
    for (const auto& r : rounds) s += r.backend_changes;
    return s / rounds.size();
  }
  int64_t EmptyReads() const {
    int64_t s = 0;
    for (const auto& r : rounds) s += r.empty_reads;
    return s;
  }
};

evactor::BackendKind KindOf(const std::string& b) {
  if (b == "epoll") return evactor::BackendKind::kEpoll;
  if (b == "poll") return evactor::BackendKind::kPoll;
  return evactor::BackendKind::kSelect;
}

RoundResult RunVariantRound(const Variant& v, const Pairs& p, const Config& cfg) {
  if (v.impl == "evactor") return EvactorChainRound(KindOf(v.backend), v.oneshot, p, cfg);
  if (v.impl == "libevent") return LibeventChainRound(v.backend.c_str(), v.oneshot, p, cfg);
  return FloorChainRound(v.oneshot, p, cfg);
}

struct ChainResults {
  int n = 0;
  std::vector<Variant> variants;

  const Variant* Find(std::string_view impl, std::string_view backend, bool oneshot) const {
    for (const auto& v : variants) {
      if (v.impl == impl && v.backend == backend && v.oneshot == oneshot && !v.rounds.empty()) {
        return &v;
      }
    }
    return nullptr;
  }
};

ChainResults RunChain(int n, const Config& cfg, std::vector<std::string>& notes) {
  ChainResults res;
  res.n = n;
  Pairs p;
  p.Open(n);
  const bool select_ok = p.max_fd < FD_SETSIZE;
  if (!select_ok) {
    notes.push_back("skipped: select at N=" + std::to_string(n) + " (fds up to " +
                    std::to_string(p.max_fd) + ", select holds only fds < FD_SETSIZE = " +
                    std::to_string(FD_SETSIZE) + "), for evactor and libevent alike");
  }
  std::vector<std::string> backends = {"epoll", "poll"};
  if (select_ok) backends.push_back("select");
  for (const auto& b : backends) {
    for (const char* impl : {"evactor", "libevent"}) {
      Variant v{impl, b, false, {}};
      if (Selected(cfg, v.name())) res.variants.push_back(std::move(v));
    }
    if (b == "epoll" && Selected(cfg, "floor epoll")) {
      res.variants.push_back(Variant{"floor", b, false, {}});
    }
  }
  for (const char* impl : {"evactor", "libevent", "floor"}) {
    Variant v{impl, "epoll", true, {}};
    if (Selected(cfg, v.name())) res.variants.push_back(std::move(v));
  }
  const size_t k = res.variants.size();
  for (int round = 0; round < cfg.rounds; ++round) {
    for (size_t j = 0; j < k; ++j) {
      Variant& v = res.variants[(j + round) % k];
      v.rounds.push_back(RunVariantRound(v, p, cfg));
    }
  }
  p.Close();
  return res;
}

// ---------------------------------------------------------------------------
// Timers.

struct TimerResult {
  double add_ms = 0, cancel_ms = 0, fire_ms = 0;
  double total_ms() const { return add_ms + cancel_ms + fire_ms; }
};

struct TimerCounters {
  int64_t fired = 0;
  int64_t bad = 0;  // a cancelled timer fired
};

// `deadlines_us` empty: every timer uses `common_us` through the common-timeout path.
TimerResult EvactorTimerRound(const std::vector<int64_t>& deadlines_us, int64_t n,
                              int64_t common_us) {
  const bool common = deadlines_us.empty();
  std::unique_ptr<evactor::Loop> loop = NewEvactorLoop(evactor::BackendKind::kEpoll);
  if (common) {
    absl::Status s = loop->UseCommonTimeout(absl::Microseconds(common_us));
    if (!s.ok()) Die("evactor UseCommonTimeout: %s", s.ToString().c_str());
  }
  TimerCounters cnt;
  TimerResult r;
  {
    std::unique_ptr<std::optional<evactor::Timer>[]> t(new std::optional<evactor::Timer>[n]);
    for (int64_t i = 0; i < n; ++i) {
      t[i].emplace(*loop, [&cnt, i](uint32_t) {
        ++cnt.fired;
        if ((i & 1) == 0) ++cnt.bad;
      });
    }
    const absl::Duration common_d = absl::Microseconds(common_us);
    int64_t t0 = NowNs();
    if (common) {
      for (int64_t i = 0; i < n; ++i) t[i]->Start(common_d);
    } else {
      for (int64_t i = 0; i < n; ++i) t[i]->Start(absl::Microseconds(deadlines_us[i]));
    }
    int64_t t1 = NowNs();
    for (int64_t i = 0; i < n; i += 2) t[i]->Stop();
    int64_t t2 = NowNs();
    // Let every deadline pass, untimed, so that the fire phase measures work, not
    // waiting. Deadlines count from the time of Start() at the latest.
    int64_t spread_us = common ? common_us : 0;
    if (!common) {
      for (int64_t d : deadlines_us) spread_us = std::max(spread_us, d);
    }
    SleepNs(t1 + spread_us * 1000 + 5'000'000 - NowNs());
    const int64_t want = n / 2;
    int64_t t3 = NowNs();
    while (cnt.fired < want) {
      auto res = loop->RunOnce();
      if (!res.ok()) Die("evactor timers: RunOnce: %s", res.status().ToString().c_str());
      if (*res == evactor::RunResult::kNoEvents) break;
      if (NowNs() - t3 > kStuckNs) Die("evactor timers: stuck");
    }
    int64_t t4 = NowNs();
    if (auto res = loop->RunNonBlocking(); !res.ok()) Die("evactor timers: RunNonBlocking");
    if (cnt.fired != want || cnt.bad != 0 || loop->pending_count() != 0) {
      Die("evactor timers%s broken: fired %" PRId64 " (want %" PRId64 "), cancelled fired %" PRId64
          ", still pending %" PRId64,
          common ? " (common)" : "", cnt.fired, want, cnt.bad, loop->pending_count());
    }
    r.add_ms = (t1 - t0) / 1e6;
    r.cancel_ms = (t2 - t1) / 1e6;
    r.fire_ms = (t4 - t3) / 1e6;
  }
  return r;
}

TimerCounters g_le_timers;

void LeTimerCb(evutil_socket_t, short, void* arg) {
  auto i = reinterpret_cast<intptr_t>(arg);
  ++g_le_timers.fired;
  if ((i & 1) == 0) ++g_le_timers.bad;
}

TimerResult LibeventTimerRound(const std::vector<int64_t>& deadlines_us, int64_t n,
                               int64_t common_us) {
  const bool common = deadlines_us.empty();
  event_base* base = NewLibeventBase("epoll");
  std::unique_ptr<event[]> ev(new event[n]());
  for (int64_t i = 0; i < n; ++i) {
    evtimer_assign(&ev[i], base, LeTimerCb, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  }
  timeval common_tv{static_cast<time_t>(common_us / 1'000'000),
                    static_cast<suseconds_t>(common_us % 1'000'000)};
  const timeval* common_ptr = nullptr;
  if (common) {
    common_ptr = event_base_init_common_timeout(base, &common_tv);
    if (common_ptr == nullptr) Die("libevent event_base_init_common_timeout failed");
  }
  g_le_timers = TimerCounters{};
  TimerResult r;
  int64_t t0 = NowNs();
  if (common) {
    for (int64_t i = 0; i < n; ++i) evtimer_add(&ev[i], common_ptr);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      timeval tv{static_cast<time_t>(deadlines_us[i] / 1'000'000),
                 static_cast<suseconds_t>(deadlines_us[i] % 1'000'000)};
      evtimer_add(&ev[i], &tv);
    }
  }
  int64_t t1 = NowNs();
  for (int64_t i = 0; i < n; i += 2) evtimer_del(&ev[i]);
  int64_t t2 = NowNs();
  int64_t spread_us = common ? common_us : 0;
  if (!common) {
    for (int64_t d : deadlines_us) spread_us = std::max(spread_us, d);
  }
  SleepNs(t1 + spread_us * 1000 + 5'000'000 - NowNs());
  const int64_t want = n / 2;
  int64_t t3 = NowNs();
  while (g_le_timers.fired < want) {
    int rc = event_base_loop(base, EVLOOP_ONCE);
    if (rc < 0) Die("libevent timers: event_base_loop failed");
    if (rc == 1) break;
    if (NowNs() - t3 > kStuckNs) Die("libevent timers: stuck");
  }
  int64_t t4 = NowNs();
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  if (g_le_timers.fired != want || g_le_timers.bad != 0) {
    Die("libevent timers%s broken: fired %" PRId64 " (want %" PRId64 "), cancelled fired %" PRId64,
        common ? " (common)" : "", g_le_timers.fired, want, g_le_timers.bad);
  }
  r.add_ms = (t1 - t0) / 1e6;
  r.cancel_ms = (t2 - t1) / 1e6;
  r.fire_ms = (t4 - t3) / 1e6;
  event_base_free(base);
  return r;
}

struct TimerVariant {
  std::string impl;
  bool common = false;
  std::vector<TimerResult> rounds;

  TimerResult MedianPhases() const {
    std::vector<double> a, c, f;
    for (const auto& r : rounds) {
      a.push_back(r.add_ms);
      c.push_back(r.cancel_ms);
      f.push_back(r.fire_ms);
    }
    return TimerResult{Median(a), Median(c), Median(f)};
  }
  double MedianTotal() const {
    std::vector<double> t;
    for (const auto& r : rounds) t.push_back(r.total_ms());
    return Median(t);
  }
};

std::vector<TimerVariant> RunTimers(const Config& cfg) {
  std::vector<int64_t> deadlines(cfg.timers);
  std::mt19937_64 rng(20240601);  // the same deadlines for everyone
  std::uniform_int_distribution<int64_t> dist(0, cfg.timer_spread_us);
  for (auto& d : deadlines) d = dist(rng);
  const std::vector<int64_t> none;

  std::vector<TimerVariant> vs;
  for (bool common : {false, true}) {
    for (const char* impl : {"evactor", "libevent"}) {
      if (Selected(cfg, impl)) vs.push_back(TimerVariant{impl, common, {}});
    }
  }
  for (int round = 0; round < cfg.timer_rounds; ++round) {
    for (size_t j = 0; j < vs.size(); ++j) {
      TimerVariant& v = vs[(j + round) % vs.size()];
      const auto& d = v.common ? none : deadlines;
      v.rounds.push_back(v.impl == "evactor"
                             ? EvactorTimerRound(d, cfg.timers, cfg.common_timeout_us)
                             : LibeventTimerRound(d, cfg.timers, cfg.common_timeout_us));
    }
  }
  return vs;
}

// ---------------------------------------------------------------------------

void Usage() {
  std::fprintf(stderr,
               "usage: seed_bench [--quick] [--rounds=R] [--timer_rounds=R] [--n=N,N,...]\n"
               "                  [--timers=COUNT] [--no_chain] [--no_timers]\n"
               "                  [--only=IMPL[ BACKEND[ one-shot]]]   e.g. --only=evactor,\n"
               "                  --only='libevent epoll one-shot', --only='evactor epoll$'\n");
  std::exit(2);
}

Config ParseArgs(int argc, char** argv) {
  Config cfg;
  int rounds = -1, timer_rounds = -1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view key) -> std::optional<std::string> {
      if (a.substr(0, key.size()) == key && a.size() > key.size() && a[key.size()] == '=') {
        return std::string(a.substr(key.size() + 1));
      }
      return std::nullopt;
    };
    if (a == "--quick") {
      cfg.quick = true;
    } else if (auto v = value("--rounds")) {
      rounds = std::atoi(v->c_str());
    } else if (auto v = value("--timer_rounds")) {
      timer_rounds = std::atoi(v->c_str());
    } else if (auto v = value("--timers")) {
      cfg.timers = std::atoll(v->c_str());
    } else if (auto v = value("--only")) {
      cfg.only = *v;
    } else if (auto v = value("--n")) {
      cfg.ns.clear();
      size_t pos = 0;
      while (pos < v->size()) {
        size_t comma = v->find(',', pos);
        if (comma == std::string::npos) comma = v->size();
        cfg.ns.push_back(std::atoi(v->substr(pos, comma - pos).c_str()));
        pos = comma + 1;
      }
    } else if (a == "--no_chain") {
      cfg.chain = false;
    } else if (a == "--no_timers") {
      cfg.timer_bench = false;
    } else {
      Usage();
    }
  }
  cfg.rounds = rounds > 0 ? rounds : (cfg.quick ? 5 : 25);
  cfg.timer_rounds = timer_rounds > 0 ? timer_rounds : (cfg.quick ? 1 : 5);
  if (cfg.timers < 2) cfg.timers = 2;
  return cfg;
}

int Run(int argc, char** argv) {
  Config cfg = ParseArgs(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // Raise the soft fd limit to the hard one; N is bounded by what that allows.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) Die("getrlimit: %s", std::strerror(errno));
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      std::printf("note: could not raise RLIMIT_NOFILE from %ju: %s\n", uintmax_t{old},
                  std::strerror(errno));
      getrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  const rlim_t fd_limit = rl.rlim_cur;

  std::printf("seed_bench: libevent %s; A=%d active chains, W=%d writes; %d rounds per "
              "variant (median reported)%s\n",
              event_get_version(), cfg.active, cfg.writes, cfg.rounds,
              cfg.quick ? " [--quick]" : "");
  std::printf("RLIMIT_NOFILE: %ju\n", uintmax_t{fd_limit});

  std::vector<std::string> notes;
  std::vector<ChainResults> chains;
  if (cfg.chain) {
    for (int n : cfg.ns) {
      const rlim_t need = rlim_t(2) * n + 64;
      if (n < cfg.active) {
        notes.push_back("skipped: N=" + std::to_string(n) + " (fewer pairs than A=" +
                        std::to_string(cfg.active) + " chains)");
        continue;
      }
      if (need > fd_limit) {
        notes.push_back("skipped: N=" + std::to_string(n) + " (needs about " +
                        std::to_string(need) + " fds, two per socketpair; RLIMIT_NOFILE is " +
                        std::to_string(fd_limit) + " and cannot be raised further)");
        continue;
      }
      int64_t t0 = NowNs();
      chains.push_back(RunChain(n, cfg, notes));
      std::fprintf(stderr, "[N=%d done in %.1f s]\n", n, (NowNs() - t0) / 1e9);
    }

    std::printf("\nChain benchmark (libevent bench.c): median microseconds per round "
                "(A+W = %d reads)\n",
                cfg.active + cfg.writes);
    std::printf("%7s  %-16s %12s %12s %12s   %9s %9s %9s\n", "N", "backend", "evactor_us",
                "libevent_us", "floor_us", "ev_iters", "le_iters", "ev_chg");
    for (const auto& cr : chains) {
      for (const char* b : {"epoll", "poll", "select", "epoll one-shot"}) {
        bool os = std::string_view(b) == "epoll one-shot";
        std::string backend = os ? "epoll" : b;
        const Variant* ev = cr.Find("evactor", backend, os);
        const Variant* le = cr.Find("libevent", backend, os);
        const Variant* fl = cr.Find("floor", backend, os);
        if (!ev && !le && !fl) continue;
        auto cell = [](const Variant* v) {
          char buf[32];
          if (v) {
            std::snprintf(buf, sizeof buf, "%.1f", v->MedianUs());
          } else {
            std::snprintf(buf, sizeof buf, "-");
          }
          return std::string(buf);
        };
        auto iters = [](const Variant* v) {
          char buf[32];
          if (v) {
            std::snprintf(buf, sizeof buf, "%.1f", v->MeanIterations());
          } else {
            std::snprintf(buf, sizeof buf, "-");
          }
          return std::string(buf);
        };
        char chg[32] = "-";
        if (ev) std::snprintf(chg, sizeof chg, "%.1f", ev->MeanChanges());
        std::printf("%7d  %-16s %12s %12s %12s   %9s %9s %9s\n", cr.n, b, cell(ev).c_str(),
                    cell(le).c_str(), cell(fl).c_str(), iters(ev).c_str(), iters(le).c_str(),
                    chg);
      }
      for (const auto& v : cr.variants) {
        if (v.EmptyReads() > 0) {
          notes.push_back("note: " + v.name() + " at N=" + std::to_string(cr.n) + ": " +
                          std::to_string(v.EmptyReads()) +
                          " callbacks found nothing to read (spurious wake-ups)");
        }
      }
    }
    std::printf("(iters: mean non-blocking loop iterations per round; ev_chg: evactor's "
                "kernel registration changes per round, from Loop::stats())\n");
  }

  std::vector<TimerVariant> timers;
  if (cfg.timer_bench) {
    int64_t t0 = NowNs();
    timers = RunTimers(cfg);
    std::fprintf(stderr, "[timers done in %.1f s]\n", (NowNs() - t0) / 1e9);
    std::printf("\nTimers: %" PRId64 " added, every other one cancelled, the rest fired; "
                "median ms over %d rounds\n",
                cfg.timers, cfg.timer_rounds);
    std::printf("  random deadlines uniform in [0, %" PRId64 "] ms; common: all %" PRId64
                " ms through Loop::UseCommonTimeout / event_base_init_common_timeout\n",
                cfg.timer_spread_us / 1000, cfg.common_timeout_us / 1000);
    std::printf("  %-20s %10s %10s %10s %10s\n", "variant", "add_ms", "cancel_ms", "fire_ms",
                "total_ms");
    for (const auto& v : timers) {
      TimerResult m = v.MedianPhases();
      std::printf("  %-20s %10.1f %10.1f %10.1f %10.1f\n",
                  (v.impl + (v.common ? " common" : " random")).c_str(), m.add_ms,
                  m.cancel_ms, m.fire_ms, v.MedianTotal());
    }
  }

  std::printf("\n");
  for (const auto& note : notes) std::printf("%s\n", note.c_str());

  // The comparisons.
  std::printf("\n");
  for (const auto& cr : chains) {
    const std::string n = std::to_string(cr.n);
    for (const char* b : {"epoll", "poll", "select"}) {
      const Variant* ev = cr.Find("evactor", b, false);
      const Variant* le = cr.Find("libevent", b, false);
      if (ev && le) {
        std::printf("speedup seed_%s_n%s %.3f\n", b, n.c_str(), le->MedianUs() / ev->MedianUs());
      }
    }
    if (const Variant *ev = cr.Find("evactor", "epoll", false), *fl = cr.Find("floor", "epoll", false);
        ev && fl) {
      std::printf("speedup seed_floor_n%s %.3f\n", n.c_str(), fl->MedianUs() / ev->MedianUs());
    }
    if (const Variant *ev = cr.Find("evactor", "epoll", true), *le = cr.Find("libevent", "epoll", true);
        ev && le) {
      std::printf("speedup oneshot_epoll_n%s %.3f\n", n.c_str(), le->MedianUs() / ev->MedianUs());
    }
    if (const Variant *ev = cr.Find("evactor", "epoll", true), *fl = cr.Find("floor", "epoll", true);
        ev && fl) {
      std::printf("speedup oneshot_floor_n%s %.3f\n", n.c_str(), fl->MedianUs() / ev->MedianUs());
    }
  }
  for (bool common : {false, true}) {
    const TimerVariant *ev = nullptr, *le = nullptr;
    for (const auto& v : timers) {
      if (v.common != common || v.rounds.empty()) continue;
      (v.impl == "evactor" ? ev : le) = &v;
    }
    if (ev && le) {
      std::printf("speedup %s %.3f\n", common ? "timers_common" : "timers",
                  le->MedianTotal() / ev->MedianTotal());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  evactor::bench::g_die_name = "seed_bench";
  return Run(argc, argv);
}
