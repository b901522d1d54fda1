// Integer dot products of MLX affine weights (mlx_affine.h) with int8
// activations in the Q8_0 layout (blocks of 32 in element order, a scale d
// and a scaled sum s = d * sum(q) per block). Highway's foreach_target
// re-includes this file once per instruction set; the kernels exist for AVX2
// and AVX-512 (256-bit AVX2 intrinsics, and 512-bit spans for 3-bit rows on
// AVX-512), other targets report none and the caller dequantizes instead.
//
// Per group g of a row with scale s_g and bias b_g:
//   sum_k (s_g q_k + b_g) x_k = s_g * sum_j d_j (q . x^)_j + b_g * sum_j s_j
// over the group's 32-element chunks j. 6- and 8-bit rows are unpacked a
// chunk at a time into 32 codes in element order (CodesMlx); 2- and 4-bit
// rows a span of 4 or 2 chunks, 3-bit rows 8 (AVX2) or 4 (AVX-512) at a
// time against activations reordered once per call (PlanesOf); the chunks
// past a row's last span go the chunk way. Codes are unsigned and at most
// 63 below 8 bits, so maddubs pairs are at most 2 * 63 * 127 < 2^15, and the
// i16 sums of a span's maddubs results at most 4 * 2 * 3 * 127 (2 bits),
// 8 * 2 * 7 * 127 (3) or 2 * 2 * 15 * 127 (4), all below 2^15. 8-bit codes
// are taken as q - 128 (signed, the Q8_0 sign trick: |q - 128| <= 128) with
// the bias raised by 128 * s_g.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/mlx_q8_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "quant/matmul_internal.h"
#include "quant/mlx_affine.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace moeflux::quant::detail {
namespace HWY_NAMESPACE {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

bool MlxIntKernelsAvailable() { return true; }

// As matmul_q8_kernels.cpp: software prefetch this far ahead of the stream.
constexpr size_t kMlxPrefetchBytes = 4096;

HWY_INLINE __m256i LoadMlx(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

HWY_INLINE float HSumMlx(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Bytes a chunk of 32 codes occupies, and bytes its unpacking loads (3- and
// 6-bit chunks load a few bytes past their own; the last chunk of a row is
// copied first so that no load leaves the matrix).
template <int B>
constexpr size_t kChunkBytesMlx = 4 * B;
template <int B>
constexpr size_t kChunkLoadMlx = B == 3 ? 16 : B == 6 ? 28 : 4 * B;

// 32 codes of a chunk, in element order, one per byte.
template <int B>
HWY_INLINE __m256i CodesMlx(const uint8_t* p) {
  if constexpr (B == 2) {
    // Byte i holds elements 4i..4i+3 at bits 0-1, 2-3, 4-5, 6-7: spread to
    // the four bytes of dword i.
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m256i r = _mm256_or_si256(_mm256_or_si256(v, _mm256_slli_epi32(v, 6)),
                                      _mm256_or_si256(_mm256_slli_epi32(v, 12), _mm256_slli_epi32(v, 18)));
    return _mm256_and_si256(r, _mm256_set1_epi8(3));
  } else if constexpr (B == 4) {
    // Byte i holds elements 2i (low nibble) and 2i + 1: word i's two bytes.
    const __m256i t = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_and_si256(_mm256_or_si256(t, _mm256_slli_epi16(t, 4)), _mm256_set1_epi8(15));
  } else if constexpr (B == 8) {
    return LoadMlx(p);
  } else if constexpr (B == 3) {
    // Elements 4i..4i+3 are bits [12i, 12i + 12): the two bytes from byte
    // 3i/2 into dword i, shifted down by 4 for odd i, then 3 bits per byte.
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i idx = _mm256_setr_epi8(0, 1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1, 4, 5, -1, -1,  //
                                         6, 7, -1, -1, 7, 8, -1, -1, 9, 10, -1, -1, 10, 11, -1, -1);
    const __m256i d = _mm256_srlv_epi32(_mm256_shuffle_epi8(v, idx), _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    const __m256i r = _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(d, _mm256_set1_epi32(0x7)),
                        _mm256_and_si256(_mm256_slli_epi32(d, 5), _mm256_set1_epi32(0x700))),
        _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(d, 10), _mm256_set1_epi32(0x70000)),
                        _mm256_and_si256(_mm256_slli_epi32(d, 15), _mm256_set1_epi32(0x7000000))));
    return r;
  } else {
    static_assert(B == 6);
    // Elements 4i..4i+3 are bytes 3i..3i+2: 12 bytes per 128-bit lane, then
    // 6 bits per byte.
    const __m256i v = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 12),
                                          reinterpret_cast<const __m128i*>(p));
    const __m256i idx = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,  //
                                         0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    const __m256i d = _mm256_shuffle_epi8(v, idx);
    const __m256i r = _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(d, _mm256_set1_epi32(0x3F)),
                        _mm256_and_si256(_mm256_slli_epi32(d, 2), _mm256_set1_epi32(0x3F00))),
        _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(d, 4), _mm256_set1_epi32(0x3F0000)),
                        _mm256_and_si256(_mm256_slli_epi32(d, 6), _mm256_set1_epi32(0x3F000000))));
    return r;
  }
}

// i32 lane i: sum over elements 4i..4i+3 of the chunk of code * x^.
template <int B>
HWY_INLINE __m256i DotMlx(__m256i codes, const int8_t* q) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (B == 8) {
    const __m256i w = _mm256_xor_si256(codes, _mm256_set1_epi8(char(0x80)));  // q - 128
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(LoadMlx(q), w)), ones);
  } else {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, LoadMlx(q)), ones);
  }
}

// Scales and biases in the model's dtype, read as f32.
template <bool kF16>
struct Scale16 {
  static constexpr size_t kBytes = 2;
  static HWY_INLINE float At(const uint8_t* p, size_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return kF16 ? _cvtsh_ss(h) : bf16_to_f32(h);
  }
  static HWY_INLINE __m256 Vec8(const uint8_t* p, size_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i));
    if constexpr (kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
using ScaleF16 = Scale16<true>;
using ScaleBF16 = Scale16<false>;
struct ScaleF32 {
  static constexpr size_t kBytes = 4;
  static HWY_INLINE float At(const uint8_t* p, size_t i) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  static HWY_INLINE __m256 Vec8(const uint8_t* p, size_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p + 4 * i));
  }
};

// One token's activations: int8 values and d per 32 elements, the same
// values in the plane order of 2- and 4-bit rows (PlanesOf), and per group
// of the weights the sum of the block sums s = d * sum(q) it covers.
struct TokMlx {
  const int8_t* q;
  const int8_t* planes;
  const float* d;
  const float* group_sum;
};

struct RowMlx {
  const uint8_t* w;  // packed codes
  const uint8_t* scales;
  const uint8_t* biases;
};

// 2-, 3- and 4-bit rows are read a span at a time, each span's codes
// dotted with one madd, convert and FMA, where chunks of 32 in element order
// cost one of each per 32 elements. The activations are reordered once per
// call to match (PlanesOf).
// - 2 and 4 bits: a span is 32 bytes, 32 * P elements (P = 8 / B values per
//   byte), shifted and masked into P "planes" of 32 codes each, plane i
//   holding value i of every byte (elements P m + i). The i32 lanes of a
//   span's madd cover 4 * P elements each: lane l belongs to activation
//   block l * P / 8 and to weight group 4 * P * l / gs.
// - 3 bits, AVX2: a span is 96 bytes, 256 values in 32 groups of 8 values
//   in 3 bytes; the bytes are split into three byte planes and value j of
//   every group taken from them into register j (Codes3Planes), so that
//   lane l of the madd sums groups 4l .. 4l + 3: activation block l.
// - 3 bits, AVX-512: a span is 48 bytes, 4 chunks in two 512-bit registers
//   (Codes3Wide).
template <int B>
constexpr size_t kPlanes = 8 / B;  // registers of codes per 2- or 4-bit span
template <int B>
constexpr bool kHasPlanes = B == 2 || B == 3 || B == 4;  // activations reordered

#if HWY_TARGET <= HWY_AVX3
// AVX-512, where each 3-bit value of a chunk's 16 values h * 16 .. h * 16 +
// 15 is: word w of a register holds value 2w in its low byte and 2w + 1 in
// its high byte. Each value's two bytes are gathered into a word of its
// own, then multiplied by 2^(8 - offset) to put the value at bits 8-10 (a
// variable left shift per word).
struct Unpack3 {
  int8_t even[2][16], odd[2][16];
  int16_t mul_even[2][8], mul_odd[2][8];
};
constexpr Unpack3 MakeUnpack3() {
  Unpack3 u{};
  for (int h = 0; h < 2; ++h)
    for (int w = 0; w < 8; ++w)
      for (int k = 0; k < 2; ++k) {
        const int v = 16 * h + 2 * w + k, bit = 3 * v, byte = bit / 8, off = bit % 8;
        int8_t* idx = k ? u.odd[h] : u.even[h];
        idx[2 * w] = int8_t(byte);
        idx[2 * w + 1] = int8_t(byte + 1);
        (k ? u.mul_odd[h] : u.mul_even[h])[w] = int16_t(1 << (8 - off));
      }
  return u;
}
constexpr Unpack3 kUnpack3 = MakeUnpack3();
#endif

template <class T>
HWY_INLINE __m256i Both128(const T* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

#if HWY_TARGET > HWY_AVX3
constexpr bool kWide3 = false;

// Shuffle indices splitting 48 bytes (three 16-byte registers) into their
// bytes 3i + c, c = 0, 1, 2: idx[c][r] picks from register r (-1: zero).
struct Deinterleave3 {
  int8_t idx[3][3][16];
};
constexpr Deinterleave3 MakeDeinterleave3() {
  Deinterleave3 d{};
  for (int c = 0; c < 3; ++c)
    for (int r = 0; r < 3; ++r)
      for (int i = 0; i < 16; ++i) {
        const int src = 3 * i + c;
        d.idx[c][r][i] = int8_t(src / 16 == r ? src % 16 : -1);
      }
  return d;
}
constexpr Deinterleave3 kDeinterleave3 = MakeDeinterleave3();

// The 256 codes of a 3-bit span (96 bytes at p): v[j] byte g holds value j
// of group g (bits 3j .. 3j + 2 of the group's 3 little-endian bytes),
// groups 0-15 in the low 128-bit lane. 16-bit shifts move neighbouring
// bytes' bits in; the masks drop them.
HWY_INLINE void Codes3Planes(const uint8_t* p, __m256i* v) {
  auto two = [p](size_t o) {
    return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 48 + o), reinterpret_cast<const __m128i*>(p + o));
  };
  const __m256i r[3] = {two(0), two(16), two(32)};
  __m256i b[3];
  for (int c = 0; c < 3; ++c)
    b[c] = _mm256_or_si256(_mm256_or_si256(_mm256_shuffle_epi8(r[0], Both128(kDeinterleave3.idx[c][0])),
                                           _mm256_shuffle_epi8(r[1], Both128(kDeinterleave3.idx[c][1]))),
                           _mm256_shuffle_epi8(r[2], Both128(kDeinterleave3.idx[c][2])));
  auto m = [](int bits) { return _mm256_set1_epi8(char(bits)); };
  v[0] = _mm256_and_si256(b[0], m(7));
  v[1] = _mm256_and_si256(_mm256_srli_epi16(b[0], 3), m(7));
  v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b[0], 6), m(3)),
                         _mm256_and_si256(_mm256_slli_epi16(b[1], 2), m(4)));
  v[3] = _mm256_and_si256(_mm256_srli_epi16(b[1], 1), m(7));
  v[4] = _mm256_and_si256(_mm256_srli_epi16(b[1], 4), m(7));
  v[5] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b[1], 7), m(1)),
                         _mm256_and_si256(_mm256_slli_epi16(b[2], 1), m(6)));
  v[6] = _mm256_and_si256(_mm256_srli_epi16(b[2], 2), m(7));
  v[7] = _mm256_and_si256(_mm256_srli_epi16(b[2], 5), m(7));
}
#else
// With AVX-512 a 3-bit span is 4 chunks (48 bytes, 128 values) in two
// 512-bit registers: 128-bit lane k holds chunk k, its values 0-15 in the
// first register and 16-31 in the second. (The 3-bit rows were the
// compute-bound ones: 61-64% of DRAM on the 16-core Xeon with 256-bit spans
// of 2 chunks in this layout, 70-86% with these.)
constexpr bool kWide3 = true;
constexpr size_t kWide3Bytes = 48;

template <class T>
HWY_INLINE __m512i All128(const T* p) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Reads 52 bytes at p.
HWY_INLINE void Codes3Wide(const uint8_t* p, __m512i* out) {
  auto at = [p](size_t o) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + o)); };
  __m512i v = _mm512_castsi128_si512(at(0));
  v = _mm512_inserti32x4(v, at(12), 1);
  v = _mm512_inserti32x4(v, at(24), 2);
  v = _mm512_inserti32x4(v, at(36), 3);
  for (int h = 0; h < 2; ++h) {
    const __m512i e =
        _mm512_mullo_epi16(_mm512_shuffle_epi8(v, All128(kUnpack3.even[h])), All128(kUnpack3.mul_even[h]));
    const __m512i o =
        _mm512_mullo_epi16(_mm512_shuffle_epi8(v, All128(kUnpack3.odd[h])), All128(kUnpack3.mul_odd[h]));
    out[h] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(e, 8), _mm512_set1_epi16(0x0007)),
                             _mm512_and_si512(o, _mm512_set1_epi16(0x0700)));
  }
}
#endif

// Qword j of q[0], q[1], q[2], q[3] side by side at dst + 32 j (a 4 x 4
// transpose of qwords).
HWY_INLINE void StoreQwordsTransposed(const __m256i* q, int8_t* dst) {
  const __m256i a = _mm256_unpacklo_epi64(q[0], q[1]), b = _mm256_unpackhi_epi64(q[0], q[1]);
  const __m256i c = _mm256_unpacklo_epi64(q[2], q[3]), d = _mm256_unpackhi_epi64(q[2], q[3]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(a, c, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32), _mm256_permute2x128_si256(b, d, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 64), _mm256_permute2x128_si256(a, c, 0x31));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 96), _mm256_permute2x128_si256(b, d, 0x31));
}

// x (K int8 values in element order) into plane order for B-bit rows: for
// each span, plane i's 32 values (elements P m + i, m = 0..31) in turn.
// Elements past the last whole span are copied as they are.
template <int B>
void PlanesOf(const int8_t* x, size_t K, int8_t* out) {
  if constexpr (B == 3 && kWide3) {
    // Per span of 4 chunks: values 0-15 of each chunk in turn, then 16-31.
    const size_t spans = K / 128;
    for (size_t sp = 0; sp < spans; ++sp)
      for (size_t h = 0; h < 2; ++h)
        for (size_t c = 0; c < 4; ++c)
          std::memcpy(out + sp * 128 + 64 * h + 16 * c, x + sp * 128 + 32 * c + 16 * h, 16);
    std::memcpy(out + spans * 128, x + spans * 128, K - spans * 128);
  } else if constexpr (B == 3) {
    // Per span of 256: value j of each group of 8 in turn (Codes3Planes),
    // a transpose of 32 x 8 bytes. Per block of 8 groups (two registers):
    // each lane's two groups interleaved by value (words), words of the
    // two registers interleaved (dword j: value j of 4 groups, the lanes
    // holding groups 0, 1, 4, 5 and 2, 3, 6, 7), the lanes' dwords paired
    // and the bytes put in group order: qword j = value j of the 8 groups.
    // Then the 4 blocks' qwords j side by side.
    const __m256i by_value = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,  //
                                              0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const __m256i pair_lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i in_order = _mm256_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15,  //
                                              0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15);
    const size_t spans = K / 256;
    for (size_t sp = 0; sp < spans; ++sp) {
      const int8_t* in = x + sp * 256;
      __m256i lo[4], hi[4];  // block b: qword j of lo = value j, of hi = value 4 + j
      for (int b = 0; b < 4; ++b) {
        const __m256i r0 = _mm256_shuffle_epi8(LoadMlx(in + 64 * b), by_value);
        const __m256i r1 = _mm256_shuffle_epi8(LoadMlx(in + 64 * b + 32), by_value);
        auto order = [&](__m256i v) HWY_ATTR {
          return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, pair_lanes), in_order);
        };
        lo[b] = order(_mm256_unpacklo_epi16(r0, r1));
        hi[b] = order(_mm256_unpackhi_epi16(r0, r1));
      }
      StoreQwordsTransposed(lo, out + sp * 256);
      StoreQwordsTransposed(hi, out + sp * 256 + 128);
    }
    std::memcpy(out + spans * 256, x + spans * 256, K - spans * 256);
  } else {
    constexpr size_t P = kPlanes<B>, span = 32 * P;
    const size_t spans = K / span;
    for (size_t sp = 0; sp < spans; ++sp) {
      const int8_t* in = x + sp * span;
      int8_t* o = out + sp * span;
      if constexpr (B == 4) {
        // Per 128-bit lane: even elements to the low 8 bytes, odd to the high.
        const __m256i idx = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                             0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        const __m256i a = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(LoadMlx(in), idx), 0xD8);
        const __m256i b = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(LoadMlx(in + 32), idx), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_permute2x128_si256(a, b, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 32), _mm256_permute2x128_si256(a, b, 0x31));
      } else {
        // Per 128-bit lane: dword i gathers value i of 4 consecutive bytes'
        // elements; then a transpose of 64-bit pieces across 4 registers.
        const __m256i idx = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,  //
                                             0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        __m256i r[4];
        for (int k = 0; k < 4; ++k)
          r[k] = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(LoadMlx(in + 32 * k), idx), lanes);
        StoreQwordsTransposed(r, o);
      }
    }
    std::memcpy(out + spans * span, x + spans * span, K - spans * span);
  }
}

// out[t] = row . x_t for NT tokens, the weights unpacked once for all of
// them. Per row, the group scales are converted to f32 into `scratch`
// (groups + 8 floats) and the bias terms sum_g b_g * group_sum_g are one
// vector dot per token. With one token, consecutive spans or chunks
// alternate between two accumulators so that FMAs do not wait on each
// other. The scalar terms use explicit fma, so that a token's result has
// the same bits whatever NT (the compiler contracts a * b + c differently
// per instantiation otherwise).
template <int B, class S, int NT>
HWY_NOINLINE void DotRowsMlx(const RowMlx& row, const TokMlx* tok, size_t K, size_t gs, float* scratch, float* out) {
  constexpr size_t kCB = kChunkBytesMlx<B>;
  const size_t chunks = K / 32, groups = K / gs;
  // gs is a power of two: a shift, not a division per chunk (a 64-bit
  // division per chunk made the 8-bit kernel 3.5x slower than Q8_0's on the
  // Xeon, 2026-11-28).
  const int gs_shift = __builtin_ctzll(gs);

  // Scales to f32; biases (for 8 bits raised by 128 s) dotted with the
  // group sums.
  float* sf = scratch;
  __m256 bacc[NT];
  float bias_sum[NT];
  for (int t = 0; t < NT; ++t) bacc[t] = _mm256_setzero_ps(), bias_sum[t] = 0.0f;
  size_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m256 s8 = S::Vec8(row.scales, g);
    _mm256_storeu_ps(sf + g, s8);
    __m256 b8 = S::Vec8(row.biases, g);
    if constexpr (B == 8) b8 = _mm256_fmadd_ps(_mm256_set1_ps(128.0f), s8, b8);
    for (int t = 0; t < NT; ++t) bacc[t] = _mm256_fmadd_ps(b8, _mm256_loadu_ps(tok[t].group_sum + g), bacc[t]);
  }
  for (; g < groups; ++g) {
    const float sc = S::At(row.scales, g);
    sf[g] = sc;
    float b = S::At(row.biases, g);
    if constexpr (B == 8) b = std::fma(128.0f, sc, b);
    for (int t = 0; t < NT; ++t) bias_sum[t] = std::fma(b, tok[t].group_sum[g], bias_sum[t]);
  }

  __m256 acc[NT], acc2[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps(), acc2[t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  size_t done = 0;  // chunks handled by the plane loop
  float wide[NT] = {};
#if HWY_TARGET <= HWY_AVX3
  if constexpr (B == 3) {
    const size_t spans = K / 128;
    // Lane l of a span's madd covers chunk l / 4 of the span.
    const __m512i idx_d = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    int lane_group[16];
    for (int l = 0; l < 16; ++l) lane_group[l] = int((32 * size_t(l / 4)) >> gs_shift);
    const __m512i idx_s = _mm512_loadu_si512(lane_group);
    const __m512i ones16 = _mm512_set1_epi16(1);
    // A last span that ends the row is copied: its 52-byte load would
    // leave the matrix.
    alignas(64) uint8_t span_tail[64];
    const bool copy_last = spans * 4 == chunks && spans > 0;
    if (copy_last) std::memcpy(span_tail, row.w + (spans - 1) * kWide3Bytes, kWide3Bytes);
    __m512 wacc[NT];
    for (int t = 0; t < NT; ++t) wacc[t] = _mm512_setzero_ps();
    for (size_t sp = 0; sp < spans; ++sp) {
      const uint8_t* p = row.w + sp * kWide3Bytes;
      _mm_prefetch(reinterpret_cast<const char*>(p + kMlxPrefetchBytes), _MM_HINT_T0);
      __m512i codes[2];
      Codes3Wide(copy_last && sp + 1 == spans ? span_tail : p, codes);
      const size_t e0 = sp * 128;
      const __m512 sv =
          gs >= 128 ? _mm512_set1_ps(sf[e0 >> gs_shift])
                    : _mm512_permutexvar_ps(idx_s, _mm512_castps128_ps512(_mm_loadu_ps(sf + (e0 >> gs_shift))));
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = tok[t].planes + e0;
        const __m512i p16 = _mm512_add_epi16(_mm512_maddubs_epi16(codes[0], _mm512_loadu_si512(xp)),
                                             _mm512_maddubs_epi16(codes[1], _mm512_loadu_si512(xp + 64)));
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_madd_epi16(p16, ones16));
        const __m512 dv = _mm512_permutexvar_ps(idx_d, _mm512_castps128_ps512(_mm_loadu_ps(tok[t].d + sp * 4)));
        wacc[t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dv, sv), wacc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) wide[t] = _mm512_reduce_add_ps(wacc[t]);
    done = spans * 4;
  }
#else
  if constexpr (B == 3) {
    const size_t spans = K / 256;
    // Lane l of a span's madd is chunk l of the span.
    int lane_group[8];
    for (int l = 0; l < 8; ++l) lane_group[l] = int((32 * size_t(l)) >> gs_shift);
    const __m256i idx_s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_group));
    for (size_t sp = 0; sp < spans; ++sp) {
      const uint8_t* p = row.w + sp * 96;
      _mm_prefetch(reinterpret_cast<const char*>(p + kMlxPrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + kMlxPrefetchBytes + 64), _MM_HINT_T0);
      __m256i v[8];
      Codes3Planes(p, v);
      const size_t e0 = sp * 256;
      const __m256 sv = _mm256_permutevar8x32_ps(_mm256_loadu_ps(sf + (e0 >> gs_shift)), idx_s);
      __m256* into = NT == 1 && (sp & 1) ? acc2 : acc;
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = tok[t].planes + e0;
        // 8 products of at most 2 * 7 * 127 per i16 lane: below 2^15.
        __m256i p16 = _mm256_maddubs_epi16(v[0], LoadMlx(xp));
        for (size_t j = 1; j < 8; ++j) p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(v[j], LoadMlx(xp + 32 * j)));
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        into[t] = _mm256_fmadd_ps(dot, _mm256_mul_ps(_mm256_loadu_ps(tok[t].d + 8 * sp), sv), into[t]);
      }
    }
    done = spans * 8;
  }
#endif
  if constexpr (kHasPlanes<B> && B != 3) {
    constexpr size_t P = kPlanes<B>, span = 32 * P;
    const size_t spans = K / span;
    const __m256i idx_d =
        P == 2 ? _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1) : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    int lane_group[8];
    for (int l = 0; l < 8; ++l) lane_group[l] = int((4 * P * size_t(l)) >> gs_shift);
    const __m256i idx_s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_group));
    const __m256i mask = _mm256_set1_epi8(char((1 << B) - 1));
    auto span_dot = [&](size_t sp, __m256* into, auto group_covers_span) HWY_ATTR {
      const uint8_t* p = row.w + sp * 32;
      _mm_prefetch(reinterpret_cast<const char*>(p + kMlxPrefetchBytes), _MM_HINT_T0);
      __m256i codes[P];
      const __m256i v = LoadMlx(p);
      for (size_t i = 0; i < P; ++i) codes[i] = _mm256_and_si256(_mm256_srli_epi16(v, int(B * i)), mask);
      const size_t e0 = sp * span;
      const __m256 sv = group_covers_span ? _mm256_broadcast_ss(sf + (e0 >> gs_shift))
                                          : _mm256_permutevar8x32_ps(_mm256_loadu_ps(sf + (e0 >> gs_shift)), idx_s);
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = tok[t].planes + e0;
        __m256i p16 = _mm256_maddubs_epi16(codes[0], LoadMlx(xp));
        for (size_t i = 1; i < P; ++i)
          p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(codes[i], LoadMlx(xp + 32 * i)));
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        const __m128 d4 = P == 2 ? _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(tok[t].d + sp * P)))
                                 : _mm_loadu_ps(tok[t].d + sp * P);
        const __m256 dv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), idx_d);
        into[t] = _mm256_fmadd_ps(dot, _mm256_mul_ps(dv, sv), into[t]);
      }
    };
    // One loop per case of the group size, so that the choice of the
    // scale vector is not a branch per span.
    auto loop = [&](auto group_covers_span) HWY_ATTR {
      for (size_t sp = 0; sp < spans; sp += 2) {
        span_dot(sp, acc, group_covers_span);
        if (sp + 1 < spans) span_dot(sp + 1, NT == 1 ? acc2 : acc, group_covers_span);
      }
    };
    if (gs >= span)
      loop(std::true_type{});
    else
      loop(std::false_type{});
    done = spans * P;
  }

  // Chunks of 32 in element order: every row of 6 and 8 bits, and the
  // chunks past the last whole span of 2, 3 and 4 bits.
  alignas(32) uint8_t tail[32];
  if constexpr (kChunkLoadMlx<B> > kCB) std::memcpy(tail, row.w + (chunks - 1) * kCB, kCB);
  auto chunk_dot = [&](size_t j, __m256* into) HWY_ATTR {
    const uint8_t* p = row.w + j * kCB;
    _mm_prefetch(reinterpret_cast<const char*>(p + kMlxPrefetchBytes), _MM_HINT_T0);
    if constexpr (kChunkLoadMlx<B> > kCB)
      if (j + 1 == chunks) p = tail;
    const __m256i codes = CodesMlx<B>(p);
    const __m256 sv = _mm256_broadcast_ss(sf + ((j * 32) >> gs_shift));
    for (int t = 0; t < NT; ++t) {
      const __m256 dot = _mm256_cvtepi32_ps(DotMlx<B>(codes, tok[t].q + 32 * j));
      into[t] = _mm256_fmadd_ps(dot, _mm256_mul_ps(_mm256_broadcast_ss(tok[t].d + j), sv), into[t]);
    }
  };
  for (size_t j = done; j < chunks; j += 2) {
    chunk_dot(j, acc);
    if (j + 1 < chunks) chunk_dot(j + 1, NT == 1 ? acc2 : acc);
  }
  for (int t = 0; t < NT; ++t) {
    const __m256 a = NT == 1 ? _mm256_add_ps(acc[t], acc2[t]) : acc[t];
    out[t] = (HSumMlx(a) + wide[t]) + (HSumMlx(bacc[t]) + bias_sum[t]);
  }
}

// Decode (T = 1) streams the rows once; prefill takes rows in chunks that
// stay in L2 and passes over a chunk once per group of up to 4 tokens.
constexpr size_t kMlxChunkBytes = 64 << 10;
constexpr int kMlxMaxGroup = 4;

template <int B, class S>
void RowsMlx(const Q8Act& a, const MlxAffine& q, size_t r0, size_t r1, float* y, size_t ldy) {
  const size_t K = a.K, gs = size_t(q.group_size), nb = K / 32, groups = K / gs;
  const size_t rb = K / 32 * kChunkBytesMlx<B>, sb = groups * S::kBytes;
  const auto* W = reinterpret_cast<const uint8_t*>(q.weight);
  const auto* Sc = static_cast<const uint8_t*>(q.scales);
  const auto* Bi = static_cast<const uint8_t*>(q.biases);
  // Per token and group, the sum of its blocks' s (in block order, the
  // same bits for every row range and token grouping).
  thread_local std::vector<float> group_sums;
  group_sums.resize(a.T * groups);
  for (size_t t = 0; t < a.T; ++t)
    for (size_t g = 0; g < groups; ++g) {
      float sum = 0.0f;
      for (size_t j = g * (gs / 32); j < (g + 1) * (gs / 32); ++j) sum += a.s[t * nb + j];
      group_sums[t * groups + g] = sum;
    }
  // Plane order of the activations (2 and 4 bits), once per call.
  thread_local std::vector<int8_t> planes;
  if constexpr (kHasPlanes<B>) {
    planes.resize(a.T * K);
    for (size_t t = 0; t < a.T; ++t) PlanesOf<B>(a.qs + t * K, K, planes.data() + t * K);
  }
  thread_local std::vector<float> scratch;
  scratch.resize(groups + 8);
  const size_t ahead = std::max<size_t>(1, (kMlxPrefetchBytes + rb - 1) / rb);
  const size_t chunk = a.T == 1 ? r1 - r0 : std::max<size_t>(1, kMlxChunkBytes / rb);
  for (size_t c0 = r0; c0 < r1; c0 += chunk) {
    const size_t c1 = std::min(r1, c0 + chunk);
    for (size_t t0 = 0; t0 < a.T; t0 += kMlxMaxGroup) {
      const int nt = int(std::min<size_t>(kMlxMaxGroup, a.T - t0));
      TokMlx tok[kMlxMaxGroup];
      for (int t = 0; t < nt; ++t) {
        const size_t tt = t0 + size_t(t);
        tok[t] = TokMlx{a.qs + tt * K, kHasPlanes<B> ? planes.data() + tt * K : nullptr, a.d + tt * nb,
                        group_sums.data() + tt * groups};
      }
      for (size_t r = c0; r < c1; ++r) {
        const RowMlx row{W + r * rb, Sc + r * sb, Bi + r * sb};
        // The scales and biases of the row as far ahead as the weights'
        // prefetch: a row starts by converting them, and would otherwise
        // wait on their misses.
        for (size_t o = 0; o < sb; o += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(row.scales + ahead * sb + o), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(row.biases + ahead * sb + o), _MM_HINT_T0);
        }
        float out[kMlxMaxGroup];
        float* sp = scratch.data();
        switch (nt) {
          case 1: DotRowsMlx<B, S, 1>(row, tok, K, gs, sp, out); break;
          case 2: DotRowsMlx<B, S, 2>(row, tok, K, gs, sp, out); break;
          case 3: DotRowsMlx<B, S, 3>(row, tok, K, gs, sp, out); break;
          default: DotRowsMlx<B, S, 4>(row, tok, K, gs, sp, out); break;
        }
        for (int t = 0; t < nt; ++t) y[(t0 + size_t(t)) * ldy + r] = out[t];
      }
    }
  }
}

template <class S>
void RowsMlxBits(const Q8Act& a, const MlxAffine& q, size_t r0, size_t r1, float* y, size_t ldy) {
  switch (q.bits) {
    case 2: return RowsMlx<2, S>(a, q, r0, r1, y, ldy);
    case 3: return RowsMlx<3, S>(a, q, r0, r1, y, ldy);
    case 4: return RowsMlx<4, S>(a, q, r0, r1, y, ldy);
    case 6: return RowsMlx<6, S>(a, q, r0, r1, y, ldy);
    default: return RowsMlx<8, S>(a, q, r0, r1, y, ldy);  // bits checked by the caller
  }
}

void MlxMatmulRowsQ8(const Q8Act& a, const MlxAffine& q, size_t r0, size_t r1, float* y, size_t ldy) {
  switch (q.scale_type) {
    case MlxScaleType::BF16: return RowsMlxBits<ScaleBF16>(a, q, r0, r1, y, ldy);
    case MlxScaleType::F16: return RowsMlxBits<ScaleF16>(a, q, r0, r1, y, ldy);
    case MlxScaleType::F32: return RowsMlxBits<ScaleF32>(a, q, r0, r1, y, ldy);
  }
}

#else  // below AVX2 the caller dequantizes rows instead

bool MlxIntKernelsAvailable() { return false; }
void MlxMatmulRowsQ8(const Q8Act&, const MlxAffine&, size_t, size_t, float*, size_t) {}

#endif

}  // namespace HWY_NAMESPACE
}  // namespace moeflux::quant::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace moeflux::quant::detail {

HWY_EXPORT(MlxIntKernelsAvailable);
HWY_EXPORT(MlxMatmulRowsQ8);

bool mlx_int_kernels_available() { return HWY_DYNAMIC_DISPATCH(MlxIntKernelsAvailable)(); }

void mlx_matmul_rows_q8(const Q8Act& a, const MlxAffine& q, size_t r0, size_t r1, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(MlxMatmulRowsQ8)(a, q, r0, r1, y, ldy);
}

}  // namespace moeflux::quant::detail
#endif
