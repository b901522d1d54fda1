// Qwen3-Next and Qwen3.5/3.6-MoE in GGUF as llama.cpp writes them
// (conversion/qwen.py: Qwen3NextModel, _LinearAttentionVReorderBase,
// Qwen3_5MoeTextModel; src/models/qwen3next.cpp, qwen35moe.cpp):
//   - general.architecture "qwen3next" / "qwen35moe"; the DeltaNet sizes
//     under ssm.* (conv_kernel, state_size = key head dim, group_count = key
//     heads, time_step_rank = value heads, inner_size = value width),
//     attention.recurrent_layers (or full_attention_interval), the partial
//     RoPE width as rope.dimension_count, qwen35moe's multimodal RoPE
//     sections (text positions make them plain RoPE);
//   - every RMSNorm weight but the DeltaNet output norm stored as 1 + w,
//     A_log as A = -exp(A_log), dt_bias as ssm_dt.bias, conv1d squeezed to
//     [channels, kernel], post_attention_layernorm as post_attention_norm;
//   - qwen3next: in_proj_qkvz (per key head [q, k, v, z]) split into
//     attn_qkv ([all q, all k, all v]) and attn_gate (all z); in_proj_ba kept
//     as ssm_ba;
//   - qwen35moe: in_proj_qkv/z/b/a as attn_qkv, attn_gate, ssm_beta,
//     ssm_alpha, with the value heads reordered from grouped by key head
//     (g * r + i) to tiled (i * Hk + g) everywhere they appear (v rows of
//     attn_qkv and conv1d, z, b, a, A, dt, and the columns of ssm_out);
//   - multi-token-prediction layers (nextn_predict_layers, blk.N past the
//     model's layers) are recognised and not loaded.
// Each transform is a recipe (gguf_recipe.h): the converter applies it,
// the reader undoes it, so the engine sees the Hugging Face tensors.
#include <fmt/format.h>

#include <set>

#include "core/error.h"
#include "model/arch.h"
#include "model/gguf_layout.h"
#include "model/tensor_check.h"

namespace moeflux {

namespace {

using S = TensorSlot;
using namespace gguf_read;

bool is_qwen35(const ModelSpec& s) { return s.arch != "qwen3_next"; }

std::string arch_name(const ModelSpec& s) { return is_qwen35(s) ? "qwen35moe" : "qwen3next"; }

// Value head j (grouped: key head g = j / r, i = j % r) at its tiled
// position i * Hk + g (qwen35moe; identity for qwen3next or r = 1).
int64_t v_head_pos(const ModelSpec& s, int64_t j) {
  const LinearAttnSpec& la = s.linear_attn;
  const int64_t r = la.value_heads / la.key_heads;
  if (!is_qwen35(s) || r == 1) return j;
  return (j % r) * la.key_heads + j / r;
}
// Unit u of a value-width vector (value heads of `hd` units each).
int64_t v_unit_pos(const ModelSpec& s, int64_t u, int64_t hd) { return v_head_pos(s, u / hd) * hd + u % hd; }

void add_metadata(const ModelSpec& s, GgufMetadata& md) {
  const std::string a = arch_name(s);
  const LinearAttnSpec& la = s.linear_attn;
  // Order as convert_hf_to_gguf.py writes them.
  put_u32(md, key(a, "block_count"), s.layers);
  put_u32(md, key(a, "context_length"), s.max_positions);
  put_u32(md, key(a, "embedding_length"), s.hidden);
  if (s.dense_ffn > 0) put_u32(md, key(a, "feed_forward_length"), s.dense_ffn);
  put_u32(md, key(a, "attention.head_count"), s.heads);
  put_u32(md, key(a, "attention.head_count_kv"), s.kv_heads);
  md.add(key(a, "rope.freq_base"), {s.rope_theta});
  md.add(key(a, "attention.layer_norm_rms_epsilon"), {s.rms_eps});
  if (s.experts > 0) {
    put_u32(md, key(a, "expert_count"), s.experts);
    put_u32(md, key(a, "expert_used_count"), s.top_k);
  }
  put_u32(md, key(a, "attention.key_length"), s.head_dim);
  put_u32(md, key(a, "attention.value_length"), s.head_dim);
  if (s.experts > 0) put_u32(md, key(a, "expert_feed_forward_length"), s.expert_ffn);
  if (s.shared_ffn > 0) put_u32(md, key(a, "expert_shared_feed_forward_length"), s.shared_ffn);
  put_u32(md, key(a, "ssm.conv_kernel"), la.conv_kernel);
  put_u32(md, key(a, "ssm.state_size"), la.key_dim);
  put_u32(md, key(a, "ssm.group_count"), la.key_heads);
  put_u32(md, key(a, "ssm.time_step_rank"), la.value_heads);
  put_u32(md, key(a, "ssm.inner_size"), la.value_width());
  std::vector<bool> recurrent(la.layer_is_linear.begin(), la.layer_is_linear.end());
  md.add(key(a, "attention.recurrent_layers"), {GgufArray{recurrent}});
  // The interval when the layers follow one (llama.cpp's default 4 otherwise; recurrent_layers decides).
  int interval = 4;
  for (int n = 1; n <= s.layers; ++n) {
    bool fits = true;
    for (int l = 0; l < s.layers; ++l) fits &= la.is_linear(l) == ((l + 1) % n != 0);
    if (fits) {
      interval = n;
      break;
    }
  }
  put_u32(md, key(a, "full_attention_interval"), interval);
  put_u32(md, key(a, "rope.dimension_count"), la.rotary_dims ? la.rotary_dims : s.head_dim);
  if (is_qwen35(s)) {
    // Multimodal RoPE sections over the rotary pairs (transformers' default
    // split, [11, 11, 10] for 64 dims); with text positions any split is plain RoPE.
    const int n = (la.rotary_dims ? la.rotary_dims : s.head_dim) / 2;
    md.add(key(a, "rope.dimension_sections"), {GgufArray{std::vector<int32_t>{(n + 2) / 3, (n + 1) / 3, n / 3, 0}}});
  }
  // llama.cpp renormalises the top-k always; written only when the model does not.
  if (!s.norm_topk) md.add(key(a, "expert_weights_norm"), {false});
}

ModelSpec spec_from_gguf(const GgufMetadata& md, const std::vector<GgufTensor>& tensors) {
  const std::string& src = md.source();
  const std::string a = md.get_str("general.architecture");
  ModelSpec s;
  s.arch = a == "qwen3next" ? "qwen3_next" : "qwen3_5_moe_text";
  s.source_dir = src;
  const int all_layers = dim(md, key(a, "block_count"));
  const uint32_t nextn = md.opt_u32(key(a, "nextn_predict_layers")).value_or(0);
  if (nextn >= uint32_t(all_layers))
    fail("{}: '{}' = {} leaves no layer of the {} of '{}'", src, key(a, "nextn_predict_layers"), nextn, all_layers,
         key(a, "block_count"));
  s.layers = all_layers - int(nextn);
  {
    std::vector<std::string_view> names;
    for (const GgufTensor& t : tensors) names.push_back(t.name);
    check_layer_count(all_layers, numbered_blocks(names, "blk."), src, "'" + key(a, "block_count") + "'", "blk.");
  }
  std::set<std::string, std::less<>> have;
  for (const GgufTensor& t : tensors) have.insert(t.name);
  auto has = [&](int l, std::string_view w) { return have.count(blk(l, w)) > 0; };

  s.hidden = dim(md, key(a, "embedding_length"));
  s.heads = dim(md, key(a, "attention.head_count"));
  s.kv_heads = opt_dim(md, key(a, "attention.head_count_kv"), s.heads);
  s.max_positions = dim(md, key(a, "context_length"));
  s.rms_eps = positive_f32(md, key(a, "attention.layer_norm_rms_epsilon"), std::nullopt, 1.f);
  s.rope_theta = positive_f32(md, key(a, "rope.freq_base"), 10000.f, 1e30f);
  s.head_dim = opt_dim(md, key(a, "attention.key_length"), s.hidden / s.heads);
  if (int v = opt_dim(md, key(a, "attention.value_length"), s.head_dim); v != s.head_dim)
    fail("{}: '{}' = {} differs from the key length {}; unsupported", src, key(a, "attention.value_length"), v,
         s.head_dim);
  if (auto rs = md.opt_str(key(a, "rope.scaling.type")); rs && *rs != "none")
    fail("{}: unsupported '{}' = '{}' (supported: none)", src, key(a, "rope.scaling.type"), *rs);
  s.qk_norm = QkNorm::PerHead;

  LinearAttnSpec& la = s.linear_attn;
  la.fused_projections = !is_qwen35(s);
  la.gated_attention = true;
  la.norm_weight_offset = 1.f;  // the reader gives back the zero-centred weights (w = stored - 1)
  la.conv_kernel = dim(md, key(a, "ssm.conv_kernel"));
  la.key_dim = dim(md, key(a, "ssm.state_size"));
  la.key_heads = dim(md, key(a, "ssm.group_count"));
  la.value_heads = dim(md, key(a, "ssm.time_step_rank"));
  const int inner = dim(md, key(a, "ssm.inner_size"));
  if (inner % la.value_heads != 0 || la.value_heads % la.key_heads != 0 || la.conv_kernel > 64)
    fail("{}: ssm.inner_size {} / time_step_rank {} / group_count {} / conv_kernel {} are not a valid DeltaNet shape",
         src, inner, la.value_heads, la.key_heads, la.conv_kernel);
  la.value_dim = inner / la.value_heads;
  la.rotary_dims = dim(md, key(a, "rope.dimension_count"));
  if (la.rotary_dims % 2 != 0 || la.rotary_dims > s.head_dim)
    fail("{}: '{}' = {} must be even and at most the head dim {}", src, key(a, "rope.dimension_count"),
         la.rotary_dims, s.head_dim);
  la.layer_is_linear.assign(size_t(s.layers), 0);
  if (const GgufValue* v = md.find(key(a, "attention.recurrent_layers"))) {
    const auto* arr = std::get_if<GgufArray>(&v->data);
    const auto* flags = arr ? std::get_if<std::vector<bool>>(&arr->data) : nullptr;
    if (!flags || flags->size() < size_t(s.layers))
      fail("{}: '{}' must be an array of at least {} booleans", src, key(a, "attention.recurrent_layers"), s.layers);
    for (int l = 0; l < s.layers; ++l) la.layer_is_linear[size_t(l)] = (*flags)[size_t(l)];
  } else {
    const uint32_t interval = md.opt_u32(key(a, "full_attention_interval")).value_or(4);
    if (interval == 0) fail("{}: '{}' = 0", src, key(a, "full_attention_interval"));
    for (int l = 0; l < s.layers; ++l) la.layer_is_linear[size_t(l)] = (l + 1) % interval != 0;
  }

  // MoE: experts, shared expert and its gate, dense layers, from keys and tensors.
  s.experts = opt_dim(md, key(a, "expert_count"), 0);
  s.layer_is_moe.assign(size_t(s.layers), 0);
  if (s.experts > 0) {
    s.top_k = dim(md, key(a, "expert_used_count"));
    s.expert_ffn = dim(md, key(a, "expert_feed_forward_length"));
    for (int l = 0; l < s.layers; ++l) s.layer_is_moe[size_t(l)] = has(l, "ffn_gate_inp.weight");
  }
  s.shared_ffn = opt_dim(md, key(a, "expert_shared_feed_forward_length"), 0);
  s.shared_expert_gate = s.shared_ffn > 0;
  s.dense_ffn = opt_dim(md, key(a, "feed_forward_length"), 0);
  for (int l = 0; l < s.layers; ++l)
    if (!s.layer_is_moe[size_t(l)] && s.dense_ffn == 0)
      fail("{}: layer {} has no ffn_gate_inp (dense) but '{}' is missing", src, l, key(a, "feed_forward_length"));
  s.norm_topk = md.opt_bool(key(a, "expert_weights_norm")).value_or(true);
  for (int l = 0; l < s.layers; ++l)
    if (!la.is_linear(l)) {
      s.qkv_bias = has(l, "attn_q.bias");
      s.o_bias = has(l, "attn_output.bias");
      break;
    }

  read_vocab_and_tokens(md, tensors, s);
  const GgufTensor* typed = nullptr;
  for (const GgufTensor& t : tensors)
    if (t.name.ends_with("ffn_gate_exps.weight") || (!typed && t.name == "token_embd.weight")) typed = &t;
  if (auto dt = dtype_from_ggml(typed->type)) s.dtype = *dt;
  else fail("{}: tensor '{}' has GGML type {} which moeflux does not read", src, typed->name, uint32_t(typed->type));

  if (s.heads % s.kv_heads != 0)
    fail("{}: head_count {} is not a multiple of head_count_kv {}", src, s.heads, s.kv_heads);
  if (s.top_k > s.experts) fail("{}: expert_used_count {} exceeds expert_count {}", src, s.top_k, s.experts);
  return s;
}

std::string tensor_name(const ModelSpec& s, const ModelTensor& t) {
  const int l = t.layer;
  switch (t.slot) {
    case S::DnBa: return blk(l, "ssm_ba.weight");
    case S::DnNorm: return blk(l, "ssm_norm.weight");
    case S::DnOut: return blk(l, "ssm_out.weight");
    case S::DnDtBias: return is_qwen35(s) ? "" : blk(l, "ssm_dt.bias");
    default: return "";
  }
}

GgufRecipe one_d(std::string name, int64_t n, GgufValueFn fn, const ModelSpec* perm_heads = nullptr) {
  GgufRecipe r;
  r.sources = {std::move(name)};
  r.source_dims = {{uint64_t(n)}};
  if (perm_heads) r.at = [s = *perm_heads](int64_t, int64_t c) { return GgufCoord{0, 0, v_head_pos(s, c)}; };
  else r.at = [](int64_t, int64_t c) { return GgufCoord{0, 0, c}; };
  r.whole_rows = perm_heads == nullptr;
  r.fn = fn;
  return r;
}

// Rows of the HF tensor to rows of one GGUF tensor of `rows` rows.
GgufRecipe row_map(std::string name, uint64_t cols, uint64_t rows, std::function<int64_t(int64_t)> row) {
  GgufRecipe r;
  r.sources = {std::move(name)};
  r.source_dims = {{cols, rows}};
  r.at = [row = std::move(row)](int64_t i, int64_t c) { return GgufCoord{0, row(i), c}; };
  r.whole_rows = true;
  return r;
}

bool recipe(const ModelSpec& s, const ModelTensor& t, GgufRecipe& out) {
  const LinearAttnSpec& la = s.linear_attn;
  const int l = t.layer;
  const int64_t D = s.hidden, Kw = la.key_width(), Vw = la.value_width(), Hv = la.value_heads;
  const int64_t dk = la.key_dim, dv = la.value_dim, r = la.key_heads ? Hv / la.key_heads : 1;
  // Rows of a [q | k | v] stack (conv channels, attn_qkv) with the v heads reordered.
  auto qkv_row = [s, Kw, dv](int64_t i) { return i < 2 * Kw ? i : 2 * Kw + v_unit_pos(s, i - 2 * Kw, dv); };
  switch (t.slot) {
    case S::FinalNorm: out = one_d("output_norm.weight", D, GgufValueFn::PlusOne); return true;
    case S::AttnNorm: out = one_d(blk(l, "attn_norm.weight"), D, GgufValueFn::PlusOne); return true;
    case S::FfnNorm: out = one_d(blk(l, "post_attention_norm.weight"), D, GgufValueFn::PlusOne); return true;
    case S::QNorm: out = one_d(blk(l, "attn_q_norm.weight"), s.head_dim, GgufValueFn::PlusOne); return true;
    case S::KNorm: out = one_d(blk(l, "attn_k_norm.weight"), s.head_dim, GgufValueFn::PlusOne); return true;
    case S::DnALog: out = one_d(blk(l, "ssm_a"), Hv, GgufValueFn::NegExp, is_qwen35(s) ? &s : nullptr); return true;
    case S::DnDtBias:
      if (!is_qwen35(s)) return false;
      out = one_d(blk(l, "ssm_dt.bias"), Hv, GgufValueFn::Same, &s);
      return true;
    case S::DnConv: out = row_map(blk(l, "ssm_conv1d.weight"), uint64_t(la.conv_kernel), uint64_t(la.conv_channels()), qkv_row); return true;
    case S::DnQkvz: {
      // Per key head g: [q dk | k dk | v r*dv | z r*dv] -> attn_qkv [q*, k*, v*] and attn_gate [z*].
      const int64_t group = 2 * dk + 2 * r * dv;
      out.sources = {blk(l, "attn_qkv.weight"), blk(l, "attn_gate.weight")};
      out.source_dims = {{uint64_t(D), uint64_t(2 * Kw + Vw)}, {uint64_t(D), uint64_t(Vw)}};
      out.at = [=](int64_t i, int64_t c) {
        const int64_t g = i / group, u = i % group;
        if (u < dk) return GgufCoord{0, g * dk + u, c};
        if (u < 2 * dk) return GgufCoord{0, Kw + g * dk + u - dk, c};
        if (u < 2 * dk + r * dv) return GgufCoord{0, 2 * Kw + g * r * dv + u - 2 * dk, c};
        return GgufCoord{1, g * r * dv + u - 2 * dk - r * dv, c};
      };
      out.whole_rows = true;
      return true;
    }
    case S::DnQkv: out = row_map(blk(l, "attn_qkv.weight"), uint64_t(D), uint64_t(2 * Kw + Vw), qkv_row); return true;
    case S::DnZ:
      out = row_map(blk(l, "attn_gate.weight"), uint64_t(D), uint64_t(Vw), [s, dv](int64_t i) { return v_unit_pos(s, i, dv); });
      return true;
    case S::DnB:
      out = row_map(blk(l, "ssm_beta.weight"), uint64_t(D), uint64_t(Hv), [s](int64_t i) { return v_head_pos(s, i); });
      return true;
    case S::DnA:
      out = row_map(blk(l, "ssm_alpha.weight"), uint64_t(D), uint64_t(Hv), [s](int64_t i) { return v_head_pos(s, i); });
      return true;
    case S::DnOut:
      if (!is_qwen35(s) || r == 1) return false;
      // Columns are value units: reordered within each row (quantized rows are rebuilt in f32).
      out.sources = {blk(l, "ssm_out.weight")};
      out.source_dims = {{uint64_t(Vw), uint64_t(D)}};
      out.at = [s, dv](int64_t i, int64_t c) { return GgufCoord{0, i, v_unit_pos(s, c, dv)}; };
      return true;
    default: return false;
  }
}

bool ignored(const ModelSpec& s, std::string_view name) { return block_at_or_past(name, s.layers); }

std::vector<std::string> incompatibilities(const ModelSpec& s) {
  std::vector<std::string> w;
  const std::string a = arch_name(s);
  for (int l = 0; l < s.layers; ++l)
    if (!s.layer_is_moe[size_t(l)]) {
      w.push_back(fmt::format("layer {} is dense; llama.cpp's {} loader expects every layer to be MoE", l, a));
      break;
    }
  if (!s.norm_topk) w.push_back(fmt::format("norm_topk_prob = false, but llama.cpp's {} always renormalises", a));
  if (s.experts > 0 && s.shared_ffn == 0) w.push_back(fmt::format("no shared expert; llama.cpp's {} loader requires one", a));
  if (s.qkv_bias || s.o_bias) w.push_back(fmt::format("attention biases, which llama.cpp's {} does not load", a));
  return w;
}

}  // namespace

extern const GgufLayout kGgufHybridLayout{.add_metadata = add_metadata,
                                          .spec_from_gguf = spec_from_gguf,
                                          .tensor_name = tensor_name,
                                          .recipe = recipe,
                                          .ignored = ignored,
                                          .incompatibilities = incompatibilities};

}  // namespace moeflux
