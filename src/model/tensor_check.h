// Checks of a ModelSpec against the tensors a checkpoint actually holds,
// run before anything proportional to the spec's sizes is allocated (a
// config.json claiming 2^24 layers must not make moeflux build 2^24 layers'
// tensor names first), and after binding: tensors the model does not use are
// an error naming them, not silently skipped (num_hidden_layers: 3 on a
// 4-layer checkpoint would otherwise run a different model).
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_table.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

// The distinct N of names "<prefix>N.<rest>", e.g. prefix "model.layers.".
// Entries with a non-numeric or absurd N are left out.
std::set<int64_t> numbered_blocks(const std::vector<std::string_view>& names, std::string_view prefix);

// Refuses a layer count that disagrees with the layers the tensors cover:
// `layers` must equal the number of distinct N and every N lie below it.
// `key` names what gave the count (e.g. "config.json 'num_hidden_layers'").
void check_layer_count(int layers, const std::set<int64_t>& present, const std::string& src, const std::string& key,
                       std::string_view prefix);

// Before model_tensors(): layers and experts of a Hugging Face checkpoint
// (plain or MLX) against its tensor names and stacked expert shapes.
void check_spec_against_checkpoint(const ModelSpec& spec, const ArchDef& arch, const TensorTable& files,
                                   const std::string& src);

// Every tensor of `names` inside `namespaces` (name prefixes; empty: all)
// must be one the model reads (`used`). Tensors transformers itself does not
// load (rotary_emb.inv_freq buffers) are allowed. The namespaces let other
// files share a model directory (a safetensors directory without an index
// loads every *.safetensors in it, e.g. reference outputs) while a tensor
// named like a parameter of the model but not part of it is refused.
void check_no_unused_tensors(const std::vector<std::string_view>& names, const std::set<std::string, std::less<>>& used,
                             const std::string& where, const std::vector<std::string_view>& namespaces = {});

}  // namespace moeflux
