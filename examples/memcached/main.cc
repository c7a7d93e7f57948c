// The memcached-compatible server on evactor (what ./tools/run starts).
//
//   server [-p port] [-l addr] [-s unix_socket] [-t threads] [-m MiB] [-c conns]
//          [-I item_size] [-R (SO_REUSEPORT per shard)] [-v|-vv] [-h]
//          [-o store=shared|partitioned,stripes=N,lru_bump_interval=S,
//              affinity=auto|on|off,rebalance_ms=N]
//
// Defaults as memcached's: 127.0.0.1:11211, 4 threads, 64 MiB, 1024 connections,
// 1 MiB items. SIGINT/SIGTERM stop it gracefully.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "examples/memcached/server.h"

namespace {

void Usage(FILE* to) {
  fprintf(to,
          "evactor memcached-compatible server\n"
          "  -p <num>   TCP port (default 11211)\n"
          "  -l <addr>  listen address (default 127.0.0.1)\n"
          "  -s <file>  UNIX socket path (instead of TCP)\n"
          "  -t <num>   threads (shards) (default 4)\n"
          "  -m <num>   item memory in megabytes (default 64)\n"
          "  -c <num>   max simultaneous connections (default 1024)\n"
          "  -I <size>  max item size, e.g. 1m, 512k (default 1m; 1k..128m)\n"
          "  -R         one SO_REUSEPORT listener per shard (default: a dispatcher)\n"
          "  -v         verbose: errors and warnings (failed connections, refused ones)\n"
          "  -vv        very verbose: also every connection, command and response\n"
          "  -o <opts>  extended options, comma-separated:\n"
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
          "             rebalance_ms=<num>  auto with more CPUs than threads: every this\n"
          "                                many ms a thread whose CPU other work crowds\n"
          "                                moves to a less busy spare CPU (default 1000;\n"
          "                                0: never)\n"
          "  -h         this help\n");
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

// -o store=shared|partitioned,stripes=N,lru_bump_interval=S,affinity=auto|on|off,
//    rebalance_ms=N
bool ParseExtended(const char* text, evactor::memcached::Config* config) {
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
    } else {
      fprintf(stderr, "bad -o option: %s\n", std::string(option).c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  evactor::memcached::Config config;
  int opt;
  uint64_t n = 0;
  while ((opt = getopt(argc, argv, "p:l:s:t:m:c:I:Rvho:")) != -1) {
    switch (opt) {
      case 'p':
        if (!ParseNumber(optarg, 0, 65535, &n)) return fprintf(stderr, "bad -p %s\n", optarg), 2;
        config.port = static_cast<uint16_t>(n);
        break;
      case 'l':
        config.listen = optarg;
        break;
      case 's':
        config.unix_socket = optarg;
        break;
      case 't':
        if (!ParseNumber(optarg, 1, 256, &n)) return fprintf(stderr, "bad -t %s\n", optarg), 2;
        config.threads = static_cast<int>(n);
        break;
      case 'm':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return fprintf(stderr, "bad -m %s\n", optarg), 2;
        config.memory_mb = n;
        break;
      case 'c':
        if (!ParseNumber(optarg, 1, 1 << 20, &n)) return fprintf(stderr, "bad -c %s\n", optarg), 2;
        config.max_connections = n;
        break;
      case 'I':
        if (!ParseSize(optarg, &config.max_item_size) || config.max_item_size < 1024 ||
            config.max_item_size > (size_t{128} << 20)) {
          fprintf(stderr, "bad -I %s (1k..128m)\n", optarg);
          return 2;
        }
        break;
      case 'R':
        config.reuse_port = true;
        break;
      case 'v':
        ++config.verbosity;
        break;
      case 'o':
        if (!ParseExtended(optarg, &config)) return 2;
        break;
      case 'h':
        Usage(stdout);
        return 0;
      default:
        Usage(stderr);
        return 2;
    }
  }
  auto server = evactor::memcached::Server::Start(config);
  if (!server.ok()) {
    if (absl::IsCancelled(server.status())) {  // SIGINT/SIGTERM during startup
      if (config.verbosity > 0) fprintf(stderr, "memcached (evactor): stopped\n");
      return 0;
    }
    fprintf(stderr, "memcached: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  if (config.verbosity > 0) {
    const bool shared = config.store == evactor::memcached::StoreLayout::kShared;
    fprintf(stderr, "memcached (evactor): listening on %s, %d threads, %zu MiB, %s store",
            (*server)->address().ToString().c_str(), config.threads, config.memory_mb,
            shared ? "shared" : "partitioned");
    if (shared) fprintf(stderr, " (%zu stripes)", evactor::memcached::StripeCount(config));
    fprintf(stderr, ", threads on CPUs: %s\n", (*server)->ShardCpus().c_str());
  }
  (*server)->Wait();
  if (config.verbosity > 0) fprintf(stderr, "memcached (evactor): stopped\n");
  return 0;
}
