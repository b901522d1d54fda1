#include "model/tensor_list.h"

#include "core/error.h"

namespace moeflux {

uint64_t ModelTensor::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

void TensorList::add(std::string name, std::vector<int64_t> shape, ParamKind kind, int layer, TensorSlot slot,
                     int expert) {
  out_.push_back({std::move(name), std::move(shape), kind, layer, slot, expert});
}

void TensorList::attention(const std::string& a, int l) {
  using S = TensorSlot;
  const ModelSpec& s = spec;
  const int64_t D = s.hidden, Q = s.q_dim(), KV = s.kv_dim();
  add(a + "q_proj.weight", {Q, D}, ParamKind::Linear, l, S::Q);
  add(a + "k_proj.weight", {KV, D}, ParamKind::Linear, l, S::K);
  add(a + "v_proj.weight", {KV, D}, ParamKind::Linear, l, S::V);
  add(a + "o_proj.weight", {D, Q}, ParamKind::Linear, l, S::O);
  if (s.qkv_bias) {
    add(a + "q_proj.bias", {Q}, ParamKind::Bias, l, S::QBias);
    add(a + "k_proj.bias", {KV}, ParamKind::Bias, l, S::KBias);
    add(a + "v_proj.bias", {KV}, ParamKind::Bias, l, S::VBias);
  }
  if (s.o_bias) add(a + "o_proj.bias", {D}, ParamKind::Bias, l, S::OBias);
  if (s.qk_norm == QkNorm::PerHead) {
    add(a + "q_norm.weight", {s.head_dim}, ParamKind::Norm, l, S::QNorm);
    add(a + "k_norm.weight", {s.head_dim}, ParamKind::Norm, l, S::KNorm);
  } else if (s.qk_norm == QkNorm::Full) {
    add(a + "q_norm.weight", {Q}, ParamKind::Norm, l, S::QNorm);
    add(a + "k_norm.weight", {KV}, ParamKind::Norm, l, S::KNorm);
  }
}

void TensorList::swiglu_mlp(const std::string& p, int64_t ffn, int l, TensorSlot gate, TensorSlot up,
                            TensorSlot down) {
  const int64_t D = spec.hidden;
  add(p + "gate_proj.weight", {ffn, D}, ParamKind::Linear, l, gate);
  add(p + "up_proj.weight", {ffn, D}, ParamKind::Linear, l, up);
  add(p + "down_proj.weight", {D, ffn}, ParamKind::Linear, l, down);
}

void TensorList::moe(const std::string& m, int l) {
  using S = TensorSlot;
  const ModelSpec& s = spec;
  const int64_t D = s.hidden;
  add(m + "gate.weight", {s.experts, D}, ParamKind::Router, l, S::Router);
  for (int e = 0; e < (all_experts_ ? s.experts : 1); ++e) {
    const ExpertTensorNames n = arch.expert_names(l, e);
    add(n.gate, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertGate, e);
    add(n.up, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertUp, e);
    add(n.down, {D, s.expert_ffn}, ParamKind::ExpertLinear, l, S::ExpertDown, e);
  }
  if (s.shared_ffn > 0) swiglu_mlp(m + "shared_expert.", s.shared_ffn, l, S::SharedGate, S::SharedUp, S::SharedDown);
  if (s.shared_expert_gate) add(m + "shared_expert_gate.weight", {1, D}, ParamKind::Linear, l, S::SharedExpertGate);
}

void TensorList::standard_layer(int l) {
  using S = TensorSlot;
  const std::string p = layer_prefix(l);
  add(p + "input_layernorm.weight", {spec.hidden}, ParamKind::Norm, l, S::AttnNorm);
  attention(p + "self_attn.", l);
  add(p + "post_attention_layernorm.weight", {spec.hidden}, ParamKind::Norm, l, S::FfnNorm);
  if (spec.layer_is_moe[size_t(l)])
    moe(p + std::string(arch.moe_prefix), l);
  else
    swiglu_mlp(p + "mlp.", spec.dense_ffn, l, S::MlpGate, S::MlpUp, S::MlpDown);
}

std::vector<ModelTensor> model_tensors(const ModelSpec& s, const ArchDef& arch, bool all_experts) {
  using S = TensorSlot;
  TensorList list(s, arch, all_experts);
  list.add("model.embed_tokens.weight", {s.vocab, s.hidden}, ParamKind::Embedding, -1, S::Embed);
  for (int l = 0; l < s.layers; ++l) {
    if (arch.layer_tensors)
      arch.layer_tensors(list, l);
    else
      list.standard_layer(l);
  }
  list.add("model.norm.weight", {s.hidden}, ParamKind::Norm, -1, S::FinalNorm);
  if (!s.tie_embeddings) list.add("lm_head.weight", {s.vocab, s.hidden}, ParamKind::Linear, -1, S::LmHead);
  return list.take();
}

ParamCounts count_params(const ModelSpec& s) {
  ParamCounts c;
  std::vector<uint64_t> layer_expert(size_t(s.layers), 0);  // expert 0's parameters per layer
  for (const ModelTensor& t : model_tensors(s, arch_def(s.arch), false)) {
    if (t.kind != ParamKind::ExpertLinear) {
      c.dense += t.numel();
      continue;
    }
    layer_expert.at(size_t(t.layer)) += t.numel();
  }
  for (uint64_t e : layer_expert) {
    if (e > 0 && c.expert == 0) c.expert = e;
    c.experts_total += e * uint64_t(s.experts);
    c.experts_active += e * uint64_t(s.top_k);
  }
  return c;
}

}  // namespace moeflux
