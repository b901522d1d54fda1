#include "text/chat/tool_calls.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "text/chat/chat_template.h"

namespace moeflux {

namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kHermesOpen = "<tool_call>", kHermesClose = "</tool_call>";
constexpr std::string_view kDsCallsBegin = "<｜tool▁calls▁begin｜>", kDsCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>", kDsCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsSep = "<｜tool▁sep｜>";

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// A JSON object, compact, or nothing.
std::optional<std::string> object_text(std::string_view s) {
  json j = json::parse(trim(s), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j.dump();
}

// {"name": N, "arguments"|"parameters": {...}} -> a call.
std::optional<ToolCall> named_call(std::string_view s, const char* args_key) {
  json j = json::parse(trim(s), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  json args = j.contains(args_key) ? j[args_key] : json::object();
  if (args.is_string()) {  // some models write the arguments as a JSON string
    json inner = json::parse(args.get<std::string>(), nullptr, false);
    if (!inner.is_discarded()) args = inner;
  }
  if (!args.is_object()) return std::nullopt;
  return ToolCall{j["name"].get<std::string>(), args.dump()};
}

// Reasoning before "</think>"; the rest is returned.
std::string_view take_reasoning(std::string_view text, std::string& reasoning) {
  const size_t close = text.find(kThinkClose);
  if (close == std::string_view::npos) {
    // Still thinking (generation stopped inside the block).
    if (trim(text).substr(0, kThinkOpen.size()) == kThinkOpen) {
      reasoning = std::string(trim(trim(text).substr(kThinkOpen.size())));
      return {};
    }
    return text;
  }
  std::string_view r = trim(text.substr(0, close));
  if (r.substr(0, kThinkOpen.size()) == kThinkOpen) r.remove_prefix(kThinkOpen.size());
  reasoning = std::string(trim(r));
  return text.substr(close + kThinkClose.size());
}

// Where the JSON object that s starts with (after whitespace) ends, or
// npos: strings are skipped whole, so a brace or a marker such as
// "</tool_call>" inside an argument does not end the call.
size_t object_end(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  if (i >= s.size() || s[i] != '{') return std::string_view::npos;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

void parse_hermes(std::string_view text, AssistantOutput& out) {
  std::string content;
  size_t at = 0;
  while (true) {
    const size_t open = text.find(kHermesOpen, at);
    if (open == std::string_view::npos) break;
    const size_t body = open + kHermesOpen.size();
    // The call ends at the close marker after its JSON (one inside an
    // argument string is text), or at the first one when that is not JSON.
    size_t close = std::string_view::npos;
    if (const size_t end = object_end(text.substr(body)); end != std::string_view::npos)
      close = text.find(kHermesClose, body + end);
    if (close == std::string_view::npos) close = text.find(kHermesClose, body);
    const std::string_view inner = text.substr(body, close == std::string_view::npos ? std::string_view::npos : close - body);
    auto call = named_call(inner, "arguments");
    if (!call) break;  // not a call after all: the rest stays content
    content += text.substr(at, open - at);
    out.tool_calls.push_back(std::move(*call));
    at = close == std::string_view::npos ? text.size() : close + kHermesClose.size();
  }
  content += text.substr(at);
  out.content = std::string(trim(content));
}

void parse_deepseek(std::string_view text, AssistantOutput& out) {
  const size_t begin = text.find(kDsCallsBegin);
  if (begin == std::string_view::npos) {
    out.content = std::string(trim(text));
    return;
  }
  std::vector<ToolCall> calls;
  size_t at = begin + kDsCallsBegin.size();
  while (true) {
    const size_t cb = text.find(kDsCallBegin, at);
    if (cb == std::string_view::npos) break;
    const size_t sep = text.find(kDsSep, cb);
    if (sep == std::string_view::npos) break;
    const size_t nl = text.find('\n', sep);
    if (nl == std::string_view::npos) break;
    const std::string name(trim(text.substr(sep + kDsSep.size(), nl - sep - kDsSep.size())));
    size_t end = text.find(kDsCallEnd, nl);
    std::string_view args = text.substr(nl + 1, end == std::string_view::npos ? std::string_view::npos : end - nl - 1);
    args = trim(args);
    if (args.substr(0, 7) == "```json") args.remove_prefix(7);
    if (args.size() >= 3 && args.substr(args.size() - 3) == "```") args.remove_suffix(3);
    auto obj = object_text(args);
    if (!obj || name.empty()) break;
    calls.push_back({name, *obj});
    at = end == std::string_view::npos ? text.size() : end + kDsCallEnd.size();
  }
  if (calls.empty()) {
    out.content = std::string(trim(text));
    return;
  }
  out.content = std::string(trim(text.substr(0, begin)));
  out.tool_calls = std::move(calls);
}

// Harmony messages: [<|start|>assistant]<header><|message|><body>(<|end|>|<|call|>|<|return|>|end of text)
void parse_harmony(std::string_view text, AssistantOutput& out) {
  constexpr std::string_view kStart = "<|start|>", kMessage = "<|message|>", kChannel = "<|channel|>";
  std::string content;
  size_t at = 0;
  while (at < text.size()) {
    if (text.substr(at, kStart.size()) == kStart) at += kStart.size();
    const size_t msg = text.find(kMessage, at);
    if (msg == std::string_view::npos) {
      content += text.substr(at);  // not harmony: keep it as written
      break;
    }
    const std::string_view header = text.substr(at, msg - at);
    size_t end = text.size(), next = text.size();
    for (std::string_view stop : {"<|end|>", "<|call|>", "<|return|>", "<|start|>"}) {
      const size_t p = text.find(stop, msg + kMessage.size());
      if (p != std::string_view::npos && p < end) {
        end = p;
        next = stop == "<|start|>" ? p : p + stop.size();
      }
    }
    const std::string_view body = text.substr(msg + kMessage.size(), end - msg - kMessage.size());
    std::string channel;
    if (size_t c = header.find(kChannel); c != std::string_view::npos) {
      std::string_view rest = header.substr(c + kChannel.size());
      channel = std::string(rest.substr(0, rest.find_first_of(" <")));
    }
    const size_t to = header.find("to=functions.");
    if (to != std::string_view::npos) {
      std::string_view name = header.substr(to + 13);
      name = name.substr(0, name.find_first_of(" <"));
      if (auto obj = object_text(body)) out.tool_calls.push_back({std::string(name), *obj});
      else content += body;
    } else if (channel == "analysis") {
      out.reasoning += body;
    } else {
      content += body;
    }
    at = next;
  }
  out.content = std::string(trim(content));
}

void parse_llama3_json(std::string_view text, AssistantOutput& out) {
  std::string_view body = trim(text);
  if (body.substr(0, 14) == "<|python_tag|>") body = trim(body.substr(14));
  if (auto call = named_call(body, "parameters")) {
    out.tool_calls.push_back(std::move(*call));
    return;
  }
  out.content = std::string(trim(text));
}

// The position of the first marker of `markers` in text, or of a suffix
// of text that a marker starts with (it may complete with more text).
size_t first_marker(std::string_view text, std::initializer_list<std::string_view> markers) {
  size_t best = text.size();
  for (std::string_view m : markers) {
    if (size_t p = text.find(m); p != std::string_view::npos) best = std::min(best, p);
    for (size_t k = std::min(m.size() - 1, text.size()); k > 0; --k)
      if (text.substr(text.size() - k) == m.substr(0, k)) {
        best = std::min(best, text.size() - k);
        break;
      }
  }
  return best;
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::None: return "none";
    case ToolCallFormat::Hermes: return "hermes";
    case ToolCallFormat::DeepSeek: return "deepseek";
    case ToolCallFormat::Harmony: return "harmony";
    case ToolCallFormat::Llama3Json: return "llama3-json";
  }
  return "?";
}

ToolCallFormat detect_tool_call_format(std::string_view t) {
  if (t.find("<|channel|>") != std::string_view::npos && t.find("to=functions") != std::string_view::npos)
    return ToolCallFormat::Harmony;
  if (t.find("tool▁calls▁begin") != std::string_view::npos) return ToolCallFormat::DeepSeek;
  if (t.find("<tool_call>") != std::string_view::npos) return ToolCallFormat::Hermes;
  if (t.find("<|python_tag|>") != std::string_view::npos || t.find("\"parameters\": ") != std::string_view::npos)
    return ToolCallFormat::Llama3Json;
  return ToolCallFormat::None;
}

ToolCallFormat detect_tool_call_format(const ChatTemplate& t) {
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "probe_tool", "description": "d",
      "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}])");
  const json call = {{"type", "function"}, {"id", "call_0"},
                     {"function", {{"name", "probe_tool"}, {"arguments", "{\"a\": \"b\"}"}}}};
  // Templates differ in what they want beside calls (Qwen3 tests the
  // content with `in`, DeepSeek-V3 takes its call branch only for none).
  for (const json& content : {json(""), json(nullptr)}) {
    const json messages = json::array({{{"role", "user"}, {"content", "probe_user_message"}},
                                        {{"role", "assistant"}, {"content", content}, {"tool_calls", {call}}}});
    ChatTemplateOptions o;
    o.tools = tools;
    o.add_generation_prompt = false;
    try {
      const std::string text = t.render(messages, o);
      if (text.find("probe_tool") == std::string::npos) continue;
      // Only what the call rendered as, not the tool list in the system part.
      const size_t at = text.find("probe_user_message");
      const ToolCallFormat f = detect_tool_call_format(std::string_view(text).substr(at == std::string::npos ? 0 : at));
      if (f != ToolCallFormat::None) return f;
    } catch (const Error&) {
    }
  }
  return ToolCallFormat::None;
}

AssistantOutput parse_assistant_output(ToolCallFormat format, std::string_view text) {
  AssistantOutput out;
  if (format == ToolCallFormat::Harmony) {
    parse_harmony(text, out);
    return out;
  }
  const std::string_view rest = take_reasoning(text, out.reasoning);
  switch (format) {
    case ToolCallFormat::Hermes: parse_hermes(rest, out); break;
    case ToolCallFormat::DeepSeek: parse_deepseek(rest, out); break;
    case ToolCallFormat::Llama3Json: parse_llama3_json(rest, out); break;
    default: out.content = std::string(trim(rest)); break;
  }
  return out;
}

size_t streamable_prefix(ToolCallFormat format, std::string_view text) {
  switch (format) {
    case ToolCallFormat::Hermes: return first_marker(text, {kHermesOpen, kThinkOpen, kThinkClose});
    case ToolCallFormat::DeepSeek: return first_marker(text, {kDsCallsBegin, kThinkOpen, kThinkClose});
    case ToolCallFormat::Harmony: return first_marker(text, {"<|"});
    case ToolCallFormat::Llama3Json: {
      // A message that starts as JSON may be a call: hold it all.
      const std::string_view t = trim(text);
      if (t.empty() || t.front() == '{' || t.front() == '<') return 0;
      return first_marker(text, {kThinkOpen, kThinkClose});
    }
    case ToolCallFormat::None: return first_marker(text, {kThinkOpen, kThinkClose});
  }
  return 0;
}

}  // namespace moeflux
