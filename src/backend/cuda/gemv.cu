// The decode GEMV: see matmul.h.
#include "backend/cuda/formats.cuh"
#include "backend/cuda/matmul_internal.cuh"

namespace moeflux::cuda {

namespace {

// Decode (one row of x per launch or per tile): x staged once per block
// for 8 warps x rows_per_warp output features, so that staging, which reads
// all of x, is amortized over many rows' weights; small matrices (routers,
// KV projections) take one feature per warp so that they still fill the GPU.
constexpr int kGemvWarps = 8;

template <DType DT>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(MmArgs a) {
  extern __shared__ __align__(16) float xv[];
  DevMat W, W2;
  int64_t xrow, yrow;
  bool pair;
  if (a.ex) {
    if (int(blockIdx.y) >= *a.ntiles) return;  // the whole block
    const MoeTile t = a.tiles[blockIdx.y];
    W = a.ex[t.expert];
    pair = a.ex2 != nullptr;
    if (pair) W2 = a.ex2[t.expert];
    xrow = a.x_rows ? a.x_rows[t.row0] : t.row0;
    yrow = t.row0;
  } else {
    W = a.w;
    W2 = a.w2;
    pair = a.w2.data != nullptr;
    xrow = yrow = 0;
  }
  const int chunks = (a.K + 31) / 32;
  const float* xr = a.x + xrow * a.ldx;
  for (int i = threadIdx.x; i < chunks * 32; i += blockDim.x) xv[(i / 32) * kStride + i % 32] = i < a.K ? xr[i] : 0.f;
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int rpw = a.rows_per_warp;
  for (int r = 0; r < rpw; ++r) {
    const int n = (int(blockIdx.x) * kGemvWarps + warp) * rpw + r;
    if (n >= a.N) break;
    float acc = 0.f, acc2 = 0.f;
    for (int c = lane; c < chunks; c += 32) {
      float v[32];
      deq_chunk<DT>(W, n, c, v);
      accumulate(&xv[c * kStride], v, acc);
      if (pair) {
        deq_chunk<DT>(W2, n, c, v);
        accumulate(&xv[c * kStride], v, acc2);
      }
    }
    acc = warp_sum(acc);
    if (pair) acc2 = warp_sum(acc2);
    if (lane == 0)
      a.y[yrow * a.ldy + n] = pair ? acc / (1.0f + expf(-acc)) * acc2 : acc + (a.bias ? a.bias[n] : 0.f);
  }
}

// F32 weights, one row of x: a block per output feature, its warps
// splitting K and its lanes reading 16 bytes each, coalesced (the router:
// few rows, where one warp per row leaves most of the GPU idle).
constexpr int kF32Warps = 4;
__global__ void __launch_bounds__(kF32Warps * 32) gemv_f32_kernel(MmArgs a) {
  const int n = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const float4* w = reinterpret_cast<const float4*>(a.w.data + int64_t(n) * int64_t(a.w.row_bytes));
  const float4* x = reinterpret_cast<const float4*>(a.x);
  const int k4 = a.K / 4;
  float acc = 0.f;
#pragma unroll 4
  for (int i = threadIdx.x; i < k4; i += kF32Warps * 32) {
    const float4 wv = w[i], xv = x[i];
    acc += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
  }
  acc = warp_sum(acc);
  __shared__ float part[kF32Warps];
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.f;
    for (int i = 0; i < kF32Warps; ++i) s += part[i];
    a.y[n] = s + (a.bias ? a.bias[n] : 0.f);
  }
}

}  // namespace

bool launch_gemv_f32(const MmArgs& a, cudaStream_t s) {
  if (a.w.dtype != DType::F32 || a.w2.data || a.ex || a.K % 4 != 0 || a.w.row_bytes % 16 != 0 ||
      reinterpret_cast<uintptr_t>(a.x) % 16 != 0 || reinterpret_cast<uintptr_t>(a.w.data) % 16 != 0)
    return false;
  if (a.N > 0) gemv_f32_kernel<<<unsigned(a.N), kF32Warps * 32, 0, s>>>(a);
  return true;
}

void launch_gemv(DType dt, const MmArgs& args, unsigned tiles, cudaStream_t s) {
  // The most features per warp that still gives about 4 blocks per SM of an
  // H100/H200 (132 SMs) over all tiles.
  MmArgs a = args;
  a.rows_per_warp = 1;
  for (int rpw : {4, 2})
    if (int64_t((a.N + kGemvWarps * rpw - 1) / (kGemvWarps * rpw)) * tiles >= 4 * 132) {
      a.rows_per_warp = rpw;
      break;
    }
  const int rows = kGemvWarps * a.rows_per_warp;
  const dim3 grid(unsigned((a.N + rows - 1) / rows), tiles);
  if (grid.x == 0 || grid.y == 0) return;
  const size_t smem = size_t((a.K + 31) / 32) * kStride * sizeof(float);
  switch (dt) {
#define MOEFLUX_GEMV(T)                                                \
  case DType::T:                                                       \
    gemv_kernel<DType::T><<<grid, kGemvWarps * 32, smem, s>>>(a);      \
    break;
    MOEFLUX_GEMV(F32)
    MOEFLUX_GEMV(F16)
    MOEFLUX_GEMV(BF16)
    MOEFLUX_GEMV(Q4_0)
    MOEFLUX_GEMV(Q4_1)
    MOEFLUX_GEMV(Q5_0)
    MOEFLUX_GEMV(Q5_1)
    MOEFLUX_GEMV(Q8_0)
    MOEFLUX_GEMV(Q2_K)
    MOEFLUX_GEMV(Q3_K)
    MOEFLUX_GEMV(Q4_K)
    MOEFLUX_GEMV(Q5_K)
    MOEFLUX_GEMV(Q6_K)
    MOEFLUX_GEMV(MXFP4)
    MOEFLUX_GEMV(MLX)
#undef MOEFLUX_GEMV
    default: break;
  }
}

}  // namespace moeflux::cuda
