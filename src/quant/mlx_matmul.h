// MLX affine weights (mlx_affine.h) times activations on the CPU, fused: no
// dequantized row is written. As matmul_rows does for the block formats,
// each token's x is rounded once to int8 in blocks of 32 (the Q8_0 layout:
// d = amax / 127 per block) and each 32-element chunk of a row is dotted
// with it in integers; per group of gs elements
//   y += s_g * sum_j d_j (q . x^)_j + b_g * sum_j d_j sum(x^_j).
// Runs on AVX2 and AVX-512 (mlx_quantizes_activations()); elsewhere the
// caller dequantizes rows instead (cpu::matmul_mlx_dequantized).
//
// Accuracy. With x^ the rounded activations (|x_k - x^_k| <= amax_b *
// (1/254 + 2^-21)), the integer sums are exact and only the f32 products
// and sums per chunk, group and row round:
//   |y - sum_k w_k x^_k| <= (nc + 8) * 2^-23 * sum_k (|s_g q_k| + 2 |b'_g|) |x^_k|
// with nc the chunks of a row and b'_g the bias the kernel applies (b_g, or
// b_g + 128 s_g for 8 bits, whose codes it takes as q - 128).
// tests/quant/mlx_matmul_test.cpp checks this bound.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"
#include "quant/matmul.h"
#include "quant/mlx_affine.h"

namespace moeflux::quant {

// The activation layout the MLX kernels read: prepare PreparedActivations
// for this type.
inline constexpr GgmlType kMlxActivationType = GgmlType::Q8_0;

// Whether the fused integer kernels exist on the target dispatched now.
bool mlx_quantizes_activations();

// y[t * ldy + r] = sum_k x[t * ldx + k] * W[r, k] for t < T, r in [r0, r1),
// W the MLX matrix q with K columns. Thread-safe; like matmul_rows, each
// thread keeps its last rounded x. Throws moeflux::Error for unsupported
// bits / group size, a K that is not a whole number of groups, or a target
// without the kernels.
void mlx_matmul_rows(const float* x, size_t ldx, size_t T, const MlxAffine& q, size_t K, size_t r0, size_t r1,
                     float* y, size_t ldy);
// The same on prepared rows [t0, t0 + nt) (prepared for kMlxActivationType):
// y[(t - t0) * ldy + r].
void mlx_matmul_rows(const PreparedActivations& xq, size_t t0, size_t nt, const MlxAffine& q, size_t r0, size_t r1,
                     float* y, size_t ldy);

}  // namespace moeflux::quant
