#include "sampling/json_grammar.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace moeflux::json_constraint {

namespace {

using json = nlohmann::ordered_json;

// Keywords that only describe: they never make a document invalid.
const std::set<std::string> kAnnotations = {"title",     "description", "default", "examples", "$schema",
                                            "$id",       "$comment",    "deprecated", "readOnly", "writeOnly",
                                            "$defs",     "definitions", "strict"};
// Keywords the grammar honours (which ones apply depends on the type).
const std::set<std::string> kHandled = {"type",     "properties", "required", "additionalProperties", "items",
                                        "minItems", "maxItems",   "enum",     "const",
                                        "anyOf",    "oneOf",      "allOf",    "$ref",
                                        "minLength", "maxLength"};

constexpr int kMaxDepth = 64;  // nesting of schemas (not of documents)

}  // namespace

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const json& root) : root_(root) {}

  Grammar compile() {
    g_.root_ = schema(root_, "", 0);
    return std::move(g_);
  }

  NodeId any_value() {
    if (any_ != UINT32_MAX) return any_;
    any_ = add(Node(Kind::Alt));
    const NodeId obj = add(Node(Kind::Object));
    const NodeId key = add(Node(Kind::String));
    g_.nodes_[obj].free_keys = true;
    g_.nodes_[obj].item = any_;
    g_.nodes_[obj].key = key;
    const NodeId arr = add(Node(Kind::Array));
    g_.nodes_[arr].item = any_;
    const NodeId str = add(Node(Kind::String));
    const NodeId num = add(Node(Kind::Number));
    g_.nodes_[any_].alts = {obj, arr, str, num, literal("true"), literal("false"), literal("null")};
    return any_;
  }

  Grammar& grammar() { return g_; }

 private:
  NodeId add(Node n) {
    g_.nodes_.push_back(std::move(n));
    return NodeId(g_.nodes_.size() - 1);
  }
  NodeId literal(const std::string& text) {
    Node n(Kind::Literal);
    n.text = text;
    return add(std::move(n));
  }

  [[noreturn]] void refuse(const std::string& where, const std::string& what) {
    fail_as(ErrorKind::BadInput, "JSON schema at '{}': {}", where.empty() ? "/" : where, what);
  }

  uint32_t count(const json& s, const char* key, const std::string& where, uint32_t fallback) {
    if (!s.contains(key)) return fallback;
    const json& v = s[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 1'000'000)
      refuse(where + "/" + key, "must be a non-negative integer up to 1000000, got " + v.dump());
    return uint32_t(v.get<uint64_t>());
  }

  NodeId schema(const json& s, const std::string& where, int depth) {
    if (depth > kMaxDepth) refuse(where, "schemas nested deeper than 64");
    if (s.is_boolean()) {
      if (!s.get<bool>()) refuse(where, "the schema 'false' admits no document");
      return any_value();
    }
    if (!s.is_object()) refuse(where, "a schema must be an object or a boolean, got " + s.dump());
    for (const auto& [key, value] : s.items())
      if (!kAnnotations.count(key) && !kHandled.count(key))
        refuse(where + "/" + key, "keyword '" + key + "' is not supported in constrained output");
    if (s.contains("$ref")) return ref(s, where, depth);
    if (s.contains("const")) return literal(s["const"].dump());
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) refuse(where + "/enum", "must be a non-empty array");
      Node alt(Kind::Alt);
      for (const json& v : e) alt.alts.push_back(literal(v.dump()));
      return add(std::move(alt));
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (s.contains(key)) {
        const json& a = s[key];
        if (!a.is_array() || a.empty()) refuse(where + "/" + key, "must be a non-empty array");
        if (s.contains("type") || s.contains("properties"))
          refuse(where, std::string("'") + key + "' beside 'type' or 'properties' is not supported");
        Node alt(Kind::Alt);
        for (size_t i = 0; i < a.size(); ++i)
          alt.alts.push_back(schema(a[i], where + "/" + key + "/" + std::to_string(i), depth + 1));
        return add(std::move(alt));
      }
    if (s.contains("allOf")) {
      const json& a = s["allOf"];
      if (!a.is_array() || a.size() != 1) refuse(where + "/allOf", "only an allOf of one schema is supported");
      return schema(a[0], where + "/allOf/0", depth + 1);
    }
    if (!s.contains("type")) {
      if (s.contains("properties")) return object(s, where, depth);
      if (s.contains("items")) return array(s, where, depth);
      return any_value();
    }
    const json& t = s["type"];
    if (t.is_array()) {
      if (t.empty()) refuse(where + "/type", "an empty list of types admits no document");
      Node alt(Kind::Alt);
      for (const json& one : t) alt.alts.push_back(typed(s, one, where, depth));
      return add(std::move(alt));
    }
    return typed(s, t, where, depth);
  }

  NodeId typed(const json& s, const json& t, const std::string& where, int depth) {
    if (!t.is_string()) refuse(where + "/type", "must be a type name, got " + t.dump());
    const std::string type = t.get<std::string>();
    if (type == "object") return object(s, where, depth);
    if (type == "array") return array(s, where, depth);
    if (type == "string") {
      Node n(Kind::String);
      n.min_len = count(s, "minLength", where, 0);
      n.max_len = count(s, "maxLength", where, UINT32_MAX);
      if (n.min_len > n.max_len) refuse(where, "minLength exceeds maxLength");
      return add(std::move(n));
    }
    if (type == "number" || type == "integer") {
      Node n(Kind::Number);
      n.integer = type == "integer";
      return add(std::move(n));
    }
    if (type == "boolean") {
      Node alt(Kind::Alt);
      alt.alts = {literal("true"), literal("false")};
      return add(std::move(alt));
    }
    if (type == "null") return literal("null");
    refuse(where + "/type", "unknown type '" + type + "'");
  }

  NodeId object(const json& s, const std::string& where, int depth) {
    const NodeId id = add(Node(Kind::Object));
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) refuse(where + "/required", "must be an array of property names");
      for (const json& r : s["required"]) {
        if (!r.is_string()) refuse(where + "/required", "must be an array of property names");
        required.insert(r.get<std::string>());
      }
    }
    if (!s.contains("properties")) {
      // Free keys: values of additionalProperties' schema, or any value.
      NodeId value = UINT32_MAX;
      if (s.contains("additionalProperties") && s["additionalProperties"].is_object())
        value = schema(s["additionalProperties"], where + "/additionalProperties", depth + 1);
      else if (s.contains("additionalProperties") && s["additionalProperties"] == false)
        value = UINT32_MAX;  // only {} is valid
      else
        value = any_value();
      if (!required.empty()) refuse(where + "/required", "required properties without 'properties'");
      if (value == UINT32_MAX) return id;  // no properties at all: only {}
      const NodeId key = add(Node(Kind::String));
      g_.nodes_[id].free_keys = true;
      g_.nodes_[id].item = value;
      g_.nodes_[id].key = key;
      return id;
    }
    const json& props = s["properties"];
    if (!props.is_object()) refuse(where + "/properties", "must be an object");
    std::vector<Property> list;
    for (const auto& [name, sub] : props.items()) {
      Property p;
      p.key = literal(json(name).dump());
      p.value = schema(sub, where + "/properties/" + name, depth + 1);
      p.required = required.erase(name) > 0;
      list.push_back(p);
    }
    if (!required.empty()) refuse(where + "/required", "'" + *required.begin() + "' is required but not in 'properties'");
    g_.nodes_[id].props = std::move(list);
    return id;
  }

  NodeId array(const json& s, const std::string& where, int depth) {
    Node n(Kind::Array);
    n.min_len = count(s, "minItems", where, 0);
    n.max_len = count(s, "maxItems", where, UINT32_MAX);
    if (n.min_len > n.max_len) refuse(where, "minItems exceeds maxItems");
    const NodeId id = add(std::move(n));
    const NodeId item = s.contains("items") ? schema(s["items"], where + "/items", depth + 1) : any_value();
    g_.nodes_[id].item = item;
    return id;
  }

  // "#/$defs/NAME" and "#/definitions/NAME"; recursive references resolve
  // to the same node (a placeholder Alt filled once compiled).
  NodeId ref(const json& s, const std::string& where, int depth) {
    const json& r = s["$ref"];
    if (!r.is_string()) refuse(where + "/$ref", "must be a string");
    const std::string path = r.get<std::string>();
    if (auto it = refs_.find(path); it != refs_.end()) return it->second;
    std::string section, name;
    for (const char* prefix : {"#/$defs/", "#/definitions/"})
      if (path.rfind(prefix, 0) == 0) {
        section = std::string(prefix).substr(2, std::string(prefix).size() - 3);
        name = path.substr(std::string(prefix).size());
      }
    if (name.empty() || !root_.contains(section) || !root_[section].contains(name))
      refuse(where + "/$ref", "'" + path + "' is not a definition of this schema (#/$defs/NAME or #/definitions/NAME)");
    const NodeId placeholder = add(Node(Kind::Alt));
    refs_[path] = placeholder;
    const NodeId target = schema(root_[section][name], "/" + section + "/" + name, depth + 1);
    g_.nodes_[placeholder].alts = {target};
    return placeholder;
  }

  const json& root_;
  Grammar g_;
  NodeId any_ = UINT32_MAX;
  std::map<std::string, NodeId> refs_;
};

Grammar Grammar::from_schema(const json& schema) {
  SchemaCompiler c(schema);
  return c.compile();
}

Grammar Grammar::from_schema_text(std::string_view text) {
  json schema = json::parse(text, nullptr, false);
  if (schema.is_discarded()) fail_as(ErrorKind::BadInput, "the JSON schema is not valid JSON");
  return from_schema(schema);
}

Grammar Grammar::any_object() {
  const json schema = {{"type", "object"}};
  return from_schema(schema);
}

}  // namespace moeflux::json_constraint
