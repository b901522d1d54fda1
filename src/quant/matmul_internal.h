// Between matmul.cpp (checks, choice of kernel, activation cache) and the two
// Highway translation units that hold the kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace moeflux::quant {
struct MlxAffine;
}

namespace moeflux::quant::detail {

// T activation rows of K elements quantized to int8 (quantize_activation),
// token t's data at t * K, t * (K / block), t * (K / 16).
// Paired layout (the 4- and 5-bit formats of 32-element blocks): blocks 2i
// and 2i + 1 are stored as elements 0-15 of 2i, 0-15 of 2i + 1, 16-31 of 2i,
// 16-31 of 2i + 1, so that one register holds the low nibbles of two weight
// blocks and the next their high nibbles; an odd last block stays in order.
struct Q8Act {
  size_t K = 0, T = 0, block = 0;  // block: 32 or 256
  bool paired = false;
  const int8_t* qs = nullptr;      // [T][K]
  const float* d = nullptr;        // [T][K / block] scales
  const int32_t* isum = nullptr;   // block 32: [T][K / 32] sum of the block's qs
  const float* s = nullptr;        // block 32: [T][K / 32] d * isum
  const int16_t* bsums = nullptr;  // block 256: [T][K / 16] sums of 16 qs
};

// matmul_kernels.cpp: f32 activations.
void matmul_rows_f32(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                     size_t r1, float* y, size_t ldy);
const char* f32_target_name();

// matmul_q8_kernels.cpp: int8 activations.
bool int_kernels_available();  // false on targets below AVX2
bool paired_layout(GgmlType t);  // whether t's kernel reads the paired layout
// x: n elements (n a multiple of block); isum/s only for block 32, bsums only
// for block 256 (pass nullptr otherwise).
void quantize_q8(const float* x, size_t n, size_t block, int8_t* q, float* d, int32_t* isum, float* s,
                 int16_t* bsums);
void matmul_rows_q8(const Q8Act& a, const uint8_t* W, GgmlType wtype, size_t r0, size_t r1, float* y, size_t ldy);

// mlx_q8_kernels.cpp: MLX affine weights times int8 activations in the
// Q8_0 layout (block 32, element order, d and s per block).
bool mlx_int_kernels_available();  // false on targets below AVX2
void mlx_matmul_rows_q8(const Q8Act& a, const MlxAffine& q, size_t r0, size_t r1, float* y, size_t ldy);

}  // namespace moeflux::quant::detail
