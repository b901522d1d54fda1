// DeepSeek-V3 in GGUF as llama.cpp writes it (conversion/deepseek.py
// DeepseekV2Model, src/models/deepseek2.cpp), general.architecture
// "deepseek2":
//   - MLA as MQA with larger heads: head_count_kv 1, key_length =
//     kv_lora_rank + qk_rope_head_dim, value_length = kv_lora_rank, the
//     per-head sizes as key_length_mla / value_length_mla, the rope part as
//     rope.dimension_count; q_lora_rank, kv_lora_rank;
//   - kv_b_proj split per head into attn_k_b (the K nope part, transposed:
//     [H, kv_lora_rank, nope]) and attn_v_b ([H, v, kv_lora_rank]) for the
//     absorbed decode path; the reader rebuilds kv_b_proj from them;
//   - routing: expert_gating_func (2 = sigmoid), expert_group_count,
//     expert_group_used_count, expert_weights_scale, expert_weights_norm,
//     e_score_correction_bias as exp_probs_b.bias; leading_dense_block_count
//     dense layers; expert_shared_count shared experts;
//   - YaRN: rope.scaling.{type, factor, original_context_length,
//     yarn_beta_fast, yarn_beta_slow} and yarn_log_multiplier =
//     0.1 * mscale_all_dim. The file has no rope_scaling.mscale: read back,
//     mscale is taken equal to mscale_all_dim (RoPE's attention factor 1,
//     as DeepSeek-V3's own config and llama.cpp's graph have it), unless
//     rope.scaling.yarn_attn_factor gives the factor (moeflux writes it when
//     the model's differs from 1).
#include <fmt/format.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "model/arch.h"
#include "model/arch_deepseek_v3.h"
#include "model/gguf_layout.h"
#include "model/tensor_check.h"

namespace moeflux {

namespace {

using S = TensorSlot;
using namespace gguf_read;

constexpr std::string_view kArch = "deepseek2";
constexpr uint32_t kGatingSigmoid = 2;  // LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID

std::string k(std::string_view suffix) { return key(kArch, suffix); }

void add_metadata(const ModelSpec& s, GgufMetadata& md) {
  const MlaSpec& m = s.mla;
  put_u32(md, k("block_count"), s.layers);
  put_u32(md, k("context_length"), s.max_positions);
  put_u32(md, k("embedding_length"), s.hidden);
  put_u32(md, k("feed_forward_length"), s.dense_ffn);
  put_u32(md, k("attention.head_count"), s.heads);
  put_u32(md, k("attention.head_count_kv"), 1);
  md.add(k("rope.freq_base"), {s.rope_theta});
  if (const auto& y = m.yarn_config) {
    md.add(k("rope.scaling.type"), {std::string("yarn")});
    md.add(k("rope.scaling.factor"), {float(y->factor)});
    put_u32(md, k("rope.scaling.original_context_length"), int64_t(y->original_ctx));
    if (m.yarn.attention_factor != 1.0f) md.add(k("rope.scaling.yarn_attn_factor"), {m.yarn.attention_factor});
    md.add(k("rope.scaling.yarn_beta_fast"), {float(y->beta_fast)});
    md.add(k("rope.scaling.yarn_beta_slow"), {float(y->beta_slow)});
    if (!y->truncate) fail("{}: YaRN with truncate = false cannot be written as GGUF", s.source_dir);
  }
  md.add(k("attention.layer_norm_rms_epsilon"), {s.rms_eps});
  put_u32(md, k("expert_count"), s.experts);
  put_u32(md, k("expert_used_count"), s.top_k);
  put_u32(md, k("expert_group_count"), m.router.groups);
  put_u32(md, k("expert_group_used_count"), m.router.topk_groups);
  put_u32(md, k("expert_gating_func"), kGatingSigmoid);
  int dense = 0;
  while (dense < s.layers && !s.layer_is_moe[size_t(dense)]) ++dense;
  for (int l = dense; l < s.layers; ++l)
    if (!s.layer_is_moe[size_t(l)]) fail("{}: layer {} is dense after MoE layers; deepseek2 cannot say so", s.source_dir, l);
  put_u32(md, k("leading_dense_block_count"), dense);
  put_u32(md, k("vocab_size"), s.vocab);
  if (m.q_lora_rank > 0) put_u32(md, k("attention.q_lora_rank"), m.q_lora_rank);
  put_u32(md, k("attention.kv_lora_rank"), m.kv_lora_rank);
  put_u32(md, k("attention.key_length"), m.kv_lora_rank + m.qk_rope_dim);
  put_u32(md, k("attention.value_length"), m.kv_lora_rank);
  put_u32(md, k("attention.key_length_mla"), m.qk_head_dim());
  put_u32(md, k("attention.value_length_mla"), m.v_dim);
  put_u32(md, k("expert_feed_forward_length"), s.expert_ffn);
  put_u32(md, k("expert_shared_count"), s.shared_ffn / s.expert_ffn);
  md.add(k("expert_weights_scale"), {m.router.scaling});
  if (s.norm_topk) md.add(k("expert_weights_norm"), {true});
  put_u32(md, k("rope.dimension_count"), m.qk_rope_dim);
  if (const auto& y = m.yarn_config; y && y->mscale_all_dim != 0)
    md.add(k("rope.scaling.yarn_log_multiplier"), {float(0.1 * y->mscale_all_dim)});
}

ModelSpec spec_from_gguf(const GgufMetadata& md, const std::vector<GgufTensor>& tensors) {
  const std::string& src = md.source();
  ModelSpec s;
  s.arch = "deepseek_v3";
  s.source_dir = src;
  MlaSpec& m = s.mla;
  const int all_layers = dim(md, k("block_count"));
  const uint32_t nextn = md.opt_u32(k("nextn_predict_layers")).value_or(0);
  if (nextn >= uint32_t(all_layers))
    fail("{}: '{}' = {} leaves no layer of the {} of '{}'", src, k("nextn_predict_layers"), nextn, all_layers,
         k("block_count"));
  s.layers = all_layers - int(nextn);
  std::set<std::string, std::less<>> have;
  {
    std::vector<std::string_view> names;
    for (const GgufTensor& t : tensors) {
      names.push_back(t.name);
      have.insert(t.name);
    }
    check_layer_count(all_layers, numbered_blocks(names, "blk."), src, "'" + k("block_count") + "'", "blk.");
  }
  s.hidden = dim(md, k("embedding_length"));
  s.heads = dim(md, k("attention.head_count"));
  s.kv_heads = s.heads;  // MLA expands the latent to every head
  s.max_positions = dim(md, k("context_length"));
  s.rms_eps = positive_f32(md, k("attention.layer_norm_rms_epsilon"), std::nullopt, 1.f);
  s.rope_theta = positive_f32(md, k("rope.freq_base"), 10000.f, 1e30f);

  if (!md.has(k("attention.key_length_mla")))
    fail("{}: '{}' is missing: a deepseek2 GGUF from before llama.cpp split kv_b into k_b and v_b; reconvert it",
         src, k("attention.key_length_mla"));
  m.q_lora_rank = opt_dim(md, k("attention.q_lora_rank"), 0);
  m.kv_lora_rank = dim(md, k("attention.kv_lora_rank"));
  m.qk_rope_dim = dim(md, k("rope.dimension_count"));
  const int qk_head = dim(md, k("attention.key_length_mla"));
  if (qk_head <= m.qk_rope_dim || m.qk_rope_dim % 2 != 0)
    fail("{}: '{}' = {} must exceed an even rope.dimension_count {}", src, k("attention.key_length_mla"), qk_head,
         m.qk_rope_dim);
  m.qk_nope_dim = qk_head - m.qk_rope_dim;
  m.v_dim = dim(md, k("attention.value_length_mla"));
  if (int64_t(s.heads) * std::max(qk_head, m.qk_nope_dim + m.v_dim) > (int64_t(1) << 24))
    fail("{}: head_count {} x head dims {} / {} are too large", src, s.heads, qk_head, m.v_dim);
  s.head_dim = m.qk_rope_dim;
  m.rope_interleave = true;  // llama.cpp's deepseek2 RoPE: LLAMA_ROPE_TYPE_NORM
  m.scale = float(1.0 / std::sqrt(double(m.qk_head_dim())));
  if (auto rs = md.opt_str(k("rope.scaling.type")); rs && *rs != "none") {
    if (*rs != "yarn") fail("{}: unsupported '{}' = '{}' (supported: none, yarn)", src, k("rope.scaling.type"), *rs);
    YarnConfig y;
    y.factor = positive_f32(md, k("rope.scaling.factor"), std::nullopt, 1e6f);
    y.original_ctx = dim(md, k("rope.scaling.original_context_length"));
    y.beta_fast = positive_f32(md, k("rope.scaling.yarn_beta_fast"), 32.f, 1e6f);
    y.beta_slow = positive_f32(md, k("rope.scaling.yarn_beta_slow"), 1.f, 1e6f);
    y.mscale_all_dim = md.opt_f32(k("rope.scaling.yarn_log_multiplier")).value_or(0.f) / 0.1;
    y.mscale = y.mscale_all_dim;
    if (auto af = md.opt_f32(k("rope.scaling.yarn_attn_factor"))) y.attention_factor = *af;
    else if (y.mscale_all_dim == 0) y.attention_factor = 1.0;  // no mscale: llama.cpp's RoPE keeps magnitude 1
    apply_yarn(y, s, src);
  }

  s.experts = dim(md, k("expert_count"));
  s.top_k = dim(md, k("expert_used_count"));
  s.expert_ffn = dim(md, k("expert_feed_forward_length"));
  s.dense_ffn = opt_dim(md, k("feed_forward_length"), 0);
  const uint32_t shared = md.opt_u32(k("expert_shared_count")).value_or(0);
  if (shared > 64) fail("{}: '{}' = {} is too large", src, k("expert_shared_count"), shared);
  s.shared_ffn = int(shared) * s.expert_ffn;
  s.shared_expert_gate = false;
  s.norm_topk = md.opt_bool(k("expert_weights_norm")).value_or(false);
  const uint32_t gating = md.opt_u32(k("expert_gating_func")).value_or(0);
  if (gating != kGatingSigmoid)
    fail("{}: '{}' = {}: only sigmoid routing (2, DeepSeek-V3's noaux_tc) is implemented; softmax routing "
         "(DeepSeek-V2) is not",
         src, k("expert_gating_func"), gating);
  m.router.scoring = RouterScoring::Sigmoid;
  m.router.renormalize = s.norm_topk;
  m.router.groups = opt_dim(md, k("expert_group_count"), 1);
  m.router.topk_groups = opt_dim(md, k("expert_group_used_count"), 1);
  m.router.scaling = positive_f32(md, k("expert_weights_scale"), 1.f, 1e6f);
  try {
    validate_router(m.router, s.experts, s.top_k);
  } catch (const Error& e) {
    fail("{}: expert_count {}, expert_group_count {}, expert_group_used_count {}, expert_used_count {}: {}", src,
         s.experts, m.router.groups, m.router.topk_groups, s.top_k, e.what());
  }
  const uint32_t dense = md.opt_u32(k("leading_dense_block_count")).value_or(0);
  s.layer_is_moe.assign(size_t(s.layers), 0);
  for (int l = 0; l < s.layers; ++l) {
    s.layer_is_moe[size_t(l)] = uint32_t(l) >= dense;
    if (s.layer_is_moe[size_t(l)] != (have.count(blk(l, "ffn_gate_inp.weight")) > 0))
      fail("{}: layer {} {} ffn_gate_inp but '{}' = {} says it is {}", src, l,
           s.layer_is_moe[size_t(l)] ? "lacks" : "has", k("leading_dense_block_count"), dense,
           s.layer_is_moe[size_t(l)] ? "MoE" : "dense");
  }
  if (dense > 0 && s.dense_ffn == 0) fail("{}: dense layers but '{}' is missing", src, k("feed_forward_length"));

  read_vocab_and_tokens(md, tensors, s);
  const GgufTensor* typed = nullptr;
  for (const GgufTensor& t : tensors)
    if (t.name.ends_with("ffn_gate_exps.weight") || (!typed && t.name == "token_embd.weight")) typed = &t;
  if (auto dt = dtype_from_ggml(typed->type)) s.dtype = *dt;
  else fail("{}: tensor '{}' has GGML type {} which moeflux does not read", src, typed->name, uint32_t(typed->type));
  if (s.top_k > s.experts) fail("{}: expert_used_count {} exceeds expert_count {}", src, s.top_k, s.experts);
  return s;
}

std::string tensor_name(const ModelSpec&, const ModelTensor& t) {
  const int l = t.layer;
  switch (t.slot) {
    case S::MlaQA: return blk(l, "attn_q_a.weight");
    case S::MlaQANorm: return blk(l, "attn_q_a_norm.weight");
    case S::MlaQB: return blk(l, "attn_q_b.weight");
    case S::MlaKvA: return blk(l, "attn_kv_a_mqa.weight");
    case S::MlaKvANorm: return blk(l, "attn_kv_a_norm.weight");
    case S::RouterCorrectionBias: return blk(l, "exp_probs_b.bias");
    default: return "";
  }
}

// A model with rope_interleave false rotates (i, i + R/2) pairs; llama.cpp
// rotates (2i, 2i + 1). Its RoPE rows are written permuted as
// LlamaModel.permute does (unit j * R/2 + i to 2i + j), which makes it the
// interleaved model that the file says it is (read back with no recipe).
int64_t rope_row(int64_t u, int64_t R) { return 2 * (u % (R / 2)) + u / (R / 2); }

bool recipe(const ModelSpec& s, const ModelTensor& t, GgufRecipe& out) {
  const MlaSpec& mla = s.mla;
  if (!mla.rope_interleave && (t.slot == S::MlaQB || t.slot == S::Q || t.slot == S::MlaKvA)) {
    const int64_t R = mla.qk_rope_dim, nope = mla.qk_nope_dim, head = mla.qk_head_dim(), L = mla.kv_lora_rank;
    out.sources = {tensor_name(s, t).empty() ? blk(t.layer, "attn_q.weight") : tensor_name(s, t)};
    out.source_dims = {{uint64_t(t.shape[1]), uint64_t(t.shape[0])}};
    if (t.slot == S::MlaKvA)
      out.at = [=](int64_t r, int64_t c) { return GgufCoord{0, r < L ? r : L + rope_row(r - L, R), c}; };
    else
      out.at = [=](int64_t r, int64_t c) {
        const int64_t h = r / head, u = r % head;
        return GgufCoord{0, u < nope ? r : h * head + nope + rope_row(u - nope, R), c};
      };
    out.whole_rows = true;
    return true;
  }
  if (t.slot != S::MlaKvB) return false;
  // kv_b_proj [H * (nope + v), L]: per head, nope rows of K then v rows of V.
  const MlaSpec& m = s.mla;
  const int64_t H = s.heads, L = m.kv_lora_rank, nope = m.qk_nope_dim, v = m.v_dim, per = nope + v;
  out.sources = {blk(t.layer, "attn_k_b.weight"), blk(t.layer, "attn_v_b.weight")};
  out.source_dims = {{uint64_t(nope), uint64_t(L), uint64_t(H)}, {uint64_t(L), uint64_t(v), uint64_t(H)}};
  out.at = [=](int64_t r, int64_t c) {
    const int64_t h = r / per, j = r % per;
    if (j < nope) return GgufCoord{0, h * L + c, j};  // k_b[h] is [L, nope]: transposed
    return GgufCoord{1, h * v + (j - nope), c};
  };
  out.whole_rows = false;
  return true;
}

bool ignored(const ModelSpec& s, std::string_view name) { return block_at_or_past(name, s.layers); }

std::vector<std::string> incompatibilities(const ModelSpec& s) {
  std::vector<std::string> w;
  // llama_model_deepseek2::load_arch_hparams reads q_lora_rank unless the layer count is V2-Lite's.
  if (s.mla.q_lora_rank == 0 && s.layers != 26 && s.layers != 27)
    w.push_back(fmt::format("a direct q_proj (q_lora_rank null): llama.cpp's deepseek2 loader requires q_lora_rank "
                            "for a {}-layer model (only 26 or 27 layers, DeepSeek-V2-Lite, may omit it)",
                            s.layers));
  return w;
}

}  // namespace

extern const GgufLayout kGgufDeepseek2Layout{.add_metadata = add_metadata,
                                             .spec_from_gguf = spec_from_gguf,
                                             .tensor_name = tensor_name,
                                             .recipe = recipe,
                                             .ignored = ignored,
                                             .incompatibilities = incompatibilities};

}  // namespace moeflux
