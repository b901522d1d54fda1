// GGUF spelling of each architecture: metadata round trip spec -> GGUF
// metadata -> spec, unique tensor locations, and names/keys equal to
// gguf-py's (tests/fixtures/gguf_arch/names.json, written by
// scripts/gen_gguf_arch_fixtures.py from gguf 0.19.0).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "model/arch.h"
#include "model/gguf_arch.h"
#include "model/tensor_list.h"
#include "moeflux/error.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

const char* const kArchs[] = {"qwen3_moe", "qwen2_moe", "mixtral", "olmoe"};

ModelSpec oracle_spec(const std::string& arch) { return load_model_spec(test::fixture("oracle/" + arch + "_f32")); }

const json& names_fixture() {
  static const json j = json::parse(test::read_file(test::fixture("gguf_arch/names.json")));
  return j;
}

// The GGUF tensors a spec becomes: experts of one matrix grouped into one
// stacked tensor, everything typed `type`.
std::vector<GgufTensor> gguf_tensors_of(const ModelSpec& s, GgmlType type) {
  std::vector<GgufTensor> out;
  std::set<std::string> seen;
  for (const ModelTensor& t : model_tensors(s, arch_def(s.arch))) {
    const GgufLocation loc = gguf_location(s, t);
    if (!seen.insert(loc.name).second) continue;
    GgufTensor g;
    g.name = loc.name;
    g.type = type;
    g.dims = gguf_dims(s, t);
    out.push_back(g);
  }
  return out;
}

ModelSpec round_trip(const ModelSpec& s, GgmlType type = GgmlType::F32) {
  GgufMetadata md("test.gguf");
  add_gguf_model_metadata(s, md);
  if (s.bos_token) md.add("tokenizer.ggml.bos_token_id", {uint32_t(*s.bos_token)});
  if (s.eos_token) md.add("tokenizer.ggml.eos_token_id", {uint32_t(*s.eos_token)});
  return model_spec_from_gguf(md, gguf_tensors_of(s, type));
}

void expect_same_spec(const ModelSpec& want, const ModelSpec& got) {
  EXPECT_EQ(want.arch, got.arch);
  EXPECT_EQ(want.dtype, got.dtype);
  EXPECT_EQ(want.vocab, got.vocab);
  EXPECT_EQ(want.hidden, got.hidden);
  EXPECT_EQ(want.layers, got.layers);
  EXPECT_EQ(want.heads, got.heads);
  EXPECT_EQ(want.kv_heads, got.kv_heads);
  EXPECT_EQ(want.head_dim, got.head_dim);
  EXPECT_EQ(want.max_positions, got.max_positions);
  EXPECT_EQ(want.rms_eps, got.rms_eps);
  EXPECT_EQ(want.rope_theta, got.rope_theta);
  EXPECT_EQ(want.rope_interleaved, got.rope_interleaved);
  EXPECT_EQ(want.sliding_window, got.sliding_window);
  EXPECT_EQ(want.clip_qkv, got.clip_qkv);
  EXPECT_EQ(want.qk_norm, got.qk_norm);
  EXPECT_EQ(want.qkv_bias, got.qkv_bias);
  EXPECT_EQ(want.o_bias, got.o_bias);
  EXPECT_EQ(want.tie_embeddings, got.tie_embeddings);
  EXPECT_EQ(want.experts, got.experts);
  EXPECT_EQ(want.top_k, got.top_k);
  EXPECT_EQ(want.expert_ffn, got.expert_ffn);
  EXPECT_EQ(want.dense_ffn, got.dense_ffn);
  EXPECT_EQ(want.shared_ffn, got.shared_ffn);
  EXPECT_EQ(want.shared_expert_gate, got.shared_expert_gate);
  EXPECT_EQ(want.norm_topk, got.norm_topk);
  EXPECT_EQ(want.layer_is_moe, got.layer_is_moe);
  EXPECT_EQ(want.bos_token, got.bos_token);
  EXPECT_EQ(want.eos_token, got.eos_token);
}

ModelSpec expected_back(ModelSpec s) {
  s.rope_interleaved = s.arch == "mixtral";  // llama.cpp's converter permutes q/k for "llama"
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufArch, ArchNamesAreLlamaCpps) {
  for (const char* a : kArchs) {
    const ModelSpec s = oracle_spec(a);
    EXPECT_EQ(gguf_arch_name(s), names_fixture()["archs"][a]["arch_name"].get<std::string>()) << a;
  }
  // The layouts with transforms: general.architecture of llama.cpp's own
  // conversions (tests/fixtures/gguf_llamacpp).
  for (auto [hf, file] : {std::pair{"qwen3_next", "qwen3_next"}, {"qwen3_5_moe", "qwen3_5_moe"},
                          {"qwen3_5_moe_text", "qwen3_5_moe"}, {"deepseek_v3", "deepseek_v3"}}) {
    ModelSpec s;
    s.arch = hf;
    GgufFile f(test::fixture(std::string("gguf_llamacpp/") + file + "/model.gguf"));
    EXPECT_EQ(gguf_arch_name(s), f.metadata().get_str("general.architecture")) << hf;
  }
}

TEST(GgufArch, MetadataRoundTripsForEveryArch) {
  for (const char* a : kArchs) {
    SCOPED_TRACE(a);
    const ModelSpec s = oracle_spec(a);
    expect_same_spec(expected_back(s), round_trip(s));
  }
}

TEST(GgufArch, RoundTripKeepsVariants) {
  // Values the oracle models do not exercise: tied embeddings, a window,
  // norm_topk against llama.cpp's per-arch default, a Q8_0 file.
  ModelSpec q = oracle_spec("qwen3_moe");
  q.tie_embeddings = true;
  q.sliding_window = 64;
  q.norm_topk = false;
  q.bos_token.reset();
  q.dtype = DType::Q8_0;
  expect_same_spec(expected_back(q), round_trip(q, GgmlType::Q8_0));

  ModelSpec o = oracle_spec("olmoe");
  ASSERT_TRUE(o.clip_qkv.has_value());
  o.clip_qkv.reset();
  o.norm_topk = true;
  expect_same_spec(expected_back(o), round_trip(o));

  ModelSpec q2 = oracle_spec("qwen2_moe");
  q2.layer_is_moe.assign(size_t(q2.layers), 1);  // every layer MoE, as in the real Qwen1.5-MoE
  expect_same_spec(expected_back(q2), round_trip(q2));
}

TEST(GgufArch, NormTopkDefaultsToWhatLlamaCppHardCodes) {
  const std::map<std::string, bool> want = {
      {"qwen3_moe", true}, {"qwen2_moe", false}, {"mixtral", true}, {"olmoe", false}};
  for (const auto& [a, norm] : want) {
    const ModelSpec s = oracle_spec(a);
    GgufMetadata md("x.gguf");
    add_gguf_model_metadata(s, md);
    GgufMetadata without("x.gguf");
    for (const auto& [k, v] : md.entries())
      if (k.find("expert_weights_norm") == std::string::npos) without.add(k, v);
    EXPECT_EQ(model_spec_from_gguf(without, gguf_tensors_of(s, GgmlType::F32)).norm_topk, norm) << a;
  }
}

TEST(GgufArch, EveryTensorHasAUniqueLocation) {
  for (const char* a : kArchs) {
    SCOPED_TRACE(a);
    const ModelSpec s = oracle_spec(a);
    std::set<std::pair<std::string, int>> seen;
    std::map<std::string, std::set<int>> experts_of;
    for (const ModelTensor& t : model_tensors(s, arch_def(s.arch))) {
      const GgufLocation loc = gguf_location(s, t);
      EXPECT_TRUE(seen.insert({loc.name, loc.expert}).second) << t.name << " -> " << loc.name;
      EXPECT_EQ(loc.expert >= 0, t.kind == ParamKind::ExpertLinear) << t.name;
      if (loc.expert >= 0) experts_of[loc.name].insert(loc.expert);
      EXPECT_LT(loc.name.size(), 64u) << loc.name;  // GGUF's tensor-name limit
    }
    for (const auto& [name, es] : experts_of) {
      EXPECT_EQ(es.size(), size_t(s.experts)) << name;
      EXPECT_EQ(*es.begin(), 0);
      EXPECT_EQ(*es.rbegin(), s.experts - 1);
    }
  }
}

TEST(GgufArch, TensorNamesAreGgufPys) {
  const std::regex layer(R"(^blk\.\d+\.)");
  for (const char* a : kArchs) {
    SCOPED_TRACE(a);
    const json& fx = names_fixture()["archs"][a];
    const auto arch_tensors = fx["tensors"].get<std::set<std::string>>();
    const auto not_in_arch = fx["not_in_arch"].get<std::set<std::string>>();
    const ModelSpec s = oracle_spec(a);
    size_t n = 0;
    for (const ModelTensor& t : model_tensors(s, arch_def(s.arch))) {
      ASSERT_TRUE(fx["hf_to_gguf"].contains(t.name)) << t.name;
      const std::string name = gguf_location(s, t).name;
      EXPECT_EQ(name, fx["hf_to_gguf"][t.name].get<std::string>()) << t.name;
      // blk.3.attn_q.weight -> blk.{bid}.attn_q
      std::string base = std::regex_replace(name, layer, "blk.{bid}.");
      base = base.substr(0, base.rfind('.'));
      if (!not_in_arch.count(t.name)) { EXPECT_TRUE(arch_tensors.count(base)) << base; }
      ++n;
    }
    EXPECT_EQ(n, fx["hf_to_gguf"].size());  // every tensor of the oracle model was checked
  }
}

TEST(GgufArch, StackedExpertDimsAreColsRowsExperts) {
  const ModelSpec s = oracle_spec("qwen3_moe");
  for (const ModelTensor& t : model_tensors(s, arch_def(s.arch))) {
    if (t.name == "model.layers.0.mlp.experts.3.down_proj.weight") {
      EXPECT_EQ(gguf_dims(s, t), (std::vector<uint64_t>{uint64_t(s.expert_ffn), uint64_t(s.hidden), 7}));
    }
    if (t.name == "model.layers.0.self_attn.q_proj.weight") {
      EXPECT_EQ(gguf_dims(s, t), (std::vector<uint64_t>{uint64_t(s.hidden), uint64_t(s.q_dim())}));
    }
  }
}

TEST(GgufArch, MetadataKeysAreGgufPys) {
  for (const char* a : kArchs) {
    SCOPED_TRACE(a);
    const json& fx = names_fixture()["archs"][a];
    std::set<std::string> known;
    for (const auto& [_, k] : fx["keys"].items()) known.insert(k.get<std::string>());
    ModelSpec s = oracle_spec(a);
    s.sliding_window = 32;
    GgufMetadata md("x.gguf");
    add_gguf_model_metadata(s, md);
    ASSERT_EQ(md.entries().front().first, names_fixture()["general_keys"]["ARCHITECTURE"].get<std::string>());
    for (size_t i = 1; i < md.size(); ++i) EXPECT_TRUE(known.count(md.entries()[i].first)) << md.entries()[i].first;
    // The keys each llama.cpp loader requires, with the values it reads.
    auto key = [&](const char* k) { return fx["keys"][k].get<std::string>(); };
    EXPECT_EQ(md.get_u32(key("LLM.BLOCK_COUNT")), uint32_t(s.layers));
    EXPECT_EQ(md.get_u32(key("LLM.EMBEDDING_LENGTH")), uint32_t(s.hidden));
    EXPECT_EQ(md.get_u32(key("LLM.CONTEXT_LENGTH")), uint32_t(s.max_positions));
    EXPECT_EQ(md.get_u32(key("Attention.HEAD_COUNT")), uint32_t(s.heads));
    EXPECT_EQ(md.get_u32(key("Attention.HEAD_COUNT_KV")), uint32_t(s.kv_heads));
    EXPECT_EQ(md.get_u32(key("Attention.KEY_LENGTH")), uint32_t(s.head_dim));
    EXPECT_EQ(md.get_f32(key("Attention.LAYERNORM_RMS_EPS")), s.rms_eps);
    EXPECT_EQ(md.get_f32(key("Rope.FREQ_BASE")), s.rope_theta);
    EXPECT_EQ(md.get_u32(key("LLM.EXPERT_COUNT")), uint32_t(s.experts));
    EXPECT_EQ(md.get_u32(key("LLM.EXPERT_USED_COUNT")), uint32_t(s.top_k));
    EXPECT_EQ(md.get_u32(key("Attention.SLIDING_WINDOW")), 32u);
    const bool qwen = s.arch == "qwen3_moe" || s.arch == "qwen2_moe";
    // llama.cpp's n_ff for llama/olmoe experts; the Qwen loaders read n_ff_exp.
    EXPECT_EQ(md.get_u32(key(qwen ? "LLM.EXPERT_FEED_FORWARD_LENGTH" : "LLM.FEED_FORWARD_LENGTH")),
              uint32_t(s.expert_ffn));
    if (s.arch == "qwen2_moe") {
      EXPECT_EQ(md.get_u32(key("LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH")), uint32_t(s.shared_ffn));
    }
    if (s.arch == "mixtral") {
      EXPECT_EQ(md.get_u32(key("LLM.VOCAB_SIZE")), uint32_t(s.vocab));
      EXPECT_EQ(md.get_u32(key("Rope.DIMENSION_COUNT")), uint32_t(s.head_dim));
    }
    if (s.arch == "olmoe") { EXPECT_EQ(md.get_f32(key("Attention.CLAMP_KQV")), *s.clip_qkv); }
  }
}

TEST(GgufArch, BadMetadataIsNamed) {
  const ModelSpec s = oracle_spec("qwen3_moe");
  const auto tensors = gguf_tensors_of(s, GgmlType::F32);
  auto md_without = [&](const std::string& drop) {
    GgufMetadata full("bad.gguf"), out("bad.gguf");
    add_gguf_model_metadata(s, full);
    for (const auto& [k, v] : full.entries())
      if (k != drop) out.add(k, v);
    return out;
  };
  std::string e = error_of([&] { model_spec_from_gguf(md_without("qwen3moe.embedding_length"), tensors); });
  EXPECT_NE(e.find("qwen3moe.embedding_length"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;

  GgufMetadata other("bad.gguf");
  other.add("general.architecture", {std::string("gemma3")});
  e = error_of([&] { model_spec_from_gguf(other, tensors); });
  EXPECT_NE(e.find("gemma3"), std::string::npos) << e;

  GgufMetadata vlen = md_without("qwen3moe.attention.value_length");
  vlen.add("qwen3moe.attention.value_length", {uint32_t(s.head_dim * 2)});
  e = error_of([&] { model_spec_from_gguf(vlen, tensors); });
  EXPECT_NE(e.find("value_length"), std::string::npos) << e;

  GgufMetadata scaled = md_without("");
  scaled.add("qwen3moe.rope.scaling.type", {std::string("yarn")});
  e = error_of([&] { model_spec_from_gguf(scaled, tensors); });
  EXPECT_NE(e.find("yarn"), std::string::npos) << e;

  std::vector<GgufTensor> no_embd;
  for (const auto& t : tensors)
    if (t.name != "token_embd.weight") no_embd.push_back(t);
  e = error_of([&] { model_spec_from_gguf(md_without(""), no_embd); });
  EXPECT_NE(e.find("token_embd.weight"), std::string::npos) << e;

  // A stacked expert tensor whose shape disagrees with the metadata.
  std::vector<GgufTensor> wrong = tensors;
  for (auto& t : wrong)
    if (t.name == "blk.0.ffn_gate_exps.weight") t.dims[1] += 8;
  e = error_of([&] { model_spec_from_gguf(md_without(""), wrong); });
  EXPECT_NE(e.find("blk.0.ffn_gate_exps.weight"), std::string::npos) << e;
}

TEST(GgufArch, UnknownTensorHasNoLocation) {
  const ModelSpec s = oracle_spec("qwen3_moe");
  ModelTensor t{"model.layers.0.mlp.experts.99.gate_proj.weight", {40, 72}, ParamKind::ExpertLinear, 0};
  EXPECT_NE(error_of([&] { gguf_location(s, t); }).find("experts.99"), std::string::npos);
  ModelTensor u{"model.layers.0.self_attn.rotary.inv_freq", {12}, ParamKind::Norm, 0};
  EXPECT_NE(error_of([&] { gguf_location(s, u); }).find("rotary"), std::string::npos);
}

}  // namespace
