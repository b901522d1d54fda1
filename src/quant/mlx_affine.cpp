// MLX affine dequantization. numpy evaluates scale * q + bias with two
// roundings, so FMA contraction is off here.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "quant/mlx_affine.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "core/half.h"

namespace moeflux::quant {
namespace {

float load_scale(const void* base, size_t i, MlxScaleType t) {
  const auto* p = static_cast<const uint8_t*>(base);
  switch (t) {
    case MlxScaleType::F32: {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      return f;
    }
    case MlxScaleType::F16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return f16_to_f32(h);
    }
    case MlxScaleType::BF16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return bf16_to_f32(h);
    }
  }
  return 0;
}

}  // namespace

bool mlx_supported(int bits, int group_size) {
  const bool b = bits == 2 || bits == 3 || bits == 4 || bits == 6 || bits == 8;
  const bool g = group_size == 32 || group_size == 64 || group_size == 128;
  return b && g;
}

void mlx_check(const MlxAffine& q, size_t K) {
  if (!mlx_supported(q.bits, q.group_size))
    fail("MLX affine: unsupported bits {} / group_size {} (bits 2,3,4,6,8; group size 32,64,128)", q.bits,
         q.group_size);
  if (K % size_t(q.group_size) != 0) fail("MLX affine: K = {} is not a multiple of group_size {}", K, q.group_size);
}

namespace {

// One group of B-bit values that never straddle a word (B = 2, 4, 8): a
// word at a time, with the count per word known at compile time so that
// the compiler unrolls and vectorises it.
template <int B>
void dequantize_words(const uint32_t* w, size_t gs, float s, float b, float* o) {
  constexpr int kPerWord = 32 / B;
  constexpr uint32_t kMask = (1u << B) - 1;
  for (size_t j = 0; j < gs / kPerWord; ++j)
    for (int t = 0; t < kPerWord; ++t) o[j * kPerWord + size_t(t)] = s * float((w[j] >> (t * B)) & kMask) + b;
}

#if defined(__x86_64__)
// 4- and 8-bit groups with AVX2: a word broadcast to 8 lanes, each shifted by
// its own count (vpsrlvd, which SSE2 lacks: the compiler's own loop for the
// baseline target stores lane by lane, 62% of a decode step measured
// 2026-11-28). Still s * q then + b, two roundings, as the reference.
__attribute__((target("avx2"))) void dequantize_words_avx2(const uint32_t* w, int bits, size_t gs, float s, float b,
                                                           float* o) {
  const __m256 vs = _mm256_set1_ps(s), vb = _mm256_set1_ps(b);
  if (bits == 4) {
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), mask = _mm256_set1_epi32(15);
    for (size_t j = 0; j < gs / 8; ++j) {
      const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(w[j])), shifts), mask);
      _mm256_storeu_ps(o + 8 * j, _mm256_add_ps(_mm256_mul_ps(vs, _mm256_cvtepi32_ps(q)), vb));
    }
  } else {  // 8 bits: two words per 8 lanes
    const __m256i shifts = _mm256_setr_epi32(0, 8, 16, 24, 0, 8, 16, 24), mask = _mm256_set1_epi32(255);
    for (size_t j = 0; j < gs / 8; ++j) {
      const __m256i v = _mm256_setr_epi32(int(w[2 * j]), int(w[2 * j]), int(w[2 * j]), int(w[2 * j]),
                                          int(w[2 * j + 1]), int(w[2 * j + 1]), int(w[2 * j + 1]), int(w[2 * j + 1]));
      const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(v, shifts), mask);
      _mm256_storeu_ps(o + 8 * j, _mm256_add_ps(_mm256_mul_ps(vs, _mm256_cvtepi32_ps(q)), vb));
    }
  }
}

const bool kHaveAvx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
#endif

}  // namespace

// 2, 4 and 8 bits a word at a time; 3 and 6 bits read the bit stream value
// by value.
void mlx_dequantize_row(const MlxAffine& q, size_t K, size_t r, float* out) {
  mlx_check(q, K);
  const size_t bits = size_t(q.bits), gs = size_t(q.group_size);
  const size_t words = K * bits / 32;
  const uint32_t* w = q.weight + r * words;
  const size_t groups = K / gs;
  const uint32_t mask = (1u << bits) - 1;
  for (size_t g = 0; g < groups; ++g) {
    const float s = load_scale(q.scales, r * groups + g, q.scale_type);
    const float b = load_scale(q.biases, r * groups + g, q.scale_type);
    float* o = out + g * gs;
    const uint32_t* wg = w + g * gs * bits / 32;
#if defined(__x86_64__)
    if (kHaveAvx2 && (bits == 4 || bits == 8)) {
      dequantize_words_avx2(wg, int(bits), gs, s, b, o);
      continue;
    }
#endif
    if (bits == 4) {
      dequantize_words<4>(wg, gs, s, b, o);
      continue;
    }
    if (bits == 8) {
      dequantize_words<8>(wg, gs, s, b, o);
      continue;
    }
    if (bits == 2) {
      dequantize_words<2>(wg, gs, s, b, o);
      continue;
    }
    for (size_t k = g * gs; k < (g + 1) * gs; ++k) {
      const size_t bit = k * bits;
      const size_t wi = bit / 32, sh = bit % 32;
      uint64_t v = w[wi] >> sh;
      if (sh + bits > 32) v |= uint64_t(w[wi + 1]) << (32 - sh);  // straddles two words
      out[k] = s * float(uint32_t(v) & mask) + b;
    }
  }
}

}  // namespace moeflux::quant
