// What Qwen3-Next and Qwen3.5/3.6-MoE share (arch_qwen3_next.cpp): the
// config of the hybrid layers, their tensor table and graph.
#pragma once
#include <string>

#include "model/arch.h"

namespace moeflux {

// Reads the hybrid's keys (attention, linear attention, MoE, layer_types)
// into the spec; fused_projections: in_proj_qkvz/in_proj_ba (Qwen3-Next)
// rather than four separate projections (Qwen3.5).
void configure_qwen3_next_layers(const Config& cfg, ModelSpec& s, bool fused_projections);
// Layer l's tensors under prefix p ("model.layers.<l>." or the multimodal
// "model.language_model.layers.<l>.").
void qwen3_next_layer_tensors(TensorList& list, int l, const std::string& p);

// The hybrid layer's graph and state (ArchDef::build_layer, ::layer_state).
BufId<Role::Hidden> qwen3_next_build_layer(GraphBuilder& g, const ModelSpec& s, const ModelWeights& w,
                                           BufId<Role::Hidden> x, int layer, const BuildOptions& o);
StateDesc qwen3_next_layer_state(const ModelSpec& s, int layer);

}  // namespace moeflux
