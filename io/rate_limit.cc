#include "io/rate_limit.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace evactor {

namespace {
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
}  // namespace

TokenBucket::TokenBucket(const RateLimit& config, int64_t now_ns)
    : config_(config),
      tick_ns_(std::max<int64_t>(1, absl::ToInt64Nanoseconds(config.tick))),
      last_tick_ns_(now_ns),
      read_tokens_(static_cast<int64_t>(std::max(config.read_rate, config.read_burst))),
      write_tokens_(static_cast<int64_t>(std::max(config.write_rate, config.write_burst))) {
  // A burst below the rate would make the rate unreachable: the burst is at least
  // one tick's worth.
  config_.read_burst = std::max(config.read_rate, config.read_burst);
  config_.write_burst = std::max(config.write_rate, config.write_burst);
}

void TokenBucket::Refill(int64_t now_ns) {
  if (now_ns < last_tick_ns_ + tick_ns_) return;
  const int64_t ticks = (now_ns - last_tick_ns_) / tick_ns_;
  last_tick_ns_ += ticks * tick_ns_;
  auto add = [ticks](int64_t tokens, uint64_t rate, uint64_t burst) {
    // Saturating: a long idle time must not overflow.
    const double want = static_cast<double>(tokens) + static_cast<double>(rate) * ticks;
    return static_cast<int64_t>(std::min(want, static_cast<double>(burst)));
  };
  read_tokens_ = add(read_tokens_, config_.read_rate, config_.read_burst);
  write_tokens_ = add(write_tokens_, config_.write_rate, config_.write_burst);
}

uint64_t TokenBucket::read_allowance() const {
  if (config_.read_rate == 0) return kUnlimited;
  return read_tokens_ > 0 ? static_cast<uint64_t>(read_tokens_) : 0;
}

uint64_t TokenBucket::write_allowance() const {
  if (config_.write_rate == 0) return kUnlimited;
  return write_tokens_ > 0 ? static_cast<uint64_t>(write_tokens_) : 0;
}

void TokenBucket::SpendRead(uint64_t n) { read_tokens_ -= static_cast<int64_t>(n); }
void TokenBucket::SpendWrite(uint64_t n) { write_tokens_ -= static_cast<int64_t>(n); }

RateLimitGroup::RateLimitGroup(Loop& loop, const RateLimit& config, uint64_t min_share)
    : loop_(loop), bucket_(config, loop.NowNanos()), min_share_(min_share) {}

RateLimitGroup::~RateLimitGroup() = default;

void RateLimitGroup::Remove(BufferedSocket* s) {
  members_.erase(std::remove(members_.begin(), members_.end(), s), members_.end());
}

uint64_t RateLimitGroup::ReadShare() {
  bucket_.Refill(loop_.NowNanos());
  const uint64_t all = bucket_.read_allowance();
  if (all == kUnlimited || all == 0) return all;
  const uint64_t share = all / std::max<size_t>(1, members_.size());
  return std::min(all, std::max(share, min_share_));
}

uint64_t RateLimitGroup::WriteShare() {
  bucket_.Refill(loop_.NowNanos());
  const uint64_t all = bucket_.write_allowance();
  if (all == kUnlimited || all == 0) return all;
  const uint64_t share = all / std::max<size_t>(1, members_.size());
  return std::min(all, std::max(share, min_share_));
}

}  // namespace evactor
