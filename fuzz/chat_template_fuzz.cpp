// libFuzzer target for chat templates, which arrive untrusted with a
// downloaded model (tokenizer_config.json, GGUF metadata). The input is a
// template's source; it is parsed and rendered against a small fixed
// conversation. Any input must render or throw moeflux::Error: no crash, no
// sanitizer report (ASan, UBSan), no leak (LSan), no hang past -timeout, no
// allocation past -rss_limit_mb. The interpreter's limits are lowered here
// so that the worst a template can do takes milliseconds: what is checked
// is that every limit holds, not its default value.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "moeflux/error.h"
#include "text/chat/chat_template.h"

using namespace moeflux;

namespace {

jinja::Limits fuzz_limits() {
  jinja::Limits l;
  l.max_nesting = 64;
  l.max_call_depth = 64;
  l.max_value_depth = 64;
  l.max_steps = 200'000;
  l.max_output_bytes = 1 << 20;
  l.max_string_bytes = 1 << 20;
  l.max_items = 100'000;
  return l;
}

const nlohmann::ordered_json& messages() {
  static const auto m = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2? <b>\u00e9\u4e2d\ud83d\ude00</b>"},
    {"role": "assistant", "content": "<think>add</think>4",
     "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": {"expr": "2+2"}}}]},
    {"role": "tool", "content": "{\"result\": 4}"},
    {"role": "user", "content": ""}
  ])");
  return m;
}

const nlohmann::ordered_json& tools() {
  static const auto t = nlohmann::ordered_json::parse(R"([
    {"type": "function", "function": {"name": "calc", "description": "Evaluates.",
     "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}}
  ])");
  return t;
}

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "chat_template_fuzz: %s escaped instead of moeflux::Error\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    ChatTemplate t = ChatTemplate::parse(source, "fuzz", fuzz_limits());
    t.set_special_tokens({{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    ChatTemplateOptions plain;
    try {
      (void)t.render(messages(), plain);
    } catch (const Error&) {
    }
    ChatTemplateOptions with_tools;
    with_tools.add_generation_prompt = false;
    with_tools.tools = tools();
    with_tools.extra = {{"enable_thinking", false}};
    (void)t.render(messages(), with_tools);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    bug("std::exception");
  }
  return 0;
}
