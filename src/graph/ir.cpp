#include "graph/ir.h"

#include "core/overload.h"

namespace moeflux {

const char* role_name(Role r) {
  switch (r) {
    case Role::Tokens: return "tokens";
    case Role::Hidden: return "hidden";
    case Role::Query: return "query";
    case Role::Key: return "key";
    case Role::Value: return "value";
    case Role::AttnOut: return "attn_out";
    case Role::Ffn: return "ffn";
    case Role::Logits: return "logits";
    case Role::Mixer: return "mixer";
  }
  return "?";
}

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::FullAttention: return "full attention";
    case LayerKind::SlidingAttention: return "sliding-window attention";
    case LayerKind::LatentAttention: return "latent attention (MLA)";
    case LayerKind::Recurrent: return "recurrent (linear attention)";
  }
  return "?";
}


const char* op_name(const Op& op) {
  return std::visit(Overload{
                        [](const OpEmbed&) { return "embed"; },
                        [](const OpRmsNorm&) { return "rms_norm"; },
                        [](const OpLinear&) { return "linear"; },
                        [](const OpClamp&) { return "clamp"; },
                        [](const OpRope&) { return "rope"; },
                        [](const OpKvAppend&) { return "kv_append"; },
                        [](const OpAttention&) { return "attention"; },
                        [](const OpAdd&) { return "add"; },
                        [](const OpSwiGlu&) { return "swiglu"; },
                        [](const OpMoe&) { return "moe"; },
                        [](const OpSlice&) { return "slice"; },
                        [](const OpLatentAppend&) { return "latent_append"; },
                        [](const OpMlaAttention&) { return "mla_attention"; },
                        [](const OpSplitGroups&) { return "split_groups"; },
                        [](const OpSigmoidMul&) { return "sigmoid_mul"; },
                        [](const OpCausalConv&) { return "causal_conv"; },
                        [](const OpGatedDeltaRule&) { return "gated_delta_rule"; },
                        [](const OpGatedRmsNorm&) { return "gated_rms_norm"; },
                    },
                    op);
}

std::vector<uint32_t> op_reads(const Op& op) {
  return std::visit(Overload{
                        [](const OpEmbed& o) { return std::vector<uint32_t>{o.tokens.index}; },
                        [](const OpRmsNorm& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpLinear& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpClamp& o) { return std::vector<uint32_t>{o.buf.index}; },
                        [](const OpRope& o) { return std::vector<uint32_t>{o.buf.index}; },
                        [](const OpKvAppend& o) { return std::vector<uint32_t>{o.k.index, o.v.index}; },
                        [](const OpAttention& o) { return std::vector<uint32_t>{o.q.index}; },
                        [](const OpAdd& o) { return std::vector<uint32_t>{o.a.index, o.b.index}; },
                        [](const OpSwiGlu& o) { return std::vector<uint32_t>{o.gate.index, o.up.index}; },
                        [](const OpMoe& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpSlice& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpLatentAppend& o) { return std::vector<uint32_t>{o.latent.index, o.rope.index}; },
                        [](const OpMlaAttention& o) { return std::vector<uint32_t>{o.q.index}; },
                        [](const OpSplitGroups& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpSigmoidMul& o) { return std::vector<uint32_t>{o.buf.index, o.gate.index}; },
                        [](const OpCausalConv& o) { return std::vector<uint32_t>{o.in.index}; },
                        [](const OpGatedDeltaRule& o) { return std::vector<uint32_t>{o.qkv.index, o.b.index, o.a.index}; },
                        [](const OpGatedRmsNorm& o) { return std::vector<uint32_t>{o.in.index, o.gate.index}; },
                    },
                    op);
}

std::vector<uint32_t> op_writes(const Op& op) {
  return std::visit(Overload{
                        [](const OpEmbed& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpRmsNorm& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpLinear& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpClamp& o) { return std::vector<uint32_t>{o.buf.index}; },
                        [](const OpRope& o) { return std::vector<uint32_t>{o.buf.index}; },
                        [](const OpKvAppend&) { return std::vector<uint32_t>{}; },
                        [](const OpAttention& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpAdd& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpSwiGlu& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpMoe& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpSlice& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpLatentAppend&) { return std::vector<uint32_t>{}; },
                        [](const OpMlaAttention& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpSplitGroups& o) {
                          std::vector<uint32_t> w;
                          for (const AnyBuf& b : o.outs) w.push_back(b.index);
                          return w;
                        },
                        [](const OpSigmoidMul& o) { return std::vector<uint32_t>{o.buf.index}; },
                        [](const OpCausalConv& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpGatedDeltaRule& o) { return std::vector<uint32_t>{o.out.index}; },
                        [](const OpGatedRmsNorm& o) { return std::vector<uint32_t>{o.out.index}; },
                    },
                    op);
}

}  // namespace moeflux
