// Helpers for the GGUF tests: a raw little-endian byte builder (to write the
// malformed files the writer refuses to), FNV-1a, error capture.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "format/gguf/gguf_file.h"
#include "moeflux/error.h"
#include "test_util.h"

namespace moeflux::test {

struct Bytes {
  std::string s;
  Bytes& u8(uint8_t v) { return raw(v); }
  Bytes& u32(uint32_t v) { return raw(v); }
  Bytes& u64(uint64_t v) { return raw(v); }
  Bytes& str(std::string_view v) {
    u64(v.size());
    s.append(v);
    return *this;
  }
  Bytes& zeros(size_t n) {
    s.append(n, '\0');
    return *this;
  }
  Bytes& pad_to(size_t align) { return zeros((align - s.size() % align) % align); }
  // magic, version, counts
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    s.append("GGUF");
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& tensor(std::string_view name, std::initializer_list<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  template <typename T>
  Bytes& raw(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
    return *this;
  }
};

inline std::span<const uint8_t> as_span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The error message parse_gguf gives for `bytes`, or "" when it parses.
inline std::string parse_error(const std::string& bytes, const std::string& name = "bad.gguf") {
  try {
    parse_gguf(as_span(bytes), name);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline uint64_t fnv1a64(std::span<const uint8_t> b) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t x : b) h = (h ^ x) * 0x100000001B3ull;
  return h;
}

}  // namespace moeflux::test
