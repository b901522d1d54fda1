#include "text/chat/jinja_text.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "text/chat/jinja_limits.h"

namespace moeflux::jinja::text {

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    bool ok = true;
    for (int k = 1; k < n; ++k) {
      auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (cb & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(c);
    i += n;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string encode(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  auto cps = decode(s);
  std::vector<char32_t> set;
  if (chars) set = decode(*chars);
  auto drop = [&](char32_t c) {
    if (!chars) return is_space(c);
    for (char32_t x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && drop(cps[b])) ++b;
  if (right)
    while (e > b && drop(cps[e - 1])) --e;
  return encode(std::vector<char32_t>(cps.begin() + b, cps.begin() + e));
}

size_t search_from(std::string_view s, std::string_view sub, size_t pos) {
  if (pos > s.size()) return std::string_view::npos;
  if (sub.empty()) return pos;
  const void* p = memmem(s.data() + pos, s.size() - pos, sub.data(), sub.size());
  return p ? static_cast<size_t>(static_cast<const char*>(p) - s.data()) : std::string_view::npos;
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t k = search_from(s, *sep, pos);
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, k - pos));
      pos = k + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  auto cps = decode(s);
  size_t i = 0, n = cps.size();
  while (true) {
    while (i < n && is_space(cps[i])) ++i;
    if (i >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      // The rest, with trailing whitespace kept, is the last piece.
      size_t e = n;
      out.push_back(encode(std::vector<char32_t>(cps.begin() + i, cps.begin() + e)));
      return out;
    }
    size_t j = i;
    while (j < n && !is_space(cps[j])) ++j;
    out.push_back(encode(std::vector<char32_t>(cps.begin() + i, cps.begin() + j)));
    i = j;
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, -1);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    // Splitting from the right is splitting the reversed text from the
    // left, which keeps the search linear (see search_from()).
    std::string rs(s.rbegin(), s.rend()), rsep(sep->rbegin(), sep->rend());
    for (auto& piece : split(rs, rsep, maxsplit)) out.emplace_back(piece.rbegin(), piece.rend());
  } else {
    auto cps = decode(s);
    int64_t j = static_cast<int64_t>(cps.size());
    while (true) {
      while (j > 0 && is_space(cps[j - 1])) --j;
      if (j <= 0) break;
      if (static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(encode(std::vector<char32_t>(cps.begin(), cps.begin() + j)));
        break;
      }
      int64_t i = j;
      while (i > 0 && !is_space(cps[i - 1])) --i;
      out.push_back(encode(std::vector<char32_t>(cps.begin() + i, cps.begin() + j)));
      j = i;
    }
  }
  return {out.rbegin(), out.rend()};
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts repl between every code point (and at both ends).
    auto cps = decode(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        check_growth(out.size());
        ++done;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t k = search_from(s, old, pos);
    if (k == std::string_view::npos) break;
    out.append(s.substr(pos, k - pos));
    out.append(repl);
    check_growth(out.size());
    pos = k + old.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  size_t pos = 0;
  while ((pos = search_from(s, sub, pos)) != std::string_view::npos) {
    ++n;
    pos += sub.size();
  }
  return n;
}

int64_t find(std::string_view s, std::string_view sub, bool reverse) {
  size_t k = search_from(s, sub, 0);
  if (reverse && k != std::string_view::npos) {
    std::string rs(s.rbegin(), s.rend()), rsub(sub.rbegin(), sub.rend());
    k = s.size() - sub.size() - search_from(rs, rsub, 0);
  }
  if (k == std::string_view::npos) return -1;
  return static_cast<int64_t>(length(s.substr(0, k)));
}

// Case mapping and letter categories for the scripts chat text commonly
// holds: Latin (incl. Extended-A/B), Greek, Cyrillic, Armenian; letters of
// Hebrew, Arabic, Indic, Thai, CJK, kana and Hangul. Python uses the full
// Unicode database; moeflux_chat does not link utf8proc, so code points
// outside these ranges are treated as uncased non-letters.
namespace {

struct Pair {
  char32_t upper, lower;
};

// Alternating upper/lower pairs (U+0100..U+017F except the irregular ones).
bool latin_ext_a_pair(char32_t c, char32_t& upper, char32_t& lower) {
  if (c < 0x100 || c > 0x17E || c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) return false;
  bool even_upper = c < 0x139 || (c > 0x148 && c < 0x179);
  bool is_up = even_upper ? (c % 2 == 0) : (c % 2 == 1);
  upper = is_up ? c : c - 1;
  lower = is_up ? c + 1 : c;
  return true;
}

std::optional<Pair> case_pair(char32_t c) {
  char32_t u, l;
  if (c >= 'A' && c <= 'Z') return Pair{c, c + 32};
  if (c >= 'a' && c <= 'z') return Pair{c - 32, c};
  if (c < 0xC0) return std::nullopt;
  if (c <= 0xDE && c != 0xD7) return Pair{c, c + 32};
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return Pair{c - 32, c};
  if (c == 0xFF) return Pair{0x178, 0xFF};
  if (c == 0x178) return Pair{0x178, 0xFF};
  if (latin_ext_a_pair(c, u, l)) return Pair{u, l};
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return Pair{c, c + 32};
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return Pair{c - 32, c};
  if (c == 0x3C2) return Pair{0x3A3, 0x3C2};
  if (c >= 0x410 && c <= 0x42F) return Pair{c, c + 32};
  if (c >= 0x430 && c <= 0x44F) return Pair{c - 32, c};
  if (c >= 0x400 && c <= 0x40F) return Pair{c, c + 80};
  if (c >= 0x450 && c <= 0x45F) return Pair{c - 80, c};
  if (c >= 0x460 && c <= 0x4FF && c != 0x482 && !(c >= 0x483 && c <= 0x489) && c != 0x4C0 && c != 0x4CF) {
    // Cyrillic supplement pairs: even upper, odd lower, except U+04C1..U+04CE.
    bool odd_upper = c >= 0x4C1 && c <= 0x4CE;
    bool is_up = odd_upper ? (c % 2 == 1) : (c % 2 == 0);
    return Pair{is_up ? c : c - 1, is_up ? c + 1 : c};
  }
  if (c >= 0x531 && c <= 0x556) return Pair{c, c + 48};
  if (c >= 0x561 && c <= 0x586) return Pair{c - 48, c};
  if (c >= 0x1E00 && c <= 0x1EFF && !(c >= 0x1E96 && c <= 0x1E9F)) {
    bool is_up = c % 2 == 0;  // Latin Extended Additional (Vietnamese)
    return Pair{is_up ? c : c - 1, is_up ? c + 1 : c};
  }
  if (c >= 0xFF21 && c <= 0xFF3A) return Pair{c, c + 32};  // fullwidth
  if (c >= 0xFF41 && c <= 0xFF5A) return Pair{c - 32, c};
  return std::nullopt;
}

bool is_cased(char32_t c) { return case_pair(c).has_value() || c == 0x130 || c == 0x131 || c == 0xDF; }

}  // namespace

char32_t to_upper(char32_t c) {
  if (c == 0x131) return 'I';
  auto p = case_pair(c);
  return p ? p->upper : c;
}
char32_t to_lower(char32_t c) {
  if (c == 0x130) return 'i';
  auto p = case_pair(c);
  return p ? p->lower : c;
}
static char32_t to_title(char32_t c) { return to_upper(c); }

bool is_upper(char32_t c) {
  if (c == 0x130) return true;
  auto p = case_pair(c);
  return p && p->upper == c;
}
bool is_lower(char32_t c) {
  if (c == 0x131 || c == 0xDF) return true;
  auto p = case_pair(c);
  return p && p->lower == c;
}
bool is_alpha(char32_t c) {
  if (is_cased(c) || c == 0xAA || c == 0xBA) return true;
  static const std::pair<char32_t, char32_t> letters[] = {
      {0x5D0, 0x5EA},   {0x620, 0x64A},   {0x66E, 0x66F},   {0x671, 0x6D3},   {0x6FA, 0x6FC},
      {0x904, 0x939},   {0x958, 0x961},   {0x985, 0x9B9},   {0xB85, 0xBB9},   {0xE01, 0xE30},
      {0x10A0, 0x10FF}, {0x1100, 0x11FF}, {0x3041, 0x3096}, {0x30A1, 0x30FA}, {0x3105, 0x312F},
      {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0xFF66, 0xFF9D},
      {0x20000, 0x2FA1F}};
  for (auto [lo, hi] : letters)
    if (c >= lo && c <= hi) return true;
  return c == 0x3005 || c == 0x30FC;  // 々 and ー are letters (Lm) too
}
bool is_alnum(char32_t c) {
  if (is_alpha(c) || (c >= '0' && c <= '9')) return true;
  return c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) || (c >= 0x660 && c <= 0x669) ||
         (c >= 0x6F0 && c <= 0x6F9) || (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19) ||
         (c >= 0x2070 && c <= 0x2079 && c != 0x2071 && c != 0x2072 && c != 0x2073) || (c >= 0x2080 && c <= 0x2089) ||
         (c >= 0x2460 && c <= 0x249B) || (c >= 0x3007 && c <= 0x3007) || (c >= 0x3021 && c <= 0x3029);
}

static void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {  // ß -> "SS"
    out += "SS";
    return;
  }
  append_utf8(out, to_upper(c));
}

// lower() of one code point at i: İ becomes "i̇", and capital sigma is final
// (ς) after a cased letter when no cased letter follows, as in Python.
static void append_lower(std::string& out, const std::vector<char32_t>& cps, size_t i) {
  char32_t c = cps[i];
  if (c == 0x130) {
    out += "i\xCC\x87";
    return;
  }
  if (c == 0x3A3) {
    bool before = i > 0 && is_cased(cps[i - 1]);
    bool after = i + 1 < cps.size() && is_cased(cps[i + 1]);
    append_utf8(out, before && !after ? 0x3C2 : 0x3C3);
    return;
  }
  append_utf8(out, to_lower(c));
}

std::string upper(std::string_view s) {
  std::string out;
  for (char32_t c : decode(s)) append_upper(out, c);
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) append_lower(out, cps, i);
  return out;
}

std::string capitalize(std::string_view s) {
  auto cps = decode(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0)
      append_utf8(out, to_title(cps[i]));
    else
      append_lower(out, cps, i);
  }
  return out;
}

std::string title(std::string_view s) {
  // Python: a cased character after an uncased one starts a word.
  std::string out;
  bool prev_cased = false;
  auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    if (prev_cased)
      append_lower(out, cps, i);
    else
      append_utf8(out, to_title(c));
    prev_cased = is_cased(c);
  }
  return out;
}

std::vector<int64_t> slice_indices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop,
                                   std::optional<int64_t> step) {
  int64_t st = step.value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<int64_t> out;
  // Steps as large as INT64_MAX must not overflow i: stop when the distance
  // left is within one step.
  if (st > 0)
    for (int64_t i = b; i < e; i = (e - i) - st > 0 ? i + st : e) out.push_back(i);
  else
    for (int64_t i = b; i > e; i = (i - e) + st > 0 ? i + st : e) out.push_back(i);
  return out;
}

}  // namespace moeflux::jinja::text
