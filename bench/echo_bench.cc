// echo_bench — a TCP echo server on one loop: evactor's BufferedSocket against
// libevent 2.1's bufferevent, driven by the same load client, in the same run.
//
//   bazel run --config=opt //bench:echo_bench             # full run (5 rounds of 5 s)
//   bazel run --config=opt //bench:echo_bench -- --quick  # a smoke run, under a minute
//
// Servers (each in its own child process, one loop, one thread; TCP_NODELAY on every
// accepted socket):
//   evactor   Loop + Listener + one BufferedSocket per connection; the read callback
//             moves input to output (output().Append(std::move(input())), no copy).
//   libevent  evconnlistener + bufferevent_socket_new per connection; the read callback
//             does evbuffer_add_buffer(output, input).
//   evactor+flush  (informational, not in the speedups) the evactor server with Flush()
//             after the move: the echo is written at once instead of when the loop next
//             reports the socket writable, so the write watcher is started and stopped
//             within one iteration and no epoll_ctl reaches the kernel. It shows what an
//             optimistic write inside BufferedSocket would gain. --no_flush_variant
//             leaves it out.
// Each child binds 127.0.0.1:0 and reports its port to the parent through a pipe. The
// parent reads the child's CPU time (utime + stime from /proc/<pid>/stat) at the start
// and the end of each timed window, so the table shows the server's CPU per message,
// not just throughput: the client and the servers share this machine's cores, so the
// client may well be what limits messages/s.
//
// Client (the parent; the same code for both servers): one thread, raw epoll
// (level-triggered), no libevent, no evactor. C connections (64), each with exactly one
// message in flight: send a message, wait until the whole echo is back, send the next.
// Every echoed byte is compared with what was sent: each connection has its own random
// pattern and each message starts at a different offset in it, so a server that
// drops, reorders, repeats or cross-wires bytes aborts the run instead of looking fast.
//
// A point = one server, one message size: connect C connections, warm up, then a timed
// window; count messages completed in the window. Every server is measured in every
// round (the order rotates and flips from point to point, so drift on this shared machine
// hits them alike); for each server and size the median over the rounds counts (5
// rounds, 3 with --quick). Each point starts with fresh connections; the servers stay up
// for the whole run and are stopped by pid (SIGTERM, then waitpid) at the end. Every
// wait is bounded: a server that stops echoing for 10 s aborts the run.
//
// Columns: msgs/s (messages echoed per second over all connections), MB/s (msgs/s x
// message size, one direction, 10^6 bytes), srv_us/msg (server CPU per message, with its
// user-space part), srv_cpu (server CPU / wall time), cli_us/msg (client CPU per message). For
// evactor the child also reports its loop's counters per message (iterations, callbacks, backend
// registration changes), read through a SIGUSR1 at both ends of the window.
//
// The closing lines read `speedup <name> <x>` with x = libevent's cost / evactor's
// cost (x > 1: evactor is better): echo_64b / echo_16k compare messages/s (evactor's
// over libevent's), echo_cpu_64b / echo_cpu_16k compare server CPU per message
// (libevent's over evactor's).
//
// For profiling, the pieces run on their own:
//   echo_bench --serve=evactor|libevent|evactor_flush [--port=P]
//                                  # a server in the foreground (SIGTERM/SIGINT stop it)
//   echo_bench --client=P --size=64 --seconds=10   # the load client against port P
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "io/address.h"
#include "io/buffer.h"
#include "io/buffered_socket.h"
#include "io/listener.h"
#include "runtime/loop.h"
#include "runtime/signal_watcher.h"

namespace {

// ---------------------------------------------------------------------------
// Small utilities.

// Children still running; Die() stops them so that a failed run leaves nothing behind.
std::vector<pid_t> g_children;
bool g_in_child = false;

void StopChild(pid_t pid);

using evactor::bench::Die;
using evactor::bench::Median;
using evactor::bench::NowNs;
using evactor::bench::SleepNs;

// Die's cleanup in the parent: the servers it forked go too.
void StopChildrenBeforeDie() {
  if (g_in_child) return;
  std::vector<pid_t> children = g_children;
  for (pid_t pid : children) StopChild(pid);
}

int64_t SelfCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct CpuTimes {
  double user = 0;  // seconds
  double sys = 0;
  double total() const { return user + sys; }
};

// utime and stime of `pid` from /proc/<pid>/stat, in seconds.
CpuTimes ProcessCpu(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open %s: %s", path, std::strerror(errno));
  char buf[1024];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) Die("read %s failed", path);
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields restart after
  // the last ')'. Then: 3 state, 4 ppid, ..., 14 utime, 15 stime.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) Die("%s: unexpected format", path);
  ++p;
  unsigned long long utime = 0, stime = 0;
  int field = 2;
  while (*p != '\0' && field < 15) {
    while (*p == ' ') ++p;
    ++field;
    if (field == 14) utime = std::strtoull(p, nullptr, 10);
    if (field == 15) stime = std::strtoull(p, nullptr, 10);
    while (*p != '\0' && *p != ' ') ++p;
  }
  if (field < 15) Die("%s: too few fields", path);
  static const long ticks = sysconf(_SC_CLK_TCK);
  const double per_tick = 1.0 / static_cast<double>(ticks > 0 ? ticks : 100);
  return CpuTimes{static_cast<double>(utime) * per_tick, static_cast<double>(stime) * per_tick};
}

void SetNoDelayOrDie(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    Die("setsockopt(TCP_NODELAY): %s", std::strerror(errno));
  }
}

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent is gone; nothing useful to do
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads one '\n'-terminated line from fd, waiting at most timeout_ns in total.
std::optional<std::string> ReadLineWithTimeout(int fd, int64_t timeout_ns) {
  std::string line;
  const int64_t deadline = NowNs() + timeout_ns;
  while (true) {
    const int64_t left = deadline - NowNs();
    if (left <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left / 1'000'000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return std::nullopt;  // EOF: the child is gone
    if (c == '\n') return line;
    line.push_back(c);
    if (line.size() > 4096) return std::nullopt;
  }
}

// ---------------------------------------------------------------------------
// Servers. Each runs in the calling process until SIGTERM/SIGINT and returns the exit
// status. `report_fd` (or -1) gets "port N\n" once listening, and for evactor
// "stats <iterations> <callbacks> <backend_changes>\n" on every SIGUSR1.

// kEvactorFlush: evactor with Flush() at the end of the read callback (an informational
// row, not part of the comparison): it writes the echo at once instead of waiting for
// the loop to report the socket writable, which is what an optimistic write inside
// BufferedSocket would do.
enum class ServerKind { kEvactor, kLibevent, kEvactorFlush };

const char* ServerName(ServerKind k) {
  switch (k) {
    case ServerKind::kEvactor:
      return "evactor";
    case ServerKind::kLibevent:
      return "libevent";
    case ServerKind::kEvactorFlush:
      return "evactor+flush";
  }
  return "?";
}

int RunEvactorServer(uint16_t port, int report_fd, bool flush) {
  absl::StatusOr<std::unique_ptr<evactor::Loop>> loop_or = evactor::Loop::Create();
  if (!loop_or.ok()) Die("Loop::Create: %s", std::string(loop_or.status().message()).c_str());
  std::unique_ptr<evactor::Loop> loop = *std::move(loop_or);
  {
    std::unordered_map<evactor::BufferedSocket*, std::unique_ptr<evactor::BufferedSocket>> conns;
    auto listener = evactor::Listener::Bind(
        *loop, evactor::SocketAddress::Loopback4(port), [&](int fd, const evactor::SocketAddress&) {
          SetNoDelayOrDie(fd);
          auto bs = std::make_unique<evactor::BufferedSocket>(*loop, fd);
          evactor::BufferedSocket* raw = bs.get();
          evactor::BufferedSocket::DataCallback on_read;
          if (flush) {
            on_read = [](evactor::BufferedSocket& s) {
              s.output().Append(std::move(s.input()));
              s.Flush().IgnoreError();  // an error also reaches the event callback
            };
          } else {
            on_read = [](evactor::BufferedSocket& s) { s.output().Append(std::move(s.input())); };
          }
          raw->SetCallbacks(
              std::move(on_read), nullptr,
              [&conns](evactor::BufferedSocket& s, uint32_t what, int) {
                if (what & (evactor::kBevEof | evactor::kBevError | evactor::kBevTimeout)) {
                  conns.erase(&s);  // frees it
                }
              });
          if (absl::Status s = raw->Enable(evactor::kBevReading); !s.ok()) {
            Die("Enable: %s", std::string(s.message()).c_str());
          }
          conns.emplace(raw, std::move(bs));
        });
    if (!listener.ok()) Die("Listener::Bind: %s", std::string(listener.status().message()).c_str());
    evactor::SignalWatcher term(*loop, SIGTERM, [&](int, int) { loop->Break(); });
    evactor::SignalWatcher intr(*loop, SIGINT, [&](int, int) { loop->Break(); });
    evactor::SignalWatcher usr1(*loop, SIGUSR1, [&](int, int) {
      if (report_fd < 0) return;
      const evactor::Loop::Stats st = loop->stats();
      char line[160];
      std::snprintf(line, sizeof(line), "stats %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                    st.iterations, st.callbacks, st.backend_changes);
      WriteAll(report_fd, line);
    });
    for (evactor::SignalWatcher* w : {&term, &intr, &usr1}) {
      if (absl::Status s = w->Start(); !s.ok()) {
        Die("SignalWatcher::Start: %s", std::string(s.message()).c_str());
      }
    }
    const uint16_t bound = (*listener)->local_address().port();
    if (report_fd >= 0) {
      WriteAll(report_fd, "port " + std::to_string(bound) + "\n");
    } else {
      std::printf("evactor%s echo server on 127.0.0.1:%u\n",
                  flush ? " (Flush in the read callback)" : "", unsigned{bound});
      std::fflush(stdout);
    }
    absl::StatusOr<evactor::RunResult> r = loop->Run();
    if (!r.ok()) Die("Loop::Run: %s", std::string(r.status().message()).c_str());
    conns.clear();
  }
  return 0;
}

void LeRead(bufferevent* bev, void*) {
  evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

void LeEvent(bufferevent* bev, short what, void*) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) bufferevent_free(bev);
}

void LeAccept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void*) {
  SetNoDelayOrDie(fd);
  event_base* base = evconnlistener_get_base(listener);
  bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) Die("bufferevent_socket_new failed");
  bufferevent_setcb(bev, LeRead, nullptr, LeEvent, nullptr);
  if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0) Die("bufferevent_enable failed");
}

void LeBreak(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<event_base*>(arg));
}

int RunLibeventServer(uint16_t port, int report_fd) {
  event_base* base = event_base_new();
  if (base == nullptr) Die("event_base_new failed");
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  evconnlistener* listener =
      evconnlistener_new_bind(base, LeAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                              -1, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  if (listener == nullptr) Die("evconnlistener_new_bind: %s", std::strerror(errno));
  event* term = evsignal_new(base, SIGTERM, LeBreak, base);
  event* intr = evsignal_new(base, SIGINT, LeBreak, base);
  if (term == nullptr || intr == nullptr || evsignal_add(term, nullptr) != 0 ||
      evsignal_add(intr, nullptr) != 0) {
    Die("evsignal_new/add failed");
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound), &len) !=
      0) {
    Die("getsockname: %s", std::strerror(errno));
  }
  if (report_fd >= 0) {
    WriteAll(report_fd, "port " + std::to_string(ntohs(bound.sin_port)) + "\n");
  } else {
    std::printf("libevent %s (%s) echo server on 127.0.0.1:%u\n", event_get_version(),
                event_base_get_method(base), unsigned{ntohs(bound.sin_port)});
    std::fflush(stdout);
  }
  if (event_base_dispatch(base) < 0) Die("event_base_dispatch failed");
  // Connections still open are not freed one by one: the process ends here.
  event_free(term);
  event_free(intr);
  evconnlistener_free(listener);
  return 0;
}

int RunServer(ServerKind kind, uint16_t port, int report_fd) {
  signal(SIGPIPE, SIG_IGN);
  return kind == ServerKind::kLibevent
             ? RunLibeventServer(port, report_fd)
             : RunEvactorServer(port, report_fd, kind == ServerKind::kEvactorFlush);
}

struct Child {
  ServerKind kind;
  pid_t pid = -1;
  int report_fd = -1;  // read end of the child's report pipe
  uint16_t port = 0;
};

// Forks a server child; returns once it listens.
Child StartChild(ServerKind kind, const std::vector<int>& close_in_child) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) Die("pipe2: %s", std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Die("fork: %s", std::strerror(errno));
  if (pid == 0) {
    g_in_child = true;
    g_children.clear();
    evactor::bench::g_die_name = "echo_bench (server)";
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
    if (getppid() != parent) _exit(1);
    close(p[0]);
    for (int fd : close_in_child) close(fd);
    _exit(RunServer(kind, 0, p[1]));
  }
  close(p[1]);
  g_children.push_back(pid);
  Child c{kind, pid, p[0], 0};
  std::optional<std::string> line = ReadLineWithTimeout(c.report_fd, int64_t{20} * 1'000'000'000);
  if (!line || line->rfind("port ", 0) != 0) Die("%s server did not start", ServerName(kind));
  c.port = static_cast<uint16_t>(std::atoi(line->c_str() + 5));
  if (c.port == 0) Die("%s server reported a bad port", ServerName(kind));
  return c;
}

// SIGTERM, then waitpid (bounded: SIGKILL after 5 s).
void StopChild(pid_t pid) {
  g_children.erase(std::remove(g_children.begin(), g_children.end(), pid), g_children.end());
  kill(pid, SIGTERM);
  const int64_t deadline = NowNs() + int64_t{5} * 1'000'000'000;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (NowNs() > deadline) {
      std::fprintf(stderr, "echo_bench: server %d ignored SIGTERM; killing it\n",
                   static_cast<int>(pid));
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return;
    }
    SleepNs(1'000'000);
  }
}

struct LoopStats {
  bool valid = false;
  uint64_t iterations = 0, callbacks = 0, changes = 0;
};

// Asks an evactor child for its loop counters.
LoopStats QueryStats(const Child& c) {
  LoopStats st;
  if (c.kind == ServerKind::kLibevent) return st;
  if (kill(c.pid, SIGUSR1) != 0) Die("kill(SIGUSR1): %s", std::strerror(errno));
  std::optional<std::string> line = ReadLineWithTimeout(c.report_fd, int64_t{5} * 1'000'000'000);
  if (!line) Die("evactor server did not answer SIGUSR1");
  unsigned long long it = 0, cb = 0, ch = 0;
  if (std::sscanf(line->c_str(), "stats %llu %llu %llu", &it, &cb, &ch) != 3) {
    Die("bad stats line from the server: %s", line->c_str());
  }
  st = {true, it, cb, ch};
  return st;
}

// ---------------------------------------------------------------------------
// The load client: one thread, raw epoll, ping-pong on every connection.

constexpr size_t kPatternSlack = 1021;  // message k starts at (k * 7919) % kPatternSlack
constexpr int64_t kStallNs = int64_t{10} * 1'000'000'000;

struct ClientConn {
  int fd = -1;
  std::vector<char> pattern;  // size + kPatternSlack random bytes, own per connection
  uint64_t seq = 0;           // messages completed
  size_t offset = 0;          // where the message in flight starts in `pattern`
  size_t sent = 0;
  size_t received = 0;
  bool want_out = false;
};

struct PointResult {
  uint64_t messages = 0;
  double seconds = 0;
  double server_cpu_s = 0;
  double server_user_s = 0;  // the user-space part of server_cpu_s
  double client_cpu_s = 0;
  LoopStats stats_begin, stats_end;

  double MsgsPerSec() const { return seconds > 0 ? messages / seconds : 0; }
  double ServerUsPerMsg() const { return messages ? server_cpu_s * 1e6 / messages : 0; }
  double ServerUserUsPerMsg() const { return messages ? server_user_s * 1e6 / messages : 0; }
  double ClientUsPerMsg() const { return messages ? client_cpu_s * 1e6 / messages : 0; }
};

class Client {
 public:
  Client(uint16_t port, size_t size, int conns) : port_(port), size_(size), nconns_(conns) {}
  ~Client() { CloseAll(); }

  // Connects, warms up for warmup_ns, then counts messages for window_ns. `server`
  // (or nullptr) is the child whose CPU time and counters frame the window.
  PointResult Run(int64_t warmup_ns, int64_t window_ns, const Child* server) {
    Connect();
    for (size_t i = 0; i < conns_.size(); ++i) StartMessage(i);
    PointResult res;
    std::vector<epoll_event> events(conns_.size() + 1);
    bool timing = false;
    uint64_t count0 = 0;
    int64_t t0 = 0, client_cpu0 = 0;
    CpuTimes server_cpu0;
    const int64_t start = NowNs();
    int64_t last_progress = start;
    uint64_t last_count = 0;
    while (true) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 50);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die("epoll_wait: %s", std::strerror(errno));
      }
      for (int i = 0; i < n; ++i) {
        const size_t idx = events[i].data.u32;
        const uint32_t ev = events[i].events;
        if (ev & EPOLLOUT) ContinueSend(idx);
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) OnReadable(idx);
      }
      const int64_t now = NowNs();
      if (completed_ != last_count) {
        last_count = completed_;
        last_progress = now;
      } else if (now - last_progress > kStallNs) {
        Die("no echo for %.0f s (size %zu): the server stalled", kStallNs / 1e9, size_);
      }
      if (!timing && now - start >= warmup_ns) {
        timing = true;
        if (server != nullptr) {
          res.stats_begin = QueryStats(*server);
          server_cpu0 = ProcessCpu(server->pid);
        }
        client_cpu0 = SelfCpuNs();
        count0 = completed_;
        t0 = NowNs();
      } else if (timing && now - t0 >= window_ns) {
        const int64_t t1 = NowNs();
        res.messages = completed_ - count0;
        res.client_cpu_s = (SelfCpuNs() - client_cpu0) / 1e9;
        if (server != nullptr) {
          const CpuTimes cpu1 = ProcessCpu(server->pid);
          res.server_cpu_s = cpu1.total() - server_cpu0.total();
          res.server_user_s = cpu1.user - server_cpu0.user;
          res.stats_end = QueryStats(*server);
        }
        res.seconds = (t1 - t0) / 1e9;
        break;
      }
    }
    CloseAll();
    if (res.messages == 0) Die("no message completed in the window (size %zu)", size_);
    return res;
  }

 private:
  void Connect() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) Die("epoll_create1: %s", std::strerror(errno));
    std::mt19937_64 rng(0x5eed0000u + size_);
    const evactor::SocketAddress addr = evactor::SocketAddress::Loopback4(port_);
    conns_.resize(static_cast<size_t>(nconns_));
    for (size_t i = 0; i < conns_.size(); ++i) {
      ClientConn& c = conns_[i];
      c.pattern.resize(size_ + kPatternSlack);
      for (char& b : c.pattern) b = static_cast<char>(rng() >> 56);
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c.fd < 0) Die("socket: %s", std::strerror(errno));
      if (connect(c.fd, addr.sockaddr_ptr(), addr.length()) != 0) {
        Die("connect to port %u: %s", unsigned{port_}, std::strerror(errno));
      }
      SetNoDelayOrDie(c.fd);
      if (fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK) != 0) {
        Die("fcntl(O_NONBLOCK): %s", std::strerror(errno));
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        Die("epoll_ctl(ADD): %s", std::strerror(errno));
      }
    }
    scratch_.resize(size_);
  }

  void CloseAll() {
    for (ClientConn& c : conns_) {
      if (c.fd >= 0) close(c.fd);
      c.fd = -1;
    }
    conns_.clear();
    if (epfd_ >= 0) close(epfd_);
    epfd_ = -1;
  }

  void SetWantOut(size_t idx, bool want) {
    ClientConn& c = conns_[idx];
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    ev.data.u32 = static_cast<uint32_t>(idx);
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
      Die("epoll_ctl(MOD): %s", std::strerror(errno));
    }
  }

  void StartMessage(size_t idx) {
    ClientConn& c = conns_[idx];
    c.offset = static_cast<size_t>((c.seq * 7919) % kPatternSlack);
    c.sent = 0;
    c.received = 0;
    ContinueSend(idx);
  }

  void ContinueSend(size_t idx) {
    ClientConn& c = conns_[idx];
    while (c.sent < size_) {
      ssize_t n = send(c.fd, c.pattern.data() + c.offset + c.sent, size_ - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SetWantOut(idx, true);
        return;
      }
      Die("send on connection %zu: %s", idx, n < 0 ? std::strerror(errno) : "returned 0");
    }
    SetWantOut(idx, false);
  }

  void OnReadable(size_t idx) {
    ClientConn& c = conns_[idx];
    // More than one message is never outstanding, so asking for what is missing never
    // reads past this echo.
    const size_t want = size_ - c.received;
    ssize_t n = recv(c.fd, scratch_.data(), want, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return;
      Die("recv on connection %zu: %s", idx, std::strerror(errno));
    }
    if (n == 0) Die("the server closed connection %zu", idx);
    if (c.received + static_cast<size_t>(n) > c.sent) {
      Die("connection %zu: echo ran ahead of what was sent (%zu > %zu)", idx,
          c.received + static_cast<size_t>(n), c.sent);
    }
    if (std::memcmp(scratch_.data(), c.pattern.data() + c.offset + c.received,
                    static_cast<size_t>(n)) != 0) {
      Die("connection %zu, message %" PRIu64 ": echoed bytes %zu..%zu differ from those sent", idx,
          c.seq, c.received, c.received + static_cast<size_t>(n));
    }
    c.received += static_cast<size_t>(n);
    if (c.received < size_) return;
    ++c.seq;
    ++completed_;
    StartMessage(idx);
  }

  uint16_t port_;
  size_t size_;
  int nconns_;
  int epfd_ = -1;
  std::vector<ClientConn> conns_;
  std::vector<char> scratch_;
  uint64_t completed_ = 0;
};

// ---------------------------------------------------------------------------
// The benchmark.

struct Config {
  bool quick = false;
  int rounds = 5;
  double seconds = 5;
  double warmup = 0.5;
  int conns = 64;
  std::vector<size_t> sizes = {64, 16384};
  bool flush_variant = true;  // also measure kEvactorFlush (informational)
};

std::string SizeName(size_t size) {
  if (size >= 1024 && size % 1024 == 0) return std::to_string(size / 1024) + "k";
  return std::to_string(size) + "b";
}

int RunBenchmark(const Config& cfg) {
  std::printf(
      "echo_bench: TCP echo on loopback, server on one loop in its own process; libevent %s; "
      "%d connections, one message in flight each; %d rounds of %.3g s (warm-up %.3g s), "
      "median%s\n",
      event_get_version(), cfg.conns, cfg.rounds, cfg.seconds, cfg.warmup,
      cfg.quick ? " [--quick]" : "");
  std::printf("CPU cores online: %ld (client and servers share them); clock ticks/s: %ld\n",
              sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_CLK_TCK));
  std::fflush(stdout);

  // children[0] is evactor and children[1] libevent: the comparison; [2] the variant.
  std::vector<Child> children;
  std::vector<int> parent_fds;
  for (ServerKind kind : {ServerKind::kEvactor, ServerKind::kLibevent, ServerKind::kEvactorFlush}) {
    if (kind == ServerKind::kEvactorFlush && !cfg.flush_variant) continue;
    children.push_back(StartChild(kind, parent_fds));
    parent_fds.push_back(children.back().report_fd);
    std::printf("server %-13s pid %d, port %u\n", ServerName(kind),
                static_cast<int>(children.back().pid), unsigned{children.back().port});
  }
  const int nservers = static_cast<int>(children.size());

  const int64_t warmup_ns = static_cast<int64_t>(cfg.warmup * 1e9);
  const int64_t window_ns = static_cast<int64_t>(cfg.seconds * 1e9);
  // results[size][server][round]
  std::vector<std::vector<std::vector<PointResult>>> results(
      cfg.sizes.size(), std::vector<std::vector<PointResult>>(children.size()));
  for (int round = 0; round < cfg.rounds; ++round) {
    for (size_t si = 0; si < cfg.sizes.size(); ++si) {
      // The order rotates (and flips) from point to point, so drift hits all alike.
      const int step = (round + static_cast<int>(si)) % 2 == 0 ? 1 : nservers - 1;
      for (int k = 0; k < nservers; ++k) {
        const int which = (round + static_cast<int>(si) + k * step) % nservers;
        const Child& child = children[which];
        Client client(child.port, cfg.sizes[si], cfg.conns);
        PointResult r = client.Run(warmup_ns, window_ns, &child);
        std::printf(
            "  round %d %-6s %-13s %10.0f msgs/s  server %6.2f us/msg  client %6.2f us/msg\n",
            round + 1, SizeName(cfg.sizes[si]).c_str(), ServerName(child.kind), r.MsgsPerSec(),
            r.ServerUsPerMsg(), r.ClientUsPerMsg());
        std::fflush(stdout);
        results[si][static_cast<size_t>(which)].push_back(r);
      }
    }
  }
  for (Child& c : children) {
    StopChild(c.pid);
    close(c.report_fd);
  }

  std::printf("\n%-6s %-13s %11s %9s %11s %11s %8s %11s %23s\n", "size", "server", "msgs/s", "MB/s",
              "srv_us/msg", "(user part)", "srv_cpu", "cli_us/msg", "msgs/s min..max");
  struct Summary {
    double msgs = 0, srv_us = 0;
  };
  std::vector<std::vector<Summary>> summary(cfg.sizes.size(),
                                            std::vector<Summary>(children.size()));
  std::vector<std::string> loop_notes;
  for (size_t si = 0; si < cfg.sizes.size(); ++si) {
    for (int which = 0; which < nservers; ++which) {
      const auto& rs = results[si][static_cast<size_t>(which)];
      std::vector<double> msgs, srv, usr, util, cli, it, cb, ch;
      for (const PointResult& r : rs) {
        msgs.push_back(r.MsgsPerSec());
        srv.push_back(r.ServerUsPerMsg());
        usr.push_back(r.ServerUserUsPerMsg());
        util.push_back(r.seconds > 0 ? r.server_cpu_s / r.seconds : 0);
        cli.push_back(r.ClientUsPerMsg());
        if (r.stats_begin.valid && r.stats_end.valid && r.messages > 0) {
          const double m = static_cast<double>(r.messages);
          it.push_back((r.stats_end.iterations - r.stats_begin.iterations) / m);
          cb.push_back((r.stats_end.callbacks - r.stats_begin.callbacks) / m);
          ch.push_back((r.stats_end.changes - r.stats_begin.changes) / m);
        }
      }
      Summary s{Median(msgs), Median(srv)};
      summary[si][static_cast<size_t>(which)] = s;
      char range[64];
      std::snprintf(range, sizeof(range), "%.0f..%.0f", *std::min_element(msgs.begin(), msgs.end()),
                    *std::max_element(msgs.begin(), msgs.end()));
      std::printf("%-6s %-13s %11.0f %9.1f %11.2f %11.2f %7.0f%% %11.2f %23s\n",
                  SizeName(cfg.sizes[si]).c_str(), ServerName(children[which].kind), s.msgs,
                  s.msgs * static_cast<double>(cfg.sizes[si]) / 1e6, s.srv_us, Median(usr),
                  Median(util) * 100, Median(cli), range);
      if (!it.empty()) {
        char note[200];
        std::snprintf(note, sizeof(note),
                      "%s loop per message (%s): %.3f iterations, %.2f callbacks, "
                      "%.2f backend changes (epoll_ctl)",
                      ServerName(children[which].kind), SizeName(cfg.sizes[si]).c_str(), Median(it),
                      Median(cb), Median(ch));
        loop_notes.push_back(note);
      }
    }
  }
  std::printf(
      "(MB/s: payload echoed, one direction; srv_us/msg: server utime+stime from "
      "/proc/<pid>/stat per message, of which user part: utime; srv_cpu: server CPU "
      "time / wall time; cli_us/msg: this client's CPU per message)\n");
  if (cfg.flush_variant) {
    std::printf(
        "(evactor+flush: informational, not in the speedups: the same evactor server "
        "with Flush() after moving input to output, i.e. an optimistic write)\n");
  }
  for (const std::string& n : loop_notes) std::printf("%s\n", n.c_str());

  std::printf("\n");
  for (size_t si = 0; si < cfg.sizes.size(); ++si) {
    const Summary& ev = summary[si][0];
    const Summary& le = summary[si][1];
    std::printf("speedup echo_%s %.3f\n", SizeName(cfg.sizes[si]).c_str(),
                le.msgs > 0 ? ev.msgs / le.msgs : 0);
  }
  for (size_t si = 0; si < cfg.sizes.size(); ++si) {
    const Summary& ev = summary[si][0];
    const Summary& le = summary[si][1];
    std::printf("speedup echo_cpu_%s %.3f\n", SizeName(cfg.sizes[si]).c_str(),
                ev.srv_us > 0 ? le.srv_us / ev.srv_us : 0);
  }
  return 0;
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: echo_bench [--quick] [--rounds=R] [--seconds=S] [--warmup=S] "
               "[--conns=C] [--sizes=N,N,...] [--no_flush_variant]\n"
               "       echo_bench --serve=evactor|libevent|evactor_flush [--port=P]\n"
               "       echo_bench --client=PORT [--size=N] [--seconds=S] [--conns=C]\n");
  std::exit(1);
}

bool ParseDouble(std::string_view s, double* out) {
  std::string str(s);
  char* end = nullptr;
  *out = std::strtod(str.c_str(), &end);
  return end != str.c_str() && *end == '\0';
}

bool ParseInt(std::string_view s, long* out) {
  std::string str(s);
  char* end = nullptr;
  *out = std::strtol(str.c_str(), &end, 10);
  return end != str.c_str() && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  evactor::bench::g_die_name = "echo_bench";
  evactor::bench::g_before_die_exit = StopChildrenBeforeDie;
  Config cfg;
  int rounds = -1;
  double seconds = -1, warmup = -1;
  std::optional<ServerKind> serve;
  long port = 0, client_port = -1, size = 64;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view flag) -> std::optional<std::string_view> {
      if (a.substr(0, flag.size()) == flag) return a.substr(flag.size());
      return std::nullopt;
    };
    long l = 0;
    double d = 0;
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--no_flush_variant") {
      cfg.flush_variant = false;
    } else if (auto v = value("--rounds=")) {
      if (!ParseInt(*v, &l) || l < 1 || l > 1000) Usage();
      rounds = static_cast<int>(l);
    } else if (auto v = value("--seconds=")) {
      if (!ParseDouble(*v, &d) || !(d > 0 && d <= 600)) Usage();
      seconds = d;
    } else if (auto v = value("--warmup=")) {
      if (!ParseDouble(*v, &d) || !(d >= 0 && d <= 60)) Usage();
      warmup = d;
    } else if (auto v = value("--conns=")) {
      if (!ParseInt(*v, &l) || l < 1 || l > 10000) Usage();
      cfg.conns = static_cast<int>(l);
    } else if (auto v = value("--sizes=")) {
      cfg.sizes.clear();
      std::string_view rest = *v;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        if (!ParseInt(rest.substr(0, comma), &l) || l < 1 || l > (64 << 20)) Usage();
        cfg.sizes.push_back(static_cast<size_t>(l));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      if (cfg.sizes.empty()) Usage();
    } else if (auto v = value("--serve=")) {
      if (*v == "evactor") {
        serve = ServerKind::kEvactor;
      } else if (*v == "libevent") {
        serve = ServerKind::kLibevent;
      } else if (*v == "evactor_flush") {
        serve = ServerKind::kEvactorFlush;
      } else {
        Usage();
      }
    } else if (auto v = value("--port=")) {
      if (!ParseInt(*v, &port) || port < 0 || port > 65535) Usage();
    } else if (auto v = value("--client=")) {
      if (!ParseInt(*v, &client_port) || client_port < 1 || client_port > 65535) Usage();
    } else if (auto v = value("--size=")) {
      if (!ParseInt(*v, &size) || size < 1 || size > (64 << 20)) Usage();
    } else {
      Usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (serve) return RunServer(*serve, static_cast<uint16_t>(port), -1);
  // Five rounds in a full run: neighbours on this shared machine make single points
  // noisy, and the median of five shrugs off two bad ones.
  cfg.rounds = rounds > 0 ? rounds : (cfg.quick ? 3 : 5);
  cfg.seconds = seconds > 0 ? seconds : (cfg.quick ? 1.0 : 5.0);
  cfg.warmup = warmup >= 0 ? warmup : (cfg.quick ? 0.25 : 0.5);
  if (client_port > 0) {
    Client client(static_cast<uint16_t>(client_port), static_cast<size_t>(size), cfg.conns);
    PointResult r = client.Run(static_cast<int64_t>(cfg.warmup * 1e9),
                               static_cast<int64_t>(cfg.seconds * 1e9), nullptr);
    std::printf("size %ld: %" PRIu64
                " messages in %.2f s: %.0f msgs/s, %.1f MB/s, client %.2f "
                "us/msg\n",
                size, r.messages, r.seconds, r.MsgsPerSec(),
                r.MsgsPerSec() * static_cast<double>(size) / 1e6, r.ClientUsPerMsg());
    return 0;
  }
  return RunBenchmark(cfg);
}
