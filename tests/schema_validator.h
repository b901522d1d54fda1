// A plain JSON Schema validator for the keywords constrained output
// supports, written from the JSON Schema rules (not from the grammar), so
// that tests can hold generated documents to the schema.
#pragma once
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

namespace moeflux::test {

// Whether document v fits schema s; root holds $defs / definitions.
inline bool valid(const nlohmann::json& s, const nlohmann::json& v, const nlohmann::json& root) {
  if (s.is_boolean()) return s.get<bool>();
  if (s.contains("$ref")) {
    const std::string r = s["$ref"];
    const std::string name = r.substr(r.rfind('/') + 1);
    return valid(root.contains("$defs") ? root["$defs"][name] : root["definitions"][name], v, root);
  }
  if (s.contains("const") && v != s["const"]) return false;
  if (s.contains("enum")) {
    bool any = false;
    for (const nlohmann::json& e : s["enum"]) any = any || e == v;
    if (!any) return false;
  }
  if (s.contains("anyOf")) {
    bool any = false;
    for (const nlohmann::json& a : s["anyOf"]) any = any || valid(a, v, root);
    if (!any) return false;
  }
  if (s.contains("oneOf")) {
    int n = 0;
    for (const nlohmann::json& a : s["oneOf"]) n += valid(a, v, root);
    if (n != 1) return false;
  }
  if (s.contains("type")) {
    auto is = [&](const std::string& t) {
      if (t == "object") return v.is_object();
      if (t == "array") return v.is_array();
      if (t == "string") return v.is_string();
      if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
      if (t == "number") return v.is_number();
      if (t == "boolean") return v.is_boolean();
      if (t == "null") return v.is_null();
      return false;
    };
    bool ok = false;
    if (s["type"].is_array())
      for (const nlohmann::json& t : s["type"]) ok = ok || is(t);
    else
      ok = is(s["type"]);
    if (!ok) return false;
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const nlohmann::json& r : s["required"])
        if (!v.contains(r.get<std::string>())) return false;
    for (const auto& [k, x] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        if (!valid(s["properties"][k], x, root)) return false;
      } else if (s.contains("additionalProperties")) {
        if (!valid(s["additionalProperties"], x, root)) return false;
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    if (s.contains("items"))
      for (const nlohmann::json& x : v)
        if (!valid(s["items"], x, root)) return false;
  }
  if (v.is_string()) {
    size_t cps = 0;
    for (unsigned char c : v.get<std::string>()) cps += (c & 0xC0) != 0x80;
    if (s.contains("minLength") && cps < s["minLength"].get<size_t>()) return false;
    if (s.contains("maxLength") && cps > s["maxLength"].get<size_t>()) return false;
  }
  return true;
}

}  // namespace moeflux::test
