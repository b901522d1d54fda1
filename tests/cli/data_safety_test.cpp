// No command deletes or replaces a file it did not create: the
// reproductions of the hardening campaign's data-loss findings.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

using namespace moeflux;

namespace {

namespace fs = std::filesystem;

const std::string kOlmoe = test::fixture("oracle/olmoe_f32");

bool has(const test::CliResult& r, const std::string& fragment) { return r.err.find(fragment) != std::string::npos; }

TEST(DataSafety, DemoNeverDeletesAForeignDirectory) {
  // `moeflux demo --dir DIR` used to remove_all(DIR) when DIR/tokenizer.json was missing.
  test::TempDir d;
  const std::string p = d.file("p");
  fs::create_directories(p + "/sub");
  test::write_file(p + "/thesis.txt", "x");
  test::write_file(p + "/sub/notes.txt", "y");
  auto r = test::run_cli("demo --dir " + p);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "was not made by moeflux demo")) << r.err;
  EXPECT_EQ(test::read_file(p + "/thesis.txt"), "x");
  EXPECT_EQ(test::read_file(p + "/sub/notes.txt"), "y");
  // Even files named like the demo's own are kept in a directory the demo did not make.
  test::write_file(p + "/config.json", "{}");
  r = test::run_cli("demo --dir " + p);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(test::read_file(p + "/config.json"), "{}");
  // A file is not a directory.
  r = test::run_cli("demo --dir " + p + "/thesis.txt");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "is not a directory")) << r.err;
  EXPECT_EQ(test::read_file(p + "/thesis.txt"), "x");
}

TEST(DataSafety, DemoRepairsOnlyItsOwnUnfinishedDirectory) {
  test::TempDir d;
  const std::string p = d.file("demo");
  fs::create_directories(p);  // empty: the demo may use it
  auto r = test::run_cli("demo --dir " + p);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(p + "/.moeflux-demo"));
  EXPECT_TRUE(fs::exists(p + "/tokenizer.json"));
  // An interrupted run: the tokenizer is missing. The demo redoes its own
  // files and leaves the user's file beside them alone.
  fs::remove(p + "/tokenizer.json");
  test::write_file(p + "/mine.txt", "keep");
  r = test::run_cli("demo --dir " + p);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(p + "/tokenizer.json"));
  EXPECT_EQ(test::read_file(p + "/mine.txt"), "keep");
  // A link of the user's under one of the demo's names is neither removed
  // nor written through, even in the demo's own directory.
  fs::remove(p + "/tokenizer.json");
  fs::remove(p + "/config.json");
  fs::create_symlink(p + "/mine.txt", p + "/config.json");
  r = test::run_cli("demo --dir " + p);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "config.json")) << r.err;
  EXPECT_TRUE(fs::is_symlink(p + "/config.json"));
  EXPECT_EQ(test::read_file(p + "/mine.txt"), "keep");
}

TEST(DataSafety, ScoreLogitsOutRefusesLinksDevicesAndExistingFiles) {
  test::TempDir d;
  test::write_file(d.file("target"), "data");
  fs::create_symlink(d.file("target"), d.file("link"));
  auto r = test::run_cli("score " + kOlmoe + " --tokens 1,2,3 --logits-out " + d.file("link") + " --force");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "symbolic link")) << r.err;
  EXPECT_TRUE(fs::is_symlink(d.file("link")));
  EXPECT_EQ(test::read_file(d.file("target")), "data");

  r = test::run_cli("score " + kOlmoe + " --tokens 1,2,3 --logits-out /dev/null --force");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "not a regular file")) << r.err;
  EXPECT_TRUE(fs::is_character_file("/dev/null"));

  r = test::run_cli("score " + kOlmoe + " --tokens 1,2,3 --logits-out " + d.file("target"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "--force")) << r.err;
  EXPECT_EQ(test::read_file(d.file("target")), "data");

  test::write_file(d.file("l.npy.partial"), "user's");
  r = test::run_cli("score " + kOlmoe + " --tokens 1,2,3 --logits-out " + d.file("l.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_file(d.file("l.npy.partial")), "user's");
  EXPECT_EQ(test::read_file(d.file("l.npy")).substr(0, 6), "\x93NUMPY");
  r = test::run_cli("score " + kOlmoe + " --tokens 1,2,3 --logits-out " + d.file("target") + " --force");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_file(d.file("target")).substr(0, 6), "\x93NUMPY");
}

TEST(DataSafety, SynthNeverOverwritesWeightsItDidNotWrite) {
  // `synth -o D` used to overwrite D/model.safetensors when D had no config.json.
  test::TempDir d;
  fs::create_directories(d.file("m"));
  test::write_file(d.file("m/model.safetensors"), "precious");
  auto r = test::run_cli("synth --preset tiny-moe --layers 1 -o " + d.file("m"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "model.safetensors already exists")) << r.err;
  EXPECT_EQ(test::read_file(d.file("m/model.safetensors")), "precious");
  EXPECT_FALSE(fs::exists(d.file("m/config.json")));  // refused before anything was written
  // A tokenizer of the user's is kept too.
  fs::create_directories(d.file("t"));
  test::write_file(d.file("t/tokenizer.json"), "mine");
  r = test::run_cli("synth --preset tiny-moe --layers 1 -o " + d.file("t"));
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(test::read_file(d.file("t/tokenizer.json")), "mine");
  EXPECT_FALSE(fs::exists(d.file("t/model.safetensors")));
  // --force replaces them.
  r = test::run_cli("synth --preset tiny-moe --layers 1 -o " + d.file("m") + " --force");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(test::read_file(d.file("m/model.safetensors")), "precious");
  // An existing file is not a directory: a clear message, not "filesystem error".
  test::write_file(d.file("f"), "file");
  r = test::run_cli("synth --preset tiny-moe --layers 1 -o " + d.file("f"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "is not a directory")) << r.err;
  EXPECT_FALSE(has(r, "internal error")) << r.err;
  EXPECT_EQ(test::read_file(d.file("f")), "file");
}

TEST(DataSafety, GgufOutputsKeepTheUsersPartialFileAndRefuseLinks) {
  test::TempDir d;
  test::write_file(d.file("out.gguf.partial"), "user's");
  auto r = test::run_cli("synth --preset tiny-moe --layers 1 --type q8_0 -o " + d.file("out.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_file(d.file("out.gguf.partial")), "user's");
  fs::create_symlink(d.file("out.gguf"), d.file("link.gguf"));
  r = test::run_cli("convert " + kOlmoe + " -o " + d.file("link.gguf") + " --type q8_0 --no-tokenizer -q --force");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r, "symbolic link")) << r.err;
  EXPECT_TRUE(fs::is_symlink(d.file("link.gguf")));
  r = test::run_cli("convert " + kOlmoe + " -o /dev/null --type q8_0 --no-tokenizer -q --force");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

}  // namespace
