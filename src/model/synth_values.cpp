#include "model/synth_values.h"

#include <cmath>
#include <utility>

#include "core/half.h"

namespace moeflux {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Uniform values with the given mean and standard deviation: a uniform on
// [-a, a] has std a / sqrt(3).
struct Init {
  float mean, std;
};

Init init_for(const ModelTensor& t) {
  switch (t.kind) {
    case ParamKind::Embedding: return {0.f, 1.f};
    case ParamKind::Norm: return {1.f, 0.03f};
    case ParamKind::Bias: return {0.f, 0.02f};
    case ParamKind::Router:
    case ParamKind::Linear:
    case ParamKind::ExpertLinear: return {0.f, 1.f / std::sqrt(float(t.shape.back()))};
  }
  return {0.f, 1.f};
}

uint16_t to16(float v, DType dt) { return dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v); }

}  // namespace

uint64_t synth_tensor_seed(uint64_t seed, const std::string& name) { return seed * 0x9e3779b97f4a7c15ull ^ hash_name(name); }

void synth_fill_chunk(const ModelTensor& t, uint64_t tensor_seed, size_t c, DType dtype, uint16_t* out, size_t len) {
  uint64_t s = tensor_seed + c * 0x632be59bd9b4e019ull;
  const Init init = init_for(t);
  const float a = init.std * std::sqrt(3.0f);
  for (size_t i = 0; i < len; i += 4) {
    uint64_t r = splitmix(s);
    for (size_t j = 0; j < 4 && i + j < len; ++j, r >>= 16) {
      const float u = (float(r & 0xffff) + 0.5f) * (2.0f / 65536.0f) - 1.0f;  // (-1, 1)
      out[i + j] = to16(init.mean + a * u, dtype);
    }
  }
}

std::vector<float> synth_router_scales(int64_t rows, double skew, uint64_t tensor_seed) {
  std::vector<int64_t> rank(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) rank[size_t(i)] = i;
  uint64_t s = tensor_seed ^ 0x5bd1e995ull;
  for (int64_t i = rows - 1; i > 0; --i) std::swap(rank[size_t(i)], rank[splitmix(s) % uint64_t(i + 1)]);
  std::vector<float> scale(size_t(rows), 1.f);
  for (int64_t r = 0; r < rows; ++r) {
    const double q = rows > 1 ? double(rank[size_t(r)]) / double(rows - 1) : 1.0;
    scale[size_t(r)] = float(1.0 + skew * q * q);
  }
  return scale;
}

uint16_t synth_scale_value(uint16_t h, float scale, DType dt) {
  const float v = (dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h)) * scale;
  return to16(v, dt);
}

}  // namespace moeflux
