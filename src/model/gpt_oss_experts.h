// gpt-oss checkpoints store each layer's routed experts fused, in one of
// two forms, and the engine reads experts per expert ([out, in] matrices
// under model.layers.<l>.mlp.experts.<e>.{gate,up,down}_proj.weight):
//
//  - transformers' own (save_pretrained of a dequantized model): plain
//    float mlp.experts.gate_up_proj [E, hidden, 2 * ffn] and down_proj
//    [E, ffn, hidden], used as x @ W (transposed against nn.Linear), gate
//    and up interleaved in the last dimension (gate i at 2i, up i at 2i+1);
//  - the original MXFP4 files: mlp.experts.gate_up_proj_blocks
//    [E, 2 * ffn, hidden / 32, 16] (uint8, two E2M1 codes per byte, the
//    low nibble the even element) with gate_up_proj_scales
//    [E, 2 * ffn, hidden / 32] (uint8 E8M0, bias 127), rows interleaved
//    gate/up; down_proj_blocks [E, hidden, ffn / 32, 16] and
//    down_proj_scales. Value = e2m1(code) * 2^(scale - 127), as
//    transformers' convert_moe_packed_tensors dequantizes it.
//
// The view presents each expert's gate, up and down under the per-expert
// names: plain tensors transposed to [out, in] in their own dtype, MXFP4
// repacked into GGML's MXFP4 blocks (the same scale byte and codes, GGML's
// element order: byte j holds elements j and j + 16) — exact, no
// rounding. Those copies live in memory the view owns (not in a file), so
// --expert-ram (which streams experts from files) refuses them; streaming
// gpt-oss will come with its GGUF form (experts stored per expert). The experts' biases (gate_up_proj_bias, down_proj_bias)
// stay as stored: dense tensors the MoE op reads.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "format/tensor_table.h"
#include "model/model_spec.h"
#include "model/tensor_list.h"

namespace moeflux {

std::unique_ptr<TensorTable> gpt_oss_experts_view(const ModelSpec& spec, std::unique_ptr<TensorTable> files);

// model_tensors() with each layer's per-expert matrices replaced by the
// fused plain tensors transformers saves (mlp.experts.gate_up_proj
// [E, hidden, 2 * ffn], down_proj [E, ffn, hidden]): what synth writes.
std::vector<ModelTensor> gpt_oss_stored_tensors(const ModelSpec& spec);

// One row of MXFP4 as the original files store it (`blocks` = cols / 32
// blocks of 16 bytes, `scales` = cols / 32 bytes) as GGML MXFP4 blocks
// (17 bytes each: the scale, then 16 bytes of nibbles).
void gpt_oss_mxfp4_row_to_ggml(const uint8_t* blocks, const uint8_t* scales, int64_t cols, uint8_t* out);

// The reference dequantizer of that row: transformers' convert_moe_packed_tensors.
void gpt_oss_mxfp4_dequantize_row(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out);

}  // namespace moeflux
