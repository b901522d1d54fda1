// Compute overlaps reads: the MoE op computes the experts already in memory
// while the missing ones are read, and each miss as its read lands, in
// whatever order they land, with results bit-identical to a resident model.
//
// Overlap is shown by ordering, not timing: a read is held at a gate (a
// fault hook that blocks the read call) that only the op's own progress
// opens. An op that waited for the read before computing would never open
// it and the gate would time out, which the tests report as a failure.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

#include "backend/cpu/moe.h"
#include "experts/expert_store.h"
#include "model/blocks.h"
#include "experts/io/faulty_io.h"
#include "runtime/engine_impl.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

// Blocks every read call that covers byte `at` of the model's files until
// open() (or until a long timeout, which the tests treat as failure).
class Gate final : public IoFaultHook {
 public:
  void arm(uint64_t at) {
    std::lock_guard lk(mu_);
    at_ = at;
    armed_ = true;
    open_ = false;
  }
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool timed_out() const {
    std::lock_guard lk(mu_);
    return timed_out_;
  }
  int blocked() const {
    std::lock_guard lk(mu_);
    return blocked_;
  }
  IoFault before_read(IoFileId, uint64_t offset, uint64_t length) override {
    std::unique_lock lk(mu_);
    if (armed_ && at_ >= offset && at_ - offset < length) {
      blocked_++;
      if (!cv_.wait_for(lk, std::chrono::seconds(20), [&] { return open_; })) {
        timed_out_ = true;
        open_ = true;
      }
    }
    return {};
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t at_ = 0;
  bool armed_ = false, open_ = false, timed_out_ = false;
  int blocked_ = 0;
};

// A byte in the middle of an expert's bytes: no read of a neighbouring
// expert reaches it, even widened to 4 KiB blocks.
uint64_t middle_of(const ExpertExtents& x) {
  const uint64_t lo = std::min({x.gate.offset, x.up.offset, x.down.offset});
  const uint64_t hi = std::max({x.gate.offset + x.gate.length, x.up.offset + x.up.length, x.down.offset + x.down.length});
  return (lo + hi) / 2;
}

class Overlap : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_ = Engine::load(test::fixture("oracle/qwen3_moe_bf16"));
    Engine::Impl& m = engine_->impl();
    truth_ = std::make_unique<MmapExpertSource>(m.spec, *m.arch, *m.files);
    ExpertIndex index(m.spec, *m.arch, *m.files);
    ExpertStoreOptions o;
    o.host_budget_bytes = plan_store(index, m.spec, 0, 0).slot_bytes * 6;
    o.io.mode = parse_io_mode(GetParam());
    o.io_decorator = [this](std::unique_ptr<IoEngine> inner) {
      inner->set_fault_hook(&gate_);
      return inner;
    };
    store_ = std::make_unique<ExpertStore>(m.spec, *m.arch, *m.files, o);
    pool_ = std::make_unique<ThreadPool>(2);
  }
  void TearDown() override {
    gate_.open();
    store_.reset();  // drains the reads before the gate goes
  }

  // Runs the MoE block of `layer` on one token through `src`, recording the
  // experts in compute order.
  std::vector<float> run_op(ExpertSource& src, int layer, const std::vector<float>& x, std::vector<int32_t>* order,
                            std::function<void(int32_t)> on_computed = {}) {
    Engine::Impl& m = engine_->impl();
    cpu::MoeOp op(src, *pool_);
    op.set_expert_observer([&](int l, int32_t e) {
      EXPECT_EQ(l, layer);
      if (order) order->push_back(e);
      if (on_computed) on_computed(e);
    });
    std::vector<float> out(size_t(m.spec.hidden));
    op.run(moe_params(m.spec, m.weights, layer), x.data(), 1, m.spec.hidden, out.data());
    routed_ = op.last_routing().experts;
    return out;
  }

  std::vector<float> input(int seed) {
    std::mt19937 rng{uint32_t(seed)};
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(size_t(engine_->spec().hidden));
    for (float& v : x) v = d(rng);
    return x;
  }

  void make_resident(int layer, std::vector<int32_t> ids) {
    std::vector<ExpertWeights> w(ids.size());
    store_->acquire(layer, ids, w);
    store_->release(layer, ids);
  }

  std::shared_ptr<Engine> engine_;
  std::unique_ptr<MmapExpertSource> truth_;
  std::unique_ptr<ExpertStore> store_;
  std::unique_ptr<ThreadPool> pool_;
  Gate gate_;
  std::vector<int32_t> routed_;
};

TEST_P(Overlap, ResidentExpertsAreComputedWhileAMissIsRead) {
  const int layer = 2;
  const auto x = input(1);
  const std::vector<float> want = run_op(*truth_, layer, x, nullptr);
  const std::vector<int32_t> chosen = routed_;  // top-3, most likely first
  ASSERT_EQ(chosen.size(), 3u);
  // The first two are resident, the last one's read is held at the gate.
  make_resident(layer, {chosen[0], chosen[1]});
  gate_.arm(middle_of(store_->index().at(layer, chosen[2])));
  const uint64_t misses = store_->stats().misses;

  std::vector<int32_t> order;
  int computed_resident = 0;
  const std::vector<float> got = run_op(*store_, layer, x, &order, [&](int32_t e) {
    if (e != chosen[2] && ++computed_resident == 2) gate_.open();  // only progress of the op opens the gate
  });

  EXPECT_FALSE(gate_.timed_out()) << "the op waited for the slow read before computing what was resident";
  EXPECT_EQ(gate_.blocked(), 1);
  EXPECT_EQ(store_->stats().misses, misses + 1);
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[2], chosen[2]);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
}

// io_uring issues reads from one thread, so a gate there would hold back
// every read behind it; the pread pool reads on separate threads.
TEST_P(Overlap, MissesAreComputedInTheOrderTheirReadsLand) {
  if (GetParam() != "pread") GTEST_SKIP() << "needs reads on separate threads";
  const int layer = 0;
  const auto x = input(2);
  const std::vector<float> want = run_op(*truth_, layer, x, nullptr);
  const std::vector<int32_t> chosen = routed_;
  // chosen[0] resident; chosen[1] is read first but held until chosen[2],
  // read after it, has been computed.
  make_resident(layer, {chosen[0]});
  gate_.arm(middle_of(store_->index().at(layer, chosen[1])));

  std::vector<int32_t> order;
  const std::vector<float> got = run_op(*store_, layer, x, &order, [&](int32_t e) {
    if (e == chosen[2]) gate_.open();
  });

  EXPECT_FALSE(gate_.timed_out()) << "the op waited for the first miss while the second had landed";
  EXPECT_EQ(order, (std::vector<int32_t>{chosen[0], chosen[2], chosen[1]}));
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
}

TEST_P(Overlap, PredictionsWaitUntilTheDemandReadsLanded) {
  const int layer = 0;
  gate_.arm(middle_of(store_->index().at(layer, 3)));
  ExpertHold h;
  const std::vector<int32_t> ids = {3};
  store_->acquire_async(layer, ids, h);  // returns while the read is held
  EXPECT_EQ(h.waiting, 1u);
  EXPECT_EQ(h.ready[0], 0);
  // A prediction for the next MoE layer is not read while the demand read
  // is in flight...
  const std::vector<int32_t> hint = {5};
  store_->prefetch(2, hint);
  EXPECT_EQ(store_->stats().prefetch_issued, 0u);
  gate_.open();
  EXPECT_EQ(store_->wait_any(h), 1u);
  EXPECT_EQ(h.ready[0], 1);
  // ...and is read as soon as it has landed.
  EXPECT_EQ(store_->stats().prefetch_issued, 0u) << "prefetch is off in this store";
  store_->release_hold(h);
}

INSTANTIATE_TEST_SUITE_P(Io, Overlap, ::testing::Values("direct", "pread"),
                         [](const auto& info) { return info.param; });

// With prefetch on, the same ordering check: the prediction is read only
// after the demand read landed.
TEST(OverlapPrefetch, PredictionsAreReadAfterTheDemandReadLands) {
  auto engine = Engine::load(test::fixture("oracle/qwen3_moe_bf16"));
  Engine::Impl& m = engine->impl();
  ExpertIndex index(m.spec, *m.arch, *m.files);
  Gate gate;
  ExpertStoreOptions o;
  o.host_budget_bytes = plan_store(index, m.spec, 0, 0).slot_bytes * 8;
  o.io.mode = IoMode::kPread;
  o.prefetch = true;
  o.prefetch_in_flight = 2;
  o.io_decorator = [&](std::unique_ptr<IoEngine> inner) {
    inner->set_fault_hook(&gate);
    return inner;
  };
  ExpertStore store(m.spec, *m.arch, *m.files, o);
  gate.arm(middle_of(index.at(0, 3)));
  ExpertHold h;
  const std::vector<int32_t> ids = {3, 4};
  store.acquire_async(0, ids, h);
  const std::vector<int32_t> hint = {5, 6, 1};
  store.prefetch(2, hint);
  EXPECT_EQ(store.stats().prefetch_issued, 0u) << "a prediction was read beside a demand read";
  gate.open();
  while (h.waiting) store.wait_any(h);
  EXPECT_EQ(store.stats().prefetch_issued, 2u) << "two reads in flight at most, issued once the demand reads landed";
  store.release_hold(h);
  // The predicted experts arrive as prefetch hits.
  std::vector<ExpertWeights> w(2);
  const std::vector<int32_t> next = {5, 6};
  store.acquire(2, next, w);
  store.release(2, next);
  EXPECT_EQ(store.stats().prefetch_hits, 2u);
  EXPECT_EQ(store.stats().prefetch_used, 2u);
}

// An I/O error in the middle of an overlapped step names the expert and
// file, and leaves nothing held: the next step runs at the same budget.
TEST(OverlapErrors, AFailedMissLeavesTheOpAndStoreUsable) {
  test::TempDir dir;
  for (auto& f : std::filesystem::directory_iterator(test::fixture("oracle/qwen3_moe_bf16")))
    std::filesystem::copy_file(f.path(), dir.file(f.path().filename().string()));
  auto engine = Engine::load(dir.path());
  Engine::Impl& m = engine->impl();
  MmapExpertSource truth(m.spec, *m.arch, *m.files);
  ExpertIndex index(m.spec, *m.arch, *m.files);
  FaultyIo* faulty = nullptr;
  ExpertStoreOptions o;
  o.host_budget_bytes = plan_store(index, m.spec, 0, 0).min_budget;  // exactly one layer's top-k
  o.io.mode = IoMode::kDirect;
  o.io_decorator = [&](std::unique_ptr<IoEngine> inner) {
    auto f = std::make_unique<FaultyIo>(std::move(inner));
    faulty = f.get();
    return std::unique_ptr<IoEngine>(std::move(f));
  };
  ExpertStore store(m.spec, *m.arch, *m.files, o);
  ThreadPool pool(2);
  std::vector<float> x(size_t(m.spec.hidden), 0.25f);
  std::vector<float> want(x.size()), got(x.size());
  cpu::MoeOp ref(truth, pool);
  ref.run(moe_params(m.spec, m.weights, 2), x.data(), 1, m.spec.hidden, want.data());
  const int32_t bad = ref.last_routing().experts[1];
  faulty->fail_at(0, middle_of(index.at(2, bad)), EIO);

  cpu::MoeOp op(store, pool);
  try {
    op.run(moe_params(m.spec, m.weights, 2), x.data(), 1, m.spec.hidden, got.data());
    FAIL() << "expected an I/O error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("expert " + std::to_string(bad) + " of layer 2"), std::string::npos) << what;
    EXPECT_NE(what.find("model.safetensors"), std::string::npos) << what;
    EXPECT_NE(what.find("offset"), std::string::npos) << what;
  }
  faulty->clear();
  // Every slot is needed again: anything still held would make this fail.
  op.run(moe_params(m.spec, m.weights, 2), x.data(), 1, m.spec.hidden, got.data());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
}

// Whole-model logits under reads that land in a scrambled order (each read
// delayed by a pseudo-random 0-6 ms): bit-identical to a resident model, in
// both I/O modes and with both predictors feeding prefetch.
class ScrambledDelays final : public IoFaultHook {
 public:
  IoFault before_read(IoFileId, uint64_t offset, uint64_t) override {
    IoFault f;
    f.delay = std::chrono::microseconds(((offset / 4096) * 2654435761u) % 7000);
    return f;
  }
};

TEST(OverlapLogits, OutOfOrderArrivalsGiveIdenticalLogits) {
  const std::string dir = test::fixture("oracle/olmoe_bf16");
  EngineOptions eo;
  eo.threads = 2;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 9; ++i) prompt.push_back((i * 13 + 5) % 200);
  const auto want = test::run_tokens(Engine::load(dir, eo), prompt, 8);
  for (const char* io : {"direct", "pread"})
    for (bool prefetch : {false, true}) {
      auto e = Engine::load(dir, eo);
      Engine::Impl& m = e->impl();
      ExpertIndex index(m.spec, *m.arch, *m.files);
      ScrambledDelays delays;
      ExpertStoreOptions o;
      o.host_budget_bytes = plan_store(index, m.spec, 0, 0).min_budget * 2;
      o.io.mode = parse_io_mode(io);
      o.prefetch = prefetch;
      o.prefetch_predictors = kPredictRouter | kPredictPrevious;
      o.prefetch_in_flight = 2;
      o.io_decorator = [&](std::unique_ptr<IoEngine> inner) {
        inner->set_fault_hook(&delays);
        return inner;
      };
      m.replace_experts(std::make_unique<ExpertStore>(m.spec, *m.arch, *m.files, o));
      const auto got = test::run_tokens(e, prompt, 8);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << io << " prefetch " << prefetch;
      const ExpertStats s = e->expert_stats();
      EXPECT_GT(s.misses, 0u);
      if (prefetch) {
        EXPECT_GT(s.prefetch_issued, 0u);
      }
      m.replace_experts(nullptr);  // drains before `delays` goes
    }
}

}  // namespace
