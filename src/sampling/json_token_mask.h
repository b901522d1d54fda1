// Constrained sampling for JSON output: before each token is drawn, every
// token whose bytes cannot continue the document toward one valid against
// the schema gets -inf; the end tokens are allowed only once the document
// is complete. The output of a generation that ends on an end token always
// parses and validates.
//
// The vocabulary is a byte trie, walked depth first with the matcher's
// state, so a prefix shared by many tokens is matched once and a dead
// prefix prunes all the tokens below it. Inside a string, where most of a
// vocabulary is allowed, the walk would visit most of the trie: there the
// tokens of plain characters (no quote, backslash or control byte, whole
// UTF-8 sequences) are allowed by their code-point count alone, and only
// the others are walked (measured with Qwen3's 151k tokens: 46 ms -> see
// BENCHMARKS.md).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sampling/json_grammar.h"
#include "sampling/json_matcher.h"

namespace moeflux::json_constraint {

class TokenTrie {
 public:
  // token_bytes[id]: what token id decodes to; empty: never allowed as text
  // (control tokens). With `keep` (one flag per token), only those kept.
  explicit TokenTrie(const std::vector<std::string>& token_bytes, std::span<const uint8_t> keep = {});
  struct Node {
    uint32_t first_child = 0, children = 0;  // a range of edges_
    uint32_t first_token = 0, tokens = 0;    // a range of token_ids_ ending here
  };
  struct Edge {
    uint8_t byte;
    uint32_t node;
  };
  const Node& node(uint32_t i) const { return nodes_[i]; }
  std::span<const Edge> edges(const Node& n) const { return {edges_.data() + n.first_child, n.children}; }
  std::span<const int32_t> tokens(const Node& n) const { return {token_ids_.data() + n.first_token, n.tokens}; }
  size_t vocab() const { return vocab_; }

 private:
  void build(const std::vector<std::string>& bytes, std::vector<int32_t>& ids, size_t lo, size_t hi, size_t depth,
             uint32_t self);
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<int32_t> token_ids_;
  size_t vocab_;
};

// A vocabulary prepared for masking: made once per tokenizer, shared by
// every request.
struct MaskVocab {
  explicit MaskVocab(const std::vector<std::string>& token_bytes);
  TokenTrie all;                                   // every text token
  TokenTrie special;                               // those that are not plain string text
  std::vector<std::pair<uint32_t, int32_t>> plain; // (code points, id), by code points
  size_t vocab;
};

class JsonTokenMask {
 public:
  JsonTokenMask(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const MaskVocab> vocab,
                std::vector<int32_t> end_tokens);

  // allowed[id] = 1 for every token that may come next (sized to the vocabulary).
  void allowed(std::vector<uint8_t>& allowed) const;
  // The same, by walking the whole trie (no plain-text shortcut): the
  // reference the tests hold allowed() to.
  void allowed_by_walk(std::vector<uint8_t>& allowed) const;
  // Sets every token that may not come next to -inf.
  void apply(std::span<float> logits) const;
  // Records the token drawn; throws (internal) if it was not allowed.
  void accept(int32_t token, std::string_view bytes);
  bool complete() const { return prefix_.complete(); }
  bool ended() const { return ended_; }  // an end token after a complete document

 private:
  void visit(const TokenTrie& trie, uint32_t node, const State& s, std::vector<uint8_t>& allowed,
             std::vector<State>& scratch, size_t depth) const;
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const MaskVocab> vocab_;
  std::vector<int32_t> end_tokens_;
  JsonPrefix prefix_;
  bool ended_ = false;
};

}  // namespace moeflux::json_constraint
