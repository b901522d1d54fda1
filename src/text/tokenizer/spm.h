#pragma once
// llama.cpp's SPM tokenizer (llm_tokenizer_spm), the model of GGUF "llama"
// vocabularies: SentencePiece BPE driven by token scores instead of a merge
// list. The input (spaces already turned into U+2581 by the normalizer) is
// split into UTF-8 characters; then, repeatedly, the adjacent pair whose
// concatenation is a token with the highest score is merged (ties: the
// leftmost pair). Each final piece is its token, or else its bytes as
// <0xNN> tokens, or else the unknown token.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer/flat_map.h"
#include "text/tokenizer/model.h"

namespace moeflux {

class SpmModel final : public TokenModel {
 public:
  // Token i has id i and score scores[i] (same length). Every token takes
  // part in merges whatever its type, as in llama.cpp. Fails on a
  // duplicate token; `source` prefixes errors.
  SpmModel(const std::vector<std::string>& tokens, std::vector<float> scores, std::optional<int32_t> unk_id,
           const std::string& source);

  void tokenize(std::string_view text, std::vector<int32_t>& out) const override;
  // Only reached with a ByteLevel pre-tokenizer, which no SPM vocabulary
  // has: maps the bytes to their GPT-2 characters and tokenizes those.
  void tokenize_bytes(std::string_view word, std::vector<int32_t>& out) const override;

  int32_t id_count() const override { return int32_t(id_to_token_.size()); }
  int32_t find(std::string_view token) const override { return token_to_id_.find(token); }
  const std::string& token(int32_t id) const override { return id_to_token_[size_t(id)]; }
  bool has_id(int32_t id) const override { return id >= 0 && size_t(id) < id_to_token_.size(); }
  void set_extra_token(int32_t id, const std::string& text) override;

 private:
  void push_bytes(std::string_view piece, std::vector<int32_t>& out) const;

  StringIdMap token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<float> scores_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];  // <0xNN>, else the one-byte token, else -1 (llama.cpp's byte_to_token)
};

}  // namespace moeflux
