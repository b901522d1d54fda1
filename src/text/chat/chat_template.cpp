#include "text/chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/read_file.h"

namespace moeflux {

namespace {

using ojson = nlohmann::ordered_json;

// Bounded (core/read_file.h): a tokenizer_config.json pointing at
// /dev/zero or a FIFO fails instead of reading or blocking forever.
std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return std::nullopt;
  return read_small_file(p.string(), "tokenizer config");
}

ojson parse_json_file(const std::filesystem::path& p) {
  auto text = read_file(p);
  if (!text) fail("cannot read {}", p.string());
  try {
    return ojson::parse(*text);
  } catch (const std::exception& e) {
    fail("{}: invalid JSON: {}", p.string(), e.what());
  }
}

// A token is a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

// transformers' former default template, for models that ship none.
constexpr const char* kChatML =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

ChatTemplate ChatTemplate::parse(const std::string& source, std::string name, const jinja::Limits& limits) {
  ChatTemplate t;
  t.templates_.push_back({"default", jinja::Template::parse(source, std::move(name), {}, limits)});
  return t;
}

ChatTemplate ChatTemplate::fallback() { return parse(kChatML, "chatml_fallback"); }

ojson ChatTemplate::special_tokens_from_config(const ojson& config) {
  ojson out = ojson::object();
  if (!config.is_object()) return out;
  static const char* attrs[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                "pad_token", "cls_token", "mask_token"};
  for (const char* a : attrs) {
    if (!config.contains(a)) continue;
    auto t = token_text(config[a]);
    if (t && !t->empty()) out[a] = *t;  // transformers keeps only truthy values
  }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    ojson list = ojson::array();
    for (auto& v : config["additional_special_tokens"])
      if (auto t = token_text(v)) list.push_back(*t);
    if (!list.empty()) out["additional_special_tokens"] = list;
  }
  if (config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object()) {
    for (auto& [k, v] : config["extra_special_tokens"].items())
      if (auto t = token_text(v); t && !t->empty()) out[k] = *t;
  }
  return out;
}

std::optional<ChatTemplate> ChatTemplate::from_tokenizer_config_json(const ojson& config, const std::string& name) {
  if (!config.is_object()) fail("{}: expected a JSON object", name);
  ChatTemplate t;
  t.special_tokens_ = special_tokens_from_config(config);
  if (!config.contains("chat_template") || config["chat_template"].is_null()) return std::nullopt;
  const ojson& ct = config["chat_template"];
  if (ct.is_string()) {
    t.templates_.push_back({"default", jinja::Template::parse(ct.get<std::string>(), name + ":chat_template")});
  } else if (ct.is_array()) {
    for (auto& item : ct) {
      if (!item.is_object() || !item.contains("name") || !item.contains("template") || !item["name"].is_string() ||
          !item["template"].is_string())
        fail("{}: chat_template list entries must be {{\"name\": ..., \"template\": ...}}", name);
      std::string tname = item["name"].get<std::string>();
      t.templates_.push_back({tname, jinja::Template::parse(item["template"].get<std::string>(), name + ":" + tname)});
    }
    if (t.templates_.empty()) return std::nullopt;
  } else {
    fail("{}: chat_template must be a string or a list, not {}", name, ct.type_name());
  }
  return t;
}

std::optional<ChatTemplate> ChatTemplate::from_tokenizer_config(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  ojson config = parse_json_file(p);
  fs::path dir = p.parent_path();
  if (auto jinja = read_file(dir / "chat_template.jinja")) {
    config["chat_template"] = *jinja;
  } else if (fs::exists(dir / "chat_template.json")) {
    ojson ct = parse_json_file(dir / "chat_template.json");
    if (ct.contains("chat_template")) config["chat_template"] = ct["chat_template"];
  }
  auto t = from_tokenizer_config_json(config, p.filename().string());
  if (t && fs::exists(dir / "special_tokens_map.json")) {
    ojson extra = special_tokens_from_config(parse_json_file(dir / "special_tokens_map.json"));
    for (auto& [k, v] : extra.items()) t->special_tokens_[k] = v;
  }
  return t;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (auto& n : templates_) names.push_back(n.name);
  return names;
}

const ChatTemplate::Named& ChatTemplate::select(const ChatTemplateOptions& opts) const {
  if (templates_.empty()) fail("chat template is empty");
  auto find = [&](const std::string& n) -> const Named* {
    for (auto& t : templates_)
      if (t.name == n) return &t;
    return nullptr;
  };
  if (!opts.template_name.empty()) {
    if (auto* t = find(opts.template_name)) return *t;
    fail("no chat template named '{}'", opts.template_name);
  }
  if (templates_.size() == 1) return templates_[0];
  // transformers: "tool_use" when tools are passed, else "default".
  if (!opts.tools.is_null())
    if (auto* t = find("tool_use")) return *t;
  if (auto* t = find("default")) return *t;
  fail("this model has several chat templates and none is named 'default'; pick one by name");
}

std::string ChatTemplate::render(const ojson& messages, const ChatTemplateOptions& opts) const {
  if (!messages.is_array()) fail("chat messages must be a JSON array, not {}", messages.type_name());
  // transformers fails on an empty conversation too (it inspects messages[0]).
  if (messages.empty()) fail("chat messages must not be empty");
  if (!opts.tools.is_null() && !opts.tools.is_array()) fail("chat tools must be a JSON array or null");
  if (!opts.extra.is_object()) fail("chat template extra variables must be a JSON object");
  // Same context as transformers' render_jinja_template: special tokens,
  // overridden by kwargs, then the named arguments.
  ojson ctx = special_tokens_;
  for (auto& [k, v] : opts.extra.items()) ctx[k] = v;
  ctx["messages"] = messages;
  ctx["tools"] = opts.tools;
  ctx["documents"] = opts.documents;
  ctx["add_generation_prompt"] = opts.add_generation_prompt;
  return select(opts).tmpl.render(ctx);
}

}  // namespace moeflux
