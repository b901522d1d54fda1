#include "text/tokenizer/added_vocab.h"

#include <algorithm>

#include "text/tokenizer/utf8.h"

namespace moeflux {

void TokenTrie::add(std::string_view key, int32_t token_index) {
  if (key.empty()) return;  // HF never matches an empty token
  int32_t cur = 0;
  for (unsigned char c : key) {
    auto& next = nodes_[size_t(cur)].next;
    auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
    if (it != next.end() && it->first == c) {
      cur = it->second;
    } else {
      int32_t n = int32_t(nodes_.size());
      next.insert(it, {c, n});
      nodes_.emplace_back();
      cur = n;
    }
  }
  // Two tokens with the same content: aho-corasick reports the first added.
  if (nodes_[size_t(cur)].token < 0) nodes_[size_t(cur)].token = token_index;
  first_byte_[uint8_t(key[0])] = true;
}

int32_t TokenTrie::longest_at(std::string_view s, size_t pos, size_t& len) const {
  int32_t cur = 0, best = -1;
  for (size_t i = pos; i < s.size(); ++i) {
    const auto& next = nodes_[size_t(cur)].next;
    uint8_t c = uint8_t(s[i]);
    auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
    if (it == next.end() || it->first != c) break;
    cur = it->second;
    if (nodes_[size_t(cur)].token >= 0) {
      best = nodes_[size_t(cur)].token;
      len = i + 1 - pos;
    }
  }
  return best;
}

void AddedVocab::build(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents) {
  tokens_ = std::move(tokens);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].normalized) norm_.add(normalized_contents[i], int32_t(i));
    else raw_.add(tokens_[i].content, int32_t(i));
  }
}

namespace {

// Rust char::is_alphanumeric on the last / first character.
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size();
  return utf8::is_alphanumeric(utf8::prev(s, i));
}
bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return utf8::is_alphanumeric(utf8::next(s, i));
}

}  // namespace

void AddedVocab::split(std::string_view text, bool normalized_kind, std::vector<Segment>& out) const {
  const TokenTrie& trie = normalized_kind ? norm_ : raw_;
  if (trie.empty()) {
    if (!text.empty()) out.push_back({0, uint32_t(text.size()), -1});
    return;
  }
  size_t start_offset = 0;  // end of the previous token
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.may_start(uint8_t(text[pos]))) { ++pos; continue; }
    size_t len = 0;
    int32_t ti = trie.longest_at(text, pos, len);
    if (ti < 0) { ++pos; continue; }
    size_t start = pos, stop = pos + len;
    pos = stop;  // non-overlapping: the next search starts after this match
    const AddedToken& tok = tokens_[size_t(ti)];
    if (tok.single_word) {
      bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      // Leftmost whitespace of the run just before the token, but never
      // before what the previous token already took.
      size_t ns = start;
      while (ns > 0) {
        size_t k = ns;
        if (!utf8::is_whitespace(utf8::prev(text, k))) break;
        ns = k;
      }
      start = std::max(ns, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        size_t k = stop;
        if (!utf8::is_whitespace(utf8::next(text, k))) break;
        stop = k;
      }
      // HF's match iterator resumes after the token itself, not after the
      // stripped spaces; kept for exactness.
    }
    if (start > start_offset) out.push_back({uint32_t(start_offset), uint32_t(start), -1});
    out.push_back({uint32_t(start), uint32_t(stop), tok.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({uint32_t(start_offset), uint32_t(text.size()), -1});
}

}  // namespace moeflux
