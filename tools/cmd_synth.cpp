// moeflux synth --preset NAME -o DIR: a random-weight model of a real shape.
#include <fmt/format.h>

#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/synth.h"
#include "text_model.h"
#include "model/model_spec.h"

namespace moeflux::cli {

void register_synth(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "write a random-weight model of a real architecture's shape (bf16)");
  auto o = std::make_shared<SynthOptions>();
  auto list = std::make_shared<bool>(false);
  cmd->add_option("--preset", o->preset, "shape to copy (see --list)");
  cmd->add_option("-o,--out", o->out_dir, "output directory");
  cmd->add_option("--layers", o->layers, "override the number of layers");
  cmd->add_option("--experts", o->experts, "override the number of experts per MoE layer");
  cmd->add_option("--seed", o->seed, "random seed (same seed, same bytes)");
  cmd->add_option("--route-skew", o->route_skew,
                  "emulate unequal expert popularity by scaling router rows (0: uniform; e.g. 2); an emulation, "
                  "not any real model's routing")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--list", *list, "list the presets");
  cmd->callback([o, list] {
    if (*list || o->preset.empty()) {
      fmt::print("presets:\n");
      for (auto& p : synth_presets())
        fmt::print("  {:<20} {}{}\n", p.name, p.description, p.config.empty() ? " [not supported yet]" : "");
      if (!*list) fail("synth needs --preset NAME and -o DIR");
      return;
    }
    if (o->out_dir.empty()) fail("synth needs -o DIR");
    const uint64_t bytes = synth_model(*o);
    write_demo_tokenizer(o->out_dir, load_model_spec(o->out_dir).vocab);
    fmt::print("wrote {} ({} of random weights, plus moeflux's demo tokenizer) to {}\n", o->preset, human_bytes(bytes),
               o->out_dir);
  });
}

}  // namespace moeflux::cli
