// evactor::Connector — a non-blocking connect with a timeout (the connect half of
// libevent's bufferevent_socket_connect).
//
//   auto c = Connector::Connect(*loop, *SocketAddress::Parse("127.0.0.1:80"),
//                               absl::Seconds(5), [](absl::StatusOr<int> fd) {
//                                 if (!fd.ok()) return Report(fd.status());
//                                 Serve(*fd);   // connected, non-blocking; ours now
//                               });
//
// The callback runs exactly once, on the loop (never inside Connect): with the
// connected fd (owned by the callback from then on), or with the error — the
// connect errno as a status (ECONNREFUSED is Unavailable...), DeadlineExceeded when
// the timeout passed. Destroying the Connector before then cancels: no callback, and
// the socket is closed. IPv4, IPv6 and UNIX addresses.
//
// Thread safety: the loop's thread only; destroying it from any callback is safe.
#ifndef EVACTOR_IO_CONNECTOR_H_
#define EVACTOR_IO_CONNECTOR_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/address.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"

namespace evactor {

class Connector {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<int> fd)>;

  // Starts connecting. Errors that happen before the loop is involved (socket()
  // failing) are returned here and the callback is not called; everything later,
  // including an immediate ECONNREFUSED, goes to the callback.
  static absl::StatusOr<std::unique_ptr<Connector>> Connect(Loop& loop,
                                                            const SocketAddress& address,
                                                            absl::Duration timeout, Callback cb);
  ~Connector();

  const SocketAddress& address() const { return address_; }
  bool done() const { return cb_ == nullptr; }
  // The errno behind a failure (ETIMEDOUT for the timeout), valid in and after the
  // callback; 0 on success.
  int error() const { return error_; }

 private:
  Connector(Loop& loop, const SocketAddress& address, Callback cb);
  void OnEvent(uint32_t bits);
  void Finish(absl::StatusOr<int> result);

  Loop& loop_;
  SocketAddress address_;
  Callback cb_;
  int fd_ = -1;
  int early_errno_ = 0;  // connect() failed at once; reported from the loop
  int error_ = 0;
  std::unique_ptr<IoWatcher> watcher_;
};

}  // namespace evactor

#endif  // EVACTOR_IO_CONNECTOR_H_
