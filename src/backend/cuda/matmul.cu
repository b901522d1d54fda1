#include "backend/cuda/matmul.h"

#include "backend/cuda/formats.cuh"

namespace moeflux::cuda {

namespace {

constexpr int kWarps = 4;  // output features per block

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
  bool vec4;  // x rows are 16-byte aligned with K % 4 == 0
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// a += v . x[0, 32) with 16-byte loads (x 16-byte aligned).
__device__ __forceinline__ void accumulate4(const float* xp, const float v[32], float& a) {
  const float4* x4 = reinterpret_cast<const float4*>(xp);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 q = __ldg(x4 + i);
    a += v[4 * i] * q.x + v[4 * i + 1] * q.y + v[4 * i + 2] * q.z + v[4 * i + 3] * q.w;
  }
}
// a += v . x[0, ne): any alignment, a partial last chunk (float weights only).
__device__ __forceinline__ void accumulate1(const float* xp, int ne, const float v[32], float& a) {
#pragma unroll
  for (int i = 0; i < 32; ++i)
    if (i < ne) a += v[i] * __ldg(xp + i);
}
// Block formats have whole chunks and K % 32 == 0, so their x rows are
// always 16-byte aligned (checked on the host): only float weights need
// the general path.
template <DType DT>
__device__ __forceinline__ void accumulate(const float* xp, int ne, bool vec4, const float v[32], float& a) {
  if constexpr (DT == DType::F32 || DT == DType::F16 || DT == DType::BF16) {
    if (ne == 32 && vec4)
      accumulate4(xp, v, a);
    else
      accumulate1(xp, ne, v, a);
  } else {
    accumulate4(xp, v, a);
  }
}

// One warp, one output feature n, rows [row0, row0 + nrows) (at most
// kMoeTile). With kPair, W2's product too, and y = silu(x W) * (x W2).
// The pair's chunks are dequantized one matrix after the other into the
// same registers, so a lane holds 32 weights at a time.
template <DType DT, bool kPair>
__device__ __forceinline__ void mm_body(const MmArgs& a, const DevMat& W, const DevMat& W2, int n, int row0,
                                        int nrows) {
  const int lane = threadIdx.x & 31;
  float acc[kMoeTile], acc2[kMoeTile];
  int64_t xoff[kMoeTile];
#pragma unroll
  for (int t = 0; t < kMoeTile; ++t) {
    acc[t] = acc2[t] = 0.f;
    const int r = row0 + (t < nrows ? t : 0);
    xoff[t] = int64_t(a.x_rows ? a.x_rows[r] : r) * a.ldx;
  }
  const int chunks = (a.K + 31) / 32;
  for (int c = lane; c < chunks; c += 32) {
    const int e0 = c * 32, ne = a.K - e0 < 32 ? a.K - e0 : 32;
    float v[32];
    deq_chunk<DT>(W, n, c, v);
#pragma unroll
    for (int t = 0; t < kMoeTile; ++t)
      if (t < nrows) accumulate<DT>(a.x + xoff[t] + e0, ne, a.vec4, v, acc[t]);
    if constexpr (kPair) {
      deq_chunk<DT>(W2, n, c, v);
#pragma unroll
      for (int t = 0; t < kMoeTile; ++t)
        if (t < nrows) accumulate<DT>(a.x + xoff[t] + e0, ne, a.vec4, v, acc2[t]);
    }
  }
#pragma unroll
  for (int t = 0; t < kMoeTile; ++t) {
    if (t >= nrows) break;
    const float s = warp_sum(acc[t]);
    const float s2 = kPair ? warp_sum(acc2[t]) : 0.f;
    if (lane == 0) {
      float out;
      if constexpr (kPair)
        out = s / (1.0f + expf(-s)) * s2;
      else
        out = s + (a.bias ? a.bias[n] : 0.f);
      a.y[int64_t(row0 + t) * a.ldy + n] = out;
    }
  }
}

template <DType DT>
__global__ void __launch_bounds__(kWarps * 32) mm_kernel(MmArgs a) {
  const int n = blockIdx.x * kWarps + int(threadIdx.x / 32);
  if (n >= a.N) return;
  if (a.ex) {
    if (int(blockIdx.y) >= *a.ntiles) return;
    const MoeTile t = a.tiles[blockIdx.y];
    if (a.ex2)
      mm_body<DT, true>(a, a.ex[t.expert], a.ex2[t.expert], n, t.row0, t.rows);
    else
      mm_body<DT, false>(a, a.ex[t.expert], a.ex[t.expert], n, t.row0, t.rows);
    return;
  }
  const int row0 = int(blockIdx.y) * kMoeTile;
  const int nrows = a.T - row0 < kMoeTile ? a.T - row0 : kMoeTile;
  if (a.w2.data)
    mm_body<DT, true>(a, a.w, a.w2, n, row0, nrows);
  else
    mm_body<DT, false>(a, a.w, a.w, n, row0, nrows);
}

void launch(DType dt, const MmArgs& a, dim3 grid, cudaStream_t s) {
  if (grid.x == 0 || grid.y == 0) return;
  switch (dt) {
#define MOEFLUX_MM(T)                                        \
  case DType::T:                                             \
    mm_kernel<DType::T><<<grid, kWarps * 32, 0, s>>>(a);     \
    break;
    MOEFLUX_MM(F32)
    MOEFLUX_MM(F16)
    MOEFLUX_MM(BF16)
    MOEFLUX_MM(Q4_0)
    MOEFLUX_MM(Q4_1)
    MOEFLUX_MM(Q5_0)
    MOEFLUX_MM(Q5_1)
    MOEFLUX_MM(Q8_0)
    MOEFLUX_MM(Q2_K)
    MOEFLUX_MM(Q3_K)
    MOEFLUX_MM(Q4_K)
    MOEFLUX_MM(Q5_K)
    MOEFLUX_MM(Q6_K)
    MOEFLUX_MM(MXFP4)
    MOEFLUX_MM(MLX)
#undef MOEFLUX_MM
    default: break;  // the uploader refused other formats (matmul_supports)
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

MmArgs base_args(const float* x, int64_t ldx, float* y, int64_t ldy, int T, int N, int K) {
  MmArgs a{};
  a.x = x;
  a.ldx = ldx;
  a.y = y;
  a.ldy = ldy;
  a.T = T;
  a.N = N;
  a.K = K;
  a.vec4 = K % 4 == 0 && ldx % 4 == 0 && aligned16(x);
  return a;
}

}  // namespace

bool matmul_supports(DType dt) {
  switch (dt) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0:
    case DType::Q5_1: case DType::Q8_0: case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K:
    case DType::Q6_K: case DType::MXFP4: case DType::MLX:
      return true;
    default:
      return false;
  }
}

void matmul(const DevMat& W, const float* x, int64_t ldx, int T, float* y, int64_t ldy, const float* bias,
            cudaStream_t s) {
  MmArgs a = base_args(x, ldx, y, ldy, T, int(W.rows), int(W.cols));
  a.w = W;
  a.bias = bias;
  launch(W.dtype, a, dim3(unsigned((W.rows + kWarps - 1) / kWarps), unsigned((T + kMoeTile - 1) / kMoeTile)), s);
}

void matmul_swiglu(const DevMat& Wg, const DevMat& Wu, const float* x, int64_t ldx, int T, float* y, int64_t ldy,
                   cudaStream_t s) {
  MmArgs a = base_args(x, ldx, y, ldy, T, int(Wg.rows), int(Wg.cols));
  a.w = Wg;
  a.w2 = Wu;
  launch(Wg.dtype, a, dim3(unsigned((Wg.rows + kWarps - 1) / kWarps), unsigned((T + kMoeTile - 1) / kMoeTile)), s);
}

void matmul_grouped(DType dt, const DevMat* experts, const DevMat* experts2, const MoeTile* tiles, const int* ntiles,
                    int max_tiles, const float* x, int64_t ldx, const int* x_rows, float* y, int64_t ldy, int N, int K,
                    cudaStream_t s) {
  MmArgs a = base_args(x, ldx, y, ldy, 0, N, K);
  a.ex = experts;
  a.ex2 = experts2;
  a.tiles = tiles;
  a.ntiles = ntiles;
  a.x_rows = x_rows;
  launch(dt, a, dim3(unsigned((N + kWarps - 1) / kWarps), unsigned(max_tiles)), s);
}

}  // namespace moeflux::cuda
