#include "sampling/json_matcher.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace moeflux::json_constraint {

namespace {

bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

// Open values one document may nest; deeper output is cut off (JSON
// parsers limit nesting too; nlohmann's default is far higher, but no
// schema needs this many).
constexpr size_t kMaxStack = 128;

// Document frame states: the grammar's literal prefix (n: bytes read),
// the value, then its literal suffix (whitespace first, n: bytes read).
enum : uint8_t { kDocExpect = 0, kDocIn = 1, kDocDone = 2, kDocPrefix = 3, kDocSuffix = 4 };
// Object frame states.
enum : uint8_t {
  kObjOpen = 0, kObjAfterBrace = 1, kObjInKey = 2, kObjAfterKey = 3, kObjAfterColon = 4, kObjInValue = 5,
  kObjAfterValue = 6, kObjAfterComma = 7, kObjClosed = 8
};
// Array frame states.
enum : uint8_t { kArrOpen = 0, kArrAfterBracket = 1, kArrInItem = 2, kArrAfterItem = 3, kArrAfterComma = 4, kArrClosed = 5 };
// String frame states.
enum : uint8_t { kStrOpen = 0, kStrIn = 1, kStrEscape = 2, kStrHex = 3, kStrClosed = 4 };

// Whitespace at a position where JSON allows it: kept, up to the limit.
bool take_ws(Frame& f, uint8_t c, bool& taken) {
  taken = is_ws(c);
  if (!taken) return false;
  if (f.ws >= kMaxWhitespace) return false;
  ++f.ws;
  return true;
}

bool none_required_from(const Node& n, size_t first) {
  for (size_t j = first; j < n.props.size(); ++j)
    if (n.props[j].required) return false;
  return true;
}

}  // namespace

Matcher::Matcher(const Grammar& g) : g_(g) {}

State Matcher::start() const {
  Frame doc{kDocument};
  if (!g_.prefix().empty()) doc.state = kDocPrefix;
  return {Thread{doc}};
}

bool Matcher::accepting(const Frame& f) const {
  if (f.node == kDocument) return f.state == kDocDone;
  const Node& n = g_.node(f.node);
  switch (n.kind) {
    case Kind::Literal: return f.n == n.text.size();
    case Kind::String: return f.state == kStrClosed;
    case Kind::Number: return f.state == 2 || f.state == 3 || f.state == 5 || f.state == 8;
    case Kind::Object: return f.state == kObjClosed;
    case Kind::Array: return f.state == kArrClosed;
    case Kind::Alt: return false;
  }
  return false;
}

void Matcher::child_done(Frame& p) const {
  p.ws = 0;
  if (p.node == kDocument) {
    p.state = g_.suffix().empty() ? kDocDone : kDocSuffix;
    p.n = 0;
    return;
  }
  const Node& n = g_.node(p.node);
  if (n.kind == Kind::Object)
    p.state = p.state == kObjInKey ? kObjAfterKey : kObjAfterValue;
  else if (n.kind == Kind::Array) {
    p.state = kArrAfterItem;
    ++p.n;
  }
}

void Matcher::push_and_feed(Thread t, NodeId id, uint8_t c, State& out, int depth) const {
  if (t.size() >= kMaxStack || depth > 512 || --budget_ < 0) return;
  const Node& n = g_.node(id);
  if (n.kind == Kind::Alt) {
    // An alternative that leads back to this Alt without reading a byte
    // (a recursive $ref) adds nothing: the depth bound ends it.
    for (NodeId a : n.alts) push_and_feed(t, a, c, out, depth + 8);
    return;
  }
  t.push_back(Frame{id});
  feed(std::move(t), c, out, depth + 1);
}

void Matcher::feed(Thread t, uint8_t c, State& out, int depth) const {
  if (--budget_ < 0) return;
  Frame& f = t.back();
  if (f.node == kDocument) {
    if (f.state == kDocPrefix || f.state == kDocSuffix) {
      const std::string& text = f.state == kDocPrefix ? g_.prefix() : g_.suffix();
      // Whitespace between the document and its suffix (a suffix that
      // starts with whitespace may take the byte as well).
      if (f.state == kDocSuffix && f.n == 0) {
        Thread w = t;
        bool ws;
        if (take_ws(w.back(), c, ws)) out.push_back(std::move(w));
      }
      if (f.n >= text.size() || uint8_t(text[f.n]) != c) return;
      if (++f.n == text.size()) {
        f.state = f.state == kDocPrefix ? kDocExpect : kDocDone;
        f.n = 0;
        f.ws = 0;
      }
      out.push_back(std::move(t));
      return;
    }
    if (f.state != kDocExpect) return;
    bool ws;
    if (take_ws(f, c, ws)) out.push_back(t);
    if (ws) return;
    f.state = kDocIn;
    f.ws = 0;
    push_and_feed(std::move(t), g_.root(), c, out, depth + 1);
    return;
  }
  // A value that may end here hands c to its parent (a number "12" before
  // ",", a string already closed).
  if (accepting(f)) {
    Thread up(t.begin(), t.end() - 1);
    child_done(up.back());
    feed(std::move(up), c, out, depth + 1);
  }
  const Node& n = g_.node(f.node);
  switch (n.kind) {
    case Kind::Literal:
      if (f.n < n.text.size() && uint8_t(n.text[f.n]) == c) {
        ++f.n;
        out.push_back(std::move(t));
      }
      return;
    case Kind::String:
      if (feed_string(f, n, c)) out.push_back(std::move(t));
      return;
    case Kind::Number:
      if (feed_number(f, n, c)) out.push_back(std::move(t));
      return;
    case Kind::Object: feed_object(t, c, out, depth); return;
    case Kind::Array: feed_array(t, c, out, depth); return;
    case Kind::Alt: return;  // never on a stack: expanded when pushed
  }
}

void Matcher::feed_object(Thread& t, uint8_t c, State& out, int depth) const {
  Frame& f = t.back();
  const Node& n = g_.node(f.node);
  bool ws;
  switch (f.state) {
    case kObjOpen:
      if (c == '{') {
        f.state = kObjAfterBrace;
        out.push_back(t);
      }
      return;
    case kObjAfterBrace:
    case kObjAfterComma: {
      if (take_ws(f, c, ws)) out.push_back(t);
      if (ws) return;
      if (f.state == kObjAfterBrace && c == '}') {
        if (n.free_keys || none_required_from(n, 0)) {
          f.state = kObjClosed;
          f.ws = 0;
          out.push_back(t);
        }
        return;
      }
      if (n.free_keys) {
        f.state = kObjInKey;
        f.ws = 0;
        push_and_feed(t, n.key, c, out, depth + 1);
        return;
      }
      // The next key is any property up to the first required one.
      const size_t first = f.state == kObjAfterBrace ? 0 : f.n + 1;
      for (size_t j = first; j < n.props.size(); ++j) {
        Thread u = t;
        u.back().state = kObjInKey;
        u.back().n = uint32_t(j);
        u.back().ws = 0;
        push_and_feed(std::move(u), n.props[j].key, c, out, depth + 1);
        if (n.props[j].required) break;
      }
      return;
    }
    case kObjAfterKey:
      if (take_ws(f, c, ws)) out.push_back(t);
      if (!ws && c == ':') {
        f.state = kObjAfterColon;
        f.ws = 0;
        out.push_back(t);
      }
      return;
    case kObjAfterColon:
      if (take_ws(f, c, ws)) out.push_back(t);
      if (ws) return;
      f.state = kObjInValue;
      f.ws = 0;
      push_and_feed(t, n.free_keys ? n.item : n.props[f.n].value, c, out, depth + 1);
      return;
    case kObjAfterValue:
      if (take_ws(f, c, ws)) out.push_back(t);
      if (ws) return;
      if (c == ',' && (n.free_keys || f.n + 1 < n.props.size())) {
        f.state = kObjAfterComma;
        f.ws = 0;
        out.push_back(t);
      } else if (c == '}' && (n.free_keys || none_required_from(n, f.n + 1))) {
        f.state = kObjClosed;
        f.ws = 0;
        out.push_back(t);
      }
      return;
    default: return;  // a key or value on top of it, or closed
  }
}

void Matcher::feed_array(Thread& t, uint8_t c, State& out, int depth) const {
  Frame& f = t.back();
  const Node& n = g_.node(f.node);
  bool ws;
  switch (f.state) {
    case kArrOpen:
      if (c == '[') {
        f.state = kArrAfterBracket;
        out.push_back(t);
      }
      return;
    case kArrAfterBracket:
    case kArrAfterComma:
      if (take_ws(f, c, ws)) out.push_back(t);
      if (ws) return;
      if (f.state == kArrAfterBracket && c == ']') {
        if (n.min_len == 0) {
          f.state = kArrClosed;
          f.ws = 0;
          out.push_back(t);
        }
        return;
      }
      if (f.n >= n.max_len) return;
      f.state = kArrInItem;
      f.ws = 0;
      push_and_feed(t, n.item, c, out, depth + 1);
      return;
    case kArrAfterItem:
      if (take_ws(f, c, ws)) out.push_back(t);
      if (ws) return;
      if (c == ',' && f.n < n.max_len) {
        f.state = kArrAfterComma;
        f.ws = 0;
        out.push_back(t);
      } else if (c == ']' && f.n >= n.min_len) {
        f.state = kArrClosed;
        f.ws = 0;
        out.push_back(t);
      }
      return;
    default: return;
  }
}

bool Matcher::feed_string(Frame& f, const Node& n, uint8_t c) const {
  switch (f.state) {
    case kStrOpen:
      if (c != '"') return false;
      f.state = kStrIn;
      return true;
    case kStrIn: {
      if (f.aux > 0) {  // a UTF-8 continuation byte
        uint8_t lo = 0x80, hi = 0xBF;
        switch (f.aux2) {  // the second byte of these leads has a narrower range
          case 0xE0: lo = 0xA0; break;  // no overlong 3-byte forms
          case 0xED: hi = 0x9F; break;  // no surrogates
          case 0xF0: lo = 0x90; break;  // no overlong 4-byte forms
          case 0xF4: hi = 0x8F; break;  // nothing above U+10FFFF
          default: break;
        }
        if (c < lo || c > hi) return false;
        f.aux2 = 0;
        --f.aux;
        return true;
      }
      if (c == '"') {
        if (f.n < n.min_len) return false;
        f.state = kStrClosed;
        return true;
      }
      if (c < 0x20 || f.n >= n.max_len) return false;  // control bytes must be escaped
      if (c == '\\') {
        ++f.n;
        f.state = kStrEscape;
        return true;
      }
      if (c < 0x80) {
        ++f.n;
        return true;
      }
      const int len = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
      if (len == 0) return false;
      ++f.n;
      f.aux = uint8_t(len);
      f.aux2 = (c == 0xE0 || c == 0xED || c == 0xF0 || c == 0xF4) ? c : 0;
      return true;
    }
    case kStrEscape:
      if (c != 0 && std::strchr("\"\\/bfnrt", c)) {
        f.state = kStrIn;
        return true;
      }
      if (c == 'u') {
        f.state = kStrHex;
        f.aux = 4;
        f.aux2 = 0;
        return true;
      }
      return false;
    case kStrHex: {
      if (!std::isxdigit(c)) return false;
      const uint8_t lc = uint8_t(std::tolower(c));
      // \uD800-\uDFFF: half of a surrogate pair, which parsers reject alone.
      if (f.aux == 4) f.aux2 = lc;
      if (f.aux == 3 && f.aux2 == 'd' && lc >= '8') return false;
      if (--f.aux == 0) f.state = kStrIn;
      return true;
    }
    default: return false;
  }
}

bool Matcher::feed_number(Frame& f, const Node& n, uint8_t c) const {
  if (f.n >= kMaxNumberChars) return false;
  const bool d = is_digit(c), e = !n.integer && (c == 'e' || c == 'E'), dot = !n.integer && c == '.';
  int next = -1;
  switch (f.state) {
    case 0: next = c == '-' ? 1 : c == '0' ? 2 : d ? 3 : -1; break;   // start
    case 1: next = c == '0' ? 2 : d ? 3 : -1; break;                    // after '-'
    case 2: next = dot ? 4 : e ? 6 : -1; break;                         // a leading 0
    case 3: next = d ? 3 : dot ? 4 : e ? 6 : -1; break;                 // integer digits
    case 4: next = d ? 5 : -1; break;                                   // after '.'
    case 5: next = d ? 5 : e ? 6 : -1; break;                           // fraction digits
    case 6: next = (c == '+' || c == '-') ? 7 : d ? 8 : -1; break;      // after 'e'
    case 7: case 8: next = d ? 8 : -1; break;                           // exponent
    default: break;
  }
  if (next < 0) return false;
  // At most two exponent digits: with the length bound the value stays
  // far inside a double's range, so every parser reads it (1e999 is an
  // overflow error to some).
  if (next == 8 && ++f.aux > 2) return false;
  f.state = uint8_t(next);
  ++f.n;
  return true;
}

bool Matcher::step(const State& in, uint8_t c, State& out) const {
  out.clear();
  budget_ = kStepBudget;
  for (const Thread& t : in) feed(t, c, out, 0);
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  return !out.empty();
}

std::optional<uint32_t> Matcher::plain_string_room(const State& s) const {
  if (s.size() != 1 || s[0].empty()) return std::nullopt;
  const Frame& f = s[0].back();
  if (f.node == kDocument) return std::nullopt;
  const Node& n = g_.node(f.node);
  if (n.kind != Kind::String || f.state != kStrIn || f.aux != 0) return std::nullopt;
  return n.max_len - f.n;
}

bool Matcher::complete(const State& s) const {
  for (const Thread& t : s) {
    if (t.size() == 1 && accepting(t[0])) return true;
    // A value that may still go on (a number) ends the output only
    // when no suffix has to follow it.
    if (t.size() == 2 && accepting(t[1]) && g_.suffix().empty()) return true;
  }
  return false;
}

bool Matcher::can_continue(const State& s) const {
  State out;
  for (int c = 0; c < 256; ++c)
    if (step(s, uint8_t(c), out)) return true;
  return false;
}

bool JsonPrefix::feed(std::string_view bytes) {
  State cur = state_, next;
  for (char ch : bytes) {
    if (!m_.step(cur, uint8_t(ch), next)) return false;
    cur.swap(next);
  }
  state_ = std::move(cur);
  return true;
}

}  // namespace moeflux::json_constraint
