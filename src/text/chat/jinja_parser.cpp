#include "text/chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "text/chat/jinja_builtins.h"

namespace moeflux::jinja {

namespace {

ExprPtr make(Expr::K k, size_t pos) {
  auto e = std::make_unique<Expr>();
  e->k = k;
  e->pos = pos;
  return e;
}

Node make_node(Node::K k) {
  Node n;
  n.k = k;
  return n;
}

class Parser {
 public:
  Parser(std::vector<Token> toks, const SourceMap& map, const Limits& limits)
      : t_(std::move(toks)), map_(map), limits_(limits) {}

  Body parse_all() {
    std::string end;
    Body b = parse_body({}, end);
    return b;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void error_at(size_t pos, const std::string& msg) const { fail("{}: {}", map_.where(pos), msg); }

  [[noreturn]] void too_deep(size_t pos) const {
    error_at(pos, fmt::format("template nested too deeply: more than {} levels of blocks and expressions (max_nesting)",
                              limits_.max_nesting));
  }

  // One level of parser recursion (a block, a parenthesis, a unary
  // operator): bounded so that hostile nesting fails instead of
  // overflowing the stack here or in the renderer.
  struct Nest {
    Parser& p;
    Nest(Parser& parser, size_t pos) : p(parser) {
      if (p.depth_ >= p.limits_.max_nesting) p.too_deep(pos);
      try {
        check_stack();
      } catch (const Error& e) {
        p.error_at(pos, e.what());
      }
      ++p.depth_;
    }
    ~Nest() { --p.depth_; }
  };

  // Records the depth of a finished node. Operator chains (1 + 1 + ...,
  // a.b.c..., x|f|f...) are parsed by loops, not recursion, but evaluating
  // and destroying the tree recurses once per level, so the tree's depth is
  // what is bounded.
  ExprPtr seal(ExprPtr e) {
    uint32_t d = 0;
    auto see = [&](const ExprPtr& c) {
      if (c) d = std::max(d, c->depth);
    };
    see(e->a);
    see(e->b);
    see(e->c);
    for (auto& x : e->args) see(x);
    for (auto& kv : e->kwargs) see(kv.second);
    for (auto& kv : e->dict_items) {
      see(kv.first);
      see(kv.second);
    }
    e->depth = d + 1;
    if (e->depth + depth_ > limits_.max_nesting) too_deep(e->pos);
    return e;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Text: return "text";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "'}}'";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "'%}'";
      case Tok::Name: return "'" + t.text + "'";
      case Tok::String: return "string literal";
      case Tok::Int:
      case Tok::Float: return "number '" + t.text + "'";
      case Tok::Op: return "'" + t.text + "'";
      case Tok::Eof: return "end of template";
    }
    return "token";
  }

  void expect_op(const char* op) {
    if (!skip_op(op)) error_at(cur().offset, fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error_at(cur().offset, fmt::format("expected a name, got {}", describe(cur())));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) error_at(cur().offset, fmt::format("expected '%}}', got {}", describe(cur())));
    next();
  }

  // Parses nodes until `{% <one of ends> ...`; leaves the stream after the
  // end keyword and stores it in `found`. Empty `ends`: until end of input.
  Body parse_body(const std::set<std::string>& ends, std::string& found, size_t open_pos = 0,
                  const char* open_tag = nullptr) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (!ends.empty())
          error_at(open_pos, fmt::format("unexpected end of template: '{}' was never closed", open_tag));
        return body;
      }
      if (t.type == Tok::Text) {
        Node n = make_node(Node::K::Text);
        n.pos = t.offset;
        n.text = t.text;
        body.push_back(std::move(n));
        next();
      } else if (t.type == Tok::VarBegin) {
        next();
        Node n = make_node(Node::K::Print);
        n.pos = t.offset;
        n.expr = parse_tuple(true, {});
        if (cur().type != Tok::VarEnd) error_at(cur().offset, fmt::format("expected '}}}}', got {}", describe(cur())));
        next();
        body.push_back(std::move(n));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (cur().type == Tok::Name && ends.count(cur().text)) {
          found = next().text;
          return body;
        }
        body.push_back(parse_statement(t.offset));
      } else {
        error_at(t.offset, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  Node parse_statement(size_t pos) {
    Nest nest(*this, pos);
    if (cur().type != Tok::Name) error_at(cur().offset, fmt::format("expected a tag name, got {}", describe(cur())));
    const std::string tag = cur().text;
    size_t tpos = cur().offset;
    next();
    if (tag == "if") return parse_if(pos);
    if (tag == "for") return parse_for(pos);
    if (tag == "set") return parse_set(pos);
    if (tag == "macro") return parse_macro(pos);
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error_at(tpos, fmt::format("'{}' outside of a loop", tag));
      expect_block_end();
      Node n = make_node(tag == "break" ? Node::K::Break : Node::K::Continue);
      n.pos = pos;
      return n;
    }
    if (tag == "generation") {
      // transformers' extension marking assistant text; renders its body.
      expect_block_end();
      Node n = make_node(Node::K::Scope);
      n.pos = pos;
      std::string found;
      n.body = parse_body({"endgeneration"}, found, pos, "generation");
      expect_block_end();
      return n;
    }
    if (tag == "with") {
      Node n = make_node(Node::K::Scope);
      n.pos = pos;
      while (cur().type != Tok::BlockEnd) {
        if (!n.assigns.empty()) expect_op(",");
        std::string name = expect_name();
        expect_op("=");
        n.assigns.emplace_back(name, parse_expression());
      }
      expect_block_end();
      std::string found;
      n.body = parse_body({"endwith"}, found, pos, "with");
      expect_block_end();
      return n;
    }
    static const std::set<std::string> stray = {"endif", "endfor", "endset", "endmacro", "else", "elif",
                                                "endwith", "endgeneration"};
    if (stray.count(tag)) error_at(tpos, fmt::format("unexpected '{}' tag", tag));
    error_at(tpos, fmt::format("unsupported tag '{}'", tag));
  }

  Node parse_if(size_t pos) {
    Node n = make_node(Node::K::If);
    n.pos = pos;
    ExprPtr cond = parse_tuple(false, {});
    while (true) {
      expect_block_end();
      std::string found;
      Body b = parse_body({"elif", "else", "endif"}, found, pos, "if");
      n.branches.emplace_back(std::move(cond), std::move(b));
      if (found == "elif") {
        cond = parse_tuple(false, {});
        continue;
      }
      if (found == "else") {
        expect_block_end();
        n.else_body = parse_body({"endif"}, found, pos, "if");
      }
      expect_block_end();
      return n;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = skip_op("(");
    do {
      names.push_back(expect_name());
    } while (skip_op(","));
    if (paren) expect_op(")");
    return names;
  }

  Node parse_for(size_t pos) {
    Node n = make_node(Node::K::For);
    n.pos = pos;
    n.targets = parse_targets();
    if (!skip_name("in")) error_at(cur().offset, fmt::format("expected 'in', got {}", describe(cur())));
    n.expr = parse_tuple(false, {"recursive"}, /*with_condexpr=*/false);
    if (skip_name("if")) n.cond = parse_expression();
    if (is_name("recursive")) error_at(cur().offset, "unsupported 'recursive' for loop");
    expect_block_end();
    ++loop_depth_;
    std::string found;
    n.body = parse_body({"else", "endfor"}, found, pos, "for");
    --loop_depth_;
    if (found == "else") {
      expect_block_end();
      n.else_body = parse_body({"endfor"}, found, pos, "for");
    }
    expect_block_end();
    return n;
  }

  Node parse_set(size_t pos) {
    Node n = make_node(Node::K::Set);
    n.pos = pos;
    if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == ".") {
      n.targets.push_back(next().text);
      next();
      n.attr = expect_name();
    } else {
      n.targets = parse_targets();
    }
    if (skip_op("=")) {
      n.expr = parse_tuple(false, {});
      expect_block_end();
      return n;
    }
    if (!n.attr.empty() || n.targets.size() != 1)
      error_at(cur().offset, "a block set takes a single name as target");
    n.k = Node::K::SetBlock;
    while (skip_op("|")) n.filters.push_back(parse_filter(nullptr));
    expect_block_end();
    std::string found;
    n.body = parse_body({"endset"}, found, pos, "set");
    expect_block_end();
    return n;
  }

  Node parse_macro(size_t pos) {
    Node n = make_node(Node::K::Macro);
    n.pos = pos;
    n.macro = std::make_shared<MacroDef>();
    n.macro->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!n.macro->params.empty()) expect_op(",");
      std::string p = expect_name();
      ExprPtr dflt;
      if (skip_op("=")) dflt = parse_expression();
      n.macro->params.emplace_back(p, std::move(dflt));
    }
    expect_op(")");
    expect_block_end();
    std::string found;
    int saved = loop_depth_;
    loop_depth_ = 0;
    n.macro->body = parse_body({"endmacro"}, found, pos, "macro");
    loop_depth_ = saved;
    if (cur().type == Tok::Name) next();  // {% endmacro name %}
    expect_block_end();
    return n;
  }

  // ---- expressions ----

  bool is_tuple_end(const std::set<std::string>& extra) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || cur().type == Tok::Eof) return true;
    if (cur().type == Tok::Op && cur().text == ")") return true;
    return cur().type == Tok::Name && extra.count(cur().text);
  }

  ExprPtr parse_tuple(bool allow_empty_paren, const std::set<std::string>& extra, bool with_condexpr = true,
                      bool explicit_parens = false) {
    size_t pos = cur().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      items.push_back(with_condexpr ? parse_expression() : parse_or());
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) error_at(cur().offset, fmt::format("expected an expression, got {}", describe(cur())));
    }
    auto e = make(Expr::K::Tuple, pos);
    e->args = std::move(items);
    return seal(std::move(e));
  }

  ExprPtr parse_expression() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      size_t pos = next().offset;
      auto c = make(Expr::K::Cond, pos);
      c->b = parse_or();
      c->a = std::move(e);
      if (skip_name("else")) c->c = parse_expression();
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      auto o = make(Expr::K::Or, next().offset);
      o->a = std::move(e);
      o->b = parse_and();
      e = seal(std::move(o));
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      auto o = make(Expr::K::And, next().offset);
      o->a = std::move(e);
      o->b = parse_not();
      e = seal(std::move(o));
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest nest(*this, cur().offset);
      auto o = make(Expr::K::Not, next().offset);
      o->a = parse_not();
      return seal(std::move(o));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    size_t pos = cur().offset;
    ExprPtr e = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> rhs;
    while (true) {
      if (cur().type == Tok::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        ops.push_back(next().text);
      } else if (is_name("in")) {
        next();
        ops.push_back("in");
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        next();
        next();
        ops.push_back("not in");
      } else {
        break;
      }
      rhs.push_back(parse_math1());
    }
    if (ops.empty()) return e;
    auto c = make(Expr::K::Compare, pos);
    c->a = std::move(e);
    c->args = std::move(rhs);
    c->compare_ops = std::move(ops);
    return seal(std::move(c));
  }

  ExprPtr binary(const std::string& op, size_t pos, ExprPtr l, ExprPtr r) {
    auto b = make(Expr::K::Binary, pos);
    b->name = op;
    b->a = std::move(l);
    b->b = std::move(r);
    return seal(std::move(b));
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t.text, t.offset, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      e = binary("~", t.offset, std::move(e), parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t.text, t.offset, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      e = binary("**", t.offset, std::move(e), parse_unary(true));
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this, cur().offset);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = make(t.text == "-" ? Expr::K::Neg : Expr::K::Pos, t.offset);
      e->a = parse_unary(false);
      e = seal(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::Name: {
        next();
        auto e = make(Expr::K::Const, t.offset);
        if (t.text == "true" || t.text == "True") {
          e->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->k = Expr::K::Name;
          e->name = t.text;
        }
        return e;
      }
      case Tok::String: {
        // Adjacent literals concatenate, as in Python.
        std::string s;
        size_t pos = t.offset;
        while (cur().type == Tok::String) s += next().text;
        auto e = make(Expr::K::Const, pos);
        e->value = Value(std::move(s));
        return e;
      }
      case Tok::Int:
      case Tok::Float: {
        next();
        auto e = make(Expr::K::Const, t.offset);
        e->value = t.type == Tok::Int ? Value(t.ival) : Value(t.fval);
        return e;
      }
      case Tok::Op:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, {}, true, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto e = make(Expr::K::List, t.offset);
          while (!is_op("]")) {
            if (!e->args.empty()) expect_op(",");
            if (is_op("]")) break;
            e->args.push_back(parse_expression());
          }
          expect_op("]");
          return seal(std::move(e));
        }
        if (t.text == "{") {
          next();
          auto e = make(Expr::K::Dict, t.offset);
          while (!is_op("}")) {
            if (!e->dict_items.empty()) expect_op(",");
            if (is_op("}")) break;
            ExprPtr k = parse_expression();
            expect_op(":");
            e->dict_items.emplace_back(std::move(k), parse_expression());
          }
          expect_op("}");
          return seal(std::move(e));
        }
        break;
      default: break;
    }
    error_at(t.offset, fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const Token& dot = next();
        if (cur().type == Tok::Name) {
          auto a = make(Expr::K::Attr, dot.offset);
          a->name = next().text;
          a->a = std::move(e);
          e = seal(std::move(a));
        } else if (cur().type == Tok::Int) {
          auto a = make(Expr::K::Item, dot.offset);
          a->a = std::move(e);
          a->b = make(Expr::K::Const, cur().offset);
          a->b->value = Value(next().ival);
          e = seal(std::move(a));
        } else {
          error_at(cur().offset, fmt::format("expected a name after '.', got {}", describe(cur())));
        }
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    size_t pos = next().offset;  // '['
    ExprPtr start, stop, step;
    if (!is_op(":")) {
      start = parse_expression();
      if (!is_op(":")) {
        if (is_op(",")) error_at(cur().offset, "unsupported tuple subscript");
        expect_op("]");
        auto e = make(Expr::K::Item, pos);
        e->a = std::move(obj);
        e->b = std::move(start);
        return seal(std::move(e));
      }
    }
    next();  // ':'
    if (!is_op("]") && !is_op(":")) stop = parse_expression();
    if (skip_op(":"))
      if (!is_op("]")) step = parse_expression();
    expect_op("]");
    auto e = make(Expr::K::Slice, pos);
    e->a = std::move(obj);
    e->b = std::move(start);
    e->c = std::move(stop);
    e->args.push_back(std::move(step));
    return seal(std::move(e));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error_at(cur().offset, "unsupported '*' or '**' call arguments");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string k = next().text;
        next();
        e.kwargs.emplace_back(k, parse_expression());
      } else {
        if (!e.kwargs.empty()) error_at(cur().offset, "positional argument follows keyword argument");
        e.args.push_back(parse_expression());
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(Expr::K::Call, cur().offset);
    e->a = std::move(callee);
    parse_call_args(*e);
    return seal(std::move(e));
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  // After '|'. `input` may be null (filters of a block set).
  ExprPtr parse_filter(ExprPtr input) {
    size_t pos = cur().offset;
    auto e = make(Expr::K::Filter, pos);
    e->name = dotted_name();
    e->filter = find_filter(e->name);
    if (!e->filter) error_at(pos, fmt::format("unsupported filter '{}'", e->name));
    e->a = std::move(input);
    if (is_op("(")) parse_call_args(*e);
    return seal(std::move(e));
  }

  ExprPtr parse_test(ExprPtr input) {
    size_t is_pos = next().offset;  // 'is'
    bool negated = skip_name("not");
    size_t pos = cur().offset;
    auto e = make(Expr::K::Test, pos);
    e->name = dotted_name();
    e->test = find_test(e->name);
    if (!e->test) error_at(pos, fmt::format("unsupported test '{}'", e->name));
    e->a = std::move(input);
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error_at(cur().offset, "cannot chain multiple tests with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    e = seal(std::move(e));
    if (!negated) return e;
    auto n = make(Expr::K::Not, is_pos);
    n->a = std::move(e);
    return seal(std::move(n));
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const SourceMap& map_;
  const Limits& limits_;
  int loop_depth_ = 0;
  uint32_t depth_ = 0;  // parser recursion: blocks, parentheses, unary operators
};

}  // namespace

Body parse(const std::string& source, const SourceMap& map, const LexOptions& opts, const Limits& limits) {
  LimitScope scope(limits);
  return Parser(lex(source, map, opts), map, limits).parse_all();
}

}  // namespace moeflux::jinja
