// Session::step_batch: the decode steps of several sessions in one pass give
// each session the logits of its own step, fetch each routed expert once
// per step, and fail as a whole without moving any position.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "runtime/decode_batcher.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;

namespace {

std::vector<int32_t> ids(int seed, int n, int vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[size_t(i)] = int32_t((seed * 131 + i * 17 + 3) % vocab);
  return v;
}
int32_t next_id(int seed, int step, int vocab) { return int32_t((seed * 7 + step * 29 + 1) % vocab); }

// |a - b| <= 1e-4 of the logit scale, and the same top token.
void expect_same_logits(std::span<const float> got, std::span<const float> want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float scale = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  EXPECT_LE(worst, 1e-4f * std::max(scale, 1.0f)) << what << " (logit scale " << scale << ")";
  EXPECT_EQ(std::max_element(got.begin(), got.end()) - got.begin(),
            std::max_element(want.begin(), want.end()) - want.begin())
      << what;
}

class SessionBatch : public ::testing::TestWithParam<std::string> {};

// Sessions at different positions (prompts of 3, 6, 9 and 12 tokens), five
// decode rounds: batched against each session stepped alone. The three
// layer kinds: attention (qwen3_moe), Gated DeltaNet (qwen3_next), MLA
// (deepseek_v3). A micro-batch of 3 splits the batch of four into passes.
TEST_P(SessionBatch, EachSessionGetsTheLogitsOfItsOwnStep) {
  EngineOptions o;
  o.threads = 2;
  o.max_micro_batch = 3;
  auto engine = Engine::load(test::fixture("oracle/" + GetParam()), o);
  const int vocab = engine->spec().vocab;
  constexpr int kSessions = 4, kRounds = 5;
  std::vector<std::vector<std::vector<float>>> want(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    Session s(engine);
    s.step(ids(i, 3 + 3 * i, vocab));
    for (int r = 0; r < kRounds; ++r) {
      const int32_t t = next_id(i, r, vocab);
      auto l = s.step(std::span<const int32_t>(&t, 1));
      want[size_t(i)].emplace_back(l.begin(), l.end());
    }
  }
  std::vector<Session> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.emplace_back(engine);
    sessions.back().step(ids(i, 3 + 3 * i, vocab));
  }
  std::vector<Session*> ptrs;
  for (auto& s : sessions) ptrs.push_back(&s);
  for (int r = 0; r < kRounds; ++r) {
    std::vector<int32_t> tokens;
    for (int i = 0; i < kSessions; ++i) tokens.push_back(next_id(i, r, vocab));
    Session::step_batch(ptrs, tokens);
    for (int i = 0; i < kSessions; ++i) {
      EXPECT_EQ(sessions[size_t(i)].position(), 3 + 3 * i + r + 1);
      expect_same_logits(sessions[size_t(i)].logits(), want[size_t(i)][size_t(r)],
                         GetParam() + " session " + std::to_string(i) + " round " + std::to_string(r));
    }
  }
  // And a session stepped alone afterwards continues from its batched steps.
  const int32_t t = next_id(9, 9, vocab);
  Session ref(engine);
  ref.step(ids(1, 6, vocab));
  for (int r = 0; r < kRounds; ++r) {
    const int32_t n = next_id(1, r, vocab);
    ref.step(std::span<const int32_t>(&n, 1));
  }
  expect_same_logits(sessions[1].step(std::span<const int32_t>(&t, 1)), ref.step(std::span<const int32_t>(&t, 1)),
                     GetParam() + " a step after the batch");
}

INSTANTIATE_TEST_SUITE_P(Archs, SessionBatch, ::testing::Values("qwen3_moe_f32", "qwen3_next_f32", "deepseek_v3_f32"),
                         [](const auto& info) { return info.param; });

// Each routed expert is acquired once per layer for the whole batch, not
// once per session that routes to it.
TEST(SessionBatchExperts, EachExpertIsFetchedOncePerStep) {
  EngineOptions o;
  o.threads = 2;
  o.expert_ram_text = "100%";
  o.io = "pread";
  auto engine = Engine::load(test::fixture("oracle/qwen3_moe_f32"), o);
  const ModelSpec& spec = engine->spec();
  const int vocab = spec.vocab;
  constexpr int kSessions = 6;
  ASSERT_GT(kSessions * spec.top_k, spec.experts) << "the fixture must force shared experts";
  std::vector<Session> sessions;
  std::vector<Session*> ptrs;
  std::vector<int32_t> tokens;
  for (int i = 0; i < kSessions; ++i) {
    sessions.emplace_back(engine);
    sessions.back().step(ids(i, 4, vocab));
    tokens.push_back(next_id(i, 0, vocab));
  }
  for (auto& s : sessions) ptrs.push_back(&s);
  auto acquires = [&] {
    const ExpertStats st = engine->expert_stats();
    return st.hits + st.misses + st.prefetch_hits;
  };
  const uint64_t before = acquires();
  Session::step_batch(ptrs, tokens);
  const uint64_t batched = acquires() - before;
  // At most num_experts distinct experts per MoE layer; alone, top_k per session and layer.
  const uint64_t moe_layers = uint64_t(spec.moe_layers());
  EXPECT_GT(batched, 0u);
  EXPECT_LE(batched, moe_layers * uint64_t(spec.experts));
  EXPECT_LT(batched, moe_layers * uint64_t(kSessions * spec.top_k));
}

TEST(SessionBatchErrors, ABadBatchIsRefusedAndMovesNoSession) {
  EngineOptions o;
  o.threads = 2;
  auto engine = Engine::load(test::fixture("oracle/qwen3_moe_f32"), o);
  auto other = Engine::load(test::fixture("oracle/qwen3_moe_f32"), o);
  const int vocab = engine->spec().vocab;
  Session a(engine), b(engine), c(other);
  a.step(ids(1, 3, vocab));
  b.step(ids(2, 5, vocab));
  c.step(ids(3, 2, vocab));
  auto refused = [&](std::vector<Session*> ss, std::vector<int32_t> toks, const std::string& why) {
    try {
      Session::step_batch(ss, toks);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    EXPECT_EQ(a.position(), 3);
    EXPECT_EQ(b.position(), 5);
  };
  refused({&a, &b}, {1}, "2 sessions but 1 tokens");
  refused({&a, &a}, {1, 2}, "appears twice");
  refused({&a, &c}, {1, 2}, "another engine");
  refused({&a, &b}, {1, vocab}, "outside the vocabulary");
  Session tiny(engine, 5);
  tiny.step(ids(4, 5, vocab));
  refused({&a, &tiny}, {1, 2}, "exceed the context");
  // The engine still serves a good batch afterwards.
  std::vector<Session*> good{&a, &b};
  Session::step_batch(good, std::vector<int32_t>{1, 2});
  EXPECT_EQ(a.position(), 4);
  EXPECT_EQ(b.position(), 6);
}

}  // namespace

namespace {

// DecodeBatcher: threads' steps submitted while a pass runs share the next
// pass, and every thread gets its own session's logits.
TEST(DecodeBatcher, StepsSubmittedTogetherShareAPassAndKeepTheirLogits) {
  EngineOptions o;
  o.threads = 2;
  auto engine = Engine::load(test::fixture("oracle/qwen3_moe_f32"), o);
  const int vocab = engine->spec().vocab;
  constexpr int kThreads = 4, kRounds = 6;
  std::vector<std::vector<std::vector<float>>> want(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    Session s(engine);
    s.step(ids(i, 2 + i, vocab));
    for (int r = 0; r < kRounds; ++r) {
      const int32_t t = next_id(i, r, vocab);
      auto l = s.step(std::span<const int32_t>(&t, 1));
      want[size_t(i)].emplace_back(l.begin(), l.end());
    }
  }
  DecodeBatcher batcher;
  std::vector<Session> sessions;
  for (int i = 0; i < kThreads; ++i) {
    sessions.emplace_back(engine);
    sessions.back().step(ids(i, 2 + i, vocab));
  }
  std::vector<std::vector<std::vector<float>>> got(kThreads);
  {
    // Hold the engine while every thread submits its first step: the first
    // leader's pass waits for the engine, the other steps queue behind it
    // and run as one pass.
    auto turn = engine->impl().scheduler->turn();
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i)
      threads.emplace_back([&, i] {
        for (int r = 0; r < kRounds; ++r) {
          auto l = batcher.step(sessions[size_t(i)], next_id(i, r, vocab));
          got[size_t(i)].emplace_back(l.begin(), l.end());
        }
      });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    turn.unlock();
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kThreads; ++i)
    for (int r = 0; r < kRounds; ++r)
      expect_same_logits(got[size_t(i)][size_t(r)], want[size_t(i)][size_t(r)],
                         "thread " + std::to_string(i) + " round " + std::to_string(r));
  const auto st = batcher.stats();
  EXPECT_EQ(st.steps, uint64_t(kThreads * kRounds));
  EXPECT_GE(st.largest, kThreads - 1);
  EXPECT_LT(st.batches, st.steps);
}

// A session whose context is full fails its own step; the others in the
// same pass go on.
TEST(DecodeBatcher, OneSessionsErrorIsOnlyItsOwn) {
  EngineOptions o;
  o.threads = 2;
  auto engine = Engine::load(test::fixture("oracle/qwen3_moe_f32"), o);
  const int vocab = engine->spec().vocab;
  Session full(engine, 4), ok(engine);
  full.step(ids(1, 4, vocab));
  ok.step(ids(2, 4, vocab));
  DecodeBatcher batcher;
  std::string error;
  {
    auto turn = engine->impl().scheduler->turn();
    std::thread a([&] {
      try {
        batcher.step(full, 1);
      } catch (const Error& e) {
        error = e.what();
      }
    });
    std::thread b([&] { batcher.step(ok, 2); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    turn.unlock();
    a.join();
    b.join();
  }
  EXPECT_NE(error.find("exceed the context"), std::string::npos) << error;
  EXPECT_EQ(ok.position(), 5);
  EXPECT_EQ(full.position(), 4);
}

}  // namespace
