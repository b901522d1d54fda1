// Quantizers that gguf-py implements, matched to its bytes: the same f32
// operations in the same order (numpy rounds after every operation, so FMA
// contraction is turned off), the same tie rules (argmax/argmin take the
// first index) and the same rounding (trunc(v + 0.5) or round-half-away).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "quant/blocks.h"
#include "quant/quantize.h"

namespace moeflux::quant {
namespace {

// The element of largest magnitude, keeping its sign; the first on ties.
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

void min_max(const float* x, int n, float& mn, float& mx) {
  mn = x[0];
  mx = x[0];
  for (int j = 1; j < n; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
}

// numpy: np.trunc(v).astype(np.uint8).clip(0, hi); v is never negative here.
uint8_t trunc_clip(float v, int hi) { return uint8_t(std::min(int(std::trunc(v)), hi)); }

template <typename B>
void pack_q5(B& b, const uint8_t q[kQK]) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    b.qs[j] = uint8_t((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
  }
  for (int j = 0; j < kQK; ++j) qh |= uint32_t(q[j] >> 4) << j;
  std::memcpy(b.qh, &qh, 4);
}

}  // namespace

void quantize_q8_0(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ8_0*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(std::round(x[j] * id));  // half away from zero
  }
}

void quantize_q4_0(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ4_0*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j)
      y[i].qs[j] = uint8_t(trunc_clip(x[j] * id + 8.5f, 15) | (trunc_clip(x[j + 16] * id + 8.5f, 15) << 4));
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ4_1*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    float mn, mx;
    min_max(x, kQK, mn, mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    for (int j = 0; j < kQK / 2; ++j)
      y[i].qs[j] = uint8_t(trunc_clip((x[j] - mn) * id + 0.5f, 15) | (trunc_clip((x[j + 16] - mn) * id + 0.5f, 15) << 4));
  }
}

void quantize_q5_0(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ5_0*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = trunc_clip(x[j] * id + 16.5f, 31);
    y[i].d = f32_to_f16(d);
    pack_q5(y[i], q);
  }
}

void quantize_q5_1(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ5_1*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    float mn, mx;
    min_max(x, kQK, mn, mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = trunc_clip((x[j] - mn) * id + 0.5f, 31);
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    pack_q5(y[i], q);
  }
}

// Shared exponent: floor(log2(amax)) - 2, so the largest e2m1 magnitude (6,
// stored doubled as 12 against a halved scale) covers amax. Each element
// takes the code of least |d * value - x|, the first on ties, as gguf-py's
// argmin does. log2f is glibc's correctly rounded one, as numpy's float32
// log2 on this platform; amax below 2^-125 clamps to the smallest exponent.
void quantize_mxfp4(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockMXFP4*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    uint8_t e = 0;
    if (amax > 0) e = uint8_t(std::clamp(std::floor(std::log2(amax)) - 2.0f + 127.0f, 0.0f, 255.0f));
    const float d = e8m0_to_f32_half(e);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) {
      int best = 0;
      float best_err = std::fabs(d * float(kMxfp4Values[0]) - x[j]);
      for (int k = 1; k < 16; ++k) {
        const float err = std::fabs(d * float(kMxfp4Values[k]) - x[j]);
        if (err < best_err) {
          best_err = err;
          best = k;
        }
      }
      q[j] = uint8_t(best);
    }
    y[i].e = e;
    for (int j = 0; j < kQK / 2; ++j) y[i].qs[j] = uint8_t(q[j] | (q[j + 16] << 4));
  }
}

bool quantize_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K:
    case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::MXFP4:
      return true;
    default:
      return false;
  }
}

void quantize_row(GgmlType t, const float* src, uint8_t* dst, size_t n) {
  const auto info = ggml_type_info(uint32_t(t));
  if (!info || !quantize_supported(t))
    fail("quantize: unsupported GGML type {} ({})", info ? info->name : "unknown", uint32_t(t));
  if (n % info->block != 0) fail("quantize: {} elements is not a whole number of {} blocks of {}", n, info->name, info->block);
  const size_t nb = n / info->block;
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0: return quantize_q8_0(src, dst, nb);
    case GgmlType::Q4_0: return quantize_q4_0(src, dst, nb);
    case GgmlType::Q4_1: return quantize_q4_1(src, dst, nb);
    case GgmlType::Q5_0: return quantize_q5_0(src, dst, nb);
    case GgmlType::Q5_1: return quantize_q5_1(src, dst, nb);
    case GgmlType::MXFP4: return quantize_mxfp4(src, dst, nb);
    case GgmlType::Q2_K: return quantize_q2_k(src, dst, nb);
    case GgmlType::Q3_K: return quantize_q3_k(src, dst, nb);
    case GgmlType::Q4_K: return quantize_q4_k(src, dst, nb);
    case GgmlType::Q5_K: return quantize_q5_k(src, dst, nb);
    case GgmlType::Q6_K: return quantize_q6_k(src, dst, nb);
    default: return;
  }
}

}  // namespace moeflux::quant
