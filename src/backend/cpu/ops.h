// CPU implementations of the elementwise and matrix ops of the graph.
// Activations are f32; weights (F32/F16/BF16, GGML blocks, MLX affine) are
// read through WeightView.
// T tokens, D width, N output features, K input features.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "format/weight_view.h"
#include "graph/ir.h"
#include "core/thread_pool.h"
#include "quant/matmul.h"
#include "quant/fp8_block.h"
#include "quant/mlx_affine.h"

namespace moeflux::cpu {

// The MLX affine view of W (dtype MLX) for the kernels of quant/mlx_affine.h.
quant::MlxAffine mlx_affine_of(const WeightView& w);
// The FP8 block view of an F8E4M3 weight (scales: weight_scale_inv, group_size: the block).
quant::Fp8Block fp8_block_of(const WeightView& w);
// y[t * ldy + r] = x[t] . W[r] for r in [r0, r1): the float or quantized kernel for W's type.
void matmul_weight(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1, float* y,
                   size_t ldy);
// The layout of rounded activations W's kernel reads (a type to prepare
// quant::PreparedActivations for), or none where it takes f32 activations.
std::optional<GgmlType> activation_layout(const WeightView& W);
// matmul_weight on prepared rows [t0, t0 + nt) of xq (prepared for
// activation_layout(W)): y[(t - t0) * ldy + r].
void matmul_prepared(const quant::PreparedActivations& xq, size_t t0, size_t nt, const WeightView& W, size_t r0,
                     size_t r1, float* y, size_t ldy);
// MLX weights with f32 activations: rows dequantized (the reference
// dequantizer) into a small buffer and multiplied by the SIMD f32 kernel.
// matmul_weight's path where the fused integer kernels are missing.
void matmul_mlx_dequantized(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1,
                            float* y, size_t ldy);
// matmul_weight with x kept in f32 whatever W's type (block formats through
// quant::matmul_rows_exact, MLX through matmul_mlx_dequantized).
void matmul_weight_f32(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1, float* y,
                       size_t ldy);
// How a matrix product treats its activations: Kernel lets quantized
// weights' kernels round them to int8 (fast, the default for big
// matrices); F32 keeps them exact (routers and gates, where rounding
// flips near-tied choices; and everything under EngineOptions::f32_activations).
enum class Activations : uint8_t { Kernel, F32 };
// y [T, N] = x [T, K] W^T (+ bias [N]); W is [N, K]. Rows of W are split
// across the pool's threads.
void linear(ThreadPool& pool, const float* x, int T, const WeightView& W, const WeightView* bias, float* y,
            Activations act = Activations::Kernel);
// y[t, i] = table[tokens[t], i]; throws for ids outside the table.
void embed(const int32_t* tokens, int T, const WeightView& table, float* y);
// Each run of `group` elements is scaled to unit RMS then by weight[i % weight.size] + weight_offset.
void rms_norm(const float* x, int T, int width, int group, const WeightView& weight, float eps, float* y,
              float weight_offset = 0.f);
// RoPE on every head_dim-wide head of each row, in place (graph/ir.h: RopeParams).
void rope(float* x, int T, int width, const RopeParams& p, const int32_t* positions);
// The rot_dims / 2 inverse frequencies of p (theta powers, YaRN-blended when p.yarn says).
std::vector<float> rope_inv_freq(const RopeParams& p);
// out [T, width] = columns [offset, offset + width) of in [T, in_width].
void slice(const float* in, int T, int in_width, int offset, int width, float* out);
void swiglu(const float* gate, const float* up, float* out, size_t n);
void add(const float* a, const float* b, float* out, size_t n);
void clamp(float* x, size_t n, float limit);
// gpt-oss's expert activation (transformers' GptOssExperts._apply_gate):
// g = min(gate, limit), u = clamp(up, -limit, limit),
// out = (u + 1) * g * sigmoid(alpha * g). out may alias gate.
void clamped_swiglu(const float* gate, const float* up, float* out, size_t n, float alpha, float limit);

}  // namespace moeflux::cpu
