// MLX affine: reference dequantization bit-identical to the numpy formula on
// the committed fixtures (the matmul is tested in tests/backend).
#include "quant/mlx_affine.h"

#include <gtest/gtest.h>

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
