#include "server/tool_choice.h"

#include <fmt/format.h>

#include "core/error.h"
#include "server/api_error.h"

namespace moeflux::server {

namespace {

using json = nlohmann::ordered_json;

struct CallSyntax {
  std::string prefix, suffix;
  const char* args_key;
};

CallSyntax call_syntax(ToolCallFormat format) {
  switch (format) {
    // As the Qwen templates render a call: <tool_call>\n{...}\n</tool_call>.
    case ToolCallFormat::Hermes: return {"<tool_call>\n", "</tool_call>", "arguments"};
    // The whole message is the call: {"name": N, "parameters": {...}}.
    case ToolCallFormat::Llama3Json: return {"", "", "parameters"};
    default: break;
  }
  throw ApiError(400,
                 fmt::format("'tool_choice' that forces a call is not supported for this model's tool call format "
                             "({}): only hermes and llama3-json calls can be constrained; use \"auto\"",
                             tool_call_format_name(format)),
                 "tool_choice");
}

// Moves a function's local definitions ("#/$defs/X", "#/definitions/X")
// to the combined schema's root, under names of their own (fn<i>_X), and
// points its references there.
void retarget_refs(json& s, const std::string& tag) {
  if (s.is_array()) {
    for (json& v : s) retarget_refs(v, tag);
    return;
  }
  if (!s.is_object()) return;
  for (auto& [key, v] : s.items()) {
    if (key == "const" || key == "enum") continue;  // values, not schemas
    if (key == "$ref" && v.is_string()) {
      std::string r = v.get<std::string>();
      for (const char* p : {"#/$defs/", "#/definitions/"})
        if (r.rfind(p, 0) == 0) r = "#/$defs/" + tag + r.substr(std::string(p).size());
      v = r;
    } else {
      retarget_refs(v, tag);
    }
  }
}

}  // namespace

std::shared_ptr<const json_constraint::Grammar> forced_tool_call_grammar(ToolCallFormat format, const json& tools,
                                                                         const std::string& only) {
  const CallSyntax syntax = call_syntax(format);
  json any = json::array(), defs = json::object();
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& fn = tools[i]["function"];
    const std::string name = fn["name"].get<std::string>();
    if (!only.empty() && name != only) continue;
    json params = fn.contains("parameters") && fn["parameters"].is_object() ? fn["parameters"]
                                                                            : json{{"type", "object"}};
    // Each function's schema alone first, so that a refusal names it.
    try {
      (void)json_constraint::Grammar::from_schema(params);
    } catch (const Error& e) {
      throw ApiError(400, fmt::format("tools[{}].function.parameters ('{}'): {}", i, name, e.what()),
                     fmt::format("tools[{}].function.parameters", i));
    }
    const std::string tag = fmt::format("fn{}_", i);
    retarget_refs(params, tag);
    for (const char* section : {"$defs", "definitions"})
      if (params.contains(section)) {
        for (auto& [k, v] : params[section].items()) defs[tag + k] = v;
        params.erase(section);
      }
    json call = {{"type", "object"},
                 {"properties", {{"name", {{"const", name}}}, {syntax.args_key, params}}},
                 {"required", {"name", syntax.args_key}}};
    any.push_back(std::move(call));
  }
  json schema = any.size() == 1 ? any[0] : json{{"anyOf", any}};
  if (!defs.empty()) schema["$defs"] = defs;
  json_constraint::Grammar g;
  try {
    g = json_constraint::Grammar::from_schema(schema);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("the tools' parameters cannot be constrained: {}", e.what()), "tools");
  }
  g.set_literals(syntax.prefix, syntax.suffix);
  return std::make_shared<const json_constraint::Grammar>(std::move(g));
}

}  // namespace moeflux::server
