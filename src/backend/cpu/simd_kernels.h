// SIMD kernels (Highway, dispatched at run time to AVX-512, AVX2 or a
// portable target). Each has a plain reference in reference_kernels.h and a
// test comparing the two on random inputs of odd sizes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/dtype.h"

namespace moeflux::simd {

// y[t * ldy + r] = sum_k x[t * ldx + k] * W[r, k]  for t < T, r in [r0, r1).
// W is row-major with K columns of `wtype` (F32, F16 or BF16); f32 accumulation.
void matmul_rows(const float* x, size_t ldx, size_t T, const uint8_t* W, DType wtype, size_t K, size_t r0,
                 size_t r1, float* y, size_t ldy);

float dot(const float* a, const float* b, size_t n);
void axpy(float alpha, const float* x, float* y, size_t n);  // y += alpha * x

// Name of the instruction set chosen at run time, for logs and benchmarks.
const char* target_name();

}  // namespace moeflux::simd
