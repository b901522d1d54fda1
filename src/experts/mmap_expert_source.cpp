#include <algorithm>

#include "core/error.h"
#include "experts/expert_index.h"
#include "experts/expert_source.h"
#include "experts/model_files.h"

namespace moeflux {

MmapExpertSource::MmapExpertSource(const ModelSpec& s, const ArchDef& arch, const TensorTable& st)
    : experts_(s.experts) {
  const ExpertIndex index(s, arch, st);  // names, shapes and dtypes checked there
  auto view = [](const Extent& e) { return view_of(e, e.mapped, e.scales.mapped, e.biases.mapped); };
  table_.resize(size_t(s.layers) * size_t(s.experts));
  for (int l = 0; l < s.layers; ++l) {
    if (!index.has_layer(l)) continue;
    for (int e = 0; e < s.experts; ++e) {
      const ExpertExtents& x = index.at(l, e);
      table_[size_t(l) * size_t(s.experts) + size_t(e)] = {view(x.gate), view(x.up), view(x.down)};
    }
  }
  files_ = std::make_unique<ModelFiles>(st, /*guard_maps=*/true);
}

MmapExpertSource::~MmapExpertSource() = default;

void MmapExpertSource::acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) {
  {
    std::lock_guard lk(files_mu_);
    if (auto changes = files_->poll(); !changes.empty())
      fail("{}", describe_changes(layer, experts.empty() ? -1 : experts[0], changes));
  }
  for (size_t i = 0; i < experts.size(); ++i) {
    const int32_t e = experts[i];
    if (e < 0 || e >= experts_) fail("expert {} of layer {} out of range [0, {})", e, layer, experts_);
    out[i] = table_[size_t(layer) * size_t(experts_) + size_t(e)];
    if (!out[i].gate.data) fail("layer {} has no routed experts", layer);
  }
}

}  // namespace moeflux

namespace moeflux {

void ExpertSource::start_hold(ExpertHold& h, int layer, std::span<const int32_t> experts) {
  if (h.held) fail("an expert hold of layer {} is still held; release it first", h.layer);
  const size_t n = experts.size();
  h.layer = layer;
  h.experts.assign(experts.begin(), experts.end());
  h.weights.resize(n);
  h.ready.assign(n, 0);
  h.tier.assign(n, ExpertTier::Host);  // both sources today hold experts in host memory
  h.ready_event.assign(n, nullptr);
  h.handles.assign(n, 0);
  h.waiting = n;
}

void ExpertSource::acquire_async(int layer, std::span<const int32_t> experts, ExpertHold& h) {
  start_hold(h, layer, experts);
  acquire(layer, experts, h.weights);
  std::fill(h.ready.begin(), h.ready.end(), uint8_t(1));
  h.waiting = 0;
  h.held = true;
}

size_t ExpertSource::wait_any(ExpertHold& h) {
  if (h.waiting == 0) fail("wait_any on layer {}: no expert is being read", h.layer);
  fail("this expert source ({}) has no reads to wait for", describe());
}

void ExpertSource::release_hold(ExpertHold& h) {
  if (!h.held) return;
  h.held = false;
  release(h.layer, h.experts);
}

}  // namespace moeflux
