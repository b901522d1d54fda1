// The decode GEMV with int8 activations: see gemv_q8.h.
//
// Why: dequantizing every weight to f32 and multiplying in f32 costs about
// five instructions per weight, which at HBM speed (4.2 TB/s of 4.5-bit
// weights, ~7.5e12 weights/s) is more than the SMs issue, so the f32 GEMV
// (gemv.cu) reached 0.4-1 TB/s. Here x is rounded once per block to int8
// per 32 elements (a scale per 32, sums per 16, as llama.cpp's q8_1), and
// each lane takes a 32-weight unit of a block with the widest loads the
// block's alignment allows (16 bytes for Q4_K/Q5_K, 4-byte words for the
// others, built from 2-byte-aligned addresses with a funnel shift) and four
// codes per __dp4a; the block's scales and mins are applied once per 16 or
// 32 products in f32.
#include "backend/cuda/gemv_q8.h"

#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/matmul_internal.cuh"

namespace moeflux::cuda {

// The per-format code below is also host code (HD), so that it can be
// checked on a machine without a GPU against the reference dequantizers
// (scripts/check_gemv_q8_host.sh).
#define HD __host__ __device__ __forceinline__

namespace {

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 132;
    }
    return v;
  }();
  return n;
}

constexpr int kQ8Warps = 4;   // warps per block; a warp computes R rows
constexpr int kQ8MaxRows = 4;

// x rounded to int8 in shared memory: codes, a scale per 32, code sums per 16.
struct XQ {
  const int8_t* q;
  const float* d;
  const int* s16;
  HD int4 q16(int e) const { return *reinterpret_cast<const int4*>(q + e); }
};

HD float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
HD uint16_t ld16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
HD uint32_t ld32(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
HD int dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
  return __dp4a(a, b, c);
#else
  for (int i = 0; i < 4; ++i) c += int(int8_t(a >> (8 * i))) * int(int8_t(b >> (8 * i)));
  return c;
#endif
}
HD uint32_t funnel_r(uint32_t lo, uint32_t hi, uint32_t sh) {
#ifdef __CUDA_ARCH__
  return __funnelshift_r(lo, hi, sh);
#else
  return sh == 0 ? lo : uint32_t(((uint64_t(hi) << 32) | lo) >> sh);
#endif
}

// N words from a 2-byte-aligned address: aligned word loads (one more when
// the address is not 4-aligned) joined by a funnel shift. The extra word is
// loaded only when needed, so no byte past p + 4N is read.
template <int N>
HD void ld_words2(const uint8_t* p, uint32_t out[N]) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uint32_t* w = reinterpret_cast<const uint32_t*>(a & ~uintptr_t(3));
  const uint32_t sh = uint32_t(a & 2) * 8;
  uint32_t v[N + 1];
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = w[i];
  v[N] = sh ? w[N] : 0u;
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = funnel_r(v[i], v[i + 1], sh);
}

HD int dot16(const uint32_t w[4], int4 x) {
  int s = dp4a(int(w[0]), x.x, 0);
  s = dp4a(int(w[1]), x.y, s);
  s = dp4a(int(w[2]), x.z, s);
  return dp4a(int(w[3]), x.w, s);
}

// Byte i of the 12 scale bytes of a K-quant block, held in three words
// (selects, not an indexed array, so they stay in registers).
HD int sbyte(const uint32_t s[3], int i) {
  const uint32_t w = i < 4 ? s[0] : i < 8 ? s[1] : s[2];
  return int((w >> (8 * (i & 3))) & 0xFFu);
}
// Sub-block j's 6-bit scale and min (dequant.cpp's get_scale_min_k4).
HD void k4_sm(int j, const uint32_t s[3], int& sc, int& m) {
  if (j < 4) {
    sc = sbyte(s, j) & 63;
    m = sbyte(s, j + 4) & 63;
  } else {
    sc = (sbyte(s, j + 4) & 0xF) | ((sbyte(s, j - 4) >> 6) << 4);
    m = (sbyte(s, j + 4) >> 4) | ((sbyte(s, j) >> 6) << 4);
  }
}

// Format traits: elements per block, bytes per block, 32-weight units per
// block, and dot(): one unit of block b of a row against x.
template <DType DT>
struct Q8Fmt;

template <>
struct Q8Fmt<DType::Q4_0> {
  static constexpr int kElems = 32, kBytes = 18, kUnits = 1;
  HD static float dot(const uint8_t* row, int b, int, const XQ& x) {
    const uint8_t* p = row + b * kBytes;
    uint32_t q[4], lo[4], hi[4];
    ld_words2<4>(p + 2, q);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo[i] = q[i] & 0x0F0F0F0Fu;
      hi[i] = (q[i] >> 4) & 0x0F0F0F0Fu;
    }
    const int e = b * 32;
    const int s = dot16(lo, x.q16(e)) + dot16(hi, x.q16(e + 16));
    return h2f(ld16(p)) * x.d[b] * float(s - 8 * (x.s16[2 * b] + x.s16[2 * b + 1]));
  }
};

template <>
struct Q8Fmt<DType::Q4_1> {
  static constexpr int kElems = 32, kBytes = 20, kUnits = 1;
  HD static float dot(const uint8_t* row, int b, int, const XQ& x) {
    const uint8_t* p = row + b * kBytes;  // 4-aligned
    const uint32_t dm = ld32(p);
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t q = ld32(p + 4 + 4 * i);
      lo[i] = q & 0x0F0F0F0Fu;
      hi[i] = (q >> 4) & 0x0F0F0F0Fu;
    }
    const int e = b * 32;
    const int s = dot16(lo, x.q16(e)) + dot16(hi, x.q16(e + 16));
    const float dx = x.d[b];
    return dx * (h2f(uint16_t(dm)) * float(s) + h2f(uint16_t(dm >> 16)) * float(x.s16[2 * b] + x.s16[2 * b + 1]));
  }
};

// Q5_0/Q5_1: the fifth bit of element j is bit j of qh; spread four of them
// to bit 4 of four bytes.
HD uint32_t spread4(uint32_t h) {
  return ((h << 4) & 0x10u) | ((h << 11) & 0x1000u) | ((h << 18) & 0x100000u) | ((h << 25) & 0x10000000u);
}

template <>
struct Q8Fmt<DType::Q5_0> {
  static constexpr int kElems = 32, kBytes = 22, kUnits = 1;
  HD static float dot(const uint8_t* row, int b, int, const XQ& x) {
    const uint8_t* p = row + b * kBytes;
    uint32_t w[5], lo[4], hi[4];
    ld_words2<5>(p + 2, w);  // qh, then the 16 code bytes
    const uint32_t qh = w[0];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo[i] = (w[1 + i] & 0x0F0F0F0Fu) | spread4(qh >> (4 * i));
      hi[i] = ((w[1 + i] >> 4) & 0x0F0F0F0Fu) | spread4(qh >> (16 + 4 * i));
    }
    const int e = b * 32;
    const int s = dot16(lo, x.q16(e)) + dot16(hi, x.q16(e + 16));
    return h2f(ld16(p)) * x.d[b] * float(s - 16 * (x.s16[2 * b] + x.s16[2 * b + 1]));
  }
};

template <>
struct Q8Fmt<DType::Q5_1> {
  static constexpr int kElems = 32, kBytes = 24, kUnits = 1;
  HD static float dot(const uint8_t* row, int b, int, const XQ& x) {
    const uint8_t* p = row + b * kBytes;  // 8-aligned
    const uint32_t dm = ld32(p), qh = ld32(p + 4);
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t q = ld32(p + 8 + 4 * i);
      lo[i] = (q & 0x0F0F0F0Fu) | spread4(qh >> (4 * i));
      hi[i] = ((q >> 4) & 0x0F0F0F0Fu) | spread4(qh >> (16 + 4 * i));
    }
    const int e = b * 32;
    const int s = dot16(lo, x.q16(e)) + dot16(hi, x.q16(e + 16));
    const float dx = x.d[b];
    return dx * (h2f(uint16_t(dm)) * float(s) + h2f(uint16_t(dm >> 16)) * float(x.s16[2 * b] + x.s16[2 * b + 1]));
  }
};

template <>
struct Q8Fmt<DType::Q8_0> {
  static constexpr int kElems = 32, kBytes = 34, kUnits = 1;
  HD static float dot(const uint8_t* row, int b, int, const XQ& x) {
    const uint8_t* p = row + b * kBytes;
    uint32_t q[8];
    ld_words2<8>(p + 2, q);
    const int e = b * 32;
    const int s = dot16(q, x.q16(e)) + dot16(q + 4, x.q16(e + 16));
    return h2f(ld16(p)) * x.d[b] * float(s);
  }
};

// Q4_K / Q5_K: unit u takes 16 code bytes of group g = u / 2 (its low
// nibbles are sub-block 2g, its high nibbles sub-block 2g + 1), elements
// [16 * (u % 2), +16) of both sub-blocks. Blocks of 144/176 bytes in rows
// that start 16-aligned: 16-byte loads.
template <DType DT>
struct Q8FmtK45 {
  static constexpr bool k5 = DT == DType::Q5_K;
  static constexpr int kElems = 256, kBytes = k5 ? 176 : 144, kUnits = 8;
  HD static float dot(const uint8_t* row, int b, int u, const XQ& x) {
    const uint8_t* p = row + b * kBytes;
    const int g = u >> 1, half = u & 1;
    const uint4 qv = *reinterpret_cast<const uint4*>(p + (k5 ? 48 : 16) + g * 32 + half * 16);
    const uint32_t dm = ld32(p);
    const uint32_t sw[3] = {ld32(p + 4), ld32(p + 8), ld32(p + 12)};
    const uint32_t q[4] = {qv.x, qv.y, qv.z, qv.w};
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo[i] = q[i] & 0x0F0F0F0Fu;
      hi[i] = (q[i] >> 4) & 0x0F0F0F0Fu;
    }
    if constexpr (k5) {
      const uint4 hv = *reinterpret_cast<const uint4*>(p + 16 + half * 16);
      const uint32_t h[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        lo[i] |= ((h[i] >> (2 * g)) & 0x01010101u) << 4;
        hi[i] |= ((h[i] >> (2 * g + 1)) & 0x01010101u) << 4;
      }
    }
    int sc0, m0, sc1, m1;
    k4_sm(2 * g, sw, sc0, m0);
    k4_sm(2 * g + 1, sw, sc1, m1);
    const int e0 = b * 256 + 64 * g + 16 * half, e1 = e0 + 32;
    const int s0 = dot16(lo, x.q16(e0)), s1 = dot16(hi, x.q16(e1));
    const float d = h2f(uint16_t(dm)), dmin = h2f(uint16_t(dm >> 16));
    const float dx0 = x.d[e0 >> 5], dx1 = x.d[e1 >> 5];
    return d * (dx0 * float(sc0 * s0) + dx1 * float(sc1 * s1)) -
           dmin * (dx0 * float(m0 * x.s16[e0 >> 4]) + dx1 * float(m1 * x.s16[e1 >> 4]));
  }
};
template <>
struct Q8Fmt<DType::Q4_K> : Q8FmtK45<DType::Q4_K> {};
template <>
struct Q8Fmt<DType::Q5_K> : Q8FmtK45<DType::Q5_K> {};

// Q6_K: unit u = (half h = u / 4, part p = u % 4) takes ql bytes
// [64h + 16p, +16) (low nibbles: elements 128h + 16p + [0, 16), high
// nibbles: 64 further) and the qh bytes of those elements. Blocks are 210
// bytes: 2-aligned word loads.
template <>
struct Q8Fmt<DType::Q6_K> {
  static constexpr int kElems = 256, kBytes = 210, kUnits = 8;
  HD static float dot(const uint8_t* row, int b, int u, const XQ& x) {
    const uint8_t* p = row + b * kBytes;
    const int h = u >> 2, part = u & 3;
    uint32_t ql[4], qh[4], lo[4], hi[4];
    ld_words2<4>(p + 64 * h + 16 * part, ql);
    ld_words2<4>(p + 128 + 32 * h + 16 * (part & 1), qh);
    const int sh = 2 * (part >> 1);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo[i] = (ql[i] & 0x0F0F0F0Fu) | (((qh[i] >> sh) & 0x03030303u) << 4);
      hi[i] = ((ql[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> (sh + 4)) & 0x03030303u) << 4);
    }
    const int sc0 = int8_t(p[192 + 8 * h + part]), sc1 = int8_t(p[192 + 8 * h + 4 + part]);
    const int e0 = b * 256 + 128 * h + 16 * part, e1 = e0 + 64;
    const int s0 = dot16(lo, x.q16(e0)) - 32 * x.s16[e0 >> 4];
    const int s1 = dot16(hi, x.q16(e1)) - 32 * x.s16[e1 >> 4];
    return h2f(ld16(p + 208)) * (x.d[e0 >> 5] * float(sc0 * s0) + x.d[e1 >> 5] * float(sc1 * s1));
  }
};

// Shared bytes of one int8 x row (codes, scales, sums), rounded up to 16 so
// that rows laid one after another keep their codes 16-byte aligned.
HD int xq_bytes(int K) { return (K + (K / 32) * 4 + (K / 16) * 4 + 15) & ~15; }

// x rows -> XQ in shared memory (row j at sm + j * xq_bytes(K)): 8 lanes
// per 32-element group, 4 elements each. Whole warps iterate (the shuffles
// need every lane; lanes past the end hold zeros and write nothing), and
// each thread issues the loads of kBatch steps before it uses any, so the
// block waits for about one L2 round trip, not one per step (a block of
// the MoE down projection quantizes 8 rows).
constexpr int kBatch = 4;
__device__ void quantize_rows(const float* x, int64_t ldx, int rows, int K, uint8_t* sm) {
  const int per_row = (K / 32) * 8, n = rows * per_row, lane = threadIdx.x & 31;
  const int xb = xq_bytes(K);
  const int stride = int(blockDim.x);
  for (int base = int(threadIdx.x) - lane; base < n; base += kBatch * stride) {
    float4 v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * stride + lane;
      const int row = i / per_row, rem = i - row * per_row;
      v[u] = i < n ? *reinterpret_cast<const float4*>(x + row * ldx + rem * 4) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (base + u * stride >= n) break;  // warp-uniform
      const int i = base + u * stride + lane;
      const int row = i / per_row, rem = i - row * per_row, g = rem >> 3, sub = rem & 7;
      float amax = fmaxf(fmaxf(fabsf(v[u].x), fabsf(v[u].y)), fmaxf(fabsf(v[u].z), fabsf(v[u].w)));
#pragma unroll
      for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      const float id = amax > 0.f ? 127.f / amax : 0.f;
      const int a = __float2int_rn(v[u].x * id), b = __float2int_rn(v[u].y * id), c = __float2int_rn(v[u].z * id),
                e = __float2int_rn(v[u].w * id);
      int s = a + b + c + e;
#pragma unroll
      for (int o = 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (i >= n) continue;
      uint8_t* o8 = sm + row * xb;
      *reinterpret_cast<char4*>(o8 + g * 32 + sub * 4) = make_char4(char(a), char(b), char(c), char(e));
      if ((sub & 3) == 0) reinterpret_cast<int*>(o8 + K + (K / 32) * 4)[g * 2 + (sub >> 2)] = s;
      if (sub == 0) reinterpret_cast<float*>(o8 + K)[g] = amax / 127.f;
    }
  }
}
__device__ __forceinline__ void quantize_x(const float* xr, int K, uint8_t* sm) { quantize_rows(xr, 0, 1, K, sm); }

// Rows [0, N) of W (with W2: silu(x W) * (x W2)) against the int8 x, warp
// by warp: block `block` of `nblocks` takes rows of R per warp, striding.
template <DType DT>
__device__ __forceinline__ void gemv_rows(const DevMat& W, const DevMat& W2, bool pair, const float* bias, float* y,
                                          int N, int K, int R, int block, int nblocks, const XQ& x) {
  using F = Q8Fmt<DT>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int upr = (K / F::kElems) * F::kUnits;  // units per row
  const int rows_per_block = kQ8Warps * R;
  for (int n0 = (block * kQ8Warps + warp) * R; n0 < N; n0 += nblocks * rows_per_block) {
    const int nr = min(R, N - n0);
    float acc[kQ8MaxRows] = {}, acc2[kQ8MaxRows] = {};
    const int total = nr * upr;
#pragma unroll 2
    for (int i = lane; i < total; i += 32) {
      const int r = i / upr, u = i - r * upr;
      const int b = u / F::kUnits, uu = u % F::kUnits;
      const float v = F::dot(W.data + int64_t(n0 + r) * int64_t(W.row_bytes), b, uu, x);
      float v2 = 0.f;
      if (pair) v2 = F::dot(W2.data + int64_t(n0 + r) * int64_t(W2.row_bytes), b, uu, x);
#pragma unroll
      for (int rr = 0; rr < kQ8MaxRows; ++rr)
        if (rr == r) {
          acc[rr] += v;
          acc2[rr] += v2;
        }
    }
#pragma unroll
    for (int rr = 0; rr < kQ8MaxRows; ++rr) {
      if (rr >= nr) break;
      const float s = warp_sum(acc[rr]);
      const float s2 = pair ? warp_sum(acc2[rr]) : 0.f;
      if (lane == 0) {
        const int n = n0 + rr;
        y[n] = pair ? s / (1.0f + expf(-s)) * s2 : s + (bias ? bias[n] : 0.f);
      }
    }
  }
}

template <DType DT>
__global__ void __launch_bounds__(kQ8Warps * 32) gemv_q8_kernel(MmArgs a, int R) {
  extern __shared__ __align__(16) uint8_t sm[];
  const int K = a.K;
  int8_t* xq = reinterpret_cast<int8_t*>(sm);
  float* xd = reinterpret_cast<float*>(sm + K);
  int* xs = reinterpret_cast<int*>(sm + K + (K / 32) * 4);
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
  quantize_x(a.x + xrow * a.ldx, K, sm);
  __syncthreads();
  gemv_rows<DT>(W, W2, pair, a.bias, a.y + yrow * a.ldy, a.N, K, R, int(blockIdx.x), int(gridDim.x), XQ{xq, xd, xs});
}

// Several matrices of one width over the same x (a layer's q, k and v;
// each in its own integer-coded format): blocks [first[j], first[j + 1])
// compute matrix j.
__global__ void __launch_bounds__(kQ8Warps * 32) gemv_q8_multi_kernel(Q8Multi m, const float* xr, int K) {
  extern __shared__ __align__(16) uint8_t sm[];
  int8_t* xq = reinterpret_cast<int8_t*>(sm);
  float* xd = reinterpret_cast<float*>(sm + K);
  int* xs = reinterpret_cast<int*>(sm + K + (K / 32) * 4);
  quantize_x(xr, K, sm);
  __syncthreads();
  int j = 0;
  while (j + 1 < m.count && int(blockIdx.x) >= m.first[j + 1]) ++j;
  const XQ x{xq, xd, xs};
  const DevMat& W = m.w[j];
  const int block = int(blockIdx.x) - m.first[j], nblocks = m.first[j + 1] - m.first[j];
  switch (W.dtype) {
#define MOEFLUX_ROWS(T)                                                                                       \
  case DType::T:                                                                                              \
    gemv_rows<DType::T>(W, W, false, m.bias[j], m.y[j], int(W.rows), K, m.R[j], block, nblocks, x);          \
    break;
    MOEFLUX_ROWS(Q4_0)
    MOEFLUX_ROWS(Q4_1)
    MOEFLUX_ROWS(Q5_0)
    MOEFLUX_ROWS(Q5_1)
    MOEFLUX_ROWS(Q8_0)
    MOEFLUX_ROWS(Q4_K)
    MOEFLUX_ROWS(Q5_K)
    MOEFLUX_ROWS(Q6_K)
#undef MOEFLUX_ROWS
    default: break;
  }
}

// Rows per warp for rows of `upr` units: enough that the warp's lanes are
// busy on every step (32 / gcd(upr, 32), at most 4).
int rows_per_warp(int upr) {
  int R = 1;
  while (R < kQ8MaxRows && (upr * R) % 32 != 0) R *= 2;
  return R;
}

int units_per_row(DType dt, int K) {
  switch (dt) {
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return K / 256 * 8;
    default:
      return K / 32;
  }
}

template <DType DT>
void launch_q8(const MmArgs& a, unsigned tiles, cudaStream_t s) {
  using F = Q8Fmt<DT>;
  const int upr = (a.K / F::kElems) * F::kUnits;
  const int R = rows_per_warp(upr);
  const int rows_per_block = kQ8Warps * R;
  // One pass over the rows when that is at most ~8 blocks per SM; beyond
  // it (the lm_head) blocks loop over rows, so x is quantized fewer times.
  unsigned gx = unsigned((a.N + rows_per_block - 1) / rows_per_block);
  const unsigned cap = std::max(1u, unsigned(sm_count()) * 8 / tiles);
  if (gx > cap) gx = cap;
  const size_t smem = size_t(xq_bytes(a.K));
  gemv_q8_kernel<DT><<<dim3(gx, tiles), kQ8Warps * 32, smem, s>>>(a, R);
}

// The MoE down projection of one token and the weighted combine in one
// launch: x holds the k experts' activations (row j: tile j, choice j, as
// route_one_token lays them out), and out[n] = sum_j w[j] * (x_j . W_j[n])
// (+ sigmoid(shared_gate) * shared[n]). A warp takes one output feature and
// strides over the k experts' units of it, so its lanes stay busy on the
// short rows (K = the expert FFN width) of a down projection.
template <DType DT>
__global__ void __launch_bounds__(kQ8Warps * 32)
    down_combine_kernel(MmArgs a, int k, const float* w, const float* shared, const float* shared_gate) {
  using F = Q8Fmt<DT>;
  extern __shared__ __align__(16) uint8_t sm[];
  const int K = a.K;
  const int xbytes = xq_bytes(K);
  __shared__ const uint8_t* base[kMaxCombineExperts];
  __shared__ uint64_t rbytes[kMaxCombineExperts];
  __shared__ float wj[kMaxCombineExperts];
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    const DevMat& m = a.ex[a.tiles[j].expert];
    base[j] = m.data;
    rbytes[j] = m.row_bytes;
    wj[j] = w[j];
  }
  quantize_rows(a.x, a.ldx, k, K, sm);
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int upr = (K / F::kElems) * F::kUnits;
  const int total = k * upr;
  const float g = shared ? (shared_gate ? 1.0f / (1.0f + expf(-shared_gate[0])) : 1.0f) : 0.f;
  for (int n = int(blockIdx.x) * kQ8Warps + warp; n < a.N; n += int(gridDim.x) * kQ8Warps) {
    float acc = 0.f;
#pragma unroll 2
    for (int i = lane; i < total; i += 32) {
      const int j = i / upr, u = i - j * upr;
      const uint8_t* o = sm + j * xbytes;
      const XQ x{reinterpret_cast<const int8_t*>(o), reinterpret_cast<const float*>(o + K),
                 reinterpret_cast<const int*>(o + K + (K / 32) * 4)};
      acc += wj[j] * F::dot(base[j] + int64_t(n) * int64_t(rbytes[j]), u / F::kUnits, u % F::kUnits, x);
    }
    acc = warp_sum(acc);
    if (lane == 0) a.y[n] = acc + (shared ? g * shared[n] : 0.f);
  }
}

template <DType DT>
void launch_down_combine(const MmArgs& a, int k, const float* w, const float* shared, const float* shared_gate,
                         cudaStream_t s) {
  unsigned gx = unsigned((a.N + kQ8Warps - 1) / kQ8Warps);
  gx = std::min(gx, unsigned(sm_count()) * 4);
  const size_t smem = size_t(k) * size_t(xq_bytes(a.K));
  down_combine_kernel<DT><<<gx, kQ8Warps * 32, smem, s>>>(a, k, w, shared, shared_gate);
}

}  // namespace

bool down_combine_supports(DType dt, int K, int k) {
  return k > 0 && k <= kMaxCombineExperts && gemv_q8_supports(dt, K) &&
         int64_t(k) * xq_bytes(K) <= 40 * 1024;
}

void launch_down_combine(DType dt, const MmArgs& a, int k, const float* w, const float* shared,
                         const float* shared_gate, cudaStream_t s) {
  if (a.N == 0) return;
  switch (dt) {
#define MOEFLUX_DOWN(T) \
  case DType::T: launch_down_combine<DType::T>(a, k, w, shared, shared_gate, s); break;
    MOEFLUX_DOWN(Q4_0)
    MOEFLUX_DOWN(Q4_1)
    MOEFLUX_DOWN(Q5_0)
    MOEFLUX_DOWN(Q5_1)
    MOEFLUX_DOWN(Q8_0)
    MOEFLUX_DOWN(Q4_K)
    MOEFLUX_DOWN(Q5_K)
    MOEFLUX_DOWN(Q6_K)
#undef MOEFLUX_DOWN
    default: break;
  }
}

void launch_gemv_q8_multi(const Q8Multi& mm, const float* x, int K, cudaStream_t s) {
  if (mm.count <= 0) return;
  Q8Multi m = mm;
  m.first[0] = 0;
  for (int j = 0; j < m.count; ++j) {
    m.R[j] = rows_per_warp(units_per_row(m.w[j].dtype, K));
    const int64_t rows = kQ8Warps * m.R[j];
    m.first[j + 1] = m.first[j] + int(std::min<int64_t>((m.w[j].rows + rows - 1) / rows, sm_count() * 8));
  }
  gemv_q8_multi_kernel<<<unsigned(m.first[m.count]), kQ8Warps * 32, size_t(xq_bytes(K)), s>>>(m, x, K);
}

bool gemv_q8_supports(DType dt, int K) {
  if (K <= 0 || K > kGemvQ8MaxK) return false;
  switch (dt) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
      return K % 32 == 0;
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return K % 256 == 0;
    default:
      return false;
  }
}

void launch_gemv_q8(DType dt, const MmArgs& a, unsigned tiles, cudaStream_t s) {
  if (tiles == 0 || a.N == 0) return;
  switch (dt) {
#define MOEFLUX_GEMV_Q8(T) \
  case DType::T: launch_q8<DType::T>(a, tiles, s); break;
    MOEFLUX_GEMV_Q8(Q4_0)
    MOEFLUX_GEMV_Q8(Q4_1)
    MOEFLUX_GEMV_Q8(Q5_0)
    MOEFLUX_GEMV_Q8(Q5_1)
    MOEFLUX_GEMV_Q8(Q8_0)
    MOEFLUX_GEMV_Q8(Q4_K)
    MOEFLUX_GEMV_Q8(Q5_K)
    MOEFLUX_GEMV_Q8(Q6_K)
#undef MOEFLUX_GEMV_Q8
    default: break;
  }
}

}  // namespace moeflux::cuda
