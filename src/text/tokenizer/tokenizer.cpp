#include "text/tokenizer/tokenizer.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer/added_vocab.h"
#include "text/tokenizer/bpe.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/json_reader.h"
#include "core/read_file.h"
#include "text/tokenizer/normalizer.h"
#include "text/tokenizer/post_processor.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/tokenizer_impl.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

namespace {

// tokenizer.json files reach ~35 MB (256k-token vocabularies); the bound
// stops /dev/zero, FIFOs and gzip bombs, not real tokenizers.
constexpr uint64_t kMaxTokenizerBytes = uint64_t(512) << 20;

}  // namespace

// gzip is recognised by its magic bytes, so a .json.gz renamed to .json
// (or the reverse) still loads.
std::string read_maybe_gz(const std::string& path) {
  // A regular file of bounded size, checked before gzopen below opens it
  // again (opening a FIFO blocks).
  std::string raw = read_small_file(path, "tokenizer file", kMaxTokenizerBytes);
  if (!(raw.size() >= 2 && uint8_t(raw[0]) == 0x1f && uint8_t(raw[1]) == 0x8b)) return raw;
  raw.clear();
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) fail("{}: cannot open", path);
  gzbuffer(gz, 1 << 17);
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(gz, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(gz, &err);
      gzclose_r(gz);
      fail("{}: gzip error: {}", path, msg);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > kMaxTokenizerBytes) {
      gzclose_r(gz);
      fail("{}: decompresses to more than {} bytes; not a tokenizer file", path, kMaxTokenizerBytes);
    }
  }
  int err = 0;
  std::string msg = gzerror(gz, &err);
  int rc = gzclose_r(gz);
  // A truncated stream reads "successfully" up to the cut; zlib reports it
  // as Z_BUF_ERROR ("unexpected end of file").
  if (err != Z_OK && err != Z_STREAM_END) fail("{}: gzip error: {}", path, msg);
  if (rc != Z_OK) fail("{}: gzip stream is truncated or corrupt", path);
  return out;
}

namespace {

// tokenizer_config.json's special tokens are either "text" or an AddedToken
// dict {"content": "text", ...}, or null.
std::optional<std::string> config_token(const nlohmann::json& cfg, const char* key, const std::string& source) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  fail("{}: {}: expected a string or an object with \"content\"", source, key);
}

std::shared_ptr<Tokenizer::Impl> build(std::string json_text, const std::string& source, std::string_view config_text,
                                       const std::string& config_source) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  auto doc = json::Document::parse(std::move(json_text), source);
  json::Value root = json::Value::root(doc);
  if (!root.is_object()) root.fail_type("object");

  json::Value model = root.at("model");
  std::string mtype = model.has("type") ? model.at("type").str() : "BPE";  // old files omit it for BPE
  if (mtype != "BPE") model.at("type").fail_msg("unsupported model type \"" + mtype + "\" (supported: BPE)");
  impl->model = std::make_unique<BpeModel>(model);
  impl->normalizer = root.has("normalizer") ? make_normalizer(root.at("normalizer")) : nullptr;
  impl->pre_tokenizer = root.has("pre_tokenizer") ? make_pre_tokenizer(root.at("pre_tokenizer")) : nullptr;
  impl->decoder = root.has("decoder") ? make_decoder(root.at("decoder")) : nullptr;
  if (root.has("post_processor")) impl->post = make_post_processor(root.at("post_processor"));

  std::vector<AddedToken> added;
  if (root.has("added_tokens")) {
    for (const auto& t : root.at("added_tokens").elements()) {
      AddedToken a;
      const int64_t id = t.at("id").as_int();
      if (id < 0) t.at("id").fail_msg("negative id");
      if (id > kMaxTokenId)
        t.at("id").fail_msg("id " + std::to_string(id) + " exceeds the largest token id accepted (" +
                            std::to_string(kMaxTokenId) + ")");
      a.id = int32_t(id);
      a.content = t.at("content").str();
      a.single_word = t.bool_or("single_word", false);
      a.lstrip = t.bool_or("lstrip", false);
      a.rstrip = t.bool_or("rstrip", false);
      a.special = t.bool_or("special", false);
      a.normalized = t.bool_or("normalized", !a.special);  // HF's default
      added.push_back(std::move(a));
    }
  }
  impl->set_added_tokens(std::move(added));

  if (!config_text.empty()) {
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(config_text);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: JSON syntax error: {}", config_source, e.what());
    }
    if (!cfg.is_object()) fail("{}: expected a JSON object", config_source);
    impl->bos_token = config_token(cfg, "bos_token", config_source);
    if (cfg.contains("eos_token") && cfg["eos_token"].is_array()) {
      for (const auto& e : cfg["eos_token"]) {
        if (!e.is_string()) fail("{}: eos_token: expected a list of strings", config_source);
        impl->eos_tokens.push_back(e.get<std::string>());
      }
      if (!impl->eos_tokens.empty()) impl->eos_token = impl->eos_tokens.front();
    } else {
      impl->eos_token = config_token(cfg, "eos_token", config_source);
      if (impl->eos_token) impl->eos_tokens.push_back(*impl->eos_token);
    }
    if (cfg.contains("chat_template")) {
      const auto& ct = cfg["chat_template"];
      if (ct.is_string()) {
        impl->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& e : ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
            impl->chat_template = e["template"].get<std::string>();
      }
    }
    // transformers' Llama-style tokenizers rebuild the post-processor from
    // these flags; the ones without the flags keep tokenizer.json's.
    bool has_bos_flag = cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean();
    bool has_eos_flag = cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean();
    if (has_bos_flag || has_eos_flag) {
      bool add_bos = has_bos_flag && cfg["add_bos_token"].get<bool>();
      bool add_eos = has_eos_flag && cfg["add_eos_token"].get<bool>();
      PostProcessor::Wrap w;
      auto id_of = [&](const std::optional<std::string>& t, const char* what) {
        if (!t) fail("{}: add_{}_token is true but {}_token is not set", config_source, what, what);
        int32_t id = -1;
        for (const auto& a : impl->added.tokens()) if (a.content == *t) { id = a.id; break; }
        if (id < 0) id = impl->model->find(*t);
        if (id < 0) fail("{}: {}_token \"{}\" is not in the vocabulary", config_source, what, *t);
        return id;
      };
      if (add_bos) w.before.push_back(id_of(impl->bos_token, "bos"));
      if (add_eos) w.after.push_back(id_of(impl->eos_token, "eos"));
      impl->post.wraps.assign(1, std::move(w));
    }
  }
  return impl;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path, const std::string& config_path) {
  std::string cfg_path = config_path;
  if (cfg_path.empty()) {
    auto sibling = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(sibling)) cfg_path = sibling.string();
  }
  std::string cfg = cfg_path.empty() ? "" : read_small_file(cfg_path, "tokenizer config");
  Tokenizer t;
  t.impl_ = build(read_maybe_gz(path), std::filesystem::path(path).filename().string(), cfg,
                  cfg_path.empty() ? "tokenizer_config.json" : std::filesystem::path(cfg_path).filename().string());
  return t;
}

Tokenizer Tokenizer::from_json(std::string_view json_text, std::string_view config_text) {
  Tokenizer t;
  t.impl_ = build(std::string(json_text), "tokenizer.json", config_text, "tokenizer_config.json");
  return t;
}

void Tokenizer::Impl::set_added_tokens(std::vector<AddedToken> tokens) {
  std::vector<std::string> normalized;
  normalized.reserve(tokens.size());
  for (const auto& a : tokens) {
    std::string n = a.content;
    if (a.normalized && normalizer) normalizer->normalize(n);
    normalized.push_back(std::move(n));
    model->set_extra_token(a.id, a.content);
  }
  added_of_id.assign(size_t(model->id_count()), -1);
  for (size_t i = 0; i < tokens.size(); ++i) added_of_id[size_t(tokens[i].id)] = int32_t(i);
  added.build(std::move(tokens), normalized);
}

// ---- encode -------------------------------------------------------------------

void Tokenizer::Impl::encode_piece(std::string_view piece, bool first, std::vector<int32_t>& ids) const {
  thread_local Pieces p;
  p.reset(std::string(piece), first);
  if (pre_tokenizer) pre_tokenizer->apply(p);
  for (const auto& s : p.spans) {
    if (p.byte_level) model->tokenize_bytes(p.view(s), ids);
    else model->tokenize(p.view(s), ids);
  }
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& ids) const {
  // 1. Added tokens that match the raw input; 2. normalize what is between
  // them; 3. added tokens that match normalized text; 4. pre-tokenize and
  // run the model on the rest. This is HF's extract_and_normalize order.
  std::vector<Segment> raw_segs, norm_segs;
  added.split(text, false, raw_segs);
  std::string norm;
  for (const auto& seg : raw_segs) {
    if (seg.id >= 0) { ids.push_back(seg.id); continue; }
    bool first = seg.begin == 0;
    norm.assign(text.substr(seg.begin, seg.end - seg.begin));
    if (normalizer) normalizer->normalize(norm);
    norm_segs.clear();
    added.split(norm, true, norm_segs);
    for (const auto& ns : norm_segs) {
      if (ns.id >= 0) { ids.push_back(ns.id); continue; }
      encode_piece(std::string_view(norm).substr(ns.begin, ns.end - ns.begin), first && ns.begin == 0, ids);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (utf8::valid_prefix(text) == text.size()) {
    impl_->encode_text(text, ids);
  } else {
    impl_->encode_text(utf8::to_valid_lossy(text), ids);
  }
  if (add_special_tokens) impl_->post.apply(ids);
  return ids;
}

// ---- decode -------------------------------------------------------------------

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= int32_t(m.added_of_id.size())) continue;
    int32_t ai = m.added_of_id[size_t(id)];
    if (ai >= 0) {
      const auto& a = m.added.tokens()[size_t(ai)];
      if (skip_special_tokens && a.special) continue;
      toks.push_back(a.content);
    } else if (m.model->has_id(id) && (m.silent.empty() || !m.silent[size_t(id)])) {
      toks.push_back(m.model->token(id));
    }
  }
  if (!m.decoder) {  // HF joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < toks.size(); ++i) {
      if (i) out += ' ';
      out += toks[i];
    }
    return out;
  }
  return run_decoder(*m.decoder, std::move(toks));
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  const std::string& t = token_text(id);
  if (m.decoder && m.decoder->has_byte_level()) {
    std::string raw;
    if (utf8::chars_to_bytes(t, raw)) return raw;
    return t;
  }
  if (m.decoder && m.decoder->has_byte_fallback() && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
    char* end = nullptr;
    std::string hex = t.substr(3, 2);
    long v = std::strtol(hex.c_str(), &end, 16);
    if (end == hex.c_str() + 2) return std::string(1, char(v));
  }
  return t;
}

// ---- vocabulary ---------------------------------------------------------------

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->added_of_id.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const auto& a : impl_->added.tokens())
    if (a.content == token) return a.id;
  int32_t id = impl_->model->find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string empty;
  const Impl& m = *impl_;
  if (id < 0 || id >= int32_t(m.added_of_id.size())) return empty;
  int32_t ai = m.added_of_id[size_t(id)];
  if (ai >= 0) return m.added.tokens()[size_t(ai)].content;
  return m.model->has_id(id) ? m.model->token(id) : empty;
}

bool Tokenizer::is_special(int32_t id) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= int32_t(m.added_of_id.size())) return false;
  int32_t ai = m.added_of_id[size_t(id)];
  return ai >= 0 && m.added.tokens()[size_t(ai)].special;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  if (!impl_->bos_token) return std::nullopt;
  return token_id(*impl_->bos_token);
}

std::vector<int32_t> Tokenizer::eos_ids() const {
  std::vector<int32_t> out;
  for (const auto& t : impl_->eos_tokens)
    if (auto id = token_id(t)) out.push_back(*id);
  return out;
}

std::string Tokenizer::bos_token() const { return impl_->bos_token.value_or(""); }
std::string Tokenizer::eos_token() const { return impl_->eos_token.value_or(""); }
std::string Tokenizer::chat_template() const { return impl_->chat_template; }

}  // namespace moeflux
