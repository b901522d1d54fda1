// The one-op harness (in the manner of llama.cpp's test-backend-ops): every
// op of the graph IR run alone through a backend on random inputs of odd
// shapes, against a plain reference in double, with a tolerance per op and
// weight format. Each backend built in is tested (MOEFLUX_TEST_BACKENDS=a,b
// picks some); a new backend joins by registering in make_backend.
//
// A case is a small graph: F32 embedding tables turn token ids into the
// op's exact inputs (an embedding copies rows), F32 identity projections
// give them the op's roles (exactly: x * 1 + 0), the op runs, and the
// observer hands back its output rows.
#include "op_harness.h"

namespace moeflux {
namespace {

using namespace harness;


// ----------------------------------------------------------------- cases

TEST_P(OpHarness, LinearInEveryWeightFormat) {
  struct Format {
    DType dt;
    int k;        // input width: whole blocks of the format
    double rel;   // of sum |w x|: f32 activations 1e-5, int8-rounded activations 1/64
  };
  const Format formats[] = {
      {DType::F32, 37, 1e-5},   {DType::F16, 37, 1e-5},   {DType::BF16, 37, 1e-5},  {DType::Q8_0, 96, 1.0 / 64},
      {DType::Q4_0, 96, 1.0 / 64}, {DType::Q4_1, 96, 1.0 / 64}, {DType::Q5_0, 96, 1.0 / 64}, {DType::Q5_1, 96, 1.0 / 64},
      {DType::Q2_K, 256, 1.0 / 64}, {DType::Q3_K, 256, 1.0 / 64}, {DType::Q4_K, 256, 1.0 / 64},
      {DType::Q5_K, 512, 1.0 / 64}, {DType::Q6_K, 256, 1.0 / 64}, {DType::MXFP4, 64, 1.0 / 64}};
  for (const Format& f : formats)
    for (int T : {1, 5, 40})  // 40: a prefill, where a backend may take another path (cuBLAS)
      for (bool bias : {false, true}) {
        const int K = f.k, N = 29;
        const TensorRef* in = h.table(T, K, randn(size_t(T * K), h.rng));
        std::unique_ptr<Owned> w;
        if (f.dt == DType::F16 || f.dt == DType::BF16) {
          w = make_tensor(DType::F32, {N, K}, randn(size_t(N * K), h.rng, 0.3f));
          // Round-trip through the 16-bit format so the reference sees exactly what the kernel reads.
          std::vector<uint8_t> half(size_t(N * K) * 2);
          const auto* src = reinterpret_cast<const float*>(w->bytes.data());
          for (size_t i = 0; i < size_t(N * K); ++i) {
            uint32_t x;
            std::memcpy(&x, &src[i], 4);
            uint16_t hv;
            if (f.dt == DType::BF16) {
              hv = uint16_t(x >> 16);
            } else {
              const int e = int((x >> 23) & 0xff) - 127 + 15;
              hv = e <= 0 ? uint16_t((x >> 16) & 0x8000) : uint16_t(((x >> 16) & 0x8000) | (e << 10) | ((x >> 13) & 0x3ff));
            }
            std::memcpy(&half[2 * i], &hv, 2);
          }
          w->bytes = half;
          w->ref.dtype = f.dt;
          w->ref.nbytes = half.size();
          w->ref.data = w->bytes.data();
        } else {
          w = make_tensor(f.dt, {N, K}, randn(size_t(N * K), h.rng, 0.3f));
        }
        const TensorRef* W = h.own(std::move(w));
        const TensorRef* B = bias ? h.own(make_tensor(DType::F32, {N}, randn(size_t(N), h.rng))) : nullptr;
        GraphBuilder g(T);
        auto x = g.embed(g.input(), in, K);
        auto y = g.linear<Role::Hidden>(x, W, B, N, "y");
        g.set_output(g.linear<Role::Logits>(y, h.identity(N), nullptr, N, "out"));
        const auto got = h.run(g.finish(), 1);
        const auto wv = weight_values(*W);
        const auto xv = weight_values(*in);
        std::vector<double> want(size_t(T * N)), scale(size_t(T * N));
        for (int t = 0; t < T; ++t)
          for (int n = 0; n < N; ++n) {
            double s = 0, a = 0;
            for (int k = 0; k < K; ++k) {
              s += double(wv[size_t(n * K + k)]) * xv[size_t(t * K + k)];
              a += std::fabs(double(wv[size_t(n * K + k)]) * xv[size_t(t * K + k)]);
            }
            if (B) s += weight_values(*B)[size_t(n)];
            want[size_t(t * N + n)] = s;
            scale[size_t(t * N + n)] = a;
          }
        expect_close(got, want, scale, f.rel, 1e-5,
                     std::string("linear ") + std::string(dtype_name(f.dt)) + " T=" + std::to_string(T) +
                         (bias ? " bias" : ""));
      }
}

TEST_P(OpHarness, LinearWithMlxAffineWeights) {
  for (int bits : {2, 3, 4, 6, 8})
    for (int group : {32, 64, 128})
      for (int T : {1, 3}) {
        const int K = 256, N = 11;
        const TensorRef* in = h.table(T, K, randn(size_t(T * K), h.rng));
        const TensorRef* W = h.own(make_mlx(N, K, bits, group, h.rng));
        GraphBuilder g(T);
        auto x = g.embed(g.input(), in, K);
        auto y = g.linear<Role::Hidden>(x, W, nullptr, N, "y");
        g.set_output(g.linear<Role::Logits>(y, h.identity(N), nullptr, N, "out"));
        const auto got = h.run(g.finish(), 1);
        const auto wv = weight_values(*W), xv = weight_values(*in);
        std::vector<double> want(size_t(T * N)), scale(size_t(T * N));
        for (int t = 0; t < T; ++t)
          for (int n = 0; n < N; ++n)
            for (int k = 0; k < K; ++k) {
              want[size_t(t * N + n)] += double(wv[size_t(n * K + k)]) * xv[size_t(t * K + k)];
              scale[size_t(t * N + n)] += std::fabs(double(wv[size_t(n * K + k)]) * xv[size_t(t * K + k)]);
            }
        expect_close(got, want, scale, 1.0 / 64, 1e-5,
                     "linear MLX " + std::to_string(bits) + "-bit g" + std::to_string(group) + " T=" + std::to_string(T));
      }
}

TEST_P(OpHarness, EmbedRmsNormClampAddSwiGlu) {
  const int T = 5, D = 45;
  const auto a = randn(size_t(T * D), h.rng, 2.f), b = randn(size_t(T * D), h.rng, 2.f);
  const TensorRef *ta = h.table(T, D, a), *tb = h.table(T, D, b);
  const TensorRef* nw = h.own(make_tensor(DType::F32, {15}, randn(15, h.rng)));
  const std::vector<double> unit(size_t(T * D), 1.0);
  {  // rms_norm over groups of 15 with a 15-wide weight
    GraphBuilder g(T);
    auto x = g.embed(g.input(), ta, D);
    auto y = g.rms_norm(x, nw, 15, 1e-5f, "norm");
    g.set_output(g.linear<Role::Logits>(y, h.identity(D), nullptr, D, "out"));
    const auto got = h.run(g.finish(), 1);
    std::vector<double> want(size_t(T * D));
    const auto w = weight_values(*nw);
    for (int t = 0; t < T; ++t)
      for (int g0 = 0; g0 < D; g0 += 15) {
        double ss = 0;
        for (int i = 0; i < 15; ++i) ss += double(a[size_t(t * D + g0 + i)]) * a[size_t(t * D + g0 + i)];
        const double inv = 1.0 / std::sqrt(ss / 15 + 1e-5);
        for (int i = 0; i < 15; ++i) want[size_t(t * D + g0 + i)] = a[size_t(t * D + g0 + i)] * inv * w[size_t(i)];
      }
    expect_close(got, want, unit, 1e-5, 1e-6, "rms_norm");
  }
  {  // clamp, add, swiglu
    GraphBuilder g(T);
    auto x = g.embed(g.input(), ta, D);
    auto y = g.embed(g.input(), tb, D);
    auto c = g.clamp(x, 1.5f);
    auto s = g.add(c, y);
    auto gate = g.linear<Role::Ffn>(s, h.identity(D), nullptr, D, "gate");
    auto up = g.linear<Role::Ffn>(y, h.identity(D), nullptr, D, "up");
    auto act = g.swiglu(gate, up);
    g.set_output(g.linear<Role::Logits>(act, h.identity(D), nullptr, D, "out"));
    const Graph graph = g.finish();
    std::vector<double> clamped(size_t(T * D)), sum(size_t(T * D)), sw(size_t(T * D));
    for (size_t i = 0; i < clamped.size(); ++i) {
      clamped[i] = std::clamp(double(a[i]), -1.5, 1.5);
      sum[i] = clamped[i] + b[i];
      sw[i] = sum[i] / (1.0 + std::exp(-sum[i])) * b[i];
    }
    expect_close(h.run(graph, 2), clamped, unit, 0, 0, "clamp");  // in place on the embed output
    expect_close(h.run(graph, 3), sum, unit, 1e-6, 1e-6, "add");
    expect_close(h.run(graph, 6), sw, unit, 1e-5, 1e-6, "swiglu");
  }
}

TEST_P(OpHarness, RopeFullPartialAndInterleaved) {
  const int T = 4, hd = 24, heads = 3, W = hd * heads;
  const auto a = randn(size_t(T * W), h.rng);
  const TensorRef* ta = h.table(T, W, a);
  for (int rot : {24, 12})
    for (bool inter : {false, true}) {
      const RopeParams p{hd, rot, 10000.f, inter};
      GraphBuilder g(T);
      auto x = g.embed(g.input(), ta, W);
      auto q = g.linear<Role::Query>(x, h.identity(W), nullptr, W, "q");
      q = g.rope(q, p);
      g.set_output(g.linear<Role::Logits>(q, h.identity(W), nullptr, W, "out"));
      const auto got = h.run(g.finish(), 2);
      std::vector<double> want(a.begin(), a.end());
      for (int t = 0; t < T; ++t)
        for (int hh = 0; hh < heads; ++hh) {
          double* v = &want[size_t(t * W + hh * hd)];
          const float* src = &a[size_t(t * W + hh * hd)];
          for (int i = 0; i < rot / 2; ++i) {
            const double ang = t * std::pow(10000.0, -2.0 * i / rot);
            const int ia = inter ? 2 * i : i, ib = inter ? 2 * i + 1 : i + rot / 2;
            v[ia] = src[ia] * std::cos(ang) - src[ib] * std::sin(ang);
            v[ib] = src[ib] * std::cos(ang) + src[ia] * std::sin(ang);
          }
        }
      expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5,
                   "rope rot " + std::to_string(rot) + (inter ? " interleaved" : ""));
    }
}

TEST_P(OpHarness, AttentionOverTwoStepsWithGqaAndWindow) {
  const int heads = 6, kvh = 2, hd = 8, Q = heads * hd, KV = kvh * hd;
  for (std::optional<int> window : {std::optional<int>{}, std::optional<int>{3}}) {
    AttentionParams p;
    p.heads = heads;
    p.kv_heads = kvh;
    p.head_dim = hd;
    p.scale = 1.0f / std::sqrt(float(hd));
    p.window = window;
    std::vector<float> qs, ks, vs;  // every position's rows, for the reference
    MemoryExperts none(0, 0, 0, h.rng);
    auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
    std::vector<StateDesc> states = {{LayerKind::FullAttention, 0, KV, KV}};
    auto session = backend->new_session(states, 64);
    int p0 = 0;
    for (int T : {5, 2}) {  // a prefill, then a step that must read the cache
      const auto q = randn(size_t(T * Q), h.rng), k = randn(size_t(T * KV), h.rng), v = randn(size_t(T * KV), h.rng);
      qs.insert(qs.end(), q.begin(), q.end());
      ks.insert(ks.end(), k.begin(), k.end());
      vs.insert(vs.end(), v.begin(), v.end());
      GraphBuilder g(T);
      g.set_states(states);
      auto in = g.input();
      auto xq = g.embed(in, h.table(T, Q, q), Q);
      auto xk = g.embed(in, h.table(T, KV, k), KV);
      auto xv = g.embed(in, h.table(T, KV, v), KV);
      auto bq = g.linear<Role::Query>(xq, h.identity(Q), nullptr, Q, "q");
      auto bk = g.linear<Role::Key>(xk, h.identity(KV), nullptr, KV, "k");
      auto bv = g.linear<Role::Value>(xv, h.identity(KV), nullptr, KV, "v");
      auto o = g.attention(bq, bk, bv, 0, p);
      g.set_output(g.linear<Role::Logits>(o, h.identity(Q), nullptr, Q, "out"));
      const Graph graph = g.finish();
      const auto got = h.run(*session, graph, 7, p0);
      std::vector<double> want(size_t(T * Q));
      for (int t = 0; t < T; ++t) {
        const int pos = p0 + t, first = window ? std::max(0, pos - *window + 1) : 0;
        for (int hh = 0; hh < heads; ++hh) {
          const int kh = hh / (heads / kvh);
          std::vector<double> sc;
          for (int j = first; j <= pos; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += double(qs[size_t(pos * Q + hh * hd + i)]) * ks[size_t(j * KV + kh * hd + i)];
            sc.push_back(d * p.scale);
          }
          const double m = *std::max_element(sc.begin(), sc.end());
          double z = 0;
          for (double& s : sc) z += (s = std::exp(s - m));
          for (int i = 0; i < hd; ++i) {
            double acc = 0;
            for (int j = first; j <= pos; ++j) acc += sc[size_t(j - first)] / z * vs[size_t(j * KV + kh * hd + i)];
            want[size_t(t * Q + hh * hd + i)] = acc;
          }
        }
      }
      expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5,
                   "attention T=" + std::to_string(T) + (window ? " window" : ""));
      p0 += T;
    }
  }
}

// Decode over a cache of hundreds of positions: where a backend splits one
// query row's positions among several blocks (CUDA: 256 positions each) and
// merges their partial softmax sums, with and without a window.
TEST_P(OpHarness, AttentionDecodeOverALongCache) {
  const int heads = 4, kvh = 2, hd = 64, Q = heads * hd, KV = kvh * hd, P = 1100;
  for (std::optional<int> window : {std::optional<int>{}, std::optional<int>{600}}) {
    AttentionParams p;
    p.heads = heads;
    p.kv_heads = kvh;
    p.head_dim = hd;
    p.scale = 1.0f / std::sqrt(float(hd));
    p.window = window;
    MemoryExperts none(0, 0, 0, h.rng);
    auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
    std::vector<StateDesc> states = {{LayerKind::FullAttention, 0, KV, KV}};
    auto session = backend->new_session(states, 2048);
    std::vector<float> ks, vs;
    int p0 = 0;
    for (int T : {P, 1}) {  // the cache, then one decode row over it
      const auto q = randn(size_t(T * Q), h.rng), k = randn(size_t(T * KV), h.rng), v = randn(size_t(T * KV), h.rng);
      ks.insert(ks.end(), k.begin(), k.end());
      vs.insert(vs.end(), v.begin(), v.end());
      GraphBuilder g(T);
      g.set_states(states);
      auto in = g.input();
      auto bq = g.linear<Role::Query>(g.embed(in, h.table(T, Q, q), Q), h.identity(Q), nullptr, Q, "q");
      auto bk = g.linear<Role::Key>(g.embed(in, h.table(T, KV, k), KV), h.identity(KV), nullptr, KV, "k");
      auto bv = g.linear<Role::Value>(g.embed(in, h.table(T, KV, v), KV), h.identity(KV), nullptr, KV, "v");
      auto o = g.attention(bq, bk, bv, 0, p);
      g.set_output(g.linear<Role::Logits>(o, h.identity(Q), nullptr, Q, "out"));
      const auto got = h.run(*session, g.finish(), 7, p0);
      if (T == 1) {
        const int pos = p0, first = window ? std::max(0, pos - *window + 1) : 0;
        std::vector<double> want(static_cast<size_t>(Q));
        for (int hh = 0; hh < heads; ++hh) {
          const int kh = hh / (heads / kvh);
          std::vector<double> sc;
          for (int j = first; j <= pos; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += double(q[size_t(hh * hd + i)]) * ks[size_t(j * KV + kh * hd + i)];
            sc.push_back(d * p.scale);
          }
          const double m = *std::max_element(sc.begin(), sc.end());
          double z = 0;
          for (double& x : sc) z += (x = std::exp(x - m));
          for (int i = 0; i < hd; ++i) {
            double acc = 0;
            for (int j = first; j <= pos; ++j) acc += sc[size_t(j - first)] / z * vs[size_t(j * KV + kh * hd + i)];
            want[size_t(hh * hd + i)] = acc;
          }
        }
        expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5,
                     std::string("decode attention over ") + std::to_string(P) + " positions" +
                         (window ? " window" : ""));
      }
      p0 += T;
    }
  }
}

TEST_P(OpHarness, MoeWithEveryRouterAndASharedExpert) {
  const int T = 6, D = 20, F = 12, E = 8, k = 3, SF = 10;
  MemoryExperts experts(E, D, F, h.rng);
  for (RouterScoring scoring : {RouterScoring::Softmax, RouterScoring::TopkSoftmax, RouterScoring::Sigmoid})
    for (bool shared : {false, true}) {
      const auto x = randn(size_t(T * D), h.rng);
      MoeParams p;
      p.layer = 0;
      p.experts = E;
      p.top_k = k;
      p.expert_ffn = F;
      p.router.scoring = scoring;
      p.router.renormalize = scoring != RouterScoring::TopkSoftmax;
      if (scoring == RouterScoring::Sigmoid) {
        p.router.groups = 4;
        p.router.topk_groups = 2;
        p.router.scaling = 1.5f;
        p.correction_bias = h.own(make_tensor(DType::F32, {E}, randn(size_t(E), h.rng, 0.1f)));
      }
      p.router_weight = h.own(make_tensor(DType::F32, {E, D}, randn(size_t(E * D), h.rng)));
      if (scoring == RouterScoring::TopkSoftmax) p.router_bias = h.own(make_tensor(DType::F32, {E}, randn(size_t(E), h.rng)));
      if (shared) {
        p.shared_ffn = SF;
        p.shared_gate = h.own(make_tensor(DType::F32, {SF, D}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_up = h.own(make_tensor(DType::F32, {SF, D}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_down = h.own(make_tensor(DType::F32, {D, SF}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_expert_gate = h.own(make_tensor(DType::F32, {1, D}, randn(size_t(D), h.rng)));
      }
      GraphBuilder g(T);
      auto in = g.embed(g.input(), h.table(T, D, x), D);
      auto y = g.moe(in, p);
      g.set_output(g.linear<Role::Logits>(y, h.identity(D), nullptr, D, "out"));
      const auto got = h.run(g.finish(), 1, &experts);

      // Reference: router logits in double, the router rule (tested on its
      // own in tests/moe/router_test.cpp), experts and combine in double.
      auto mlp = [&](const TensorRef* gw, const TensorRef* uw, const TensorRef* dw, int f, const float* xt,
                     std::vector<double>& out) {
        const auto G = weight_values(*gw), U = weight_values(*uw), Dn = weight_values(*dw);
        std::vector<double> act(static_cast<size_t>(f));
        for (int i = 0; i < f; ++i) {
          double a = 0, b = 0;
          for (int j = 0; j < D; ++j) {
            a += double(G[size_t(i * D + j)]) * xt[j];
            b += double(U[size_t(i * D + j)]) * xt[j];
          }
          act[size_t(i)] = a / (1 + std::exp(-a)) * b;
        }
        out.assign(size_t(D), 0.0);
        for (int o = 0; o < D; ++o)
          for (int i = 0; i < f; ++i) out[size_t(o)] += double(Dn[size_t(o * f + i)]) * act[size_t(i)];
      };
      const auto R = weight_values(*p.router_weight);
      std::vector<float> logits(size_t(T * E));
      for (int t = 0; t < T; ++t)
        for (int e = 0; e < E; ++e) {
          double s = p.router_bias ? weight_values(*p.router_bias)[size_t(e)] : 0.0;
          for (int j = 0; j < D; ++j) s += double(R[size_t(e * D + j)]) * x[size_t(t * D + j)];
          logits[size_t(t * E + e)] = float(s);
        }
      Routing r;
      RouterScratch sc;
      route(p.router, logits.data(), T, E, k,
            p.correction_bias ? weight_values(*p.correction_bias) : std::vector<float>{}, r, sc);
      std::vector<double> want(size_t(T * D), 0.0), scale(size_t(T * D), 0.0), tmp;
      for (int t = 0; t < T; ++t) {
        for (int j = 0; j < k; ++j) {
          const int32_t e = r.experts[size_t(t * k + j)];
          mlp(&experts.gate_[size_t(e)]->ref, &experts.up_[size_t(e)]->ref, &experts.down_[size_t(e)]->ref, F,
              &x[size_t(t * D)], tmp);
          for (int o = 0; o < D; ++o) {
            want[size_t(t * D + o)] += r.weights[size_t(t * k + j)] * tmp[size_t(o)];
            scale[size_t(t * D + o)] += std::fabs(r.weights[size_t(t * k + j)] * tmp[size_t(o)]);
          }
        }
        if (shared) {
          mlp(p.shared_gate, p.shared_up, p.shared_down, SF, &x[size_t(t * D)], tmp);
          double gl = 0;
          const auto SG = weight_values(*p.shared_expert_gate);
          for (int j = 0; j < D; ++j) gl += double(SG[size_t(j)]) * x[size_t(t * D + j)];
          const double gate = 1 / (1 + std::exp(-gl));
          for (int o = 0; o < D; ++o) {
            want[size_t(t * D + o)] += gate * tmp[size_t(o)];
            scale[size_t(t * D + o)] += std::fabs(gate * tmp[size_t(o)]);
          }
        }
      }
      expect_close(got, want, scale, 1e-5, 1e-5,
                   std::string("moe scoring ") + std::to_string(int(scoring)) + (shared ? " shared" : ""));
    }
}

// --- gpt-oss: attention sinks, biased experts with the clamped SwiGLU ---

TEST_P(OpHarness, AttentionWithSinksOverTwoStepsWithWindow) {
  if (h.backend_name != "cpu") GTEST_SKIP() << "attention sinks are CPU-only so far (issue 15)";
  const int heads = 4, kvh = 2, hd = 8, Q = heads * hd, KV = kvh * hd;
  for (std::optional<int> window : {std::optional<int>{}, std::optional<int>{3}}) {
    AttentionParams p;
    p.heads = heads;
    p.kv_heads = kvh;
    p.head_dim = hd;
    p.scale = 1.0f / std::sqrt(float(hd));
    p.window = window;
    // Sinks from far below to above the scores: from no effect to most of the mass.
    const std::vector<float> sink_logits = {-30.0f, 0.3f, 2.0f, 6.0f};
    p.sinks = h.own(make_tensor(DType::F32, {heads}, sink_logits));
    std::vector<float> qs, ks, vs;
    MemoryExperts none(0, 0, 0, h.rng);
    auto backend = make_backend(h.backend_name, BackendContext{none, h.pool, h.budget});
    std::vector<StateDesc> states = {{window ? LayerKind::SlidingAttention : LayerKind::FullAttention, 0, KV, KV}};
    auto session = backend->new_session(states, 64);
    int p0 = 0;
    for (int T : {5, 2}) {
      const auto q = randn(size_t(T * Q), h.rng), k = randn(size_t(T * KV), h.rng), v = randn(size_t(T * KV), h.rng);
      qs.insert(qs.end(), q.begin(), q.end());
      ks.insert(ks.end(), k.begin(), k.end());
      vs.insert(vs.end(), v.begin(), v.end());
      GraphBuilder g(T);
      g.set_states(states);
      auto in = g.input();
      auto bq = g.linear<Role::Query>(g.embed(in, h.table(T, Q, q), Q), h.identity(Q), nullptr, Q, "q");
      auto bk = g.linear<Role::Key>(g.embed(in, h.table(T, KV, k), KV), h.identity(KV), nullptr, KV, "k");
      auto bv = g.linear<Role::Value>(g.embed(in, h.table(T, KV, v), KV), h.identity(KV), nullptr, KV, "v");
      auto o = g.attention(bq, bk, bv, 0, p);
      g.set_output(g.linear<Role::Logits>(o, h.identity(Q), nullptr, Q, "out"));
      const auto got = h.run(*session, g.finish(), 7, p0);
      // Reference: transformers' eager_attention_forward, the sink a last
      // column of the softmax that is then dropped.
      std::vector<double> want(size_t(T * Q));
      for (int t = 0; t < T; ++t) {
        const int pos = p0 + t, first = window ? std::max(0, pos - *window + 1) : 0;
        for (int hh = 0; hh < heads; ++hh) {
          const int kh = hh / (heads / kvh);
          std::vector<double> sc;
          for (int j = first; j <= pos; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += double(qs[size_t(pos * Q + hh * hd + i)]) * ks[size_t(j * KV + kh * hd + i)];
            sc.push_back(d * p.scale);
          }
          sc.push_back(sink_logits[size_t(hh)]);
          const double m = *std::max_element(sc.begin(), sc.end());
          double z = 0;
          for (double& x : sc) z += (x = std::exp(x - m));
          for (int i = 0; i < hd; ++i) {
            double acc = 0;
            for (int j = first; j <= pos; ++j) acc += sc[size_t(j - first)] / z * vs[size_t(j * KV + kh * hd + i)];
            want[size_t(t * Q + hh * hd + i)] = acc;
          }
        }
      }
      expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5,
                   "sink attention T=" + std::to_string(T) + (window ? " window" : ""));
      p0 += T;
    }
  }
}

TEST_P(OpHarness, MoeWithExpertBiasesAndClampedSwiGlu) {
  if (h.backend_name != "cpu") GTEST_SKIP() << "expert biases and the clamped SwiGLU are CPU-only so far (issue 15)";
  const int T = 5, D = 20, F = 12, E = 7, k = 3;
  MemoryExperts experts(E, D, F, h.rng);
  const auto x = randn(size_t(T * D), h.rng, 2.0f);  // wide enough that the limit cuts some values
  MoeParams p;
  p.layer = 0;
  p.experts = E;
  p.top_k = k;
  p.expert_ffn = F;
  p.router.scoring = RouterScoring::TopkSoftmax;
  p.router_weight = h.own(make_tensor(DType::F32, {E, D}, randn(size_t(E * D), h.rng)));
  p.router_bias = h.own(make_tensor(DType::F32, {E}, randn(size_t(E), h.rng)));
  p.expert_gate_up_bias = h.own(make_tensor(DType::F32, {E, 2 * F}, randn(size_t(E * 2 * F), h.rng, 0.5f)));
  p.expert_down_bias = h.own(make_tensor(DType::F32, {E, D}, randn(size_t(E * D), h.rng, 0.5f)));
  p.clamped_swiglu = true;
  p.swiglu_alpha = 1.702f;
  p.swiglu_limit = 1.5f;
  GraphBuilder g(T);
  auto in = g.embed(g.input(), h.table(T, D, x), D);
  g.set_output(g.linear<Role::Logits>(g.moe(in, p), h.identity(D), nullptr, D, "out"));
  const auto got = h.run(g.finish(), 1, &experts);

  // Reference in double: transformers' GptOssExperts for the routed experts.
  const auto R = weight_values(*p.router_weight), RB = weight_values(*p.router_bias);
  const auto GUB = weight_values(*p.expert_gate_up_bias), DB = weight_values(*p.expert_down_bias);
  std::vector<float> logits(size_t(T * E));
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) {
      double s = RB[size_t(e)];
      for (int j = 0; j < D; ++j) s += double(R[size_t(e * D + j)]) * x[size_t(t * D + j)];
      logits[size_t(t * E + e)] = float(s);
    }
  Routing r;
  RouterScratch sc;
  route(p.router, logits.data(), T, E, k, {}, r, sc);
  std::vector<double> want(size_t(T * D), 0.0), scale(size_t(T * D), 0.0);
  int clamped = 0;
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j) {
      const int32_t e = r.experts[size_t(t * k + j)];
      const auto G = weight_values(experts.gate_[size_t(e)]->ref), U = weight_values(experts.up_[size_t(e)]->ref),
                 Dn = weight_values(experts.down_[size_t(e)]->ref);
      std::vector<double> act(static_cast<size_t>(F));
      for (int i = 0; i < F; ++i) {
        double a = GUB[size_t(e * 2 * F + 2 * i)], b = GUB[size_t(e * 2 * F + 2 * i + 1)];
        for (int c = 0; c < D; ++c) {
          a += double(G[size_t(i * D + c)]) * x[size_t(t * D + c)];
          b += double(U[size_t(i * D + c)]) * x[size_t(t * D + c)];
        }
        clamped += (a > p.swiglu_limit) + (std::fabs(b) > p.swiglu_limit);
        a = std::min(a, double(p.swiglu_limit));
        b = std::clamp(b, -double(p.swiglu_limit), double(p.swiglu_limit));
        act[size_t(i)] = (b + 1) * a / (1 + std::exp(-double(p.swiglu_alpha) * a));
      }
      for (int o = 0; o < D; ++o) {
        double y = DB[size_t(e * D + o)];
        for (int i = 0; i < F; ++i) y += double(Dn[size_t(o * F + i)]) * act[size_t(i)];
        want[size_t(t * D + o)] += r.weights[size_t(t * k + j)] * y;
        scale[size_t(t * D + o)] += std::fabs(r.weights[size_t(t * k + j)] * y);
      }
    }
  EXPECT_GT(clamped, 0) << "the limit should cut some gate/up values";
  expect_close(got, want, scale, 1e-5, 1e-5, "moe with expert biases and the clamped SwiGLU");
}

// --- Multi-head latent attention (DeepSeek-V2/V3) ---

// YaRN frequencies in double, as transformers' _compute_yarn_parameters.
double yarn_inv_freq(const RopeParams& p, int i) {
  const double pos_freq = std::pow(double(p.theta), 2.0 * i / p.rot_dims);
  if (p.yarn.factor == 1.0f) return 1.0 / pos_freq;
  const double ramp = std::clamp((i - double(p.yarn.low)) / (double(p.yarn.high) - p.yarn.low), 0.0, 1.0);
  return 1.0 / (p.yarn.factor * pos_freq) * ramp + 1.0 / pos_freq * (1.0 - ramp);
}

TEST_P(OpHarness, RopeAtAnOffsetWithYarn) {
  const int T = 5, hd = 18, heads = 3, W = hd * heads, rot = 8, off = 10;
  const auto a = randn(size_t(T * W), h.rng);
  const TensorRef* ta = h.table(T, W, a);
  for (bool yarn : {false, true})
    for (bool inter : {false, true}) {
      RopeParams p{hd, rot, 10000.f, inter, off};
      if (yarn) p.yarn = RopeYarn{4.0f, 1.0f, 3.0f, 1.1f};
      GraphBuilder g(T);
      auto x = g.embed(g.input(), ta, W);
      auto q = g.linear<Role::Query>(x, h.identity(W), nullptr, W, "q");
      q = g.rope(q, p);
      g.set_output(g.linear<Role::Logits>(q, h.identity(W), nullptr, W, "out"));
      const auto got = h.run(g.finish(), 2);
      std::vector<double> want(a.begin(), a.end());
      for (int t = 0; t < T; ++t)
        for (int hh = 0; hh < heads; ++hh) {
          double* v = &want[size_t(t * W + hh * hd + off)];
          const float* src = &a[size_t(t * W + hh * hd + off)];
          for (int i = 0; i < rot / 2; ++i) {
            const double ang = t * yarn_inv_freq(p, i), m = p.yarn.attention_factor;
            const int ia = inter ? 2 * i : i, ib = inter ? 2 * i + 1 : i + rot / 2;
            v[ia] = m * (src[ia] * std::cos(ang) - src[ib] * std::sin(ang));
            v[ib] = m * (src[ib] * std::cos(ang) + src[ia] * std::sin(ang));
          }
        }
      expect_close(got, want, std::vector<double>(want.size(), 1.0), 1e-5, 1e-5,
                   std::string("rope at offset") + (yarn ? " yarn" : "") + (inter ? " interleaved" : ""));
    }
}

TEST_P(OpHarness, SliceColumns) {
  const int T = 3, W = 13;
  const auto a = randn(size_t(T * W), h.rng);
  GraphBuilder g(T);
  auto x = g.embed(g.input(), h.table(T, W, a), W);
  auto k = g.linear<Role::Key>(x, h.identity(W), nullptr, W, "k");
  auto s = g.slice<Role::Key>(k, 4, 7, "slice");
  g.set_output(g.linear<Role::Logits>(s, h.identity(7), nullptr, 7, "out"));
  std::vector<double> want;
  for (int t = 0; t < T; ++t)
    for (int i = 4; i < 11; ++i) want.push_back(a[size_t(t * W + i)]);
  expect_close(h.run(g.finish(), 3), want, std::vector<double>(want.size(), 1.0), 0, 0, "slice");
}


// One token through quantized experts (and a quantized shared expert):
// the decode path, where a backend may round activations to int8 (CUDA:
// gate/up in one launch, down and the combine in another). Tolerance 1/32
// of sum_j |w_j| sum_i |down_oi act_i|, as the linear case's 1/64 per
// rounded product, twice over (x into gate/up, act into down).
TEST_P(OpHarness, MoeDecodeWithQuantizedExperts) {
  const int D = 256, F = 256, E = 8, k = 3, SF = 256;
  for (DType dt : {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q8_0, DType::Q4_0, DType::Q5_1})
    for (bool shared : {false, true}) {
      MemoryExperts experts(E, D, F, h.rng, dt);
      const auto x = randn(size_t(D), h.rng);
      MoeParams p;
      p.layer = 0;
      p.experts = E;
      p.top_k = k;
      p.expert_ffn = F;
      p.router.scoring = RouterScoring::Softmax;
      p.router.renormalize = true;
      p.router_weight = h.own(make_tensor(DType::F32, {E, D}, randn(size_t(E * D), h.rng)));
      if (shared) {
        p.shared_ffn = SF;
        p.shared_gate = h.own(make_tensor(dt, {SF, D}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_up = h.own(make_tensor(dt, {SF, D}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_down = h.own(make_tensor(dt, {D, SF}, randn(size_t(SF * D), h.rng, 0.2f)));
        p.shared_expert_gate = h.own(make_tensor(DType::F32, {1, D}, randn(size_t(D), h.rng)));
      }
      GraphBuilder g(1);
      auto in = g.embed(g.input(), h.table(1, D, x), D);
      auto y = g.moe(in, p);
      g.set_output(g.linear<Role::Logits>(y, h.identity(D), nullptr, D, "out"));
      const auto got = h.run(g.finish(), 1, &experts);

      // out[o] += wt * sum_i down[o, i] act_i, and |.| of each term into scale.
      auto mlp = [&](const TensorRef* gw, const TensorRef* uw, const TensorRef* dw, int f, double wt,
                     std::vector<double>& out, std::vector<double>& scale) {
        const auto G = weight_values(*gw), U = weight_values(*uw), Dn = weight_values(*dw);
        std::vector<double> act(static_cast<size_t>(f));
        for (int i = 0; i < f; ++i) {
          double a = 0, b = 0;
          for (int j = 0; j < D; ++j) {
            a += double(G[size_t(i * D + j)]) * x[size_t(j)];
            b += double(U[size_t(i * D + j)]) * x[size_t(j)];
          }
          act[size_t(i)] = a / (1 + std::exp(-a)) * b;
        }
        for (int o = 0; o < D; ++o)
          for (int i = 0; i < f; ++i) {
            out[size_t(o)] += wt * double(Dn[size_t(o * f + i)]) * act[size_t(i)];
            scale[size_t(o)] += std::fabs(wt * double(Dn[size_t(o * f + i)]) * act[size_t(i)]);
          }
      };
      const auto R = weight_values(*p.router_weight);
      std::vector<float> logits(static_cast<size_t>(E));
      for (int e = 0; e < E; ++e) {
        double s = 0;
        for (int j = 0; j < D; ++j) s += double(R[size_t(e * D + j)]) * x[size_t(j)];
        logits[size_t(e)] = float(s);
      }
      Routing r;
      RouterScratch sc;
      route(p.router, logits.data(), 1, E, k, std::vector<float>{}, r, sc);
      std::vector<double> want(size_t(D), 0.0), scale(size_t(D), 0.0);
      for (int j = 0; j < k; ++j) {
        const int32_t e = r.experts[size_t(j)];
        mlp(&experts.gate_[size_t(e)]->ref, &experts.up_[size_t(e)]->ref, &experts.down_[size_t(e)]->ref, F,
            r.weights[size_t(j)], want, scale);
      }
      if (shared) {
        double gl = 0;
        const auto SG = weight_values(*p.shared_expert_gate);
        for (int j = 0; j < D; ++j) gl += double(SG[size_t(j)]) * x[size_t(j)];
        mlp(p.shared_gate, p.shared_up, p.shared_down, SF, 1 / (1 + std::exp(-gl)), want, scale);
      }
      expect_close(got, want, scale, 1.0 / 32, 1e-5,
                   std::string("moe decode ") + std::string(dtype_name(dt)) + (shared ? " shared" : ""));
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, OpHarness, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeflux