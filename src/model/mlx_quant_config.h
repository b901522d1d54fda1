// MLX affine quantization as mlx-lm writes it into config.json:
//   "quantization": {"group_size": 64, "bits": 4, "mode": "affine",
//                    "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
//                    "model.layers.0.self_attn.q_proj": false, ...}
// (the same object again under "quantization_config"). Keys other than
// group_size/bits/mode are module paths whose value overrides the default
// for that module: an object with its own bits and group size, or a bool.
#pragma once
#include <map>
#include <optional>
#include <string>

namespace moeflux {

class Config;

struct MlxQuantConfig {
  int bits = 4, group_size = 64;  // of every quantized module without an override
  struct Override {
    bool quantized = true;
    int bits = 0, group_size = 0;
  };
  std::map<std::string, Override> overrides;  // by module path, e.g. "model.layers.0.mlp.gate"

  // Bits and group size of module `path` if it is quantized: its override,
  // else the default. nullopt: an override says it is not quantized.
  std::optional<std::pair<int, int>> params_of(const std::string& path) const;
  // For inspect: "MLX affine 4-bit, group 64 (1 module override)".
  std::string describe() const;
};

// The MLX quantization of a config, nullopt when it has none. Throws naming
// the file and the key for modes other than affine, bits or group sizes the
// kernels do not support, malformed values, and a "quantization_config"
// of another method (quant_method: fp8, gptq, ...).
std::optional<MlxQuantConfig> parse_mlx_quantization(const Config& cfg);

}  // namespace moeflux
