// evactor::TokenBucket and evactor::RateLimitGroup — bandwidth limits for
// BufferedSockets, per socket and shared by a group, reads and writes apart
// (libevent's ev_token_bucket_cfg and bufferevent_rate_limit_group).
//
//   RateLimit cfg{.read_rate = 64 << 10, .read_burst = 64 << 10,
//                 .write_rate = 64 << 10, .write_burst = 64 << 10,
//                 .tick = absl::Milliseconds(100)};   // 640 KiB/s each way
//   socket->SetRateLimit(cfg);
//   RateLimitGroup group(*loop, cfg);                 // all members together
//   socket->JoinGroup(&group);
//
// Tokens are bytes; a bucket gains `rate` tokens per `tick` (refilled lazily from
// the loop's clock, whole ticks only) up to `burst`. A socket reads or writes at most
// the tokens it has (and, in a group, its share of the group's: the group's tokens
// divided among its members, at least `min_share` bytes); with none left it pauses
// that direction until the next tick. A rate of 0 means "unlimited" for that
// direction.
//
// Thread safety: the loop's thread only; a group and its members share one loop.
#ifndef EVACTOR_IO_RATE_LIMIT_H_
#define EVACTOR_IO_RATE_LIMIT_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "runtime/loop.h"

namespace evactor {

class BufferedSocket;

struct RateLimit {
  uint64_t read_rate = 0;  // bytes per tick; 0: unlimited
  uint64_t read_burst = 0;
  uint64_t write_rate = 0;
  uint64_t write_burst = 0;
  absl::Duration tick = absl::Seconds(1);
};

class TokenBucket {
 public:
  TokenBucket(const RateLimit& config, int64_t now_ns);

  // Adds the tokens of the whole ticks elapsed since the last refill.
  void Refill(int64_t now_ns);
  // Bytes that may go now in that direction (SIZE_MAX when unlimited).
  uint64_t read_allowance() const;
  uint64_t write_allowance() const;
  void SpendRead(uint64_t n);
  void SpendWrite(uint64_t n);
  // When the next tick adds tokens.
  int64_t next_refill_ns() const { return last_tick_ns_ + tick_ns_; }
  const RateLimit& config() const { return config_; }

 private:
  RateLimit config_;
  int64_t tick_ns_;
  int64_t last_tick_ns_;
  int64_t read_tokens_;
  int64_t write_tokens_;
};

class RateLimitGroup {
 public:
  RateLimitGroup(Loop& loop, const RateLimit& config, uint64_t min_share = 64);
  // REQUIRES: no members left (BufferedSocket::LeaveGroup, or their destruction).
  ~RateLimitGroup();

  Loop& loop() const { return loop_; }
  TokenBucket& bucket() { return bucket_; }
  size_t members() const { return members_.size(); }
  // One member's share of what the group may move now.
  uint64_t ReadShare();
  uint64_t WriteShare();
  // Bytes moved by all members so far.
  uint64_t total_read() const { return total_read_; }
  uint64_t total_written() const { return total_written_; }

 private:
  friend class BufferedSocket;
  void Add(BufferedSocket* s) { members_.push_back(s); }
  void Remove(BufferedSocket* s);
  Loop& loop_;
  TokenBucket bucket_;
  uint64_t min_share_;
  std::vector<BufferedSocket*> members_;
  uint64_t total_read_ = 0;
  uint64_t total_written_ = 0;
};

}  // namespace evactor

#endif  // EVACTOR_IO_RATE_LIMIT_H_
