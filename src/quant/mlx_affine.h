// MLX affine quantization, the layout of mlx-community checkpoints
// (config.json "quantization": {"bits", "group_size"}):
//   weight  uint32 [rows, K * bits / 32]: q values of a row as one
//           little-endian bit stream (value i at bits [i*bits, (i+1)*bits));
//           3- and 6-bit values may straddle two uint32 words
//   scales  [rows, K / group_size] in the model dtype (f16, bf16 or f32)
//   biases  same shape and dtype
//   w[r, k] = scales[r, k / gs] * q[r, k] + biases[r, k / gs]
// bits 2, 3, 4, 6, 8 and group sizes 32, 64, 128 are accepted.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux::quant {

enum class MlxScaleType : uint8_t { F16, BF16, F32 };

// A view of one quantized matrix. Pointers are not owned.
struct MlxAffine {
  int bits = 4;
  int group_size = 64;
  MlxScaleType scale_type = MlxScaleType::BF16;
  const uint32_t* weight = nullptr;  // [rows, K * bits / 32]
  const void* scales = nullptr;      // [rows, K / group_size]
  const void* biases = nullptr;      // [rows, K / group_size]
};

bool mlx_supported(int bits, int group_size);
// Throws moeflux::Error unless bits/group_size are supported and K is a
// whole number of groups.
void mlx_check(const MlxAffine& q, size_t K);

// Reference dequantizer for row r: computed in f32 as scale * q + bias with
// no FMA, bit-identical to the numpy formula on the committed fixtures.
void mlx_dequantize_row(const MlxAffine& q, size_t K, size_t r, float* out);

}  // namespace moeflux::quant
