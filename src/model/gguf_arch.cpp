#include "model/gguf_arch.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>
#include <map>
#include <string_view>

#include "core/error.h"
#include "model/arch.h"
#include "model/gguf_layout.h"
#include "model/tensor_check.h"

namespace moeflux {

namespace gguf_read {

std::string key(std::string_view arch, std::string_view suffix) { return fmt::format("{}.{}", arch, suffix); }

void put_u32(GgufMetadata& md, std::string k, int64_t v) {
  if (v < 0 || v > int64_t(UINT32_MAX)) fail("GGUF metadata '{}' = {} does not fit uint32", k, v);
  md.add(std::move(k), {uint32_t(v)});
}

}  // namespace gguf_read

using gguf_read::key;
using gguf_read::put_u32;

bool gguf_recipe(const ModelSpec& spec, const ModelTensor& t, GgufRecipe& out) {
  const GgufLayout* l = arch_def(spec.arch).gguf.layout;
  return l && l->recipe(spec, t, out);
}

std::string gguf_arch_name(const ModelSpec& spec) {
  const ArchDef& arch = arch_def(spec.arch);
  if (arch.gguf.name.empty())
    fail("architecture '{}' has no GGUF name: moeflux does not read or write it as GGUF yet", spec.arch);
  return std::string(arch.gguf.name);
}

void add_gguf_model_metadata(const ModelSpec& s, GgufMetadata& md) {
  const std::string a = gguf_arch_name(s);
  const GgufDialect& d = arch_def(s.arch).gguf;
  md.add("general.architecture", {a});
  if (d.layout) return d.layout->add_metadata(s, md);
  // Order and value types as convert_hf_to_gguf.py writes them (TextModel.set_gguf_parameters, then the arch's).
  put_u32(md, key(a, "block_count"), s.layers);
  put_u32(md, key(a, "context_length"), s.max_positions);
  put_u32(md, key(a, "embedding_length"), s.hidden);
  // llama and olmoe size their experts from feed_forward_length; the Qwen
  // MoE loaders from expert_feed_forward_length, feed_forward_length being
  // the dense MLP's (config intermediate_size).
  if (d.expert_ffn_key) {
    if (s.dense_ffn > 0) put_u32(md, key(a, "feed_forward_length"), s.dense_ffn);
  } else {
    put_u32(md, key(a, "feed_forward_length"), s.expert_ffn);
  }
  put_u32(md, key(a, "attention.head_count"), s.heads);
  put_u32(md, key(a, "attention.head_count_kv"), s.kv_heads);
  md.add(key(a, "rope.freq_base"), {s.rope_theta});
  md.add(key(a, "attention.layer_norm_rms_epsilon"), {s.rms_eps});
  put_u32(md, key(a, "expert_count"), s.experts);
  put_u32(md, key(a, "expert_used_count"), s.top_k);
  // Always explicit: the loaders' default (embedding_length / head_count) is
  // wrong for Qwen3 (head_dim 128 with hidden 2048 and 32 heads).
  put_u32(md, key(a, "attention.key_length"), s.head_dim);
  put_u32(md, key(a, "attention.value_length"), s.head_dim);
  if (d.expert_ffn_key) put_u32(md, key(a, "expert_feed_forward_length"), s.expert_ffn);
  if (s.shared_ffn > 0) put_u32(md, key(a, "expert_shared_feed_forward_length"), s.shared_ffn);
  if (d.vocab_and_rope_dims) {
    put_u32(md, key(a, "vocab_size"), s.vocab);
    put_u32(md, key(a, "rope.dimension_count"), s.head_dim);
  }
  md.add(key(a, "expert_weights_norm"), {s.norm_topk});
  if (s.sliding_window) put_u32(md, key(a, "attention.sliding_window"), *s.sliding_window);
  if (s.clip_qkv) md.add(key(a, "attention.clamp_kqv"), {*s.clip_qkv});
}

namespace {

class TensorSet {
 public:
  TensorSet(const std::vector<GgufTensor>& ts, const std::string& src) : src_(src) {
    for (const auto& t : ts) by_name_.emplace(t.name, &t);
  }
  const GgufTensor* find(const std::string& n) const {
    auto it = by_name_.find(n);
    return it == by_name_.end() ? nullptr : it->second;
  }
  const GgufTensor& need(const std::string& n) const {
    if (const GgufTensor* t = find(n)) return *t;
    fail("{}: tensor '{}' is missing", src_, n);
  }

 private:
  const std::string& src_;
  std::map<std::string, const GgufTensor*, std::less<>> by_name_;
};

// Sizes in [1, 2^24], as config.json's: products of two of them (q_dim,
// rows x columns) then fit the int64 arithmetic downstream.
constexpr uint32_t kMaxDim = uint32_t(1) << 24;

}  // namespace

namespace gguf_read {

std::string blk(int l, std::string_view what) { return fmt::format("blk.{}.{}", l, what); }

int dim(const GgufMetadata& md, const std::string& k) {
  const uint32_t v = md.get_u32(k);
  if (v == 0 || v > kMaxDim) fail("{}: '{}' = {} is not a valid size (expected 1 to {})", md.source(), k, v, kMaxDim);
  return int(v);
}

int opt_dim(const GgufMetadata& md, const std::string& k, int def) {
  auto v = md.opt_u32(k);
  if (!v) return def;
  if (*v == 0 || *v > kMaxDim)
    fail("{}: '{}' = {} is not a valid size (expected 1 to {})", md.source(), k, *v, kMaxDim);
  return int(*v);
}

// A positive finite float: 0, negatives and NaN turn every log-prob into NaN.
float positive_f32(const GgufMetadata& md, const std::string& k, std::optional<float> def, float max) {
  std::optional<float> v = md.opt_f32(k);
  if (!v && !def) v = md.get_f32(k);  // throws naming the missing key
  const float x = v ? *v : *def;
  if (!std::isfinite(x) || x <= 0 || x > max)
    fail("{}: '{}' = {} must be a finite number in (0, {}]", md.source(), k, x, max);
  return x;
}

bool block_at_or_past(std::string_view name, int layers) {
  if (!name.starts_with("blk.")) return false;
  int64_t n = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return false;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && n < (int64_t(1) << 40); ++i) n = n * 10 + (name[i] - '0');
  return n >= layers;
}

void read_vocab_and_tokens(const GgufMetadata& md, const std::vector<GgufTensor>& tensors, ModelSpec& s) {
  const std::string& src = md.source();
  const GgufTensor* embd = nullptr;
  bool has_output = false;
  for (const GgufTensor& t : tensors) {
    if (t.name == "token_embd.weight") embd = &t;
    has_output |= t.name == "output.weight";
  }
  if (!embd) fail("{}: tensor 'token_embd.weight' is missing", src);
  if (embd->dims.size() != 2 || embd->dims[0] != uint64_t(s.hidden))
    fail("{}: tensor 'token_embd.weight' has shape {}, expected [{}, vocab]", src, embd->shape_str(), s.hidden);
  if (embd->dims[1] > uint64_t(INT32_MAX)) fail("{}: vocabulary of {} tokens is too large", src, embd->dims[1]);
  s.vocab = int(embd->dims[1]);
  s.tie_embeddings = !has_output;
  for (auto [k, out] : {std::pair{"tokenizer.ggml.bos_token_id", &s.bos_token}, {"tokenizer.ggml.eos_token_id", &s.eos_token}})
    if (auto v = md.opt_u32(k)) {
      if (*v >= uint32_t(s.vocab)) fail("{}: '{}' = {} is not a token id in [0, vocab {})", src, k, *v, s.vocab);
      *out = int32_t(*v);
    }
}

}  // namespace gguf_read

using gguf_read::blk;
using gguf_read::opt_dim;
using gguf_read::positive_f32;

ModelSpec model_spec_from_gguf(const GgufMetadata& md, const std::vector<GgufTensor>& tensors) {
  const std::string& src = md.source();
  const std::string& a = md.get_str("general.architecture");
  const ArchDef* arch = arch_by_gguf_name(a);
  if (!arch) {
    std::string names;
    for (std::string_view hf : supported_archs())
      names += fmt::format("{}{}", names.empty() ? "" : ", ", arch_def(hf).gguf.name);
    fail("{}: unsupported 'general.architecture' = '{}' (supported: {}; llama only with experts, as Mixtral)", src,
         a, names);
  }
  const GgufDialect& d = arch->gguf;
  if (d.layout) return d.layout->spec_from_gguf(md, tensors);
  const TensorSet ts(tensors, src);

  ModelSpec s;
  s.arch = std::string(arch->model_type);
  s.source_dir = src;
  s.layers = gguf_read::dim(md, key(a, "block_count"));
  s.hidden = gguf_read::dim(md, key(a, "embedding_length"));
  s.heads = gguf_read::dim(md, key(a, "attention.head_count"));
  s.kv_heads = opt_dim(md, key(a, "attention.head_count_kv"), s.heads);
  s.max_positions = gguf_read::dim(md, key(a, "context_length"));
  // Against the blk.N tensors before any per-layer loop: a block_count of
  // 2^31 - 1 would otherwise loop (and look up names) two billion times.
  {
    std::vector<std::string_view> names;
    names.reserve(tensors.size());
    for (const GgufTensor& t : tensors) names.push_back(t.name);
    check_layer_count(s.layers, numbered_blocks(names, "blk."), src, "'" + key(a, "block_count") + "'", "blk.");
  }
  s.rms_eps = positive_f32(md, key(a, "attention.layer_norm_rms_epsilon"), std::nullopt, 1.f);
  s.rope_theta = positive_f32(md, key(a, "rope.freq_base"), 10000.f, 1e30f);
  s.rope_interleaved = d.interleaved_rope;
  s.head_dim = opt_dim(md, key(a, "attention.key_length"), s.hidden / s.heads);
  if (int64_t(s.heads) * s.head_dim > int64_t(kMaxDim))
    fail("{}: head_count {} x key_length {} exceeds {}", src, s.heads, s.head_dim, kMaxDim);
  if (int v = opt_dim(md, key(a, "attention.value_length"), s.head_dim); v != s.head_dim)
    fail("{}: '{}' = {} differs from the key length {}; unsupported", src, key(a, "attention.value_length"), v,
         s.head_dim);
  if (int r = opt_dim(md, key(a, "rope.dimension_count"), s.head_dim); r != s.head_dim)
    fail("{}: '{}' = {}: partial rotary embeddings are unsupported (head dim {})", src, key(a, "rope.dimension_count"),
         r, s.head_dim);
  if (auto rs = md.opt_str(key(a, "rope.scaling.type")); rs && *rs != "none")
    fail("{}: unsupported '{}' = '{}' (supported: none)", src, key(a, "rope.scaling.type"), *rs);
  if (auto sw = md.opt_u32(key(a, "attention.sliding_window"))) {
    if (*sw == 0 || *sw > uint32_t(INT32_MAX)) fail("{}: '{}' = {} must be positive", src, key(a, "attention.sliding_window"), *sw);
    s.sliding_window = int(*sw);
  }
  if (md.has(key(a, "attention.clamp_kqv")))
    s.clip_qkv = positive_f32(md, key(a, "attention.clamp_kqv"), std::nullopt, 3.4e38f);

  s.experts = gguf_read::dim(md, key(a, "expert_count"));
  s.top_k = gguf_read::dim(md, key(a, "expert_used_count"));
  s.norm_topk = md.opt_bool(key(a, "expert_weights_norm")).value_or(d.llama_norm_topk);

  const GgufTensor& embd = ts.need("token_embd.weight");
  if (embd.dims.size() != 2 || embd.dims[0] != uint64_t(s.hidden))
    fail("{}: tensor 'token_embd.weight' has shape {}, expected [{}, vocab]", src, embd.shape_str(), s.hidden);
  if (embd.dims[1] > uint64_t(INT32_MAX)) fail("{}: vocabulary of {} tokens is too large", src, embd.dims[1]);
  s.vocab = int(embd.dims[1]);
  s.tie_embeddings = ts.find("output.weight") == nullptr;

  // Sparse-layer pattern from the router tensors.
  s.layer_is_moe.assign(size_t(s.layers), 0);
  for (int l = 0; l < s.layers; ++l) s.layer_is_moe[size_t(l)] = ts.find(blk(l, "ffn_gate_inp.weight")) != nullptr;

  // Routed expert FFN width: the key llama.cpp reads, checked against the tensors.
  const std::string ffn_key = d.expert_ffn_key ? key(a, "expert_feed_forward_length") : key(a, "feed_forward_length");
  const GgufTensor* exps = nullptr;
  for (int l = 0; l < s.layers && !exps; ++l)
    if (s.layer_is_moe[size_t(l)]) exps = &ts.need(blk(l, "ffn_gate_exps.weight"));
  if (md.has(ffn_key)) {
    s.expert_ffn = gguf_read::dim(md, ffn_key);
  } else if (exps && exps->dims.size() == 3) {
    s.expert_ffn = int(exps->dims[1]);
  } else {
    fail("{}: '{}' is missing", src, ffn_key);
  }
  if (exps && (exps->dims.size() != 3 || exps->dims[0] != uint64_t(s.hidden) ||
               exps->dims[1] != uint64_t(s.expert_ffn) || exps->dims[2] != uint64_t(s.experts)))
    fail("{}: tensor '{}' has shape {}, expected [{}, {}, {}] ({})", src, exps->name, exps->shape_str(), s.hidden,
         s.expert_ffn, s.experts, ffn_key);
  if (d.expert_ffn_key) s.dense_ffn = opt_dim(md, key(a, "feed_forward_length"), 0);
  s.shared_ffn = opt_dim(md, key(a, "expert_shared_feed_forward_length"), 0);
  for (int l = 0; l < s.layers; ++l) {
    if (!s.layer_is_moe[size_t(l)]) {
      if (s.dense_ffn <= 0)
        fail("{}: layer {} has no ffn_gate_inp (dense) but '{}' is missing", src, l, key(a, "feed_forward_length"));
      continue;
    }
    if (s.shared_ffn == 0 && ts.find(blk(l, "ffn_gate_shexp.weight")))
      fail("{}: tensor '{}' present but '{}' is missing", src, blk(l, "ffn_gate_shexp.weight"),
           key(a, "expert_shared_feed_forward_length"));
    if (ts.find(blk(l, "ffn_gate_inp_shexp.weight"))) s.shared_expert_gate = true;
  }

  // Attention variants from the tensors of layer 0 (every layer has the same).
  s.qkv_bias = ts.find(blk(0, "attn_q.bias")) != nullptr;
  s.o_bias = ts.find(blk(0, "attn_output.bias")) != nullptr;
  if (const GgufTensor* qn = ts.find(blk(0, "attn_q_norm.weight"))) {
    const uint64_t n = qn->dims.empty() ? 0 : qn->dims[0];
    // With one head both kinds have the same width; the arch decides (olmoe normalises the whole projection).
    if (n == uint64_t(s.head_dim) && (s.heads > 1 || !d.qk_norm_whole)) s.qk_norm = QkNorm::PerHead;
    else if (n == uint64_t(s.heads) * uint64_t(s.head_dim)) s.qk_norm = QkNorm::Full;
    else fail("{}: tensor '{}' has shape {}, expected [{}] or [{}]", src, qn->name, qn->shape_str(), s.head_dim,
              s.q_dim());
  }

  for (auto [k, out] : {std::pair{"tokenizer.ggml.bos_token_id", &s.bos_token}, {"tokenizer.ggml.eos_token_id", &s.eos_token}})
    if (auto v = md.opt_u32(k)) {
      if (*v >= uint32_t(s.vocab)) fail("{}: '{}' = {} is not a token id in [0, vocab {})", src, k, *v, s.vocab);
      *out = int32_t(*v);
    }

  // What the weights are stored as: the routed experts dominate the bytes.
  const GgufTensor& typed = exps ? *exps : embd;
  auto dt = dtype_from_ggml(typed.type);
  if (!dt) fail("{}: tensor '{}' has GGML type {} which moeflux does not read", src, typed.name, uint32_t(typed.type));
  s.dtype = *dt;

  if (s.heads % s.kv_heads != 0)
    fail("{}: head_count {} is not a multiple of head_count_kv {}", src, s.heads, s.kv_heads);
  if (s.head_dim % 2 != 0) fail("{}: head dimension {} must be even for RoPE", src, s.head_dim);
  if (s.top_k > s.experts) fail("{}: expert_used_count {} exceeds expert_count {}", src, s.top_k, s.experts);
  return s;
}

GgufLocation gguf_location(const ModelSpec& spec, const ModelTensor& t) {
  // Names as gguf-py's tensor_mapping.py maps them (see tests/fixtures/gguf_arch),
  // by what the tensor is (its slot in model_tensors()), not by parsing its HF name.
  using S = TensorSlot;
  if (const GgufLayout* l = arch_def(spec.arch).gguf.layout) {
    std::string n = l->tensor_name(spec, t);
    if (!n.empty()) return GgufLocation{std::move(n), -1};
  }
  switch (t.slot) {
    case S::Embed: return {"token_embd.weight"};
    case S::FinalNorm: return {"output_norm.weight"};
    case S::LmHead: return {"output.weight"};
    default: break;
  }
  static const std::map<S, std::string_view> kLayer = {
      {S::AttnNorm, "attn_norm.weight"},     {S::Q, "attn_q.weight"},
      {S::K, "attn_k.weight"},               {S::V, "attn_v.weight"},
      {S::O, "attn_output.weight"},          {S::QBias, "attn_q.bias"},
      {S::KBias, "attn_k.bias"},             {S::VBias, "attn_v.bias"},
      {S::OBias, "attn_output.bias"},        {S::QNorm, "attn_q_norm.weight"},
      {S::KNorm, "attn_k_norm.weight"},      {S::FfnNorm, "ffn_norm.weight"},
      {S::MlpGate, "ffn_gate.weight"},       {S::MlpUp, "ffn_up.weight"},
      {S::MlpDown, "ffn_down.weight"},       {S::Router, "ffn_gate_inp.weight"},
      {S::SharedGate, "ffn_gate_shexp.weight"}, {S::SharedUp, "ffn_up_shexp.weight"},
      {S::SharedDown, "ffn_down_shexp.weight"}, {S::SharedExpertGate, "ffn_gate_inp_shexp.weight"},
      {S::ExpertGate, "ffn_gate_exps.weight"},  {S::ExpertUp, "ffn_up_exps.weight"},
      {S::ExpertDown, "ffn_down_exps.weight"},
  };
  const auto it = kLayer.find(t.slot);
  if (it == kLayer.end() || t.layer < 0 || t.layer >= spec.layers)
    fail("tensor '{}' has no GGUF name for {}", t.name, spec.arch);
  const bool expert = t.slot == S::ExpertGate || t.slot == S::ExpertUp || t.slot == S::ExpertDown;
  if (expert && (t.expert < 0 || t.expert >= spec.experts))
    fail("tensor '{}': expert {} is not in [0, {})", t.name, t.expert, spec.experts);
  return GgufLocation{blk(t.layer, it->second), expert ? t.expert : -1};
}

std::vector<uint64_t> gguf_dims(const ModelSpec& spec, const ModelTensor& t) {
  std::vector<uint64_t> d(t.shape.rbegin(), t.shape.rend());
  if (gguf_location(spec, t).expert >= 0) d.push_back(uint64_t(spec.experts));
  return d;
}

}  // namespace moeflux
