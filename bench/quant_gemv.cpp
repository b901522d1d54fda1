// Quantized GEMV bandwidth: y = W x (T = 1, the decode case) for every
// format quant::matmul_rows supports, on weights much larger than L3, next to
// the DRAM read bandwidth measured in the same run. The number that matters
// is GB/s of weight bytes read, as a share of what DRAM can deliver.
//   build/bench_quant_gemv [MiB of weights, default 512] [threads, default all] [K, default 4096]
// A second table times prefill (T = 32) as effective weight GB/s.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/membw.h"
#include "core/thread_pool.h"
#include "quant/matmul.h"


using namespace moeflux;

namespace {

double time_best(int reps, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? size_t(std::atoi(argv[1])) : 512;
  ThreadPool pool(argc > 2 ? std::atoi(argv[2]) : 0);
  const size_t K = argc > 3 ? size_t(std::atoi(argv[3])) : 4096;
  const auto bw = measure_read_bandwidth(pool);
  fmt::print("threads {}  kernels {}  K {}  weights {} MiB  DRAM read {:.2f} GB/s\n", pool.size(), quant::target_name(),
             K, mib, bw.gb_per_s);
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                            GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                            GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};
  const size_t T_prefill = 32;
  std::vector<float> x(T_prefill * K, 0.5f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 13) - 6) * 0.1f;
  fmt::print("{:6} {:>10} {:>9} {:>8}   {:>14}\n", "type", "rows", "GB/s", "% DRAM", "prefill T=32");
  for (GgmlType t : types) {
    const size_t rb = *ggml_row_bytes(t, K);
    const size_t rows = (mib << 20) / rb;
    // Every byte 0x3c: all scales are normal f16/bf16/f32/e8m0 numbers (no
    // denormal slow paths); the kernels' work does not depend on the values.
    std::vector<uint8_t> w(rows * rb, 0x3c);
    std::vector<float> y(T_prefill * rows);
    const size_t grain = 64;
    auto gemv = [&] {
      pool.parallel_for(rows, grain, [&](size_t a, size_t b) {
        quant::matmul_rows(x.data(), K, 1, w.data(), t, K, a, b, y.data(), rows);
      });
    };
    gemv();  // warm up: page faults, thread start
    const double s = time_best(5, gemv);
    const double gbs = double(w.size()) / s / 1e9;
    auto prefill = [&] {
      pool.parallel_for(rows, grain, [&](size_t a, size_t b) {
        quant::matmul_rows(x.data(), K, T_prefill, w.data(), t, K, a, b, y.data(), rows);
      });
    };
    const double sp = time_best(2, prefill);
    fmt::print("{:6} {:>10} {:9.2f} {:7.1f}%   {:9.2f} GB/s\n", ggml_type_info(uint32_t(t))->name, rows, gbs,
               100 * gbs / bw.gb_per_s, double(w.size()) / sp / 1e9);
  }
}
