// GGUF files written by llama.cpp's own converter (convert_hf_to_gguf.py;
// scripts/gen_gguf_llamacpp_fixtures.py) for the architectures whose GGUF
// layout transforms tensors: qwen3next, qwen35moe, deepseek2. moeflux must
// read them to transformers' logits, and its own `convert` must write the
// same tensors (names, shapes, values) and metadata as llama.cpp did.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "convert/convert_hf.h"
#include "core/error.h"
#include "format/gguf/gguf_file.h"
#include "format/safetensors.h"
#include "model/gguf_arch.h"
#include "model/gguf_model.h"
#include "moeflux/engine.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

std::string convert(const std::string& hf_dir, const std::string& out, ConvertType type) {
  ConvertOptions o;
  o.hf_dir = hf_dir;
  o.out_path = out;
  o.type = type;
  o.progress = false;
  convert_hf_to_gguf(o);
  return out;
}

void expect_logits(const std::string& model, const std::string& reference, bool decode = false) {
  SafetensorsFile ref(reference);
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.17"));
  const auto want = test::tensor_values<float>(ref.tensors().at("logits.17"));
  EngineOptions o;
  o.threads = 2;
  auto e = Engine::load(model, o);
  const int vocab = e->spec().vocab;
  std::vector<float> got;
  if (decode) {
    got = test::decode_one_by_one(e, tokens);
  } else {
    Session s(e);
    auto l = s.step(tokens, /*all_logits=*/true);
    got.assign(l.begin(), l.end());
  }
  auto c = test::compare_logits(got, want, int(tokens.size()), vocab);
  EXPECT_LE(c.max_abs, 1e-4 * c.scale) << model << " scale " << c.scale;
  EXPECT_EQ(c.top1_mismatches, 0) << model;
}

class LlamaCppGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppGguf, ReadsToTransformersLogits) {
  const std::string dir = test::fixture("gguf_llamacpp/" + GetParam());
  expect_logits(dir + "/model.gguf", dir + "/reference.safetensors");
}

TEST_P(LlamaCppGguf, TokenByTokenDecodeMatches) {
  const std::string dir = test::fixture("gguf_llamacpp/" + GetParam());
  expect_logits(dir + "/model.gguf", dir + "/reference.safetensors", /*decode=*/true);
}

INSTANTIATE_TEST_SUITE_P(Archs, LlamaCppGguf, ::testing::Values("qwen3_next", "qwen3_5_moe", "deepseek_v3"),
                         [](const auto& info) { return info.param; });

// moeflux convert of a Hugging Face oracle model, read back: transformers' logits.
class ConvertRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(ConvertRoundTrip, ReadsItsOwnOutputToTransformersLogits) {
  const std::string dir = test::fixture("oracle/" + GetParam());
  test::TempDir tmp;
  const ConvertType type = GetParam().ends_with("_bf16") ? ConvertType::BF16 : ConvertType::F32;
  const std::string gguf = convert(dir, tmp.file("model.gguf"), type);
  expect_logits(gguf, dir + "/reference.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Archs, ConvertRoundTrip,
                         ::testing::Values("qwen3_next_f32", "qwen3_next_bf16", "qwen3_5_moe_f32", "qwen3_5_moe_bf16",
                                           "deepseek_v3_f32", "deepseek_v3_bf16", "deepseek_v3_qproj_f32"),
                         [](const auto& info) { return info.param; });

// The same Hugging Face model converted by llama.cpp and by moeflux: the
// same tensors (names, GGUF shapes, f32 values) and the same model metadata.
// The oracle's Qwen3.5 model is what llama.cpp converted as it is.
TEST(LlamaCppGguf, MoefluxConvertWritesWhatLlamaCppWrites) {
  test::TempDir tmp;
  const std::string ours = convert(test::fixture("oracle/qwen3_5_moe_f32"), tmp.file("ours.gguf"), ConvertType::F32);
  GgufFile a(ours), b(test::fixture("gguf_llamacpp/qwen3_5_moe/model.gguf"));
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const GgufTensor& t : b.tensors()) {
    const GgufTensor* m = a.find_tensor(t.name);
    ASSERT_NE(m, nullptr) << "moeflux did not write " << t.name;
    // llama.cpp keeps ffn_gate_inp_shexp as [hidden, 1]; moeflux as [hidden] (the same ggml tensor).
    auto trimmed = [](std::vector<uint64_t> d) {
      while (d.size() > 1 && d.back() == 1) d.pop_back();
      return d;
    };
    EXPECT_EQ(trimmed(m->dims), trimmed(t.dims)) << t.name;
    ASSERT_EQ(m->type, t.type) << t.name;
    ASSERT_EQ(m->nbytes, t.nbytes) << t.name;
    const float* x = reinterpret_cast<const float*>(m->data);
    const float* y = reinterpret_cast<const float*>(t.data);
    float worst = 0;
    for (size_t i = 0; i < t.nbytes / 4; ++i)
      worst = std::max(worst, std::fabs(x[i] - y[i]) / std::max(1.0f, std::fabs(y[i])));
    // Bit-identical but for -exp(A_log), which torch and libm may round differently.
    EXPECT_LE(worst, t.name.ends_with("ssm_a") ? 1e-6f : 0.0f) << t.name;
  }
  // Every model key llama.cpp wrote, with the same value.
  for (const auto& [k, v] : b.metadata().entries()) {
    if (k.starts_with("tokenizer.") || k == "general.name" || k == "general.size_label") continue;
    const GgufValue* mine = a.metadata().find(k);
    ASSERT_NE(mine, nullptr) << "moeflux did not write " << k;
    EXPECT_TRUE(gguf_identical(*mine, v)) << k << ": " << gguf_value_summary(*mine) << " vs " << gguf_value_summary(v);
  }
}

// DeepSeek: llama.cpp's file is of the oracle weights (its config gained
// the routing keys and mscale); tensors must match moeflux's conversion of
// the oracle, k_b transposed and v_b split exactly as llama.cpp does.
TEST(LlamaCppGguf, DeepseekTensorsMatchLlamaCpp) {
  test::TempDir tmp;
  const std::string ours = convert(test::fixture("oracle/deepseek_v3_f32"), tmp.file("ours.gguf"), ConvertType::F32);
  GgufFile a(ours), b(test::fixture("gguf_llamacpp/deepseek_v3/model.gguf"));
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const GgufTensor& t : b.tensors()) {
    const GgufTensor* m = a.find_tensor(t.name);
    ASSERT_NE(m, nullptr) << "moeflux did not write " << t.name;
    EXPECT_EQ(m->dims, t.dims) << t.name;
    ASSERT_EQ(m->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(m->data, t.data, t.nbytes), 0) << t.name;
  }
  for (const auto& [k, v] : b.metadata().entries()) {
    if (k.starts_with("tokenizer.") || k == "general.name" || k == "general.size_label") continue;
    const GgufValue* mine = a.metadata().find(k);
    ASSERT_NE(mine, nullptr) << "moeflux did not write " << k;
    EXPECT_TRUE(gguf_identical(*mine, v)) << k << ": " << gguf_value_summary(*mine) << " vs " << gguf_value_summary(v);
  }
}

TEST(LlamaCppGguf, SoftmaxRoutedDeepseekIsRefusedByName) {
  // A deepseek2 file without expert_gating_func is DeepSeek-V2's softmax routing.
  test::TempDir tmp;
  const std::string src = test::fixture("gguf_llamacpp/deepseek_v3/model.gguf");
  GgufFile f(src);
  GgufMetadata md;
  for (const auto& [k, v] : f.metadata().entries())
    if (k != "deepseek2.expert_gating_func") md.add(k, v);
  try {
    GgufMetadata with_source(src);
    for (const auto& [k, v] : md.entries()) with_source.add(k, v);
    model_spec_from_gguf(with_source, f.tensors());
    FAIL() << "accepted softmax routing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert_gating_func"), std::string::npos) << e.what();
  }
}

}  // namespace
