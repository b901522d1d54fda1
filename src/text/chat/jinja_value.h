// Values of the Jinja interpreter: Python's data model, reduced to what chat
// templates touch. Lists, dicts and namespaces are shared by reference (as in
// Python), so `ns.x = ...` and `loop` bookkeeping see one object.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace moeflux::jinja {

class Value;

// Positional and keyword arguments of a call, as Python passes them.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // only changes how it prints: (1, 2) vs [1, 2]
  ~ListData();  // iterative: see release_nested in jinja_value.cpp
};

// Insertion-ordered like a Python dict; keys are strings (JSON objects and
// template dict literals never need other keys). Linear lookup: chat dicts
// have a handful of keys.
struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  ~DictData();
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(std::string key, Value v);
};

// A builtin function, bound method or macro. `fn` receives the evaluated
// arguments; errors it throws get the call site's position added.
struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

struct Undefined {
  std::string name;  // what was looked up, for "'x' is undefined" messages
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string name = {}) { return Value(Undefined{std::move(name)}); }
  static Value none() { return Value(nullptr); }
  Value(bool b) : v_(b) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  static Value list(std::vector<Value> items = {}, bool tuple = false);
  static Value dict();
  static Value namespace_();
  static Value callable(std::string name, std::function<Value(CallArgs&)> fn);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_namespace() const { return kind() == Kind::Namespace; }
  bool is_callable() const { return kind() == Kind::Callable; }
  // Dicts and namespaces both map names to values.
  bool is_mapping() const { return is_dict() || is_namespace(); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;  // bool or int
  double as_double() const;  // bool, int or float
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const std::string& undefined_name() const { return std::get<Undefined>(v_).name; }
  ListData& list_data() const { return *std::get<std::shared_ptr<ListData>>(v_); }
  DictData& dict_data() const;  // dict or namespace
  const Callable& callable_data() const { return *std::get<std::shared_ptr<Callable>>(v_); }

  bool truthy() const;
  // Python's type name, for error messages ("str", "list", ...).
  std::string type_name() const;
  // Python's str(): how `{{ value }}` prints.
  std::string str() const;
  // Python's repr(): how values print inside a list or dict.
  std::string repr() const;
  // Lists, dicts, namespaces and callables: values that hold other values.
  bool is_container() const { return is_list() || is_mapping() || is_callable(); }
  // Elements when iterated (dict -> keys, string -> characters).
  std::vector<Value> iterate() const;
  nlohmann::ordered_json to_json() const;

  bool operator==(const Value& o) const;
  // Python ordering; throws on unorderable types.
  int compare(const Value& o) const;
  bool contains(const Value& item) const;  // Python's `item in self`
  bool same(const Value& o) const;  // Python's `is`

 private:
  explicit Value(Undefined u) : v_(std::move(u)) {}
  explicit Value(std::nullptr_t) : v_(nullptr) {}
  struct NamespacePtr {
    std::shared_ptr<DictData> d;
  };
  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string,
               std::shared_ptr<ListData>, std::shared_ptr<DictData>, NamespacePtr,
               std::shared_ptr<Callable>>
      v_;
};

// Python's repr() of a float: shortest round-trip digits, scientific outside
// [1e-4, 1e16), always with a '.0' or exponent.
std::string float_repr(double d);
std::string string_repr(std::string_view s);

struct JsonDumpOptions {
  bool ensure_ascii = false;
  // indent: nullopt-like when has_indent is false; json.dumps accepts an int
  // (spaces) or a string.
  bool has_indent = false;
  std::string indent;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
// Python's json.dumps with the given options, byte for byte.
std::string json_dumps(const Value& v, const JsonDumpOptions& opts);

}  // namespace moeflux::jinja
