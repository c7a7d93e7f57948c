// The readiness mechanism behind a Loop: epoll, poll or select.
//
// Thread safety: none; owned by one Loop.
//
// A backend knows, per fd, the interest the loop last applied (`old_bits`), so each
// Apply() call is one change. Bits are kRead, kWrite, kClosed; `edge` asks for
// edge-triggering. Poll() reports each ready fd once with the bits that happened; a
// hang-up or error is reported as kRead|kWrite|kClosed so every watcher on the fd
// notices.
#ifndef EVACTOR_RUNTIME_INTERNAL_BACKEND_H_
#define EVACTOR_RUNTIME_INTERNAL_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/loop.h"

namespace evactor::internal {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendKind kind() const = 0;
  virtual bool supports_edge() const = 0;
  virtual bool supports_closed() const = 0;

  // Changes the kernel's interest in `fd` from `old_bits` (0: not registered) to
  // `new_bits` (0: unregister). Returns the kernel's error; unregistering an fd the
  // kernel no longer knows (closed) is not an error.
  virtual absl::Status Apply(int fd, uint32_t old_bits, uint32_t new_bits, bool edge) = 0;

  // Waits up to `timeout_ns` (-1: no limit, 0: not at all) and calls `ready(fd, bits)`
  // for each ready fd. EINTR is a normal, empty return.
  virtual absl::Status Poll(int64_t timeout_ns,
                            absl::FunctionRef<void(int fd, uint32_t bits)> ready) = 0;

  // Recreates kernel state after fork(); the loop re-applies every registration.
  virtual absl::Status Reinit() = 0;
};

absl::StatusOr<std::unique_ptr<Backend>> NewEpollBackend();
absl::StatusOr<std::unique_ptr<Backend>> NewPollBackend();
absl::StatusOr<std::unique_ptr<Backend>> NewSelectBackend();

// Milliseconds for poll()/epoll_wait(), rounded up so that a timer never wakes the
// loop early (which would cost an extra iteration); -1 stays -1.
inline int TimeoutMillis(int64_t timeout_ns) {
  if (timeout_ns < 0) return -1;
  const int64_t ms = (timeout_ns + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_BACKEND_H_
