// What a kernel needs to read a weight matrix: row-major [rows, cols] of a
// float or GGML block type, or an MLX affine matrix (packed weight plus
// per-group scales and biases), wherever it lives (file map, expert cache
// slot, arena).
#pragma once
#include <cstdint>

#include "format/dtype.h"
#include "format/safetensors.h"

namespace moeflux {

struct WeightView {
  const uint8_t* data = nullptr;  // MLX: the packed uint32 weight [rows, cols * bits / 32]
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  // MLX only: [rows, cols / group_size] scales and biases of scale_dtype.
  const uint8_t* scales = nullptr;
  const uint8_t* biases = nullptr;
  DType scale_dtype = DType::BF16;
  uint8_t bits = 0;
  uint16_t group_size = 0;

  static WeightView of(const TensorRef& t) {
    const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
    WeightView w{t.data, t.dtype, cols ? t.numel() / cols : 0, cols};
    if (t.mlx) {
      w.scales = t.mlx->scales.data;
      w.biases = t.mlx->biases.data;
      w.scale_dtype = t.mlx->scale_dtype;
      w.bits = uint8_t(t.mlx->bits);
      w.group_size = uint16_t(t.mlx->group_size);
    }
    return w;
  }
  // Bytes of one row of `data` (MLX: of the packed weight only).
  size_t row_bytes() const {
    return dtype == DType::MLX ? size_t(cols) * bits / 8 : size_t(dtype_row_bytes(dtype, cols));
  }
};

// Element i of a float vector of any float weight type, as f32 (norm weights, biases).
float load_weight_elem(const WeightView& w, int64_t i);

}  // namespace moeflux
