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

enum class Role : uint8_t { Tokens, Hidden, Query, Key, Value, AttnOut, Ffn, Logits };
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
struct OpRmsNorm {  // normalise each group of `group` elements, scale by weight
  AnyBuf in, out;
  const TensorRef* weight;
  int group;
  float eps;
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
struct RopeParams {
  int head_dim = 0, rot_dims = 0;
  float theta = 10000.f;
  bool interleaved = false;
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
};
struct OpMoe {
  BufId<Role::Hidden> in, out;
  MoeParams moe;
};

using Op = std::variant<OpEmbed, OpRmsNorm, OpLinear, OpClamp, OpRope, OpKvAppend, OpAttention, OpAdd, OpSwiGlu, OpMoe>;

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
