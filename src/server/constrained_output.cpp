#include "server/constrained_output.h"

#include <algorithm>

namespace moeflux::server {

using json = nlohmann::ordered_json;

std::shared_ptr<const json_constraint::MaskVocab> mask_vocab(const Tokenizer& tok) {
  std::vector<std::string> bytes(size_t(tok.vocab_size()));
  for (int32_t i = 0; i < tok.vocab_size(); ++i)
    if (!tok.is_special(i)) bytes[size_t(i)] = tok.token_bytes(i);
  return std::make_shared<const json_constraint::MaskVocab>(bytes);
}

JsonConstraint::JsonConstraint(std::shared_ptr<const json_constraint::Grammar> grammar,
                               std::shared_ptr<const json_constraint::MaskVocab> vocab, const Tokenizer& tok,
                               std::vector<int32_t> end_tokens)
    : mask_(std::move(grammar), std::move(vocab), end_tokens), tok_(tok), end_tokens_(std::move(end_tokens)) {}

void JsonConstraint::accept(int32_t token) {
  const bool end = std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end();
  mask_.accept(token, end ? std::string() : tok_.token_bytes(token));
}

json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i)
    out.push_back({{"index", i},
                   {"id", "call_" + id + "_" + std::to_string(i)},
                   {"type", "function"},
                   {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
  return out;
}

json assistant_message(const AssistantOutput& out, const std::string& id) {
  json m = {{"role", "assistant"}};
  m["content"] = out.content.empty() && !out.tool_calls.empty() ? json(nullptr) : json(out.content);
  if (!out.reasoning.empty()) m["reasoning_content"] = out.reasoning;
  if (!out.tool_calls.empty()) {
    json calls = tool_calls_json(out.tool_calls, id);
    for (json& c : calls) c.erase("index");  // only streamed deltas carry an index
    m["tool_calls"] = calls;
  }
  return m;
}

}  // namespace moeflux::server
