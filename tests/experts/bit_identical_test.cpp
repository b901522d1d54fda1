// Streaming changes where expert bytes come from, never the result: logits
// are bit-identical between a fully resident model and a small expert budget.
#include <gtest/gtest.h>

#include <cstring>

#include "experts/expert_store.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

uint64_t min_budget(const std::string& dir) {
  auto e = Engine::load(dir);
  ExpertIndex index(e->spec(), *e->impl().arch, *e->impl().files);
  return plan_store(index, e->spec(), 0, 0).min_budget;
}

void expect_bit_identical(const std::string& dir, uint64_t budget, const std::string& io, bool prefetch,
                          const std::string& policy, const std::string& prefetch_with = "router") {
  EngineOptions resident;
  resident.threads = 2;
  EngineOptions streamed = resident;
  streamed.expert_ram = budget;
  streamed.io = io;
  streamed.prefetch = prefetch;
  streamed.cache_policy = policy;
  streamed.prefetch_with = prefetch_with;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 23; ++i) prompt.push_back((i * 17 + 3) % 200);
  const auto a = test::run_tokens(Engine::load(dir, resident), prompt, 12);
  auto se = Engine::load(dir, streamed);
  const auto b = test::run_tokens(se, prompt, 12);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << dir << " io=" << io;
  EXPECT_GT(se->expert_stats().misses, 0u) << "the budget should have forced reads";
}

TEST(BitIdentical, OracleFixturesAtTheMinimumBudget) {
  // The fixtures have 7 experts per layer: 5% of them is less than the top-3
  // working set, so the smallest budget that works stands in for it.
  for (const char* name :
       {"qwen3_moe_bf16", "qwen2_moe_f32", "mixtral_bf16", "olmoe_f32", "deepseek_v3_bf16", "deepseek_v3_qproj_f32"}) {
    const std::string dir = test::fixture(std::string("oracle/") + name);
    const uint64_t b = min_budget(dir);
    expect_bit_identical(dir, b, "direct", false, "lru");
    expect_bit_identical(dir, b * 2, "pread", true, "lfu");
  }
}

TEST(BitIdentical, SyntheticModelAtFivePercentOfExpertBytes) {
  test::TempDir d;
  SynthOptions o;
  o.preset = "tiny-moe";
  o.out_dir = d.file("m");
  o.layers = 2;
  o.experts = 96;
  o.seed = 9;
  o.progress = false;
  synth_model(o);
  auto e = Engine::load(o.out_dir);
  const uint64_t expert_bytes = e->spec().expert_bytes_total();
  const uint64_t five_percent = expert_bytes / 20;
  ASSERT_GE(five_percent, min_budget(o.out_dir));
  expect_bit_identical(o.out_dir, five_percent, "direct", false, "lru");
  expect_bit_identical(o.out_dir, five_percent, "direct", true, "lru");
  expect_bit_identical(o.out_dir, five_percent, "buffered", false, "lfu");
  expect_bit_identical(o.out_dir, five_percent, "mmap", true, "lfu");
  expect_bit_identical(o.out_dir, five_percent, "direct", true, "lru", "router,previous,depth=3");
}

TEST(StoreErrors, BudgetBelowOneLayersWorkingSetNamesTheMinimum) {
  const std::string dir = test::fixture("oracle/olmoe_bf16");
  EngineOptions o;
  o.expert_ram = min_budget(dir) - 1;
  try {
    Engine::load(dir, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("below the minimum"), std::string::npos) << e.what();
  }
}

TEST(StoreErrors, BudgetStringsParse) {
  EXPECT_EQ(parse_expert_budget("8G", 100, 0), 8ull << 30);
  EXPECT_EQ(parse_expert_budget("512M", 100, 0), 512ull << 20);
  EXPECT_EQ(parse_expert_budget("25%", 1000, 0), 250u);
  EXPECT_EQ(parse_expert_budget("1234", 100, 0), 1234u);
  EXPECT_THROW(parse_expert_budget("8Q", 100, 0), Error);
  EXPECT_THROW(parse_expert_budget("lots", 100, 0), Error);
  EXPECT_THROW(parse_expert_budget("150%", 100, 0), Error);
}

// A budget given as text is resolved at load against the stored sizes.
TEST(StoreErrors, BudgetTextResolvesAtLoad) {
  const std::string dir = test::fixture("oracle/olmoe_bf16");
  EngineOptions o;
  o.expert_ram_text = "100%";
  auto e = Engine::load(dir, o);
  EXPECT_EQ(e->options().expert_ram, e->spec().expert_bytes_total());
  EXPECT_NE(e->expert_source().find("expert store"), std::string::npos) << e->expert_source();
  o.expert_ram_text = "0";
  try {
    Engine::load(dir, o);
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("'0' gives 0 bytes"), std::string::npos) << err.what();
  }
}

TEST(StoreErrors, PrefetchSpecsParse) {
  unsigned p = kPredictRouter;
  int depth = 1;
  parse_prefetch_spec("previous", p, depth);
  EXPECT_EQ(p, unsigned(kPredictPrevious));
  EXPECT_EQ(depth, 1);
  parse_prefetch_spec("router,previous,depth=4", p, depth);
  EXPECT_EQ(p, unsigned(kPredictRouter | kPredictPrevious));
  EXPECT_EQ(depth, 4);
  parse_prefetch_spec("depth=2", p, depth);  // predictors unchanged
  EXPECT_EQ(p, unsigned(kPredictRouter | kPredictPrevious));
  EXPECT_EQ(depth, 2);
  for (const char* bad : {"oracle", "depth=0", "depth=", "depth=2x", "router,,previous", "depth=999"}) {
    try {
      parse_prefetch_spec(bad, p, depth);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
