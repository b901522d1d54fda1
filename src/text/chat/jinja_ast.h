// Syntax tree of a parsed template. Every node keeps the byte offset of its
// source so render errors can say where they happened.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/chat/jinja_value.h"

namespace moeflux::jinja {

using FilterFn = Value (*)(const Value& in, CallArgs& args);
using TestFn = bool (*)(const Value& in, CallArgs& args);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class K {
    Const,    // value
    Name,     // name
    List,     // args
    Tuple,    // args
    Dict,     // kwargs-like pairs in dict_items
    Attr,     // a.name
    Item,     // a[b]
    Slice,    // a[b:c:d], absent parts null
    Call,     // a(args, kwargs)
    Filter,   // a | name(args, kwargs); filter set
    Test,     // a is name(args, kwargs); test set
    Neg,      // -a
    Pos,      // +a
    Not,      // not a
    And,      // a and b
    Or,       // a or b
    Binary,   // a op b: + - * / // % ** ~
    Compare,  // a op1 args[0] op2 args[1] ...; ops in compare_ops
    Cond,     // a if b else c
  };
  K k;
  size_t pos = 0;
  uint32_t depth = 1;  // of this subtree, bounded by Limits::max_nesting at parse
  Value value;
  std::string name;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> dict_items;
  std::vector<std::string> compare_ops;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

struct Node;
using Body = std::vector<Node>;

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
};

struct Node {
  enum class K {
    Text,        // text
    Print,       // expr
    If,          // branches (cond, body), else_body
    For,         // targets, expr (iterable), cond (inline filter), body, else_body
    Set,         // targets (or target + attr for namespace), expr
    SetBlock,    // targets[0], body, filters applied to the captured text
    Macro,       // macro
    Break,
    Continue,
    Scope,       // body rendered in place ({% generation %}); with-blocks use assigns
  };
  K k;
  size_t pos = 0;
  std::string text;
  ExprPtr expr, cond;
  std::vector<std::string> targets;
  std::string attr;  // `set ns.attr = ...`
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<ExprPtr> filters;  // SetBlock: Filter exprs with a null input
  std::vector<std::pair<std::string, ExprPtr>> assigns;  // {% with a = 1 %}
  std::shared_ptr<MacroDef> macro;
};

}  // namespace moeflux::jinja
