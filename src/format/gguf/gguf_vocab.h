// The tokenizer a GGUF file embeds (`tokenizer.ggml.*`, `tokenizer.chat_template*`),
// read into plain data for the text layer. Nothing here tokenizes; this is
// the checked hand-over: every array has one entry per token, every special
// id is a valid token, merges are "left right" pairs.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "format/gguf/gguf_value.h"

namespace moeflux {

// llama.cpp's llama_token_attr as stored in `tokenizer.ggml.token_type`.
enum class GgufTokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

enum class GgufVocabKind {
  Bpe,  // tokenizer.ggml.model = "gpt2": byte-level BPE with merges, `pre` names the pre-tokenizer regex
  Spm,  // tokenizer.ggml.model = "llama": SentencePiece vocab with scores, <0xNN> byte tokens
};

struct GgufVocab {
  GgufVocabKind kind = GgufVocabKind::Bpe;
  std::string model;  // as stored: "gpt2" or "llama"
  // `tokenizer.ggml.pre` ("qwen2", "llama-bpe", ...); "default" when absent, as llama.cpp reads it.
  std::string pre = "default";
  std::vector<std::string> tokens;
  // One per token. Absent in the file -> all Normal (llama.cpp's default).
  std::vector<GgufTokenType> token_types;
  // One per token. Absent -> empty (BPE vocabularies usually have none).
  std::vector<float> scores;
  // "left right" pairs in priority order; required for Bpe, empty for Spm.
  std::vector<std::string> merges;

  std::optional<uint32_t> bos_id, eos_id, unk_id, pad_id, sep_id, mask_id, eot_id, eom_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix, remove_extra_whitespaces;

  // `tokenizer.chat_template`, and named ones from `tokenizer.chat_template.<name>`
  // (listed in `tokenizer.chat_templates`), e.g. "tool_use".
  std::optional<std::string> chat_template;
  std::map<std::string, std::string> named_chat_templates;
};

// Throws naming the key (and the file, via metadata.source()) when a key is
// missing, mistyped, of the wrong length, or an id is out of range.
GgufVocab read_gguf_vocab(const GgufMetadata& metadata);

}  // namespace moeflux
