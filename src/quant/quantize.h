// Quantizers: one row of n f32 values -> the bytes of a GGML type.
//
// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4 give the same bytes as
// gguf-py's gguf.quants.quantize (0.19.0), which mirrors llama.cpp's
// quantize_row_*_ref (tested bit for bit on committed fixtures).
// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K follow llama.cpp's reference algorithms
// (quantize_row_q*_K_ref: per-sub-block scale/min search, then scales
// quantized to 4/6/8 bits); gguf-py has no K quantizer to compare bytes with,
// so tests bound their error instead (see tests/quant/quantize_test.cpp).
// None of them uses an importance matrix.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace moeflux::quant {

bool quantize_supported(GgmlType t);

// dst receives ggml_row_bytes(t, n) bytes; n must be a whole number of
// blocks. Throws moeflux::Error for an unsupported type or a partial block.
// Inputs must be finite.
void quantize_row(GgmlType t, const float* src, uint8_t* dst, size_t n);

// Per-format entry points used by quantize_row (nb = number of blocks).
void quantize_q8_0(const float* x, uint8_t* dst, size_t nb);
void quantize_q4_0(const float* x, uint8_t* dst, size_t nb);
void quantize_q4_1(const float* x, uint8_t* dst, size_t nb);
void quantize_q5_0(const float* x, uint8_t* dst, size_t nb);
void quantize_q5_1(const float* x, uint8_t* dst, size_t nb);
void quantize_mxfp4(const float* x, uint8_t* dst, size_t nb);
void quantize_q2_k(const float* x, uint8_t* dst, size_t nb);
void quantize_q3_k(const float* x, uint8_t* dst, size_t nb);
void quantize_q4_k(const float* x, uint8_t* dst, size_t nb);
void quantize_q5_k(const float* x, uint8_t* dst, size_t nb);
void quantize_q6_k(const float* x, uint8_t* dst, size_t nb);

}  // namespace moeflux::quant
