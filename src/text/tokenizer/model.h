#pragma once
// The subword model behind a Tokenizer: turns one pre-tokenized word into
// ids, and owns the id <-> token text table. Two kinds exist: BPE with merge
// ranks (tokenizer.json, GGUF "gpt2") and SentencePiece-style merges driven
// by token scores (GGUF "llama", llama.cpp's SPM tokenizer).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

// The largest token id a tokenizer file may use. Ids index dense tables
// (id -> token), so a hostile id of 1e9 would allocate tens of GB; the cap
// is the same as a model's sizes (2^24), far above any real vocabulary.
inline constexpr int64_t kMaxTokenId = (int64_t(1) << 24) - 1;

class TokenModel {
 public:
  virtual ~TokenModel() = default;

  // Encodes one word given in the vocab's own alphabet.
  virtual void tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  // Encodes one word given as raw bytes when a ByteLevel pre-tokenizer
  // deferred its byte -> character mapping (see Pieces::byte_level).
  virtual void tokenize_bytes(std::string_view word, std::vector<int32_t>& out) const = 0;

  virtual int32_t id_count() const = 0;  // max id + 1
  virtual int32_t find(std::string_view token) const = 0;  // -1 when absent
  virtual const std::string& token(int32_t id) const = 0;  // id must satisfy has_id
  virtual bool has_id(int32_t id) const = 0;
  // Adds an id -> text entry for an added token that is not in the model vocab.
  virtual void set_extra_token(int32_t id, const std::string& text) = 0;
};

}  // namespace moeflux
