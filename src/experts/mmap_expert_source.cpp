#include "core/error.h"
#include "experts/expert_index.h"
#include "experts/expert_source.h"

namespace moeflux {

MmapExpertSource::MmapExpertSource(const ModelSpec& s, const ArchDef& arch, const TensorTable& st)
    : experts_(s.experts) {
  const ExpertIndex index(s, arch, st);  // names, shapes and dtypes checked there
  auto view = [](const Extent& e) { return WeightView{e.mapped, e.dtype, e.rows, e.cols}; };
  table_.resize(size_t(s.layers) * size_t(s.experts));
  for (int l = 0; l < s.layers; ++l) {
    if (!index.has_layer(l)) continue;
    for (int e = 0; e < s.experts; ++e) {
      const ExpertExtents& x = index.at(l, e);
      table_[size_t(l) * size_t(s.experts) + size_t(e)] = {view(x.gate), view(x.up), view(x.down)};
    }
  }
}

void MmapExpertSource::acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) {
  for (size_t i = 0; i < experts.size(); ++i) {
    const int32_t e = experts[i];
    if (e < 0 || e >= experts_) fail("expert {} of layer {} out of range [0, {})", e, layer, experts_);
    out[i] = table_[size_t(layer) * size_t(experts_) + size_t(e)];
    if (!out[i].gate.data) fail("layer {} has no routed experts", layer);
  }
}

}  // namespace moeflux
