// The seeded random values `synth` gives each tensor, shared by the
// safetensors writer (synth.cpp) and the GGUF writer (synth_gguf.cpp), so
// that the same preset and seed give the same model in both formats: a GGUF
// written by `synth --type T` holds what `convert --type T` makes of the
// safetensors directory `synth` writes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "format/dtype.h"
#include "model/tensor_list.h"

namespace moeflux {

// Values per chunk: the unit of seeding, so chunks are generated in parallel
// and any range of a tensor can be regenerated without its prefix.
inline constexpr size_t kSynthChunkElems = size_t(1) << 22;

uint64_t synth_tensor_seed(uint64_t seed, const std::string& name);

// Values [c * kSynthChunkElems, c * kSynthChunkElems + len) of tensor t, as
// the 16-bit bits of `dtype` (BF16 or F16).
void synth_fill_chunk(const ModelTensor& t, uint64_t tensor_seed, size_t c, DType dtype, uint16_t* out, size_t len);

// The router skew (SynthOptions::route_skew): the factor of each row.
std::vector<float> synth_router_scales(int64_t rows, double skew, uint64_t tensor_seed);
// A stored 16-bit value times a row factor, rounded back to `dtype`.
uint16_t synth_scale_value(uint16_t h, float scale, DType dtype);

}  // namespace moeflux
