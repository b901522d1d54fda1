// The request side of /v1/chat/completions and /v1/completions: the JSON
// body checked field by field (a wrong type or range is a 400 naming the
// field; fields we do not know are ignored, as OpenAI does) and turned into
// what the generation loop takes.
#pragma once
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sampling/json_grammar.h"
#include "sampling/sampler.h"

namespace moeflux::server {

struct CompletionRequest {
  bool chat = false;
  std::string model;
  nlohmann::ordered_json messages;      // chat: the conversation, content flattened to text
  std::string prompt;                   // completions: text...
  std::optional<std::vector<int32_t>> prompt_tokens;  // ...or token ids
  bool stream = false, include_usage = false;
  std::optional<int> max_tokens;
  SamplingParams sampling;
  bool seeded = false;  // else the server draws a seed
  std::vector<std::string> stop;
  int logprobs = -1;  // -1: none; else the alternatives per token (0..20)
  // moeflux extensions: a saved session to continue from and one to save
  // after the answer (names of files in the server's --session-dir).
  std::string load_session, save_session;
  // response_format json_object / json_schema, compiled (null: free text).
  std::shared_ptr<const json_constraint::Grammar> json_grammar;
  // Chat with tools: the list the chat template renders (null: none), and
  // whether calls in the answer are parsed out (tool_choice "auto",
  // "required" or a named function).
  nlohmann::ordered_json tools = nullptr;
  bool parse_tool_calls = false;
  // tool_choice "required" (any of the tools) or a named function: the
  // answer is constrained to one call (server/tool_choice.h).
  bool force_tool_call = false;
  std::string forced_tool;  // the named function; empty: any
};

// Throws ApiError (400) naming the field. `vocab` bounds logit_bias ids and
// token prompts.
CompletionRequest parse_completion_request(const std::string& body, bool chat, int32_t vocab);

// A session name must be a plain file name: letters, digits, '-', '_', '.',
// not starting with '.', at most 128 characters.
void check_session_name(const std::string& name, const std::string& field);

}  // namespace moeflux::server
