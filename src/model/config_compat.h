// config.json as written by transformers 4.x or 5.x, folded into one form
// before the architecture reads it.
//
// transformers 5 writes keys under other names than 4.x: each config
// class's attribute_map aliases (qwen3_moe's num_experts as
// num_local_experts), rope_parameters {rope_type, rope_theta, ...} instead of
// rope_theta / rope_scaling, dtype instead of torch_dtype. Both forms load
// and give the same ModelSpec; a key whose meaning would change the math and
// that moeflux does not implement is refused by name, never ignored.
#pragma once
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/config.h"

namespace moeflux {

// The config with aliases renamed to the key the arch file reads,
// rope_parameters / rope_scaling / partial_rotary_factor checked and folded
// into a plain "rope_theta" (the arch's default where none is given), and
// dtype / torch_dtype into "torch_dtype". Throws naming the file and key for
// a conflict (both names with different values) or an unimplemented value.
// `unread` receives the keys that neither moeflux nor transformers' config
// class for this architecture defines (transformers ignores them too).
Config normalize_config(const Config& cfg, const ArchDef& arch, std::vector<std::string>* unread);

// A multimodal config (ArchDef::text_model_prefix set): the 'text_config'
// object with the top level's other keys beside it (vision_config dropped);
// a config without 'text_config' as it is.
Config lift_text_config(const Config& cfg);

}  // namespace moeflux
