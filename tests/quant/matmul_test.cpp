// Fast kernels against the reference: dequantize_row, then a dot product in
// double. Random weights come from random bytes (with sane scales), so every
// code of every format is hit; sizes are odd on purpose. Every check runs
// once per compiled instruction set this CPU supports.
//
// matmul_rows_exact (f32 activations) is held to f32 rounding. matmul_rows
// on targets with integer kernels is held to two bounds (see matmul.h):
// against sum w * x^ with the int8-rounded activations x^ (only f32 rounding
// of block terms allowed), and against the f32 activations (plus the
// activation rounding sum |w| |x - x^|).
#include "quant/matmul.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/dequant.h"
#include "for_each_target.h"

namespace moeflux::quant {
namespace {

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};

// Random bytes for a row of `K` elements of type t with every f16 scale
// field overwritten by a modest finite value (random bytes would give
// infinities and NaNs that make any tolerance meaningless).
std::vector<uint8_t> random_rows(GgmlType t, size_t rows, size_t K, std::mt19937& rng) {
  const size_t rb = *ggml_row_bytes(t, K);
  std::vector<uint8_t> w(rows * rb);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w) b = uint8_t(byte(rng));
  std::normal_distribution<float> nd(0.f, 1.f);
  const auto info = *ggml_type_info(uint32_t(t));
  std::vector<size_t> f16_fields;  // byte offsets of f16 scales inside a block
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: f16_fields = {0}; break;
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: f16_fields = {0, 2}; break;
    case GgmlType::Q2_K: f16_fields = {80, 82}; break;
    case GgmlType::Q3_K: f16_fields = {108}; break;
    case GgmlType::Q6_K: f16_fields = {208}; break;
    default: break;
  }
  const size_t nblocks = rows * K / info.block;
  for (size_t i = 0; i < nblocks; ++i) {
    uint8_t* blk = w.data() + i * info.type_size;
    for (size_t off : f16_fields) {
      const uint16_t h = f32_to_f16(nd(rng) * 0.01f);
      std::memcpy(blk + off, &h, 2);
    }
    if (t == GgmlType::MXFP4) blk[0] = uint8_t(118 + byte(rng) % 16);  // scales 2^-10 .. 2^5
  }
  if (t == GgmlType::F32) {
    for (size_t i = 0; i < rows * K; ++i) {
      const float v = nd(rng);
      std::memcpy(w.data() + 4 * i, &v, 4);
    }
  } else if (t == GgmlType::F16 || t == GgmlType::BF16) {
    for (size_t i = 0; i < rows * K; ++i) {
      const float v = nd(rng);
      const uint16_t h = t == GgmlType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
  }
  return w;
}

// The offsets the integer kernels subtract, per element: the dequantized
// value of each block's lowest code, found by overwriting the code bytes
// (byte range [begin, end) of a block) with that code and dequantizing.
std::vector<float> offsets(GgmlType t, const std::vector<uint8_t>& W, size_t rows, size_t K) {
  size_t begin = 0, end = 0;
  uint8_t fill = 0;
  switch (t) {
    case GgmlType::Q4_0: begin = 2, end = 18; break;
    case GgmlType::Q4_1: begin = 4, end = 20; break;
    case GgmlType::Q5_0: begin = 2, end = 22; break;
    case GgmlType::Q5_1: begin = 4, end = 24; break;
    case GgmlType::MXFP4: begin = 1, end = 17, fill = 0xFF; break;  // code 15 = -6 (doubled: -12)
    case GgmlType::Q2_K: begin = 16, end = 80; break;
    case GgmlType::Q3_K: begin = 0, end = 96; break;  // hmask and qs: code 0 is -4
    case GgmlType::Q4_K: begin = 16, end = 144; break;
    case GgmlType::Q5_K: begin = 16, end = 176; break;
    case GgmlType::Q6_K: begin = 0, end = 192; break;
    default: return std::vector<float>(rows * K, 0.0f);  // Q8_0: no offset (sign trick)
  }
  const auto info = *ggml_type_info(uint32_t(t));
  std::vector<uint8_t> low = W;
  for (size_t b = 0; b < rows * K / info.block; ++b)
    std::fill(low.begin() + b * info.type_size + begin, low.begin() + b * info.type_size + end, fill);
  std::vector<float> o(rows * K);
  const size_t rb = *ggml_row_bytes(t, K);
  for (size_t r = 0; r < rows; ++r) dequantize_row(t, low.data() + r * rb, o.data() + r * K, K);
  return o;
}

// quantize_activation's contract, in plain scalar code.
void spec_quantize(const float* x, size_t n, size_t block, int8_t* q, float* d) {
  for (size_t b = 0; b < n / block; ++b) {
    float amax = 0;
    for (size_t i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[b * block + i]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    for (size_t i = 0; i < block; ++i) {
      const float v = x[b * block + i] * id;
      q[b * block + i] = int8_t(std::nearbyint(v));
    }
  }
}

using test::for_each_target;

struct Counts {
  size_t int_rows = 0, f32_rows = 0;
  size_t discriminated = 0;  // int rows where the f32-activation result would fail the int8 bound
};

// exact: matmul_rows_exact; otherwise matmul_rows with whichever kernel the
// current target and T select.
// big: rows and K large enough for prefill to split the rows into several
// L2 chunks and the tokens into groups of 4 and 2.
void check_against_reference(GgmlType t, bool exact, Counts& counts, bool big = false) {
  const auto info = *ggml_type_info(uint32_t(t));
  std::mt19937 rng(uint32_t(t) * 7919u + 1);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t bl = info.block == 1 ? 1 : info.block;
  std::vector<size_t> Ks = {bl * 3, bl * 7, info.block == 1 ? size_t(1001) : bl * 10, bl == 32 ? size_t(32 * 67) : bl * 9};
  std::vector<size_t> Ts = {1, 2, 3, 5};
  if (big) {
    Ks = {bl == 256 ? size_t(256 * 17) : size_t(32 * 129)};
    Ts = {6};
  }
  for (size_t K : Ks) {
    const size_t rows = big ? 70 : 11, r0 = big ? 5 : 3, r1 = big ? 67 : 10;
    const size_t rb = *ggml_row_bytes(t, K);
    const auto W = random_rows(t, rows, K, rng);
    std::vector<float> deq(rows * K);
    for (size_t r = 0; r < rows; ++r) dequantize_row(t, W.data() + r * rb, deq.data() + r * K, K);
    const auto off = offsets(t, W, rows, K);
    for (size_t T : Ts) {
      const size_t ldx = K + 3, ldy = rows + 2;
      std::vector<float> x(T * ldx);
      // Token rows of different scale, and one block of zeros (d = 0).
      for (size_t tt = 0; tt < T; ++tt)
        for (size_t k = 0; k < K; ++k) x[tt * ldx + k] = nd(rng) * std::ldexp(1.0f, int(tt * 3) - 4);
      if (bl >= 32) std::fill(x.begin(), x.begin() + std::min<size_t>(bl, 32), 0.0f);
      std::vector<float> y(T * ldy, -777.f);
      const bool q8 = !exact && quantizes_activations(t);
      if (exact)
        matmul_rows_exact(x.data(), ldx, T, W.data(), t, K, r0, r1, y.data(), ldy);
      else
        matmul_rows(x.data(), ldx, T, W.data(), t, K, r0, r1, y.data(), ldy);
      const size_t ab = activation_block(t);
      std::vector<int8_t> q(K);
      std::vector<float> xd(q8 ? K / ab : 0), xh(K), amax(K);
      for (size_t tt = 0; tt < T; ++tt) {
        const float* xt = x.data() + tt * ldx;
        if (q8) {
          quantize_activation(xt, K, ab, q.data(), xd.data());
          for (size_t k = 0; k < K; ++k) {
            xh[k] = xd[k / ab] * float(q[k]);  // exact: |q| <= 127
            amax[k] = xd[k / ab] * 127.0f;
          }
        }
        for (size_t r = 0; r < rows; ++r) {
          const float got = y[tt * ldy + r];
          if (r < r0 || r >= r1) {
            EXPECT_EQ(got, -777.f) << "wrote outside [r0, r1)";
            continue;
          }
          const float* w = deq.data() + r * K;
          const float* o = off.data() + r * K;
          double ref = 0, mag = 0;
          for (size_t k = 0; k < K; ++k) {
            ref += double(w[k]) * double(xt[k]);
            mag += std::fabs(double(w[k]) * double(xt[k]));
          }
          if (!q8) {
            // f32 accumulation (and one FMA in the decode) against a double
            // reference: each of the K products and partial sums rounds at
            // most 2^-24 relative to the running magnitude; 4 * sqrt(K) ulps
            // of sum|w*x| covers the random-walk growth with a wide margin
            // and is still ~1000x below one quantization step.
            const double tol = 4.0 * std::sqrt(double(K)) * 0x1p-24 * mag + 1e-30;
            EXPECT_NEAR(got, ref, tol) << info.name << " f32 path K=" << K << " T=" << T << " t=" << tt << " r=" << r;
            ++counts.f32_rows;
            continue;
          }
          // Integer kernels: exact integer block sums, f32 rounding of the
          // per-block terms, whose magnitudes are bounded by
          // (|w| + 2|o|) |x^| (the code term d*q = w - o and the offset o).
          double ref_h = 0, mag_h = 0, act = 0;
          for (size_t k = 0; k < K; ++k) {
            ref_h += double(w[k]) * double(xh[k]);
            mag_h += (std::fabs(double(w[k])) + 2 * std::fabs(double(o[k]))) * std::fabs(double(xh[k]));
            act += std::fabs(double(w[k])) * double(amax[k]) * (1.0 / 254 + 0x1p-21);
          }
          const double nb = double(K / ab);
          const double tol_h = (nb + 8) * 0x1p-23 * mag_h + 1e-30;
          EXPECT_NEAR(got, ref_h, tol_h) << info.name << " int8 vs x^ K=" << K << " T=" << T << " t=" << tt
                                         << " r=" << r;
          EXPECT_NEAR(got, ref, act + tol_h) << info.name << " int8 vs x K=" << K << " T=" << T << " t=" << tt
                                             << " r=" << r;
          ++counts.int_rows;
          if (std::fabs(ref - ref_h) > tol_h) ++counts.discriminated;
        }
      }
    }
  }
}

class MatmulTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTest, ExactMatchesReferenceDequantDot) {
  for_each_target([&] {
    Counts c;
    check_against_reference(GetParam(), /*exact=*/true, c);
    EXPECT_EQ(c.int_rows, 0u);
    EXPECT_STRNE(target_name(), "");
  });
}

TEST_P(MatmulTest, FastMatchesReferenceWithinActivationRounding) {
  const GgmlType t = GetParam();
  for_each_target([&] {
    Counts c;
    check_against_reference(t, /*exact=*/false, c);
    if (quantizes_activations(t)) {
      EXPECT_GT(c.int_rows, 0u);
      // The int8 bound is tight enough to tell the kernels' int8 rounding
      // from f32 activations: it would reject the exact result on most rows.
      EXPECT_GT(c.discriminated, c.int_rows * 8 / 10) << c.discriminated << " of " << c.int_rows;
    }
  });
}

// Prefill over several row chunks and token groups (a chunk holds 64 KiB of
// rows: 18 rows of Q6_K at K = 4352, 14 of Q8_0 at K = 4128).
TEST_P(MatmulTest, FastPrefillAcrossChunks) {
  const GgmlType t = GetParam();
  if (activation_block(t) == 0) GTEST_SKIP() << "float weights";
  for_each_target([&] {
    Counts c;
    check_against_reference(t, /*exact=*/false, c, /*big=*/true);
  });
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return std::string(ggml_type_info(uint32_t(info.param))->name); });

// The integer kernels are what an AVX2 or AVX-512 CPU runs by default, so
// the checks above do cover them wherever they exist.
TEST(Matmul, IntegerKernelsOnAvx2AndUp) {
#if HWY_ARCH_X86
  for_each_target([&] {
    const int64_t best = hwy::SupportedTargets() & ~(hwy::SupportedTargets() - 1);  // lowest bit = best target
    const bool avx2_or_better = best <= HWY_AVX2;
    for (GgmlType t : kAllTypes) {
      const bool block = activation_block(t) != 0;
      EXPECT_EQ(quantizes_activations(t), avx2_or_better && block) << ggml_type_info(uint32_t(t))->name;
    }
  });
#else
  GTEST_SKIP() << "integer kernels are x86 only";
#endif
}

TEST(Matmul, ActivationQuantizerMatchesItsContractOnEveryTarget) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (size_t block : {size_t(32), size_t(256)}) {
    const size_t n = block * 9;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = nd(rng) * std::ldexp(1.0f, int(i / block) * 7 - 30);
    std::fill(x.begin() + block, x.begin() + 2 * block, 0.0f);  // d = 0
    // Exact ties of x * id at k + 0.5: amax 127 gives id = 1.
    for (size_t i = 0; i < block; ++i) x[2 * block + i] = float(int(i % 50) - 25) + 0.5f;
    x[2 * block] = 127.0f;
    x[3 * block] = -1e30f;  // huge, negative amax
    x[4 * block + 1] = 1e-38f;  // subnormal-range neighbours
    std::vector<int8_t> want_q(n), got_q(n);
    std::vector<float> want_d(n / block), got_d(n / block);
    spec_quantize(x.data(), n, block, want_q.data(), want_d.data());
    for_each_target([&] {
      std::fill(got_q.begin(), got_q.end(), int8_t(99));
      quantize_activation(x.data(), n, block, got_q.data(), got_d.data());
      EXPECT_EQ(got_q, want_q);
      for (size_t b = 0; b < n / block; ++b) EXPECT_EQ(got_d[b], want_d[b]) << "block " << b;
    });
    for (size_t i = 2 * block + 1; i < 3 * block; ++i)
      EXPECT_EQ(int(want_q[i]) % 2, 0) << "ties round to even: x = " << x[i];
  }
  std::vector<int8_t> q(40);
  std::vector<float> d(2);
  EXPECT_THROW(quantize_activation(d.data(), 40, 32, q.data(), d.data()), Error);
}

// The per-thread activation cache must follow the values, not the pointer:
// the engine refills one buffer token after token.
TEST(Matmul, ReusedActivationBufferIsRequantized) {
  for_each_target([&] {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t K = 512, rows = 8;
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_K}) {
      const auto W = random_rows(t, rows, K, rng);
      std::vector<float> x(K), other(K), y(rows), y_fresh(rows), xcopy;
      for (auto& v : other) v = nd(rng);
      for (int step = 0; step < 3; ++step) {
        if (step < 2)
          for (auto& v : x) v = nd(rng);
        else
          x[K - 1] += 0.25f;  // one element changed, same buffer
        // Two row ranges, as two threads would call it.
        matmul_rows(x.data(), K, 1, W.data(), t, K, 0, 5, y.data(), rows);
        matmul_rows(x.data(), K, 1, W.data(), t, K, 5, rows, y.data(), rows);
        // The same values quantized afresh: another x in between.
        matmul_rows(other.data(), K, 1, W.data(), t, K, 0, rows, y_fresh.data(), rows);
        xcopy = x;
        matmul_rows(xcopy.data(), K, 1, W.data(), t, K, 0, rows, y_fresh.data(), rows);
        EXPECT_EQ(y, y_fresh) << "step " << step;
        matmul_rows_exact(x.data(), K, 1, W.data(), t, K, 0, rows, y_fresh.data(), rows);
        for (size_t r = 0; r < rows; ++r) EXPECT_NEAR(y[r], y_fresh[r], 0.05 * (std::fabs(y_fresh[r]) + 1.0));
      }
    }
  });
}

// Prepared activations give matmul_rows' results bit for bit, for every
// type sharing their layout, and refuse a type of another layout.
TEST(Matmul, PreparedActivationsMatchMatmulRows) {
  for_each_target([&] {
    std::mt19937 rng(13);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t K = 768, rows = 9, T = 3, ldx = K + 5;
    std::vector<float> x(T * ldx);
    for (auto& v : x) v = nd(rng);
    for (GgmlType t : kAllTypes) {
      SCOPED_TRACE(ggml_type_info(uint32_t(t))->name);
      const auto W = random_rows(t, rows, K, rng);
      PreparedActivations xq;
      xq.prepare(x.data(), ldx, T, K, t);
      EXPECT_TRUE(xq.holds(x.data(), ldx, T, K, t));
      std::vector<float> want(T * rows), got(T * rows);
      matmul_rows(x.data(), ldx, T, W.data(), t, K, 0, rows, want.data(), rows);
      matmul_rows(xq, W.data(), t, 2, rows, got.data(), rows);
      matmul_rows(xq, W.data(), t, 0, 2, got.data(), rows);
      EXPECT_EQ(got, want);
    }
    PreparedActivations xq;
    xq.prepare(x.data(), ldx, T, K, GgmlType::Q4_0);
    const auto W1 = random_rows(GgmlType::Q5_1, rows, K, rng);
    std::vector<float> want(T * rows), got(T * rows);
    matmul_rows(x.data(), ldx, T, W1.data(), GgmlType::Q5_1, K, 0, rows, want.data(), rows);
    matmul_rows(xq, W1.data(), GgmlType::Q5_1, 0, rows, got.data(), rows);
    EXPECT_EQ(got, want) << "Q4_0 and Q5_1 share the paired layout";
    const auto W2 = random_rows(GgmlType::Q4_K, rows, K, rng);
    if (quantizes_activations(GgmlType::Q4_K)) {
      EXPECT_THROW(matmul_rows(xq, W2.data(), GgmlType::Q4_K, 0, rows, got.data(), rows), Error);
    }
    x[ldx + 7] += 1.0f;
    EXPECT_FALSE(xq.holds(x.data(), ldx, T, K, GgmlType::Q4_0));
  });
}

// Rows rounded in pieces (as the MoE layer's threads do) hold the same bits
// as rows rounded at once, and a sub-range of prepared rows gives what
// matmul_rows gives on those rows alone. K = 800 leaves an odd last block
// in the paired layout.
TEST(Matmul, PreparedRowRangesMatchWholeCalls) {
  for_each_target([&] {
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t rows = 9, T = 5;
    for (GgmlType t : kAllTypes) {
      SCOPED_TRACE(ggml_type_info(uint32_t(t))->name);
      const size_t K = activation_block(t) == 32 ? 800 : 768, ldx = K + 3;
      std::vector<float> x(T * ldx);
      for (auto& v : x) v = nd(rng);
      const auto W = random_rows(t, rows, K, rng);
      PreparedActivations whole, pieces;
      whole.prepare(x.data(), ldx, T, K, t);
      pieces.reset(T, K, t);
      pieces.prepare_rows(x.data(), ldx, 3, T);
      pieces.prepare_rows(x.data(), ldx, 0, 3);
      EXPECT_TRUE(pieces.holds(x.data(), ldx, T, K, t));
      EXPECT_TRUE(pieces.fits(t));
      std::vector<float> want(T * rows), got(T * rows);
      matmul_rows(whole, W.data(), t, 0, rows, want.data(), rows);
      matmul_rows(pieces, W.data(), t, 0, rows, got.data(), rows);
      EXPECT_EQ(got, want);
      for (size_t t0 : {size_t(0), size_t(2), size_t(4)}) {
        const size_t nt = std::min<size_t>(2, T - t0);
        std::vector<float> sub(nt * rows, -1.f), alone(nt * rows);
        matmul_rows(pieces, t0, nt, W.data(), t, 1, rows, sub.data(), rows);
        matmul_rows(pieces, t0, nt, W.data(), t, 0, 1, sub.data(), rows);
        matmul_rows(x.data() + t0 * ldx, ldx, nt, W.data(), t, K, 0, rows, alone.data(), rows);
        EXPECT_EQ(sub, alone) << "rows from " << t0;
      }
      std::vector<float> y(rows);
      EXPECT_THROW(matmul_rows(pieces, 4, 2, W.data(), t, 0, rows, y.data(), rows), Error);
    }
    PreparedActivations q4;
    q4.reset(1, 256, GgmlType::Q4_K);
    EXPECT_TRUE(q4.fits(GgmlType::Q6_K));
    EXPECT_FALSE(q4.fits(GgmlType::Q4_0));
    EXPECT_FALSE(q4.fits(GgmlType::F32));
  });
}

TEST(Matmul, UnsupportedTypeIsAClearError) {
  std::vector<uint8_t> W(1024);
  std::vector<float> x(256), y(4);
  EXPECT_FALSE(supported(GgmlType::IQ4_XS));
  try {
    matmul_rows(x.data(), 256, 1, W.data(), GgmlType::IQ4_XS, 256, 0, 1, y.data(), 4);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IQ4_XS"), std::string::npos) << e.what();
  }
  EXPECT_THROW(matmul_rows(x.data(), 256, 1, W.data(), GgmlType::Q4_K, 200, 0, 1, y.data(), 4), Error);
  EXPECT_THROW(matmul_rows_exact(x.data(), 256, 1, W.data(), GgmlType::IQ4_XS, 256, 0, 1, y.data(), 4), Error);
}

// Guards the per-target loop above: forcing a target must change the kernel.
TEST(Matmul, EveryTargetIsDispatched) {
  std::set<std::string> seen;
  for_each_target([&] { seen.insert(target_name()); });
  EXPECT_EQ(seen.size(), hwy::SupportedAndGeneratedTargets().size());
  for (const auto& s : seen) std::printf("quant kernels compiled and run for %s\n", s.c_str());
}

}  // namespace
}  // namespace moeflux::quant
