#include "server/metrics.h"

#include <fmt/format.h>

namespace moeflux::server {

void Metrics::request_done(const std::string& endpoint, int status) {
  std::lock_guard lk(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::generation_done(int prompt_tokens, int cached_tokens, int generated_tokens, double prefill_s,
                              double decode_s) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += uint64_t(prompt_tokens);
  cached_tokens_ += uint64_t(cached_tokens);
  generated_tokens_ += uint64_t(generated_tokens);
  prefill_s_ += prefill_s;
  decode_s_ += decode_s;
  if (decode_s > 0 && generated_tokens > 1) last_decode_tok_s_ = (generated_tokens - 1) / decode_s;
}

std::string Metrics::render(const Engine& engine, int waiting, int busy, int slots,
                            const DecodeBatcher::Stats& batching) const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  std::lock_guard lk(mu_);
  metric("moeflux_requests_total", "counter", "HTTP requests answered, by endpoint and status");
  for (const auto& [key, n] : requests_)
    out += fmt::format("moeflux_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  metric("moeflux_requests_cancelled_total", "counter", "generations ended because the client went away");
  out += fmt::format("moeflux_requests_cancelled_total {}\n", cancelled_.load());
  metric("moeflux_prompt_tokens_total", "counter", "prompt tokens of finished generations");
  out += fmt::format("moeflux_prompt_tokens_total {}\n", prompt_tokens_);
  metric("moeflux_prompt_tokens_cached_total", "counter", "prompt tokens resumed from a slot's cache (not computed)");
  out += fmt::format("moeflux_prompt_tokens_cached_total {}\n", cached_tokens_);
  metric("moeflux_generated_tokens_total", "counter", "tokens generated");
  out += fmt::format("moeflux_generated_tokens_total {}\n", generated_tokens_);
  metric("moeflux_prefill_seconds_total", "counter", "time spent in prompt processing");
  out += fmt::format("moeflux_prefill_seconds_total {:.6f}\n", prefill_s_);
  metric("moeflux_decode_seconds_total", "counter", "time spent generating");
  out += fmt::format("moeflux_decode_seconds_total {:.6f}\n", decode_s_);
  metric("moeflux_decode_tokens_per_second", "gauge", "decode speed of the last generation");
  out += fmt::format("moeflux_decode_tokens_per_second {:.3f}\n", last_decode_tok_s_);
  metric("moeflux_queue_length", "gauge", "requests waiting for a slot");
  out += fmt::format("moeflux_queue_length {}\n", waiting);
  metric("moeflux_slots_busy", "gauge", "slots generating now");
  out += fmt::format("moeflux_slots_busy {}\n", busy);
  metric("moeflux_slots", "gauge", "slots (sessions) of the server");
  out += fmt::format("moeflux_slots {}\n", slots);
  metric("moeflux_state_bytes", "gauge", "layer state (KV) held by all sessions");
  out += fmt::format("moeflux_state_bytes {}\n", engine.state_bytes_in_use());
  metric("moeflux_state_budget_bytes", "gauge", "limit on layer state (0: none)");
  out += fmt::format("moeflux_state_budget_bytes {}\n", engine.options().state_budget);
  const ExpertStats s = engine.expert_stats();
  metric("moeflux_expert_acquires_total", "counter", "routed experts acquired, by how they were found");
  out += fmt::format("moeflux_expert_acquires_total{{result=\"hit\"}} {}\n", s.hits);
  out += fmt::format("moeflux_expert_acquires_total{{result=\"prefetch_hit\"}} {}\n", s.prefetch_hits);
  out += fmt::format("moeflux_expert_acquires_total{{result=\"miss\"}} {}\n", s.misses);
  metric("moeflux_expert_bytes_read_total", "counter", "expert bytes read from storage");
  out += fmt::format("moeflux_expert_bytes_read_total {}\n", s.bytes_read);
  metric("moeflux_expert_read_wait_seconds_total", "counter", "time compute waited for expert reads");
  out += fmt::format("moeflux_expert_read_wait_seconds_total {:.6f}\n", s.read_wait_s);
  metric("moeflux_expert_evictions_total", "counter", "experts evicted from host RAM");
  out += fmt::format("moeflux_expert_evictions_total {}\n", s.evictions);
  metric("moeflux_decode_passes_total", "counter", "decode passes run (each serves one or more requests' steps)");
  out += fmt::format("moeflux_decode_passes_total {}\n", batching.batches);
  metric("moeflux_decode_batched_steps_total", "counter", "request decode steps run in those passes");
  out += fmt::format("moeflux_decode_batched_steps_total {}\n", batching.steps);
  metric("moeflux_decode_batch_largest", "gauge", "most requests served by one decode pass");
  out += fmt::format("moeflux_decode_batch_largest {}\n", batching.largest);
  return out;
}

}  // namespace moeflux::server
