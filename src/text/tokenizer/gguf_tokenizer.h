#pragma once
// The tokenizer a GGUF file embeds, as a moeflux Tokenizer
// (Tokenizer::from_gguf, defined in gguf_tokenizer.cpp), and the table of
// `tokenizer.ggml.pre` names shared with the exporter (gguf_export.h).
//
// A GGUF vocabulary is built into the same pipeline as a tokenizer.json
// (added tokens, normalizer, pre-tokenizer, model, decoder), so the two
// give the same ids for the same tokenizer:
//   "gpt2"  byte-level BPE: `pre` names a list of split regexes (below), the
//           merges rank the pairs. Encoding is llama.cpp's llm_tokenizer_bpe.
//   "llama" llama.cpp's SPM tokenizer (spm.h): spaces become U+2581, a space
//           is put in front of the text and after every special token
//           (add_space_prefix, default on), merges follow token scores,
//           characters without a token fall back to <0xNN> byte tokens.
// Tokens of type Control, UserDefined and Unknown are matched in the text
// before anything else, as HF matches added tokens (and as llama.cpp does
// with parse_special); Control and Unknown ones are "special" (dropped by
// decode(skip_special_tokens)). Unused and Undefined tokens (e.g. the
// "[PAD123]" rows padding a vocabulary to the embedding size) decode to
// nothing, as in llama.cpp.
//
// Where llama.cpp approximates the Hugging Face tokenizer a file was made
// from, moeflux follows Hugging Face: llama.cpp's test suite
// (test-tokenizer-0) takes HF's ids as the truth, and the model was trained
// on them. Concretely: the regexes are the originals of tokenizer.json
// (llama.cpp rewrites (?i:'s|...) as '[sS]|... and the gpt-4o/tekken
// letter classes with lookaheads, because std::regex lacks them), and the
// Qwen names normalize to NFC first (llama.cpp skips that step).
// tests/tokenizer/gguf_llama_cpp_test.cpp measures what remains different.
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf/gguf_vocab.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux {

// What one `tokenizer.ggml.pre` value stands for, in tokenizer.json terms.
struct GgufPreTokenizer {
  // llama.cpp's names for this behaviour; names[0] is the one the exporter writes.
  std::vector<std::string_view> names;
  // Split patterns (Oniguruma syntax, as tokenizer.json spells them), each
  // applied in turn with HF's "Isolated" behaviour, then the GPT-2
  // byte-level mapping.
  std::vector<std::string_view> regexes;
  bool ignore_merges = false;  // a word that is itself a token is emitted as is (Llama 3, tiktoken vocabularies)
  bool nfc = false;            // NFC normalization first (Hugging Face's Qwen tokenizers)
  bool add_bos = false;        // llama.cpp's default when the file has no tokenizer.ggml.add_bos_token
};

// All names moeflux implements, in a fixed order.
const std::vector<GgufPreTokenizer>& gguf_pre_tokenizers();
// nullptr for a name moeflux does not implement.
const GgufPreTokenizer* find_gguf_pre_tokenizer(std::string_view name);
// "default, gpt-2, ..." for error messages.
std::string gguf_pre_tokenizer_names();

// Reads a .gguf file's metadata and builds its tokenizer (read_gguf_vocab
// then Tokenizer::from_gguf). Errors name the file.
Tokenizer load_gguf_tokenizer(const std::string& gguf_path);

}  // namespace moeflux
