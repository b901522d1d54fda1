#include "model/blocks.h"

#include <cmath>

namespace moeflux {

using S = TensorSlot;

namespace {

StateDesc attention_state(const ModelSpec& s, int layer) {
  return {s.sliding_window ? LayerKind::SlidingAttention : LayerKind::FullAttention, layer, s.kv_dim(), s.kv_dim()};
}

int next_moe_layer(const ModelSpec& s, int layer) {
  for (int l = layer + 1; l < s.layers; ++l)
    if (s.layer_is_moe[size_t(l)]) return l;
  return -1;
}

}  // namespace

std::vector<StateDesc> layer_states(const ModelSpec& s) {
  const ArchDef& arch = arch_def(s.arch);
  std::vector<StateDesc> states;
  for (int l = 0; l < s.layers; ++l) states.push_back(arch.layer_state ? arch.layer_state(s, l) : attention_state(s, l));
  return states;
}

MoeParams moe_params(const ModelSpec& s, const ModelWeights& w, int layer, bool f32_activations) {
  MoeParams p;
  p.f32_activations = f32_activations;
  const LayerWeights& lw = w.layers[size_t(layer)];
  p.layer = layer;
  p.experts = s.experts;
  p.top_k = s.top_k;
  p.expert_ffn = s.expert_ffn;
  p.router.scoring = RouterScoring::Softmax;
  p.router.renormalize = s.norm_topk;
  p.router_weight = lw[S::Router];
  p.shared_ffn = s.shared_ffn;
  if (s.shared_ffn > 0) {
    p.shared_gate = lw[S::SharedGate];
    p.shared_up = lw[S::SharedUp];
    p.shared_down = lw[S::SharedDown];
    p.shared_expert_gate = lw[S::SharedExpertGate];
  }
  p.next_layer = next_moe_layer(s, layer);
  if (p.next_layer >= 0) p.next_router_weight = w.layers[size_t(p.next_layer)][S::Router];
  return p;
}

BufId<Role::Hidden> build_attention(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                    BufId<Role::Hidden> x, int layer) {
  auto q = g.linear<Role::Query>(x, w[S::Q], w[S::QBias], s.q_dim(), "q");
  auto k = g.linear<Role::Key>(x, w[S::K], w[S::KBias], s.kv_dim(), "k");
  auto v = g.linear<Role::Value>(x, w[S::V], w[S::VBias], s.kv_dim(), "v");
  if (s.qk_norm != QkNorm::None) {
    const int qg = s.qk_norm == QkNorm::PerHead ? s.head_dim : s.q_dim();
    const int kg = s.qk_norm == QkNorm::PerHead ? s.head_dim : s.kv_dim();
    q = g.rms_norm(q, w[S::QNorm], qg, s.rms_eps, "q_norm");
    k = g.rms_norm(k, w[S::KNorm], kg, s.rms_eps, "k_norm");
  }
  if (s.clip_qkv) {  // OLMoE clamps after the q/k norm
    q = g.clamp(q, *s.clip_qkv);
    k = g.clamp(k, *s.clip_qkv);
    v = g.clamp(v, *s.clip_qkv);
  }
  const RopeParams rope{s.head_dim, s.head_dim, s.rope_theta, s.rope_interleaved};
  q = g.rope(q, rope);
  k = g.rope(k, rope);
  AttentionParams ap;
  ap.heads = s.heads;
  ap.kv_heads = s.kv_heads;
  ap.head_dim = s.head_dim;
  ap.scale = 1.0f / std::sqrt(float(s.head_dim));
  ap.window = s.sliding_window;
  auto a = g.attention(q, k, v, uint32_t(layer), ap);
  return g.linear<Role::Hidden>(a, w[S::O], w[S::OBias], s.hidden, "attn_proj");
}

BufId<Role::Hidden> build_swiglu_mlp(GraphBuilder& g, const LayerWeights& w, TensorSlot gate_slot,
                                     TensorSlot up_slot, TensorSlot down_slot, int ffn, BufId<Role::Hidden> x) {
  auto gate = g.linear<Role::Ffn>(x, w[gate_slot], nullptr, ffn, "mlp_gate");
  auto up = g.linear<Role::Ffn>(x, w[up_slot], nullptr, ffn, "mlp_up");
  auto act = g.swiglu(gate, up);
  return g.linear<Role::Hidden>(act, w[down_slot], nullptr, g.width(x), "mlp_down");
}

BufId<Role::Hidden> build_decoder_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& model,
                                        BufId<Role::Hidden> x, int layer, const BuildOptions& o) {
  const LayerWeights& w = model.layers[size_t(layer)];
  auto h = g.rms_norm(x, w[S::AttnNorm], s.hidden, s.rms_eps, "attn_norm");
  x = g.add(x, build_attention(g, s, w, h, layer));
  h = g.rms_norm(x, w[S::FfnNorm], s.hidden, s.rms_eps, "ffn_norm");
  auto ffn = s.layer_is_moe[size_t(layer)]
                 ? g.moe(h, moe_params(s, model, layer, o.f32_activations))
                 : build_swiglu_mlp(g, w, S::MlpGate, S::MlpUp, S::MlpDown, s.dense_ffn, h);
  return g.add(x, ffn);
}

Graph build_model_graph(const ModelSpec& s, const ModelWeights& w, int tokens, bool all_logits,
                        const BuildOptions& o) {
  const ArchDef& arch = arch_def(s.arch);
  GraphBuilder g(tokens);
  g.set_f32_activations(o.f32_activations);
  g.set_states(layer_states(s));
  auto x = g.embed(g.input(), w.embed, s.hidden);
  for (int l = 0; l < s.layers; ++l)
    x = arch.build_layer ? arch.build_layer(g, s, w, x, l, o) : build_decoder_layer(g, s, w, x, l, o);
  x = g.rms_norm(x, w.final_norm, s.hidden, s.rms_eps, "final_norm", s.linear_attn.norm_weight_offset);
  g.set_output(g.linear<Role::Logits>(x, w.lm_head, nullptr, s.vocab, "logits", !all_logits));
  return g.finish();
}

}  // namespace moeflux
