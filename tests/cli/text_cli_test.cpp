// Text commands on a synthetic model with moeflux's demo tokenizer: run,
// chat, and --prompt for score/generate.
#include <gtest/gtest.h>

#include "test_util.h"

using namespace moeflux;

namespace {

class TextCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_cli("synth --preset tiny-moe -o " + model() + " --layers 2 --experts 4 --seed 5");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return dir_->file("m"); }
  static test::TempDir* dir_;
};
test::TempDir* TextCli::dir_ = nullptr;

TEST_F(TextCli, RunStreamsTextAndReportsSpeed) {
  auto r = test::run_cli("run " + model() + " -p 'Hello there' -n 8 --seed 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("tok/s prefill"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tok/s decode"), std::string::npos) << r.err;
}

TEST_F(TextCli, SameSeedSameTextDifferentSeedDifferentText) {
  auto a = test::run_cli("run " + model() + " -p 'Hello' -n 24 --seed 11 --temp 1.5 --top-k 0 --top-p 1 --min-p 0");
  auto b = test::run_cli("run " + model() + " -p 'Hello' -n 24 --seed 11 --temp 1.5 --top-k 0 --top-p 1 --min-p 0");
  auto c = test::run_cli("run " + model() + " -p 'Hello' -n 24 --seed 12 --temp 1.5 --top-k 0 --top-p 1 --min-p 0");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST_F(TextCli, RawModeSkipsTheChatTemplate) {
  auto chat = test::run_cli("run " + model() + " -p 'Hello' -n 4 --greedy");
  auto raw = test::run_cli("run " + model() + " -p 'Hello' -n 4 --greedy --raw");
  ASSERT_EQ(raw.code, 0) << raw.err;
  // The chat template wraps the prompt in <|im_start|>user ... : more prompt tokens.
  auto count = [](const std::string& err) { return std::stoi(err.substr(err.find('[') + 1)); };
  EXPECT_GT(count(chat.err), count(raw.err));
}

TEST_F(TextCli, ChatKeepsTheConversationAndHandlesCommands) {
  test::TempDir d;
  test::write_file(d.file("in"), "hello\n/help\nsecond turn\n/system be short\nthird\n/reset\nfourth\n/exit\n");
  auto r = test::run_cli("chat " + model() + " -n 6 --seed 2 < " + d.file("in"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("/reset"), std::string::npos);  // help text
  EXPECT_NE(r.err.find("system message set"), std::string::npos);
  EXPECT_NE(r.err.find("conversation reset"), std::string::npos);
  // Four answers, each with a stats line; the second turn continues the first,
  // so its context is longer than the first's.
  size_t turns = 0, pos = 0;
  std::vector<int> contexts;
  while ((pos = r.err.find("| context ", pos)) != std::string::npos) {
    contexts.push_back(std::stoi(r.err.substr(pos + 10)));
    ++turns, ++pos;
  }
  ASSERT_EQ(turns, 4u) << r.err;
  EXPECT_GT(contexts[1], contexts[0]);
  // After /reset the context starts over: a continued conversation would add
  // the new user turn (10+ template tokens) and 6 answer tokens on top.
  EXPECT_LT(contexts[3], contexts[2] + 5);
}

// A model with recurrent layers cannot rewind: chat resumes each turn from
// a checkpoint (which copies the recurrent state) where the last prompt
// ended, so a later turn feeds only the answer and the new message, not
// the whole conversation again, even when the answer re-tokenizes
// differently (this random model's answers are bytes that do not).
TEST(TextCliRecurrent, ChatOnAHybridModelResumesFromCheckpoints) {
  test::TempDir d;
  auto s = test::run_cli("synth --preset tiny-qwen3-next -o " + d.file("m") + " --experts 4 --seed 5");
  ASSERT_EQ(s.code, 0) << s.err;
  test::write_file(d.file("in"), "hello\nsecond turn\nthird turn\nfourth turn\n/exit\n");
  auto r = test::run_cli("chat " + d.file("m") + " -n 6 --seed 2 < " + d.file("in"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<int> prompts, contexts;
  for (size_t pos = 0; (pos = r.err.find("prompt tokens", pos)) != std::string::npos; ++pos) {
    const size_t open = r.err.rfind('[', pos);
    prompts.push_back(std::stoi(r.err.substr(open + 1)));
    contexts.push_back(std::stoi(r.err.substr(r.err.find("| context ", pos) + 10)));
  }
  ASSERT_EQ(prompts.size(), 4u) << r.err;
  // Positions kept from before the turn: the context after it holds those,
  // the prompt fed and the answer but its last token (6 - 1).
  int last_kept = 0;
  for (size_t t = 1; t < 4; ++t) {
    const int kept = contexts[t] - prompts[t] - 5;
    EXPECT_GE(kept, prompts[0] - 1) << "turn " << t << "\n" << r.err;  // at least the first prompt
    EXPECT_GT(kept, last_kept) << "turn " << t << "\n" << r.err;       // and more each turn
    last_kept = kept;
  }
}

// Ctrl-C (SIGINT) ends the answer being generated; the program goes on to
// the next line of input and exits normally.
TEST_F(TextCli, InterruptStopsTheAnswerNotTheProgram) {
  test::TempDir d;
  const std::string cmd = "bash -c '(printf \"hello\\n\"; sleep 3; printf \"/exit\\n\") | " +
                          std::string(MOEFLUX_CLI) + " chat " + model() + " -n 100000 --ignore-eos 2>" + d.file("err") +
                          " >/dev/null & pid=$!; sleep 1.5; kill -INT $pid; wait $pid'";
  const int status = std::system(cmd.c_str());
  const std::string err = test::read_file(d.file("err"));
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  EXPECT_NE(err.find("| interrupted |"), std::string::npos) << err;
}

TEST_F(TextCli, PromptTextWorksForScoreAndGenerate) {
  auto s = test::run_cli("score " + model() + " --prompt 'the cat sat on the mat' --json");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("\"perplexity\""), std::string::npos);
  auto g = test::run_cli("generate " + model() + " --prompt 'the cat' -n 3");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find('\n'), g.out.rfind('\n'));  // ids line, then the text line
}

TEST_F(TextCli, BadTextInputGetsClearErrors) {
  auto both = test::run_cli("score " + model() + " --prompt hi --tokens 1,2");
  EXPECT_NE(both.code, 0);
  EXPECT_NE(both.err.find("exactly one of"), std::string::npos) << both.err;
  auto ctx = test::run_cli("run " + model() + " -p 'a long prompt that will not fit' --context 4");
  EXPECT_NE(ctx.code, 0);
  EXPECT_NE(ctx.err.find("context"), std::string::npos) << ctx.err;
  auto bias = test::run_cli("run " + model() + " -p hi --logit-bias 5:1");
  EXPECT_NE(bias.code, 0);
  EXPECT_NE(bias.err.find("ID=BIAS"), std::string::npos) << bias.err;
  auto temp = test::run_cli("run " + model() + " -p hi --temp -1");
  EXPECT_NE(temp.code, 0);
  EXPECT_NE(temp.err.find("temperature"), std::string::npos) << temp.err;
  test::TempDir d;
  test::write_file(d.file("bad.jinja"), "{% for x in %}");
  auto tmpl = test::run_cli("run " + model() + " -p hi --chat-template " + d.file("bad.jinja"));
  EXPECT_NE(tmpl.code, 0);
  EXPECT_NE(tmpl.err.find("bad.jinja"), std::string::npos) << tmpl.err;
}

TEST_F(TextCli, ModelWithoutTokenizerAsksForTokenIds) {
  auto r = test::run_cli("run " + std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/oracle/olmoe_f32 -p hi");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
}

}  // namespace
