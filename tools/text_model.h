// A model with its text side: tokenizer and chat template from the model
// directory (tokenizer.json, tokenizer_config.json), or a template given by
// the user; the fallback template when the model has none.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "cli_util.h"
#include "core/output_file.h"
#include "text/chat/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux::cli {

struct TextModel {
  std::shared_ptr<Engine> engine;
  Tokenizer tokenizer;
  ChatTemplate chat_template;
  bool template_is_fallback = false;
  std::vector<int32_t> stop_tokens;  // EOS ids from config.json and tokenizer_config.json
};

// Throws naming the file when the directory has no tokenizer.json.
Tokenizer load_tokenizer(const std::string& model_dir);
TextModel load_text_model(const ModelArgs& args, const std::string& chat_template_file = "");

// Writes the project's demo tokenizer (tokenizer.json, tokenizer_config.json)
// sized to `vocab` ids into a synthetic model's directory; existing files
// of those names are replaced only with Replace::Yes.
void write_demo_tokenizer(const std::string& dir, int vocab, Replace replace = Replace::No);

}  // namespace moeflux::cli
