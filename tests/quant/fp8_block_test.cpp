// FP8 e4m3 weights with 128x128 block scales (DeepSeek-V3's checkpoints):
// the decoder against torch.float8_e4m3fn for every code, the block
// dequantizer against DeepSeek's weight_dequant formula computed by torch
// (scripts/gen_fp8_fixtures.py), the matrix product against the dequantized
// rows, and scales of the wrong shape refused.
#include "quant/fp8_block.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "quant_fixtures.h"

namespace moeflux::quant {
namespace {

using test::bits_of;

TEST(Fp8Block, EveryCodeDecodesAsTorch) {
  const auto want = test::read_array<float>("fp8_e4m3fn.f32");
  ASSERT_EQ(want.size(), 256u);
  for (int c = 0; c < 256; ++c) {
    const float got = fp8_e4m3_to_f32(uint8_t(c));
    if (std::isnan(want[size_t(c)]))
      EXPECT_TRUE(std::isnan(got)) << c;
    else
      EXPECT_EQ(bits_of(got), bits_of(want[size_t(c)])) << "code " << c << ": " << got << " vs " << want[size_t(c)];
  }
}

TEST(Fp8Block, DequantizeMatchesDeepSeeksFormulaBitForBit) {
  const size_t rows = 130, K = 259;
  const auto w = test::read_bytes("fp8_block_weight.bin");
  const auto s = test::read_array<float>("fp8_block_scale_inv.f32");
  const auto want = test::read_array<float>("fp8_block_dequant.f32");
  ASSERT_EQ(w.size(), rows * K);
  ASSERT_EQ(s.size(), 2u * 3u);
  fp8_check_scales("fixture", rows, K, 128, 2, 3);
  const Fp8Block q{w.data(), s.data(), Fp8ScaleType::F32, 128};
  std::vector<float> row(K);
  size_t bad = 0;
  for (size_t r = 0; r < rows; ++r) {
    fp8_dequantize_row(q, K, r, row.data());
    for (size_t k = 0; k < K; ++k) bad += bits_of(row[k]) != bits_of(want[r * K + k]);
  }
  EXPECT_EQ(bad, 0u);
}

// The product against the reference rows in double, on odd sizes with a
// partial last block and bf16 scales, for a few tokens.
TEST(Fp8Block, MatmulMatchesTheDequantizedRows) {
  std::mt19937 rng(3);
  for (size_t K : {259u, 128u, 37u}) {
    const size_t rows = 131, T = 3, block = 128;
    std::vector<uint8_t> w(rows * K);
    for (auto& b : w) {
      b = uint8_t(rng());
      if ((b & 0x7f) == 0x7f) b = 0x38;  // no NaN codes
    }
    const size_t sr = (rows + block - 1) / block, sc = (K + block - 1) / block;
    std::vector<uint16_t> s(sr * sc);
    for (auto& v : s) v = uint16_t(0x3b00 + rng() % 256);  // bf16 in [2^-9, 2^-8)
    const Fp8Block q{w.data(), s.data(), Fp8ScaleType::BF16, int(block)};
    std::normal_distribution<float> nd;
    std::vector<float> x(T * K), y(T * rows), row(K);
    for (auto& v : x) v = nd(rng);
    fp8_matmul_rows(x.data(), K, T, q, K, 0, rows, y.data(), rows);
    for (size_t r = 0; r < rows; ++r) {
      fp8_dequantize_row(q, K, r, row.data());
      for (size_t t = 0; t < T; ++t) {
        double want = 0, mag = 0;
        for (size_t k = 0; k < K; ++k) {
          want += double(x[t * K + k]) * row[k];
          mag += std::fabs(double(x[t * K + k]) * row[k]);
        }
        ASSERT_NEAR(y[t * rows + r], want, 1e-5 * mag + 1e-6) << "K=" << K << " r=" << r << " t=" << t;
      }
    }
  }
}

TEST(Fp8Block, ScalesOfTheWrongShapeAreRefused) {
  EXPECT_NO_THROW(fp8_check_scales("w", 7168, 2048, 128, 56, 16));
  try {
    fp8_check_scales("model.layers.3.mlp.experts.0.gate_proj.weight", 2048, 7168, 128, 16, 57);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("gate_proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("[16, 57]"), std::string::npos) << m;
    EXPECT_NE(m.find("[16, 56]"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace moeflux::quant
