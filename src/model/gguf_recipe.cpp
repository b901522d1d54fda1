#include "model/gguf_recipe.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>

#include "core/error.h"
#include "format/dtype.h"
#include "quant/dequant.h"

namespace moeflux {

namespace {

int64_t product(const std::vector<uint64_t>& d, size_t from) {
  int64_t n = 1;
  for (size_t i = from; i < d.size(); ++i) n *= int64_t(d[i]);
  return n;
}

float forward(GgufValueFn fn, float x) {
  switch (fn) {
    case GgufValueFn::PlusOne: return x + 1.0f;
    case GgufValueFn::NegExp: return -std::exp(x);
    case GgufValueFn::Same: break;
  }
  return x;
}

float inverse(GgufValueFn fn, float x) {
  switch (fn) {
    case GgufValueFn::PlusOne: return x - 1.0f;
    case GgufValueFn::NegExp: return std::log(-x);  // A < 0 always (-exp); NaN flags a file that says otherwise
    case GgufValueFn::Same: break;
  }
  return x;
}

}  // namespace

int64_t recipe_rows(const std::vector<int64_t>& s) { return s.size() <= 1 ? 1 : s[0]; }

int64_t recipe_cols(const std::vector<int64_t>& s) {
  if (s.empty()) return 1;
  if (s.size() == 1) return s[0];
  int64_t n = 1;
  for (size_t i = 1; i < s.size(); ++i) n *= s[i];
  return n;
}

std::vector<std::vector<float>> scatter_recipe(const GgufRecipe& r, const std::vector<int64_t>& hf_shape,
                                               const float* hf) {
  std::vector<std::vector<float>> out;
  for (const auto& d : r.source_dims) out.emplace_back(size_t(product(d, 0)), 0.0f);
  const int64_t rows = recipe_rows(hf_shape), cols = recipe_cols(hf_shape);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const GgufCoord c = r.at(i, j);
      const int64_t ne0 = int64_t(r.source_dims[size_t(c.source)][0]);
      out[size_t(c.source)][size_t(c.row * ne0 + c.col)] = forward(r.fn, hf[i * cols + j]);
    }
  return out;
}

TensorRef materialize_recipe(const GgufRecipe& r, const std::string& name, const std::vector<int64_t>& hf_shape,
                             const GgufFile& file, std::vector<uint8_t>& storage) {
  const std::string& path = file.path();
  std::vector<const GgufTensor*> src;
  for (size_t k = 0; k < r.sources.size(); ++k) {
    const GgufTensor* g = file.find_tensor(r.sources[k]);
    if (!g) fail("{}: tensor '{}' (for {}) is missing", path, r.sources[k], name);
    auto trimmed = [](std::vector<uint64_t> d) {
      while (d.size() > 1 && d.back() == 1) d.pop_back();
      return d;
    };
    if (trimmed(g->dims) != trimmed(r.source_dims[k]))
      fail("{}: tensor '{}' has shape {} but the metadata implies [{}]", path, g->name, g->shape_str(),
           fmt::join(r.source_dims[k], ", "));
    src.push_back(g);
  }
  const int64_t rows = recipe_rows(hf_shape), cols = recipe_cols(hf_shape);
  TensorRef t;
  t.name = name;
  t.shape = hf_shape;
  t.file = path;

  bool same_type = true;
  for (const GgufTensor* g : src) same_type &= g->type == src[0]->type;
  if (r.whole_rows && r.fn == GgufValueFn::Same && same_type) {
    // Rows as bytes: a quantized matrix keeps its type and size.
    const auto dt = dtype_from_ggml(src[0]->type);
    const auto row_bytes = ggml_row_bytes(src[0]->type, uint64_t(cols));
    if (!dt || !row_bytes)
      fail("{}: tensor '{}' has GGML type {} which moeflux does not read", path, src[0]->name,
           uint32_t(src[0]->type));
    storage.resize(size_t(rows) * *row_bytes);
    for (int64_t i = 0; i < rows; ++i) {
      const GgufCoord c = r.at(i, 0);
      std::memcpy(storage.data() + size_t(i) * *row_bytes, src[size_t(c.source)]->data + uint64_t(c.row) * *row_bytes,
                  *row_bytes);
    }
    t.dtype = *dt;
  } else {
    // Anything else in f32: dequantize the sources, gather, undo fn.
    std::vector<std::vector<float>> values;
    for (const GgufTensor* g : src) {
      if (!quant::dequant_supported(g->type))
        fail("{}: tensor '{}' has GGML type {} which moeflux cannot dequantize", path, g->name, uint32_t(g->type));
      const uint64_t ne0 = g->dims[0], n_rows = uint64_t(product(g->dims, 1));
      const uint64_t row_bytes = *ggml_row_bytes(g->type, ne0);
      std::vector<float>& v = values.emplace_back(size_t(ne0 * n_rows));
      for (uint64_t i = 0; i < n_rows; ++i) quant::dequantize_row(g->type, g->data + i * row_bytes, v.data() + i * ne0, ne0);
    }
    storage.resize(size_t(rows * cols) * sizeof(float));
    float* out = reinterpret_cast<float*>(storage.data());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const GgufCoord c = r.at(i, j);
        const int64_t ne0 = int64_t(src[size_t(c.source)]->dims[0]);
        out[i * cols + j] = inverse(r.fn, values[size_t(c.source)][size_t(c.row * ne0 + c.col)]);
      }
    t.dtype = DType::F32;
  }
  t.nbytes = storage.size();
  t.data = storage.data();
  return t;
}

}  // namespace moeflux
