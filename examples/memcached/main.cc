// The memcached-compatible server on evactor (what ./tools/run starts).
//
//   server [-p port] [-l addr] [-s unix_socket] [-a mask] [-t threads] [-m MiB]
//          [-c conns] [-I item_size] [-R reqs_per_event] [-b backlog] [-B protocol]
//          [-A] [-F] [-M] [-U 0] [-d] [-P pidfile] [-u user] [-k] [-r] [-v|-vv] [-V]
//          [-h]
//          [-o store=shared|partitioned,stripes=N,lru_bump_interval=S,
//              affinity=auto|on|off,rebalance_ms=N,reuse_port,idle_timeout=S,
//              max_unsent_output=SIZE]
//
// memcached 1.6's flags and long options, so that memcached's own init scripts and
// configuration files (Debian's /etc/memcached.conf: -d -m -p -u -l -P) start this
// server unchanged. Defaults as memcached's: 127.0.0.1:11211, 4 threads, 64 MiB, 1024
// connections, 1 MiB items, 20 requests per event. SIGINT/SIGTERM stop it gracefully.
//
// Exit status: 0 after a graceful stop (also one requested while starting), 1 when the
// server cannot start (address in use, unknown user, ...), 2 for a bad command line.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "examples/memcached/server.h"

namespace {

using evactor::memcached::Config;

void Usage(FILE* to) {
  fprintf(to,
          "evactor memcached-compatible server (memcached %.*s's flags)\n"
          "  -p, --port=<num>          TCP port (default 11211)\n"
          "  -U, --udp-port=<num>      UDP port: only 0 (off, memcached's default)\n"
          "  -s, --unix-socket=<file>  UNIX socket path (instead of TCP)\n"
          "  -a, --unix-mask=<mask>    permissions of the UNIX socket, octal (default 700)\n"
          "  -A, --enable-shutdown     enable the ascii \"shutdown\" command\n"
          "  -l, --listen=<addr>       listen address (default 127.0.0.1)\n"
          "  -d, --daemon              run as a daemon (returns once the server listens)\n"
          "  -r, --enable-coredumps    maximize the core file limit\n"
          "  -u, --user=<user>         assume this user's identity once listening (only\n"
          "                            when started as root)\n"
          "  -m, --memory-limit=<num>  item memory in megabytes (default 64)\n"
          "  -c, --conn-limit=<num>    max simultaneous connections (default 1024)\n"
          "  -M, --disable-evictions   answer out of memory instead of evicting\n"
          "  -k, --lock-memory         lock all paged memory (mlockall)\n"
          "  -v, --verbose             errors and warnings (failed and refused connections)\n"
          "  -vv                       also every connection, command and response\n"
          "  -h, --help                this help\n"
          "  -V, --version             print the version and exit\n"
          "  -P, --pidfile=<file>      write the process id to <file>, removed at exit\n"
          "  -t, --threads=<num>       threads (shards) (default 4)\n"
          "  -R, --max-reqs-per-event=<num>  requests of one connection run before the\n"
          "                            others get their turn (default 20)\n"
          "  -b, --listen-backlog=<num>  listen backlog (default 1024)\n"
          "  -B, --protocol=<name>     auto (default), ascii or binary\n"
          "  -I, --max-item-size=<size>  e.g. 1m, 512k (default 1m; 1k..128m)\n"
          "  -F, --disable-flush-all   refuse flush_all\n"
          "  -f, -n, -L, -W, -X        memcached's slab, large-page, watch and dump\n"
          "                            settings: accepted and ignored (no slabs here)\n"
          "  -o, --extended=<opts>     extended options, comma-separated:\n"
          "             store=shared       every shard serves every key from a store split\n"
          "                                into lock stripes (default)\n"
          "             store=partitioned  every shard owns a part of the keys, lock-free;\n"
          "                                other shards' keys travel there as messages\n"
          "             stripes=<num>      lock stripes of the shared store (default: 1 with\n"
          "                                -t 1, else 8 per thread, at most 64 and one per\n"
          "                                4 * -I of memory)\n"
          "             lru_bump_interval=<s>  a hit moves an item to the LRU head at most\n"
          "                                once per this many seconds (default 60, as\n"
          "                                memcached; 0: every hit)\n"
          "             affinity=auto|on|off  pin each thread to a CPU of those this process\n"
          "                                may use (see taskset) and hand each connection\n"
          "                                to the thread on the CPU its packets arrive on;\n"
          "                                auto (default): when there are at least as many\n"
          "                                CPUs as threads; on: or fail to start. Give\n"
          "                                several servers on one machine their own CPUs\n"
          "                                (taskset -c) or turn this off\n"
          "             rebalance_ms=<num>  auto: every this many ms a thread whose CPU\n"
          "                                other work crowds moves to a less busy CPU,\n"
          "                                another thread's too if it has room (default\n"
          "                                1000; 0: never)\n"
          "             reuse_port         one SO_REUSEPORT listener per thread instead of\n"
          "                                one thread that hands connections out\n"
          "             idle_timeout=<s>   close connections that send nothing, or read\n"
          "                                none of their answers, this long (default 0:\n"
          "                                never)\n"
          "             max_unsent_output=<size>  a connection whose client has not read\n"
          "                                this much of its answers waits, reading nothing,\n"
          "                                until it has (default 4m; at least 64k)\n"
          "             memcached's slab and LRU tuning options (hashpower, slab_chunk_max,\n"
          "             hot_lru_pct, lru_crawler, ...) are accepted and ignored\n"
          "Not supported (refused): -C, -S, -Z, -Y, -e, -D, UDP.\n",
          static_cast<int>(evactor::memcached::kDefaultVersion.size()),
          evactor::memcached::kDefaultVersion.data());
}

// "1m", "512k", "2048" (bytes).
bool ParseSize(const char* text, size_t* out) {
  std::string s(text);
  size_t mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'K')) mult = size_t{1} << 10;
  if (!s.empty() && (s.back() == 'm' || s.back() == 'M')) mult = size_t{1} << 20;
  if (mult != 1) s.pop_back();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v) || v == 0) return false;
  *out = static_cast<size_t>(v) * mult;
  return true;
}

bool ParseNumber(const char* text, uint64_t min, uint64_t max, uint64_t* out) {
  return absl::SimpleAtoi(std::string(text), out) && *out >= min && *out <= max;
}

// memcached's own -o options that tune its slab allocator, LRU threads and hash table,
// none of which exist here: accepted (with or without a value, or a no_ prefix) so
// that a memcached configuration starts this server, and ignored.
bool IsMemcachedTuningOption(absl::string_view name) {
  absl::ConsumePrefix(&name, "no_");  // no_lru_crawler, no_maxconns_fast, no_modern, ...
  static constexpr absl::string_view kNames[] = {
      "maxconns_fast",  "hashpower",         "tail_repair_time",  "hash_algorithm",
      "lru_crawler",    "lru_crawler_sleep", "lru_crawler_tocrawl", "lru_maintainer",
      "hot_lru_pct",    "warm_lru_pct",      "hot_max_factor",    "warm_max_factor",
      "temporary_ttl",  "slab_chunk_max",    "slab_reassign",     "slab_automove",
      "slab_automove_ratio", "slab_automove_window", "read_buf_mem_limit", "modern",
      "watcher_logbuf_size", "worker_logbuf_size", "track_sizes",  "inline_ascii_response",
      "expirezero_does_not_evict", "lru_segmented", "ext_item_size"};
  for (absl::string_view known : kNames) {
    if (name == known) return true;
  }
  return false;
}

// -o store=shared|partitioned,stripes=N,lru_bump_interval=S,affinity=auto|on|off,
//    rebalance_ms=N,reuse_port,idle_timeout=S,max_unsent_output=SIZE (and memcached's
//    tuning options).
bool ParseExtended(const char* text, Config* config) {
  for (absl::string_view option : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const size_t eq = option.find('=');
    const absl::string_view name = option.substr(0, eq);
    const std::string value(eq == absl::string_view::npos ? "" : option.substr(eq + 1));
    uint64_t n = 0;
    if (name == "store" && value == "shared") {
      config->store = evactor::memcached::StoreLayout::kShared;
    } else if (name == "store" && value == "partitioned") {
      config->store = evactor::memcached::StoreLayout::kPartitioned;
    } else if (name == "stripes" && ParseNumber(value.c_str(), 1, 4096, &n)) {
      config->stripes = n;
    } else if (name == "lru_bump_interval" && ParseNumber(value.c_str(), 0, 86400, &n)) {
      config->lru_bump_interval_seconds = static_cast<int64_t>(n);
    } else if (name == "affinity" && value == "auto") {
      config->affinity = evactor::RuntimeOptions::Affinity::kAuto;
    } else if (name == "affinity" && value == "on") {
      config->affinity = evactor::RuntimeOptions::Affinity::kPin;
    } else if (name == "affinity" && value == "off") {
      config->affinity = evactor::RuntimeOptions::Affinity::kNone;
    } else if (name == "rebalance_ms" && ParseNumber(value.c_str(), 0, 3600 * 1000, &n)) {
      config->rebalance_interval = absl::Milliseconds(static_cast<int64_t>(n));
    } else if (name == "reuse_port" && eq == absl::string_view::npos) {
      config->reuse_port = true;
    } else if (size_t bytes = 0; name == "max_unsent_output" && ParseSize(value.c_str(), &bytes) &&
                                 bytes >= (size_t{64} << 10)) {
      config->max_unsent_output = bytes;
    } else if (name == "idle_timeout" && ParseNumber(value.c_str(), 0, 86400 * 365, &n)) {
      config->idle_timeout = absl::Seconds(static_cast<int64_t>(n));
    } else if (IsMemcachedTuningOption(name)) {
      if (config->verbosity > 0) {
        fprintf(stderr, "-o %s: memcached tuning option, ignored here\n",
                std::string(option).c_str());
      }
    } else {
      fprintf(stderr, "bad -o option: %s\n", std::string(option).c_str());
      return false;
    }
  }
  return true;
}

// What the process does around the server, from flags that are not Config's.
struct ProcessOptions {
  bool daemonize = false;    // -d
  std::string pid_file;      // -P
  std::string user;          // -u
  bool lock_memory = false;  // -k
  bool core_dumps = false;   // -r
};

// -d: forks; the parent waits until the child reports (ReportReady) and exits with the
// child's verdict: 0 once it listens, 1 if it failed (its error is already on stderr).
// Returns the write end of the report pipe in the child, -1 on error (in the parent
// this never returns).
int Daemonize() {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    perror("pipe");
    return -1;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return -1;
  }
  if (pid > 0) {
    close(report[1]);
    char verdict = '1';
    ssize_t n;
    do {
      n = read(report[0], &verdict, 1);
    } while (n < 0 && errno == EINTR);
    _exit(n == 1 && verdict == '0' ? 0 : 1);
  }
  close(report[0]);
  if (setsid() < 0) perror("setsid");
  return report[1];
}

// The daemon's last steps once it listens: working directory /, standard streams to
// /dev/null (kept with -v, as memcached keeps them), and the parent released.
void ReportReady(int report_fd, bool keep_streams) {
  if (chdir("/") != 0) perror("chdir /");
  if (!keep_streams) {
    const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      close(null);
    }
  }
  const char ok = '0';
  [[maybe_unused]] ssize_t n = write(report_fd, &ok, 1);
  close(report_fd);
}

// -u: as memcached, only a root process changes identity (supplementary groups, group,
// then user); otherwise the flag is ignored.
bool DropPrivileges(const std::string& user) {
  if (user.empty() || (getuid() != 0 && geteuid() != 0)) return true;
  const passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) {
    fprintf(stderr, "can't find the user %s to switch to\n", user.c_str());
    return false;
  }
  if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    fprintf(stderr, "failed to assume identity of user %s: %s\n", user.c_str(), strerror(errno));
    return false;
  }
  return true;
}

bool WritePidFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "w");
  if (f == nullptr) {
    fprintf(stderr, "Could not open the pid file %s for writing: %s\n", path.c_str(),
            strerror(errno));
    return false;
  }
  fprintf(f, "%ld\n", static_cast<long>(getpid()));
  return fclose(f) == 0;
}

constexpr option kLongOptions[] = {
    {"port", required_argument, nullptr, 'p'},
    {"udp-port", required_argument, nullptr, 'U'},
    {"unix-socket", required_argument, nullptr, 's'},
    {"unix-mask", required_argument, nullptr, 'a'},
    {"enable-shutdown", no_argument, nullptr, 'A'},
    {"listen", required_argument, nullptr, 'l'},
    {"daemon", no_argument, nullptr, 'd'},
    {"enable-coredumps", no_argument, nullptr, 'r'},
    {"user", required_argument, nullptr, 'u'},
    {"memory-limit", required_argument, nullptr, 'm'},
    {"disable-evictions", no_argument, nullptr, 'M'},
    {"conn-limit", required_argument, nullptr, 'c'},
    {"lock-memory", no_argument, nullptr, 'k'},
    {"verbose", optional_argument, nullptr, 'v'},
    {"help", no_argument, nullptr, 'h'},
    {"version", no_argument, nullptr, 'V'},
    {"pidfile", required_argument, nullptr, 'P'},
    {"slab-growth-factor", required_argument, nullptr, 'f'},
    {"slab-min-size", required_argument, nullptr, 'n'},
    {"enable-largepages", no_argument, nullptr, 'L'},
    {"threads", required_argument, nullptr, 't'},
    {"max-reqs-per-event", required_argument, nullptr, 'R'},
    {"disable-cas", no_argument, nullptr, 'C'},
    {"listen-backlog", required_argument, nullptr, 'b'},
    {"protocol", required_argument, nullptr, 'B'},
    {"max-item-size", required_argument, nullptr, 'I'},
    {"enable-sasl", no_argument, nullptr, 'S'},
    {"disable-flush-all", no_argument, nullptr, 'F'},
    {"disable-dumping", no_argument, nullptr, 'X'},
    {"disable-watch", no_argument, nullptr, 'W'},
    {"auth-file", required_argument, nullptr, 'Y'},
    {"memory-file", required_argument, nullptr, 'e'},
    {"enable-ssl", no_argument, nullptr, 'Z'},
    {"extended", required_argument, nullptr, 'o'},
    {nullptr, 0, nullptr, 0},
};

}  // namespace

int main(int argc, char** argv) {
  Config config;
  ProcessOptions process;
  int opt;
  uint64_t n = 0;
  auto bad = [](char flag, const char* value) {
    fprintf(stderr, "bad -%c %s\n", flag, value);
    return 2;
  };
  while ((opt = getopt_long(argc, argv, "p:U:s:a:Al:dru:m:Mc:kvhVP:f:n:Lt:R:Cb:B:I:SFXWY:e:ZD:o:",
                            kLongOptions, nullptr)) != -1) {
    switch (opt) {
      case 'p':
        if (!ParseNumber(optarg, 0, 65535, &n)) return bad('p', optarg);
        config.port = static_cast<uint16_t>(n);
        break;
      case 'U':
        if (!ParseNumber(optarg, 0, 65535, &n)) return bad('U', optarg);
        if (n != 0) {
          fprintf(stderr, "-U %s: UDP is not supported; only -U 0 (off)\n", optarg);
          return 2;
        }
        break;
      case 's':
        config.unix_socket = optarg;
        break;
      case 'a': {
        char* end = nullptr;
        const unsigned long mask = strtoul(optarg, &end, 8);
        if (end == optarg || *end != '\0' || mask > 0777) return bad('a', optarg);
        config.unix_mask = static_cast<uint32_t>(mask);
        break;
      }
      case 'A':
        config.enable_shutdown = true;
        break;
      case 'l':
        config.listen = optarg;
        break;
      case 'd':
        process.daemonize = true;
        break;
      case 'r':
        process.core_dumps = true;
        break;
      case 'u':
        process.user = optarg;
        break;
      case 'm':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return bad('m', optarg);
        config.memory_mb = n;
        break;
      case 'c':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return bad('c', optarg);
        config.max_connections = n;
        break;
      case 'k':
        process.lock_memory = true;
        break;
      case 'v':
        ++config.verbosity;
        break;
      case 'h':
        Usage(stdout);
        return 0;
      case 'V':
        printf("memcached %.*s (evactor)\n",
               static_cast<int>(evactor::memcached::kDefaultVersion.size()),
               evactor::memcached::kDefaultVersion.data());
        return 0;
      case 'P':
        process.pid_file = optarg;
        break;
      case 'f':
      case 'n':
      case 'L':
      case 'W':
      case 'X':
        // Slab growth factor and minimum size, large pages, watch and dump commands:
        // parts of memcached this server does not have.
        if (config.verbosity > 0) fprintf(stderr, "-%c: not applicable here, ignored\n", opt);
        break;
      case 't':
        if (!ParseNumber(optarg, 1, 256, &n)) return bad('t', optarg);
        config.threads = static_cast<int>(n);
        break;
      case 'R':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return bad('R', optarg);
        config.reqs_per_event = static_cast<uint32_t>(n);
        break;
      case 'b':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return bad('b', optarg);
        config.backlog = static_cast<int>(n);
        break;
      case 'B':
        if (strcmp(optarg, "auto") == 0) {
          config.protocols = Config::Protocols::kAuto;
        } else if (strcmp(optarg, "ascii") == 0) {
          config.protocols = Config::Protocols::kAscii;
        } else if (strcmp(optarg, "binary") == 0) {
          config.protocols = Config::Protocols::kBinary;
        } else {
          return bad('B', optarg);
        }
        break;
      case 'I':
        if (!ParseSize(optarg, &config.max_item_size) || config.max_item_size < 1024 ||
            config.max_item_size > (size_t{128} << 20)) {
          fprintf(stderr, "bad -I %s (1k..128m)\n", optarg);
          return 2;
        }
        break;
      case 'F':
        config.flush_enabled = false;
        break;
      case 'o':
        if (!ParseExtended(optarg, &config)) return 2;
        break;
      case 'M':
        config.evict = false;
        break;
      case 'C':
      case 'S':
      case 'Y':
      case 'e':
      case 'Z':
      case 'D':
        // Refused rather than ignored: each would change what clients may rely on
        // (no CAS, authentication, TLS, persistence, prefix stats).
        fprintf(stderr, "-%c is not supported by this server\n", opt);
        return 2;
      default:
        Usage(stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
    return 2;
  }

  if (process.core_dumps) {
    rlimit core;
    if (getrlimit(RLIMIT_CORE, &core) == 0) {
      core.rlim_cur = core.rlim_max;
      if (setrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur == 0) {
        fprintf(stderr, "failed to ensure corefile creation\n");
        return 1;
      }
    }
  }
  // Before any thread exists: the daemon is the child of a fork.
  const int report_fd = process.daemonize ? Daemonize() : -1;
  if (process.daemonize && report_fd < 0) return 1;
  if (process.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    fprintf(stderr, "warning: -k invalid, mlockall() failed: %s\n", strerror(errno));
  }

  auto server = evactor::memcached::Server::Start(config);
  if (!server.ok()) {
    if (absl::IsCancelled(server.status())) {  // SIGINT/SIGTERM during startup
      if (config.verbosity > 0) fprintf(stderr, "memcached (evactor): stopped\n");
      if (report_fd >= 0) ReportReady(report_fd, /*keep_streams=*/true);
      return 0;
    }
    fprintf(stderr, "memcached: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  if (!process.pid_file.empty() && !WritePidFile(process.pid_file)) return 1;
  if (!DropPrivileges(process.user)) return 1;
  if (config.verbosity > 0) {
    const bool shared = config.store == evactor::memcached::StoreLayout::kShared;
    fprintf(stderr, "memcached (evactor): listening on %s, %d threads, %zu MiB, %s store",
            (*server)->address().ToString().c_str(), config.threads, config.memory_mb,
            shared ? "shared" : "partitioned");
    if (shared) fprintf(stderr, " (%zu stripes)", evactor::memcached::StripeCount(config));
    fprintf(stderr, ", threads on CPUs: %s\n", (*server)->ShardCpus().c_str());
  }
  if (report_fd >= 0) ReportReady(report_fd, config.verbosity > 0);
  (*server)->Wait();
  if (!process.pid_file.empty()) unlink(process.pid_file.c_str());
  if (config.verbosity > 0) fprintf(stderr, "memcached (evactor): stopped\n");
  return 0;
}
