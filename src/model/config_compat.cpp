#include "model/config_compat.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/error.h"

namespace moeflux {

using nlohmann::json;

namespace {

// Keys of PretrainedConfig itself (4.x and 5.x) and of the training side of
// every MoE config class: metadata, generation defaults (generation_config
// supersedes them), dropout and router losses (training only), output
// switches. None changes a forward pass at inference.
constexpr std::string_view kHarmless[] = {
    "_name_or_path", "_commit_hash", "_attn_implementation", "_attn_implementation_autoset", "add_cross_attention",
    "architectures", "attention_dropout", "bad_words_ids", "begin_suppress_tokens", "bos_token_id",
    "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty",
    "do_sample", "dtype", "early_stopping", "encoder_no_repeat_ngram_size", "eos_token_id",
    "exponential_decay_length_penalty", "finetuning_task", "forced_bos_token_id", "forced_eos_token_id", "id2label",
    "initializer_range", "is_decoder", "is_encoder_decoder", "label2id", "length_penalty", "max_length",
    "min_length", "model_type", "no_repeat_ngram_size", "num_beam_groups", "num_beams", "num_return_sequences",
    "output_attentions", "output_hidden_states", "output_router_logits", "output_scores", "pad_token_id", "prefix",
    "problem_type", "pruned_heads", "quantization", "quantization_config", "remove_invalid_values",
    "repetition_penalty", "return_dict", "return_dict_in_generate", "router_aux_loss_coef", "sep_token_id",
    "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder",
    "tie_word_embeddings", "tokenizer_class", "top_k", "top_p", "torch_dtype", "torchscript",
    "transformers_version", "typical_p", "use_bfloat16", "use_cache", "rope_theta", "rope_scaling",
    "rope_parameters", "partial_rotary_factor"};

bool listed(std::span<const std::string_view> keys, std::string_view k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

// Renames each alias to its key; both present with different values is
// ambiguous (transformers would take one silently) and refused.
void fold_aliases(json& j, const ArchDef& arch, const std::string& src) {
  for (const KeyAlias& a : arch.aliases) {
    const std::string key(a.key), alias(a.alias);
    if (!j.contains(alias)) continue;
    if (j.contains(key) && !j[key].is_null() && !j[alias].is_null() && j[key] != j[alias])
      fail("{}: '{}' = {} and its alias '{}' = {} disagree", src, key, j[key].dump(), alias, j[alias].dump());
    if (!j.contains(key) || j[key].is_null()) j[key] = j[alias];
    j.erase(alias);
  }
}

void fold_dtype(json& j, const std::string& src) {
  const bool t = j.contains("torch_dtype") && !j["torch_dtype"].is_null();
  const bool d = j.contains("dtype") && !j["dtype"].is_null();
  if (t && d && j["torch_dtype"] != j["dtype"])
    fail("{}: 'torch_dtype' = {} and 'dtype' = {} disagree", src, j["torch_dtype"].dump(), j["dtype"].dump());
  if (d && !t) j["torch_dtype"] = j["dtype"];
  j.erase("dtype");
}

double finite_number(const json& v, const std::string& src, const std::string& what) {
  if (!v.is_number()) fail("{}: '{}' must be a number, got {}", src, what, v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) fail("{}: '{}' = {} must be finite", src, what, v.dump());
  return x;
}

// The RoPE settings, from either version's keys, as one rope_theta. Only
// default RoPE (no scaling, full rotary dimension) is implemented; any other
// rope_type is refused by name, and so is any parameter of the dict that
// default RoPE does not use.
void fold_rope(json& j, const ArchDef& arch, const std::string& src) {
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  const json* params = nullptr;
  std::string where;
  if (present("rope_parameters") && present("rope_scaling") && j["rope_parameters"] != j["rope_scaling"])
    fail("{}: both 'rope_parameters' and 'rope_scaling' are given, and differ; keep one", src);
  if (present("rope_parameters")) params = &j["rope_parameters"], where = "rope_parameters";
  else if (present("rope_scaling")) params = &j["rope_scaling"], where = "rope_scaling";

  std::optional<double> theta, partial;
  if (present("rope_theta")) theta = finite_number(j["rope_theta"], src, "rope_theta");
  if (present("partial_rotary_factor"))
    partial = finite_number(j["partial_rotary_factor"], src, "partial_rotary_factor");
  if (params) {
    if (!params->is_object()) fail("{}: '{}' must be an object, got {}", src, where, params->dump());
    std::string type = "default";
    for (const char* k : {"rope_type", "type"})
      if (params->contains(k) && !(*params)[k].is_null()) {
        if (!(*params)[k].is_string()) fail("{}: '{}.{}' must be a string, got {}", src, where, k, (*params)[k].dump());
        type = (*params)[k].get<std::string>();
      }
    // transformers 5 nests one dict per layer type ({"full_attention": {...}}).
    for (auto& [k, v] : params->items())
      if (v.is_object())
        fail("{}: '{}.{}': RoPE parameters per layer type are not implemented", src, where, k);
    const bool yarn = type == "yarn" && arch.rope_yarn;
    if (type != "default" && !yarn)
      fail("{}: unsupported '{}' type '{}' (its rope_type; supported: default, i.e. no RoPE scaling{})", src, where,
           type, arch.rope_yarn ? ", and yarn" : "");
    json yarn_params = json::object();
    for (auto& [k, v] : params->items()) {
      if (k == "rope_type" || k == "type" || v.is_null() || listed(arch.rope_ignored_keys, k)) continue;
      const std::string name = where + "." + k;
      // YaRN's own parameters (transformers' _compute_yarn_parameters).
      static constexpr std::string_view kYarn[] = {"factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim",
                                                  "attention_factor", "original_max_position_embeddings"};
      if (yarn && (listed(kYarn, k) || k == "truncate")) {
        if (k == "truncate" && !v.is_boolean()) fail("{}: '{}' must be true or false, got {}", src, name, v.dump());
        if (k != "truncate") finite_number(v, src, name);
        yarn_params[k] = v;
        continue;
      }
      if (k == "rope_theta") {
        const double t = finite_number(v, src, name);
        if (theta && *theta != t)
          fail("{}: '{}' = {} and 'rope_theta' = {} disagree", src, name, v.dump(), j["rope_theta"].dump());
        theta = t;
      } else if (k == "partial_rotary_factor") {
        partial = finite_number(v, src, name);
      } else if (k == "original_max_position_embeddings") {
        // Informational for default RoPE (transformers reads it only for
        // the scaling types, refused above).
      } else {
        fail("{}: '{}' = {} is not implemented with rope_type '{}' (it would change the RoPE frequencies)",
             src, name, v.dump(), type);
      }
    }
    if (yarn) j["rope_yarn"] = yarn_params;
  }
  if (partial && arch.partial_rotary) {
    // Kept for the arch file, which reads it (the dict's copy folded in).
    if (!(*partial > 0 && *partial <= 1)) fail("{}: 'partial_rotary_factor' = {} must be in (0, 1]", src, *partial);
    j["partial_rotary_factor"] = *partial;
  } else if (partial && *partial != 1.0)
    fail("{}: 'partial_rotary_factor' = {} is not implemented (supported: 1.0, RoPE over the whole head)", src,
         *partial);
  const double t = theta.value_or(arch.default_rope_theta);
  if (!(t > 0)) fail("{}: 'rope_theta' = {} must be positive", src, t);
  for (const char* k : {"rope_parameters", "rope_scaling"}) j.erase(k);
  if (!arch.partial_rotary) j.erase("partial_rotary_factor");
  j["rope_theta"] = t;
}

}  // namespace

Config lift_text_config(const Config& cfg) {
  const json& top = cfg.raw();
  if (!top.contains("text_config") || top["text_config"].is_null()) return cfg;
  if (!top["text_config"].is_object())
    fail("{}: 'text_config' must be an object, got {}", cfg.source(), top["text_config"].dump());
  json j = top["text_config"];
  // The top level's keys the text model lacks (dtype, tie_word_embeddings,
  // quantization) hold for it too; its model_type names the whole model.
  for (auto& [k, v] : top.items())
    if (k != "text_config" && k != "vision_config" && !j.contains(k)) j[k] = v;
  j["model_type"] = top["model_type"];
  return Config(std::move(j), cfg.source());
}

Config normalize_config(const Config& cfg, const ArchDef& arch, std::vector<std::string>* unread) {
  json j = cfg.raw();
  const std::string& src = cfg.source();
  if (unread) {
    for (auto& [k, v] : j.items()) {
      bool alias = false;
      for (const KeyAlias& a : arch.aliases) alias |= a.alias == k;
      if (!alias && !listed(kHarmless, k) && !listed(arch.class_keys, k)) unread->push_back(k);
    }
  }
  // Model weights pruned by head: the matrices would have fewer rows than
  // the spec says; refused rather than mis-shaped.
  if (j.contains("pruned_heads") && !j["pruned_heads"].is_null() && !j["pruned_heads"].empty())
    fail("{}: 'pruned_heads' = {} is not implemented", src, j["pruned_heads"].dump());
  fold_aliases(j, arch, src);
  fold_dtype(j, src);
  fold_rope(j, arch, src);
  return Config(std::move(j), src);
}

}  // namespace moeflux
