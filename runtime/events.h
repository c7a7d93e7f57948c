// Event bits shared by the loop's handles.
//
// A callback receives the bits that made it run, ORed together when several causes
// coincide before the callback gets its turn (libevent's merged result bits): an
// IoWatcher can see `kRead | kTimeout` when its fd became readable and its timeout
// expired in the same iteration.
#ifndef EVACTOR_RUNTIME_EVENTS_H_
#define EVACTOR_RUNTIME_EVENTS_H_

#include <cstdint>

namespace evactor {

enum EventBits : uint32_t {
  kRead = 1u << 0,     // the fd is readable (data, EOF, or an error to collect)
  kWrite = 1u << 1,    // the fd is writable
  kClosed = 1u << 2,   // the peer hung up (EPOLLRDHUP / POLLRDHUP); epoll and poll only
  kTimeout = 1u << 3,  // the handle's timeout expired
  kSignal = 1u << 4,   // a signal arrived (SignalWatcher)
  kActivated = 1u << 5,  // activated by hand (Activate()) or a once/deferred call
};

// The bits an IoWatcher may ask for.
inline constexpr uint32_t kIoInterestMask = kRead | kWrite | kClosed;

}  // namespace evactor

#endif  // EVACTOR_RUNTIME_EVENTS_H_
