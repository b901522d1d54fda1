#include "text/tokenizer/json_reader.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "text/tokenizer/utf8.h"

namespace moeflux::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "bool";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

namespace {

int hex4(std::string_view s, size_t i) {
  if (i + 4 > s.size()) return -1;
  int v = 0;
  for (size_t k = 0; k < 4; ++k) {
    char c = s[i + k];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Decodes escapes; returns false on a malformed escape (the parser has
// already rejected those, so only hand-made input can hit it).
bool unescape_into(std::string_view raw, std::string& out) {
  out.clear();
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c != '\\') { out.push_back(c); continue; }
    if (++i >= raw.size()) return false;
    switch (raw[i]) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        int v = hex4(raw, i + 1);
        if (v < 0) return false;
        i += 4;
        char32_t cp = char32_t(v);
        if (v >= 0xD800 && v <= 0xDBFF) {
          // serde_json (what HF uses) rejects lone surrogates; so do we.
          if (i + 2 >= raw.size() || raw[i + 1] != '\\' || raw[i + 2] != 'u') return false;
          int lo = hex4(raw, i + 3);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          i += 6;
          cp = 0x10000 + ((char32_t(v) - 0xD800) << 10) + (char32_t(lo) - 0xDC00);
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
          return false;
        }
        utf8::append(out, cp);
        break;
      }
      default: return false;
    }
  }
  return true;
}

}  // namespace

std::string_view unescape(std::string_view raw, bool escaped, std::string& out) {
  if (!escaped) return raw;
  if (!unescape_into(raw, out)) fail("JSON: bad string escape in \"{}\"", raw.substr(0, 40));
  return out;
}

class Parser {
 public:
  Parser(std::string_view s, Document& d) : s_(s), d_(d) {}

  void run() {
    d_.nodes_.reserve(s_.size() / 18 + 16);  // ~one node per 18 bytes in tokenizer.json
    ws();
    value(0);
    ws();
    if (p_ != s_.size()) error("trailing characters after the JSON value");
  }

 private:
  std::string_view s_;
  Document& d_;
  size_t p_ = 0;

  void set_raw(uint32_t idx, std::string_view r) {
    d_.nodes_[idx].raw_off = uint32_t(r.data() - s_.data());
    d_.nodes_[idx].raw_len = uint32_t(r.size());
  }

  [[noreturn]] void error(const char* what) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
    fail("{}: JSON syntax error at line {} column {}: {}", d_.source_, line, col, what);
  }

  void ws() {
    while (p_ < s_.size()) {
      char c = s_[p_];
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') ++p_; else break;
    }
  }

  // Scans a string starting at the opening quote; returns raw contents.
  std::string_view string(bool& escaped) {
    ++p_;  // opening quote
    size_t start = p_;
    escaped = false;
    const char* data = s_.data();
    size_t n = s_.size();
    while (true) {
      // Fast skip of plain characters.
      while (p_ < n) {
        unsigned char c = static_cast<unsigned char>(data[p_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++p_;
      }
      if (p_ >= n) error("unterminated string");
      char c = data[p_];
      if (c == '"') break;
      if (c == '\\') {
        escaped = true;
        if (p_ + 1 >= n) error("unterminated string");
        char e = data[p_ + 1];
        if (e == 'u') {
          if (hex4(s_, p_ + 2) < 0) error("bad \\u escape");
          p_ += 6;
        } else if (std::strchr("\"\\/bfnrt", e) != nullptr && e != 0) {
          p_ += 2;
        } else {
          p_ += 1;
          error("bad escape");
        }
        continue;
      }
      error("control character in string");
    }
    std::string_view raw = s_.substr(start, p_ - start);
    ++p_;  // closing quote
    if (escaped) {
      std::string tmp;
      if (!unescape_into(raw, tmp)) error("bad escape (lone surrogate?) in string");
    }
    return raw;
  }

  uint32_t value(int depth) {
    if (depth > 512) error("nesting deeper than 512");
    if (p_ >= s_.size()) error("unexpected end of input");
    uint32_t idx = uint32_t(d_.nodes_.size());
    d_.nodes_.emplace_back();
    char c = s_[p_];
    if (c == '{' || c == '[') {
      bool obj = c == '{';
      d_.nodes_[idx].type = obj ? Type::Object : Type::Array;
      ++p_;
      ws();
      char close = obj ? '}' : ']';
      if (p_ < s_.size() && s_[p_] == close) { ++p_; return idx; }
      uint32_t prev = 0, count = 0;
      while (true) {
        std::string_view key;
        bool key_esc = false;
        if (obj) {
          if (p_ >= s_.size() || s_[p_] != '"') error("expected a string key");
          key = string(key_esc);
          ws();
          if (p_ >= s_.size() || s_[p_] != ':') error("expected ':'");
          ++p_;
          ws();
        }
        uint32_t child = value(depth + 1);
        d_.nodes_[child].key_off = uint32_t(key.data() - s_.data());
        d_.nodes_[child].key_len = uint32_t(key.size());
        d_.nodes_[child].key_escaped = key_esc;
        if (prev == 0) d_.nodes_[idx].first = child; else d_.nodes_[prev].next = child;
        prev = child;
        ++count;
        ws();
        if (p_ >= s_.size()) error("unexpected end of input");
        if (s_[p_] == ',') { ++p_; ws(); continue; }
        if (s_[p_] == close) { ++p_; break; }
        error(obj ? "expected ',' or '}'" : "expected ',' or ']'");
      }
      d_.nodes_[idx].count = count;
      return idx;
    }
    if (c == '"') {
      bool esc;
      auto raw = string(esc);
      d_.nodes_[idx].type = Type::String;
      set_raw(idx, raw);
      d_.nodes_[idx].escaped = esc;
      return idx;
    }
    auto lit = [&](std::string_view w, Type t) {
      if (s_.substr(p_, w.size()) != w) error("invalid literal");
      d_.nodes_[idx].type = t;
      set_raw(idx, s_.substr(p_, w.size()));
      p_ += w.size();
    };
    if (c == 't') { lit("true", Type::Bool); return idx; }
    if (c == 'f') { lit("false", Type::Bool); return idx; }
    if (c == 'n') { lit("null", Type::Null); return idx; }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = p_;
      if (s_[p_] == '-') ++p_;
      auto digits = [&] {
        size_t b = p_;
        while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
        if (p_ == b) error("malformed number");
      };
      digits();
      if (p_ < s_.size() && s_[p_] == '.') { ++p_; digits(); }
      if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
        ++p_;
        if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
        digits();
      }
      d_.nodes_[idx].type = Type::Number;
      set_raw(idx, s_.substr(start, p_ - start));
      return idx;
    }
    error("unexpected character");
  }
};

std::shared_ptr<const Document> Document::parse(std::string text, std::string source) {
  auto d = std::make_shared<Document>();
  d->text_ = std::move(text);
  d->source_ = std::move(source);
  if (d->text_.size() >= UINT32_MAX) fail("{}: larger than 4 GiB", d->source_);
  size_t ok = utf8::valid_prefix(d->text_);
  if (ok != d->text_.size()) fail("{}: invalid UTF-8 at byte {}", d->source_, ok);
  Parser(d->text_, *d).run();
  return d;
}

// ---- Value ------------------------------------------------------------------

std::string Value::child_path(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  std::string p = path_;
  p += '.';
  p += key;
  return p;
}

void Value::fail_type(const char* expected) const {
  fail("{}: {}: expected {}, got {}", doc_->source(), path_.empty() ? "(root)" : path_, expected,
       type_name(type()));
}

void Value::fail_msg(const std::string& msg) const {
  fail("{}: {}: {}", doc_->source(), path_.empty() ? "(root)" : path_, msg);
}

bool Value::has(std::string_view key) const {
  if (!is_object()) return false;
  std::string tmp;
  for (uint32_t c = node().first; c != 0; c = doc_->node(c).next) {
    const Node& n = doc_->node(c);
    if (unescape(doc_->key(n), n.key_escaped, tmp) == key) return true;
  }
  return false;
}

Value Value::at(std::string_view key) const {
  if (!is_object()) fail_type("object");
  std::string tmp;
  for (uint32_t c = node().first; c != 0; c = doc_->node(c).next) {
    const Node& n = doc_->node(c);
    if (unescape(doc_->key(n), n.key_escaped, tmp) == key) return Value(doc_, c, child_path(key));
  }
  fail("{}: {}: missing field \"{}\"", doc_->source(), path_.empty() ? "(root)" : path_, key);
}

Value Value::at(size_t i) const {
  if (!is_array()) fail_type("array");
  if (i >= node().count) fail_msg("index out of range");
  uint32_t c = node().first;
  for (size_t k = 0; k < i; ++k) c = doc_->node(c).next;
  return Value(doc_, c, path_ + "[" + std::to_string(i) + "]");
}

std::vector<Value> Value::elements() const {
  if (!is_array()) fail_type("array");
  std::vector<Value> out;
  out.reserve(node().count);
  size_t i = 0;
  for (uint32_t c = node().first; c != 0; c = doc_->node(c).next, ++i)
    out.emplace_back(doc_, c, path_ + "[" + std::to_string(i) + "]");
  return out;
}

std::string Value::str() const {
  if (!is_string()) fail_type("string");
  std::string tmp;
  return std::string(unescape(doc_->raw(node()), node().escaped, tmp));
}

int64_t Value::as_int() const {
  if (type() != Type::Number) fail_type("integer");
  int64_t v = 0;
  auto raw = doc_->raw(node());
  auto r = std::from_chars(raw.data(), raw.data() + raw.size(), v);
  if (r.ec != std::errc() || r.ptr != raw.data() + raw.size()) fail_msg("expected an integer, got " + std::string(raw));
  return v;
}

double Value::as_double() const {
  if (type() != Type::Number) fail_type("number");
  return std::strtod(std::string(doc_->raw(node())).c_str(), nullptr);
}

bool Value::as_bool() const {
  if (type() != Type::Bool) fail_type("bool");
  return doc_->raw(node()) == "true";
}

std::string Value::str_or(std::string_view key, std::string_view def) const {
  if (!has(key)) return std::string(def);
  Value v = at(key);
  if (v.is_null()) return std::string(def);
  return v.str();
}

bool Value::bool_or(std::string_view key, bool def) const {
  if (!has(key)) return def;
  Value v = at(key);
  if (v.is_null()) return def;
  return v.as_bool();
}

int64_t Value::int_or(std::string_view key, int64_t def) const {
  if (!has(key)) return def;
  Value v = at(key);
  if (v.is_null()) return def;
  return v.as_int();
}

}  // namespace moeflux::json
