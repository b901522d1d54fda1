// quant::mlx_matmul_rows: argument checks and the per-thread cache of the
// rounded activations; the kernels are in mlx_q8_kernels.cpp.
#include "quant/mlx_matmul.h"

#include "core/error.h"
#include "quant/matmul_internal.h"

namespace moeflux::quant {

bool mlx_quantizes_activations() { return detail::mlx_int_kernels_available(); }

void mlx_matmul_rows(const PreparedActivations& xq, size_t t0, size_t nt, const MlxAffine& q, size_t r0, size_t r1,
                     float* y, size_t ldy) {
  mlx_check(q, xq.cols());
  if (!mlx_quantizes_activations())
    fail("quant::mlx_matmul_rows: no integer kernels on this CPU target ({})", target_name());
  if (!xq.fits(kMlxActivationType)) fail("quant::mlx_matmul_rows: activations prepared for another layout than Q8_0's");
  if (t0 + nt > xq.tokens()) fail("quant::mlx_matmul_rows: rows [{}, {}) of {} prepared", t0, t0 + nt, xq.tokens());
  if (r0 >= r1 || nt == 0) return;
  detail::mlx_matmul_rows_q8(xq.view(t0, nt), q, r0, r1, y, ldy);
}

// Keyed by value, as matmul_rows's cache (matmul.cpp says why).
void mlx_matmul_rows(const float* x, size_t ldx, size_t T, const MlxAffine& q, size_t K, size_t r0, size_t r1,
                     float* y, size_t ldy) {
  mlx_check(q, K);
  if (r0 >= r1 || T == 0) return;
  thread_local PreparedActivations cache;
  if (!cache.holds(x, ldx, T, K, kMlxActivationType)) cache.prepare(x, ldx, T, K, kMlxActivationType);
  mlx_matmul_rows(cache, 0, T, q, r0, r1, y, ldy);
}

}  // namespace moeflux::quant
