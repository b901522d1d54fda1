// moeflux demo: the whole path on a built-in synthetic model, no downloads.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "bench.h"
#include "commands.h"
#include "core/error.h"
#include "core/output_file.h"
#include "core/progress.h"
#include "model/model_spec.h"
#include "model/synth.h"
#include "generation.h"
#include "text_model.h"
#include <nlohmann/json.hpp>

namespace moeflux::cli {

namespace {

namespace fs = std::filesystem;

std::string default_demo_dir() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = cache && *cache ? cache : (home && *home ? std::filesystem::path(home) / ".cache" : "/tmp");
  return (base / "moeflux" / "demo-tiny-moe").string();
}

// A directory moeflux demo made holds this file. Only such a directory is
// ever cleaned, and only of the files the demo writes: `--dir` may name a
// user's own directory, and nothing there that moeflux did not create may
// be deleted.
constexpr const char* kDemoMarker = ".moeflux-demo";

bool is_empty_dir(const fs::path& dir) { return fs::is_directory(dir) && fs::directory_iterator(dir) == fs::directory_iterator(); }

// Removes what an earlier, interrupted demo run may have left: the files
// synth and the demo tokenizer write (and their temporaries), nothing else.
void remove_demo_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool ours = name == "config.json" || name == "model.safetensors.index.json" || name == "tokenizer.json" ||
                      name == "tokenizer_config.json" ||
                      (name.starts_with("model") && name.ends_with(".safetensors")) ||
                      (name.starts_with(".") && name.ends_with(".moeflux-tmp"));
    // Regular files only, never through a link: a link is the user's even
    // under one of the demo's names.
    if (ours && fs::is_regular_file(e.symlink_status())) fs::remove(e.path());
  }
}

// Makes the demo model in `dir` when it is missing, new, empty, or a demo
// directory left unfinished; reuses a complete one; refuses anything else.
void prepare_demo_model(const fs::path& dir) {
  if (fs::exists(dir / "tokenizer.json") && fs::exists(dir / "config.json")) {
    fmt::print("1. synth: reusing {}\n", dir.string());
    return;
  }
  if (fs::exists(fs::symlink_status(dir)) && !fs::is_directory(dir))
    fail("--dir {} exists and is not a directory", dir.string());
  if (fs::exists(dir) && !is_empty_dir(dir)) {
    if (!fs::exists(dir / kDemoMarker))
      fail("--dir {} is not empty and was not made by moeflux demo (no {} in it); moeflux does not delete "
           "files it did not create: give a new or empty directory",
           dir.string(), kDemoMarker);
    remove_demo_files(dir);  // an older or partial demo model, in a directory the demo made
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create directory {}: {}", dir.string(), ec.message());
  if (!fs::exists(dir / kDemoMarker))
    write_output_file((dir / kDemoMarker).string(), "made by `moeflux demo`; it may delete the demo model here\n",
                      Replace::No);
  SynthOptions o;
  o.preset = "tiny-moe";
  o.out_dir = dir.string();
  o.seed = 42;
  o.also_writes = {"tokenizer.json", "tokenizer_config.json"};
  const uint64_t bytes = synth_model(o);
  write_demo_tokenizer(o.out_dir, load_model_spec(o.out_dir).vocab);
  fmt::print("1. synth: wrote {} of random bf16 weights and a byte-level BPE tokenizer to {}\n", human_bytes(bytes),
             dir.string());
}

void run_demo(const std::string& dir_arg) {
  const std::string dir = dir_arg.empty() ? default_demo_dir() : dir_arg;
  fmt::print("moeflux demo: a tiny qwen3_moe-shaped model with RANDOM weights.\n"
             "Its output is meaningless by design: this shows the engine working, not a model talking.\n\n");
  prepare_demo_model(dir);

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
