// Jinja's builtin filters and tests (jinja2/filters.py, jinja2/tests.py),
// plus transformers' tojson override: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False), so non-ASCII text and
// '<', '>' stay as they are.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "text/chat/jinja_builtins.h"
#include "text/chat/jinja_limits.h"
#include "text/chat/jinja_text.h"

namespace moeflux::jinja {

namespace {

using Args = CallArgs;

std::string s_of(const Value& v) { return v.str(); }

Value f_tojson(const Value& in, Args& a) {
  auto v = bind_args("tojson", a,
                     {{"ensure_ascii", Value(false)}, {"indent", Value::none()}, {"separators", Value::none()},
                      {"sort_keys", Value(false)}});
  JsonDumpOptions o;
  o.ensure_ascii = v[0].truthy();
  if (v[1].is_int()) {
    o.has_indent = true;
    int64_t width = std::max<int64_t>(0, v[1].as_int());
    check_string_size(static_cast<uint64_t>(width));
    o.indent = std::string(static_cast<size_t>(width), ' ');
  } else if (v[1].is_string()) {
    o.has_indent = true;
    o.indent = v[1].as_string();
  } else if (!v[1].is_none()) {
    fail("tojson: indent must be an int or a str, not {}", v[1].type_name());
  }
  if (o.has_indent) o.item_sep = ",";
  if (!v[2].is_none()) {
    if (!v[2].is_list() || v[2].list_data().items.size() != 2 || !v[2].list_data().items[0].is_string() ||
        !v[2].list_data().items[1].is_string())
      fail("tojson: separators must be a pair of strings");
    o.item_sep = v[2].list_data().items[0].as_string();
    o.key_sep = v[2].list_data().items[1].as_string();
  }
  o.sort_keys = v[3].truthy();
  return Value(json_dumps(in, o));
}

Value f_trim(const Value& in, Args& a) {
  auto v = bind_args("trim", a, {{"chars", Value::none()}});
  std::optional<std::string> chars;
  if (v[0].is_string()) chars = v[0].as_string();
  return Value(text::strip(s_of(in), chars, true, true));
}

Value f_length(const Value& in, Args& a) {
  bind_args("length", a, {});
  switch (in.kind()) {
    case Value::Kind::Undefined: return Value(0);
    case Value::Kind::String: return Value(static_cast<int64_t>(text::length(in.as_string())));
    case Value::Kind::List: return Value(static_cast<int64_t>(in.list_data().items.size()));
    case Value::Kind::Dict: return Value(static_cast<int64_t>(in.dict_data().items.size()));
    default: fail("object of type '{}' has no len()", in.type_name());
  }
}

Value f_items(const Value& in, Args& a) {
  bind_args("items", a, {});
  if (in.is_undefined()) return Value::list();
  if (!in.is_mapping()) fail("items filter: can only get item pairs from a mapping, not {}", in.type_name());
  std::vector<Value> out;
  for (auto& [k, v] : in.dict_data().items) out.push_back(Value::list({Value(k), v}, true));
  return Value::list(std::move(out));
}

Value f_first(const Value& in, Args& a) {
  bind_args("first", a, {});
  auto items = in.iterate();
  return items.empty() ? Value::undefined("first item") : items.front();
}

Value f_last(const Value& in, Args& a) {
  bind_args("last", a, {});
  auto items = in.iterate();
  return items.empty() ? Value::undefined("last item") : items.back();
}

// Jinja's attribute paths: "a.b" or "0" (an index).
Value attr_path(const Value& item, const Value& attr) {
  if (attr.is_int()) return get_item(item, attr);
  Value cur = item;
  std::string path = attr.str();
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    int64_t index = 0;
    if (digits) {
      auto r = std::from_chars(part.data(), part.data() + part.size(), index);
      if (r.ec != std::errc()) fail("attribute index {} is out of the 64-bit range", part);
    }
    cur = digits ? get_item(cur, Value(index)) : get_item(cur, Value(part));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

Value f_join(const Value& in, Args& a) {
  auto v = bind_args("join", a, {{"d", Value("")}, {"attribute", Value::none()}});
  std::string sep = s_of(v[0]), out;
  bool first = true;
  for (auto& e : in.iterate()) {
    if (!first) out += sep;
    first = false;
    out += s_of(v[1].is_none() ? e : attr_path(e, v[1]));
    check_growth(out.size());
  }
  return Value(out);
}

Value f_default(const Value& in, Args& a) {
  auto v = bind_args("default", a, {{"default_value", Value("")}, {"boolean", Value(false)}});
  if (in.is_undefined() || (v[1].truthy() && !in.truthy())) return v[0];
  return in;
}

Value f_upper(const Value& in, Args& a) {
  bind_args("upper", a, {});
  return Value(text::upper(s_of(in)));
}
Value f_lower(const Value& in, Args& a) {
  bind_args("lower", a, {});
  return Value(text::lower(s_of(in)));
}
Value f_capitalize(const Value& in, Args& a) {
  bind_args("capitalize", a, {});
  return Value(text::capitalize(s_of(in)));
}
// Jinja's title filter is not str.title(): words start after whitespace or
// one of "-({[<", and each word is first-upper, rest-lower.
Value f_title(const Value& in, Args& a) {
  bind_args("title", a, {});
  std::string out;
  bool start = true;
  for (char32_t c : text::decode(s_of(in))) {
    bool sep = text::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      text::append_utf8(out, c);
      start = true;
      continue;
    }
    std::string one;
    text::append_utf8(one, c);
    out += start ? text::upper(one) : text::lower(one);
    start = false;
  }
  return Value(out);
}

Value f_replace(const Value& in, Args& a) {
  auto v = bind_args("replace", a, {{"old", {}}, {"new", {}}, {"count", Value::none()}});
  int64_t count = v[2].is_none() ? -1 : v[2].as_int();
  return Value(text::replace(s_of(in), s_of(v[0]), s_of(v[1]), count));
}

Value f_string(const Value& in, Args& a) {
  bind_args("string", a, {});
  return Value(s_of(in));
}

Value f_safe(const Value& in, Args& a) {
  bind_args("safe", a, {});
  return in;
}

Value f_escape(const Value& in, Args& a) {
  bind_args("escape", a, {});
  std::string out;
  for (char c : s_of(in)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(out);
}

}  // namespace

std::optional<int64_t> float_to_int(double d) {
  if (!std::isfinite(d)) return std::nullopt;
  d = std::trunc(d);
  // Python's int(1e300) is a big integer; converting it to int64 is UB.
  if (!(d >= -0x1p63 && d < 0x1p63)) fail("int: {} is out of the 64-bit range", float_repr(d));
  return static_cast<int64_t>(d);
}

std::optional<int64_t> parse_int(const Value& v, int base) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) return float_to_int(v.as_double());
  if (!v.is_string()) return std::nullopt;
  std::string s = text::strip(v.as_string(), std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long r = std::strtoll(s.c_str(), &end, base);
  if (errno == 0 && end && *end == '\0') return r;
  // Jinja's int filter falls back to int(float(s)).
  double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(d)) return float_to_int(d);
  return std::nullopt;
}

namespace {

Value f_int(const Value& in, Args& a) {
  auto v = bind_args("int", a, {{"default", Value(0)}, {"base", Value(10)}});
  if (in.is_undefined()) fail("'{}' is undefined", in.undefined_name());
  auto r = parse_int(in, static_cast<int>(v[1].as_int()));
  return r ? Value(*r) : v[0];
}

Value f_float(const Value& in, Args& a) {
  auto v = bind_args("float", a, {{"default", Value(0.0)}});
  if (in.is_undefined()) fail("'{}' is undefined", in.undefined_name());
  if (in.is_number()) return Value(in.as_double());
  if (in.is_string()) {
    std::string s = text::strip(in.as_string(), std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value(d);
  }
  return v[0];
}

Value f_list(const Value& in, Args& a) {
  bind_args("list", a, {});
  return Value::list(in.iterate());
}

Value f_map(const Value& in, Args& a) {
  std::vector<Value> out;
  if (!in.truthy()) return Value::list();  // Jinja: `if seq:` before iterating
  bool by_attr = false;
  Value attr, dflt = Value::undefined();
  for (auto& [k, v] : a.kw) {
    if (k == "attribute") {
      by_attr = true;
      attr = v;
    } else if (k == "default") {
      dflt = v;
    }
  }
  if (by_attr) {
    for (auto& e : in.iterate()) {
      Value r = attr_path(e, attr);
      out.push_back(r.is_undefined() && !dflt.is_undefined() ? dflt : r);
    }
    return Value::list(std::move(out));
  }
  if (a.pos.empty()) fail("map: expected a filter name or attribute=");
  std::string name = a.pos[0].str();
  FilterFn f = find_filter(name);
  if (!f) fail("map: unsupported filter '{}'", name);
  Args rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (auto& e : in.iterate()) {
    Args copy = rest;
    out.push_back(f(e, copy));
  }
  return Value::list(std::move(out));
}

// select/reject/selectattr/rejectattr share: an optional attribute, an
// optional test name (truthiness without one) and the test's arguments.
Value select_impl(const Value& in, Args& a, bool by_attr, bool keep_if, const char* fn) {
  if (!in.truthy()) return Value::list();  // Jinja: `if seq:` before iterating
  size_t i = 0;
  Value attr;
  if (by_attr) {
    if (a.pos.empty()) fail("{}: missing attribute name", fn);
    attr = a.pos[i++];
  }
  TestFn test = nullptr;
  if (i < a.pos.size()) {
    std::string name = a.pos[i++].str();
    test = find_test(name);
    if (!test) fail("{}: unsupported test '{}'", fn, name);
  }
  Args rest;
  rest.pos.assign(a.pos.begin() + static_cast<long>(i), a.pos.end());
  rest.kw = a.kw;
  std::vector<Value> out;
  for (auto& e : in.iterate()) {
    Value x = by_attr ? attr_path(e, attr) : e;
    Args copy = rest;
    bool ok = test ? test(x, copy) : x.truthy();
    if (ok == keep_if) out.push_back(e);
  }
  return Value::list(std::move(out));
}

Value f_select(const Value& in, Args& a) { return select_impl(in, a, false, true, "select"); }
Value f_reject(const Value& in, Args& a) { return select_impl(in, a, false, false, "reject"); }
Value f_selectattr(const Value& in, Args& a) { return select_impl(in, a, true, true, "selectattr"); }
Value f_rejectattr(const Value& in, Args& a) { return select_impl(in, a, true, false, "rejectattr"); }

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(text::lower(v.as_string()));
  return v;
}

Value f_unique(const Value& in, Args& a) {
  auto v = bind_args("unique", a, {{"case_sensitive", Value(false)}, {"attribute", Value::none()}});
  std::vector<Value> out, seen;
  for (auto& e : in.iterate()) {
    Value key = sort_key(v[1].is_none() ? e : attr_path(e, v[1]), v[0].truthy());
    charge_steps(seen.size());  // the search is linear: quadratic overall
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    out.push_back(e);
  }
  return Value::list(std::move(out));
}

Value f_sort(const Value& in, Args& a) {
  auto v = bind_args("sort", a, {{"reverse", Value(false)}, {"case_sensitive", Value(false)}, {"attribute", Value::none()}});
  std::vector<Value> items = in.iterate();
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& e : items) keyed.emplace_back(sort_key(v[2].is_none() ? e : attr_path(e, v[2]), v[1].truthy()), e);
  bool rev = v[0].truthy();
  std::stable_sort(keyed.begin(), keyed.end(), [rev](auto& x, auto& y) {
    return rev ? y.first.compare(x.first) < 0 : x.first.compare(y.first) < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(kv.second);
  return Value::list(std::move(out));
}

Value f_dictsort(const Value& in, Args& a) {
  auto v = bind_args("dictsort", a, {{"case_sensitive", Value(false)}, {"by", Value("key")}, {"reverse", Value(false)}});
  if (!in.is_mapping()) fail("dictsort: expected a mapping, not {}", in.type_name());
  bool by_value = v[1].str() == "value";
  if (!by_value && v[1].str() != "key") fail("dictsort: 'by' must be 'key' or 'value'");
  std::vector<Value> pairs;
  for (auto& [k, x] : in.dict_data().items) pairs.push_back(Value::list({Value(k), x}, true));
  bool cs = v[0].truthy(), rev = v[2].truthy();
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& p, const Value& q) {
    Value kp = sort_key(p.list_data().items[by_value ? 1 : 0], cs);
    Value kq = sort_key(q.list_data().items[by_value ? 1 : 0], cs);
    return rev ? kq.compare(kp) < 0 : kp.compare(kq) < 0;
  });
  return Value::list(std::move(pairs));
}

Value f_reverse(const Value& in, Args& a) {
  bind_args("reverse", a, {});
  if (in.is_string()) {
    auto cps = text::decode(in.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(text::encode(cps));
  }
  auto items = in.iterate();
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_indent(const Value& in, Args& a) {
  auto v = bind_args("indent", a, {{"width", Value(4)}, {"first", Value(false)}, {"blank", Value(false)}});
  if (!in.is_string()) fail("indent: expected a string, not {}", in.type_name());
  std::string ind;
  if (v[0].is_string()) {
    ind = v[0].as_string();
  } else {
    int64_t width = std::max<int64_t>(0, v[0].as_int());
    check_string_size(static_cast<uint64_t>(width));
    ind = std::string(static_cast<size_t>(width), ' ');
  }
  // Jinja appends a newline before splitlines() so a trailing newline survives.
  CallArgs none;
  Value lines_v = get_attr(Value(s_of(in) + "\n"), "splitlines").callable_data().fn(none);
  auto& lines = lines_v.list_data().items;
  std::string rv;
  if (v[2].truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) {
      rv += (i ? "\n" + ind : "") + lines[i].as_string();
      check_growth(rv.size());
    }
  } else {
    rv = lines.empty() ? "" : lines[0].as_string();
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].as_string().empty()) rv += ind;
      rv += lines[i].as_string();
      check_growth(rv.size());
    }
  }
  if (v[1].truthy()) rv = ind + rv;
  return Value(rv);
}

Value f_wordcount(const Value& in, Args& a) {
  bind_args("wordcount", a, {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : text::decode(s_of(in))) {
    bool w = c == '_' || text::is_alnum(c);  // Python's regex \w+
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

Value f_abs(const Value& in, Args& a) {
  bind_args("abs", a, {});
  if (in.is_float()) return Value(std::fabs(in.as_double()));
  if (in.is_number()) {
    if (in.as_int() == INT64_MIN) fail("integer overflow: abs({}) is out of the 64-bit range", in.as_int());
    return Value(static_cast<int64_t>(std::llabs(in.as_int())));
  }
  fail("bad operand type for abs(): '{}'", in.type_name());
}

Value f_round(const Value& in, Args& a) {
  auto v = bind_args("round", a, {{"precision", Value(0)}, {"method", Value("common")}});
  if (!in.is_number()) fail("round: expected a number, not {}", in.type_name());
  int64_t p = v[0].as_int();
  std::string m = v[1].str();
  if (m == "common") {
    if (!in.is_float()) return Value(in.as_int());
    // Python's round() is correctly rounded half-to-even on the exact binary
    // value; printf's %.*f rounds the same way.
    // Past 1100 decimals no double changes (the smallest has 1074).
    int64_t digits = std::clamp<int64_t>(p, 0, 1100);
    return Value(std::strtod(fmt::format("{:.{}f}", in.as_double(), digits).c_str(), nullptr));
  }
  if (m != "floor" && m != "ceil") fail("round: method must be 'common', 'ceil' or 'floor'");
  double scale = std::pow(10.0, static_cast<double>(p));
  double x = in.as_double() * scale;
  return Value((m == "floor" ? std::floor(x) : std::ceil(x)) / scale);
}

Value f_batch(const Value& in, Args& a) {
  auto v = bind_args("batch", a, {{"linecount", {}}, {"fill_with", Value::none()}});
  int64_t n = v[0].as_int();
  if (n <= 0) fail("batch: linecount must be positive");
  std::vector<Value> out, cur;
  for (auto& e : in.iterate()) {
    cur.push_back(e);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    check_items(static_cast<uint64_t>(n));
    if (!v[1].is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(v[1]);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Value f_sum(const Value& in, Args& a) {
  auto v = bind_args("sum", a, {{"attribute", Value::none()}, {"start", Value(0)}});
  Value acc = v[1];
  for (auto& e : in.iterate()) {
    Value x = v[0].is_none() ? e : attr_path(e, v[0]);
    if (!x.is_number() || !acc.is_number()) fail("sum: unsupported operand types {} and {}", acc.type_name(), x.type_name());
    if (acc.is_float() || x.is_float()) {
      acc = Value(acc.as_double() + x.as_double());
    } else {
      int64_t r;
      if (__builtin_add_overflow(acc.as_int(), x.as_int(), &r))
        fail("integer overflow: sum {} + {} is out of the 64-bit range", acc.as_int(), x.as_int());
      acc = Value(r);
    }
  }
  return acc;
}

Value minmax(const Value& in, Args& a, bool want_max) {
  auto v = bind_args(want_max ? "max" : "min", a, {{"case_sensitive", Value(false)}, {"attribute", Value::none()}});
  auto items = in.iterate();
  if (items.empty()) return Value::undefined(want_max ? "max of empty sequence" : "min of empty sequence");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    Value ki = sort_key(v[1].is_none() ? items[i] : attr_path(items[i], v[1]), v[0].truthy());
    Value kb = sort_key(v[1].is_none() ? items[best] : attr_path(items[best], v[1]), v[0].truthy());
    int c = ki.compare(kb);
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Value f_max(const Value& in, Args& a) { return minmax(in, a, true); }
Value f_min(const Value& in, Args& a) { return minmax(in, a, false); }

Value f_attr(const Value& in, Args& a) {
  auto v = bind_args("attr", a, {{"name", {}}});
  return get_attr(in, v[0].str());
}

}  // namespace

std::string percent_format(const std::string& f, const Value& args) {
  // Python: a tuple spreads; anything else is one argument, except that a
  // mapping-like value (dict, list) is accepted and ignored when the format
  // has no conversions.
  std::vector<Value> items;
  bool spread = args.is_list() && args.list_data().tuple;
  if (spread)
    items = args.list_data().items;
  else
    items.push_back(args);
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out += f[i];
      continue;
    }
    if (++i >= f.size()) fail("incomplete format");
    char c = f[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (k >= items.size()) fail("not enough arguments for format string");
    const Value& x = items[k++];
    if (x.is_undefined()) fail("'{}' is undefined", x.undefined_name());
    check_growth(out.size());
    if (c == 's') out += x.str();
    else if (c == 'r') out += x.repr();
    else if (c == 'd' || c == 'i') out += std::to_string(parse_int(x, 10).value_or(0));
    else if (c == 'f') out += fmt::format("{:.6f}", x.as_double());
    else fail("unsupported format conversion '%{}'", c);
  }
  bool mapping_like = !spread && (args.is_mapping() || args.is_list() || args.is_undefined());
  if (k < items.size() && !(k == 0 && mapping_like)) fail("not all arguments converted during string formatting");
  return out;
}

namespace {

// `"%s, %s" | format(a, b)`: Python's str % (a, b); %s, %r, %d, %i, %f, %%.
Value f_format(const Value& in, Args& a) {
  if (!a.kw.empty()) fail("format: keyword arguments are not supported");
  return Value(percent_format(s_of(in), Value::list(a.pos, true)));
}

// ---- tests ----

bool t_defined(const Value& v, Args& a) { bind_args("defined", a, {}); return !v.is_undefined(); }
bool t_undefined(const Value& v, Args& a) { bind_args("undefined", a, {}); return v.is_undefined(); }
bool t_none(const Value& v, Args& a) { bind_args("none", a, {}); return v.is_none(); }
bool t_string(const Value& v, Args& a) { bind_args("string", a, {}); return v.is_string(); }
bool t_mapping(const Value& v, Args& a) { bind_args("mapping", a, {}); return v.is_dict(); }
bool t_iterable(const Value& v, Args& a) {
  bind_args("iterable", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_sequence(const Value& v, Args& a) {
  bind_args("sequence", a, {});
  // Jinja's Undefined has __len__ and __getitem__, so it counts.
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_number(const Value& v, Args& a) { bind_args("number", a, {}); return v.is_number(); }
bool t_integer(const Value& v, Args& a) { bind_args("integer", a, {}); return v.is_int(); }
bool t_float(const Value& v, Args& a) { bind_args("float", a, {}); return v.is_float(); }
bool t_boolean(const Value& v, Args& a) { bind_args("boolean", a, {}); return v.is_bool(); }
bool t_true(const Value& v, Args& a) { bind_args("true", a, {}); return v.is_bool() && v.as_bool(); }
bool t_false(const Value& v, Args& a) { bind_args("false", a, {}); return v.is_bool() && !v.as_bool(); }
bool t_callable(const Value& v, Args& a) { bind_args("callable", a, {}); return v.is_callable(); }
bool t_eq(const Value& v, Args& a) { return v == bind_args("eq", a, {{"other", {}}})[0]; }
bool t_ne(const Value& v, Args& a) { return !(v == bind_args("ne", a, {{"other", {}}})[0]); }
bool t_lt(const Value& v, Args& a) { return v.compare(bind_args("lt", a, {{"other", {}}})[0]) < 0; }
bool t_le(const Value& v, Args& a) { return v.compare(bind_args("le", a, {{"other", {}}})[0]) <= 0; }
bool t_gt(const Value& v, Args& a) { return v.compare(bind_args("gt", a, {{"other", {}}})[0]) > 0; }
bool t_ge(const Value& v, Args& a) { return v.compare(bind_args("ge", a, {{"other", {}}})[0]) >= 0; }
bool t_in(const Value& v, Args& a) { return bind_args("in", a, {{"seq", {}}})[0].contains(v); }
bool t_sameas(const Value& v, Args& a) { return v.same(bind_args("sameas", a, {{"other", {}}})[0]); }
// Python's value % num for ints and floats.
double py_mod(const Value& v, const Value& num) {
  double a = v.as_double(), b = num.as_double();
  if (b == 0) fail("division by zero");
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}
bool t_divisibleby(const Value& v, Args& a) { return py_mod(v, bind_args("divisibleby", a, {{"num", {}}})[0]) == 0; }
bool t_odd(const Value& v, Args& a) { bind_args("odd", a, {}); return py_mod(v, Value(2)) == 1; }
bool t_even(const Value& v, Args& a) { bind_args("even", a, {}); return py_mod(v, Value(2)) == 0; }
// str(value).islower() / .isupper(): some cased character, none of the
// other case.
bool case_test(const Value& v, bool want_lower) {
  bool any_upper = false, any_lower = false;
  for (char32_t c : text::decode(v.str())) {
    any_upper = any_upper || text::is_upper(c);
    any_lower = any_lower || text::is_lower(c);
  }
  return want_lower ? any_lower && !any_upper : any_upper && !any_lower;
}
bool t_lower(const Value& v, Args& a) { bind_args("lower", a, {}); return case_test(v, true); }
bool t_upper(const Value& v, Args& a) { bind_args("upper", a, {}); return case_test(v, false); }
bool t_escaped(const Value& v, Args& a) { bind_args("escaped", a, {}); return false; }

}  // namespace

FilterFn find_filter(std::string_view name) {
  static const std::map<std::string_view, FilterFn> filters = {
      {"tojson", f_tojson},       {"trim", f_trim},           {"length", f_length},   {"count", f_length},
      {"items", f_items},         {"first", f_first},         {"last", f_last},       {"join", f_join},
      {"default", f_default},     {"d", f_default},           {"upper", f_upper},     {"lower", f_lower},
      {"capitalize", f_capitalize}, {"title", f_title},       {"replace", f_replace}, {"string", f_string},
      {"int", f_int},             {"float", f_float},         {"list", f_list},       {"map", f_map},
      {"select", f_select},       {"reject", f_reject},       {"selectattr", f_selectattr},
      {"rejectattr", f_rejectattr}, {"unique", f_unique},     {"sort", f_sort},       {"dictsort", f_dictsort},
      {"reverse", f_reverse},     {"safe", f_safe},           {"escape", f_escape},   {"e", f_escape},
      {"indent", f_indent},       {"wordcount", f_wordcount}, {"abs", f_abs},         {"round", f_round},
      {"batch", f_batch},         {"sum", f_sum},             {"max", f_max},         {"min", f_min},
      {"attr", f_attr},           {"format", f_format},
  };
  auto it = filters.find(name);
  return it == filters.end() ? nullptr : it->second;
}

TestFn find_test(std::string_view name) {
  static const std::map<std::string_view, TestFn> tests = {
      {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},         {"string", t_string},
      {"mapping", t_mapping},   {"iterable", t_iterable},   {"sequence", t_sequence}, {"number", t_number},
      {"integer", t_integer},   {"float", t_float},         {"boolean", t_boolean},   {"true", t_true},
      {"false", t_false},       {"callable", t_callable},   {"equalto", t_eq},        {"eq", t_eq},
      {"==", t_eq},             {"ne", t_ne},               {"!=", t_ne},             {"lt", t_lt},
      {"lessthan", t_lt},       {"<", t_lt},                {"le", t_le},             {"<=", t_le},
      {"gt", t_gt},             {"greaterthan", t_gt},      {">", t_gt},              {"ge", t_ge},
      {">=", t_ge},             {"in", t_in},               {"sameas", t_sameas},     {"divisibleby", t_divisibleby},
      {"odd", t_odd},           {"even", t_even},           {"lower", t_lower},       {"upper", t_upper},
      {"escaped", t_escaped},
  };
  auto it = tests.find(name);
  return it == tests.end() ? nullptr : it->second;
}

}  // namespace moeflux::jinja
