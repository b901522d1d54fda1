// DeepSeek-V3's FP8 checkpoints (e4m3 weights, 2-D block weight_scale_inv):
// read as they are (no conversion at load) and computed on by the FP8
// kernels; the oracle fixture deepseek_v3_fp8 checks the logits
// (oracle_test.cpp), these the loader's bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "format/safetensors.h"
#include "format/safetensors_writer.h"
#include "model/gguf_model.h"
#include "moeflux/engine.h"
#include "test_util.h"

using namespace moeflux;
namespace fs = std::filesystem;

namespace {

// The FP8 fixture with one tensor's declared shape (and bytes) replaced.
std::string fixture_with(const test::TempDir& tmp, const std::string& name, std::vector<int64_t> shape,
                         bool drop = false) {
  const std::string src = test::fixture("oracle/deepseek_v3_fp8");
  const std::string dir = tmp.file("m");
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir + "/config.json");
  SafetensorsFile f(src + "/model.safetensors");
  std::vector<TensorDecl> decls;
  std::vector<const TensorRef*> refs;
  for (const auto& [n, t] : f.tensors()) {
    if (n == name && drop) continue;
    TensorDecl d{n, t.dtype, n == name ? shape : t.shape};
    decls.push_back(d);
    refs.push_back(&t);
  }
  SafetensorsWriter w(dir + "/model.safetensors", decls, {{"format", "pt"}});
  for (size_t i = 0; i < decls.size(); ++i) {
    std::vector<uint8_t> bytes(decls[i].nbytes(), 0);
    std::copy_n(refs[i]->data, std::min<uint64_t>(bytes.size(), refs[i]->nbytes), bytes.begin());
    w.write(bytes);
  }
  w.finish();
  return dir;
}

std::string load_error(const std::string& dir) {
  try {
    open_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Fp8Model, WeightsStayFp8WithTheirScales) {
  const OpenedModel m = open_model(test::fixture("oracle/deepseek_v3_fp8"));
  EXPECT_EQ(m.spec.fp8_block, 32);
  const TensorRef& w = m.tensors->get("model.layers.1.mlp.experts.4.down_proj.weight");
  EXPECT_EQ(w.dtype, DType::F8E4M3);
  ASSERT_TRUE(w.mlx.has_value());
  EXPECT_EQ(w.mlx->group_size, 32);
  EXPECT_EQ(w.mlx->scales.nbytes, uint64_t(3 * 2 * 4));  // [ceil(72 / 32), ceil(40 / 32)] f32
  EXPECT_EQ(m.tensors->get("model.layers.1.mlp.gate.weight").dtype, DType::F32);
}

// Routed experts stream with their block scales (2 reads an FP8 matrix):
// the same logits through a small expert budget as with every expert mapped.
TEST(Fp8Model, ExpertsStreamWithTheirScales) {
  const std::string dir = test::fixture("oracle/deepseek_v3_fp8");
  const std::vector<int32_t> tokens{5, 17, 3, 99, 42, 7, 150, 8};
  EngineOptions plain;
  plain.threads = 2;
  Session a(Engine::load(dir, plain));
  const auto la = a.step(tokens, true);
  const std::vector<float> want(la.begin(), la.end());
  EngineOptions o = plain;
  o.expert_ram = 160 * 1024;  // 4 of the 18 experts' slots (one layer's top-3 must fit)
  Session b(Engine::load(dir, o));
  const auto lb = b.step(tokens, true);
  ASSERT_EQ(lb.size(), want.size());
  EXPECT_EQ(0, std::memcmp(lb.data(), want.data(), want.size() * sizeof(float)));
}

TEST(Fp8Model, ScalesOfTheWrongShapeAreRefusedByName) {
  test::TempDir tmp;
  const std::string name = "model.layers.0.self_attn.kv_b_proj.weight_scale_inv";
  const std::string err = load_error(fixture_with(tmp, name, {1, 1}));
  EXPECT_NE(err.find(name), std::string::npos) << err;
  EXPECT_NE(err.find("[1, 1]"), std::string::npos) << err;
}

TEST(Fp8Model, MissingScalesAreRefusedByName) {
  test::TempDir tmp;
  const std::string name = "model.layers.2.mlp.experts.0.up_proj.weight";
  const std::string err = load_error(fixture_with(tmp, name + "_scale_inv", {}, /*drop=*/true));
  EXPECT_NE(err.find(name), std::string::npos) << err;
  EXPECT_NE(err.find("scale"), std::string::npos) << err;
}

TEST(Fp8Model, UnknownFp8SchemesAreRefused) {
  test::TempDir tmp;
  const std::string dir = tmp.file("m");
  fs::create_directories(dir);
  fs::copy_file(test::fixture("oracle/deepseek_v3_fp8/model.safetensors"), dir + "/model.safetensors");
  std::ifstream in(test::fixture("oracle/deepseek_v3_fp8/config.json"));
  std::string cfg((std::istreambuf_iterator<char>(in)), {});
  cfg.replace(cfg.find("\"dynamic\""), 9, "\"static\"");
  std::ofstream(dir + "/config.json") << cfg;
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("activation_scheme"), std::string::npos) << err;
}

}  // namespace
