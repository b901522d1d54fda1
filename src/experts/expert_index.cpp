#include "experts/expert_index.h"

#include <algorithm>

#include "model/weights.h"

namespace moeflux {

ExpertIndex::ExpertIndex(const ModelSpec& s, const ArchDef& arch, const TensorTable& st)
    : layers_(s.layers), experts_(size_t(s.experts)), is_moe_(s.layer_is_moe) {
  table_.resize(size_t(s.layers) * experts_);
  auto file_index = [&](const std::string& path) {
    auto it = std::find(files_.begin(), files_.end(), path);
    if (it != files_.end()) return uint32_t(it - files_.begin());
    files_.push_back(path);
    return uint32_t(files_.size() - 1);
  };
  auto extent = [&](const TensorRef& t) {
    Extent x{file_index(t.file), t.offset, t.nbytes, t.dtype, t.shape[0], t.shape[1], t.data};
    if (t.mlx) {
      x.bits = uint8_t(t.mlx->bits);
      x.group_size = uint16_t(t.mlx->group_size);
      x.scale_dtype = t.mlx->scale_dtype;
      auto range = [&](const TensorPart& p) { return FileRange{file_index(p.file), p.offset, p.nbytes, p.data}; };
      x.scales = range(t.mlx->scales);
      if (t.dtype == DType::MLX) x.biases = range(t.mlx->biases);  // FP8 block scales have none
    }
    return x;
  };
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
      ExpertExtents& x = table_[size_t(l) * experts_ + size_t(e)];
      x = {extent(g), extent(u), extent(d)};
      max_bytes_ = std::max(max_bytes_, x.bytes());
      total_bytes_ += x.bytes();
    }
  }
}

}  // namespace moeflux
