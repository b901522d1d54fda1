// CPU matmul kernels on quantized weights (Highway, dispatched at run time to
// AVX-512, AVX2 or a portable target).
//
// matmul_rows, the default, works as llama.cpp does on x86 with AVX2 or
// AVX-512: each token's activation row x is rounded once to int8 blocks
// (quantize_activation: one f32 scale per 32 elements for Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0 and MXFP4, per 256 elements with sums per 16 for the K formats),
// weight blocks are multiplied into it with integer dot products (maddubs +
// madd), and the f32 block scales, mins and code offsets are applied once per
// block. Decode (T = 1) then reads weights at 80-94% of the measured DRAM
// floor on the 2-core Zen 3 VM (every block format, median of 5 runs),
// where decoding every weight to f32 ran at 12-60%; on the 16-core Xeon
// Q2_K and Q3_K stay compute bound at 54-72% (BENCHMARKS.md, quantized
// GEMV). Prefill unpacks each weight block once per group of up to 4
// tokens over rows that stay in L2.
//
// Accuracy of matmul_rows for block-quantized weights on those targets
// (quantizes_activations(t) == true). With x^ the int8-rounded activations,
// |x_k - x^_k| <= amax_b * (1/254 + 2^-21) where amax_b is the largest |x| of
// the activation block holding k. The block sums are exact integers; only the
// f32 products and sums of the per-block terms round:
//   |y - sum_k w_k x^_k| <= (nb + 8) * 2^-23 * sum_k (|w_k| + 2 |o_k|) |x^_k|
// with nb the number of activation blocks in K and o_k the code offset the
// kernel takes out for element k (the dequantized value of the block's lowest
// code: -8d for Q4_0, the min for Q4_1/Q5_1/Q2_K/Q4_K/Q5_K, -4 d sc for Q3_K,
// -32 d sc for Q6_K, -6 d for MXFP4, 0 for Q8_0). Against the f32 activations
// add sum_k |w_k| |x_k - x^_k|: at most ~1/254 of sum_k |w_k| amax_b, and
// typically ~sqrt(K) times less in |error| since the roundings are
// independent. tests/quant/matmul_test.cpp checks both bounds.
//
// matmul_rows_exact keeps f32 activations: each block is decoded to f32 in
// registers (w = d * q or d * q - m, one FMA) and multiplied with f32
// accumulation, so it differs from the reference (dequantize_row + dot in
// double) only by f32 rounding, ~sqrt(K) * 2^-24 * sum|w*x|. matmul_rows
// runs it for F32/F16/BF16 weights and on targets without the integer
// kernels (SSE4, SSSE3, scalar). Its prefill decodes 4 rows into an
// L2-resident f32 buffer once and reuses them for every token with a
// register tile of 4 rows x 2 tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/ggml_types.h"

namespace moeflux::quant {

namespace detail {
struct Q8Act;
}

// Types matmul_rows accepts: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4.
bool supported(GgmlType t);

// y[t * ldy + r] = sum_k x[t * ldx + k] * W[r, k]  for t < T, r in [r0, r1).
// W: row-major, each row ggml_row_bytes(wtype, K) bytes. Same contract as
// simd::matmul_rows, with the accuracy stated above. Throws moeflux::Error for
// an unsupported type or a K that is not a whole number of blocks.
// Thread-safe; each thread keeps its last quantized x (compared by value, so
// several threads' calls over row ranges of one x quantize it once each).
void matmul_rows(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                 size_t r1, float* y, size_t ldy);

// x rounded once for many matmul_rows calls, for callers that split one
// product into many small calls (the MoE layer: one per 16 rows of an
// expert). matmul_rows above compares x with its per-thread cache on every
// call, measured at 9-17% of a 16-row call's time (BENCHMARKS.md); this
// skips that. Read-only once prepared, so threads may share one.
class PreparedActivations {
 public:
  // Rows t < T of K elements at x + t * ldx, rounded as matmul_rows would
  // for weights of type wtype (and for every type with the same activation
  // layout: Q4_0/Q4_1/Q5_0/Q5_1/MXFP4, Q8_0, or the K formats).
  void prepare(const float* x, size_t ldx, size_t T, size_t K, GgmlType wtype);
  // The same in two steps, so that several threads can round disjoint row
  // ranges: reset sizes the storage for T rows, prepare_rows rounds rows
  // [t0, t1) from x + t * ldx (x points at row 0). Each row's bits do not
  // depend on how the rows were split.
  void reset(size_t T, size_t K, GgmlType wtype);
  void prepare_rows(const float* x, size_t ldx, size_t t0, size_t t1);
  // Whether prepare(x, ldx, T, K, wtype) would give what this holds now.
  bool holds(const float* x, size_t ldx, size_t T, size_t K, GgmlType wtype) const;
  // Whether matmul_rows takes weights of type wtype with these activations
  // (the same activation layout).
  bool fits(GgmlType wtype) const;
  size_t tokens() const { return T_; }
  size_t cols() const { return K_; }
  // Rows [t0, t0 + nt) as the integer kernels read them (block_ != 0).
  detail::Q8Act view(size_t t0, size_t nt) const;
  // Rows [t0, t0 + nt) as given, f32.
  const float* floats(size_t t0) const { return x_.data() + t0 * K_; }

 private:
  size_t K_ = 0, T_ = 0, block_ = 0;  // block_ 0: f32 only
  bool paired_ = false;
  std::vector<float> x_;  // [T][K] the activations as given
  std::vector<int8_t> qs_;
  std::vector<float> d_, s_;
  std::vector<int32_t> isum_;
  std::vector<int16_t> bsums_;
};

// y[t * ldy + r] = xq_t . W[r]: matmul_rows on prepared activations. wtype
// must share the activation layout xq was prepared for (else moeflux::Error).
void matmul_rows(const PreparedActivations& xq, const uint8_t* W, GgmlType wtype, size_t r0, size_t r1, float* y,
                 size_t ldy);
// The same for the prepared rows [t0, t0 + nt) only: y[(t - t0) * ldy + r].
// The MoE layer prepares every routed row once and runs each expert on its
// own rows.
void matmul_rows(const PreparedActivations& xq, size_t t0, size_t nt, const uint8_t* W, GgmlType wtype, size_t r0,
                 size_t r1, float* y, size_t ldy);

// Same, always with f32 activations (the reference-accuracy option).
void matmul_rows_exact(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                       size_t r1, float* y, size_t ldy);

// Elements per activation scale for wtype's integer kernel: 32 or 256; 0 for
// F32/F16/BF16, which never quantize activations.
size_t activation_block(GgmlType t);

// Whether matmul_rows runs the integer kernels for wtype on the target
// dispatched now.
bool quantizes_activations(GgmlType t);

// The activation rounding of the integer kernels, exposed for tests: per
// block of `block` elements (32 or 256; n a multiple of it),
//   d = amax / 127,  q_k = round_half_even(x_k * (d != 0 ? 1 / d : 0))
// in f32, so q is in [-127, 127]. Gives the same bits on every target.
void quantize_activation(const float* x, size_t n, size_t block, int8_t* q, float* d);

// Name of the instruction set chosen at run time, for logs and benchmarks.
const char* target_name();

}  // namespace moeflux::quant
