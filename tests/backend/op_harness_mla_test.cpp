// The one-op harness (op_harness.h) on Multi-head Latent Attention: naive
// and absorbed paths against a double reference. The CUDA backend runs the
// absorbed form for every MlaPath (the same function), so there these
// cases check that form at every token count, prefill over 300 positions
// included.
#include "op_harness.h"

namespace moeflux {
namespace {

using namespace harness;

using MlaOpHarness = OpHarness;

// MLA over a prefill then a one-token step and a short step, with kv_b_proj
// in f32 and in a block format: each path (naive, absorbed, auto) against
// a double reference that decompresses K and V.
TEST_P(MlaOpHarness, MlaAttentionNaiveAndAbsorbedOverThreeSteps) {
  const int H = 3, n = 5, r = 4, v = 7, L = 64, QW = H * (n + r), KVB = H * (n + v);
  for (DType kv_dt : {DType::F32, DType::Q8_0})
    for (MlaPath path : {MlaPath::Naive, MlaPath::Absorbed, MlaPath::Auto}) {
      const auto kvb_values = randn(size_t(KVB * L), h.rng, 0.15f);
      const TensorRef* kv_b = h.own(make_tensor(kv_dt, {KVB, L}, kvb_values));
      const std::vector<float> W = weight_values(*kv_b);
      MlaParams p;
      p.heads = H;
      p.nope_dim = n;
      p.rope_dim = r;
      p.v_dim = v;
      p.kv_lora_rank = L;
      p.scale = 0.3f;
      p.kv_b = kv_b;
      p.path = path;
      std::vector<float> qs, lats, ropes;
      MemoryExperts none(0, 0, 0, h.rng);
      auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
      std::vector<StateDesc> states = {{LayerKind::LatentAttention, 0, L + r, 0}};
      auto session = backend->new_session(states, 64);
      int p0 = 0;
      for (int T : {6, 1, 3}) {
        const auto q = randn(size_t(T * QW), h.rng), lat = randn(size_t(T * L), h.rng),
                   rope = randn(size_t(T * r), h.rng);
        qs.insert(qs.end(), q.begin(), q.end());
        lats.insert(lats.end(), lat.begin(), lat.end());
        ropes.insert(ropes.end(), rope.begin(), rope.end());
        GraphBuilder g(T);
        g.set_states(states);
        auto in = g.input();
        auto xq = g.embed(in, h.table(T, QW, q), QW);
        auto xl = g.embed(in, h.table(T, L, lat), L);
        auto xr = g.embed(in, h.table(T, r, rope), r);
        auto bq = g.linear<Role::Query>(xq, h.identity(QW), nullptr, QW, "q");
        auto bl = g.linear<Role::Key>(xl, h.identity(L), nullptr, L, "latent");
        auto br = g.linear<Role::Key>(xr, h.identity(r), nullptr, r, "rope");
        auto o = g.mla_attention(bq, bl, br, 0, p);
        g.set_output(g.linear<Role::Logits>(o, h.identity(H * v), nullptr, H * v, "out"));
        const auto got = h.run(*session, g.finish(), 7, p0);
        std::vector<double> want(size_t(T * H * v));
        for (int t = 0; t < T; ++t) {
          const int pos = p0 + t;
          for (int hh = 0; hh < H; ++hh) {
            std::vector<double> sc, vals;
            for (int j = 0; j <= pos; ++j) {
              double d = 0;
              for (int i = 0; i < n; ++i) {
                double k = 0;
                for (int c = 0; c < L; ++c) k += double(W[size_t((hh * (n + v) + i) * L + c)]) * lats[size_t(j * L + c)];
                d += double(qs[size_t(pos * QW + hh * (n + r) + i)]) * k;
              }
              for (int i = 0; i < r; ++i) d += double(qs[size_t(pos * QW + hh * (n + r) + n + i)]) * ropes[size_t(j * r + i)];
              sc.push_back(d * p.scale);
            }
            const double m = *std::max_element(sc.begin(), sc.end());
            double z = 0;
            for (double& s : sc) z += (s = std::exp(s - m));
            for (int i = 0; i < v; ++i) {
              double acc = 0;
              for (int j = 0; j <= pos; ++j) {
                double val = 0;
                for (int c = 0; c < L; ++c)
                  val += double(W[size_t((hh * (n + v) + n + i) * L + c)]) * lats[size_t(j * L + c)];
                acc += sc[size_t(j)] / z * val;
              }
              want[size_t((t * H + hh) * v + i)] = acc;
            }
          }
        }
        const char* names[] = {"auto", "naive", "absorbed"};
        expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 2e-5,
                     std::string("mla ") + names[int(path)] + " " + std::string(dtype_name(kv_dt)) +
                         " T=" + std::to_string(T));
        p0 += T;
      }
    }
}

// A prefill longer than the naive path's block of positions (256): its
// running softmax across blocks against the absorbed path.
TEST_P(MlaOpHarness, MlaNaiveAcrossPositionBlocksEqualsAbsorbed) {
  const int H = 2, n = 6, r = 4, v = 5, L = 16, QW = H * (n + r), KVB = H * (n + v), T = 300;
  const TensorRef* kv_b = h.own(make_tensor(DType::F32, {KVB, L}, randn(size_t(KVB * L), h.rng, 0.3f)));
  const auto q = randn(size_t(T * QW), h.rng), lat = randn(size_t(T * L), h.rng), rope = randn(size_t(T * r), h.rng);
  std::vector<StateDesc> states = {{LayerKind::LatentAttention, 0, L + r, 0}};
  std::vector<std::vector<float>> outs;
  for (MlaPath path : {MlaPath::Naive, MlaPath::Absorbed}) {
    MlaParams p;
    p.heads = H;
    p.nope_dim = n;
    p.rope_dim = r;
    p.v_dim = v;
    p.kv_lora_rank = L;
    p.scale = 0.4f;
    p.kv_b = kv_b;
    p.path = path;
    MemoryExperts none(0, 0, 0, h.rng);
    auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
    auto session = backend->new_session(states, 512);
    GraphBuilder g(T);
    g.set_states(states);
    auto in = g.input();
    auto bq = g.linear<Role::Query>(g.embed(in, h.table(T, QW, q), QW), h.identity(QW), nullptr, QW, "q");
    auto bl = g.linear<Role::Key>(g.embed(in, h.table(T, L, lat), L), h.identity(L), nullptr, L, "latent");
    auto br = g.linear<Role::Key>(g.embed(in, h.table(T, r, rope), r), h.identity(r), nullptr, r, "rope");
    auto o = g.mla_attention(bq, bl, br, 0, p);
    g.set_output(g.linear<Role::Logits>(o, h.identity(H * v), nullptr, H * v, "out"));
    const Graph graph = g.finish();
    size_t op = 0;
    while (!std::holds_alternative<OpMlaAttention>(graph.ops[op])) ++op;
    outs.push_back(h.run(*session, graph, op));
  }
  std::vector<double> want(outs[1].begin(), outs[1].end());
  expect_close(outs[0], want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5, "mla naive over 2 blocks");
}

INSTANTIATE_TEST_SUITE_P(Backends, MlaOpHarness, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeflux
