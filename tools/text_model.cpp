#include "text_model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/output_file.h"
#include "core/read_file.h"
#include "model/gguf_model.h"
#include "model/model_spec.h"
#include "server/model_text.h"

namespace moeflux::cli {

namespace fs = std::filesystem;

Tokenizer load_tokenizer(const std::string& model_dir) { return moeflux::load_tokenizer(model_dir); }

TextModel load_text_model(const ModelArgs& args, const std::string& chat_template_file) {
  // Read before the model loads: a bad path fails at once.
  const std::string template_text =
      chat_template_file.empty() ? std::string() : read_small_file(chat_template_file, "--chat-template");
  auto engine = args.load();
  ModelText t = load_model_text(args.path, *engine, template_text, chat_template_file);
  return TextModel{engine, std::move(t.tokenizer), std::move(t.chat_template), t.template_is_fallback,
                   std::move(t.stop_tokens)};
}

void write_demo_tokenizer(const std::string& dir, int vocab, Replace replace) {
  const std::string tok = (fs::path(dir) / "tokenizer.json").string();
  const std::string cfg = (fs::path(dir) / "tokenizer_config.json").string();
  check_output_path(tok, replace);
  check_output_path(cfg, replace);
  write_output_file(tok, make_demo_tokenizer_json(vocab), replace);
  write_output_file(cfg, make_demo_tokenizer_config_json(), replace);
}

}  // namespace moeflux::cli
