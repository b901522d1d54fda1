// The public C++ API. An Engine is a loaded model, immutable after load and
// shared; a Session is one conversation's state (KV cache, position) on it.
//
//   auto engine = moeflux::Engine::load("path/to/model");
//   moeflux::Session s(engine);
//   auto logits = s.step(prompt_ids);          // logits of the last token
//   auto next = s.step(std::vector<int32_t>{id});
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moeflux/error.h"
#include "moeflux/expert_stats.h"

namespace moeflux {

struct ModelSpec;

struct EngineOptions {
  int threads = 0;           // 0: all online cores
  int max_micro_batch = 256; // prefill runs in chunks of at most this many tokens

  // Routed experts. 0: every expert stays memory-mapped (the model must fit
  // in RAM). Otherwise the streaming expert store holds this many bytes of
  // experts in host RAM and reads the rest from storage on demand.
  uint64_t expert_ram = 0;
  // The same as text ("8G", "512M", "25%" of the expert bytes, "auto"),
  // resolved at load against the model's stored sizes; overrides expert_ram.
  std::string expert_ram_text;
  // --device cuda: bytes of GPU memory for a slot cache of routed experts
  // ("20G", "25%" of the expert bytes, or plain bytes), above the host tier
  // (expert_ram, pinned) and storage. Empty: every expert resident in VRAM
  // (the model must fit). A budget that holds every expert is the same.
  std::string expert_vram_text;
  std::string io = "direct";         // direct (io_uring + O_DIRECT) | pread | buffered | mmap
  int io_queue_depth = 32;
  std::string cache_policy = "lru";  // lru | lfu (frequency with aging)
  bool prefetch = false;             // read the next layer's likely experts ahead
  // With prefetch: how to predict them, "router" (the next layer's router on
  // this layer's input), "previous" (the last token's choice) or both, with
  // an optional ",depth=N" (predicted reads in flight at once).
  std::string prefetch_with = "router";
  std::vector<std::pair<int, int>> pinned_experts;  // (layer, expert) never evicted

  // Bytes all sessions of the engine may hold in layer state (KV pages) at
  // once; 0: no limit. A step that would exceed it fails with a capacity
  // error and leaves its session as it was.
  uint64_t state_budget = 0;

  // Keep every matrix product's activations in f32. By default the
  // quantized kernels (GGUF blocks, MLX affine) round each activation row
  // to int8 as llama.cpp does, which is faster; routers and the
  // shared-expert gate always stay in f32. For fidelity checks and users
  // who want mlx-lm's or transformers' numbers on quantized weights.
  bool f32_activations = false;

  // How multi-head latent attention (DeepSeek-V3) reads its compressed
  // cache: "auto" (absorbed weights for decode and short steps, K/V
  // decompressed for long prefill steps), "naive" or "absorbed"; all
  // compute the same function.
  std::string mla_path = "auto";

  // Where the forward pass runs: "cpu", "cuda" (the whole model resident
  // on the GPU; an error where no GPU is usable) or "auto" (CUDA when a GPU
  // is usable, else the CPU).
  std::string device = "cpu";
};

// A point in a session's history to come back to (prefix reuse, chat
// turns): its position, plus a copy of any layer state that is not kept
// per position. Valid until the session overwrites a position below it.
class StateSnapshot;  // backend/backend.h
struct SessionCheckpoint {
  int position = 0;
  uint64_t session_id = 0, serial = 0;
  // The recurrent layers' state at `position` (models with linear
  // attention); null for a model whose state is all per position.
  std::shared_ptr<const StateSnapshot> states;
};

class Engine {
 public:
  static std::shared_ptr<Engine> load(const std::string& model_path, const EngineOptions& options = {});
  ~Engine();
  const ModelSpec& spec() const;
  const EngineOptions& options() const;
  // Bytes of the activation arena planned for a step of `tokens` tokens, and
  // what one buffer per value would take without the planner.
  std::pair<size_t, size_t> planned_bytes(int tokens, bool all_logits) const;
  std::string backend_name() const;
  uint64_t state_bytes_in_use() const;  // layer state held by all sessions
  ExpertStats expert_stats() const;
  std::string expert_source() const;  // how experts are served, in words
  // Identifies the model's weights: architecture, every tensor's name, type
  // and shape, and samples of the embedding, final norm and output head.
  // Saved sessions carry it, so that one model's state never loads into another.
  std::string fingerprint() const;

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  Engine();
  std::unique_ptr<Impl> impl_;
};

class Session {
 public:
  // max_positions 0: the model's max_position_embeddings.
  explicit Session(std::shared_ptr<Engine> engine, int max_positions = 0);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // Runs `tokens` at the next positions. Returns row-major logits
  // [n, vocab]: n = tokens.size() when all_logits, else 1 (the last token).
  // The span stays valid until the next call. On error the session is left
  // as it was before the call. Steps of many sessions of one engine may be
  // called from many threads: the engine runs them one at a time.
  std::span<const float> step(std::span<const int32_t> tokens, bool all_logits = false);
  // One decode step of several sessions of one engine at once: session i
  // takes tokens[i] at its next position. The pass reads the weights, and
  // each routed expert, once for all of them, and each session's logits
  // (logits(), one row) equal those of its own step() within rounding (a
  // GEMM over N rows sums in another order than a GEMV). On error the
  // sessions of the failed pass keep their positions; more sessions than
  // the micro-batch run as several passes, and backends that cannot batch
  // (CUDA so far) step the sessions one after another.
  static void step_batch(std::span<Session* const> sessions, std::span<const int32_t> tokens);
  // The logits of the last step (the span step() returned).
  std::span<const float> logits() const;
  int position() const;
  int max_positions() const;
  uint64_t state_bytes() const;  // layer state this session holds
  void reset();

  // Checkpoints: take one where the conversation may resume (the end of a
  // turn, a shared prompt prefix), restore it later. Restoring a KV-only
  // state is moving the position; recurrent state is copied.
  SessionCheckpoint checkpoint() const;
  bool can_restore(const SessionCheckpoint& cp) const;  // from this session, and still valid
  void restore(const SessionCheckpoint& cp);             // throws naming why when it cannot
  // Whether every layer state is kept per position, so that any earlier
  // position can be resumed without a checkpoint (rewind).
  bool can_rewind() const;
  // Forgets every position from `position` on (keeps the prefix before it):
  // a conversation whose history re-tokenizes differently resumes from the
  // common prefix instead of from scratch. Needs can_rewind().
  void rewind(int position);
  const Engine& engine() const;

  // Saved sessions. save() writes the positions this session holds, their
  // layer states and `user_data` (opaque bytes; the CLI and the server keep
  // the token history there) to `path`: a versioned header, the model's
  // fingerprint and a checksum, written to a temporary, fsynced and renamed,
  // so that a crash leaves the previous file whole. An earlier session file
  // under that name is replaced; any other existing file, a symbolic link,
  // a directory or a device is refused and left untouched. load() replaces this session's state with a file's
  // and returns its user_data; a file of another model, of another format
  // version, or a corrupt one is refused naming why, and the session is
  // then left as it was.
  void save(const std::string& path, std::string_view user_data = {}) const;
  std::string load(const std::string& path);
  // The same bytes in memory (the server's prefix cache); `what` names the
  // source in errors.
  std::string save_to_bytes(std::string_view user_data = {}) const;
  std::string load_from_bytes(std::string_view data, const std::string& what = "session state");

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeflux
