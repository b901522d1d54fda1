#include "text/tokenizer/utf8.h"

#include <utf8proc.h>

#include <array>

namespace moeflux::utf8 {

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Length of the well-formed sequence at p[0..n), or the length of its
// maximal ill-formed subpart negated (at least 1) when it is not well formed.
// Table 3-7 of the Unicode standard gives the allowed second-byte ranges.
int check_seq(const uint8_t* p, size_t n) {
  uint8_t b = p[0];
  if (b < 0x80) return 1;
  int len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (size_t(k) >= n) return -k;
    uint8_t c = p[k];
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -k;
  }
  return len;
}

}  // namespace

size_t valid_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    int r = check_seq(p + i, n - i);
    if (r < 0) return i;
    i += size_t(r);
  }
  return n;
}

std::string to_valid_lossy(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0, n = s.size();
  while (i < n) {
    int r = check_seq(p + i, n - i);
    if (r > 0) {
      out.append(s.data() + i, size_t(r));
      i += size_t(r);
    } else {
      out += "\xEF\xBF\xBD";
      i += size_t(-r);
    }
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  // A lead byte at most 3 bytes from the end, followed only by valid
  // continuation bytes that do not yet complete it.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    uint8_t b = p[n - back];
    if ((b & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead
    int r = check_seq(p + n - back, back);
    // check_seq returns -back when all `back` bytes are a valid prefix that
    // ran out of input; anything else is complete or ill-formed.
    return (r == -int(back) && seq_len(b) > int(back)) ? back : 0;
  }
  return 0;
}

namespace {

struct ByteTables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  ByteTables() {
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves,
    // the other 68 bytes to U+0100.. in byte order.
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[size_t(b)] = printable ? char32_t(b) : char32_t(0x100 + extra++);
      append(to_utf8[size_t(b)], to_char[size_t(b)]);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

int char_to_byte(char32_t cp) {
  if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return int(cp);
  if (cp >= 0x100 && cp < 0x100 + 68) {
    static const std::array<int16_t, 68> inv = [] {
      std::array<int16_t, 68> a{};
      for (int b = 0; b < 256; ++b) {
        char32_t c = tables().to_char[size_t(b)];
        if (c >= 0x100) a[c - 0x100] = int16_t(b);
      }
      return a;
    }();
    return inv[cp - 0x100];
  }
  return -1;
}

void bytes_to_chars(std::string_view s, std::string& out) {
  const auto& t = tables();
  out.reserve(out.size() + s.size() * 2);
  for (unsigned char c : s) out += t.to_utf8[c];
}

bool chars_to_bytes(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size());
  for (size_t i = 0; i < s.size();) {
    int b = char_to_byte(next(s, i));
    if (b < 0) return false;
    out.push_back(char(b));
  }
  return true;
}

bool is_whitespace(char32_t cp) {
  // The White_Space property, as Rust's char::is_whitespace uses it.
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_alphanumeric(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  // Rust uses the Alphabetic property; utf8proc has no property table for
  // it, so letters (L*) plus numbers is the approximation (it misses the
  // Other_Alphabetic marks, which only matters for single_word tokens).
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || is_numeric(cp);
}

bool is_punctuation(char32_t cp) {
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

}  // namespace moeflux::utf8
