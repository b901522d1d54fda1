// Device-side descriptions of weights, shared by the kernels and the host
// code that uploads the weights. Plain structs, passed to kernels by value
// or in device arrays (one per expert).
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/dtype.h"

namespace moeflux::cuda {

// A weight matrix [rows, cols] on the device, in its stored format: a float
// type, a GGML block type (rows of row_bytes) or MLX affine (packed uint32
// codes plus per-group scales and biases).
struct DevMat {
  const uint8_t* data = nullptr;
  const uint8_t* scales = nullptr;  // MLX only
  const uint8_t* biases = nullptr;  // MLX only
  int64_t rows = 0, cols = 0;
  uint64_t row_bytes = 0;           // MLX: of the packed codes
  DType dtype = DType::F32;
  DType scale_dtype = DType::F16;   // MLX only: F16, BF16 or F32
  int bits = 0, group = 0;          // MLX only
};

// The MoE op's grouping of a micro-batch: row tiles of at most kMoeTile
// gathered rows of one expert.
inline constexpr int kMoeTile = 8;
struct MoeTile {
  int expert, row0, rows;
};

}  // namespace moeflux::cuda
