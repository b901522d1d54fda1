// GGUF metadata values: the thirteen value types of the format (GGUFValueType
// in gguf-py), arrays of any of them (arrays nest), and an ordered key/value
// table with typed getters whose errors name the key and the types wanted
// and found.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace moeflux {

// Ids as the file stores them. The variant alternatives below are in this order.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, Str = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
inline constexpr uint32_t kGgufTypeCount = 13;

// "uint32", "string", "array", ... (gguf-py's names, lower case); "unknown" past the table.
std::string_view gguf_type_name(GgufType t);
// Bytes of a fixed-size value on disk; 0 for string and array.
uint32_t gguf_type_size(GgufType t);

struct GgufArray;
// Alternative index == element type id. vector<bool> keeps bool distinct from uint8.
using GgufArrayData =
    std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>, std::vector<int16_t>,
                 std::vector<uint32_t>, std::vector<int32_t>, std::vector<float>, std::vector<bool>,
                 std::vector<std::string>, std::vector<GgufArray>, std::vector<uint64_t>, std::vector<int64_t>,
                 std::vector<double>>;

// A homogeneous array; nested arrays are arrays of GgufArray, each with its own element type.
struct GgufArray {
  GgufArrayData data;
  GgufType elem_type() const { return GgufType(data.index()); }
  size_t size() const;
};

using GgufValueData = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                                   GgufArray, uint64_t, int64_t, double>;

struct GgufValue {
  GgufValueData data;
  GgufType type() const { return GgufType(data.index()); }
};

// Bitwise equality (NaN equals NaN of the same bits, -0 differs from +0):
// what a round trip through a file must preserve.
bool gguf_identical(const GgufValue& a, const GgufValue& b);
bool gguf_identical(const GgufArray& a, const GgufArray& b);
// Short human form for messages and `inspect`: scalars in full, arrays as
// "array[string; 151936]".
std::string gguf_value_summary(const GgufValue& v);

// Metadata in file order, keys unique. `source` (a file path) prefixes errors.
class GgufMetadata {
 public:
  GgufMetadata() = default;
  explicit GgufMetadata(std::string source) : source_(std::move(source)) {}

  // Refuses an empty or duplicate key.
  void add(std::string key, GgufValue value);
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  const std::string& source() const { return source_; }

  // Getters throw naming the key when it is missing or holds another type.
  // Integer getters accept any integer type whose value fits the requested
  // one (files disagree on u32 vs i32 for the same key; no value is lost);
  // get_f32 accepts float32 and float64, get_f64 both as well.
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_str(std::string_view key) const;
  const GgufArray& get_array(std::string_view key) const;
  // The array's elements as T (exact element type; error names the one found).
  template <typename T>
  const std::vector<T>& get_array_of(std::string_view key) const;

  // Missing key -> nullopt; present with a wrong type -> error.
  std::optional<uint32_t> opt_u32(std::string_view key) const;
  std::optional<uint64_t> opt_u64(std::string_view key) const;
  std::optional<float> opt_f32(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::optional<std::string> opt_str(std::string_view key) const;

 private:
  const GgufValue& need(std::string_view key, std::string_view wanted) const;
  template <typename T>
  T get_int(std::string_view key, std::string_view wanted) const;
  [[noreturn]] void wrong_type(std::string_view key, std::string_view wanted, const GgufValue& v) const;

  std::string source_;
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

namespace gguf_detail {
template <typename T>
struct ArrayElemName;
#define MOEFLUX_GGUF_ELEM(T, N) \
  template <>                   \
  struct ArrayElemName<T> {     \
    static constexpr std::string_view name = N; \
  };
MOEFLUX_GGUF_ELEM(uint8_t, "uint8")
MOEFLUX_GGUF_ELEM(int8_t, "int8")
MOEFLUX_GGUF_ELEM(uint16_t, "uint16")
MOEFLUX_GGUF_ELEM(int16_t, "int16")
MOEFLUX_GGUF_ELEM(uint32_t, "uint32")
MOEFLUX_GGUF_ELEM(int32_t, "int32")
MOEFLUX_GGUF_ELEM(float, "float32")
MOEFLUX_GGUF_ELEM(bool, "bool")
MOEFLUX_GGUF_ELEM(std::string, "string")
MOEFLUX_GGUF_ELEM(GgufArray, "array")
MOEFLUX_GGUF_ELEM(uint64_t, "uint64")
MOEFLUX_GGUF_ELEM(int64_t, "int64")
MOEFLUX_GGUF_ELEM(double, "float64")
#undef MOEFLUX_GGUF_ELEM
[[noreturn]] void array_elem_mismatch(const std::string& source, std::string_view key, std::string_view wanted,
                                      const GgufArray& a);
}  // namespace gguf_detail

template <typename T>
const std::vector<T>& GgufMetadata::get_array_of(std::string_view key) const {
  const GgufArray& a = get_array(key);
  if (auto* v = std::get_if<std::vector<T>>(&a.data)) return *v;
  gguf_detail::array_elem_mismatch(source_, key, gguf_detail::ArrayElemName<T>::name, a);
}

}  // namespace moeflux
