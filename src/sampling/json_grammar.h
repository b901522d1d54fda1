// A JSON Schema compiled into a grammar that a matcher can run one byte at
// a time (json_matcher.h), so that sampling can mask every token that would
// leave the output unable to become a document valid against the schema
// (OpenAI's response_format json_object / json_schema).
//
// The grammar is stricter than the schema where that keeps it simple and
// the output still valid: an object's properties come in the schema's
// order, none beyond those listed (additionalProperties is never needed to
// validate), and numbers have at most kMaxNumberChars characters. Keywords
// that restrict valid documents in ways the grammar cannot express
// (pattern, format, minimum, ...) are refused by name and JSON pointer, never
// ignored; annotations (title, description, default, ...) are ignored.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moeflux::json_constraint {

using NodeId = uint32_t;

enum class Kind : uint8_t {
  Literal,  // exactly `text` (true, false, null, an enum value, a property key)
  Alt,      // any one of `alts`
  String,   // a JSON string of min_len..max_len code points
  Number,   // a JSON number (integer: no fraction, no exponent)
  Object,   // `props` in order (required ones present), or free keys
  Array,    // min_len..max_len items of `item`
};

struct Property {
  NodeId key;    // a Literal: the key as JSON, quotes included
  NodeId value;
  bool required;
};

struct Node {
  explicit Node(Kind k) : kind(k) {}
  Kind kind;
  std::string text;                    // Literal
  std::vector<NodeId> alts;            // Alt
  bool integer = false;                // Number
  uint32_t min_len = 0, max_len = UINT32_MAX;  // String (code points), Array (items)
  std::vector<Property> props;         // Object with a schema
  bool free_keys = false;              // Object: any string keys, each value `item`
  NodeId item = 0;                     // Array items; free-key Object values
  NodeId key = 0;                      // free-key Object: the String node of its keys
};

constexpr uint32_t kMaxNumberChars = 40;

class Grammar {
 public:
  // Throws moeflux::Error (bad input) naming the keyword and its JSON
  // pointer. The schema is read in its written order (properties come in
  // that order): parse it as ordered_json, or pass its text.
  static Grammar from_schema(const nlohmann::ordered_json& schema);
  static Grammar from_schema_text(std::string_view schema_json);
  // Any JSON object (response_format json_object).
  static Grammar any_object();

  // Literal text around the document (a tool call's markers, as in
  // "<tool_call>\n" ... "</tool_call>"): the output is then the prefix,
  // optional whitespace, the document, and, when there is a suffix,
  // optional whitespace and the suffix. Nothing follows the last byte.
  void set_literals(std::string prefix, std::string suffix) {
    prefix_ = std::move(prefix);
    suffix_ = std::move(suffix);
  }
  const std::string& prefix() const { return prefix_; }
  const std::string& suffix() const { return suffix_; }

  const Node& node(NodeId id) const { return nodes_[id]; }
  NodeId root() const { return root_; }
  size_t size() const { return nodes_.size(); }

 private:
  friend class SchemaCompiler;
  std::vector<Node> nodes_;
  NodeId root_ = 0;
  std::string prefix_, suffix_;
};

}  // namespace moeflux::json_constraint
