// CPU matmul kernels on quantized weights (Highway, dispatched at run time to
// AVX-512, AVX2 or a portable target).
//
// How they compute: each block of weights is decoded into f32 vectors in
// registers (w = d * q or w = d * q - m, the same formula as the reference
// dequantizer but with a fused multiply-add) and multiplied into f32
// activations with f32 accumulation. Activations are never quantized, so the
// result differs from the reference (dequantize_row + dot in double) only by
// f32 rounding: |error| <= ~K * 2^-24 * sum|w*x| in the worst case, typically
// sqrt(K) times smaller. Tests state the bound per type.
//
// Decode (T == 1) streams each weight byte exactly once; prefill (T > 1)
// decodes 4 rows into an L2-resident f32 buffer once and reuses them for
// every token with a register tile of 4 rows x 2 tokens.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace moeflux::quant {

// Types matmul_rows accepts: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4.
bool supported(GgmlType t);

// y[t * ldy + r] = sum_k x[t * ldx + k] * W[r, k]  for t < T, r in [r0, r1).
// W: row-major, each row ggml_row_bytes(wtype, K) bytes. Same contract as
// simd::matmul_rows. Throws moeflux::Error for an unsupported type or a K
// that is not a whole number of blocks.
void matmul_rows(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                 size_t r1, float* y, size_t ldy);

// Name of the instruction set chosen at run time, for logs and benchmarks.
const char* target_name();

}  // namespace moeflux::quant
