#include "model/tensor_list.h"

namespace moeflux {

std::vector<ModelTensor> model_tensors(const ModelSpec& s, const ArchDef& arch) {
  const int64_t D = s.hidden, Q = s.q_dim(), KV = s.kv_dim();
  std::vector<ModelTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind, int layer = -1) {
    out.push_back({std::move(name), std::move(shape), kind, layer});
  };
  auto mlp = [&](const std::string& p, int64_t ffn, int layer) {
    add(p + "gate_proj.weight", {ffn, D}, ParamKind::Linear, layer);
    add(p + "up_proj.weight", {ffn, D}, ParamKind::Linear, layer);
    add(p + "down_proj.weight", {D, ffn}, ParamKind::Linear, layer);
  };
  add("model.embed_tokens.weight", {s.vocab, D}, ParamKind::Embedding);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = layer_prefix(l);
    add(p + "input_layernorm.weight", {D}, ParamKind::Norm, l);
    const std::string a = p + "self_attn.";
    add(a + "q_proj.weight", {Q, D}, ParamKind::Linear, l);
    add(a + "k_proj.weight", {KV, D}, ParamKind::Linear, l);
    add(a + "v_proj.weight", {KV, D}, ParamKind::Linear, l);
    add(a + "o_proj.weight", {D, Q}, ParamKind::Linear, l);
    if (s.qkv_bias) {
      add(a + "q_proj.bias", {Q}, ParamKind::Bias, l);
      add(a + "k_proj.bias", {KV}, ParamKind::Bias, l);
      add(a + "v_proj.bias", {KV}, ParamKind::Bias, l);
    }
    if (s.o_bias) add(a + "o_proj.bias", {D}, ParamKind::Bias, l);
    if (s.qk_norm == QkNorm::PerHead) {
      add(a + "q_norm.weight", {s.head_dim}, ParamKind::Norm, l);
      add(a + "k_norm.weight", {s.head_dim}, ParamKind::Norm, l);
    } else if (s.qk_norm == QkNorm::Full) {
      add(a + "q_norm.weight", {Q}, ParamKind::Norm, l);
      add(a + "k_norm.weight", {KV}, ParamKind::Norm, l);
    }
    add(p + "post_attention_layernorm.weight", {D}, ParamKind::Norm, l);
    if (s.layer_is_moe[size_t(l)]) {
      const std::string m = p + std::string(arch.moe_prefix);
      add(m + "gate.weight", {s.experts, D}, ParamKind::Router, l);
      for (int e = 0; e < s.experts; ++e) {
        const ExpertTensorNames n = arch.expert_names(l, e);
        add(n.gate, {s.expert_ffn, D}, ParamKind::ExpertLinear, l);
        add(n.up, {s.expert_ffn, D}, ParamKind::ExpertLinear, l);
        add(n.down, {D, s.expert_ffn}, ParamKind::ExpertLinear, l);
      }
      if (s.shared_ffn > 0) mlp(m + "shared_expert.", s.shared_ffn, l);
      if (s.shared_expert_gate) add(m + "shared_expert_gate.weight", {1, D}, ParamKind::Linear, l);
    } else {
      mlp(p + "mlp.", s.dense_ffn, l);
    }
  }
  add("model.norm.weight", {D}, ParamKind::Norm);
  if (!s.tie_embeddings) add("lm_head.weight", {s.vocab, D}, ParamKind::Linear);
  return out;
}

}  // namespace moeflux
