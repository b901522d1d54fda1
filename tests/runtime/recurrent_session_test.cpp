// Sessions of a model with recurrent (Gated DeltaNet) layers: the state is
// overwritten by every step, so it cannot be rewound; checkpoints copy it
// and restoring one resumes exactly; a step that fails after touching it
// leaves the session refusing further steps until reset or restore.
#include <gtest/gtest.h>

#include <cstring>

#include "format/safetensors.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

const std::string kModel = test::fixture("oracle/qwen3_next_f32");

std::vector<int32_t> ref_tokens(int L) {
  SafetensorsFile ref(kModel + "/reference.safetensors");
  return test::tensor_values<int32_t>(ref.tensors().at("tokens." + std::to_string(L)));
}

std::vector<float> copy(std::span<const float> v) { return {v.begin(), v.end()}; }

TEST(RecurrentSessions, StatesAreDeclaredPerLayerKind) {
  auto engine = Engine::load(kModel);
  const auto& states = engine->impl().states;
  ASSERT_EQ(states.size(), 4u);
  const auto& la = engine->spec().linear_attn;
  for (int l : {0, 2, 3}) {
    EXPECT_EQ(states[size_t(l)].kind, LayerKind::Recurrent) << l;
    // conv history (kernel-1 rows of q, k, v) + one [key_dim, value_dim] matrix per value head
    EXPECT_EQ(states[size_t(l)].fixed_floats, size_t(3 * (2 * 2 * 12 + 4 * 10) + 4 * 12 * 10)) << l;
    EXPECT_EQ(states[size_t(l)].bytes_per_position(), 0u);
  }
  EXPECT_EQ(states[1].kind, LayerKind::FullAttention);
  EXPECT_EQ(la.rotary_dims, 6);
  Session s(engine);
  EXPECT_FALSE(s.can_rewind());
  EXPECT_THROW(s.rewind(0), Error);
  // The recurrent blocks are held from the start, charged to the engine.
  EXPECT_EQ(s.state_bytes(), 3 * states[0].fixed_floats * sizeof(float));
  EXPECT_EQ(engine->state_bytes_in_use(), s.state_bytes());
}

TEST(RecurrentSessions, RestoringACheckpointMidSequenceResumesExactly) {
  auto engine = Engine::load(kModel);
  const int vocab = engine->spec().vocab;
  const auto tokens = ref_tokens(70);
  const std::vector<int32_t> head(tokens.begin(), tokens.begin() + 29), tail(tokens.begin() + 29, tokens.end());
  Session s(engine);
  s.step(head);
  const SessionCheckpoint cp = s.checkpoint();
  ASSERT_TRUE(cp.states);
  const auto want = copy(s.step(tail, true));
  // Elsewhere: another continuation from the checkpoint's position, then back.
  s.restore(cp);
  s.step(std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11});
  ASSERT_TRUE(s.can_restore(cp));
  s.restore(cp);
  EXPECT_EQ(s.position(), 29);
  const auto again = copy(s.step(tail, true));
  ASSERT_EQ(again.size(), want.size());
  EXPECT_EQ(0, std::memcmp(again.data(), want.data(), sizeof(float) * want.size()));
  // And both equal the reference continuation of the whole sequence.
  SafetensorsFile ref(kModel + "/reference.safetensors");
  const auto all = test::tensor_values<float>(ref.tensors().at("logits.70"));
  const std::vector<float> ref_tail(all.begin() + 29 * vocab, all.end());
  auto c = test::compare_logits(again, ref_tail, int(tail.size()), vocab);
  EXPECT_LE(c.max_abs, 1e-4 * c.scale);
  EXPECT_EQ(c.top1_mismatches, 0);
  // Without a copy of the recurrent state a position cannot be resumed.
  SessionCheckpoint bare = cp;
  bare.states = nullptr;
  EXPECT_FALSE(s.can_restore(bare));
  s.reset();
  EXPECT_FALSE(s.can_restore(cp));
}

TEST(RecurrentSessions, AFailedStepRefusesMoreStepsUntilRestored) {
  // A budget with room for the recurrent blocks and one page of positions:
  // a step past that page fails inside the backend.
  auto probe = Engine::load(kModel);
  Session p(probe);
  const uint64_t fixed = p.state_bytes();
  p.step(std::vector<int32_t>{1});
  const uint64_t page = p.state_bytes() - fixed;
  EngineOptions o;
  o.state_budget = fixed + page;
  o.max_micro_batch = 16;
  auto engine = Engine::load(kModel, o);
  Session s(engine);
  const auto tokens = ref_tokens(70);
  s.step(std::vector<int32_t>(tokens.begin(), tokens.begin() + 40));
  const SessionCheckpoint cp = s.checkpoint();
  const auto want = copy(s.step(std::vector<int32_t>{3}));
  s.restore(cp);
  try {
    s.step(tokens);  // 40 + 70 positions: the second page does not fit
    FAIL() << "a second page fit";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Capacity) << e.what();
  }
  EXPECT_EQ(s.position(), 40);
  try {
    s.step(std::vector<int32_t>{3});
    FAIL() << "a step ran on a recurrent state ahead of the position";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("restore"), std::string::npos) << e.what();
  }
  s.restore(cp);
  const auto got = copy(s.step(std::vector<int32_t>{3}));
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * want.size()));
}

// A saved session carries the recurrent blocks with the KV cache: loaded
// into a fresh session it continues with the same logits.
TEST(RecurrentSessions, SavedSessionsCarryTheRecurrentState) {
  auto engine = Engine::load(kModel);
  const auto tokens = ref_tokens(70);
  const std::vector<int32_t> head(tokens.begin(), tokens.begin() + 23), tail(tokens.begin() + 23, tokens.end());
  Session a(engine);
  a.step(head);
  const std::string saved = a.save_to_bytes("note");
  const auto want = copy(a.step(tail, true));
  Session b(engine);
  b.step(std::vector<int32_t>{9, 9, 9});  // a different state to be replaced
  EXPECT_EQ(b.load_from_bytes(saved, "saved"), "note");
  EXPECT_EQ(b.position(), 23);
  const auto got = copy(b.step(tail, true));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * want.size()));
}

}  // namespace
