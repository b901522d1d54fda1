// The op IR: a forward step is a straight-line list of ops over buffers
// named by typed ids. A BufId's role is part of its type, so wiring a query
// buffer where a hidden state belongs does not compile; the few ops that
// accept several roles take an AnyBuf, made by an explicit conversion.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

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
  int rows;   // token rows (the step's token count, or 1 for last-row logits)
  int width;  // elements per row: f32, or i32 for Tokens
  std::string name;
  size_t bytes() const { return size_t(rows) * size_t(width) * 4; }
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
};
struct OpClamp {  // in place: buf = clamp(buf, -limit, limit)
  AnyBuf buf;
  float limit;
};
struct OpRope {  // in place, rotate-half RoPE per head at each token's position
  AnyBuf buf;
  int head_dim;
};
struct OpAttention {  // append k, v to the layer's KV cache, causal GQA attention
  BufId<Role::Query> q;
  BufId<Role::Key> k;
  BufId<Role::Value> v;
  BufId<Role::AttnOut> out;
  int layer;
};
struct OpAdd {  // out = a + b
  BufId<Role::Hidden> a, b, out;
};
struct OpSwiGlu {  // out = silu(gate) * up
  BufId<Role::Ffn> gate, up, out;
};
struct OpMoe {  // router -> top-k -> experts -> weighted sum (+ shared expert), fused
  BufId<Role::Hidden> in, out;
  int layer;
};

using Op = std::variant<OpEmbed, OpRmsNorm, OpLinear, OpClamp, OpRope, OpAttention, OpAdd, OpSwiGlu, OpMoe>;

const char* op_name(const Op& op);
// Buffer indices an op reads and writes (an in-place op lists its buffer in both).
std::vector<uint32_t> op_reads(const Op& op);
std::vector<uint32_t> op_writes(const Op& op);

struct Graph {
  int tokens = 0;
  std::vector<BufferDesc> buffers;
  std::vector<Op> ops;
  BufId<Role::Tokens> input;
  BufId<Role::Logits> output;
};

}  // namespace moeflux
