// moeflux inspect MODEL: what the model is and what it will cost, before
// anything is computed.
#include <fmt/format.h>

#include <functional>
#include <map>

#include "cli_util.h"
#include "commands.h"
#include "core/progress.h"
#include "core/error.h"
#include "experts/expert_store.h"
#include "model/gguf_model.h"
#include "model/model_spec.h"
#include "runtime/engine_impl.h"
#if MOEFLUX_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#include <algorithm>

namespace moeflux::cli {

namespace {

const char* qk_norm_name(QkNorm q) {
  switch (q) {
    case QkNorm::None: return "none";
    case QkNorm::PerHead: return "per-head RMSNorm";
    case QkNorm::Full: return "RMSNorm over the whole projection";
  }
  return "?";
}

// The expert memory plan for --expert-ram, computed before anything is
// allocated; a budget below one layer's working set is refused here too.
void print_expert_plan(Engine& engine, const ModelArgs& args) {
  EngineOptions o = args.options();
  Engine::Impl& m = engine.impl();
  const ModelSpec& s = m.spec;
  o.expert_ram = expert_budget_for(args.expert_ram, s);
  ExpertIndex index(s, *m.arch, *m.files);
  const StorePlan plan = plan_store(index, s, o.expert_ram, o.pinned_experts.size());
  const size_t total = size_t(s.moe_layers()) * size_t(s.experts);
  const size_t slots = std::min(plan.slots, total);
  const uint64_t dense = s.dense_bytes();
  fmt::print("expert plan    --expert-ram {} = {}\n", args.expert_ram, human_bytes(o.expert_ram));
  fmt::print("  dense        {} resident (memory-mapped)\n", human_bytes(dense));
  fmt::print("  host tier    {} slots of {} = {} of {} routed experts ({:.1f}%)\n", slots, human_bytes(plan.slot_bytes),
             human_bytes(uint64_t(slots) * plan.slot_bytes), total, 100.0 * double(slots) / double(total));
  fmt::print("  storage      {} experts ({}) read on demand with --io {}\n", total - slots,
             human_bytes(uint64_t(total - slots) * s.expert_bytes()), o.io);
  fmt::print("  expected     miss rate {:.1f}% under uniform routing (each of the {} experts a token needs per MoE "
             "layer is resident with probability slots / experts)\n",
             100.0 * (1.0 - double(slots) / double(total)), s.top_k);
  fmt::print("  RAM total    about {} (dense + expert slots + activations)\n",
             human_bytes(dense + uint64_t(slots) * plan.slot_bytes));
  if (o.expert_ram < plan.min_budget)
    fail("--expert-ram {} is below the minimum {}: one layer's top-{} experts must fit at once", args.expert_ram,
         human_bytes(plan.min_budget), s.top_k);
}

#if MOEFLUX_HAVE_CUDA
// The GPU memory plan of --device cuda: everything resident, so weights,
// a step's activations and the MoE op's scratch, and what is left for KV.
void print_gpu_plan(Engine& engine, const ModelArgs& args) {
  const ModelSpec& s = engine.spec();
  const CudaDeviceInfo gpu = cuda_device_info();
  const int T = engine.options().max_micro_batch;
  const uint64_t dense = s.dense_bytes(), experts = s.expert_bytes_total();
  const uint64_t planned = engine.planned_bytes(T, false).first;
  // MoE scratch at T tokens: router logits, routed rows' SwiGLU and down
  // outputs, the shared expert's.
  const uint64_t rows = uint64_t(T) * uint64_t(s.top_k);
  const uint64_t scratch = 4 * (uint64_t(T) * uint64_t(s.experts) + rows * uint64_t(2 * s.expert_ffn + s.hidden) +
                                uint64_t(T) * uint64_t(2 * s.shared_ffn + s.hidden + 1));
  uint64_t kv_per_token = 0;
  for (const StateDesc& st : engine.impl().states) kv_per_token += st.bytes_per_position();
  // The three tiers of routed experts: VRAM slots, the host tier, storage.
  uint64_t on_gpu = experts;
  std::string tiers;
  std::function<void()> refuse;
  if (!args.expert_vram.empty()) {
    Engine::Impl& m = engine.impl();
    if (args.expert_vram == "auto")
      fail("--expert-vram auto is not supported: give a size (20G) or a share of the expert bytes (25%)");
    const uint64_t budget = expert_budget_for(args.expert_vram, s);
    const ExpertIndex index(s, *m.arch, *m.files);
    const size_t pinned = args.options().pinned_experts.size();
    const VramPlan vp = plan_vram(index, s, budget, pinned);
    const size_t slots = std::min(vp.slots, vp.experts);
    on_gpu = vp.all_resident ? experts : uint64_t(slots) * vp.slot_bytes;
    tiers += fmt::format("  vram tier    --expert-vram {} = {}: ", args.expert_vram, human_bytes(budget));
    if (vp.all_resident) {
      tiers += fmt::format("holds every routed expert ({}): no tiering, decode as a CUDA graph\n", human_bytes(experts));
    } else {
      tiers += fmt::format("{} slots of {} = {} of {} routed experts ({:.1f}%), policy {}; minimum {} ({} slots: "
                           "one token's top-{}{})\n",
                           slots, human_bytes(vp.slot_bytes), slots, vp.experts, 100.0 * double(slots) / double(vp.experts),
                           args.cache, human_bytes(vp.min_budget), vp.min_budget / std::max<uint64_t>(1, vp.slot_bytes),
                           s.top_k, pinned ? fmt::format(" + {} pinned", pinned) : std::string());
      if (!args.expert_ram.empty()) {
        const uint64_t ram = expert_budget_for(args.expert_ram, s);
        const StorePlan hp = plan_store(index, s, ram, pinned);
        const size_t hslots = std::min(hp.slots, vp.experts);
        tiers += fmt::format("  host tier    --expert-ram {}: {} slots ({} of the experts), page-locked for DMA; "
                             "copies overlap compute\n",
                             args.expert_ram, hslots, human_bytes(uint64_t(hslots) * hp.slot_bytes));
        tiers += fmt::format("  storage      {} experts read on demand with --io {}\n", vp.experts - hslots, args.io);
      } else {
        tiers += fmt::format("  host tier    every expert memory-mapped (pageable: copies are staged by the driver "
                             "and do not overlap; give --expert-ram for a page-locked host tier)\n");
      }
      tiers += fmt::format("  expected     VRAM miss rate {:.1f}% under uniform routing; a miss moves {} over PCIe\n",
                           100.0 * (1.0 - double(slots) / double(vp.experts)), human_bytes(s.expert_bytes()));
    }
    refuse = [vp, budget, top_k = s.top_k, pinned] { check_vram_plan(vp, budget, top_k, pinned); };  // after the plan is printed
  }
  const uint64_t fixed = dense + on_gpu + planned + scratch;
  fmt::print("gpu plan       {}: {} total, {} free\n", gpu.name, human_bytes(gpu.total_bytes), human_bytes(gpu.free_bytes));
  fmt::print("  dense        {} resident in their stored formats\n", human_bytes(dense));
  if (tiers.empty())
    fmt::print("  experts      {} (every routed expert resident; --expert-vram keeps only part of them)\n",
               human_bytes(experts));
  else
    fmt::print("{}", tiers);
  fmt::print("  activations  {} planned for a step of {} tokens + {} MoE scratch\n", human_bytes(planned), T,
             human_bytes(scratch));
  fmt::print("  kv cache     {} per token, in pages of 256 positions\n", human_bytes(kv_per_token));
  if (fixed + (uint64_t(1) << 30) > gpu.free_bytes)
    fmt::print("  total        {} before KV: does NOT fit in the {} free (the first step is refused); give "
               "--expert-vram a smaller budget, or use --device cpu\n",
               human_bytes(fixed), human_bytes(gpu.free_bytes));
  else
    fmt::print("  total        {} before KV; the rest holds about {} tokens of context\n", human_bytes(fixed),
               (gpu.free_bytes - fixed - (uint64_t(1) << 30)) / std::max<uint64_t>(1, kv_per_token));
  if (refuse) refuse();
}
#endif

void run_inspect(const ModelArgs& args_in) {
  ModelArgs args = args_in;
  args.expert_ram.clear();  // inspect plans the store; it does not allocate it
  args.expert_vram.clear();  // nor the GPU's expert slots
  auto engine = args.load();
  const ModelSpec& s = engine->spec();
  fmt::print("model          {}\n", args.path);
  fmt::print("architecture   {} ({} {})\n", s.arch, is_gguf_file(args.path) ? "GGUF, routed experts" : "safetensors,",
             s.mlx_quant ? fmt::format("{}, {} otherwise", s.mlx_quant->describe(), dtype_name(s.dtype))
                         : fmt::format("{} weights", dtype_name(s.dtype)));
  fmt::print("shape          {} layers ({} MoE, {} dense), hidden {}, vocab {}, context {}\n", s.layers,
             s.moe_layers(), s.layers - s.moe_layers(), s.hidden, s.vocab, s.max_positions);
  fmt::print("attention      {} query heads, {} kv heads, head_dim {}, q/k norm: {}{}{}, rope theta {}\n", s.heads,
             s.kv_heads, s.head_dim, qk_norm_name(s.qk_norm), s.qkv_bias ? ", qkv bias" : "",
             s.clip_qkv ? fmt::format(", clip_qkv {}", *s.clip_qkv) : "", s.rope_theta);
  if (const MlaSpec& m = s.mla; m.kv_lora_rank > 0) {  // DeepSeek-V3: the attention line's head_dim is the RoPE part
    fmt::print("latent attn    {}, kv_lora_rank {}, qk head {} nope + {} rope, v head {}, {} RoPE{}\n",
               m.q_lora_rank ? fmt::format("q_lora_rank {}", m.q_lora_rank) : std::string("q_proj"), m.kv_lora_rank,
               m.qk_nope_dim, m.qk_rope_dim, m.v_dim, m.rope_interleave ? "interleaved" : "rotate-half",
               m.yarn.factor != 1.0f ? fmt::format(", YaRN factor {}", m.yarn.factor) : "");
    fmt::print("router         sigmoid + correction bias, {} groups (best {} kept), routed scaling {}\n",
               m.router.groups, m.router.topk_groups, m.router.scaling);
  }
  if (const LinearAttnSpec& la = s.linear_attn; !la.layer_is_linear.empty()) {
    int linear = 0;
    for (uint8_t v : la.layer_is_linear) linear += v;
    fmt::print("linear attn    {} of {} layers Gated DeltaNet: {} key heads x {}, {} value heads x {}, conv kernel {}; "
               "the others gated attention, RoPE on {} of {} dims{}\n",
               linear, s.layers, la.key_heads, la.key_dim, la.value_heads, la.value_dim, la.conv_kernel,
               la.rotary_dims, s.head_dim, la.norm_weight_offset != 0 ? ", zero-centred norms" : "");
  }
  fmt::print("experts        {} per MoE layer, top-{}{}, expert ffn {}{}{}\n", s.experts, s.top_k,
             s.norm_topk ? " (renormalised)" : "", s.expert_ffn,
             s.shared_ffn ? fmt::format(", shared expert ffn {}{}", s.shared_ffn, s.shared_expert_gate ? " (gated)" : "")
                          : "",
             s.dense_ffn ? fmt::format(", dense ffn {}", s.dense_ffn) : "");
  const uint64_t dense = s.dense_params(), experts = s.expert_params_total();
  fmt::print("parameters     {:.3f} B total = {:.3f} B dense + {:.3f} B routed experts; {:.3f} B active per token\n",
             double(dense + experts) / 1e9, double(dense) / 1e9, double(experts) / 1e9,
             double(s.active_params_per_token()) / 1e9);
  fmt::print("bytes          dense {}, experts {}, one expert {}, active per token {}\n", human_bytes(s.dense_bytes()),
             human_bytes(s.expert_bytes_total()), human_bytes(s.expert_bytes()), human_bytes(s.active_bytes_per_token()));
  for (int tokens : {1, engine->options().max_micro_batch}) {
    auto [planned, unplanned] = engine->planned_bytes(tokens, tokens > 1);
    fmt::print("buffers        {} token{}: {} planned ({} without sharing)\n", tokens, tokens > 1 ? "s" : "",
               human_bytes(planned), human_bytes(unplanned));
  }
  // Layer state per kind: what a session keeps for each position, and
  // what it keeps whatever the length (recurrent layers).
  struct KindState {
    int layers = 0;
    uint64_t per_position = 0, fixed = 0;
  };
  std::map<LayerKind, KindState> by_kind;
  uint64_t state_per_token = 0, state_fixed = 0;
  for (const StateDesc& st : engine->impl().states) {
    KindState& k = by_kind[st.kind];
    ++k.layers;
    k.per_position += st.bytes_per_position();
    k.fixed += st.fixed_floats * sizeof(float);
    state_per_token += st.bytes_per_position();
    state_fixed += st.fixed_floats * sizeof(float);
  }
  for (const auto& [kind, k] : by_kind) {
    if (k.fixed > 0)
      fmt::print("layer state    {} layers of {}: {} per session\n", k.layers, layer_kind_name(kind), human_bytes(k.fixed));
    else
      fmt::print("layer state    {} layers of {}: {} per token\n", k.layers, layer_kind_name(kind),
                 human_bytes(k.per_position));
  }
  fmt::print("kv cache       {} per token", human_bytes(state_per_token));
  if (state_fixed > 0) fmt::print(", recurrent state {} per session", human_bytes(state_fixed));
  fmt::print("\n");
  if (!args_in.expert_ram.empty()) print_expert_plan(*engine, args_in);
#if MOEFLUX_HAVE_CUDA
  if (engine->backend_name() == "cuda") print_gpu_plan(*engine, args_in);
#endif
}


}  // namespace

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "print a model's architecture, sizes and memory plan");
  auto args = std::make_shared<ModelArgs>();
  args->add_to(cmd);
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace moeflux::cli
