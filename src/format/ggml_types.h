// GGML tensor types as GGUF files number them (ggml.h), with their block
// geometry: a row of n elements of type t takes n / block * type_size bytes.
// Shared by the GGUF reader/writer and the quantized kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moeflux {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;
  uint32_t block;      // elements per block
  uint32_t type_size;  // bytes per block
};

// nullopt for ids GGUF files do not use (removed or unknown types).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);
std::optional<GgmlTypeInfo> ggml_type_by_name(std::string_view name);  // "Q4_K", "MXFP4", ...

// Bytes of one row of n elements; nullopt when n is not a whole number of blocks.
std::optional<uint64_t> ggml_row_bytes(GgmlType t, uint64_t n);

}  // namespace moeflux
