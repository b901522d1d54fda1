#include "text/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

namespace {

// Oniguruma's \s for UTF-8 is [\t\n\v\f\r\x20\x85] plus Zs/Zl/Zp
// (doc/RE). PCRE2 10.42's UCP \s also takes U+180E, which HF tokenizers
// treat as a non-space (checked on Qwen3's pre-tokenizer), so spell it out.
constexpr std::string_view kSpaceClassBody = "\\t\\n\\x0b\\f\\r\\x20\\x85\\p{Zs}\\p{Zl}\\p{Zp}";

struct Scratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  Scratch() {
    md = pcre2_match_data_create(1, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    // A long run of spaces with \s+(?!\S) backtracks over the whole run;
    // 32 KiB (the default) overflows at a few thousand characters.
    stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    if (stack != nullptr) pcre2_jit_stack_assign(mctx, nullptr, stack);
  }
  ~Scratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    if (stack != nullptr) pcre2_jit_stack_free(stack);
  }
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

std::string Regex::translate(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      if (e == 's' || e == 'S') {
        if (!in_class) {
          out += e == 's' ? "[" : "[^";
          out += kSpaceClassBody;
          out += "]";
        } else if (e == 's') {
          out += kSpaceClassBody;
        } else {
          out += "\\S";  // a negated class inside a class: keep PCRE2's (not used by known files)
        }
        ++i;
        continue;
      }
      if (e == 'w' || e == 'W') {
        // Oniguruma's Unicode \w is Letter|Mark|Decimal_Number|Connector_Punctuation;
        // PCRE2 10.42's UCP \w lacks the marks and connectors.
        constexpr std::string_view body = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
        if (!in_class) {
          out += e == 'w' ? "[" : "[^";
          out += body;
          out += "]";
        } else if (e == 'w') {
          out += body;
        } else {
          out += "\\W";
        }
        ++i;
        continue;
      }
      if (e == 'u' && i + 6 <= p.size()) {
        // Oniguruma's \uHHHH; PCRE2 spells it \x{HHHH}.
        out += "\\x{";
        out.append(p.substr(i + 2, 4));
        out += "}";
        i += 5;
        continue;
      }
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
      if (i + 1 < p.size() && p[i + 1] == ']') { out += "\\]"; ++i; }
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      // POSIX class [:name:] inside a class.
      size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
  std::string pat = translate(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(), PCRE2_UTF | PCRE2_UCP, &err,
                             &off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("regex {:?}: {} at offset {}", std::string(pattern), reinterpret_cast<const char*>(msg), off);
  }
  code_ = code;
  // JIT is 5-10x faster than the interpreter on these patterns; without it
  // (a PCRE2 built without JIT support) matching still works.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  Scratch& sc = scratch();
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    // Input is valid UTF-8 (Tokenizer::encode repairs it first), so skip
    // PCRE2's own check, which would rescan the whole subject on every call.
    int rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, sc.md, sc.mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, sc.md, sc.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("regex {:?}: match failed: {}", pattern_, reinterpret_cast<const char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
    size_t b = ov[0], e = ov[1];
    out.emplace_back(uint32_t(b), uint32_t(e));
    if (e > b) {
      pos = e;
    } else {
      if (e >= s.size()) break;
      pos = e + size_t(utf8::seq_len(uint8_t(s[e])));
    }
  }
}

}  // namespace moeflux
