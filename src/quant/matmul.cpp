// quant::matmul_rows: argument checks, the choice between the integer and the
// f32 kernels, and the per-thread cache of the quantized activations.
#include "quant/matmul.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "quant/matmul_internal.h"

namespace moeflux::quant {
namespace {

void check(GgmlType wtype, size_t K) {
  if (!supported(wtype)) {
    const auto info = ggml_type_info(uint32_t(wtype));
    fail("quant::matmul_rows: no CPU kernel for GGML type {} ({}); supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 "
         "Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K MXFP4",
         info ? info->name : "unknown", uint32_t(wtype));
  }
  if (!ggml_row_bytes(wtype, K)) fail("quant::matmul_rows: K = {} is not a whole number of blocks", K);
}

// Reorders 32-element blocks into the paired layout of matmul_internal.h.
void pair_blocks(int8_t* q, size_t K) {
  int8_t tmp[64];
  for (size_t b = 0; b + 64 <= K; b += 64) {
    std::memcpy(tmp, q + b, 64);
    std::memcpy(q + b + 16, tmp + 32, 16);
    std::memcpy(q + b + 32, tmp + 16, 16);
  }
}

}  // namespace

bool supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K:
    case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::MXFP4:
      return true;
    default:
      return false;
  }
}

size_t activation_block(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::MXFP4:
      return 32;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return 256;
    default:
      return 0;
  }
}

bool quantizes_activations(GgmlType t) { return activation_block(t) != 0 && detail::int_kernels_available(); }

void PreparedActivations::prepare(const float* x, size_t ldx, size_t T, size_t K, GgmlType wtype) {
  reset(T, K, wtype);
  prepare_rows(x, ldx, 0, T);
}

void PreparedActivations::reset(size_t T, size_t K, GgmlType wtype) {
  check(wtype, K);
  K_ = K, T_ = T, block_ = activation_block(wtype), paired_ = detail::paired_layout(wtype);
  x_.resize(T * K);
  if (block_ == 0) return;
  const size_t nb = K / block_;
  qs_.resize(T * K);
  d_.resize(T * nb);
  isum_.resize(block_ == 32 ? T * nb : 0);
  s_.resize(block_ == 32 ? T * nb : 0);
  bsums_.resize(block_ == 256 ? T * K / 16 : 0);
}

void PreparedActivations::prepare_rows(const float* x, size_t ldx, size_t t0, size_t t1) {
  const size_t K = K_;
  for (size_t t = t0; t < t1; ++t) std::memcpy(x_.data() + t * K, x + t * ldx, K * sizeof(float));
  if (block_ == 0) return;
  const size_t nb = K / block_;
  for (size_t t = t0; t < t1; ++t) {
    detail::quantize_q8(x + t * ldx, K, block_, qs_.data() + t * K, d_.data() + t * nb,
                        block_ == 32 ? isum_.data() + t * nb : nullptr, block_ == 32 ? s_.data() + t * nb : nullptr,
                        block_ == 256 ? bsums_.data() + t * K / 16 : nullptr);
    if (paired_) pair_blocks(qs_.data() + t * K, K);
  }
}

bool PreparedActivations::holds(const float* x, size_t ldx, size_t T, size_t K, GgmlType wtype) const {
  if (K != K_ || T != T_ || !fits(wtype)) return false;
  for (size_t t = 0; t < T; ++t)
    if (std::memcmp(x + t * ldx, x_.data() + t * K, K * sizeof(float)) != 0) return false;
  return true;
}

bool PreparedActivations::fits(GgmlType wtype) const {
  return activation_block(wtype) == block_ && detail::paired_layout(wtype) == paired_;
}

void matmul_rows(const PreparedActivations& xq, const uint8_t* W, GgmlType wtype, size_t r0, size_t r1, float* y,
                 size_t ldy) {
  matmul_rows(xq, 0, xq.tokens(), W, wtype, r0, r1, y, ldy);
}

void matmul_rows(const PreparedActivations& xq, size_t t0, size_t nt, const uint8_t* W, GgmlType wtype, size_t r0,
                 size_t r1, float* y, size_t ldy) {
  check(wtype, xq.cols());
  if (t0 + nt > xq.tokens()) fail("quant::matmul_rows: rows [{}, {}) of {} prepared", t0, t0 + nt, xq.tokens());
  if (r0 >= r1 || nt == 0) return;
  const size_t K = xq.cols();
  if (!quantizes_activations(wtype)) return detail::matmul_rows_f32(xq.floats(t0), K, nt, W, wtype, K, r0, r1, y, ldy);
  if (!xq.fits(wtype))
    fail("quant::matmul_rows: activations prepared for another layout than {} needs",
         ggml_type_info(uint32_t(wtype))->name);
  detail::matmul_rows_q8(xq.view(t0, nt), W, wtype, r0, r1, y, ldy);
}

detail::Q8Act PreparedActivations::view(size_t t0, size_t nt) const {
  const size_t K = K_, nb = K / block_;
  detail::Q8Act a;
  a.K = K, a.T = nt, a.block = block_, a.paired = paired_;
  a.qs = qs_.data() + t0 * K;
  a.d = d_.data() + t0 * nb;
  a.isum = block_ == 32 ? isum_.data() + t0 * nb : nullptr;
  a.s = block_ == 32 ? s_.data() + t0 * nb : nullptr;
  a.bsums = block_ == 256 ? bsums_.data() + t0 * (K / 16) : nullptr;
  return a;
}

// Each thread keeps the last activations it quantized, keyed by their
// values: the engine calls matmul_rows once per row range and thread, often
// several times on one x (gate and up projections, experts of one token),
// and a compare of K floats costs a tenth of quantizing them. A pointer key
// would be wrong the moment a caller reuses its buffer for the next token.
void matmul_rows(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                 size_t r1, float* y, size_t ldy) {
  check(wtype, K);
  if (r0 >= r1 || T == 0) return;
  if (quantizes_activations(wtype)) {
    thread_local PreparedActivations cache;
    if (!cache.holds(x, ldx, T, K, wtype)) cache.prepare(x, ldx, T, K, wtype);
    return matmul_rows(cache, W, wtype, r0, r1, y, ldy);
  }
  detail::matmul_rows_f32(x, ldx, T, W, wtype, K, r0, r1, y, ldy);
}

void matmul_rows_exact(const float* x, size_t ldx, size_t T, const uint8_t* W, GgmlType wtype, size_t K, size_t r0,
                       size_t r1, float* y, size_t ldy) {
  check(wtype, K);
  if (r0 >= r1 || T == 0) return;
  detail::matmul_rows_f32(x, ldx, T, W, wtype, K, r0, r1, y, ldy);
}

void quantize_activation(const float* x, size_t n, size_t block, int8_t* q, float* d) {
  if ((block != 32 && block != 256) || n % block != 0)
    fail("quant::quantize_activation: n = {} is not a whole number of blocks of {} (32 or 256)", n, block);
  std::vector<int32_t> isum(block == 32 ? n / 32 : 0);
  std::vector<float> s(isum.size());
  std::vector<int16_t> bsums(block == 256 ? n / 16 : 0);
  detail::quantize_q8(x, n, block, q, d, block == 32 ? isum.data() : nullptr, block == 32 ? s.data() : nullptr,
                      block == 256 ? bsums.data() : nullptr);
}

const char* target_name() { return detail::f32_target_name(); }

namespace detail {

bool paired_layout(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 ||
         t == GgmlType::MXFP4;
}

}  // namespace detail

}  // namespace moeflux::quant
