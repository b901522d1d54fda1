// The one-op harness's shared parts: tensors the harness owns, a
// memory expert source, the Harness that runs a graph through a backend,
// expect_close and the parameterised fixture. Included by each
// op_harness_*_test.cpp (one TU per family of ops; each its own suite name).
#pragma once

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

namespace moeflux::harness {


// ---------------------------------------------------------------- tensors

// A tensor the harness owns: bytes plus the TensorRef ops point at.
struct Owned {
  std::vector<uint8_t> bytes, scales, biases;
  TensorRef ref;
};

inline std::unique_ptr<Owned> make_tensor(DType dt, std::vector<int64_t> shape, const std::vector<float>& values) {
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
inline std::unique_ptr<Owned> make_mlx(int64_t rows, int64_t cols, int bits, int group, std::mt19937& rng) {
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
inline std::vector<float> weight_values(const TensorRef& t) {
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

inline std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ------------------------------------------------------------- experts

// Routed experts in memory (F32 unless told): the MoE op's source for harness cases.
class MemoryExperts final : public ExpertSource {
 public:
  MemoryExperts(int experts, int hidden, int ffn, std::mt19937& rng, DType dt = DType::F32) {
    for (int e = 0; e < experts; ++e) {
      gate_.push_back(make_tensor(dt, {ffn, hidden}, randn(size_t(ffn * hidden), rng, 0.2f)));
      up_.push_back(make_tensor(dt, {ffn, hidden}, randn(size_t(ffn * hidden), rng, 0.2f)));
      down_.push_back(make_tensor(dt, {hidden, ffn}, randn(size_t(ffn * hidden), rng, 0.2f)));
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
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
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

inline std::vector<std::string> backends_under_test() {
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

}  // namespace moeflux::harness
