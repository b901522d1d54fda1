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
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>

#include "backend/backend.h"
#include "backend/state_budget.h"
#include "core/thread_pool.h"
#include "experts/expert_source.h"
#include "graph/builder.h"
#include "graph/planner.h"
#include "quant/dequant.h"
#include "quant/mlx_affine.h"
#include "quant/quantize.h"

namespace moeflux {
namespace {

// ---------------------------------------------------------------- tensors

// A tensor the harness owns: bytes plus the TensorRef ops point at.
struct Owned {
  std::vector<uint8_t> bytes, scales, biases;
  TensorRef ref;
};

std::unique_ptr<Owned> make_tensor(DType dt, std::vector<int64_t> shape, const std::vector<float>& values) {
  auto t = std::make_unique<Owned>();
  const int64_t cols = shape.back(), rows = int64_t(values.size()) / cols;
  if (dt == DType::F32) {
    t->bytes.resize(values.size() * 4);
    std::memcpy(t->bytes.data(), values.data(), t->bytes.size());
  } else {
    const GgmlType g = *ggml_type_of(dt);
    const size_t rb = size_t(dtype_row_bytes(dt, cols));
    t->bytes.resize(rb * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) quant::quantize_row(g, &values[size_t(r * cols)], &t->bytes[size_t(r) * rb], size_t(cols));
  }
  t->ref.name = "harness";
  t->ref.dtype = dt;
  t->ref.shape = std::move(shape);
  t->ref.nbytes = t->bytes.size();
  t->ref.data = t->bytes.data();
  return t;
}

// An MLX affine matrix with random codes, scales and biases (f16).
std::unique_ptr<Owned> make_mlx(int64_t rows, int64_t cols, int bits, int group, std::mt19937& rng) {
  auto t = std::make_unique<Owned>();
  t->bytes.resize(size_t(rows * cols * bits / 8));
  for (auto& b : t->bytes) b = uint8_t(rng());
  const size_t groups = size_t(rows * cols / group);
  t->scales.resize(groups * 2);
  t->biases.resize(groups * 2);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  auto f16 = [](float f) {  // positive and negative normals in [2^-14, 1): enough for test values
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000);
    const int e = int((x >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return sign;
    return uint16_t(sign | (e << 10) | ((x >> 13) & 0x3ff));
  };
  for (size_t i = 0; i < groups; ++i) {
    const uint16_t s = f16(u(rng)), b = f16(u(rng));
    std::memcpy(&t->scales[2 * i], &s, 2);
    std::memcpy(&t->biases[2 * i], &b, 2);
  }
  t->ref.name = "harness_mlx";
  t->ref.dtype = DType::MLX;
  t->ref.shape = {rows, cols};
  t->ref.nbytes = t->bytes.size();
  t->ref.data = t->bytes.data();
  MlxQuantRef q;
  q.bits = bits;
  q.group_size = group;
  q.scale_dtype = DType::F16;
  q.scales.data = t->scales.data();
  q.scales.nbytes = t->scales.size();
  q.biases.data = t->biases.data();
  q.biases.nbytes = t->biases.size();
  t->ref.mlx = q;
  return t;
}

// The values a weight holds, as the reference reads them (f32 per element).
std::vector<float> weight_values(const TensorRef& t) {
  const int64_t cols = t.shape.back(), rows = t.numel() / cols;
  std::vector<float> out(size_t(rows * cols));
  const WeightView w = WeightView::of(t);
  for (int64_t r = 0; r < rows; ++r) {
    float* o = &out[size_t(r * cols)];
    if (t.dtype == DType::F32) {
      std::memcpy(o, t.data + size_t(r * cols) * 4, size_t(cols) * 4);
    } else if (t.dtype == DType::MLX) {
      const quant::MlxAffine q{int(w.bits), int(w.group_size), quant::MlxScaleType::F16,
                               reinterpret_cast<const uint32_t*>(w.data), w.scales, w.biases};
      quant::mlx_dequantize_row(q, size_t(cols), size_t(r), o);
    } else {
      quant::dequantize_row(*ggml_type_of(t.dtype), t.data + size_t(r) * w.row_bytes(), o, size_t(cols));
    }
  }
  return out;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ------------------------------------------------------------- experts

// Routed experts in memory, F32: the MoE op's source for harness cases.
class MemoryExperts final : public ExpertSource {
 public:
  MemoryExperts(int experts, int hidden, int ffn, std::mt19937& rng) {
    for (int e = 0; e < experts; ++e) {
      gate_.push_back(make_tensor(DType::F32, {ffn, hidden}, randn(size_t(ffn * hidden), rng, 0.2f)));
      up_.push_back(make_tensor(DType::F32, {ffn, hidden}, randn(size_t(ffn * hidden), rng, 0.2f)));
      down_.push_back(make_tensor(DType::F32, {hidden, ffn}, randn(size_t(ffn * hidden), rng, 0.2f)));
    }
  }
  void acquire(int, std::span<const int32_t> ids, std::span<ExpertWeights> out) override {
    for (size_t i = 0; i < ids.size(); ++i)
      out[i] = {WeightView::of(gate_[size_t(ids[i])]->ref), WeightView::of(up_[size_t(ids[i])]->ref),
                WeightView::of(down_[size_t(ids[i])]->ref)};
  }
  void release(int, std::span<const int32_t>) override {}
  std::vector<std::unique_ptr<Owned>> gate_, up_, down_;
};

// --------------------------------------------------------------- running

struct Harness {
  std::string backend_name;
  ThreadPool pool{2};
  StateBudget budget;
  std::mt19937 rng{1234};
  std::vector<std::unique_ptr<Owned>> keep;  // tensors the graph points at

  const TensorRef* own(std::unique_ptr<Owned> t) {
    keep.push_back(std::move(t));
    return &keep.back()->ref;
  }
  // An F32 table whose row t is the op input row t (tokens are 0..T-1).
  const TensorRef* table(int T, int width, const std::vector<float>& rows) {
    return own(make_tensor(DType::F32, {T, width}, rows));
  }
  const TensorRef* identity(int n) {
    std::vector<float> v(size_t(n) * n, 0.f);
    for (int i = 0; i < n; ++i) v[size_t(i) * n + i] = 1.f;
    return own(make_tensor(DType::F32, {n, n}, v));
  }

  // Runs g on `session` (made for g's states) at positions p0.., returning
  // the output of op `op_index` (rows x width).
  std::vector<float> run(BackendSession& session, const Graph& g, size_t op_index, int p0 = 0) {
    const BufferPlan plan = plan_buffers(g);
    std::vector<int32_t> tokens(size_t(g.tokens)), positions(size_t(g.tokens));
    for (int t = 0; t < g.tokens; ++t) {
      tokens[size_t(t)] = t;
      positions[size_t(t)] = p0 + t;
    }
    std::vector<float> got;
    session.set_observer([&](size_t i, const Op&, const float* out, int rows, int width) {
      if (i == op_index) got.assign(out, out + size_t(rows) * size_t(width));
    });
    session.run(g, plan, tokens, positions);
    session.set_observer({});
    return got;
  }
  // Every op's output, by op index (an op writing several buffers: its first).
  std::vector<std::vector<float>> run_each(BackendSession& session, const Graph& g, int p0 = 0) {
    const BufferPlan plan = plan_buffers(g);
    std::vector<int32_t> tokens(size_t(g.tokens)), positions(size_t(g.tokens));
    for (int t = 0; t < g.tokens; ++t) {
      tokens[size_t(t)] = t;
      positions[size_t(t)] = p0 + t;
    }
    std::vector<std::vector<float>> got(g.ops.size());
    session.set_observer([&](size_t i, const Op&, const float* out, int rows, int width) {
      got[i].assign(out, out + size_t(rows) * size_t(width));
    });
    session.run(g, plan, tokens, positions);
    session.set_observer({});
    return got;
  }
  std::vector<float> run(const Graph& g, size_t op_index, ExpertSource* experts = nullptr) {
    MemoryExperts none(0, 0, 0, rng);
    auto backend = make_backend(backend_name, BackendContext{experts ? *experts : none, pool, budget});
    auto session = backend->new_session(g.states, 64);
    return run(*session, g, op_index);
  }
};

// |got - want| <= rel * scale[i] + abs, elementwise, naming the first miss.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
                  double rel, double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rel * scale[i] + abs;
    if (!(std::fabs(double(got[i]) - want[i]) <= tol)) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", reference " << want[i] << " (tolerance "
                    << tol << ")";
      return;
    }
  }
}

std::vector<std::string> backends_under_test() {
  const char* env = std::getenv("MOEFLUX_TEST_BACKENDS");
  if (!env || !*env) return backend_names();
  std::vector<std::string> out;
  std::stringstream ss(env);
  for (std::string b; std::getline(ss, b, ',');) out.push_back(b);
  return out;
}

class OpHarness : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    h.backend_name = GetParam();
    // A backend built in but unable to run here (CUDA on a machine without
    // a GPU) is skipped, saying why.
    if (const std::string why = backend_unavailable_reason(h.backend_name); !why.empty()) GTEST_SKIP() << why;
  }
  Harness h;
};

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
  if (h.backend_name != "cpu") GTEST_SKIP() << "RoPE offset/YaRN, slice and MLA are CPU-only so far (issue 15)";
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
  if (h.backend_name != "cpu") GTEST_SKIP() << "RoPE offset/YaRN, slice and MLA are CPU-only so far (issue 15)";
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

// MLA over a prefill then a one-token step and a short step, with kv_b_proj
// in f32 and in a block format: each path (naive, absorbed, auto) against
// a double reference that decompresses K and V.
TEST_P(OpHarness, MlaAttentionNaiveAndAbsorbedOverThreeSteps) {
  if (h.backend_name != "cpu") GTEST_SKIP() << "RoPE offset/YaRN, slice and MLA are CPU-only so far (issue 15)";
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
TEST_P(OpHarness, MlaNaiveAcrossPositionBlocksEqualsAbsorbed) {
  if (h.backend_name != "cpu") GTEST_SKIP() << "RoPE offset/YaRN, slice and MLA are CPU-only so far (issue 15)";
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

// ---------------------------------------- Gated DeltaNet and gated attention

// Backends with the Gated DeltaNet ops (split_groups, sigmoid_mul,
// causal_conv, gated_delta_rule, gated_rms_norm, rms_norm's weight offset);
// the others skip these cases, visibly, until their kernels land.
#define SKIP_WITHOUT_DELTANET_OPS()                                                         \
  if (GetParam() != "cpu") GTEST_SKIP() << "the Gated DeltaNet ops are not on backend '" \
                                        << GetParam() << "' yet (issue 15)"

TEST_P(OpHarness, SplitGroupsSigmoidMulAndOffsetRmsNorm) {
  SKIP_WITHOUT_DELTANET_OPS();
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

TEST_P(OpHarness, CausalConvCarriesItsHistoryAcrossSteps) {
  SKIP_WITHOUT_DELTANET_OPS();
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

TEST_P(OpHarness, GatedDeltaRuleCarriesItsStateAcrossSteps) {
  SKIP_WITHOUT_DELTANET_OPS();
  DeltaRuleParams p;
  p.key_heads = 2, p.value_heads = 6, p.key_dim = 7, p.value_dim = 5;  // 3 value heads per key head
  p.scale = 1.0f / std::sqrt(7.0f);
  const int Hk = 2, Hv = 6, dk = 7, dv = 5, L = 8;
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
      const int kh = hv / 3;
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
  for (const std::vector<int>& steps : {std::vector<int>{8}, {3, 5}, {1, 1, 1, 1, 1, 1, 1, 1}, {7, 1}}) {
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

TEST_P(OpHarness, GatedRmsNorm) {
  SKIP_WITHOUT_DELTANET_OPS();
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

INSTANTIATE_TEST_SUITE_P(Backends, OpHarness, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace moeflux
