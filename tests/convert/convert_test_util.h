// Helpers for the converter tests: small Hugging Face directories written on
// the fly, and an independent reading of what a converted tensor must hold.
#pragma once
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/half.h"
#include "format/safetensors.h"
#include "format/safetensors_writer.h"
#include "model/arch.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/tensor_list.h"
#include "moeflux/error.h"
#include "test_util.h"

namespace moeflux::test {

// A qwen3_moe whose rows are whole 256-blocks, so every K format applies
// (the oracle models' 72-wide rows fall back to F16 in every quantized type).
inline nlohmann::json qwen3_256_config(int layers = 2, int moe_ffn = 256) {
  return nlohmann::json{{"model_type", "qwen3_moe"},     {"vocab_size", 256},        {"hidden_size", 256},
                        {"num_hidden_layers", layers},   {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                        {"head_dim", 64},                {"intermediate_size", 512}, {"moe_intermediate_size", moe_ffn},
                        {"num_experts", 4},              {"num_experts_per_tok", 2}, {"norm_topk_prob", true},
                        {"max_position_embeddings", 512}, {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-6},
                        {"hidden_act", "silu"},          {"tie_word_embeddings", false}, {"bos_token_id", 1},
                        {"eos_token_id", 2},             {"torch_dtype", "float32"}};
}

// Mixtral-shaped with 8 experts: llama.cpp's n_expert == 8 rules and the q/k permutation.
inline nlohmann::json mixtral_256_config(int layers = 2) {
  return nlohmann::json{{"model_type", "mixtral"},       {"vocab_size", 256},        {"hidden_size", 256},
                        {"num_hidden_layers", layers},   {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                        {"intermediate_size", 256},      {"num_local_experts", 8},   {"num_experts_per_tok", 2},
                        {"max_position_embeddings", 512}, {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-5},
                        {"hidden_act", "silu"},          {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"}};
}

inline ModelSpec spec_of(const nlohmann::json& cfg) { return model_spec_from_config(Config(cfg, "config.json")); }

struct HfWriteOptions {
  DType dtype = DType::F32;
  uint64_t seed = 1;
  std::map<std::string, std::vector<float>> values;  // replaces the random values of these tensors
  std::set<std::string> drop;                        // tensors left out
  std::map<std::string, std::vector<int64_t>> shapes;  // tensors written with another shape
};

// config.json + model.safetensors with seeded normal values (norms around 1).
inline void write_hf_model(const std::string& dir, const nlohmann::json& cfg, const HfWriteOptions& o = {}) {
  write_file(dir + "/config.json", cfg.dump(2));
  const ModelSpec spec = spec_of(cfg);
  std::vector<TensorDecl> decls;
  std::vector<std::vector<float>> vals;
  std::mt19937_64 rng(o.seed);
  for (const ModelTensor& t : model_tensors(spec, arch_def(spec.arch))) {
    if (o.drop.count(t.name)) continue;
    std::vector<int64_t> shape = o.shapes.count(t.name) ? o.shapes.at(t.name) : t.shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    if (o.values.count(t.name)) {
      v = o.values.at(t.name);
    } else {
      std::normal_distribution<float> nd(t.kind == ParamKind::Norm ? 1.f : 0.f,
                                         t.kind == ParamKind::Norm ? 0.05f : 1.f / std::sqrt(float(shape.back())));
      for (auto& x : v) x = nd(rng);
    }
    decls.push_back({t.name, o.dtype, shape});
    vals.push_back(std::move(v));
  }
  SafetensorsWriter w(dir + "/model.safetensors", decls, {{"format", "pt"}});
  for (size_t i = 0; i < decls.size(); ++i) {
    const auto& v = vals[i];
    if (o.dtype == DType::F32) {
      w.write({reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4});
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t k = 0; k < v.size(); ++k) h[k] = o.dtype == DType::BF16 ? f32_to_bf16(v[k]) : f32_to_f16(v[k]);
      w.write({reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2});
    }
  }
  w.finish();
}

// The f32 rows an HF tensor gives, in the row order llama.cpp's converter
// writes them: for arch mixtral's q/k, GGUF row r of head h is HF row
// h*hd + (r%hd%2)*(hd/2) + (r%hd)/2 (LlamaModel.permute, written out here
// independently of the converter's block shuffle).
inline std::vector<float> expected_rows(const SafetensorsModel& m, const ModelSpec& spec, const ModelTensor& t) {
  const TensorRef& ref = m.get(t.name);
  const size_t n = size_t(ref.numel());
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (ref.dtype == DType::F32) {
      std::memcpy(&v[i], ref.data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, ref.data + 2 * i, 2);
      v[i] = ref.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  const bool permute = spec.arch == "mixtral" &&
                       (t.name.find("self_attn.q_proj.") != std::string::npos ||
                        t.name.find("self_attn.k_proj.") != std::string::npos);
  if (!permute) return v;
  const size_t units = size_t(t.shape[0]), unit = t.shape.size() == 1 ? 1 : size_t(t.shape[1]);
  const size_t hd = size_t(spec.head_dim);
  std::vector<float> out(n);
  for (size_t r = 0; r < units; ++r) {
    const size_t h = r / hd, rem = r % hd, src = h * hd + (rem % 2) * (hd / 2) + rem / 2;
    std::memcpy(&out[r * unit], &v[src * unit], unit * sizeof(float));
  }
  return out;
}

}  // namespace moeflux::test
