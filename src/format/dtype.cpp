#include "format/dtype.h"

#include <array>
#include <utility>

#include "core/error.h"

namespace moeflux {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view st_name;
  size_t size;
  GgmlType ggml;  // F64/Bool/F8: no GGML counterpart, marked by I64 (never looked up for them)
  bool has_ggml;
};
constexpr std::array<DTypeInfo, 27> kTypes{{
    {DType::F32, "F32", 4, GgmlType::F32, true},       {DType::F16, "F16", 2, GgmlType::F16, true},
    {DType::BF16, "BF16", 2, GgmlType::BF16, true},    {DType::F64, "F64", 8, GgmlType::F64, true},
    {DType::I8, "I8", 1, GgmlType::I8, true},          {DType::U8, "U8", 1, GgmlType::I8, false},
    {DType::I16, "I16", 2, GgmlType::I16, true},       {DType::U16, "U16", 2, GgmlType::I16, false},
    {DType::I32, "I32", 4, GgmlType::I32, true},       {DType::U32, "U32", 4, GgmlType::I32, false},
    {DType::I64, "I64", 8, GgmlType::I64, true},       {DType::U64, "U64", 8, GgmlType::I64, false},
    {DType::Bool, "BOOL", 1, GgmlType::I8, false},     {DType::F8E4M3, "F8_E4M3", 1, GgmlType::I8, false},
    {DType::F8E5M2, "F8_E5M2", 1, GgmlType::I8, false}, {DType::Q4_0, "Q4_0", 0, GgmlType::Q4_0, true},
    {DType::Q4_1, "Q4_1", 0, GgmlType::Q4_1, true},    {DType::Q5_0, "Q5_0", 0, GgmlType::Q5_0, true},
    {DType::Q5_1, "Q5_1", 0, GgmlType::Q5_1, true},    {DType::Q8_0, "Q8_0", 0, GgmlType::Q8_0, true},
    {DType::Q2_K, "Q2_K", 0, GgmlType::Q2_K, true},    {DType::Q3_K, "Q3_K", 0, GgmlType::Q3_K, true},
    {DType::Q4_K, "Q4_K", 0, GgmlType::Q4_K, true},    {DType::Q5_K, "Q5_K", 0, GgmlType::Q5_K, true},
    {DType::Q6_K, "Q6_K", 0, GgmlType::Q6_K, true},    {DType::MXFP4, "MXFP4", 0, GgmlType::MXFP4, true},
    {DType::MLX, "MLX", 0, GgmlType::I8, false},
}};
}  // namespace

size_t dtype_size(DType t) { return kTypes[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kTypes[size_t(t)].st_name; }
bool is_block_quant(DType t) { return t >= DType::Q4_0 && t <= DType::MXFP4; }

uint64_t dtype_row_bytes(DType t, int64_t cols) {
  if (t == DType::MLX) fail("the row size of an MLX affine matrix depends on its bits; use WeightView::row_bytes");
  if (!is_block_quant(t)) return uint64_t(cols) * dtype_size(t);
  const auto b = ggml_row_bytes(kTypes[size_t(t)].ggml, uint64_t(cols));
  if (!b) fail("a row of {} elements is not a whole number of {} blocks", cols, dtype_name(t));
  return *b;
}

std::optional<GgmlType> ggml_type_of(DType t) {
  if (!kTypes[size_t(t)].has_ggml) return std::nullopt;
  return kTypes[size_t(t)].ggml;
}

std::optional<DType> dtype_from_ggml(GgmlType g) {
  for (const auto& i : kTypes)
    if (i.has_ggml && i.ggml == g) return i.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (const auto& i : kTypes)
    if (i.st_name == s && !is_block_quant(i.type) && i.type != DType::MLX) return i.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch(std::string_view s) {
  static constexpr std::pair<std::string_view, DType> kTorch[] = {
      {"float32", DType::F32}, {"float", DType::F32},     {"float16", DType::F16},
      {"half", DType::F16},    {"bfloat16", DType::BF16}, {"float64", DType::F64},
  };
  for (auto [name, t] : kTorch)
    if (name == s) return t;
  return std::nullopt;
}

}  // namespace moeflux

namespace moeflux {
static_assert([] {
  for (size_t i = 0; i < kTypes.size(); ++i)
    if (size_t(kTypes[i].type) != i) return false;
  return true;
}(), "kTypes must be indexed by DType");
}  // namespace moeflux
