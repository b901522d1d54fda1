// The op IR: a forward step is a straight-line list of ops over buffers
// named by typed ids. A BufId's role is part of its type, so wiring a query
// buffer where a hidden state belongs does not compile; the few ops that
// accept several roles take an AnyBuf, made by an explicit conversion.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "format/dtype.h"
#include "moe/router.h"

namespace moeflux {

struct TensorRef;

enum class Role : uint8_t {
  Tokens, Hidden, Query, Key, Value, AttnOut, Ffn, Logits,
  Mixer,  // linear-attention (Gated DeltaNet) projections and their parts
};
const char* role_name(Role r);

template <Role R>
struct BufId {
  uint32_t index = UINT32_MAX;
  static constexpr Role role = R;
};

struct AnyBuf {
  uint32_t index = UINT32_MAX;
  Role role = Role::Hidden;
  AnyBuf() = default;
  template <Role R>
  explicit AnyBuf(BufId<R> b) : index(b.index), role(R) {}
};

struct BufferDesc {
  Role role;
  DType dtype;  // F32 for activations, I32 for token ids
  int rows;     // token rows (the step's token count, or 1 for last-row logits)
  int width;    // elements per row
  std::string name;
  size_t bytes() const { return size_t(rows) * size_t(width) * dtype_size(dtype); }
};

// What a layer is, for the state it keeps and the kernels it needs. Each
// layer of a model declares one (ArchDef::layer_state).
enum class LayerKind : uint8_t {
  FullAttention,     // KV per position
  SlidingAttention,  // KV per position, read within a window
  LatentAttention,   // MLA: a compressed latent + a RoPE part per position (key_width), no V
  Recurrent,         // linear attention (Gated DeltaNet): conv + recurrent state, fixed size
};
const char* layer_kind_name(LayerKind k);

// Persistent per-session state of one layer, made by the backend for each
// session. Never a planned buffer: it outlives the step. A positional
// state (KV, latent) keeps one row per position, so rewinding it is moving
// the position back; a recurrent state is a fixed block that each step
// overwrites, so a checkpoint must copy it to be restored.
struct StateDesc {
  LayerKind kind;
  int layer;
  int key_width = 0, value_width = 0;  // elements per position (positional kinds)
  size_t fixed_floats = 0;             // elements of the whole state (Recurrent)
  bool positional() const { return kind != LayerKind::Recurrent; }
  size_t bytes_per_position() const {
    return positional() ? size_t(key_width + value_width) * sizeof(float) : 0;
  }
};

// T = tokens in the step. Shapes in comments are [rows, width].
struct OpEmbed {  // out[t] = table[tokens[t]]
  BufId<Role::Tokens> tokens;
  BufId<Role::Hidden> out;
  const TensorRef* table;
};
struct OpRmsNorm {  // normalise each group of `group` elements, scale by (weight + weight_offset)
  AnyBuf in, out;
  const TensorRef* weight;
  int group;
  float eps;
  // 1: zero-centred weights stored as w - 1 (Qwen3-Next's norms scale by 1 + w).
  float weight_offset = 0.f;
};
struct OpLinear {  // out = in W^T + b;  W [out_width, in_width]; last_row_only reads the final row of in
  AnyBuf in, out;
  const TensorRef* weight;
  const TensorRef* bias;
  bool last_row_only;
  // Keep `in` in f32 for quantized W (else its kernel may round it to int8).
  bool f32_activations = false;
};
struct OpClamp {  // in place: buf = clamp(buf, -limit, limit)
  AnyBuf buf;
  float limit;
};
// Rotary embedding: the first rot_dims of each head_dim-wide head are
// rotated by position * theta^(-2i / rot_dims), in pairs (i, i + rot_dims/2)
// ("rotate half"), or (2i, 2i + 1) when interleaved (GGUF "llama" files).
// YaRN (rope_scaling type "yarn", transformers' _compute_yarn_parameters):
// frequency i is blended between theta^(-2i/rot_dims) / factor
// (interpolated) and theta^(-2i/rot_dims) (extrapolated) by a ramp that is
// 0 below dim `low` and 1 above `high`; cos and sin are multiplied by
// attention_factor. factor 1: no scaling.
struct RopeYarn {
  float factor = 1.0f;
  float low = 0, high = 0;  // the correction range, as transformers truncates and clamps it
  float attention_factor = 1.0f;
};
struct RopeParams {
  int head_dim = 0, rot_dims = 0;
  float theta = 10000.f;
  bool interleaved = false;
  // The rotated dims start at `offset` within each head (DeepSeek's MLA
  // rotates the last qk_rope_head_dim dims of a head; 0 elsewhere).
  int offset = 0;
  RopeYarn yarn = {};
};
struct OpRope {  // in place
  AnyBuf buf;
  RopeParams rope;
};
struct OpKvAppend {  // rows of k and v go to positions[t] of state `state`
  BufId<Role::Key> k;
  BufId<Role::Value> v;
  uint32_t state;
};
// Causal GQA attention of q over the cached K/V of `state` at positions
// <= positions[t] (and > positions[t] - window when windowed); the step's
// own rows were appended by an OpKvAppend before it.
struct AttentionParams {
  int heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 1.0f;           // usually 1/sqrt(head_dim)
  std::optional<int> window;    // sliding-window length, positions
  // gpt-oss (arch_gpt_oss.cpp): attention sinks, one learned logit per
  // head [heads] that joins each row's softmax denominator and takes no
  // value (the sink's probability is dropped). Null: none.
  const TensorRef* sinks = nullptr;
};
struct OpAttention {
  BufId<Role::Query> q;
  BufId<Role::AttnOut> out;
  uint32_t state;
  AttentionParams attn;
};
struct OpAdd {  // out = a + b
  BufId<Role::Hidden> a, b, out;
};
struct OpSwiGlu {  // out = silu(gate) * up
  BufId<Role::Ffn> gate, up, out;
};
// The fused MoE block: router -> top-k -> routed experts -> weighted sum,
// plus a shared expert. Routed expert weights come from the engine's
// expert source by (layer, expert); everything else is on the op.
struct MoeParams {
  int layer = 0;
  int experts = 0, top_k = 0, expert_ffn = 0;
  RouterSpec router;
  const TensorRef* router_weight = nullptr;   // [experts, hidden]
  const TensorRef* router_bias = nullptr;     // [experts] added to the logits (gpt-oss), or null
  const TensorRef* correction_bias = nullptr; // [experts] added for choice only (DeepSeek-V3), or null
  int shared_ffn = 0;                         // 0: no shared expert
  const TensorRef *shared_gate = nullptr, *shared_up = nullptr, *shared_down = nullptr;
  const TensorRef* shared_expert_gate = nullptr;  // [1, hidden] sigmoid gate on the shared expert, or null
  // The next MoE layer and its router, for prefetch (next_layer < 0: none).
  int next_layer = -1;
  const TensorRef* next_router_weight = nullptr;
  const TensorRef* next_router_bias = nullptr;
  // Experts and the shared expert with f32 activations (routers and the
  // shared-expert gate always are: rounding flips near-tied choices).
  bool f32_activations = false;
  // gpt-oss (arch_gpt_oss.cpp): routed experts with biases and the clamped
  // SwiGLU. Per expert e: gate += gate_up_bias[e, 2i], up +=
  // gate_up_bias[e, 2i + 1] (the fused tensor interleaves them); then
  // gate = min(gate, limit), up = clamp(up, -limit, limit), act =
  // (up + 1) * gate * sigmoid(alpha * gate); down += down_bias[e].
  const TensorRef* expert_gate_up_bias = nullptr;  // [experts, 2 * expert_ffn], or null
  const TensorRef* expert_down_bias = nullptr;     // [experts, hidden], or null
  bool clamped_swiglu = false;                     // else silu(gate) * up
  float swiglu_alpha = 1.702f, swiglu_limit = 7.0f;
};
struct OpMoe {
  BufId<Role::Hidden> in, out;
  MoeParams moe;
};

// --- Multi-head latent attention (DeepSeek-V2/V3: arch_deepseek_v3.cpp) ---
struct OpSlice {  // out [T, width] = columns [offset, offset + width) of in
  AnyBuf in, out;
  int offset;
};
// Rows t of latent [T, kv_lora_rank] and rope [T, qk_rope_head_dim] go,
// side by side, to positions[t] of LatentAttention state `state` (its key
// width is their sum; it keeps no V).
struct OpLatentAppend {
  BufId<Role::Key> latent, rope;
  uint32_t state;
};
// How MLA attention reads the compressed cache. Naive decompresses every
// cached position's K (nope part) and V through kv_b_proj (the reference,
// and the cheaper way for long prefill steps); Absorbed folds kv_b_proj's
// K part into the query and its V part into the output, so attention runs
// over the latent itself (the cheaper way for decode). Auto: whichever
// needs fewer multiply-adds for the step's token count (absorbed for decode
// and short steps). Both compute the same function.
enum class MlaPath : uint8_t { Auto, Naive, Absorbed };
struct MlaParams {
  int heads = 0;
  int nope_dim = 0, rope_dim = 0, v_dim = 0;  // qk_nope_head_dim, qk_rope_head_dim, v_head_dim
  int kv_lora_rank = 0;
  float scale = 1.0f;  // softmax scale (with YaRN's mscale correction)
  // kv_b_proj [heads * (nope_dim + v_dim), kv_lora_rank]: per head, nope_dim
  // rows making K's nope part, then v_dim rows making V.
  const TensorRef* kv_b = nullptr;
  MlaPath path = MlaPath::Auto;
};
// Causal attention of q [T, heads * (nope_dim + rope_dim)] (RoPE applied to
// each head's last rope_dim dims) over the latent state at positions <=
// positions[t]; out [T, heads * v_dim].
struct OpMlaAttention {
  BufId<Role::Query> q;
  BufId<Role::AttnOut> out;
  uint32_t state;
  MlaParams mla;
};

// ---- Gated DeltaNet and gated attention (qwen3_next, qwen3_5_moe) ----
// Regroups columns: each row of `in` is `groups` groups, each the parts in
// order; output outs[part.out] receives, for each of its parts in order,
// that part of every group (part-major). Qwen3-Next interleaves q, k, v, z
// per key head in one projection (and q with its gate per attention head);
// the kernels want each part of all heads together.
struct SplitPart {
  int width;  // elements of this part in one group
  int out;    // index into outs
};
struct OpSplitGroups {
  AnyBuf in;
  std::vector<AnyBuf> outs;
  int groups;
  std::vector<SplitPart> parts;
};
struct OpSigmoidMul {  // in place: buf *= sigmoid(gate), same shape
  AnyBuf buf, gate;
};
// Causal depthwise conv1d over time then SiLU: out[t, c] =
// silu(sum_j weight[c, j] * x[t - (kernel-1) + j, c]), x before this step
// coming from the state (the last kernel-1 input rows, zero at the start),
// which the op then advances. Reads the first `channels` columns of `in`.
struct OpCausalConv {
  AnyBuf in, out;
  const TensorRef* weight;  // [channels, 1, kernel] (or [channels, kernel])
  int channels, kernel;
  uint32_t state;
  size_t state_offset;  // floats into the state: (kernel-1) * channels of history
};
// The gated delta rule, per value head h (key head h / (value_heads /
// key_heads)), token by token: q, k L2-normalised (eps l2_eps), q scaled;
// decay g = -exp(a_log[h]) * softplus(a + dt_bias[h]), beta = sigmoid(b);
// S = exp(g) S; S += k (beta (v - S^T k))^T; out = S^T q. S [key_dim,
// value_dim] per value head lives in the state.
struct DeltaRuleParams {
  int key_heads = 0, value_heads = 0, key_dim = 0, value_dim = 0;
  float scale = 1.f;  // on q: 1 / sqrt(key_dim)
  float l2_eps = 1e-6f;
  // Steps of more than one token run the chunked form of the same
  // recurrence over blocks of `chunk` tokens (0: token by token).
  int chunk = 64;
};
struct OpGatedDeltaRule {
  AnyBuf qkv;   // [T, 2 * key_heads * key_dim + value_heads * value_dim]: q, k, v
  AnyBuf b, a;  // [T, value_heads]: beta and decay logits
  AnyBuf out;   // [T, value_heads * value_dim]
  const TensorRef *a_log, *dt_bias;  // [value_heads]
  uint32_t state;
  size_t state_offset;  // floats into the state: value_heads * key_dim * value_dim
  DeltaRuleParams p;
};
// RMSNorm of each `group` elements scaled by weight, times silu(gate): the
// DeltaNet output norm. gate has the width of in.
struct OpGatedRmsNorm {
  AnyBuf in, gate, out;
  const TensorRef* weight;
  int group;
  float eps;
};

using Op = std::variant<OpEmbed, OpRmsNorm, OpLinear, OpClamp, OpRope, OpKvAppend, OpAttention, OpAdd, OpSwiGlu, OpMoe,
                        OpSlice, OpLatentAppend, OpMlaAttention,  // MLA (DeepSeek-V3)
                        OpSplitGroups, OpSigmoidMul, OpCausalConv, OpGatedDeltaRule, OpGatedRmsNorm>;  // Gated DeltaNet

const char* op_name(const Op& op);
// Buffer indices an op reads and writes (an in-place op lists its buffer in
// both). Layer states are not buffers: an op's state index is on the op.
std::vector<uint32_t> op_reads(const Op& op);
std::vector<uint32_t> op_writes(const Op& op);

struct Graph {
  int tokens = 0;
  std::vector<BufferDesc> buffers;
  std::vector<StateDesc> states;  // the same for every token count of a model
  std::vector<Op> ops;
  BufId<Role::Tokens> input;
  BufId<Role::Logits> output;
};

}  // namespace moeflux
