// A fuzzer's saved corpus, for the replay tests that run every saved input through
// the fuzzer's LLVMFuzzerTestOneInput in the ordinary build (tests/io/buffer_fuzz.cc,
// tests/examples/memcached/protocol_fuzz.cc).
#ifndef EVACTOR_TESTS_FUZZ_CORPUS_H_
#define EVACTOR_TESTS_FUZZ_CORPUS_H_

#include <dirent.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace evactor::test {

// The files of `dir` (a path in the test's runfiles) as (name, contents) pairs, in
// directory order; empty when the directory cannot be read.
inline std::vector<std::pair<std::string, std::string>> ReadCorpus(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> inputs;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return inputs;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name, std::ios::binary);
    inputs.emplace_back(e->d_name, std::string(std::istreambuf_iterator<char>(f), {}));
  }
  ::closedir(d);
  return inputs;
}

// The replay test's body: every input of `dir` through `fuzz` (the fuzzer's
// LLVMFuzzerTestOneInput, which aborts on a failure), each traced by its file name.
// Fails when the corpus is missing or has fewer than 10 inputs.
inline void ReplayCorpus(const std::string& dir, int (*fuzz)(const uint8_t*, size_t)) {
  const auto corpus = ReadCorpus(dir);
  ASSERT_GE(corpus.size(), 10u) << "corpus missing from the runfiles or suspiciously small: "
                                << dir;
  for (const auto& [name, input] : corpus) {
    SCOPED_TRACE(name);
    fuzz(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  std::printf("replayed %zu inputs of %s\n", corpus.size(), dir.c_str());
}

}  // namespace evactor::test

#endif  // EVACTOR_TESTS_FUZZ_CORPUS_H_
