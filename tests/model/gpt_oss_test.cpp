// gpt-oss beyond the transformers oracle (oracle_test.cpp): MXFP4 experts
// read exactly as transformers dequantizes them, the layer kinds, and what
// is refused by name.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "config_test_util.h"
#include "format/safetensors.h"
#include "model/blocks.h"
#include "model/gpt_oss_experts.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "quant/dequant.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

// Random blocks (every code) and scales with transformers' own
// convert_moe_packed_tensors output (gen_oracle_gptoss.py): the reference
// dequantizer and the repacking into GGML MXFP4 blocks (then GGML's
// dequantizer) both give exactly its values.
TEST(GptOss, Mxfp4MatchesTransformersDequantization) {
  SafetensorsFile f(test::fixture("gpt_oss_mxfp4_dequant.safetensors"));
  const TensorRef& b = f.tensors().at("blocks");   // [E, rows, G, 16]
  const TensorRef& s = f.tensors().at("scales");   // [E, rows, G]
  const auto want = test::tensor_values<float>(f.tensors().at("dequantized"));  // [E, G * 32, rows]
  const int64_t E = b.shape[0], rows = b.shape[1], cols = b.shape[2] * 32;
  ASSERT_EQ(want.size(), size_t(E * rows * cols));
  std::vector<float> ref(static_cast<size_t>(cols)), ggml_out(static_cast<size_t>(cols));
  std::vector<uint8_t> ggml(dtype_row_bytes(DType::MXFP4, cols));
  size_t checked = 0;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = 0; r < rows; ++r) {
      const uint64_t row = uint64_t(e * rows + r);
      const uint8_t* blocks = b.data + row * uint64_t(cols / 2);
      const uint8_t* scales = s.data + row * uint64_t(cols / 32);
      gpt_oss_mxfp4_dequantize_row(blocks, scales, cols, ref.data());
      gpt_oss_mxfp4_row_to_ggml(blocks, scales, cols, ggml.data());
      quant::dequantize_row(GgmlType::MXFP4, ggml.data(), ggml_out.data(), size_t(cols));
      for (int64_t c = 0; c < cols; ++c) {
        const float w = want[size_t((e * cols + c) * rows + r)];
        ASSERT_EQ(std::memcmp(&ref[size_t(c)], &w, 4), 0) << "e " << e << " row " << r << " col " << c;
        ASSERT_EQ(ggml_out[size_t(c)], w) << "GGML blocks: e " << e << " row " << r << " col " << c;
        ++checked;
      }
    }
  EXPECT_EQ(checked, size_t(E * rows * cols));
}

json base_config() { return json::parse(test::read_file(test::fixture("oracle/gpt_oss_f32/config.json"))); }

TEST(GptOss, LayersAlternateSlidingAndFullAttention) {
  const ModelSpec s = load_model_spec(test::fixture("oracle/gpt_oss_f32"));
  EXPECT_EQ(s.gpt_oss.layer_sliding, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(s.gpt_oss.window, 5);
  EXPECT_EQ(s.gpt_oss.yarn.factor, 4.0f);
  const auto states = layer_states(s);
  ASSERT_EQ(states.size(), 3u);
  EXPECT_EQ(states[0].kind, LayerKind::SlidingAttention);
  EXPECT_EQ(states[1].kind, LayerKind::FullAttention);
  // transformers' default when layer_types is absent: even layers sliding.
  json j = base_config();
  j.erase("layer_types");
  j["num_hidden_layers"] = 4;
  const ModelSpec d = model_spec_from_config(Config(j, "config.json"));
  EXPECT_EQ(d.gpt_oss.layer_sliding, (std::vector<uint8_t>{1, 0, 1, 0}));
}

TEST(GptOss, ConfigsItDoesNotImplementAreRefusedByName) {
  EXPECT_EQ(test::spec_error(base_config()), "");
  struct Bad {
    const char* key;
    json value;
    const char* says;
  };
  const Bad cases[] = {
      {"attention_bias", false, "'attention_bias' = false"},
      {"layer_types", json{"sliding_attention", "chunked_attention", "full_attention"}, "'chunked_attention'"},
      {"layer_types", json{"full_attention"}, "'layer_types' must be a list of 3"},
      {"sliding_window", nullptr, "'sliding_window' is null"},
      {"rope_scaling", json{{"rope_type", "dynamic"}, {"factor", 2.0}}, "unsupported 'rope_scaling' type 'dynamic'"},
      {"rope_scaling", json{{"rope_type", "yarn"}, {"beta_fast", 32}}, "lacks 'factor'"},
      {"quantization_config", json{{"quant_method", "fp8"}}, "'quantization_config'"},
      {"quantization_config", json{{"quant_method", "awq"}}, "awq"},
  };
  for (const Bad& b : cases) {
    json j = base_config();
    j[b.key] = b.value;
    EXPECT_NE(test::spec_error(j).find(b.says), std::string::npos)
        << b.key << " = " << b.value.dump() << ": " << test::spec_error(j);
  }
}

// A size that disagrees with the fused experts names the tensor and both shapes.
TEST(GptOss, FusedExpertsThatDisagreeWithTheConfigAreNamed) {
  for (const char* fixture : {"gpt_oss_f32", "gpt_oss_mxfp4"}) {
    const std::string dir = testing::TempDir() + "/gpt_oss_bad_" + fixture;
    std::filesystem::create_directories(dir);
    json j = json::parse(test::read_file(test::fixture(std::string("oracle/") + fixture + "/config.json")));
    j["intermediate_size"] = 64;
    test::write_file(dir + "/config.json", j.dump());
    std::filesystem::copy_file(test::fixture(std::string("oracle/") + fixture + "/model.safetensors"),
                               dir + "/model.safetensors", std::filesystem::copy_options::overwrite_existing);
    const std::string err = test::error_of([&] { Engine::load(dir); });
    EXPECT_NE(err.find("model.layers.0.mlp.experts.gate_up_proj"), std::string::npos) << err;
    EXPECT_NE(err.find(std::string(fixture) == "gpt_oss_f32" ? "[5, 64, 128]" : "[5, 128, 2, 16]"), std::string::npos)
        << fixture << ": " << err;
  }
}

// The repacked experts live in memory, not in a file: the expert store,
// which streams experts from files, refuses them by saying so.
TEST(GptOss, ExpertRamRefusesRepackedExperts) {
  EngineOptions o;
  o.threads = 2;
  o.expert_ram = 64ull << 20;
  const std::string err = test::error_of([&] { Engine::load(test::fixture("oracle/gpt_oss_mxfp4"), o); });
  EXPECT_NE(err.find("run this model without --expert-ram"), std::string::npos) << err;
}

// The synth preset is gpt-oss-120b's own config: 116.8 B parameters, 5.1 B
// active per token (the model card's numbers), written with fused experts.
TEST(GptOss, SynthPresetHasTheRealModelsSize) {
  SynthOptions o;
  o.preset = "gpt-oss-120b";
  const ModelSpec s = synth_spec(o);
  EXPECT_EQ(s.arch, "gpt_oss");
  const double total = double(s.dense_params() + s.expert_params_total()) / 1e9;
  const double active = double(s.active_params_per_token()) / 1e9;
  EXPECT_NEAR(total, 116.8, 0.3);
  EXPECT_NEAR(active, 5.1, 0.2);
  EXPECT_EQ(s.gpt_oss.yarn.factor, 32.0f);
  EXPECT_EQ(s.gpt_oss.window, 128);
  ASSERT_EQ(s.gpt_oss.layer_sliding.size(), 36u);
  EXPECT_EQ(s.gpt_oss.layer_sliding[0], 1);
  EXPECT_EQ(s.gpt_oss.layer_sliding[35], 0);
  int fused = 0;
  for (const ModelTensor& t : gpt_oss_stored_tensors(s)) {
    EXPECT_EQ(t.name.find("experts.0."), std::string::npos) << t.name;
    fused += t.name.find("experts.gate_up_proj") != std::string::npos && t.shape.size() == 3;
  }
  EXPECT_EQ(fused, 36);
}

}  // namespace
