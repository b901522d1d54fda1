#include "text/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "format/gguf/gguf_file.h"
#include "text/tokenizer/bpe.h"
#include "text/tokenizer/json_reader.h"
#include "text/tokenizer/spm.h"
#include "text/tokenizer/tokenizer_impl.h"

namespace moeflux {

namespace {

// Patterns as tokenizer.json spells them. Where llama.cpp shows "original
// regex from tokenizer.json" next to its rewrite, this is the original.
constexpr std::string_view kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3's file holds real CR and LF characters inside the classes.
constexpr std::string_view kDeepSeekV3Cjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
constexpr std::string_view kDeepSeekV3Main =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kDeepSeekLlmLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f"
    "\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d"
    "\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
    "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a"
    "\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
    "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+";
constexpr std::string_view kDeepSeekLlmPunct = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
constexpr std::string_view kDeepSeekCjkHangul = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";
// llama.cpp's fallback for a BPE file without `pre` (or with "default").
constexpr std::string_view kDefaultPunct = R"([\p{P}\$\+<=>\^~\|]+)";
constexpr std::string_view kDefaultGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

}  // namespace

const std::vector<GgufPreTokenizer>& gguf_pre_tokenizers() {
  // ignore_merges and add_bos are llama.cpp's settings for the name, with
  // one exception: gpt-4o takes whole-token words as they are, as Hugging
  // Face does for the tiktoken vocabularies behind that name (gpt-oss,
  // Llama 4).
  static const std::vector<GgufPreTokenizer> table = {
      {{"default"}, {kDefaultPunct, kDefaultGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false, false},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "gigachat", "exaone4"}, {kGpt2}, false, false, false},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "lfm2"}, {kLlama3}, true, false, true},
      {{"smaug-bpe", "dbrx", "chatglm-bpe"}, {kLlama3}, false, false, false},
      {{"glm4"}, {kLlama3}, true, false, false},
      {{"qwen2", "deepseek-r1-qwen"}, {kQwen2}, false, true, false},
      // Unlike Qwen2/3, Hugging Face's Qwen3.5 tokenizer does not normalize
      // (llama.cpp's test vectors keep "e" + U+0301 as two tokens).
      {{"qwen35"}, {kQwen35}, false, false, false},
      {{"deepseek-v3"}, {R"(\p{N}{1,3})", kDeepSeekV3Cjk, kDeepSeekV3Main}, false, false, false},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepSeekLlmLetters, kDeepSeekLlmPunct, R"(\s+$)", kDeepSeekCjkHangul, R"(\p{N}+)"},
       false, false, false},
      {{"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepSeekCjkHangul, R"(\p{N})"}, false, false,
       false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kDefaultGpt2}, false, false, false},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kDefaultGpt2, "[0-9][0-9][0-9]"}, false, false, false},
      {{"gpt-4o", "llama4"}, {kGpt4o}, true, false, false},
      {{"tekken"}, {kTekken}, true, false, true},
  };
  return table;
}

const GgufPreTokenizer* find_gguf_pre_tokenizer(std::string_view name) {
  for (const auto& p : gguf_pre_tokenizers())
    for (auto n : p.names)
      if (n == name) return &p;
  return nullptr;
}

std::string gguf_pre_tokenizer_names() {
  std::string out;
  for (const auto& p : gguf_pre_tokenizers())
    for (auto n : p.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  return out;
}

namespace {

// Components are described as the tokenizer.json fragments they stand for
// and built by the same factories, so a GGUF tokenizer runs exactly the code
// (and has exactly the semantics) of the HF file it was converted from.
json::Value fragment(const nlohmann::json& j, const std::string& source) {
  return json::Value::root(json::Document::parse(j.dump(), source));
}

nlohmann::json split_sequence(const GgufPreTokenizer& pre) {
  nlohmann::json items = nlohmann::json::array();
  for (auto re : pre.regexes)
    items.push_back({{"type", "Split"}, {"pattern", {{"Regex", std::string(re)}}}, {"behavior", "Isolated"},
                     {"invert", false}});
  items.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", items}};
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufVocab& v) {
  const std::string source = "GGUF vocabulary (tokenizer.ggml.model \"" + v.model + "\")";
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", source);
  if (n > size_t(INT32_MAX)) fail("{}: {} tokens do not fit 32-bit ids", source, n);
  // read_gguf_vocab checks these; a hand-built GgufVocab might not.
  if (v.token_types.size() != n)
    fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", source, v.token_types.size(), n);
  auto check_id = [&](const std::optional<uint32_t>& id, const char* key) {
    if (id && *id >= n) fail("{}: {} = {} is outside the {} tokens", source, key, *id, n);
  };
  check_id(v.bos_id, "tokenizer.ggml.bos_token_id");
  check_id(v.eos_id, "tokenizer.ggml.eos_token_id");
  check_id(v.unk_id, "tokenizer.ggml.unknown_token_id");
  check_id(v.eot_id, "tokenizer.ggml.eot_token_id");
  check_id(v.eom_id, "tokenizer.ggml.eom_token_id");

  auto impl = std::make_shared<Impl>();
  std::optional<uint32_t> bos = v.bos_id, eos = v.eos_id, unk = v.unk_id;
  bool add_bos = false;
  if (v.kind == GgufVocabKind::Bpe) {
    const GgufPreTokenizer* pre = find_gguf_pre_tokenizer(v.pre);
    if (pre == nullptr)
      fail("{}: tokenizer.ggml.pre \"{}\" is not supported (supported: {})", source, v.pre,
           gguf_pre_tokenizer_names());
    if (v.merges.empty())
      fail("{}: tokenizer.ggml.merges is missing or empty; a \"gpt2\" vocabulary needs its merges", source);
    std::string what = source + ", pre \"" + v.pre + "\"";
    if (pre->nfc) impl->normalizer = make_normalizer(fragment({{"type", "NFC"}}, what));
    impl->pre_tokenizer = make_pre_tokenizer(fragment(split_sequence(*pre), what));
    impl->model = std::make_unique<BpeModel>(v.tokens, v.merges, BpeModel::Options{pre->ignore_merges}, source);
    impl->decoder = make_decoder(fragment({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                                           {"use_regex", false}},
                                          what));
    add_bos = pre->add_bos;
  } else {
    if (v.scores.size() != n)
      fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", source, v.scores.size(), n);
    // llama.cpp's defaults for "llama" files that do not name these tokens.
    auto dflt = [&](std::optional<uint32_t>& id, uint32_t d) {
      if (!id && d < n) id = d;
    };
    dflt(bos, 1);
    dflt(eos, 2);
    dflt(unk, 0);
    const bool space_prefix = v.add_space_prefix.value_or(true);
    // llama.cpp puts a space before the text and after every special token,
    // then turns spaces into U+2581; HF's legacy Llama normalizer (Prepend on
    // every piece between added tokens, then Replace) is the same thing.
    nlohmann::json norms = nlohmann::json::array();
    if (space_prefix) norms.push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
    norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}});
    impl->normalizer = make_normalizer(fragment({{"type", "Sequence"}, {"normalizers", norms}}, source));
    nlohmann::json decs = nlohmann::json::array();
    decs.push_back({{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}});
    decs.push_back({{"type", "ByteFallback"}});
    decs.push_back({{"type", "Fuse"}});
    if (space_prefix) decs.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    impl->decoder = make_decoder(fragment({{"type", "Sequence"}, {"decoders", decs}}, source));
    impl->model = std::make_unique<SpmModel>(v.tokens, v.scores,
                                             unk ? std::optional<int32_t>(int32_t(*unk)) : std::nullopt, source);
    add_bos = true;
  }

  std::vector<AddedToken> added;
  impl->silent.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    GgufTokenType t = v.token_types[i];
    if (t == GgufTokenType::Control || t == GgufTokenType::UserDefined || t == GgufTokenType::Unknown) {
      AddedToken a;
      a.id = int32_t(i);
      a.content = impl->model->token(int32_t(i));  // an empty token is "[EMPTY_<id>]", as llama.cpp names it
      a.special = t != GgufTokenType::UserDefined;
      a.normalized = false;  // llama.cpp matches them in the raw text
      added.push_back(std::move(a));
    } else if (t == GgufTokenType::Unused || t == GgufTokenType::Undefined) {
      impl->silent[i] = 1;
    }
  }
  impl->set_added_tokens(std::move(added));

  add_bos = v.add_bos.value_or(add_bos);
  const bool add_eos = v.add_eos.value_or(false);
  PostProcessor::Wrap w;
  if (add_bos) {
    if (!bos) fail("{}: tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set", source);
    w.before.push_back(int32_t(*bos));
  }
  if (add_eos) {
    if (!eos) fail("{}: tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set", source);
    w.after.push_back(int32_t(*eos));
  }
  if (!w.before.empty() || !w.after.empty()) impl->post.wraps.push_back(std::move(w));

  auto text_of = [&](uint32_t id) { return impl->model->token(int32_t(id)); };
  if (bos) impl->bos_token = text_of(*bos);
  // End of generation: EOS, and the end-of-turn / end-of-message tokens
  // llama.cpp also stops at.
  for (const auto& id : {eos, v.eot_id, v.eom_id}) {
    if (!id) continue;
    std::string t = text_of(*id);
    if (std::find(impl->eos_tokens.begin(), impl->eos_tokens.end(), t) == impl->eos_tokens.end())
      impl->eos_tokens.push_back(t);
  }
  if (!impl->eos_tokens.empty()) impl->eos_token = impl->eos_tokens.front();

  // Many converted files name only EOS, yet a chat model ends its turn with
  // another token ("<|im_end|>" where EOS is "<|endoftext|>"). llama.cpp
  // stops at these by their text wherever they are in the vocabulary; so do
  // we, so that `chat` ends a reply where llama.cpp would.
  for (std::string_view text : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                "<|end_of_text|>", "<EOT>", "<|return|>", "<|call|>", "<｜end▁of▁sentence｜>"}) {
    auto& eos = impl->eos_tokens;
    const bool known = impl->model->find(text) >= 0 ||
                       std::any_of(impl->added.tokens().begin(), impl->added.tokens().end(),
                                   [&](const auto& a) { return a.content == text; });
    if (known && std::find(eos.begin(), eos.end(), text) == eos.end()) eos.emplace_back(text);
  }
  impl->chat_template = v.chat_template.value_or("");

  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

Tokenizer load_gguf_tokenizer(const std::string& gguf_path) {
  GgufFile file(gguf_path);
  GgufVocab vocab = read_gguf_vocab(file.metadata());  // its errors name the file already
  try {
    return Tokenizer::from_gguf(vocab);
  } catch (const Error& e) {
    fail("{}: {}", gguf_path, e.what());
  }
}

}  // namespace moeflux
