#include "backend/cpu/executor.h"

#include "backend/cpu/deltanet.h"
#include "backend/cpu/mla_attention.h"
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/overload.h"

namespace moeflux {

CpuExecutor::CpuExecutor(ExpertSource& experts, ThreadPool& pool) : pool_(pool), moe_(experts, pool) {}

const float* CpuExecutor::run(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                              const int32_t* positions, KvCache& kv, RecurrentStates& rs) {
  auto* base = reinterpret_cast<uint8_t*>(arena);
  auto buf = [&](uint32_t id) -> float* {
    const int32_t slot = plan.slot_of[id];
    if (slot < 0) fail("graph: buffer {} ('{}') is external but not an input", id, g.buffers[id].name);
    return reinterpret_cast<float*>(base + plan.slot_offset[size_t(slot)]);
  };
  auto desc = [&](uint32_t id) -> const BufferDesc& { return g.buffers[id]; };
  const int T = g.tokens;
  kv.reserve(positions[T - 1] + 1);
  auto state_fits = [&](uint32_t state, size_t offset, size_t floats, const char* op) {
    if (offset + floats > rs.floats(state))
      fail_as(ErrorKind::Internal, "graph: {} uses floats [{}, {}) of layer state {}, which holds {}", op, offset,
              offset + floats, state, rs.floats(state));
  };

  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    uint32_t out_id = 0;
    std::visit(Overload{
                   [&](const OpEmbed& o) {
                     cpu::embed(tokens, T, WeightView::of(*o.table), buf(o.out.index));
                     out_id = o.out.index;
                   },
                   [&](const OpRmsNorm& o) {
                     const auto& d = desc(o.in.index);
                     cpu::rms_norm(buf(o.in.index), d.rows, d.width, o.group, WeightView::of(*o.weight), o.eps,
                                   buf(o.out.index), o.weight_offset);
                     out_id = o.out.index;
                   },
                   [&](const OpLinear& o) {
                     const auto& d = desc(o.in.index);
                     const float* in = buf(o.in.index);
                     int rows = d.rows;
                     if (o.last_row_only) {
                       in += size_t(d.rows - 1) * size_t(d.width);
                       rows = 1;
                     }
                     const WeightView bias = o.bias ? WeightView::of(*o.bias) : WeightView{};
                     cpu::linear(pool_, in, rows, WeightView::of(*o.weight), o.bias ? &bias : nullptr,
                                 buf(o.out.index), o.f32_activations ? cpu::Activations::F32 : cpu::Activations::Kernel);
                     out_id = o.out.index;
                   },
                   [&](const OpClamp& o) {
                     const auto& d = desc(o.buf.index);
                     cpu::clamp(buf(o.buf.index), size_t(d.rows) * size_t(d.width), o.limit);
                     out_id = o.buf.index;
                   },
                   [&](const OpRope& o) {
                     const auto& d = desc(o.buf.index);
                     cpu::rope(buf(o.buf.index), d.rows, d.width, o.rope, positions);
                     out_id = o.buf.index;
                   },
                   [&](const OpKvAppend& o) {
                     cpu::kv_append(kv, o.state, positions, T, buf(o.k.index), buf(o.v.index));
                     out_id = o.k.index;
                   },
                   [&](const OpAttention& o) {
                     cpu::attention(pool_, o.attn, kv, o.state, positions, T, buf(o.q.index), buf(o.out.index));
                     out_id = o.out.index;
                   },
                   [&](const OpAdd& o) {
                     const auto& d = desc(o.a.index);
                     cpu::add(buf(o.a.index), buf(o.b.index), buf(o.out.index), size_t(d.rows) * size_t(d.width));
                     out_id = o.out.index;
                   },
                   [&](const OpSwiGlu& o) {
                     const auto& d = desc(o.gate.index);
                     cpu::swiglu(buf(o.gate.index), buf(o.up.index), buf(o.out.index),
                                 size_t(d.rows) * size_t(d.width));
                     out_id = o.out.index;
                   },
                   [&](const OpMoe& o) {
                     moe_.run(o.moe, buf(o.in.index), T, desc(o.in.index).width, buf(o.out.index));
                     out_id = o.out.index;
                   },
                   // Multi-head latent attention (DeepSeek-V2/V3).
                   [&](const OpSlice& o) {
                     const auto& d = desc(o.in.index);
                     cpu::slice(buf(o.in.index), d.rows, d.width, o.offset, desc(o.out.index).width, buf(o.out.index));
                     out_id = o.out.index;
                   },
                   [&](const OpLatentAppend& o) {
                     cpu::latent_append(kv, o.state, positions, T, buf(o.latent.index), desc(o.latent.index).width,
                                        buf(o.rope.index), desc(o.rope.index).width);
                     out_id = o.latent.index;
                   },
                   [&](const OpMlaAttention& o) {
                     cpu::mla_attention(pool_, o.mla, kv, o.state, positions, T, buf(o.q.index), buf(o.out.index));
                     out_id = o.out.index;
                   },
                   // Gated DeltaNet and gated attention (qwen3_next, qwen3_5_moe)
                   [&](const OpSplitGroups& o) {
                     std::vector<float*> outs;
                     std::vector<int> widths;
                     for (const AnyBuf& b : o.outs) {
                       outs.push_back(buf(b.index));
                       widths.push_back(desc(b.index).width);
                     }
                     cpu::split_groups(buf(o.in.index), T, desc(o.in.index).width, o.groups, o.parts, outs, widths);
                     out_id = o.outs.at(0).index;
                   },
                   [&](const OpSigmoidMul& o) {
                     const auto& d = desc(o.buf.index);
                     cpu::sigmoid_mul(buf(o.buf.index), buf(o.gate.index), size_t(d.rows) * size_t(d.width));
                     out_id = o.buf.index;
                   },
                   [&](const OpCausalConv& o) {
                     state_fits(o.state, o.state_offset, size_t(o.kernel - 1) * size_t(o.channels), "causal_conv");
                     cpu::causal_conv(buf(o.in.index), desc(o.in.index).rows, desc(o.in.index).width,
                                      WeightView::of(*o.weight), o.channels, o.kernel,
                                      rs.data(o.state) + o.state_offset, buf(o.out.index));
                     out_id = o.out.index;
                   },
                   [&](const OpGatedDeltaRule& o) {
                     state_fits(o.state, o.state_offset,
                                size_t(o.p.value_heads) * size_t(o.p.key_dim) * size_t(o.p.value_dim),
                                "gated_delta_rule");
                     cpu::gated_delta_rule(pool_, buf(o.qkv.index), buf(o.b.index), buf(o.a.index), T,
                                           WeightView::of(*o.a_log), WeightView::of(*o.dt_bias), o.p,
                                           rs.data(o.state) + o.state_offset, buf(o.out.index));
                     out_id = o.out.index;
                   },
                   [&](const OpGatedRmsNorm& o) {
                     const auto& d = desc(o.in.index);
                     cpu::gated_rms_norm(buf(o.in.index), buf(o.gate.index), d.rows, d.width, o.group,
                                         WeightView::of(*o.weight), o.eps, buf(o.out.index));
                     out_id = o.out.index;
                   },
               },
               op);
    if (observer_) observer_(i, op, buf(out_id), desc(out_id).rows, desc(out_id).width);
  }
  return buf(g.output.index);
}

}  // namespace moeflux
