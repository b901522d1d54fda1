#include "core/membw.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>

namespace moeflux {

namespace {

// Integer sums vectorise without fast-math, so the loops are bound by memory,
// not by the add latency chain.
template <bool kPrefetch>
uint64_t sum_range(const uint64_t* buf, size_t b, size_t e) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = b;
  for (; i + 8 <= e; i += 8) {
    if constexpr (kPrefetch) __builtin_prefetch(buf + i + 512);
    s0 += buf[i] + buf[i + 4];
    s1 += buf[i + 1] + buf[i + 5];
    s2 += buf[i + 2] + buf[i + 6];
    s3 += buf[i + 3] + buf[i + 7];
  }
  for (; i < e; ++i) s0 += buf[i];
  return s0 + s1 + s2 + s3;
}

template <bool kPrefetch>
double best_pass(ThreadPool& pool, const uint64_t* buf, size_t n, int reps) {
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, 1 << 16, [&](size_t b, size_t e) { sink += sum_range<kPrefetch>(buf, b, e); });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / secs / 1e9);
  }
  return best;
}

}  // namespace

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  pool.parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) buf[i] = i;
  });
  const double plain = best_pass<false>(pool, buf.get(), n, reps);
  const double prefetch = best_pass<true>(pool, buf.get(), n, reps);
  return {std::max(plain, prefetch), n * sizeof(uint64_t), plain, prefetch};
}

}  // namespace moeflux
