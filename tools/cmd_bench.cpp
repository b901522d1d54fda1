// moeflux bench MODEL: prefill and decode speed next to the host-memory
// floor measured in the same run (see ../shared/BENCHMARKS.md).
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/cpu/simd_kernels.h"
#include "bench.h"
#include "commands.h"
#include "core/membw.h"
#include "core/progress.h"
#include "model/model_spec.h"
#include "runtime/engine_impl.h"

namespace moeflux::cli {

namespace {

// Reads one byte per page of every weight so that "resident" means resident:
// the first timed token must not pay for page faults.
double touch_weights(Engine& e) {
  const double t0 = now_seconds();
  volatile uint8_t sink = 0;
  for (auto& f : e.impl().files->files())
    for (auto& [_, t] : f->tensors())
      for (uint64_t off = 0; off < t.nbytes; off += 4096) sink = sink + t.data[off];
  return now_seconds() - t0;
}

}  // namespace

nlohmann::ordered_json run_bench(const BenchArgs& a) {
  auto engine = a.model.load();
  const ModelSpec& s = engine->spec();
  Engine::Impl& impl = engine->impl();
  if (!a.json) fmt::print(stderr, "bench: {} ({}), {} threads, kernels: {}\n", a.model.path, s.arch, impl.pool->size(),
                          simd::target_name());
  const double warm_s = touch_weights(*engine);
  const BandwidthResult bw = measure_read_bandwidth(*impl.pool);

  std::mt19937 rng(uint32_t(a.seed));
  std::uniform_int_distribution<int32_t> tok(0, s.vocab - 1);
  std::vector<int32_t> prompt(size_t(a.prompt_tokens));
  for (auto& t : prompt) t = tok(rng);
  {  // warm-up: plans, scratch growth, first-touch of the arena
    Session w(engine);
    w.step(std::span<const int32_t>(prompt.data(), std::min<size_t>(prompt.size(), 8)));
    int32_t one = prompt[0];
    w.step(std::span<const int32_t>(&one, 1));
  }
  Session session(engine);
  const double t0 = now_seconds();
  auto logits = session.step(prompt);
  const double t1 = now_seconds();
  std::vector<double> step_s;
  for (int i = 0; i < a.decode_tokens; ++i) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const double ts = now_seconds();
    logits = session.step(std::span<const int32_t>(&next, 1));
    step_s.push_back(now_seconds() - ts);
  }
  double decode_total = 0;
  for (double x : step_s) decode_total += x;
  const double decode_tps = a.decode_tokens / decode_total;
  const double prefill_tps = a.prompt_tokens / (t1 - t0);

  // Host-memory floor: bytes a decode token must read / measured bandwidth.
  const double weight_bytes = double(s.active_params_per_token()) * double(dtype_size(s.dtype));
  const double avg_ctx = a.prompt_tokens + a.decode_tokens / 2.0;
  const double kv_bytes = 2.0 * s.layers * s.kv_dim() * 4.0 * avg_ctx;
  const double active_bytes = weight_bytes + kv_bytes;
  const double floor_tps = bw.gb_per_s * 1e9 / active_bytes;

  nlohmann::ordered_json j;
  j["model"] = a.model.path;
  j["arch"] = s.arch;
  j["dtype"] = std::string(dtype_name(s.dtype));
  j["threads"] = impl.pool->size();
  j["kernels"] = simd::target_name();
  j["prompt_tokens"] = a.prompt_tokens;
  j["decode_tokens"] = a.decode_tokens;
  j["prefill_tok_s"] = prefill_tps;
  j["time_to_first_token_s"] = t1 - t0;
  j["decode_tok_s"] = decode_tps;
  j["active_bytes_per_token"] = active_bytes;
  j["host_read_bandwidth_gb_s"] = bw.gb_per_s;
  j["host_memory_floor_tok_s"] = floor_tps;
  j["decode_vs_floor"] = decode_tps / floor_tps;
  j["peak_rss_bytes"] = peak_rss_bytes();
  j["weight_warmup_s"] = warm_s;
  return j;
}

void print_bench(const nlohmann::ordered_json& j) {
  fmt::print("prefill   {:8.2f} tok/s  ({} tokens, time to first token {:.3f} s)\n", j["prefill_tok_s"].get<double>(),
             j["prompt_tokens"].get<int>(), j["time_to_first_token_s"].get<double>());
  fmt::print("decode    {:8.2f} tok/s  ({} tokens)\n", j["decode_tok_s"].get<double>(), j["decode_tokens"].get<int>());
  fmt::print("floor     {:8.2f} tok/s  host memory: {} per token / {:.2f} GB/s measured read bandwidth\n",
             j["host_memory_floor_tok_s"].get<double>(), human_bytes(uint64_t(j["active_bytes_per_token"].get<double>())),
             j["host_read_bandwidth_gb_s"].get<double>());
  fmt::print("ratio     {:8.1f} %  of the host-memory floor\n", 100 * j["decode_vs_floor"].get<double>());
  fmt::print("peak RSS  {}\n", human_bytes(j["peak_rss_bytes"].get<uint64_t>()));
}

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "prefill/decode tok/s, peak RSS, and the host-memory floor");
  auto a = std::make_shared<BenchArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--prompt-tokens,-p", a->prompt_tokens, "prefill length")->check(CLI::PositiveNumber);
  cmd->add_option("--decode-tokens,-n", a->decode_tokens, "decode steps timed")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "seed of the random prompt");
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([a] {
    auto j = run_bench(*a);
    if (a->json) fmt::print("{}\n", j.dump(2));
    else print_bench(j);
  });
}

}  // namespace moeflux::cli
