// The one-op harness (op_harness.h) on the Gated DeltaNet and gated
// attention ops: split_groups, sigmoid_mul, causal_conv, gated_delta_rule,
// gated_rms_norm, rms_norm with a weight offset.
#include "op_harness.h"

namespace moeflux {
namespace {

using namespace harness;

using DeltaNetOpHarness = OpHarness;

// ---------------------------------------- Gated DeltaNet and gated attention

// Every backend runs these ops (the CUDA kernels in backend/cuda/deltanet.cu
// against the same double references and tolerances as the CPU's: the
// delta rule there is the step form for every token count).

TEST_P(DeltaNetOpHarness, SplitGroupsSigmoidMulAndOffsetRmsNorm) {
  const int T = 3, G = 3;
  const std::vector<SplitPart> parts{{5, 0}, {4, 1}, {7, 0}};  // per group: a (-> 0), b (-> 1), c (-> 0)
  const int W = G * 16, W0 = G * 12, W1 = G * 4;
  const auto in = randn(size_t(T * W), h.rng);
  const TensorRef* nw = h.own(make_tensor(DType::F32, {6}, randn(6, h.rng, 0.1f)));
  GraphBuilder g(T);
  auto x = g.embed(g.input(), h.table(T, W, in), W);
  auto m = g.linear<Role::Mixer>(x, h.identity(W), nullptr, W, "in");
  auto o0 = g.buffer<Role::Mixer>(W0, "o0");
  auto o1 = g.buffer<Role::Mixer>(W1, "o1");
  g.split_groups(AnyBuf(m), {AnyBuf(o0), AnyBuf(o1)}, G, parts);         // op 2
  auto y1 = g.linear<Role::Mixer>(o1, h.identity(W1), nullptr, W1, "y1");  // op 3: o1
  auto a = g.linear<Role::Mixer>(o0, h.identity(W0), nullptr, W0, "a");    // op 4
  auto gate = g.linear<Role::Mixer>(o0, h.identity(W0), nullptr, W0, "gate");
  g.sigmoid_mul(a, gate);                                                  // op 6: a * sigmoid(a)
  auto n = g.rms_norm(y1, nw, 6, 1e-5f, "norm", 1.f);                      // op 7: zero-centred weight
  g.set_output(g.linear<Role::Logits>(n, h.identity(W1), nullptr, W1, "out"));
  MemoryExperts none(0, 0, 0, h.rng);
  auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
  const Graph graph = g.finish();
  auto session = backend->new_session(graph.states, 8);
  const auto got = h.run_each(*session, graph);
  std::vector<double> want0, want1, want_mul, want_norm;
  for (int t = 0; t < T; ++t) {
    const float* row = &in[size_t(t * W)];
    for (int gi = 0; gi < G; ++gi)
      for (int i = 0; i < 5; ++i) want0.push_back(row[gi * 16 + i]);
    for (int gi = 0; gi < G; ++gi)
      for (int i = 0; i < 7; ++i) want0.push_back(row[gi * 16 + 9 + i]);
    for (int gi = 0; gi < G; ++gi)
      for (int i = 0; i < 4; ++i) want1.push_back(row[gi * 16 + 5 + i]);
  }
  for (double v : want0) want_mul.push_back(v / (1 + std::exp(-v)));
  const auto w = weight_values(*nw);
  for (size_t r = 0; r < want1.size(); r += 6) {
    double ss = 0;
    for (size_t i = 0; i < 6; ++i) ss += want1[r + i] * want1[r + i];
    const double inv = 1 / std::sqrt(ss / 6 + 1e-5);
    for (size_t i = 0; i < 6; ++i) want_norm.push_back(want1[r + i] * inv * (1.0 + w[i]));
  }
  const std::vector<double> one0(want0.size(), 1.0), one1(want1.size(), 1.0);
  expect_close(got[2], want0, one0, 0, 0, "split_groups out 0");
  expect_close(got[3], want1, one1, 0, 0, "split_groups out 1");
  expect_close(got[6], want_mul, one0, 1e-6, 1e-6, "sigmoid_mul");
  expect_close(got[7], want_norm, one1, 1e-5, 1e-5, "rms_norm with weight offset 1");
}

// Runs the rows of `steps` (widths W) through a graph made by `op` as
// successive steps of one session, returning the op's output of each.
template <class MakeOp>
std::vector<float> run_in_steps(Harness& h, const std::vector<int>& steps, const std::vector<float>& in, int W,
                                const std::vector<StateDesc>& states, MakeOp op) {
  MemoryExperts none(0, 0, 0, h.rng);
  auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
  auto session = backend->new_session(states, 64);
  std::vector<float> out;
  int p0 = 0;
  for (int T : steps) {
    GraphBuilder g(T);
    g.set_states(states);
    auto x = g.embed(g.input(), h.table(T, W, std::vector<float>(in.begin() + p0 * W, in.begin() + (p0 + T) * W)), W);
    auto m = g.linear<Role::Mixer>(x, h.identity(W), nullptr, W, "in");
    const BufId<Role::Mixer> y = op(g, m);
    const int width = g.width(y);
    g.set_output(g.linear<Role::Logits>(y, h.identity(width), nullptr, width, "out"));
    const Graph graph = g.finish();
    const auto got = h.run_each(*session, graph, p0);
    EXPECT_EQ(got[2].size(), size_t(T) * size_t(width));
    out.insert(out.end(), got[2].begin(), got[2].end());
    p0 += T;
  }
  return out;
}

TEST_P(DeltaNetOpHarness, CausalConvCarriesItsHistoryAcrossSteps) {
  const int C = 13, W = 17, K = 4, L = 9;  // reads the first 13 of 17 columns
  const auto in = randn(size_t(L * W), h.rng);
  const TensorRef* taps = h.own(make_tensor(DType::F32, {C, 1, K}, randn(size_t(C * K), h.rng, 0.5f)));
  const size_t offset = 5;  // the history need not start the state
  StateDesc st{LayerKind::Recurrent, 0};
  st.fixed_floats = offset + size_t((K - 1) * C);
  const auto w = weight_values(*taps);
  std::vector<double> want, scale;
  for (int t = 0; t < L; ++t)
    for (int c = 0; c < C; ++c) {
      double acc = 0, a = 0;
      for (int j = 0; j < K; ++j) {
        const int src = t - (K - 1) + j;
        if (src < 0) continue;
        acc += double(w[size_t(c * K + j)]) * in[size_t(src * W + c)];
        a += std::fabs(double(w[size_t(c * K + j)]) * in[size_t(src * W + c)]);
      }
      want.push_back(acc / (1 + std::exp(-acc)));
      scale.push_back(a);
    }
  for (const std::vector<int>& steps : {std::vector<int>{9}, {5, 2, 2}, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 7}}) {
    const auto got = run_in_steps(h, steps, in, W, {st}, [&](GraphBuilder& g, BufId<Role::Mixer> m) {
      return g.causal_conv(m, taps, C, K, 0, offset);
    });
    expect_close(got, want, scale, 1e-5, 1e-6, "causal_conv in " + std::to_string(steps.size()) + " steps");
  }
}

// The gated delta rule of Hv value heads over Hk key heads (dk x dv state
// each) over L tokens, run in each of `step_lists` as successive steps of
// one session, against a double reference of the step form.
void check_gated_delta_rule(Harness& h, int Hk, int Hv, int dk, int dv, int L,
                            const std::vector<std::vector<int>>& step_lists) {
  DeltaRuleParams p;
  p.key_heads = Hk, p.value_heads = Hv, p.key_dim = dk, p.value_dim = dv;
  p.scale = 1.0f / std::sqrt(float(dk));
  const int QKV = 2 * Hk * dk + Hv * dv, W = QKV + 2 * Hv;  // q, k, v, then b and a
  const auto in = randn(size_t(L * W), h.rng);
  const TensorRef* a_log = h.own(make_tensor(DType::F32, {Hv}, randn(size_t(Hv), h.rng, 0.5f)));
  const TensorRef* dt_bias = h.own(make_tensor(DType::F32, {Hv}, randn(size_t(Hv), h.rng, 0.5f)));
  const size_t offset = 11;
  StateDesc st{LayerKind::Recurrent, 0};
  st.fixed_floats = offset + size_t(Hv * dk * dv);
  // The reference, in double.
  const auto al = weight_values(*a_log), dt = weight_values(*dt_bias);
  std::vector<double> S(size_t(Hv * dk * dv), 0.0), want, scale;
  for (int t = 0; t < L; ++t) {
    const float* row = &in[size_t(t * W)];
    for (int hv = 0; hv < Hv; ++hv) {
      const int kh = hv / (Hv / Hk);
      std::vector<double> q(static_cast<size_t>(dk)), k(static_cast<size_t>(dk));
      double qq = 0, kk = 0;
      for (int i = 0; i < dk; ++i) {
        q[size_t(i)] = row[kh * dk + i];
        k[size_t(i)] = row[Hk * dk + kh * dk + i];
        qq += q[size_t(i)] * q[size_t(i)];
        kk += k[size_t(i)] * k[size_t(i)];
      }
      for (int i = 0; i < dk; ++i) {
        q[size_t(i)] *= p.scale / std::sqrt(qq + 1e-6);
        k[size_t(i)] /= std::sqrt(kk + 1e-6);
      }
      const double x = row[QKV + Hv + hv] + dt[size_t(hv)];
      const double decay = std::exp(-std::exp(double(al[size_t(hv)])) * std::log1p(std::exp(x)));
      const double beta = 1 / (1 + std::exp(-double(row[QKV + hv])));
      double* s = &S[size_t(hv * dk * dv)];
      for (int j = 0; j < dv; ++j) {
        double kv = 0;
        for (int i = 0; i < dk; ++i) kv += (s[i * dv + j] *= decay) * k[size_t(i)];
        const double delta = (row[2 * Hk * dk + hv * dv + j] - kv) * beta;
        double o = 0, a = 0;
        for (int i = 0; i < dk; ++i) {
          s[i * dv + j] += k[size_t(i)] * delta;
          o += s[i * dv + j] * q[size_t(i)];
          a += std::fabs(s[i * dv + j] * q[size_t(i)]);
        }
        want.push_back(o);
        scale.push_back(a);
      }
    }
  }
  // The rule (op 3) over one step, several, and token by token; steps of
  // several tokens in the step form and in chunks of 3 (a partial last one).
  for (int chunk : {0, 3, 64})
  for (const std::vector<int>& steps : step_lists) {
    p.chunk = chunk;
    MemoryExperts none(0, 0, 0, h.rng);
    auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
    auto session = backend->new_session({st}, 64);
    std::vector<float> got;
    int p0 = 0;
    for (int T : steps) {
      GraphBuilder g(T);
      g.set_states({st});
      auto x = g.embed(g.input(),
                       h.table(T, W, std::vector<float>(in.begin() + p0 * W, in.begin() + (p0 + T) * W)), W);
      auto m = g.linear<Role::Mixer>(x, h.identity(W), nullptr, W, "in");
      auto qkv = g.buffer<Role::Mixer>(QKV, "qkv");
      auto b = g.buffer<Role::Mixer>(Hv, "b");
      auto a = g.buffer<Role::Mixer>(Hv, "a");
      g.split_groups(AnyBuf(m), {AnyBuf(qkv), AnyBuf(b), AnyBuf(a)}, 1, {{QKV, 0}, {Hv, 1}, {Hv, 2}});
      auto o = g.gated_delta_rule(qkv, b, a, a_log, dt_bias, 0, offset, p);
      g.set_output(g.linear<Role::Logits>(o, h.identity(Hv * dv), nullptr, Hv * dv, "out"));
      const auto each = h.run_each(*session, g.finish(), p0);
      got.insert(got.end(), each[3].begin(), each[3].end());
      p0 += T;
    }
    expect_close(got, want, scale, 1e-5, 1e-5,
                 "gated_delta_rule in " + std::to_string(steps.size()) + " steps, chunk " + std::to_string(chunk));
  }
}

TEST_P(DeltaNetOpHarness, GatedDeltaRuleCarriesItsStateAcrossSteps) {
  // 3 value heads per key head; one step, several, token by token.
  check_gated_delta_rule(h, 2, 6, 7, 5, 8, {{8}, {3, 5}, {1, 1, 1, 1, 1, 1, 1, 1}, {7, 1}});
}

// Wider heads than a warp of value columns (the CUDA kernel's blocks of 32
// columns, a partial last one) and key_dim not a multiple of 32.
TEST_P(DeltaNetOpHarness, GatedDeltaRuleWideHeads) {
  check_gated_delta_rule(h, 1, 2, 37, 45, 6, {{6}, {4, 1, 1}});
}

TEST_P(DeltaNetOpHarness, GatedRmsNorm) {
  const int T = 3, W = 20, G = 10;
  const auto in = randn(size_t(T * 2 * W), h.rng, 2.f);
  const TensorRef* nw = h.own(make_tensor(DType::F32, {G}, randn(size_t(G), h.rng)));
  GraphBuilder g(T);
  auto x = g.embed(g.input(), h.table(T, 2 * W, in), 2 * W);
  auto m = g.linear<Role::Mixer>(x, h.identity(2 * W), nullptr, 2 * W, "in");
  auto v = g.buffer<Role::Mixer>(W, "x");
  auto z = g.buffer<Role::Mixer>(W, "z");
  g.split_groups(AnyBuf(m), {AnyBuf(v), AnyBuf(z)}, 1, {{W, 0}, {W, 1}});
  auto y = g.gated_rms_norm(v, z, nw, G, 1e-6f);  // op 3
  g.set_output(g.linear<Role::Logits>(y, h.identity(W), nullptr, W, "out"));
  const auto got = h.run(g.finish(), 3);
  const auto w = weight_values(*nw);
  std::vector<double> want;
  for (int t = 0; t < T; ++t)
    for (int g0 = 0; g0 < W; g0 += G) {
      const float* xr = &in[size_t(t * 2 * W + g0)];
      const float* zr = &in[size_t(t * 2 * W + W + g0)];
      double ss = 0;
      for (int i = 0; i < G; ++i) ss += double(xr[i]) * xr[i];
      const double inv = 1 / std::sqrt(ss / G + 1e-6);
      for (int i = 0; i < G; ++i) want.push_back(w[size_t(i)] * xr[i] * inv * zr[i] / (1 + std::exp(-double(zr[i]))));
    }
  expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5, "gated_rms_norm");
}

INSTANTIATE_TEST_SUITE_P(Backends, DeltaNetOpHarness, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeflux
