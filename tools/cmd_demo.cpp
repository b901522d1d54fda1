// moeflux demo: the whole path on a built-in synthetic model, no downloads.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "bench.h"
#include "commands.h"
#include "core/progress.h"
#include "model/model_spec.h"
#include "model/synth.h"

namespace moeflux::cli {

namespace {

std::string default_demo_dir() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = cache && *cache ? cache : (home && *home ? std::filesystem::path(home) / ".cache" : "/tmp");
  return (base / "moeflux" / "demo-tiny-moe").string();
}

void run_demo(const std::string& dir_arg) {
  const std::string dir = dir_arg.empty() ? default_demo_dir() : dir_arg;
  fmt::print("moeflux demo: a tiny qwen3_moe-shaped model with RANDOM weights.\n"
             "Its output is meaningless by design: this shows the engine working, not a model talking.\n\n");
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
    SynthOptions o;
    o.preset = "tiny-moe";
    o.out_dir = dir;
    o.seed = 42;
    const uint64_t bytes = synth_model(o);
    fmt::print("1. synth: wrote {} of random bf16 weights to {}\n", human_bytes(bytes), dir);
  } else {
    fmt::print("1. synth: reusing {}\n", dir);
  }

  ModelArgs model;
  model.path = dir;
  auto engine = model.load();
  const ModelSpec& s = engine->spec();
  fmt::print("2. model: {} layers, {} experts per layer (top-{}), hidden {}, vocab {}\n", s.layers, s.experts, s.top_k,
             s.hidden, s.vocab);

  const std::vector<int32_t> prompt = {1, 17, 42, 7, 256, 1000};
  Session session(engine);
  auto logits = session.step(prompt);
  std::vector<int32_t> out;
  for (int i = 0; i < 24; ++i) {
    out.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    logits = session.step(std::span<const int32_t>(&out.back(), 1));
  }
  fmt::print("3. generate (greedy) from prompt ids [{}]:\n   [{}]\n", join_tokens(prompt), join_tokens(out));

  BenchArgs b;
  b.model = model;
  b.prompt_tokens = 128;
  b.decode_tokens = 32;
  fmt::print("4. bench:\n");
  print_bench(run_bench(b));
  fmt::print("\nNext: `moeflux synth --list`, `moeflux inspect {}`, and README.md.\n", dir);
}

}  // namespace

void register_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "synthesise a tiny random model, generate from it, and benchmark it");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("--dir", *dir, "where to keep the demo model (default: ~/.cache/moeflux/demo-tiny-moe)");
  cmd->callback([dir] { run_demo(*dir); });
}

}  // namespace moeflux::cli
