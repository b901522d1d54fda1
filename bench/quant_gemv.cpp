// Quantized GEMV bandwidth: y = W x (T = 1, the decode case) for every
// format quant::matmul_rows supports, on weights much larger than L3, next to
// the DRAM read bandwidth measured in the same run (before and after the
// kernels, with and without software prefetch; the highest is the floor). The number that matters is
// GB/s of weight bytes read, as a share of what DRAM can deliver.
//   build/bench_quant_gemv [MiB of weights, default 512] [threads, default all] [K, default 4096] [decode]
// ("decode" skips the prefill columns, which take most of the run.)
// Columns: matmul_rows_exact (f32 activations, the kernels before integer
// dot products), matmul_rows (the default: int8 activations where the CPU
// has the integer kernels), matmul_rows called per 16-row block as the MoE
// layer calls it, the same on PreparedActivations (prepared once, inside
// the timing), and prefill (T = 32) of exact and default as effective
// weight GB/s. MLX affine rows follow (bf16 scales and biases, counted in
// the bytes read): "exact" there is the dequantizing path, the others the
// fused integer kernels through the engine's matmul_weight.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/half.h"
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

using MatmulFn = void (*)(const float*, size_t, size_t, const uint8_t*, GgmlType, size_t, size_t, size_t, float*,
                          size_t);

struct Row {
  std::string_view name;
  size_t rows;
  double exact, fast, chunked, prepared, pre_exact, pre_fast;
};

// Effective GB/s of one weight matrix of `bytes` in every column: exact(T)
// and fast(T) multiply T tokens over all rows, chunked and prepared run
// decode as the MoE layer calls it (16 rows a call).
Row measure(std::string_view name, size_t rows, double bytes, const std::function<void(size_t)>& exact,
            const std::function<void(size_t)>& fast, const std::function<void()>& chunked,
            const std::function<void()>& prepared, size_t prefill_tokens) {
  Row r{name, rows, 0, 0, 0, 0, 0, 0};
  exact(1);  // warm up: page faults, thread start
  r.exact = bytes / time_best(5, [&] { exact(1); }) / 1e9;
  r.fast = bytes / time_best(5, [&] { fast(1); }) / 1e9;
  r.chunked = bytes / time_best(5, chunked) / 1e9;
  r.prepared = bytes / time_best(5, prepared) / 1e9;
  if (prefill_tokens) {
    r.pre_exact = bytes / time_best(2, [&] { exact(prefill_tokens); }) / 1e9;
    r.pre_fast = bytes / time_best(2, [&] { fast(prefill_tokens); }) / 1e9;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? size_t(std::atoi(argv[1])) : 512;
  ThreadPool pool(argc > 2 ? std::atoi(argv[2]) : 0);
  const size_t K = argc > 3 ? size_t(std::atoi(argv[3])) : 4096;
  const bool prefill = !(argc > 4 && std::string_view(argv[4]) == "decode");
  const BandwidthResult before = measure_read_bandwidth(pool);
  const double bw0 = before.plain_gb_per_s, pf0 = before.prefetch_gb_per_s;
  fmt::print("threads {}  kernels {}  K {}  weights {} MiB  DRAM read before: {:.2f} GB/s plain, {:.2f} GB/s with "
             "prefetch\n",
             pool.size(), quant::target_name(), K, mib, bw0, pf0);
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                            GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                            GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4};
  const size_t T_prefill = 32;
  std::vector<float> x(T_prefill * K, 0.5f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 13) - 6) * 0.1f;
  std::vector<Row> out;
  for (GgmlType t : types) {
    const size_t rb = *ggml_row_bytes(t, K);
    const size_t rows = (mib << 20) / rb / 16 * 16;
    // Every byte 0x3c: all scales are normal f16/bf16/f32/e8m0 numbers (no
    // denormal slow paths); the kernels' work does not depend on the values.
    std::vector<uint8_t> w(rows * rb, 0x3c);
    std::vector<float> y(T_prefill * rows);
    const double bytes = double(w.size());
    auto whole = [&](MatmulFn fn) {
      return [&, fn](size_t T) {
        pool.parallel_for(rows, 64,
                          [&](size_t a, size_t b) { fn(x.data(), K, T, w.data(), t, K, a, b, y.data(), rows); });
      };
    };
    // The MoE layer's work items: one call per 16 output rows.
    auto chunked = [&] {
      pool.parallel_for(rows / 16, 1, [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i)
          quant::matmul_rows(x.data(), K, 1, w.data(), t, K, 16 * i, 16 * i + 16, y.data(), rows);
      });
    };
    quant::PreparedActivations xq;
    auto chunked_prepared = [&] {
      xq.prepare(x.data(), K, 1, K, t);
      pool.parallel_for(rows / 16, 1, [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i) quant::matmul_rows(xq, w.data(), t, 16 * i, 16 * i + 16, y.data(), rows);
      });
    };
    out.push_back(measure(ggml_type_info(uint32_t(t))->name, rows, bytes, whole(quant::matmul_rows_exact),
                          whole(quant::matmul_rows), chunked, chunked_prepared, prefill ? T_prefill : 0));
  }
  struct MlxCase {
    int bits, gs;
  };
  std::vector<std::string> mlx_names;
  mlx_names.reserve(8);
  for (MlxCase c : {MlxCase{2, 64}, MlxCase{3, 64}, MlxCase{4, 32}, MlxCase{4, 64}, MlxCase{4, 128}, MlxCase{6, 64},
                    MlxCase{8, 64}}) {
    const size_t wb = K * size_t(c.bits) / 8, sb = K / size_t(c.gs) * 2;
    const size_t rows = (mib << 20) / (wb + 2 * sb) / 16 * 16;
    std::vector<uint8_t> w(rows * wb, 0x5a);
    std::vector<uint16_t> sc(rows * K / size_t(c.gs), f32_to_bf16(0.01f)), bi(sc.size(), f32_to_bf16(-0.08f));
    WeightView W{w.data(), DType::MLX, int64_t(rows), int64_t(K)};
    W.scales = reinterpret_cast<const uint8_t*>(sc.data());
    W.biases = reinterpret_cast<const uint8_t*>(bi.data());
    W.scale_dtype = DType::BF16;
    W.bits = uint8_t(c.bits);
    W.group_size = uint16_t(c.gs);
    std::vector<float> y(T_prefill * rows);
    const double bytes = double(w.size() + 2 * sc.size() * 2);
    using Fn = void (*)(const float*, size_t, size_t, const WeightView&, size_t, size_t, float*, size_t);
    auto whole = [&](Fn fn) {
      return [&, fn](size_t T) {
        pool.parallel_for(rows, 64, [&](size_t a, size_t b) { fn(x.data(), K, T, W, a, b, y.data(), rows); });
      };
    };
    auto chunked = [&] {
      pool.parallel_for(rows / 16, 1, [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i) cpu::matmul_weight(x.data(), K, 1, W, 16 * i, 16 * i + 16, y.data(), rows);
      });
    };
    quant::PreparedActivations xq;
    auto chunked_prepared = [&] {
      const auto layout = cpu::activation_layout(W);
      if (!layout) return chunked();
      xq.prepare(x.data(), K, 1, K, *layout);
      pool.parallel_for(rows / 16, 1, [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i) cpu::matmul_prepared(xq, 0, 1, W, 16 * i, 16 * i + 16, y.data(), rows);
      });
    };
    mlx_names.push_back(fmt::format("MLX{}g{}", c.bits, c.gs));
    out.push_back(measure(mlx_names.back(), rows, bytes, whole(cpu::matmul_mlx_dequantized), whole(cpu::matmul_weight),
                          chunked, chunked_prepared, prefill ? T_prefill : 0));
  }
  const BandwidthResult after = measure_read_bandwidth(pool);
  const double bw1 = after.plain_gb_per_s, pf1 = after.prefetch_gb_per_s;
  const double floor = std::max({bw0, bw1, pf0, pf1});
  fmt::print("DRAM read after: {:.2f} GB/s plain, {:.2f} GB/s with prefetch; floor = the highest, {:.2f} GB/s\n", bw1,
             pf1, floor);
  fmt::print("{:8} {:>9} | {:>16} | {:>16} | {:>16} | {:>16} | prefill T={} GB/s\n", "type", "rows",
             "exact GB/s  %DRAM", "default  %DRAM", "16-row  %DRAM", "16-row prep %DRAM", T_prefill);
  for (const auto& r : out)
    fmt::print("{:8} {:>9} | {:9.2f} {:5.1f}% | {:9.2f} {:5.1f}% | {:9.2f} {:5.1f}% | {:9.2f} {:5.1f}% | exact {:.2f}  "
               "default {:.2f}\n",
               r.name, r.rows, r.exact, 100 * r.exact / floor, r.fast, 100 * r.fast / floor, r.chunked,
               100 * r.chunked / floor, r.prepared, 100 * r.prepared / floor, r.pre_exact, r.pre_fast);
}
