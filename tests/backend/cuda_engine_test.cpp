// The CUDA backend through the whole engine: the transformers oracle
// fixtures (every architecture, f32 and bf16 weights, prefill and
// token-by-token decode), GGUF files in every quantized type and the MLX
// fixtures, each against a reference on the same inputs. Skipped, saying
// why, where no GPU is usable; the device-choice tests run everywhere.
//
// MOEFLUX_FIXTURES overrides where tests/fixtures is (the GPU machine runs
// these binaries from another checkout).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "convert/convert_hf.h"
#include "format/safetensors.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

std::string fixture(const std::string& rel) {
  const char* env = std::getenv("MOEFLUX_FIXTURES");
  return env && *env ? std::string(env) + "/" + rel : test::fixture(rel);
}

std::shared_ptr<Engine> load(const std::string& path, const std::string& device, bool f32_activations = false,
                             int micro_batch = 256) {
  EngineOptions o;
  o.threads = 2;
  o.device = device;
  o.f32_activations = f32_activations;
  o.max_micro_batch = micro_batch;
  return Engine::load(path, o);
}

#define SKIP_WITHOUT_GPU()                                                                   \
  do {                                                                                       \
    if (const std::string why = backend_unavailable_reason("cuda"); !why.empty())            \
      GTEST_SKIP() << "CUDA backend cannot run here: " << why;                               \
  } while (0)

// ------------------------------------------------------------ oracle

class CudaOracle : public ::testing::TestWithParam<std::string> {};

// The same bound as the CPU's oracle test (1e-4 of the logit scale): the
// CUDA kernels compute in f32 throughout (sums in another order).
TEST_P(CudaOracle, PrefillAndDecodeMatchTransformers) {
  SKIP_WITHOUT_GPU();
  const std::string dir = fixture("oracle/" + GetParam());
  auto e = load(dir, "cuda");
  ASSERT_EQ(e->backend_name(), "cuda");
  SafetensorsFile ref(dir + "/reference.safetensors");
  const int vocab = e->spec().vocab;
  for (int L : {1, 17, 70}) {
    const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens." + std::to_string(L)));
    const auto want = test::tensor_values<float>(ref.tensors().at("logits." + std::to_string(L)));
    {
      Session s(e);
      auto logits = s.step(tokens, true);
      auto c = test::compare_logits(logits, want, L, vocab);
      EXPECT_LE(c.max_abs, 1e-4 * c.scale) << "prefill L=" << L;
      EXPECT_EQ(c.top1_mismatches, 0) << "prefill L=" << L;
    }
    const auto all = test::decode_one_by_one(e, tokens);
    auto c = test::compare_logits(all, want, L, vocab);
    EXPECT_LE(c.max_abs, 1e-4 * c.scale) << "decode L=" << L;
    EXPECT_EQ(c.top1_mismatches, 0) << "decode L=" << L;
  }
}

// Micro-batches of 5 tokens (prefill continuing over a cache) equal one batch.
TEST_P(CudaOracle, MicroBatchedPrefillEqualsOneBatch) {
  SKIP_WITHOUT_GPU();
  const std::string dir = fixture("oracle/" + GetParam());
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.70"));
  auto one = load(dir, "cuda"), chunked = load(dir, "cuda", false, 5);
  Session a(one), b(chunked);
  auto la = a.step(tokens, true);
  std::vector<float> first(la.begin(), la.end());
  auto lb = b.step(tokens, true);
  auto c = test::compare_logits(lb, first, 70, one->spec().vocab);
  EXPECT_LE(c.max_abs, 1e-5 * c.scale);
}

INSTANTIATE_TEST_SUITE_P(Archs, CudaOracle,
                         ::testing::Values("qwen3_moe_f32", "qwen3_moe_bf16", "qwen2_moe_f32", "qwen2_moe_bf16",
                                           "mixtral_f32", "mixtral_bf16", "olmoe_f32", "olmoe_bf16",
                                           // MLA (absorbed on CUDA, prefill and decode)
                                           "deepseek_v3_f32", "deepseek_v3_bf16", "deepseek_v3_qproj_f32",
                                           "deepseek_v3_qproj_bf16",
                                           // Gated DeltaNet + gated attention
                                           "qwen3_next_f32", "qwen3_next_bf16", "qwen3_5_moe_f32",
                                           "qwen3_5_moe_bf16"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------- quantized formats

// The reference is the CPU with --f32-activations on the same file. With
// f32 activations on CUDA too it is the same math in another order. By
// default CUDA's decode GEMVs round x to int8 per 32 elements for formats
// with integer codes (backend/cuda/gemv_q8.h), as the CPU's own default
// kernels do per block: decode logits then move by that rounding (bounded
// by mean KL, as the CPU's integer kernels are in mlx_model_test.cpp),
// while the prompt's logits (a prefill, f32 on CUDA) keep the f32 bound.
constexpr double kInt8DecodeMaxKl = 0.05;

void expect_cuda_matches_cpu(const std::string& path, const std::vector<int32_t>& tokens, double rel,
                             const std::string& what) {
  auto cpu = load(path, "cpu", true);
  const auto want = test::run_tokens(cpu, tokens, 6);
  const int vocab = cpu->spec().vocab;
  {
    const auto got = test::run_tokens(load(path, "cuda", true), tokens, 6);
    ASSERT_EQ(got.size(), want.size()) << what;
    auto c = test::compare_logits(got, want, int(want.size() / size_t(vocab)), vocab);
    ::testing::Test::RecordProperty("max_rel_" + what, std::to_string(c.max_abs / c.scale));
    EXPECT_LE(c.max_abs, rel * c.scale) << what << " (scale " << c.scale << ")";
    EXPECT_LE(test::mean_kl(want, got, size_t(vocab)), 1e-5) << what;
  }
  const auto got = test::run_tokens(load(path, "cuda"), tokens, 6);
  ASSERT_EQ(got.size(), want.size()) << what;
  const size_t prompt = tokens.size() * size_t(vocab);
  const std::vector<float> got_p(got.begin(), got.begin() + long(prompt)), want_p(want.begin(), want.begin() + long(prompt));
  auto c = test::compare_logits(got_p, want_p, int(tokens.size()), vocab);
  EXPECT_LE(c.max_abs, rel * c.scale) << what << ": prompt logits with default activations (scale " << c.scale << ")";
  const std::vector<float> got_d(got.begin() + long(prompt), got.end()), want_d(want.begin() + long(prompt), want.end());
  const double kl = test::mean_kl(want_d, got_d, size_t(vocab));
  ::testing::Test::RecordProperty("decode_kl_" + what, std::to_string(kl));
  std::printf("%s: decode mean KL, default (int8 GEMV) against f32 activations: %.3g\n", what.c_str(), kl);
  EXPECT_LE(kl, kInt8DecodeMaxKl) << what;
}

class CudaGguf : public ::testing::TestWithParam<ConvertType> {};

TEST_P(CudaGguf, QuantizedFileMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  test::TempDir tmp;
  SynthOptions so;
  so.preset = "tiny-moe";
  so.out_dir = tmp.file("hf");
  so.layers = 2;
  so.experts = 40;  // more than a warp's lanes: the device top-k strides
  so.seed = 11;
  so.progress = false;
  synth_model(so);
  ConvertOptions co;
  co.hf_dir = so.out_dir;
  co.out_path = tmp.file("q.gguf");
  co.type = GetParam();
  co.progress = false;
  convert_hf_to_gguf(co);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 37; ++i) tokens.push_back((i * 389 + 17) % 2048);
  expect_cuda_matches_cpu(co.out_path, tokens, 1e-3, std::string(convert_type_name(GetParam())));
}

INSTANTIATE_TEST_SUITE_P(Types, CudaGguf,
                         ::testing::Values(ConvertType::F32, ConvertType::BF16, ConvertType::Q8_0, ConvertType::Q6_K,
                                           ConvertType::Q5_K_M, ConvertType::Q4_K_M, ConvertType::Q4_0,
                                           ConvertType::MXFP4),
                         [](const auto& info) { return std::string(convert_type_name(info.param)); });

class CudaMlx : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaMlx, MlxAffineModelMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::string dir = fixture("mlx/" + GetParam());
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.17"));
  expect_cuda_matches_cpu(dir, tokens, 1e-3, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Models, CudaMlx,
                         ::testing::Values("qwen3_moe_q4", "qwen3_moe_q3g32_f32", "qwen2_moe_q4", "mixtral_q4",
                                           "olmoe_q4"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------------- CUDA graphs

// Decode steps replay a captured graph; the capture is retired and redone
// as the context crosses 256-position boundaries (the attention split count
// changes). Replays must give exactly the logits of eager launches.
TEST(CudaGraph, DecodeReplayEqualsEagerAcrossSplitBoundaries) {
  SKIP_WITHOUT_GPU();
  test::TempDir tmp;
  SynthOptions so;
  so.preset = "tiny-moe";
  so.out_dir = tmp.file("hf");
  so.layers = 2;
  so.seed = 5;
  so.progress = false;
  synth_model(so);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 200; ++i) prompt.push_back((i * 131 + 7) % 2048);
  ::unsetenv("MOEFLUX_CUDA_GRAPH");
  const auto graphed = test::run_tokens(load(so.out_dir, "cuda"), prompt, 400);
  ::setenv("MOEFLUX_CUDA_GRAPH", "0", 1);
  const auto eager = test::run_tokens(load(so.out_dir, "cuda"), prompt, 400);
  ::unsetenv("MOEFLUX_CUDA_GRAPH");
  ASSERT_EQ(graphed.size(), eager.size());
  size_t differ = 0;
  for (size_t i = 0; i < graphed.size(); ++i) differ += graphed[i] != eager[i];
  EXPECT_EQ(differ, 0u) << "of " << graphed.size() << " logits";
  // And both against the CPU, to the f32 bound.
  const auto want = test::run_tokens(load(so.out_dir, "cpu", true), prompt, 400);
  auto c = test::compare_logits(graphed, want, int(want.size() / 2048), 2048);
  EXPECT_LE(c.max_abs, 1e-3 * c.scale);
}

// ------------------------------------------------------ saved sessions

// A session's state copied out of the device and into a new session (saved
// sessions, the server's prefix cache) continues exactly: 300 positions,
// so the copy spans two KV pages of 256; for the recurrent (qwen3_next)
// and latent (deepseek_v3) layers too.
class CudaSessionState : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaSessionState, SavedStateContinuesExactlyInANewSession) {
  SKIP_WITHOUT_GPU();
  const std::string model = "oracle/" + GetParam();
  auto e = load(fixture(model), "cuda");
  const int vocab = e->spec().vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 300; ++i) prompt.push_back((i * 131 + 7) % vocab);
  Session a(e);
  a.step(prompt);
  const std::string bytes = a.save_to_bytes("history");
  const std::vector<int32_t> next{5};
  const auto la = a.step(next);
  const std::vector<float> want(la.begin(), la.end());
  Session b(e);
  b.step(std::vector<int32_t>{1, 2, 3});
  EXPECT_EQ(b.load_from_bytes(bytes), "history");
  EXPECT_EQ(b.position(), 300);
  const auto lb = b.step(next);
  ASSERT_EQ(lb.size(), want.size());
  size_t differ = 0;
  for (size_t i = 0; i < want.size(); ++i) differ += lb[i] != want[i];
  EXPECT_EQ(differ, 0u) << "of " << want.size() << " logits";
  // A state saved on the CPU continues on the GPU (the same layout), to the
  // f32 bound of the oracle tests.
  auto cpu = load(fixture(model), "cpu", true);
  Session on_cpu(cpu);
  on_cpu.step(prompt);
  const std::string from_cpu = on_cpu.save_to_bytes();
  const auto lcpu = on_cpu.step(next);
  const std::vector<float> want_cpu(lcpu.begin(), lcpu.end());
  Session d(e);
  d.load_from_bytes(from_cpu);
  auto cmp = test::compare_logits(d.step(next), want_cpu, 1, vocab);
  EXPECT_LE(cmp.max_abs, 1e-3 * cmp.scale);
  // A truncated state is refused and leaves the session as it was.
  Session c(e);
  c.step(std::vector<int32_t>{1, 2});
  EXPECT_THROW(c.load_from_bytes(bytes.substr(0, bytes.size() / 2)), Error);
  EXPECT_EQ(c.position(), 2);
}

INSTANTIATE_TEST_SUITE_P(Archs, CudaSessionState,
                         ::testing::Values("qwen3_moe_f32", "qwen3_next_f32", "deepseek_v3_f32"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------------- decode fusions

// The decode step's fused kernels (q/k/v in one launch, q/k norm + RoPE +
// KV append, add + RMSNorm, router + routing, MoE down + combine,
// attention merge) against the same model with MOEFLUX_CUDA_FUSE=0, on a
// Q4_K_M file (so the int8 GEMVs run in both): the same values up to the
// order of the down projection's sums.
TEST(CudaFusion, FusedDecodeMatchesUnfusedOps) {
  SKIP_WITHOUT_GPU();
  test::TempDir tmp;
  SynthOptions so;
  so.preset = "tiny-moe";
  so.out_dir = tmp.file("hf");
  so.layers = 2;
  so.experts = 40;
  so.seed = 3;
  so.progress = false;
  synth_model(so);
  ConvertOptions co;
  co.hf_dir = so.out_dir;
  co.out_path = tmp.file("q.gguf");
  co.type = ConvertType::Q4_K_M;
  co.progress = false;
  convert_hf_to_gguf(co);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 300; ++i) prompt.push_back((i * 211 + 5) % 2048);  // attention splits > 1 when decoding
  ::unsetenv("MOEFLUX_CUDA_FUSE");
  auto engine = load(co.out_path, "cuda");
  const int vocab = engine->spec().vocab;
  const auto fused = test::run_tokens(engine, prompt, 12);
  ::setenv("MOEFLUX_CUDA_FUSE", "0", 1);  // read when a session's executor is made
  const auto plain = test::run_tokens(engine, prompt, 12);
  ::unsetenv("MOEFLUX_CUDA_FUSE");
  ASSERT_EQ(fused.size(), plain.size());
  auto c = test::compare_logits(fused, plain, int(plain.size() / size_t(vocab)), vocab);
  EXPECT_LE(c.max_abs, 1e-4 * c.scale) << "scale " << c.scale;
  EXPECT_EQ(c.top1_mismatches, 0);
}

// ------------------------------------------------------ device choice

TEST(CudaDevice, AutoFallsBackToTheCpuAndCudaSaysWhyNot) {
  const std::string dir = fixture("oracle/qwen3_moe_f32");
  const std::string why = backend_unavailable_reason("cuda");
  auto e = load(dir, "auto");
  EXPECT_EQ(e->backend_name(), why.empty() ? "cuda" : "cpu");
  if (why.empty()) {
    EXPECT_EQ(load(dir, "cuda")->backend_name(), "cuda");
  } else {
    try {
      load(dir, "cuda");
      ADD_FAILURE() << "--device cuda loaded without a usable GPU";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("CUDA"), std::string::npos) << err.what();
    }
  }
  EXPECT_THROW(load(dir, "tpu"), Error);
}

// ------------------------------------- recurrent states, MLA decode graphs

// A recurrent (Gated DeltaNet) session on CUDA: a checkpoint copies the
// device blocks, and restoring it after another continuation resumes
// exactly (bit for bit), matching the reference continuation.
TEST(CudaRecurrent, RestoringACheckpointMidSequenceResumesExactly) {
  SKIP_WITHOUT_GPU();
  const std::string dir = fixture("oracle/qwen3_next_f32");
  auto e = load(dir, "cuda");
  const int vocab = e->spec().vocab;
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.70"));
  const std::vector<int32_t> head(tokens.begin(), tokens.begin() + 29), tail(tokens.begin() + 29, tokens.end());
  Session s(e);
  s.step(head);
  const SessionCheckpoint cp = s.checkpoint();
  ASSERT_TRUE(cp.states);
  EXPECT_GT(cp.states->bytes(), 0u);
  auto first = s.step(tail, true);
  const std::vector<float> want(first.begin(), first.end());
  s.restore(cp);
  s.step(std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11});
  s.step(std::vector<int32_t>{12});
  ASSERT_TRUE(s.can_restore(cp));
  s.restore(cp);
  EXPECT_EQ(s.position(), 29);
  auto again = s.step(tail, true);
  ASSERT_EQ(again.size(), want.size());
  size_t differ = 0;
  for (size_t i = 0; i < want.size(); ++i) differ += again[i] != want[i];
  EXPECT_EQ(differ, 0u) << "of " << want.size() << " logits after the restore";
  const auto all = test::tensor_values<float>(ref.tensors().at("logits.70"));
  const std::vector<float> ref_tail(all.begin() + 29 * vocab, all.end());
  auto c = test::compare_logits(again, ref_tail, int(tail.size()), vocab);
  EXPECT_LE(c.max_abs, 1e-4 * c.scale);
  EXPECT_EQ(c.top1_mismatches, 0);
  // A new conversation starts from zeroed blocks: the same logits as a fresh session.
  s.reset();
  auto fresh = s.step(head, true);
  Session other(e);
  auto other_logits = other.step(head, true);
  ASSERT_EQ(fresh.size(), other_logits.size());
  EXPECT_EQ(0, std::memcmp(fresh.data(), other_logits.data(), sizeof(float) * fresh.size()));
}

// Decode steps of the recurrent and MLA layers replay captured graphs
// (states and positions are read on the device): exactly the logits of
// eager launches, and the CPU's to the f32 bound.
class CudaGraphArch : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGraphArch, DecodeReplayEqualsEager) {
  SKIP_WITHOUT_GPU();
  const std::string dir = fixture("oracle/" + GetParam());
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto prompt = test::tensor_values<int32_t>(ref.tensors().at("tokens.17"));
  ::unsetenv("MOEFLUX_CUDA_GRAPH");
  const auto graphed = test::run_tokens(load(dir, "cuda"), prompt, 40);
  ::setenv("MOEFLUX_CUDA_GRAPH", "0", 1);
  const auto eager = test::run_tokens(load(dir, "cuda"), prompt, 40);
  ::unsetenv("MOEFLUX_CUDA_GRAPH");
  ASSERT_EQ(graphed.size(), eager.size());
  size_t differ = 0;
  for (size_t i = 0; i < graphed.size(); ++i) differ += graphed[i] != eager[i];
  EXPECT_EQ(differ, 0u) << "of " << graphed.size() << " logits";
  auto cpu = load(dir, "cpu", true);
  const int vocab = cpu->spec().vocab;
  const auto want = test::run_tokens(cpu, prompt, 40);
  auto c = test::compare_logits(graphed, want, int(want.size() / size_t(vocab)), vocab);
  EXPECT_LE(c.max_abs, 1e-4 * c.scale);
}

INSTANTIATE_TEST_SUITE_P(Archs, CudaGraphArch,
                         ::testing::Values("qwen3_next_f32", "qwen3_5_moe_f32", "deepseek_v3_f32"),
                         [](const auto& info) { return info.param; });

}  // namespace
