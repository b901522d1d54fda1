// Bad input: malformed or unsupported tokenizer files fail with moeflux::Error
// naming the file and the JSON key or type; invalid UTF-8 text never crashes.
// Also thread safety and the streaming decoder's hold-back rule.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "fixture_io.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

// Expects an Error whose message holds every one of `parts`.
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

const char* kMinimalModel = R"("model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})";

std::string with(const std::string& extra) { return std::string("{") + kMinimalModel + extra + "}"; }

TEST(TokenizerErrors, MalformedJson) {
  expect_error([] { Tokenizer::from_json("{\"model\": {\"type\": \"BPE\",\n \"vocab\": [1, 2"); },
               {"tokenizer.json", "JSON syntax error at line 2"});
  expect_error([] { Tokenizer::from_json("{\"a\": tru}"); }, {"tokenizer.json", "invalid literal"});
  expect_error([] { Tokenizer::from_json("\"\xff\""); }, {"tokenizer.json", "invalid UTF-8"});
  expect_error([] { Tokenizer::from_json(with(""), "{\"eos_token\": "); }, {"tokenizer_config.json", "JSON"});
}

TEST(TokenizerErrors, UnknownTypesAreNamed) {
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"Unigram","vocab":[]}})"); }, {"model.type", "Unigram"});
  expect_error([] { Tokenizer::from_json(with(R"(,"normalizer":{"type":"Lowercase"})")); }, {"normalizer.type", "Lowercase"});
  expect_error([] { Tokenizer::from_json(with(R"(,"pre_tokenizer":{"type":"BertPreTokenizer"})")); },
               {"pre_tokenizer.type", "BertPreTokenizer"});
  expect_error([] { Tokenizer::from_json(with(R"(,"decoder":{"type":"WordPiece"})")); }, {"decoder.type", "WordPiece"});
  expect_error([] { Tokenizer::from_json(with(R"(,"post_processor":{"type":"Magic"})")); },
               {"post_processor.type", "Magic"});
  expect_error(
      [] {
        Tokenizer::from_json(with(
            R"(,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"a"},"behavior":"Sideways","invert":false}]})"));
      },
      {"pre_tokenizer.pretokenizers[0].behavior", "Sideways"});
}

TEST(TokenizerErrors, MissingFieldsAndWrongTypes) {
  expect_error([] { Tokenizer::from_json("{}"); }, {"tokenizer.json", "missing field \"model\""});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":[],"merges":[]}})"); },
               {"model.vocab", "expected object, got array"});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{"a":"x"},"merges":[]}})"); },
               {"model.vocab.a", "integer"});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{"a":0}}})"); }, {"model", "\"merges\""});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":["a c"]}})"); },
               {"model.merges[0]", "\"c\""});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a"]]}})"); },
               {"model.merges[0]", "\"aa\""});
  expect_error([] { Tokenizer::from_json(with(R"(,"added_tokens":[{"content":"x"}])")); }, {"added_tokens[0]", "\"id\""});
}

TEST(TokenizerErrors, Files) {
  auto dir = std::filesystem::temp_directory_path() / "moeflux_tok_errors";
  std::filesystem::create_directories(dir);
  expect_error([&] { Tokenizer::load((dir / "nope.json").string()); }, {"nope.json", "cannot open"});

  // A gzip of a valid tokenizer, then cut in half.
  std::string json = make_demo_tokenizer_json(300);
  std::string gz_path = (dir / "tokenizer.json.gz").string();
  {
    gzFile gz = gzopen(gz_path.c_str(), "wb");
    gzwrite(gz, json.data(), unsigned(json.size()));
    gzclose(gz);
  }
  EXPECT_EQ(Tokenizer::load(gz_path).vocab_size(), 300);
  auto size = std::filesystem::file_size(gz_path);
  std::filesystem::resize_file(gz_path, size / 2);
  expect_error([&] { Tokenizer::load(gz_path); }, {"tokenizer.json.gz"});
  std::filesystem::remove_all(dir);
}

TEST(TokenizerInput, InvalidUtf8BecomesReplacementCharacters) {
  Tokenizer t = Tokenizer::from_json(make_demo_tokenizer_json(600));
  for (std::string bad : std::vector<std::string>{"\xff", "a\xe2\x82", "\xed\xa0\x80z", "\xf0\x9f\x98", std::string("\x00\xc0", 2)}) {
    auto ids = t.encode(bad);
    EXPECT_EQ(ids, t.encode(utf8::to_valid_lossy(bad)));
    EXPECT_EQ(t.decode(ids), utf8::to_valid_lossy(bad));
  }
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.decode(std::vector<int32_t>{-5, 1 << 30}), "");  // unknown ids are skipped, as in HF
}

// Found by tokenizer_json_fuzz: an added token id of 1.3e9 resized the id
// table to it (an out-of-memory abort); a vocab id up to INT32_MAX did the
// same. Ids are capped as model sizes are (2^24), before any allocation.
TEST(TokenizerErrors, HugeTokenIdsAreRefusedBeforeAllocating) {
  expect_error(
      [] {
        Tokenizer::from_json(with(R"(,"added_tokens":[{"id":1300000000,"content":"<x>","special":true}])"));
      },
      {"tokenizer.json", "1300000000", "exceeds the largest token id"});
  expect_error([] { Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{"a":0,"b":2000000000},"merges":[]}})"); },
               {"tokenizer.json", "model.vocab.b", "2000000000"});
  expect_error(
      [] { Tokenizer::from_json(with(R"(,"added_tokens":[{"id":8589934593,"content":"<x>","special":true}])")); },
      {"8589934593"});  // not cast to int32 (it would be 1)
}

TEST(TokenizerThreads, ConcurrentEncodeMatchesSerial) {
  Tokenizer t = Tokenizer::from_json(make_demo_tokenizer_json(1024));
  auto corpus = testing::read_corpus();
  std::vector<std::vector<int32_t>> serial;
  for (const auto& s : corpus) serial.push_back(t.encode(s));
  std::vector<size_t> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      Tokenizer copy = t;  // copies share state
      for (size_t i = size_t(k); i < corpus.size() * 2; i += 3)
        if (copy.encode(corpus[i % corpus.size()]) != serial[i % corpus.size()]) ++bad[size_t(k)];
    });
  for (auto& th : threads) th.join();
  for (size_t b : bad) EXPECT_EQ(b, 0u);
}

TEST(StreamDecoder, HoldsIncompleteCharacters) {
  Tokenizer t = Tokenizer::from_json(make_demo_tokenizer_json(300));  // few merges: "€" is 3 byte tokens
  auto ids = t.encode("a\u20ac", false);
  ASSERT_EQ(ids.size(), 4u);
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(ids[0]), "a");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), "\u20ac");
  EXPECT_EQ(sd.flush(), "");
  // An unfinished character at the end comes out as U+FFFD on flush, as decode() does.
  StreamDecoder sd2(t);
  EXPECT_EQ(sd2.push(ids[1]), "");
  EXPECT_EQ(sd2.flush(), "\ufffd");
  // Special tokens are skipped by default.
  StreamDecoder sd3(t);
  EXPECT_EQ(sd3.push(*t.token_id("<|im_end|>")), "");
  StreamDecoder sd4(t, false);
  EXPECT_EQ(sd4.push(*t.token_id("<|im_end|>")), "<|im_end|>");
}

TEST(StreamDecoder, ByteFallbackTokens) {
  std::string dir = testing::shared_tokenizers_dir() + "/llama2";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no " << dir;
  Tokenizer t = Tokenizer::load(dir + "/tokenizer.json.gz");
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(*t.token_id("\u2581Hi")), "Hi");  // Strip removes the leading space once
  EXPECT_EQ(sd.push(*t.token_id("<0xE2>")), "");
  EXPECT_EQ(sd.push(*t.token_id("<0x82>")), "");
  EXPECT_EQ(sd.push(*t.token_id("<0xAC>")), "\u20ac");
  EXPECT_EQ(sd.push(*t.token_id("\u2581there")), " there");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(t.encode("Hi").front(), 1);  // add_bos_token
}

}  // namespace
}  // namespace moeflux
