#include "text/tokenizer/decoder.h"

#include "core/error.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& t) const override {
    for (const auto& d : items_) d->decode_chain(t);
  }
  bool has_byte_level() const override {
    for (const auto& d : items_) if (d->has_byte_level()) return true;
    return false;
  }
  bool has_byte_fallback() const override {
    for (const auto& d : items_) if (d->has_byte_fallback()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

// Maps GPT-2 alphabet characters back to bytes; a token with any character
// outside the alphabet (an added token like "<｜User｜>") is taken as its
// UTF-8 bytes. Everything is joined and invalid UTF-8 becomes U+FFFD per
// maximal subpart (Rust's from_utf8_lossy).
class ByteLevel final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& t) const override {
    std::string bytes;
    for (const auto& tok : t) {
      size_t before = bytes.size();
      if (!utf8::chars_to_bytes(tok, bytes)) {
        bytes.resize(before);
        bytes += tok;
      }
    }
    t.assign(1, utf8::valid_prefix(bytes) == bytes.size() ? bytes : utf8::to_valid_lossy(bytes));
  }
  bool has_byte_level() const override { return true; }
};

// <0xXX> tokens become bytes; a run of them that is not valid UTF-8 becomes
// one U+FFFD per byte token (HF's rule, unlike from_utf8_lossy).
class ByteFallback final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& t) const override {
    std::vector<std::string> out;
    out.reserve(t.size());
    std::string run;
    size_t run_tokens = 0;
    auto flush = [&] {
      if (run_tokens == 0) return;
      if (utf8::valid_prefix(run) == run.size()) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run_tokens; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_tokens = 0;
    };
    for (auto& tok : t) {
      if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>' && hex_digit(tok[3]) >= 0 &&
          hex_digit(tok[4]) >= 0) {
        run.push_back(char(hex_digit(tok[3]) * 16 + hex_digit(tok[4])));
        ++run_tokens;
      } else {
        flush();
        out.push_back(std::move(tok));
      }
    }
    flush();
    t = std::move(out);
  }
  bool has_byte_fallback() const override { return true; }
};

class Fuse final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& t) const override {
    std::string all;
    for (const auto& s : t) all += s;
    t.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character
// from every token.
class Strip final : public Decoder {
 public:
  Strip(char32_t c, size_t start, size_t stop) : c_(c), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& tok : t) {
      size_t b = 0, e = tok.size();
      for (size_t k = 0; k < start_ && b < e; ++k) {
        size_t i = b;
        if (utf8::next(tok, i) != c_) break;
        b = i;
      }
      for (size_t k = 0; k < stop_ && e > b; ++k) {
        size_t i = e;
        if (utf8::prev(tok, i) != c_) break;
        e = i;
      }
      tok = tok.substr(b, e - b);
    }
  }

 private:
  char32_t c_;
  size_t start_, stop_;
};

class Replace final : public Decoder {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& tok : t) {
      std::string out;
      size_t last = 0;
      if (re_) {
        std::vector<std::pair<uint32_t, uint32_t>> m;
        re_->find_all(tok, m);
        for (auto [b, e] : m) {
          if (e == b) continue;
          out.append(tok, last, b - last);
          out += content_;
          last = e;
        }
      } else if (!literal_.empty()) {
        for (size_t pos = tok.find(literal_); pos != std::string::npos; pos = tok.find(literal_, last)) {
          out.append(tok, last, pos - last);
          out += content_;
          last = pos + literal_.size();
        }
      }
      out.append(tok, last, tok.size() - last);
      tok = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// The replacement character becomes a space, except in the first token,
// where every one is dropped unless prepend_scheme is "never" (HF's rule).
class Metaspace final : public Decoder {
 public:
  Metaspace(char32_t rep, bool strip_first) : rep_(rep), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& t) const override {
    for (size_t i = 0; i < t.size(); ++i) {
      std::string out;
      const std::string& tok = t[i];
      for (size_t k = 0; k < tok.size();) {
        size_t b = k;
        char32_t c = utf8::next(tok, k);
        if (c == rep_) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
        } else {
          out.append(tok, b, k - b);
        }
      }
      t[i] = std::move(out);
    }
  }

 private:
  char32_t rep_;
  bool strip_first_;
};

char32_t one_char(const json::Value& v) {
  std::string s = v.str();
  size_t i = 0;
  if (s.empty()) v.fail_msg("expected a single character, got an empty string");
  char32_t c = utf8::next(s, i);
  if (i != s.size()) v.fail_msg("expected a single character, got \"" + s + "\"");
  return c;
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json::Value& v) {
  if (v.is_null()) return nullptr;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    for (const auto& e : v.at("decoders").elements()) {
      auto d = make_decoder(e);
      if (d) items.push_back(std::move(d));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    int64_t start = v.int_or("start", 0), stop = v.int_or("stop", 0);
    if (start < 0 || stop < 0) v.fail_msg("start/stop must be non-negative");
    return std::make_unique<Strip>(one_char(v.at("content")), size_t(start), size_t(stop));
  }
  if (type == "Replace") {
    json::Value pat = v.at("pattern");
    std::string content = v.at("content").str();
    if (pat.has("String")) return std::make_unique<Replace>(pat.at("String").str(), nullptr, content);
    if (pat.has("Regex")) return std::make_unique<Replace>("", std::make_unique<Regex>(pat.at("Regex").str()), content);
    pat.fail_msg("expected {\"String\": ...} or {\"Regex\": ...}");
  }
  if (type == "Metaspace") {
    char32_t rep = v.has("replacement") ? one_char(v.at("replacement")) : U'\u2581';
    bool strip_first = true;
    if (v.has("prepend_scheme") && !v.at("prepend_scheme").is_null()) {
      std::string s = v.at("prepend_scheme").str();
      if (s != "always" && s != "first" && s != "never")
        v.at("prepend_scheme").fail_msg("unknown prepend_scheme \"" + s + "\"");
      strip_first = s != "never";
    }
    if (v.has("add_prefix_space") && !v.at("add_prefix_space").is_null() && !v.at("add_prefix_space").as_bool())
      strip_first = false;
    return std::make_unique<Metaspace>(rep, strip_first);
  }
  v.at("type").fail_msg("unsupported decoder type \"" + type + "\"");
}

std::string run_decoder(const Decoder& d, std::vector<std::string> tokens) {
  d.decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace moeflux
