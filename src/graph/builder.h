// Builds a Graph with typed buffer ids. Each call defines a fresh value
// (single definition); in-place ops return the id they were given.
#pragma once
#include <string>

#include "graph/ir.h"

namespace moeflux {

class GraphBuilder {
 public:
  explicit GraphBuilder(int tokens) { g_.tokens = tokens; }
  // Linear ops made from now on keep their activations in f32.
  void set_f32_activations(bool on) { f32_activations_ = on; }

  template <Role R>
  BufId<R> buffer(int width, std::string name, int rows = -1) {
    const DType dt = R == Role::Tokens ? DType::I32 : DType::F32;
    g_.buffers.push_back({R, dt, rows < 0 ? g_.tokens : rows, width, std::move(name)});
    return BufId<R>{uint32_t(g_.buffers.size() - 1)};
  }

  BufId<Role::Tokens> input() {
    g_.input = buffer<Role::Tokens>(1, "tokens");
    return g_.input;
  }
  void set_states(std::vector<StateDesc> states) { g_.states = std::move(states); }
  BufId<Role::Hidden> embed(BufId<Role::Tokens> tokens, const TensorRef* table, int width) {
    auto out = buffer<Role::Hidden>(width, "embed");
    g_.ops.push_back(OpEmbed{tokens, out, table});
    return out;
  }
  template <Role R>
  BufId<R> rms_norm(BufId<R> in, const TensorRef* weight, int group, float eps, const char* name,
                    float weight_offset = 0.f) {
    auto out = buffer<R>(width(in), name);
    g_.ops.push_back(OpRmsNorm{AnyBuf(in), AnyBuf(out), weight, group, eps, weight_offset});
    return out;
  }
  template <Role Out, Role In>
  BufId<Out> linear(BufId<In> in, const TensorRef* weight, const TensorRef* bias, int out_width, const char* name,
                    bool last_row_only = false) {
    auto out = buffer<Out>(out_width, name, last_row_only ? 1 : -1);
    g_.ops.push_back(OpLinear{AnyBuf(in), AnyBuf(out), weight, bias, last_row_only, f32_activations_});
    return out;
  }
  template <Role R>
  BufId<R> clamp(BufId<R> buf, float limit) {
    g_.ops.push_back(OpClamp{AnyBuf(buf), limit});
    return buf;
  }
  template <Role R>
  BufId<R> rope(BufId<R> buf, const RopeParams& p) {
    static_assert(R == Role::Query || R == Role::Key, "RoPE applies to queries and keys");
    g_.ops.push_back(OpRope{AnyBuf(buf), p});
    return buf;
  }
  // Appends k and v to layer state `state`, then attends q over it.
  BufId<Role::AttnOut> attention(BufId<Role::Query> q, BufId<Role::Key> k, BufId<Role::Value> v, uint32_t state,
                                 const AttentionParams& p) {
    g_.ops.push_back(OpKvAppend{k, v, state});
    auto out = buffer<Role::AttnOut>(width(q), "attn");
    g_.ops.push_back(OpAttention{q, out, state, p});
    return out;
  }
  BufId<Role::Hidden> add(BufId<Role::Hidden> a, BufId<Role::Hidden> b) {
    auto out = buffer<Role::Hidden>(width(a), "residual");
    g_.ops.push_back(OpAdd{a, b, out});
    return out;
  }
  BufId<Role::Ffn> swiglu(BufId<Role::Ffn> gate, BufId<Role::Ffn> up) {
    auto out = buffer<Role::Ffn>(width(gate), "ffn_act");
    g_.ops.push_back(OpSwiGlu{gate, up, out});
    return out;
  }
  BufId<Role::Hidden> moe(BufId<Role::Hidden> in, const MoeParams& p) {
    auto out = buffer<Role::Hidden>(width(in), "moe");
    g_.ops.push_back(OpMoe{in, out, p});
    return out;
  }
  // --- Multi-head latent attention (DeepSeek-V2/V3) ---
  template <Role Out, Role In>
  BufId<Out> slice(BufId<In> in, int offset, int width, const char* name) {
    auto out = buffer<Out>(width, name);
    g_.ops.push_back(OpSlice{AnyBuf(in), AnyBuf(out), offset});
    return out;
  }
  // Appends [latent | rope] to latent state `state`, then attends q over it.
  BufId<Role::AttnOut> mla_attention(BufId<Role::Query> q, BufId<Role::Key> latent, BufId<Role::Key> rope,
                                     uint32_t state, const MlaParams& p) {
    g_.ops.push_back(OpLatentAppend{latent, rope, state});
    auto out = buffer<Role::AttnOut>(p.heads * p.v_dim, "attn");
    g_.ops.push_back(OpMlaAttention{q, out, state, p});
    return out;
  }

  void set_output(BufId<Role::Logits> out) { g_.output = out; }

  // ---- Gated DeltaNet and gated attention (qwen3_next, qwen3_5_moe) ----
  // outs (already made with their widths) receive the parts of each group.
  void split_groups(AnyBuf in, std::vector<AnyBuf> outs, int groups, std::vector<SplitPart> parts) {
    g_.ops.push_back(OpSplitGroups{in, std::move(outs), groups, std::move(parts)});
  }
  template <Role R, Role G>
  BufId<R> sigmoid_mul(BufId<R> buf, BufId<G> gate) {
    g_.ops.push_back(OpSigmoidMul{AnyBuf(buf), AnyBuf(gate)});
    return buf;
  }
  template <Role R>
  BufId<Role::Mixer> causal_conv(BufId<R> in, const TensorRef* weight, int channels, int kernel, uint32_t state,
                                 size_t state_offset) {
    auto out = buffer<Role::Mixer>(channels, "conv");
    g_.ops.push_back(OpCausalConv{AnyBuf(in), AnyBuf(out), weight, channels, kernel, state, state_offset});
    return out;
  }
  BufId<Role::AttnOut> gated_delta_rule(BufId<Role::Mixer> qkv, BufId<Role::Mixer> b, BufId<Role::Mixer> a,
                                        const TensorRef* a_log, const TensorRef* dt_bias, uint32_t state,
                                        size_t state_offset, const DeltaRuleParams& p) {
    auto out = buffer<Role::AttnOut>(p.value_heads * p.value_dim, "delta");
    g_.ops.push_back(OpGatedDeltaRule{AnyBuf(qkv), AnyBuf(b), AnyBuf(a), AnyBuf(out), a_log, dt_bias, state,
                                      state_offset, p});
    return out;
  }
  template <Role R, Role G>
  BufId<R> gated_rms_norm(BufId<R> in, BufId<G> gate, const TensorRef* weight, int group, float eps) {
    auto out = buffer<R>(width(in), "gated_norm");
    g_.ops.push_back(OpGatedRmsNorm{AnyBuf(in), AnyBuf(gate), AnyBuf(out), weight, group, eps});
    return out;
  }

  template <Role R>
  int width(BufId<R> b) const {
    return g_.buffers[b.index].width;
  }
  Graph finish() { return std::move(g_); }

 private:
  Graph g_;
  bool f32_activations_ = false;
};

}  // namespace moeflux
