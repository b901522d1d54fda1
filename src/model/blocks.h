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
BufId<Role::Hidden> build_decoder_layer(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                        BufId<Role::Hidden> x, int layer);

// The whole forward step for `tokens` tokens; logits for every row, or only
// for the last one (generation needs only that).
Graph build_model_graph(const ModelSpec& s, const ModelWeights& w, int tokens, bool all_logits);

}  // namespace moeflux
