// Tool calls and reasoning read back out of a model's generated text, into
// the shape of OpenAI's chat completion message (content, tool_calls with
// name and JSON arguments, and reasoning_content as llama.cpp and vLLM
// return it). Each model family writes calls its own way; which one a model
// uses is read off its chat template, which has to render the same syntax
// when the calls come back in the history.
//
//   Hermes     <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>   (Qwen2.5, Qwen3, Qwen3.5)
//   DeepSeek   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>N
//              ```json\n{...}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>     (DeepSeek-V3)
//   Harmony    <|channel|>commentary to=functions.N <|constrain|>json<|message|>{...}<|call|>
//              with analysis (reasoning) and final (content) channels        (gpt-oss)
//   Llama3Json {"name": N, "parameters": {...}} as the whole message        (Llama 3.1+)
//
// Reasoning: text before "</think>" (with or without its "<think>") is
// reasoning_content for every format but Harmony, which has its analysis
// channel instead.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

enum class ToolCallFormat { None, Hermes, DeepSeek, Harmony, Llama3Json };
const char* tool_call_format_name(ToolCallFormat f);

// The syntax a chat template renders tool calls in; None when it renders none.
ToolCallFormat detect_tool_call_format(std::string_view chat_template_source);
class ChatTemplate;
// The same, found by rendering a conversation with one tool call through
// the template (works where the source is not at hand, as in GGUF files);
// None when the template renders no call or refuses the conversation.
ToolCallFormat detect_tool_call_format(const ChatTemplate& chat_template);

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, as text (OpenAI sends arguments as a string)
};

struct AssistantOutput {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
};

// Splits the text generated after the generation prompt. A call whose
// arguments are not a JSON object stays in the content, as the model wrote
// it, rather than reaching a client as a call it cannot run.
AssistantOutput parse_assistant_output(ToolCallFormat format, std::string_view text);

// How many leading bytes of `text` (generated so far) can be streamed as
// content now: everything before the first place a tool call or a
// reasoning marker starts, or may start once more text arrives.
size_t streamable_prefix(ToolCallFormat format, std::string_view text);

}  // namespace moeflux
