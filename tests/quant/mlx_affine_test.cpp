// MLX affine: reference dequantization bit-identical to the numpy formula on
// the committed fixtures, and the matmul against dequantize + double dot.
#include "quant/mlx_affine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "quant_fixtures.h"

namespace moeflux::quant {
namespace {

MlxScaleType scale_type(const std::string& s) {
  return s == "f16" ? MlxScaleType::F16 : s == "bf16" ? MlxScaleType::BF16 : MlxScaleType::F32;
}

TEST(MlxAffine, DequantBitIdenticalToNumpy) {
  const auto all = test::cases("mlx");
  ASSERT_EQ(all.size(), 15u);  // bits {2,3,4,6,8} x group size {32,64,128}
  for (const auto& c : all) {
    const int bits = c["bits"], gs = c["group_size"];
    const size_t rows = c["rows"], cols = c["cols"];
    SCOPED_TRACE("bits " + std::to_string(bits) + " gs " + std::to_string(gs));
    const auto w = test::read_array<uint32_t>(c["weight"]);
    const auto s = test::read_bytes(c["scales"]);
    const auto b = test::read_bytes(c["biases"]);
    const auto want = test::read_array<float>(c["output"]);
    ASSERT_EQ(w.size(), rows * cols * size_t(bits) / 32);
    const MlxAffine q{bits, gs, scale_type(c["scale_dtype"]), w.data(), s.data(), b.data()};
    std::vector<float> got(cols);
    for (size_t r = 0; r < rows; ++r) {
      mlx_dequantize_row(q, cols, r, got.data());
      for (size_t i = 0; i < cols; ++i)
        ASSERT_EQ(test::bits_of(got[i]), test::bits_of(want[r * cols + i])) << "row " << r << " col " << i;
    }
  }
}

TEST(MlxAffine, MatmulMatchesReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int bits : {2, 3, 4, 6, 8})
    for (int gs : {32, 64, 128}) {
      const size_t K = size_t(gs) * 5, rows = 9, r0 = 2, r1 = 9;
      std::vector<uint32_t> w(rows * K * size_t(bits) / 32);
      for (auto& v : w) v = uint32_t(rng());
      std::vector<float> s(rows * K / size_t(gs)), b(s.size());
      for (auto& v : s) v = nd(rng) * 0.02f;
      for (auto& v : b) v = nd(rng) * 0.1f;
      const MlxAffine q{bits, gs, MlxScaleType::F32, w.data(), s.data(), b.data()};
      std::vector<float> deq(rows * K);
      for (size_t r = 0; r < rows; ++r) mlx_dequantize_row(q, K, r, deq.data() + r * K);
      for (size_t T : {1, 2, 3, 5}) {
        const size_t ldx = K + 1, ldy = rows + 1;
        std::vector<float> x(T * ldx), y(T * ldy, -777.f);
        for (auto& v : x) v = nd(rng);
        mlx_matmul_rows(x.data(), ldx, T, q, K, r0, r1, y.data(), ldy);
        for (size_t t = 0; t < T; ++t)
          for (size_t r = 0; r < rows; ++r) {
            if (r < r0) {
              EXPECT_EQ(y[t * ldy + r], -777.f);
              continue;
            }
            double ref = 0, mag = 0;
            for (size_t k = 0; k < K; ++k) {
              ref += double(deq[r * K + k]) * x[t * ldx + k];
              mag += std::fabs(double(deq[r * K + k]) * x[t * ldx + k]);
            }
            // f32 accumulation of exact products: see matmul_test.cpp.
            EXPECT_NEAR(y[t * ldy + r], ref, 4.0 * std::sqrt(double(K)) * 0x1p-24 * mag) << bits << "/" << gs;
          }
      }
    }
}

TEST(MlxAffine, RejectsUnsupported) {
  const MlxAffine q5{5, 64, MlxScaleType::F16, nullptr, nullptr, nullptr};
  EXPECT_THROW(mlx_check(q5, 128), Error);
  const MlxAffine q4{4, 48, MlxScaleType::F16, nullptr, nullptr, nullptr};
  EXPECT_THROW(mlx_check(q4, 96), Error);
  const MlxAffine ok{4, 64, MlxScaleType::F16, nullptr, nullptr, nullptr};
  EXPECT_THROW(mlx_check(ok, 100), Error);
  EXPECT_NO_THROW(mlx_check(ok, 128));
}

}  // namespace
}  // namespace moeflux::quant
