#include "quant/fp8_block.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace moeflux::quant {

float fp8_e4m3_to_f32(uint8_t code) {
  const bool neg = code & 0x80;
  const int exp = (code >> 3) & 0xf, man = code & 0x7;
  float v;
  if (exp == 0xf && man == 0x7)
    v = std::numeric_limits<float>::quiet_NaN();
  else if (exp == 0)
    v = std::ldexp(float(man), -9);  // subnormal: man / 8 * 2^-6
  else
    v = std::ldexp(1.0f + float(man) / 8.0f, exp - 7);
  return neg ? -v : v;
}

namespace {

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> a{};
    for (int i = 0; i < 256; ++i) a[size_t(i)] = fp8_e4m3_to_f32(uint8_t(i));
    return a;
  }();
  return t;
}

float scale_at(const Fp8Block& q, size_t K, size_t br, size_t bc) {
  const size_t cols = (K + size_t(q.block) - 1) / size_t(q.block), i = br * cols + bc;
  if (q.scale_type == Fp8ScaleType::F32) return static_cast<const float*>(q.scale_inv)[i];
  return bf16_to_f32(static_cast<const uint16_t*>(q.scale_inv)[i]);
}

}  // namespace

void fp8_check_scales(const char* what, size_t rows, size_t K, int block, size_t scale_rows, size_t scale_cols) {
  if (block < 1) fail("{}: FP8 block size {} must be positive", what, block);
  const size_t want_r = (rows + size_t(block) - 1) / size_t(block), want_c = (K + size_t(block) - 1) / size_t(block);
  if (scale_rows != want_r || scale_cols != want_c)
    fail("{}: FP8 scales are [{}, {}] but a [{}, {}] weight in {}x{} blocks needs [{}, {}]", what, scale_rows,
         scale_cols, rows, K, block, block, want_r, want_c);
}

void fp8_dequantize_row(const Fp8Block& q, size_t K, size_t r, float* out) {
  const auto& lut = e4m3_table();
  const uint8_t* w = q.weight + r * K;
  const size_t br = r / size_t(q.block);
  for (size_t k = 0; k < K; ++k) out[k] = lut[w[k]] * scale_at(q, K, br, k / size_t(q.block));
}

void fp8_matmul_rows(const float* x, size_t ldx, size_t T, const Fp8Block& q, size_t K, size_t r0, size_t r1, float* y,
                     size_t ldy) {
  const auto& lut = e4m3_table();
  const size_t B = size_t(q.block), nb = (K + B - 1) / B;
  float row[512];  // one block of decoded values at a time (blocks up to 512 wide)
  if (B > 512) fail("FP8 block size {} exceeds 512", B);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* w = q.weight + r * K;
    for (size_t t = 0; t < T; ++t) y[t * ldy + r] = 0.0f;
    for (size_t b = 0; b < nb; ++b) {
      const size_t k0 = b * B, n = std::min(B, K - k0);
      for (size_t i = 0; i < n; ++i) row[i] = lut[w[k0 + i]];
      const float s = scale_at(q, K, r / B, b);
      for (size_t t = 0; t < T; ++t) {
        const float* xt = x + t * ldx + k0;
        float acc = 0.0f;
        for (size_t i = 0; i < n; ++i) acc += xt[i] * row[i];
        y[t * ldy + r] += acc * s;
      }
    }
  }
}

}  // namespace moeflux::quant
