#include "server/model_text.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "model/gguf_model.h"
#include "model/model_spec.h"
#include "text/tokenizer/gguf_tokenizer.h"

namespace moeflux {

namespace fs = std::filesystem;

Tokenizer load_tokenizer(const std::string& model_dir) {
  if (is_gguf_file(model_dir)) return load_gguf_tokenizer(model_dir);
  const fs::path dir = fs::is_directory(model_dir) ? fs::path(model_dir) : fs::path(model_dir).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer.json.gz"})
    if (fs::exists(dir / name)) return Tokenizer::load((dir / name).string());
  fail("{}: no tokenizer.json; pass token ids with --tokens instead of text", dir.string());
}

ModelText load_model_text(const std::string& path, const Engine& engine, const std::string& template_source,
                          const std::string& template_name) {
  ModelText m;
  m.tokenizer = load_tokenizer(path);
  std::optional<ChatTemplate> from_model;
  if (is_gguf_file(path)) {
    // A lone GGUF carries its template as tokenizer.chat_template; the
    // special tokens a template may name come from the embedded vocabulary.
    const std::string source = m.tokenizer.chat_template();
    if (!source.empty()) {
      from_model = ChatTemplate::parse(source, path + ": tokenizer.chat_template");
      nlohmann::ordered_json special = nlohmann::ordered_json::object();
      if (!m.tokenizer.bos_token().empty()) special["bos_token"] = m.tokenizer.bos_token();
      if (!m.tokenizer.eos_token().empty()) special["eos_token"] = m.tokenizer.eos_token();
      from_model->set_special_tokens(std::move(special));
    }
  } else {
    const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
    const fs::path cfg = dir / "tokenizer_config.json";
    if (fs::exists(cfg)) from_model = ChatTemplate::from_tokenizer_config(cfg.string());
  }
  if (!template_source.empty()) {
    m.chat_template = ChatTemplate::parse(template_source, template_name.empty() ? "chat template" : template_name);
    if (from_model) m.chat_template.set_special_tokens(from_model->special_tokens());
  } else if (from_model) {
    m.chat_template = std::move(*from_model);
  } else {
    m.template_is_fallback = true;
  }
  m.stop_tokens = m.tokenizer.eos_ids();
  if (auto eos = engine.spec().eos_token) m.stop_tokens.push_back(*eos);
  std::sort(m.stop_tokens.begin(), m.stop_tokens.end());
  m.stop_tokens.erase(std::unique(m.stop_tokens.begin(), m.stop_tokens.end()), m.stop_tokens.end());
  if (m.tokenizer.vocab_size() > engine.spec().vocab)
    fail("{}: the tokenizer has {} ids but the model's vocabulary is {}", path, m.tokenizer.vocab_size(),
         engine.spec().vocab);
  return m;
}

}  // namespace moeflux
