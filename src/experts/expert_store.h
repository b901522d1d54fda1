// The tiered expert store: routed experts live on storage and are read into
// a host arena of fixed slots under a byte budget, with a cache policy
// deciding what stays, pinned experts that never leave, and optional
// prefetch of the next layer's likely experts while this layer computes.
//
// A slot is Free, Loading (its reads are in flight), Ready, or Failed (its
// read failed while callers held it; freed when the last lets go). Every
// read of a slot is its own submit, so each expert becomes ready as soon as
// its own reads land: acquire_async() starts the misses and returns, and
// wait_any() hands experts over in the order their reads complete.
//
// Prefetch reads never compete with the demand reads of the layer being
// computed: predictions are queued while demand reads are in flight and
// submitted when the last one lands (or at once if none is in flight); at
// most `prefetch_in_flight` of them are read at a time, so a demand miss of
// the next layer queues behind at most that many.
#pragma once
#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "experts/cache_policy.h"
#include "experts/expert_index.h"
#include "experts/expert_source.h"
#include "experts/file_watch.h"
#include "experts/model_files.h"
#include "experts/host_arena.h"
#include "experts/io/io_engine.h"

namespace moeflux {

struct ExpertStoreOptions {
  uint64_t host_budget_bytes = 0;
  IoOptions io;
  std::string policy = "lru";
  bool prefetch = false;
  // With prefetch on: which predictors the MoE op feeds it (PrefetchPredictor
  // bits; see parse_prefetch_spec). The environment variable
  // MOEFLUX_PREFETCH, in the same syntax, overrides this and the next field,
  // so that a benchmark script can sweep them without new flags.
  unsigned prefetch_predictors = kPredictRouter;
  // Prefetch reads in flight at once (and slots kept for them).
  int prefetch_in_flight = 1;
  // Longest time between two full checks of the weights files (fstat + stat
  // of each) when inotify reports no change; see FileWatch.
  std::chrono::milliseconds file_check_backstop{1000};
  std::vector<std::pair<int, int>> pinned;  // (layer, expert) kept resident from load on
  // Wraps the I/O engine (tests inject faults through FaultyIo this way).
  std::function<std::unique_ptr<IoEngine>(std::unique_ptr<IoEngine>)> io_decorator;
};

// "router", "previous" or "router,previous", optionally followed by
// ",depth=N": sets predictors and the prefetch reads in flight; throws
// moeflux::Error naming the bad item.
void parse_prefetch_spec(const std::string& spec, unsigned& predictors, int& depth);

// Slots the budget buys, and the smallest budget that works (one layer's
// top-k working set plus the pinned experts).
struct StorePlan {
  uint64_t slot_bytes = 0;
  size_t slots = 0;
  uint64_t min_budget = 0;
};
StorePlan plan_store(const ExpertIndex& index, const ModelSpec& spec, uint64_t budget, size_t pinned);

class ExpertStore final : public ExpertSource {
 public:
  ExpertStore(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st, ExpertStoreOptions options);
  ~ExpertStore() override;

  // Blocking: acquire_async, then wait for every expert.
  void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) override;
  void release(int layer, std::span<const int32_t> experts) override;
  void acquire_async(int layer, std::span<const int32_t> experts, ExpertHold& hold) override;
  size_t wait_any(ExpertHold& hold) override;
  void release_hold(ExpertHold& hold) override;
  void prefetch(int layer, std::span<const int32_t> experts) override;
  unsigned prefetch_predictors() const override { return options_.prefetch ? predictors_ : kPredictNone; }
  int max_acquire() const override { return int(max_acquire_); }
  ExpertStats stats() const override;
  std::string describe() const override;
  std::vector<HostRegion> host_regions() const override { return {{arena_->slot(0), arena_->bytes()}}; }

  const ExpertIndex& index() const { return index_; }
  size_t slots() const { return arena_->slots(); }
  // Full checks of the weights files run so far (tests: that the hot path
  // no longer stats every file on each miss).
  uint64_t file_checks() const;

 private:
  enum class State : uint8_t { Free, Loading, Ready, Failed };
  struct Slot {
    State state = State::Free;
    uint32_t key = UINT32_MAX;
    int refs = 0;
    bool pinned = false;
    bool by_prefetch = false;        // while Loading: started by prefetch (counts in prefetch_loading_)
    bool demand = false;             // while Loading: a caller waits (counts in demand_loading_)
    bool prefetched_unused = false;  // loaded by prefetch, not yet acquired
    uint64_t seq = 0;                // load order: wait_any waits on the oldest read first
    // The slot's reads: they must outlive the submit, and a slot is read
    // again only after its previous reads completed, so they live here.
    std::array<ReadRequest, ExpertExtents::kMaxRanges> requests;
    size_t n_requests = 0;  // of `requests` in use: 3, or up to 9 for MLX affine experts
    IoTicket ticket;
    ExpertWeights views;  // where the expert's matrices sit in the slot
    std::string error;    // Failed: what went wrong, naming layer, expert, file and offset
  };

  uint32_t key(int layer, int expert) const { return uint32_t(layer) * uint32_t(index_.experts()) + uint32_t(expert); }
  int layer_of(uint32_t k) const { return int(k / uint32_t(index_.experts())); }
  int expert_of(uint32_t k) const { return int(k % uint32_t(index_.experts())); }
  // Under mu_: a free slot, evicting per policy a Ready, unreferenced,
  // unpinned expert for which keep(key) is false; SIZE_MAX if there is none.
  size_t take_slot(const std::function<bool(uint32_t)>& keep);
  // Under mu_: starts reading expert `k` into slot s.
  void load_into(size_t s, uint32_t k, int refs, bool by_prefetch);
  // Under mu_: slot s's reads are done: Ready, or Failed/freed on error.
  void settle(size_t s);
  // Under mu_: settles every Loading slot whose reads are done.
  void settle_finished();
  // Under mu_: drops one reference; frees a Failed slot nobody holds.
  void unref(size_t s);
  // Under mu_: submits queued predictions if no demand read is in flight.
  void pump_prefetches();
  // Under mu_, unlocks while waiting: waits for some Loading slot nobody
  // holds (a prefetch, or a read its caller gave up on) so its slot can be
  // reused. False if there is none.
  bool wait_for_orphan(std::unique_lock<std::mutex>& lk);
  // Under mu_: throws naming the expert and the file when any weights file
  // of the model was replaced, truncated or rewritten since it was opened.
  // Runs on every acquire, hits included: the dense weights were copied at
  // load and the resident experts were read before the change, so serving
  // on would mix two versions of the model. The full check runs only when
  // the file watch says one is due.
  void refuse_changed_files(int layer, int expert);

  const ModelSpec& spec_;
  ExpertIndex index_;
  ExpertStoreOptions options_;
  unsigned predictors_ = kPredictRouter;
  std::unique_ptr<IoEngine> io_;
  std::vector<IoFileId> file_ids_;
  std::unique_ptr<HostArena> arena_;
  std::unique_ptr<CachePolicy> policy_;
  std::unique_ptr<ModelFiles> model_files_;  // every weights file, watched
  std::vector<Slot> slots_;
  std::unordered_map<uint32_t, size_t> where_;  // key -> slot, for Loading and Ready slots
  std::vector<size_t> free_;
  std::vector<size_t> loading_;   // slots in state Loading
  std::vector<uint32_t> queued_;  // predicted keys waiting for the demand reads to land
  size_t demand_loading_ = 0, prefetch_loading_ = 0;
  uint64_t next_seq_ = 0;
  size_t max_acquire_ = 0;
  size_t prefetch_slots_ = 0;  // prefetch reads in flight at once
  bool files_changed_ = false;  // a check found a change: check on every acquire from now on
  uint64_t file_checks_ = 0;
  mutable std::mutex mu_;
  ExpertStats stats_;
};

// "8G", "512M", "25%" (of the routed experts' bytes), "auto" (what fits in
// RAM leaving `keep_free` plus the dense weights), or plain bytes.
uint64_t parse_expert_budget(const std::string& s, uint64_t expert_bytes_total, uint64_t dense_bytes,
                             uint64_t keep_free = 4ull << 30);
// The same against a model's stored sizes; a budget of 0 bytes is refused.
uint64_t expert_budget_for(const std::string& text, const ModelSpec& spec);

}  // namespace moeflux
