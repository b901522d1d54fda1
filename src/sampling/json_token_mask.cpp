#include "sampling/json_token_mask.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>

#include "core/error.h"

namespace moeflux::json_constraint {

TokenTrie::TokenTrie(const std::vector<std::string>& bytes, std::span<const uint8_t> keep) : vocab_(bytes.size()) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < bytes.size(); ++i)
    if (!bytes[i].empty() && (keep.empty() || keep[i])) ids.push_back(int32_t(i));
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
  nodes_.push_back({});
  build(bytes, ids, 0, ids.size(), 0, 0);
}

// ids[lo, hi) share their first `depth` bytes (the path to node `self`),
// sorted; those of exactly `depth` bytes end here and come first.
void TokenTrie::build(const std::vector<std::string>& bytes, std::vector<int32_t>& ids, size_t lo, size_t hi,
                      size_t depth, uint32_t self) {
  size_t i = lo;
  nodes_[self].first_token = uint32_t(token_ids_.size());
  while (i < hi && bytes[size_t(ids[i])].size() == depth) token_ids_.push_back(ids[i++]);
  nodes_[self].tokens = uint32_t(token_ids_.size()) - nodes_[self].first_token;
  // The children's edges are contiguous: add them all, then recurse.
  struct Group {
    size_t lo, hi;
  };
  std::vector<Group> groups;
  while (i < hi) {
    const uint8_t b = uint8_t(bytes[size_t(ids[i])][depth]);
    size_t j = i;
    while (j < hi && uint8_t(bytes[size_t(ids[j])][depth]) == b) ++j;
    groups.push_back({i, j});
    i = j;
  }
  nodes_[self].first_child = uint32_t(edges_.size());
  nodes_[self].children = uint32_t(groups.size());
  for (const Group& g : groups) {
    edges_.push_back({uint8_t(bytes[size_t(ids[g.lo])][depth]), uint32_t(nodes_.size())});
    nodes_.push_back({});
  }
  for (size_t k = 0; k < groups.size(); ++k)
    build(bytes, ids, groups[k].lo, groups[k].hi, depth + 1, edges_[nodes_[self].first_child + k].node);
}

namespace {

// Code points of `b` when it is plain string text: only characters a JSON
// string holds as they are (no '"', '\\', control byte) in whole UTF-8
// sequences, the same ranges the matcher accepts.
std::optional<uint32_t> plain_code_points(std::string_view b) {
  uint32_t cps = 0;
  for (size_t i = 0; i < b.size();) {
    const uint8_t c = uint8_t(b[i]);
    if (c < 0x20 || c == '"' || c == '\\') return std::nullopt;
    size_t len = 0;  // continuation bytes
    if (c >= 0x80) {
      if (c >= 0xC2 && c <= 0xDF) len = 1;
      else if (c >= 0xE0 && c <= 0xEF) len = 2;
      else if (c >= 0xF0 && c <= 0xF4) len = 3;
      else return std::nullopt;
    }
    if (i + len >= b.size()) return std::nullopt;  // a sequence the next token would finish
    for (size_t k = 1; k <= len; ++k) {
      const uint8_t d = uint8_t(b[i + k]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (d < lo || d > hi) return std::nullopt;
    }
    i += len + 1;
    ++cps;
  }
  return cps;
}

std::vector<uint8_t> not_plain(const std::vector<std::string>& bytes) {
  std::vector<uint8_t> keep(bytes.size(), 0);
  for (size_t i = 0; i < bytes.size(); ++i) keep[i] = !plain_code_points(bytes[i]).has_value();
  return keep;
}

}  // namespace

MaskVocab::MaskVocab(const std::vector<std::string>& bytes)
    : all(bytes), special(bytes, not_plain(bytes)), vocab(bytes.size()) {
  for (size_t i = 0; i < bytes.size(); ++i)
    if (!bytes[i].empty())
      if (auto cps = plain_code_points(bytes[i])) plain.push_back({*cps, int32_t(i)});
  std::sort(plain.begin(), plain.end());
}

JsonTokenMask::JsonTokenMask(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const MaskVocab> vocab,
                             std::vector<int32_t> end_tokens)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)), end_tokens_(std::move(end_tokens)), prefix_(*grammar_) {
  if (end_tokens_.empty()) fail_as(ErrorKind::BadInput, "constrained JSON output needs an end-of-sequence token");
}

void JsonTokenMask::visit(const TokenTrie& trie, uint32_t node, const State& s, std::vector<uint8_t>& allowed,
                          std::vector<State>& scratch, size_t depth) const {
  const TokenTrie::Node& n = trie.node(node);
  if (scratch.size() <= depth) scratch.resize(depth + 1);
  for (const TokenTrie::Edge& e : trie.edges(n)) {
    State& next = scratch[depth];
    if (!prefix_.matcher().step(s, e.byte, next)) continue;
    const TokenTrie::Node& child = trie.node(e.node);
    for (int32_t id : trie.tokens(child)) allowed[size_t(id)] = 1;
    // scratch[depth] is reused by this loop: the child works on a copy.
    const State here = next;
    visit(trie, e.node, here, allowed, scratch, depth + 1);
  }
}

void JsonTokenMask::allowed(std::vector<uint8_t>& allowed) const {
  allowed.assign(vocab_->vocab, 0);
  if (ended_) return;
  std::vector<State> scratch;
  if (auto room = prefix_.matcher().plain_string_room(prefix_.state())) {
    for (const auto& [cps, id] : vocab_->plain) {
      if (cps > *room) break;
      allowed[size_t(id)] = 1;
    }
    visit(vocab_->special, 0, prefix_.state(), allowed, scratch, 0);
  } else {
    visit(vocab_->all, 0, prefix_.state(), allowed, scratch, 0);
  }
  if (prefix_.complete())
    for (int32_t id : end_tokens_)
      if (id >= 0 && size_t(id) < allowed.size()) allowed[size_t(id)] = 1;
}

void JsonTokenMask::allowed_by_walk(std::vector<uint8_t>& allowed) const {
  allowed.assign(vocab_->vocab, 0);
  if (ended_) return;
  std::vector<State> scratch;
  visit(vocab_->all, 0, prefix_.state(), allowed, scratch, 0);
  if (prefix_.complete())
    for (int32_t id : end_tokens_)
      if (id >= 0 && size_t(id) < allowed.size()) allowed[size_t(id)] = 1;
}

void JsonTokenMask::apply(std::span<float> logits) const {
  std::vector<uint8_t> ok;
  allowed(ok);
  const size_t n = std::min(ok.size(), logits.size());
  for (size_t i = 0; i < n; ++i)
    if (!ok[i]) logits[i] = -std::numeric_limits<float>::infinity();
  for (size_t i = n; i < logits.size(); ++i) logits[i] = -std::numeric_limits<float>::infinity();
}

void JsonTokenMask::accept(int32_t token, std::string_view bytes) {
  if (ended_) fail_as(ErrorKind::Internal, "constrained JSON: token {} after the end", token);
  if (std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end()) {
    if (!prefix_.complete())
      fail_as(ErrorKind::Internal, "constrained JSON: end token {} before the document is complete", token);
    ended_ = true;
    return;
  }
  if (bytes.empty() || !prefix_.feed(bytes))
    fail_as(ErrorKind::Internal, "constrained JSON: token {} cannot continue the document", token);
}

}  // namespace moeflux::json_constraint
