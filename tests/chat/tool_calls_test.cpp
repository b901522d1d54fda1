// Tool calls and reasoning parsed back out of generated text, per format;
// the Hermes and DeepSeek cases round-trip through the models' own chat
// templates (what a model is trained to write is what its template renders
// for a call in the history).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "text/chat/chat_template.h"
#include "text/chat/tool_calls.h"

namespace moeflux {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

TEST(ToolCalls, Hermes) {
  const auto out = parse_assistant_output(
      ToolCallFormat::Hermes,
      "<think>\nThe user wants weather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", "
      "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", "
      "\"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}\n</tool_call>");
  EXPECT_EQ(out.reasoning, "The user wants weather.");
  EXPECT_EQ(out.content, "Let me check.");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"city":"Paris","days":2})");
  EXPECT_EQ(out.tool_calls[1].name, "get_time");
  EXPECT_EQ(out.tool_calls[1].arguments, R"({"tz":"CET"})");  // arguments written as a JSON string
}

TEST(ToolCalls, HermesMarkerInsideAnArgumentIsText) {
  // Found by the random walks of tool_choice "required": a string argument
  // may hold the close marker (or braces); the call ends after its JSON.
  const auto out = parse_assistant_output(
      ToolCallFormat::Hermes,
      "<tool_call>\n{\"name\": \"echo\", \"arguments\": {\"s\": \"a}</tool_call>b\\\"{\"}}\n</tool_call> after");
  ASSERT_EQ(out.tool_calls.size(), 1u) << out.content;
  EXPECT_EQ(out.tool_calls[0].name, "echo");
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"s":"a}</tool_call>b\"{"})");
  EXPECT_EQ(out.content, "after");
}

TEST(ToolCalls, MalformedCallsStayContent) {
  const auto out = parse_assistant_output(ToolCallFormat::Hermes, "Use <tool_call>{not json}</tool_call> like so");
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_EQ(out.content, "Use <tool_call>{not json}</tool_call> like so");
  const auto args = parse_assistant_output(ToolCallFormat::Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>");
  EXPECT_TRUE(args.tool_calls.empty());  // arguments must be an object
  const auto plain = parse_assistant_output(ToolCallFormat::Hermes, "  Just text.\n");
  EXPECT_EQ(plain.content, "Just text.");
  EXPECT_TRUE(plain.reasoning.empty());
}

TEST(ToolCalls, UnfinishedThinkingIsReasoning) {
  const auto out = parse_assistant_output(ToolCallFormat::None, "<think>\nstill going");
  EXPECT_EQ(out.reasoning, "still going");
  EXPECT_EQ(out.content, "");
}

TEST(ToolCalls, DeepSeek) {
  const auto out = parse_assistant_output(
      ToolCallFormat::DeepSeek,
      "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": "
      "\"Oslo\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>noop\n```json\n{}\n```<｜tool▁"
      "call▁end｜><｜tool▁calls▁end｜>");
  EXPECT_EQ(out.content, "Checking.");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"city":"Oslo"})");
  EXPECT_EQ(out.tool_calls[1].name, "noop");
  EXPECT_EQ(out.tool_calls[1].arguments, "{}");
}

TEST(ToolCalls, Harmony) {
  const auto out = parse_assistant_output(
      ToolCallFormat::Harmony,
      "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
      "to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Tokyo\"}<|call|>");
  EXPECT_EQ(out.reasoning, "Need the weather.");
  EXPECT_EQ(out.content, "");
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"location":"Tokyo"})");
  const auto final = parse_assistant_output(
      ToolCallFormat::Harmony,
      "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>It is 20 C.<|return|>");
  EXPECT_EQ(final.reasoning, "Think.");
  EXPECT_EQ(final.content, "It is 20 C.");
  EXPECT_TRUE(final.tool_calls.empty());
  // The recipient may stand before the channel.
  const auto before = parse_assistant_output(
      ToolCallFormat::Harmony, "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{\"a\":1}<|call|>");
  ASSERT_EQ(before.tool_calls.size(), 1u);
  EXPECT_EQ(before.tool_calls[0].name, "f");
}

TEST(ToolCalls, Llama3Json) {
  const auto out = parse_assistant_output(ToolCallFormat::Llama3Json,
                                          "{\"name\": \"search\", \"parameters\": {\"q\": \"moe\"}}");
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"q":"moe"})");
  EXPECT_EQ(parse_assistant_output(ToolCallFormat::Llama3Json, "{\"answer\": 4}").content, "{\"answer\": 4}");
}

TEST(ToolCalls, TemplatesWithoutCallsHaveNoFormat) {
  EXPECT_EQ(detect_tool_call_format(ChatTemplate::fallback()), ToolCallFormat::None);
}

TEST(ToolCalls, StreamablePrefixHoldsBackPossibleMarkers) {
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Hermes, "Hello world"), 11u);
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Hermes, "Hello <tool"), 6u);  // may become <tool_call>
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Hermes, "Hello <tool_call>{"), 6u);
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Hermes, "a < b"), 5u);            // '<' then ' ': no marker
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Hermes, "<thi"), 0u);
  EXPECT_EQ(streamable_prefix(ToolCallFormat::DeepSeek, "ok<｜tool"), 2u);
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Llama3Json, "{\"name\""), 0u);
  EXPECT_EQ(streamable_prefix(ToolCallFormat::Llama3Json, "Sure, 4."), 8u);
}

fs::path shared_config(const std::string& name) {
  return fs::path(MOEFLUX_SHARED_DIR) / "tokenizers" / name / "tokenizer_config.json";
}

// Renders [user, assistant with calls] and parses the assistant's part.
// content: what the template expects beside calls ("" for Qwen3, which
// tests it with `in`; null for DeepSeek, whose call branch needs none).
AssistantOutput round_trip(const std::string& model, ToolCallFormat want, const ojson& content) {
  auto t = ChatTemplate::from_tokenizer_config(shared_config(model).string());
  EXPECT_TRUE(t.has_value());
  std::ifstream in(shared_config(model));
  const std::string src((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(detect_tool_call_format(ojson::parse(src)["chat_template"].get<std::string>()), want);
  EXPECT_EQ(detect_tool_call_format(*t), want);  // by rendering a call
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  ojson user = ojson::array({{{"role", "user"}, {"content", "Weather in Paris and Rome?"}}});
  ojson with_calls = user;
  ojson calls = ojson::array();
  for (const char* city : {"Paris", "Rome"})
    calls.push_back({{"type", "function"},
                     {"function", {{"name", "get_weather"}, {"arguments", std::string("{\"city\": \"") + city + "\"}"}}}});
  with_calls.push_back({{"role", "assistant"}, {"content", content}, {"tool_calls", calls}});
  ChatTemplateOptions o;
  o.tools = tools;
  o.add_generation_prompt = false;
  const std::string full = t->render(with_calls, o);
  const std::string prefix = t->render(user, o);
  EXPECT_EQ(full.substr(0, prefix.size()), prefix);
  return parse_assistant_output(want, std::string_view(full).substr(prefix.size()));
}

TEST(ToolCalls, RoundTripThroughQwen3Template) {
  if (!fs::exists(shared_config("qwen3"))) GTEST_SKIP() << shared_config("qwen3") << " is absent";
  const auto out = round_trip("qwen3", ToolCallFormat::Hermes, "");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(out.tool_calls[1].arguments, R"({"city":"Rome"})");
}

TEST(ToolCalls, RoundTripThroughDeepSeekTemplate) {
  if (!fs::exists(shared_config("deepseek_v3"))) GTEST_SKIP() << shared_config("deepseek_v3") << " is absent";
  const auto out = round_trip("deepseek_v3", ToolCallFormat::DeepSeek, nullptr);
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[1].arguments, R"({"city":"Rome"})");
}

}  // namespace
}  // namespace moeflux
