// Jinja lexer with the whitespace rules transformers renders chat templates
// under: trim_blocks and lstrip_blocks on, `-`/`+` markers, one trailing
// newline of the source dropped (keep_trailing_newline=False).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moeflux::jinja {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // text data, name, decoded string literal, or operator
  int64_t ival = 0;
  double fval = 0;
  size_t offset = 0;  // byte offset in the normalized source
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Newlines normalized to \n and one trailing newline removed, as Jinja does
// before lexing; token offsets refer to this text.
std::string normalize_source(const std::string& source);

// Maps byte offsets to "name:line:column" for error messages.
class SourceMap {
 public:
  SourceMap(std::string name, const std::string& source);
  std::string where(size_t offset) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<size_t> line_starts_;
};

std::vector<Token> lex(const std::string& source, const SourceMap& map, const LexOptions& opts = {});

}  // namespace moeflux::jinja
