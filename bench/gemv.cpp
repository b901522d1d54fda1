// GEMV bandwidth: y = W x for weights much larger than the caches, per
// weight type, next to the DRAM read bandwidth measured in the same run.
//   build/bench_gemv [MiB of weights, default 512] [threads, default all]
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"
#include "core/membw.h"

using namespace moeflux;

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? size_t(std::atoi(argv[1])) : 512;
  ThreadPool pool(argc > 2 ? std::atoi(argv[2]) : 0);
  const auto bw = measure_read_bandwidth(pool);
  fmt::print("threads {}  kernels {}  DRAM read {:.2f} GB/s\n", pool.size(), simd::target_name(), bw.gb_per_s);
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t K = 2048;
    const int64_t N = int64_t(mib << 20) / (K * int64_t(dtype_size(t)));
    std::vector<uint8_t> w(size_t(N * K) * dtype_size(t), 0x3c);
    std::vector<float> x(static_cast<size_t>(K), 0.5f), y(static_cast<size_t>(N));
    const WeightView view{w.data(), t, N, K};
    double best = 1e9;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      cpu::linear(pool, x.data(), 1, view, nullptr, y.data());
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double gbs = double(w.size()) / best / 1e9;
    fmt::print("{:5} GEMV {}x{}: {:6.2f} GB/s = {:5.1f} % of DRAM read\n", dtype_name(t), N, K, gbs,
               100 * gbs / bw.gb_per_s);
  }
}
