#include "cli_util.h"

#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "experts/expert_store.h"
#include "model/model_spec.h"
#include <fmt/format.h>

namespace moeflux::cli {

CLI::Validator int_range(int64_t lo, int64_t hi, const std::string& hint) {
  return CLI::Validator(
      [lo, hi, hint](std::string& in) -> std::string {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
        if (in.empty() || ec != std::errc() || p != in.data() + in.size() || v < lo || v > hi)
          return fmt::format("'{}' is not an integer from {} to {}{}{}", in, lo, hi, hint.empty() ? "" : " ", hint);
        return "";
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

CLI::Validator real_range(double lo, double hi, const std::string& hint) {
  return CLI::Validator(
      [lo, hi, hint](std::string& in) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || *end || !std::isfinite(v) || v < lo || v > hi)
          return fmt::format("'{}' is not a number from {} to {}{}{}", in, lo, hi, hint.empty() ? "" : " ", hint);
        return "";
      },
      fmt::format("NUMBER in [{}, {}]", lo, hi));
}

int max_cli_threads() { return ThreadPool::max_threads(); }

void check_context(int context, const ModelSpec& spec) {
  if (context > spec.max_positions)
    fail("--context {} exceeds the model's context of {} positions (max_position_embeddings); 0 uses all of it",
         context, spec.max_positions);
}

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
  cmd->add_option("--threads,-t", threads, "CPU threads (0: all cores)")
      ->check(int_range(0, max_cli_threads(),
                        fmt::format("(0: all cores; at most {} x the {} online cores)", ThreadPool::kThreadsPerCore,
                                    std::max(1u, std::thread::hardware_concurrency()))));
  cmd->add_option("--expert-ram", expert_ram,
                  "host RAM for routed experts: 8G, 512M, 25% (of expert bytes) or auto; "
                  "the rest is streamed from storage (default: all memory-mapped)");
  cmd->add_option("--expert-vram", expert_vram,
                  "--device cuda: GPU memory for a slot cache of routed experts: 20G, 512M or 25% (of expert "
                  "bytes), above the host tier (--expert-ram, pinned) and storage (default: every expert resident)");
  cmd->add_option("--io", io, "how experts are read: direct (io_uring+O_DIRECT), pread, buffered, mmap");
  cmd->add_option("--io-qd", io_queue_depth, "reads in flight")->check(int_range(1, 4096));
  cmd->add_option("--cache", cache, "expert cache policy: lru or lfu (frequency with aging)");
  cmd->add_flag("--prefetch", prefetch, "read the next layer's likely experts while this layer computes");
  cmd->add_option("--prefetch-with", prefetch_with,
                  "how prefetch predicts (implies --prefetch): router (next layer's router on this layer's "
                  "input), previous (last token's choice) or router,previous; optionally ,depth=N reads in flight");
  cmd->add_option("--pin", pin, "experts kept resident, as LAYER:EXPERT,LAYER:EXPERT,...");
  cmd->add_option("--device", device,
                  "where the forward pass runs: cpu, cuda (the whole model resident on the GPU) or auto (CUDA "
                  "when a GPU is usable, else the CPU)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_flag("--f32-activations", f32_activations,
                "keep every matrix product's activations in f32 (slower; by default quantized weights' kernels "
                "round them to int8, routers excepted)");
}

EngineOptions ModelArgs::options() const {
  EngineOptions o;
  o.threads = threads;
  o.expert_ram_text = expert_ram;  // resolved by Engine::load, which opens the model anyway
  o.expert_vram_text = expert_vram;
  o.io = io;
  o.io_queue_depth = io_queue_depth;
  o.cache_policy = cache;
  o.f32_activations = f32_activations;
  o.state_budget = state_budget;
  o.device = device;
  o.prefetch = prefetch || !prefetch_with.empty();
  if (!prefetch_with.empty()) o.prefetch_with = prefetch_with;
  if (!pin.empty()) {
    size_t i = 0;
    while (i <= pin.size()) {
      size_t j = pin.find(',', i);
      if (j == std::string::npos) j = pin.size();
      const std::string item = pin.substr(i, j - i);
      // Exactly two non-negative integers: std::stoi read "0:0:0" as 0:0
      // and "1x:2" as 1:2.
      int layer = -1, expert = -1;
      const size_t colon = item.find(':');
      auto whole = [](std::string_view t, int& v) {
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        return !t.empty() && ec == std::errc() && p == t.data() + t.size() && v >= 0;
      };
      if (colon == std::string::npos || !whole(std::string_view(item).substr(0, colon), layer) ||
          !whole(std::string_view(item).substr(colon + 1), expert))
        fail("--pin: '{}' is not LAYER:EXPERT (two non-negative integers)", item);
      o.pinned_experts.emplace_back(layer, expert);
      i = j + 1;
    }
  }
  return o;
}

std::shared_ptr<Engine> ModelArgs::load() const {
  const EngineOptions o = options();
  auto engine = Engine::load(path, o);
  // Checked here too: without --expert-ram the store that would refuse a
  // pin does not exist, and --pin 99:0 was silently ignored.
  const ModelSpec& s = engine->spec();
  for (auto [layer, expert] : o.pinned_experts)
    if (layer >= s.layers || !s.layer_is_moe[size_t(layer)] || expert >= s.experts)
      fail("--pin {}:{}: no such routed expert (MoE layers among 0..{}, experts 0..{})", layer, expert, s.layers - 1,
           s.experts - 1);
  // Keys transformers does not read either: said once, not fatal.
  if (const auto& keys = engine->spec().unread_config_keys; !keys.empty())
    fmt::print(stderr, "moeflux: warning: config.json keys not read (transformers' {} config does not define them "
               "either): {}\n", engine->spec().arch, fmt::join(keys, ", "));
  return engine;
}

std::string expert_stats_line(const Engine& engine, int tokens) {
  const ExpertStats s = engine.expert_stats();
  std::string vram;
  if (s.vram_slots > 0)
    vram = fmt::format("[vram: {} slots, hit rate {:.1f}% ({} hits, {} misses, {} evictions), copied {} in {:.1f} ms "
                       "({:.1f} GB/s)]",
                       s.vram_slots, 100 * s.vram_hit_rate(), s.vram_hits, s.vram_misses, s.vram_evictions,
                       human_bytes(s.bytes_h2d), 1e3 * s.h2d_s, s.h2d_gbs());
  if (engine.options().expert_ram == 0) return vram;
  return vram + (vram.empty() ? "" : " ") + fmt::format(
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
