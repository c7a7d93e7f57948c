// echo server: every byte a client sends comes back to it.
//
//   bazel run //examples/echo:server -- -p 7000 -l 127.0.0.1
//
// One Loop, one persistent read watcher per connection; a write watcher only while
// a client does not take its echo fast enough. SIGINT/SIGTERM stop it cleanly.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "runtime/io_watcher.h"
#include "runtime/loop.h"
#include "runtime/signal_watcher.h"

namespace {

struct Connection {
  int fd = -1;
  std::string pending;  // echo the peer has not taken yet
  std::unique_ptr<evactor::IoWatcher> reader;
  std::unique_ptr<evactor::IoWatcher> writer;
};

class EchoServer {
 public:
  EchoServer(evactor::Loop& loop, int listen_fd) : loop_(loop), listen_fd_(listen_fd) {}

  absl::Status Start() {
    acceptor_ = std::make_unique<evactor::IoWatcher>(loop_, listen_fd_, evactor::kRead,
                                                     [this](uint32_t) { Accept(); });
    return acceptor_->Start();
  }

  void StopAll() {
    acceptor_.reset();
    for (auto& [fd, conn] : conns_) close(fd);
    conns_.clear();
  }

 private:
  void Accept() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) perror("echo: accept");
        return;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_unique<Connection>();
      conn->fd = fd;
      Connection* c = conn.get();
      c->reader = std::make_unique<evactor::IoWatcher>(loop_, fd, evactor::kRead,
                                                       [this, c](uint32_t) { OnReadable(c); });
      c->writer = std::make_unique<evactor::IoWatcher>(loop_, fd, evactor::kWrite,
                                                       [this, c](uint32_t) { OnWritable(c); });
      if (!c->reader->Start().ok()) {
        close(fd);
        continue;
      }
      conns_.emplace(fd, std::move(conn));
    }
  }

  void OnReadable(Connection* c) {
    char buf[16384];
    const ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return Close(c);
    if (n < 0) return;
    c->pending.append(buf, static_cast<size_t>(n));
    OnWritable(c);
  }

  void OnWritable(Connection* c) {
    while (!c->pending.empty()) {
      const ssize_t n = send(c->fd, c->pending.data(), c->pending.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return Close(c);
      }
      c->pending.erase(0, static_cast<size_t>(n));
    }
    if (c->pending.empty()) {
      c->writer->Stop();
      if (!c->reader->started() && !c->reader->Start().ok()) return Close(c);
    } else {
      // Stop reading until the peer takes its echo: bounded memory per client.
      c->reader->Stop();
      if (!c->writer->started() && !c->writer->Start().ok()) return Close(c);
    }
  }

  void Close(Connection* c) {
    const int fd = c->fd;
    close(fd);
    conns_.erase(fd);  // destroys the watchers, also when called from their callbacks
  }

  evactor::Loop& loop_;
  int listen_fd_;
  std::unique_ptr<evactor::IoWatcher> acceptor_;
  absl::flat_hash_map<int, std::unique_ptr<Connection>> conns_;
};

void Usage() {
  fprintf(stderr, "usage: server [-p port (7000)] [-l address (127.0.0.1)] [-h]\n");
}

}  // namespace

int main(int argc, char** argv) {
  int port = 7000;
  const char* address = "127.0.0.1";
  int opt;
  while ((opt = getopt(argc, argv, "p:l:h")) != -1) {
    switch (opt) {
      case 'p':
        port = atoi(optarg);
        break;
      case 'l':
        address = optarg;
        break;
      case 'h':
        Usage();
        return 0;
      default:
        Usage();
        return 2;
    }
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "echo: bad port %d\n", port);
    return 2;
  }
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
    fprintf(stderr, "echo: bad IPv4 address %s\n", address);
    return 2;
  }
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(lfd, 1024) < 0) {
    perror("echo: bind/listen");
    return 1;
  }

  auto loop = evactor::Loop::Create();
  if (!loop.ok()) {
    fprintf(stderr, "echo: %s\n", std::string(loop.status().message()).c_str());
    return 1;
  }
  EchoServer server(**loop, lfd);
  if (absl::Status s = server.Start(); !s.ok()) {
    fprintf(stderr, "echo: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto stop = [&](int signo, int) {
    fprintf(stderr, "echo: signal %d, stopping\n", signo);
    (*loop)->Exit();
  };
  evactor::SignalWatcher sigint(**loop, SIGINT, stop);
  evactor::SignalWatcher sigterm(**loop, SIGTERM, stop);
  if (!sigint.Start().ok() || !sigterm.Start().ok()) return 1;

  fprintf(stderr, "echo: listening on %s:%d (backend %s)\n", address, port,
          std::string((*loop)->backend_name()).c_str());
  auto result = (*loop)->Run();
  server.StopAll();
  close(lfd);
  if (!result.ok()) {
    fprintf(stderr, "echo: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  return 0;
}
