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

// Each warp computes one output feature n (n >= N: it only helps stage x)
// over rows [row0, row0 + nrows) of the gathered x, at most kMoeTile; a
// block's warps share the staged x. With kPair, W2's product too, and
// y = silu(x W) * (x W2); the pair's chunks are dequantized one matrix after
// the other into the same registers. Elements past K are zero in both the
// weights (formats.cuh) and the staged x.
template <DType DT, bool kPair>
__device__ __forceinline__ void mm_body(const MmArgs& a, const DevMat& W, const DevMat& W2, int n, int row0,
                                        int nrows, float (*xs)[kSegChunks * kStride]) {
  const int lane = threadIdx.x & 31;
  const bool active = n < a.N;
  float acc[kMoeTile], acc2[kMoeTile];
#pragma unroll
  for (int t = 0; t < kMoeTile; ++t) acc[t] = acc2[t] = 0.f;
  const int chunks = (a.K + 31) / 32;
  for (int c0 = 0; c0 < chunks; c0 += kSegChunks) {
    const int seg = min(kSegChunks, chunks - c0) * 32;  // elements staged per row
    for (int i = threadIdx.x; i < nrows * seg; i += blockDim.x) {
      const int t = i / seg, e = i % seg, k = c0 * 32 + e;
      const int r = row0 + t;
      const float* xr = a.x + int64_t(a.x_rows ? a.x_rows[r] : r) * a.ldx;
      xs[t][(e / 32) * kStride + e % 32] = k < a.K ? xr[k] : 0.f;
    }
    __syncthreads();
    const int c = c0 + lane;
    if (active && c < chunks) {
      float v[32];
      deq_chunk<DT>(W, n, c, v);
#pragma unroll
      for (int t = 0; t < kMoeTile; ++t)
        if (t < nrows) accumulate(&xs[t][lane * kStride], v, acc[t]);
      if constexpr (kPair) {
        deq_chunk<DT>(W2, n, c, v);
#pragma unroll
        for (int t = 0; t < kMoeTile; ++t)
          if (t < nrows) accumulate(&xs[t][lane * kStride], v, acc2[t]);
      }
    }
    __syncthreads();
  }
  if (!active) return;
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
  __shared__ __align__(16) float xs[kMoeTile][kSegChunks * kStride];
  const int n = blockIdx.x * kWarps + int(threadIdx.x / 32);
  if (a.ex) {
    if (int(blockIdx.y) >= *a.ntiles) return;  // the whole block: no barrier is skipped by part of it
    const MoeTile t = a.tiles[blockIdx.y];
    if (a.ex2)
      mm_body<DT, true>(a, a.ex[t.expert], a.ex2[t.expert], n, t.row0, t.rows, xs);
    else
      mm_body<DT, false>(a, a.ex[t.expert], a.ex[t.expert], n, t.row0, t.rows, xs);
    return;
  }
  const int row0 = int(blockIdx.y) * kMoeTile;
  const int nrows = a.T - row0 < kMoeTile ? a.T - row0 : kMoeTile;
  if (a.w2.data)
    mm_body<DT, true>(a, a.w, a.w2, n, row0, nrows, xs);
  else
    mm_body<DT, false>(a, a.w, a.w, n, row0, nrows, xs);
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

MmArgs base_args(const float* x, int64_t ldx, float* y, int64_t ldy, int T, int N, int K) {
  MmArgs a{};
  a.x = x;
  a.ldx = ldx;
  a.y = y;
  a.ldy = ldy;
  a.T = T;
  a.N = N;
  a.K = K;
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
