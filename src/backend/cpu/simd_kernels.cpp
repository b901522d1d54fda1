// Highway's foreach_target re-includes this file once per instruction set;
// HWY_DYNAMIC_DISPATCH picks the best one the CPU supports at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/simd_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "backend/cpu/simd_kernels.h"
#include "core/half.h"

HWY_BEFORE_NAMESPACE();
namespace moeflux::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Loads lanes of weights starting at element `i` of a row, widened to f32.
template <typename T>
struct RowLoader;
template <>
struct RowLoader<float> {
  static HWY_INLINE hn::Vec<DF> load(DF df, const float* p) { return hn::LoadU(df, p); }
  static HWY_INLINE float scalar(const float* p) { return *p; }
};
template <>
struct RowLoader<hwy::bfloat16_t> {
  static HWY_INLINE hn::Vec<DF> load(DF df, const hwy::bfloat16_t* p) {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
  static HWY_INLINE float scalar(const hwy::bfloat16_t* p) { return hwy::F32FromBF16(*p); }
};
template <>
struct RowLoader<hwy::float16_t> {
  static HWY_INLINE hn::Vec<DF> load(DF df, const hwy::float16_t* p) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
  static HWY_INLINE float scalar(const hwy::float16_t* p) {
    uint16_t bits;
    hwy::CopyBytes<2>(p, &bits);
    return f16_to_f32(bits);
  }
};

// A tile of ROWS weight rows x COLS tokens: every weight vector loaded is
// used COLS times and every activation vector ROWS times, which keeps the
// loop bound by memory bandwidth in decode and by FMA throughput in prefill.
template <typename T, int ROWS, int COLS>
HWY_INLINE void tile(const float* x, size_t ldx, const T* W, size_t K, size_t r, float* y, size_t ldy) {
  const DF df;
  const size_t N = hn::Lanes(df);
  hn::Vec<DF> acc[ROWS][COLS];
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) acc[i][j] = hn::Zero(df);
  size_t k = 0;
  for (; k + N <= K; k += N) {
    hn::Vec<DF> xv[COLS];
    for (int j = 0; j < COLS; ++j) xv[j] = hn::LoadU(df, x + j * ldx + k);
    for (int i = 0; i < ROWS; ++i) {
      const auto wv = RowLoader<T>::load(df, W + (r + i) * K + k);
      for (int j = 0; j < COLS; ++j) acc[i][j] = hn::MulAdd(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[i][j]));
      for (size_t kk = k; kk < K; ++kk) s += RowLoader<T>::scalar(W + (r + i) * K + kk) * x[j * ldx + kk];
      y[j * ldy + r + i] = s;
    }
}

template <typename T>
void matmul_rows_t(const float* x, size_t ldx, size_t T_, const T* W, size_t K, size_t r0, size_t r1, float* y,
                   size_t ldy) {
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    size_t t = 0;
    for (; t + 2 <= T_; t += 2) tile<T, 4, 2>(x + t * ldx, ldx, W, K, r, y + t * ldy, ldy);
    if (t < T_) tile<T, 4, 1>(x + t * ldx, ldx, W, K, r, y + t * ldy, ldy);
  }
  for (; r < r1; ++r) {
    size_t t = 0;
    for (; t + 2 <= T_; t += 2) tile<T, 1, 2>(x + t * ldx, ldx, W, K, r, y + t * ldy, ldy);
    if (t < T_) tile<T, 1, 1>(x + t * ldx, ldx, W, K, r, y + t * ldy, ldy);
  }
}

void MatmulRows(const float* x, size_t ldx, size_t T_, const uint8_t* W, int wtype, size_t K, size_t r0, size_t r1,
                float* y, size_t ldy) {
  switch (DType(wtype)) {
    case DType::F32:
      return matmul_rows_t(x, ldx, T_, reinterpret_cast<const float*>(W), K, r0, r1, y, ldy);
    case DType::BF16:
      return matmul_rows_t(x, ldx, T_, reinterpret_cast<const hwy::bfloat16_t*>(W), K, r0, r1, y, ldy);
    case DType::F16:
      return matmul_rows_t(x, ldx, T_, reinterpret_cast<const hwy::float16_t*>(W), K, r0, r1, y, ldy);
    default:
      return;  // callers check the type before dispatching
  }
}

float Dot(const float* a, const float* b, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto s0 = hn::Zero(df), s1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float alpha, const float* x, float* y, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto va = hn::Set(df, alpha);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += alpha * x[i];
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace moeflux::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace moeflux::simd {

HWY_EXPORT(MatmulRows);
HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(TargetName);

void matmul_rows(const float* x, size_t ldx, size_t T, const uint8_t* W, DType wtype, size_t K, size_t r0,
                 size_t r1, float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(MatmulRows)(x, ldx, T, W, int(wtype), K, r0, r1, y, ldy);
}
float dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }
void axpy(float alpha, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(Axpy)(alpha, x, y, n); }
const char* target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace moeflux::simd
#endif
