// The demo tokenizer: deterministic, matches the committed fixture (which
// HF `tokenizers` encoded for hf_fixtures_test), lossless, right size.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "fixture_io.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

constexpr int kFixtureVocab = 1024;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(DemoTokenizer, MatchesCommittedFixture) {
  std::string dir = testing::fixture_dir() + "/demo";
  std::string json = make_demo_tokenizer_json(kFixtureVocab);
  std::string cfg = make_demo_tokenizer_config_json();
  if (std::getenv("MOEFLUX_REGEN_FIXTURES") != nullptr) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/tokenizer.json", std::ios::binary) << json;
    std::ofstream(dir + "/tokenizer_config.json", std::ios::binary) << cfg;
  }
  // If this fails after a deliberate change to the trainer or corpus, rerun
  // with MOEFLUX_REGEN_FIXTURES=1, then scripts/gen_tokenizer_fixtures.py.
  EXPECT_EQ(json, slurp(dir + "/tokenizer.json"));
  EXPECT_EQ(cfg, slurp(dir + "/tokenizer_config.json"));
}

TEST(DemoTokenizer, SizesAndSpecials) {
  for (int n : {259, 300, 1000, 2048, 8192}) {
    Tokenizer t = Tokenizer::from_json(make_demo_tokenizer_json(n), make_demo_tokenizer_config_json());
    EXPECT_EQ(t.vocab_size(), n);
    for (int id = 0; id < n; ++id) ASSERT_FALSE(t.token_text(id).empty()) << id;
    ASSERT_TRUE(t.token_id("<|im_end|>").has_value());
    EXPECT_TRUE(t.is_special(*t.token_id("<|im_end|>")));
    EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{*t.token_id("<|im_end|>")});
    EXPECT_EQ(t.eos_token(), "<|im_end|>");
    EXPECT_FALSE(t.bos_id().has_value());
    EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
  }
  EXPECT_THROW(make_demo_tokenizer_json(258), Error);
}

TEST(DemoTokenizer, LearnsMergesAndRoundTrips) {
  Tokenizer t = Tokenizer::from_json(make_demo_tokenizer_json(kFixtureVocab), make_demo_tokenizer_config_json());
  std::string s = "The engine streams the experts that each token needs.";
  auto ids = t.encode(s);
  EXPECT_LT(ids.size(), s.size() / 2) << "merges should compress English";
  EXPECT_EQ(t.decode(ids), s);
  auto chat = t.encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(chat.front(), *t.token_id("<|im_start|>"));
  EXPECT_EQ(chat.back(), *t.token_id("<|im_end|>"));
  // Random bytes (made valid) round-trip exactly: byte-level covers all.
  std::mt19937 rng(7);
  for (int k = 0; k < 200; ++k) {
    std::string r;
    int len = int(rng() % 64);
    for (int i = 0; i < len; ++i) r.push_back(char(rng() % 256));
    r = utf8::to_valid_lossy(r);
    EXPECT_EQ(t.decode(t.encode(r, false)), r);
  }
}

}  // namespace
}  // namespace moeflux
