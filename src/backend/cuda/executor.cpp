#include "backend/cuda/executor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/fused_decode.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/moe_kernels.h"
#include "backend/cuda/ops.h"
#include "core/overload.h"
#include "format/tensor_table.h"

namespace moeflux::cuda {

namespace {

// Steps of at least this many rows send f32 weights through cuBLAS; fewer
// go to the matmul kernel, which reads each weight once.
constexpr int kCublasMinRows = 16;
// Decode attention splits a row's positions in chunks of at least this many
// (a block's 4 warps take 8 positions each): one query row has only
// `heads` blocks otherwise, each walking the whole cache.
constexpr int kAttnSplitPositions = 32;
constexpr int kAttnMaxSplits = 256;

// Blocks per decode row of attention over `len` positions: a power of two
// (so a captured decode graph is redone at a few context lengths only, not
// every kAttnSplitPositions tokens), about len / kAttnSplitPositions.
int attention_splits(int len) {
  int s = 1;
  while (s < kAttnMaxSplits && s * kAttnSplitPositions < len) s *= 2;
  return s;
}

// The layer an op belongs to, for messages: the layer of the next op that
// names one (q/k/v projections precede their KV append), or of the
// attention before it when that is closer (the MLP after attention).
std::string op_layer(const Graph& g, size_t index) {
  auto layer_of = [&](const Op& op) -> int {
    if (auto* o = std::get_if<OpKvAppend>(&op)) return g.states.at(o->state).layer;
    if (auto* o = std::get_if<OpAttention>(&op)) return g.states.at(o->state).layer;
    if (auto* o = std::get_if<OpMoe>(&op)) return o->moe.layer;
    return -1;
  };
  if (int l = layer_of(g.ops[index]); l >= 0) return fmt::format("layer {}", l);
  for (size_t i = index; i-- > 0;) {
    if (std::holds_alternative<OpAttention>(g.ops[i])) return fmt::format("layer {}", layer_of(g.ops[i]));
    if (layer_of(g.ops[i]) >= 0) break;
  }
  for (size_t i = index + 1; i < g.ops.size(); ++i)
    if (int l = layer_of(g.ops[i]); l >= 0) return fmt::format("layer {}", l);
  return "after the last layer";
}

std::string op_context(const Graph& g, size_t i) {
  const auto w = op_writes(g.ops[i]);
  const std::string buf = w.empty() ? "" : fmt::format(" '{}'", g.buffers[w[0]].name);
  return fmt::format("op {} ({}{}, {})", i, op_name(g.ops[i]), buf, op_layer(g, i));
}

// The buffer an observer sees after an op: what it writes, else (KV append) its first input.
uint32_t observed_buffer(const Op& op) {
  const auto w = op_writes(op);
  return w.empty() ? op_reads(op).at(0) : w[0];
}

}  // namespace

std::atomic<uint64_t> g_buffer_epoch{1};

DeviceBuffer::~DeviceBuffer() { cudaFree(p_); }

uint64_t DeviceBuffer::epoch() { return g_buffer_epoch.load(std::memory_order_relaxed); }

void* DeviceBuffer::need(size_t bytes, const char* what) {
  if (bytes <= size_ && p_) return p_;
  const size_t n = std::max(bytes, size_ + size_ / 2);
  if (p_) {
    // Kernels queued on any stream may still read it.
    check(cudaDeviceSynchronize(), "synchronizing before growing a device buffer");
    cudaFree(p_);
    p_ = nullptr;
    size_ = 0;
  }
  g_buffer_epoch.fetch_add(1, std::memory_order_relaxed);
  check(cudaMalloc(&p_, std::max<size_t>(n, 256)), fmt::format("allocating {} bytes of device memory for {}", n, what));
  size_ = std::max<size_t>(n, 256);
  return p_;
}

CudaExecutor::CudaExecutor(DeviceWeights& weights) : weights_(weights) {
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
  check_cublas(cublasCreate(&cublas_), "creating a handle");
  check_cublas(cublasSetStream(cublas_, stream_), "setting the handle's stream");
  const char* env = std::getenv("MOEFLUX_CUDA_SYNC");
  sync_each_op_ = env && *env && std::strcmp(env, "0") != 0;
  const char* graph = std::getenv("MOEFLUX_CUDA_GRAPH");
  graphs_ = !(graph && std::strcmp(graph, "0") == 0);
  const char* int8 = std::getenv("MOEFLUX_CUDA_INT8");
  int8_ = !(int8 && std::strcmp(int8, "0") == 0);
  const char* fuse = std::getenv("MOEFLUX_CUDA_FUSE");
  fuse_ = !(fuse && std::strcmp(fuse, "0") == 0);
}

CudaExecutor::~CudaExecutor() {
  pipeline_.reset();  // it queues on stream_
  for (auto& c : captured_) cudaGraphExecDestroy(c.exec);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

float* CudaExecutor::buf(const Graph& g, const BufferPlan& plan, uint32_t id) const {
  const int32_t slot = plan.slot_of.at(id);
  if (slot < 0) fail("graph: buffer {} ('{}') is external but not an input", id, g.buffers[id].name);
  return reinterpret_cast<float*>(static_cast<uint8_t*>(arena_.get()) + plan.slot_offset[size_t(slot)]);
}

void CudaExecutor::sync(const char* what) {
  const cudaError_t e = cudaStreamSynchronize(stream_);
  if (e != cudaSuccess) throw_cuda(e, what);
}

void CudaExecutor::run(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
                       std::span<const int32_t> positions, DevKvCache& kv) {
  try {
    run_step(g, plan, tokens, positions, kv);
  } catch (...) {
    // A failed step (an I/O error, a failed copy) leaves no copy in flight
    // and no host expert held: the next request runs as if it had not been.
    if (pipeline_) pipeline_->abort();
    throw;
  }
  if (pipeline_) pipeline_->settle();
}

void CudaExecutor::run_step(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
                            std::span<const int32_t> positions, DevKvCache& kv) {
  const int T = g.tokens;
  // Token ids are checked here, as the CPU embedding does, so a kernel never reads outside a table.
  for (const Op& op : g.ops)
    if (auto* o = std::get_if<OpEmbed>(&op))
      for (int t = 0; t < T; ++t) {
        const int64_t rows = o->table->numel() / std::max<int64_t>(1, o->table->shape.back());
        if (tokens[size_t(t)] < 0 || tokens[size_t(t)] >= rows)
          fail("token id {} at position {} is outside the vocabulary [0, {})", tokens[size_t(t)], t, rows);
      }
  weights_.prepare(g);
  kv.reserve(positions[size_t(T - 1)] + 1);
  T_ = T;
  max_position_ = *std::max_element(positions.begin(), positions.end());
  arena_.need(std::max<size_t>(plan.arena_bytes, 64), "the activation arena");
  int32_t* dt = tokens_.need<int32_t>(size_t(T), "token ids");
  int32_t* dp = positions_.need<int32_t>(size_t(T), "positions");
  check(cudaMemcpyAsync(dt, tokens.data(), size_t(T) * 4, cudaMemcpyHostToDevice, stream_), "uploading token ids");
  check(cudaMemcpyAsync(dp, positions.data(), size_t(T) * 4, cudaMemcpyHostToDevice, stream_), "uploading positions");
  output_ = nullptr;
  // The tiered path reads the routing back on the host each MoE layer: not
  // capturable; full residency replays a graph with no host round trip.
  const bool graphable = graphs_ && T == 1 && !observer_ && !sync_each_op_ && !weights_.vram();
  const uint64_t key = graphable ? step_key(g, plan) : 0;
  if (graphable && run_captured(g, plan, key, kv)) {
    output_ = buf(g, plan, g.output.index);
    sync("running the step's CUDA graph (set MOEFLUX_CUDA_GRAPH=0 and MOEFLUX_CUDA_SYNC=1 to find the failing op)");
    return;
  }
  run_ops(g, plan, kv);
  last_eager_key_ = key;
  output_ = buf(g, plan, g.output.index);
  sync("running the step's kernels (set MOEFLUX_CUDA_SYNC=1 to find the failing op)");
}

void CudaExecutor::run_ops(const Graph& g, const BufferPlan& plan, DevKvCache& kv) {
  // Fusions replace whole op sequences; with an observer (which sees every
  // op's output) or per-op synchronization, every op runs alone.
  const bool fuse = fuse_ && !observer_ && !sync_each_op_;
  for (size_t i = 0; i < g.ops.size();) {
    try {
      if (const size_t used = fuse ? run_fused(g, plan, i, kv) : 0) {
        check_launch("fused ops");
        i += used;
        continue;
      }
      run_op(g, plan, g.ops[i], kv);
      check_launch(op_name(g.ops[i]));
      if (sync_each_op_ || observer_) sync("running the op's kernels");
    } catch (const Error& e) {
      cudaStreamSynchronize(stream_);
      throw Error(fmt::format("{} [{}]", e.what(), op_context(g, i)), e.kind());
    }
    if (observer_) {
      const uint32_t id = observed_buffer(g.ops[i]);
      const BufferDesc& d = g.buffers[id];
      host_out_.resize(size_t(d.rows) * size_t(d.width));
      check(cudaMemcpy(host_out_.data(), buf(g, plan, id), host_out_.size() * sizeof(float), cudaMemcpyDeviceToHost),
            "copying an op's output for the observer");
      observer_(i, g.ops[i], host_out_.data(), d.rows, d.width);
    }
    ++i;
  }
}

size_t CudaExecutor::run_fused(const Graph& g, const BufferPlan& plan, size_t i, DevKvCache& kv) {
  const auto& ops = g.ops;
  auto B = [&](uint32_t id) { return buf(g, plan, id); };
  auto width = [&](uint32_t id) { return g.buffers[id].width; };
  // Whether two buffers share memory (the plan reuses slots of dead
  // buffers): a fused kernel's blocks run in any order, so an output may
  // not overlap another op's input the way it could between separate ops.
  auto overlap = [&](uint32_t a, uint32_t b) {
    const auto* pa = reinterpret_cast<const uint8_t*>(B(a));
    const auto* pb = reinterpret_cast<const uint8_t*>(B(b));
    const size_t na = size_t(g.buffers[a].rows) * size_t(width(a)) * 4, nb = size_t(g.buffers[b].rows) * size_t(width(b)) * 4;
    return pa < pb + nb && pb < pa + na;
  };
  // The residual add and the RMSNorm of its sum (every layer's second and
  // the next layer's first norm): one block per row.
  if (i + 1 < ops.size()) {
    const auto* add = std::get_if<OpAdd>(&ops[i]);
    const auto* nm = std::get_if<OpRmsNorm>(&ops[i + 1]);
    if (add && nm && nm->in.index == add->out.index && nm->weight_offset == 0.f && nm->group == width(add->out.index) &&
        nm->group > 256 && width(nm->out.index) == nm->group) {
      add_rms_norm(B(add->a.index), B(add->b.index), B(add->out.index), g.buffers[add->out.index].rows, nm->group,
                   weights_.vec(nm->weight), nm->weight->numel(), nm->eps, B(nm->out.index), stream_);
      return 2;
    }
  }
  if (T_ != 1) return 0;
  // One token through several projections of the same input (q, k, v):
  // one launch of the int8 GEMV over all of them.
  if (int8_) {
    size_t n = 0;
    const DevMat* W[4];
    const float* bias[4];
    float* y[4];
    const auto* first = std::get_if<OpLinear>(&ops[i]);
    while (first && n < 4 && i + n < ops.size()) {
      const auto* o = std::get_if<OpLinear>(&ops[i + n]);
      if (!o || o->in.index != first->in.index || o->last_row_only || o->f32_activations ||
          g.buffers[o->in.index].rows != 1 || overlap(o->out.index, o->in.index))
        break;
      W[n] = &weights_.mat(o->weight);
      if (n > 0 && W[n]->cols != W[0]->cols) break;
      bias[n] = o->bias ? weights_.vec(o->bias) : nullptr;
      y[n] = B(o->out.index);
      ++n;
    }
    if (n >= 2 && matmul_q8_multi(int(n), W, bias, B(first->in.index), y, stream_)) return n;
  }
  // One token's per-head q/k norms (optional), RoPE of q and k, KV append.
  const OpRmsNorm *qn = nullptr, *kn = nullptr;
  size_t j = i;
  if (i + 1 < ops.size() && std::holds_alternative<OpRmsNorm>(ops[i]) && std::holds_alternative<OpRmsNorm>(ops[i + 1])) {
    qn = &std::get<OpRmsNorm>(ops[i]);
    kn = &std::get<OpRmsNorm>(ops[i + 1]);
    j = i + 2;
  }
  if (j + 2 >= ops.size()) return 0;
  const auto* rq = std::get_if<OpRope>(&ops[j]);
  const auto* rk = std::get_if<OpRope>(&ops[j + 1]);
  const auto* ap = std::get_if<OpKvAppend>(&ops[j + 2]);
  if (!rq || !rk || !ap || ap->k.index != rk->buf.index || rq->buf.index == rk->buf.index) return 0;
  const RopeParams& r = rq->rope;
  const int hd = r.head_dim;
  if (r.offset != 0 || r.yarn.factor != 1.0f || rk->rope.head_dim != hd || rk->rope.rot_dims != r.rot_dims ||
      rk->rope.theta != r.theta || rk->rope.interleaved != r.interleaved || rk->rope.offset != 0 ||
      rk->rope.yarn.factor != 1.0f || hd <= 0 || hd > 256 || r.rot_dims % 2 != 0 || r.rot_dims > hd)
    return 0;
  const int qw = width(rq->buf.index), kw = width(rk->buf.index);
  if (qw % hd != 0 || kw % hd != 0) return 0;
  if (qn && (qn->out.index != rq->buf.index || kn->out.index != rk->buf.index || qn->group != hd || kn->group != hd ||
             qn->weight_offset != 0.f || kn->weight_offset != 0.f || width(qn->in.index) != qw ||
             width(kn->in.index) != kw))
    return 0;
  const KvView v = kv.view(ap->state);
  if (v.key_width != kw || v.value_width != width(ap->v.index)) return 0;
  const uint32_t q_in = qn ? qn->in.index : rq->buf.index, k_in = kn ? kn->in.index : rk->buf.index;
  // The rotated k is written only if an op after the append reads it (the
  // plan may give it the slot of q_in, dead after the q norm: then the
  // fused kernel could not write it while other warps read q_in).
  bool k_read_later = false;
  for (size_t o = j + 3; o < ops.size() && !k_read_later; ++o)
    for (uint32_t b : op_reads(ops[o])) k_read_later |= b == rk->buf.index;
  if (overlap(rq->buf.index, k_in) || overlap(rq->buf.index, ap->v.index) ||
      (k_read_later && (overlap(rk->buf.index, q_in) || overlap(rk->buf.index, ap->v.index) ||
                        overlap(rq->buf.index, rk->buf.index))))
    return 0;
  QkRopeAppend p{};
  p.q_in = B(q_in);
  p.k_in = B(k_in);
  p.v = B(ap->v.index);
  p.q_out = B(rq->buf.index);
  p.k_out = k_read_later ? B(rk->buf.index) : nullptr;
  if (qn) {
    p.qw = weights_.vec(qn->weight);
    p.kw = weights_.vec(kn->weight);
    p.qwn = qn->weight->numel();
    p.kwn = kn->weight->numel();
    p.q_eps = qn->eps;
    p.k_eps = kn->eps;
  }
  p.heads = qw / hd;
  p.kv_heads = kw / hd;
  p.head_dim = hd;
  p.rope = r;
  qk_rope_append(p, v, static_cast<const int32_t*>(positions_.get()), stream_);
  return j + 3 - i;
}

uint64_t CudaExecutor::step_key(const Graph& g, const BufferPlan& plan) const {
  // FNV-1a over what the captured launches bake in: the ops and their
  // buffers, weights and states, the buffers' places in the arena, and the
  // attention split count (which moves with the context length).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
  };
  mix(uint64_t(g.tokens));
  mix(g.ops.size());
  for (const Op& op : g.ops) {
    mix(op.index());
    for (uint32_t b : op_reads(op)) mix(b);
    for (uint32_t b : op_writes(op)) mix(b);
    std::visit(Overload{[&](const OpEmbed& o) { mix(reinterpret_cast<uintptr_t>(o.table)); },
                        [&](const OpRmsNorm& o) { mix(reinterpret_cast<uintptr_t>(o.weight)); },
                        [&](const OpLinear& o) { mix(reinterpret_cast<uintptr_t>(o.weight)); },
                        [&](const OpAttention& o) { mix(o.state); },
                        [&](const OpKvAppend& o) { mix(o.state); },
                        [&](const OpLatentAppend& o) { mix(o.state); },
                        [&](const OpMlaAttention& o) { mix(o.state); },
                        [&](const OpCausalConv& o) { mix(o.state); },
                        [&](const OpGatedDeltaRule& o) { mix(o.state); },
                        [&](const OpMoe& o) {
                          mix(uint64_t(o.moe.layer));
                          mix(reinterpret_cast<uintptr_t>(o.moe.router_weight));
                        },
                        [&](const auto&) {}},
               op);
  }
  for (size_t off : plan.slot_offset) mix(off);
  mix(uint64_t(attention_splits(max_position_ + 1)));
  return h;
}

bool CudaExecutor::run_captured(const Graph& g, const BufferPlan& plan, uint64_t key, DevKvCache& kv) {
  const uint64_t epoch = DeviceBuffer::epoch();
  for (auto& c : captured_)
    if (c.key == key && c.epoch == epoch) {
      check(cudaGraphLaunch(c.exec, stream_), "launching the step's CUDA graph");
      return true;
    }
  if (key != last_eager_key_) return false;  // capture the second time a step is seen
  cudaGraph_t graph = nullptr;
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "starting a CUDA graph capture");
  try {
    run_ops(g, plan, kv);
  } catch (const Error&) {
    // Something in the step cannot be captured (a buffer had to grow):
    // run it eagerly from now on.
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    graphs_ = false;
    return false;
  }
  check(cudaStreamEndCapture(stream_, &graph), "ending a CUDA graph capture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) throw_cuda(e, "instantiating the step's CUDA graph");
  if (epoch != DeviceBuffer::epoch()) {  // a buffer moved during capture: the graph is stale
    cudaGraphExecDestroy(exec);
    return false;
  }
  // Few keys live at once (one per split count); drop the oldest beyond 8.
  std::erase_if(captured_, [&](Captured& c) {
    const bool stale = c.epoch != epoch || c.key == key;
    if (stale) cudaGraphExecDestroy(c.exec);
    return stale;
  });
  if (captured_.size() >= 8) {
    cudaGraphExecDestroy(captured_.front().exec);
    captured_.erase(captured_.begin());
  }
  captured_.push_back({key, epoch, exec});
  check(cudaGraphLaunch(exec, stream_), "launching the step's CUDA graph");
  return true;
}

void CudaExecutor::read_output(const Graph& g, float* dst, size_t n) {
  check(cudaMemcpyAsync(dst, output_, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "reading the logits");
  sync("reading the logits");
}

void CudaExecutor::run_op(const Graph& g, const BufferPlan& plan, const Op& op, DevKvCache& kv) {
  auto B = [&](uint32_t id) { return buf(g, plan, id); };
  auto desc = [&](uint32_t id) -> const BufferDesc& { return g.buffers[id]; };
  const int T = T_;
  const auto* dtok = static_cast<const int32_t*>(tokens_.get());
  const auto* dpos = static_cast<const int32_t*>(positions_.get());
  std::visit(
      Overload{
          [&](const OpEmbed& o) { embed(weights_.mat(o.table), dtok, T, B(o.out.index), stream_); },
          [&](const OpRmsNorm& o) {
            const auto& d = desc(o.in.index);
            rms_norm(B(o.in.index), d.rows, d.width, o.group, weights_.vec(o.weight), o.weight->numel(), o.eps,
                     B(o.out.index), stream_, o.weight_offset);
          },
          [&](const OpLinear& o) {
            const auto& d = desc(o.in.index);
            const float* in = B(o.in.index);
            int rows = d.rows;
            if (o.last_row_only) {
              in += size_t(d.rows - 1) * size_t(d.width);
              rows = 1;
            }
            linear(o, in, rows, B(o.out.index));
          },
          [&](const OpClamp& o) {
            const auto& d = desc(o.buf.index);
            clamp(B(o.buf.index), int64_t(d.rows) * d.width, o.limit, stream_);
          },
          [&](const OpRope& o) {
            const auto& d = desc(o.buf.index);
            rope(B(o.buf.index), d.rows, d.width, o.rope, dpos, stream_);
          },
          [&](const OpKvAppend& o) {
            const KvView v = kv.view(o.state);
            if (desc(o.k.index).width != v.key_width || desc(o.v.index).width != v.value_width)
              fail_as(ErrorKind::Internal, "kv_append: rows of {}/{} into a state of {}/{}", desc(o.k.index).width,
                      desc(o.v.index).width, v.key_width, v.value_width);
            kv_append(v, dpos, T, B(o.k.index), B(o.v.index), stream_);
          },
          [&](const OpAttention& o) {
            // Decode: one query row over a long cache is split over the
            // positions, so that more than `heads` blocks share the work.
            int splits = 1;
            float* partial = nullptr;
            if (T == 1) {
              const int len = o.attn.window ? std::min(*o.attn.window, max_position_ + 1) : max_position_ + 1;
              splits = attention_splits(len);
              if (splits > 1)
                partial = attn_partial_.need<float>(size_t(o.attn.heads) * splits * (o.attn.head_dim + 2),
                                                    "attention partial sums");
            }
            attention(o.attn, kv.view(o.state), dpos, T, B(o.q.index), B(o.out.index), splits, partial, stream_,
                      splits > 1 && fuse_ ? attn_done(o.attn.heads) : nullptr);
          },
          [&](const OpAdd& o) {
            const auto& d = desc(o.a.index);
            add(B(o.a.index), B(o.b.index), B(o.out.index), int64_t(d.rows) * d.width, stream_);
          },
          [&](const OpSwiGlu& o) {
            const auto& d = desc(o.gate.index);
            swiglu(B(o.gate.index), B(o.up.index), B(o.out.index), int64_t(d.rows) * d.width, stream_);
          },
          [&](const OpMoe& o) { moe(o.moe, B(o.in.index), T, desc(o.in.index).width, B(o.out.index)); },
          [&](const auto&) { run_arch_op(g, plan, op, kv); },
      },
      op);
}

void CudaExecutor::linear(const OpLinear& o, const float* in, int rows, float* out) {
  const DevMat& W = weights_.mat(o.weight);
  const float* bias = o.bias ? weights_.vec(o.bias) : nullptr;
  const int N = int(W.rows), K = int(W.cols);
  if (W.dtype == DType::F32 && rows >= kCublasMinRows) {
    // y^T [N, T] = W [N, K] x^T in cuBLAS's column-major terms; plain f32
    // arithmetic (no TF32), as exact as the kernel. 16-bit weights stay on
    // the kernel: cuBLAS would need the activations rounded to 16 bits.
    const float one = 1.f, zero = 0.f;
    check_cublas(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, N, rows, K, &one,
                             reinterpret_cast<const float*>(W.data), K, in, K, &zero, out, N),
                 "sgemm");
    if (bias) add_bias(out, bias, rows, N, stream_);
    return;
  }
  matmul(W, in, K, rows, out, N, bias, stream_, int8_ && !o.f32_activations);
}

unsigned* CudaExecutor::attn_done(int heads) {
  // Zeroed when (re)allocated; the attention kernel leaves it zero. Grown
  // only outside a capture in practice (the first decode step runs eagerly).
  if (attn_done_n_ < heads) {
    auto* d = attn_done_.need<unsigned>(size_t(heads), "attention completion counters");
    check(cudaMemsetAsync(d, 0, size_t(heads) * sizeof(unsigned), stream_), "zeroing attention counters");
    attn_done_n_ = heads;
  }
  return static_cast<unsigned*>(attn_done_.get());
}

unsigned* CudaExecutor::route_done() {
  // Allocated (and zeroed) once, before any capture: the fused router
  // kernel leaves it zero after each use.
  if (!route_done_.get()) {
    auto* d = route_done_.need<unsigned>(1, "router completion counter");
    check(cudaMemsetAsync(d, 0, sizeof(unsigned), stream_), "zeroing the router completion counter");
  }
  return static_cast<unsigned*>(route_done_.get());
}

void CudaExecutor::moe(const MoeParams& p, const float* x, int T, int D, float* out) {
  const DevMoeLayer& L = weights_.moe(p.layer);
  const int E = p.experts, k = p.top_k, F = p.expert_ffn;
  if (L.experts != E || L.ffn != F || L.hidden != D)
    fail_as(ErrorKind::Internal, "moe: layer {} has {} experts of {}x{} on the device, the op {} of {}x{}", p.layer,
            L.experts, L.ffn, L.hidden, E, F, D);
  const size_t rows = size_t(T) * k;
  const bool int8 = int8_ && !p.f32_activations;
  // Router logits in f32, routing and grouping on the device.
  float* logits = logits_.need<float>(size_t(T) * E, "router logits");
  int32_t* ids = ids_.need<int32_t>(rows, "routing");
  float* rw = route_w_.need<float>(rows, "routing weights");
  const int max_tiles = max_moe_tiles(T, E, k);
  int* row_token = row_token_.need<int>(rows, "expert rows");
  int* row_of = row_of_.need<int>(rows, "expert rows");
  auto* tiles = tiles_.need<MoeTile>(size_t(max_tiles), "expert tiles");
  int* ntiles = ntiles_.need<int>(1, "tile count");
  const DevMat& router = weights_.mat(p.router_weight);
  const float* router_bias = p.router_bias ? weights_.vec(p.router_bias) : nullptr;
  const float* correction = p.correction_bias ? weights_.vec(p.correction_bias) : nullptr;
  // One token (decode): routing writes the tiles too, choice j = tile j;
  // with an f32 router, the router product and the routing are one launch.
  const bool one = T == 1 && fuse_;
  if (!one || !router_route_one_token(p.router, router, router_bias, x, logits, E, k, correction, ids, rw, row_token,
                                      row_of, tiles, ntiles, route_done(), stream_)) {
    matmul(router, x, D, T, logits, E, router_bias, stream_);
    if (one) {
      route_one_token(p.router, logits, E, k, correction, ids, rw, row_token, row_of, tiles, ntiles, stream_);
    } else {
      route(p.router, logits, T, E, k, correction, ids, rw, stream_);
      group_rows(ids, T, E, k, row_token, row_of, tiles, ntiles, stream_);
    }
  }
  // The routed experts: gate and up (with SwiGLU) over the gathered rows, then down.
  float* h = h_.need<float>(rows * F, "expert activations");
  if (L.tiered) {
    // The device tier: gate/up and down per subset of experts as they land
    // (expert_pipeline.h), then the plain combine below. The fused one-token
    // down + combine reads every expert in one launch and is not used here.
    if (!pipeline_) pipeline_ = std::make_unique<ExpertPipeline>(*weights_.vram(), weights_.experts(), stream_);
    TieredMoeLayer t;
    t.layer = p.layer;
    t.experts = E;
    t.ffn = F;
    t.hidden = D;
    t.gate_dtype = L.gate_dtype;
    t.up_dtype = L.up_dtype;
    t.down_dtype = L.down_dtype;
    t.one_row_tiles = T == 1;
    t.int8 = int8;
    t.tiles = tiles;
    t.ntiles = ntiles;
    t.max_tiles = max_tiles;
    t.x = x;
    t.row_token = row_token;
    t.h = h;
    t.h2 = L.gate_dtype == L.up_dtype ? nullptr : h2_.need<float>(rows * F, "expert activations");
    t.down = down_.need<float>(rows * D, "expert outputs");
    pipeline_->run(t);
  } else if (L.gate_dtype == L.up_dtype) {
    matmul_grouped(L.gate_dtype, L.gate, L.up, tiles, ntiles, max_tiles, T == 1, x, D, row_token, h, F, F, D, stream_,
                   int8);
  } else {
    float* h2 = h2_.need<float>(rows * F, "expert activations");
    matmul_grouped(L.gate_dtype, L.gate, nullptr, tiles, ntiles, max_tiles, T == 1, x, D, row_token, h, F, F, D, stream_,
                   int8);
    matmul_grouped(L.up_dtype, L.up, nullptr, tiles, ntiles, max_tiles, T == 1, x, D, row_token, h2, F, F, D, stream_,
                   int8);
    swiglu(h, h2, h, int64_t(rows) * F, stream_);
  }
  // The shared expert, gated.
  float *so = nullptr, *sg = nullptr;
  if (p.shared_ffn > 0) {
    const int SF = p.shared_ffn;
    const DevMat &G = weights_.mat(p.shared_gate), &U = weights_.mat(p.shared_up), &Dn = weights_.mat(p.shared_down);
    float* sh = sh_.need<float>(size_t(T) * SF, "shared expert activations");
    if (G.dtype == U.dtype) {
      matmul_swiglu(G, U, x, D, T, sh, SF, stream_, int8);
    } else {
      float* sh2 = sh2_.need<float>(size_t(T) * SF, "shared expert activations");
      matmul(G, x, D, T, sh, SF, nullptr, stream_, int8);
      matmul(U, x, D, T, sh2, SF, nullptr, stream_, int8);
      swiglu(sh, sh2, sh, int64_t(T) * SF, stream_);
    }
    so = shared_out_.need<float>(size_t(T) * D, "shared expert outputs");
    matmul(Dn, sh, SF, T, so, D, nullptr, stream_, int8);
    if (p.shared_expert_gate) {
      sg = shared_gate_.need<float>(size_t(T), "shared expert gate");
      matmul(weights_.mat(p.shared_expert_gate), x, D, T, sg, 1, nullptr, stream_);
    }
  }
  // One token: the down projection and the weighted combine in one launch.
  if (!L.tiered && one && int8 &&
      moe_down_combine(L.down_dtype, L.down, tiles, k, h, F, rw, so, sg, out, D, F, stream_))
    return;
  float* dn = down_.need<float>(rows * D, "expert outputs");
  if (!L.tiered)
    matmul_grouped(L.down_dtype, L.down, nullptr, tiles, ntiles, max_tiles, T == 1, h, F, nullptr, dn, D, D, F, stream_,
                   int8);
  moe_combine(dn, row_of, rw, T, k, D, so, sg, out, stream_);
}

}  // namespace moeflux::cuda
