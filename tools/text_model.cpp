#include "text_model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/output_file.h"
#include "core/read_file.h"
#include "model/gguf_model.h"
#include "model/model_spec.h"
#include "text/tokenizer/gguf_tokenizer.h"

namespace moeflux::cli {

namespace fs = std::filesystem;

Tokenizer load_tokenizer(const std::string& model_dir) {
  if (is_gguf_file(model_dir)) return load_gguf_tokenizer(model_dir);
  const fs::path dir = fs::is_directory(model_dir) ? fs::path(model_dir) : fs::path(model_dir).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer.json.gz"})
    if (fs::exists(dir / name)) return Tokenizer::load((dir / name).string());
  fail("{}: no tokenizer.json; pass token ids with --tokens instead of text", dir.string());
}

TextModel load_text_model(const ModelArgs& args, const std::string& chat_template_file) {
  // Read before the model loads: a bad path fails at once.
  const std::string template_text =
      chat_template_file.empty() ? std::string() : read_small_file(chat_template_file, "--chat-template");
  TextModel m{args.load(), load_tokenizer(args.path), ChatTemplate::fallback()};
  std::optional<ChatTemplate> from_model;
  if (is_gguf_file(args.path)) {
    // A lone GGUF carries its template as tokenizer.chat_template; the
    // special tokens a template may name come from the embedded vocabulary.
    const std::string source = m.tokenizer.chat_template();
    if (!source.empty()) {
      from_model = ChatTemplate::parse(source, args.path + ": tokenizer.chat_template");
      nlohmann::ordered_json special = nlohmann::ordered_json::object();
      if (!m.tokenizer.bos_token().empty()) special["bos_token"] = m.tokenizer.bos_token();
      if (!m.tokenizer.eos_token().empty()) special["eos_token"] = m.tokenizer.eos_token();
      from_model->set_special_tokens(std::move(special));
    }
  } else {
    const fs::path dir = fs::is_directory(args.path) ? fs::path(args.path) : fs::path(args.path).parent_path();
    const fs::path cfg = dir / "tokenizer_config.json";
    if (fs::exists(cfg)) from_model = ChatTemplate::from_tokenizer_config(cfg.string());
  }
  if (!chat_template_file.empty()) {
    m.chat_template = ChatTemplate::parse(template_text, chat_template_file);
    if (from_model) m.chat_template.set_special_tokens(from_model->special_tokens());
  } else if (from_model) {
    m.chat_template = std::move(*from_model);
  } else {
    m.template_is_fallback = true;
  }
  m.stop_tokens = m.tokenizer.eos_ids();
  if (auto eos = m.engine->spec().eos_token) m.stop_tokens.push_back(*eos);
  std::sort(m.stop_tokens.begin(), m.stop_tokens.end());
  m.stop_tokens.erase(std::unique(m.stop_tokens.begin(), m.stop_tokens.end()), m.stop_tokens.end());
  if (m.tokenizer.vocab_size() > m.engine->spec().vocab)
    fail("{}: the tokenizer has {} ids but the model's vocabulary is {}", args.path, m.tokenizer.vocab_size(),
         m.engine->spec().vocab);
  return m;
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
