#include "model/config.h"

#include "core/error.h"
#include "core/read_file.h"

namespace moeflux {

using nlohmann::json;

Config Config::load(const std::string& path) {
  json j;
  try {
    j = json::parse(read_small_file(path, "config"));
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number beyond double (1e400).
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: must be a JSON object", path);
  return Config(std::move(j), path);
}

const json& Config::at(const std::string& key) const {
  if (!has(key)) fail("{}: missing required key '{}'", source_, key);
  return j_[key];
}

int64_t Config::get_int(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_number_integer()) fail("{}: '{}' must be an integer, got {}", source_, key, v.dump());
  // get<int64_t> would wrap an unsigned value above INT64_MAX to a negative one.
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    fail("{}: '{}' = {} is out of range", source_, key, v.dump());
  return v.get<int64_t>();
}

int64_t Config::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double Config::get_float(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_number()) fail("{}: '{}' must be a number, got {}", source_, key, v.dump());
  return v.get<double>();
}

double Config::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool Config::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const json& v = j_[key];
  if (!v.is_boolean()) fail("{}: '{}' must be true or false, got {}", source_, key, v.dump());
  return v.get<bool>();
}

std::string Config::get_string(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_string()) fail("{}: '{}' must be a string, got {}", source_, key, v.dump());
  return v.get<std::string>();
}

std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::optional<double> Config::get_optional_float(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}

std::optional<int64_t> Config::get_optional_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}

std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  std::vector<int64_t> out;
  if (!has(key)) return out;
  const json& v = j_[key];
  if (!v.is_array()) fail("{}: '{}' must be a list of integers, got {}", source_, key, v.dump());
  for (auto& e : v) {
    if (!e.is_number_integer()) fail("{}: '{}' must be a list of integers, got {}", source_, key, v.dump());
    if (e.is_number_unsigned() && e.get<uint64_t>() > uint64_t(INT64_MAX))
      fail("{}: '{}' entry {} is out of range", source_, key, e.dump());
    out.push_back(e.get<int64_t>());
  }
  return out;
}

int Config::get_dim(const std::string& key) const {
  const int64_t v = get_int(key);
  if (v <= 0 || v > (int64_t(1) << 24))
    fail("{}: '{}' = {} is not a valid size (expected 1 to {})", source_, key, v, int64_t(1) << 24);
  return int(v);
}

int Config::get_dim(const std::string& key, int fallback) const { return has(key) ? get_dim(key) : fallback; }

}  // namespace moeflux
