// tool_choice "required" / a named function: the grammar built from the
// tools, run as a token mask over random walks, always gives text that
// parses back (tool_calls.h) into one call of an allowed function whose
// arguments validate against its parameters schema.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "sampling/json_token_mask.h"
#include "schema_validator.h"
#include "server/api_error.h"
#include "server/tool_choice.h"
#include "text/chat/tool_calls.h"

namespace moeflux::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
     "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
     "properties": {"a": {"type": "integer"}, "b": {"type": "number"}}, "required": ["a", "b"],
     "additionalProperties": false}}},
  {"type": "function", "function": {"name": "now"}},
  {"type": "function", "function": {"name": "tree", "parameters": {
     "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
       "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, "required": ["v"]}},
     "type": "object", "properties": {"root": {"$ref": "#/$defs/node"}}, "required": ["root"]}}}
])");

// Single bytes (so any text can be spelled) and a few longer pieces.
std::vector<std::string> toy_vocab() {
  std::vector<std::string> v = {""};  // id 0: the end token
  for (int b = 1; b < 256; ++b) v.push_back(std::string(1, char(b)));
  for (const char* s : {"<tool_call>", "</tool_call>", "{\"", "\":", "\",", "\"}", "name", "arguments", "parameters",
                        "get_weather", "\n", "  ", "12", "city", "\"c\"", "}}", "[]", "{}"})
    v.push_back(s);
  return v;
}

// Tokens drawn at random under the mask until the end token (closing
// tokens favoured so that walks end); nullopt past max_steps.
std::optional<std::string> walk(std::shared_ptr<const json_constraint::Grammar> g, std::mt19937& rng,
                                int max_steps = 600) {
  const std::vector<std::string> vocab = toy_vocab();
  json_constraint::JsonTokenMask mask(std::move(g), std::make_shared<const json_constraint::MaskVocab>(vocab), {0});
  std::string out;
  std::vector<uint8_t> ok;
  for (int step = 0; step < max_steps; ++step) {
    mask.allowed(ok);
    std::vector<int32_t> cands, closing;
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i]) {
        cands.push_back(int32_t(i));
        if (i == 0 || vocab[i].find_first_of("\"}]>") != std::string::npos) closing.push_back(int32_t(i));
      }
    EXPECT_FALSE(cands.empty()) << "no token allowed after: " << out;
    if (cands.empty()) return std::nullopt;
    const bool close = !closing.empty() && std::uniform_real_distribution<>(0, 1)(rng) < double(step) / max_steps + 0.3;
    const auto& pool = close ? closing : cands;
    const int32_t t = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    mask.accept(t, vocab[size_t(t)]);
    if (mask.ended()) return out;
    out += vocab[size_t(t)];
  }
  return std::nullopt;
}

const ojson* tool_named(const std::string& name) {
  for (const ojson& t : kTools)
    if (t["function"]["name"] == name) return &t;
  return nullptr;
}

void expect_calls_valid(ToolCallFormat format, const std::string& only) {
  auto g = forced_tool_call_grammar(format, kTools, only);
  std::mt19937 rng(7);
  int finished = 0;
  std::set<std::string> names;
  for (int trial = 0; trial < 60; ++trial) {
    auto text = walk(g, rng);
    if (!text) continue;
    ++finished;
    const AssistantOutput out = parse_assistant_output(format, *text);
    ASSERT_EQ(out.tool_calls.size(), 1u) << *text;
    EXPECT_EQ(out.content, "") << *text;
    const ToolCall& call = out.tool_calls[0];
    if (!only.empty()) {
      EXPECT_EQ(call.name, only) << *text;
    }
    const ojson* tool = tool_named(call.name);
    ASSERT_NE(tool, nullptr) << *text;
    names.insert(call.name);
    const json args = json::parse(call.arguments);
    const json params = (*tool)["function"].contains("parameters") ? json::parse((*tool)["function"]["parameters"].dump())
                                                                   : json{{"type", "object"}};
    EXPECT_TRUE(test::valid(params, args, params)) << *text;
  }
  EXPECT_GT(finished, 40) << "too few walks ended";
  if (only.empty()) {
    EXPECT_GE(names.size(), 3u) << "the walks reach most of the functions";
  }
}

TEST(ToolChoice, RequiredHermesCallsAlwaysParseAndValidate) { expect_calls_valid(ToolCallFormat::Hermes, ""); }
TEST(ToolChoice, RequiredLlama3JsonCallsAlwaysParseAndValidate) { expect_calls_valid(ToolCallFormat::Llama3Json, ""); }
TEST(ToolChoice, NamedFunctionIsTheOnlyOneCalled) {
  expect_calls_valid(ToolCallFormat::Hermes, "add");
  expect_calls_valid(ToolCallFormat::Llama3Json, "tree");
}

TEST(ToolChoice, HermesCallIsWrappedInItsMarkers) {
  auto g = forced_tool_call_grammar(ToolCallFormat::Hermes, kTools, "now");
  EXPECT_EQ(g->prefix(), "<tool_call>\n");
  EXPECT_EQ(g->suffix(), "</tool_call>");
  json_constraint::JsonPrefix p(*g);
  EXPECT_TRUE(p.feed("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_TRUE(p.complete());
  json_constraint::JsonPrefix q(*g);
  EXPECT_FALSE(q.feed("{\"name\""));  // no call without its marker
  json_constraint::JsonPrefix r(*g);
  EXPECT_FALSE(r.feed("<tool_call>\n{\"name\": \"add\""));  // not the named function
}

TEST(ToolChoice, FormatsWithTheNameOutsideTheJsonAreRefusedByName) {
  for (ToolCallFormat f : {ToolCallFormat::DeepSeek, ToolCallFormat::Harmony, ToolCallFormat::None}) {
    try {
      forced_tool_call_grammar(f, kTools, "");
      ADD_FAILURE() << tool_call_format_name(f) << " accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "tool_choice");
      EXPECT_NE(std::string(e.what()).find(tool_call_format_name(f)), std::string::npos) << e.what();
    }
  }
}

TEST(ToolChoice, ParametersTheGrammarCannotExpressAreRefusedNamingTheTool) {
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a"}}}}}])");
  try {
    forced_tool_call_grammar(ToolCallFormat::Hermes, tools, "");
    ADD_FAILURE() << "pattern accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "tools[0].function.parameters");
    EXPECT_NE(std::string(e.what()).find("pattern"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moeflux::server
