#include "text/chat/jinja_template.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "text/chat/jinja_builtins.h"
#include "text/chat/jinja_limits.h"
#include "text/chat/jinja_parser.h"
#include "text/chat/jinja_text.h"

namespace moeflux::jinja {

namespace {

// An error that already carries its template position; outer nodes pass it
// through instead of prefixing their own.
struct LocatedError : Error {
  using Error::Error;
};

struct Scope {
  DictData vars;
  std::shared_ptr<Scope> parent;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get())
      if (const Value* v = s->vars.find(name)) return v;
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { Normal, Break, Continue };

[[noreturn]] void undefined_error(const Value& v) {
  fail("'{}' is undefined", v.undefined_name().empty() ? std::string("value") : v.undefined_name());
}

[[noreturn]] void int_overflow(const char* op, int64_t a, int64_t b) {
  // Python's ints are unbounded; moeflux's are 64-bit, and a wrapped result
  // would silently differ from what transformers renders.
  fail("integer overflow: {} {} {} is out of the 64-bit range", a, op, b);
}

// Python's int ** int for b >= 0, by squaring: at most 63 squarings, so a
// huge exponent costs nothing before it overflows (0, 1 and -1 never do).
int64_t int_pow(int64_t a, int64_t b) {
  int64_t result = 1, base = a;
  for (int64_t e = b; e > 0; e >>= 1) {
    if ((e & 1) && __builtin_mul_overflow(result, base, &result)) int_overflow("**", a, b);
    if (e > 1 && __builtin_mul_overflow(base, base, &base)) int_overflow("**", a, b);
  }
  return result;
}

Value int_arith(const std::string& op, int64_t a, int64_t b) {
  int64_t r;
  if (op == "+") {
    if (__builtin_add_overflow(a, b, &r)) int_overflow("+", a, b);
    return Value(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(a, b, &r)) int_overflow("-", a, b);
    return Value(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(a, b, &r)) int_overflow("*", a, b);
    return Value(r);
  }
  if (op == "**") {
    if (b < 0) return Value(std::pow(static_cast<double>(a), static_cast<double>(b)));
    return Value(int_pow(a, b));
  }
  if (b == 0) fail("integer division or modulo by zero");
  // INT64_MIN // -1 traps (SIGFPE) in hardware; INT64_MIN % -1 is 0.
  if (a == INT64_MIN && b == -1) {
    if (op == "//") int_overflow("//", a, b);
    return Value(int64_t{0});
  }
  int64_t q = a / b, m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) {
    --q;
    m += b;
  }
  return Value(op == "//" ? q : m);
}

// `s * n` and `list * n`: the size is checked before anything is allocated.
Value repeat(const Value& seq, int64_t n) {
  n = std::max<int64_t>(0, n);
  auto count = static_cast<uint64_t>(n);
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && count > active_limits().max_string_bytes / s.size()) check_string_size(SIZE_MAX);
    std::string out;
    out.reserve(s.size() * count);
    for (uint64_t i = 0; i < count; ++i) out += s;
    return Value(std::move(out));
  }
  auto& src = seq.list_data().items;
  if (!src.empty() && count > active_limits().max_items / src.size()) check_items(SIZE_MAX);
  std::vector<Value> items;
  items.reserve(src.size() * count);
  for (uint64_t i = 0; i < count; ++i) items.insert(items.end(), src.begin(), src.end());
  return Value::list(std::move(items), seq.list_data().tuple);
}

Value arith(const std::string& op, const Value& l, const Value& r) {
  if (op == "~") {  // undefined prints as ""
    std::string a = l.str(), b = r.str();
    check_string_size(a.size() + b.size());
    return Value(a + b);
  }
  if (op == "%" && l.is_string()) return Value(percent_format(l.as_string(), r));
  if (l.is_undefined()) undefined_error(l);
  if (r.is_undefined()) undefined_error(r);
  if (l.is_number() && r.is_number()) {
    bool fl = l.is_float() || r.is_float();
    if (op == "/") {
      if (r.as_double() == 0) fail("division by zero");
      return Value(l.as_double() / r.as_double());
    }
    if (!fl) return int_arith(op, l.as_int(), r.as_int());
    double a = l.as_double(), b = r.as_double();
    if (op == "+") return Value(a + b);
    if (op == "-") return Value(a - b);
    if (op == "*") return Value(a * b);
    if (op == "**") {
      if (a < 0 && b != std::floor(b)) fail("negative number raised to a fractional power is complex");
      if (a == 0 && b < 0) fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(a, b));
    }
    if (b == 0) fail("float division by zero");
    if (op == "//") return Value(std::floor(a / b));
    double m = std::fmod(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return Value(m);
  }
  if (op == "+" && l.is_string() && r.is_string()) {
    check_string_size(l.as_string().size() + r.as_string().size());
    return Value(l.as_string() + r.as_string());
  }
  if (op == "+" && l.is_list() && r.is_list() && l.list_data().tuple == r.list_data().tuple) {
    check_items(l.list_data().items.size() + r.list_data().items.size());
    auto items = l.list_data().items;
    items.insert(items.end(), r.list_data().items.begin(), r.list_data().items.end());
    return Value::list(std::move(items), l.list_data().tuple);
  }
  if (op == "*" && (r.is_string() || r.is_list()) && (l.is_int() || l.is_bool())) return repeat(r, l.as_int());
  if (op == "*" && (l.is_string() || l.is_list()) && (r.is_int() || r.is_bool())) return repeat(l, r.as_int());
  fail("unsupported operand type(s) for {}: '{}' and '{}'", op, l.type_name(), r.type_name());
}

// The work a value stands for when an expression yields it (see
// Limits::max_steps). A computed string or list cost in proportion to its
// size. A looked-up one (a name, attribute or item) was only copied: lists
// and dicts are shared, so that is free, and a string copy is a memcpy,
// charged 32 times less so that templates reading a long message in a loop
// over many messages stay far from the budget.
uint64_t weight(const Value& v, Expr::K k) {
  bool lookup = k == Expr::K::Name || k == Expr::K::Attr || k == Expr::K::Item || k == Expr::K::Const;
  switch (v.kind()) {
    case Value::Kind::String: return bytes_cost(v.as_string().size()) / (lookup ? 32 : 1);
    case Value::Kind::List: return lookup ? 0 : v.list_data().items.size();
    case Value::Kind::Dict: return lookup ? 0 : v.dict_data().items.size();
    default: return 0;
  }
}

// Steps one loop iteration is charged besides its body: building the loop
// object takes about as long as 10-20 expression nodes.
constexpr uint64_t kLoopIterationSteps = 16;

class Renderer {
 public:
  Renderer(const SourceMap& map, const Limits& limits) : map_(map), limits_(limits) {}
  ~Renderer() {
    // Macros hold their defining scope, which holds them: break the cycles.
    for (auto& s : macro_scopes_) s->vars.items.clear();
    // A namespace can be made to hold itself (`set ns.me = ns`); every such
    // cycle goes through an attribute assignment, so clearing the assigned
    // namespaces frees them.
    for (auto& ns : assigned_namespaces_) ns.dict_data().items.clear();
  }

  Flow exec(const Body& body, std::string& out, const ScopePtr& scope) {
    for (const Node& n : body) {
      Flow f = exec_node(n, out, scope);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  template <typename F>
  auto at(size_t pos, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const LocatedError&) {
      throw;
    } catch (const std::exception& e) {
      throw LocatedError(fmt::format("{}: {}", map_.where(pos), e.what()));
    }
  }

  // Every statement and expression node: one step of the budget, and a
  // check that the stack has room for one more level.
  void tick(size_t pos, uint64_t steps = 1) {
    at(pos, [&] {
      charge_steps(steps);
      check_stack();
      return 0;
    });
  }

  void append(std::string& out, const std::string& s, size_t pos) {
    if (out.size() + s.size() > limits_.max_output_bytes) at(pos, [&] {
        check_output_size(out.size() + s.size());
        return 0;
      });
    out += s;
  }

  Flow exec_node(const Node& n, std::string& out, const ScopePtr& scope) {
    tick(n.pos);
    switch (n.k) {
      case Node::K::Text: append(out, n.text, n.pos); return Flow::Normal;
      case Node::K::Print: {
        Value v = eval(*n.expr, *scope);
        std::string s = at(n.pos, [&] { return v.str(); });
        tick(n.pos, bytes_cost(s.size()));
        append(out, s, n.pos);
        return Flow::Normal;
      }
      case Node::K::If:
        for (auto& [cond, body] : n.branches)
          if (eval(*cond, *scope).truthy()) return exec(body, out, scope);
        return exec(n.else_body, out, scope);
      case Node::K::For: return exec_for(n, out, scope);
      case Node::K::Set: {
        Value v = eval(*n.expr, *scope);
        at(n.pos, [&] {
          if (!n.attr.empty()) {
            const Value* ns = scope->lookup(n.targets[0]);
            if (!ns || !ns->is_namespace())
              fail("cannot assign attribute '{}' on '{}': not a namespace object", n.attr, n.targets[0]);
            ns->dict_data().set(n.attr, v);
            if ((v.is_mapping() || v.is_list() || v.is_callable()) &&
                (assigned_namespaces_.empty() || !assigned_namespaces_.back().same(*ns)))
              assigned_namespaces_.push_back(*ns);
          } else {
            assign(n.targets, v, *scope);
          }
          return 0;
        });
        return Flow::Normal;
      }
      case Node::K::SetBlock: {
        std::string captured;
        exec(n.body, captured, scope);
        Value v(captured);
        for (auto& f : n.filters) {
          CallArgs args = eval_args(*f, *scope);
          v = at(f->pos, [&] { return f->filter(v, args); });
        }
        scope->vars.set(n.targets[0], v);
        return Flow::Normal;
      }
      case Node::K::Macro: {
        scope->vars.set(n.macro->name, make_macro(n.macro, scope));
        macro_scopes_.push_back(scope);
        return Flow::Normal;
      }
      case Node::K::Break: return Flow::Break;
      case Node::K::Continue: return Flow::Continue;
      case Node::K::Scope: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (auto& [name, e] : n.assigns) inner->vars.set(name, eval(*e, *scope));
        return exec(n.body, out, inner);
      }
    }
    return Flow::Normal;
  }

  static void assign(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars.set(targets[0], v);
      return;
    }
    std::vector<Value> items = v.iterate();
    if (items.size() != targets.size())
      fail("cannot unpack {} values into {} names", items.size(), targets.size());
    for (size_t i = 0; i < targets.size(); ++i) scope.vars.set(targets[i], items[i]);
  }

  Flow exec_for(const Node& n, std::string& out, const ScopePtr& scope) {
    Value seq = eval(*n.expr, *scope);
    std::vector<Value> items = at(n.expr->pos, [&] { return seq.iterate(); });
    if (n.cond) {
      // Jinja filters before looping: loop.length and loop.last count only
      // the items that pass.
      std::vector<Value> kept;
      for (auto& item : items) {
        tick(n.pos, kLoopIterationSteps);
        auto s = std::make_shared<Scope>();
        s->parent = scope;
        at(n.pos, [&] { assign(n.targets, item, *s); return 0; });
        if (eval(*n.cond, *s).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(n.else_body, out, scope);
    int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      tick(n.pos, kLoopIterationSteps);
      auto s = std::make_shared<Scope>();
      s->parent = scope;
      at(n.pos, [&] { assign(n.targets, items[static_cast<size_t>(i)], *s); return 0; });
      Value loop = Value::dict();
      DictData& d = loop.dict_data();
      d.items.reserve(12);
      d.items.emplace_back("index", Value(i + 1));
      d.items.emplace_back("index0", Value(i));
      d.items.emplace_back("revindex", Value(len - i));
      d.items.emplace_back("revindex0", Value(len - i - 1));
      d.items.emplace_back("first", Value(i == 0));
      d.items.emplace_back("last", Value(i == len - 1));
      d.items.emplace_back("length", Value(len));
      d.items.emplace_back("depth", Value(1));
      d.items.emplace_back("depth0", Value(0));
      d.items.emplace_back("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("loop.previtem"));
      d.items.emplace_back("nextitem",
                           i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value::undefined("loop.nextitem"));
      d.items.emplace_back("cycle", Value::callable("loop.cycle", [i](CallArgs& a) {
        if (a.pos.empty()) fail("loop.cycle() needs at least one argument");
        return a.pos[static_cast<size_t>(i) % a.pos.size()];
      }));
      s->vars.set("loop", loop);
      if (exec(n.body, out, s) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value make_macro(const std::shared_ptr<MacroDef>& def, const ScopePtr& scope) {
    return Value::callable(def->name, [this, def, scope](CallArgs& a) {
      // Errors here get the call site's position from eval's Call case.
      DepthGuard depth(call_depth_, limits_.max_call_depth, "nested macro calls (max_call_depth)");
      auto s = std::make_shared<Scope>();
      s->parent = scope;
      if (a.pos.size() > def->params.size())
        fail("macro '{}' takes not more than {} argument(s)", def->name, def->params.size());
      std::vector<bool> bound(def->params.size(), false);
      for (size_t i = 0; i < a.pos.size(); ++i) {
        s->vars.set(def->params[i].first, a.pos[i]);
        bound[i] = true;
      }
      for (auto& [k, v] : a.kw) {
        size_t idx = 0;
        while (idx < def->params.size() && def->params[idx].first != k) ++idx;
        if (idx == def->params.size()) fail("macro '{}' takes no keyword argument '{}'", def->name, k);
        s->vars.set(k, v);
        bound[idx] = true;
      }
      for (size_t i = 0; i < def->params.size(); ++i) {
        if (bound[i]) continue;
        auto& [name, dflt] = def->params[i];
        s->vars.set(name, dflt ? eval(*dflt, *s) : Value::undefined(name));
      }
      std::string out;
      exec(def->body, out, s);
      return Value(out);
    });
  }

  CallArgs eval_args(const Expr& e, Scope& scope) {
    CallArgs args;
    for (auto& x : e.args) args.pos.push_back(eval(*x, scope));
    for (auto& [k, x] : e.kwargs) args.kw.emplace_back(k, eval(*x, scope));
    return args;
  }

  std::optional<int64_t> slice_bound(const Expr* e, Scope& scope) {
    if (!e) return std::nullopt;
    Value v = eval(*e, scope);
    if (v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) fail("slice indices must be integers or None, not {}", v.type_name());
    return v.as_int();
  }

  Value eval(const Expr& e, Scope& scope) {
    tick(e.pos);
    Value v = eval_node(e, scope);
    if (uint64_t w = weight(v, e.k)) {
      tick(e.pos, w);
      // Builtins check sizes as they build; this catches any that do not.
      at(e.pos, [&] {
        if (v.is_string()) check_string_size(v.as_string().size());
        if (v.is_list()) check_items(v.list_data().items.size());
        return 0;
      });
    }
    return v;
  }

  Value eval_node(const Expr& e, Scope& scope) {
    switch (e.k) {
      case Expr::K::Const: return e.value;
      case Expr::K::Name: {
        const Value* v = scope.lookup(e.name);
        return v ? *v : Value::undefined(e.name);
      }
      case Expr::K::List:
      case Expr::K::Tuple: {
        std::vector<Value> items;
        for (auto& x : e.args) items.push_back(eval(*x, scope));
        return Value::list(std::move(items), e.k == Expr::K::Tuple);
      }
      case Expr::K::Dict: {
        Value d = Value::dict();
        for (auto& [k, v] : e.dict_items) {
          Value key = eval(*k, scope);
          if (!key.is_string()) throw LocatedError(fmt::format("{}: unsupported non-string dict key {}", map_.where(k->pos), key.repr()));
          d.dict_data().set(key.as_string(), eval(*v, scope));
        }
        return d;
      }
      case Expr::K::Attr: {
        Value obj = eval(*e.a, scope);
        return at(e.pos, [&] { return get_attr(obj, e.name); });
      }
      case Expr::K::Item: {
        Value obj = eval(*e.a, scope);
        Value key = eval(*e.b, scope);
        return at(e.pos, [&] { return get_item(obj, key); });
      }
      case Expr::K::Slice: {
        Value obj = eval(*e.a, scope);
        return at(e.pos, [&] {
          auto start = slice_bound(e.b.get(), scope);
          auto stop = slice_bound(e.c.get(), scope);
          auto step = slice_bound(e.args[0].get(), scope);
          if (obj.is_undefined()) undefined_error(obj);
          if (obj.is_string()) {
            auto cps = text::decode(obj.as_string());
            std::string s;
            for (int64_t i : text::slice_indices(static_cast<int64_t>(cps.size()), start, stop, step))
              text::append_utf8(s, cps[static_cast<size_t>(i)]);
            return Value(s);
          }
          if (!obj.is_list()) fail("'{}' object is not subscriptable", obj.type_name());
          auto& items = obj.list_data().items;
          std::vector<Value> out;
          for (int64_t i : text::slice_indices(static_cast<int64_t>(items.size()), start, stop, step))
            out.push_back(items[static_cast<size_t>(i)]);
          return Value::list(std::move(out), obj.list_data().tuple);
        });
      }
      case Expr::K::Call: {
        Value callee = eval(*e.a, scope);
        CallArgs args = eval_args(e, scope);
        return at(e.pos, [&] {
          if (callee.is_undefined()) {
            const std::string& n = callee.undefined_name();
            fail("'{}' is undefined (not a supported function or method)", n.empty() ? "value" : n);
          }
          if (!callee.is_callable()) fail("'{}' object is not callable", callee.type_name());
          return callee.callable_data().fn(args);
        });
      }
      case Expr::K::Filter: {
        Value in = eval(*e.a, scope);
        CallArgs args = eval_args(e, scope);
        return at(e.pos, [&] { return e.filter(in, args); });
      }
      case Expr::K::Test: {
        Value in = eval(*e.a, scope);
        CallArgs args = eval_args(e, scope);
        return at(e.pos, [&] { return Value(e.test(in, args)); });
      }
      case Expr::K::Neg:
      case Expr::K::Pos: {
        Value v = eval(*e.a, scope);
        return at(e.pos, [&] {
          if (v.is_undefined()) undefined_error(v);
          if (!v.is_number()) fail("bad operand type for unary {}: '{}'", e.k == Expr::K::Neg ? '-' : '+', v.type_name());
          if (e.k == Expr::K::Pos) return v.is_bool() ? Value(v.as_int()) : v;
          if (v.is_float()) return Value(-v.as_double());
          if (v.as_int() == INT64_MIN) fail("integer overflow: -({}) is out of the 64-bit range", v.as_int());
          return Value(-v.as_int());
        });
      }
      case Expr::K::Not: return Value(!eval(*e.a, scope).truthy());
      case Expr::K::And: {
        Value l = eval(*e.a, scope);
        return l.truthy() ? eval(*e.b, scope) : l;
      }
      case Expr::K::Or: {
        Value l = eval(*e.a, scope);
        return l.truthy() ? l : eval(*e.b, scope);
      }
      case Expr::K::Binary: {
        Value l = eval(*e.a, scope);
        Value r = eval(*e.b, scope);
        return at(e.pos, [&] { return arith(e.name, l, r); });
      }
      case Expr::K::Compare: {
        Value l = eval(*e.a, scope);
        for (size_t i = 0; i < e.args.size(); ++i) {
          Value r = eval(*e.args[i], scope);
          const std::string& op = e.compare_ops[i];
          bool ok = at(e.args[i]->pos, [&] {
            if (op == "==") return l == r;
            if (op == "!=") return !(l == r);
            if (op == "in") return r.contains(l);
            if (op == "not in") return !r.contains(l);
            int c = l.compare(r);
            if (op == "<") return c < 0;
            if (op == "<=") return c <= 0;
            if (op == ">") return c > 0;
            return c >= 0;
          });
          if (!ok) return Value(false);
          l = std::move(r);
        }
        return Value(true);
      }
      case Expr::K::Cond:
        if (eval(*e.b, scope).truthy()) return eval(*e.a, scope);
        return e.c ? eval(*e.c, scope) : Value::undefined("conditional expression");
    }
    return Value::undefined();
  }

  const SourceMap& map_;
  const Limits& limits_;
  std::vector<ScopePtr> macro_scopes_;
  std::vector<Value> assigned_namespaces_;
  uint32_t call_depth_ = 0;
};

}  // namespace

Template Template::parse(const std::string& source, std::string name, const LexOptions& opts,
                         const Limits& limits) {
  std::string src = normalize_source(source);
  auto map = std::make_shared<SourceMap>(std::move(name), src);
  Template t;
  t.map_ = map;
  t.limits_ = limits;
  t.body_ = std::make_shared<Body>(jinja::parse(src, *map, opts, limits));
  return t;
}

std::string Template::render(const DictData& context) const {
  auto globals = std::make_shared<Scope>();
  add_globals(globals->vars);
  for (auto& [k, v] : context.items) globals->vars.set(k, v);
  auto root = std::make_shared<Scope>();
  root->parent = globals;
  std::string out;
  LimitScope limits(limits_);
  Renderer r(*map_, limits_);
  r.exec(*body_, out, root);
  return out;
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) fail("template context must be a JSON object");
  Value ctx = Value::from_json(context);
  return render(ctx.dict_data());
}

}  // namespace moeflux::jinja
