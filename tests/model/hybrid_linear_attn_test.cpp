// Config and checkpoint handling of the hybrid Gated DeltaNet models
// (qwen3_next, qwen3_5_moe): layer kinds from layer_types or the interval,
// sizes that disagree with the tensors, the multimodal checkpoint's parts
// that are skipped (vision tower, MTP weights) or missing.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "format/safetensors.h"
#include "format/safetensors_writer.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "test_util.h"
#include "model/config_test_util.h"

using namespace moeflux;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json config_of(const std::string& dir) {
  return json::parse(test::read_file(test::fixture("oracle/" + dir + "/config.json")));
}

std::string load_error(const std::string& path) {
  try {
    Engine::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A copy of fixture `dir` with `cfg` as config.json and its weights, less
// the tensors `drop` rejects, plus `extra` F32 tensors of 4 zeros.
std::string copy_model(const test::TempDir& tmp, const std::string& dir, const json& cfg,
                       const std::function<bool(const std::string&)>& drop = {},
                       const std::vector<std::string>& extra = {}) {
  test::write_file(tmp.file("config.json"), cfg.dump());
  SafetensorsFile src(test::fixture("oracle/" + dir + "/model.safetensors"));
  std::vector<TensorDecl> decls;
  std::vector<const TensorRef*> refs;
  for (const auto& [name, t] : src.tensors()) {
    if (drop && drop(name)) continue;
    decls.push_back({name, t.dtype, t.shape});
    refs.push_back(&t);
  }
  for (const std::string& n : extra) decls.push_back({n, DType::F32, {4}});
  SafetensorsWriter w(tmp.file("model.safetensors"), decls);
  for (const TensorRef* t : refs) w.write({t->data, t->nbytes});
  const float zeros[4] = {};
  for (size_t i = 0; i < extra.size(); ++i) w.write({reinterpret_cast<const uint8_t*>(zeros), sizeof zeros});
  w.finish();
  return tmp.path();
}

TEST(HybridConfig, LayerKindsFromLayerTypesOrTheInterval) {
  json c = config_of("qwen3_next_f32");
  ModelSpec s = model_spec_from_config(Config(c, "config.json"));
  EXPECT_EQ(s.linear_attn.layer_is_linear, (std::vector<uint8_t>{1, 0, 1, 1}));
  c.erase("layer_types");
  c["full_attention_interval"] = 2;
  s = model_spec_from_config(Config(c, "config.json"));
  EXPECT_EQ(s.linear_attn.layer_is_linear, (std::vector<uint8_t>{1, 0, 1, 0}));
  c.erase("full_attention_interval");  // the config class's default: every 4th
  s = model_spec_from_config(Config(c, "config.json"));
  EXPECT_EQ(s.linear_attn.layer_is_linear, (std::vector<uint8_t>{1, 1, 1, 0}));
  c["layer_types"] = {"linear_attention", "sliding_attention", "full_attention", "full_attention"};
  EXPECT_NE(test::spec_error(c).find("'layer_types'[1] = 'sliding_attention'"), std::string::npos)
      << test::spec_error(c);
  c["layer_types"] = {"linear_attention"};
  EXPECT_NE(test::spec_error(c).find("one per layer"), std::string::npos) << test::spec_error(c);
}

TEST(HybridConfig, BadLinearAttentionSizesAreRefused) {
  json c = config_of("qwen3_next_f32");
  c["linear_num_value_heads"] = 5;  // not a multiple of the 2 key heads
  EXPECT_NE(test::spec_error(c).find("not a multiple of linear_num_key_heads"), std::string::npos)
      << test::spec_error(c);
  c = config_of("qwen3_next_f32");
  c["partial_rotary_factor"] = 0.05;  // 1 of 24 dims: no rotate-half pairs
  EXPECT_NE(test::spec_error(c).find("rotary dims"), std::string::npos) << test::spec_error(c);
  // Other architectures still refuse partial RoPE.
  json q = config_of("qwen3_moe_f32");
  q["partial_rotary_factor"] = 0.5;
  EXPECT_NE(test::spec_error(q).find("partial_rotary_factor"), std::string::npos) << test::spec_error(q);
}

TEST(HybridCheckpoint, SizesThatDisagreeWithTheTensorsNameTheTensor) {
  test::TempDir tmp;
  json c = config_of("qwen3_next_f32");
  c["linear_value_head_dim"] = 12;  // the tensors have 10
  const std::string err = load_error(copy_model(tmp, "qwen3_next_f32", c));
  EXPECT_NE(err.find("linear_attn.in_proj_qkvz.weight"), std::string::npos) << err;
  // 2 * (2 x 12) + 2 * (4 x 10) rows stored, 2 * (2 x 12) + 2 * (4 x 12) implied.
  EXPECT_NE(err.find("shape [128, 72] but the config implies [144, 72]"), std::string::npos) << err;
}

TEST(HybridCheckpoint, VisionTowerAndMtpWeightsAreSkippedOrMayBeAbsent) {
  // Without the vision tower, and with multi-token-prediction weights: the
  // text model loads and computes the same logits.
  const std::vector<int32_t> tokens{5, 17, 3, 99, 42, 7};
  auto ref = Engine::load(test::fixture("oracle/qwen3_5_moe_f32"));
  Session rs(ref);
  const auto want = rs.step(tokens, true);
  const std::vector<float> expected(want.begin(), want.end());
  test::TempDir tmp;
  const std::string dir = copy_model(
      tmp, "qwen3_5_moe_f32", config_of("qwen3_5_moe_f32"),
      [](const std::string& n) { return n.rfind("model.visual.", 0) == 0; }, {"mtp.fc.weight", "mtp.norm.weight"});
  auto e = Engine::load(dir);
  Session s(e);
  const auto got = s.step(tokens, true);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), expected.size() * sizeof(float)));
  // A stray tensor in the text model's namespace is not silently ignored.
  test::TempDir tmp2;
  const std::string bad = copy_model(tmp2, "qwen3_5_moe_f32", config_of("qwen3_5_moe_f32"), {},
                                     {"model.language_model.layers.0.linear_attn.extra.weight"});
  const std::string err = load_error(bad);
  EXPECT_NE(err.find("linear_attn.extra.weight"), std::string::npos) << err;
  // A multimodal config over text-only tensor names says where it looked.
  test::TempDir tmp3;
  const std::string text_only = copy_model(tmp3, "qwen3_5_moe_f32", config_of("qwen3_5_moe_f32"),
                                           [](const std::string& n) { return n.rfind("model.", 0) == 0; });
  const std::string err3 = load_error(text_only);
  EXPECT_NE(err3.find("model.language_model."), std::string::npos) << err3;
}

// The published Qwen3.5 checkpoints store each layer's routed experts
// fused (transformers 5's mlp.experts.gate_up_proj [E, 2F, D] and
// down_proj [E, D, F]): the same model loads from them, reading each
// expert's rows in place, with the same logits.
TEST(HybridCheckpoint, FusedExpertTensorsLoadAsPerExpertOnes) {
  const std::string src_dir = test::fixture("oracle/qwen3_5_moe_f32");
  const json cfg = config_of("qwen3_5_moe_f32");
  const int E = cfg["text_config"]["num_experts"], layers = cfg["text_config"]["num_hidden_layers"];
  SafetensorsFile src(src_dir + "/model.safetensors");
  std::vector<TensorDecl> decls;
  std::vector<std::vector<const TensorRef*>> parts;  // each declared tensor's bytes, in order
  const std::string moe = "model.language_model.layers.";
  for (const auto& [name, t] : src.tensors()) {
    if (name.find(".mlp.experts.") != std::string::npos) continue;
    decls.push_back({name, t.dtype, t.shape});
    parts.push_back({&t});
  }
  for (int l = 0; l < layers; ++l) {
    const std::string p = moe + std::to_string(l) + ".mlp.experts.";
    auto expert = [&](int e, const char* proj) -> const TensorRef& {
      return src.tensors().at(p + std::to_string(e) + "." + proj + ".weight");
    };
    const TensorRef& g0 = expert(0, "gate_proj");
    const TensorRef& d0 = expert(0, "down_proj");
    decls.push_back({p + "gate_up_proj", g0.dtype, {E, 2 * g0.shape[0], g0.shape[1]}});
    std::vector<const TensorRef*> gu;
    for (int e = 0; e < E; ++e) gu.insert(gu.end(), {&expert(e, "gate_proj"), &expert(e, "up_proj")});
    parts.push_back(gu);
    decls.push_back({p + "down_proj", d0.dtype, {E, d0.shape[0], d0.shape[1]}});
    std::vector<const TensorRef*> dn;
    for (int e = 0; e < E; ++e) dn.push_back(&expert(e, "down_proj"));
    parts.push_back(dn);
  }
  test::TempDir tmp;
  test::write_file(tmp.file("config.json"), cfg.dump());
  {
    SafetensorsWriter w(tmp.file("model.safetensors"), decls);
    for (const auto& list : parts)
      for (const TensorRef* t : list) w.write({t->data, t->nbytes});
    w.finish();
  }
  const std::vector<int32_t> tokens{5, 17, 3, 99, 42, 7, 150, 8};
  Session a(Engine::load(src_dir)), b(Engine::load(tmp.path()));
  const auto la = a.step(tokens, true);
  const std::vector<float> want(la.begin(), la.end());
  const auto lb = b.step(tokens, true);
  ASSERT_EQ(lb.size(), want.size());
  EXPECT_EQ(0, std::memcmp(lb.data(), want.data(), want.size() * sizeof(float)));
  // Streamed through a small expert budget too.
  EngineOptions o;
  o.expert_ram_text = "40%";
  Session c(Engine::load(tmp.path(), o));
  const auto lc = c.step(tokens, true);
  EXPECT_EQ(0, std::memcmp(lc.data(), want.data(), want.size() * sizeof(float)));
}

}  // namespace
