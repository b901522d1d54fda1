#pragma once
// The tokenizers of ../shared/tokenizers and the demo tokenizer, exported
// with gguf_tokenizer_metadata, written to a vocab-only GGUF file with
// GgufWriter, read back with GgufFile + read_gguf_vocab and loaded with
// Tokenizer::from_gguf: the path a converted model takes. Built once per
// process and shared by the GGUF tests (an export takes about a second).
//
// With MOEFLUX_GGUF_EXPORT_DIR set, the files are written there and kept:
// scripts/gen_gguf_vocab_fixtures.py runs llama.cpp on exactly these files.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "fixture_io.h"
#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_vocab.h"
#include "format/gguf/gguf_writer.h"
#include "text/tokenizer/gguf_export.h"
#include "text/tokenizer/gguf_tokenizer.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux::testing {

struct GgufCase {
  std::string name;
  std::string hf_path;    // what was exported: a directory
  std::string gguf_path;  // the written file
  GgufMetadata metadata;  // as exported
  Tokenizer hf;           // the same files through the tokenizer.json loader
  Tokenizer gguf;         // the written file through from_gguf
};

// Cases in a fixed order; `lossless` as in hf_fixtures_test.cpp.
struct GgufCaseName {
  const char* name;
  bool lossless;
};
inline constexpr GgufCaseName kGgufCases[] = {{"qwen3", false}, {"deepseek_v3", true}, {"llama3", true},
                                             {"gptoss", true},  {"llama2", false},     {"demo", true}};

inline std::string hf_dir_of(const std::string& name) {
  return name == "demo" ? fixture_dir() + "/demo" : shared_tokenizers_dir() + "/" + name;
}

class GgufCaseDir {
 public:
  GgufCaseDir() {
    if (const char* keep = std::getenv("MOEFLUX_GGUF_EXPORT_DIR"); keep && *keep) {
      path_ = keep;
      std::filesystem::create_directories(path_);
      owned_ = false;
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "moeflux-gguf-vocab-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
      path_ = tmpl;
    }
  }
  ~GgufCaseDir() {
    std::error_code ec;
    if (owned_) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool owned_ = true;
};

// nullptr when the shared tokenizer is not on this machine.
inline const GgufCase* gguf_case(const std::string& name) {
  static GgufCaseDir dir;
  static std::map<std::string, std::unique_ptr<GgufCase>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second.get();
  std::string hf_dir = hf_dir_of(name);
  if (!std::filesystem::exists(hf_dir)) return cache.emplace(name, nullptr).first->second.get();

  auto c = std::make_unique<GgufCase>();
  c->name = name;
  c->hf_path = hf_dir;
  c->gguf_path = dir.path() + "/" + name + ".gguf";
  c->metadata = gguf_tokenizer_metadata(hf_dir);
  GgufMetadata file_md(c->gguf_path);
  file_md.add("general.architecture", GgufValue{std::string("llama")});
  file_md.add("general.name", GgufValue{name});
  for (const auto& [k, v] : c->metadata.entries()) file_md.add(k, v);
  GgufWriter w(c->gguf_path, file_md, {});
  w.finish();
  c->gguf = load_gguf_tokenizer(c->gguf_path);
  std::string json = std::filesystem::exists(hf_dir + "/tokenizer.json") ? hf_dir + "/tokenizer.json"
                                                                         : hf_dir + "/tokenizer.json.gz";
  c->hf = Tokenizer::load(json, hf_dir + "/tokenizer_config.json");
  return cache.emplace(name, std::move(c)).first->second.get();
}

}  // namespace moeflux::testing
