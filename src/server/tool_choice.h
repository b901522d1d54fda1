// tool_choice "required" and a named function: the answer is constrained
// to one tool call written in the model's own call syntax, so that it
// always parses back (tool_calls.h) into a call of an allowed function
// with arguments valid against that function's `parameters` schema.
//
// The call is a JSON document between literal markers (the grammar's
// prefix and suffix, json_grammar.h), with the schema
//   {"anyOf": [{"type": "object", "properties": {"name": {"const": N},
//               ARGS_KEY: PARAMETERS}, "required": ["name", ARGS_KEY]}, ...]}
// over the allowed functions. Formats that put the name outside the JSON
// (DeepSeek, Harmony) cannot be written that way and are refused.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sampling/json_grammar.h"
#include "text/chat/tool_calls.h"

namespace moeflux::server {

// The grammar of one call to `only` (empty: to any of `tools`, the
// request's checked list). Throws ApiError 400 for a format that cannot be
// constrained (named) and for parameters the grammar cannot express
// (naming the tool and keyword).
std::shared_ptr<const json_constraint::Grammar> forced_tool_call_grammar(ToolCallFormat format,
                                                                         const nlohmann::ordered_json& tools,
                                                                         const std::string& only);

}  // namespace moeflux::server
