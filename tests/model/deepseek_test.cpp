// DeepSeek-V3 beyond the transformers oracle (oracle_test.cpp): the
// absorbed-weight decode path equals the naive one end to end, the latent
// state's size, and configs that are refused by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "config_test_util.h"
#include "engine_test_util.h"
#include "graph/ir.h"
#include "model/blocks.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

std::shared_ptr<Engine> load(const std::string& dir, const std::string& mla_path) {
  EngineOptions o;
  o.threads = 2;
  o.mla_path = mla_path;
  return Engine::load(test::fixture("oracle/" + dir), o);
}

std::vector<int32_t> some_tokens(int n, int vocab) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(int32_t((i * 37 + 11) % vocab));
  return t;
}

// Token-by-token decode and one-batch prefill through each path give the
// same logits: the absorbed path is checked against the naive reference
// over a context that grows to 40 positions, for both fixtures (q_lora and
// q_proj; YaRN and plain RoPE; interleaved and rotate-half).
TEST(DeepseekV3, AbsorbedPathEqualsNaivePath) {
  for (const char* dir : {"deepseek_v3_f32", "deepseek_v3_qproj_f32"}) {
    auto naive = load(dir, "naive"), absorbed = load(dir, "absorbed");
    const int vocab = naive->spec().vocab;
    const auto tokens = some_tokens(40, vocab);
    const auto a = test::decode_one_by_one(naive, tokens), b = test::decode_one_by_one(absorbed, tokens);
    auto c = test::compare_logits(b, a, 40, vocab);
    EXPECT_LE(c.max_abs, 1e-5 * c.scale) << dir << " decode";
    EXPECT_EQ(c.top1_mismatches, 0) << dir;
    Session sa(naive), sb(absorbed);
    auto la = sa.step(tokens, true);
    std::vector<float> first(la.begin(), la.end());
    auto lb = sb.step(tokens, true);
    c = test::compare_logits(lb, first, 40, vocab);
    EXPECT_LE(c.max_abs, 1e-5 * c.scale) << dir << " prefill";
  }
}

TEST(DeepseekV3, LatentStateKeepsLatentAndRopePartOnly) {
  auto e = load("deepseek_v3_f32", "auto");
  const ModelSpec& s = e->spec();
  EXPECT_EQ(s.mla.kv_lora_rank, 36);
  EXPECT_EQ(s.mla.qk_rope_dim, 8);
  for (const StateDesc& d : layer_states(s)) {
    EXPECT_EQ(d.kind, LayerKind::LatentAttention);
    EXPECT_EQ(d.bytes_per_position(), size_t(36 + 8) * sizeof(float));
  }
  EXPECT_EQ(s.layer_is_moe, (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(s.shared_ffn, 2 * 40);
  EXPECT_EQ(s.mla.router.groups, 3);
  EXPECT_EQ(s.mla.router.topk_groups, 2);
  EXPECT_NE(s.mla.yarn.factor, 1.0f);
  auto q = load("deepseek_v3_qproj_f32", "auto");
  EXPECT_EQ(q->spec().mla.q_lora_rank, 0);
  EXPECT_EQ(q->spec().layer_is_moe, (std::vector<uint8_t>{0, 0, 1}));
}

json base_config() {
  return json::parse(test::read_file(test::fixture("oracle/deepseek_v3_f32/config.json")));
}

TEST(DeepseekV3, ConfigsItDoesNotImplementAreRefusedByName) {
  EXPECT_EQ(test::spec_error(base_config()), "");
  struct Bad {
    const char* key;
    json value;
    const char* says;
  };
  const Bad cases[] = {
      {"rope_scaling", json{{"type", "dynamic"}, {"factor", 2.0}}, "unsupported 'rope_scaling' type 'dynamic'"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 2.0}, {"low_freq_factor", 1.0}}, "low_freq_factor"},
      {"rope_scaling", json{{"type", "yarn"}, {"beta_fast", 32}}, "lacks 'factor'"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 1e300}}, "'rope_scaling.factor' = 1e+300 is not in"},
      {"routed_scaling_factor", -1.0, "'routed_scaling_factor' = -1 is not in"},
      {"num_key_value_heads", 1, "num_key_value_heads 1 differs"},
      {"scoring_func", "softmax", "'scoring_func' = 'softmax'"},
      {"topk_method", "greedy", "'topk_method' = 'greedy'"},
      {"head_dim", 10, "'head_dim' = 10 differs"},
      {"qk_head_dim", 17, "'qk_head_dim' = 17"},
      {"attention_bias", true, "attention_bias"},
      {"n_group", 2, "n_group 2"},
      {"quantization_config", json{{"quant_method", "fp8"}, {"activation_scheme", "static"}, {"weight_block_size", {128, 128}}}, "activation_scheme"},
  };
  for (const Bad& b : cases) {
    json j = base_config();
    j[b.key] = b.value;
    EXPECT_NE(test::spec_error(j).find(b.says), std::string::npos)
        << b.key << " = " << b.value.dump() << ": " << test::spec_error(j);
  }
}

// A q_lora_rank that disagrees with the tensors names the tensor and both shapes.
TEST(DeepseekV3, SizesThatDisagreeWithTheTensorsAreNamed) {
  const std::string dir = testing::TempDir() + "/deepseek_bad_rank";
  std::filesystem::create_directories(dir);
  json j = base_config();
  j["kv_lora_rank"] = 30;
  test::write_file(dir + "/config.json", j.dump());
  std::filesystem::copy_file(test::fixture("oracle/deepseek_v3_f32/model.safetensors"), dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string err = test::error_of([&] { Engine::load(dir); });
  EXPECT_NE(err.find("kv_a_proj_with_mqa.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("[38, 72]"), std::string::npos) << err;
}

}  // namespace

namespace {

// The synth preset is DeepSeek-V3's own config: 671 B parameters (the
// multi-token-prediction layer aside), 37 B active per token.
TEST(DeepseekV3, SynthPresetHasTheRealModelsSize) {
  SynthOptions o;
  o.preset = "deepseek-v3";
  const ModelSpec s = synth_spec(o);
  EXPECT_EQ(s.arch, "deepseek_v3");
  const double total = double(s.dense_params() + s.expert_params_total()) / 1e9;
  const double active = double(s.active_params_per_token()) / 1e9;
  EXPECT_NEAR(total, 671.0, 1.0);
  EXPECT_NEAR(active, 37.5, 1.5);
  EXPECT_EQ(s.mla.yarn.factor, 40.0f);
  for (const StateDesc& d : layer_states(s)) EXPECT_EQ(d.bytes_per_position(), size_t(512 + 64) * 4);
  o.layers = 4;
  o.experts = 16;
  const ModelSpec cut = synth_spec(o);
  EXPECT_EQ(cut.layer_is_moe, (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(cut.experts, 16);
}

}  // namespace

namespace {

// The latent state is positional: a session rewound into its history and
// continued gives the logits of a fresh session fed the same tokens (up to
// the rounding of prefill steps of other lengths: 20 tokens then, 12 now).
TEST(DeepseekV3, RewindIntoTheLatentCacheContinuesExactly) {
  auto e = load("deepseek_v3_f32", "auto");
  const auto tokens = some_tokens(20, e->spec().vocab);
  Session s(e);
  ASSERT_TRUE(s.can_rewind());
  s.step(tokens);
  s.rewind(12);
  std::vector<int32_t> other = {5, 6, 7};
  auto a = s.step(other, true);
  std::vector<float> got(a.begin(), a.end());
  Session fresh(e);
  std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 12);
  fresh.step(prefix);
  auto b = fresh.step(other, true);
  auto c = test::compare_logits(got, std::vector<float>(b.begin(), b.end()), 3, e->spec().vocab);
  EXPECT_LE(c.max_abs, 1e-5 * c.scale);
  EXPECT_EQ(c.top1_mismatches, 0);
}

TEST(DeepseekV3, AnUnknownMlaPathIsRefused) {
  EngineOptions o;
  o.mla_path = "fast";
  auto e = Engine::load(test::fixture("oracle/deepseek_v3_f32"), o);
  Session s(e);
  const std::string err = test::error_of([&] { s.step(std::vector<int32_t>{1, 2}); });
  EXPECT_NE(err.find("mla_path 'fast'"), std::string::npos) << err;
}

}  // namespace
