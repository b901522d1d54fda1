// Matrix products on the device, for every weight format.
//
// Two kernels per format (formats.cuh dequantizes), activations in f32,
// the lanes of a warp striding over a weight row's 32-element chunks: a
// GEMV for one row of x (decode), which stages x in shared memory once for
// 32 output features, and a tiled kernel for up to kMoeTile rows (prefill),
// each warp one output feature. The same
// kernel serves a plain linear (decode GEMV and prefill), a fused
// gate/up pair with SwiGLU, and the MoE op's grouped products, where each
// tile of gathered rows belongs to one expert chosen on the device.
// Float weights in steps of many tokens go to cuBLAS instead (see linear()).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/dev_types.h"

namespace moeflux::cuda {

// y[t * ldy + n] = sum_k x[t * ldx + k] W[n, k] (+ bias[n]) for t < T, n < W.rows.
// int8_x: a one-row product (decode) may round x to int8 (gemv_q8.h) when
// the format has integer codes; ops that ask for f32 activations pass false.
void matmul(const DevMat& W, const float* x, int64_t ldx, int T, float* y, int64_t ldy, const float* bias,
            cudaStream_t s, bool int8_x = false);
// y[t * ldy + n] = silu(x Wg^T) * (x Wu^T): the two projections of a SwiGLU
// MLP in one pass over x. Wg and Wu must share a format.
void matmul_swiglu(const DevMat& Wg, const DevMat& Wu, const float* x, int64_t ldx, int T, float* y, int64_t ldy,
                   cudaStream_t s, bool int8_x = false);
// The MoE op's grouped product: for each of the *ntiles tiles (at most
// max_tiles), rows [row0, row0 + rows) of y are the product of expert
// `expert`'s matrix experts[expert] (with experts2: silu(. Wg) * (. Wu))
// and the rows x_rows[r] of x (x_rows null: row r). Every expert matrix has
// format `dt`, N rows and K columns. one_row_tiles (decode: one token, so
// each expert has one row) selects the GEMV kernel.
void matmul_grouped(DType dt, const DevMat* experts, const DevMat* experts2, const MoeTile* tiles, const int* ntiles,
                    int max_tiles, bool one_row_tiles, const float* x, int64_t ldx, const int* x_rows, float* y,
                    int64_t ldy, int N, int K, cudaStream_t s, bool int8_x = false);
// One token's MoE down projection and weighted combine in one launch
// (gemv_q8.h: launch_down_combine), with x rounded to int8; tiles as
// route_one_token writes them. False, launching nothing, where the format
// or shapes do not allow it.
bool moe_down_combine(DType dt, const DevMat* experts, const MoeTile* tiles, int k, const float* x, int64_t ldx,
                      const float* w, const float* shared, const float* shared_gate, float* out, int N, int K,
                      cudaStream_t s);
// y[j] = x W[j]^T (+ bias[j]) for `count` (at most 4) matrices of one
// width, each in an integer-coded format, over one row of x in one launch,
// with x rounded to int8 (gemv_q8.h). False, launching nothing, where the
// widths differ or a format has no int8 kernel.
bool matmul_q8_multi(int count, const DevMat* const* W, const float* const* bias, const float* x, float* const* y,
                     cudaStream_t s);
// Whether the kernels read matrices of this format.
bool matmul_supports(DType dt);

}  // namespace moeflux::cuda
