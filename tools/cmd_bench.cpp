// moeflux bench MODEL: prefill and decode speed next to the host-memory
// floor measured in the same run (see ../shared/BENCHMARKS.md).
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_util.h"
#include "backend/cpu/simd_kernels.h"
#include "bench.h"
#include "commands.h"
#include "core/membw.h"
#include "core/progress.h"
#include "model/model_spec.h"
#include "experts/expert_store.h"
#include "runtime/engine_impl.h"
#if MOEFLUX_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/link_probe.h"
#endif

#include <fstream>
#include <map>
#include <functional>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>
#include "core/error.h"
#include <unordered_set>

namespace moeflux::cli {

namespace {

// Reads one byte per page of every resident weight so that "resident" means
// resident: the first timed token must not pay for page faults. With the
// expert store, routed experts are not resident and are not touched.
double touch_weights(Engine& e) {
  const double t0 = now_seconds();
  Engine::Impl& m = e.impl();
  std::unordered_set<std::string> experts;
  if (e.options().expert_ram > 0)
    for (int l = 0; l < m.spec.layers; ++l)
      if (m.spec.layer_is_moe[size_t(l)])
        for (int x = 0; x < m.spec.experts; ++x) {
          auto n = m.arch->expert_names(l, x);
          experts.insert(n.gate);
          experts.insert(n.up);
          experts.insert(n.down);
        }
  volatile uint8_t sink = 0;
  auto touch = [&](const uint8_t* data, uint64_t n) {
    for (uint64_t off = 0; off < n; off += 4096) sink = sink + data[off];
  };
  for (auto& [name, t] : m.files->tensors())
    if (!experts.count(name)) {
      touch(t->data, t->nbytes);
      if (t->mlx) {
        touch(t->mlx->scales.data, t->mlx->scales.nbytes);
        touch(t->mlx->biases.data, t->mlx->biases.nbytes);
      }
    }
  return now_seconds() - t0;
}

// Bytes of the model's files in the page cache (mincore over their maps).
uint64_t model_bytes_cached(Engine& e) {
  const long page = ::sysconf(_SC_PAGESIZE);
  uint64_t total = 0;
  std::vector<unsigned char> vec;
  // Each file's map: its start (any tensor's data minus its offset) and the end of its last tensor.
  std::map<std::string, std::pair<const uint8_t*, uint64_t>> maps;
  for (auto& [_, t] : e.impl().files->tensors()) {
    auto& [base, size] = maps[t->file];
    base = t->data - t->offset;
    size = std::max<uint64_t>(size, t->offset + t->nbytes);
  }
  for (auto& [_, map] : maps) {
    const auto [base, size] = map;
    vec.resize((size + uint64_t(page) - 1) / uint64_t(page));
    if (::mincore(const_cast<uint8_t*>(base), size, vec.data()) != 0) continue;
    for (unsigned char c : vec) total += (c & 1) ? uint64_t(page) : 0;
  }
  return total;
}

uint64_t page_cache_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (f >> key >> kb >> unit)
    if (key == "Cached:") return kb * 1024;
  return 0;
}

// O_DIRECT read bandwidth at the store's request sizes: whole experts (all
// their extents) at random, as decode misses read them. experts_per_batch
// <= 0: all of them submitted at once, up to queue_depth in flight (what the
// device can give). Otherwise batches averaging that many experts, each
// read to completion before the next is submitted: the queue depth decode
// itself offers when a layer's misses are read together and the next
// layer's routing is not known until they have been used.
double measure_storage_gbs(Engine& e, int queue_depth, double experts_per_batch = 0) {
  Engine::Impl& m = e.impl();
  ExpertIndex index(m.spec, *m.arch, *m.files);
  IoOptions io;
  io.mode = IoMode::kDirect;
  io.queue_depth = queue_depth;
  auto engine = make_io_engine(io);
  std::vector<IoFileId> ids;
  for (auto& f : index.files()) ids.push_back(engine->add_file(f));
  const StorePlan plan = plan_store(index, m.spec, 0, 0);
  // Enough whole experts for a few seconds of reading at ~1 GB/s, so that
  // one slow moment of a shared disk does not set the floor.
  const size_t n = size_t(std::min(queue_depth * 8, m.spec.moe_layers() * m.spec.experts));
  HostArena arena(n, plan.slot_bytes + 4 * kIoAlign);
  // A fresh draw each probe: a fixed set would be read again by every probe
  // and every run, and served from whatever cache sits below the VM's disk
  // (seen: 2.5 GB/s for a probe at decode's queue depth, 0.6-0.9 for cold
  // reads at the same depth).
  std::mt19937 rng(std::random_device{}());
  std::vector<int> layers;
  for (int l = 0; l < m.spec.layers; ++l)
    if (index.has_layer(l)) layers.push_back(l);
  std::vector<ReadRequest> reqs;
  std::vector<size_t> first_req;  // of each expert
  for (size_t i = 0; i < n; ++i) {
    first_req.push_back(reqs.size());
    const ExpertExtents& x = index.at(layers[rng() % layers.size()], int(rng() % uint32_t(m.spec.experts)));
    uint64_t cursor = 0;
    FileRange ranges[ExpertExtents::kMaxRanges];
    const int nr = x.ranges(ranges);
    for (int j = 0; j < nr; ++j) {
      const FileRange& ext = ranges[j];
      ReadRequest r;
      r.file = ids[ext.file];
      r.offset = ext.offset;
      r.length = ext.length;
      r.dst = arena.slot(i) + cursor;
      cursor += io_room(ext.offset, ext.length);
      reqs.push_back(std::move(r));
    }
  }
  // Fault the buffers in before timing, as the store's arena is touched
  // during warm-up: otherwise the probe also times the kernel finding (and,
  // after a long run, compacting memory for) 2.3 GB of fresh huge pages,
  // which read 0.45 GB/s where decode itself got 0.9.
  for (size_t i = 0; i < n; ++i) std::memset(arena.slot(i), 0, plan.slot_bytes + 4 * kIoAlign);
  first_req.push_back(reqs.size());
  // Batch sizes alternate between floor and ceil of the mean so that they
  // average it (1.5 -> 1, 2, 1, 2, ...).
  std::vector<std::vector<ReadRequest>> batches;
  if (experts_per_batch <= 0) {
    batches.push_back(std::move(reqs));
  } else {
    double due = 0;
    for (size_t i = 0; i < n;) {
      due += experts_per_batch;
      const size_t k = std::clamp(size_t(due), size_t(1), n - i);
      due -= double(k);
      batches.emplace_back(std::make_move_iterator(reqs.begin() + ptrdiff_t(first_req[i])),
                           std::make_move_iterator(reqs.begin() + ptrdiff_t(first_req[i + k])));
      i += k;
    }
  }
  const double t0 = now_seconds();
  for (auto& b : batches) engine->read_batch(b);
  const double secs = now_seconds() - t0;
  uint64_t bytes = 0;
  for (auto& b : batches)
    for (auto& r : b) bytes += r.bytes_read;
  return double(bytes) / secs / 1e9;
}

// Runs a measurement in a child process, so that its buffers (a GiB for the
// DRAM probe, a queue of experts for the storage probe) never count in the
// engine's peak RSS. The child has one thread after fork: it makes its own.
double measure_in_child(const std::function<double()>& measure) {
  int fds[2];
  if (::pipe(fds) != 0) return measure();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    double v = 0;
    try {
      v = measure();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench: measurement failed: %s\n", e.what());
    }
    [[maybe_unused]] auto n = ::write(fds[1], &v, sizeof v);
    ::_exit(0);
  }
  ::close(fds[1]);
  double v = 0;
  const bool got = pid > 0 && ::read(fds[0], &v, sizeof v) == sizeof v;
  ::close(fds[0]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  if (!got) fail("bench: the bandwidth measurement process failed");
  return v;
}

}  // namespace

nlohmann::ordered_json run_bench(const BenchArgs& a) {
  const uint64_t cached_before = page_cache_bytes();
  auto engine = a.model.load();
  const ModelSpec& s = engine->spec();
  Engine::Impl& impl = engine->impl();
  // Before the prompt is allocated: -p 2147483647 allocated gigabytes and
  // only then met the session's context check.
  if (int64_t(a.prompt_tokens) + a.decode_tokens > s.max_positions)
    fail("bench: --prompt-tokens {} + --decode-tokens {} = {} exceed the model's context of {} positions",
         a.prompt_tokens, a.decode_tokens, int64_t(a.prompt_tokens) + a.decode_tokens, s.max_positions);
  if (!a.json) fmt::print(stderr, "bench: {} ({}), {} threads, kernels: {}\n", a.model.path, s.arch, impl.scheduler->threads(),
                          simd::target_name());
  const uint64_t model_cached_loaded = model_bytes_cached(*engine);
  const double warm_s = touch_weights(*engine);
  // The run's growth is counted from here: touching the mapped dense
  // weights caches them (and the kernel's readahead around them) by design.
  const uint64_t model_cached_before = model_bytes_cached(*engine);
  const int threads = impl.scheduler->threads();
  // The DRAM probe in a child too: its GiB buffer stays out of peak RSS.
  const double host_gbs = measure_in_child([threads] {
    ThreadPool pool(threads);
    return measure_read_bandwidth(pool).gb_per_s;
  });

  const int qd = engine->options().io_queue_depth;
  const double storage_before =
      engine->options().expert_ram > 0 ? measure_in_child([&] { return measure_storage_gbs(*engine, qd); }) : 0.0;
  std::mt19937 rng(uint32_t(a.seed));
  std::uniform_int_distribution<int32_t> tok(0, s.vocab - 1);
  std::vector<int32_t> prompt(size_t(a.prompt_tokens));
  for (auto& t : prompt) t = tok(rng);
  {  // warm-up on other tokens: plans, scratch growth, first touch of the arena
    Session w(engine);
    std::vector<int32_t> other(8);
    for (auto& t : other) t = tok(rng);
    w.step(other);
    w.step(std::span<const int32_t>(&other[0], 1));
  }
  Session session(engine);
  const ExpertStats before_prefill = engine->expert_stats();
  const double t0 = now_seconds();
  auto logits = session.step(prompt);
  const double t1 = now_seconds();
  const ExpertStats before_decode = engine->expert_stats();
  std::vector<double> step_s;
  // Decode feeds seeded random tokens, not the argmax: a random-weight model
  // decoding greedily repeats itself, routes the same way every step and
  // makes any cache look perfect. Random tokens keep routing as varied as a
  // random router gives, the worst case the floors are quoted for.
  for (int i = 0; i < a.decode_tokens; ++i) {
    const int32_t next = tok(rng);
    const double ts = now_seconds();
    logits = session.step(std::span<const int32_t>(&next, 1));
    step_s.push_back(now_seconds() - ts);
  }
  const ExpertStats after = engine->expert_stats();
  double decode_total = 0;
  for (double x : step_s) decode_total += x;
  const double decode_tps = a.decode_tokens / decode_total;
  const double prefill_tps = a.prompt_tokens / (t1 - t0);

  // Host-memory floor: bytes a decode token must read / measured bandwidth.
  const double weight_bytes = double(s.active_bytes_per_token());
  const double avg_ctx = a.prompt_tokens + a.decode_tokens / 2.0;
  double state_per_position = 0;
  for (const StateDesc& st : impl.states) state_per_position += double(st.bytes_per_position());
  const double kv_bytes = state_per_position * avg_ctx;
  const double active_bytes = weight_bytes + kv_bytes;
  const double floor_tps = host_gbs * 1e9 / active_bytes;

  nlohmann::ordered_json j;
  j["model"] = a.model.path;
  j["arch"] = s.arch;
  j["dtype"] = std::string(dtype_name(s.dtype));
  j["threads"] = impl.scheduler->threads();
  j["kernels"] = simd::target_name();
  j["prompt_tokens"] = a.prompt_tokens;
  j["decode_tokens"] = a.decode_tokens;
  j["prefill_tok_s"] = prefill_tps;
  j["time_to_first_token_s"] = t1 - t0;
  j["decode_tok_s"] = decode_tps;
  j["active_bytes_per_token"] = active_bytes;
  j["host_read_bandwidth_gb_s"] = host_gbs;
  j["host_memory_floor_tok_s"] = floor_tps;
  j["decode_vs_floor"] = decode_tps / floor_tps;
  j["peak_rss_bytes"] = peak_rss_bytes();
  j["page_cache_growth_bytes"] = double(page_cache_bytes()) - double(cached_before);
  // Of this model's files: what the warm-up, prefill and decode added to the
  // page cache after the dense weights were touched, as a share of the
  // model's size (with --io direct, expert reads should add nothing).
  j["dense_warmup_page_cache_bytes"] = double(model_cached_before) - double(model_cached_loaded);
  const double model_growth = double(model_bytes_cached(*engine)) - double(model_cached_before);
  j["model_page_cache_growth_bytes"] = model_growth;
  j["model_bytes"] = double(engine->impl().files->total_bytes());
  j["model_page_cache_growth_fraction"] = model_growth / double(engine->impl().files->total_bytes());
  j["experts"] = engine->expert_source();
  if (engine->options().expert_ram > 0) {
    const double n = a.decode_tokens;
    const uint64_t hits = after.hits - before_decode.hits, misses = after.misses - before_decode.misses;
    const uint64_t phits = after.prefetch_hits - before_decode.prefetch_hits;
    const double read_per_token = double(after.bytes_read - before_decode.bytes_read) / n;
    // Probed before the run and again after it; the faster probe sets the
    // floor, so a disk that slowed down during one probe flatters nothing.
    const double storage_after = measure_in_child([&] { return measure_storage_gbs(*engine, qd); });
    const double storage_peak_gbs = std::max(storage_before, storage_after);
    j["storage_read_gb_s_probes"] = {storage_before, storage_after};
    // Decode's own queue depth: the experts a MoE layer needed from storage,
    // on average, read together and waited for, layer after layer.
    const double per_layer = double(misses + phits) / (n * std::max(1, s.moe_layers()));
    const double storage_gbs =
        per_layer > 0 ? measure_in_child([&] { return measure_storage_gbs(*engine, qd, per_layer); }) : storage_peak_gbs;
    j["decode_experts_from_storage_per_layer"] = per_layer;
    j["expert_ram_bytes"] = engine->options().expert_ram;
    j["io"] = engine->options().io;
    j["io_queue_depth"] = qd;
    j["cache_policy"] = engine->options().cache_policy;
    j["prefetch"] = engine->options().prefetch;
    j["decode_expert_hits"] = hits;
    j["decode_expert_prefetch_hits"] = phits;
    j["decode_expert_misses"] = misses;
    j["decode_hit_rate"] = hits + phits + misses ? double(hits + phits) / double(hits + phits + misses) : 0.0;
    j["decode_storage_bytes_per_token"] = read_per_token;
    j["decode_stall_ms_per_token"] = 1e3 * (after.read_wait_s - before_decode.read_wait_s) / n;
    const uint64_t issued = after.prefetch_issued - before_decode.prefetch_issued;
    const uint64_t used = after.prefetch_used - before_decode.prefetch_used;
    j["prefetch_precision"] = issued ? double(used) / double(issued) : 0.0;
    j["prefetch_recall"] = phits + misses ? double(phits) / double(phits + misses) : 0.0;
    j["prefill_storage_bytes"] = double(before_decode.bytes_read - before_prefill.bytes_read);
    // Storage floor: the expert bytes a token needed that were not in RAM
    // from earlier use (demand misses plus experts a prefetch brought in),
    // over the O_DIRECT bandwidth. Wasted prefetch reads are not counted as
    // needed: they are a cost of prefetching, not of the model.
    const double needed_per_token = double(misses + phits) * double(s.expert_bytes()) / n;
    j["decode_missed_expert_bytes_per_token"] = needed_per_token;
    // The floor of ../shared/BENCHMARKS.md: at decode's request sizes and
    // queue depth. The peak (queue depth qd) floor is what a reader that
    // knew every layer's experts in advance could reach.
    j["storage_read_gb_s"] = storage_gbs;
    j["storage_floor_tok_s"] = needed_per_token > 0 ? storage_gbs * 1e9 / needed_per_token : 0.0;
    j["decode_vs_storage_floor"] = needed_per_token > 0 ? decode_tps / (storage_gbs * 1e9 / needed_per_token) : 0.0;
    j["storage_peak_read_gb_s"] = storage_peak_gbs;
    j["storage_peak_floor_tok_s"] = needed_per_token > 0 ? storage_peak_gbs * 1e9 / needed_per_token : 0.0;
    j["decode_vs_storage_peak_floor"] =
        needed_per_token > 0 ? decode_tps / (storage_peak_gbs * 1e9 / needed_per_token) : 0.0;
    // Reads (at the device's peak) and compute overlap, so a token takes at
    // least the longer of its storage time and its host-memory time: when
    // compute is the slower one (few cores, float weights) this is the bound
    // that applies.
    const double token_s = std::max(needed_per_token / (storage_peak_gbs * 1e9), 1.0 / floor_tps);
    j["streaming_floor_tok_s"] = 1.0 / token_s;
    j["decode_vs_streaming_floor"] = decode_tps * token_s;
  }
  j["weight_warmup_s"] = warm_s;
  j["device"] = engine->backend_name();
#if MOEFLUX_HAVE_CUDA
  if (engine->backend_name() == "cuda") {
    // The gpu-resident floor: a token's bytes over the device memory
    // bandwidth a large copy reaches in this run.
    const CudaDeviceInfo info = cuda_device_info();
    const double device_gbs = cuda_copy_bandwidth_gbs();
    const CudaWeightBytes wb = cuda_weight_bytes(*impl.backend);
    j["gpu"] = info.name;
    j["gpu_weight_bytes"] = {{"dense", wb.dense}, {"experts", wb.experts}};
    j["device_copy_bandwidth_gb_s"] = device_gbs;
    j["device_memory_floor_tok_s"] = device_gbs * 1e9 / active_bytes;
    j["decode_vs_device_floor"] = decode_tps / (device_gbs * 1e9 / active_bytes);
    if (after.vram_slots > 0) {
      // The device tier (--expert-vram): what crossed PCIe, and the floor
      // the link sets, from the page-locked H2D bandwidth measured now.
      const double n = a.decode_tokens;
      const double h2d_gbs = cuda_h2d_bandwidth_gbs();
      const uint64_t vh = after.vram_hits - before_decode.vram_hits, vm = after.vram_misses - before_decode.vram_misses;
      const double h2d_per_token = double(after.bytes_h2d - before_decode.bytes_h2d) / n;
      j["vram_slots"] = after.vram_slots;
      j["vram_bytes"] = double(after.vram_slots) * double(impl.vram.plan.slot_bytes);
      j["decode_vram_hits"] = vh;
      j["decode_vram_misses"] = vm;
      j["decode_vram_hit_rate"] = vh + vm ? double(vh) / double(vh + vm) : 0.0;
      j["decode_vram_evictions"] = after.vram_evictions - before_decode.vram_evictions;
      j["decode_h2d_bytes_per_token"] = h2d_per_token;
      j["decode_h2d_link_ms_per_token"] = 1e3 * (after.h2d_s - before_decode.h2d_s) / n;
      j["prefill_vram_misses"] = before_decode.vram_misses - before_prefill.vram_misses;
      j["prefill_h2d_bytes"] = double(before_decode.bytes_h2d - before_prefill.bytes_h2d);
      j["h2d_bandwidth_gb_s"] = h2d_gbs;
      // The links overlap: a token takes at least the longest of its PCIe
      // time, its device-memory time and (with a host tier below the
      // model) its storage time.
      double token_s = std::max(h2d_per_token / (h2d_gbs * 1e9), active_bytes / (device_gbs * 1e9));
      j["pcie_floor_tok_s"] = h2d_per_token > 0 ? h2d_gbs * 1e9 / h2d_per_token : 0.0;
      if (j.contains("storage_read_gb_s") && j["decode_missed_expert_bytes_per_token"].get<double>() > 0)
        token_s = std::max(token_s, j["decode_missed_expert_bytes_per_token"].get<double>() /
                                        (j["storage_read_gb_s"].get<double>() * 1e9));
      j["link_floor_tok_s"] = 1.0 / token_s;
      j["decode_vs_link_floor"] = decode_tps * token_s;
    }
  }
#endif
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
  if (j.contains("device_memory_floor_tok_s")) {
    fmt::print("gpu       {}: weights resident {} dense + {} experts\n", j["gpu"].get<std::string>(),
               human_bytes(j["gpu_weight_bytes"]["dense"].get<uint64_t>()),
               human_bytes(j["gpu_weight_bytes"]["experts"].get<uint64_t>()));
    fmt::print("floor     {:8.2f} tok/s  device memory: {:.0f} GB/s measured copy bandwidth (read + write)\n",
               j["device_memory_floor_tok_s"].get<double>(), j["device_copy_bandwidth_gb_s"].get<double>());
    fmt::print("ratio     {:8.1f} %  of the device-memory floor\n", 100 * j["decode_vs_device_floor"].get<double>());
  }
  if (j.contains("vram_slots")) {
    fmt::print("vram      {} slots ({}), decode hit rate {:.1f}% ({} hits, {} misses, {} evictions), {} per token "
               "host -> device in {:.2f} ms of link time; prefill copied {}\n",
               j["vram_slots"].get<uint64_t>(), human_bytes(uint64_t(j["vram_bytes"].get<double>())),
               100 * j["decode_vram_hit_rate"].get<double>(), j["decode_vram_hits"].get<uint64_t>(),
               j["decode_vram_misses"].get<uint64_t>(), j["decode_vram_evictions"].get<uint64_t>(),
               human_bytes(uint64_t(j["decode_h2d_bytes_per_token"].get<double>())),
               j["decode_h2d_link_ms_per_token"].get<double>(), human_bytes(uint64_t(j["prefill_h2d_bytes"].get<double>())));
    fmt::print("floor     {:8.2f} tok/s  PCIe: {:.2f} GB/s host -> device (page-locked) measured now\n",
               j["pcie_floor_tok_s"].get<double>(), j["h2d_bandwidth_gb_s"].get<double>());
    fmt::print("floor     {:8.2f} tok/s  links: the slowest of PCIe, device memory{} (they overlap); decode at {:.1f}%\n",
               j["link_floor_tok_s"].get<double>(), j.contains("storage_read_gb_s") ? " and storage" : "",
               100 * j["decode_vs_link_floor"].get<double>());
  }
  fmt::print("peak RSS  {}\n", human_bytes(j["peak_rss_bytes"].get<uint64_t>()));
  fmt::print("experts   {}\n", j["experts"].get<std::string>());
  if (j.contains("storage_floor_tok_s")) {
    fmt::print("storage   {} read per decode token, hit rate {:.1f}%, stall {:.1f} ms/token, prefetch precision "
               "{:.0f}% recall {:.0f}%\n",
               human_bytes(uint64_t(j["decode_storage_bytes_per_token"].get<double>())),
               100 * j["decode_hit_rate"].get<double>(), j["decode_stall_ms_per_token"].get<double>(),
               100 * j["prefetch_precision"].get<double>(), 100 * j["prefetch_recall"].get<double>());
    fmt::print("floor     {:8.2f} tok/s  storage: {:.2f} GB/s O_DIRECT at decode's request sizes and queue depth "
               "({:.2f} experts per layer); decode at {:.1f}%\n",
               j["storage_floor_tok_s"].get<double>(), j["storage_read_gb_s"].get<double>(),
               j["decode_experts_from_storage_per_layer"].get<double>(), 100 * j["decode_vs_storage_floor"].get<double>());
    fmt::print("floor     {:8.2f} tok/s  storage peak: {:.2f} GB/s with {} reads in flight; decode at {:.1f}%\n",
               j["storage_peak_floor_tok_s"].get<double>(), j["storage_peak_read_gb_s"].get<double>(),
               j.value("io_queue_depth", 0), 100 * j["decode_vs_storage_peak_floor"].get<double>());
    fmt::print("floor     {:8.2f} tok/s  streaming: the slower of storage and host memory (they overlap); decode at "
               "{:.1f}%\n",
               j["streaming_floor_tok_s"].get<double>(), 100 * j["decode_vs_streaming_floor"].get<double>());
  }
  fmt::print("page cache grew {} overall; the model's files grew {} ({:.1f}% of the model)\n",
             human_bytes(uint64_t(std::max(0.0, j["page_cache_growth_bytes"].get<double>()))),
             human_bytes(uint64_t(std::max(0.0, j["model_page_cache_growth_bytes"].get<double>()))),
             100 * j["model_page_cache_growth_fraction"].get<double>());
}

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "prefill/decode tok/s, peak RSS, and the host-memory floor");
  auto a = std::make_shared<BenchArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--prompt-tokens,-p", a->prompt_tokens, "prefill length")->check(int_range(1, INT32_MAX));
  cmd->add_option("--decode-tokens,-n", a->decode_tokens, "decode steps timed")->check(int_range(1, INT32_MAX));
  cmd->add_option("--seed", a->seed, "seed of the random prompt");
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->callback([a] {
    auto j = run_bench(*a);
    if (a->json) fmt::print("{}\n", j.dump(2));
    else print_bench(j);
  });
}

}  // namespace moeflux::cli
