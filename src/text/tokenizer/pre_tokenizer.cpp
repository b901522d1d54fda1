#include "text/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Matches = std::vector<std::pair<uint32_t, uint32_t>>;

void Pieces::materialize_byte_level() {
  if (!byte_level) return;
  std::string out;
  out.reserve(text.size() * 2);
  for (auto& s : spans) {
    uint32_t b = uint32_t(out.size());
    utf8::bytes_to_chars(view(s), out);
    s.begin = b;
    s.end = uint32_t(out.size());
  }
  text = std::move(out);
  byte_level = false;
}

void split_spans(Pieces& p, SplitBehavior behavior, bool invert, const std::vector<Matches>& matches) {
  struct Part {
    uint32_t b, e;
    bool m;
  };
  std::vector<Pieces::Span> out;
  out.reserve(p.spans.size() * 2);
  std::vector<Part> parts, merged;
  for (size_t si = 0; si < p.spans.size(); ++si) {
    const auto& span = p.spans[si];
    parts.clear();
    uint32_t prev = span.begin;
    for (auto [b, e] : matches[si]) {
      if (prev != b) parts.push_back({prev, b, invert});
      parts.push_back({b, e, !invert});
      prev = e;
    }
    if (prev != span.end) parts.push_back({prev, span.end, invert});

    merged.clear();
    switch (behavior) {
      case SplitBehavior::Isolated:
        merged = parts;
        break;
      case SplitBehavior::Removed:
        for (auto& x : parts) if (!x.m) merged.push_back(x);
        break;
      case SplitBehavior::MergedWithPrevious: {
        bool prev_match = false;
        for (auto& x : parts) {
          if (x.m && !prev_match && !merged.empty()) merged.back().e = x.e;
          else merged.push_back(x);
          prev_match = x.m;
        }
        break;
      }
      case SplitBehavior::MergedWithNext: {
        bool prev_match = false;  // whether the part to the right matched
        for (size_t k = parts.size(); k-- > 0;) {
          const auto& x = parts[k];
          if (x.m && !prev_match && !merged.empty()) merged.back().b = x.b;
          else merged.push_back(x);
          prev_match = x.m;
        }
        std::reverse(merged.begin(), merged.end());
        break;
      }
      case SplitBehavior::Contiguous: {
        bool prev_match = false;
        for (auto& x : parts) {
          if (x.m == prev_match && !merged.empty()) merged.back().e = x.e;
          else merged.push_back(x);
          prev_match = x.m;
        }
        break;
      }
    }
    for (auto& x : merged)
      if (x.e > x.b) out.push_back({x.b, x.e, span.first && x.b == span.begin});
  }
  p.spans = std::move(out);
}

namespace {

SplitBehavior parse_behavior(const json::Value& v) {
  std::string s = v.str();
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  v.fail_msg("unknown split behavior \"" + s + "\"");
}

// Every character for which pred holds is one match (HF's Fn(char) pattern).
template <typename Pred>
std::vector<Matches> char_matches(const Pieces& p, Pred pred) {
  std::vector<Matches> all(p.spans.size());
  for (size_t si = 0; si < p.spans.size(); ++si) {
    auto s = p.spans[si];
    std::string_view t(p.text);
    for (size_t i = s.begin; i < s.end;) {
      size_t b = i;
      char32_t c = utf8::next(t, i);
      if (pred(c)) all[si].emplace_back(uint32_t(b), uint32_t(i));
    }
  }
  return all;
}

std::vector<Matches> regex_matches(const Pieces& p, const Regex& re) {
  std::vector<Matches> all(p.spans.size());
  for (size_t si = 0; si < p.spans.size(); ++si) {
    auto s = p.spans[si];
    re.find_all(p.view(s), all[si]);
    for (auto& m : all[si]) { m.first += s.begin; m.second += s.begin; }
  }
  return all;
}

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void apply(Pieces& p) const override {
    for (const auto& t : items_) t->apply(p);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

class Split final : public PreTokenizer {
 public:
  Split(std::string literal, std::unique_ptr<Regex> re, SplitBehavior b, bool invert)
      : literal_(std::move(literal)), re_(std::move(re)), behavior_(b), invert_(invert) {}
  void apply(Pieces& p) const override {
    p.materialize_byte_level();
    if (re_) {
      split_spans(p, behavior_, invert_, regex_matches(p, *re_));
      return;
    }
    std::vector<Matches> all(p.spans.size());
    for (size_t si = 0; si < p.spans.size() && !literal_.empty(); ++si) {
      std::string_view t = p.view(p.spans[si]);
      for (size_t pos = t.find(literal_); pos != std::string_view::npos; pos = t.find(literal_, pos + literal_.size()))
        all[si].emplace_back(uint32_t(p.spans[si].begin + pos), uint32_t(p.spans[si].begin + pos + literal_.size()));
    }
    split_spans(p, behavior_, invert_, all);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), re_(use_regex ? std::make_unique<Regex>(kGpt2Pattern) : nullptr) {}
  void apply(Pieces& p) const override {
    p.materialize_byte_level();  // a second ByteLevel maps the mapped text again, as HF would
    if (add_prefix_space_) {
      // HF prepends to every piece that does not start with a space.
      std::string out;
      out.reserve(p.text.size() + p.spans.size());
      for (auto& s : p.spans) {
        auto v = p.view(s);
        uint32_t b = uint32_t(out.size());
        if (v.empty() || v[0] != ' ') out.push_back(' ');
        out.append(v);
        s.begin = b;
        s.end = uint32_t(out.size());
      }
      p.text = std::move(out);
    }
    if (re_) split_spans(p, SplitBehavior::Isolated, false, regex_matches(p, *re_));
    p.byte_level = true;
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void apply(Pieces& p) const override {
    p.materialize_byte_level();
    split_spans(p, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false,
                char_matches(p, utf8::is_numeric));
  }

 private:
  bool individual_;
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void apply(Pieces& p) const override {
    p.materialize_byte_level();
    split_spans(p, SplitBehavior::Removed, false, char_matches(p, utf8::is_whitespace));
  }
};

class Whitespace final : public PreTokenizer {
 public:
  Whitespace() : re_(R"(\w+|[^\w\s]+)") {}
  void apply(Pieces& p) const override {
    p.materialize_byte_level();
    split_spans(p, SplitBehavior::Removed, true, regex_matches(p, re_));
  }

 private:
  Regex re_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  Metaspace(char32_t replacement, Prepend scheme, bool split) : scheme_(scheme), split_(split), rep_char_(replacement) {
    utf8::append(rep_, replacement);
  }
  void apply(Pieces& p) const override {
    p.materialize_byte_level();
    std::string out;
    out.reserve(p.text.size() + p.spans.size() * rep_.size());
    for (auto& s : p.spans) {
      auto v = p.view(s);
      uint32_t b = uint32_t(out.size());
      bool starts_with_rep = (!v.empty() && v[0] == ' ') || v.substr(0, rep_.size()) == rep_;
      bool prepend = scheme_ == Prepend::Always || (scheme_ == Prepend::First && s.first);
      if (prepend && !starts_with_rep) out += rep_;
      for (char c : v) {
        if (c == ' ') out += rep_; else out.push_back(c);
      }
      s.begin = b;
      s.end = uint32_t(out.size());
    }
    p.text = std::move(out);
    if (split_) {
      char32_t r = rep_char_;
      split_spans(p, SplitBehavior::MergedWithNext, false, char_matches(p, [r](char32_t c) { return c == r; }));
    }
  }

 private:
  Prepend scheme_;
  bool split_;
  char32_t rep_char_;
  std::string rep_;
};

char32_t single_char(const json::Value& v) {
  std::string s = v.str();
  size_t i = 0;
  if (s.empty()) v.fail_msg("expected a single character, got an empty string");
  char32_t c = utf8::next(s, i);
  if (i != s.size()) v.fail_msg("expected a single character, got \"" + s + "\"");
  return c;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& v) {
  if (v.is_null()) return nullptr;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (const auto& e : v.at("pretokenizers").elements()) {
      auto t = make_pre_tokenizer(e);
      if (t) items.push_back(std::move(t));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "Split") {
    json::Value pat = v.at("pattern");
    SplitBehavior b = parse_behavior(v.at("behavior"));
    bool invert = v.bool_or("invert", false);
    if (pat.has("String")) return std::make_unique<Split>(pat.at("String").str(), nullptr, b, invert);
    if (pat.has("Regex")) return std::make_unique<Split>("", std::make_unique<Regex>(pat.at("Regex").str()), b, invert);
    pat.fail_msg("expected {\"String\": ...} or {\"Regex\": ...}");
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(v.bool_or("add_prefix_space", true), v.bool_or("use_regex", true));
  if (type == "Digits") return std::make_unique<Digits>(v.bool_or("individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "Metaspace") {
    char32_t rep = v.has("replacement") ? single_char(v.at("replacement")) : U'\u2581';
    Metaspace::Prepend scheme = Metaspace::Prepend::Always;
    bool has_scheme = v.has("prepend_scheme") && !v.at("prepend_scheme").is_null();
    if (has_scheme) {
      std::string s = v.at("prepend_scheme").str();
      if (s == "always") scheme = Metaspace::Prepend::Always;
      else if (s == "first") scheme = Metaspace::Prepend::First;
      else if (s == "never") scheme = Metaspace::Prepend::Never;
      else v.at("prepend_scheme").fail_msg("unknown prepend_scheme \"" + s + "\"");
    }
    // Files written before prepend_scheme existed carry add_prefix_space.
    if (v.has("add_prefix_space") && !v.at("add_prefix_space").is_null() && !v.at("add_prefix_space").as_bool()) {
      if (has_scheme && scheme != Metaspace::Prepend::Never)
        v.fail_msg("add_prefix_space=false contradicts prepend_scheme");
      scheme = Metaspace::Prepend::Never;
    }
    return std::make_unique<Metaspace>(rep, scheme, v.bool_or("split", true));
  }
  v.at("type").fail_msg("unsupported pre_tokenizer type \"" + type + "\"");
}

}  // namespace moeflux
