#include "model/tensor_check.h"

#include <fmt/format.h>

#include <charconv>

#include "core/error.h"

namespace moeflux {

std::set<int64_t> numbered_blocks(const std::vector<std::string_view>& names, std::string_view prefix) {
  std::set<int64_t> out;
  for (std::string_view n : names) {
    if (n.substr(0, prefix.size()) != prefix) continue;
    const std::string_view rest = n.substr(prefix.size());
    int64_t v = -1;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
    if (ec == std::errc() && p != rest.data() && p < rest.data() + rest.size() && *p == '.' && v >= 0) out.insert(v);
  }
  return out;
}

void check_layer_count(int layers, const std::set<int64_t>& present, const std::string& src, const std::string& key,
                       std::string_view prefix) {
  const int64_t top = present.empty() ? -1 : *present.rbegin();
  if (int64_t(present.size()) == layers && top == layers - 1) return;
  if (present.empty())
    fail("{}: {} = {} but there are no '{}N.' tensors", src, key, layers, prefix);
  fail("{}: {} = {} but the tensors cover {} layer(s), '{}{}.' to '{}{}.'{}", src, key, layers, present.size(), prefix,
       *present.begin(), prefix, top,
       int64_t(present.size()) == top + 1 ? "" : " (with gaps)");
}

void check_spec_against_checkpoint(const ModelSpec& s, const ArchDef& arch, const TensorTable& files,
                                   const std::string& src) {
  std::vector<std::string_view> names;
  names.reserve(files.tensors().size());
  for (auto& [n, _] : files.tensors()) names.push_back(n);
  check_layer_count(s.layers, numbered_blocks(names, "model.layers."), src, "config.json 'num_hidden_layers'",
                    "model.layers.");
  // Experts: per-expert tensors name them; stacked (MLX switch_mlp) ones
  // carry them as the leading dimension.
  for (int l = 0; l < s.layers; ++l) {
    if (!s.layer_is_moe[size_t(l)]) continue;
    const std::string moe = layer_prefix(l) + std::string(arch.moe_prefix);
    const std::set<int64_t> experts = numbered_blocks(names, moe + "experts.");
    if (!experts.empty()) {
      // Exactly 0..experts-1: a count above the tensors present would have
      // model_tensors() build names for every claimed expert.
      const int64_t top = *experts.rbegin();
      if (top >= s.experts)
        fail("{}: the config says {} experts but '{}experts.{}.' exists", src, s.experts, moe, top);
      if (int64_t(experts.size()) != s.experts)
        fail("{}: the config says {} experts but layer {} has tensors for {} ('{}experts.N.')", src, s.experts, l,
             experts.size(), moe);
    } else if (const TensorRef* st = files.find(moe + "switch_mlp.gate_proj.weight")) {
      if (st->shape.empty() || st->shape[0] != s.experts)
        fail("{}: stacked tensor '{}' has shape {}, but the config says {} experts", st->file, st->name,
             st->shape_str(), s.experts);
    } else {
      fail("{}: layer {} is a MoE layer but no '{}experts.N.' or '{}switch_mlp.' tensors exist", src, l, moe, moe);
    }
    break;  // the first MoE layer bounds the count; the binder checks every layer's tensors
  }
}

void check_no_unused_tensors(const std::vector<std::string_view>& names, const std::set<std::string, std::less<>>& used,
                             const std::string& where, const std::vector<std::string_view>& namespaces) {
  std::vector<std::string_view> unused;
  for (std::string_view n : names) {
    if (used.count(n)) continue;
    bool ours = namespaces.empty();
    for (std::string_view p : namespaces) ours |= n.substr(0, p.size()) == p;
    if (!ours) continue;
    // Non-persistent RoPE buffers some older checkpoints saved; transformers
    // recomputes them from rope_theta and ignores the stored copy.
    if (n.find("rotary_emb.inv_freq") != std::string_view::npos) continue;
    unused.push_back(n);
  }
  if (unused.empty()) return;
  const size_t show = std::min<size_t>(unused.size(), 5);
  fail("{}: {} tensor(s) are not part of the model as the config describes it: {}{} (a config that does not match "
       "the checkpoint, e.g. too small num_hidden_layers or num_experts, or an unsupported variant)",
       where, unused.size(), fmt::join(unused.begin(), unused.begin() + long(show), ", "),
       unused.size() > show ? ", ..." : "");
}

}  // namespace moeflux
