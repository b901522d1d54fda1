#pragma once
// A small, fast JSON reader for tokenizer.json. nlohmann::json takes ~700 ms
// to build a DOM of Qwen3's 11 MB file (measured 2026-11-27 on this 2-core
// EPYC VM); this reader keeps strings as views into the text and puts every
// node in one flat array, so that the vocab and merges cost one pass.
//
// Errors name the source (file name) and the JSON path of the value, e.g.
// "tokenizer.json: model.vocab: expected object, got array".
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux::json {

enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
const char* type_name(Type t);

// 32 bytes: Qwen3's file has ~600k nodes, so size matters for load time.
// Text is referenced by offsets into the document (Document::key/raw).
struct Node {
  Type type = Type::Null;
  bool escaped = false;      // string value holds backslash escapes
  bool key_escaped = false;  // object key holds backslash escapes
  uint32_t next = 0;         // next sibling, 0 = none (node 0 is the root)
  uint32_t first = 0;        // first child of an array/object, 0 = none
  uint32_t count = 0;        // number of children
  uint32_t key_off = 0, key_len = 0;  // raw key text when the parent is an object
  uint32_t raw_off = 0, raw_len = 0;  // string contents without quotes, number, true/false
};

// Decodes JSON string escapes of `raw` into `out`; returns a view of the
// result (raw itself when it has no escapes).
std::string_view unescape(std::string_view raw, bool escaped, std::string& out);

class Document {
 public:
  // Parses `text`, which the document keeps. `source` names it in errors.
  static std::shared_ptr<const Document> parse(std::string text, std::string source);

  const Node& node(uint32_t i) const { return nodes_[i]; }
  std::string_view key(const Node& n) const { return std::string_view(text_).substr(n.key_off, n.key_len); }
  std::string_view raw(const Node& n) const { return std::string_view(text_).substr(n.raw_off, n.raw_len); }
  const std::string& source() const { return source_; }

 private:
  std::string text_;
  std::vector<Node> nodes_;
  std::string source_;
  friend class Parser;
};

// A node plus the path that led to it, for error messages.
class Value {
 public:
  Value(std::shared_ptr<const Document> doc, uint32_t idx, std::string path)
      : doc_(std::move(doc)), idx_(idx), path_(std::move(path)) {}
  static Value root(std::shared_ptr<const Document> doc) { return Value(std::move(doc), 0, ""); }

  Type type() const { return node().type; }
  bool is_null() const { return type() == Type::Null; }
  bool is_string() const { return type() == Type::String; }
  bool is_object() const { return type() == Type::Object; }
  bool is_array() const { return type() == Type::Array; }
  const std::string& path() const { return path_; }
  const Node& node() const { return doc_->node(idx_); }
  uint32_t index() const { return idx_; }
  const Document& doc() const { return *doc_; }

  // Object member; fails naming the key when absent.
  Value at(std::string_view key) const;
  // True when this is an object with member `key`.
  bool has(std::string_view key) const;
  Value at(size_t i) const;  // array element
  std::vector<Value> elements() const;  // array elements

  std::string str() const;
  int64_t as_int() const;
  double as_double() const;
  bool as_bool() const;
  size_t size() const { return node().count; }

  // Helpers for optional members with defaults.
  std::string str_or(std::string_view key, std::string_view def) const;
  bool bool_or(std::string_view key, bool def) const;
  int64_t int_or(std::string_view key, int64_t def) const;

  [[noreturn]] void fail_type(const char* expected) const;
  [[noreturn]] void fail_msg(const std::string& msg) const;

 private:
  std::shared_ptr<const Document> doc_;
  uint32_t idx_;
  std::string path_;
  std::string child_path(std::string_view key) const;
};

}  // namespace moeflux::json
