// The Gated DeltaNet layer's kernels (qwen3_next, qwen3_5_moe) and the
// gated attention beside it, on the device (graph/ir.h: OpSplitGroups ...
// OpGatedRmsNorm). The CPU kernels in backend/cpu/deltanet.cpp are the
// reference semantics; activations are f32 and the small weights (conv
// taps, A_log, dt_bias, norm weights) come as f32 device vectors.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <span>

#include "graph/ir.h"

namespace moeflux::cuda {

// Row t of `in` (in_width wide) is `groups` groups of the parts; outs[p]
// (out_widths[p] wide) receives its parts part-major (OpSplitGroups). At
// most kMaxSplitParts parts and outputs.
inline constexpr int kMaxSplitParts = 8;
void split_groups(const float* in, int T, int in_width, int groups, std::span<const SplitPart> parts,
                  std::span<float* const> outs, std::span<const int> out_widths, cudaStream_t s);
// buf[i] *= sigmoid(gate[i])
void sigmoid_mul(float* buf, const float* gate, int64_t n, cudaStream_t s);
// The causal depthwise conv with SiLU over T rows (the first `channels`
// columns of each in_width-wide row of `in`); `history` holds the last
// kernel-1 input rows before this step (oldest first) and is advanced.
// weight [channels, kernel] f32.
void causal_conv(const float* in, int T, int in_width, const float* weight, int channels, int kernel, float* history,
                 float* out, cudaStream_t s);
// The gated delta rule token by token (the step form, for prefill too),
// parallel over value heads and value columns; S is value_heads x
// [key_dim, value_dim]. a_log, dt_bias [value_heads] f32.
void gated_delta_rule(const float* qkv, const float* b, const float* a, int T, const float* a_log,
                      const float* dt_bias, const DeltaRuleParams& p, float* S, float* out, cudaStream_t s);
// RMSNorm per `group` scaled by weight[i % wn], times silu(gate).
void gated_rms_norm(const float* x, const float* gate, int T, int width, int group, const float* weight, int64_t wn,
                    float eps, float* y, cudaStream_t s);

}  // namespace moeflux::cuda
