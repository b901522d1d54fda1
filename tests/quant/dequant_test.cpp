// Reference dequantizers against gguf-py, bit for bit, on every committed case.
#include "quant/dequant.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "quant_fixtures.h"

namespace moeflux::quant {
namespace {

using test::bits_of;

TEST(Dequant, BitIdenticalToGgufPy) {
  const auto all = test::cases("dequant");
  ASSERT_EQ(all.size(), 14u);  // every GGML type moeflux reads
  for (const auto& c : all) {
    const std::string name = c["type"];
    SCOPED_TRACE(name);
    const auto info = ggml_type_by_name(name);
    ASSERT_TRUE(info);
    const size_t rows = c["rows"], cols = c["cols"];
    const auto in = test::read_bytes(c["input"]);
    const auto want = test::read_array<float>(c["output"]);
    const size_t row_bytes = *ggml_row_bytes(info->type, cols);
    ASSERT_EQ(in.size(), rows * row_bytes);
    ASSERT_EQ(want.size(), rows * cols);
    std::vector<float> got(cols);
    size_t bad = 0;
    for (size_t r = 0; r < rows; ++r) {
      dequantize_row(info->type, in.data() + r * row_bytes, got.data(), cols);
      for (size_t i = 0; i < cols; ++i)
        if (bits_of(got[i]) != bits_of(want[r * cols + i]) && bad++ < 5)
          ADD_FAILURE() << name << " row " << r << " element " << i << ": got " << got[i] << " want "
                        << want[r * cols + i];
    }
    EXPECT_EQ(bad, 0u);
  }
}

TEST(Dequant, RejectsUnsupportedTypesAndPartialBlocks) {
  std::vector<uint8_t> src(1024);
  std::vector<float> dst(256);
  EXPECT_THROW(dequantize_row(GgmlType::IQ2_XXS, src.data(), dst.data(), 256), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_K, src.data(), dst.data(), 128), Error);
  EXPECT_FALSE(dequant_supported(GgmlType::Q8_1));
  EXPECT_TRUE(dequant_supported(GgmlType::MXFP4));
}

}  // namespace
}  // namespace moeflux::quant
