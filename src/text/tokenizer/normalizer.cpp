#include "text/tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

namespace {

std::string utf8proc_apply(std::string_view s, int options) {
  utf8proc_uint8_t* dst = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &dst,
                        utf8proc_option_t(options | UTF8PROC_STABLE));
  if (n < 0) fail("unicode normalization failed: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(dst), size_t(n));
  std::free(dst);
  return out;
}

// Code points that NFC never changes and that never combine with a
// neighbour: below U+0300 (Latin-1 and Latin Extended are NFC_QC=Yes,
// ccc=0, and never a second in a composition pair), CJK symbols before the
// combining tone marks, kana except the combining (semi-)voiced marks,
// CJK unified ideographs and Hangul syllables (a trailing T jamo is not
// inert, so LV+T still takes the slow path).
bool nfc_inert(char32_t cp) {
  return cp < 0x300 || (cp >= 0x3000 && cp <= 0x3029) || (cp >= 0x3040 && cp <= 0x3098) ||
         (cp >= 0x309B && cp <= 0x30FF) || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3);
}

class Unicode final : public Normalizer {
 public:
  explicit Unicode(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    if (options_ == UTF8PROC_COMPOSE) { nfc(s); return; }
    if (all_ascii(s)) return;
    s = utf8proc_apply(s, options_);
  }

 private:
  int options_;
  static bool all_ascii(std::string_view s) {
    for (unsigned char c : s) if (c >= 0x80) return false;
    return true;
  }
  // NFC only on the runs that can change. An ASCII character never composes
  // with what precedes it, so runs are cut before ASCII; a run starts at the
  // ASCII starter just before it, which a combining mark may join.
  static void nfc(std::string& s) {
    size_t i = 0, n = s.size();
    std::string out;
    size_t copied = 0;  // s[0..copied) is already in out (only used once something changed)
    bool changed = false;
    while (i < n) {
      if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
      size_t run_begin = (i > 0) ? i - 1 : 0;
      bool inert = true;
      size_t j = i;
      while (j < n && static_cast<unsigned char>(s[j]) >= 0x80) {
        char32_t cp = utf8::next(s, j);
        inert = inert && nfc_inert(cp);
      }
      if (!inert) {
        std::string_view run(s.data() + run_begin, j - run_begin);
        std::string norm = utf8proc_apply(run, UTF8PROC_COMPOSE);
        if (norm != run) {
          if (!changed) { out.reserve(n + 16); changed = true; }
          out.append(s, copied, run_begin - copied);
          out += norm;
          copied = j;
        }
      }
      i = j;
    }
    if (changed) {
      out.append(s, copied, n - copied);
      s = std::move(out);
    }
  }
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& s) const override {
    for (const auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

class Prepend final : public Normalizer {
 public:
  Prepend(std::string text, bool append) : text_(std::move(text)), append_(append) {}
  void normalize(std::string& s) const override {
    if (s.empty()) return;  // HF adds nothing to an empty piece
    if (append_) s += text_; else s.insert(0, text_);
  }

 private:
  std::string text_;
  bool append_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void normalize(std::string& s) const override {
    std::string out;
    if (re_) {
      std::vector<std::pair<uint32_t, uint32_t>> m;
      re_->find_all(s, m);
      if (m.empty()) return;
      size_t last = 0;
      for (auto [b, e] : m) {
        if (e == b) continue;  // empty matches replace nothing
        out.append(s, last, b - last);
        out += content_;
        last = e;
      }
      out.append(s, last, s.size() - last);
    } else {
      if (literal_.empty() || s.find(literal_) == std::string::npos) return;
      size_t last = 0, pos;
      while ((pos = s.find(literal_, last)) != std::string::npos) {
        out.append(s, last, pos - last);
        out += content_;
        last = pos + literal_.size();
      }
      out.append(s, last, s.size() - last);
    }
    s = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t k = b;
        if (!utf8::is_whitespace(utf8::next(s, k))) break;
        b = k;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e;
        if (!utf8::is_whitespace(utf8::prev(s, k))) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json::Value& v) {
  if (v.is_null()) return nullptr;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    for (const auto& e : v.at("normalizers").elements()) {
      auto n = make_normalizer(e);
      if (n) items.push_back(std::move(n));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "NFC") return std::make_unique<Unicode>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<Unicode>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<Unicode>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<Unicode>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Prepend") return std::make_unique<Prepend>(v.at("prepend").str(), false);
  if (type == "Append") return std::make_unique<Prepend>(v.at("append").str(), true);
  if (type == "Strip") return std::make_unique<Strip>(v.bool_or("strip_left", false), v.bool_or("strip_right", false));
  if (type == "Replace") {
    json::Value pat = v.at("pattern");
    std::string content = v.at("content").str();
    if (pat.has("String")) return std::make_unique<Replace>(pat.at("String").str(), nullptr, content);
    if (pat.has("Regex")) return std::make_unique<Replace>("", std::make_unique<Regex>(pat.at("Regex").str()), content);
    pat.fail_msg("expected {\"String\": ...} or {\"Regex\": ...}");
  }
  v.at("type").fail_msg("unsupported normalizer type \"" + type + "\"");
}

}  // namespace moeflux
