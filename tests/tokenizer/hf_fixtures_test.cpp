// Exactness against Hugging Face: every corpus string, every tokenizer in
// ../shared/tokenizers plus the demo tokenizer, ids with and without
// special tokens, decode, and streaming decode.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "fixture_io.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

using testing::Expected;

std::string show(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 160)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') out.push_back(char(c));
    else { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); out += b; }
  }
  return out;
}

std::string show_ids(const std::vector<int32_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size() && i < 40; ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out + (v.size() > 40 ? ",...]" : "]");
}

struct Case {
  std::string name;
  bool lossless;  // no normalizer: decode(encode(s)) == s for valid UTF-8
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class HfFixtures : public ::testing::TestWithParam<Case> {};

Tokenizer load_case(const std::string& name) {
  if (name == "demo") {
    std::string dir = testing::fixture_dir() + "/demo";
    return Tokenizer::load(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
  }
  std::string dir = testing::shared_tokenizers_dir() + "/" + name;
  return Tokenizer::load(dir + "/tokenizer.json.gz", dir + "/tokenizer_config.json");
}

TEST_P(HfFixtures, MatchesHuggingFace) {
  const Case& c = GetParam();
  if (c.name != "demo" && !std::filesystem::exists(testing::shared_tokenizers_dir() + "/" + c.name))
    GTEST_SKIP() << "no " << testing::shared_tokenizers_dir() << "/" << c.name;
  auto corpus = testing::read_corpus();
  auto expected = testing::read_expected(c.name);
  ASSERT_EQ(corpus.size(), expected.size());
  ASSERT_GE(corpus.size(), 2000u);

  auto t0 = std::chrono::steady_clock::now();
  Tokenizer tok = load_case(c.name);
  auto t1 = std::chrono::steady_clock::now();
  std::printf("[%s] load %.1f ms\n", c.name.c_str(), std::chrono::duration<double, std::milli>(t1 - t0).count());

  size_t bad_plain = 0, bad_special = 0, bad_dec = 0, bad_skip = 0, bad_lossless = 0, bad_stream = 0;
  size_t shown = 0;
  auto report = [&](const char* what, size_t i, const std::string& detail) {
    if (shown++ < 8) ADD_FAILURE() << c.name << " " << what << " #" << i << " text=\"" << show(corpus[i]) << "\" " << detail;
  };
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string& s = corpus[i];
    const Expected& e = expected[i];
    std::string text = utf8::to_valid_lossy(s);  // what HF saw
    auto plain = tok.encode(s, false);
    auto special = tok.encode(s, true);
    if (plain != e.plain) { ++bad_plain; report("plain ids", i, "got " + show_ids(plain) + " want " + show_ids(e.plain)); }
    if (special != e.special) { ++bad_special; report("special ids", i, "got " + show_ids(special) + " want " + show_ids(e.special)); }
    std::string dec = tok.decode(e.plain, false);
    const std::string& want_dec = e.plain_dec_same ? text : e.plain_dec;
    if (dec != want_dec) { ++bad_dec; report("decode", i, "got \"" + show(dec) + "\" want \"" + show(want_dec) + "\""); }
    std::string skip = tok.decode(e.special, true);
    const std::string& want_skip = e.skip_dec_same ? text : e.skip_dec;
    if (skip != want_skip) { ++bad_skip; report("decode(skip)", i, "got \"" + show(skip) + "\" want \"" + show(want_skip) + "\""); }
    if (c.lossless && text == s && tok.decode(plain, false) != s) {
      ++bad_lossless;
      report("lossless", i, "decode(encode(s)) != s");
    }
    // Streaming must equal full decoding and emit only valid UTF-8.
    for (bool skip_special : {false, true}) {
      const auto& ids = skip_special ? e.special : e.plain;
      StreamDecoder sd(tok, skip_special);
      std::string all;
      bool valid = true;
      for (int32_t id : ids) {
        std::string piece = sd.push(id);
        valid = valid && utf8::valid_prefix(piece) == piece.size();
        all += piece;
      }
      std::string rest = sd.flush();
      valid = valid && utf8::valid_prefix(rest) == rest.size();
      all += rest;
      std::string full = tok.decode(ids, skip_special);
      if (!valid || all != full) {
        ++bad_stream;
        report("stream", i, "got \"" + show(all) + "\" want \"" + show(full) + "\"" + (valid ? "" : " (invalid UTF-8 chunk)"));
      }
    }
  }
  std::printf("[%s] %zu strings: plain mismatches %zu, special %zu, decode %zu, decode(skip) %zu, lossless %zu, stream %zu\n",
              c.name.c_str(), corpus.size(), bad_plain, bad_special, bad_dec, bad_skip, bad_lossless, bad_stream);
  EXPECT_EQ(bad_plain, 0u);
  EXPECT_EQ(bad_special, 0u);
  EXPECT_EQ(bad_dec, 0u);
  EXPECT_EQ(bad_skip, 0u);
  EXPECT_EQ(bad_lossless, 0u);
  EXPECT_EQ(bad_stream, 0u);
}

INSTANTIATE_TEST_SUITE_P(All, HfFixtures,
                         ::testing::Values(Case{"qwen3", false}, Case{"deepseek_v3", true}, Case{"llama3", true},
                                           Case{"gptoss", true}, Case{"llama2", false}, Case{"demo", true}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace moeflux
