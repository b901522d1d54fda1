#include "backend/cpu/mla_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"
#include "core/error.h"
#include "quant/dequant.h"
#include "quant/fp8_block.h"
#include "quant/mlx_affine.h"

namespace moeflux::cpu {

void weight_row(const WeightView& W, int64_t r, float* out) {
  if (W.dtype == DType::MLX) return quant::mlx_dequantize_row(mlx_affine_of(W), size_t(W.cols), size_t(r), out);
  if (W.dtype == DType::F8E4M3) return quant::fp8_dequantize_row(fp8_block_of(W), size_t(W.cols), size_t(r), out);
  const auto t = ggml_type_of(W.dtype);
  if (!t) fail("weight of dtype {} cannot be read row by row", dtype_name(W.dtype));
  quant::dequantize_row(*t, W.data + size_t(r) * W.row_bytes(), out, size_t(W.cols));
}

void latent_append(KvCache& kv, uint32_t state, const int32_t* positions, int T, const float* latent, int lw,
                   const float* rope, int rw) {
  if (kv.key_width(state) != lw + rw || kv.value_width(state) != 0)
    fail("latent state {} holds {} + {} floats per position, not {} + {}", state, kv.key_width(state),
         kv.value_width(state), lw, rw);
  for (int t = 0; t < T; ++t) {
    float* row = kv.key(state, positions[t]);
    std::memcpy(row, latent + size_t(t) * lw, sizeof(float) * size_t(lw));
    std::memcpy(row + lw, rope + size_t(t) * rw, sizeof(float) * size_t(rw));
  }
}

namespace {

// Decompresses K's nope part and V of the cached positions through
// kv_b_proj, a block of positions at a time, and attends as ordinary
// multi-head attention with a running (online) softmax per query head, so
// memory stays at one block however long the context.
void naive(ThreadPool& pool, const MlaParams& m, KvCache& kv, uint32_t state, const int32_t* positions, int T,
           const float* q, float* out) {
  const int H = m.heads, n = m.nope_dim, r = m.rope_dim, v = m.v_dim, L = m.kv_lora_rank;
  const int qw = n + r, kvw = n + v;
  const int P = *std::max_element(positions, positions + T) + 1;
  constexpr int kBlock = 256;
  const int B = std::min(P, kBlock);
  std::vector<float> latent(size_t(B) * L), kvd(size_t(B) * H * kvw);
  // Per (t, h): running max, running sum, unnormalised output.
  std::vector<float> run_max(size_t(T) * H, -INFINITY), run_sum(size_t(T) * H, 0.0f);
  std::fill(out, out + size_t(T) * H * v, 0.0f);
  for (int p0 = 0; p0 < P; p0 += B) {
    const int nb = std::min(B, P - p0);
    for (int p = 0; p < nb; ++p) std::memcpy(&latent[size_t(p) * L], kv.key(state, p0 + p), sizeof(float) * size_t(L));
    linear(pool, latent.data(), nb, WeightView::of(*m.kv_b), nullptr, kvd.data(), Activations::F32);
    pool.parallel_for(size_t(T) * size_t(H), 1, [&](size_t b, size_t e) {
      std::vector<float> scores;
      for (size_t i = b; i < e; ++i) {
        const int t = int(i / size_t(H)), h = int(i % size_t(H));
        const int last = std::min(positions[t], p0 + nb - 1);
        if (last < p0) continue;  // this block is in the token's future
        const float* qh = q + (size_t(t) * H + h) * qw;
        scores.resize(size_t(last - p0 + 1));
        float bmax = -INFINITY;
        for (int p = p0; p <= last; ++p) {
          const float* k = &kvd[(size_t(p - p0) * H + h) * kvw];
          const float sc = (simd::dot(qh, k, size_t(n)) + simd::dot(qh + n, kv.key(state, p) + L, size_t(r))) * m.scale;
          scores[size_t(p - p0)] = sc;
          bmax = std::max(bmax, sc);
        }
        float* oh = out + (size_t(t) * H + h) * v;
        const float new_max = std::max(run_max[i], bmax);
        const float rescale = std::exp(run_max[i] - new_max);  // 0 on the first block
        if (rescale != 1.0f)
          for (int j = 0; j < v; ++j) oh[j] *= rescale;
        float sum = run_sum[i] * rescale;
        for (int p = p0; p <= last; ++p) {
          const float w = std::exp(scores[size_t(p - p0)] - new_max);
          sum += w;
          simd::axpy(w, &kvd[(size_t(p - p0) * H + h) * kvw + n], oh, size_t(v));
        }
        run_max[i] = new_max;
        run_sum[i] = sum;
      }
    });
  }
  for (size_t i = 0; i < size_t(T) * H; ++i) {
    const float inv = 1.0f / run_sum[i];
    for (int j = 0; j < v; ++j) out[i * size_t(v) + size_t(j)] *= inv;
  }
}

// Per head h, with Wk = kv_b rows [h(n+v), h(n+v)+n) and Wv the next v rows:
// q.k = (Wk^T q_nope) . latent + q_rope . k_rope, and out = Wv (sum_p a_p
// latent_p). kv_b is read once per head and step, whatever the context.
// Each thread takes a range of heads and walks the cache a block of
// positions at a time for all of them (a running softmax per query head),
// so a block is read from memory once per range, not once per head.
void absorbed(ThreadPool& pool, const MlaParams& m, KvCache& kv, uint32_t state, const int32_t* positions, int T,
              const float* q, float* out) {
  const int H = m.heads, n = m.nope_dim, r = m.rope_dim, v = m.v_dim, L = m.kv_lora_rank;
  const int qw = n + r, kvw = n + v;
  const WeightView W = WeightView::of(*m.kv_b);
  const int P = *std::max_element(positions, positions + T) + 1;
  constexpr int kBlock = 64;
  pool.parallel_for(size_t(H), 4, [&](size_t b, size_t e) {
    const size_t hc = e - b, TL = size_t(T) * L;
    std::vector<float> row(static_cast<size_t>(L)), q_lat(hc * TL, 0.0f), o_lat(hc * TL, 0.0f);
    std::vector<float> run_max(hc * size_t(T), -INFINITY), run_sum(hc * size_t(T), 0.0f), scores(kBlock);
    for (size_t k = 0; k < hc; ++k) {
      const int h = int(b + k);
      for (int i = 0; i < n; ++i) {
        weight_row(W, int64_t(h) * kvw + i, row.data());
        for (int t = 0; t < T; ++t)
          simd::axpy(q[(size_t(t) * H + h) * qw + i], row.data(), &q_lat[k * TL + size_t(t) * L], size_t(L));
      }
    }
    for (int p0 = 0; p0 < P; p0 += kBlock) {
      const int p1 = std::min(P, p0 + kBlock);
      for (size_t k = 0; k < hc; ++k) {
        const int h = int(b + k);
        for (int t = 0; t < T; ++t) {
          const int last = std::min(positions[t], p1 - 1);
          if (last < p0) continue;  // the block is in this token's future
          const float* ql = &q_lat[k * TL + size_t(t) * L];
          const float* qr = q + (size_t(t) * H + h) * qw + n;
          float bmax = -INFINITY;
          for (int p = p0; p <= last; ++p) {
            const float* c = kv.key(state, p);
            const float sc = (simd::dot(ql, c, size_t(L)) + simd::dot(qr, c + L, size_t(r))) * m.scale;
            scores[size_t(p - p0)] = sc;
            bmax = std::max(bmax, sc);
          }
          const size_t i = k * size_t(T) + size_t(t);
          float* ol = &o_lat[k * TL + size_t(t) * L];
          const float new_max = std::max(run_max[i], bmax);
          const float rescale = std::exp(run_max[i] - new_max);  // 0 on the first block
          if (rescale != 1.0f)
            for (int j = 0; j < L; ++j) ol[j] *= rescale;
          float sum = run_sum[i] * rescale;
          for (int p = p0; p <= last; ++p) {
            const float w = std::exp(scores[size_t(p - p0)] - new_max);
            sum += w;
            simd::axpy(w, kv.key(state, p), ol, size_t(L));
          }
          run_max[i] = new_max;
          run_sum[i] = sum;
        }
      }
    }
    for (size_t k = 0; k < hc; ++k) {
      const int h = int(b + k);
      for (int t = 0; t < T; ++t) {
        float* ol = &o_lat[k * TL + size_t(t) * L];
        const float inv = 1.0f / run_sum[k * size_t(T) + size_t(t)];
        for (int j = 0; j < L; ++j) ol[j] *= inv;
      }
      for (int j = 0; j < v; ++j) {
        weight_row(W, int64_t(h) * kvw + n + j, row.data());
        for (int t = 0; t < T; ++t)
          out[(size_t(t) * H + h) * v + j] = simd::dot(row.data(), &o_lat[k * TL + size_t(t) * L], size_t(L));
      }
    }
  });
}

}  // namespace

void mla_attention(ThreadPool& pool, const MlaParams& m, KvCache& kv, uint32_t state, const int32_t* positions, int T,
                   const float* q, float* out) {
  const WeightView W = WeightView::of(*m.kv_b);
  if (W.rows != int64_t(m.heads) * (m.nope_dim + m.v_dim) || W.cols != m.kv_lora_rank)
    fail("mla attention: kv_b_proj '{}' is [{}, {}], not [{}, {}]", m.kv_b->name, W.rows, W.cols,
         int64_t(m.heads) * (m.nope_dim + m.v_dim), m.kv_lora_rank);
  // Auto: the path with fewer multiply-adds. Per step of T tokens over P
  // positions and per head, absorbed costs T P (2L + R) + T L (n + v) and
  // naive P L (n + v) + T P (n + R + v): for long contexts absorbed wins
  // below T = L (n + v) / (2L - n - v) tokens (170 for DeepSeek-V3: decode
  // and short steps; long prefill steps decompress).
  MlaPath path = m.path;
  if (path == MlaPath::Auto) {
    const int64_t L = m.kv_lora_rank, nv = m.nope_dim + m.v_dim;
    const int64_t denom = 2 * L - nv;
    path = denom <= 0 || int64_t(T) * denom < L * nv ? MlaPath::Absorbed : MlaPath::Naive;
  }
  if (path == MlaPath::Absorbed)
    absorbed(pool, m, kv, state, positions, T, q, out);
  else
    naive(pool, m, kv, state, positions, T, q, out);
}

}  // namespace moeflux::cpu
