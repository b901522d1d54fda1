#include "graph/planner.h"

#include <gtest/gtest.h>

#include <random>

#include "graph/builder.h"
#include "model/blocks.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;

namespace {

bool overlap(const Interval& a, const Interval& b) { return a.start <= b.end && b.start <= a.end; }

std::vector<Interval> random_intervals(std::mt19937& rng, int n, int span) {
  std::vector<Interval> iv;
  for (int i = 0; i < n; ++i) {
    uint32_t s = rng() % uint32_t(span), len = rng() % 12;
    iv.push_back({s, s + len});
  }
  return iv;
}

TEST(Planner, OverlappingIntervalsNeverShareAColour) {
  std::mt19937 rng(1);
  for (int round = 0; round < 200; ++round) {
    auto iv = random_intervals(rng, 1 + int(rng() % 60), 50);
    auto c = colour_intervals(iv);
    for (size_t i = 0; i < iv.size(); ++i)
      for (size_t j = i + 1; j < iv.size(); ++j)
        if (overlap(iv[i], iv[j])) {
          ASSERT_NE(c[i], c[j]) << "intervals " << i << " and " << j;
        }
  }
}

TEST(Planner, ColourCountEqualsMaximumLive) {
  std::mt19937 rng(2);
  for (int round = 0; round < 500; ++round) {
    auto iv = random_intervals(rng, 1 + int(rng() % 80), 1 + int(rng() % 100));
    auto c = colour_intervals(iv);
    const int colours = *std::max_element(c.begin(), c.end()) + 1;
    ASSERT_EQ(colours, max_live(iv)) << "round " << round;
  }
}

TEST(Planner, TouchingIntervalsConflictButAdjacentOnesShare) {
  // [0,2] and [2,4] are both live at op 2 (an op's input and output must
  // not alias); [0,2] and [3,4] may share.
  EXPECT_NE(colour_intervals({{0, 2}, {2, 4}})[0], colour_intervals({{0, 2}, {2, 4}})[1]);
  auto c = colour_intervals({{0, 2}, {3, 4}});
  EXPECT_EQ(c[0], c[1]);
}

class ModelGraph : public ::testing::Test {
 protected:
  void SetUp() override { engine_ = Engine::load(test::fixture("oracle/qwen2_moe_f32")); }
  std::shared_ptr<Engine> engine_;
};

TEST_F(ModelGraph, ExternalInputsAreNeverAliased) {
  for (int T : {1, 7}) {
    Graph g = build_model_graph(engine_->spec(), engine_->impl().weights, T, true);
    BufferPlan p = plan_buffers(g);
    EXPECT_EQ(p.slot_of[g.input.index], -1);
    for (size_t b = 0; b < g.buffers.size(); ++b)
      if (b != g.input.index) {
        EXPECT_GE(p.slot_of[b], 0) << g.buffers[b].name;
      }
    EXPECT_LT(p.arena_bytes, p.unplanned_bytes);
  }
}

TEST_F(ModelGraph, LiveBuffersNeverShareASlot) {
  Graph g = build_model_graph(engine_->spec(), engine_->impl().weights, 5, true);
  BufferPlan p = plan_buffers(g);
  // Recompute live ranges independently and check every pair.
  std::vector<Interval> live(g.buffers.size(), {UINT32_MAX, 0});
  for (uint32_t i = 0; i < g.ops.size(); ++i) {
    for (uint32_t b : op_writes(g.ops[i])) live[b] = {std::min(live[b].start, i), std::max(live[b].end, i)};
    for (uint32_t b : op_reads(g.ops[i])) live[b].end = std::max(live[b].end, i);
  }
  live[g.output.index].end = uint32_t(g.ops.size());
  for (size_t a = 0; a < g.buffers.size(); ++a)
    for (size_t b = a + 1; b < g.buffers.size(); ++b)
      if (p.slot_of[a] >= 0 && p.slot_of[a] == p.slot_of[b]) {
        ASSERT_FALSE(overlap(live[a], live[b])) << g.buffers[a].name << " / " << g.buffers[b].name;
      }
}

TEST_F(ModelGraph, SameGraphGivesTheSamePlan) {
  Graph g1 = build_model_graph(engine_->spec(), engine_->impl().weights, 9, false);
  Graph g2 = build_model_graph(engine_->spec(), engine_->impl().weights, 9, false);
  BufferPlan a = plan_buffers(g1), b = plan_buffers(g2);
  EXPECT_EQ(a.slot_of, b.slot_of);
  EXPECT_EQ(a.slot_bytes, b.slot_bytes);
  EXPECT_EQ(a.slot_offset, b.slot_offset);
}

TEST(PlannerErrors, ReadBeforeWriteIsRefused) {
  GraphBuilder gb(2);
  auto tokens = gb.input();
  auto h = gb.buffer<Role::Hidden>(4, "never_written_yet");
  auto x = gb.add(h, h);  // reads h, which the next op writes: invalid
  (void)tokens;
  Graph g = gb.finish();
  g.ops.push_back(OpAdd{x, x, h});
  EXPECT_THROW(plan_buffers(g), Error);
}

}  // namespace
