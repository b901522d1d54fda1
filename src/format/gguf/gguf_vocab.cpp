#include "format/gguf/gguf_vocab.h"

#include <fmt/format.h>

#include "core/error.h"

namespace moeflux {

namespace {

std::string src(const GgufMetadata& m) { return m.source().empty() ? std::string("gguf metadata") : m.source(); }

std::optional<uint32_t> token_id(const GgufMetadata& m, const char* key, size_t n_tokens) {
  const GgufValue* v = m.find(key);
  if (!v) return std::nullopt;
  // Some converters store "no such token" as -1 (int32) or UINT32_MAX; llama.cpp treats both as unset.
  if (auto* i = std::get_if<int32_t>(&v->data); i && *i == -1) return std::nullopt;
  if (auto* u = std::get_if<uint32_t>(&v->data); u && *u == UINT32_MAX) return std::nullopt;
  const uint32_t id = m.get_u32(key);
  if (id >= n_tokens)
    fail("{}: metadata key '{}': token id {} is out of range (the vocabulary has {} tokens)", src(m), key, id,
         n_tokens);
  return id;
}

}  // namespace

GgufVocab read_gguf_vocab(const GgufMetadata& m) {
  GgufVocab v;
  v.model = m.get_str("tokenizer.ggml.model");
  if (v.model == "gpt2") {
    v.kind = GgufVocabKind::Bpe;
  } else if (v.model == "llama") {
    v.kind = GgufVocabKind::Spm;
  } else {
    fail("{}: metadata key 'tokenizer.ggml.model' = \"{}\" is not supported (supported: \"gpt2\", \"llama\")", src(m),
         v.model);
  }
  if (auto pre = m.opt_str("tokenizer.ggml.pre")) v.pre = *pre;

  v.tokens = m.get_array_of<std::string>("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: metadata key 'tokenizer.ggml.tokens' is an empty array", src(m));

  if (m.has("tokenizer.ggml.token_type")) {
    const auto& types = m.get_array_of<int32_t>("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail("{}: metadata key 'tokenizer.ggml.token_type' has {} entries for {} tokens", src(m), types.size(), n);
    v.token_types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > int32_t(GgufTokenType::Byte))
        fail("{}: metadata key 'tokenizer.ggml.token_type': token {} ('{}') has type {}, outside 0..6", src(m), i,
             v.tokens[i], types[i]);
      v.token_types.push_back(GgufTokenType(types[i]));
    }
  } else {
    v.token_types.assign(n, GgufTokenType::Normal);
  }

  if (m.has("tokenizer.ggml.scores")) {
    v.scores = m.get_array_of<float>("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      fail("{}: metadata key 'tokenizer.ggml.scores' has {} entries for {} tokens", src(m), v.scores.size(), n);
  } else if (v.kind == GgufVocabKind::Spm) {
    fail("{}: metadata key 'tokenizer.ggml.scores' (array of float32) is missing; a \"llama\" (SentencePiece) "
         "vocabulary needs a score per token",
         src(m));
  }

  if (m.has("tokenizer.ggml.merges")) {
    v.merges = m.get_array_of<std::string>("tokenizer.ggml.merges");
    for (size_t i = 0; i < v.merges.size(); ++i) {
      // As llama.cpp splits them: at the first space after the first byte, both halves non-empty.
      const std::string& s = v.merges[i];
      const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos || sp + 1 >= s.size())
        fail("{}: metadata key 'tokenizer.ggml.merges': entry {} (\"{}\") is not a \"left right\" pair", src(m), i,
             s);
    }
  } else if (v.kind == GgufVocabKind::Bpe) {
    fail("{}: metadata key 'tokenizer.ggml.merges' (array of string) is missing; a \"gpt2\" (BPE) vocabulary "
         "needs its merges",
         src(m));
  }

  v.bos_id = token_id(m, "tokenizer.ggml.bos_token_id", n);
  v.eos_id = token_id(m, "tokenizer.ggml.eos_token_id", n);
  v.unk_id = token_id(m, "tokenizer.ggml.unknown_token_id", n);
  v.pad_id = token_id(m, "tokenizer.ggml.padding_token_id", n);
  v.sep_id = token_id(m, "tokenizer.ggml.seperator_token_id", n);  // sic: the key as llama.cpp spells it
  v.mask_id = token_id(m, "tokenizer.ggml.mask_token_id", n);
  v.eot_id = token_id(m, "tokenizer.ggml.eot_token_id", n);
  v.eom_id = token_id(m, "tokenizer.ggml.eom_token_id", n);
  v.add_bos = m.opt_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = m.opt_bool("tokenizer.ggml.add_eos_token");
  v.add_space_prefix = m.opt_bool("tokenizer.ggml.add_space_prefix");
  v.remove_extra_whitespaces = m.opt_bool("tokenizer.ggml.remove_extra_whitespaces");

  v.chat_template = m.opt_str("tokenizer.chat_template");
  if (m.has("tokenizer.chat_templates")) {
    for (const std::string& name : m.get_array_of<std::string>("tokenizer.chat_templates")) {
      const std::string key = "tokenizer.chat_template." + name;
      if (!m.has(key))
        fail("{}: metadata key 'tokenizer.chat_templates' lists \"{}\" but '{}' is missing", src(m), name, key);
      v.named_chat_templates[name] = m.get_str(key);
    }
  }
  return v;
}

}  // namespace moeflux
