// Bad options and bad paths, as a table: each gets a non-zero exit and a
// message naming the option, key or file and what was expected (the
// hardening issue, items 6 to 8).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

using namespace moeflux;

namespace {

constexpr int kUsage = 105;  // CLI11's ValidationError exit code
constexpr int kError = 1;    // moeflux::Error

class BadOptions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_cli("synth --preset tiny-moe -o " + text_model() + " --layers 2 --experts 4 --seed 5");
    ASSERT_EQ(r.code, 0) << r.err;
    std::filesystem::create_directory(dir_->file("empty_dir"));
    test::write_file(dir_->file("tiny.gguf"), "GG");
    ASSERT_EQ(mkfifo(dir_->file("fifo").c_str(), 0600), 0);
    // The synthetic model with tokenizer.json replaced by a FIFO (reading it blocked forever).
    std::filesystem::create_directory(dir_->file("fifo_tok"));
    for (auto& e : std::filesystem::directory_iterator(text_model()))
      if (e.path().filename() != "tokenizer.json")
        std::filesystem::create_symlink(e.path(), dir_->file("fifo_tok") + "/" + e.path().filename().string());
    ASSERT_EQ(mkfifo(dir_->file("fifo_tok/tokenizer.json").c_str(), 0600), 0);
    // A model dir whose config.json has a number beyond double.
    std::filesystem::create_directory(dir_->file("huge"));
    test::write_file(dir_->file("huge/config.json"), R"({"model_type": "olmoe", "rms_norm_eps": 1e400})");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string text_model() { return dir_->file("m"); }
  static test::TempDir* dir_;
};
test::TempDir* BadOptions::dir_ = nullptr;

struct Case {
  std::string args;      // after "moeflux "; {M}: the synthetic text model, {O}: an oracle model, {T}: the temp dir
  int code;
  std::string fragment;  // expected in stderr
};

std::string expand(std::string s, const std::string& m, const std::string& t) {
  const std::string o = test::fixture("oracle/olmoe_f32");
  for (auto [key, val] : {std::pair<std::string, std::string>{"{M}", m}, {"{O}", o}, {"{T}", t}})
    for (size_t at; (at = s.find(key)) != std::string::npos;) s.replace(at, key.size(), val);
  return s;
}

TEST_F(BadOptions, Table) {
  const Case cases[] = {
      // --threads is capped at a few per core (40,000 made the machine unusable).
      {"score {O} --tokens 1,2 --threads 40000", kUsage, "--threads: '40000' is not an integer from 0 to"},
      {"score {O} --tokens 1,2 --threads -1", kUsage, "--threads: '-1' is not an integer from 0 to"},
      {"score {O} --tokens 1,2 --threads x", kUsage, "--threads"},
      {"convert {O} -o {T}/x.gguf --threads 99999", kUsage, "--threads: '99999' is not an integer from 0 to"},
      // Ranges are printed as numbers, not DBL_MAX.
      {"score {O} --tokens 1,2 --top-k 0", kUsage, "--top-k: '0' is not an integer from 1 to 2147483647"},
      {"score {O} --tokens 1,2 --io-qd 0", kUsage, "--io-qd: '0' is not an integer from 1 to 4096"},
      {"generate {O} --tokens 1,2 -n 0", kUsage, "is not an integer from 1 to 2147483647"},
      {"run {M} -p hi --context -1", kUsage, "--context: '-1' is not an integer from 0 to 2147483647"},
      {"synth --preset tiny-moe -o {T}/s --route-skew -1", kUsage, "--route-skew: '-1' is not a number from 0 to"},
      {"run {M} -p hi --context 2147483647", kError, "--context 2147483647 exceeds the model's context of 4096"},
      // bench checks the context before allocating the prompt.
      {"bench {O} -p 2147483647 -n 1", kError, "exceed the model's context of 256 positions"},
      // --logit-bias needs a token id before '='.
      {"run {M} -p hi -n 1 --logit-bias =5", kError, "--logit-bias '=5': expected ID=BIAS"},
      {"run {M} -p hi -n 1 --logit-bias 3=nan", kError, "--logit-bias '3=nan': 'nan' is not a number"},
      // --expert-ram: NaN and junk are refused, not the full budget.
      {"score {O} --tokens 1,2 --expert-ram nan%", kError, "expert RAM budget 'nan%' must be in (0%, 100%]"},
      {"score {O} --tokens 1,2 --expert-ram 5x%", kError, "expert RAM budget '5x%': expected a percentage"},
      {"score {O} --tokens 1,2 --expert-ram nanG", kError, "expert RAM budget 'nanG'"},
      // --pin: exactly LAYER:EXPERT.
      {"score {O} --tokens 1,2 --pin 0:0:0", kError, "--pin: '0:0:0' is not LAYER:EXPERT"},
      {"score {O} --tokens 1,2 --pin 1x:2", kError, "--pin: '1x:2' is not LAYER:EXPERT"},
      {"score {O} --tokens 1,2 --pin 99:0", kError, "--pin 99:0: no such routed expert"},
      {"score {O} --tokens 1,2 --pin 0:7", kError, "--pin 0:7: no such routed expert"},
      // --chat-template must be a regular file.
      {"run {M} -p hi --chat-template {T}/empty_dir", kError, "--chat-template {T}/empty_dir: is a directory"},
      {"run {M} -p hi --chat-template /dev/zero", kError, "--chat-template /dev/zero: is a character device"},
      {"run {M} -p hi --chat-template {T}/fifo", kError, "--chat-template {T}/fifo: is a FIFO"},
      {"run {M} -p hi --chat-template {T}/nope.jinja", kError, "--chat-template {T}/nope.jinja: cannot open: No such file"},
      {"score {T}/fifo_tok --prompt hi", kError, "tokenizer file {T}/fifo_tok/tokenizer.json: is a FIFO"},
      // Model paths.
      {"inspect {T}/tiny.gguf", kError, "{T}/tiny.gguf: not a GGUF file: 2 bytes"},
      {"inspect {T}/nope", kError, "model path {T}/nope does not exist"},
      {"inspect {T}/huge", kError, "{T}/huge/config.json: not valid JSON"},
      {"inspect {T}/empty_dir", kError, "{T}/empty_dir: no config.json"},
  };
  for (const Case& c : cases) {
    const std::string args = expand(c.args, text_model(), dir_->path());
    const auto r = test::run_cli(args);
    const std::string want = expand(c.fragment, text_model(), dir_->path());
    EXPECT_EQ(r.code, c.code) << "moeflux " << args << "\n" << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << "moeflux " << args << "\nwanted: " << want << "\ngot: " << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("179769313"), std::string::npos) << r.err;
  }
}

// A key transformers' config class does not define is ignored by
// transformers too: moeflux runs, and names it in a warning.
TEST_F(BadOptions, UnreadConfigKeyIsNamedInAWarning) {
  const std::string src = test::fixture("oracle/olmoe_f32");
  const std::string dir = dir_->file("extra_key");
  std::filesystem::create_directory(dir);
  auto cfg = nlohmann::json::parse(test::read_file(src + "/config.json"));
  cfg["my_custom_flag"] = true;
  test::write_file(dir + "/config.json", cfg.dump());
  std::filesystem::create_symlink(src + "/model.safetensors", dir + "/model.safetensors");
  const auto r = test::run_cli("score " + dir + " --tokens 1,2");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: config.json keys not read"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("my_custom_flag"), std::string::npos) << r.err;
}

}  // namespace
