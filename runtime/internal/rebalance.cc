#include "runtime/internal/rebalance.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace evactor::internal {

namespace {

bool ToU64(absl::string_view s, uint64_t* out) { return absl::SimpleAtoi(s, out); }

}  // namespace

std::vector<CpuTimes> ParseProcStat(std::string_view text) {
  std::vector<CpuTimes> cpus;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    // "cpu0 user nice system idle iowait irq softirq steal guest guest_nice"; the
    // aggregate line is "cpu " and is skipped.
    if (line.size() < 4 || line.substr(0, 3) != "cpu" || line[3] < '0' || line[3] > '9') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t cpu = 0;
    if (f.size() < 5 || !absl::SimpleAtoi(f[0].substr(3), &cpu) || cpu >= 65536) continue;
    uint64_t v[8] = {};
    bool ok = true;
    // user..steal; guest time is already part of user time.
    for (size_t i = 0; i < 8 && i + 1 < f.size() && ok; ++i) ok = ToU64(f[i + 1], &v[i]);
    if (!ok) continue;
    uint64_t total = 0;
    for (uint64_t x : v) total += x;
    const uint64_t idle = v[3] + v[4];
    if (cpus.size() <= cpu) cpus.resize(cpu + 1);
    cpus[cpu].total = total;
    cpus[cpu].busy = total - idle;
  }
  return cpus;
}

std::optional<ThreadTimes> ParseSchedstat(std::string_view text) {
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(text.data(), text.size()), absl::ByAnyChar(" \n"),
                     absl::SkipEmpty());
  ThreadTimes t;
  if (f.size() < 2 || !absl::SimpleAtoi(f[0], &t.run_ns) || !absl::SimpleAtoi(f[1], &t.wait_ns)) {
    return std::nullopt;
  }
  return t;
}

std::optional<std::string> ReadSmallFile(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t{1} << 22)) break;  // a procfs file this large is not ours
  }
  close(fd);
  return out;
}

std::vector<double> BusyShares(const std::vector<CpuTimes>& before,
                               const std::vector<CpuTimes>& after) {
  std::vector<double> busy(after.size(), -1.0);
  for (size_t c = 0; c < after.size() && c < before.size(); ++c) {
    if (before[c].total == 0 || after[c].total <= before[c].total) continue;
    const double total = static_cast<double>(after[c].total - before[c].total);
    const double b = after[c].busy >= before[c].busy
                         ? static_cast<double>(after[c].busy - before[c].busy)
                         : 0.0;
    busy[c] = b >= total ? 1.0 : b / total;
  }
  return busy;
}

int ChooseCpu(const RebalanceWindow& w) {
  if (w.own_cpu < 0 || static_cast<size_t>(w.own_cpu) >= w.busy.size()) return -1;
  const double own = w.busy[w.own_cpu];
  if (own < 0) return -1;
  if (w.wait < kRebalanceMinWait && own < kRebalanceSaturated) return -1;
  // What else ran on the shard's CPU (tick-sampled busy time and the exact run time
  // differ a little: clamped).
  const double others = own > w.run ? own - w.run : 0.0;
  int best = -1;
  double best_busy = 2.0;
  for (int c : w.candidates) {
    if (c < 0 || static_cast<size_t>(c) >= w.busy.size() || c == w.own_cpu) continue;
    const double b = w.busy[c];
    if (b < 0) continue;
    if (b < best_busy) {
      best = c;
      best_busy = b;
    }
  }
  if (best < 0 || best_busy + kRebalanceMargin >= others) return -1;
  return best;
}

}  // namespace evactor::internal
