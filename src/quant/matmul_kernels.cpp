// Fused dequant-matmul for the GGML formats with f32 activations
// (matmul_rows_exact, prefill, float weights). Highway's foreach_target
// re-includes this file once per instruction set.
//
// Each format is a decoder that turns one block into f32 weight vectors and
// hands them to a sink: DotSink multiplies into activations (decode),
// StoreSink writes a dequantized row (prefill). Vectors have N = 4, 8 or 16
// lanes on every x86 target, so a 16-element run of a block is always whole
// vectors.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/matmul_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "quant/blocks.h"
#include "quant/dequant.h"
#include "quant/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace moeflux::quant {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
// One-lane target (compilers without a usable EMU128): the reference
// dequantizer and a plain dot; only reached on CPUs without SSSE3.
void MatmulRows(const float* x, size_t ldx, size_t T, const uint8_t* W, uint32_t wtype, size_t K, size_t r0,
                size_t r1, float* y, size_t ldy) {
  const size_t rb = *ggml_row_bytes(GgmlType(wtype), K);
  std::vector<float> w(K);
  for (size_t r = r0; r < r1; ++r) {
    dequantize_row(GgmlType(wtype), W + r * rb, w.data(), K);
    for (size_t t = 0; t < T; ++t) {
      float s = 0;
      for (size_t k = 0; k < K; ++k) s += w[k] * x[t * ldx + k];
      y[t * ldy + r] = s;
    }
  }
}
#else
using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;
constexpr size_t N = hn::MaxLanes(DF());
static_assert(N >= 4 && 16 % N == 0, "decoders assume 4, 8 or 16 f32 lanes");

HWY_INLINE VI U8(const uint8_t* p) { return hn::PromoteTo(DI(), hn::LoadU(DU8(), p)); }
HWY_INLINE VI I8(const int8_t* p) { return hn::PromoteTo(DI(), hn::LoadU(DI8(), p)); }
HWY_INLINE VF F(VI v) { return hn::ConvertTo(DF(), v); }
HWY_INLINE VI C(int v) { return hn::Set(DI(), v); }

// ---- sinks -------------------------------------------------------------

// Four accumulators, picked by the vector's position, hide the FMA latency;
// offsets are compile-time constants once the decoders' loops are unrolled.
struct DotSink {
  const float* x;
  VF acc[4];
  HWY_INLINE void operator()(size_t off, VF w) {
    VF& a = acc[(off / N) & 3];
    a = hn::MulAdd(w, hn::LoadU(DF(), x + off), a);
  }
};

struct StoreSink {
  float* out;
  HWY_INLINE void operator()(size_t off, VF w) { hn::StoreU(w, DF(), out + off); }
};

// ---- decoders: one block -> sink(offset, weights) ----------------------

struct Q8_0 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockQ8_0);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
    const VF d = hn::Set(DF(), load_f16(b->d));
    for (size_t i = 0; i < 32; i += N) s(i, hn::Mul(F(I8(b->qs + i)), d));
  }
};

struct Q4_0 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockQ4_0);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(p);
    const VF d = hn::Set(DF(), load_f16(b->d));
    for (size_t i = 0; i < 16; i += N) {
      const VI v = U8(b->qs + i);
      s(i, hn::Mul(F(hn::Sub(hn::And(v, C(15)), C(8))), d));
      s(i + 16, hn::Mul(F(hn::Sub(hn::ShiftRight<4>(v), C(8))), d));
    }
  }
};

struct Q4_1 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockQ4_1);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(p);
    const VF d = hn::Set(DF(), load_f16(b->d)), m = hn::Set(DF(), load_f16(b->m));
    for (size_t i = 0; i < 16; i += N) {
      const VI v = U8(b->qs + i);
      s(i, hn::MulAdd(F(hn::And(v, C(15))), d, m));
      s(i + 16, hn::MulAdd(F(hn::ShiftRight<4>(v)), d, m));
    }
  }
};

// The fifth bit of element j is bit j of the little-endian qh word.
template <class B>
HWY_INLINE void q5_codes(const B* b, size_t i, VI& lo, VI& hi) {
  uint32_t qh;
  std::memcpy(&qh, b->qh, 4);
  const VI h = hn::Set(DI(), int32_t(qh));
  const VI v = U8(b->qs + i);
  const VI b0 = hn::And(h >> hn::Iota(DI(), int32_t(i)), C(1));
  const VI b1 = hn::And(h >> hn::Iota(DI(), int32_t(i + 16)), C(1));
  lo = hn::Or(hn::And(v, C(15)), hn::ShiftLeft<4>(b0));
  hi = hn::Or(hn::ShiftRight<4>(v), hn::ShiftLeft<4>(b1));
}

struct Q5_0 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockQ5_0);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(p);
    const VF d = hn::Set(DF(), load_f16(b->d));
    for (size_t i = 0; i < 16; i += N) {
      VI lo, hi;
      q5_codes(b, i, lo, hi);
      s(i, hn::Mul(F(hn::Sub(lo, C(16))), d));
      s(i + 16, hn::Mul(F(hn::Sub(hi, C(16))), d));
    }
  }
};

struct Q5_1 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockQ5_1);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ5_1*>(p);
    const VF d = hn::Set(DF(), load_f16(b->d)), m = hn::Set(DF(), load_f16(b->m));
    for (size_t i = 0; i < 16; i += N) {
      VI lo, hi;
      q5_codes(b, i, lo, hi);
      s(i, hn::MulAdd(F(lo), d, m));
      s(i + 16, hn::MulAdd(F(hi), d, m));
    }
  }
};

// e2m1 codes through a 16-byte table lookup (pshufb) on the packed bytes.
struct MXFP4 {
  static constexpr size_t kBlock = 32, kBytes = sizeof(BlockMXFP4);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(p);
    const VF d = hn::Set(DF(), e8m0_to_f32_half(b->e));
    const hn::Full128<int8_t> d16;
    const auto table = hn::LoadU(d16, kMxfp4Values);
    const DU8 du8;
    for (size_t i = 0; i < 16; i += N) {
      const auto v = hn::LoadU(du8, b->qs + i);
      const auto lo = hn::BitCast(DI8(), hn::TableLookupBytes(table, hn::And(v, hn::Set(du8, 15))));
      const auto hi = hn::BitCast(DI8(), hn::TableLookupBytes(table, hn::ShiftRight<4>(v)));
      s(i, hn::Mul(F(hn::PromoteTo(DI(), lo)), d));
      s(i + 16, hn::Mul(F(hn::PromoteTo(DI(), hi)), d));
    }
  }
};

// K formats. Element e of a super-block with 2-bit fields: byte
// (e/128)*32 + e%32, shift 2*((e%128)/32); scales per 16 elements.
struct Q2_K {
  static constexpr size_t kBlock = 256, kBytes = sizeof(BlockQ2_K);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
    const float d = load_f16(b->d), dmin = load_f16(b->dmin);
    float dl[16], ml[16];
    for (int j = 0; j < 16; ++j) {
      dl[j] = d * float(b->scales[j] & 0xF);
      ml[j] = dmin * float(b->scales[j] >> 4);
    }
    for (size_t h = 0; h < 2; ++h)
      for (size_t l = 0; l < 32; l += N) {
        const VI v = U8(b->qs + h * 32 + l);
        for (int sh = 0; sh < 4; ++sh) {
          const size_t e = h * 128 + size_t(sh) * 32 + l;
          const VI q = hn::And(hn::ShiftRightSame(v, 2 * sh), C(3));
          s(e, hn::MulSub(F(q), hn::Set(DF(), dl[e / 16]), hn::Set(DF(), ml[e / 16])));
        }
      }
  }
};

struct Q3_K {
  static constexpr size_t kBlock = 256, kBytes = sizeof(BlockQ3_K);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
    const float d = load_f16(b->d);
    int8_t sc[16];
    q3k_scales(b->scales, sc);
    float dl[16];
    for (int j = 0; j < 16; ++j) dl[j] = d * float(sc[j]);
    for (size_t h = 0; h < 2; ++h)
      for (size_t l = 0; l < 32; l += N) {
        const VI v = U8(b->qs + h * 32 + l);
        const VI m = U8(b->hmask + l);
        for (int sh = 0; sh < 4; ++sh) {
          const size_t e = h * 128 + size_t(sh) * 32 + l;
          const VI lo = hn::And(hn::ShiftRightSame(v, 2 * sh), C(3));
          const VI hb = hn::And(hn::ShiftRightSame(m, int(h) * 4 + sh), C(1));
          const VI q = hn::Sub(hn::Or(lo, hn::ShiftLeft<2>(hb)), C(4));
          s(e, hn::Mul(F(q), hn::Set(DF(), dl[e / 16])));
        }
      }
  }
};

// Q4_K/Q5_K: 8 sub-blocks of 32; sub-blocks 2c and 2c+1 share bytes
// qs[32c..32c+32) (low and high nibbles).
template <bool kHigh>
struct Q45_K {
  using B = std::conditional_t<kHigh, BlockQ5_K, BlockQ4_K>;
  static constexpr size_t kBlock = 256, kBytes = sizeof(B);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const B*>(p);
    const float d = load_f16(b->d), dmin = load_f16(b->dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      k4_scale_min(2 * c, b->scales, sc0, m0);
      k4_scale_min(2 * c + 1, b->scales, sc1, m1);
      const VF d0 = hn::Set(DF(), d * float(sc0)), mm0 = hn::Set(DF(), dmin * float(m0));
      const VF d1 = hn::Set(DF(), d * float(sc1)), mm1 = hn::Set(DF(), dmin * float(m1));
      for (size_t l = 0; l < 32; l += N) {
        const VI v = U8(b->qs + 32 * c + l);
        VI q0 = hn::And(v, C(15)), q1 = hn::ShiftRight<4>(v);
        if constexpr (kHigh) {
          const VI h = U8(b->qh + l);
          q0 = hn::Or(q0, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c), C(1))));
          q1 = hn::Or(q1, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c + 1), C(1))));
        }
        s(64 * size_t(c) + l, hn::MulSub(F(q0), d0, mm0));
        s(64 * size_t(c) + 32 + l, hn::MulSub(F(q1), d1, mm1));
      }
    }
  }
};
using Q4_K = Q45_K<false>;
using Q5_K = Q45_K<true>;

// Q6_K: per half h, bytes ql[64h + l], ql[64h + 32 + l] and qh[32h + l]
// carry elements 128h + {l, 32+l, 64+l, 96+l}.
struct Q6_K {
  static constexpr size_t kBlock = 256, kBytes = sizeof(BlockQ6_K);
  template <class S>
  static HWY_INLINE void decode(const uint8_t* p, S& s) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const float d = load_f16(b->d);
    float dl[16];
    for (int j = 0; j < 16; ++j) dl[j] = d * float(b->scales[j]);
    for (size_t h = 0; h < 2; ++h)
      for (size_t l = 0; l < 32; l += N) {
        const VI a = U8(b->ql + 64 * h + l), c = U8(b->ql + 64 * h + 32 + l), q = U8(b->qh + 32 * h + l);
        const size_t e = 128 * h + l;
        const VI v0 = hn::Or(hn::And(a, C(15)), hn::ShiftLeft<4>(hn::And(q, C(3))));
        const VI v1 = hn::Or(hn::And(c, C(15)), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(q), C(3))));
        const VI v2 = hn::Or(hn::ShiftRight<4>(a), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(q), C(3))));
        const VI v3 = hn::Or(hn::ShiftRight<4>(c), hn::ShiftLeft<4>(hn::ShiftRight<6>(q)));
        s(e, hn::Mul(F(hn::Sub(v0, C(32))), hn::Set(DF(), dl[e / 16])));
        s(e + 32, hn::Mul(F(hn::Sub(v1, C(32))), hn::Set(DF(), dl[(e + 32) / 16])));
        s(e + 64, hn::Mul(F(hn::Sub(v2, C(32))), hn::Set(DF(), dl[(e + 64) / 16])));
        s(e + 96, hn::Mul(F(hn::Sub(v3, C(32))), hn::Set(DF(), dl[(e + 96) / 16])));
      }
  }
};

// ---- rows ----------------------------------------------------------------

template <class Fmt>
HWY_NOINLINE float DotRow(const uint8_t* row, const float* x, size_t K) {
  DotSink s{x, {hn::Zero(DF()), hn::Zero(DF()), hn::Zero(DF()), hn::Zero(DF())}};
  for (size_t k = 0; k < K; k += Fmt::kBlock, row += Fmt::kBytes, s.x += Fmt::kBlock) Fmt::decode(row, s);
  return hn::GetLane(hn::SumOfLanes(DF(), hn::Add(hn::Add(s.acc[0], s.acc[1]), hn::Add(s.acc[2], s.acc[3]))));
}

template <class Fmt>
HWY_NOINLINE void DecodeRow(const uint8_t* row, float* out, size_t K) {
  StoreSink s{out};
  for (size_t k = 0; k < K; k += Fmt::kBlock, row += Fmt::kBytes, s.out += Fmt::kBlock) Fmt::decode(row, s);
}

// Float types: a "block" is one element; vectors of N plus a scalar tail.
template <typename T>
HWY_INLINE VF LoadAsF32(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(DF(), p);
  } else {
    return hn::PromoteTo(DF(), hn::LoadU(hn::Rebind<T, DF>(), p));
  }
}
template <typename T>
HWY_INLINE float ScalarF32(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return *p;
  } else {
    uint16_t bits;
    std::memcpy(&bits, p, 2);
    return std::is_same_v<T, hwy::bfloat16_t> ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
}

// Software prefetch this far ahead of a float row: as for the integer
// kernels (matmul_q8_kernels.cpp), the hardware prefetchers alone left one
// core's stream latency bound. 2-core Zen 3, 2 threads, 512 MiB, 3
// alternated runs, GB/s: F16 14.0-16.9 -> 16.7-19.1, BF16 14.1-15.0 ->
// 17.1-18.6, F32 level (BENCHMARKS.md, quantized GEMV).
constexpr size_t kFloatPrefetchBytes = 4096;

template <typename T>
HWY_NOINLINE float DotRowF(const uint8_t* row, const float* x, size_t K) {
  const T* w = reinterpret_cast<const T*>(row);
  VF a0 = hn::Zero(DF()), a1 = hn::Zero(DF());
  size_t k = 0;
  for (; k + 4 * N <= K; k += 4 * N) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(w + k) + kFloatPrefetchBytes;
    for (size_t o = 0; o < 4 * N * sizeof(T); o += 64) hwy::Prefetch(p + o);
    a0 = hn::MulAdd(LoadAsF32(w + k), hn::LoadU(DF(), x + k), a0);
    a1 = hn::MulAdd(LoadAsF32(w + k + N), hn::LoadU(DF(), x + k + N), a1);
    a0 = hn::MulAdd(LoadAsF32(w + k + 2 * N), hn::LoadU(DF(), x + k + 2 * N), a0);
    a1 = hn::MulAdd(LoadAsF32(w + k + 3 * N), hn::LoadU(DF(), x + k + 3 * N), a1);
  }
  for (; k + N <= K; k += N) a0 = hn::MulAdd(LoadAsF32(w + k), hn::LoadU(DF(), x + k), a0);
  float s = hn::GetLane(hn::SumOfLanes(DF(), hn::Add(a0, a1)));
  for (; k < K; ++k) s += ScalarF32(w + k) * x[k];
  return s;
}

template <typename T>
HWY_NOINLINE void DecodeRowF(const uint8_t* row, float* out, size_t K) {
  const T* w = reinterpret_cast<const T*>(row);
  size_t k = 0;
  for (; k + N <= K; k += N) hn::StoreU(LoadAsF32(w + k), DF(), out + k);
  for (; k < K; ++k) out[k] = ScalarF32(w + k);
}

// Dense f32 tile on decoded rows: ROWS x COLS dot products share loads.
template <int ROWS, int COLS>
HWY_INLINE void Tile(const float* x, size_t ldx, const float* w, size_t K, float* y, size_t ldy) {
  const DF df;
  VF acc[ROWS][COLS];
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) acc[i][j] = hn::Zero(df);
  size_t k = 0;
  for (; k + N <= K; k += N) {
    VF xv[COLS];
    for (int j = 0; j < COLS; ++j) xv[j] = hn::LoadU(df, x + j * ldx + k);
    for (int i = 0; i < ROWS; ++i) {
      const VF wv = hn::LoadU(df, w + i * K + k);
      for (int j = 0; j < COLS; ++j) acc[i][j] = hn::MulAdd(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[i][j]));
      for (size_t kk = k; kk < K; ++kk) s += w[i * K + kk] * x[j * ldx + kk];
      y[j * ldy + i] = s;
    }
}

using DotFn = float (*)(const uint8_t*, const float*, size_t);
using DecodeFn = void (*)(const uint8_t*, float*, size_t);

void Run(DotFn dot, DecodeFn decode, size_t row_bytes, const float* x, size_t ldx, size_t T, const uint8_t* W, size_t K,
         size_t r0, size_t r1, float* y, size_t ldy) {
  if (T == 1) {
    for (size_t r = r0; r < r1; ++r) y[r] = dot(W + r * row_bytes, x, K);
    return;
  }
  // 4 decoded rows stay in L2 while every token passes over them.
  thread_local std::vector<float> buf;
  if (buf.size() < 4 * K) buf.resize(4 * K);
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    for (int i = 0; i < 4; ++i) decode(W + (r + i) * row_bytes, buf.data() + i * K, K);
    size_t t = 0;
    for (; t + 2 <= T; t += 2) Tile<4, 2>(x + t * ldx, ldx, buf.data(), K, y + t * ldy + r, ldy);
    if (t < T) Tile<4, 1>(x + t * ldx, ldx, buf.data(), K, y + t * ldy + r, ldy);
  }
  for (; r < r1; ++r) {
    decode(W + r * row_bytes, buf.data(), K);
    size_t t = 0;
    for (; t + 2 <= T; t += 2) Tile<1, 2>(x + t * ldx, ldx, buf.data(), K, y + t * ldy + r, ldy);
    if (t < T) Tile<1, 1>(x + t * ldx, ldx, buf.data(), K, y + t * ldy + r, ldy);
  }
}

template <class Fmt>
void RunFmt(const float* x, size_t ldx, size_t T, const uint8_t* W, size_t K, size_t r0, size_t r1, float* y,
            size_t ldy) {
  Run(&DotRow<Fmt>, &DecodeRow<Fmt>, K / Fmt::kBlock * Fmt::kBytes, x, ldx, T, W, K, r0, r1, y, ldy);
}
template <typename Tw>
void RunFloat(const float* x, size_t ldx, size_t T, const uint8_t* W, size_t K, size_t r0, size_t r1, float* y,
              size_t ldy) {
  Run(&DotRowF<Tw>, &DecodeRowF<Tw>, K * sizeof(Tw), x, ldx, T, W, K, r0, r1, y, ldy);
}

void MatmulRows(const float* x, size_t ldx, size_t T, const uint8_t* W, uint32_t wtype, size_t K, size_t r0,
                size_t r1, float* y, size_t ldy) {
  switch (GgmlType(wtype)) {
    case GgmlType::F32: return RunFloat<float>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::F16: return RunFloat<hwy::float16_t>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::BF16: return RunFloat<hwy::bfloat16_t>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q8_0: return RunFmt<Q8_0>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q4_0: return RunFmt<Q4_0>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q4_1: return RunFmt<Q4_1>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q5_0: return RunFmt<Q5_0>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q5_1: return RunFmt<Q5_1>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::MXFP4: return RunFmt<MXFP4>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q2_K: return RunFmt<Q2_K>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q3_K: return RunFmt<Q3_K>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q4_K: return RunFmt<Q4_K>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q5_K: return RunFmt<Q5_K>(x, ldx, T, W, K, r0, r1, y, ldy);
    case GgmlType::Q6_K: return RunFmt<Q6_K>(x, ldx, T, W, K, r0, r1, y, ldy);
    default: return;  // checked before dispatch
  }
}
#endif  // HWY_TARGET == HWY_SCALAR

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace moeflux::quant
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace moeflux::quant::detail {

HWY_EXPORT(MatmulRows);
HWY_EXPORT(TargetName);

void matmul_rows_f32(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                     size_t r1, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(MatmulRows)(x, ldx, T, W, uint32_t(wtype), K, r0, r1, y, ldy);
}

const char* f32_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace moeflux::quant::detail
#endif
