// GGUF vocabularies against llama.cpp itself (fixtures in
// tests/fixtures/gguf_vocab/, written by scripts/gen_gguf_vocab_fixtures.py
// from llama.cpp 0c1e570 / llama-cpp-python 0.3.36):
//  - llama.cpp's own test vectors (models/ggml-vocab-*.gguf.inp/.out) for
//    its Llama 2 SentencePiece file (committed) and for qwen2, qwen35 and
//    llama-bpe, whose vocabularies and merges are those of our qwen3 and
//    llama3 tokenizers;
//  - llama.cpp's ids for the whole corpus on its Llama 2 SPM file;
//  - llama.cpp's ids for the whole corpus on the files our exporter writes:
//    identical to Hugging Face's except where llama.cpp itself departs from
//    HF (each such string must be explained below);
//  - what llama.cpp's convert_hf_to_gguf.py writes for the same tokenizers,
//    key by key, with the differences listed and explained.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <utf8proc.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "format/gguf/gguf_file.h"
#include "gguf_cases.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

using testing::GgufCase;
using testing::GgufCaseName;
using Json = nlohmann::json;

std::string dir() { return std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/gguf_vocab"; }

const Json& llama_cpp() {
  static const Json j = Json::parse(testing::gunzip_file(dir() + "/llama_cpp.json.gz"));
  return j;
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

// llama.cpp's own vocab-only GGUF of the Llama 2 SentencePiece vocabulary.
Tokenizer llama_spm() {
  std::string bytes = testing::gunzip_file(dir() + "/llama-spm.gguf.gz");
  GgufContents c = parse_gguf({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "llama-spm.gguf");
  GgufVocab v = read_gguf_vocab(c.metadata);
  EXPECT_EQ(v.kind, GgufVocabKind::Spm);
  return Tokenizer::from_gguf(v);
}

// test-tokenizer-0's format: inputs separated by "\n__ggml_vocab_test__\n",
// one line of ids per input.
std::vector<std::pair<std::string, std::vector<int32_t>>> read_vectors(const std::string& name) {
  std::string inp = testing::gunzip_file(dir() + "/" + name + ".inp");  // gzread passes plain files through
  std::string out = testing::gunzip_file(dir() + "/" + name + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::pair<std::string, std::vector<int32_t>>> v;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    std::vector<int32_t> ids;
    std::istringstream ls(line);
    for (int32_t x; ls >> x;) ids.push_back(x);
    if (i < texts.size()) v.emplace_back(texts[i], std::move(ids));
  }
  EXPECT_EQ(v.size(), texts.size()) << name;
  return v;
}

void expect_vectors(const Tokenizer& tok, const std::string& name) {
  auto vectors = read_vectors(name);
  ASSERT_GE(vectors.size(), 40u);
  size_t bad = 0;
  for (const auto& [text, want] : vectors) {
    auto got = tok.encode(text, false);
    if (got != want && bad++ < 5) ADD_FAILURE() << name << " \"" << text << "\": got " << show_ids(got) << " want " << show_ids(want);
  }
  std::printf("[%s] %zu llama.cpp test vectors, %zu mismatches\n", name.c_str(), vectors.size(), bad);
  EXPECT_EQ(bad, 0u);
}

TEST(GgufLlamaCpp, TestVectorsLlamaSpm) { expect_vectors(llama_spm(), "llama-spm"); }

TEST(GgufLlamaCpp, TestVectorsQwen2AndQwen35) {
  const GgufCase* c = testing::gguf_case("qwen3");
  if (c == nullptr) GTEST_SKIP() << "no shared qwen3 tokenizer";
  ASSERT_EQ(c->metadata.get_str("tokenizer.ggml.pre"), "qwen2");
  expect_vectors(c->gguf, "qwen2");
  // Qwen3.5 keeps the vocabulary and merges and changes the pre-tokenizer.
  GgufVocab v = read_gguf_vocab(c->metadata);
  v.pre = "qwen35";
  expect_vectors(Tokenizer::from_gguf(v), "qwen35");
}

TEST(GgufLlamaCpp, TestVectorsLlamaBpe) {
  const GgufCase* c = testing::gguf_case("llama3");
  if (c == nullptr) GTEST_SKIP() << "no shared llama3 tokenizer";
  ASSERT_EQ(c->metadata.get_str("tokenizer.ggml.pre"), "llama-bpe");
  expect_vectors(c->gguf, "llama-bpe");
}

std::vector<int32_t> ids_of(const Json& j) { return j.get<std::vector<int32_t>>(); }

TEST(GgufLlamaCpp, LlamaSpmCorpus) {
  Tokenizer tok = llama_spm();
  auto corpus = testing::read_corpus();
  const Json& t = llama_cpp()["tokenize"]["llama-spm"];
  ASSERT_EQ(t["plain"].size(), corpus.size());
  size_t bad_plain = 0, bad_special = 0, bad_stream = 0, shown = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    auto want = ids_of(t["plain"][i]);
    std::vector<int32_t> want_special = {1};
    want_special.insert(want_special.end(), want.begin(), want.end());
    if (t["special"].contains(std::to_string(i))) want_special = ids_of(t["special"][std::to_string(i)]);
    auto got = tok.encode(corpus[i], false);
    if (got != want && ++bad_plain && shown++ < 5) ADD_FAILURE() << "#" << i << " got " << show_ids(got) << " want " << show_ids(want);
    if (tok.encode(corpus[i], true) != want_special) ++bad_special;
    StreamDecoder sd(tok, false);
    std::string streamed;
    for (int32_t id : got) streamed += sd.push(id);
    streamed += sd.flush();
    if (streamed != tok.decode(got, false) || utf8::valid_prefix(streamed) != streamed.size()) ++bad_stream;
  }
  std::printf("[llama-spm] %zu strings vs llama.cpp: plain %zu, special %zu, stream %zu mismatches\n", corpus.size(),
              bad_plain, bad_special, bad_stream);
  EXPECT_EQ(bad_plain, 0u);
  EXPECT_EQ(bad_special, 0u);
  EXPECT_EQ(bad_stream, 0u);
}

// ---- the files our exporter writes, tokenized by llama.cpp ---------------------

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  std::string r(reinterpret_cast<const char*>(out));
  std::free(out);
  return r;
}

bool has_mark(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    char32_t c = utf8::next(s, i);
    auto cat = utf8proc_category(utf8proc_int32_t(c));
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME) return true;
  }
  return false;
}

// Why llama.cpp's ids may differ from Hugging Face's (and so from ours,
// which follow HF; gguf_roundtrip_test.cpp checks that) for a string.
// nullptr: no known reason, i.e. a bug on one side.
const char* llama_cpp_departure(const std::string& name, const std::string& text) {
  if (name == "qwen3") {
    if (nfc(text) != text) return "NFC: HF's Qwen tokenizer normalizes to NFC, llama.cpp does not";
    if (text.find("</s>") != std::string::npos)
      return "\"</s>\": llama.cpp turns a Normal token spelled \"</s>\" into a control token (an end-of-generation "
             "guess added for another model), so it matches it in the text";
  }
  if (name == "gptoss" && has_mark(text))
    return "combining marks: llama.cpp's std::regex rewrite of the gpt-4o pattern drops \\p{M} from the letter "
           "classes, so marks split off their letters";
  return nullptr;
}

class GgufExportedVsLlamaCpp : public ::testing::TestWithParam<GgufCaseName> {};

TEST_P(GgufExportedVsLlamaCpp, IdsDifferOnlyWhereLlamaCppDepartsFromHf) {
  const std::string name = GetParam().name;
  const GgufCase* c = testing::gguf_case(name);
  if (c == nullptr) GTEST_SKIP() << "no " << testing::hf_dir_of(name);
  const Json& t = llama_cpp()["tokenize"][name];
  auto corpus = testing::read_corpus();
  ASSERT_EQ(llama_cpp()["corpus_size"].get<size_t>(), corpus.size());
  std::map<std::string, size_t> reasons;
  size_t unexplained = 0;
  for (const char* mode : {"plain", "special"}) {
    for (const auto& [key, ids] : t[mode].items()) {
      size_t i = std::stoul(key);
      std::string text = utf8::to_valid_lossy(corpus[i]);
      auto ours = c->gguf.encode(corpus[i], std::string(mode) == "special");
      ASSERT_NE(ours, ids_of(ids)) << "llama.cpp differs from HF but equals moeflux on #" << i;
      if (const char* why = llama_cpp_departure(name, text)) {
        ++reasons[std::string(mode) + ": " + why];
      } else if (unexplained++ < 5) {
        ADD_FAILURE() << name << " " << mode << " #" << i << ": llama.cpp " << show_ids(ids_of(ids)) << ", moeflux/HF "
                      << show_ids(ours);
      }
    }
  }
  std::printf("[%s] llama.cpp on the exported GGUF, %zu strings: %zu differ from HF (plain), %zu (with specials)\n",
              name.c_str(), corpus.size(), t["plain"].size(), t["special"].size());
  for (const auto& [why, n] : reasons) std::printf("    %zu x %s\n", n, why.c_str());
  EXPECT_EQ(unexplained, 0u);
}

// ---- what llama.cpp's converter writes ------------------------------------------

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char b : bytes) h = (h ^ b) * 0x100000001B3ULL;
  return h;
}

template <typename T>
void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86 and ARM Linux are little-endian, as GGUF is
  out.append(b, sizeof(T));
}

// The script's description of a value: arrays as FNV-1a 64 of their bytes,
// long strings likewise, other scalars as they are.
Json describe(const GgufValue& v) {
  auto hex = [](uint64_t h) { return fmt::format("{:016x}", h); };
  auto str_fp = [&](const std::vector<std::string>& ss) {
    std::string bytes;
    for (const auto& s : ss) {
      put_le(bytes, uint32_t(s.size()));
      bytes += s;
    }
    return hex(fnv1a(bytes));
  };
  if (auto* s = std::get_if<std::string>(&v.data)) return s->size() < 64 ? Json(*s) : Json(str_fp({*s}));
  if (auto* b = std::get_if<bool>(&v.data)) return *b;
  if (auto* u = std::get_if<uint32_t>(&v.data)) return *u;
  if (auto* a = std::get_if<GgufArray>(&v.data)) {
    std::string bytes;
    if (auto* ss = std::get_if<std::vector<std::string>>(&a->data)) return str_fp(*ss);
    if (auto* is = std::get_if<std::vector<int32_t>>(&a->data))
      for (int32_t x : *is) put_le(bytes, x);
    if (auto* fs = std::get_if<std::vector<float>>(&a->data))
      for (float x : *fs) put_le(bytes, x);
    return hex(fnv1a(bytes));
  }
  return gguf_value_summary(v);
}

struct KnownDiff {
  const char* tokenizer;
  const char* key;
  const char* why;
};
// Where moeflux's exporter writes something else than convert_hf_to_gguf.py,
// on purpose. The test checks each one still differs (and nothing else does).
const KnownDiff kKnownDiffs[] = {
    {"llama3", "tokenizer.ggml.pre",
     "the converter hashes the ids of a test string; this Llama 3 tokenizer adds no BOS, which gives Smaug's hash "
     "(smaug-bpe: whole-token words still merged), but tokenizer.json sets ignore_merges, which llama.cpp ties to "
     "llama-bpe (same ids from llama.cpp on the corpus)"},
    {"deepseek_v3", "tokenizer.ggml.add_bos_token",
     "gguf-py takes the ByteLevel post-processor (no BOS) over tokenizer_config.json's add_bos_token=true; "
     "transformers does the opposite, and moeflux writes what transformers' encode() adds"},
    {"llama2", "tokenizer.ggml.scores",
     "without tokenizer.model the converter's LlamaHfVocab writes -1000 for every score, so llama.cpp would merge "
     "leftmost-first; moeflux scores each token by the rank of the merge that makes it"},
    {"llama2", "tokenizer.ggml.token_type", "<unk> is Unknown as SentencePiece files have it, not Control"},
    {"llama2", "tokenizer.ggml.add_sep_token", "not written (the converter's false is llama.cpp's default)"},
    {"llama2", "tokenizer.ggml.add_space_prefix", "written explicitly (true, llama.cpp's default for \"llama\")"},
};

class GgufExportVsConvert : public ::testing::TestWithParam<GgufCaseName> {};

TEST_P(GgufExportVsConvert, SameKeysAsLlamaCppConverter) {
  const std::string name = GetParam().name;
  const GgufCase* c = testing::gguf_case(name);
  if (c == nullptr) GTEST_SKIP() << "no " << testing::hf_dir_of(name);
  const Json& conv = llama_cpp()["convert"][name];
  if (conv.contains("error")) {
    // The converter only knows pre-tokenizers by the hash of a known model.
    EXPECT_EQ(name, "demo") << conv["error"];
    EXPECT_NE(conv["error"].get<std::string>().find("not recognized"), std::string::npos);
    std::printf("[%s] convert_hf_to_gguf.py refuses it: %s; moeflux exports pre \"%s\"\n", name.c_str(),
                conv["error"].get<std::string>().c_str(), c->metadata.get_str("tokenizer.ggml.pre").c_str());
    return;
  }
  std::set<std::string> keys;
  for (const auto& [k, v] : conv.items()) keys.insert(k);
  for (const auto& [k, v] : c->metadata.entries()) keys.insert(k);
  size_t same = 0;
  for (const auto& k : keys) {
    const char* why = nullptr;
    for (const auto& d : kKnownDiffs)
      if (name == d.tokenizer && k == d.key) why = d.why;
    const GgufValue* ours = c->metadata.find(k);
    Json mine = ours ? describe(*ours) : Json(nullptr);
    Json theirs = conv.contains(k) ? conv[k] : Json(nullptr);
    if (why) {
      EXPECT_NE(mine, theirs) << name << " " << k << " is listed as different but is the same";
      std::printf("[%s] %s: moeflux %s, converter %s: %s\n", name.c_str(), k.c_str(), mine.dump().c_str(),
                  theirs.dump().c_str(), why);
    } else {
      EXPECT_EQ(mine, theirs) << name << " " << k;
      same += mine == theirs;
    }
  }
  std::printf("[%s] %zu keys identical to convert_hf_to_gguf.py's\n", name.c_str(), same);
}

INSTANTIATE_TEST_SUITE_P(All, GgufExportedVsLlamaCpp, ::testing::ValuesIn(testing::kGgufCases),
                         [](const auto& info) { return std::string(info.param.name); });
INSTANTIATE_TEST_SUITE_P(All, GgufExportVsConvert, ::testing::ValuesIn(testing::kGgufCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace moeflux
