// Tokenizer -> GGUF -> Tokenizer: every tokenizer of ../shared/tokenizers
// and the demo tokenizer is exported (gguf_tokenizer_metadata), written to a
// vocab-only GGUF, read back and loaded with Tokenizer::from_gguf; on the
// whole corpus its ids (with and without special tokens), decoding and
// streaming decoding must equal Hugging Face's (the ids fixtures of
// hf_fixtures_test.cpp), and its vocabulary, specials and chat template
// those of the tokenizer.json loader.
#include <gtest/gtest.h>

#include <algorithm>

#include "gguf_cases.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

using testing::GgufCase;
using testing::GgufCaseName;

std::string show(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 120)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') out.push_back(char(c));
    else { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); out += b; }
  }
  return out;
}

std::string show_ids(const std::vector<int32_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size() && i < 40; ++i) {
    if (i) out += ',';
    out += std::to_string(v[i]);
  }
  out += v.size() > 40 ? ",...]" : "]";
  return out;
}

class GgufRoundTrip : public ::testing::TestWithParam<GgufCaseName> {};

#define LOAD_CASE(c)                                                                            \
  const GgufCase* c = testing::gguf_case(GetParam().name);                                      \
  if (c == nullptr) GTEST_SKIP() << "no " << testing::hf_dir_of(GetParam().name)

// The converter marks added tokens that look special ("<|fim_prefix|>",
// "<｜User｜>") as Control even where HF says special=false; that is the
// only way specialness may differ.
bool looks_special(const std::string& t) {
  auto wraps = [&](std::string_view a, std::string_view b) {
    return t.size() >= a.size() + b.size() && t.compare(0, a.size(), a) == 0 &&
           t.compare(t.size() - b.size(), b.size(), b) == 0;
  };
  return wraps("<|", "|>") || wraps("<\uff5c", "\uff5c>");
}

TEST_P(GgufRoundTrip, VocabularyAndSpecials) {
  LOAD_CASE(c);
  const Tokenizer& hf = c->hf;
  const Tokenizer& gg = c->gguf;
  ASSERT_EQ(gg.vocab_size(), hf.vocab_size());
  size_t text_diffs = 0, special_diffs = 0;
  for (int32_t id = 0; id < hf.vocab_size(); ++id) {
    if (gg.token_text(id) != hf.token_text(id) && text_diffs++ < 5)
      ADD_FAILURE() << "token " << id << ": \"" << show(gg.token_text(id)) << "\" vs \"" << show(hf.token_text(id))
                    << "\"";
    if (gg.is_special(id) != hf.is_special(id)) {
      ++special_diffs;
      EXPECT_TRUE(gg.is_special(id) && looks_special(hf.token_text(id))) << "token " << id << " " << hf.token_text(id);
    }
  }
  std::printf("[%s] %d tokens, %zu added tokens HF calls non-special are Control (look special)\n", c->name.c_str(),
              hf.vocab_size(), special_diffs);
  EXPECT_EQ(gg.bos_id(), hf.bos_id());
  ASSERT_FALSE(hf.eos_ids().empty());
  ASSERT_FALSE(gg.eos_ids().empty());
  EXPECT_EQ(gg.eos_ids().front(), hf.eos_ids().front());
  EXPECT_EQ(gg.chat_template(), hf.chat_template());

  // The file holds what was exported, key for key.
  GgufFile file(c->gguf_path);
  for (const auto& [k, v] : c->metadata.entries()) {
    const GgufValue* got = file.metadata().find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_TRUE(gguf_identical(*got, v)) << k;
  }
}

TEST_P(GgufRoundTrip, CorpusMatchesHuggingFace) {
  LOAD_CASE(c);
  const Tokenizer& gg = c->gguf;
  const Tokenizer& hf = c->hf;
  auto corpus = testing::read_corpus();
  auto expected = testing::read_expected(c->name);
  ASSERT_EQ(corpus.size(), expected.size());

  size_t bad_plain = 0, bad_special = 0, bad_dec = 0, bad_skip = 0, bad_lossless = 0, bad_stream = 0;
  size_t skip_rewritten = 0, shown = 0;
  auto report = [&](const char* what, size_t i, const std::string& detail) {
    if (shown++ < 8) ADD_FAILURE() << c->name << " " << what << " #" << i << " text=\"" << show(corpus[i]) << "\" " << detail;
  };
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string& s = corpus[i];
    const auto& e = expected[i];
    std::string text = utf8::to_valid_lossy(s);
    auto plain = gg.encode(s, false);
    if (plain != e.plain) { ++bad_plain; report("plain ids", i, "got " + show_ids(plain) + " want " + show_ids(e.plain)); }
    auto special = gg.encode(s, true);
    if (special != e.special) { ++bad_special; report("special ids", i, "got " + show_ids(special) + " want " + show_ids(e.special)); }
    std::string dec = gg.decode(e.plain, false);
    if (dec != (e.plain_dec_same ? text : e.plain_dec)) { ++bad_dec; report("decode", i, "got \"" + show(dec) + "\""); }
    // decode(skip_special_tokens) drops Control tokens; where one of them is
    // an added token HF keeps (see looks_special), HF's text is that of the
    // ids without it, which the tokenizer.json loader (exact vs HF) gives.
    std::vector<int32_t> kept;
    for (int32_t id : e.special)
      if (!(gg.is_special(id) && !hf.is_special(id))) kept.push_back(id);
    std::string want_skip = e.skip_dec_same ? text : e.skip_dec;
    if (kept.size() != e.special.size()) {
      ++skip_rewritten;
      want_skip = hf.decode(kept, true);
    }
    std::string skip = gg.decode(e.special, true);
    if (skip != want_skip) { ++bad_skip; report("decode(skip)", i, "got \"" + show(skip) + "\" want \"" + show(want_skip) + "\""); }
    if (GetParam().lossless && text == s && gg.decode(plain, false) != s) { ++bad_lossless; report("lossless", i, ""); }
    for (bool skip_special : {false, true}) {
      const auto& ids = skip_special ? e.special : e.plain;
      StreamDecoder sd(gg, skip_special);
      std::string all;
      bool valid = true;
      for (int32_t id : ids) {
        std::string piece = sd.push(id);
        valid = valid && utf8::valid_prefix(piece) == piece.size();
        all += piece;
      }
      all += sd.flush();
      if (!valid || all != gg.decode(ids, skip_special)) { ++bad_stream; report("stream", i, "got \"" + show(all) + "\""); }
    }
  }
  std::printf("[%s via GGUF] %zu strings: plain %zu, special %zu, decode %zu, decode(skip) %zu (%zu with Control tokens HF keeps), "
              "lossless %zu, stream %zu mismatches\n",
              c->name.c_str(), corpus.size(), bad_plain, bad_special, bad_dec, bad_skip, skip_rewritten,
              bad_lossless, bad_stream);
  EXPECT_EQ(bad_plain, 0u);
  EXPECT_EQ(bad_special, 0u);
  EXPECT_EQ(bad_dec, 0u);
  EXPECT_EQ(bad_skip, 0u);
  EXPECT_EQ(bad_lossless, 0u);
  EXPECT_EQ(bad_stream, 0u);
}

// Stopping: every end-of-turn token a chat template of these vocabularies
// ends a reply with is an end-of-generation id, as llama.cpp treats it,
// whether or not the file names it as EOS/EOT.
TEST_P(GgufRoundTrip, EndOfTurnTokensStopGeneration) {
  LOAD_CASE(c);
  const std::vector<int32_t> eog = c->gguf.eos_ids();
  size_t found = 0;
  for (const char* text : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|return|>", "<|end|>"}) {
    const auto id = c->gguf.token_id(text);
    if (!id) continue;
    ++found;
    EXPECT_NE(std::find(eog.begin(), eog.end(), *id), eog.end()) << text;
  }
  const auto word = c->gguf.token_id("the");  // an ordinary token never stops
  if (word) EXPECT_EQ(std::find(eog.begin(), eog.end(), *word), eog.end());
  if (c->name == "qwen3" || c->name == "llama3" || c->name == "gptoss") EXPECT_GT(found, 0u);
  // The first id stays the file's own EOS (what `eos_token` names).
  ASSERT_FALSE(eog.empty());
  EXPECT_EQ(eog.front(), c->hf.eos_ids().front());
}

INSTANTIATE_TEST_SUITE_P(All, GgufRoundTrip, ::testing::ValuesIn(testing::kGgufCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace moeflux
