// The tiered expert store: routed experts live on storage and are read into
// a host arena of fixed slots under a byte budget, with a cache policy
// deciding what stays, pinned experts that never leave, and optional
// prefetch of the next layer's likely experts while this layer computes.
#pragma once
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
#include "experts/host_arena.h"
#include "experts/io/io_engine.h"

namespace moeflux {

struct ExpertStoreOptions {
  uint64_t host_budget_bytes = 0;
  IoOptions io;
  std::string policy = "lru";
  bool prefetch = false;
  std::vector<std::pair<int, int>> pinned;  // (layer, expert) kept resident from load on
  // Wraps the I/O engine (tests inject faults through FaultyIo this way).
  std::function<std::unique_ptr<IoEngine>(std::unique_ptr<IoEngine>)> io_decorator;
};

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

  void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) override;
  void release(int layer, std::span<const int32_t> experts) override;
  void prefetch(int layer, std::span<const int32_t> experts) override;
  bool wants_prefetch() const override { return options_.prefetch; }
  int max_acquire() const override { return int(max_acquire_); }
  ExpertStats stats() const override;
  std::string describe() const override;

  const ExpertIndex& index() const { return index_; }
  size_t slots() const { return arena_->slots(); }

 private:
  enum class State : uint8_t { Free, Loading, Ready };
  struct Batch {  // one submit: the requests must outlive the reads
    std::vector<ReadRequest> requests;
    IoTicket ticket;
  };
  struct Slot {
    State state = State::Free;
    uint32_t key = UINT32_MAX;
    int refs = 0;
    bool pinned = false;
    bool prefetched_unused = false;  // loaded by prefetch, not yet acquired
    std::shared_ptr<Batch> batch;    // while Loading
    size_t first_request = 0;        // this slot's requests in batch
    size_t n_requests = 0;
  };

  uint32_t key(int layer, int expert) const { return uint32_t(layer) * uint32_t(index_.experts()) + uint32_t(expert); }
  // Under mu_: a free slot, evicting per policy; SIZE_MAX if every slot is busy.
  size_t take_slot(const std::vector<uint32_t>& protect);
  // Under mu_: starts reading expert `k` into slot s.
  void load_into(size_t s, uint32_t k, int refs, bool prefetched);
  // Under mu_: lays out the reads of `k` into slot s and appends them to batch.
  void plan_reads(size_t s, uint32_t k, Batch& batch);
  // Waits for slot s's reads (mu_ not held by caller), then settles its state.
  void finish_loading(std::unique_lock<std::mutex>& lk, size_t s);
  ExpertWeights views(size_t s) const;
  // Throws naming the expert and file when a file it reads from was
  // replaced or truncated since it was opened.
  void refuse_changed_files(int layer, int expert);
  // Under mu_: prefetched slots whose reads have finished become Ready (or
  // free, if the read failed) so that they can be used or evicted.
  size_t settle_prefetches();

  const ModelSpec& spec_;
  ExpertIndex index_;
  ExpertStoreOptions options_;
  std::unique_ptr<IoEngine> io_;
  std::vector<IoFileId> file_ids_;
  std::unique_ptr<HostArena> arena_;
  std::unique_ptr<CachePolicy> policy_;
  std::vector<Slot> slots_;
  std::unordered_map<uint32_t, size_t> where_;  // key -> slot
  std::vector<size_t> free_;
  size_t max_acquire_ = 0;
  size_t prefetch_slots_ = 0;  // slots prefetch may hold while their reads are in flight
  mutable std::mutex mu_;
  ExpertStats stats_;
};

// "8G", "512M", "25%" (of the routed experts' bytes), "auto" (what fits in
// RAM leaving `keep_free` plus the dense weights), or plain bytes.
uint64_t parse_expert_budget(const std::string& s, uint64_t expert_bytes_total, uint64_t dense_bytes,
                             uint64_t keep_free = 4ull << 30);

}  // namespace moeflux
