#pragma once
// Hugging Face tokenizer.json tokenizer (BPE models: byte-level like Qwen3,
// Llama 3, DeepSeek-V3, gpt-oss; byte-fallback + metaspace like Llama 2),
// matching `tokenizers` / `transformers` ids exactly.
//
// Invalid UTF-8 input: Python's `tokenizers` cannot receive it at all (a str
// with surrogateescape'd bytes is rejected with "TextInputSequence must be
// str"), so the HF-observable behaviour is that of text decoded with
// errors="replace": every maximal ill-formed subsequence is U+FFFD. encode()
// does exactly that, then tokenizes.
//
// A Tokenizer is a cheap-to-copy handle to immutable state; concurrent
// encode/decode calls from many threads are safe (scratch and word caches
// are per thread).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

struct GgufVocab;

class Tokenizer {
 public:
  // Reads tokenizer.json or tokenizer.json.gz (gzip is detected by content).
  // Without tokenizer_config_path, a tokenizer_config.json next to the file
  // is used when present.
  static Tokenizer load(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path = "");
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json = "");
  // The tokenizer a GGUF file embeds (read_gguf_vocab of its metadata);
  // gguf_tokenizer.h says what is supported. Throws naming an unknown
  // `tokenizer.ggml.pre` and the supported ones. bos_id()/eos_ids()/
  // chat_template() come from tokenizer.ggml.* and tokenizer.chat_template;
  // encode(text, true) adds BOS/EOS as add_bos_token/add_eos_token say
  // (llama.cpp's defaults when absent).
  static Tokenizer from_gguf(const GgufVocab& vocab);

  // add_special_tokens applies the post-processor, as transformers'
  // tokenizer.encode(text) does: tokenizer_config.json's add_bos_token /
  // add_eos_token, when present, replace tokenizer.json's post_processor
  // (transformers' LlamaTokenizerFast does that; e.g. DeepSeek-V3's file
  // adds no BOS by itself).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Unknown ids are skipped, as HF does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Max id + 1 over the model vocab and the added tokens: the number of
  // rows an embedding table needs.
  int32_t vocab_size() const;
  std::optional<int32_t> token_id(std::string_view token) const;
  const std::string& token_text(int32_t id) const;  // raw vocab string ("" for an unknown id)
  bool is_special(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;  // tokenizer_config eos_token (string or list)
  std::string bos_token() const;
  std::string eos_token() const;
  std::string chat_template() const;  // "" when tokenizer_config.json has none

  // Bytes that this token stands for before UTF-8 assembly (GPT-2 byte
  // characters mapped back, <0xXX> as one byte); used by StreamDecoder.
  std::string token_bytes(int32_t id) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenizer: push ids as they are sampled and get text as
// soon as it is complete UTF-8. An incomplete multi-byte character (byte-
// level pieces, or <0xE2>-style byte-fallback tokens) is held back until the
// bytes that complete it arrive; the concatenation of all pushes and flush()
// equals Tokenizer::decode of the same ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true);
  std::string push(int32_t id);
  std::string flush();  // emits whatever is held (incomplete bytes as U+FFFD)

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // window: ids_[0, ctx_) already emitted, kept as decoding context
  size_t ctx_ = 0;
  std::string ctx_text_;  // decode(ids_[0, ctx_))
  std::string pending_bytes_;
};

// A small byte-level BPE tokenizer trained by moeflux's own trainer on a
// built-in corpus, for synthetic random-weight models. Ids: 256 byte
// tokens, learned merges, <|endoftext|>, <|im_start|>, <|im_end|>, then
// reserved special tokens so that the tokenizer covers exactly vocab_size
// ids (vocab_size >= 259). Loads in HF `tokenizers`; lossless on any UTF-8.
std::string make_demo_tokenizer_json(int vocab_size);
// Matching tokenizer_config.json: eos <|im_end|>, a ChatML chat_template.
std::string make_demo_tokenizer_config_json();

}  // namespace moeflux
