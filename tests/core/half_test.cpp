#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace moeflux;

TEST(Half, Bf16RoundTripsExactValues) {
  for (float v : {0.0f, -0.0f, 1.0f, -2.5f, 3.140625f, 1e30f, -1e-30f}) {
    float r = bf16_to_f32(f32_to_bf16(v));
    EXPECT_LE(std::fabs(r - v), std::fabs(v) * (1.0f / 128));
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Half, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly between two bf16 values; ties go to the even one (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
}

TEST(Half, F16MatchesHardwareConversionOnRandomValues) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exp(-30, 17);
  for (int i = 0; i < 100000; ++i) {
    float v = std::ldexp(1.0f + float(rng() % 4096) / 4096.0f, int(exp(rng))) * ((rng() & 1) ? -1 : 1);
    uint16_t h = f32_to_f16(v);
    _Float16 ref = static_cast<_Float16>(v);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(h, ref_bits) << v;
    ASSERT_EQ(f16_to_f32(h), static_cast<float>(ref)) << v;
  }
}
