// How the MoE op reaches routed experts. The op asks for the experts one
// layer's router chose, computes, then releases them; between the two calls
// the views stay valid. The memory-mapped source below serves them straight
// from the weight files; the streaming store implements the same interface
// with budgets, caching and prefetch.
//
// Two ways to acquire:
//   acquire()/release()        blocking: every view is readable on return.
//   acquire_async()/wait_any()/release_hold()
//                              returns at once with the views of every
//                              expert; those whose bytes are still being
//                              read are marked not ready, and wait_any()
//                              blocks until at least one more lands. The MoE
//                              op computes the resident experts while the
//                              misses are read, then each miss as it lands.
#pragma once
#include <cstdint>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <span>
#include <vector>

#include "format/weight_view.h"
#include "moeflux/expert_stats.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

struct ExpertWeights {
  WeightView gate, up, down;  // [ffn, hidden], [ffn, hidden], [hidden, ffn]
};

// Where a held expert's bytes are: host memory (a mapped file, the host
// arena) or a device tier (a GPU's expert slots). A backend computes an
// expert from the tier it can read, or moves it.
enum class ExpertTier : uint8_t { Host, Device };

// The experts of one layer that one caller holds between acquire_async()
// and release_hold(). Owned by the caller and reused across calls, so the
// decode path allocates nothing once the vectors have grown.
struct ExpertHold {
  int layer = -1;
  std::vector<int32_t> experts;
  std::vector<ExpertWeights> weights;  // [i]: where expert i's bytes are, or will be once ready[i]
  std::vector<uint8_t> ready;          // [i]: 1 once the bytes of weights[i] may be read
  std::vector<ExpertTier> tier;        // [i]: the tier weights[i] points into
  // [i]: on a device tier, the event (e.g. a cudaEvent_t) after which the
  // copy filling weights[i] is complete, for work queued behind it on the
  // device; null where ready[i] alone says it (host tiers).
  std::vector<const void*> ready_event;
  std::vector<uint64_t> handles;       // [i]: the source's own (the store: the slot)
  size_t waiting = 0;                  // experts not ready yet
  bool held = false;                   // between acquire_async and release_hold
};

// Which predictors the MoE op should feed prefetch() with (a bit set).
enum PrefetchPredictor : unsigned {
  kPredictNone = 0,
  // The next MoE layer's router applied to this layer's input (pre-gating).
  kPredictRouter = 1,
  // The experts the previous token chose at the next MoE layer.
  kPredictPrevious = 2,
};

class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // Fills out[i] with expert experts[i] of `layer`; valid until release().
  // At most max_acquire() experts may be held at once.
  virtual void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) = 0;
  virtual void release(int layer, std::span<const int32_t> experts) = 0;

  // Holds experts[i] of `layer` in `hold` (which must not be held) and
  // returns without waiting for storage: hold.weights[i] says where each
  // expert's bytes are or will be, hold.ready[i] whether they are there.
  // Throws (holding nothing) when an expert does not exist, the budget has
  // no room, or a weights file changed. The default serves everything ready
  // through acquire().
  virtual void acquire_async(int layer, std::span<const int32_t> experts, ExpertHold& hold);
  // Blocks until at least one expert of `hold` that was not ready has
  // landed; marks every landed one ready and returns how many became ready.
  // Throws an Error naming the layer, expert, file and offset when a read
  // failed; the hold is still held then and must be released.
  virtual size_t wait_any(ExpertHold& hold);
  // Lets go of every expert of `hold` (reads still in flight complete in
  // the background); the hold may then be reused.
  virtual void release_hold(ExpertHold& hold);

  // A hint that these experts of `layer` will likely be acquired soon.
  virtual void prefetch(int layer, std::span<const int32_t> experts) {}
  // PrefetchPredictor bits; 0: prefetch() is not wanted.
  virtual unsigned prefetch_predictors() const { return kPredictNone; }
  virtual int max_acquire() const { return INT32_MAX; }
  virtual ExpertStats stats() const { return {}; }
  virtual std::string describe() const { return "all experts memory-mapped"; }
  // The host memory the source reads experts into (the host tier's arena),
  // for a GPU backend to page-lock (cudaHostRegister) so that copies from it
  // run at the link's speed, asynchronously. Empty: nothing of its own.
  struct HostRegion {
    void* base = nullptr;
    size_t bytes = 0;
  };
  virtual std::vector<HostRegion> host_regions() const { return {}; }

 protected:
  // Sizes `hold` for `experts` of `layer`, everything not ready.
  static void start_hold(ExpertHold& hold, int layer, std::span<const int32_t> experts);
};

// Every expert of every MoE layer, read through the file memory maps.
// Each acquire first asks whether a weights file changed since it was
// opened (cheap, see ModelFiles) and refuses if so. The maps are guarded
// (core/mapping_guard.h): a file that shrinks while a kernel reads an
// expert gives zeros to that read instead of SIGBUS, and the next acquire
// reports the file. Copying every expert at load instead would read the
// whole model before the first token and hold it twice (anonymous memory
// and page cache) in the mode meant for models that just fit in RAM.
class ModelFiles;

class MmapExpertSource final : public ExpertSource {
 public:
  MmapExpertSource(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st);
  ~MmapExpertSource() override;
  void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) override;
  void release(int layer, std::span<const int32_t> experts) override {}

 private:
  int experts_ = 0;
  std::vector<ExpertWeights> table_;  // [layer * experts + e]; empty views for dense layers
  std::unique_ptr<ModelFiles> files_;
  std::mutex files_mu_;  // ModelFiles::poll is not thread-safe; sessions may share the source
};

}  // namespace moeflux
