// Shared graph blocks: attention, dense SwiGLU MLP, the fused MoE op, and the
// pre-norm decoder layer the architectures so far use. Which variant of a
// block (q/k norm, biases, clipping, shared expert) comes from the spec;
// each block reads its weights by slot and has its tensors' table in
// tensor_list.h (TensorList::attention, ::moe, ...). An architecture with
// other layers composes them in its own file (ArchDef::build_layer).
#pragma once
#include "graph/builder.h"
#include "model/arch.h"
#include "model/model_spec.h"
#include "model/weights.h"

namespace moeflux {

BufId<Role::Hidden> build_attention(GraphBuilder& g, const ModelSpec& s, const LayerWeights& w,
                                    BufId<Role::Hidden> x, int layer);
// gate/up/down in the given slots of w.
BufId<Role::Hidden> build_swiglu_mlp(GraphBuilder& g, const LayerWeights& w, TensorSlot gate, TensorSlot up,
                                     TensorSlot down, int ffn, BufId<Role::Hidden> x);
// The shared layer: x + attention(norm(x)), then + MoE or MLP of the norm.
BufId<Role::Hidden> build_decoder_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& w,
                                        BufId<Role::Hidden> x, int layer, const BuildOptions& o);
// Layer l's MoE op parameters: router, expert shapes, shared expert, and
// the next MoE layer's router for prefetch.
MoeParams moe_params(const ModelSpec& s, const ModelWeights& w, int layer, bool f32_activations = false);
// The persistent state of each layer (ArchDef::layer_state, or one KV
// state per attention layer).
std::vector<StateDesc> layer_states(const ModelSpec& s);

// The whole forward step for `tokens` tokens; logits for every row, or only
// for the last one (generation needs only that).
Graph build_model_graph(const ModelSpec& s, const ModelWeights& w, int tokens, bool all_logits,
                        const BuildOptions& o = {});

}  // namespace moeflux
