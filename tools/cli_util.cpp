#include "cli_util.h"

#include <sys/resource.h>

#include <charconv>
#include <chrono>

#include "core/error.h"
#include "core/progress.h"
#include "experts/expert_store.h"
#include "model/model_spec.h"
#include <fmt/format.h>

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
  cmd->add_option("--expert-ram", expert_ram,
                  "host RAM for routed experts: 8G, 512M, 25% (of expert bytes) or auto; "
                  "the rest is streamed from storage (default: all memory-mapped)");
  cmd->add_option("--io", io, "how experts are read: direct (io_uring+O_DIRECT), pread, buffered, mmap");
  cmd->add_option("--io-qd", io_queue_depth, "reads in flight")->check(CLI::PositiveNumber);
  cmd->add_option("--cache", cache, "expert cache policy: lru or lfu (frequency with aging)");
  cmd->add_flag("--prefetch", prefetch, "read the next layer's likely experts while this layer computes");
  cmd->add_option("--prefetch-with", prefetch_with,
                  "how prefetch predicts (implies --prefetch): router (next layer's router on this layer's "
                  "input), previous (last token's choice) or router,previous; optionally ,depth=N reads in flight");
  cmd->add_option("--pin", pin, "experts kept resident, as LAYER:EXPERT,LAYER:EXPERT,...");
  cmd->add_flag("--f32-activations", f32_activations,
                "keep every matrix product's activations in f32 (slower; by default quantized weights' kernels "
                "round them to int8, routers excepted)");
}

EngineOptions ModelArgs::options() const {
  EngineOptions o;
  o.threads = threads;
  o.expert_ram_text = expert_ram;  // resolved by Engine::load, which opens the model anyway
  o.io = io;
  o.io_queue_depth = io_queue_depth;
  o.cache_policy = cache;
  o.f32_activations = f32_activations;
  o.prefetch = prefetch || !prefetch_with.empty();
  if (!prefetch_with.empty()) o.prefetch_with = prefetch_with;
  if (!pin.empty()) {
    size_t i = 0;
    while (i <= pin.size()) {
      size_t j = pin.find(',', i);
      if (j == std::string::npos) j = pin.size();
      const std::string item = pin.substr(i, j - i);
      const size_t colon = item.find(':');
      try {
        if (colon == std::string::npos) throw std::invalid_argument(item);
        o.pinned_experts.emplace_back(std::stoi(item.substr(0, colon)), std::stoi(item.substr(colon + 1)));
      } catch (const std::exception&) {
        fail("--pin: '{}' is not LAYER:EXPERT", item);
      }
      i = j + 1;
    }
  }
  return o;
}

std::shared_ptr<Engine> ModelArgs::load() const { return Engine::load(path, options()); }

std::string expert_stats_line(const Engine& engine, int tokens) {
  if (engine.options().expert_ram == 0) return "";
  const ExpertStats s = engine.expert_stats();
  return fmt::format(
      "[experts: hit rate {:.1f}% ({} hits, {} prefetch hits, {} misses), read {} , stall {:.1f} ms/token, "
      "prefetch precision {:.0f}% recall {:.0f}%]",
      100 * s.hit_rate(), s.hits, s.prefetch_hits, s.misses, human_bytes(s.bytes_read),
      tokens > 0 ? 1e3 * s.read_wait_s / tokens : 0.0, 100 * s.prefetch_precision(), 100 * s.prefetch_recall());
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
