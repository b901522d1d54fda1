#include "format/gguf/gguf_vocab.h"

#include <gtest/gtest.h>

#include "format/gguf/gguf_file.h"
#include "gguf_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

#define EXPECT_ERROR_HAS(err, text) EXPECT_NE((err).find(text), std::string::npos) << "error: " << (err)

std::string gguf_path(const std::string& name) { return test::fixture("gguf/" + name + ".gguf"); }

// A minimal valid BPE vocabulary to break one key at a time.
GgufMetadata bpe(const std::string& drop = "") {
  GgufMetadata m("v.gguf");
  auto add = [&](const std::string& k, GgufValue v) {
    if (k != drop) m.add(k, std::move(v));
  };
  add("tokenizer.ggml.model", {std::string("gpt2")});
  add("tokenizer.ggml.tokens", {GgufArray{std::vector<std::string>{"a", "b", "ab", "<eos>"}}});
  add("tokenizer.ggml.token_type", {GgufArray{std::vector<int32_t>{1, 1, 1, 3}}});
  add("tokenizer.ggml.merges", {GgufArray{std::vector<std::string>{"a b"}}});
  add("tokenizer.ggml.eos_token_id", {uint32_t(3)});
  return m;
}

GgufMetadata with(GgufMetadata m, const std::string& key, GgufValue v) {
  GgufMetadata out(m.source());
  for (auto& [k, val] : m.entries())
    if (k != key) out.add(k, val);
  out.add(key, std::move(v));
  return out;
}

std::string vocab_error(const GgufMetadata& m) {
  return test::error_of([&] { read_gguf_vocab(m); });
}

}  // namespace

TEST(GgufVocab, ReadsTheBpeFixture) {
  const GgufFile f(gguf_path("tiny_qwen3moe"));
  const GgufVocab v = read_gguf_vocab(f.metadata());
  EXPECT_EQ(v.kind, GgufVocabKind::Bpe);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "qwen2");
  // 256 byte tokens, 10 merged tokens, 3 specials (see gpt2_vocab() in the fixture script).
  ASSERT_EQ(v.tokens.size(), 269u);
  // Byte tokens in byte order, spelled in the GPT-2 byte alphabet: 0x00 is U+0100, ' ' is 'Ġ' (U+0120).
  EXPECT_EQ(v.tokens[0], "\xC4\x80");
  EXPECT_EQ(v.tokens[32], "\xC4\xA0");
  EXPECT_EQ(v.tokens[65], "A");
  EXPECT_EQ(v.tokens[256], "\xC4\xA0t");
  EXPECT_EQ(v.tokens[266], "<|endoftext|>");
  EXPECT_EQ(v.token_types.size(), v.tokens.size());
  EXPECT_EQ(v.token_types[0], GgufTokenType::Normal);
  EXPECT_EQ(v.token_types[268], GgufTokenType::Control);
  EXPECT_TRUE(v.scores.empty());
  ASSERT_EQ(v.merges.size(), 10u);
  EXPECT_EQ(v.merges[0], "\xC4\xA0 t");
  EXPECT_EQ(v.merges[6], "\xC4\xA0t he");
  EXPECT_EQ(v.eos_id, 268u);
  EXPECT_EQ(v.pad_id, 266u);
  EXPECT_EQ(v.bos_id, 266u);
  EXPECT_EQ(v.add_bos, false);
  EXPECT_FALSE(v.add_eos.has_value());
  EXPECT_FALSE(v.unk_id.has_value());
  ASSERT_TRUE(v.chat_template.has_value());
  EXPECT_NE(v.chat_template->find("<|im_start|>"), std::string::npos);
  EXPECT_TRUE(v.named_chat_templates.empty());
}

TEST(GgufVocab, ReadsTheSpmFixture) {
  const GgufFile f(gguf_path("tiny_llama_spm"));
  const GgufVocab v = read_gguf_vocab(f.metadata());
  EXPECT_EQ(v.kind, GgufVocabKind::Spm);
  EXPECT_EQ(v.pre, "default");
  ASSERT_EQ(v.tokens.size(), 264u);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[259], "\xE2\x96\x81");  // '▁'
  EXPECT_EQ(v.token_types[0], GgufTokenType::Unknown);
  EXPECT_EQ(v.token_types[1], GgufTokenType::Control);
  EXPECT_EQ(v.token_types[3], GgufTokenType::Byte);
  ASSERT_EQ(v.scores.size(), 264u);
  EXPECT_FLOAT_EQ(v.scores[263], -5.25f);
  EXPECT_TRUE(v.merges.empty());
  EXPECT_EQ(v.bos_id, 1u);
  EXPECT_EQ(v.eos_id, 2u);
  EXPECT_EQ(v.unk_id, 0u);
  EXPECT_EQ(v.add_bos, true);
  EXPECT_EQ(v.add_eos, false);
  EXPECT_EQ(v.add_space_prefix, true);
  // gguf-py stores the "default" template as tokenizer.chat_template and the rest by name.
  EXPECT_EQ(v.chat_template, "{{ bos_token }}{{ messages[0]['content'] }}");
  ASSERT_EQ(v.named_chat_templates.size(), 1u);
  EXPECT_EQ(v.named_chat_templates.at("tool_use"), "{{ tools }}");
}

TEST(GgufVocab, MinimalBpeDefaults) {
  GgufVocab v = read_gguf_vocab(bpe("tokenizer.ggml.token_type"));
  EXPECT_EQ(v.pre, "default");
  EXPECT_EQ(v.token_types, std::vector<GgufTokenType>(4, GgufTokenType::Normal));
  EXPECT_FALSE(v.chat_template.has_value());
  // -1 (int32) means "no such token" in some converters' output.
  v = read_gguf_vocab(with(bpe(), "tokenizer.ggml.padding_token_id", {int32_t(-1)}));
  EXPECT_FALSE(v.pad_id.has_value());
  v = read_gguf_vocab(with(bpe(), "tokenizer.ggml.bos_token_id", {int32_t(2)}));  // int32 ids are fine
  EXPECT_EQ(v.bos_id, 2u);
}

TEST(GgufVocab, MissingKeysAreNamed) {
  EXPECT_ERROR_HAS(vocab_error(bpe("tokenizer.ggml.model")), "'tokenizer.ggml.model' (string) is missing");
  EXPECT_ERROR_HAS(vocab_error(bpe("tokenizer.ggml.tokens")), "'tokenizer.ggml.tokens' (array) is missing");
  std::string e = vocab_error(bpe("tokenizer.ggml.merges"));
  EXPECT_ERROR_HAS(e, "v.gguf");
  EXPECT_ERROR_HAS(e, "'tokenizer.ggml.merges' (array of string) is missing");
  GgufMetadata spm = with(bpe("tokenizer.ggml.merges"), "tokenizer.ggml.model", {std::string("llama")});
  EXPECT_ERROR_HAS(vocab_error(spm), "'tokenizer.ggml.scores' (array of float32) is missing");
}

TEST(GgufVocab, MistypedAndInconsistentValuesAreRefused) {
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.model", {uint32_t(2)})),
                   "'tokenizer.ggml.model': expected string, found uint32");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.model", {std::string("bert")})),
                   "\"bert\" is not supported");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.tokens", {GgufArray{std::vector<int32_t>{1}}})),
                   "expected array of string, found array of int32");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.tokens", {GgufArray{std::vector<std::string>{}}})),
                   "'tokenizer.ggml.tokens' is an empty array");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.token_type", {GgufArray{std::vector<int32_t>{1, 1}}})),
                   "'tokenizer.ggml.token_type' has 2 entries for 4 tokens");
  EXPECT_ERROR_HAS(
      vocab_error(with(bpe(), "tokenizer.ggml.token_type", {GgufArray{std::vector<int32_t>{1, 9, 1, 1}}})),
      "token 1 ('b') has type 9, outside 0..6");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.scores", {GgufArray{std::vector<float>{0.f}}})),
                   "'tokenizer.ggml.scores' has 1 entries for 4 tokens");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.merges", {GgufArray{std::vector<std::string>{"ab"}}})),
                   "entry 0 (\"ab\") is not a \"left right\" pair");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.merges", {GgufArray{std::vector<std::string>{"a "}}})),
                   "not a \"left right\" pair");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.eos_token_id", {uint32_t(4)})),
                   "'tokenizer.ggml.eos_token_id': token id 4 is out of range (the vocabulary has 4 tokens)");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.bos_token_id", {std::string("1")})),
                   "'tokenizer.ggml.bos_token_id': expected uint32, found string");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.ggml.add_bos_token", {uint8_t(1)})),
                   "'tokenizer.ggml.add_bos_token': expected bool, found uint8");
  EXPECT_ERROR_HAS(vocab_error(with(bpe(), "tokenizer.chat_template", {GgufArray{std::vector<std::string>{"x"}}})),
                   "'tokenizer.chat_template': expected string, found array");
  EXPECT_ERROR_HAS(
      vocab_error(with(bpe(), "tokenizer.chat_templates", {GgufArray{std::vector<std::string>{"rag"}}})),
      "lists \"rag\" but 'tokenizer.chat_template.rag' is missing");
}
