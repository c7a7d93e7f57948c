// evactor::Listener — accepts connections on a Loop (libevent's evconnlistener).
//
//   auto l = Listener::Bind(*loop, SocketAddress::Loopback4(0),
//                           [](int fd, const SocketAddress& peer) { Serve(fd); });
//   uint16_t port = (*l)->local_address().port();
//
// The callback owns each accepted fd (non-blocking, close-on-exec). Up to
// `max_accepts_per_wakeup` connections are taken per readiness, so one busy listener
// cannot starve the rest of the loop.
//
// Running out of fds (EMFILE/ENFILE) does not make the loop spin: the listener keeps
// one spare fd open (/dev/null); when accept() fails for lack of fds it closes the
// spare, accepts the waiting connection into the freed slot and hands it to the
// callback as usual, then tries to reopen the spare. While that fails, accepting is
// paused and retried every `emfile_retry` (connections wait in the kernel's backlog,
// none is dropped), so accepting resumes within that interval of fds being freed. The
// error callback, if set, hears about each pause.
//
// Thread safety: the loop's thread only. Destroying the Listener from any callback
// (its own included) is safe; it closes the listening fd unless Release()d.
#ifndef EVACTOR_IO_LISTENER_H_
#define EVACTOR_IO_LISTENER_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/address.h"
#include "io/socket_util.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/timer.h"

namespace evactor {

struct ListenerOptions {
  ListenSocketOptions socket;
  int max_accepts_per_wakeup = 64;
  absl::Duration emfile_retry = absl::Milliseconds(10);
  // Start disabled (Enable() later).
  bool start_disabled = false;
};

class Listener {
 public:
  using AcceptCallback = absl::AnyInvocable<void(int fd, const SocketAddress& peer)>;
  using ErrorCallback = absl::AnyInvocable<void(const absl::Status& error)>;

  // Creates the listening socket and starts accepting.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(Loop& loop, const SocketAddress& address,
                                                        AcceptCallback on_accept,
                                                        ListenerOptions options = {});
  // Accepts on an existing listening socket (made non-blocking here); takes ownership.
  static absl::StatusOr<std::unique_ptr<Listener>> Adopt(Loop& loop, int listen_fd,
                                                         AcceptCallback on_accept,
                                                         ListenerOptions options = {});
  ~Listener();

  absl::Status Enable();
  void Disable();
  void set_error_callback(ErrorCallback cb) { on_error_ = std::move(cb); }

  int fd() const { return fd_; }
  const SocketAddress& local_address() const { return local_; }
  // Connections accepted, and pauses for lack of fds, so far.
  uint64_t accepted() const { return accepted_; }
  uint64_t fd_exhaustions() const { return exhaustions_; }
  // Gives up ownership of the listening fd (it is not closed by ~Listener).
  int Release();

 private:
  Listener(Loop& loop, int fd, AcceptCallback cb, ListenerOptions options);
  void OnReadable();
  void AcceptBatch(const bool& destroyed);
  void OnNoFds(int err, const bool& destroyed);
  void ReopenSpare();

  Loop& loop_;
  int fd_;
  AcceptCallback on_accept_;
  ErrorCallback on_error_;
  ListenerOptions options_;
  SocketAddress local_;
  IoWatcher watcher_;
  Timer retry_;
  int spare_fd_ = -1;
  bool enabled_ = false;
  bool paused_ = false;
  uint64_t accepted_ = 0;
  uint64_t exhaustions_ = 0;
  // While an accept loop runs, points at its local flag; the destructor sets it so
  // the loop notices that a callback destroyed the listener.
  bool* destroyed_ = nullptr;
};

}  // namespace evactor

#endif  // EVACTOR_IO_LISTENER_H_
