// Integer dot products of GGML weight blocks with int8 activations, as
// llama.cpp's ggml_vec_dot_*_q8_0 / _q8_K do on x86. Highway's foreach_target
// re-includes this file once per instruction set; the dot kernels exist for
// AVX2 and AVX-512 (written with 256-bit AVX2 intrinsics: one 32-element
// block per register), the activation quantizer for every target.
//
// Every code is made unsigned (Q4_0's q - 8 becomes q with 8 * sum(x^)
// subtracted, Q3_K's -4 and Q6_K's -32 likewise through the per-16 sums), so
// one maddubs (u8 x s8 -> pairs summed in i16) and one madd (i16 x i16 ->
// i32) give exact integer block sums. Bounds that keep them exact: u8 codes
// are at most 63 (Q6_K) or 128 (|Q8_0| via the sign trick) and |x^| <= 127,
// so a maddubs pair is at most 2 * 128 * 127 = 32512 < 2^15; the largest
// super-block sum, Q6_K's, is below 16 * 2 * 16002 * 128 + 32 * 16 * 2032 * 128
// < 2^31.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/matmul_q8_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>
#include <type_traits>

#include "quant/blocks.h"
#include "quant/matmul_internal.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace moeflux::quant::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- activation quantizer (every target, same bits on each) --------------

// q = round_half_even(x * id) as (|v| + 2^23) - 2^23 with v's sign: exact
// for |v| < 2^22, and the Abs keeps the compiler from contracting x * id + c
// into one FMA (which would round differently on FMA targets).
void QuantizeQ8(const float* x, size_t n, size_t block, int8_t* q, float* d, int32_t* isum, float* s,
                int16_t* bsums) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const size_t N = hn::Lanes(df);
  const auto magic = hn::Set(df, 8388608.0f);
  for (size_t b = 0; b < n / block; ++b) {
    const float* xb = x + b * block;
    int8_t* qb = q + b * block;
    auto mx = hn::Zero(df);
    for (size_t i = 0; i < block; i += N) mx = hn::Max(mx, hn::Abs(hn::LoadU(df, xb + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, mx));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    const auto vid = hn::Set(df, id);
    int32_t total = 0;
    // 16 elements at a time: the K formats' per-16 sums.
    for (size_t c = 0; c < block; c += 16) {
      auto acc = hn::Zero(di);
      for (size_t i = c; i < c + 16; i += N) {
        const auto v = hn::Mul(hn::LoadU(df, xb + i), vid);
        const auto r = hn::CopySignToAbs(hn::Sub(hn::Add(hn::Abs(v), magic), magic), v);
        const auto qi = hn::ConvertTo(di, r);
        acc = hn::Add(acc, qi);
        hn::StoreU(hn::DemoteTo(d8, qi), d8, qb + i);
      }
      const int32_t sum16 = hn::GetLane(hn::SumOfLanes(di, acc));
      if (bsums) bsums[b * (block / 16) + c / 16] = int16_t(sum16);
      total += sum16;
    }
    if (isum) isum[b] = total;
    if (s) s[b] = db * float(total);
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

bool IntKernelsAvailable() { return true; }

// ---- 256-bit helpers -----------------------------------------------------

HWY_INLINE __m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// i32 lane i = sum over bytes 4i..4i+3 of u[j] * s[j] (u unsigned, s signed).
HWY_INLINE __m256i Dot4(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The lowest i32 lane set to v, the others zero.
HWY_INLINE __m256i Lane0(int32_t v) { return _mm256_zextsi128_si256(_mm_cvtsi32_si128(v)); }

HWY_INLINE float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

HWY_INLINE float HSum(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

HWY_INLINE float F16(f16bits h) { return _cvtsh_ss(h); }

// 16 packed bytes -> 32 codes: low nibbles in bytes 0-15, high in 16-31 (the
// element order of Q4_0, Q4_1, Q5_x and MXFP4).
HWY_INLINE __m256i Nibbles(const uint8_t* p) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(15));
}

// Byte i = 0xFF where bit i of `bits` is set (llama.cpp's bytes_from_bits_32).
HWY_INLINE __m256i BitsToBytes(uint32_t bits) {
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(bits)), shuf);
  return _mm256_cmpeq_epi8(_mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
}

// Shift each byte's bit `from` to bit `to` (other bits of the result are
// garbage until masked; 16-bit shifts move no wanted bit across bytes for
// these distances).
template <int kFrom, int kTo>
HWY_INLINE __m256i MoveBit(__m256i v) {
  if constexpr (kFrom > kTo) return _mm256_srli_epi16(v, kFrom - kTo);
  else if constexpr (kFrom < kTo) return _mm256_slli_epi16(v, kTo - kFrom);
  else return v;
}

// Picks i16 scales for a maddubs result covering two sub-blocks of 16: with
// both 128-bit lanes holding 8 i16 scales, lane 0 gets scale 2k in every
// element and lane 1 scale 2k + 1.
HWY_INLINE __m256i PairScale(__m256i scales, int k) {
  const __m256i idx = _mm256_add_epi8(_mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                                       2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
                                      _mm256_set1_epi8(char(4 * k)));
  return _mm256_shuffle_epi8(scales, idx);
}

// Same, scale j (0-7) in every element of both lanes (one 32-element sub-block).
HWY_INLINE __m256i OneScale(__m256i scales, int j) {
  return _mm256_shuffle_epi8(scales, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * j)));
}

HWY_INLINE __m256i DupLow(__m256i v) { return _mm256_permute2x128_si256(v, v, 0x00); }
HWY_INLINE __m256i DupHigh(__m256i v) { return _mm256_permute2x128_si256(v, v, 0x11); }

// ---- formats with 32-element blocks (activation blocks of 32) -------------
// block() adds d_w * d_x * (integer dot) to acc and any min term to m.

struct A32 {
  const int8_t* q;
  float d, s;
  int32_t isum;
};

struct Q8_0 {
  static constexpr size_t kBytes = sizeof(BlockQ8_0);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float&) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
    const __m256i w = Load(b->qs), x = Load(a.q);
    // |w| as u8 (|-128| = 128 reads correctly as unsigned) times x with w's sign.
    const __m256i i = Dot4(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * a.d), _mm256_cvtepi32_ps(i), acc);
  }
};

struct Q4_0 {
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float&) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(p);
    const __m256i i = _mm256_sub_epi32(Dot4(Nibbles(b->qs), Load(a.q)), Lane0(8 * a.isum));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * a.d), _mm256_cvtepi32_ps(i), acc);
  }
};

struct Q4_1 {
  static constexpr size_t kBytes = sizeof(BlockQ4_1);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float& m) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(p);
    const __m256i i = Dot4(Nibbles(b->qs), Load(a.q));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * a.d), _mm256_cvtepi32_ps(i), acc);
    m += F16(b->m) * a.s;
  }
};

// Fifth bit of element j = bit j of qh, as 16 in byte j.
template <class B>
HWY_INLINE __m256i Q5Codes(const B* b) {
  uint32_t qh;
  std::memcpy(&qh, b->qh, 4);
  return _mm256_or_si256(Nibbles(b->qs), _mm256_and_si256(BitsToBytes(qh), _mm256_set1_epi8(16)));
}

struct Q5_0 {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float&) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(p);
    const __m256i i = _mm256_sub_epi32(Dot4(Q5Codes(b), Load(a.q)), Lane0(16 * a.isum));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * a.d), _mm256_cvtepi32_ps(i), acc);
  }
};

struct Q5_1 {
  static constexpr size_t kBytes = sizeof(BlockQ5_1);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float& m) {
    const auto* b = reinterpret_cast<const BlockQ5_1*>(p);
    const __m256i i = Dot4(Q5Codes(b), Load(a.q));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * a.d), _mm256_cvtepi32_ps(i), acc);
    m += F16(b->m) * a.s;
  }
};

// e2m1 codes through a byte table of the doubled values plus 12 (0..24).
struct MXFP4 {
  static constexpr size_t kBytes = sizeof(BlockMXFP4);
  static HWY_INLINE void block(const uint8_t* p, const A32& a, __m256& acc, float&) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(p);
    const __m256i table = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
                                           12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
    const __m256i w = _mm256_shuffle_epi8(table, Nibbles(b->qs));
    const __m256i i = _mm256_sub_epi32(Dot4(w, Load(a.q)), Lane0(12 * a.isum));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_f32_half(b->e) * a.d), _mm256_cvtepi32_ps(i), acc);
  }
};

// Two blocks per iteration into two accumulators: hides the FMA latency.
template <class F>
HWY_NOINLINE float DotRow32(const uint8_t* row, const int8_t* q, const float* d, const float* s,
                            const int32_t* isum, size_t nb) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float m0 = 0.0f, m1 = 0.0f;
  size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    F::block(row + b * F::kBytes, A32{q + 32 * b, d[b], s[b], isum[b]}, acc0, m0);
    F::block(row + (b + 1) * F::kBytes, A32{q + 32 * (b + 1), d[b + 1], s[b + 1], isum[b + 1]}, acc1, m1);
  }
  if (b < nb) F::block(row + b * F::kBytes, A32{q + 32 * b, d[b], s[b], isum[b]}, acc0, m0);
  return HSum(_mm256_add_ps(acc0, acc1)) + (m0 + m1);
}

// ---- K formats (activation blocks of 256 with sums per 16) ---------------

struct Q2_K {
  static constexpr size_t kBytes = sizeof(BlockQ2_K);
  static HWY_INLINE void block(const uint8_t* p, const int8_t* q, float dx, const int16_t* bsums, __m256& acc) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales));
    const __m128i m4 = _mm_set1_epi8(15);
    // sum_j min_j * bsum_j: the -dmin * m term of every element.
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
    const __m256i prod = _mm256_madd_epi16(mins, Load(bsums));
    const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = Load(b->qs + 32 * h);
      const __m256i scales = h == 0 ? DupLow(sc) : DupHigh(sc);
      const int8_t* qh = q + 128 * h;
      const __m256i w0 = _mm256_and_si256(bits, m3);
      const __m256i w1 = _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3);
      const __m256i w2 = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3);
      const __m256i w3 = _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3);
      const __m256i p0 = _mm256_madd_epi16(PairScale(scales, 0), _mm256_maddubs_epi16(w0, Load(qh)));
      const __m256i p1 = _mm256_madd_epi16(PairScale(scales, 1), _mm256_maddubs_epi16(w1, Load(qh + 32)));
      const __m256i p2 = _mm256_madd_epi16(PairScale(scales, 2), _mm256_maddubs_epi16(w2, Load(qh + 64)));
      const __m256i p3 = _mm256_madd_epi16(PairScale(scales, 3), _mm256_maddubs_epi16(w3, Load(qh + 96)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * dx), _mm256_cvtepi32_ps(sumi), acc);
    acc = _mm256_fnmadd_ps(_mm256_set1_ps(F16(b->dmin) * dx), _mm256_cvtepi32_ps(prod), acc);
  }
};

struct Q3_K {
  static constexpr size_t kBytes = sizeof(BlockQ3_K);
  static HWY_INLINE void block(const uint8_t* p, const int8_t* q, float dx, const int16_t* bsums, __m256& acc) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    // The 16 6-bit scales (see q3k_scales), as llama.cpp unpacks them.
    uint32_t aux[3];
    std::memcpy(aux, b->scales, 12);
    constexpr uint32_t k2 = 0x03030303, k4 = 0x0f0f0f0f;
    const __m128i sc8 = _mm_sub_epi8(_mm_setr_epi32(int32_t((aux[0] & k4) | ((aux[2] & k2) << 4)),
                                                    int32_t((aux[1] & k4) | (((aux[2] >> 2) & k2) << 4)),
                                                    int32_t(((aux[0] >> 4) & k4) | (((aux[2] >> 4) & k2) << 4)),
                                                    int32_t(((aux[1] >> 4) & k4) | (((aux[2] >> 6) & k2) << 4))),
                                     _mm_set1_epi8(32));
    const __m256i sc = _mm256_cvtepi8_epi16(sc8);
    const __m256i corr = _mm256_madd_epi16(sc, Load(bsums));  // codes are q + 4: subtract 4 * sum sc * bsum
    const __m256i hm = Load(b->hmask);
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = Load(b->qs + 32 * h);
      const __m256i scales = h == 0 ? DupLow(sc) : DupHigh(sc);
      const int8_t* qh = q + 128 * h;
      // Code of element 128h + 32k + l: bits 2k..2k+1 of qs[32h + l], plus 4
      // if bit 4h + k of hmask[l] is set.
      __m256i w0, w1, w2, w3;
      if (h == 0) {
        w0 = _mm256_or_si256(_mm256_and_si256(bits, m3), _mm256_and_si256(MoveBit<0, 2>(hm), m4));
        w1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2), m3), _mm256_and_si256(MoveBit<1, 2>(hm), m4));
        w2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m3), _mm256_and_si256(hm, m4));
        w3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 6), m3), _mm256_and_si256(MoveBit<3, 2>(hm), m4));
      } else {
        w0 = _mm256_or_si256(_mm256_and_si256(bits, m3), _mm256_and_si256(MoveBit<4, 2>(hm), m4));
        w1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2), m3), _mm256_and_si256(MoveBit<5, 2>(hm), m4));
        w2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m3), _mm256_and_si256(MoveBit<6, 2>(hm), m4));
        w3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 6), m3), _mm256_and_si256(MoveBit<7, 2>(hm), m4));
      }
      const __m256i p0 = _mm256_madd_epi16(PairScale(scales, 0), _mm256_maddubs_epi16(w0, Load(qh)));
      const __m256i p1 = _mm256_madd_epi16(PairScale(scales, 1), _mm256_maddubs_epi16(w1, Load(qh + 32)));
      const __m256i p2 = _mm256_madd_epi16(PairScale(scales, 2), _mm256_maddubs_epi16(w2, Load(qh + 64)));
      const __m256i p3 = _mm256_madd_epi16(PairScale(scales, 3), _mm256_maddubs_epi16(w3, Load(qh + 96)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
    }
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 2));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * dx), _mm256_cvtepi32_ps(sumi), acc);
  }
};

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; bytes
// qs[32c..32c+32) hold sub-block 2c (low nibbles) and 2c+1 (high).
template <bool kHigh>
struct Q45_K {
  using B = std::conditional_t<kHigh, BlockQ5_K, BlockQ4_K>;
  static constexpr size_t kBytes = sizeof(B);

  // Fifth bit of sub-block j (bit j of qh[l]) as 16.
  template <int j>
  static HWY_INLINE __m256i High(__m256i qh) {
    return _mm256_and_si256(MoveBit<j, 4>(qh), _mm256_set1_epi8(16));
  }

  template <int c>
  static HWY_INLINE __m256i Pair(const B* b, const int8_t* q, __m256i scales, __m256i qh) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i bits = Load(b->qs + 32 * c);
    __m256i lo = _mm256_and_si256(bits, m4), hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    if constexpr (kHigh) {
      lo = _mm256_or_si256(lo, High<2 * c>(qh));
      hi = _mm256_or_si256(hi, High<2 * c + 1>(qh));
    }
    const __m256i p0 = _mm256_madd_epi16(OneScale(scales, 2 * c), _mm256_maddubs_epi16(lo, Load(q + 64 * c)));
    const __m256i p1 = _mm256_madd_epi16(OneScale(scales, 2 * c + 1), _mm256_maddubs_epi16(hi, Load(q + 64 * c + 32)));
    return _mm256_add_epi32(p0, p1);
  }

  static HWY_INLINE void block(const uint8_t* p, const int8_t* q, float dx, const int16_t* bsums, __m256& acc) {
    const auto* b = reinterpret_cast<const B*>(p);
    // Scales to bytes 0-7 and mins to bytes 8-15 (see k4_scale_min), as
    // llama.cpp unpacks them.
    uint32_t u[4];
    std::memcpy(u, b->scales, 12);
    constexpr uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    const uint32_t m03 = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = m03;
    u[0] &= k1;
    const __m256i sm = _mm256_cvtepu8_epi16(_mm_setr_epi32(int32_t(u[0]), int32_t(u[1]), int32_t(u[2]), int32_t(u[3])));
    // sum_j min_j * (sum of the 32 x^ of sub-block j).
    const __m256i bs = Load(bsums);
    const __m128i s32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), s32);
    const __m256i scales = DupLow(sm);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kHigh) qh = Load(b->qh);
    const __m256i sumi = _mm256_add_epi32(_mm256_add_epi32(Pair<0>(b, q, scales, qh), Pair<1>(b, q, scales, qh)),
                                          _mm256_add_epi32(Pair<2>(b, q, scales, qh), Pair<3>(b, q, scales, qh)));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * dx), _mm256_cvtepi32_ps(sumi), acc);
    // Fold the 4 lanes of mins into lanes 0-3 of acc.
    const __m256 mins = _mm256_zextps128_ps256(_mm_cvtepi32_ps(prod));
    acc = _mm256_fnmadd_ps(_mm256_set1_ps(F16(b->dmin) * dx), mins, acc);
  }
};
using Q4_K = Q45_K<false>;
using Q5_K = Q45_K<true>;

// Q6_K: per half h, bytes ql[64h + l], ql[64h + 32 + l] and qh[32h + l]
// carry elements 128h + {l, 32+l, 64+l, 96+l}; codes are q + 32.
struct Q6_K {
  static constexpr size_t kBytes = sizeof(BlockQ6_K);
  static HWY_INLINE void block(const uint8_t* p, const int8_t* q, float dx, const int16_t* bsums, __m256& acc) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
    const __m256i corr = _mm256_madd_epi16(sc, Load(bsums));
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i a = Load(b->ql + 64 * h), c = Load(b->ql + 64 * h + 32), hb = Load(b->qh + 32 * h);
      const __m256i scales = h == 0 ? DupLow(sc) : DupHigh(sc);
      const int8_t* qh = q + 128 * h;
      const __m256i w0 = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
      const __m256i w1 = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
      const __m256i w2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(hb, m30));
      const __m256i w3 =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
      const __m256i p0 = _mm256_madd_epi16(PairScale(scales, 0), _mm256_maddubs_epi16(w0, Load(qh)));
      const __m256i p1 = _mm256_madd_epi16(PairScale(scales, 1), _mm256_maddubs_epi16(w1, Load(qh + 32)));
      const __m256i p2 = _mm256_madd_epi16(PairScale(scales, 2), _mm256_maddubs_epi16(w2, Load(qh + 64)));
      const __m256i p3 = _mm256_madd_epi16(PairScale(scales, 3), _mm256_maddubs_epi16(w3, Load(qh + 96)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
    }
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b->d) * dx), _mm256_cvtepi32_ps(sumi), acc);
  }
};

template <class F>
HWY_NOINLINE float DotRow256(const uint8_t* row, const int8_t* q, const float* d, const int16_t* bsums, size_t nb) {
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) F::block(row + b * F::kBytes, q + 256 * b, d[b], bsums + 16 * b, acc);
  return HSum(acc);
}

// ---- rows ------------------------------------------------------------------

template <class F>
void Rows32(const Q8Act& a, const uint8_t* W, size_t r0, size_t r1, float* y, size_t ldy) {
  const size_t nb = a.K / 32, rb = nb * F::kBytes;
  for (size_t r = r0; r < r1; ++r)
    for (size_t t = 0; t < a.T; ++t)
      y[t * ldy + r] = DotRow32<F>(W + r * rb, a.qs + t * a.K, a.d + t * nb, a.s + t * nb, a.isum + t * nb, nb);
}

template <class F>
void Rows256(const Q8Act& a, const uint8_t* W, size_t r0, size_t r1, float* y, size_t ldy) {
  const size_t nb = a.K / 256, rb = nb * F::kBytes;
  for (size_t r = r0; r < r1; ++r)
    for (size_t t = 0; t < a.T; ++t)
      y[t * ldy + r] = DotRow256<F>(W + r * rb, a.qs + t * a.K, a.d + t * nb, a.bsums + t * (a.K / 16), nb);
}

void MatmulRowsQ8(const Q8Act& a, const uint8_t* W, uint32_t wtype, size_t r0, size_t r1, float* y, size_t ldy) {
  switch (GgmlType(wtype)) {
    case GgmlType::Q8_0: return Rows32<Q8_0>(a, W, r0, r1, y, ldy);
    case GgmlType::Q4_0: return Rows32<Q4_0>(a, W, r0, r1, y, ldy);
    case GgmlType::Q4_1: return Rows32<Q4_1>(a, W, r0, r1, y, ldy);
    case GgmlType::Q5_0: return Rows32<Q5_0>(a, W, r0, r1, y, ldy);
    case GgmlType::Q5_1: return Rows32<Q5_1>(a, W, r0, r1, y, ldy);
    case GgmlType::MXFP4: return Rows32<MXFP4>(a, W, r0, r1, y, ldy);
    case GgmlType::Q2_K: return Rows256<Q2_K>(a, W, r0, r1, y, ldy);
    case GgmlType::Q3_K: return Rows256<Q3_K>(a, W, r0, r1, y, ldy);
    case GgmlType::Q4_K: return Rows256<Q4_K>(a, W, r0, r1, y, ldy);
    case GgmlType::Q5_K: return Rows256<Q5_K>(a, W, r0, r1, y, ldy);
    case GgmlType::Q6_K: return Rows256<Q6_K>(a, W, r0, r1, y, ldy);
    default: return;  // checked by the caller
  }
}

#else  // no integer kernels below AVX2: matmul.cpp uses the f32 ones

bool IntKernelsAvailable() { return false; }
void MatmulRowsQ8(const Q8Act&, const uint8_t*, uint32_t, size_t, size_t, float*, size_t) {}

#endif

}  // namespace HWY_NAMESPACE
}  // namespace moeflux::quant::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace moeflux::quant::detail {

HWY_EXPORT(QuantizeQ8);
HWY_EXPORT(IntKernelsAvailable);
HWY_EXPORT(MatmulRowsQ8);

bool int_kernels_available() { return HWY_DYNAMIC_DISPATCH(IntKernelsAvailable)(); }

void quantize_q8(const float* x, size_t n, size_t block, int8_t* q, float* d, int32_t* isum, float* s,
                 int16_t* bsums) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8)(x, n, block, q, d, isum, s, bsums);
}

void matmul_rows_q8(const Q8Act& a, const uint8_t* W, GgmlType wtype, size_t r0, size_t r1, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(MatmulRowsQ8)(a, W, uint32_t(wtype), r0, r1, y, ldy);
}

}  // namespace moeflux::quant::detail
#endif
