// FP8 weights as DeepSeek-V3's original safetensors store them: each
// weight an e4m3 byte (OCP "e4m3fn": 4 exponent bits, bias 7, 3 mantissa
// bits, no infinities, S.1111.111 NaN), and beside it `weight_scale_inv`
// f32 (or bf16) [ceil(rows / 128), ceil(cols / 128)], one factor per
// 128 x 128 block:  w[r, k] = e4m3(q[r, k]) * scale_inv[r / 128, k / 128].
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux::quant {

enum class Fp8ScaleType : uint8_t { F32, BF16 };

// A view of one FP8 matrix [rows, K]. Pointers are not owned.
struct Fp8Block {
  const uint8_t* weight = nullptr;   // [rows, K] e4m3 codes
  const void* scale_inv = nullptr;   // [ceil(rows / block), ceil(K / block)]
  Fp8ScaleType scale_type = Fp8ScaleType::F32;
  int block = 128;                   // weight_block_size (square)
};

// The e4m3fn value of a code, exactly (every one is an f32).
float fp8_e4m3_to_f32(uint8_t code);

// Throws moeflux::Error naming `what` unless the scale tensor's shape
// [scale_rows, scale_cols] is the ceiling division of [rows, K] by the block.
void fp8_check_scales(const char* what, size_t rows, size_t K, int block, size_t scale_rows, size_t scale_cols);

// Reference dequantizer for row r: the f32 product of the value and its
// block's scale, as DeepSeek's weight_dequant computes it.
void fp8_dequantize_row(const Fp8Block& q, size_t K, size_t r, float* out);

// y[t * ldy + r] = x[t] . W[r] for r in [r0, r1): per block of `block`
// columns the f32 dot of x with the decoded values, times the block's scale.
void fp8_matmul_rows(const float* x, size_t ldx, size_t T, const Fp8Block& q, size_t K, size_t r0, size_t r1, float* y,
                     size_t ldy);

}  // namespace moeflux::quant
