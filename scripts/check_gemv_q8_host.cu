// Host check of gemv_q8.cu's per-unit dot products against dequantize_row
// (run by scripts/check_gemv_q8_host.sh; no GPU needed).
#include "backend/cuda/gemv_q8.cu"
#include "quant/quantize.h"
#include "quant/dequant.h"
#include "format/dtype.h"
#include <random>
#include <vector>
#include <cstdio>
#include <cmath>
using namespace moeflux;
using namespace moeflux::cuda;

template <DType DT>
int check(int K, int N, std::mt19937& rng) {
  using F = Q8Fmt<DT>;
  std::normal_distribution<float> nd(0.f, 1.f);
  const GgmlType g = *ggml_type_of(DT);
  const size_t rb = dtype_row_bytes(DT, K);
  std::vector<uint8_t> w(rb * N + 16);
  std::vector<float> wf(size_t(K) * N), x(K);
  for (auto& v : wf) v = nd(rng) * 0.3f;
  for (auto& v : x) v = nd(rng);
  for (int n = 0; n < N; ++n) quant::quantize_row(g, &wf[size_t(n) * K], &w[n * rb], K);
  // x to int8 as quantize_x does
  std::vector<int8_t> xq(K);
  std::vector<float> xd(K / 32);
  std::vector<int> s16(K / 16);
  for (int gi = 0; gi < K / 32; ++gi) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[gi * 32 + i]));
    const float id = amax > 0 ? 127.f / amax : 0.f;
    for (int i = 0; i < 32; ++i) xq[gi * 32 + i] = int8_t(std::lrintf(x[gi * 32 + i] * id));
    xd[gi] = amax / 127.f;
    for (int h = 0; h < 2; ++h) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += xq[gi * 32 + h * 16 + i];
      s16[gi * 2 + h] = s;
    }
  }
  XQ xs{xq.data(), xd.data(), s16.data()};
  const int upr = (K / F::kElems) * F::kUnits;
  int bad = 0;
  std::vector<float> deq(K);
  for (int n = 0; n < N; ++n) {
    double got = 0;
    for (int u = 0; u < upr; ++u) got += F::dot(&w[n * rb], u / F::kUnits, u % F::kUnits, xs);
    quant::dequantize_row(g, &w[n * rb], deq.data(), K);
    double want = 0, sc = 0;
    for (int k = 0; k < K; ++k) {
      const double xv = double(xq[k]) * xd[k / 32];
      want += double(deq[k]) * xv;
      sc += std::fabs(double(deq[k]) * xv);
    }
    if (std::fabs(got - want) > 1e-5 * sc + 1e-6) {
      if (bad < 3) printf("  %s row %d: got %.6f want %.6f (scale %.3f)\n", dtype_name(DT).data(), n, got, want, sc);
      ++bad;
    }
  }
  printf("%-6s K=%d N=%d: %s\n", std::string(dtype_name(DT)).c_str(), K, N, bad ? "MISMATCH" : "ok");
  return bad;
}

int main() {
  std::mt19937 rng(7);
  int bad = 0;
  bad += check<DType::Q4_0>(96, 7, rng);
  bad += check<DType::Q4_1>(96, 7, rng);
  bad += check<DType::Q5_0>(96, 7, rng);
  bad += check<DType::Q5_1>(96, 7, rng);
  bad += check<DType::Q8_0>(96, 7, rng);
  bad += check<DType::Q4_K>(512, 7, rng);
  bad += check<DType::Q5_K>(512, 7, rng);
  bad += check<DType::Q6_K>(512, 7, rng);
  return bad != 0;
}
