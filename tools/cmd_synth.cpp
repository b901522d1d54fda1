// moeflux synth --preset NAME -o DIR: a random-weight model of a real shape
// (safetensors directory); with --type T, -o names one GGUF file of type T.
#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>

#include "cli_util.h"
#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/synth.h"
#include "model/model_spec.h"
#include "text/tokenizer/gguf_export.h"
#include "text_model.h"

namespace moeflux::cli {

void register_synth(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "write a random-weight model of a real architecture's shape (bf16)");
  auto o = std::make_shared<SynthOptions>();
  auto list = std::make_shared<bool>(false);
  auto type = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  cmd->add_option("--preset", o->preset, "shape to copy (see --list)");
  cmd->add_option("-o,--out", o->out_dir, "output directory (with --type: output .gguf file)");
  cmd->add_option("--type", *type,
                  "write one llama.cpp GGUF of this type instead of a safetensors directory: " + convert_type_list());
  cmd->add_option("--layers", o->layers, "override the number of layers");
  cmd->add_option("--experts", o->experts, "override the number of experts per MoE layer");
  cmd->add_option("--seed", o->seed, "random seed (same seed, same bytes)");
  cmd->add_option("--route-skew", o->route_skew,
                  "emulate unequal expert popularity by scaling router rows (0: uniform; e.g. 2); an emulation, "
                  "not any real model's routing")
      ->check(real_range(0, 1e6));
  cmd->add_flag("--list", *list, "list the presets");
  cmd->add_flag("--force", *force, "replace existing files of the names synth writes (by default it refuses)");
  cmd->callback([o, list, type, force] {
    o->replace = *force ? Replace::Yes : Replace::No;
    if (*list || o->preset.empty()) {
      fmt::print("presets:\n");
      for (auto& p : synth_presets())
        fmt::print("  {:<20} {}{}\n", p.name, p.description, p.config.empty() ? " [not supported yet]" : "");
      if (!*list) fail("synth needs --preset NAME and -o DIR");
      return;
    }
    if (o->out_dir.empty()) fail("synth needs -o DIR");
    if (!type->empty()) {
      const auto t = parse_convert_type(*type);
      if (!t) fail("unknown --type '{}' (supported: {})", *type, convert_type_list());
      const ModelSpec spec = synth_spec(*o);
      // The demo tokenizer, as a synthetic directory gets it, exported to GGUF metadata.
      std::string tmp = (std::filesystem::temp_directory_path() / "moeflux-synth-tok-XXXXXX").string();
      if (!mkdtemp(tmp.data())) fail("cannot create a temporary directory under {}", std::filesystem::temp_directory_path().string());
      GgufMetadata tok;
      try {
        write_demo_tokenizer(tmp, spec.vocab);
        tok = gguf_tokenizer_metadata(tmp, {uint32_t(spec.vocab)});
      } catch (...) {
        std::filesystem::remove_all(tmp);
        throw;
      }
      std::filesystem::remove_all(tmp);
      const uint64_t bytes = synth_gguf(*o, *t, tok, o->out_dir);
      fmt::print("wrote {} as {} ({}, random weights, moeflux's demo tokenizer) to {}\n", o->preset, *type,
                 human_bytes(bytes), o->out_dir);
      return;
    }
    o->also_writes = {"tokenizer.json", "tokenizer_config.json"};  // refused before any weights are written
    const uint64_t bytes = synth_model(*o);
    write_demo_tokenizer(o->out_dir, load_model_spec(o->out_dir).vocab, o->replace);
    fmt::print("wrote {} ({} of random weights, plus moeflux's demo tokenizer) to {}\n", o->preset, human_bytes(bytes),
               o->out_dir);
  });
}

}  // namespace moeflux::cli
