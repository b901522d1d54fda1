// GGUF vocabularies: bad input is refused naming the key and what is wrong;
// small hand-made vocabularies pin down the SPM algorithm (score order,
// leftmost ties, byte fallback, space prefix) and the handling of Unused
// padding tokens; the exporter refuses what GGUF cannot express.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "fixture_io.h"
#include "format/gguf/gguf_vocab.h"
#include "format/gguf/gguf_writer.h"
#include "text/tokenizer/gguf_export.h"
#include "text/tokenizer/gguf_tokenizer.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

template <typename F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "\"" << p << "\" not in: " << msg;
  }
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moeflux-gguf-tok-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::string& content = "") const {
    std::string p = path_ + "/" + name;
    if (!content.empty()) std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A byte-level BPE vocabulary: the 256 GPT-2 byte characters, "ab", "abc",
// and <|end|> as a control token.
GgufVocab tiny_bpe() {
  GgufVocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) {
    std::string s;
    utf8::append(s, utf8::byte_to_char(uint8_t(b)));
    v.tokens.push_back(s);
  }
  v.tokens.push_back("ab");
  v.tokens.push_back("abc");
  v.tokens.push_back("<|end|>");
  v.token_types.assign(v.tokens.size(), GgufTokenType::Normal);
  v.token_types.back() = GgufTokenType::Control;
  v.merges = {"a b", "ab c"};
  v.eos_id = uint32_t(v.tokens.size() - 1);
  return v;
}

// A SentencePiece vocabulary: <unk> <s> </s>, byte tokens, then pieces with
// scores (higher merges first).
GgufVocab tiny_spm(bool with_bytes = true) {
  GgufVocab v;
  v.kind = GgufVocabKind::Spm;
  v.model = "llama";
  auto add = [&](std::string t, float score, GgufTokenType type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.token_types.push_back(type);
  };
  add("<unk>", 0, GgufTokenType::Unknown);
  add("<s>", 0, GgufTokenType::Control);
  add("</s>", 0, GgufTokenType::Control);
  if (with_bytes) {
    char buf[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      add(buf, 0, GgufTokenType::Byte);
    }
  }
  for (const char* p : {"\u2581", "a", "b", "c"}) add(p, -100, GgufTokenType::Normal);
  add("\u2581a", -1, GgufTokenType::Normal);  // merges first
  add("ab", -2, GgufTokenType::Normal);
  add("bc", -2, GgufTokenType::Normal);       // ties with "ab": the leftmost pair wins
  add("\u2581ab", -3, GgufTokenType::Normal);
  add("<pad>", 0, GgufTokenType::Unused);
  return v;
}

int32_t id_of(const GgufVocab& v, const std::string& t) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == t) return int32_t(i);
  ADD_FAILURE() << "no token " << t;
  return -1;
}

TEST(GgufTokenizer, UnknownPreNamesTheSupportedOnes) {
  GgufVocab v = tiny_bpe();
  v.pre = "no-such-pre";
  expect_error([&] { Tokenizer::from_gguf(v); },
               {"tokenizer.ggml.pre", "\"no-such-pre\"", "not supported", "qwen2", "llama-bpe", "deepseek-v3"});
}

TEST(GgufTokenizer, MissingMerges) {
  GgufMetadata md("vocab.gguf");
  md.add("tokenizer.ggml.model", GgufValue{std::string("gpt2")});
  md.add("tokenizer.ggml.tokens", GgufValue{GgufArray{std::vector<std::string>{"a", "b"}}});
  expect_error([&] { read_gguf_vocab(md); }, {"vocab.gguf", "tokenizer.ggml.merges", "missing"});
  GgufVocab v = tiny_bpe();
  v.merges.clear();
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.merges", "missing or empty"});
}

TEST(GgufTokenizer, InconsistentArrays) {
  GgufVocab v = tiny_bpe();
  v.token_types.pop_back();
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.token_type", "258 entries for 259 tokens"});

  v = tiny_bpe();
  v.tokens[257] = "ab";  // "abc" becomes a second "ab"
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.tokens", "token 256 \"ab\" is also token 257"});

  v = tiny_bpe();
  v.merges.push_back("x yz");
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.merges[2]", "\"yz\" is not in tokenizer.ggml.tokens"});
  v = tiny_bpe();
  v.merges.push_back("c a");
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.merges[2]", "merged token \"ca\""});
  v = tiny_bpe();
  v.merges.push_back("abc");
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.merges[2]", "\"left right\""});

  v = tiny_bpe();
  v.eos_id = 9999;
  expect_error([&] { Tokenizer::from_gguf(v); }, {"tokenizer.ggml.eos_token_id", "9999", "outside"});
  v = tiny_bpe();
  v.add_bos = true;
  expect_error([&] { Tokenizer::from_gguf(v); }, {"add_bos_token is true", "bos_token_id is not set"});

  GgufVocab s = tiny_spm();
  s.scores.pop_back();
  expect_error([&] { Tokenizer::from_gguf(s); }, {"tokenizer.ggml.scores", "entries for"});
  s = tiny_spm();
  s.tokens[1] = "<unk>";
  expect_error([&] { Tokenizer::from_gguf(s); }, {"token 0 \"<unk>\" is also token 1"});
}

TEST(GgufTokenizer, ErrorsOfAFileNameIt) {
  TempDir d;
  GgufVocab v = tiny_bpe();
  GgufMetadata md;
  md.add("general.architecture", GgufValue{std::string("llama")});
  md.add("tokenizer.ggml.model", GgufValue{std::string("gpt2")});
  md.add("tokenizer.ggml.pre", GgufValue{std::string("mystery")});
  md.add("tokenizer.ggml.tokens", GgufValue{GgufArray{v.tokens}});
  md.add("tokenizer.ggml.merges", GgufValue{GgufArray{v.merges}});
  std::string path = d.file("bad.gguf");
  GgufWriter(path, md, {}).finish();
  expect_error([&] { load_gguf_tokenizer(path); }, {"bad.gguf", "\"mystery\" is not supported"});
}

TEST(GgufTokenizer, ByteLevelBpe) {
  GgufVocab v = tiny_bpe();
  Tokenizer t = Tokenizer::from_gguf(v);
  // Token b (< 256) is byte b's GPT-2 character, so the space of " ab" is id 32.
  EXPECT_EQ(t.encode("abc ab<|end|>", false), (std::vector<int32_t>{257, 32, 256, 258}));
  EXPECT_EQ(t.decode(t.encode("abc ab<|end|>", false)), "abc ab<|end|>");
  EXPECT_EQ(t.decode(t.encode("abc<|end|>", false), true), "abc");
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{258});
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.encode("ab", true), std::vector<int32_t>{256});  // "gpt-2" adds no BOS by default
}

TEST(GgufTokenizer, SpmFollowsScoresLeftmostTiesAndBytes) {
  GgufVocab v = tiny_spm();
  Tokenizer t = Tokenizer::from_gguf(v);
  const int32_t bos = id_of(v, "<s>"), a_ = id_of(v, "\u2581a"), ab_ = id_of(v, "\u2581ab"), bc = id_of(v, "bc"),
                ab = id_of(v, "ab"), c = id_of(v, "c"), sp = id_of(v, "\u2581");
  // "▁abc": ▁a (-1) first; the queued "ab" lost its left symbol; bc (-2)
  // beats ▁a+b = ▁ab (-3).
  EXPECT_EQ(t.encode("abc", false), (std::vector<int32_t>{a_, bc}));
  EXPECT_EQ(t.encode(" abc", false), (std::vector<int32_t>{sp, a_, bc}));
  // "▁babc": "ab" and "bc" tie at -2 and overlap: the leftmost pair wins.
  EXPECT_EQ(t.encode("babc", false), (std::vector<int32_t>{sp, id_of(v, "b"), ab, c}));
  EXPECT_EQ(t.encode("bc", false), (std::vector<int32_t>{sp, bc}));
  EXPECT_EQ(t.encode("a", true), (std::vector<int32_t>{bos, a_}));  // "llama" adds BOS by default
  // é has no piece: its UTF-8 bytes.
  EXPECT_EQ(t.encode("\u00e9", false), (std::vector<int32_t>{sp, id_of(v, "<0xC3>"), id_of(v, "<0xA9>")}));
  // A space prefix after each special token, as llama.cpp (and HF's legacy Llama) do.
  EXPECT_EQ(t.encode("a</s>ab", false), (std::vector<int32_t>{a_, id_of(v, "</s>"), ab_}));
  EXPECT_EQ(t.decode(t.encode("a</s>ab", false)), "a</s> ab");
  EXPECT_EQ(t.decode(t.encode("ab a\u00e9", false)), "ab a\u00e9");
  EXPECT_EQ(t.decode(std::vector<int32_t>{bos, a_, ab}, true), "aab");
  EXPECT_EQ(t.bos_id(), bos);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{id_of(v, "</s>")});  // llama.cpp's defaults 1 and 2
  // Streaming a character split over byte tokens holds it back until whole.
  StreamDecoder sd(t, true);
  EXPECT_EQ(sd.push(a_), "a");
  EXPECT_EQ(sd.push(id_of(v, "<0xC3>")), "");
  EXPECT_EQ(sd.push(id_of(v, "<0xA9>")), "\u00e9");

  v.add_space_prefix = false;
  t = Tokenizer::from_gguf(v);
  EXPECT_EQ(t.encode("abc", false), (std::vector<int32_t>{ab, c}));
  EXPECT_EQ(t.decode(t.encode(" a", false)), " a");

  // No byte tokens: the unknown token.
  GgufVocab nb = tiny_spm(false);
  t = Tokenizer::from_gguf(nb);
  EXPECT_EQ(t.encode("a\u00e9", false), (std::vector<int32_t>{id_of(nb, "\u2581a"), 0}));
}

TEST(GgufTokenizer, UnusedTokensDecodeToNothing) {
  GgufVocab v = tiny_spm();
  Tokenizer t = Tokenizer::from_gguf(v);
  const int32_t pad = id_of(v, "<pad>");
  EXPECT_EQ(t.vocab_size(), int32_t(v.tokens.size()));
  EXPECT_EQ(t.token_text(pad), "<pad>");
  EXPECT_EQ(t.decode(std::vector<int32_t>{id_of(v, "\u2581a"), pad}), "a");
}

TEST(GgufTokenizer, PreTokenizerTable) {
  std::set<std::string_view> seen;
  for (const auto& p : gguf_pre_tokenizers()) {
    ASSERT_FALSE(p.names.empty());
    for (auto n : p.names) EXPECT_TRUE(seen.insert(n).second) << "duplicate name " << n;
    for (auto re : p.regexes) EXPECT_NO_THROW(Regex r(re)) << re;
  }
  for (const char* n : {"default", "gpt-2", "llama-bpe", "llama3", "smaug-bpe", "qwen2", "qwen35", "deepseek-llm",
                        "deepseek-coder", "deepseek-v3", "gpt-4o", "tekken", "starcoder", "falcon"})
    EXPECT_NE(find_gguf_pre_tokenizer(n), nullptr) << n;
  EXPECT_EQ(find_gguf_pre_tokenizer("kimi-k2"), nullptr);
}

// ---- exporter --------------------------------------------------------------------

std::string demo_dir() { return testing::fixture_dir() + "/demo"; }

// The demo tokenizer.json with one part replaced.
std::string demo_json_with(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(testing::gunzip_file(demo_dir() + "/tokenizer.json"));
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

TEST(GgufExport, PaddingRowsAreUnused) {
  GgufTokenizerExportOptions o;
  o.n_vocab = 1030;
  GgufMetadata md = gguf_tokenizer_metadata(demo_dir(), o);
  GgufVocab v = read_gguf_vocab(md);
  ASSERT_EQ(v.tokens.size(), 1030u);
  EXPECT_EQ(v.tokens[1027], "[PAD1027]");
  EXPECT_EQ(v.token_types[1027], GgufTokenType::Unused);
  Tokenizer t = Tokenizer::from_gguf(v);
  EXPECT_EQ(t.vocab_size(), 1030);
  EXPECT_EQ(t.decode(std::vector<int32_t>{1027}), "");
  o.n_vocab = 1000;
  expect_error([&] { gguf_tokenizer_metadata(demo_dir(), o); }, {"ids up to 1023", "1000 embedding rows"});
}

TEST(GgufExport, ConfigJsonVocabSizePads) {
  TempDir d;
  std::filesystem::copy(demo_dir() + "/tokenizer.json", d.path() + "/tokenizer.json");
  std::filesystem::copy(demo_dir() + "/tokenizer_config.json", d.path() + "/tokenizer_config.json");
  d.file("config.json", R"({"vocab_size": 1040, "eos_token_id": 590})");
  GgufMetadata md = gguf_tokenizer_metadata(d.path());
  EXPECT_EQ(md.get_array("tokenizer.ggml.tokens").size(), 1040u);
  EXPECT_EQ(md.get_str("tokenizer.ggml.pre"), "smaug-bpe");
  EXPECT_EQ(md.get_u32("tokenizer.ggml.eos_token_id"), 590u);
}

TEST(GgufExport, RefusesWhatGgufCannotSay) {
  TempDir d;
  auto json_file = [&](const std::string& key, const std::string& value) {
    return d.file("tokenizer.json", demo_json_with(key, value));
  };
  expect_error([&] { gguf_tokenizer_metadata(json_file("normalizer", R"({"type": "Lowercase"})")); },
               {"tokenizer.json", "normalizer \"Lowercase\"", "no GGUF equivalent"});
  expect_error([&] { gguf_tokenizer_metadata(json_file("pre_tokenizer", R"({"type": "Whitespace"})")); },
               {"pre_tokenizer \"Whitespace\""});
  expect_error(
      [&] {
        gguf_tokenizer_metadata(json_file("pre_tokenizer", R"({"type": "ByteLevel", "add_prefix_space": true})"));
      },
      {"ByteLevel with add_prefix_space"});
  expect_error(
      [&] {
        gguf_tokenizer_metadata(json_file(
            "pre_tokenizer",
            R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\d+|\\D+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"));
      },
      {"no llama.cpp pre-tokenizer splits like this", "/\\d+|\\D+/", "known: default"});
  expect_error([&] { gguf_tokenizer_metadata(d.path() + "/nothing.json"); }, {"nothing.json", "no such file"});
  TempDir empty;
  expect_error([&] { gguf_tokenizer_metadata(empty.path()); }, {"no tokenizer.json"});
}

}  // namespace
}  // namespace moeflux
