// CudaExecutor's ops of the newer architectures: multi-head latent
// attention (deepseek_v3: slice, latent_append, mla_attention) and the
// Gated DeltaNet layer with its gated attention (qwen3_next, qwen3_5_moe:
// split_groups, sigmoid_mul, causal_conv, gated_delta_rule,
// gated_rms_norm). Shapes are checked here, on the host, before a kernel
// runs; every kernel reads positions and states on the device, so a decode
// step of these ops stays capturable as a CUDA graph.
#include "backend/cuda/deltanet.h"
#include "backend/cuda/executor.h"
#include "backend/cuda/mla.h"
#include "core/error.h"
#include "core/overload.h"

namespace moeflux::cuda {

void CudaExecutor::run_arch_op(const Graph& g, const BufferPlan& plan, const Op& op, DevKvCache& kv) {
  auto B = [&](uint32_t id) { return buf(g, plan, id); };
  auto desc = [&](uint32_t id) -> const BufferDesc& { return g.buffers[id]; };
  auto recurrent = [&](uint32_t state, size_t offset, size_t floats, const char* what) {
    if (!recurrent_) fail_as(ErrorKind::Internal, "cuda backend: {} in a session without recurrent states", what);
    return recurrent_->data(state, offset, floats, what);
  };
  const int T = T_;
  const auto* dpos = static_cast<const int32_t*>(positions_.get());
  std::visit(
      Overload{
          [&](const OpSlice& o) {
            const auto &in = desc(o.in.index), &out = desc(o.out.index);
            if (o.offset < 0 || o.offset + out.width > in.width)
              fail_as(ErrorKind::Internal, "slice: columns [{}, {}) of rows of {}", o.offset, o.offset + out.width,
                      in.width);
            slice(B(o.in.index), in.rows, in.width, o.offset, out.width, B(o.out.index), stream_);
          },
          [&](const OpLatentAppend& o) {
            const KvView v = kv.view(o.state);
            const int lw = desc(o.latent.index).width, rw = desc(o.rope.index).width;
            if (v.key_width != lw + rw || v.value_width != 0)
              fail_as(ErrorKind::Internal, "latent state {} holds {} + {} floats per position, not {} + {}", o.state,
                      v.key_width, v.value_width, lw, rw);
            latent_append(v, dpos, T, B(o.latent.index), lw, B(o.rope.index), rw, stream_);
          },
          [&](const OpMlaAttention& o) {
            const MlaParams& m = o.mla;
            const DevMat& W = weights_.mat(m.kv_b);
            const KvView v = kv.view(o.state);
            if (W.rows != int64_t(m.heads) * (m.nope_dim + m.v_dim) || W.cols != m.kv_lora_rank)
              fail("mla attention: kv_b_proj '{}' is [{}, {}], not [{}, {}]", m.kv_b->name, W.rows, W.cols,
                   int64_t(m.heads) * (m.nope_dim + m.v_dim), m.kv_lora_rank);
            if (v.key_width != m.kv_lora_rank + m.rope_dim)
              fail_as(ErrorKind::Internal, "mla attention: latent state {} holds {} floats per position, not {} + {}",
                      o.state, v.key_width, m.kv_lora_rank, m.rope_dim);
            if (desc(o.q.index).width != m.heads * (m.nope_dim + m.rope_dim) ||
                desc(o.out.index).width != m.heads * m.v_dim)
              fail_as(ErrorKind::Internal, "mla attention: q of {} and out of {} for {} heads", desc(o.q.index).width,
                      desc(o.out.index).width, m.heads);
            if (m.kv_lora_rank > kMaxMlaLatent || m.rope_dim > 1024)
              fail("mla attention: kv_lora_rank {} and rope dims {} (the CUDA kernels take up to {} and 1024)",
                   m.kv_lora_rank, m.rope_dim, kMaxMlaLatent);
            // Every path is the absorbed form here (the same function as the
            // naive one, which decompresses K and V; MlaPath picks only
            // between those two on the CPU).
            const size_t lat = size_t(T) * size_t(m.heads) * size_t(m.kv_lora_rank);
            float* q_lat = mla_q_lat_.need<float>(lat, "MLA query latents");
            float* o_lat = mla_o_lat_.need<float>(lat, "MLA output latents");
            mla_attention(m, W, v, dpos, T, B(o.q.index), q_lat, o_lat, B(o.out.index), stream_);
          },
          [&](const OpSplitGroups& o) {
            if (o.parts.empty() || o.parts.size() > size_t(kMaxSplitParts) || o.outs.size() > size_t(kMaxSplitParts))
              fail("split_groups: {} parts into {} outputs (the CUDA kernel takes 1 to {})", o.parts.size(),
                   o.outs.size(), kMaxSplitParts);
            std::vector<float*> outs;
            std::vector<int> widths;
            for (const AnyBuf& b : o.outs) {
              outs.push_back(B(b.index));
              widths.push_back(desc(b.index).width);
            }
            int group_width = 0;
            std::vector<int> filled(o.outs.size(), 0);
            for (const SplitPart& p : o.parts) {
              if (p.out < 0 || size_t(p.out) >= o.outs.size())
                fail_as(ErrorKind::Internal, "split_groups: a part goes to output {} of {}", p.out, o.outs.size());
              group_width += p.width;
              filled[size_t(p.out)] += p.width * o.groups;
            }
            for (size_t i = 0; i < filled.size(); ++i)
              if (filled[i] > widths[i])
                fail_as(ErrorKind::Internal, "split_groups: {} columns into output {} of {}", filled[i], i, widths[i]);
            const auto& in = desc(o.in.index);
            if (group_width * o.groups > in.width)
              fail_as(ErrorKind::Internal, "split_groups: {} groups of {} in rows of {}", o.groups, group_width,
                      in.width);
            split_groups(B(o.in.index), in.rows, in.width, o.groups, o.parts, outs, widths, stream_);
          },
          [&](const OpSigmoidMul& o) {
            const auto& d = desc(o.buf.index);
            sigmoid_mul(B(o.buf.index), B(o.gate.index), int64_t(d.rows) * d.width, stream_);
          },
          [&](const OpCausalConv& o) {
            const auto& in = desc(o.in.index);
            if (o.channels > in.width || o.kernel < 1 || o.weight->numel() != int64_t(o.channels) * o.kernel)
              fail_as(ErrorKind::Internal, "causal_conv: {} channels of kernel {} over rows of {}, taps '{}' of {}",
                      o.channels, o.kernel, in.width, o.weight->name, o.weight->numel());
            float* hist = recurrent(o.state, o.state_offset, size_t(o.kernel - 1) * size_t(o.channels), "causal_conv");
            causal_conv(B(o.in.index), in.rows, in.width, weights_.vec(o.weight), o.channels, o.kernel, hist,
                        B(o.out.index), stream_);
          },
          [&](const OpGatedDeltaRule& o) {
            const DeltaRuleParams& p = o.p;
            if (p.key_heads <= 0 || p.value_heads % p.key_heads != 0)
              fail("gated_delta_rule: {} value heads over {} key heads", p.value_heads, p.key_heads);
            if (size_t(2 * p.key_dim) * sizeof(float) > 48 * 1024)
              fail("gated_delta_rule: key_dim {} is more than the CUDA kernel's shared memory holds", p.key_dim);
            if (desc(o.qkv.index).width != 2 * p.key_heads * p.key_dim + p.value_heads * p.value_dim ||
                desc(o.b.index).width != p.value_heads || desc(o.a.index).width != p.value_heads ||
                desc(o.out.index).width != p.value_heads * p.value_dim)
              fail_as(ErrorKind::Internal, "gated_delta_rule: buffers of {}, {}, {} -> {} for {}x{} / {}x{} heads",
                      desc(o.qkv.index).width, desc(o.b.index).width, desc(o.a.index).width, desc(o.out.index).width,
                      p.key_heads, p.key_dim, p.value_heads, p.value_dim);
            if (o.a_log->numel() != p.value_heads || o.dt_bias->numel() != p.value_heads)
              fail("gated_delta_rule: A_log '{}' and dt_bias '{}' have {} and {} values for {} heads", o.a_log->name,
                   o.dt_bias->name, o.a_log->numel(), o.dt_bias->numel(), p.value_heads);
            float* S = recurrent(o.state, o.state_offset,
                                 size_t(p.value_heads) * size_t(p.key_dim) * size_t(p.value_dim), "gated_delta_rule");
            gated_delta_rule(B(o.qkv.index), B(o.b.index), B(o.a.index), desc(o.qkv.index).rows,
                             weights_.vec(o.a_log), weights_.vec(o.dt_bias), p, S, B(o.out.index), stream_);
          },
          [&](const OpGatedRmsNorm& o) {
            const auto& d = desc(o.in.index);
            gated_rms_norm(B(o.in.index), B(o.gate.index), d.rows, d.width, o.group, weights_.vec(o.weight),
                           o.weight->numel(), o.eps, B(o.out.index), stream_);
          },
          [&](const auto&) { fail("op {} is not implemented on CUDA", op_name(op)); },
      },
      op);
}

}  // namespace moeflux::cuda
