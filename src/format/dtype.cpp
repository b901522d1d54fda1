#include "format/dtype.h"

#include <array>
#include <utility>

namespace moeflux {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view st_name;
  size_t size;
};
constexpr std::array<DTypeInfo, 15> kTypes{{
    {DType::F32, "F32", 4},   {DType::F16, "F16", 2},     {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},   {DType::I8, "I8", 1},       {DType::U8, "U8", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2},     {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::I64, "I64", 8},     {DType::U64, "U64", 8},
    {DType::Bool, "BOOL", 1}, {DType::F8E4M3, "F8_E4M3", 1}, {DType::F8E5M2, "F8_E5M2", 1},
}};
}  // namespace

size_t dtype_size(DType t) { return kTypes[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kTypes[size_t(t)].st_name; }

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (const auto& i : kTypes)
    if (i.st_name == s) return i.type;
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
