// K-format quantizers after llama.cpp's reference ones (quantize_row_q*_K_ref
// in ggml-quants.c): the same searches, written afresh. Two levels: first
// each sub-block (16 or 32 values) gets its best float scale (and min), then
// those scales are themselves quantized to 4, 6 or 8 bits against one f16
// super-block scale, and the values are requantized with the scales as
// stored, so that dequantization reproduces what was optimised.
//
// Bytes match llama.cpp's only where its build rounds the same way (it may
// contract to FMA under -march=native); tests bound the error instead.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/quantize.h"

namespace moeflux::quant {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero

// Round to nearest, ties to even: what ggml's "add 1.5 * 2^23" trick does.
int nearest_int(float v) { return int(std::nearbyint(v)); }

// Affine fit of n values to levels 0..nmax: x ~ scale * L - min_out, with
// weights w. Starts from the min..max grid, then tries nstep+1 grids of
// (nmax + rmin + rdelta * is) steps, solving weighted least squares for
// scale and min on each, and keeps the one of least weighted error (absolute
// error if use_mad). min is clamped so that zero stays representable.
float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                 float rdelta, int nstep, bool use_mad) {
  uint8_t Laux[32];
  float mn = x[0], mx = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::memset(L, 0, size_t(n));
    *min_out = -mn;
    return 0.f;
  }
  float iscale = float(nmax) / (mx - mn);
  float scale = 1 / iscale;
  auto err = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax));
    best += w[i] * err(scale * L[i] + mn - x[i]);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur = 0;
    for (int i = 0; i < n; ++i) cur += w[i] * err(this_scale * Laux[i] + this_min - x[i]);
    if (cur < best) {
      std::memcpy(L, Laux, size_t(n));
      best = cur;
      scale = this_scale;
      mn = this_min;
    }
  }
  *min_out = -mn;
  return scale;
}

// Symmetric fit to levels -nmax..nmax-1 (stored as L + nmax), weights x^2:
// the grid through the largest-magnitude value, then 18 nearby grids, each
// with its least-squares scale; the best by sum(w*x*l)^2 / sum(w*l*l).
float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, size_t(n));
    return 0.f;
  }
  auto pass = [&](float iscale, float& sumlx, float& suml2, bool store) {
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (store) L[i] = int8_t(l + nmax);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
  };
  float sumlx, suml2;
  pass(float(-nmax) / max, sumlx, suml2, true);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(float(nmax) + 0.1f * float(is)) / max;
    pass(iscale, sumlx, suml2, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      pass(iscale, sumlx, suml2, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric fit for Q3_K: start from the max-magnitude grid, then move single
// values one at a time while that raises sum(w*x*l)^2 / sum(w*l*l) (the
// least-squares fit quality), up to 5 sweeps. Levels stored as L + nmax.
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, size_t(n));
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx <= 0) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int nl = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * float(nl);
      sl2 += w * float(nl) * float(nl);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// 2-bit fields of 256 values: value e at byte (e/128)*32 + e%32, shift 2*((e%128)/32).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K/Q5_K: 6-bit scales and mins of 8 sub-blocks into 12 bytes (see k4_scale_min).
void pack_k4_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t* s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      s[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

// Shared by Q4_K and Q5_K: per-sub-block affine fits with weights
// av|x| + |x|, scales and mins quantized to 6 bits against d and dmin, then
// the values requantized with the stored scales. Returns the levels in L.
void quantize_k4_common(const float* x, int nmax, float rmin, float rdelta, int nstep, f16bits& d_out,
                        f16bits& dmin_out, uint8_t* scales_out, uint8_t L[kQK_K]) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_affine(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, rdelta, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = uint8_t(std::min(63, nearest_int(inv_scale * scales[j])));
    lm[j] = uint8_t(std::min(63, nearest_int(inv_min * mins[j])));
  }
  pack_k4_scales(ls, lm, scales_out);
  d_out = f32_to_f16(max_scale / 63.f);
  dmin_out = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, scales_out, sc, m);
    const float d = f16_to_f32(d_out) * float(sc);
    if (d == 0) continue;
    const float dm = f16_to_f32(dmin_out) * float(m);
    for (int l = 0; l < 32; ++l) L[32 * j + l] = uint8_t(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
  }
}

}  // namespace

void quantize_q2_k(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ2_K*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    float scales[16], mins[16], w[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    BlockQ2_K& b = y[i];
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
    }
    b.d = f32_to_f16(max_scale > 0 ? max_scale / 15.f : 0.f);
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) b.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
    }
    b.dmin = f32_to_f16(max_min > 0 ? max_min / 15.f : 0.f);
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b.d) * float(b.scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = f16_to_f32(b.dmin) * float(b.scales[j] >> 4);
      for (int l = 0; l < 16; ++l) L[16 * j + l] = uint8_t(std::clamp(nearest_int((x[16 * j + l] + dm) / d), 0, 3));
    }
    pack_2bit(L, b.qs);
  }
}

void quantize_q3_k(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ3_K*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[16];
    float amax = 0, max_scale = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    BlockQ3_K& b = y[i];
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        const int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
        if (j < 8) b.scales[j] = uint8_t(l & 0xF);
        else b.scales[j - 8] |= uint8_t((l & 0xF) << 4);
        b.scales[8 + j % 4] |= uint8_t((l >> 4) << (2 * (j / 4)));
      }
      b.d = f32_to_f16(1 / iscale);
    } else {
      b.d = f32_to_f16(0.f);
    }
    int8_t sc[16];
    q3k_scales(b.scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b.d) * float(sc[j]);
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = int8_t(std::clamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
    }
    // Levels 0..7: bit 2 goes to hmask (value e -> byte e%32, bit e/32), the rest to qs.
    std::memset(b.hmask, 0, sizeof b.hmask);
    uint8_t low[kQK_K];
    for (int e = 0; e < kQK_K; ++e) {
      if (L[e] > 3) b.hmask[e % 32] |= uint8_t(1 << (e / 32));
      low[e] = uint8_t(L[e] & 3);
    }
    pack_2bit(low, b.qs);
  }
}

void quantize_q4_k(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ4_K*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    quantize_k4_common(x, 15, -1.f, 0.1f, 20, y[i].d, y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) y[i].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ5_K*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    uint8_t L[kQK_K];
    quantize_k4_common(x, 31, -0.5f, 0.1f, 15, y[i].d, y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int a = L[64 * c + l], b = L[64 * c + 32 + l];
        y[i].qh[l] |= uint8_t(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
        y[i].qs[32 * c + l] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
      }
  }
}

void quantize_q6_k(const float* x, uint8_t* dst, size_t nb) {
  auto* y = reinterpret_cast<BlockQ6_K*>(dst);
  for (size_t i = 0; i < nb; ++i, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[16];
    float max_abs = 0, max_scale = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > max_abs) {
        max_abs = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    BlockQ6_K& b = y[i];
    if (max_abs < kGroupMaxEps) {
      std::memset(&b, 0, sizeof b);
      continue;
    }
    const float iscale = -128.f / max_scale;
    b.d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b.d) * float(b.scales[j]);
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = int8_t(std::clamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q0 = uint8_t(L[128 * h + l]), q1 = uint8_t(L[128 * h + 32 + l]);
        const uint8_t q2 = uint8_t(L[128 * h + 64 + l]), q3 = uint8_t(L[128 * h + 96 + l]);
        b.ql[64 * h + l] = uint8_t((q0 & 0xF) | ((q2 & 0xF) << 4));
        b.ql[64 * h + 32 + l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        b.qh[32 * h + l] = uint8_t((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
      }
  }
}

}  // namespace moeflux::quant
