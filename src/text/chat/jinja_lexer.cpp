#include "text/chat/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "core/error.h"
#include "text/chat/jinja_text.h"

namespace moeflux::jinja {

std::string normalize_source(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

SourceMap::SourceMap(std::string name, const std::string& source) : name_(std::move(name)) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i)
    if (source[i] == '\n') line_starts_.push_back(i + 1);
}

std::string SourceMap::where(size_t offset) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t line = static_cast<size_t>(it - line_starts_.begin());
  size_t col = offset - line_starts_[line - 1] + 1;
  return fmt::format("{}:{}:{}", name_, line, col);
}

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Jinja decodes string literals with Python's unicode-escape codec.
std::string unescape(std::string_view raw, const SourceMap& map, size_t offset) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c != '\\' || i + 1 >= raw.size()) {
      out += c;
      continue;
    }
    char e = raw[++i];
    auto hex = [&](int n) {
      if (i + n >= raw.size()) fail("{}: truncated \\{} escape", map.where(offset), e);
      char32_t v = 0;
      for (int k = 1; k <= n; ++k) {
        char h = raw[i + k];
        if (!std::isxdigit(static_cast<unsigned char>(h))) fail("{}: malformed \\{} escape", map.where(offset), e);
        v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      i += n;
      return v;
    };
    switch (e) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x': text::append_utf8(out, hex(2)); break;
      case 'u': text::append_utf8(out, hex(4)); break;
      case 'U': text::append_utf8(out, hex(8)); break;
      case 'N': fail("{}: \\N{{...}} escapes are not supported", map.where(offset));
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7'; ++k)
            v = v * 8 + static_cast<char32_t>(raw[++i] - '0');
          text::append_utf8(out, v);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(const std::string& src, const SourceMap& map, const LexOptions& opts) : s_(src), map_(map), opts_(opts) {}

  std::vector<Token> run() {
    size_t n = s_.size();
    while (pos_ < n) {
      size_t k = pos_;
      while (true) {
        k = s_.find('{', k);
        if (k == std::string::npos || k + 1 >= n) {
          k = std::string::npos;
          break;
        }
        char c = s_[k + 1];
        if (c == '{' || c == '%' || c == '#') break;
        ++k;
      }
      if (k == std::string::npos) {
        emit_text(s_.substr(pos_), pos_);
        break;
      }
      char kind = s_[k + 1];
      char sign = k + 2 < n && (s_[k + 2] == '-' || s_[k + 2] == '+') ? s_[k + 2] : 0;
      size_t after = k + 2 + (sign ? 1 : 0);
      std::string text = s_.substr(pos_, k - pos_);
      apply_left_strip(text, sign, kind != '{');
      emit_text(std::move(text), pos_);
      if (kind == '#') {
        lex_comment(after);
      } else if (kind == '%' && is_raw(after)) {
        lex_raw(after);
      } else {
        toks_.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", 0, 0, k});
        lex_tag(after, kind == '%');
      }
    }
    toks_.push_back({Tok::Eof, "", 0, 0, n});
    return std::move(toks_);
  }

 private:
  void emit_text(std::string text, size_t offset) {
    if (!text.empty()) toks_.push_back({Tok::Text, std::move(text), 0, 0, offset});
  }

  // `{%-` strips all whitespace before the tag; with lstrip_blocks a block or
  // comment tag alone on its line takes the line's indentation away.
  void apply_left_strip(std::string& text, char sign, bool block_or_comment) {
    if (sign == '-') {
      text = text::strip(text, std::nullopt, false, true);
    } else if (sign != '+' && opts_.lstrip_blocks && block_or_comment) {
      size_t l = text.rfind('\n');
      size_t lpos = l == std::string::npos ? 0 : l + 1;
      if (lpos > 0 || line_starting_) {
        bool only_ws = lpos < text.size();
        for (size_t i = lpos; i < text.size(); ++i)
          if (!is_ws(text[i])) only_ws = false;
        if (only_ws) text.resize(lpos);
      }
    }
  }

  // After a tag ends at `end` (one past the closing delimiter).
  void finish_tag(size_t end, char sign, bool trim_newline) {
    if (sign == '-') {
      while (end < s_.size() && is_ws(s_[end])) ++end;
    } else if (sign != '+' && trim_newline && end < s_.size() && s_[end] == '\n') {
      ++end;
    }
    line_starting_ = end > 0 && s_[end - 1] == '\n';
    pos_ = end;
  }

  void lex_comment(size_t start) {
    size_t e = s_.find("#}", start);
    if (e == std::string::npos) fail("{}: missing end of comment tag", map_.where(start));
    char sign = e > start && (s_[e - 1] == '-' || s_[e - 1] == '+') ? s_[e - 1] : 0;
    finish_tag(e + 2, sign, opts_.trim_blocks);
  }

  bool is_raw(size_t p) const {
    while (p < s_.size() && is_ws(s_[p])) ++p;
    if (s_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    size_t q = p;
    while (q < s_.size() && is_ws(s_[q])) ++q;
    return (q > p || s_.compare(q, 1, "-") == 0 || s_.compare(q, 2, "%}") == 0) &&
           (s_.compare(q, 3, "-%}") == 0 || s_.compare(q, 2, "%}") == 0);
  }

  void lex_raw(size_t p) {
    size_t close = s_.find("%}", p);
    bool strip_after = s_[close - 1] == '-';
    size_t body = close + 2;
    if (strip_after)
      while (body < s_.size() && is_ws(s_[body])) ++body;
    // Find `{%[-+]? endraw [-+]?%}`.
    size_t k = body;
    while (true) {
      k = s_.find("{%", k);
      if (k == std::string::npos) fail("{}: missing end of raw directive", map_.where(p));
      size_t q = k + 2;
      char sign = q < s_.size() && (s_[q] == '-' || s_[q] == '+') ? s_[q] : 0;
      if (sign) ++q;
      while (q < s_.size() && is_ws(s_[q])) ++q;
      if (s_.compare(q, 6, "endraw") == 0) {
        q += 6;
        while (q < s_.size() && is_ws(s_[q])) ++q;
        char esign = q < s_.size() && (s_[q] == '-' || s_[q] == '+') ? s_[q] : 0;
        if (s_.compare(q + (esign ? 1 : 0), 2, "%}") == 0) {
          std::string text = s_.substr(body, k - body);
          line_starting_ = false;
          apply_left_strip(text, sign, true);
          emit_text(std::move(text), body);
          finish_tag(q + (esign ? 1 : 0) + 2, esign, opts_.trim_blocks);
          return;
        }
      }
      k += 2;
    }
  }

  void lex_tag(size_t p, bool block) {
    std::vector<char> balance;
    size_t n = s_.size();
    while (true) {
      while (p < n && is_ws(s_[p])) ++p;
      if (p >= n) fail("{}: unexpected end of template, expected end of {}", map_.where(p), block ? "'%}'" : "'}}'");
      if (balance.empty()) {
        const char* close = block ? "%}" : "}}";
        for (char sign : {'-', '+', '\0'}) {
          if (sign == '+' && !block) continue;
          size_t q = p + (sign ? 1 : 0);
          if ((!sign || s_[p] == sign) && s_.compare(q, 2, close) == 0) {
            toks_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", 0, 0, p});
            finish_tag(q + 2, sign, block && opts_.trim_blocks);
            return;
          }
        }
      }
      char c = s_[p];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t q = p;
        while (q < n && (std::isalnum(static_cast<unsigned char>(s_[q])) || s_[q] == '_')) ++q;
        toks_.push_back({Tok::Name, s_.substr(p, q - p), 0, 0, p});
        p = q;
      } else if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < n && s_[q] != c) q += s_[q] == '\\' ? 2 : 1;
        if (q >= n) fail("{}: unterminated string literal", map_.where(p));
        toks_.push_back({Tok::String, unescape(std::string_view(s_).substr(p + 1, q - p - 1), map_, p), 0, 0, p});
        p = q + 1;
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* t : two)
          if (s_.compare(p, 2, t) == 0) op = t;
        if (op.empty()) {
          if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
            fail("{}: unexpected character '{}' in tag", map_.where(p), c);
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty() || balance.back() != op[0]) fail("{}: unexpected '{}'", map_.where(p), op);
          balance.pop_back();
        }
        toks_.push_back({Tok::Op, op, 0, 0, p});
        p += op.size();
      }
    }
  }

  size_t lex_number(size_t p) {
    size_t n = s_.size();
    auto digits = [&](size_t q) {
      while (q < n && (std::isdigit(static_cast<unsigned char>(s_[q])) ||
                       (s_[q] == '_' && q + 1 < n && std::isdigit(static_cast<unsigned char>(s_[q + 1])))))
        ++q;
      return q;
    };
    size_t q = digits(p);
    bool is_float = false;
    // After a '.', numbers are item indices (`foo.0.1`), never floats.
    bool after_dot = !toks_.empty() && toks_.back().type == Tok::Op && toks_.back().text == ".";
    if (!after_dot) {
      if (q + 1 < n && s_[q] == '.' && std::isdigit(static_cast<unsigned char>(s_[q + 1]))) {
        q = digits(q + 1);
        is_float = true;
      }
      if (q < n && (s_[q] == 'e' || s_[q] == 'E')) {
        size_t r = q + 1;
        if (r < n && (s_[r] == '+' || s_[r] == '-')) ++r;
        if (r < n && std::isdigit(static_cast<unsigned char>(s_[r]))) {
          q = digits(r);
          is_float = true;
        }
      }
    }
    std::string lit = s_.substr(p, q - p);
    lit.erase(std::remove(lit.begin(), lit.end(), '_'), lit.end());
    Token t{is_float ? Tok::Float : Tok::Int, lit, 0, 0, p};
    if (is_float) {
      // strtod, not stod: Python reads 1e999 as inf and 1e-999 as 0.0.
      t.fval = std::strtod(lit.c_str(), nullptr);
    } else {
      // Python's ints are unbounded; moeflux's are 64-bit and refuse more.
      auto r = std::from_chars(lit.data(), lit.data() + lit.size(), t.ival);
      if (r.ec != std::errc() || r.ptr != lit.data() + lit.size())
        fail("{}: integer literal {} is out of the 64-bit range", map_.where(p), lit);
    }
    toks_.push_back(std::move(t));
    return q;
  }

  const std::string& s_;
  const SourceMap& map_;
  LexOptions opts_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> lex(const std::string& source, const SourceMap& map, const LexOptions& opts) {
  return Lexer(source, map, opts).run();
}

}  // namespace moeflux::jinja
