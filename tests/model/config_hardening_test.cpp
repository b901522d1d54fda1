// Hostile or inconsistent model files are refused at load, naming the file
// and key and what was expected, before anything proportional to the claimed
// sizes is allocated (the hardening issue, items 5, 7 and 8).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "core/read_file.h"
#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_writer.h"
#include "format/safetensors_writer.h"
#include "model/config.h"
#include "model/gguf_arch.h"
#include "model/gguf_model.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "test_util.h"
#include "model/config_test_util.h"

using namespace moeflux;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json oracle_config(const std::string& dir) {
  return json::parse(test::read_file(test::fixture("oracle/" + dir + "/config.json")));
}

using test::spec_error;

// A model dir with `cfg` as config.json and the oracle weights of `dir`.
std::string model_dir(const test::TempDir& tmp, const std::string& dir, const json& cfg) {
  test::write_file(tmp.file("config.json"), cfg.dump());
  fs::create_symlink(test::fixture("oracle/" + dir + "/model.safetensors"), tmp.file("model.safetensors"));
  return tmp.path();
}

std::string open_error(const std::string& path) {
  try {
    open_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

// --- item 5: sizes against the tensors present, before allocating ---------

TEST(LayerCounts, HugeConfigLayerCountIsRefusedAgainstTheTensorsQuickly) {
  test::TempDir tmp;
  json j = oracle_config("mixtral_f32");
  j["num_hidden_layers"] = 1 << 24;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = open_error(model_dir(tmp, "mixtral_f32", j));
  EXPECT_HAS(e, "'num_hidden_layers' = 16777216 but the tensors cover 3 layer(s)");
  EXPECT_HAS(e, tmp.path());
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(LayerCounts, FewerLayersThanTheCheckpointIsRefused) {
  test::TempDir tmp;
  json j = oracle_config("olmoe_f32");
  j["num_hidden_layers"] = 2;  // the checkpoint has 3: the last would be silently skipped
  EXPECT_HAS(open_error(model_dir(tmp, "olmoe_f32", j)), "'num_hidden_layers' = 2 but the tensors cover 3 layer(s)");
}

TEST(LayerCounts, MoreExpertsNamedThanConfiguredIsRefused) {
  test::TempDir tmp;
  json j = oracle_config("qwen2_moe_f32");
  j["num_experts"] = 5;
  j["num_experts_per_tok"] = 3;
  EXPECT_HAS(open_error(model_dir(tmp, "qwen2_moe_f32", j)), "the config says 5 experts but");
}

TEST(LayerCounts, HugeExpertCountIsRefusedAgainstTheTensors) {
  test::TempDir tmp;
  json j = oracle_config("mixtral_f32");
  j["num_local_experts"] = 1 << 24;  // would build 3 x 2^24 x 3 tensor names
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_HAS(open_error(model_dir(tmp, "mixtral_f32", j)), "the config says 16777216 experts but layer 0 has tensors for 7");
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(LayerCounts, WeightsFileThatIsAFifoIsRefused) {
  test::TempDir tmp;
  test::write_file(tmp.file("config.json"), oracle_config("olmoe_f32").dump());
  ASSERT_EQ(mkfifo(tmp.file("model.safetensors").c_str(), 0600), 0);
  EXPECT_HAS(open_error(tmp.path()), "model.safetensors: not a regular file");
}

TEST(LayerCounts, LongMlpOnlyLayersListIsLinear) {
  json j = oracle_config("qwen3_moe_f32");
  j["num_hidden_layers"] = 200000;
  json list = json::array();
  for (int l = 0; l < 100000; ++l) list.push_back(2 * l);
  j["mlp_only_layers"] = list;
  const auto t0 = std::chrono::steady_clock::now();
  const ModelSpec s = model_spec_from_config(Config(j, "config.json"));
  EXPECT_LT(seconds_since(t0), 2.0);
  EXPECT_EQ(s.moe_layers(), 100000);
}

TEST(LayerCounts, UnusedTensorIsAnErrorNamingIt) {
  test::TempDir tmp;
  const std::string dir = model_dir(tmp, "mixtral_f32", oracle_config("mixtral_f32"));
  SafetensorsWriter w(tmp.file("extra.safetensors"), {{"model.layers.0.mlp.unexpected.weight", DType::F32, {2}}});
  const float v[2] = {1, 2};
  w.write({reinterpret_cast<const uint8_t*>(v), sizeof v});
  w.finish();
  const std::string e = open_error(dir);
  EXPECT_HAS(e, "model.layers.0.mlp.unexpected.weight");
  EXPECT_HAS(e, "not part of the model");
}

// GGUF: the metadata of a real file with one key replaced.
GgufMetadata with(const GgufMetadata& md, const std::string& key, GgufValue v) {
  GgufMetadata out(md.source());
  bool seen = false;
  for (auto& [k, val] : md.entries()) {
    if (k == key) {
      out.add(k, v);
      seen = true;
    } else {
      out.add(k, val);
    }
  }
  if (!seen) out.add(key, v);
  return out;
}

std::string gguf_error(const std::string& key, GgufValue v) {
  GgufFile f(test::fixture("gguf/tiny_qwen3moe.gguf"));
  try {
    model_spec_from_gguf(with(f.metadata(), key, std::move(v)), f.tensors());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LayerCounts, GgufHugeBlockCountIsRefusedQuickly) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_HAS(gguf_error("qwen3moe.block_count", {uint32_t(INT32_MAX)}),
             "'qwen3moe.block_count' = 2147483647 is not a valid size (expected 1 to 16777216)");
  const std::string e = gguf_error("qwen3moe.block_count", {uint32_t(1) << 24});
  EXPECT_HAS(e, "'qwen3moe.block_count' = 16777216 but the tensors cover");
  EXPECT_HAS(e, "tiny_qwen3moe.gguf");
  EXPECT_LT(seconds_since(t0), 2.0);
}

// tiny_qwen3moe.gguf rewritten with `extra` tensors appended and one
// metadata key replaced (empty key: none).
std::string rewritten_gguf(const test::TempDir& tmp, const std::vector<GgufTensorDecl>& extra, const std::string& key,
                           GgufValue v) {
  GgufFile f(test::fixture("gguf/tiny_qwen3moe.gguf"));
  const GgufMetadata md = key.empty() ? f.metadata() : with(f.metadata(), key, v);
  std::vector<GgufTensorDecl> decls;
  for (const GgufTensor& t : f.tensors()) decls.push_back({t.name, t.type, t.dims});
  for (const GgufTensorDecl& d : extra) decls.push_back(d);
  std::vector<uint64_t> rel;
  std::string bytes = gguf_header_bytes(md, decls, "test", &rel);
  const size_t data_start = bytes.size();
  for (size_t i = 0; i < decls.size(); ++i) {
    bytes.resize(data_start + rel[i], '\0');
    if (i < f.tensors().size())
      bytes.append(reinterpret_cast<const char*>(f.tensors()[i].data), f.tensors()[i].nbytes);
    else
      bytes.append(decls[i].nbytes(), '\0');
  }
  const std::string path = tmp.file("m.gguf");
  test::write_file(path, bytes);
  return path;
}

TEST(LayerCounts, GgufUnusedTensorAndWrongBlockCountAreRefused) {
  test::TempDir a, b, c, d;
  // The unchanged rewrite loads: the helper itself is sound.
  EXPECT_EQ(open_error(rewritten_gguf(a, {}, "", {uint32_t(0)})), "");
  EXPECT_HAS(open_error(rewritten_gguf(b, {{"blk.0.unexpected.weight", GgmlType::F32, {4}}}, "", {uint32_t(0)})),
             "blk.0.unexpected.weight");
  GgufFile f(test::fixture("gguf/tiny_qwen3moe.gguf"));
  const uint32_t blocks = f.metadata().get_u32("qwen3moe.block_count");
  EXPECT_HAS(open_error(rewritten_gguf(c, {}, "qwen3moe.block_count", {blocks + 1})),
             fmt::format("'qwen3moe.block_count' = {} but the tensors cover {} layer(s)", blocks + 1, blocks));
  // A block beyond block_count (the GGUF form of num_hidden_layers 3 on 4 layers).
  const std::string extra = fmt::format("blk.{}.attn_norm.weight", blocks);
  EXPECT_HAS(open_error(rewritten_gguf(d, {{extra, GgmlType::F32, {4}}}, "", {uint32_t(0)})),
             fmt::format("'qwen3moe.block_count' = {} but the tensors cover {} layer(s)", blocks, blocks + 1));
}

// --- item 7: ranges and consistency --------------------------------------

TEST(Ranges, TokenIdsAreNotTruncatedToInt32) {
  json j = oracle_config("qwen3_moe_f32");
  j["eos_token_id"] = 4294967827ull;  // 2^32 + 531: was read as 531
  EXPECT_HAS(spec_error(j), "'eos_token_id' = 4294967827 is not a token id in [0, vocab_size 211)");
  j = oracle_config("qwen3_moe_f32");
  j["bos_token_id"] = (1ull << 33) + 1;  // was read as 1
  EXPECT_HAS(spec_error(j), "'bos_token_id' = 8589934593");
  j = oracle_config("qwen3_moe_f32");
  j["eos_token_id"] = {2, -1};
  EXPECT_HAS(spec_error(j), "'eos_token_id' = -1");
  j = oracle_config("qwen3_moe_f32");
  j["eos_token_id"] = 211;
  EXPECT_HAS(spec_error(j), "vocab_size 211");
}

TEST(Ranges, NonPositiveEpsAndThetaAreRefused) {
  // 1e-60 (config_spec_fuzz): positive as a double, 0 as the f32 the engine uses.
  for (double eps : {0.0, -1e-6, 2.0, 1e-60}) {
    json j = oracle_config("olmoe_f32");
    j["rms_norm_eps"] = eps;
    EXPECT_HAS(spec_error(j), "'rms_norm_eps'");
  }
  for (double theta : {0.0, -1.0}) {
    json j = oracle_config("olmoe_f32");
    j["rope_theta"] = theta;
    EXPECT_HAS(spec_error(j), "'rope_theta'");
  }
  json j = oracle_config("olmoe_f32");
  j["clip_qkv"] = -2.0;
  EXPECT_HAS(spec_error(j), "'clip_qkv'");
}

TEST(Ranges, GgufNanEpsAndFreqBaseAreRefused) {
  EXPECT_HAS(gguf_error("qwen3moe.attention.layer_norm_rms_epsilon", {std::nanf("")}),
             "'qwen3moe.attention.layer_norm_rms_epsilon' = nan must be a finite number");
  EXPECT_HAS(gguf_error("qwen3moe.rope.freq_base", {std::nanf("")}), "'qwen3moe.rope.freq_base' = nan");
  EXPECT_HAS(gguf_error("qwen3moe.rope.freq_base", {0.f}), "'qwen3moe.rope.freq_base' = 0");
  EXPECT_HAS(gguf_error("tokenizer.ggml.eos_token_id", {uint32_t(4000000000u)}), "'tokenizer.ggml.eos_token_id'");
}

TEST(Ranges, QuantizationBlockOnUnquantizedWeightsIsRefused) {
  test::TempDir tmp;
  json j = oracle_config("qwen3_moe_bf16");
  j["quantization"] = {{"bits", 4}, {"group_size", 64}};
  const std::string e = open_error(model_dir(tmp, "qwen3_moe_bf16", j));
  EXPECT_HAS(e, "'quantization'");
  EXPECT_HAS(e, "not MLX-quantized");
}

// --- item 8 / 6: messages that name the file; bounded reads --------------

TEST(Files, HugeNumberInConfigNamesTheFile) {
  test::TempDir tmp;
  test::write_file(tmp.file("config.json"), R"({"model_type": "mixtral", "rope_theta": 1e400})");
  try {
    Config::load(tmp.file("config.json"));
    FAIL() << "1e400 accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), tmp.file("config.json"));
    EXPECT_HAS(std::string(e.what()), "not valid JSON");
  }
}

TEST(Files, HugeNumberInSafetensorsHeaderNamesTheFile) {
  const std::string h = R"({"a": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((h.size() >> (8 * i)) & 0xff);
  bytes += h + std::string(4, '\0');
  try {
    parse_safetensors_header({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, bytes.size(), "x.safetensors",
                             nullptr);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "x.safetensors: header is not valid JSON");
  }
}

TEST(Files, ConfigThatIsADeviceFifoOrDirectoryIsRefusedAtOnce) {
  test::TempDir tmp;
  fs::create_symlink("/dev/zero", tmp.file("zero"));
  EXPECT_THROW(
      {
        try {
          Config::load(tmp.file("zero"));
        } catch (const Error& e) {
          EXPECT_HAS(std::string(e.what()), "is a character device, expected a regular file");
          throw;
        }
      },
      Error);
  ASSERT_EQ(mkfifo(tmp.file("fifo").c_str(), 0600), 0);
  try {
    read_small_file(tmp.file("fifo"), "config");
    FAIL() << "FIFO read";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "is a FIFO");
  }
  try {
    read_small_file(tmp.path(), "--chat-template");
    FAIL() << "directory read";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "--chat-template " + tmp.path() + ": is a directory");
  }
}

TEST(Files, OversizedTextFileIsRefused) {
  test::TempDir tmp;
  test::write_file(tmp.file("big.json"), std::string(100, ' '));
  try {
    read_small_file(tmp.file("big.json"), "config", 64);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "100 bytes, more than the 64");
  }
  EXPECT_EQ(read_small_file(tmp.file("big.json"), "config", 100).size(), 100u);
}

TEST(Files, TinyGgufSaysItIsNotAGgufFile) {
  for (size_t n : {0, 1, 3}) {
    test::TempDir tmp;
    test::write_file(tmp.file("m.gguf"), std::string(n, 'G'));
    try {
      load_model_spec(tmp.file("m.gguf"));
      FAIL() << n << " bytes accepted";
    } catch (const Error& e) {
      EXPECT_HAS(std::string(e.what()), "not a GGUF file: " + std::to_string(n) + " bytes");
    }
  }
}

}  // namespace
