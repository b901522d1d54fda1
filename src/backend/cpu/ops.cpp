#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/simd_kernels.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/dequant.h"
#include "quant/matmul.h"
#include "quant/fp8_block.h"
#include "quant/mlx_affine.h"
#include "quant/mlx_matmul.h"

namespace moeflux {

float load_weight_elem(const WeightView& w, int64_t i) {
  switch (w.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(w.data)[i];
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    default: fail("weight element of unsupported dtype {}", dtype_name(w.dtype));
  }
}

namespace cpu {

quant::MlxAffine mlx_affine_of(const WeightView& w) {
  quant::MlxAffine q;
  q.bits = w.bits;
  q.group_size = w.group_size;
  switch (w.scale_dtype) {
    case DType::F16: q.scale_type = quant::MlxScaleType::F16; break;
    case DType::BF16: q.scale_type = quant::MlxScaleType::BF16; break;
    case DType::F32: q.scale_type = quant::MlxScaleType::F32; break;
    default: fail("MLX affine scales of dtype {} (F16, BF16 or F32 expected)", dtype_name(w.scale_dtype));
  }
  q.weight = reinterpret_cast<const uint32_t*>(w.data);
  q.scales = w.scales;
  q.biases = w.biases;
  return q;
}

quant::Fp8Block fp8_block_of(const WeightView& w) {
  quant::Fp8Block q;
  q.weight = w.data;
  q.scale_inv = w.scales;
  switch (w.scale_dtype) {
    case DType::F32: q.scale_type = quant::Fp8ScaleType::F32; break;
    case DType::BF16: q.scale_type = quant::Fp8ScaleType::BF16; break;
    default: fail("FP8 weight_scale_inv of dtype {} (F32 or BF16 expected)", dtype_name(w.scale_dtype));
  }
  q.block = w.group_size;
  return q;
}

void matmul_mlx_dequantized(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1,
                            float* y, size_t ldy) {
  // A few rows at a time into an L1-resident buffer, then the SIMD f32
  // kernel (faster than the quant library's f32 path: measured 2026-11-28).
  const quant::MlxAffine q = mlx_affine_of(W);
  const size_t K = size_t(W.cols);
  constexpr size_t kRows = 4;
  thread_local std::vector<float> buf;
  if (buf.size() < kRows * K) buf.resize(kRows * K);
  for (size_t r = r0; r < r1; r += kRows) {
    const size_t n = std::min(kRows, r1 - r);
    for (size_t i = 0; i < n; ++i) quant::mlx_dequantize_row(q, K, r + i, buf.data() + i * K);
    simd::matmul_rows(x, ldx, T, reinterpret_cast<const uint8_t*>(buf.data()), DType::F32, K, 0, n, y + r, ldy);
  }
}

void matmul_weight(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1, float* y,
                   size_t ldy) {
  if (is_weight_float(W.dtype)) return simd::matmul_rows(x, ldx, T, W.data, W.dtype, size_t(W.cols), r0, r1, y, ldy);
  if (W.dtype == DType::F8E4M3) return quant::fp8_matmul_rows(x, ldx, T, fp8_block_of(W), size_t(W.cols), r0, r1, y, ldy);
  if (W.dtype == DType::MLX) {
    if (quant::mlx_quantizes_activations())
      return quant::mlx_matmul_rows(x, ldx, T, mlx_affine_of(W), size_t(W.cols), r0, r1, y, ldy);
    return matmul_mlx_dequantized(x, ldx, T, W, r0, r1, y, ldy);
  }
  quant::matmul_rows(x, ldx, T, W.data, *ggml_type_of(W.dtype), size_t(W.cols), r0, r1, y, ldy);
}

void matmul_weight_f32(const float* x, size_t ldx, size_t T, const WeightView& W, size_t r0, size_t r1, float* y,
                       size_t ldy) {
  if (is_weight_float(W.dtype)) return simd::matmul_rows(x, ldx, T, W.data, W.dtype, size_t(W.cols), r0, r1, y, ldy);
  if (W.dtype == DType::MLX) return matmul_mlx_dequantized(x, ldx, T, W, r0, r1, y, ldy);
  if (W.dtype == DType::F8E4M3) return quant::fp8_matmul_rows(x, ldx, T, fp8_block_of(W), size_t(W.cols), r0, r1, y, ldy);
  quant::matmul_rows_exact(x, ldx, T, W.data, *ggml_type_of(W.dtype), size_t(W.cols), r0, r1, y, ldy);
}

std::optional<GgmlType> activation_layout(const WeightView& W) {
  if (W.dtype == DType::MLX)
    return quant::mlx_quantizes_activations() ? std::optional(quant::kMlxActivationType) : std::nullopt;
  const auto t = ggml_type_of(W.dtype);
  if (t && quant::quantizes_activations(*t)) return t;
  return std::nullopt;
}

void matmul_prepared(const quant::PreparedActivations& xq, size_t t0, size_t nt, const WeightView& W, size_t r0,
                     size_t r1, float* y, size_t ldy) {
  if (W.dtype == DType::MLX) return quant::mlx_matmul_rows(xq, t0, nt, mlx_affine_of(W), r0, r1, y, ldy);
  quant::matmul_rows(xq, t0, nt, W.data, *ggml_type_of(W.dtype), r0, r1, y, ldy);
}

void linear(ThreadPool& pool, const float* x, int T, const WeightView& W, const WeightView* bias, float* y,
            Activations act) {
  if (!is_matmul_weight(W.dtype)) fail("linear: unsupported weight dtype {}", dtype_name(W.dtype));
  const size_t N = size_t(W.rows), K = size_t(W.cols);
  // Chunks of whole 4-row tiles; small enough to balance, large enough that
  // a chunk's weight bytes dwarf the cost of waking a thread.
  const size_t grain = std::max<size_t>(4, (size_t(16384) / std::max<size_t>(K, 1)) & ~size_t(3));
  pool.parallel_for((N + 3) / 4, std::max<size_t>(1, grain / 4), [&](size_t b, size_t e) {
    const size_t r0 = b * 4, r1 = std::min(N, e * 4);
    if (act == Activations::F32)
      matmul_weight_f32(x, K, size_t(T), W, r0, r1, y, N);
    else
      matmul_weight(x, K, size_t(T), W, r0, r1, y, N);
    if (bias)
      for (int t = 0; t < T; ++t)
        for (size_t r = r0; r < r1; ++r) y[size_t(t) * N + r] += load_weight_elem(*bias, int64_t(r));
  });
}

void embed(const int32_t* tokens, int T, const WeightView& table, float* y) {
  const int64_t D = table.cols;
  for (int t = 0; t < T; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= table.rows) fail("token id {} at position {} is outside the vocabulary [0, {})", id, t, table.rows);
    if (is_block_quant(table.dtype))
      quant::dequantize_row(*ggml_type_of(table.dtype), table.data + size_t(id) * table.row_bytes(), y + t * D,
                            size_t(D));
    else if (table.dtype == DType::MLX)
      quant::mlx_dequantize_row(mlx_affine_of(table), size_t(D), size_t(id), y + t * D);
    else if (table.dtype == DType::F8E4M3)
      quant::fp8_dequantize_row(fp8_block_of(table), size_t(D), size_t(id), y + t * D);
    else
      for (int64_t i = 0; i < D; ++i) y[t * D + i] = load_weight_elem(table, int64_t(id) * D + i);
  }
}

void rms_norm(const float* x, int T, int width, int group, const WeightView& weight, float eps, float* y,
              float weight_offset) {
  const int64_t wn = weight.rows * weight.cols;
  for (int t = 0; t < T; ++t)
    for (int g0 = 0; g0 < width; g0 += group) {
      const float* xi = x + size_t(t) * width + g0;
      float* yi = y + size_t(t) * width + g0;
      double ss = 0;
      for (int i = 0; i < group; ++i) ss += double(xi[i]) * xi[i];
      const float inv = 1.0f / std::sqrt(float(ss / group) + eps);
      for (int i = 0; i < group; ++i) yi[i] = (load_weight_elem(weight, (g0 + i) % wn) + weight_offset) * (xi[i] * inv);
    }
}

std::vector<float> rope_inv_freq(const RopeParams& p) {
  const int half = p.rot_dims / 2;
  // Frequencies as transformers computes them: f32 inverse powers over the
  // rotated dims (and YaRN's blend of them, in f32, in its order).
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const float pos_freq = std::pow(p.theta, float(2 * i) / float(p.rot_dims));
    const float extrapolated = 1.0f / pos_freq;
    if (p.yarn.factor == 1.0f) {
      inv[size_t(i)] = extrapolated;
      continue;
    }
    const float interpolated = 1.0f / (p.yarn.factor * pos_freq);
    const float high = p.yarn.high == p.yarn.low ? p.yarn.high + 0.001f : p.yarn.high;
    const float ramp = std::clamp((float(i) - p.yarn.low) / (high - p.yarn.low), 0.0f, 1.0f);
    const float extra = 1.0f - ramp;
    inv[size_t(i)] = interpolated * (1.0f - extra) + extrapolated * extra;
  }
  return inv;
}

void rope(float* x, int T, int width, const RopeParams& p, const int32_t* positions) {
  const int head_dim = p.head_dim, half = p.rot_dims / 2;
  const bool interleaved = p.interleaved;
  // Dims outside [offset, offset + rot_dims) of a head (partial rotary, MLA's
  // nope part) stay as they are.
  const std::vector<float> inv_freq = rope_inv_freq(p);
  const float mscale = p.yarn.attention_factor;
  std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const float ang = float(positions[t]) * inv_freq[size_t(i)];
      c[size_t(i)] = std::cos(ang);
      s[size_t(i)] = std::sin(ang);
      if (mscale != 1.0f) {  // transformers scales cos and sin (YaRN's attention factor)
        c[size_t(i)] *= mscale;
        s[size_t(i)] *= mscale;
      }
    }
    for (int h0 = 0; h0 < width; h0 += head_dim) {
      float* v = x + size_t(t) * width + h0 + p.offset;
      // Pair i is (i, i + half) in Hugging Face's layout and (2i, 2i + 1)
      // in llama.cpp's "llama" GGUFs, whose converter permuted q/k rows so,
      // and in DeepSeek's (rope_interleave).
      const int step = interleaved ? 1 : half;
      for (int i = 0; i < half; ++i) {
        const int ia = interleaved ? 2 * i : i;
        const float a = v[ia], b = v[ia + step];
        v[ia] = a * c[size_t(i)] - b * s[size_t(i)];
        v[ia + step] = b * c[size_t(i)] + a * s[size_t(i)];
      }
    }
  }
}

void slice(const float* in, int T, int in_width, int offset, int width, float* out) {
  for (int t = 0; t < T; ++t)
    std::memcpy(out + size_t(t) * width, in + size_t(t) * in_width + offset, sizeof(float) * size_t(width));
}

void swiglu(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void clamped_swiglu(const float* gate, const float* up, float* out, size_t n, float alpha, float limit) {
  for (size_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], limit), u = std::clamp(up[i], -limit, limit);
    out[i] = (u + 1.0f) * (g / (1.0f + std::exp(-alpha * g)));
  }
}

void add(const float* a, const float* b, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void clamp(float* x, size_t n, float limit) {
  for (size_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -limit, limit);
}


}  // namespace cpu
}  // namespace moeflux
