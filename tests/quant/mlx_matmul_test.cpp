// The fused MLX kernels against the reference formula w = s * q + b in
// double, on random codes (every code of every width), every bit width,
// group size and scale dtype, odd sizes (an odd number of 32-element chunks
// after the last whole span, rows of 192 to 736 elements,
// token counts that leave a partial group of 4, strided x and y, a row
// range). The packed weights end at a page that cannot be read, so a load
// past the matrix faults. Each check runs once per compiled instruction set
// this CPU supports.
//
// Held to two bounds (mlx_matmul.h): against sum w * x^ with the
// int8-rounded activations x^ (f32 rounding only), and against the f32
// activations (plus the rounding sum |w| |x - x^|).
#include "quant/mlx_matmul.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "for_each_target.h"

namespace moeflux::quant {
namespace {

using test::for_each_target;

// n bytes whose end is the start of an unreadable page.
class GuardedBytes {
 public:
  explicit GuardedBytes(size_t n) : n_(n) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    map_bytes_ = (n + page - 1) / page * page + page;
    map_ = static_cast<uint8_t*>(mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (map_ == MAP_FAILED) throw std::runtime_error("mmap");
    mprotect(map_ + map_bytes_ - page, page, PROT_NONE);
  }
  ~GuardedBytes() { munmap(map_, map_bytes_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  uint8_t* data() { return map_ + map_bytes_ - size_t(sysconf(_SC_PAGESIZE)) - n_; }

 private:
  size_t n_, map_bytes_;
  uint8_t* map_;
};

struct Scales {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // as the kernel reads them
};

Scales random_scales(size_t n, MlxScaleType t, float sigma, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, sigma);
  Scales s;
  s.values.resize(n);
  s.bytes.resize(n * (t == MlxScaleType::F32 ? 4 : 2));
  for (size_t i = 0; i < n; ++i) {
    const float v = nd(rng);
    if (t == MlxScaleType::F32) {
      std::memcpy(s.bytes.data() + 4 * i, &v, 4);
      s.values[i] = v;
    } else {
      const uint16_t h = t == MlxScaleType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(s.bytes.data() + 2 * i, &h, 2);
      s.values[i] = t == MlxScaleType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return s;
}

uint32_t code_at(const uint32_t* row, size_t k, int bits) {
  const size_t bit = k * size_t(bits), wi = bit / 32, sh = bit % 32;
  uint64_t v = row[wi] >> sh;
  if (sh + size_t(bits) > 32) v |= uint64_t(row[wi + 1]) << (32 - sh);
  return uint32_t(v) & ((1u << bits) - 1);
}

struct Case {
  int bits, gs;
  MlxScaleType st;
};

// Returns the rows checked; counts rows whose f32-activation product would
// fail the int8 bound (the bound is tight enough to see the rounding).
void check_case(const Case& c, size_t K, size_t& checked, size_t& discriminated) {
  std::mt19937 rng(uint32_t(c.bits * 1000 + c.gs * 10 + int(c.st) + K));
  const size_t rows = 11, r0 = 2, r1 = rows;
  const size_t words = rows * K * size_t(c.bits) / 32, groups = K / size_t(c.gs);
  GuardedBytes wbuf(words * 4);
  auto* w = reinterpret_cast<uint32_t*>(wbuf.data());
  for (size_t i = 0; i < words; ++i) w[i] = uint32_t(rng());
  const Scales s = random_scales(rows * groups, c.st, 0.02f, rng), b = random_scales(rows * groups, c.st, 0.1f, rng);
  const MlxAffine q{c.bits, c.gs, c.st, w, s.bytes.data(), b.bytes.data()};
  std::normal_distribution<float> nd(0.f, 1.f);
  for (size_t T : {1, 2, 3, 5, 6}) {
    const size_t ldx = K + 3, ldy = rows + 2;
    std::vector<float> x(T * ldx), y(T * ldy, -777.f);
    for (auto& v : x) v = nd(rng);
    mlx_matmul_rows(x.data(), ldx, T, q, K, r0, r1, y.data(), ldy);
    // Prepared activations: the same bits for the same tokens; a sub-range
    // (other groups of tokens, so another summation order) within the bound.
    PreparedActivations xq;
    xq.prepare(x.data(), ldx, T, K, kMlxActivationType);
    std::vector<float> y2(T * ldy, -777.f), y3(T * ldy, -777.f);
    mlx_matmul_rows(xq, 0, T, q, r0, r1, y2.data(), ldy);
    mlx_matmul_rows(xq, 1, T - 1, q, r0, r1, y3.data() + ldy, ldy);
    for (size_t t = 0; t < T; ++t) {
      std::vector<int8_t> xq8(K);
      std::vector<float> d(K / 32);
      quantize_activation(x.data() + t * ldx, K, 32, xq8.data(), d.data());
      for (size_t r = 0; r < rows; ++r) {
        const float got = y[t * ldy + r];
        if (r < r0) {
          EXPECT_EQ(got, -777.f);
          continue;
        }
        EXPECT_EQ(std::memcmp(&got, &y2[t * ldy + r], 4), 0) << "prepared t=" << t << " r=" << r;
        const uint32_t* row = w + r * (K * size_t(c.bits) / 32);
        double ref_q = 0, ref_x = 0, mag = 0, act_err = 0;
        for (size_t k = 0; k < K; ++k) {
          const size_t g = r * groups + k / size_t(c.gs);
          const double sg = s.values[g], bg = b.values[g];
          const double qk = code_at(row, k, c.bits), wk = sg * qk + bg;
          const double bk = c.bits == 8 ? bg + 128 * sg : bg;
          const double xh = double(xq8[k]) * d[k / 32], xk = x[t * ldx + k];
          ref_q += wk * xh;
          ref_x += wk * xk;
          mag += (std::fabs(sg * qk) + 2 * std::fabs(bk)) * std::fabs(xh);
          act_err += std::fabs(wk) * std::fabs(xk - xh);
        }
        const double bound = double(K / 32 + 8) * 0x1p-23 * mag;
        EXPECT_LE(std::fabs(got - ref_q), bound) << "t=" << t << " r=" << r << " T=" << T;
        if (t >= 1) {
          EXPECT_LE(std::fabs(y3[t * ldy + r] - ref_q), bound) << "sub-range t=" << t << " r=" << r;
        }
        EXPECT_LE(std::fabs(got - ref_x), bound + act_err) << "t=" << t << " r=" << r << " T=" << T;
        ++checked;
        if (std::fabs(ref_x - ref_q) > bound) ++discriminated;
      }
    }
  }
}

class MlxMatmul : public ::testing::TestWithParam<Case> {};

TEST_P(MlxMatmul, MatchesReferenceWithinActivationRounding) {
  for_each_target([&] {
    if (!mlx_quantizes_activations()) return;
    size_t checked = 0, discriminated = 0;
    // A short row (fewer than 256 elements: no 3-bit span of AVX2) and a
    // long one (two or more spans of every width, then a tail of chunks).
    const Case& c = GetParam();
    for (size_t K : {size_t(c.gs) * (c.gs == 32 ? 7 : 3), size_t(c.gs) * (c.gs == 32 ? 23 : c.gs == 64 ? 11 : 5)})
      check_case(c, K, checked, discriminated);
    EXPECT_GT(checked, 0u);
    EXPECT_GT(discriminated, checked * 8 / 10) << discriminated << " of " << checked;
  });
}

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (int bits : {2, 3, 4, 6, 8})
    for (int gs : {32, 64, 128})
      for (MlxScaleType st : {MlxScaleType::BF16, MlxScaleType::F16, MlxScaleType::F32}) v.push_back({bits, gs, st});
  return v;
}

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  const char* st = i.param.st == MlxScaleType::BF16 ? "bf16" : i.param.st == MlxScaleType::F16 ? "f16" : "f32";
  return "b" + std::to_string(i.param.bits) + "_g" + std::to_string(i.param.gs) + "_" + st;
}

INSTANTIATE_TEST_SUITE_P(AllWidths, MlxMatmul, ::testing::ValuesIn(all_cases()), case_name);

TEST(MlxMatmulErrors, RejectsBadArguments) {
  if (!mlx_quantizes_activations()) GTEST_SKIP() << "no integer kernels on " << target_name();
  std::vector<uint32_t> w(64);
  std::vector<uint16_t> sb(8);
  std::vector<float> x(128), y(4);
  const MlxAffine q5{5, 64, MlxScaleType::BF16, w.data(), sb.data(), sb.data()};
  EXPECT_THROW(mlx_matmul_rows(x.data(), 128, 1, q5, 128, 0, 1, y.data(), 1), Error);
  const MlxAffine q4{4, 64, MlxScaleType::BF16, w.data(), sb.data(), sb.data()};
  EXPECT_THROW(mlx_matmul_rows(x.data(), 96, 1, q4, 96, 0, 1, y.data(), 1), Error);  // not whole groups
  PreparedActivations k_layout;
  k_layout.prepare(x.data(), 256, 0, 256, GgmlType::Q4_K);
  try {
    mlx_matmul_rows(k_layout, 0, 0, MlxAffine{4, 64, MlxScaleType::BF16, w.data(), sb.data(), sb.data()}, 0, 1,
                    y.data(), 1);
    FAIL() << "activations of the K formats' layout accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layout"), std::string::npos) << e.what();
  }
  PreparedActivations one;
  one.prepare(x.data(), 128, 1, 128, kMlxActivationType);
  EXPECT_THROW(mlx_matmul_rows(one, 0, 2, q4, 0, 1, y.data(), 1), Error);  // more rows than prepared
}

}  // namespace
}  // namespace moeflux::quant
