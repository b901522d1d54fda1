#include "model/tensor_list.h"

namespace moeflux {

std::vector<ModelTensor> model_tensors(const ModelSpec& s, const ArchDef& arch) {
  const int64_t D = s.hidden, Q = s.q_dim(), KV = s.kv_dim();
  std::vector<ModelTensor> out;
  using S = TensorSlot;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind, int layer, S slot, int expert = -1) {
    out.push_back({std::move(name), std::move(shape), kind, layer, slot, expert});
  };
  auto mlp = [&](const std::string& p, int64_t ffn, int layer, S gate, S up, S down) {
    add(p + "gate_proj.weight", {ffn, D}, ParamKind::Linear, layer, gate);
    add(p + "up_proj.weight", {ffn, D}, ParamKind::Linear, layer, up);
    add(p + "down_proj.weight", {D, ffn}, ParamKind::Linear, layer, down);
  };
  add("model.embed_tokens.weight", {s.vocab, D}, ParamKind::Embedding, -1, S::Embed);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = layer_prefix(l);
    add(p + "input_layernorm.weight", {D}, ParamKind::Norm, l, S::AttnNorm);
    const std::string a = p + "self_attn.";
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
    add(p + "post_attention_layernorm.weight", {D}, ParamKind::Norm, l, S::FfnNorm);
    if (s.layer_is_moe[size_t(l)]) {
      const std::string m = p + std::string(arch.moe_prefix);
      add(m + "gate.weight", {s.experts, D}, ParamKind::Router, l, S::Router);
      for (int e = 0; e < s.experts; ++e) {
        const ExpertTensorNames n = arch.expert_names(l, e);
        add(n.gate, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertGate, e);
        add(n.up, {s.expert_ffn, D}, ParamKind::ExpertLinear, l, S::ExpertUp, e);
        add(n.down, {D, s.expert_ffn}, ParamKind::ExpertLinear, l, S::ExpertDown, e);
      }
      if (s.shared_ffn > 0) mlp(m + "shared_expert.", s.shared_ffn, l, S::SharedGate, S::SharedUp, S::SharedDown);
      if (s.shared_expert_gate)
        add(m + "shared_expert_gate.weight", {1, D}, ParamKind::Linear, l, S::SharedExpertGate);
    } else {
      mlp(p + "mlp.", s.dense_ffn, l, S::MlpGate, S::MlpUp, S::MlpDown);
    }
  }
  add("model.norm.weight", {D}, ParamKind::Norm, -1, S::FinalNorm);
  if (!s.tie_embeddings) add("lm_head.weight", {s.vocab, D}, ParamKind::Linear, -1, S::LmHead);
  return out;
}

}  // namespace moeflux
