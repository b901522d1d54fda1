// Attribute and item access, methods of str/dict/list, and the global
// functions (range, dict, namespace, raise_exception, strftime_now).
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <ctime>

#include "core/error.h"
#include "text/chat/jinja_builtins.h"
#include "text/chat/jinja_limits.h"
#include "text/chat/jinja_text.h"

namespace moeflux::jinja {

std::vector<Value> bind_args(const char* fn, CallArgs& args, std::initializer_list<Param> params) {
  std::vector<std::optional<Value>> out(params.size());
  if (args.pos.size() > params.size())
    fail("{}() takes at most {} arguments ({} given)", fn, params.size(), args.pos.size());
  for (size_t i = 0; i < args.pos.size(); ++i) out[i] = args.pos[i];
  for (auto& [k, v] : args.kw) {
    size_t idx = 0;
    for (auto& p : params) {
      if (k == p.name) break;
      ++idx;
    }
    if (idx == params.size()) fail("{}() got an unexpected keyword argument '{}'", fn, k);
    if (out[idx]) fail("{}() got multiple values for argument '{}'", fn, k);
    out[idx] = v;
  }
  std::vector<Value> vals;
  size_t i = 0;
  for (auto& p : params) {
    if (out[i])
      vals.push_back(*out[i]);
    else if (p.dflt)
      vals.push_back(*p.dflt);
    else
      fail("{}() missing required argument '{}'", fn, p.name);
    ++i;
  }
  return vals;
}

namespace {

const std::string& want_str(const char* fn, const Value& v) {
  if (!v.is_string()) fail("{}() argument must be str, not {}", fn, v.type_name());
  return v.as_string();
}

std::optional<std::string> opt_str(const char* fn, const Value& v) {
  if (v.is_none()) return std::nullopt;
  return want_str(fn, v);
}

int64_t want_int(const char* fn, const Value& v) {
  if (!v.is_int() && !v.is_bool()) fail("{}() argument must be int, not {}", fn, v.type_name());
  return v.as_int();
}

Value str_list(const std::vector<std::string>& parts) {
  std::vector<Value> items;
  for (auto& p : parts) items.emplace_back(p);
  return Value::list(std::move(items));
}

bool affix_match(const std::string& s, const Value& affix, bool prefix, const char* fn) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) {
    for (auto& a : affix.list_data().items)
      if (one(want_str(fn, a))) return true;
    return false;
  }
  return one(want_str(fn, affix));
}

// str.format with auto/explicit positional fields and named fields; format
// specs are not supported.
std::string py_format(const std::string& fmt_s, CallArgs& args) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt_s.size(); ++i) {
    char c = fmt_s[i];
    if (c == '{' && i + 1 < fmt_s.size() && fmt_s[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt_s.size() && fmt_s[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t e = fmt_s.find('}', i);
      if (e == std::string::npos) fail("str.format: single '{{' encountered in format string");
      std::string field = fmt_s.substr(i + 1, e - i - 1);
      if (field.find_first_of(":!") != std::string::npos) fail("str.format: format specs are not supported ('{}')", field);
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_idx >= args.pos.size()) fail("str.format: replacement index {} out of range", auto_idx);
        v = &args.pos[auto_idx++];
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t idx = 0;
        auto r = std::from_chars(field.data(), field.data() + field.size(), idx);
        if (r.ec != std::errc() || r.ptr != field.data() + field.size() || idx >= args.pos.size())
          fail("str.format: replacement index {} out of range", field);
        v = &args.pos[idx];
      } else {
        for (auto& [k, kv] : args.kw)
          if (k == field) v = &kv;
        if (!v) fail("str.format: missing key '{}'", field);
      }
      out += v->str();
      check_growth(out.size());
      i = e;
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> splitlines(const std::string& s) {
  std::vector<std::string> out;
  auto cps = text::decode(s);
  std::vector<char32_t> line;
  for (size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
               c == 0x2028 || c == 0x2029;
    if (!brk) {
      line.push_back(c);
      continue;
    }
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    out.push_back(text::encode(line));
    line.clear();
  }
  if (!line.empty()) out.push_back(text::encode(line));
  return out;
}

Value string_method(const std::string& s, const std::string& name, CallArgs& a) {
  const char* n = name.c_str();
  if (name == "startswith" || name == "endswith") {
    auto v = bind_args(n, a, {{"prefix", {}}, {"start", Value::none()}, {"end", Value::none()}});
    if (!v[1].is_none() || !v[2].is_none()) fail("{}(): start/end arguments are not supported", n);
    return Value(affix_match(s, v[0], name == "startswith", n));
  }
  if (name == "split" || name == "rsplit") {
    auto v = bind_args(n, a, {{"sep", Value::none()}, {"maxsplit", Value(-1)}});
    auto sep = opt_str(n, v[0]);
    int64_t m = want_int(n, v[1]);
    return str_list(name == "split" ? text::split(s, sep, m) : text::rsplit(s, sep, m));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto v = bind_args(n, a, {{"chars", Value::none()}});
    return Value(text::strip(s, opt_str(n, v[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "splitlines" ||
      name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    bind_args(n, a, {});
    if (name == "upper") return Value(text::upper(s));
    if (name == "lower") return Value(text::lower(s));
    if (name == "title") return Value(text::title(s));
    if (name == "capitalize") return Value(text::capitalize(s));
    if (name == "splitlines") return str_list(splitlines(s));
    auto cps = text::decode(s);
    if (cps.empty()) return Value(false);
    bool all = true, any_cased = false, any_upper = false, any_lower = false;
    for (char32_t c : cps) {
      if (name == "isdigit") all = all && text::is_alnum(c) && !text::is_alpha(c);
      if (name == "isalpha") all = all && text::is_alpha(c);
      if (name == "isalnum") all = all && text::is_alnum(c);
      if (name == "isspace") all = all && text::is_space(c);
      any_upper = any_upper || text::is_upper(c);
      any_lower = any_lower || text::is_lower(c);
      any_cased = any_upper || any_lower;
    }
    if (name == "isupper") return Value(any_cased && !any_lower);
    if (name == "islower") return Value(any_cased && !any_upper);
    return Value(all);
  }
  if (name == "replace") {
    auto v = bind_args(n, a, {{"old", {}}, {"new", {}}, {"count", Value(-1)}});
    return Value(text::replace(s, want_str(n, v[0]), want_str(n, v[1]), want_int(n, v[2])));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    auto v = bind_args(n, a, {{"sub", {}}});
    int64_t k = text::find(s, want_str(n, v[0]), name[0] == 'r');
    if (k < 0 && (name == "index" || name == "rindex")) fail("{}(): substring not found", n);
    return Value(k);
  }
  if (name == "count") {
    auto v = bind_args(n, a, {{"sub", {}}});
    return Value(text::count(s, want_str(n, v[0])));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto v = bind_args(n, a, {{"affix", {}}});
    const std::string& x = want_str(n, v[0]);
    if (affix_match(s, v[0], name == "removeprefix", n))
      return Value(name == "removeprefix" ? s.substr(x.size()) : s.substr(0, s.size() - x.size()));
    return Value(s);
  }
  if (name == "join") {
    auto v = bind_args(n, a, {{"iterable", {}}});
    std::string out;
    bool first = true;
    for (auto& e : v[0].iterate()) {
      if (!first) out += s;
      first = false;
      out += want_str(n, e);
      check_growth(out.size());
    }
    return Value(out);
  }
  if (name == "format") return Value(py_format(s, a));
  fail("unsupported str method '{}'", name);
}

bool is_string_method(const std::string& n) {
  static const char* names[] = {"startswith", "endswith", "split",  "rsplit",     "strip",        "lstrip",
                                "rstrip",     "upper",    "lower",  "title",      "capitalize",   "splitlines",
                                "isdigit",    "isalpha",  "isalnum", "isspace",   "isupper",      "islower",
                                "replace",    "find",     "rfind",  "index",      "rindex",       "count",
                                "removeprefix", "removesuffix", "join", "format"};
  for (const char* x : names)
    if (n == x) return true;
  return false;
}

// Python methods that mutate: Jinja's immutable sandbox (which transformers
// uses) refuses them, and so do we.
bool is_mutating_method(const Value& obj, const std::string& n) {
  static const char* list_m[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"};
  static const char* dict_m[] = {"update", "pop", "popitem", "setdefault", "clear"};
  if (obj.is_list())
    for (const char* x : list_m)
      if (n == x) return true;
  if (obj.is_dict())
    for (const char* x : dict_m)
      if (n == x) return true;
  return false;
}

Value dict_items(const Value& d) {
  std::vector<Value> items;
  for (auto& [k, v] : d.dict_data().items) items.push_back(Value::list({Value(k), v}, true));
  return Value::list(std::move(items));
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::Undefined:
      fail("'{}' is undefined", obj.undefined_name().empty() ? std::string("value") : obj.undefined_name());
    case Value::Kind::String:
      if (is_string_method(name)) {
        std::string s = obj.as_string();
        return Value::callable("str." + name, [s, name](CallArgs& a) { return string_method(s, name, a); });
      }
      return Value::undefined(name);
    case Value::Kind::Dict: {
      if (name == "items" || name == "keys" || name == "values") {
        return Value::callable("dict." + name, [obj, name](CallArgs& a) {
          bind_args(name.c_str(), a, {});
          if (name == "items") return dict_items(obj);
          std::vector<Value> out;
          for (auto& [k, v] : obj.dict_data().items) out.push_back(name == "keys" ? Value(k) : v);
          return Value::list(std::move(out));
        });
      }
      if (name == "get") {
        return Value::callable("dict.get", [obj](CallArgs& a) {
          auto v = bind_args("get", a, {{"key", {}}, {"default", Value::none()}});
          if (!v[0].is_string()) return v[1];
          const Value* f = obj.dict_data().find(v[0].as_string());
          return f ? *f : v[1];
        });
      }
      if (is_mutating_method(obj, name))
        return Value::callable("dict." + name, [name](CallArgs&) -> Value {
          fail("access to attribute '{}' of 'dict' object is unsafe", name);
        });
      const Value* f = obj.dict_data().find(name);
      return f ? *f : Value::undefined(name);
    }
    case Value::Kind::Namespace: {
      const Value* f = obj.dict_data().find(name);
      return f ? *f : Value::undefined(name);
    }
    case Value::Kind::List:
      if (name == "index" || name == "count") {
        return Value::callable("list." + name, [obj, name](CallArgs& a) {
          auto v = bind_args(name.c_str(), a, {{"value", {}}});
          auto& items = obj.list_data().items;
          int64_t cnt = 0;
          for (size_t i = 0; i < items.size(); ++i) {
            if (!(items[i] == v[0])) continue;
            if (name == "index") return Value(static_cast<int64_t>(i));
            ++cnt;
          }
          if (name == "index") fail("list.index(x): x not in list");
          return Value(cnt);
        });
      }
      if (is_mutating_method(obj, name))
        return Value::callable("list." + name, [name](CallArgs&) -> Value {
          fail("access to attribute '{}' of 'list' object is unsafe", name);
        });
      return Value::undefined(name);
    default: return Value::undefined(name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::Undefined:
      fail("'{}' is undefined", obj.undefined_name().empty() ? std::string("value") : obj.undefined_name());
    case Value::Kind::List:
    case Value::Kind::String: {
      if (!key.is_int() && !key.is_bool()) {
        if (key.is_string()) return get_attr(obj, key.as_string());
        return Value::undefined();
      }
      int64_t i = key.as_int();
      if (obj.is_list()) {
        auto& items = obj.list_data().items;
        int64_t n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined(fmt::format("[{}]", key.as_int()));
        return items[static_cast<size_t>(i)];
      }
      auto cps = text::decode(obj.as_string());
      int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined(fmt::format("[{}]", key.as_int()));
      std::string s;
      text::append_utf8(s, cps[static_cast<size_t>(i)]);
      return Value(s);
    }
    case Value::Kind::Dict:
    case Value::Kind::Namespace: {
      if (!key.is_string()) return Value::undefined();
      const Value* f = obj.dict_data().find(key.as_string());
      if (f) return *f;
      if (obj.is_dict()) return get_attr(obj, key.as_string());
      return Value::undefined(key.as_string());
    }
    default: return Value::undefined();
  }
}

void add_globals(DictData& g) {
  g.set("range", Value::callable("range", [](CallArgs& a) {
    if (!a.kw.empty()) fail("range() takes no keyword arguments");
    if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments, got {}", a.pos.size());
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = want_int("range", a.pos[0]);
    } else {
      start = want_int("range", a.pos[0]);
      stop = want_int("range", a.pos[1]);
      if (a.pos.size() == 3) step = want_int("range", a.pos[2]);
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    std::vector<Value> out;
    // Jinja's sandbox caps ranges at 100000 items (MAX_RANGE).
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      if (out.size() >= 100000) fail("range too big: the sandbox allows at most 100000 items");
      out.emplace_back(i);
      if (__builtin_add_overflow(i, step, &i)) break;  // past INT64_MAX/MIN: past stop too
    }
    return Value::list(std::move(out));
  }));
  g.set("dict", Value::callable("dict", [](CallArgs& a) {
    Value d = Value::dict();
    for (auto& p : a.pos) {
      if (!p.is_mapping()) fail("dict() positional argument must be a mapping, not {}", p.type_name());
      for (auto& [k, v] : p.dict_data().items) d.dict_data().set(k, v);
    }
    for (auto& [k, v] : a.kw) d.dict_data().set(k, v);
    return d;
  }));
  g.set("namespace", Value::callable("namespace", [](CallArgs& a) {
    Value ns = Value::namespace_();
    for (auto& p : a.pos) {
      if (!p.is_mapping()) fail("namespace() positional argument must be a mapping, not {}", p.type_name());
      for (auto& [k, v] : p.dict_data().items) ns.dict_data().set(k, v);
    }
    for (auto& [k, v] : a.kw) ns.dict_data().set(k, v);
    return ns;
  }));
  g.set("raise_exception", Value::callable("raise_exception", [](CallArgs& a) -> Value {
    auto v = bind_args("raise_exception", a, {{"message", {}}});
    fail("raise_exception: {}", v[0].str());
  }));
  g.set("strftime_now", Value::callable("strftime_now", [](CallArgs& a) {
    auto v = bind_args("strftime_now", a, {{"format", {}}});
    const std::string& f = want_str("strftime_now", v[0]);
    std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
    if (n == 0 && !f.empty()) fail("strftime_now: format '{}' produced no output or is too long", f);
    return Value(std::string(buf, n));
  }));
}

}  // namespace moeflux::jinja
