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
  const RowStates one{&kv, &rs};
  return run_impl(g, plan, arena, tokens, positions, {&one, 1});
}

const float* CpuExecutor::run_rows(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                                   const int32_t* positions, std::span<const RowStates> rows) {
  if (rows.size() != size_t(g.tokens))
    fail_as(ErrorKind::Internal, "cpu backend: {} sessions for a batched graph of {} tokens", rows.size(), g.tokens);
  return run_impl(g, plan, arena, tokens, positions, rows);
}

const float* CpuExecutor::run_impl(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                                   const int32_t* positions, std::span<const RowStates> rows) {
  auto* base = reinterpret_cast<uint8_t*>(arena);
  auto buf = [&](uint32_t id) -> float* {
    const int32_t slot = plan.slot_of[id];
    if (slot < 0) fail("graph: buffer {} ('{}') is external but not an input", id, g.buffers[id].name);
    return reinterpret_cast<float*>(base + plan.slot_offset[size_t(slot)]);
  };
  auto desc = [&](uint32_t id) -> const BufferDesc& { return g.buffers[id]; };
  const int T = g.tokens;
  // One session owns every row (a step), or row t is session t's (a batch).
  const bool per_row = rows.size() > 1;
  if (per_row)
    for (int t = 0; t < T; ++t) rows[size_t(t)].kv->reserve(positions[t] + 1);
  else
    rows[0].kv->reserve(positions[T - 1] + 1);
  // Runs a stateful op once over all rows, or once per row with that row's
  // session states, its position and its rows of the buffers (T = 1).
  auto stateful = [&](auto&& fn) {
    if (!per_row) return fn(*rows[0].kv, *rows[0].rs, 0, T);
    for (int t = 0; t < T; ++t) fn(*rows[size_t(t)].kv, *rows[size_t(t)].rs, t, 1);
  };
  auto row = [&](uint32_t id, int t) { return buf(id) + size_t(t) * size_t(desc(id).width); };
  auto state_fits = [&](const RecurrentStates& rs, uint32_t state, size_t offset, size_t floats, const char* op) {
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
                     stateful([&](KvCache& kv, RecurrentStates&, int t, int n) {
                       cpu::kv_append(kv, o.state, positions + t, n, row(o.k.index, t), row(o.v.index, t));
                     });
                     out_id = o.k.index;
                   },
                   [&](const OpAttention& o) {
                     stateful([&](KvCache& kv, RecurrentStates&, int t, int n) {
                       cpu::attention(pool_, o.attn, kv, o.state, positions + t, n, row(o.q.index, t),
                                      row(o.out.index, t));
                     });
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
                     stateful([&](KvCache& kv, RecurrentStates&, int t, int n) {
                       cpu::latent_append(kv, o.state, positions + t, n, row(o.latent.index, t),
                                          desc(o.latent.index).width, row(o.rope.index, t), desc(o.rope.index).width);
                     });
                     out_id = o.latent.index;
                   },
                   [&](const OpMlaAttention& o) {
                     stateful([&](KvCache& kv, RecurrentStates&, int t, int n) {
                       cpu::mla_attention(pool_, o.mla, kv, o.state, positions + t, n, row(o.q.index, t),
                                          row(o.out.index, t));
                     });
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
                     stateful([&](KvCache&, RecurrentStates& rs, int t, int n) {
                       state_fits(rs, o.state, o.state_offset, size_t(o.kernel - 1) * size_t(o.channels),
                                  "causal_conv");
                       cpu::causal_conv(row(o.in.index, t), per_row ? 1 : desc(o.in.index).rows,
                                        desc(o.in.index).width, WeightView::of(*o.weight), o.channels, o.kernel,
                                        rs.data(o.state) + o.state_offset, row(o.out.index, t));
                       (void)n;
                     });
                     out_id = o.out.index;
                   },
                   [&](const OpGatedDeltaRule& o) {
                     stateful([&](KvCache&, RecurrentStates& rs, int t, int n) {
                       state_fits(rs, o.state, o.state_offset,
                                  size_t(o.p.value_heads) * size_t(o.p.key_dim) * size_t(o.p.value_dim),
                                  "gated_delta_rule");
                       cpu::gated_delta_rule(pool_, row(o.qkv.index, t), row(o.b.index, t), row(o.a.index, t), n,
                                             WeightView::of(*o.a_log), WeightView::of(*o.dt_bias), o.p,
                                             rs.data(o.state) + o.state_offset, row(o.out.index, t));
                     });
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
