#include "text/tokenizer/gguf_export.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "format/gguf/gguf_vocab.h"
#include "text/tokenizer/gguf_tokenizer.h"
#include "text/tokenizer/json_reader.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/tokenizer_impl.h"

namespace moeflux {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;  // small files; the big tokenizer.json goes through json::Document

struct Files {
  std::string tokenizer;  // tokenizer.json or .json.gz
  fs::path dir;           // where the other files are looked up
  std::string name;       // for messages
};

Files resolve(const std::string& path) {
  Files f;
  if (fs::is_directory(path)) {
    f.dir = path;
    for (const char* n : {"tokenizer.json", "tokenizer.json.gz"})
      if (fs::exists(f.dir / n)) {
        f.tokenizer = (f.dir / n).string();
        break;
      }
    if (f.tokenizer.empty()) fail("{}: no tokenizer.json (or tokenizer.json.gz) in this directory", path);
  } else {
    if (!fs::exists(path)) fail("{}: no such file or directory", path);
    f.tokenizer = path;
    f.dir = fs::path(path).parent_path();
  }
  f.name = f.tokenizer;
  return f;
}

std::optional<std::string> read_optional(const fs::path& p) {
  if (!fs::exists(p)) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("{}: cannot open", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json parse_small_json(const std::string& text, const std::string& source) {
  try {
    Json j = Json::parse(text);
    if (!j.is_object()) fail("{}: expected a JSON object", source);
    return j;
  } catch (const Json::exception& e) {
    fail("{}: JSON syntax error: {}", source, e.what());
  }
}

// A special token of tokenizer_config.json: "text" or {"content": "text"}.
std::optional<std::string> config_token(const Json& cfg, const std::string& key) {
  if (!cfg.contains(key)) return std::nullopt;
  const Json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  // A list of EOS tokens: gguf-py skips it; the first one is the EOS id.
  if (v.is_array() && !v.empty() && v[0].is_string()) return v[0].get<std::string>();
  return std::nullopt;
}

// convert_hf_to_gguf.py's does_token_look_special: added tokens that some
// models forget to mark special but that are control tokens all the same.
bool looks_special(std::string_view t) {
  auto wraps = [&](std::string_view a, std::string_view b) {
    return t.size() >= a.size() + b.size() && t.substr(0, a.size()) == a && t.substr(t.size() - b.size()) == b;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wraps("<|", "|>") ||
         wraps("<\uff5c", "\uff5c>") || wraps("<unused", ">");
}

bool is_byte_token(std::string_view t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.substr(0, 3) == "<0x" && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// Real CR/LF/TAB characters and their escapes mean the same in a pattern;
// files spell them either way.
std::string canonical_regex(std::string_view re) {
  std::string out;
  for (char c : re) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out;
}

// What the tokenizer.json's normalizer / pre-tokenizer / decoder amount to,
// in the terms GGUF can express.
struct Pipeline {
  bool nfc = false;
  bool prepend_space = false;   // Prepend "▁" normalizer or Metaspace with a prepend scheme
  bool escape_spaces = false;   // Replace " " -> "▁" normalizer or Metaspace
  bool byte_level = false;      // a ByteLevel pre-tokenizer
  std::vector<std::string> splits;  // Split regexes in order (canonical form)
  bool byte_level_decoder = false, byte_fallback_decoder = false;
};

[[noreturn]] void unsupported(const json::Value& v, const std::string& what) {
  v.fail_msg(what + " has no GGUF equivalent (llama.cpp cannot run it)");
}

void read_normalizer(const json::Value& v, Pipeline& p) {
  if (v.is_null()) return;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    for (const auto& e : v.at("normalizers").elements()) read_normalizer(e, p);
  } else if (type == "NFC") {
    p.nfc = true;
  } else if (type == "Prepend" && v.at("prepend").str() == "\u2581") {
    p.prepend_space = true;
  } else if (type == "Replace" && v.at("pattern").has("String") && v.at("pattern").at("String").str() == " " &&
             v.at("content").str() == "\u2581") {
    p.escape_spaces = true;
  } else {
    unsupported(v, "normalizer \"" + type + "\"");
  }
}

void read_pre_tokenizer(const json::Value& v, Pipeline& p) {
  if (v.is_null()) return;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    for (const auto& e : v.at("pretokenizers").elements()) read_pre_tokenizer(e, p);
  } else if (type == "Split") {
    if (p.byte_level) unsupported(v, "a Split after ByteLevel");
    if (!v.at("pattern").has("Regex")) unsupported(v, "a Split on a literal string");
    if (v.at("behavior").str() != "Isolated" || v.bool_or("invert", false))
      unsupported(v, "a Split with behavior \"" + v.at("behavior").str() + "\"");
    p.splits.push_back(canonical_regex(v.at("pattern").at("Regex").str()));
  } else if (type == "ByteLevel") {
    if (v.bool_or("add_prefix_space", true)) unsupported(v, "ByteLevel with add_prefix_space");
    if (v.bool_or("use_regex", true)) p.splits.push_back(canonical_regex(kGpt2Pattern));
    p.byte_level = true;
  } else if (type == "Metaspace") {
    std::string rep = v.has("replacement") ? v.at("replacement").str() : "\u2581";
    if (rep != "\u2581") unsupported(v, "Metaspace with replacement \"" + rep + "\"");
    std::string scheme = v.has("prepend_scheme") && !v.at("prepend_scheme").is_null() ? v.at("prepend_scheme").str()
                                                                                     : "always";
    if (v.has("add_prefix_space") && !v.at("add_prefix_space").is_null() && !v.at("add_prefix_space").as_bool())
      scheme = "never";
    p.prepend_space = scheme != "never";
    p.escape_spaces = true;
  } else {
    unsupported(v, "pre_tokenizer \"" + type + "\"");
  }
}

void read_decoder(const json::Value& v, Pipeline& p) {
  if (v.is_null()) return;
  std::string type = v.at("type").str();
  if (type == "Sequence") {
    for (const auto& e : v.at("decoders").elements()) read_decoder(e, p);
  } else if (type == "ByteLevel") {
    p.byte_level_decoder = true;
  } else if (type == "ByteFallback") {
    p.byte_fallback_decoder = true;
  }
}

std::string pre_name(const Pipeline& p, bool ignore_merges, const std::string& source) {
  const GgufPreTokenizer* loose = nullptr;
  for (const auto& e : gguf_pre_tokenizers()) {
    if (e.nfc != p.nfc || e.regexes.size() != p.splits.size()) continue;
    bool same = true;
    for (size_t i = 0; i < e.regexes.size() && same; ++i) same = canonical_regex(e.regexes[i]) == p.splits[i];
    if (!same) continue;
    if (e.ignore_merges == ignore_merges) return std::string(e.names[0]);
    loose = &e;
  }
  std::string got;
  for (const auto& s : p.splits) got += (got.empty() ? "" : " then ") + ("/" + s + "/");
  if (loose)
    fail("{}: the pre-tokenizer is llama.cpp's \"{}\", but with ignore_merges={} where llama.cpp uses {}", source,
         loose->names[0], ignore_merges, loose->ignore_merges);
  fail("{}: no llama.cpp pre-tokenizer splits like this tokenizer ({}{}); known: {}", source,
       got.empty() ? "no split" : got, p.nfc ? ", after NFC" : "", gguf_pre_tokenizer_names());
}

GgufValue str(std::string s) { return GgufValue{std::move(s)}; }
GgufValue arr(GgufArrayData d) { return GgufValue{GgufArray{std::move(d)}}; }

// Probe texts for the read-back check: words, contractions, digits, runs of
// spaces and newlines, NFD accents, CJK, Khmer, emoji with joiners, and the
// case-folding corner of (?i:'s) (long s).
const char* const kProbes[] = {
    "Hello world",
    " Hello  World!\n",
    "\n \n\n \t\t\t \t\n  \n   end   ",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "3 33 333 3333 33333 333333 3.3 3..3 3...3 1234567890",
    "\U0001F680 (normal) \U0001F636\u200D\U0001F32B\uFE0F \u2705 \U0001F999\U0001F999",
    "\u1780\u17B6\u1793\u17CB ?\u6211\u60F3\u5728apple\u5DE5\u4F5C1314151\u5929\uFF5E ------======= "
    "\u043D\u0435\u0449\u043E ''''''```````\"\"\"\"......!!!!!!??????",
    "re\u0301sume\u0301 caf\u00E9 na\u00EFve \u00C5ngstr\u00F6m",
    "it'\u017F \u01C5emal \u03A3\u038A\u03A3\u03A5\u03A6\u039F\u03A3 \uFF21\uFF22\uFF23",
    "def f(x):\r\n\treturn x**2  # comment\n",
};

void check_read_back(const GgufMetadata& md, const Tokenizer& hf, const std::vector<std::string>& specials,
                     const std::string& source) {
  Tokenizer gg = Tokenizer::from_gguf(read_gguf_vocab(md));
  std::vector<std::string> probes(std::begin(kProbes), std::end(kProbes));
  // Special tokens inside text: llama.cpp puts the SPM space prefix after
  // each one; HF's Metaspace(prepend_scheme "first") does not.
  for (const auto& s : specials) probes.push_back("Hi" + s + "there " + s + s + " again\n" + s);
  auto show = [](const std::vector<int32_t>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size() && i < 24; ++i) {
      if (i) o += ',';
      o += std::to_string(v[i]);
    }
    o += v.size() > 24 ? ",...]" : "]";
    return o;
  };
  for (const auto& p : probes) {
    for (bool add : {false, true}) {
      auto want = hf.encode(p, add), got = gg.encode(p, add);
      if (want != got)
        fail("{}: this tokenizer cannot be written to GGUF exactly: read back, it encodes {:?}{} as {} where Hugging "
             "Face gives {}",
             source, p, add ? " (with special tokens)" : "", show(got), show(want));
    }
    auto ids = hf.encode(p, false);
    if (hf.decode(ids) != gg.decode(ids))
      fail("{}: this tokenizer cannot be written to GGUF exactly: read back, it decodes {:?} as {:?}", source, p,
           gg.decode(ids));
  }
}

}  // namespace

GgufMetadata gguf_tokenizer_metadata(const std::string& path, const GgufTokenizerExportOptions& options) {
  const Files f = resolve(path);
  const std::string& src = f.name;
  auto doc = json::Document::parse(read_maybe_gz(f.tokenizer), src);
  json::Value root = json::Value::root(doc);
  if (!root.is_object()) root.fail_type("object");
  json::Value model = root.at("model");
  std::string mtype = model.has("type") ? model.at("type").str() : "BPE";
  if (mtype != "BPE") model.at("type").fail_msg("model type \"" + mtype + "\" has no GGUF equivalent here (only BPE)");
  if (!model.str_or("continuing_subword_prefix", "").empty() || !model.str_or("end_of_word_suffix", "").empty())
    unsupported(model, "a BPE with continuing_subword_prefix / end_of_word_suffix");
  const bool byte_fallback = model.bool_or("byte_fallback", false);
  const bool ignore_merges = model.bool_or("ignore_merges", false);

  Pipeline pl;
  if (root.has("normalizer")) read_normalizer(root.at("normalizer"), pl);
  if (root.has("pre_tokenizer")) read_pre_tokenizer(root.at("pre_tokenizer"), pl);
  if (root.has("decoder")) read_decoder(root.at("decoder"), pl);
  bool spm = false;
  if (pl.byte_level) {
    if (byte_fallback) unsupported(model, "byte-level BPE with byte_fallback");
    if (pl.prepend_space || pl.escape_spaces) unsupported(root.at("pre_tokenizer"), "byte level with U+2581 spaces");
    if (!pl.byte_level_decoder) unsupported(root, "a byte-level vocabulary without a ByteLevel decoder");
  } else {
    if (!byte_fallback || !pl.escape_spaces || !pl.byte_fallback_decoder || pl.nfc || !pl.splits.empty())
      unsupported(root, "a BPE that is neither byte-level nor SentencePiece-style (byte_fallback, U+2581 spaces)");
    spm = true;
  }

  // ---- vocabulary
  std::vector<std::pair<std::string, int64_t>> vocab;
  {
    json::Value v = model.at("vocab");
    if (!v.is_object()) v.fail_type("object");
    std::string tmp;
    for (uint32_t c = v.node().first; c != 0; c = doc->node(c).next) {
      const json::Node& n = doc->node(c);
      int64_t id = -1;
      auto raw = doc->raw(n);
      if (n.type == json::Type::Number) std::from_chars(raw.data(), raw.data() + raw.size(), id);
      std::string key(json::unescape(doc->key(n), n.key_escaped, tmp));
      if (id < 0 || id > INT32_MAX) fail("{}: model.vocab.{}: expected a non-negative integer id", src, key);
      vocab.emplace_back(std::move(key), id);
    }
  }
  struct Added {
    int64_t id;
    std::string content;
    bool special;
  };
  std::vector<Added> added;
  if (root.has("added_tokens"))
    for (const auto& t : root.at("added_tokens").elements())
      added.push_back({t.at("id").as_int(), t.at("content").str(), t.bool_or("special", false)});

  int64_t max_id = -1;
  for (const auto& [t, id] : vocab) max_id = std::max(max_id, id);
  for (const auto& a : added) max_id = std::max(max_id, a.id);
  if (max_id < 0) fail("{}: the vocabulary is empty", src);

  std::optional<Json> config;
  if (auto text = read_optional(f.dir / "config.json")) config = parse_small_json(*text, "config.json");
  uint64_t n = uint64_t(max_id) + 1;
  uint64_t rows = options.n_vocab;
  if (rows == 0 && config) {
    const Json* c = &*config;
    if (!c->contains("vocab_size") && c->contains("text_config")) c = &(*c)["text_config"];
    if (c->contains("vocab_size") && (*c)["vocab_size"].is_number_unsigned()) rows = (*c)["vocab_size"].get<uint64_t>();
  }
  if (rows != 0 && rows < n)
    fail("{}: the tokenizer has ids up to {} but the model has {} embedding rows", src, max_id, rows);
  n = std::max(n, rows);

  const std::optional<std::string> unk_token =
      model.has("unk_token") && !model.at("unk_token").is_null() ? std::optional(model.at("unk_token").str())
                                                                : std::nullopt;
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, int32_t(GgufTokenType::Unused));
  std::vector<uint8_t> present(n, 0);
  for (const auto& [t, id] : vocab) {
    tokens[size_t(id)] = t;
    present[size_t(id)] = 1;
    GgufTokenType ty = GgufTokenType::Normal;
    if (spm && unk_token && t == *unk_token) ty = GgufTokenType::Unknown;
    else if (spm && is_byte_token(t)) ty = GgufTokenType::Byte;
    types[size_t(id)] = int32_t(ty);
  }
  std::vector<std::string> specials;  // texts of added tokens, for the read-back probes
  for (const auto& a : added) {
    std::string text = a.content;
    GgufTokenType ty;
    if (a.special || looks_special(text)) {
      ty = GgufTokenType::Control;
    } else {
      ty = GgufTokenType::UserDefined;
      // As the converter does for SentencePiece vocabularies: llama.cpp
      // matches user-defined tokens in the raw text, where spaces are still
      // spaces.
      if (spm) {
        std::string out;
        for (size_t i = 0; i < text.size();) {
          if (text.compare(i, 3, "\u2581") == 0) { out += ' '; i += 3; }
          else out += text[i++];
        }
        text = std::move(out);
      }
    }
    if (spm && unk_token && a.content == *unk_token) ty = GgufTokenType::Unknown;
    tokens[size_t(a.id)] = text;
    types[size_t(a.id)] = int32_t(ty);
    present[size_t(a.id)] = 1;
    if (specials.size() < 4 && ty != GgufTokenType::Unknown) specials.push_back(text);
  }
  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(size_t(n));
  for (uint64_t i = 0; i < n; ++i) {
    if (!present[i]) tokens[i] = "[PAD" + std::to_string(i) + "]";  // convert_hf_to_gguf.py's padding rows
    auto [it, fresh] = id_of.emplace(tokens[i], int32_t(i));
    if (!fresh)
      fail("{}: tokens {} and {} are both \"{}\"; llama.cpp refuses a vocabulary with duplicates", src, it->second,
           i, tokens[i]);
  }

  // ---- merges
  std::vector<std::string> merges;
  {
    json::Value m = model.at("merges");
    if (!m.is_array()) m.fail_type("array");
    std::string t1, t2;
    for (uint32_t c = m.node().first; c != 0; c = doc->node(c).next) {
      const json::Node& nd = doc->node(c);
      if (nd.type == json::Type::String) {
        merges.emplace_back(json::unescape(doc->raw(nd), nd.escaped, t1));
      } else if (nd.type == json::Type::Array && nd.count == 2) {
        const json::Node& a = doc->node(nd.first);
        const json::Node& b = doc->node(a.next);
        if (a.type != json::Type::String || b.type != json::Type::String)
          fail("{}: model.merges[{}]: expected a pair of strings", src, merges.size());
        // gguf-py encodes a space inside a part as U+0120 so the pair still
        // splits at the one real space.
        auto part = [](std::string_view s) {
          std::string o;
          for (char ch : s) {
            if (ch == ' ') o += "\u0120";
            else o += ch;
          }
          return o;
        };
        merges.push_back(part(json::unescape(doc->raw(a), a.escaped, t1)) + " " +
                         part(json::unescape(doc->raw(b), b.escaped, t2)));
      } else {
        fail("{}: model.merges[{}]: expected a string or a pair of strings", src, merges.size());
      }
    }
  }

  // ---- scores ("llama"): minus the rank of the first merge making the token.
  std::vector<float> scores;
  if (spm) {
    scores.assign(size_t(n), 0.0f);
    std::vector<uint8_t> scored(size_t(n), 0);
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      size_t sp = m.find(' ');
      if (sp == std::string::npos) fail("{}: model.merges[{}]: expected \"left right\"", src, r);
      std::string joined = m.substr(0, sp) + m.substr(sp + 1);
      auto it = id_of.find(joined);
      if (it == id_of.end()) fail("{}: model.merges[{}]: merged token \"{}\" is not in model.vocab", src, r, joined);
      if (!scored[size_t(it->second)]) {
        scored[size_t(it->second)] = 1;
        scores[size_t(it->second)] = -float(r);
      }
    }
  }

  // ---- special tokens and flags: the HF tokenizer itself says what
  // encode() adds, so transformers' rules (tokenizer_config flags over the
  // post-processor) come for free.
  std::optional<Json> tcfg;
  std::string tcfg_text;
  if (auto text = read_optional(f.dir / "tokenizer_config.json")) {
    tcfg_text = *text;
    tcfg = parse_small_json(tcfg_text, "tokenizer_config.json");
  }
  Tokenizer hf = Tokenizer::load(f.tokenizer, tcfg ? (f.dir / "tokenizer_config.json").string() : "");

  std::map<std::string, uint32_t> special_ids;
  const std::pair<const char*, const char*> kinds[] = {
      {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
      {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
      {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"},
  };
  for (const auto& [kind, key] : kinds) {
    if (tcfg) {
      if (auto text = config_token(*tcfg, std::string(kind) + "_token")) {
        // gguf-py looks among the added tokens only; the vocabulary is the
        // fallback for files that never list their unk/bos as added.
        std::optional<uint32_t> id;
        for (const auto& a : added)
          if (a.content == *text) { id = uint32_t(a.id); break; }
        if (!id)
          if (auto it = id_of.find(*text); it != id_of.end()) id = uint32_t(it->second);
        if (id) { special_ids[kind] = *id; continue; }
      }
    }
    if (config) {
      const Json* c = &*config;
      std::string k = std::string(kind) + "_token_id";
      if (!c->contains(k) && c->contains("text_config")) c = &(*c)["text_config"];
      if (c->contains(k)) {
        const Json& v = (*c)[k];
        const Json* one = v.is_array() && !v.empty() ? &v[0] : &v;
        if (one->is_number_unsigned() && one->get<uint64_t>() < n) special_ids[kind] = one->get<uint32_t>();
      }
    }
  }
  auto plain = hf.encode("a", false), full = hf.encode("a", true);
  size_t at = 0;
  while (at + plain.size() <= full.size() && !std::equal(plain.begin(), plain.end(), full.begin() + std::ptrdiff_t(at)))
    ++at;
  if (at + plain.size() > full.size()) fail("{}: the post-processor changes the text's own ids", src);
  const size_t n_before = at, n_after = full.size() - at - plain.size();
  if (n_before > 1 || n_after > 1)
    fail("{}: the post-processor adds {} token(s) before and {} after the text; GGUF can say one BOS and one EOS", src,
         n_before, n_after);
  auto settle = [&](const char* kind, size_t count, int32_t id) {
    if (count == 0) return false;
    auto it = special_ids.find(kind);
    if (it == special_ids.end()) special_ids[kind] = uint32_t(id);
    else if (int32_t(it->second) != id)
      fail("{}: encode() adds token {} where the {} token is {}", src, id, kind, it->second);
    return true;
  };
  const bool add_bos = settle("bos", n_before, n_before ? full.front() : -1);
  const bool add_eos = settle("eos", n_after, n_after ? full.back() : -1);

  // ---- metadata, in convert_hf_to_gguf.py's order
  GgufMetadata md(src);
  md.add("tokenizer.ggml.model", str(spm ? "llama" : "gpt2"));
  md.add("tokenizer.ggml.pre", str(spm ? "default" : pre_name(pl, ignore_merges, src)));
  md.add("tokenizer.ggml.tokens", arr(tokens));
  if (spm) md.add("tokenizer.ggml.scores", arr(scores));
  md.add("tokenizer.ggml.token_type", arr(types));
  if (!spm) md.add("tokenizer.ggml.merges", arr(merges));
  for (const auto& [kind, key] : kinds)
    if (auto it = special_ids.find(kind); it != special_ids.end()) md.add(key, GgufValue{it->second});
  md.add("tokenizer.ggml.add_bos_token", GgufValue{add_bos});
  md.add("tokenizer.ggml.add_eos_token", GgufValue{add_eos});
  if (spm) md.add("tokenizer.ggml.add_space_prefix", GgufValue{pl.prepend_space});

  // Chat templates: tokenizer_config.json, else chat_template.jinja, else
  // chat_template.json (gguf-py's order). A list holds named templates.
  std::optional<Json> tmpl;
  if (tcfg && tcfg->contains("chat_template")) tmpl = (*tcfg)["chat_template"];
  else if (auto jinja = read_optional(f.dir / "chat_template.jinja")) tmpl = *jinja;
  else if (auto cj = read_optional(f.dir / "chat_template.json")) {
    Json j = parse_small_json(*cj, "chat_template.json");
    if (j.contains("chat_template")) tmpl = j["chat_template"];
  }
  if (tmpl && tmpl->is_string()) {
    md.add("tokenizer.chat_template", str(tmpl->get<std::string>()));
  } else if (tmpl && tmpl->is_array()) {
    std::optional<std::string> dflt;
    std::vector<std::string> names;
    std::vector<std::pair<std::string, std::string>> named;
    for (const auto& e : *tmpl) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
      std::string name;
      for (char ch : e.value("name", std::string())) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      if (name.empty()) continue;
      if (name == "default") dflt = e["template"].get<std::string>();
      else named.emplace_back(name, e["template"].get<std::string>());
    }
    for (const auto& [name, t] : named) {
      md.add("tokenizer.chat_template." + name, str(t));
      names.push_back(name);
    }
    if (!names.empty()) md.add("tokenizer.chat_templates", arr(names));
    if (dflt) md.add("tokenizer.chat_template", str(*dflt));
  }

  check_read_back(md, hf, specials, src);
  return md;
}

}  // namespace moeflux
