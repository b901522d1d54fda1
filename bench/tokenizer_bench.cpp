// Tokenizer start-up and single-thread encode throughput.
//
//   bench_tokenizer_bench [name ...]     (default: qwen3; "all" = the five shared tokenizers)
//
// Text: the fixture corpus (tests/fixtures/tokenizer/corpus.bin.gz; invalid
// UTF-8 replaced by U+FFFD, strings joined with "\n" into documents of 20
// strings), encoded one document per call without special tokens.
// scripts/bench_hf_tokenizer.py times HF `tokenizers` on the same documents.
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string gunzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) { std::fprintf(stderr, "cannot open %s\n", path.c_str()); std::exit(1); }
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  gzclose(gz);
  return out;
}

std::vector<std::string> documents() {
  std::string raw = gunzip(std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/tokenizer/corpus.bin.gz");
  size_t p = 12;  // magic, version, count
  uint32_t n;
  std::memcpy(&n, raw.data() + 8, 4);
  std::vector<std::string> docs;
  std::string cur;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len;
    std::memcpy(&len, raw.data() + p, 4);
    p += 4;
    if (i % 20 != 0) cur += "\n";  // as Python's "\n".join, empty strings included
    cur += moeflux::utf8::to_valid_lossy(std::string_view(raw).substr(p, len));
    p += len;
    if ((i + 1) % 20 == 0) { docs.push_back(std::move(cur)); cur.clear(); }
  }
  if (n % 20 != 0) docs.push_back(std::move(cur));
  return docs;
}

void bench(const std::string& name, const std::vector<std::string>& docs) {
  std::string dir = std::string(MOEFLUX_SHARED_DIR) + "/tokenizers/" + name;
  std::string gz = dir + "/tokenizer.json.gz";
  if (!std::filesystem::exists(gz)) { std::printf("%s: missing %s, skipped\n", name.c_str(), gz.c_str()); return; }
  // Uncompressed copy, so that load time is measured on a plain tokenizer.json.
  std::string tmp = (std::filesystem::temp_directory_path() / ("moeflux_bench_" + name + ".json")).string();
  { std::ofstream f(tmp, std::ios::binary); f << gunzip(gz); }
  std::string cfg = dir + "/tokenizer_config.json";

  double best_json = 1e9, best_gz = 1e9;
  for (int r = 0; r < 5; ++r) {
    auto t = Clock::now();
    auto tok = moeflux::Tokenizer::load(tmp, cfg);
    best_json = std::min(best_json, ms_since(t));
    t = Clock::now();
    auto tok2 = moeflux::Tokenizer::load(gz, cfg);
    best_gz = std::min(best_gz, ms_since(t));
  }
  auto tok = moeflux::Tokenizer::load(tmp, cfg);
  std::filesystem::remove(tmp);

  size_t bytes = 0, tokens = 0;
  for (const auto& d : docs) bytes += d.size();
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    tokens = 0;
    auto t = Clock::now();
    for (const auto& d : docs) tokens += tok.encode(d, false).size();
    runs.push_back(ms_since(t));
  }
  std::sort(runs.begin(), runs.end());
  double med = runs[runs.size() / 2];
  // Cold: a fresh tokenizer (empty word cache) over the text once.
  auto cold_tok = moeflux::Tokenizer::load(gz, cfg);
  auto t = Clock::now();
  for (const auto& d : docs) cold_tok.encode(d, false);
  double cold = ms_since(t);
  std::printf("%-12s load tokenizer.json %6.1f ms, .json.gz %6.1f ms | encode %zu docs %.2f MB -> %zu tokens: "
              "median %.1f ms = %.1f MB/s (cold first pass %.1f MB/s)\n",
              name.c_str(), best_json, best_gz, docs.size(), bytes / 1e6, tokens, med, bytes / 1e3 / med,
              bytes / 1e3 / cold);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "all") == 0) names = {"qwen3", "deepseek_v3", "llama3", "gptoss", "llama2"};
    else names.push_back(argv[i]);
  }
  if (names.empty()) names = {"qwen3"};
  auto docs = documents();
  for (const auto& n : names) bench(n, docs);
}
