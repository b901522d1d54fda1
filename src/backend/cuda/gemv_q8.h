// The decode GEMV with int8 activations (gemv_q8.cu): one row of x (or one
// per MoE tile) rounded to int8 per 32 elements inside each block, and
// integer dot products (__dp4a) with the weight codes, for the GGML block
// formats whose codes are integers: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
// Q5_K, Q6_K. The other formats and ops asking for f32 activations take the
// f32 GEMV (gemv.cu). Rounding x to int8 moves a product by about 1/250 of
// sum |w x| at most (llama.cpp's CUDA decode rounds it the same way).
#pragma once
#include <cuda_runtime.h>

#include "backend/cuda/matmul_internal.cuh"

namespace moeflux::cuda {

// K up to which the int8 x row (K + K/8 + K/4 bytes) fits in 48 KiB of shared memory.
constexpr int kGemvQ8MaxK = 32768;
// Whether launch_gemv_q8 computes this format at width K.
bool gemv_q8_supports(DType dt, int K);
// As launch_gemv (matmul_internal.cuh): tiles = 1 for a plain matrix, else
// the MoE tiles' grid; x rows must be 16-byte aligned (ldx a multiple of 4).
void launch_gemv_q8(DType dt, const MmArgs& a, unsigned tiles, cudaStream_t s);

// Up to kMaxMulti matrices of width K, each in a format gemv_q8_supports,
// times the same x row in one launch (a layer's q, k and v): y[j] = x W[j]^T
// (+ bias[j]). R and first are filled in by the launcher.
inline constexpr int kMaxMulti = 4;
struct Q8Multi {
  DevMat w[kMaxMulti];
  float* y[kMaxMulti];
  const float* bias[kMaxMulti];
  int R[kMaxMulti];
  int first[kMaxMulti + 1];
  int count;
};
void launch_gemv_q8_multi(const Q8Multi& m, const float* x, int K, cudaStream_t s);

// One token's MoE down projection fused with the weighted combine: a.ex the
// experts' down matrices, a.tiles[j] (j < k) tile j = choice j as
// route_one_token writes them, a.x [k, a.ldx] the experts' activations,
// a.y [a.N] = sum_j w[j] * (x_j . W_j^T) (+ sigmoid(*shared_gate), or 1,
// times shared[n] when shared is set).
inline constexpr int kMaxCombineExperts = 64;
bool down_combine_supports(DType dt, int K, int k);
void launch_down_combine(DType dt, const MmArgs& a, int k, const float* w, const float* shared,
                         const float* shared_gate, cudaStream_t s);

}  // namespace moeflux::cuda
