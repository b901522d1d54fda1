#pragma once
// Added tokens ("added_tokens" of tokenizer.json): found in the input before
// any splitting and never split, with HF's leftmost-longest matching and
// its lstrip / rstrip / single_word rules.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// One part of a split: text[begin, end) is either an added token (id >= 0)
// or plain text (id < 0).
struct Segment {
  uint32_t begin, end;
  int32_t id;
};

// A byte trie over token contents, searched leftmost-longest (the
// aho-corasick MatchKind::LeftmostLongest that HF uses).
class TokenTrie {
 public:
  void add(std::string_view key, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest key starting at s[pos]: returns its token index and sets len, or -1.
  int32_t longest_at(std::string_view s, size_t pos, size_t& len) const;
  bool may_start(uint8_t b) const { return first_byte_[b]; }

 private:
  struct Node {
    int32_t token = -1;
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  std::vector<Node> nodes_{1};
  bool first_byte_[256] = {};
};

class AddedVocab {
 public:
  // `normalized_contents[i]` is tokens[i].content after the tokenizer's
  // normalizer (used for tokens with normalized=true).
  void build(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents);

  // Splits `text` at the added tokens of one kind: normalized=false tokens
  // on the raw input, normalized=true tokens on a normalized piece.
  void split(std::string_view text, bool normalized_kind, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  TokenTrie raw_, norm_;
};

}  // namespace moeflux
