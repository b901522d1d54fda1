// Element types of tensors in model files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "format/ggml_types.h"

namespace moeflux {

// The first 15 are safetensors' element types; Q4_0..MXFP4 are GGML block
// formats (a row of n elements takes n / block * block_bytes), read from
// GGUF files and computed on directly by the quantized kernels. MLX is an
// MLX affine-quantized matrix (mlx-community checkpoints): packed uint32
// weights plus per-group scales and biases stored as separate tensors, so
// its bits and group size travel beside the dtype (TensorRef::mlx,
// WeightView), not in it.
enum class DType : uint8_t {
  F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool, F8E4M3, F8E5M2,
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4, MLX,
};

// Bytes per element; 0 for block formats (use dtype_row_bytes) and MLX.
size_t dtype_size(DType t);
bool is_block_quant(DType t);
// Bytes of one row of `cols` elements; throws when `cols` is not a whole
// number of blocks of a block format, and for MLX (its row size depends on
// the bits: see WeightView::row_bytes).
uint64_t dtype_row_bytes(DType t, int64_t cols);
std::optional<GgmlType> ggml_type_of(DType t);
std::optional<DType> dtype_from_ggml(GgmlType t);
std::string_view dtype_name(DType t);
// Safetensors spelling ("F32", "BF16", ...); nullopt if unknown.
std::optional<DType> dtype_from_safetensors(std::string_view s);
// config.json `torch_dtype` / `dtype` spelling ("bfloat16", "float32", ...).
std::optional<DType> dtype_from_torch(std::string_view s);
// Float formats the compute kernels read directly as weights.
inline bool is_weight_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
// Types a weight matrix may have: the float formats, the block formats, MLX
// affine and FP8 with 2-D block scales (DeepSeek-V3's original checkpoints).
// F8E4M3 only with its block scales (TensorRef::mlx carries them: FP8 checkpoints).
inline bool is_matmul_weight(DType t) {
  return is_weight_float(t) || is_block_quant(t) || t == DType::MLX || t == DType::F8E4M3;
}

}  // namespace moeflux
