// Small helpers shared by the CLI commands.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moeflux/engine.h"

namespace moeflux {
struct ModelSpec;
}

namespace moeflux::cli {

// Option checks whose messages state the range as numbers a person reads
// (CLI11's PositiveNumber / NonNegativeNumber print DBL_MAX, "not in range
// 0.000000 to 179769313486231570814527423731704356798070567525844996...").
// `hint` follows the range, e.g. "(0: all cores)".
CLI::Validator int_range(int64_t lo, int64_t hi, const std::string& hint = "");
CLI::Validator real_range(double lo, double hi, const std::string& hint = "");
// The most --threads accepted: a few threads per online core is useful
// (hyper-threads, I/O waits); tens of thousands made the machine unusable.
int max_cli_threads();

// --context beyond max_position_embeddings runs RoPE at positions the
// model never saw (and 2^31 - 1 was accepted): refused naming both.
void check_context(int context, const ModelSpec& spec);

// "1,2,3" -> {1, 2, 3}; throws moeflux::Error naming the bad entry.
std::vector<int32_t> parse_token_list(const std::string& s);
std::string join_tokens(const std::vector<int32_t>& ids);

// Options every command that loads a model takes.
struct ModelArgs {
  std::string path;
  int threads = 0;
  std::string expert_ram;  // empty: all experts memory-mapped
  std::string expert_vram;  // empty: every expert resident on the GPU
  std::string io = "direct", cache = "lru", pin;
  int io_queue_depth = 32;
  bool prefetch = false, f32_activations = false;
  std::string device = "auto";  // cpu | cuda | auto (CUDA when a GPU is usable)
  std::string prefetch_with;  // empty: the engine's default predictor
  uint64_t state_budget = 0;  // set by commands that run many sessions (serve)
  void add_to(CLI::App* cmd);
  EngineOptions options() const;
  std::shared_ptr<Engine> load() const;
};

// One line of expert-store counters for the end of a run ("" when the
// experts are memory-mapped); tokens: decode steps, for per-token stall.
std::string expert_stats_line(const Engine& engine, int tokens);

double now_seconds();
uint64_t peak_rss_bytes();

}  // namespace moeflux::cli
