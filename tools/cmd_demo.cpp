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
#include "generation.h"
#include "text_model.h"
#include <nlohmann/json.hpp>

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
  if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) {
    std::filesystem::remove_all(dir);  // an older or partial demo model
    SynthOptions o;
    o.preset = "tiny-moe";
    o.out_dir = dir;
    o.seed = 42;
    const uint64_t bytes = synth_model(o);
    write_demo_tokenizer(dir, load_model_spec(dir).vocab);
    fmt::print("1. synth: wrote {} of random bf16 weights and a byte-level BPE tokenizer to {}\n", human_bytes(bytes),
               dir);
  } else {
    fmt::print("1. synth: reusing {}\n", dir);
  }

  ModelArgs model;
  model.path = dir;
  TextModel m = load_text_model(model);
  const ModelSpec& s = m.engine->spec();
  fmt::print("2. model: {} layers, {} experts per layer (top-{}), hidden {}, vocab {}\n", s.layers, s.experts, s.top_k,
             s.hidden, s.vocab);

  const std::string question = "Tell me about mixture-of-experts models.";
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", question}});
  const auto ids = m.tokenizer.encode(m.chat_template.render(messages), false);
  Session session(m.engine);
  SamplingParams sp;
  sp.seed = 7;
  Sampler sampler(sp, s.vocab);
  StopConditions stop;
  stop.stop_tokens = m.stop_tokens;
  stop.max_tokens = 40;
  fmt::print("3. run: chat template + tokenizer + sampling (seed 7), {} prompt tokens.\n   user: {}\n   model (random weights, so noise): ",
             ids.size(), question);
  std::fflush(stdout);
  auto st = generate_text(session, m.tokenizer, ids, sampler, stop, [](const std::string& t) {
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  });
  fmt::print("\n   [{} tokens, {:.1f} tok/s decode, stop: {}]\n", st.generated_tokens, st.decode_tok_s(), st.stop_reason);

  BenchArgs b;
  b.model = model;
  b.prompt_tokens = 128;
  b.decode_tokens = 32;
  fmt::print("4. bench:\n");
  std::fflush(stdout);
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
