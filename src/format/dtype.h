// Element types of tensors in model files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moeflux {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool, F8E4M3, F8E5M2 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
// Safetensors spelling ("F32", "BF16", ...); nullopt if unknown.
std::optional<DType> dtype_from_safetensors(std::string_view s);
// config.json `torch_dtype` / `dtype` spelling ("bfloat16", "float32", ...).
std::optional<DType> dtype_from_torch(std::string_view s);
// Float formats the compute kernels read directly as weights.
inline bool is_weight_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace moeflux
