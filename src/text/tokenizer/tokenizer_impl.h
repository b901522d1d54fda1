#pragma once
// The state behind a Tokenizer handle, shared by the builders of
// tokenizer.json (tokenizer.cpp) and of GGUF vocabularies
// (gguf_tokenizer.cpp). Encoding is HF's pipeline: added tokens, normalizer,
// pre-tokenizer, model, post-processor; decoding runs the decoder chain.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer/added_vocab.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/model.h"
#include "text/tokenizer/normalizer.h"
#include "text/tokenizer/post_processor.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux {

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<TokenModel> model;
  std::unique_ptr<Decoder> decoder;
  AddedVocab added;
  std::vector<int32_t> added_of_id;  // id -> index into added.tokens(), -1 if none
  // Ids that decode to nothing although the model has a text for them: a
  // GGUF's Unused tokens (the "[PAD123]" rows that pad a vocabulary to the
  // embedding size), which HF never had and llama.cpp prints as "".
  // Empty for tokenizer.json.
  std::vector<uint8_t> silent;
  PostProcessor post;

  std::optional<std::string> bos_token, eos_token;
  std::vector<std::string> eos_tokens;  // eos_token as a list, when given so
  std::string chat_template;

  void encode_text(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_piece(std::string_view piece, bool first, std::vector<int32_t>& ids) const;
  // Fills added_of_id and builds the added-token matcher; `added` must not
  // be built yet. Registers each added token's text with the model.
  void set_added_tokens(std::vector<AddedToken> tokens);
};

// A whole file, gunzipped when it starts with gzip's magic bytes
// (tokenizer.json or tokenizer.json.gz). Errors name the path.
std::string read_maybe_gz(const std::string& path);

}  // namespace moeflux
