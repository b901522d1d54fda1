// config.json as transformers 5 writes it (tests/fixtures/oracle/*/config.tf5.json,
// made by scripts/gen_tf5_configs.py from the 4.57 configs beside them): the
// same model must give the same spec and the same logits whichever version
// saved it, and a key that changes the math and is not implemented must be
// refused by name.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model/config.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

const char* const kDirs[] = {"qwen3_moe_f32", "qwen3_moe_bf16", "qwen2_moe_f32", "qwen2_moe_bf16",
                             "mixtral_f32",   "mixtral_bf16",   "olmoe_f32",     "olmoe_bf16",
                             "qwen3_next_f32", "qwen3_next_bf16"};

json load_json(const std::string& path) { return json::parse(test::read_file(path)); }
json tf4(const std::string& dir) { return load_json(test::fixture("oracle/" + dir + "/config.json")); }
json tf5(const std::string& dir) { return load_json(test::fixture("oracle/" + dir + "/config.tf5.json")); }

ModelSpec spec_of(const json& j) { return model_spec_from_config(Config(j, "config.json")); }

std::string spec_error(const json& j) {
  try {
    spec_of(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.heads, b.heads);
  EXPECT_EQ(a.kv_heads, b.kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_positions, b.max_positions);
  EXPECT_EQ(a.rms_eps, b.rms_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_interleaved, b.rope_interleaved);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.clip_qkv, b.clip_qkv);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.experts, b.experts);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.linear_attn.layer_is_linear, b.linear_attn.layer_is_linear);
  EXPECT_EQ(a.linear_attn.rotary_dims, b.linear_attn.rotary_dims);
  EXPECT_EQ(a.linear_attn.value_heads, b.linear_attn.value_heads);
  EXPECT_EQ(a.expert_ffn, b.expert_ffn);
  EXPECT_EQ(a.dense_ffn, b.dense_ffn);
  EXPECT_EQ(a.shared_ffn, b.shared_ffn);
  EXPECT_EQ(a.shared_expert_gate, b.shared_expert_gate);
  EXPECT_EQ(a.norm_topk, b.norm_topk);
  EXPECT_EQ(a.layer_is_moe, b.layer_is_moe);
  EXPECT_EQ(a.bos_token, b.bos_token);
  EXPECT_EQ(a.eos_token, b.eos_token);
}

class Tf5Config : public ::testing::TestWithParam<const char*> {};

// The fixtures are what transformers 5 writes: the renamed keys are there.
TEST_P(Tf5Config, FixtureHasTheTransformers5Form) {
  const json j = tf5(GetParam());
  EXPECT_EQ(j["transformers_version"].get<std::string>().substr(0, 2), "5.");
  EXPECT_TRUE(j.contains("rope_parameters"));
  EXPECT_FALSE(j.contains("rope_theta"));
  EXPECT_TRUE(j.contains("dtype"));
}

TEST_P(Tf5Config, SameSpecAsTransformers4) {
  const ModelSpec a = spec_of(tf4(GetParam())), b = spec_of(tf5(GetParam()));
  expect_same_spec(a, b);
  EXPECT_TRUE(a.unread_config_keys.empty()) << a.unread_config_keys.front();
  EXPECT_TRUE(b.unread_config_keys.empty()) << b.unread_config_keys.front();
}

// The transformers 5 config beside the same weights, in a scratch model dir.
std::string tf5_model_dir(const test::TempDir& tmp, const std::string& dir) {
  const std::string src = test::fixture("oracle/" + dir);
  std::filesystem::copy_file(src + "/config.tf5.json", tmp.file("config.json"));
  std::filesystem::create_symlink(src + "/model.safetensors", tmp.file("model.safetensors"));
  return tmp.path();
}

TEST_P(Tf5Config, SameLogitsAsTransformers4) {
  test::TempDir tmp;
  EngineOptions o;
  o.threads = 2;
  auto e4 = Engine::load(test::fixture(std::string("oracle/") + GetParam()), o);
  auto e5 = Engine::load(tf5_model_dir(tmp, GetParam()), o);
  SafetensorsFile ref(test::fixture(std::string("oracle/") + GetParam() + "/reference.safetensors"));
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.17"));
  Session s4(e4), s5(e5);
  auto l4 = s4.step(tokens, true);
  const std::vector<float> a(l4.begin(), l4.end());
  auto l5 = s5.step(tokens, true);
  const std::vector<float> b(l5.begin(), l5.end());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "logits differ between 4.x and 5.x configs";
  // And both are transformers' logits (same tolerance as the oracle tests' bf16 dirs).
  auto c = test::compare_logits(b, test::tensor_values<float>(ref.tensors().at("logits.17")), 17, e5->spec().vocab);
  EXPECT_LE(c.max_abs, 2e-3 * c.scale);
  EXPECT_EQ(c.top1_mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Oracle, Tf5Config, ::testing::ValuesIn(kDirs));

// The silent misread of the issue: theta 1e6 inside rope_parameters ran with 10000.
TEST(Tf5Rope, MixtralThetaInsideRopeParametersIsRead) {
  json j = tf5("mixtral_f32");
  ASSERT_FALSE(j.contains("rope_theta"));
  EXPECT_EQ(spec_of(j).rope_theta, 1e6f);
  j["rope_parameters"]["rope_theta"] = 5e5;  // not the default: read, not defaulted
  EXPECT_EQ(spec_of(j).rope_theta, 5e5f);
}

// transformers' MixtralConfig defaults rope_theta to 1e6 (the others to 1e4).
TEST(Tf5Rope, ArchitectureDefaultThetaWhenNoneIsGiven) {
  json m = tf5("mixtral_f32");
  m.erase("rope_parameters");
  EXPECT_EQ(spec_of(m).rope_theta, 1e6f);
  json q = tf4("qwen2_moe_f32");
  q.erase("rope_theta");
  EXPECT_EQ(spec_of(q).rope_theta, 1e4f);
}

TEST(Tf5Rope, ScalingTypesAreRefusedByName) {
  for (const char* type : {"yarn", "linear", "dynamic", "llama3", "longrope"}) {
    json j = tf5("qwen3_moe_f32");
    j["rope_parameters"] = {{"rope_type", type}, {"rope_theta", 1e6}, {"factor", 4.0}};
    const std::string e = spec_error(j);
    EXPECT_NE(e.find(std::string("'rope_parameters' type '") + type + "'"), std::string::npos) << e;
  }
  json v4 = tf4("qwen3_moe_f32");
  v4["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(spec_error(v4).find("'yarn'"), std::string::npos) << spec_error(v4);
}

TEST(Tf5Rope, UnknownMathKeyInsideRopeParametersIsRefusedNamingIt) {
  json j = tf5("mixtral_f32");
  j["rope_parameters"]["factor"] = 8.0;
  const std::string e = spec_error(j);
  EXPECT_NE(e.find("'rope_parameters.factor'"), std::string::npos) << e;
  j = tf5("mixtral_f32");
  j["rope_parameters"]["partial_rotary_factor"] = 0.5;
  EXPECT_NE(spec_error(j).find("partial_rotary_factor"), std::string::npos) << spec_error(j);
  j = tf5("mixtral_f32");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}}};
  EXPECT_NE(spec_error(j).find("rope_parameters.full_attention"), std::string::npos) << spec_error(j);
}

TEST(Tf5Rope, ConflictingThetasAreRefused) {
  json j = tf5("mixtral_f32");
  j["rope_theta"] = 10000.0;
  const std::string e = spec_error(j);
  EXPECT_NE(e.find("rope_parameters.rope_theta"), std::string::npos) << e;
  EXPECT_NE(e.find("disagree"), std::string::npos) << e;
  j["rope_theta"] = 1e6;  // the same value twice is fine
  EXPECT_EQ(spec_error(j), "");
}

TEST(Tf5Aliases, EitherNameOfTheExpertCountLoads) {
  // qwen3_moe: 4.x num_experts, 5.x num_local_experts; mixtral and olmoe
  // accept the other name too (their attribute_map).
  for (auto [dir, alias] : {std::pair{"qwen3_moe_f32", "num_local_experts"}, {"mixtral_f32", "num_experts"},
                            {"olmoe_f32", "num_local_experts"}}) {
    json j = tf4(dir);
    const std::string key = j.contains("num_experts") ? "num_experts" : "num_local_experts";
    const json n = j[key];
    j.erase(key);
    j[alias] = n;
    EXPECT_EQ(spec_of(j).experts, n.get<int>()) << dir;
    j[key] = n.get<int>() + 1;
    const std::string e = spec_error(j);
    EXPECT_NE(e.find("disagree"), std::string::npos) << dir << ": " << e;
    EXPECT_NE(e.find(alias), std::string::npos) << e;
  }
}

TEST(Tf5Dtype, DtypeAndTorchDtype) {
  json j = tf4("qwen3_moe_bf16");
  j.erase("dtype");
  j["torch_dtype"] = "bfloat16";
  EXPECT_EQ(spec_of(j).dtype, DType::BF16);
  j["dtype"] = "float32";
  EXPECT_NE(spec_error(j).find("'torch_dtype' = \"bfloat16\" and 'dtype' = \"float32\" disagree"), std::string::npos)
      << spec_error(j);
}

TEST(Tf5Qwen2Moe, QkvBiasAndLayerTypes) {
  json j = tf5("qwen2_moe_f32");
  EXPECT_TRUE(spec_of(j).qkv_bias);
  j["qkv_bias"] = false;
  EXPECT_FALSE(spec_of(j).qkv_bias);
  j = tf5("qwen2_moe_f32");
  j["use_sliding_window"] = true;
  j["sliding_window"] = 16;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};
  EXPECT_NE(spec_error(j).find("'layer_types' gives a sliding window to 2 of 3 layers"), std::string::npos)
      << spec_error(j);
  j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention"};
  EXPECT_EQ(spec_of(j).sliding_window, 16);
  j["layer_types"] = {"full_attention", "chunked_attention", "full_attention"};
  EXPECT_NE(spec_error(j).find("'chunked_attention'"), std::string::npos) << spec_error(j);
}

// Keys no transformers config class of the architecture defines are ignored
// by transformers too; moeflux lists them (the CLI warns) rather than failing.
TEST(Tf5Keys, KeysTransformersDoesNotReadAreListed) {
  json j = tf5("olmoe_f32");
  j["my_custom_flag"] = true;
  EXPECT_EQ(spec_of(j).unread_config_keys, std::vector<std::string>{"my_custom_flag"});
}

}  // namespace
