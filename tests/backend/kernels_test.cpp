// Fast CPU kernels against plain-loop references on random inputs of odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/moe.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"
#include "core/half.h"
#include "quant/mlx_affine.h"
#include "quant/mlx_matmul.h"

using namespace moeflux;

namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> as_f32;  // exactly the values the kernel reads
};

Weights random_weights(std::mt19937& rng, size_t n, DType t) {
  std::normal_distribution<float> nd(0, 1);
  Weights w;
  w.bytes.resize(n * dtype_size(t));
  w.as_f32.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float v = nd(rng);
    if (t == DType::F32) {
      std::memcpy(&w.bytes[i * 4], &v, 4);
    } else {
      uint16_t h = t == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(&w.bytes[i * 2], &h, 2);
      v = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    w.as_f32[i] = v;
  }
  return w;
}

class MatmulRows : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulRows, MatchesReferenceOnOddShapes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  for (size_t T : {1u, 2u, 3u, 7u}) {
    for (size_t K : {1u, 5u, 24u, 72u, 131u}) {
      for (size_t N : {1u, 3u, 4u, 9u, 17u}) {
        Weights w = random_weights(rng, N * K, GetParam());
        std::vector<float> x(T * K), y(T * N, NAN);
        for (auto& v : x) v = nd(rng);
        // a sub-range of rows, as the thread split hands out
        const size_t r0 = N > 2 ? 1 : 0, r1 = N;
        simd::matmul_rows(x.data(), K, T, w.bytes.data(), GetParam(), K, r0, r1, y.data(), N);
        for (size_t t = 0; t < T; ++t)
          for (size_t r = r0; r < r1; ++r) {
            double ref = 0, mag = 0;
            for (size_t k = 0; k < K; ++k) {
              ref += double(x[t * K + k]) * w.as_f32[r * K + k];
              mag += std::fabs(double(x[t * K + k]) * w.as_f32[r * K + k]);
            }
            // f32 accumulation in a different order: error grows with the sum of |terms|.
            ASSERT_NEAR(y[t * N + r], ref, 1e-6 * mag + 1e-6) << "T=" << T << " K=" << K << " N=" << N;
          }
        if (r0 > 0) {
          for (size_t t = 0; t < T; ++t) ASSERT_TRUE(std::isnan(y[t * N])) << "wrote outside its rows";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulRows, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Kernels, DotAndAxpyMatchReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  for (size_t n : {0u, 1u, 7u, 8u, 15u, 16u, 33u, 1000u}) {
    std::vector<float> a(n), b(n), y(n);
    for (size_t i = 0; i < n; ++i) a[i] = nd(rng), b[i] = nd(rng), y[i] = nd(rng);
    double ref = 0, mag = 0;
    for (size_t i = 0; i < n; ++i) ref += double(a[i]) * b[i], mag += std::fabs(double(a[i]) * b[i]);
    EXPECT_NEAR(simd::dot(a.data(), b.data(), n), ref, 1e-6 * mag + 1e-7);
    std::vector<float> yr = y;
    simd::axpy(0.37f, a.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], yr[i] + 0.37f * a[i], 1e-6);
  }
}

TEST(Kernels, LinearSplitsRowsAcrossThreadsExactly) {
  std::mt19937 rng(9);
  ThreadPool pool(3);
  for (int N : {1, 5, 37, 300}) {
    const int K = 19, T = 3;
    Weights w = random_weights(rng, size_t(N) * K, DType::BF16);
    WeightView view{w.bytes.data(), DType::BF16, N, K};
    std::vector<float> x(size_t(T) * K), y(size_t(T) * N), ys(size_t(T) * N);
    for (auto& v : x) v = float(rng() % 100) / 50.f - 1.f;
    cpu::linear(pool, x.data(), T, view, nullptr, y.data());
    simd::matmul_rows(x.data(), K, T, w.bytes.data(), DType::BF16, K, 0, size_t(N), ys.data(), size_t(N));
    EXPECT_EQ(y, ys) << "N=" << N;  // same kernel per row: bit-identical whatever the split
  }
}

TEST(Kernels, RmsNormGroupsAndRopeMatchFormulas) {
  const int T = 2, width = 12, group = 4;
  std::vector<float> x(T * width), y(x.size()), w(group);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 3.f;
  for (int i = 0; i < group; ++i) w[size_t(i)] = 0.5f + i;
  WeightView wv{reinterpret_cast<const uint8_t*>(w.data()), DType::F32, 1, group};
  cpu::rms_norm(x.data(), T, width, group, wv, 1e-6f, y.data());
  for (int g = 0; g < T * width; g += group) {
    double ss = 0;
    for (int i = 0; i < group; ++i) ss += x[size_t(g + i)] * x[size_t(g + i)];
    for (int i = 0; i < group; ++i)
      EXPECT_NEAR(y[size_t(g + i)], w[size_t(i)] * x[size_t(g + i)] / std::sqrt(ss / group + 1e-6), 1e-5);
  }
  // RoPE at position 0 is the identity; at p it rotates pair (i, i + d/2) by p * theta^(-2i/d).
  std::vector<float> r = {1, 2, 3, 4, 5, 6, 7, 8};
  const int32_t pos[2] = {0, 3};
  std::vector<float> r2 = r;
  cpu::rope(r2.data(), 2, 4, RopeParams{4, 4, 100.f, false}, pos);
  EXPECT_EQ(r2[0], 1);
  EXPECT_EQ(r2[3], 4);
  const double a0 = 3.0, a1 = 3.0 / 10.0;  // theta^(-2*1/4) = 1/10
  EXPECT_NEAR(r2[4], 5 * std::cos(a0) - 7 * std::sin(a0), 1e-5);
  EXPECT_NEAR(r2[6], 7 * std::cos(a0) + 5 * std::sin(a0), 1e-5);
  EXPECT_NEAR(r2[5], 6 * std::cos(a1) - 8 * std::sin(a1), 1e-5);
}

// llama.cpp's "llama" GGUFs hold q/k rows permuted so that each head's
// (i, i + d/2) pair sits at (2i, 2i + 1); interleaved RoPE on that layout
// must give the permuted result of Hugging Face's RoPE.
TEST(Kernels, InterleavedRopeEqualsPermutedHalfRope) {
  const int T = 3, heads = 2, hd = 8, W = heads * hd;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> hf(size_t(T * W)), perm(hf.size());
  for (auto& v : hf) v = nd(rng);
  auto permute = [&](const std::vector<float>& in, std::vector<float>& out) {
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < hd / 2; ++i) {
          const size_t base = size_t(t * W + h * hd);
          out[base + size_t(2 * i)] = in[base + size_t(i)];
          out[base + size_t(2 * i + 1)] = in[base + size_t(i + hd / 2)];
        }
  };
  permute(hf, perm);
  const int32_t pos[T] = {0, 5, 1000};
  cpu::rope(hf.data(), T, W, RopeParams{hd, hd, 10000.f, false}, pos);
  cpu::rope(perm.data(), T, W, RopeParams{hd, hd, 10000.f, true}, pos);
  std::vector<float> expect(hf.size());
  permute(hf, expect);
  for (size_t i = 0; i < hf.size(); ++i) EXPECT_EQ(perm[i], expect[i]) << i;
}

TEST(Kernels, RouterTopKAndRenormalisation) {
  const float logits[2 * 5] = {0.f, 3.f, 1.f, 3.f, -2.f, 5.f, 4.f, 3.f, 2.f, 1.f};
  RouterScratch sc;
  Routing r, n;
  route(RouterSpec{}, logits, 2, 5, 3, {}, r, sc);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{1, 3, 2, 0, 1, 2}));  // tie 1/3 -> lower id first
  double z = 0;
  for (int i = 0; i < 5; ++i) z += std::exp(logits[i]);
  EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-6);
  RouterSpec renorm;
  renorm.renormalize = true;
  route(renorm, logits, 2, 5, 3, {}, n, sc);
  EXPECT_NEAR(n.weights[3] + n.weights[4] + n.weights[5], 1.0, 1e-6);
  EXPECT_NEAR(n.weights[3] / n.weights[4], std::exp(1.0), 1e-5);
}

// MLX affine weights through the dequantizing path (matmul_weight's where
// the fused integer kernels are missing; those are held to their own bound
// in tests/quant/mlx_matmul_test.cpp): the reference dequantizer times x,
// for every bit width and group size, odd token counts and row ranges,
// strided x and y.
TEST(MatmulWeight, MlxDequantizedMatchesDequantizeThenDot) {
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
      WeightView W{reinterpret_cast<const uint8_t*>(w.data()), DType::MLX, int64_t(rows), int64_t(K)};
      W.scales = reinterpret_cast<const uint8_t*>(s.data());
      W.biases = reinterpret_cast<const uint8_t*>(b.data());
      W.scale_dtype = DType::F32;
      W.bits = uint8_t(bits);
      W.group_size = uint16_t(gs);
      const quant::MlxAffine q{bits, gs, quant::MlxScaleType::F32, w.data(), s.data(), b.data()};
      std::vector<float> deq(rows * K);
      for (size_t r = 0; r < rows; ++r) quant::mlx_dequantize_row(q, K, r, deq.data() + r * K);
      for (size_t T : {1, 2, 3, 5}) {
        const size_t ldx = K + 1, ldy = rows + 1;
        std::vector<float> x(T * ldx), y(T * ldy, -777.f);
        for (auto& v : x) v = nd(rng);
        cpu::matmul_mlx_dequantized(x.data(), ldx, T, W, r0, r1, y.data(), ldy);
        // matmul_weight runs the fused kernel where there is one.
        std::vector<float> y_fused(T * ldy, -777.f), y_direct(T * ldy, -777.f);
        cpu::matmul_weight(x.data(), ldx, T, W, r0, r1, y_fused.data(), ldy);
        if (quant::mlx_quantizes_activations())
          quant::mlx_matmul_rows(x.data(), ldx, T, q, K, r0, r1, y_direct.data(), ldy);
        else
          y_direct = y;
        EXPECT_EQ(y_fused, y_direct);
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
            // f32 accumulation of exact products (see the float cases above).
            EXPECT_NEAR(y[t * ldy + r], ref, 4.0 * std::sqrt(double(K)) * 0x1p-24 * mag) << bits << "/" << gs;
          }
      }
    }
}

}  // namespace
