#include "backend/cuda/matmul.h"

#include "backend/cuda/formats.cuh"
#include "backend/cuda/gemv_q8.h"
#include "backend/cuda/matmul_internal.cuh"

namespace moeflux::cuda {

namespace {

// Each warp computes kFeatures output features n0, n0 + 1 (those >= N: it
// only helps stage x) over rows [row0, row0 + nrows) of the gathered x, at
// most kMoeTile; a block's warps share the staged x, so staging (all of a
// tile's x) is paid once per kWarps * kFeatures features. With kPair, W2's
// products too, and y = silu(x W) * (x W2); each chunk is dequantized one
// matrix and one feature after the other into the same registers. Elements
// past K are zero in both the weights (formats.cuh) and the staged x.
constexpr int kFeatures = 2;
constexpr int kTileFeatures = kWarps * kFeatures;  // output features per block
template <DType DT, bool kPair>
__device__ __forceinline__ void mm_body(const MmArgs& a, const DevMat& W, const DevMat& W2, int n0, int row0,
                                        int nrows, float (*xs)[kSegChunks * kStride]) {
  const int lane = threadIdx.x & 31;
  float acc[kFeatures][kMoeTile], acc2[kFeatures][kMoeTile];
#pragma unroll
  for (int f = 0; f < kFeatures; ++f)
#pragma unroll
    for (int t = 0; t < kMoeTile; ++t) acc[f][t] = acc2[f][t] = 0.f;
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
    if (c < chunks) {
#pragma unroll
      for (int f = 0; f < kFeatures; ++f) {
        if (n0 + f >= a.N) break;
        float v[32];
        deq_chunk<DT>(W, n0 + f, c, v);
#pragma unroll
        for (int t = 0; t < kMoeTile; ++t)
          if (t < nrows) accumulate(&xs[t][lane * kStride], v, acc[f][t]);
        if constexpr (kPair) {
          deq_chunk<DT>(W2, n0 + f, c, v);
#pragma unroll
          for (int t = 0; t < kMoeTile; ++t)
            if (t < nrows) accumulate(&xs[t][lane * kStride], v, acc2[f][t]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int f = 0; f < kFeatures; ++f) {
    const int n = n0 + f;
    if (n >= a.N) break;
#pragma unroll
    for (int t = 0; t < kMoeTile; ++t) {
      if (t >= nrows) break;
      const float s = warp_sum(acc[f][t]);
      const float s2 = kPair ? warp_sum(acc2[f][t]) : 0.f;
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
}

template <DType DT>
__global__ void __launch_bounds__(kWarps * 32) mm_kernel(MmArgs a) {
  __shared__ __align__(16) float xs[kMoeTile][kSegChunks * kStride];
  const int n = (blockIdx.x * kWarps + int(threadIdx.x / 32)) * kFeatures;
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

// F32 matrices up to this many rows (routers, small projections) take the
// block-per-row GEMV; larger ones fill the GPU with the warp-per-row one.
constexpr int64_t kGemvF32MaxRows = 4096;

// The int8-activation GEMV applies: asked for, a format it reads, x rows 16-byte aligned.
bool use_q8(bool int8_x, DType dt, const MmArgs& a) {
  return int8_x && gemv_q8_supports(dt, a.K) && reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 4 == 0;
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
            cudaStream_t s, bool int8_x) {
  MmArgs a = base_args(x, ldx, y, ldy, T, int(W.rows), int(W.cols));
  a.w = W;
  a.bias = bias;
  if (T == 1 && use_q8(int8_x, W.dtype, a)) return launch_gemv_q8(W.dtype, a, 1, s);
  if (T == 1 && W.rows <= kGemvF32MaxRows && launch_gemv_f32(a, s)) return;
  if (T == 1 && W.cols <= kGemvMaxK) return launch_gemv(W.dtype, a, 1, s);
  launch(W.dtype, a, dim3(unsigned((W.rows + kTileFeatures - 1) / kTileFeatures), unsigned((T + kMoeTile - 1) / kMoeTile)), s);
}

void matmul_swiglu(const DevMat& Wg, const DevMat& Wu, const float* x, int64_t ldx, int T, float* y, int64_t ldy,
                   cudaStream_t s, bool int8_x) {
  MmArgs a = base_args(x, ldx, y, ldy, T, int(Wg.rows), int(Wg.cols));
  a.w = Wg;
  a.w2 = Wu;
  if (T == 1 && use_q8(int8_x, Wg.dtype, a)) return launch_gemv_q8(Wg.dtype, a, 1, s);
  if (T == 1 && Wg.cols <= kGemvMaxK) return launch_gemv(Wg.dtype, a, 1, s);
  launch(Wg.dtype, a, dim3(unsigned((Wg.rows + kTileFeatures - 1) / kTileFeatures), unsigned((T + kMoeTile - 1) / kMoeTile)), s);
}

void matmul_grouped(DType dt, const DevMat* experts, const DevMat* experts2, const MoeTile* tiles, const int* ntiles,
                    int max_tiles, bool one_row_tiles, const float* x, int64_t ldx, const int* x_rows, float* y,
                    int64_t ldy, int N, int K, cudaStream_t s, bool int8_x) {
  MmArgs a = base_args(x, ldx, y, ldy, 0, N, K);
  a.ex = experts;
  a.ex2 = experts2;
  a.tiles = tiles;
  a.ntiles = ntiles;
  a.x_rows = x_rows;
  if (one_row_tiles && use_q8(int8_x, dt, a)) return launch_gemv_q8(dt, a, unsigned(max_tiles), s);
  if (one_row_tiles && K <= kGemvMaxK) return launch_gemv(dt, a, unsigned(max_tiles), s);
  launch(dt, a, dim3(unsigned((N + kTileFeatures - 1) / kTileFeatures), unsigned(max_tiles)), s);
}

bool moe_down_combine(DType dt, const DevMat* experts, const MoeTile* tiles, int k, const float* x, int64_t ldx,
                      const float* w, const float* shared, const float* shared_gate, float* out, int N, int K,
                      cudaStream_t s) {
  MmArgs a = base_args(x, ldx, out, N, 1, N, K);
  a.ex = experts;
  a.tiles = tiles;
  if (!down_combine_supports(dt, K, k) || reinterpret_cast<uintptr_t>(x) % 16 != 0 || ldx % 4 != 0) return false;
  launch_down_combine(dt, a, k, w, shared, shared_gate, s);
  return true;
}

bool matmul_q8_multi(int count, const DevMat* const* W, const float* const* bias, const float* x, float* const* y,
                     cudaStream_t s) {
  if (count < 1 || count > kMaxMulti || reinterpret_cast<uintptr_t>(x) % 16 != 0) return false;
  Q8Multi m{};
  m.count = count;
  for (int j = 0; j < count; ++j) {
    if (W[j]->cols != W[0]->cols || !gemv_q8_supports(W[j]->dtype, int(W[j]->cols))) return false;
    m.w[j] = *W[j];
    m.y[j] = y[j];
    m.bias[j] = bias[j];
  }
  launch_gemv_q8_multi(m, x, int(W[0]->cols), s);
  return true;
}

}  // namespace moeflux::cuda
