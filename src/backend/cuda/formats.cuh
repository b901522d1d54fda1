// Device dequantizers: 32 consecutive elements (a "chunk") of one row of a
// weight matrix in any stored format, as f32. Every format moeflux loads
// has rows made of whole chunks (legacy GGML blocks and MXFP4 are one
// chunk, K-quant super-blocks eight, MLX groups one to four), except the
// float formats, whose last chunk may be partial: elements past the row
// are zero. The arithmetic follows the reference dequantizers in
// src/quant/dequant.cpp (and mlx_affine.cpp) element for element; the
// device may fuse a product and a sum into one FMA, so values can differ
// from the reference in the last bit.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/dev_types.h"

namespace moeflux::cuda {

__device__ __forceinline__ float f16_at(const uint8_t* p) {
  return __half2float(__ushort_as_half(uint16_t(p[0] | (uint16_t(p[1]) << 8))));
}
__device__ __forceinline__ float bf16_bits(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ __forceinline__ float scale_at(const uint8_t* base, int64_t i, DType t) {
  if (t == DType::F32) return reinterpret_cast<const float*>(base)[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(base)[i];
  return t == DType::BF16 ? bf16_bits(h) : __half2float(__ushort_as_half(h));
}
// Half of 2^(e - 127) (ggml_e8m0_to_fp32_half), exact for every e.
__device__ __forceinline__ float e8m0_half(uint8_t e) {
  return __uint_as_float(e < 2 ? (0x00200000u << e) : (uint32_t(e - 1) << 23));
}

__device__ __forceinline__ void k4_scale_min(int j, const uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// v[0..32) = elements [32c, 32c + 32) of row `row` of w.
template <DType DT>
__device__ __forceinline__ void deq_chunk(const DevMat& w, int64_t row, int c, float v[32]) {
  const uint8_t* r = w.data + row * int64_t(w.row_bytes);
  if constexpr (DT == DType::F32 || DT == DType::F16 || DT == DType::BF16) {
    const int64_t e0 = int64_t(c) * 32;
    const int n = w.cols - e0 >= 32 ? 32 : int(w.cols - e0);
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      float x = 0.f;
      if (i < n) {
        if constexpr (DT == DType::F32)
          x = reinterpret_cast<const float*>(r)[e0 + i];
        else if constexpr (DT == DType::F16)
          x = __half2float(reinterpret_cast<const __half*>(r)[e0 + i]);
        else
          x = bf16_bits(reinterpret_cast<const uint16_t*>(r)[e0 + i]);
      }
      v[i] = x;
    }
  } else if constexpr (DT == DType::Q4_0) {
    const uint8_t* b = r + c * 18;
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = b[2 + j];
      v[j] = d * float((q & 0xF) - 8);
      v[j + 16] = d * float((q >> 4) - 8);
    }
  } else if constexpr (DT == DType::Q4_1) {
    const uint8_t* b = r + c * 20;
    const float d = f16_at(b), m = f16_at(b + 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = b[4 + j];
      v[j] = d * float(q & 0xF) + m;
      v[j + 16] = d * float(q >> 4) + m;
    }
  } else if constexpr (DT == DType::Q5_0 || DT == DType::Q5_1) {
    constexpr int kBytes = DT == DType::Q5_0 ? 22 : 24, kQh = DT == DType::Q5_0 ? 2 : 4;
    const uint8_t* b = r + c * kBytes;
    const float d = f16_at(b), m = DT == DType::Q5_1 ? f16_at(b + 2) : 0.f;
    const uint32_t qh = uint32_t(b[kQh]) | (uint32_t(b[kQh + 1]) << 8) | (uint32_t(b[kQh + 2]) << 16) |
                        (uint32_t(b[kQh + 3]) << 24);
    const uint8_t* qs = b + kQh + 4;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const int lo = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
      const int q = lo | int(((qh >> j) & 1u) << 4);
      if constexpr (DT == DType::Q5_0)
        v[j] = d * float(q - 16);
      else
        v[j] = d * float(q) + m;
    }
  } else if constexpr (DT == DType::Q8_0) {
    const uint8_t* b = r + c * 34;
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = float(int8_t(b[2 + j])) * d;
  } else if constexpr (DT == DType::MXFP4) {
    constexpr int8_t kVals[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    const uint8_t* b = r + c * 17;
    const float d = e8m0_half(b[0]);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = b[1 + j];
      v[j] = d * float(kVals[q & 0xF]);
      v[j + 16] = d * float(kVals[q >> 4]);
    }
  } else if constexpr (DT == DType::Q2_K) {
    const uint8_t* b = r + (c / 8) * 84;
    const int j = c % 8;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    const uint8_t* qs = b + 16 + (j / 4) * 32;
    const int shift = 2 * (j % 4);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int s = b[2 * j + h];
      const float dl = d * float(s & 0xF), ml = dmin * float(s >> 4);
#pragma unroll
      for (int l = 0; l < 16; ++l) v[h * 16 + l] = dl * float((qs[h * 16 + l] >> shift) & 3) - ml;
    }
  } else if constexpr (DT == DType::Q3_K) {
    const uint8_t* b = r + (c / 8) * 110;
    const int j = c % 8;
    const float d = f16_at(b + 108);
    const uint8_t* hm = b;
    const uint8_t* qs = b + 32 + (j / 4) * 32;
    const uint8_t* sc = b + 96;
    const int shift = 2 * (j % 4);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int s = 2 * j + h;
      const int lo = s < 8 ? (sc[s] & 0xF) : (sc[s - 8] >> 4);
      const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
      const float dl = d * float((lo | (hi << 4)) - 32);
#pragma unroll
      for (int l = 0; l < 16; ++l) {
        const int e = h * 16 + l;
        const int q = (qs[e] >> shift) & 3;
        const int hb = (hm[e] >> j) & 1;
        v[e] = dl * float(q - (hb ? 0 : 4));
      }
    }
  } else if constexpr (DT == DType::Q4_K || DT == DType::Q5_K) {
    constexpr int kBytes = DT == DType::Q4_K ? 144 : 176;
    const uint8_t* b = r + (c / 8) * kBytes;
    const int j = c % 8;
    const float d = f16_at(b), dmin = f16_at(b + 2);
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const float dl = d * float(sc), ml = dmin * float(m);
    // Blocks are 144/176 bytes and rows whole blocks from a 256-aligned
    // base, so the 32 code bytes are 16-byte aligned: two vector loads.
    const uint4* qs = reinterpret_cast<const uint4*>(b + (DT == DType::Q4_K ? 16 : 48) + (j / 2) * 32);
    const uint4 q0 = qs[0], q1 = qs[1];
    const uint32_t words[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
    const int shift = 4 * (j % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int q = (words[l / 4] >> (8 * (l % 4) + shift)) & 0xF;
      if constexpr (DT == DType::Q5_K) q |= ((b[16 + l] >> j) & 1) << 4;
      v[l] = dl * float(q) - ml;
    }
  } else if constexpr (DT == DType::Q6_K) {
    const uint8_t* b = r + (c / 8) * 210;
    const int j = c % 8, h = j / 4, jj = j % 4;
    const float d = f16_at(b + 208);
    const uint8_t* ql = b + h * 64 + (jj % 2) * 32;
    const uint8_t* qh = b + 128 + h * 32;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int lo = jj < 2 ? (ql[l] & 0xF) : (ql[l] >> 4);
      const int hi = (qh[l] >> (2 * jj)) & 3;
      v[l] = d * float(sc[2 * j + l / 16]) * float((lo | (hi << 4)) - 32);
    }
  } else if constexpr (DT == DType::MLX) {
    // 32 values of `bits` bits are exactly `bits` whole words of the row's bit stream.
    const int bits = w.bits;
    const uint32_t* wd = reinterpret_cast<const uint32_t*>(r) + c * bits;
    const int64_t groups = w.cols / w.group;
    const int64_t g = int64_t(c) * 32 / w.group;
    const float s = scale_at(w.scales, row * groups + g, w.scale_dtype);
    const float bi = scale_at(w.biases, row * groups + g, w.scale_dtype);
    if (bits == 4 || bits == 8 || bits == 2) {  // values never straddle words: shifts known at compile time
#pragma unroll
      for (int l = 0; l < 32; ++l) {
        uint32_t q;
        if (bits == 4)
          q = (wd[l / 8] >> (4 * (l % 8))) & 0xFu;
        else if (bits == 8)
          q = (wd[l / 4] >> (8 * (l % 4))) & 0xFFu;
        else
          q = (wd[l / 16] >> (2 * (l % 16))) & 3u;
        v[l] = s * float(q) + bi;
      }
      return;
    }
    const uint32_t mask = (1u << bits) - 1;
    uint32_t words[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) words[i] = i < bits ? wd[i] : 0u;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int bit = l * bits, wi = bit >> 5, sh = bit & 31;
      uint32_t q = 0;
      // Unrolled word selection keeps `words` in registers.
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (i == wi) q = (words[i] >> sh) | (sh + bits > 32 && i + 1 < 8 ? words[(i + 1) & 7] << (32 - sh) : 0u);
      v[l] = s * float(q & mask) + bi;
    }
  }
}

}  // namespace moeflux::cuda
