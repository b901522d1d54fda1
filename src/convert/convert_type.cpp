#include "convert/convert_type.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace moeflux {

namespace {

struct TypeRow {
  ConvertType type;
  std::string_view name;
  uint32_t ftype;     // llama.h LLAMA_FTYPE_*
  GgmlType default_;  // llama_ftype_get_default_type
};
constexpr TypeRow kTypes[] = {
    {ConvertType::F32, "f32", 0, GgmlType::F32},
    {ConvertType::F16, "f16", 1, GgmlType::F16},
    {ConvertType::BF16, "bf16", 32, GgmlType::BF16},
    {ConvertType::Q8_0, "q8_0", 7, GgmlType::Q8_0},
    {ConvertType::Q4_0, "q4_0", 2, GgmlType::Q4_0},
    {ConvertType::Q4_K_M, "q4_k_m", 15, GgmlType::Q4_K},
    {ConvertType::Q5_K_M, "q5_k_m", 17, GgmlType::Q5_K},
    {ConvertType::Q6_K, "q6_k", 18, GgmlType::Q6_K},
    {ConvertType::MXFP4, "mxfp4", 38, GgmlType::MXFP4},
};

const TypeRow& row(ConvertType t) {
  for (const auto& r : kTypes)
    if (r.type == t) return r;
  fail("unknown convert type {}", int(t));
}

bool is_float(ConvertType t) { return t == ConvertType::F32 || t == ConvertType::F16 || t == ConvertType::BF16; }

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}
bool has(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

uint32_t block_of(GgmlType t) { return ggml_type_info(uint32_t(t))->block; }

// ggml_n_dims: trailing dims of 1 do not count ([D, 1] is one-dimensional).
int n_dims(const std::vector<uint64_t>& d) {
  int n = 1;
  for (int i = int(d.size()) - 1; i > 0; --i)
    if (d[size_t(i)] > 1) {
      n = i + 1;
      break;
    }
  return n;
}

// llama-quant.cpp tensor_get_category, reduced to the categories whose rules
// differ for the types here.
enum class Cat { Output, TokenEmbd, AttnV, AttnK, AttnOutput, FfnDown, Other };
Cat category(std::string_view n) {
  if (n == "output.weight") return Cat::Output;
  if (n == "token_embd.weight") return Cat::TokenEmbd;
  if (has(n, "attn_qkv.weight") || has(n, "attn_kv_b.weight") || has(n, "attn_v.weight")) return Cat::AttnV;
  if (has(n, "attn_k.weight")) return Cat::AttnK;
  if (has(n, "attn_q.weight")) return Cat::Other;
  if (has(n, "attn_output.weight")) return Cat::AttnOutput;
  if (has(n, "ffn_up") || has(n, "ffn_gate")) return Cat::Other;
  if (has(n, "ffn_down")) return Cat::FfnDown;
  return Cat::Other;
}

// llama-quant.cpp's use_more_bits: the first and last eighth of the layers
// and every third one between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

}  // namespace

std::optional<ConvertType> parse_convert_type(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const auto& r : kTypes)
    if (r.name == lower) return r.type;
  return std::nullopt;
}

std::string_view convert_type_name(ConvertType t) { return row(t).name; }

std::string convert_type_list() {
  std::string s;
  for (const auto& r : kTypes) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

uint32_t llama_file_type(ConvertType t) { return row(t).ftype; }

TypeMix::TypeMix(ConvertType type, const ModelSpec& spec, const std::vector<std::string>& names)
    : type_(type), n_layer_(spec.layers), n_expert_(std::max(1, spec.experts)) {
  for (const auto& n : names) {
    if (category(n) == Cat::AttnV) ++n_attention_wv_;
    if (category(n) == Cat::Output) tied_ = false;
  }
}

GgmlType TypeMix::choose(const std::string& name, const std::vector<uint64_t>& dims) {
  if (is_float(type_)) {
    // convert_hf_to_gguf.py (ModelBase.prepare_tensors): 1-D tensors, norms,
    // routers, the shared-expert gate and anything not a .weight stay F32.
    if (n_dims(dims) <= 1 || ends_with(name, "_norm.weight") || has(name, "ffn_gate_inp.weight") ||
        has(name, "ffn_gate_inp_shexp.weight") || !ends_with(name, ".weight"))
      return GgmlType::F32;
    return row(type_).default_;
  }
  return choose_quantized(name, dims);
}

GgmlType TypeMix::choose_quantized(const std::string& name, const std::vector<uint64_t>& dims) {
  // tensor_allows_quantization: what llama-quantize leaves as it is (F32 in
  // the converter's output) - 1-D, norms, routers, non-weights.
  if (n_dims(dims) < 2 || !ends_with(name, "weight") || has(name, "_norm.weight") || has(name, "ffn_gate_inp.weight"))
    return GgmlType::F32;

  const ConvertType ft = type_;
  const bool km = ft == ConvertType::Q4_K_M || ft == ConvertType::Q5_K_M;
  GgmlType t = row(ft).default_;
  const Cat cat = category(name);
  const uint64_t ncols = dims[0];

  // llama_tensor_get_type_impl, the branches that apply to these types.
  if (cat == Cat::Output || (tied_ && cat == Cat::TokenEmbd)) {
    if (ft == ConvertType::MXFP4 || ncols % block_of(t) != 0) t = GgmlType::Q8_0;
    else if (t != GgmlType::Q8_0) t = GgmlType::Q6_K;
  } else if (ft == ConvertType::MXFP4) {
    t = dims.size() > 2 && dims[2] > 1 ? GgmlType::MXFP4 : GgmlType::Q8_0;  // experts MXFP4, the rest Q8_0
  } else if (cat == Cat::TokenEmbd) {
    // unchanged for these types
  } else if (cat == Cat::AttnV) {
    if (km && use_more_bits(i_attention_wv_, n_attention_wv_)) t = GgmlType::Q6_K;
    // (llama.cpp also bumps Q4_K to Q5_K for LLM_TYPE_70B, a dense llama; no MoE here is typed 70B.)
    if (n_expert_ == 8) t = GgmlType::Q8_0;  // "for the 8-expert model, bumping this to Q8_0 trades just ~128MB"
    ++i_attention_wv_;
  } else if (cat == Cat::AttnK) {
    if (n_expert_ == 8) t = GgmlType::Q8_0;
  } else if (cat == Cat::FfnDown) {
    int i_layer = i_ffn_down_;
    // With experts the layer comes from the name (llama.cpp: experts' tensors
    // need not be consecutive); n_layer is the block count either way.
    if (n_expert_ > 1 && std::sscanf(name.c_str(), "blk.%d.", &i_layer) != 1)
      fail("cannot read the layer of tensor '{}'", name);
    if (km && use_more_bits(i_layer, n_layer_)) t = GgmlType::Q6_K;
    ++i_ffn_down_;
  } else if (cat == Cat::AttnOutput) {
    if (n_expert_ == 8 && ft == ConvertType::Q4_K_M) t = GgmlType::Q5_K;
  }
  return fallback(t, ncols);
}

// tensor_type_fallback: rows that are not whole blocks of the chosen type.
GgmlType TypeMix::fallback(GgmlType t, uint64_t ncols) {
  if (ncols % block_of(t) == 0) return t;
  ++fallbacks_;
  GgmlType r = t;
  switch (t) {
    case GgmlType::Q4_K: r = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: r = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: r = GgmlType::Q8_0; break;
    default: break;  // 32-element blocks have no smaller block: F16 below
  }
  if (ncols % block_of(r) != 0) r = GgmlType::F16;
  return r;
}

}  // namespace moeflux
