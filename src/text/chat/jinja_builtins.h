// Builtin filters, tests, globals and methods of str/dict/list, with Jinja's
// (and Python's) argument conventions. Looked up by name at parse time so an
// unknown filter or test fails before rendering.
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "text/chat/jinja_ast.h"
#include "text/chat/jinja_value.h"

namespace moeflux::jinja {

FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// Jinja's getattr: a method of the value's Python type first (str.strip,
// dict.items, ...), then a key. Missing -> undefined.
Value get_attr(const Value& obj, const std::string& name);
// Jinja's getitem: obj[key] first, then an attribute of that name.
Value get_item(const Value& obj, const Value& key);

// The functions every template sees: range, dict, namespace,
// raise_exception, strftime_now.
void add_globals(DictData& globals);

// Binds Python-style arguments to named parameters with defaults; throws on
// unknown keywords or too many positionals, naming `fn`.
struct Param {
  const char* name;
  std::optional<Value> dflt;  // nullopt: required
};
std::vector<Value> bind_args(const char* fn, CallArgs& args, std::initializer_list<Param> params);

// Python's `fmt % args` (printf-style) for %s %r %d %i %f %%.
std::string percent_format(const std::string& fmt, const Value& args);

// Python int() / float() of a value, for the int/float filters.
std::optional<int64_t> parse_int(const Value& v, int base);
// trunc(d) as an int64; nullopt for inf/nan, an error outside the range.
std::optional<int64_t> float_to_int(double d);

}  // namespace moeflux::jinja
