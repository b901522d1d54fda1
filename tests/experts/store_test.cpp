// The expert store against the memory-mapped truth: whatever the budget,
// policy, I/O mode or prefetch, every acquired expert holds exactly the
// bytes of the file.
#include "experts/expert_store.h"
#include "experts/host_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;

namespace {

struct StoreCase {
  std::string io, policy;
  bool prefetch;
  int slots;  // budget in slots
};

class StoreBytes : public ::testing::TestWithParam<StoreCase> {};

TEST_P(StoreBytes, EveryAcquireMatchesTheFile) {
  const std::string dir = test::fixture("oracle/qwen3_moe_bf16");
  auto engine = Engine::load(dir);
  Engine::Impl& m = engine->impl();
  MmapExpertSource truth(m.spec, *m.arch, *m.files);
  ExpertIndex index(m.spec, *m.arch, *m.files);
  const StorePlan plan = plan_store(index, m.spec, 0, 0);
  ExpertStoreOptions o;
  o.host_budget_bytes = plan.slot_bytes * uint64_t(GetParam().slots);
  o.io.mode = parse_io_mode(GetParam().io);
  o.policy = GetParam().policy;
  o.prefetch = GetParam().prefetch;
  ExpertStore store(m.spec, *m.arch, *m.files, o);
  std::mt19937 rng(11);
  const int k = m.spec.top_k;
  std::vector<int> moe_layers;
  for (int l = 0; l < m.spec.layers; ++l)
    if (m.spec.layer_is_moe[size_t(l)]) moe_layers.push_back(l);
  for (int step = 0; step < 400; ++step) {
    const int layer = moe_layers[rng() % moe_layers.size()];
    std::vector<int32_t> ids;
    while (int(ids.size()) < std::min(k, store.max_acquire())) {
      int32_t e = int32_t(rng() % uint32_t(m.spec.experts));
      if (std::find(ids.begin(), ids.end(), e) == ids.end()) ids.push_back(e);
    }
    if (GetParam().prefetch) {
      std::vector<int32_t> hint = {int32_t(rng() % 7), int32_t(rng() % 7)};
      store.prefetch(moe_layers[rng() % moe_layers.size()], hint);
    }
    std::vector<ExpertWeights> got(ids.size()), want(ids.size());
    store.acquire(layer, ids, got);
    truth.acquire(layer, ids, want);
    for (size_t i = 0; i < ids.size(); ++i) {
      for (auto [g, w] : {std::pair{got[i].gate, want[i].gate}, std::pair{got[i].up, want[i].up},
                          std::pair{got[i].down, want[i].down}}) {
        ASSERT_EQ(g.rows, w.rows);
        ASSERT_EQ(0, std::memcmp(g.data, w.data, w.row_bytes() * size_t(w.rows)))
            << "step " << step << " layer " << layer << " expert " << ids[i];
      }
    }
    store.release(layer, ids);
  }
  const ExpertStats s = store.stats();
  EXPECT_GT(s.misses, 0u);
  EXPECT_GT(s.hits + s.prefetch_hits, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, StoreBytes,
    ::testing::Values(StoreCase{"direct", "lru", false, 3}, StoreCase{"direct", "lfu", false, 5},
                      StoreCase{"pread", "lru", false, 4}, StoreCase{"buffered", "lfu", false, 3},
                      StoreCase{"mmap", "lru", false, 6}, StoreCase{"direct", "lru", true, 9},
                      StoreCase{"pread", "lfu", true, 7}, StoreCase{"buffered", "lru", true, 12}),
    [](const auto& info) {
      return info.param.io + "_" + info.param.policy + (info.param.prefetch ? "_prefetch" : "") + "_" +
             std::to_string(info.param.slots);
    });

}  // namespace

// The store commits its arena at load, so that no read on the decode path
// waits for the kernel to zero a page it has never touched.
TEST(HostArena, PrefaultCommitsEveryPage) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  auto resident_pages = [&](const HostArena& a) {
    std::vector<unsigned char> v(a.bytes() / page);
    EXPECT_EQ(0, ::mincore(a.slot(0), a.bytes(), v.data()));
    size_t n = 0;
    for (unsigned char c : v) n += c & 1;
    return n;
  };
  HostArena lazy(3, 1 << 20, false), committed(3, 1 << 20, true);
  EXPECT_EQ(resident_pages(committed), committed.bytes() / page);
  EXPECT_LT(resident_pages(lazy), lazy.bytes() / page);
}
