// Integer dot products of GGML weight blocks with int8 activations, as
// llama.cpp's ggml_vec_dot_*_q8_0 / _q8_K do on x86. Highway's foreach_target
// re-includes this file once per instruction set; the dot kernels exist for
// AVX2 and AVX-512 (written with 256-bit AVX2 intrinsics: one 32-element
// block per register), the activation quantizer for every target.
//
// Every code is made unsigned (Q4_0's q - 8 becomes q with 8 * d_w * d_x *
// sum(x^) subtracted in f32, Q3_K's -4 and Q6_K's -32 in i32 through the
// per-16 sums), so one maddubs (u8 x s8 -> pairs summed in i16) and one madd
// (i16 x i16 -> i32) give exact integer block sums. Bounds that keep them
// exact: u8 codes are at most 63 (Q6_K) or 128 (|Q8_0| via the sign trick)
// and |x^| <= 127, so a maddubs pair is at most 2 * 128 * 127 = 32512 < 2^15;
// the largest super-block sum, Q6_K's, is below
// 16 * 2 * 16002 * 128 + 32 * 16 * 2032 * 128 < 2^31.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/matmul_q8_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
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

// Software prefetch this many bytes ahead of the weight stream. The hardware
// prefetchers alone left a core's stream latency bound: measured 2026-11-27
// on the 16-core Xeon (Sapphire Rapids, AVX3), 2 threads, 512 MiB: Q2_K 11.0
// GB/s without, 15.3 / 20.9 / 16.1 GB/s at 2 / 4 / 8 KiB ahead; Q4_0 11.9,
// 19.9 / 26.8 / 21.1 (BENCHMARKS.md, quantized GEMV).
constexpr size_t kPrefetchBytes = 4096;

HWY_INLINE void Prefetch(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }

// An empty asm that the compiler must assume changes v: it keeps a running
// sum a chain of adds in program order. Left free, GCC reassociated the K
// formats' 8 adds per token into a tree whose 32 live products spilled to
// the stack (Zen 3, one thread, L2-resident rows, ns per super-block and
// token: Q4_K 6.5 -> 5.6 with 4 tokens, 14.1 -> 10.4 with one).
HWY_INLINE void KeepOrder(__m256i& v) { asm("" : "+x"(v)); }

HWY_INLINE __m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// i32 lane i = sum over bytes 4i..4i+3 of u[j] * s[j] (u unsigned, s signed).
HWY_INLINE __m256i Dot4(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

HWY_INLINE float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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
// Each format gives Scale (d_w of one block), Scales8 (d_w of 8 consecutive
// blocks as one vector), kOffset (codes are q + kOffset) or kMin (an f16
// min: w = d q + m), and its codes, unpacked once and dotted with the int8
// activations of every token of a pass:
// - Codes1 / Dot1: one block, 32 elements in order.
// - Codes2 / Dot2 (kPaired, the 4- and 5-bit formats): two blocks at once
//   against the paired activation layout (matmul_internal.h): one 256-bit
//   load of both blocks' packed bytes gives their low nibbles in one register
//   and their high nibbles in another, and the two maddubs results add in
//   i16 (at most 2 * 2 * 31 * 127 = 15748) before one madd.

HWY_INLINE uint16_t U16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The f16 at byte `off` of 8 consecutive blocks of `stride` bytes, as f32.
// Assembled in general-purpose registers: 8 vpinsrw would queue on the two
// FP pipes that also move data between register files (Zen 3), the
// bottleneck of the Q4_0 loop in llvm-mca.
template <size_t stride, size_t off>
HWY_INLINE __m256 F16x8(const uint8_t* p) {
  auto four = [p](size_t i) {
    return uint64_t(U16(p + i * stride + off)) | uint64_t(U16(p + (i + 1) * stride + off)) << 16 |
           uint64_t(U16(p + (i + 2) * stride + off)) << 32 | uint64_t(U16(p + (i + 3) * stride + off)) << 48;
  };
  return _mm256_cvtph_ps(_mm_set_epi64x(int64_t(four(4)), int64_t(four(0))));
}

// 16 packed bytes of block a in lane 0 and of block b in lane 1.
HWY_INLINE __m256i Load2(const uint8_t* a, const uint8_t* b) {
  return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b), reinterpret_cast<const __m128i*>(a));
}

HWY_INLINE __m256i Dot2(__m256i lo, __m256i hi, const int8_t* q) {
  const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Load(q)), _mm256_maddubs_epi16(hi, Load(q + 32)));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

struct Q8_0 {
  static constexpr size_t kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffset = 0;
  static constexpr bool kMin = false, kPaired = false;
  static HWY_INLINE __m256i Codes1(const uint8_t* p) { return Load(p + 2); }
  // |w| as u8 (|-128| = 128 reads correctly as unsigned) times x with w's sign.
  static HWY_INLINE __m256i Dot1(__m256i w, const int8_t* q) {
    return Dot4(_mm256_sign_epi8(w, w), _mm256_sign_epi8(Load(q), w));
  }
  static HWY_INLINE float Scale(const uint8_t* p) { return F16(U16(p)); }
  static HWY_INLINE __m256 Scales8(const uint8_t* p) { return F16x8<kBytes, 0>(p); }
};

// Q4_0, Q4_1 and MXFP4: 16 bytes of nibbles at byte kQs; element j < 16 is
// the low nibble of byte j, element 16 + j the high one.
template <size_t kQs>
struct Nibble32 {
  static HWY_INLINE __m256i Codes1(const uint8_t* p) { return Nibbles(p + kQs); }
  static HWY_INLINE __m256i Dot1(__m256i c, const int8_t* q) { return Dot4(c, Load(q)); }
  static HWY_INLINE void Codes2(const uint8_t* p0, const uint8_t* p1, __m256i& lo, __m256i& hi) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i v = Load2(p0 + kQs, p1 + kQs);
    lo = _mm256_and_si256(v, m4);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
};

struct Q4_0 : Nibble32<2> {
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  static constexpr int kOffset = 8;
  static constexpr bool kMin = false, kPaired = true;
  static HWY_INLINE float Scale(const uint8_t* p) { return F16(U16(p)); }
  static HWY_INLINE __m256 Scales8(const uint8_t* p) { return F16x8<kBytes, 0>(p); }
};

struct Q4_1 : Nibble32<4> {
  static constexpr size_t kBytes = sizeof(BlockQ4_1);
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true, kPaired = true;
  static HWY_INLINE float Scale(const uint8_t* p) { return F16(U16(p)); }
  static HWY_INLINE __m256 Scales8(const uint8_t* p) { return F16x8<kBytes, 0>(p); }
  static HWY_INLINE float Min(const uint8_t* p) { return F16(U16(p + 2)); }
  static HWY_INLINE __m256 Mins8(const uint8_t* p) { return F16x8<kBytes, 2>(p); }
};

// Q5_0 / Q5_1: the fifth bit of element j is bit j of the little-endian qh
// word at kQh, added as 16; nibbles at kQh + 4.
template <size_t kQh>
struct Nibble32H {
  static HWY_INLINE uint32_t Qh(const uint8_t* p) {
    uint32_t h;
    std::memcpy(&h, p + kQh, 4);
    return h;
  }
  static HWY_INLINE __m256i Codes1(const uint8_t* p) {
    return _mm256_or_si256(Nibbles(p + kQh + 4), _mm256_and_si256(BitsToBytes(Qh(p)), _mm256_set1_epi8(16)));
  }
  static HWY_INLINE __m256i Dot1(__m256i c, const int8_t* q) { return Dot4(c, Load(q)); }
  static HWY_INLINE void Codes2(const uint8_t* p0, const uint8_t* p1, __m256i& lo, __m256i& hi) {
    const __m256i m4 = _mm256_set1_epi8(15), m16 = _mm256_set1_epi8(16);
    const __m256i v = Load2(p0 + kQh + 4, p1 + kQh + 4);
    // Both qh words in every 64-bit lane (block 0's in bytes 0-3); bytes
    // 0-15 of 128-bit lane i take bits 0-15 of block i's word (its low
    // nibbles), a second shuffle bits 16-31.
    const __m256i h = _mm256_set1_epi64x(int64_t(Qh(p0) | uint64_t(Qh(p1)) << 32));
    const __m256i sel = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe), ones = _mm256_set1_epi64x(-1);
    const __m256i hl = _mm256_shuffle_epi8(
        h, _mm256_setr_epi64x(0, 0x0101010101010101, 0x0404040404040404, 0x0505050505050505));
    const __m256i hh = _mm256_shuffle_epi8(
        h, _mm256_setr_epi64x(0x0202020202020202, 0x0303030303030303, 0x0606060606060606, 0x0707070707070707));
    lo = _mm256_or_si256(_mm256_and_si256(v, m4),
                         _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(hl, sel), ones), m16));
    hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                         _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(hh, sel), ones), m16));
  }
};

struct Q5_0 : Nibble32H<2> {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static constexpr int kOffset = 16;
  static constexpr bool kMin = false, kPaired = true;
  static HWY_INLINE float Scale(const uint8_t* p) { return F16(U16(p)); }
  static HWY_INLINE __m256 Scales8(const uint8_t* p) { return F16x8<kBytes, 0>(p); }
};

struct Q5_1 : Nibble32H<4> {
  static constexpr size_t kBytes = sizeof(BlockQ5_1);
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true, kPaired = true;
  static HWY_INLINE float Scale(const uint8_t* p) { return F16(U16(p)); }
  static HWY_INLINE __m256 Scales8(const uint8_t* p) { return F16x8<kBytes, 0>(p); }
  static HWY_INLINE float Min(const uint8_t* p) { return F16(U16(p + 2)); }
  static HWY_INLINE __m256 Mins8(const uint8_t* p) { return F16x8<kBytes, 2>(p); }
};

// e2m1 codes through a byte table of the doubled values plus 12 (0..24).
struct MXFP4 {
  static constexpr size_t kBytes = sizeof(BlockMXFP4);
  static constexpr int kOffset = 12;
  static constexpr bool kMin = false, kPaired = true;
  static HWY_INLINE __m256i Table() {
    return _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,  //
                            12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
  }
  static HWY_INLINE __m256i Codes1(const uint8_t* p) { return _mm256_shuffle_epi8(Table(), Nibbles(p + 1)); }
  static HWY_INLINE __m256i Dot1(__m256i c, const int8_t* q) { return Dot4(c, Load(q)); }
  static HWY_INLINE void Codes2(const uint8_t* p0, const uint8_t* p1, __m256i& lo, __m256i& hi) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i v = Load2(p0 + 1, p1 + 1);
    lo = _mm256_shuffle_epi8(Table(), _mm256_and_si256(v, m4));
    hi = _mm256_shuffle_epi8(Table(), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
  }
  static HWY_INLINE float Scale(const uint8_t* p) { return e8m0_to_f32_half(p[0]); }
  // e8m0_to_f32_half on 8 lanes: (e - 1) << 23, or 2^21 << e below e = 2.
  static HWY_INLINE __m256 Scales8(const uint8_t* p) {
    uint64_t e8 = 0;
    for (int i = 0; i < 8; ++i) e8 |= uint64_t(p[i * kBytes]) << (8 * i);
    const __m256i e = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(e8)));
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i tiny = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(normal, tiny, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e)));
  }
};

// A group of tokens' activations in the 32-block layout, token t's at
// t * K values and t * nb blocks from the first's (by stride, as TokK below:
// an array of per-token pointers went to the stack).
struct Tok32 {
  const int8_t* q;
  const float* d;
  const float* s;
  const int32_t* isum;
  size_t q_stride, b_stride;
  HWY_INLINE const int8_t* Q(int t) const { return q + size_t(t) * q_stride; }
  HWY_INLINE const float* D(int t) const { return d + size_t(t) * b_stride; }
  HWY_INLINE const float* S(int t) const { return s + size_t(t) * b_stride; }
  HWY_INLINE const int32_t* Isum(int t) const { return isum + size_t(t) * b_stride; }
};

// out[t] = row . x_t for NT tokens. Groups of 8 blocks: the 8 products
// d_w * d_x are one vector per token, permuted into each block's (or pair's)
// FMA, and the offset or min terms of the group are one FMA. With one token
// two accumulators hide the FMA latency; with more the tokens do.
template <class F, int NT>
HWY_NOINLINE void DotRows32(const uint8_t* row, Tok32 tok, size_t nb, float* out) {
  constexpr int kA = NT == 1 ? 2 : 1;
  __m256 acc[kA][NT], corr[NT];
  for (int t = 0; t < NT; ++t) {
    for (int i = 0; i < kA; ++i) acc[i][t] = _mm256_setzero_ps();
    corr[t] = _mm256_setzero_ps();
  }
  size_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    const uint8_t* p = row + b * F::kBytes;
    for (size_t o = 0; o < 8 * F::kBytes; o += 64) Prefetch(p + kPrefetchBytes + o);
    const __m256 w8 = F::Scales8(p);
    __m256 S[NT];
    for (int t = 0; t < NT; ++t) S[t] = _mm256_mul_ps(w8, _mm256_loadu_ps(tok.D(t) + b));
    if constexpr (F::kMin) {
      const __m256 m8 = F::Mins8(p);
      for (int t = 0; t < NT; ++t) corr[t] = _mm256_fmadd_ps(m8, _mm256_loadu_ps(tok.S(t) + b), corr[t]);
    } else if constexpr (F::kOffset != 0) {
      for (int t = 0; t < NT; ++t) {
        const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tok.Isum(t) + b));
        corr[t] = _mm256_fmadd_ps(S[t], _mm256_cvtepi32_ps(sums), corr[t]);
      }
    }
    if constexpr (F::kPaired) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m256i lo, hi;
        F::Codes2(p + 2 * j * F::kBytes, p + (2 * j + 1) * F::kBytes, lo, hi);
        const __m256i idx = _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1);
        for (int t = 0; t < NT; ++t) {
          const __m256 v = _mm256_cvtepi32_ps(Dot2(lo, hi, tok.Q(t) + 32 * b + 64 * j));
          acc[j % kA][t] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(S[t], idx), v, acc[j % kA][t]);
        }
      }
    } else {
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256i c = F::Codes1(p + i * F::kBytes);
        for (int t = 0; t < NT; ++t) {
          const __m256 v = _mm256_cvtepi32_ps(F::Dot1(c, tok.Q(t) + 32 * (b + i)));
          acc[i % kA][t] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(S[t], _mm256_set1_epi32(i)), v, acc[i % kA][t]);
        }
      }
    }
  }
  // Fewer than 8 blocks left: pairs, then a lone block, scales one by one.
  float tail[NT] = {};
  for (; b < nb; ++b) {
    const uint8_t* p = row + b * F::kBytes;
    const float w0 = F::Scale(p);
    if constexpr (F::kPaired) {
      if (b + 1 < nb) {
        const float w1 = F::Scale(p + F::kBytes);
        __m256i lo, hi;
        F::Codes2(p, p + F::kBytes, lo, hi);
        for (int t = 0; t < NT; ++t) {
          const float s0 = w0 * tok.D(t)[b], s1 = w1 * tok.D(t)[b + 1];
          const __m256 scale = _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0));
          acc[0][t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(Dot2(lo, hi, tok.Q(t) + 32 * b)), acc[0][t]);
          if constexpr (F::kMin) {
            tail[t] += F::Min(p) * tok.S(t)[b] + F::Min(p + F::kBytes) * tok.S(t)[b + 1];
          } else {
            tail[t] += s0 * float(tok.Isum(t)[b]) + s1 * float(tok.Isum(t)[b + 1]);
          }
        }
        ++b;
        continue;
      }
    }
    const __m256i c = F::Codes1(p);
    for (int t = 0; t < NT; ++t) {
      const float s0 = w0 * tok.D(t)[b];
      acc[0][t] = _mm256_fmadd_ps(_mm256_set1_ps(s0), _mm256_cvtepi32_ps(F::Dot1(c, tok.Q(t) + 32 * b)), acc[0][t]);
      if constexpr (F::kMin) {
        tail[t] += F::Min(p) * tok.S(t)[b];
      } else if constexpr (F::kOffset != 0) {
        tail[t] += s0 * float(tok.Isum(t)[b]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    const float dot = HSum(kA == 2 ? _mm256_add_ps(acc[0][t], acc[kA - 1][t]) : acc[0][t]);
    if constexpr (F::kMin) {
      out[t] = dot + (HSum(corr[t]) + tail[t]);
    } else if constexpr (F::kOffset != 0) {
      out[t] = dot - float(F::kOffset) * (HSum(corr[t]) + tail[t]);
    } else {
      out[t] = dot;
    }
  }
}

// ---- K formats (activation blocks of 256 with sums per 16) ---------------

// NT tokens' activations for one super-block: token t's int8 values at
// q + t * q_stride, its 16 sums of 16 at bsums + t * bs_stride and its scale
// at dx[t * dx_stride]. Strides rather than an array of per-token pointers,
// which the compiler kept on the stack and reloaded for every load.
struct TokK {
  const int8_t* q;
  const int16_t* bsums;
  const float* dx;
  size_t q_stride, bs_stride, dx_stride;
  HWY_INLINE __m256i Q(int t, size_t off) const { return Load(q + size_t(t) * q_stride + off); }
  HWY_INLINE __m256i Bsums(int t) const { return Load(bsums + size_t(t) * bs_stride); }
  HWY_INLINE float Dx(int t) const { return dx[size_t(t) * dx_stride]; }
  HWY_INLINE void Next() {
    q += 256;
    bsums += 16;
    dx += 1;
  }
};

// One super-block's integer sums of NT tokens: each format unpacks a
// 32-code vector once and hands it here with its i16 scales.
template <int NT>
struct KSums {
  const TokK& k;
  __m256i sumi[NT];
  explicit HWY_INLINE KSums(const TokK& tok) : k(tok) {
    for (int t = 0; t < NT; ++t) sumi[t] = _mm256_setzero_si256();
  }
  HWY_INLINE void operator()(__m256i codes, __m256i scales, size_t off) {
    for (int t = 0; t < NT; ++t) {
      sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(scales, _mm256_maddubs_epi16(codes, k.Q(t, off))));
      KeepOrder(sumi[t]);
    }
  }
};

struct Q2_K {
  static constexpr size_t kBytes = sizeof(BlockQ2_K);
  template <int NT>
  static HWY_INLINE void block(const uint8_t* p, const TokK& k, __m256* acc) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales));
    const __m128i m4 = _mm_set1_epi8(15);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
    const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
    const __m256i m3 = _mm256_set1_epi8(3);
    KSums<NT> s(k);
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = Load(b->qs + 32 * h);
      const __m256i scales = h == 0 ? DupLow(sc) : DupHigh(sc);
      s(_mm256_and_si256(bits, m3), PairScale(scales, 0), 128 * h);
      s(_mm256_and_si256(_mm256_srli_epi16(bits, 2), m3), PairScale(scales, 1), 128 * h + 32);
      s(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m3), PairScale(scales, 2), 128 * h + 64);
      s(_mm256_and_si256(_mm256_srli_epi16(bits, 6), m3), PairScale(scales, 3), 128 * h + 96);
    }
    const float d = F16(b->d), dmin = F16(b->dmin);
    for (int t = 0; t < NT; ++t) {
      // sum_j min_j * bsum_j: the -dmin * m term of every element.
      const __m256i prod = _mm256_madd_epi16(mins, k.Bsums(t));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * k.Dx(t)), _mm256_cvtepi32_ps(s.sumi[t]), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * k.Dx(t)), _mm256_cvtepi32_ps(prod), acc[t]);
    }
  }
};

struct Q3_K {
  static constexpr size_t kBytes = sizeof(BlockQ3_K);
  template <int NT>
  static HWY_INLINE void block(const uint8_t* p, const TokK& k, __m256* acc) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    // The 16 6-bit scales (see q3k_scales), in vector registers: low
    // nibbles from bytes 0-7 (scales 0-7) and their high halves (8-15); top
    // 2 bits of scale j from byte 8 + j % 4, shifted by 2 * (j / 4) (one
    // variable shift per 32-bit lane of the 4 bytes repeated).
    uint64_t lo8;
    uint32_t hi4;
    std::memcpy(&lo8, b->scales, 8);
    std::memcpy(&hi4, b->scales + 8, 4);
    const __m128i lo = _mm_cvtsi64_si128(int64_t(lo8));
    const __m128i low = _mm_and_si128(_mm_unpacklo_epi64(lo, _mm_srli_epi16(lo, 4)), _mm_set1_epi8(15));
    const __m128i top = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int32_t(hi4)), _mm_setr_epi32(0, 2, 4, 6)),
                                      _mm_set1_epi8(3));
    const __m128i sc8 = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(top, 4)), _mm_set1_epi8(32));
    const __m256i sc = _mm256_cvtepi8_epi16(sc8);
    const __m256i hm = Load(b->hmask);
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    KSums<NT> s(k);
    // Code of element 128h + 32j + l: bits 2j..2j+1 of qs[32h + l], plus 4
    // if bit 4h + j of hmask[l] is set.
    auto code = [&](__m256i bits, int j, __m256i high) {
      const __m256i low = _mm256_and_si256(j == 0 ? bits : _mm256_srli_epi16(bits, 2 * j), m3);
      return _mm256_or_si256(low, _mm256_and_si256(high, m4));
    };
    {
      const __m256i bits = Load(b->qs), scales = DupLow(sc);
      s(code(bits, 0, MoveBit<0, 2>(hm)), PairScale(scales, 0), 0);
      s(code(bits, 1, MoveBit<1, 2>(hm)), PairScale(scales, 1), 32);
      s(code(bits, 2, hm), PairScale(scales, 2), 64);
      s(code(bits, 3, MoveBit<3, 2>(hm)), PairScale(scales, 3), 96);
    }
    {
      const __m256i bits = Load(b->qs + 32), scales = DupHigh(sc);
      s(code(bits, 0, MoveBit<4, 2>(hm)), PairScale(scales, 0), 128);
      s(code(bits, 1, MoveBit<5, 2>(hm)), PairScale(scales, 1), 160);
      s(code(bits, 2, MoveBit<6, 2>(hm)), PairScale(scales, 2), 192);
      s(code(bits, 3, MoveBit<7, 2>(hm)), PairScale(scales, 3), 224);
    }
    const float d = F16(b->d);
    for (int t = 0; t < NT; ++t) {
      // Codes are q + 4: subtract 4 * sum_j sc_j * bsum_j.
      const __m256i corr = _mm256_madd_epi16(sc, k.Bsums(t));
      const __m256i sumi = _mm256_sub_epi32(s.sumi[t], _mm256_slli_epi32(corr, 2));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * k.Dx(t)), _mm256_cvtepi32_ps(sumi), acc[t]);
    }
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

  template <int c, class S>
  static HWY_INLINE void Pair(const B* b, S& s, __m256i scales, __m256i qh) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i bits = Load(b->qs + 32 * c);
    __m256i lo = _mm256_and_si256(bits, m4), hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    if constexpr (kHigh) {
      lo = _mm256_or_si256(lo, High<2 * c>(qh));
      hi = _mm256_or_si256(hi, High<2 * c + 1>(qh));
    }
    s(lo, OneScale(scales, 2 * c), 64 * c);
    s(hi, OneScale(scales, 2 * c + 1), 64 * c + 32);
  }

  // The 8 scales to bytes 0-7 and the 8 mins to bytes 8-15 (see
  // k4_scale_min) from the block's first 16 bytes (d, dmin, scales):
  // scale j < 4 is s[j] & 63, min j < 4 s[j + 4] & 63; for j >= 4 the low
  // nibble of s[j + 4] (scale) or its high nibble (min) with the top two
  // bits of s[j - 4] (scale) or s[j] (min) above it.
  static HWY_INLINE __m128i ScalesMinsK4(const uint8_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i low = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m128i top = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    const __m128i a = _mm_and_si128(low, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0));
    const __m128i b = _mm_and_si128(_mm_srli_epi16(low, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f));
    const __m128i c = _mm_and_si128(_mm_srli_epi16(top, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(_mm_or_si128(a, b), c);
  }

  template <int NT>
  static HWY_INLINE void block(const uint8_t* p, const TokK& k, __m256* acc) {
    const auto* b = reinterpret_cast<const B*>(p);
    const __m256i sm = _mm256_cvtepu8_epi16(ScalesMinsK4(p));
    const __m256i scales = DupLow(sm);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kHigh) qh = Load(b->qh);
    KSums<NT> s(k);
    Pair<0>(b, s, scales, qh);
    Pair<1>(b, s, scales, qh);
    Pair<2>(b, s, scales, qh);
    Pair<3>(b, s, scales, qh);
    // sum_j min_j * (sum of the 32 x^ of sub-block j): each min against
    // its two sums of 16, in lane j of one madd.
    const __m128i mins = _mm256_extracti128_si256(sm, 1);
    const __m256i mins2 = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(U16(p) | uint32_t(U16(p + 2)) << 16)));
    const __m256 d = _mm256_broadcastss_ps(dm), dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
    for (int t = 0; t < NT; ++t) {
      const __m256 m = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_madd_epi16(mins2, k.Bsums(t))));
      const __m256 v = _mm256_fmsub_ps(d, _mm256_cvtepi32_ps(s.sumi[t]), m);
      acc[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(k.Dx(t)), acc[t]);
    }
  }
};
using Q4_K = Q45_K<false>;
using Q5_K = Q45_K<true>;

// Q6_K: per half h, bytes ql[64h + l], ql[64h + 32 + l] and qh[32h + l]
// carry elements 128h + {l, 32+l, 64+l, 96+l}; codes are q + 32.
struct Q6_K {
  static constexpr size_t kBytes = sizeof(BlockQ6_K);
  template <int NT>
  static HWY_INLINE void block(const uint8_t* p, const TokK& k, __m256* acc) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    KSums<NT> s(k);
    for (int h = 0; h < 2; ++h) {
      const __m256i a = Load(b->ql + 64 * h), c = Load(b->ql + 64 * h + 32), hb = Load(b->qh + 32 * h);
      const __m256i scales = h == 0 ? DupLow(sc) : DupHigh(sc);
      s(_mm256_or_si256(_mm256_and_si256(a, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
        PairScale(scales, 0), 128 * h);
      s(_mm256_or_si256(_mm256_and_si256(c, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
        PairScale(scales, 1), 128 * h + 32);
      s(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(hb, m30)),
        PairScale(scales, 2), 128 * h + 64);
      s(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30)),
        PairScale(scales, 3), 128 * h + 96);
    }
    const float d = F16(b->d);
    for (int t = 0; t < NT; ++t) {
      const __m256i corr = _mm256_madd_epi16(sc, k.Bsums(t));
      const __m256i sumi = _mm256_sub_epi32(s.sumi[t], _mm256_slli_epi32(corr, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * k.Dx(t)), _mm256_cvtepi32_ps(sumi), acc[t]);
    }
  }
};

// out[t] = row . x_t for the NT tokens from t0 on.
template <class F, int NT>
HWY_NOINLINE void DotRows256(const uint8_t* row, const Q8Act& a, size_t t0, size_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  TokK k{a.qs + t0 * a.K, a.bsums + t0 * (a.K / 16), a.d + t0 * nb, a.K, a.K / 16, nb};
  for (size_t b = 0; b < nb; ++b, k.Next()) {
    const uint8_t* p = row + b * F::kBytes;
    for (size_t o = 0; o < F::kBytes; o += 64) Prefetch(p + kPrefetchBytes + o);
    F::template block<NT>(p, k, acc);
  }
  for (int t = 0; t < NT; ++t) out[t] = HSum(acc[t]);
}

// ---- rows ------------------------------------------------------------------

// Decode (T = 1) streams the rows once. Prefill takes the rows in chunks
// that stay in L2 and, for each group of up to 4 tokens, passes over the
// chunk unpacking each weight block once for the whole group.
constexpr size_t kChunkBytes = 64 << 10;
constexpr int kMaxGroup = 4;

template <class F>
HWY_INLINE void Dots32(int nt, const uint8_t* row, const Tok32& tok, size_t nb, float* out) {
  switch (nt) {
    case 1: return DotRows32<F, 1>(row, tok, nb, out);
    case 2: return DotRows32<F, 2>(row, tok, nb, out);
    case 3: return DotRows32<F, 3>(row, tok, nb, out);
    default: return DotRows32<F, 4>(row, tok, nb, out);
  }
}

template <class F>
HWY_INLINE void Dots256(int nt, const uint8_t* row, const Q8Act& a, size_t t0, size_t nb, float* out) {
  switch (nt) {
    case 1: return DotRows256<F, 1>(row, a, t0, nb, out);
    case 2: return DotRows256<F, 2>(row, a, t0, nb, out);
    case 3: return DotRows256<F, 3>(row, a, t0, nb, out);
    default: return DotRows256<F, 4>(row, a, t0, nb, out);
  }
}

template <class F, class Dots>
void Rows(const Q8Act& a, size_t nb, const uint8_t* W, size_t r0, size_t r1, float* y, size_t ldy, Dots dots) {
  const size_t rb = nb * F::kBytes;
  const size_t chunk = a.T == 1 ? r1 - r0 : std::max<size_t>(1, kChunkBytes / rb);
  for (size_t c0 = r0; c0 < r1; c0 += chunk) {
    const size_t c1 = std::min(r1, c0 + chunk);
    for (size_t t0 = 0; t0 < a.T; t0 += kMaxGroup) {
      const int nt = int(std::min<size_t>(kMaxGroup, a.T - t0));
      for (size_t r = c0; r < c1; ++r) {
        float out[kMaxGroup];
        dots(nt, W + r * rb, t0, out);
        for (int t = 0; t < nt; ++t) y[(t0 + size_t(t)) * ldy + r] = out[t];
      }
    }
  }
}

template <class F>
void Rows32(const Q8Act& a, const uint8_t* W, size_t r0, size_t r1, float* y, size_t ldy) {
  const size_t nb = a.K / 32;
  Rows<F>(a, nb, W, r0, r1, y, ldy, [&](int nt, const uint8_t* row, size_t t0, float* out) {
    const Tok32 tok{a.qs + t0 * a.K, a.d + t0 * nb, a.s + t0 * nb, a.isum + t0 * nb, a.K, nb};
    Dots32<F>(nt, row, tok, nb, out);
  });
}

template <class F>
void Rows256(const Q8Act& a, const uint8_t* W, size_t r0, size_t r1, float* y, size_t ldy) {
  const size_t nb = a.K / 256;
  Rows<F>(a, nb, W, r0, r1, y, ldy,
          [&](int nt, const uint8_t* row, size_t t0, float* out) { Dots256<F>(nt, row, a, t0, nb, out); });
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
