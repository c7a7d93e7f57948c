// buffer_bench — evactor::Buffer against libevent 2.1's evbuffer, in the same run.
//
//   bazel run --config=opt //bench:buffer_bench
//
// Operations (each timed per operation, both implementations doing the same work):
//   append_drain_64   256 appends of 64 bytes, then 256 drains of 64 bytes; per pair.
//   append_drain_16k  64 appends of 16 KiB, then 64 drains of 16 KiB; per pair.
//   readln            a buffer of 2000 CRLF lines (10-100 bytes, HTTP-header-like) that
//                     arrived in 4 KiB reads, read line by line until none is left
//                     (evbuffer_readln + free against ReadLine); per line. The buffer
//                     is refilled between rounds, untimed.
//   readln_into       the same with ReadLineInto into one reused std::string (no
//                     allocation per line): shown in the table only, since evbuffer has
//                     no such call.
//   search            a needle whose first byte occurs nowhere else (memchr-like), at
//                     the end of a 1 MiB buffer of 256 segments of 4 KiB; per search.
//   search_text       "Content-Type: text/html" at the end of 1 MiB of header-like
//                     text, where the needle's first byte is common; per search.
//   move              a 16-segment buffer moved back and forth between two buffers
//                     (evbuffer_add_buffer against Append(Buffer&&)); per move.
//
// Every measurement checks its result (sizes, bytes copied out, lines and bytes read,
// match positions) and aborts on a mismatch, so a broken implementation cannot look
// fast. The implementations alternate within each of 9 rounds (the order flips every
// round) and the median round counts; each round runs about 30 ms per implementation.
//
// The closing lines read `speedup buffer_<operation> <x>` with x = evbuffer's time /
// evactor's time (x > 1: evactor is faster).
#include <event2/buffer.h>
#include <event2/event.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "io/buffer.h"

namespace {

using evactor::Buffer;
using evactor::EolStyle;

using evactor::bench::Die;
using evactor::bench::Median;
using evactor::bench::NowNs;

void Check(bool ok, const char* what) {
  if (!ok) Die("check failed: %s", what);
}

// One implementation of one operation: runs `iters` iterations and returns the time
// they took (only the timed part) in ns, and the number of operations they did.
struct Timed {
  int64_t ns;
  int64_t ops;
};
using Workload = std::function<Timed(int iters)>;

double NsPerOp(const Timed& t) { return static_cast<double>(t.ns) / static_cast<double>(t.ops); }

// Iterations that take about `target_ns`.
int Calibrate(const Workload& w, int64_t target_ns) {
  int iters = 1;
  for (;;) {
    const Timed t = w(iters);
    if (t.ns >= target_ns / 4 || iters >= (1 << 24)) {
      const double per = static_cast<double>(t.ns) / iters;
      return std::max(1, static_cast<int>(static_cast<double>(target_ns) / std::max(per, 1.0)));
    }
    iters *= 4;
  }
}

struct Row {
  std::string name;
  double evbuffer_ns;
  double evactor_ns;
  bool speedup_line;
};

Row Compare(const std::string& name, const Workload& le, const Workload& ev,
            bool speedup_line = true) {
  constexpr int kRounds = 9;
  constexpr int64_t kTargetNs = 30'000'000;
  const int le_iters = Calibrate(le, kTargetNs);
  const int ev_iters = Calibrate(ev, kTargetNs);
  std::vector<double> le_ns, ev_ns;
  for (int r = 0; r < kRounds; ++r) {
    if (r % 2 == 0) {
      le_ns.push_back(NsPerOp(le(le_iters)));
      ev_ns.push_back(NsPerOp(ev(ev_iters)));
    } else {
      ev_ns.push_back(NsPerOp(ev(ev_iters)));
      le_ns.push_back(NsPerOp(le(le_iters)));
    }
  }
  return Row{name, Median(le_ns), Median(ev_ns), speedup_line};
}

// ---- append / drain ------------------------------------------------------------------

// `count` appends of `size` bytes (from a rotating window of `source`) then `count`
// drains of `size`. Checks the size after the appends and bytes copied out from the
// middle, and that the buffer ends empty.
Row AppendDrain(const std::string& name, size_t size, int count) {
  const std::string source = [] {
    std::string s(1 << 17, '\0');
    std::mt19937 rng(1);
    for (char& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  }();
  auto piece = [&](int i) { return source.data() + (static_cast<size_t>(i) * 7) % 4096; };
  const size_t probe_at = size * static_cast<size_t>(count / 2) + 3;
  const std::string expect_probe(piece(count / 2) + 3, 16);

  Workload le = [&](int iters) {
    evbuffer* b = evbuffer_new();
    char probe[16];
    int64_t ns = 0;
    for (int it = 0; it < iters; ++it) {
      const int64_t t0 = NowNs();
      for (int i = 0; i < count; ++i) evbuffer_add(b, piece(i), size);
      Check(evbuffer_get_length(b) == size * static_cast<size_t>(count), "evbuffer size");
      evbuffer_ptr pos;
      evbuffer_ptr_set(b, &pos, probe_at, EVBUFFER_PTR_SET);
      Check(evbuffer_copyout_from(b, &pos, probe, 16) == 16, "evbuffer copyout");
      for (int i = 0; i < count; ++i) evbuffer_drain(b, size);
      ns += NowNs() - t0;
      Check(evbuffer_get_length(b) == 0, "evbuffer drained");
      Check(std::memcmp(probe, expect_probe.data(), 16) == 0, "evbuffer bytes");
    }
    evbuffer_free(b);
    return Timed{ns, static_cast<int64_t>(iters) * count};
  };
  Workload ev = [&](int iters) {
    Buffer b;
    char probe[16];
    int64_t ns = 0;
    for (int it = 0; it < iters; ++it) {
      const int64_t t0 = NowNs();
      for (int i = 0; i < count; ++i) b.Append(piece(i), size);
      Check(b.size() == size * static_cast<size_t>(count), "Buffer size");
      Check(b.CopyOut(probe_at, probe, 16) == 16, "Buffer copyout");
      for (int i = 0; i < count; ++i) b.Drain(size);
      ns += NowNs() - t0;
      Check(b.empty(), "Buffer drained");
      Check(std::memcmp(probe, expect_probe.data(), 16) == 0, "Buffer bytes");
    }
    return Timed{ns, static_cast<int64_t>(iters) * count};
  };
  return Compare(name, le, ev);
}

// ---- readln ---------------------------------------------------------------------------

struct Lines {
  std::string text;
  size_t count = 0;
  size_t bytes = 0;  // without EOLs
};

Lines MakeLines(size_t n) {
  Lines l;
  std::mt19937 rng(2);
  static const char* const kNames[] = {"Host",         "User-Agent", "Accept",       "Content-Type",
                                       "X-Request-Id", "Cookie",     "Cache-Control"};
  for (size_t i = 0; i < n; ++i) {
    std::string line = kNames[rng() % 7];
    line += ": ";
    const size_t len = 10 + rng() % 91;
    while (line.size() < len) line += static_cast<char>('a' + rng() % 26);
    line.resize(len);
    l.text += line;
    l.text += "\r\n";
    l.count++;
    l.bytes += line.size();
  }
  return l;
}

Row ReadLines(bool reuse_string) {
  const Lines lines = MakeLines(2000);
  auto chunks = [&](auto&& add) {
    for (size_t at = 0; at < lines.text.size(); at += 4096) {
      add(lines.text.data() + at, std::min<size_t>(4096, lines.text.size() - at));
    }
  };
  Workload le = [&](int iters) {
    int64_t ns = 0;
    for (int it = 0; it < iters; ++it) {
      evbuffer* b = evbuffer_new();
      chunks([&](const char* p, size_t n) {
        evbuffer* piece = evbuffer_new();  // one chain per 4 KiB read
        evbuffer_add(piece, p, n);
        evbuffer_add_buffer(b, piece);
        evbuffer_free(piece);
      });
      size_t count = 0, bytes = 0, len = 0;
      const int64_t t0 = NowNs();
      while (char* line = evbuffer_readln(b, &len, EVBUFFER_EOL_CRLF)) {
        ++count;
        bytes += len;
        std::free(line);
      }
      ns += NowNs() - t0;
      Check(count == lines.count && bytes == lines.bytes, "evbuffer lines");
      Check(evbuffer_get_length(b) == 0, "evbuffer lines drained");
      evbuffer_free(b);
    }
    return Timed{ns, static_cast<int64_t>(iters) * static_cast<int64_t>(lines.count)};
  };
  Workload ev = [&](int iters) {
    int64_t ns = 0;
    std::string reused;
    for (int it = 0; it < iters; ++it) {
      Buffer b;
      chunks([&](const char* p, size_t n) {
        Buffer piece;  // one segment per 4 KiB read
        piece.Append(p, n);
        b.Append(std::move(piece));
      });
      size_t count = 0, bytes = 0;
      const int64_t t0 = NowNs();
      if (reuse_string) {
        while (b.ReadLineInto(EolStyle::kCrlf, &reused)) {
          ++count;
          bytes += reused.size();
        }
      } else {
        while (std::optional<std::string> line = b.ReadLine(EolStyle::kCrlf)) {
          ++count;
          bytes += line->size();
        }
      }
      ns += NowNs() - t0;
      Check(count == lines.count && bytes == lines.bytes, "Buffer lines");
      Check(b.empty(), "Buffer lines drained");
    }
    return Timed{ns, static_cast<int64_t>(iters) * static_cast<int64_t>(lines.count)};
  };
  return Compare(reuse_string ? "readln_into" : "readln", le, ev, !reuse_string);
}

// ---- search ---------------------------------------------------------------------------

Row SearchFar(const std::string& name, const std::string& filler_alphabet,
              const std::string& needle) {
  constexpr size_t kTotal = 1 << 20;
  std::string text(kTotal, ' ');
  std::mt19937 rng(3);
  for (char& c : text) c = filler_alphabet[rng() % filler_alphabet.size()];
  const size_t at = kTotal - 200;
  text.replace(at, needle.size(), needle);
  const size_t expect = text.find(needle);
  Check(expect == at, "needle placed once");

  evbuffer* le_buf = evbuffer_new();
  Buffer ev_buf;
  for (size_t off = 0; off < kTotal; off += 4096) {
    evbuffer* piece = evbuffer_new();
    evbuffer_add(piece, text.data() + off, 4096);
    evbuffer_add_buffer(le_buf, piece);
    evbuffer_free(piece);
    Buffer p;
    p.Append(text.data() + off, 4096);
    ev_buf.Append(std::move(p));
  }
  Check(ev_buf.segment_count() == kTotal / 4096, "segments");

  Workload le = [&](int iters) {
    const int64_t t0 = NowNs();
    for (int it = 0; it < iters; ++it) {
      const evbuffer_ptr p = evbuffer_search(le_buf, needle.data(), needle.size(), nullptr);
      Check(p.pos == static_cast<ev_ssize_t>(expect), "evbuffer_search");
    }
    return Timed{NowNs() - t0, iters};
  };
  Workload ev = [&](int iters) {
    const int64_t t0 = NowNs();
    for (int it = 0; it < iters; ++it) {
      Check(ev_buf.Search(needle) == expect, "Buffer::Search");
    }
    return Timed{NowNs() - t0, iters};
  };
  Row row = Compare(name, le, ev);
  evbuffer_free(le_buf);
  return row;
}

// ---- move -------------------------------------------------------------------------------

Row MoveBuffers() {
  constexpr int kSegments = 16;
  std::string data;
  for (int i = 0; i < kSegments * 4096; ++i) data += static_cast<char>('a' + i % 23);
  Workload le = [&](int iters) {
    evbuffer* a = evbuffer_new();
    evbuffer* b = evbuffer_new();
    for (int s = 0; s < kSegments; ++s) {
      evbuffer* piece = evbuffer_new();
      evbuffer_add(piece, data.data() + s * 4096, 4096);
      evbuffer_add_buffer(a, piece);
      evbuffer_free(piece);
    }
    const int64_t t0 = NowNs();
    for (int it = 0; it < iters; ++it) {
      evbuffer_add_buffer(b, a);
      evbuffer_add_buffer(a, b);
    }
    const int64_t ns = NowNs() - t0;
    Check(evbuffer_get_length(a) == data.size() && evbuffer_get_length(b) == 0, "evbuffer move");
    char probe[8];
    evbuffer_ptr pos;
    evbuffer_ptr_set(a, &pos, 50000, EVBUFFER_PTR_SET);
    Check(evbuffer_copyout_from(a, &pos, probe, 8) == 8 &&
              std::memcmp(probe, data.data() + 50000, 8) == 0,
          "evbuffer moved bytes");
    evbuffer_free(a);
    evbuffer_free(b);
    return Timed{ns, static_cast<int64_t>(iters) * 2};
  };
  Workload ev = [&](int iters) {
    Buffer a, b;
    for (int s = 0; s < kSegments; ++s) {
      Buffer piece;
      piece.Append(data.data() + s * 4096, 4096);
      a.Append(std::move(piece));
    }
    const int64_t t0 = NowNs();
    for (int it = 0; it < iters; ++it) {
      b.Append(std::move(a));
      a.Append(std::move(b));
    }
    const int64_t ns = NowNs() - t0;
    Check(a.size() == data.size() && b.empty() && a.segment_count() == kSegments, "Buffer move");
    char probe[8];
    Check(a.CopyOut(50000, probe, 8) == 8 && std::memcmp(probe, data.data() + 50000, 8) == 0,
          "Buffer moved bytes");
    return Timed{ns, static_cast<int64_t>(iters) * 2};
  };
  return Compare("move", le, ev);
}

}  // namespace

int main() {
  evactor::bench::g_die_name = "buffer_bench";
  const int64_t start = NowNs();
  std::vector<Row> rows;
  rows.push_back(AppendDrain("append_drain_64", 64, 256));
  rows.push_back(AppendDrain("append_drain_16k", 16384, 64));
  rows.push_back(ReadLines(/*reuse_string=*/false));
  rows.push_back(ReadLines(/*reuse_string=*/true));
  // Filler without '<': the needle's first byte is found by memchr alone.
  rows.push_back(SearchFar("search", "abcdefghijklmnopqrstuvwxyz \r\n", "<needle-at-the-end>"));
  // Header-like text: 'C' (the needle's first byte) is everywhere.
  rows.push_back(
      SearchFar("search_text", "CCContent-Lengthcontent type: \r\n", "Content-Type: text/html"));
  rows.push_back(MoveBuffers());

  std::printf("evactor::Buffer vs libevent %s evbuffer (ns per operation, median of 9 rounds)\n\n",
              event_get_version());
  std::printf("%-18s %14s %14s %9s\n", "operation", "evbuffer_ns", "evactor_ns", "speedup");
  for (const Row& r : rows) {
    std::printf("%-18s %14.1f %14.1f %9.2f%s\n", r.name.c_str(), r.evbuffer_ns, r.evactor_ns,
                r.evbuffer_ns / r.evactor_ns,
                r.speedup_line ? "" : "   (ReadLineInto, reused string; evbuffer: readln)");
  }
  std::printf("\n");
  for (const Row& r : rows) {
    if (r.speedup_line) {
      std::printf("speedup buffer_%s %.3f\n", r.name.c_str(), r.evbuffer_ns / r.evactor_ns);
    }
  }
  std::fprintf(stderr, "[buffer_bench done in %.1f s]\n", (NowNs() - start) / 1e9);
  return 0;
}
