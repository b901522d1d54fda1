// How a moeflux architecture is spelled in GGUF, llama.cpp's way: the
// architecture name, the model metadata keys its loader reads
// (llama-model.cpp load_hparams and src/models/<arch>.cpp), and where each
// Hugging Face tensor lives (gguf-py's tensor names, experts stacked into
// 3-D tensors as convert_hf_to_gguf.py does). Used by the converter to write
// GGUF and by the loader to read it back into a ModelSpec.
//
// Where llama.cpp cannot represent a spec, the GGUF still carries it so that
// moeflux reads back the same model, and llama.cpp will not load or will run
// it differently: dense layers in qwen3moe/qwen2moe (llama.cpp requires every
// layer to be MoE; the dense MLP is written as blk.N.ffn_{gate,up,down}),
// and norm_topk differing from what llama.cpp hard-codes per architecture
// (written as {arch}.expert_weights_norm, which these four loaders ignore).
#pragma once
#include <string>
#include <vector>

#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_value.h"
#include "model/model_spec.h"
#include "model/tensor_list.h"

namespace moeflux {

// llama.cpp's architecture name for spec.arch: qwen3_moe→"qwen3moe",
// qwen2_moe→"qwen2moe", mixtral→"llama", olmoe→"olmoe"; throws for others.
std::string gguf_arch_name(const ModelSpec& spec);

// The model metadata llama.cpp reads for this arch, plus general.architecture
// (first). No tokenizer keys, no general.file_type.
void add_gguf_model_metadata(const ModelSpec& spec, GgufMetadata& md);

// Inverse: the ModelSpec of a GGUF file. spec.arch is the HF model_type
// (arch_def() works on it); vocab from token_embd's shape; sparse layers are
// those with ffn_gate_inp; qk-norm kind, biases, shared expert and its gate
// from the tensors present; tie_embeddings when output.weight is absent;
// bos/eos from tokenizer.ggml.*_token_id; rope_interleaved for "llama".
// spec.dtype is the type of the routed experts (of token_embd if none);
// spec.source_dir is md.source(). Throws naming the key (or tensor) and file
// for missing or unsupported values.
ModelSpec model_spec_from_gguf(const GgufMetadata& md, const std::vector<GgufTensor>& tensors);

// Where HF tensor t (an entry of model_tensors(spec, arch_def(spec.arch)))
// lives in GGUF: its tensor name and, for a routed expert's matrix, the
// expert's index in the stacked 3-D tensor (-1 otherwise). Stacked tensors
// have GGUF dims [cols, rows, n_expert]; expert e starts at byte
// e * (nbytes / n_expert). Throws for a name this arch does not have.
struct GgufLocation {
  std::string name;
  int expert = -1;
};
GgufLocation gguf_location(const ModelSpec& spec, const ModelTensor& t);

// GGUF dims (ne0 first) of the tensor a location names: the HF shape
// reversed, with n_expert appended for stacked experts.
std::vector<uint64_t> gguf_dims(const ModelSpec& spec, const ModelTensor& t);

}  // namespace moeflux
