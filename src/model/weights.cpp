#include "model/weights.h"

#include <fmt/format.h>

#include "core/error.h"

namespace moeflux {

void check_tensor(const TensorRef& t, std::initializer_list<int64_t> shape, bool vector) {
  if (vector && !is_weight_float(t.dtype))
    fail("tensor '{}' in {} has dtype {}; norm weights and biases must be F32, F16 or BF16", t.name, t.file,
         dtype_name(t.dtype));
  if (!is_matmul_weight(t.dtype))
    fail("tensor '{}' in {} has dtype {}; weights must be F32, F16, BF16 or a GGML block format", t.name, t.file,
         dtype_name(t.dtype));
  if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end()))
    fail("tensor '{}' in {} has shape {} but the config implies [{}]", t.name, t.file, t.shape_str(),
         fmt::join(shape, ", "));
}

namespace {

struct Binder {
  const TensorTable& st;
  const TensorRef* need(const std::string& name, std::initializer_list<int64_t> shape) const {
    const TensorRef& t = st.get(name);
    check_tensor(t, shape);
    return &t;
  }
  const TensorRef* need_vector(const std::string& name, int64_t n) const {
    const TensorRef& t = st.get(name);
    check_tensor(t, {n}, true);
    return &t;
  }
};

MlpWeights bind_mlp(const Binder& b, const std::string& p, int hidden, int ffn) {
  return {b.need(p + "gate_proj.weight", {ffn, hidden}), b.need(p + "up_proj.weight", {ffn, hidden}),
          b.need(p + "down_proj.weight", {hidden, ffn})};
}

}  // namespace

ModelWeights bind_weights(const ModelSpec& s, const ArchDef& arch, const TensorTable& st) {
  const Binder b{st};
  const int D = s.hidden, Q = s.q_dim(), KV = s.kv_dim();
  ModelWeights w;
  w.embed = b.need("model.embed_tokens.weight", {s.vocab, D});
  w.final_norm = b.need_vector("model.norm.weight", D);
  w.lm_head = s.tie_embeddings ? w.embed : b.need("lm_head.weight", {s.vocab, D});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = layer_prefix(l);
    LayerWeights L;
    L.attn_norm = b.need_vector(p + "input_layernorm.weight", D);
    L.ffn_norm = b.need_vector(p + "post_attention_layernorm.weight", D);
    const std::string a = p + "self_attn.";
    L.attn.q = b.need(a + "q_proj.weight", {Q, D});
    L.attn.k = b.need(a + "k_proj.weight", {KV, D});
    L.attn.v = b.need(a + "v_proj.weight", {KV, D});
    L.attn.o = b.need(a + "o_proj.weight", {D, Q});
    if (s.qkv_bias) {
      L.attn.q_bias = b.need_vector(a + "q_proj.bias", Q);
      L.attn.k_bias = b.need_vector(a + "k_proj.bias", KV);
      L.attn.v_bias = b.need_vector(a + "v_proj.bias", KV);
    }
    if (s.o_bias) L.attn.o_bias = b.need_vector(a + "o_proj.bias", D);
    if (s.qk_norm == QkNorm::PerHead) {
      L.attn.q_norm = b.need_vector(a + "q_norm.weight", s.head_dim);
      L.attn.k_norm = b.need_vector(a + "k_norm.weight", s.head_dim);
    } else if (s.qk_norm == QkNorm::Full) {
      L.attn.q_norm = b.need_vector(a + "q_norm.weight", Q);
      L.attn.k_norm = b.need_vector(a + "k_norm.weight", KV);
    }
    if (s.layer_is_moe[size_t(l)]) {
      const std::string m = p + std::string(arch.moe_prefix);
      L.router = b.need(m + "gate.weight", {s.experts, D});
      if (s.shared_ffn > 0) L.shared = bind_mlp(b, m + "shared_expert.", D, s.shared_ffn);
      if (s.shared_expert_gate) L.shared_gate = b.need(m + "shared_expert_gate.weight", {1, D});
    } else {
      L.mlp = bind_mlp(b, p + "mlp.", D, s.dense_ffn);
    }
    w.layers.push_back(L);
  }
  return w;
}

}  // namespace moeflux
