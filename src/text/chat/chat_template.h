// Chat templates as Hugging Face transformers applies them: the Jinja
// `chat_template` of tokenizer_config.json rendered with the context of
// `tokenizer.apply_chat_template(messages, tokenize=False, ...)`.
//
// JSON arrives as nlohmann::ordered_json because key order is visible in the
// output (`tool | tojson` prints keys in insertion order, as Python does);
// nlohmann::json would sort them.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "text/chat/jinja_template.h"

namespace moeflux {

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  // A list of JSON-schema tool definitions, or null (the template then sees
  // `tools` = none, as with transformers).
  nlohmann::ordered_json tools = nullptr;
  // RAG documents, or null; passed as `documents`.
  nlohmann::ordered_json documents = nullptr;
  // Extra template variables (enable_thinking, date_string, ...). They
  // override the special tokens of the same name, as kwargs do in
  // transformers.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Which named template to use when the config has several; empty picks
  // "tool_use" when tools are given and present, else "default".
  std::string template_name;
};

class ChatTemplate {
 public:
  // One template from its Jinja source; `name` prefixes error positions.
  // `limits` bound its parse and renders (text/chat/jinja_limits.h); the
  // defaults suit any real template.
  static ChatTemplate parse(const std::string& source, std::string name = "chat_template",
                            const jinja::Limits& limits = {});

  // From a tokenizer_config.json file. The template comes from a sibling
  // chat_template.jinja if present (transformers prefers it), else the
  // config's `chat_template`: a string, or a list of {name, template}.
  // Special tokens come from the config, overridden by a sibling
  // special_tokens_map.json. nullopt when the model has no template.
  static std::optional<ChatTemplate> from_tokenizer_config(const std::string& path);
  // Same, from the parsed config (no sibling files).
  static std::optional<ChatTemplate> from_tokenizer_config_json(const nlohmann::ordered_json& config,
                                                                const std::string& name = "tokenizer_config.json");

  // For models without a template: ChatML, transformers' former default
  //   <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
  static ChatTemplate fallback();

  // transformers' special_tokens_map for a tokenizer_config: bos/eos/unk/sep/
  // pad/cls/mask tokens that are set, additional_special_tokens and the keys
  // of extra_special_tokens, as strings.
  static nlohmann::ordered_json special_tokens_from_config(const nlohmann::ordered_json& config);

  // Renders a conversation (a non-empty list of message objects). Errors
  // (template syntax, raise_exception, bad values) throw moeflux::Error with
  // the template position.
  std::string render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& opts = {}) const;

  // Variables given to every render (bos_token, eos_token, ...).
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  void set_special_tokens(nlohmann::ordered_json tokens) { special_tokens_ = std::move(tokens); }
  std::vector<std::string> template_names() const;

 private:
  struct Named {
    std::string name;
    jinja::Template tmpl;
  };
  const Named& select(const ChatTemplateOptions& opts) const;

  std::vector<Named> templates_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace moeflux
