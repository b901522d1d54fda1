// moeflux convert HF_DIR -o OUT.gguf --type T: a Hugging Face model to a
// llama.cpp GGUF, tokenizer included.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "cli_util.h"
#include "commands.h"
#include "convert/convert_hf.h"
#include "core/error.h"
#include "core/progress.h"
#include "text/tokenizer/gguf_export.h"

namespace moeflux::cli {

namespace {

struct ConvertArgs {
  std::string dir, out, type = "q8_0", name;
  int threads = 0;
  bool force = false, no_tokenizer = false, quiet = false;
};

}  // namespace

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "convert a Hugging Face model directory to a llama.cpp GGUF file");
  auto a = std::make_shared<ConvertArgs>();
  cmd->add_option("model", a->dir, "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("-o,--out", a->out, "output .gguf file")->required();
  cmd->add_option("--type", a->type, "tensor type: " + convert_type_list() + " (default q8_0)");
  cmd->add_option("--name", a->name, "general.name (default: the directory's name)");
  cmd->add_option("--threads", a->threads, "threads for quantizing (default: all cores)")->check(int_range(0, max_cli_threads(), "(0: all cores)"));
  cmd->add_flag("--force", a->force, "replace the output file if it exists");
  cmd->add_flag("--no-tokenizer", a->no_tokenizer,
                "write the weights only (llama.cpp needs the tokenizer to load a model)");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress bar");
  cmd->callback([a] {
    const auto type = parse_convert_type(a->type);
    if (!type) fail("unknown --type '{}' (supported: {})", a->type, convert_type_list());
    ConvertOptions o;
    o.hf_dir = a->dir;
    o.out_path = a->out;
    o.type = *type;
    o.name = a->name;
    o.threads = a->threads;
    o.overwrite = a->force;
    o.progress = !a->quiet;
    if (!a->no_tokenizer) {
      if (!std::filesystem::exists(std::filesystem::path(a->dir) / "tokenizer.json"))
        fail("{} has no tokenizer.json; pass --no-tokenizer to convert the weights alone", a->dir);
      o.extra = gguf_tokenizer_metadata(a->dir);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const GgufWriteResult r = convert_hf_to_gguf(o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string types;
    for (const auto& [t, n] : r.type_counts) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, t);
    fmt::print("wrote {} ({}, {} tensors: {}) in {:.1f} s\n", a->out, human_bytes(r.file_bytes), r.tensors, types, s);
    if (r.fallbacks > 0)
      fmt::print(stderr, "note: {} tensor(s) have rows that are not whole blocks of the chosen type and use a "
                         "fallback type, as llama.cpp does\n", r.fallbacks);
    for (const auto& w : r.warnings) fmt::print(stderr, "warning: {}\n", w);
  });
}

}  // namespace moeflux::cli
