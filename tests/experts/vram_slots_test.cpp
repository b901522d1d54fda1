// The device tier's plan and slot bookkeeping (experts/vram_slots.h), on
// the CPU: CI checks them without a GPU; the copies and kernels behind
// them are tested on the GPU machine (tests/backend/cuda_tier_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>

#include "convert/convert_hf.h"
#include "core/error.h"
#include "experts/vram_slots.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;

namespace {

struct Tiny {
  test::TempDir tmp;
  std::string dir;
  std::shared_ptr<Engine> engine;
  Tiny() {
    SynthOptions so;
    so.preset = "tiny-moe";
    so.out_dir = dir = tmp.file("hf");
    so.layers = 2;
    so.seed = 3;
    so.progress = false;
    synth_model(so);
    EngineOptions o;
    o.threads = 1;
    engine = Engine::load(dir, o);
  }
};

TEST(VramPlan, SlotsOfTheLargestExpertAndAMinimumOfOneTokensTopK) {
  Tiny t;
  const Engine::Impl& m = t.engine->impl();
  const ExpertIndex index(m.spec, *m.arch, *m.files);
  uint64_t largest = 0;
  for (int l = 0; l < m.spec.layers; ++l)
    for (int e = 0; e < m.spec.experts; ++e) largest = std::max(largest, expert_vram_bytes(index.at(l, e)));
  // bf16 gate/up/down of 256 x 256: three 128 KiB matrices, already aligned.
  EXPECT_EQ(largest, 3u * 256 * 256 * 2);
  const size_t experts = size_t(m.spec.layers) * size_t(m.spec.experts);

  const VramPlan all = plan_vram(index, m.spec, 0, 0);
  EXPECT_TRUE(all.all_resident);
  EXPECT_EQ(all.slot_bytes, largest);
  EXPECT_EQ(all.experts, experts);
  EXPECT_EQ(all.min_budget, largest * uint64_t(m.spec.top_k));
  EXPECT_TRUE(plan_vram(index, m.spec, all.all_bytes, 0).all_resident);

  const VramPlan p = plan_vram(index, m.spec, largest * 5 + 17, 0);
  EXPECT_FALSE(p.all_resident);
  EXPECT_EQ(p.slots, 5u);
  EXPECT_NO_THROW(check_vram_plan(p, largest * 5 + 17, m.spec.top_k, 0));
  // Pinned experts raise the minimum.
  EXPECT_EQ(plan_vram(index, m.spec, largest * 5, 2).min_budget, largest * uint64_t(m.spec.top_k + 2));

  const VramPlan small = plan_vram(index, m.spec, largest * uint64_t(m.spec.top_k) - 1, 0);
  try {
    check_vram_plan(small, largest * uint64_t(m.spec.top_k) - 1, m.spec.top_k, 0);
    ADD_FAILURE() << "a budget below one token's top-k was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Capacity);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("minimum"), std::string::npos) << msg;
    EXPECT_NE(msg.find("top-" + std::to_string(m.spec.top_k)), std::string::npos) << msg;
  }
}

TEST(VramPlan, EngineRefusesBudgetsThatCannotWork) {
  Tiny t;
  EngineOptions o;
  o.threads = 1;
  o.device = "cpu";
  o.expert_vram_text = "50%";
  EXPECT_THROW(Engine::load(t.dir, o), Error);  // a GPU budget on the CPU
  o.device = "cuda";
  o.expert_vram_text = "1K";  // below one slot: refused before any GPU is needed
  try {
    Engine::load(t.dir, o);
    ADD_FAILURE() << "--expert-vram 1K was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("minimum"), std::string::npos) << e.what();
  }
  o.expert_vram_text = "auto";
  EXPECT_THROW(Engine::load(t.dir, o), Error);
}

TEST(SlotCache, FreeSlotsFirstThenTheLeastRecentlyUsed) {
  SlotCache c(3, 100, "lru", {});
  auto none = [](uint32_t) { return false; };
  uint32_t ev = 0;
  std::vector<size_t> got;
  for (uint32_t k : {10u, 11u, 12u}) {
    const size_t s = c.take(none, ev);
    ASSERT_NE(s, SlotCache::kNone);
    EXPECT_EQ(ev, UINT32_MAX);
    c.commit(s, k);
    got.push_back(s);
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(c.find(11), c.find(11));
  EXPECT_NE(c.find(10), SlotCache::kNone);  // 12 is now the least recently used
  const size_t s12 = c.find(12);
  c.find(10);
  c.find(11);
  const size_t s = c.take(none, ev);
  EXPECT_EQ(ev, 12u);
  EXPECT_EQ(s, s12);
  EXPECT_FALSE(c.holds(12));
  c.commit(s, 13);
  EXPECT_EQ(c.key_at(s), 13u);
  EXPECT_EQ(c.resident(), 3u);
}

TEST(SlotCache, BusyAndPinnedKeysAreNeverEvicted) {
  SlotCache c(2, 100, "lru", {5});
  uint32_t ev = 0;
  auto none = [](uint32_t) { return false; };
  c.commit(c.take(none, ev), 5);
  c.commit(c.take(none, ev), 6);
  // 6 is busy (this layer still needs it), 5 is pinned: nothing to evict.
  EXPECT_EQ(c.take([](uint32_t k) { return k == 6; }, ev), SlotCache::kNone);
  const size_t s = c.take(none, ev);
  EXPECT_EQ(ev, 6u);
  // A copy that failed gives the slot back empty.
  c.abandon(s);
  EXPECT_FALSE(c.holds(6));
  EXPECT_EQ(c.take(none, ev), s);
  EXPECT_EQ(ev, UINT32_MAX);
  EXPECT_TRUE(c.pinned(5));
}

TEST(SlotCache, LfuKeepsTheFrequentlyUsed) {
  SlotCache c(2, 100, "lfu", {});
  uint32_t ev = 0;
  auto none = [](uint32_t) { return false; };
  c.commit(c.take(none, ev), 1);
  c.commit(c.take(none, ev), 2);
  for (int i = 0; i < 5; ++i) c.find(1);
  c.find(2);  // the most recent, but used less
  c.take(none, ev);
  EXPECT_EQ(ev, 2u);
}

}  // namespace

namespace {

// Every expert's bytes as a source hands them over fit the slot the plan
// sized from the index, for float, GGUF-quantized and MLX experts.
TEST(VramPlan, EveryExpertFitsItsSlotInEveryFormat) {
  Tiny t;
  ConvertOptions co;
  co.hf_dir = t.dir;
  co.out_path = t.tmp.file("q4km.gguf");
  co.type = ConvertType::Q4_K_M;
  co.progress = false;
  convert_hf_to_gguf(co);
  std::vector<std::string> paths = {t.dir, co.out_path, test::fixture("mlx/qwen3_moe_q4"),
                                    test::fixture("mlx/qwen3_moe_q3g32_f32")};
  for (const std::string& path : paths) {
    EngineOptions o;
    o.threads = 1;
    auto e = Engine::load(path, o);
    const Engine::Impl& m = e->impl();
    const ExpertIndex index(m.spec, *m.arch, *m.files);
    const VramPlan p = plan_vram(index, m.spec, 1, 0);
    MmapExpertSource src(m.spec, *m.arch, *m.files);
    for (int l = 0; l < m.spec.layers; ++l) {
      if (!m.spec.layer_is_moe[size_t(l)]) continue;
      for (int32_t x = 0; x < m.spec.experts; ++x) {
        ExpertWeights w;
        src.acquire(l, std::span<const int32_t>(&x, 1), std::span<ExpertWeights>(&w, 1));
        EXPECT_LE(expert_vram_bytes(w), p.slot_bytes) << path << " layer " << l << " expert " << x;
        EXPECT_EQ(expert_vram_bytes(w), expert_vram_bytes(index.at(l, x))) << path << " layer " << l << " expert " << x;
      }
    }
  }
}

}  // namespace
