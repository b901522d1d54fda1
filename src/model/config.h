// Typed access to config.json with errors that name the file, the key and
// the value seen.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace moeflux {

class Config {
 public:
  Config(nlohmann::json j, std::string source) : j_(std::move(j)), source_(std::move(source)) {}
  static Config load(const std::string& path);

  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::optional<double> get_optional_float(const std::string& key) const;
  std::optional<int64_t> get_optional_int(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;  // absent/null -> empty
  const nlohmann::json& raw() const { return j_; }
  const std::string& source() const { return source_; }

  // A positive size such as hidden_size; refuses 0, negatives and absurd values.
  int get_dim(const std::string& key) const;
  int get_dim(const std::string& key, int fallback) const;

 private:
  const nlohmann::json& at(const std::string& key) const;
  nlohmann::json j_;
  std::string source_;
};

}  // namespace moeflux
