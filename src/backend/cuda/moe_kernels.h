// The MoE op's device kernels besides the matrix products: routing (the
// rules of moe/router.h), grouping a micro-batch's rows by expert into
// tiles for matmul_grouped, and the weighted combine. Nothing comes back to
// the host: tile counts stay on the device and the grouped products skip
// the tiles past them.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/dev_types.h"
#include "moe/router.h"

namespace moeflux::cuda {

inline constexpr int kMaxRouterExperts = 1024;

// logits [T, E] -> ids/weights [T, k], best first, ties to the lower id.
// correction [E] (Sigmoid) or null.
void route(const RouterSpec& spec, const float* logits, int T, int E, int k, const float* correction, int32_t* ids,
           float* weights, cudaStream_t s);

// route() and group_rows() for one token (decode) in one launch: choice j
// is gathered row j and tile j (routing order, not expert order).
void route_one_token(const RouterSpec& spec, const float* logits, int E, int k, const float* correction, int32_t* ids,
                     float* weights, int* row_token, int* row_of, MoeTile* tiles, int* ntiles, cudaStream_t s);

// One token's router product (f32 router weights [E, D]) and
// route_one_token in one launch: a block per expert, the last block to
// finish routes. `done` is a device counter, zero before the call (it is
// left zero). False, launching nothing, for other router formats or
// unaligned rows.
bool router_route_one_token(const RouterSpec& spec, const DevMat& router, const float* bias, const float* x,
                            float* logits, int E, int k, const float* correction, int32_t* ids, float* weights,
                            int* row_token, int* row_of, MoeTile* tiles, int* ntiles, unsigned* done, cudaStream_t s);

// The most tiles grouping T*k rows over E experts can give (the grid size
// of the grouped products).
int max_moe_tiles(int T, int E, int k);
// Groups the T*k routed rows by expert: row_token[r] is the token of
// gathered row r, row_of[t*k+j] the gathered row of token t's j-th choice;
// tiles/ntiles as matmul_grouped reads them.
void group_rows(const int32_t* ids, int T, int E, int k, int* row_token, int* row_of, MoeTile* tiles, int* ntiles,
                cudaStream_t s);

// out[t] = sum_j weights[t*k+j] * down[row_of[t*k+j]] (j in routing order),
// plus sigmoid(shared_gate[t]) (1 when null) * shared[t] when shared is set.
void moe_combine(const float* down, const int* row_of, const float* weights, int T, int k, int D,
                 const float* shared, const float* shared_gate, float* out, cudaStream_t s);

}  // namespace moeflux::cuda
