#include "cli_util.h"

#include <sys/resource.h>

#include <charconv>
#include <chrono>

#include "core/error.h"

namespace moeflux::cli {

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  int index = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      fail("--tokens: entry {} ('{}') is not an integer token id", index, item);
    out.push_back(v);
    ++index;
    i = j + 1;
  }
  if (out.empty()) fail("--tokens is empty: give at least one token id, e.g. --tokens 1,2,3");
  return out;
}

std::string join_tokens(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

void ModelArgs::add_to(CLI::App* cmd) {
  cmd->add_option("model", path, "model directory (config.json + safetensors)")->required();
  cmd->add_option("--threads,-t", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
}

std::shared_ptr<Engine> ModelArgs::load() const {
  EngineOptions o;
  o.threads = threads;
  return Engine::load(path, o);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;
}

}  // namespace moeflux::cli
