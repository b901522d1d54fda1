// convert: HF directories (the committed oracle models and 256-wide models
// written here) to GGUF in every --type, read back with GgufFile: names,
// types, shapes and metadata as planned, the spec read back equal to the
// config's, every tensor's bytes equal to quantize_row of the source rows
// (expert slices at e * nbytes / n_expert, q/k permuted for "llama"), and the
// dequantized values within each format's error bound of the source.
#include <gtest/gtest.h>

#include <cmath>

#include "convert/convert_hf.h"
#include "convert_test_util.h"
#include "format/gguf/gguf_file.h"
#include "model/gguf_arch.h"
#include "quant/dequant.h"
#include "quant/quantize.h"

using namespace moeflux;
using namespace moeflux::test;

namespace {

const ConvertType kAllTypes[] = {ConvertType::F32,    ConvertType::F16,    ConvertType::BF16,
                                 ConvertType::Q8_0,   ConvertType::Q4_0,   ConvertType::Q4_K_M,
                                 ConvertType::Q5_K_M, ConvertType::Q6_K,   ConvertType::MXFP4};

// Relative RMS error (|x - q(x)| / |x| over a tensor) each format stays
// under on these normal-distributed weights, with margin over what the
// formats give (Q8_0 ~0.004, Q6_K ~0.01, Q5 ~0.03, Q4 ~0.06-0.1, MXFP4 ~0.12).
double error_bound(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1e-3;
    case GgmlType::BF16: return 4e-3;
    case GgmlType::Q8_0: return 0.01;
    case GgmlType::Q6_K: return 0.025;
    case GgmlType::Q5_K: case GgmlType::Q5_0: case GgmlType::Q5_1: return 0.05;
    case GgmlType::Q4_K: case GgmlType::Q4_0: return 0.12;
    case GgmlType::MXFP4: return 0.2;
    default: return 0;
  }
}

ConvertOptions options(const std::string& dir, const std::string& out, ConvertType type) {
  ConvertOptions o;
  o.hf_dir = dir;
  o.out_path = out;
  o.type = type;
  o.name = "test-model";
  o.progress = false;
  o.threads = 2;
  return o;
}

// Everything a converted file must satisfy, checked against the source.
void check_converted(const std::string& hf_dir, const std::string& gguf_path, ConvertType type) {
  SCOPED_TRACE(gguf_path + " " + std::string(convert_type_name(type)));
  const ModelSpec spec = load_model_spec(hf_dir);
  const SafetensorsModel model(hf_dir);
  const GgufFile f(gguf_path);
  const auto plan = plan_gguf_tensors(spec, type);

  // Metadata.
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.get_str("general.architecture"), gguf_arch_name(spec));
  EXPECT_EQ(md.entries().front().first, "general.architecture");
  EXPECT_EQ(md.get_str("general.name"), "test-model");
  EXPECT_EQ(md.get_u32("general.file_type"), llama_file_type(type));
  EXPECT_EQ(md.get_u32("general.quantization_version"), 2u);

  // Tensors as planned, in plan order.
  ASSERT_EQ(f.tensors().size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(f.tensors()[i].name, plan[i].name);
    EXPECT_EQ(f.tensors()[i].dims, plan[i].dims) << plan[i].name;
    EXPECT_EQ(f.tensors()[i].type, plan[i].type) << plan[i].name;
  }

  // The spec read back is the config's.
  ModelSpec want = spec;
  want.rope_interleaved = spec.arch == "mixtral";
  const ModelSpec got = model_spec_from_gguf(md, f.tensors());
  EXPECT_EQ(got.arch, want.arch);
  EXPECT_EQ(got.vocab, want.vocab);
  EXPECT_EQ(got.hidden, want.hidden);
  EXPECT_EQ(got.head_dim, want.head_dim);
  EXPECT_EQ(got.kv_heads, want.kv_heads);
  EXPECT_EQ(got.layer_is_moe, want.layer_is_moe);
  EXPECT_EQ(got.expert_ffn, want.expert_ffn);
  EXPECT_EQ(got.dense_ffn, want.dense_ffn);
  EXPECT_EQ(got.shared_ffn, want.shared_ffn);
  EXPECT_EQ(got.shared_expert_gate, want.shared_expert_gate);
  EXPECT_EQ(got.qk_norm, want.qk_norm);
  EXPECT_EQ(got.qkv_bias, want.qkv_bias);
  EXPECT_EQ(got.norm_topk, want.norm_topk);
  EXPECT_EQ(got.clip_qkv, want.clip_qkv);
  EXPECT_EQ(got.rms_eps, want.rms_eps);
  EXPECT_EQ(got.rope_theta, want.rope_theta);
  EXPECT_EQ(got.rope_interleaved, want.rope_interleaved);
  EXPECT_EQ(got.tie_embeddings, want.tie_embeddings);
  EXPECT_EQ(got.bos_token, want.bos_token);
  EXPECT_EQ(got.eos_token, want.eos_token);

  // Bytes and values.
  for (size_t i = 0; i < plan.size(); ++i) {
    const PlannedTensor& p = plan[i];
    const GgufTensor& g = f.tensors()[i];
    const size_t cols = size_t(p.dims[0]);
    const size_t row_bytes = *ggml_row_bytes(p.type, cols);
    const size_t part_bytes = g.nbytes / p.parts.size();
    double err2 = 0, ref2 = 0;
    for (size_t k = 0; k < p.parts.size(); ++k) {
      const std::vector<float> x = expected_rows(model, spec, p.parts[k]);
      const size_t rows = x.size() / cols;
      ASSERT_EQ(rows * row_bytes, part_bytes) << p.name;
      std::vector<uint8_t> q(part_bytes);
      for (size_t r = 0; r < rows; ++r) quant::quantize_row(p.type, &x[r * cols], &q[r * row_bytes], cols);
      ASSERT_EQ(std::memcmp(q.data(), g.data + k * part_bytes, part_bytes), 0) << p.name << " part " << k;
      std::vector<float> y(cols);
      for (size_t r = 0; r < rows; ++r) {
        quant::dequantize_row(p.type, g.data + k * part_bytes + r * row_bytes, y.data(), cols);
        for (size_t c = 0; c < cols; ++c) {
          const double d = double(y[c]) - x[r * cols + c];
          err2 += d * d;
          ref2 += double(x[r * cols + c]) * x[r * cols + c];
        }
      }
    }
    const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
    EXPECT_LE(rel, error_bound(p.type)) << p.name << " as " << ggml_type_info(uint32_t(p.type))->name;
  }
}

TEST(Convert, OracleModelsInEveryType) {
  for (const char* arch : {"qwen3_moe", "qwen2_moe", "mixtral", "olmoe"}) {
    for (const char* suffix : {"_f32", "_bf16"}) {
      const std::string dir = fixture(std::string("oracle/") + arch + suffix);
      for (ConvertType t : kAllTypes) {
        TempDir tmp;
        const std::string out = tmp.file("m.gguf");
        const GgufWriteResult r = convert_hf_to_gguf(options(dir, out, t));
        EXPECT_EQ(r.tensors, plan_gguf_tensors(load_model_spec(dir), t).size());
        check_converted(dir, out, t);
      }
    }
  }
}

TEST(Convert, BlockAlignedModelsInEveryType) {
  for (const auto& cfg : {qwen3_256_config(), mixtral_256_config()}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      TempDir tmp;
      HfWriteOptions w;
      w.dtype = dt;
      write_hf_model(tmp.path(), cfg, w);
      for (ConvertType t : kAllTypes) {
        const std::string out = tmp.file(std::string(convert_type_name(t)) + ".gguf");
        convert_hf_to_gguf(options(tmp.path(), out, t));
        check_converted(tmp.path(), out, t);
      }
    }
  }
}

TEST(Convert, Q8_0AndQ4_0BytesEqualGgufPys) {
  // tests/fixtures/convert/expert_rows.*: scripts/gen_convert_fixtures.py.
  const std::string raw = read_file(fixture("convert/expert_rows.f32"));
  ASSERT_EQ(raw.size(), 32u * 256u * 4u);
  std::vector<float> rows(32 * 256);
  std::memcpy(rows.data(), raw.data(), raw.size());
  TempDir tmp;
  HfWriteOptions w;
  w.values["model.layers.0.mlp.experts.1.gate_proj.weight"] = rows;  // [moe_ffn 32, hidden 256]
  write_hf_model(tmp.path(), qwen3_256_config(2, 32), w);
  for (auto [type, ext] : {std::pair{ConvertType::Q8_0, "q8_0"}, std::pair{ConvertType::Q4_0, "q4_0"}}) {
    const std::string out = tmp.file(std::string(ext) + ".gguf");
    convert_hf_to_gguf(options(tmp.path(), out, type));
    const GgufFile f(out);
    const GgufTensor& g = f.tensor("blk.0.ffn_gate_exps.weight");
    const std::string want = read_file(fixture(std::string("convert/expert_rows.") + ext));
    ASSERT_EQ(g.nbytes, 4 * want.size()) << ext;  // 4 experts
    EXPECT_EQ(std::memcmp(g.data + 1 * want.size(), want.data(), want.size()), 0) << ext;
  }
}

TEST(Convert, TiedEmbeddingsWriteNoOutputTensor) {
  TempDir tmp;
  auto cfg = qwen3_256_config();
  cfg["tie_word_embeddings"] = true;
  write_hf_model(tmp.path(), cfg);
  const std::string out = tmp.file("t.gguf");
  convert_hf_to_gguf(options(tmp.path(), out, ConvertType::Q4_K_M));
  const GgufFile f(out);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  // llama-quant: with tied embeddings token_embd is typed as the output would be.
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::Q6_K);
  EXPECT_TRUE(model_spec_from_gguf(f.metadata(), f.tensors()).tie_embeddings);
  check_converted(tmp.path(), out, ConvertType::Q4_K_M);
}

TEST(Convert, ExtraMetadataIsAppendedAndConflictsRefused) {
  TempDir tmp;
  write_hf_model(tmp.path(), qwen3_256_config());
  ConvertOptions o = options(tmp.path(), tmp.file("x.gguf"), ConvertType::F16);
  o.extra.add("tokenizer.ggml.model", {std::string("gpt2")});
  o.extra.add("tokenizer.ggml.eos_token_id", {uint32_t(7)});
  convert_hf_to_gguf(o);
  const GgufFile f(tmp.file("x.gguf"));
  EXPECT_EQ(f.metadata().get_str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.metadata().get_u32("tokenizer.ggml.eos_token_id"), 7u);  // the tokenizer's, not config.json's 2
  EXPECT_EQ(f.metadata().get_u32("tokenizer.ggml.bos_token_id"), 1u);  // from config.json: the tokenizer gave none

  ConvertOptions bad = options(tmp.path(), tmp.file("y.gguf"), ConvertType::F16);
  bad.extra.add("general.architecture", {std::string("llama")});
  try {
    convert_hf_to_gguf(bad);
    FAIL() << "conflicting metadata accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos) << e.what();
  }
}

}  // namespace
