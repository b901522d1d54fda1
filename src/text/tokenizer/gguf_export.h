#pragma once
// Hugging Face tokenizer -> the tokenizer.* metadata of a GGUF file, as
// llama.cpp's convert_hf_to_gguf.py (with gguf-py's SpecialVocab) writes
// it, so that llama.cpp and moeflux both tokenize the converted file as
// Hugging Face tokenizes the original:
//   tokenizer.ggml.model   "gpt2" for byte-level BPE, "llama" for
//                          byte-fallback BPE over U+2581-escaped text (the
//                          SentencePiece conversions of Llama 2 / Mistral)
//   tokenizer.ggml.pre     the llama.cpp name of the pre-tokenizer ("qwen2",
//                          "llama-bpe", ...), found by matching the file's
//                          split regexes against gguf_pre_tokenizers()
//                          (llama.cpp's converter hashes the ids of a test
//                          string instead; both give the same names for our
//                          tokenizers). "default" for "llama".
//   tokenizer.ggml.tokens  the raw vocabulary strings (byte-level "Ġthe",
//                          "▁the", added tokens as their text), padded with
//                          "[PAD<id>]" up to the embedding rows
//   tokenizer.ggml.token_type  Normal, Control (special added tokens, and
//                          ones that look special: "<|...|>", "<｜...｜>"),
//                          UserDefined (other added tokens), Byte (<0xNN>),
//                          Unknown (the unk token of a "llama" vocabulary),
//                          Unused (padding)
//   tokenizer.ggml.scores  "llama" only: minus the rank of the first merge
//                          that makes the token (llama.cpp merges the pair
//                          whose result scores highest, so this reproduces
//                          the merge order); 0 for tokens no merge makes
//   tokenizer.ggml.merges  "gpt2" only: "left right" in rank order
//   bos/eos/unk/sep/padding/mask ids (tokenizer_config.json's tokens, then
//   config.json's *_token_id), add_bos_token / add_eos_token (always
//   written: what transformers' encode() adds), add_space_prefix ("llama"),
//   tokenizer.chat_template (+ named templates) from tokenizer_config.json,
//   chat_template.jinja or chat_template.json.
//
// Before returning, the metadata is read back (read_gguf_vocab ->
// Tokenizer::from_gguf) and checked against the Hugging Face tokenizer on a
// set of probe strings (llama.cpp's pre-tokenizer test string among them);
// a tokenizer GGUF cannot express exactly is refused with the string, both
// id lists and the reason, rather than written wrong.
#include <cstdint>
#include <string>

#include "format/gguf/gguf_value.h"

namespace moeflux {

struct GgufTokenizerExportOptions {
  // Rows of the embedding table. 0: config.json's vocab_size when that file
  // is next to the tokenizer, else the tokenizer's own size. Smaller than
  // the tokenizer is refused.
  uint32_t n_vocab = 0;
};

// `hf_dir_or_tokenizer_json`: a model directory (tokenizer.json or
// tokenizer.json.gz, tokenizer_config.json, config.json and chat templates
// are looked up there) or a tokenizer.json[.gz] path (the others are looked
// up next to it). Keys are in convert_hf_to_gguf.py's order; add them to
// the converter's metadata with GgufMetadata::add. Errors name the file and
// what cannot be represented.
GgufMetadata gguf_tokenizer_metadata(const std::string& hf_dir_or_tokenizer_json,
                                     const GgufTokenizerExportOptions& options = {});

}  // namespace moeflux
