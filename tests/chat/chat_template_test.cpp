// Chat templates against transformers' apply_chat_template: the fixtures in
// tests/fixtures/chat were rendered by scripts/gen_chat_fixtures.py and every
// case must match byte for byte (or fail where transformers failed).
#include "text/chat/chat_template.h"

#include <gtest/gtest.h>

#include <ctime>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "moeflux/error.h"

namespace moeflux {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << p;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path fixture_dir() { return fs::path(MOEFLUX_SOURCE_DIR) / "tests" / "fixtures" / "chat"; }
fs::path shared_config(const std::string& name) {
  return fs::path(MOEFLUX_SHARED_DIR) / "tokenizers" / name / "tokenizer_config.json";
}

ChatTemplateOptions options_of(const ojson& c) {
  ChatTemplateOptions o;
  o.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
  if (c.contains("tools")) o.tools = c["tools"];
  if (c.contains("kwargs")) o.extra = c["kwargs"];
  return o;
}

// Renders every case; returns the number that matched.
int check_cases(const ChatTemplate& t, const ojson& doc) {
  int matched = 0;
  for (auto& c : doc.at("cases")) {
    std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE("case " + name);
    ChatTemplateOptions o = options_of(c);
    if (c.contains("error")) {
      EXPECT_THROW(t.render(c.at("messages"), o), Error) << "transformers failed with: " << c["error"];
      ++matched;
      continue;
    }
    try {
      std::string got = t.render(c.at("messages"), o);
      std::string want = c.at("expected").get<std::string>();
      EXPECT_EQ(got, want);
      if (got == want) ++matched;
    } catch (const Error& e) {
      ADD_FAILURE() << "render failed: " << e.what();
    }
  }
  return matched;
}

class ModelTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTemplate, MatchesTransformers) {
  const std::string name = GetParam();
  fs::path config = shared_config(name);
  if (!fs::exists(config)) GTEST_SKIP() << config << " is absent";
  ojson doc = ojson::parse(slurp(fixture_dir() / (name + ".json")));
  auto t = ChatTemplate::from_tokenizer_config(config.string());
  ASSERT_TRUE(t.has_value()) << name << " should have a chat template";
  EXPECT_EQ(t->special_tokens(), doc.at("special_tokens")) << "special tokens passed to the template differ";
  ASSERT_GE(doc.at("cases").size(), 15u);
  int matched = check_cases(*t, doc);
  EXPECT_EQ(matched, static_cast<int>(doc["cases"].size()));
  std::cout << "[ chat     ] " << name << ": " << matched << "/" << doc["cases"].size()
            << " cases identical to transformers " << doc["transformers"].get<std::string>() << "\n";
}

INSTANTIATE_TEST_SUITE_P(Shared, ModelTemplate, ::testing::Values("qwen3", "deepseek_v3", "llama3"));

// gpt-oss's own template (harmony format; its tokenizer in shared/ has none:
// tests/fixtures/chat/gpt_oss/chat_template.jinja is openai/gpt-oss-120b's,
// as llama.cpp keeps it). It prints today's date: the expected texts mark
// the spot and get the date of this run.
TEST(ChatTemplateGptOss, HarmonyMatchesTransformers) {
  ojson doc = ojson::parse(slurp(fixture_dir() / "gpt_oss.json"));
  ChatTemplate t = ChatTemplate::parse(slurp(fixture_dir() / doc.at("template").get<std::string>()), "gpt_oss");
  t.set_special_tokens(doc.at("special_tokens"));
  const std::string mark = doc.at("date_mark").get<std::string>();
  auto today = [] {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[16];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm));
  };
  for (int attempt = 0; attempt < 2; ++attempt) {  // again if the date turns during the run
    const std::string date = today();
    ojson dated = doc;
    for (auto& c : dated.at("cases"))
      if (c.contains("expected")) {
        std::string e = c["expected"].get<std::string>();
        for (size_t at; (at = e.find(mark)) != std::string::npos;) e.replace(at, mark.size(), date);
        c["expected"] = e;
      }
    if (attempt == 0 && today() != date) continue;
    ASSERT_GE(dated.at("cases").size(), 30u);
    const int matched = check_cases(t, dated);
    EXPECT_EQ(matched, static_cast<int>(dated["cases"].size()));
    std::cout << "[ chat     ] gpt_oss (harmony): " << matched << "/" << dated["cases"].size()
              << " cases identical to transformers " << doc["transformers"].get<std::string>() << "\n";
    break;
  }
}

class StressTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(StressTemplate, MatchesTransformers) {
  const std::string name = GetParam();
  ojson doc = ojson::parse(slurp(fixture_dir() / (name + ".json")));
  std::string source = slurp(fixture_dir() / doc.at("template").get<std::string>());
  ChatTemplate t = ChatTemplate::parse(source, name);
  t.set_special_tokens(doc.at("special_tokens"));
  int matched = check_cases(t, doc);
  EXPECT_EQ(matched, static_cast<int>(doc["cases"].size()));
  std::cout << "[ chat     ] " << name << ": " << matched << "/" << doc["cases"].size()
            << " cases identical to transformers\n";
}

INSTANTIATE_TEST_SUITE_P(Synthetic, StressTemplate,
                         ::testing::Values("stress_constructs", "stress_whitespace", "stress_tools", "stress_errors"));

// llama2 and gptoss ship no chat_template in ../shared: no template is
// reported, and the ChatML fallback renders for them.
TEST(ChatTemplateShared, ModelsWithoutTemplateUseFallback) {
  for (const char* name : {"llama2", "gptoss"}) {
    fs::path config = shared_config(name);
    if (!fs::exists(config)) GTEST_SKIP() << config << " is absent";
    EXPECT_FALSE(ChatTemplate::from_tokenizer_config(config.string()).has_value()) << name;
  }
  ojson msgs = ojson::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}])");
  EXPECT_EQ(ChatTemplate::fallback().render(msgs),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ChatTemplateOptions o;
  o.add_generation_prompt = false;
  EXPECT_EQ(ChatTemplate::fallback().render(msgs, o), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateConfig, NamedTemplatesPickToolUseWhenToolsGiven) {
  ojson config = ojson::parse(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>"},
    "eos_token": "</s>",
    "unk_token": null,
    "pad_token": "",
    "additional_special_tokens": ["<a>", {"content": "<b>"}],
    "extra_special_tokens": {"image_token": "<img>"},
    "chat_template": [
      {"name": "default", "template": "D{{ bos_token }}{{ messages | length }}"},
      {"name": "tool_use", "template": "T{{ tools | length }}{{ eos_token }}"},
      {"name": "rag", "template": "R{{ documents[0].title }}"}
    ]})");
  auto t = ChatTemplate::from_tokenizer_config_json(config);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->special_tokens(), ojson::parse(R"({"bos_token": "<s>", "eos_token": "</s>",
      "additional_special_tokens": ["<a>", "<b>"], "image_token": "<img>"})"));
  EXPECT_EQ(t->template_names(), (std::vector<std::string>{"default", "tool_use", "rag"}));
  ojson msgs = ojson::parse(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(t->render(msgs), "D<s>1");
  ChatTemplateOptions o;
  o.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f"}}, {}])");
  EXPECT_EQ(t->render(msgs, o), "T2</s>");
  o.template_name = "rag";
  o.documents = ojson::parse(R"([{"title": "Doc", "text": "..."}])");
  EXPECT_EQ(t->render(msgs, o), "RDoc");
  o.template_name = "nope";
  EXPECT_THROW(t->render(msgs, o), Error);
  // kwargs override special tokens, as in transformers.
  ChatTemplateOptions k;
  k.extra = ojson::parse(R"({"bos_token": "<B>"})");
  EXPECT_EQ(t->render(msgs, k), "D<B>1");
}

TEST(ChatTemplateConfig, NoTemplateAndBadInput) {
  EXPECT_FALSE(ChatTemplate::from_tokenizer_config_json(ojson::parse(R"({"eos_token": "x"})")).has_value());
  EXPECT_THROW(ChatTemplate::from_tokenizer_config_json(ojson::parse(R"({"chat_template": 3})")), Error);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config("/nonexistent/tokenizer_config.json"), Error);
  ChatTemplate t = ChatTemplate::parse("{{ messages[0].content }}");
  EXPECT_THROW(t.render(ojson::array()), Error);
  EXPECT_THROW(t.render(ojson::object()), Error);
  try {
    ChatTemplate::parse("{% if x %}\n{{ x | nosuchfilter }}{% endif %}", "bad");
    FAIL() << "expected a parse error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad:2:8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nosuchfilter"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateConfig, SiblingFilesOverrideConfig) {
  fs::path dir = fs::temp_directory_path() / ("moeflux_chat_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>", "chat_template": "config"})";
  std::ofstream(dir / "special_tokens_map.json") << R"({"bos_token": {"content": "<BOS>"}})";
  std::ofstream(dir / "chat_template.jinja") << "jinja {{ bos_token }}\n";
  auto t = ChatTemplate::from_tokenizer_config((dir / "tokenizer_config.json").string());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->render(ojson::parse(R"([{"role": "user", "content": "x"}])")), "jinja <BOS>");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moeflux
