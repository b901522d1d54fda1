#include "text/chat/jinja_value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "text/chat/jinja_limits.h"
#include "text/chat/jinja_text.h"

namespace moeflux::jinja {

namespace {

// Destroying a deeply nested value must not recurse once per level (a
// template can nest lists 100,000 deep through a namespace in a loop): a
// dying list or dict moves its container children to this per-thread queue
// and the outermost destructor destroys them one after the other.
struct Graveyard {
  std::vector<Value> pending;
  bool draining = false;
};
thread_local Graveyard t_graveyard;

template <typename Items, typename Get>
void release_nested(Items& items, Get get) {
  Graveyard& g = t_graveyard;
  for (auto& item : items)
    if (get(item).is_container()) g.pending.push_back(std::move(get(item)));
  if (g.draining) return;
  g.draining = true;
  while (!g.pending.empty()) {
    Value v = std::move(g.pending.back());
    g.pending.pop_back();
  }  // v dies here and may queue its own children
  g.draining = false;
}

// Containers being printed on this thread, for Python's "[...]"/"{...}" on a
// value that contains itself (possible through a namespace).
thread_local std::vector<const void*> t_printing;

struct Printing {
  explicit Printing(const void* p) { t_printing.push_back(p); }
  ~Printing() { t_printing.pop_back(); }
  static bool active(const void* p) {
    for (const void* q : t_printing)
      if (q == p) return true;
    return false;
  }
};

// One level of nesting while printing, comparing or serialising values.
struct ValueNest : DepthGuard {
  ValueNest() : DepthGuard(value_depth(), active_limits().max_value_depth, "levels of nested values (max_value_depth)") {}
};

}  // namespace

ListData::~ListData() {
  release_nested(items, [](Value& v) -> Value& { return v; });
}

DictData::~DictData() {
  release_nested(items, [](std::pair<std::string, Value>& kv) -> Value& { return kv.second; });
}

const Value* DictData::find(std::string_view key) const {
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

Value* DictData::find(std::string_view key) {
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void DictData::set(std::string key, Value v) {
  if (Value* p = find(key)) {
    *p = std::move(v);
    return;
  }
  items.emplace_back(std::move(key), std::move(v));
}

Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  v.v_ = std::make_shared<ListData>(ListData{std::move(items), tuple});
  return v;
}

Value Value::dict() {
  Value v;
  v.v_ = std::make_shared<DictData>();
  return v;
}

Value Value::namespace_() {
  Value v;
  v.v_ = NamespacePtr{std::make_shared<DictData>()};
  return v;
}

Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.v_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = dict();
      for (auto& [k, e] : j.items()) d.dict_data().items.emplace_back(k, from_json(e));
      return d;
    }
    default:
      fail("unsupported JSON value of type {} in template context", j.type_name());
  }
}

Value::Kind Value::kind() const {
  switch (v_.index()) {
    case 0: return Kind::Undefined;
    case 1: return Kind::None;
    case 2: return Kind::Bool;
    case 3: return Kind::Int;
    case 4: return Kind::Float;
    case 5: return Kind::String;
    case 6: return Kind::List;
    case 7: return Kind::Dict;
    case 8: return Kind::Namespace;
    default: return Kind::Callable;
  }
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (!is_int()) fail("expected an integer, got {}", type_name());
  return std::get<int64_t>(v_);
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  if (!is_number()) fail("expected a number, got {}", type_name());
  return static_cast<double>(as_int());
}

DictData& Value::dict_data() const {
  if (is_namespace()) return *std::get<NamespacePtr>(v_).d;
  return *std::get<std::shared_ptr<DictData>>(v_);
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return as_bool();
    case Kind::Int: return as_int() != 0;
    case Kind::Float: return as_double() != 0.0;
    case Kind::String: return !as_string().empty();
    case Kind::List: return !list_data().items.empty();
    case Kind::Dict: return !dict_data().items.empty();
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return list_data().tuple ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "Namespace";
    default: return "function";
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, r.ptr);
  // s = [-]d[.ddd]e[+-]XX
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t e = s.find('e');
  std::string digits = s.substr(0, e);
  int exp = std::stoi(s.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
    return out;
  }
  if (exp < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
    out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
  }
  return out;
}

// Python's str.isprintable() is false for controls, separators other than
// the ASCII space, and format characters; repr() escapes exactly those.
static bool printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c >= 0x80 && c <= 0xA0) return false;
  if (c == 0xAD || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF))
    return false;
  return true;
}

std::string string_repr(std::string_view s) {
  char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : text::decode(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!printable(c)) {
      if (c < 0x100)
        out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
      else if (c < 0x10000)
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      else
        out += fmt::format("\\U{:08x}", static_cast<unsigned>(c));
    } else {
      text::append_utf8(out, c);
    }
    if (out.size() > active_limits().max_string_bytes) check_string_size(out.size());
  }
  out += q;
  return out;
}

std::string Value::str() const {
  switch (kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(as_int());
    case Kind::Float: return float_repr(as_double());
    case Kind::String: return as_string();
    case Kind::List: {
      auto& l = list_data();
      if (Printing::active(&l)) return l.tuple ? "(...)" : "[...]";
      ValueNest nest;
      Printing printing(&l);
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += l.items[i].repr();
        check_string_size(out.size());
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      out += l.tuple ? ")" : "]";
      return out;
    }
    case Kind::Dict:
    case Kind::Namespace: {
      // Python marks the dict being printed; a namespace prints its dict.
      if (Printing::active(&dict_data())) return is_namespace() ? "<Namespace {...}>" : "{...}";
      ValueNest nest;
      Printing printing(&dict_data());
      std::string out = is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (auto& [k, v] : dict_data().items) {
        if (!first) out += ", ";
        first = false;
        out += string_repr(k) + ": " + v.repr();
        check_string_size(out.size());
      }
      out += is_namespace() ? "}>" : "}";
      return out;
    }
    default: return "<function " + callable_data().name + ">";
  }
}

std::string Value::repr() const {
  if (is_string()) return string_repr(as_string());
  if (is_undefined()) return "Undefined";
  return str();
}

std::vector<Value> Value::iterate() const {
  switch (kind()) {
    case Kind::Undefined: return {};
    case Kind::List: return list_data().items;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (auto& [k, v] : dict_data().items) keys.emplace_back(k);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      check_items(as_string().size() / 4);  // at least one code point per 4 bytes
      auto cps = text::decode(as_string());
      check_items(cps.size());
      chars.reserve(cps.size());
      for (char32_t c : cps) {
        std::string s;
        text::append_utf8(s, c);
        chars.emplace_back(std::move(s));
      }
      return chars;
    }
    default: fail("'{}' object is not iterable", type_name());
  }
}

nlohmann::ordered_json Value::to_json() const {
  switch (kind()) {
    case Kind::None: return nullptr;
    case Kind::Bool: return as_bool();
    case Kind::Int: return as_int();
    case Kind::Float: return as_double();
    case Kind::String: return as_string();
    case Kind::List: {
      ValueNest nest;
      auto j = nlohmann::ordered_json::array();
      for (auto& e : list_data().items) j.push_back(e.to_json());
      return j;
    }
    case Kind::Dict: {
      ValueNest nest;
      auto j = nlohmann::ordered_json::object();
      for (auto& [k, v] : dict_data().items) j[k] = v.to_json();
      return j;
    }
    default: fail("Object of type {} is not JSON serializable", type_name());
  }
}

bool Value::operator==(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (is_float() || o.is_float()) return as_double() == o.as_double();
    return as_int() == o.as_int();
  }
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return as_string() == o.as_string();
    case Kind::List: {
      auto& a = list_data();
      auto& b = o.list_data();
      if (a.tuple != b.tuple || a.items.size() != b.items.size()) return false;
      ValueNest nest;
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!(a.items[i] == b.items[i])) return false;
      return true;
    }
    case Kind::Dict: {
      auto& a = dict_data();
      auto& b = o.dict_data();
      if (a.items.size() != b.items.size()) return false;
      ValueNest nest;
      for (auto& [k, v] : a.items) {
        const Value* w = b.find(k);
        if (!w || !(v == *w)) return false;
      }
      return true;
    }
    default: return same(o);
  }
}

bool Value::same(const Value& o) const {
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Bool: return as_bool() == o.as_bool();
    case Kind::Int: return as_int() == o.as_int();
    case Kind::Float: return as_double() == o.as_double();
    case Kind::String: return as_string() == o.as_string();
    case Kind::List: return &list_data() == &o.list_data();
    case Kind::Dict:
    case Kind::Namespace: return &dict_data() == &o.dict_data();
    default: return &callable_data() == &o.callable_data();
  }
}

int Value::compare(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (is_float() || o.is_float()) {
      double a = as_double(), b = o.as_double();
      return a < b ? -1 : a > b ? 1 : 0;
    }
    int64_t a = as_int(), b = o.as_int();
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (is_string() && o.is_string()) {
    // UTF-8 byte order is code point order, which is Python's.
    int c = as_string().compare(o.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (is_list() && o.is_list()) {
    ValueNest nest;
    auto& a = list_data().items;
    auto& b = o.list_data().items;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (a[i] == b[i]) continue;
      return a[i].compare(b[i]);
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '{}' and '{}'", type_name(), o.type_name());
}

bool Value::contains(const Value& item) const {
  switch (kind()) {
    case Kind::String:
      if (!item.is_string()) fail("'in <string>' requires string as left operand, not {}", item.type_name());
      return text::find(as_string(), item.as_string(), false) >= 0;
    case Kind::List:
      for (auto& e : list_data().items)
        if (e == item) return true;
      return false;
    case Kind::Dict:
      if (item.is_dict() || item.is_namespace() || (item.is_list() && !item.list_data().tuple))
        fail("unhashable type: '{}'", item.type_name());
      return item.is_string() && dict_data().find(item.as_string()) != nullptr;
    case Kind::Undefined: return false;
    default: fail("argument of type '{}' is not iterable", type_name());
  }
}

namespace {

void dump_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t max = active_limits().max_string_bytes;
  for (char32_t c : text::decode(s)) {
    if (out.size() > max) check_string_size(out.size());  // escapes grow text up to 6-fold
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", static_cast<unsigned>(0xD800 | (v >> 10)),
                               static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        } else {
          text::append_utf8(out, c);
        }
    }
  }
  out += '"';
}

void dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  auto newline = [&](int lvl) {
    check_string_size(out.size() + 1 + o.indent.size() * static_cast<size_t>(lvl));
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += o.indent;
  };
  if (out.size() > active_limits().max_string_bytes) check_string_size(out.size());
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: {
      double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : float_repr(d);
      return;
    }
    case Value::Kind::String: dump_string(out, v.as_string(), o.ensure_ascii); return;
    case Value::Kind::List: {
      auto& items = v.list_data().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      ValueNest nest;
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.has_indent) newline(level + 1);
        dump(out, items[i], o, level + 1);
      }
      if (o.has_indent) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      ValueNest nest;
      std::vector<const std::pair<std::string, Value>*> items;
      for (auto& kv : v.dict_data().items) items.push_back(&kv);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.has_indent) newline(level + 1);
        dump_string(out, items[i]->first, o.ensure_ascii);
        out += o.key_sep;
        dump(out, items[i]->second, o, level + 1);
      }
      if (o.has_indent) newline(level);
      out += '}';
      return;
    }
    default: fail("Object of type {} is not JSON serializable", v.type_name());
  }
}

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& opts) {
  std::string out;
  dump(out, v, opts, 0);
  return out;
}

}  // namespace moeflux::jinja
