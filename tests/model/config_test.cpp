// Config problems are refused at load, naming the key and the value.
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "test_util.h"
#include "model/config_test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

json base_config() { return json::parse(test::read_file(test::fixture("oracle/qwen3_moe_f32/config.json"))); }

using test::spec_error;

TEST(ConfigErrors, MissingFieldIsNamed) {
  json j = base_config();
  j.erase("hidden_size");
  EXPECT_NE(spec_error(j).find("missing required key 'hidden_size'"), std::string::npos) << spec_error(j);
}

TEST(ConfigErrors, UnknownArchitectureListsSupportedOnes) {
  json j = base_config();
  j["model_type"] = "llama4_moe";
  const std::string e = spec_error(j);
  EXPECT_NE(e.find("'llama4_moe'"), std::string::npos) << e;
  EXPECT_NE(e.find("qwen3_moe"), std::string::npos) << e;
}

TEST(ConfigErrors, UnsupportedValuesAreRefusedByKeyAndValue) {
  json j = base_config();
  j["hidden_act"] = "gelu";
  EXPECT_NE(spec_error(j).find("'hidden_act' = 'gelu'"), std::string::npos);
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(spec_error(j).find("rope_scaling' type 'yarn'"), std::string::npos);
  j = base_config();
  j["quantization_config"] = {{"quant_method", "gptq"}};
  EXPECT_NE(spec_error(j).find("gptq"), std::string::npos);
  j = base_config();
  j["quantization_config"] = {{"quant_method", "fp8"}};  // FP8 without its block size
  EXPECT_NE(spec_error(j).find("weight_block_size"), std::string::npos);
  j = base_config();
  j["dtype"] = "int8";
  EXPECT_NE(spec_error(j).find("'int8'"), std::string::npos);
}

TEST(ConfigErrors, InconsistentShapesAreRefused) {
  json j = base_config();
  j["num_key_value_heads"] = 2;  // 3 heads are not a multiple of 2
  EXPECT_NE(spec_error(j).find("not a multiple"), std::string::npos);
  j = base_config();
  j["num_experts_per_tok"] = 9;
  EXPECT_NE(spec_error(j).find("exceeds"), std::string::npos);
  j = base_config();
  j["mlp_only_layers"] = {7};
  EXPECT_NE(spec_error(j).find("names layer 7"), std::string::npos);
  j = base_config();
  j["hidden_size"] = "big";
  EXPECT_NE(spec_error(j).find("'hidden_size' must be an integer"), std::string::npos);
}

TEST(ConfigErrors, WeightsThatDisagreeWithTheConfigAreNamed) {
  test::TempDir d;
  json j = base_config();
  j["moe_intermediate_size"] = 41;
  test::write_file(d.file("config.json"), j.dump());
  std::filesystem::copy_file(test::fixture("oracle/qwen3_moe_f32/model.safetensors"), d.file("model.safetensors"));
  try {
    Engine::load(d.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("experts.0.gate_proj.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[41, 72]"), std::string::npos) << e.what();
  }
}

TEST(ConfigErrors, SparseLayerRuleFollowsTheConfig) {
  json j = base_config();
  j["mlp_only_layers"] = json::array();
  j["decoder_sparse_step"] = 2;
  ModelSpec s = model_spec_from_config(Config(j, "config.json"));
  EXPECT_EQ(s.layer_is_moe, (std::vector<uint8_t>{0, 1, 0}));
}

TEST(SessionErrors, TokenOutOfRangeAndContextOverflowLeaveTheSessionUsable) {
  auto engine = Engine::load(test::fixture("oracle/olmoe_f32"));
  Session s(engine, 8);
  std::vector<int32_t> bad = {1, 2, 211};
  EXPECT_THROW(s.step(bad), Error);
  EXPECT_EQ(s.position(), 0);
  std::vector<int32_t> too_long(9, 1);
  EXPECT_THROW(s.step(too_long), Error);
  EXPECT_EQ(s.position(), 0);
  std::vector<int32_t> ok = {1, 2, 3};
  EXPECT_EQ(s.step(ok).size(), size_t(engine->spec().vocab));
  EXPECT_EQ(s.position(), 3);
}

}  // namespace
