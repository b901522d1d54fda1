// Reference dequantizers: one row of n elements of a GGML type -> f32.
// Plain scalar code, written to give the same f32 bits as gguf-py's
// gguf.quants.dequantize (0.19.0) for every input: each product and sum is
// done in the same order and precision as its numpy expression. The fast
// kernels in matmul.h are tested against these.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace moeflux::quant {

// True for the types dequantize_row handles: F32, F16, BF16, Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, MXFP4.
bool dequant_supported(GgmlType t);

// src holds ggml_row_bytes(t, n) bytes; n must be a whole number of blocks.
// Throws moeflux::Error for an unsupported type or a partial block.
void dequantize_row(GgmlType t, const uint8_t* src, float* dst, size_t n);

}  // namespace moeflux::quant
