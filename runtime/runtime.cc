#include "runtime/runtime.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/internal/clock.h"
#include "runtime/internal/errno_status.h"
#include "runtime/internal/rebalance.h"
#include "runtime/timer.h"

namespace evactor {


// The shard's part in every loop iteration: publish the wake-ups for what it sent,
// then let its own mailbox decide whether the loop may block.
class Shard::Hooks final : public LoopHooks {
 public:
  explicit Hooks(Shard* shard) : shard_(shard) {}
  bool BeforePoll(bool may_block) override {
    shard_->FlushBacklog();
    shard_->FlushWakeups();
    // A backlog waits for room in another shard's ring: poll again without blocking.
    if (shard_->backlog_count_.load(std::memory_order_relaxed) != 0) {
      shard_->CheckShutdown();
      return true;
    }
    // A shutdown step changed what the loop waits for (a new timer, or the exit):
    // poll without blocking so the next iteration sees it.
    if (shard_->CheckShutdown()) return true;
    // Re-check the shutdown phase after publishing "asleep": Shutdown() (and shard
    // 0's move to closing) change the phase before waking us, so either we see the
    // change here or their wake-up reaches us.
    Runtime* rt = &shard_->runtime();
    const int seen = rt->phase_.load(std::memory_order_acquire);
    return shard_->mailbox_->BeforePoll(
        may_block, [rt, seen] { return rt->phase_.load(std::memory_order_acquire) != seen; });
  }
  void AfterPoll() override { shard_->mailbox_->AfterPoll(); }
  bool HasWork() const override { return shard_->mailbox_->HasWork(); }

 private:
  Shard* shard_;
};

Shard::Shard(Runtime* runtime, int id) : runtime_(runtime), id_(id) {}
Shard::~Shard() = default;

Shard::Metrics Shard::metrics() const {
  Metrics m;
  if (loop_ == nullptr || mailbox_ == nullptr) return m;
  m.loop = loop_->metrics().Read();
  m.messages_sent = sent_.Read();
  m.messages_received = mailbox_->counters().received.load(std::memory_order_relaxed);
  m.wakeups_written = mailbox_->counters().wakeups_written.load(std::memory_order_relaxed);
  m.mailbox_full = mailbox_->counters().full.load(std::memory_order_relaxed);
  m.dead_letters = dead_letters();
  m.mailbox_depth = mailbox_->depth().Read();
  return m;
}

std::vector<Shard::Metrics> Runtime::Metrics() const {
  std::vector<Shard::Metrics> all;
  all.reserve(shards_.size());
  for (const auto& s : shards_) all.push_back(s->metrics());
  return all;
}


void Shard::FlushBacklog() {
  size_t left = backlog_count_.load(std::memory_order_relaxed);
  if (left == 0) return;
  for (int target = 0; target < static_cast<int>(backlog_.size()); ++target) {
    auto& queue = backlog_[target];
    while (!queue.empty()) {
      absl::Status s = runtime_->TrySubmitTo(target, queue.front());
      if (s.code() == absl::StatusCode::kResourceExhausted) break;  // next pass
      // Sent, or the target has stopped (then nobody will run it: drop it).
      queue.pop_front();
      --left;
    }
  }
  backlog_count_.store(left, std::memory_order_relaxed);
}

void Shard::FlushWakeups() {
  for (int target : sent_to_) {
    sent_flag_[target] = 0;
    Mailbox& box = *runtime_->shards_[target]->mailbox_;
    // Publish, then check for a sleeper: the order WakeIfSleeping's protocol needs.
    box.Publish(id_);
    box.WakeIfSleeping();
  }
  sent_to_.clear();
}

bool Shard::CheckShutdown() {
  if (finishing_) return true;
  const int phase = runtime_->phase_.load(std::memory_order_acquire);
  if (phase == Runtime::kRunning) return false;
  if (phase == Runtime::kDraining) {
    if (id_ == 0 && shutdown_timer_ == nullptr) {
      // Shard 0 watches for quiescence, once a millisecond.
      shutdown_timer_ = std::make_unique<Timer>(*loop_, [this](uint32_t) {
        if (runtime_->Quiescent() ||
            internal::MonotonicNanos() > runtime_->drain_deadline_ns_.load()) {
          runtime_->phase_.store(Runtime::kClosing, std::memory_order_release);
          for (auto& s : runtime_->shards_) {
            if (s->mailbox_ != nullptr) s->mailbox_->WakeIfSleeping();
          }
        }
      });
      shutdown_timer_->StartPeriodic(absl::Milliseconds(1));
      return true;
    }
    return false;
  }
  Finish();
  return true;
}

// The start of the current placement window (RuntimeOptions::rebalance_interval).
struct Shard::PlacementSample {
  std::vector<internal::CpuTimes> cpus;
  internal::ThreadTimes thread;
  int64_t at_ns = 0;
  bool valid = false;
};

void Shard::StartRebalancing(absl::Duration interval) {
  placement_ = std::make_unique<PlacementSample>();
  rebalance_timer_ = std::make_unique<Timer>(*loop_, [this](uint32_t) { CheckPlacement(); });
  rebalance_timer_->StartPeriodic(interval);
  CheckPlacement();  // the first window starts now
}

void Shard::CheckPlacement() {
  std::optional<std::string> stat = internal::ReadSmallFile("/proc/stat");
  std::optional<std::string> sched = internal::ReadSmallFile("/proc/thread-self/schedstat");
  std::optional<internal::ThreadTimes> times =
      sched.has_value() ? internal::ParseSchedstat(*sched) : std::nullopt;
  if (!stat.has_value() || !times.has_value()) {
    rebalance_timer_->Stop();  // no such accounting here (no procfs, no schedstats)
    return;
  }
  PlacementSample now{internal::ParseProcStat(*stat), *times, internal::MonotonicNanos(), true};
  PlacementSample& last = *placement_;
  const int cpu = this->cpu();
  if (last.valid && cpu >= 0 && now.at_ns > last.at_ns) {
    const double wall = static_cast<double>(now.at_ns - last.at_ns);
    internal::RebalanceWindow window;
    window.run = static_cast<double>(now.thread.run_ns - last.thread.run_ns) / wall;
    window.wait = static_cast<double>(now.thread.wait_ns - last.thread.wait_ns) / wall;
    window.own_cpu = cpu;
    window.busy = internal::BusyShares(last.cpus, now.cpus);
    for (int c : runtime_->usable_cpus_) {
      if (c != cpu) window.candidates.push_back(c);
    }
    const int target = internal::ChooseCpu(window);
    if (target >= 0 && runtime_->MoveShard(*this, target)) {
      last.valid = false;  // the next window starts after the move has settled
      return;
    }
  }
  last = std::move(now);
}

void Shard::Finish() {
  finishing_ = true;
  shutdown_timer_.reset();
  rebalance_timer_.reset();
  mailbox_->Close();
  // What was published before the close runs; sends after it fail at the sender.
  mailbox_->DrainAll();
  FlushBacklog();
  FlushWakeups();
  // Whatever still waits for room in a full ring (only after the grace period) is
  // dropped, and counted.
  size_t left = 0;
  for (auto& queue : backlog_) {
    left += queue.size();
    queue.clear();
  }
  backlog_count_.store(0, std::memory_order_relaxed);
  if (left != 0) runtime_->dropped_.fetch_add(left, std::memory_order_relaxed);
  for (auto& fn : on_stop_) fn();
  on_stop_.clear();
  // Actors die on their own shard, after the stop callbacks (which may still use
  // them); later messages for them are discarded unrun.
  cells_.clear();
  // What the stop callbacks and the actors' destructors sent goes out too.
  FlushWakeups();
  loop_->Exit();
}

void Shard::ThreadMain(std::atomic<int>* ready, absl::Status* error) {
  current_ = this;
  LoopOptions lo = runtime_->options_.loop;
  lo.run_forever = true;
  absl::StatusOr<std::unique_ptr<Loop>> loop = Loop::Create(lo);
  absl::StatusOr<std::unique_ptr<Mailbox>> box =
      loop.ok() ? Mailbox::Create(**loop, runtime_->size(), runtime_->options_.mailbox)
                : absl::StatusOr<std::unique_ptr<Mailbox>>(loop.status());
  if (!box.ok()) {
    *error = box.status();
    ready->fetch_add(1);
    return;
  }
  loop_ = *std::move(loop);
  mailbox_ = *std::move(box);
  hooks_ = std::make_unique<Hooks>(this);
  loop_->SetHooks(hooks_.get());
  sent_flag_.assign(runtime_->size(), 0);
  backlog_.resize(runtime_->size());
  ready->fetch_add(1);
  // Wait until every shard is up so that SubmitTo never sees a missing mailbox.
  while (ready->load() < runtime_->size()) std::this_thread::yield();

  absl::StatusOr<RunResult> r = loop_->Run();
  if (!r.ok()) {
    fprintf(stderr, "evactor: shard %d loop failed: %s\n", id_,
            std::string(r.status().message()).c_str());
  }
  if (!finishing_) Finish();
  loop_->SetHooks(nullptr);
  current_ = nullptr;
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(RuntimeOptions options) {
  int n = options.shards;
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  if (n > 1024) return absl::InvalidArgumentError("at most 1024 shards");
  absl::StatusOr<PinningPlanResult> plan = PinningPlan(options, n);
  if (!plan.ok()) return plan.status();
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->options_ = options;
  for (int i = 0; i < n; ++i) rt->shards_.push_back(std::unique_ptr<Shard>(new Shard(rt.get(), i)));
  // Both live in the Runtime: shard threads may still read `started_` after we
  // return.
  rt->start_errors_.resize(n);
  for (int i = 0; i < n; ++i) {
    rt->shards_[i]->thread_ = std::thread(&Shard::ThreadMain, rt->shards_[i].get(),
                                          &rt->started_, &rt->start_errors_[i]);
  }
  absl::Status pinned = rt->Pin(*plan);
  while (rt->started_.load() < n) std::this_thread::yield();
  if (!pinned.ok()) {
    rt->Shutdown();
    rt->Wait().IgnoreError();
    return pinned;
  }
  for (int i = 0; i < n; ++i) {
    if (!rt->start_errors_[i].ok()) {
      absl::Status error = rt->start_errors_[i];
      rt->Shutdown();
      rt->Wait().IgnoreError();
      return error;
    }
  }
  if (rt->pinned() && options.affinity == RuntimeOptions::Affinity::kAuto &&
      rt->usable_cpus_.size() >= 2 && options.rebalance_interval > absl::ZeroDuration()) {
    const absl::Duration interval = options.rebalance_interval;
    rt->ForEachShard([interval](Shard& shard) { shard.StartRebalancing(interval); })
        .IgnoreError();  // only fails once shutting down
  }
  return rt;
}

absl::StatusOr<Runtime::PinningPlanResult> Runtime::PinningPlan(const RuntimeOptions& options,
                                                                int shards) {
  if (options.affinity == RuntimeOptions::Affinity::kNone) return PinningPlanResult();
  const bool must = options.affinity == RuntimeOptions::Affinity::kPin;
  std::vector<int> cpus = options.cpus;
  if (cpus.empty()) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
      if (must) return internal::ErrnoToStatus(errno, "sched_getaffinity");
      return PinningPlanResult();
    }
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    }
  }
  std::vector<char> seen(CPU_SETSIZE, 0);
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE || seen[c]) {
      return absl::InvalidArgumentError(
          absl::StrCat("RuntimeOptions::cpus: CPU ", c, " is out of range or listed twice"));
    }
    seen[c] = 1;
  }
  if (static_cast<int>(cpus.size()) < shards) {
    if (must) {
      return absl::InvalidArgumentError(absl::StrCat(
          shards, " shards cannot be pinned to ", cpus.size(), " CPUs (one CPU per shard)"));
    }
    return PinningPlanResult();
  }
  PinningPlanResult plan;
  if (!must) plan.spare.assign(cpus.begin() + shards, cpus.end());
  cpus.resize(shards);
  plan.cpus = std::move(cpus);
  return plan;
}

absl::Status Runtime::Pin(const PinningPlanResult& plan) {
  const std::vector<int>& cpus = plan.cpus;
  if (cpus.empty()) return absl::OkStatus();
  for (size_t i = 0; i < cpus.size(); ++i) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[i], &one);
    const int err = pthread_setaffinity_np(shards_[i]->thread_.native_handle(), sizeof one, &one);
    if (err == 0) continue;
    if (options_.affinity == RuntimeOptions::Affinity::kPin) {
      return internal::ErrnoToStatus(err, absl::StrCat("pinning shard ", i, " to CPU ", cpus[i]));
    }
    // kAuto: leave every shard unpinned, as the process was.
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      for (size_t k = 0; k < i; ++k) {
        pthread_setaffinity_np(shards_[k]->thread_.native_handle(), sizeof allowed, &allowed);
      }
    }
    return absl::OkStatus();
  }
  int top = *std::max_element(cpus.begin(), cpus.end());
  for (int c : plan.spare) top = std::max(top, c);
  cpu_slots_ = static_cast<size_t>(top) + 1;
  shard_on_cpu_ = std::make_unique<std::atomic<int>[]>(cpu_slots_);
  for (size_t c = 0; c < cpu_slots_; ++c) shard_on_cpu_[c].store(-1, std::memory_order_relaxed);
  for (size_t i = 0; i < cpus.size(); ++i) {
    shards_[i]->cpu_.store(cpus[i], std::memory_order_relaxed);
    shard_on_cpu_[cpus[i]].store(static_cast<int>(i), std::memory_order_relaxed);
  }
  usable_cpus_ = cpus;
  usable_cpus_.insert(usable_cpus_.end(), plan.spare.begin(), plan.spare.end());
  return absl::OkStatus();
}

bool Runtime::MoveShard(Shard& shard, int cpu) {
  const int from = shard.cpu();
  if (cpu < 0 || static_cast<size_t>(cpu) >= cpu_slots_ || cpu == from) return false;
  // A free CPU becomes this shard's (ShardOnCpu names it); on one another shard
  // holds, this shard is a guest and the holder keeps the name (connections steered
  // to that CPU keep going to the holder).
  int none = -1;
  const bool claimed =
      shard_on_cpu_[cpu].compare_exchange_strong(none, shard.id_, std::memory_order_relaxed);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) {
    if (claimed) shard_on_cpu_[cpu].store(-1, std::memory_order_relaxed);  // e.g. not ours
    return false;
  }
  shard.cpu_.store(cpu, std::memory_order_relaxed);
  // Gives up its old CPU's name, if it held it (a guest did not).
  int self = shard.id_;
  if (from >= 0) {
    shard_on_cpu_[from].compare_exchange_strong(self, -1, std::memory_order_relaxed);
  }
  shard.moves_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Runtime::~Runtime() {
  Shutdown();
  Wait().IgnoreError();
  for (auto& s : shards_) {
    s->hooks_.reset();
    s->mailbox_.reset();  // before its loop: it holds a watcher there
    s->loop_.reset();
  }
}

absl::Status Runtime::BadShard(int target) const {
  return absl::InvalidArgumentError(absl::StrCat("no shard ", target, " (", size(), " shards)"));
}

absl::Status Runtime::ShuttingDown() {
  return absl::FailedPreconditionError("the runtime is shutting down");
}

absl::Status Runtime::AddToBacklog(Shard& here, int target, Message fn) {
  here.backlog_[target].push_back(std::move(fn));
  here.backlog_count_.store(here.backlog_count_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status Runtime::ForEachShard(std::function<void(Shard&)> fn) {
  absl::Status first;
  for (int i = 0; i < size(); ++i) {
    Shard* s = shards_[i].get();
    absl::Status st = SubmitTo(i, [fn, s] { fn(*s); });
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

void Runtime::Shutdown() {
  int expected = kRunning;
  if (!phase_.compare_exchange_strong(expected, kDraining, std::memory_order_acq_rel)) return;
  drain_deadline_ns_.store(internal::MonotonicNanos() +
                           absl::ToInt64Nanoseconds(options_.shutdown_grace));
  for (auto& s : shards_) {
    if (s->mailbox_ != nullptr) s->mailbox_->WakeIfSleeping();
  }
}

bool Runtime::Quiescent() {
  uint64_t published = 0;
  uint64_t consumed = 0;
  for (auto& s : shards_) {
    if (s->mailbox_ != nullptr) published += s->mailbox_->published();
  }
  for (auto& s : shards_) {
    if (s->mailbox_ != nullptr) consumed += s->mailbox_->consumed();
  }
  // Consumed counts are read after published ones and only grow: equality means
  // everything published by the first look has finished running. Seeing the same
  // total twice means nothing new was published in between.
  size_t backlog = 0;
  for (auto& s : shards_) backlog += s->backlog_count_.load(std::memory_order_relaxed);
  const bool idle = consumed == published && published == last_published_ && backlog == 0;
  last_published_ = published;
  return idle;
}

absl::Status Runtime::Wait() {
  Shard* cur = Shard::Current();
  if (cur != nullptr && &cur->runtime() == this) {
    return absl::FailedPreconditionError("Runtime::Wait called on one of its own shards");
  }
  std::lock_guard<std::mutex> lock(join_mu_);
  if (joined_) return absl::OkStatus();
  for (auto& s : shards_) {
    if (s->thread_.joinable()) s->thread_.join();
  }
  // Messages published after a shard's final drain: destroyed, never run elsewhere.
  uint64_t dropped = 0;
  for (auto& s : shards_) {
    if (s->mailbox_ != nullptr) dropped += s->mailbox_->DiscardAll();
  }
  dropped_.fetch_add(dropped, std::memory_order_relaxed);
  // The (closed) mailboxes stay until ~Runtime so that late senders get an error
  // instead of a dangling pointer; the loops now belong to this thread.
  for (auto& s : shards_) {
    if (s->loop_ != nullptr) s->loop_->AttachToCurrentThread();
  }
  joined_ = true;
  return absl::OkStatus();
}

}  // namespace evactor
