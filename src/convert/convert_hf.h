// `moeflux convert`: a Hugging Face model directory (config.json +
// safetensors in f32/f16/bf16) to a llama.cpp GGUF of the chosen type.
#pragma once
#include <string>

#include "convert/gguf_model_writer.h"

namespace moeflux {

struct ConvertOptions {
  std::string hf_dir;
  std::string out_path;
  ConvertType type = ConvertType::Q8_0;
  std::string name;    // general.name; empty: the directory's name
  GgufMetadata extra;  // tokenizer metadata (the engine library does not read tokenizers)
  int threads = 0;
  bool progress = true;
  bool overwrite = false;  // replace an existing out_path
};

// Checks every tensor the config implies is present with its shape and a
// float dtype before writing anything; errors name the tensor and file.
// Tensors of the checkpoint that the model does not use are skipped and
// listed in the result's warnings.
GgufWriteResult convert_hf_to_gguf(const ConvertOptions& opt);

}  // namespace moeflux
