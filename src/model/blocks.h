// Shared graph blocks: attention, dense SwiGLU MLP, the fused MoE op, and the
// pre-norm decoder skeleton every supported architecture uses. Which variant
// of a block (q/k norm, biases, clipping, shared expert) comes from the spec.
#pragma once
#include "graph/builder.h"
#include "model/model_spec.h"
#include "model/weights.h"

namespace moeflux {

BufId<Role::Hidden> build_attention(GraphBuilder& g, const ModelSpec& s, const AttentionWeights& w,
                                    BufId<Role::Hidden> x, int layer);
BufId<Role::Hidden> build_swiglu_mlp(GraphBuilder& g, const MlpWeights& w, int ffn, BufId<Role::Hidden> x);
BufId<Role::Hidden> build_decoder_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& w,
                                        BufId<Role::Hidden> x, int layer, bool f32_activations = false);
// Layer l's MoE op parameters: router, expert shapes, shared expert, and
// the next MoE layer's router for prefetch.
MoeParams moe_params(const ModelSpec& s, const ModelWeights& w, int layer, bool f32_activations = false);
// The persistent state of each layer (one KV state per attention layer).
std::vector<StateDesc> layer_states(const ModelSpec& s);

// The whole forward step for `tokens` tokens; logits for every row, or only
// for the last one (generation needs only that). f32_activations: every
// matrix product keeps its activations in f32 (EngineOptions).
Graph build_model_graph(const ModelSpec& s, const ModelWeights& w, int tokens, bool all_logits,
                        bool f32_activations = false);

}  // namespace moeflux
