// Loads the committed oracle fixtures of tests/fixtures/quant (written by
// scripts/gen_quant_fixtures.py from gguf-py and numpy).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moeflux::quant::test {

inline std::string fixture_path(const std::string& name) {
  return std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/quant/" + name;
}

inline std::vector<uint8_t> read_bytes(const std::string& name) {
  std::ifstream f(fixture_path(name), std::ios::binary);
  if (!f) throw std::runtime_error("missing fixture " + name);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

template <typename T>
std::vector<T> read_array(const std::string& name) {
  const auto b = read_bytes(name);
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

inline const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream f(fixture_path("manifest.json"));
    if (!f) throw std::runtime_error("missing tests/fixtures/quant/manifest.json");
    return nlohmann::json::parse(f);
  }();
  return m;
}

inline std::vector<nlohmann::json> cases(const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (const auto& c : manifest()["cases"])
    if (c["kind"] == kind) out.push_back(c);
  return out;
}

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace moeflux::quant::test
