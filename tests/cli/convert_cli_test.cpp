// `moeflux convert` and `moeflux synth --type` as a user runs them.
#include <gtest/gtest.h>

#include <filesystem>

#include "format/gguf/gguf_file.h"
#include "test_util.h"

using namespace moeflux;

namespace {

TEST(CliConvert, SynthDirectoryToGgufWithTokenizer) {
  test::TempDir tmp;
  ASSERT_EQ(test::run_cli("synth --preset tiny-moe --layers 2 --experts 4 -o " + tmp.file("hf")).code, 0);
  auto r = test::run_cli("convert " + tmp.file("hf") + " -o " + tmp.file("m.gguf") + " --type q4_k_m -q");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Q4_K"), std::string::npos) << r.out;
  const GgufFile f(tmp.file("m.gguf"));
  EXPECT_EQ(f.metadata().get_str("general.architecture"), "qwen3moe");
  EXPECT_EQ(f.metadata().get_str("general.name"), "hf");
  EXPECT_TRUE(f.metadata().has("tokenizer.ggml.tokens"));
  EXPECT_EQ(f.tensor("output.weight").type, GgmlType::Q6_K);

  // synth --type writes the same file directly (same name, same tokenizer).
  r = test::run_cli("synth --preset tiny-moe --layers 2 --experts 4 --type q4_k_m -o " + tmp.file("s.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cli("convert " + tmp.file("hf") + " -o " + tmp.file("n.gguf") + " --type q4_k_m -q --name tiny-moe");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(test::read_file(tmp.file("s.gguf")) == test::read_file(tmp.file("n.gguf")));
}

TEST(CliConvert, BadInputIsNamedWithNonZeroExit) {
  test::TempDir tmp;
  const std::string oracle = test::fixture("oracle/qwen3_moe_f32");
  auto r = test::run_cli("convert " + oracle + " -o " + tmp.file("m.gguf") + " --type q3_k");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown --type 'q3_k'"), std::string::npos) << r.err;
  r = test::run_cli("convert " + oracle + " -o " + tmp.file("m.gguf") + " --type q8_0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--no-tokenizer"), std::string::npos) << r.err;
  r = test::run_cli("convert " + oracle + " -o " + tmp.file("m.gguf") + " --type q8_0 --no-tokenizer -q");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("layers 1 are dense"), std::string::npos) << r.err;  // llama.cpp cannot load that part
  r = test::run_cli("convert " + oracle + " -o " + tmp.file("m.gguf") + " --type q8_0 --no-tokenizer -q");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = test::run_cli("synth --preset tiny-moe --type q9 -o " + tmp.file("x.gguf"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown --type 'q9'"), std::string::npos) << r.err;
}

}  // namespace
