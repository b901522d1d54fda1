// Scalar conversions between f32 and the 16-bit float formats. The SIMD paths
// in the backends convert whole vectors; these are the reference behaviour
// (round to nearest even, NaN kept quiet) they are tested against.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

namespace moeflux {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      float v = float(mant) * 0x1p-24f;
      bits = sign | std::bit_cast<uint32_t>(v);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (a >= 0x47800000u) return uint16_t(sign | 0x7c00u);  // >= 65536: inf
  if (a < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    const float v = std::bit_cast<float>(a);
    // round(v / 2^-24) with ties to even, done exactly by float addition
    const float scaled = v * 0x1p24f;
    const float r = scaled + 0x1p23f - 0x1p23f;
    return uint16_t(sign | uint32_t(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even at bit 13
  m -= 112u << 23;
  if (m >= 0x0f800000u) return uint16_t(sign | 0x7c00u);  // [65520, 65536) rounds up to inf
  return uint16_t(sign | (m >> 13));
}

}  // namespace moeflux
