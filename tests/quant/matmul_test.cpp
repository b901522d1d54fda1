// Fast kernels against the reference: dequantize_row, then a dot product in
// double. Random weights come from the quantizers where they exist and from
// random bytes (with sane scales) otherwise, so every code path of every
// format is hit; sizes are odd on purpose.
#include "quant/matmul.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

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

namespace moeflux::quant {
namespace {

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

// Runs fn once per instruction set this CPU supports (AVX-512, AVX2, SSE4,
// ...), so each compiled kernel variant is checked, not only the best one.
template <typename Fn>
void for_each_target(Fn fn) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
}

class MatmulTest : public ::testing::TestWithParam<GgmlType> {};

void check_against_reference(GgmlType t) {
  const auto info = *ggml_type_info(uint32_t(t));
  std::mt19937 rng(uint32_t(t) * 7919u + 1);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t bl = info.block == 1 ? 1 : info.block;
  for (size_t K : {bl * 3, bl * 7, info.block == 1 ? size_t(1001) : bl * 10, bl == 32 ? size_t(32 * 67) : bl * 9}) {
    const size_t rows = 11, r0 = 3, r1 = 10;
    const size_t rb = *ggml_row_bytes(t, K);
    const auto W = random_rows(t, rows, K, rng);
    std::vector<float> deq(rows * K);
    for (size_t r = 0; r < rows; ++r) dequantize_row(t, W.data() + r * rb, deq.data() + r * K, K);
    for (size_t T : {1, 2, 3, 5}) {
      const size_t ldx = K + 3, ldy = rows + 2;
      std::vector<float> x(T * ldx);
      for (auto& v : x) v = nd(rng);
      std::vector<float> y(T * ldy, -777.f);
      matmul_rows(x.data(), ldx, T, W.data(), t, K, r0, r1, y.data(), ldy);
      for (size_t tt = 0; tt < T; ++tt)
        for (size_t r = 0; r < rows; ++r) {
          const float got = y[tt * ldy + r];
          if (r < r0 || r >= r1) {
            EXPECT_EQ(got, -777.f) << "wrote outside [r0, r1)";
            continue;
          }
          double ref = 0, mag = 0;
          for (size_t k = 0; k < K; ++k) {
            ref += double(deq[r * K + k]) * double(x[tt * ldx + k]);
            mag += std::fabs(double(deq[r * K + k]) * double(x[tt * ldx + k]));
          }
          // f32 accumulation (and one FMA in the decode) against a double
          // reference: each of the K products and partial sums rounds at most
          // 2^-24 relative to the running magnitude; 4 * sqrt(K) ulps of
          // sum|w*x| covers the random-walk growth with a wide margin and is
          // still ~1000x below one quantization step.
          const double tol = 4.0 * std::sqrt(double(K)) * 0x1p-24 * mag + 1e-30;
          EXPECT_NEAR(got, ref, tol) << info.name << " K=" << K << " T=" << T << " t=" << tt << " r=" << r;
        }
    }
  }
}

TEST_P(MatmulTest, MatchesReferenceDequantDot) {
  for_each_target([&] {
    check_against_reference(GetParam());
    EXPECT_STRNE(target_name(), "");
  });
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                                           GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                           GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                           GgmlType::Q6_K, GgmlType::MXFP4),
                         [](const auto& info) { return std::string(ggml_type_info(uint32_t(info.param))->name); });

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
