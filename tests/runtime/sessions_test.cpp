// Many sessions on one engine, and the error promise of Session::step.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "format/safetensors.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;

namespace {

const std::string kModel = test::fixture("oracle/qwen3_moe_bf16");

// A prompt (all logits) then `decode` single-token steps, as one vector.
std::vector<float> conversation(Session& s, int seed, int prompt, int decode) {
  const int vocab = s.engine().spec().vocab;
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (int i = 0; i < prompt; ++i) ids[size_t(i)] = int32_t((seed * 131 + i * 17 + 3) % vocab);
  auto l = s.step(ids, true);
  std::vector<float> all(l.begin(), l.end());
  for (int i = 0; i < decode; ++i) {
    const int32_t next = int32_t((seed * 7 + i * 29 + 1) % vocab);
    l = s.step(std::span<const int32_t>(&next, 1));
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

TEST(Sessions, StepsFromManyThreadsGiveTheSequentialLogits) {
  EngineOptions o;
  o.threads = 2;
  o.max_micro_batch = 5;  // prefill in several micro-batches, so interleaving would show
  auto engine = Engine::load(kModel, o);
  constexpr int kSessions = 4, kRounds = 25;
  std::vector<std::vector<float>> want(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    Session s(engine);
    want[size_t(i)] = conversation(s, i, 7 + i, 4);
  }
  std::atomic<int> mismatches{0};
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int i = 0; i < kSessions; ++i)
      threads.emplace_back([&, i] {
        Session s(engine);
        const auto got = conversation(s, i, 7 + i, 4);
        if (got.size() != want[size_t(i)].size() ||
            std::memcmp(got.data(), want[size_t(i)].data(), got.size() * sizeof(float)) != 0)
          ++mismatches;
      });
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(mismatches.load(), 0) << "of " << kSessions * kRounds << " concurrent conversations";
}

TEST(Sessions, AFailedStepLeavesPositionAndStateAsTheyWere) {
  EngineOptions o;
  o.max_micro_batch = 4;
  auto engine = Engine::load(kModel, o);
  const std::vector<int32_t> first = {5, 9, 13}, second = {2, 4, 6, 8, 10, 12, 14, 16, 18, 20};

  Session ref(engine);
  ref.step(first);
  const auto want_span = ref.step(second, true);
  const std::vector<float> want(want_span.begin(), want_span.end());

  Session s(engine);
  s.step(first);
  // A fault in the middle of the second of three micro-batches.
  int runs = 0;
  s.impl().backend->set_observer([&](size_t op_index, const Op&, const float*, int, int) {
    if (op_index == 0) ++runs;
    if (runs == 2 && op_index == 5) throw Error("injected fault", ErrorKind::Io);
  });
  try {
    s.step(second, true);
    FAIL() << "the injected fault did not surface";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
  EXPECT_EQ(s.position(), 3);
  s.impl().backend->set_observer({});
  const auto got = s.step(second, true);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
  EXPECT_EQ(s.position(), 13);
}

TEST(Sessions, ErrorsCarryTheirKind) {
  EngineOptions o;
  auto engine = Engine::load(kModel, o);
  Session s(engine, 8);
  const std::vector<int32_t> nine(9, 1);
  try {
    s.step(nine);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Capacity) << e.what();
    EXPECT_STREQ(error_kind_name(e.kind()), "capacity");
  }
  EXPECT_EQ(s.position(), 0);
  const std::vector<int32_t> bad = {1, -1};
  try {
    s.step(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
  }
  try {
    Engine::load("/nonexistent/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model"), std::string::npos);
  }
}

TEST(Sessions, CheckpointsRestoreAndExpireWhenOverwritten) {
  auto engine = Engine::load(kModel);
  const int vocab = engine->spec().vocab;
  const std::vector<int32_t> a = {3, 1, 4, 1, 5}, b = {9, 2, 6}, c = {5, 3};
  Session s(engine);
  s.step(a);
  const SessionCheckpoint after_a = s.checkpoint();
  auto lb = s.step(b);
  const std::vector<float> want(lb.begin(), lb.end());
  const SessionCheckpoint after_b = s.checkpoint();
  s.step(c);
  // Back to after_a, then b again: the same logits as the first time.
  ASSERT_TRUE(s.can_restore(after_a));
  s.restore(after_a);
  EXPECT_EQ(s.position(), 5);
  auto again = s.step(b);
  EXPECT_EQ(0, std::memcmp(again.data(), want.data(), sizeof(float) * size_t(vocab)));
  // after_b lies at 8, and positions 5..7 were written again since.
  EXPECT_FALSE(s.can_restore(after_b));
  EXPECT_THROW(s.restore(after_b), Error);
  EXPECT_TRUE(s.can_restore(after_a));
  // Another session's checkpoint is refused.
  Session other(engine);
  EXPECT_FALSE(other.can_restore(after_a));
  // reset forgets everything above position 0.
  s.reset();
  EXPECT_FALSE(s.can_restore(after_a));
  EXPECT_TRUE(s.can_rewind());
}

TEST(Sessions, TheStateBudgetIsSharedByAllSessions) {
  auto probe = Engine::load(kModel);
  Session p(probe);
  p.step(std::vector<int32_t>{1});
  const uint64_t page = p.state_bytes();  // one page of positions
  ASSERT_GT(page, 0u);
  EXPECT_EQ(probe->state_bytes_in_use(), page);

  EngineOptions o;
  o.state_budget = 2 * page;
  auto engine = Engine::load(kModel, o);
  Session s1(engine), s2(engine), s3(engine);
  s1.step(std::vector<int32_t>{1, 2});
  s2.step(std::vector<int32_t>{3});
  try {
    s3.step(std::vector<int32_t>{4});
    FAIL() << "a third page fit a budget of two";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Capacity);
    EXPECT_NE(std::string(e.what()).find("state budget"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s3.position(), 0);
  s1.reset();  // its page goes back
  EXPECT_NO_THROW(s3.step(std::vector<int32_t>{4}));
  EXPECT_EQ(engine->state_bytes_in_use(), 2 * page);
}

TEST(Sessions, NonFiniteLogitsAreAnErrorNamingTheLayer) {
  // A model whose layer-1 attention output projection holds a NaN: logits
  // are all NaN, which used to give exit 0 and garbage tokens.
  test::TempDir d;
  for (auto& f : std::filesystem::directory_iterator(test::fixture("oracle/qwen3_moe_f32")))
    std::filesystem::copy_file(f.path(), d.file(f.path().filename().string()));
  uint64_t offset = 0;
  {
    SafetensorsFile st(d.file("model.safetensors"));
    offset = st.tensors().at("model.layers.1.self_attn.o_proj.weight").offset;
  }
  {
    std::fstream f(d.file("model.safetensors"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(offset));
    const float nan = std::nanf("");
    f.write(reinterpret_cast<const char*>(&nan), sizeof nan);
  }
  auto engine = Engine::load(d.path());
  Session s(engine);
  try {
    s.step(std::vector<int32_t>{1, 2, 3});
    FAIL() << "NaN logits were returned";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("non-finite logits at positions 0..2"), std::string::npos) << m;
    EXPECT_NE(m.find("in layer 1"), std::string::npos) << m;
    EXPECT_NE(m.find("attn_proj"), std::string::npos) << m;
  }
  EXPECT_EQ(s.position(), 0);
}

}  // namespace
