// The server's side of structured output: a JSON schema (response_format)
// enforced on the sampled tokens, and tool calls parsed out of an answer
// into OpenAI's message shape.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sampling/json_token_mask.h"
#include "server/generation.h"
#include "text/chat/tool_calls.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux::server {

// The vocabulary as the mask sees it: each token's bytes; special tokens
// (control tokens such as <|im_end|>) have none, so they never stand for
// text. Built once per server (about 0.15 s for 151k tokens).
std::shared_ptr<const json_constraint::MaskVocab> mask_vocab(const Tokenizer& tok);

// A document valid against the grammar, then an end token.
class JsonConstraint final : public LogitConstraint {
 public:
  JsonConstraint(std::shared_ptr<const json_constraint::Grammar> grammar,
                 std::shared_ptr<const json_constraint::MaskVocab> vocab, const Tokenizer& tok,
                 std::vector<int32_t> end_tokens);
  void apply(std::span<float> logits) override { mask_.apply(logits); }
  void accept(int32_t token) override;

 private:
  json_constraint::JsonTokenMask mask_;
  const Tokenizer& tok_;
  std::vector<int32_t> end_tokens_;
};

// The assistant message of a chat completion from parsed output:
// content (null when only calls), tool_calls with ids, reasoning_content.
nlohmann::ordered_json assistant_message(const AssistantOutput& out, const std::string& id);
nlohmann::ordered_json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id);

}  // namespace moeflux::server
