#include <filesystem>

#include "core/error.h"
#include "experts/expert_store.h"
#include "experts/vram_slots.h"
#include "model/blocks.h"
#include "model/gguf_model.h"
#include "runtime/engine_impl.h"

namespace moeflux {

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

std::shared_ptr<Engine> Engine::load(const std::string& model_path, const EngineOptions& options) {
  if (options.max_micro_batch < 1) fail("max_micro_batch must be at least 1, got {}", options.max_micro_batch);
  std::shared_ptr<Engine> e(new Engine());
  Impl& m = *e->impl_;
  m.options = options;
  OpenedModel opened = open_model(model_path);
  m.spec = std::move(opened.spec);
  m.arch = &arch_def(m.spec.arch);
  m.files = std::move(opened.tensors);
  m.weights = bind_weights(m.spec, *m.arch, *m.files);
  if (!options.expert_ram_text.empty()) m.options.expert_ram = expert_budget_for(options.expert_ram_text, m.spec);
  if (m.options.expert_ram > 0) {
    ExpertStoreOptions so;
    so.host_budget_bytes = m.options.expert_ram;
    so.io.mode = parse_io_mode(options.io);
    so.io.queue_depth = options.io_queue_depth;
    so.policy = options.cache_policy;
    so.prefetch = options.prefetch;
    parse_prefetch_spec(options.prefetch_with, so.prefetch_predictors, so.prefetch_in_flight);
    so.pinned = options.pinned_experts;
    m.experts = std::make_unique<ExpertStore>(m.spec, *m.arch, *m.files, std::move(so));
  } else {
    m.experts = std::make_unique<MmapExpertSource>(m.spec, *m.arch, *m.files);
  }
  m.scheduler = std::make_unique<StepScheduler>(options.threads);
  m.state_budget = std::make_unique<StateBudget>(options.state_budget);
  m.states = layer_states(m.spec);
  if (!options.expert_vram_text.empty()) {
    if (options.device == "cpu")
      fail("--expert-vram {} is a GPU budget: it needs --device cuda (or auto on a machine with a GPU)",
           options.expert_vram_text);
    if (options.expert_vram_text == "auto")
      fail("--expert-vram auto is not supported: give a size (20G) or a share of the expert bytes (25%)");
    const uint64_t budget = expert_budget_for(options.expert_vram_text, m.spec);
    const ExpertIndex index(m.spec, *m.arch, *m.files);
    const VramPlan plan = plan_vram(index, m.spec, budget, options.pinned_experts.size());
    check_vram_plan(plan, budget, m.spec.top_k, options.pinned_experts.size());
    m.vram = vram_tier_options(plan, m.spec, options.cache_policy, options.pinned_experts);
  }
  m.make_backend_for_experts();
  // What this backend cannot compute is refused at load, not at the first step.
  if (m.backend->name() != "cpu") m.refuse_cpu_only_fields(build_model_graph(m.spec, m.weights, 1, false));
  return e;
}

void Engine::Impl::make_backend_for_experts() {
  backend = make_backend(backend_for_device(options.device), BackendContext{*experts, scheduler->pool(), *state_budget, vram});
}

void Engine::Impl::replace_experts(std::unique_ptr<ExpertSource> source) {
  backend.reset();
  experts = std::move(source);
  if (experts) make_backend_for_experts();
}

const ModelSpec& Engine::spec() const { return impl_->spec; }
ExpertStats Engine::expert_stats() const {
  ExpertStats s = impl_->experts->stats();
  if (impl_->backend) impl_->backend->add_tier_stats(s);
  return s;
}
std::string Engine::expert_source() const { return impl_->experts->describe(); }
const EngineOptions& Engine::options() const { return impl_->options; }
std::string Engine::backend_name() const { return impl_->backend->name(); }
uint64_t Engine::state_bytes_in_use() const { return impl_->state_budget->used(); }

std::pair<size_t, size_t> Engine::planned_bytes(int tokens, bool all_logits) const {
  const StepPlan& p = impl_->plan_for(tokens, all_logits);
  return {p.plan.arena_bytes, p.plan.unplanned_bytes};
}

// gpt-oss's attention sinks, expert biases and clamped SwiGLU are fields of
// ops every backend has (OpAttention, OpMoe) that only the CPU backend
// computes so far: another backend would run the graph without them, and
// wrongly, so it is refused by name instead.
void Engine::Impl::refuse_cpu_only_fields(const Graph& g) const {
  if (!backend || backend->name() == "cpu") return;
  for (const Op& op : g.ops) {
    const char* what = nullptr;
    if (const auto* a = std::get_if<OpAttention>(&op); a && a->attn.sinks) what = "attention sinks";
    if (const auto* m = std::get_if<OpMoe>(&op);
        m && (m->moe.expert_gate_up_bias || m->moe.expert_down_bias || m->moe.clamped_swiglu))
      what = "expert biases and the clamped SwiGLU";
    if (what)
      fail("{} ({}) needs {}, which the {} backend does not compute yet; use --device cpu", spec.arch,
           spec.source_dir, what, backend->name());
  }
}

const StepPlan& Engine::Impl::plan_for(int tokens, bool all_logits) {
  std::lock_guard lk(plans_mu);
  auto& slot = plans[{tokens, all_logits}];
  if (!slot) {
    auto p = std::make_unique<StepPlan>();
    BuildOptions bo{options.f32_activations};
    if (options.mla_path == "naive") bo.mla_path = MlaPath::Naive;
    else if (options.mla_path == "absorbed") bo.mla_path = MlaPath::Absorbed;
    else if (options.mla_path != "auto")
      fail("mla_path '{}' is not one of auto, naive, absorbed", options.mla_path);
    p->graph = build_model_graph(spec, weights, tokens, all_logits, bo);
    refuse_cpu_only_fields(p->graph);
    p->plan = plan_buffers(p->graph);
    slot = std::move(p);
  }
  return *slot;
}

}  // namespace moeflux
