// What the two matrix kernels (matmul.cu: tiled, gemv.cu: decode) share:
// their arguments and the shared-memory layout of staged activations.
// Separate translation units so that a parallel build compiles them at once.
#pragma once
#include <cuda_runtime.h>

#include "backend/cuda/dev_types.h"

namespace moeflux::cuda {

constexpr int kWarps = 8;  // warps per block of the tiled kernel

struct MmArgs {
  DevMat w, w2;                   // plain: the matrix (w2.data set: the SwiGLU pair)
  const DevMat *ex, *ex2;         // grouped: per-expert matrices
  const MoeTile* tiles;
  const int* ntiles;
  const float* x;
  int64_t ldx;
  const int* x_rows;
  float* y;
  int64_t ldy;
  const float* bias;
  int T, N, K;
  int rows_per_warp;  // the GEMV kernel's output features per warp (1, 2 or 4)
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The x tile in shared memory: for each of up to kMoeTile rows, one
// segment of 32 chunks (1,024 elements), chunk j at xs[t][j * kStride].
// Lane j reads chunk j: with a stride of 36 floats its 16-byte loads fall
// in distinct banks within each quarter warp, where reading x from global
// memory chunk by chunk touched 32 cache lines per instruction.
constexpr int kSegChunks = 32;
constexpr int kStride = 36;

// a += v . xs[0, 32)
__device__ __forceinline__ void accumulate(const float* xs, const float v[32], float& a) {
  const float4* x4 = reinterpret_cast<const float4*>(xs);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 q = x4[i];
    a += v[4 * i] * q.x + v[4 * i + 1] * q.y + v[4 * i + 2] * q.z + v[4 * i + 3] * q.w;
  }
}


// The decode kernel for one row of x per launch (tiles = 1) or per MoE tile.
void launch_gemv(DType dt, const MmArgs& a, unsigned tiles, cudaStream_t s);
// An F32 matrix times one row of x, a block per feature; false (nothing
// launched) for other formats, the SwiGLU pair, MoE tiles or unaligned rows.
bool launch_gemv_f32(const MmArgs& a, cudaStream_t s);
// K up to which launch_gemv applies (the padded x row fits in shared memory).
constexpr int kGemvMaxK = (48 * 1024 / (kStride * 4)) * 32;

}  // namespace moeflux::cuda
