#include "format/gguf/gguf_value.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"

namespace moeflux {

namespace {

constexpr std::string_view kNames[kGgufTypeCount] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                                     "int32", "float32", "bool",  "string", "array",
                                                     "uint64", "int64", "float64"};
constexpr uint32_t kSizes[kGgufTypeCount] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

std::string prefix(const std::string& source) { return source.empty() ? std::string("gguf metadata") : source; }

template <typename T>
bool same_bits(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
  } else {
    return a == b;
  }
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  return uint32_t(t) < kGgufTypeCount ? kNames[uint32_t(t)] : std::string_view("unknown");
}

uint32_t gguf_type_size(GgufType t) { return uint32_t(t) < kGgufTypeCount ? kSizes[uint32_t(t)] : 0; }

size_t GgufArray::size() const {
  return std::visit([](const auto& v) { return v.size(); }, data);
}

bool gguf_identical(const GgufArray& a, const GgufArray& b) {
  if (a.data.index() != b.data.index()) return false;
  return std::visit(
      [&](const auto& va) {
        using V = std::decay_t<decltype(va)>;
        const V& vb = std::get<V>(b.data);
        if (va.size() != vb.size()) return false;
        for (size_t i = 0; i < va.size(); ++i) {
          if constexpr (std::is_same_v<V, std::vector<GgufArray>>) {
            if (!gguf_identical(va[i], vb[i])) return false;
          } else if constexpr (std::is_same_v<V, std::vector<bool>>) {
            if (bool(va[i]) != bool(vb[i])) return false;
          } else {
            if (!same_bits(va[i], vb[i])) return false;
          }
        }
        return true;
      },
      a.data);
}

bool gguf_identical(const GgufValue& a, const GgufValue& b) {
  if (a.data.index() != b.data.index()) return false;
  return std::visit(
      [&](const auto& va) {
        using V = std::decay_t<decltype(va)>;
        const V& vb = std::get<V>(b.data);
        if constexpr (std::is_same_v<V, GgufArray>) {
          return gguf_identical(va, vb);
        } else {
          return same_bits(va, vb);
        }
      },
      a.data);
}

std::string gguf_value_summary(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, GgufArray>) {
          return fmt::format("array[{}; {}]", gguf_type_name(x.elem_type()), x.size());
        } else if constexpr (std::is_same_v<V, std::string>) {
          if (x.size() <= 60) return fmt::format("\"{}\"", x);
          return fmt::format("\"{}...\" ({} bytes)", x.substr(0, 57), x.size());
        } else if constexpr (std::is_same_v<V, uint8_t> || std::is_same_v<V, int8_t>) {
          return fmt::format("{}", int(x));
        } else {
          return fmt::format("{}", x);
        }
      },
      v.data);
}

void GgufMetadata::add(std::string key, GgufValue value) {
  if (key.empty()) fail("{}: metadata key is empty", prefix(source_));
  if (index_.count(key)) fail("{}: metadata key '{}' appears twice", prefix(source_), key);
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
}

const GgufValue* GgufMetadata::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const GgufValue& GgufMetadata::need(std::string_view key, std::string_view wanted) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata key '{}' ({}) is missing", prefix(source_), key, wanted);
  return *v;
}

void GgufMetadata::wrong_type(std::string_view key, std::string_view wanted, const GgufValue& v) const {
  fail("{}: metadata key '{}': expected {}, found {} ({})", prefix(source_), key, wanted, gguf_type_name(v.type()),
       gguf_value_summary(v));
}

template <typename T>
T GgufMetadata::get_int(std::string_view key, std::string_view wanted) const {
  const GgufValue& v = need(key, wanted);
  return std::visit(
      [&](const auto& x) -> T {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
          if (!std::in_range<T>(x))
            fail("{}: metadata key '{}': value {} ({}) does not fit {}", prefix(source_), key, x,
                 gguf_type_name(v.type()), wanted);
          return T(x);
        } else {
          wrong_type(key, wanted, v);
        }
      },
      v.data);
}

uint32_t GgufMetadata::get_u32(std::string_view key) const { return get_int<uint32_t>(key, "uint32"); }
int32_t GgufMetadata::get_i32(std::string_view key) const { return get_int<int32_t>(key, "int32"); }
uint64_t GgufMetadata::get_u64(std::string_view key) const { return get_int<uint64_t>(key, "uint64"); }
int64_t GgufMetadata::get_i64(std::string_view key) const { return get_int<int64_t>(key, "int64"); }

float GgufMetadata::get_f32(std::string_view key) const {
  const GgufValue& v = need(key, "float32");
  if (auto* f = std::get_if<float>(&v.data)) return *f;
  if (auto* d = std::get_if<double>(&v.data)) return float(*d);
  wrong_type(key, "float32", v);
}

double GgufMetadata::get_f64(std::string_view key) const {
  const GgufValue& v = need(key, "float64");
  if (auto* d = std::get_if<double>(&v.data)) return *d;
  if (auto* f = std::get_if<float>(&v.data)) return *f;
  wrong_type(key, "float64", v);
}

bool GgufMetadata::get_bool(std::string_view key) const {
  const GgufValue& v = need(key, "bool");
  if (auto* b = std::get_if<bool>(&v.data)) return *b;
  wrong_type(key, "bool", v);
}

const std::string& GgufMetadata::get_str(std::string_view key) const {
  const GgufValue& v = need(key, "string");
  if (auto* s = std::get_if<std::string>(&v.data)) return *s;
  wrong_type(key, "string", v);
}

const GgufArray& GgufMetadata::get_array(std::string_view key) const {
  const GgufValue& v = need(key, "array");
  if (auto* a = std::get_if<GgufArray>(&v.data)) return *a;
  wrong_type(key, "array", v);
}

std::optional<uint32_t> GgufMetadata::opt_u32(std::string_view key) const {
  return has(key) ? std::optional(get_u32(key)) : std::nullopt;
}
std::optional<uint64_t> GgufMetadata::opt_u64(std::string_view key) const {
  return has(key) ? std::optional(get_u64(key)) : std::nullopt;
}
std::optional<float> GgufMetadata::opt_f32(std::string_view key) const {
  return has(key) ? std::optional(get_f32(key)) : std::nullopt;
}
std::optional<bool> GgufMetadata::opt_bool(std::string_view key) const {
  return has(key) ? std::optional(get_bool(key)) : std::nullopt;
}
std::optional<std::string> GgufMetadata::opt_str(std::string_view key) const {
  return has(key) ? std::optional(get_str(key)) : std::nullopt;
}

namespace gguf_detail {
void array_elem_mismatch(const std::string& source, std::string_view key, std::string_view wanted,
                         const GgufArray& a) {
  fail("{}: metadata key '{}': expected array of {}, found array of {} ({} elements)", prefix(source), key, wanted,
       gguf_type_name(a.elem_type()), a.size());
}
}  // namespace gguf_detail

}  // namespace moeflux
