#pragma once
// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, merge
// ranks and the merge loop, matching Hugging Face `tokenizers` exactly
// (including its priority-queue order and stale-entry rule).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer/flat_map.h"
#include "text/tokenizer/json_reader.h"
#include "text/tokenizer/model.h"

namespace moeflux {

struct BpeSymbol;

class BpeModel final : public TokenModel {
 public:
  // Reads model.vocab and model.merges. Fails naming the key on bad input
  // and on merges whose parts are missing from the vocab (as HF does).
  explicit BpeModel(const json::Value& model);

  // A GGUF "gpt2" vocabulary: token i has id i; merges are "left right",
  // split at the first space after the first byte (llama.cpp's rule).
  // Fails on a duplicate token (llama.cpp asserts on it) and, like the
  // tokenizer.json path, on merges whose parts or result are not tokens.
  // `source` prefixes errors.
  struct Options {
    bool ignore_merges = false;
  };
  BpeModel(const std::vector<std::string>& tokens, const std::vector<std::string>& merges, const Options& options,
           const std::string& source);
  ~BpeModel() override;

  // Encodes one word given in the vocab's own alphabet (HF merge_word):
  // characters missing from the vocab go to byte fallback, then unk.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const override;
  // Encodes one word given as raw bytes when the vocab is byte-level: each
  // byte is the vocab character that GPT-2's alphabet maps it to. Same
  // result as tokenize(bytes_to_chars(word)), without building that string.
  void tokenize_bytes(std::string_view word, std::vector<int32_t>& out) const override;

  int32_t id_count() const override { return int32_t(id_to_token_.size()); }  // max id + 1
  int32_t find(std::string_view token) const override { return token_to_id_.find(token); }
  const std::string& token(int32_t id) const override { return id_to_token_[size_t(id)]; }
  bool has_id(int32_t id) const override {
    return id >= 0 && size_t(id) < id_to_token_.size() && has_id_[size_t(id)];
  }
  bool byte_fallback() const { return byte_fallback_; }
  std::optional<std::string> unk_token() const { return unk_token_; }

  void set_extra_token(int32_t id, const std::string& text) override;

 private:
  using Symbol = struct BpeSymbol;
  // Shared by both constructors. Names in errors: `vocab_key` / `merges_key`
  // are "model.vocab" / "model.merges" or the GGUF keys.
  void insert_vocab(const std::vector<std::pair<std::string_view, int32_t>>& entries, int64_t max_id);
  void insert_merges(const std::vector<std::pair<std::string_view, std::string_view>>& pairs,
                     const std::string& source, std::string_view merges_key, std::string_view vocab_key);
  void build_byte_tables();
  void merge_all(std::vector<Symbol>& syms, std::vector<int32_t>& out) const;
  void build_raw_index();
  template <typename WordFn>
  void cached(std::string_view key, std::vector<int32_t>& out, WordFn&& fn) const;

  StringIdMap token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<uint8_t> has_id_;
  PairMap merges_;
  std::optional<std::string> unk_token_;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int32_t byte_fallback_ids_[256];
  // Byte-level path: id of the vocab character of each byte, and the vocab
  // keyed by raw bytes for ignore_merges' whole-word lookup.
  int32_t byte_ids_[256];
  StringIdMap raw_to_id_;
  bool raw_index_ = false;
  uint64_t uid_;  // identifies this model in per-thread caches
};

}  // namespace moeflux
