#include "core/error.h"
#include "experts/expert_source.h"
#include "model/weights.h"

namespace moeflux {

MmapExpertSource::MmapExpertSource(const ModelSpec& s, const ArchDef& arch, const SafetensorsModel& st)
    : experts_(s.experts) {
  table_.resize(size_t(s.layers) * size_t(s.experts));
  for (int l = 0; l < s.layers; ++l) {
    if (!s.layer_is_moe[size_t(l)]) continue;
    for (int e = 0; e < s.experts; ++e) {
      const ExpertTensorNames n = arch.expert_names(l, e);
      const TensorRef& g = st.get(n.gate);
      const TensorRef& u = st.get(n.up);
      const TensorRef& d = st.get(n.down);
      check_tensor(g, {s.expert_ffn, s.hidden});
      check_tensor(u, {s.expert_ffn, s.hidden});
      check_tensor(d, {s.hidden, s.expert_ffn});
      table_[size_t(l) * size_t(s.experts) + size_t(e)] = {WeightView::of(g), WeightView::of(u), WeightView::of(d)};
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
