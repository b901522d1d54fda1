// GGML tensor types as GGUF files number them (ggml.h), with their block
// geometry: a row of n elements of type t takes n / block * type_size bytes.
// Shared by the GGUF reader/writer and the quantized kernels.
#pragma once
#include <array>
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

namespace ggml_detail {
// Values of gguf-py's GGML_QUANT_SIZES (gguf 0.19.0).
inline constexpr std::array<GgmlTypeInfo, 32> kTypes{{
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},      {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 40},
    {GgmlType::Q2_K, "Q2_K", 256, 84},     {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},   {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},            {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},          {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},        {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},   {GgmlType::MXFP4, "MXFP4", 32, 17},
}};
}  // namespace ggml_detail

// nullopt for ids GGUF files do not use (removed or unknown types); by name: "Q4_K", "MXFP4", ...
// ggml_row_bytes: bytes of one row of n elements; nullopt when n is not a whole number of blocks.
inline std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id) {
  for (const auto& t : ggml_detail::kTypes)
    if (uint32_t(t.type) == id) return t;
  return std::nullopt;
}

inline std::optional<GgmlTypeInfo> ggml_type_by_name(std::string_view name) {
  for (const auto& t : ggml_detail::kTypes)
    if (t.name == name) return t;
  return std::nullopt;
}

inline std::optional<uint64_t> ggml_row_bytes(GgmlType t, uint64_t n) {
  auto info = ggml_type_info(uint32_t(t));
  if (!info || n % info->block != 0) return std::nullopt;
  return n / info->block * info->type_size;
}

}  // namespace moeflux
