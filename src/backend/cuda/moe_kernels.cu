#include "backend/cuda/moe_kernels.h"

#include <cmath>

#include <algorithm>
#include <climits>

namespace moeflux::cuda {

namespace {

// The best (value, id) of a warp: larger value, ties to the lower id.
__device__ __forceinline__ void warp_best(float& v, int& id) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, id, o);
    if (ov > v || (ov == v && oi < id)) {
      v = ov;
      id = oi;
    }
  }
}

// The k best of score[0, E) (shared memory, no NaN), best first; taken
// entries are marked NaN in `score`, so the caller passes a copy.
__device__ void warp_top_k(float* score, int E, int k, int* out) {
  const int lane = threadIdx.x & 31;
  for (int j = 0; j < k; ++j) {
    float v = -INFINITY;
    int id = INT_MAX;
    for (int e = lane; e < E; e += 32) {
      const float s = score[e];
      if (s != s) continue;  // taken
      if (id == INT_MAX || s > v || (s == v && e < id)) {
        v = s;
        id = e;
      }
    }
    // Lanes with no candidate hold (-inf, INT_MAX) and lose every comparison.
    warp_best(v, id);
    if (lane == 0) {
      out[j] = id;
      score[id] = NAN;
    }
    __syncwarp();
  }
}

// One warp per token. Shared: scores [E], a working copy [E], ids [k].
// With `tiles` set (one token), the grouping too: choice j is gathered row
// j and tile j, in routing order, so no grouping kernel runs.
// The body, for token t, run by one warp with sh = 2E + k floats of shared memory.
__device__ void route_token(RouterSpec spec, const float* logits, int E, int k, const float* correction, int32_t* ids,
                            float* weights, int* row_token, int* row_of, MoeTile* tiles, int* ntiles, int t,
                            float* sh) {
  float* score = sh;
  float* work = sh + E;
  int* top = reinterpret_cast<int*>(sh + 2 * E);
  const int lane = threadIdx.x & 31;
  const float* row = logits + int64_t(t) * E;
  for (int e = lane; e < E; e += 32) score[e] = __ldcg(row + e);  // L2: another block may have written it
  __syncwarp();
  if (spec.scoring == RouterScoring::Softmax) {
    float m = -INFINITY;
    for (int e = lane; e < E; e += 32) m = fmaxf(m, score[e]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.f;
    for (int e = lane; e < E; e += 32) sum += (score[e] = expf(score[e] - m));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = 1.0f / sum;
    for (int e = lane; e < E; e += 32) work[e] = (score[e] *= inv);
  } else if (spec.scoring == RouterScoring::TopkSoftmax) {
    for (int e = lane; e < E; e += 32) work[e] = score[e];
  } else {  // Sigmoid: weights from s, choice from s + correction
    for (int e = lane; e < E; e += 32) {
      score[e] = 1.0f / (1.0f + expf(-score[e]));
      work[e] = score[e] + (correction ? correction[e] : 0.f);
    }
    __syncwarp();
    if (spec.groups > 1 && lane == 0) {
      // DeepSeek-V3's group limit, sequentially (rare, small): groups scored
      // by their two best choices; experts outside the best topk_groups get 0.
      const int per = E / spec.groups;
      float gs[64];
      for (int g = 0; g < spec.groups && g < 64; ++g) {
        float best = -INFINITY, second = -INFINITY;
        for (int i = 0; i < per; ++i) {
          const float c = work[g * per + i];
          if (c > best) {
            second = best;
            best = c;
          } else if (c > second) {
            second = c;
          }
        }
        gs[g] = per >= 2 ? best + second : best;
      }
      unsigned long long kept = 0;
      for (int j = 0; j < spec.topk_groups; ++j) {
        int bi = -1;
        for (int g = 0; g < spec.groups; ++g)
          if (!((kept >> g) & 1ull) && (bi < 0 || gs[g] > gs[bi])) bi = g;
        kept |= 1ull << bi;
      }
      for (int e = 0; e < E; ++e)
        if (!((kept >> (e / per)) & 1ull)) work[e] = 0.0f;
    }
  }
  __syncwarp();
  for (int e = lane; e < E; e += 32)
    if (work[e] != work[e]) work[e] = -INFINITY;  // a NaN logit loses rather than corrupting the choice
  __syncwarp();
  warp_top_k(work, E, k, top);
  if (lane == 0) {
    int32_t* oid = ids + int64_t(t) * k;
    float* ow = weights + int64_t(t) * k;
    float sum = 0.f;
    for (int j = 0; j < k; ++j) {
      oid[j] = top[j];
      ow[j] = score[top[j]];
      sum += ow[j];
    }
    if (spec.scoring == RouterScoring::TopkSoftmax) {
      float m = -INFINITY;
      for (int j = 0; j < k; ++j) m = fmaxf(m, ow[j]);
      float z = 0.f;
      for (int j = 0; j < k; ++j) z += (ow[j] = expf(ow[j] - m));
      const float inv = 1.0f / z;
      for (int j = 0; j < k; ++j) ow[j] *= inv;
    } else if (spec.renormalize) {
      const float div = spec.scoring == RouterScoring::Sigmoid ? sum + 1e-20f : sum;
      for (int j = 0; j < k; ++j) ow[j] /= div;
    }
    if (spec.scaling != 1.0f)
      for (int j = 0; j < k; ++j) ow[j] *= spec.scaling;
    if (tiles) {
      for (int j = 0; j < k; ++j) {
        row_token[j] = 0;
        row_of[j] = j;
        tiles[j] = MoeTile{top[j], j, 1};
      }
      *ntiles = k;
    }
  }
}

__global__ void route_kernel(RouterSpec spec, const float* logits, int E, int k, const float* correction, int32_t* ids,
                             float* weights, int* row_token, int* row_of, MoeTile* tiles, int* ntiles) {
  extern __shared__ float sh[];
  route_token(spec, logits, E, k, correction, ids, weights, row_token, row_of, tiles, ntiles, int(blockIdx.x), sh);
}

// One token: the router's f32 logits (a block per expert, its warps
// splitting D) and, in the block that finishes last, the routing with the
// tiles. `done` counts finished blocks; the last one resets it to 0.
constexpr int kRouterWarps = 4;
__global__ void __launch_bounds__(kRouterWarps * 32)
    router_route_kernel(RouterSpec spec, const float* w, const float* bias, const float* x, int D, float* logits, int E,
                        int k, const float* correction, int32_t* ids, float* weights, int* row_token, int* row_of,
                        MoeTile* tiles, int* ntiles, unsigned* done) {
  extern __shared__ float sh[];
  __shared__ float part[kRouterWarps];
  __shared__ bool last;
  const int e = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const float4* w4 = reinterpret_cast<const float4*>(w + int64_t(e) * D);
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc = 0.f;
#pragma unroll 4
  for (int i = threadIdx.x; i < D / 4; i += kRouterWarps * 32) {
    const float4 a = w4[i], b = x4[i];
    acc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.f;
    for (int i = 0; i < kRouterWarps; ++i) s += part[i];
    logits[e] = s + (bias ? bias[e] : 0.f);
    __threadfence();
    const unsigned ticket = atomicAdd(done, 1u);
    last = ticket == unsigned(E) - 1;
    if (last) *done = 0;
  }
  __syncthreads();
  if (!last || warp != 0) return;
  __threadfence();
  route_token(spec, logits, E, k, correction, ids, weights, row_token, row_of, tiles, ntiles, 0, sh);
}

// One block: counts per expert, then (thread 0) offsets and tiles, then
// every row placed at its expert's next free row. Counts and cursors live in
// shared memory: thread 0's pass over the experts reads no global memory.
__global__ void group_kernel(const int32_t* ids, int n, int E, int* row_token, int* row_of, MoeTile* tiles,
                             int* ntiles, int k) {
  extern __shared__ int sh_counts[];
  int* counts = sh_counts;
  int* cursor = sh_counts + E;
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(&counts[ids[i]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int off = 0, nt = 0;
    for (int e = 0; e < E; ++e) {
      const int c = counts[e];
      cursor[e] = off;
      for (int r = 0; r < c; r += kMoeTile) tiles[nt++] = MoeTile{e, off + r, c - r < kMoeTile ? c - r : kMoeTile};
      off += c;
    }
    *ntiles = nt;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int r = atomicAdd(&cursor[ids[i]], 1);
    row_token[r] = i / k;
    row_of[i] = r;
  }
}

__global__ void combine_kernel(const float* down, const int* row_of, const float* weights, int T, int k, int D,
                               const float* shared, const float* shared_gate, float* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * D) return;
  const int t = int(i / D), d = int(i % D);
  float acc = 0.f;
  for (int j = 0; j < k; ++j) acc += weights[t * k + j] * down[int64_t(row_of[t * k + j]) * D + d];
  if (shared) {
    const float g = shared_gate ? 1.0f / (1.0f + expf(-shared_gate[t])) : 1.0f;
    acc += g * shared[i];
  }
  out[i] = acc;
}

}  // namespace

void route(const RouterSpec& spec, const float* logits, int T, int E, int k, const float* correction, int32_t* ids,
           float* weights, cudaStream_t s) {
  if (T == 0) return;
  const size_t shmem = size_t(2 * E + k) * sizeof(float);
  route_kernel<<<T, 32, shmem, s>>>(spec, logits, E, k, correction, ids, weights, nullptr, nullptr, nullptr, nullptr);
}

bool router_route_one_token(const RouterSpec& spec, const DevMat& router, const float* bias, const float* x,
                            float* logits, int E, int k, const float* correction, int32_t* ids, float* weights,
                            int* row_token, int* row_of, MoeTile* tiles, int* ntiles, unsigned* done, cudaStream_t s) {
  const int D = int(router.cols);
  if (router.dtype != DType::F32 || router.rows != E || D % 4 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(router.data) % 16 != 0)
    return false;
  const size_t shmem = size_t(2 * E + k) * sizeof(float);
  router_route_kernel<<<E, kRouterWarps * 32, shmem, s>>>(spec, reinterpret_cast<const float*>(router.data), bias, x, D,
                                                          logits, E, k, correction, ids, weights, row_token, row_of,
                                                          tiles, ntiles, done);
  return true;
}

void route_one_token(const RouterSpec& spec, const float* logits, int E, int k, const float* correction, int32_t* ids,
                     float* weights, int* row_token, int* row_of, MoeTile* tiles, int* ntiles, cudaStream_t s) {
  const size_t shmem = size_t(2 * E + k) * sizeof(float);
  route_kernel<<<1, 32, shmem, s>>>(spec, logits, E, k, correction, ids, weights, row_token, row_of, tiles, ntiles);
}

int max_moe_tiles(int T, int E, int k) {
  const int rows = T * k;
  return std::min(rows, (rows + kMoeTile - 1) / kMoeTile + std::min(E, rows));
}

void group_rows(const int32_t* ids, int T, int E, int k, int* row_token, int* row_of, MoeTile* tiles, int* ntiles,
                cudaStream_t s) {
  group_kernel<<<1, 256, size_t(2 * E) * sizeof(int), s>>>(ids, T * k, E, row_token, row_of, tiles, ntiles, k);
}

void moe_combine(const float* down, const int* row_of, const float* weights, int T, int k, int D,
                 const float* shared, const float* shared_gate, float* out, cudaStream_t s) {
  const int64_t n = int64_t(T) * D;
  if (n == 0) return;
  combine_kernel<<<unsigned((n + 255) / 256), 256, 0, s>>>(down, row_of, weights, T, k, D, shared, shared_gate, out);
}

}  // namespace moeflux::cuda
