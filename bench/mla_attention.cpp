// MLA attention on the CPU at DeepSeek-V3's shapes (128 heads, kv_lora_rank
// 512, qk 128 nope + 64 rope, v 128, kv_b_proj bf16): the naive path
// (decompress K/V a block of positions at a time) against the absorbed one
// (kv_b_proj folded into the query and the output), for decode and for a
// prefill chunk, over a context of P cached positions. Auto picks by
// multiply-add count; this checks that choice against the clock.
//   build/bench_mla_attention [context positions, default 2048] [threads, default all]
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu/kv_cache.h"
#include "backend/cpu/mla_attention.h"
#include "backend/state_budget.h"
#include "core/half.h"

using namespace moeflux;

int main(int argc, char** argv) {
  const int P = argc > 1 ? std::atoi(argv[1]) : 2048;
  ThreadPool pool(argc > 2 ? std::atoi(argv[2]) : 0);
  const int H = 128, n = 128, r = 64, v = 128, L = 512;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<uint16_t> kvb(size_t(H) * (n + v) * L);
  for (auto& x : kvb) x = f32_to_bf16(nd(rng));
  TensorRef ref;
  ref.name = "kv_b_proj";
  ref.dtype = DType::BF16;
  ref.shape = {int64_t(H) * (n + v), L};
  ref.nbytes = kvb.size() * 2;
  ref.data = reinterpret_cast<const uint8_t*>(kvb.data());
  StateBudget budget;
  const std::vector<StateDesc> states = {{LayerKind::LatentAttention, 0, L + r, 0}};
  KvCache kv(states, P + 512, budget);
  kv.reserve(P + 256);
  for (int p = 0; p < P + 256; ++p)
    for (int i = 0; i < L + r; ++i) kv.key(0, p)[i] = nd(rng);
  fmt::print("threads {}  context {} positions  kv_b_proj bf16 [{}, {}]\n", pool.size(), P, H * (n + v), L);
  for (int T : {1, 16, 256}) {
    std::vector<float> q(size_t(T) * H * (n + r)), out(size_t(T) * H * v);
    for (auto& x : q) x = nd(rng);
    std::vector<int32_t> pos(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) pos[size_t(t)] = P + t;
    for (MlaPath path : {MlaPath::Naive, MlaPath::Absorbed}) {
      MlaParams m{H, n, r, v, L, 0.07f, &ref, path};
      double best = 1e9;
      for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        cpu::mla_attention(pool, m, kv, 0, pos.data(), T, q.data(), out.data());
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      fmt::print("T {:3d}  {:8}  {:9.2f} ms per step  {:8.3f} ms per token\n", T,
                 path == MlaPath::Naive ? "naive" : "absorbed", best * 1e3, best * 1e3 / T);
    }
  }
}
