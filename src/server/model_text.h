// A model's text side: the tokenizer and chat template that come with it
// (tokenizer.json and tokenizer_config.json beside the weights, or the
// metadata of a GGUF file), or a template given by the user, and the
// end-of-sequence ids. Shared by the CLI, the server and the C API.
#pragma once
#include <string>
#include <vector>

#include "moeflux/engine.h"
#include "text/chat/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux {

struct ModelText {
  Tokenizer tokenizer;
  ChatTemplate chat_template = ChatTemplate::fallback();
  bool template_is_fallback = false;  // the model has none: ChatML
  std::vector<int32_t> stop_tokens;   // EOS ids from config.json and tokenizer_config.json
};

// Throws naming the directory when there is no tokenizer.json.
Tokenizer load_tokenizer(const std::string& model_path);

// `template_source`/`template_name`: a user's Jinja template and the name
// its errors are reported under; empty: the model's own.
ModelText load_model_text(const std::string& model_path, const Engine& engine, const std::string& template_source = "",
                          const std::string& template_name = "");

}  // namespace moeflux
