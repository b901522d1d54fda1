// The moeflux command line as a user runs it: results, and clear errors with
// a non-zero exit for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

const std::string kOlmoe = test::fixture("oracle/olmoe_f32");

TEST(Cli, ScoreJsonMatchesTheReferenceLogProbabilities) {
  SafetensorsFile ref(kOlmoe + "/reference.safetensors");
  const auto tokens = test::tensor_values<int32_t>(ref.tensors().at("tokens.17"));
  const auto logits = test::tensor_values<float>(ref.tensors().at("logits.17"));
  std::string ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
  auto r = test::run_cli("score " + kOlmoe + " --tokens " + ids + " --json --top-k 3");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["positions"].size(), tokens.size() - 1);
  const int vocab = 211;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    double m = -1e30, z = 0;
    for (int v = 0; v < vocab; ++v) m = std::max(m, double(logits[i * vocab + size_t(v)]));
    for (int v = 0; v < vocab; ++v) z += std::exp(logits[i * vocab + size_t(v)] - m);
    const double ref_lp = logits[i * vocab + size_t(tokens[i + 1])] - m - std::log(z);
    EXPECT_NEAR(j["positions"][i]["logprob"].get<double>(), ref_lp, 1e-3) << "position " << i;
    EXPECT_EQ(j["positions"][i]["top"].size(), 3u);
  }
}

TEST(Cli, GenerateContinuesWithTheGreedyToken) {
  auto r = test::run_cli("generate " + kOlmoe + " --tokens 5,6,7 -n 4 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.err;
  int commas = 0;
  for (char c : r.out) commas += c == ',';
  EXPECT_EQ(commas, 3) << r.out;
  EXPECT_NE(r.err.find("decode"), std::string::npos);
}

TEST(Cli, InspectPrintsShapesAndThePlan) {
  auto r = test::run_cli("inspect " + kOlmoe);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("olmoe"), std::string::npos);
  EXPECT_NE(r.out.find("7 per MoE layer, top-3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("planned"), std::string::npos);
}

// DeepSeek-V3: the latent attention's shape and its state, 36 + 8 floats
// per token in each of the 3 layers (528 B).
TEST(Cli, InspectShowsTheLatentState) {
  auto r = test::run_cli("inspect " + test::fixture("oracle/deepseek_v3_f32"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("q_lora_rank 40, kv_lora_rank 36, qk head 10 nope + 8 rope, v head 14"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("3 layers of latent attention (MLA): 528 B per token"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 groups (best 2 kept)"), std::string::npos) << r.out;
}

TEST(CliErrors, EmptyTokensIsRefused) {
  auto r = test::run_cli("score " + kOlmoe + " --tokens ''");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--tokens"), std::string::npos) << r.err;
}

TEST(CliErrors, BadTokenEntryIsNamed) {
  auto r = test::run_cli("generate " + kOlmoe + " --tokens 1,x,3");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("'x'"), std::string::npos) << r.err;
}

TEST(CliErrors, TokenIdOutOfRangeIsRefused) {
  auto r = test::run_cli("score " + kOlmoe + " --tokens 1,2,211");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("token id 211"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[0, 211)"), std::string::npos) << r.err;
}

TEST(CliErrors, UnknownArchitectureIsRefused) {
  test::TempDir d;
  json cfg = json::parse(test::read_file(kOlmoe + "/config.json"));
  cfg["model_type"] = "not_a_model";
  test::write_file(d.file("config.json"), cfg.dump());
  auto r = test::run_cli("inspect " + d.path());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("'not_a_model'"), std::string::npos) << r.err;
}

TEST(CliErrors, TruncatedWeightsAreRefused) {
  test::TempDir d;
  std::filesystem::copy_file(kOlmoe + "/config.json", d.file("config.json"));
  const std::string w = test::read_file(kOlmoe + "/model.safetensors");
  test::write_file(d.file("model.safetensors"), w.substr(0, w.size() / 2));
  auto r = test::run_cli("score " + d.path() + " --tokens 1,2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

TEST(CliErrors, MissingModelIsRefused) {
  auto r = test::run_cli("inspect /nonexistent/model");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

TEST(Cli, SynthWritesAModelThatRuns) {
  test::TempDir d;
  const std::string dir = d.file("m");
  auto r = test::run_cli("synth --preset tiny-moe -o " + dir + " --layers 2 --experts 6 --seed 3");
  ASSERT_EQ(r.code, 0) << r.err;
  json cfg = json::parse(test::read_file(dir + "/config.json"));
  EXPECT_EQ(cfg["num_hidden_layers"], 2);
  EXPECT_EQ(cfg["num_experts"], 6);
  auto g = test::run_cli("generate " + dir + " --tokens 1,2,3 -n 3");
  EXPECT_EQ(g.code, 0) << g.err;
  // Same seed, same bytes.
  auto r2 = test::run_cli("synth --preset tiny-moe -o " + d.file("m2") + " --layers 2 --experts 6 --seed 3");
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(test::read_file(dir + "/model.safetensors"), test::read_file(d.file("m2") + "/model.safetensors"));
  // An existing model is never overwritten.
  auto again = test::run_cli("synth --preset tiny-moe -o " + dir);
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("already holds a model"), std::string::npos) << again.err;
}

TEST(CliErrors, SynthRefusesUnknownPresets) {
  test::TempDir d;
  auto r = test::run_cli("synth --preset nope -o " + d.file("x"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("olmoe-1b-7b"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gpt-oss-120b"), std::string::npos) << r.err;
}

TEST(Cli, BenchReportsSpeedAndTheFloor) {
  auto r = test::run_cli("bench " + kOlmoe + " -p 16 -n 4 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
  EXPECT_GT(j["prefill_tok_s"].get<double>(), 0);
  EXPECT_GT(j["host_read_bandwidth_gb_s"].get<double>(), 0);
  EXPECT_GT(j["host_memory_floor_tok_s"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 0);
}

// With a small expert budget the bench reads experts during decode and
// reports both storage floors: at decode's own queue depth and at the
// device's peak, and the combined streaming floor.
TEST(Cli, BenchStreamingReportsTheStorageFloors) {
  auto r = test::run_cli("bench " + kOlmoe + " -p 8 -n 6 --expert-ram 20% --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_GT(j["decode_expert_misses"].get<double>(), 0);
  const double per_layer = j["decode_experts_from_storage_per_layer"].get<double>();
  EXPECT_GT(per_layer, 0);
  EXPECT_LE(per_layer, double(j["decode_expert_misses"].get<double>()));
  EXPECT_GT(j["storage_read_gb_s"].get<double>(), 0);
  EXPECT_GT(j["storage_peak_read_gb_s"].get<double>(), 0);
  EXPECT_EQ(j["storage_read_gb_s_probes"].size(), 2u);
  EXPECT_GT(j["storage_floor_tok_s"].get<double>(), 0);
  // The streaming floor is the slower of the peak storage and host-memory floors.
  const double stream = j["streaming_floor_tok_s"].get<double>();
  EXPECT_NEAR(stream,
              std::min(j["storage_peak_floor_tok_s"].get<double>(), j["host_memory_floor_tok_s"].get<double>()),
              1e-9 * stream);
  EXPECT_TRUE(j.contains("dense_warmup_page_cache_bytes"));
}

// `transformers` must load what synth writes. Needs a Python with
// transformers (scripts/requirements-oracle.txt): set MOEFLUX_PYTHON to it.
TEST(Cli, SynthOutputLoadsInTransformersAndMatchesOurScores) {
  const char* py = std::getenv("MOEFLUX_PYTHON");
  if (!py || !*py) GTEST_SKIP() << "set MOEFLUX_PYTHON to a Python with transformers to run";
  for (const std::string preset : {"tiny-moe", "tiny-qwen3-next"}) {
    test::TempDir d;
    auto r = test::run_cli("synth --preset " + preset + " -o " + d.file("m") + " --layers 4");
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string cmd = std::string(py) + " " + MOEFLUX_SOURCE_DIR + "/scripts/check_hf_loads.py " + d.file("m") +
                            " --moeflux " + MOEFLUX_CLI + " --tokens 1,5,9,200,7,3,11 > " + d.file("log") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << preset << ": " << test::read_file(d.file("log"));
  }
}

// A hybrid linear-attention model from synth: generation, and inspect
// naming its recurrent state per session.
TEST(Cli, SynthQwen3NextGeneratesAndInspectShowsRecurrentState) {
  test::TempDir d;
  auto r = test::run_cli("synth --preset tiny-qwen3-next -o " + d.file("m") + " --experts 4");
  ASSERT_EQ(r.code, 0) << r.err;
  auto g = test::run_cli("generate " + d.file("m") + " --tokens 1,2,3 -n 4");
  EXPECT_EQ(g.code, 0) << g.err;
  auto i = test::run_cli("inspect " + d.file("m"));
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("3 layers of recurrent (linear attention): 57.00 KiB per session"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("3 of 4 layers Gated DeltaNet"), std::string::npos) << i.out;
}

}  // namespace
