// What a kernel needs to read a weight matrix: row-major [rows, cols] of a
// float or GGML block type, wherever it lives (file map, expert cache slot, arena).
#pragma once
#include <cstdint>

#include "format/dtype.h"
#include "format/safetensors.h"

namespace moeflux {

struct WeightView {
  const uint8_t* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;

  static WeightView of(const TensorRef& t) {
    const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
    return {t.data, t.dtype, cols ? t.numel() / cols : 0, cols};
  }
  size_t row_bytes() const { return size_t(dtype_row_bytes(dtype, cols)); }
};

// Element i of a float vector of any float weight type, as f32 (norm weights, biases).
float load_weight_elem(const WeightView& w, int64_t i);

}  // namespace moeflux
