// Per-tensor types of each --type, against llama.cpp's rules written out by
// hand from llama-quant.cpp (llama_tensor_get_type_impl, tensor_type_fallback;
// the vendored llama.cpp of llama-cpp-python, commit 0c1e570, 2026-10-01):
//   use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
//   *_K_M: attn_v (i = how many attn_v came before) and ffn_down (i = layer)
//          get Q6_K when use_more_bits; output.weight Q6_K (Q8_0 if its rows
//          are not whole blocks of the default type); tied token_embd as output
//   8 experts: attn_v and attn_k Q8_0; attn_output Q5_K in Q4_K_M
//   MXFP4: stacked experts MXFP4, every other quantized tensor Q8_0
//   not quantized (F32): 1-D tensors, *_norm.weight, ffn_gate_inp.weight
//   rows not whole blocks: Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, and F16 when
//   even the fallback's 32-blocks do not fit.
// tests/fixtures/convert/llamacpp_types_*.json hold what llama.cpp itself
// (llama_model_quantize of llama-cpp-python 0.3.36) chose for our F32 GGUFs
// of the models of scripts/compare_quant_llamacpp.py: six types, five
// models (qwen3moe, mixtral with 8 experts, qwen2moe with a shared expert,
// olmoe, and a tied qwen3moe whose 384/192-wide rows force fallbacks).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "convert/gguf_model_writer.h"
#include "convert_test_util.h"

using namespace moeflux;
using namespace moeflux::test;

namespace {

std::map<std::string, GgmlType> types_of(const ModelSpec& s, ConvertType t) {
  std::map<std::string, GgmlType> m;
  for (const auto& p : plan_gguf_tensors(s, t)) m[p.name] = p.type;
  return m;
}

std::string tname(GgmlType t) { return std::string(ggml_type_info(uint32_t(t))->name); }

bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

TEST(TypeMix, ParseNamesAndFileTypes) {
  EXPECT_EQ(parse_convert_type("Q4_K_M"), ConvertType::Q4_K_M);
  EXPECT_EQ(parse_convert_type("mxfp4"), ConvertType::MXFP4);
  EXPECT_FALSE(parse_convert_type("q3_k_s").has_value());
  EXPECT_EQ(convert_type_list(), "f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, mxfp4");
  // llama.h LLAMA_FTYPE_*
  EXPECT_EQ(llama_file_type(ConvertType::F32), 0u);
  EXPECT_EQ(llama_file_type(ConvertType::F16), 1u);
  EXPECT_EQ(llama_file_type(ConvertType::Q4_0), 2u);
  EXPECT_EQ(llama_file_type(ConvertType::Q8_0), 7u);
  EXPECT_EQ(llama_file_type(ConvertType::Q4_K_M), 15u);
  EXPECT_EQ(llama_file_type(ConvertType::Q5_K_M), 17u);
  EXPECT_EQ(llama_file_type(ConvertType::Q6_K), 18u);
  EXPECT_EQ(llama_file_type(ConvertType::BF16), 32u);
  EXPECT_EQ(llama_file_type(ConvertType::MXFP4), 38u);
}

TEST(TypeMix, KMSixteenLayersFollowUseMoreBits) {
  const int n = 16;
  const ModelSpec s = spec_of(qwen3_256_config(n));
  for (auto [ft, base] : {std::pair{ConvertType::Q4_K_M, GgmlType::Q4_K}, std::pair{ConvertType::Q5_K_M, GgmlType::Q5_K}}) {
    const auto m = types_of(s, ft);
    int bumped = 0;
    for (int l = 0; l < n; ++l) {
      const GgmlType want = more_bits(l, n) ? GgmlType::Q6_K : base;
      bumped += more_bits(l, n);
      EXPECT_EQ(tname(m.at(fmt::format("blk.{}.attn_v.weight", l))), tname(want)) << l;
      EXPECT_EQ(tname(m.at(fmt::format("blk.{}.ffn_down_exps.weight", l))), tname(want)) << l;
      EXPECT_EQ(m.at(fmt::format("blk.{}.attn_q.weight", l)), base);
      EXPECT_EQ(m.at(fmt::format("blk.{}.attn_k.weight", l)), base);
      EXPECT_EQ(m.at(fmt::format("blk.{}.attn_output.weight", l)), base);
      EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_gate_exps.weight", l)), base);
      EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_up_exps.weight", l)), base);
      EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_gate_inp.weight", l)), GgmlType::F32);
      EXPECT_EQ(m.at(fmt::format("blk.{}.attn_norm.weight", l)), GgmlType::F32);
      EXPECT_EQ(m.at(fmt::format("blk.{}.attn_q_norm.weight", l)), GgmlType::F32);
    }
    EXPECT_EQ(bumped, 8);  // layers 0 1 4 7 10 13 14 15
    EXPECT_EQ(m.at("output.weight"), GgmlType::Q6_K);
    EXPECT_EQ(m.at("token_embd.weight"), base);
    EXPECT_EQ(m.at("output_norm.weight"), GgmlType::F32);
  }
}

TEST(TypeMix, UniformTypes) {
  const ModelSpec s = spec_of(qwen3_256_config(4));
  for (auto [name, t] : types_of(s, ConvertType::Q6_K))
    EXPECT_EQ(t, name.find("norm") != std::string::npos || name.find("gate_inp") != std::string::npos ? GgmlType::F32
                                                                                                      : GgmlType::Q6_K)
        << name;
  for (auto [name, t] : types_of(s, ConvertType::Q8_0))
    EXPECT_EQ(t, name.find("norm") != std::string::npos || name.find("gate_inp") != std::string::npos ? GgmlType::F32
                                                                                                      : GgmlType::Q8_0)
        << name;
  const auto q4 = types_of(s, ConvertType::Q4_0);
  EXPECT_EQ(q4.at("output.weight"), GgmlType::Q6_K);  // llama-quant gives every non-Q8_0 output Q6_K
  EXPECT_EQ(q4.at("token_embd.weight"), GgmlType::Q4_0);
  EXPECT_EQ(q4.at("blk.3.attn_v.weight"), GgmlType::Q4_0);
  const auto bf = types_of(s, ConvertType::BF16);
  EXPECT_EQ(bf.at("output.weight"), GgmlType::BF16);
  EXPECT_EQ(bf.at("blk.0.ffn_gate_inp.weight"), GgmlType::F32);
  EXPECT_EQ(bf.at("blk.0.attn_k_norm.weight"), GgmlType::F32);
}

TEST(TypeMix, Mxfp4PutsExpertsInMxfp4AndTheRestInQ8_0) {
  const ModelSpec s = spec_of(qwen3_256_config(2));
  const auto m = types_of(s, ConvertType::MXFP4);
  EXPECT_EQ(m.at("blk.1.ffn_down_exps.weight"), GgmlType::MXFP4);
  EXPECT_EQ(m.at("blk.1.ffn_gate_exps.weight"), GgmlType::MXFP4);
  EXPECT_EQ(m.at("blk.1.attn_v.weight"), GgmlType::Q8_0);
  EXPECT_EQ(m.at("output.weight"), GgmlType::Q8_0);
  EXPECT_EQ(m.at("token_embd.weight"), GgmlType::Q8_0);
  EXPECT_EQ(m.at("blk.1.ffn_gate_inp.weight"), GgmlType::F32);
}

TEST(TypeMix, EightExpertsBumpAttention) {
  const ModelSpec s = spec_of(mixtral_256_config(8));
  const auto m = types_of(s, ConvertType::Q4_K_M);
  for (int l = 0; l < 8; ++l) {
    EXPECT_EQ(m.at(fmt::format("blk.{}.attn_v.weight", l)), GgmlType::Q8_0);
    EXPECT_EQ(m.at(fmt::format("blk.{}.attn_k.weight", l)), GgmlType::Q8_0);
    EXPECT_EQ(m.at(fmt::format("blk.{}.attn_output.weight", l)), GgmlType::Q5_K);
    EXPECT_EQ(m.at(fmt::format("blk.{}.attn_q.weight", l)), GgmlType::Q4_K);
  }
  const auto q5 = types_of(s, ConvertType::Q5_K_M);
  EXPECT_EQ(q5.at("blk.0.attn_output.weight"), GgmlType::Q5_K);  // the Q5_K bump is Q4_K_M's only
  EXPECT_EQ(q5.at("blk.0.attn_v.weight"), GgmlType::Q8_0);
  const auto q40 = types_of(s, ConvertType::Q4_0);
  EXPECT_EQ(q40.at("blk.0.attn_k.weight"), GgmlType::Q8_0);  // applies to every quantized type
}

TEST(TypeMix, SharedExpertDownCountsAsFfnDown) {
  auto cfg = qwen3_256_config(8);
  cfg["model_type"] = "qwen2_moe";
  cfg["shared_expert_intermediate_size"] = 256;
  cfg.erase("head_dim");  // qwen2_moe: hidden / heads = 64
  const ModelSpec s = spec_of(cfg);
  const auto m = types_of(s, ConvertType::Q4_K_M);
  for (int l = 0; l < 8; ++l) {
    const GgmlType want = more_bits(l, 8) ? GgmlType::Q6_K : GgmlType::Q4_K;
    EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_down_shexp.weight", l)), want) << l;
    EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_down_exps.weight", l)), want) << l;
    EXPECT_EQ(m.at(fmt::format("blk.{}.ffn_gate_inp_shexp.weight", l)), GgmlType::F32);  // [D, 1]: 1-D for ggml
    EXPECT_EQ(m.at(fmt::format("blk.{}.attn_q.bias", l)), GgmlType::F32);
  }
}

TEST(TypeMix, RowsThatAreNotWholeBlocksFallBack) {
  // 96-wide rows: whole 32-blocks, not 256-blocks.
  auto cfg = qwen3_256_config(2, 96);
  cfg["hidden_size"] = 96;
  cfg["head_dim"] = 32;
  cfg["num_attention_heads"] = 3;
  cfg["num_key_value_heads"] = 1;
  const ModelSpec s = spec_of(cfg);
  EXPECT_EQ(types_of(s, ConvertType::Q4_K_M).at("blk.0.attn_q.weight"), GgmlType::Q5_0);
  EXPECT_EQ(types_of(s, ConvertType::Q5_K_M).at("blk.0.attn_q.weight"), GgmlType::Q5_1);
  EXPECT_EQ(types_of(s, ConvertType::Q6_K).at("blk.0.attn_q.weight"), GgmlType::Q8_0);
  EXPECT_EQ(types_of(s, ConvertType::Q4_K_M).at("output.weight"), GgmlType::Q8_0);  // output: Q8_0 when not 256-blocks
  int fallbacks = 0;
  plan_gguf_tensors(s, ConvertType::Q4_K_M, &fallbacks);
  EXPECT_GT(fallbacks, 0);
  // The oracle models' 72-wide rows fit no block: F16 in every quantized type.
  const ModelSpec o = load_model_spec(fixture("oracle/qwen3_moe_f32"));
  for (ConvertType t : {ConvertType::Q8_0, ConvertType::Q4_0, ConvertType::Q4_K_M, ConvertType::MXFP4})
    EXPECT_EQ(types_of(o, t).at("blk.0.attn_q.weight"), GgmlType::F16);
}

// What llama.cpp's llama_model_quantize chose for our F32 GGUF of the same
// config (written by scripts/compare_quant_llamacpp.py).
TEST(TypeMix, EqualsLlamaCppsChoice) {
  const std::string dir = fixture("convert");
  size_t checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string fn = e.path().filename().string();
    if (fn.rfind("llamacpp_types_", 0) != 0) continue;
    const auto j = nlohmann::json::parse(read_file(e.path().string()));
    const ModelSpec s = spec_of(j["config"]);
    const auto type = parse_convert_type(j["type"].get<std::string>());
    ASSERT_TRUE(type.has_value()) << fn;
    const auto ours = types_of(s, *type);
    ASSERT_EQ(ours.size(), j["tensors"].size()) << fn;
    for (const auto& [name, t] : j["tensors"].items()) {
      ASSERT_TRUE(ours.count(name)) << fn << " " << name;
      EXPECT_EQ(tname(ours.at(name)), t.get<std::string>()) << fn << " " << name;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0u) << "no llamacpp_types_*.json fixtures in " << dir;
}

}  // namespace
