// CPU kernels of the Gated DeltaNet layer (qwen3_next, qwen3_5_moe) and of
// the gated attention beside it (graph/ir.h: OpSplitGroups ...
// OpGatedRmsNorm). Activations f32; the small weights (conv taps, A_log,
// dt_bias, norm) are read through WeightView in any float type.
#pragma once
#include <cstddef>
#include <span>

#include "core/thread_pool.h"
#include "format/weight_view.h"
#include "graph/ir.h"

namespace moeflux::cpu {

// Row t of `in` (in_width wide) is `groups` groups of the parts; outs[p]
// (out_widths[p] wide) receives its parts part-major (OpSplitGroups).
void split_groups(const float* in, int T, int in_width, int groups, std::span<const SplitPart> parts,
                  std::span<float* const> outs, std::span<const int> out_widths);
// buf[i] *= sigmoid(gate[i])
void sigmoid_mul(float* buf, const float* gate, size_t n);
// The causal depthwise conv with SiLU over T rows (the first `channels`
// columns of each in_width-wide row of `in`); `history` holds the last
// kernel-1 input rows before this step (oldest first) and is advanced.
void causal_conv(const float* in, int T, int in_width, const WeightView& weight, int channels, int kernel,
                 float* history, float* out);
// The gated delta rule over T rows: one token (decode) by the step form,
// more (prefill) by the chunked form over blocks of p.chunk tokens (0: the
// step form throughout); equal up to rounding. S is value_heads x
// [key_dim, value_dim].
void gated_delta_rule(ThreadPool& pool, const float* qkv, const float* b, const float* a, int T,
                      const WeightView& a_log, const WeightView& dt_bias, const DeltaRuleParams& p, float* S,
                      float* out);
// RMSNorm per `group` scaled by weight, times silu(gate).
void gated_rms_norm(const float* x, const float* gate, int T, int width, int group, const WeightView& weight,
                    float eps, float* y);

}  // namespace moeflux::cpu
