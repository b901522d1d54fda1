// Synthetic models: real architectures' shapes (from presets that are their
// config.json files) with seeded random weights, written as a Hugging Face
// directory that moeflux and transformers both load. For benchmarks and
// demos; the weights mean nothing.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "convert/convert_type.h"
#include "core/output_file.h"
#include "format/gguf/gguf_value.h"
#include "model/model_spec.h"

namespace moeflux {

struct SynthPreset {
  std::string name;
  std::string description;
  nlohmann::ordered_json config;  // empty: shape known but architecture not supported yet
  std::string unsupported_reason;
};

const std::vector<SynthPreset>& synth_presets();
const SynthPreset& find_preset(const std::string& name);  // throws listing the presets

struct SynthOptions {
  std::string preset;
  std::string out_dir;
  std::optional<int> layers, experts;
  uint64_t seed = 0;
  // Emulates the unequal expert popularity of trained routers (random
  // routers route almost uniformly): router row e is scaled by
  // 1 + route_skew * q_e^2, q_e in [0, 1] a seeded per-layer ranking, so a
  // few experts get logits of larger magnitude and win top-k more often.
  // 0 keeps the uniform router. Not any real model's routing statistics.
  double route_skew = 0;
  uint64_t max_shard_bytes = 4ull << 30;
  bool progress = true;
  // Existing files of the same names (weights, config.json, index) are
  // replaced only with Replace::Yes (`--force`); by default synth refuses
  // before writing anything.
  Replace replace = Replace::No;
  // Names in out_dir the caller writes afterwards (the tokenizer), checked
  // with synth's own before anything is written.
  std::vector<std::string> also_writes;
};

// The spec of the model the options describe (preset plus overrides); the
// preset's config with the overrides applied goes to `config` if given.
ModelSpec synth_spec(const SynthOptions& opts, nlohmann::ordered_json* config = nullptr);

// Writes config.json and safetensors shards into out_dir (created if
// missing; refuses a directory that already holds a model, or any file of
// the names it writes, unless opts.replace).
// Returns the bytes of weights written.
uint64_t synth_model(const SynthOptions& opts);

// Writes the same model (same options, same values) as one GGUF file of
// `type` at out_file (opts.out_dir is not used), generating and quantizing
// a chunk at a time; `tokenizer` is appended as metadata. Returns the
// file's size. Refuses an existing file unless opts.replace.
uint64_t synth_gguf(const SynthOptions& opts, ConvertType type, const GgufMetadata& tokenizer,
                    const std::string& out_file);

}  // namespace moeflux
