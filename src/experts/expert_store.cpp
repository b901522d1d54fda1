#include "experts/expert_store.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

namespace {

using Clock = std::chrono::steady_clock;

// Where an expert's byte ranges go in its slot: gate, up and down (and for
// MLX affine matrices their scales and biases, 9 ranges in all). When they
// sit close together in one file (the usual safetensors order puts one
// expert's down/gate/up side by side) the slot mirrors the file, so the I/O
// engine reads the expert with one merged read; otherwise (stacked tensors:
// GGUF, mlx-lm's switch_mlp) each gets its own aligned room.
struct Layout {
  bool mirrored = false;                       // the slot mirrors the file
  int n = 0;                                   // ranges
  FileRange range[ExpertExtents::kMaxRanges];  // in ExpertExtents::ranges() order
  uint64_t dst[ExpertExtents::kMaxRanges];     // offset of each request's destination in the slot
  uint64_t room = 0;
};

Layout layout_of(const ExpertExtents& x) {
  Layout l{};
  l.n = x.ranges(l.range);
  uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
  bool one_file = true;
  for (int i = 0; i < l.n; ++i) {
    const FileRange& p = l.range[i];
    lo = std::min(lo, p.offset);
    hi = std::max(hi, p.offset + p.length);
    sum += p.length;
    one_file &= p.file == l.range[0].file;
  }
  // Holes are read with the data: worth it up to 256 KiB (about one read's
  // latency), and never more than the data itself, or a small model's
  // stacked tensors (whole file spans of a few hundred KiB) would read many
  // times their bytes per expert.
  constexpr uint64_t kMaxHole = 256 << 10;
  if (one_file && hi - lo <= sum + std::min(kMaxHole, sum)) {
    l.mirrored = true;
    const uint64_t base = io_align_down(lo);
    for (int i = 0; i < l.n; ++i) l.dst[i] = io_align_down(l.range[i].offset) - base;
    l.room = io_align_up(hi) - base;
  } else {
    uint64_t cursor = 0;
    for (int i = 0; i < l.n; ++i) {
      l.dst[i] = cursor;
      cursor += io_room(l.range[i].offset, l.range[i].length);
    }
    l.room = cursor;
  }
  return l;
}

uint64_t parse_size_suffix(const std::string& s) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    fail("expert RAM budget '{}': expected a size like 8G, 512M, 25% or auto", s);
  }
  const std::string suffix = s.substr(used);
  double mult = 1;
  if (suffix.empty() || suffix == "B") mult = 1;
  else if (suffix == "K" || suffix == "KiB" || suffix == "k") mult = 1024.0;
  else if (suffix == "M" || suffix == "MiB") mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (suffix == "T" || suffix == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else fail("expert RAM budget '{}': unknown unit '{}' (K, M, G, T or %)", s, suffix);
  if (v < 0) fail("expert RAM budget '{}' is negative", s);
  // NaN, infinity and sizes past 2^64 would make the conversion undefined.
  if (!std::isfinite(v) || v * mult >= 18446744073709551615.0)
    fail("expert RAM budget '{}' is not a size in bytes that fits 64 bits", s);
  return uint64_t(v * mult);
}

uint64_t mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace

uint64_t parse_expert_budget(const std::string& s, uint64_t expert_total, uint64_t dense, uint64_t keep_free) {
  if (s == "auto") {
    const uint64_t avail = mem_available_bytes();
    if (avail <= keep_free + dense)
      fail("--expert-ram auto: {} available, but the dense weights ({}) and the {} kept free leave nothing",
           human_bytes(avail), human_bytes(dense), human_bytes(keep_free));
    return std::min(expert_total, avail - keep_free - dense);
  }
  if (!s.empty() && s.back() == '%') {
    double pct = 0;
    size_t used = 0;
    const std::string num = s.substr(0, s.size() - 1);
    try {
      pct = std::stod(num, &used);
    } catch (const std::exception&) {
      fail("expert RAM budget '{}': expected a percentage like 25%", s);
    }
    if (used != num.size()) fail("expert RAM budget '{}': expected a percentage like 25%", s);
    // Written so that NaN fails too ("nan%" gave the full budget).
    if (!(pct > 0 && pct <= 100)) fail("expert RAM budget '{}' must be in (0%, 100%]", s);
    return uint64_t(double(expert_total) * pct / 100.0);
  }
  return parse_size_suffix(s);
}

uint64_t expert_budget_for(const std::string& text, const ModelSpec& spec) {
  const uint64_t b = parse_expert_budget(text, spec.expert_bytes_total(), spec.dense_bytes());
  if (b == 0) fail("expert RAM budget '{}' gives 0 bytes", text);
  return b;
}

StorePlan plan_store(const ExpertIndex& index, const ModelSpec& spec, uint64_t budget, size_t pinned) {
  StorePlan p;
  for (int l = 0; l < index.layers(); ++l)
    if (index.has_layer(l))
      for (int e = 0; e < index.experts(); ++e) p.slot_bytes = std::max(p.slot_bytes, layout_of(index.at(l, e)).room);
  p.slot_bytes = io_align_up(p.slot_bytes);
  p.slots = p.slot_bytes ? size_t(budget / p.slot_bytes) : 0;
  p.min_budget = p.slot_bytes * (uint64_t(spec.top_k) + pinned);
  return p;
}


void parse_prefetch_spec(const std::string& spec, unsigned& predictors, int& depth) {
  unsigned p = 0;
  int d = depth;
  std::string rest = spec;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    if (item == "router") p |= kPredictRouter;
    else if (item == "previous") p |= kPredictPrevious;
    else if (item.rfind("depth=", 0) == 0) {
      const char* v = item.c_str() + 6;
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (!*v || *end || n < 1 || n > 64) fail("prefetch '{}': depth must be a number from 1 to 64, got '{}'", spec, v);
      d = int(n);
    } else {
      fail("prefetch '{}': unknown item '{}' (expected router, previous, depth=N)", spec, item);
    }
  }
  if (p) predictors = p;
  depth = d;
}

namespace {

void apply_prefetch_env(unsigned& predictors, int& depth) {
  const char* env = std::getenv("MOEFLUX_PREFETCH");
  if (env && *env) parse_prefetch_spec(env, predictors, depth);
}

// Waiting on several reads at once: the I/O engine's tickets have one
// condition variable each, so wait_any sleeps on the oldest read (reads are
// issued in order and usually land in order) and looks at the others this
// often (the engine's finest timeout), so that a read that overtook it
// costs at most this much, against ~10 ms to read one expert.
constexpr std::chrono::milliseconds kRecheck(1);

}  // namespace

ExpertStore::ExpertStore(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st,
                         ExpertStoreOptions options)
    : spec_(spec), index_(spec, arch, st), options_(std::move(options)) {
  const StorePlan plan = plan_store(index_, spec, options_.host_budget_bytes, options_.pinned.size());
  if (options_.host_budget_bytes < plan.min_budget)
    fail("expert RAM budget {} is below the minimum {}: one layer's top-{} experts ({} each){} must fit at once",
         human_bytes(options_.host_budget_bytes), human_bytes(plan.min_budget), spec.top_k,
         human_bytes(plan.slot_bytes),
         options_.pinned.empty() ? "" : fmt::format(" plus {} pinned", options_.pinned.size()));
  predictors_ = options_.prefetch_predictors;
  int depth = options_.prefetch_in_flight;
  if (options_.prefetch) apply_prefetch_env(predictors_, depth);
  // More slots than experts buys nothing.
  const size_t total_experts = size_t(spec.moe_layers()) * size_t(spec.experts);
  const size_t n_slots = std::min(plan.slots, total_experts);
  io_ = make_io_engine(options_.io);
  if (options_.io_decorator) io_ = options_.io_decorator(std::move(io_));
  for (const std::string& f : index_.files())
    if (f.empty())
      fail("{}: the routed experts were repacked in memory at load (gpt-oss's fused experts), not read from a file, "
           "and the expert store (--expert-ram) streams experts from files: run this model without --expert-ram "
           "(its experts then stay resident)",
           st.describe());
  for (const std::string& f : index_.files()) file_ids_.push_back(io_->add_file(f));
  // Every file of the model, not only the experts' ones: a changed file
  // that holds only dense weights is a changed model too. Watching starts
  // after the files were opened: one full check now covers a replacement
  // in between (also against the identity the maps had at load).
  model_files_ = std::make_unique<ModelFiles>(st, /*guard_maps=*/false, options_.file_check_backstop);
  files_changed_ = !io_->check_files().empty() || !model_files_->check().empty();
  arena_ = std::make_unique<HostArena>(n_slots, plan.slot_bytes, /*prefault=*/true);
  policy_ = make_cache_policy(options_.policy, uint32_t(spec.layers) * uint32_t(spec.experts));
  slots_.resize(n_slots);
  for (size_t i = n_slots; i-- > 0;) free_.push_back(i);
  max_acquire_ = n_slots - options_.pinned.size();
  if (options_.prefetch) {
    // Slots for the prefetch reads in flight, beside one layer's demand
    // reads, so that a prefetch never takes the room a demand read needs.
    prefetch_slots_ = std::min<size_t>(size_t(std::max(1, depth)), max_acquire_ - size_t(spec.top_k));
    max_acquire_ -= prefetch_slots_;
  }

  // Pinned experts are read now and never evicted.
  if (!options_.pinned.empty()) {
    for (auto [l, e] : options_.pinned)
      if (l < 0 || l >= spec.layers || !index_.has_layer(l) || e < 0 || e >= spec.experts)
        fail("cannot pin expert {} of layer {}: no such routed expert", e, l);
    std::lock_guard lk(mu_);
    std::vector<size_t> loaded;
    for (auto [l, e] : options_.pinned) {
      const uint32_t k = key(l, e);
      if (where_.count(k)) continue;
      const size_t s = free_.back();
      free_.pop_back();
      load_into(s, k, /*refs=*/1, false);
      slots_[s].pinned = true;
      loaded.push_back(s);
    }
    // All of them land before any error is thrown: a constructor that
    // throws frees the arena before the I/O engine drains.
    for (size_t s : loaded) io_->wait(slots_[s].ticket);
    for (size_t s : loaded) settle(s);
    for (size_t s : loaded) {
      if (slots_[s].state != State::Ready) fail("pinning: {}", slots_[s].error);
      slots_[s].refs = 0;
    }
  }
}

ExpertStore::~ExpertStore() {
  // Reads in flight write into the arena: let them land before it goes.
  for (auto& s : slots_)
    if (s.state == State::Loading) io_->wait(s.ticket);
}

void ExpertStore::load_into(size_t s, uint32_t k, int refs, bool by_prefetch) {
  const ExpertExtents& x = index_.at(layer_of(k), expert_of(k));
  const Layout l = layout_of(x);
  Slot& sl = slots_[s];
  sl.state = State::Loading;
  sl.key = k;
  sl.refs = refs;
  sl.pinned = false;
  sl.by_prefetch = by_prefetch;
  sl.demand = !by_prefetch;
  sl.prefetched_unused = by_prefetch;
  sl.seq = next_seq_++;
  sl.error.clear();
  uint8_t* base = arena_->slot(s);
  sl.n_requests = size_t(l.n);
  for (int i = 0; i < l.n; ++i) {
    ReadRequest& r = sl.requests[size_t(i)];
    r = ReadRequest{};
    r.file = file_ids_[l.range[i].file];
    r.offset = l.range[i].offset;
    r.length = l.range[i].length;
    r.dst = base + l.dst[i];
    r.tag = k;
    // A mirrored slot's extents may be read as one, across small holes. Not
    // so with separate rooms: two of them can mirror the file by chance
    // (equal dst - offset), and a read across the hole between them would
    // overwrite the room of another extent that lies there in the slot.
    r.group = l.mirrored ? uint32_t(s) + 1 : 0;
  }
  // The views are fixed by the layout: computed once per load, not per use.
  // Request i's bytes land at requests[i].data(), in ranges() order.
  ExpertWeights* views = &sl.views;
  WeightView* out[3] = {&views->gate, &views->up, &views->down};
  int i = 0;
  for (int m = 0; m < 3; ++m) {
    const Extent& ex = x.matrix(m);
    const uint8_t* at[3] = {nullptr, nullptr, nullptr};
    for (int j = 0; j < ex.ranges(); ++j, ++i) at[j] = sl.requests[size_t(i)].data();
    *out[m] = view_of(ex, at[0], at[1], at[2]);
  }
  where_[k] = s;
  loading_.push_back(s);
  (by_prefetch ? prefetch_loading_ : demand_loading_)++;
  // One submit per slot: the I/O engine merges the mirrored reads of one
  // submit into one read, and two slots' rooms could mirror each other by
  // coincidence of addresses; within a submit only this expert's three
  // extents (which do belong together) are merged. It also gives each
  // expert its own completion, which is what lets wait_any hand experts
  // over one by one.
  sl.ticket = io_->submit(std::span(sl.requests.data(), sl.n_requests));
}

void ExpertStore::settle(size_t s) {
  Slot& sl = slots_[s];
  if (sl.state != State::Loading) return;
  loading_.erase(std::find(loading_.begin(), loading_.end(), s));
  if (sl.demand) demand_loading_--;
  if (sl.by_prefetch) prefetch_loading_--;
  sl.demand = sl.by_prefetch = false;
  const ReadRequest* bad = nullptr;
  for (size_t i = 0; i < sl.n_requests; ++i)
    if (!sl.requests[i].ok() && !bad) bad = &sl.requests[i];
  sl.ticket = IoTicket{};
  if (!bad) {
    sl.state = State::Ready;
    policy_->on_insert(sl.key);
    return;
  }
  // A failed read is forgotten at once, so that the next acquire of this
  // expert reads it again; callers holding the slot get the error.
  std::string why = bad->message;
  for (const FileChange& c : io_->check_files())
    if (c.file == bad->file) why += fmt::format("; {} changed since it was opened ({})", c.path, c.what);
  sl.error = fmt::format("reading expert {} of layer {} failed: {}", expert_of(sl.key), layer_of(sl.key), why);
  where_.erase(sl.key);
  sl.state = State::Failed;
  if (sl.refs == 0) unref(s);  // nobody waits (a prefetch): just free it; a demand read will report the error
}

void ExpertStore::settle_finished() {
  for (size_t i = loading_.size(); i-- > 0;) {
    const size_t s = loading_[i];  // settle() removes loading_[i] only
    if (io_->poll(slots_[s].ticket)) settle(s);
  }
}

void ExpertStore::unref(size_t s) {
  Slot& sl = slots_[s];
  if (sl.refs > 0) sl.refs--;
  if (sl.refs == 0 && sl.state == State::Failed) {
    sl = Slot{};
    free_.push_back(s);
  }
}

size_t ExpertStore::take_slot(const std::function<bool(uint32_t)>& keep) {
  if (free_.empty()) settle_finished();
  if (!free_.empty()) {
    const size_t s = free_.back();
    free_.pop_back();
    return s;
  }
  const uint32_t victim = policy_->victim([&](uint32_t k) {
    const Slot& sl = slots_[where_.at(k)];
    return sl.state == State::Ready && sl.refs == 0 && !sl.pinned && !keep(k);
  });
  if (victim == UINT32_MAX) return SIZE_MAX;
  const size_t s = where_.at(victim);
  policy_->on_remove(victim);
  where_.erase(victim);
  stats_.evictions++;
  slots_[s] = Slot{};
  return s;
}

bool ExpertStore::wait_for_orphan(std::unique_lock<std::mutex>& lk) {
  size_t best = SIZE_MAX;
  for (size_t s : loading_)
    if (slots_[s].refs == 0 && (best == SIZE_MAX || slots_[s].seq < slots_[best].seq)) best = s;
  if (best == SIZE_MAX) return false;
  const IoTicket t = slots_[best].ticket;
  lk.unlock();
  io_->wait(t);
  lk.lock();
  settle_finished();
  return true;
}

void ExpertStore::acquire_async(int layer, std::span<const int32_t> experts, ExpertHold& h) {
  if (experts.size() > max_acquire_)
    fail("{} experts of layer {} requested at once but the expert RAM budget holds {}", experts.size(), layer,
         max_acquire_);
  for (int32_t e : experts)
    if (e < 0 || e >= index_.experts() || layer < 0 || layer >= index_.layers() || !index_.has_layer(layer))
      fail("expert {} of layer {} does not exist", e, layer);
  start_hold(h, layer, experts);
  auto in_request = [&](uint32_t k) {
    return layer_of(k) == layer && std::find(experts.begin(), experts.end(), expert_of(k)) != experts.end();
  };
  std::unique_lock lk(mu_);
  // Predictions for this layer or earlier ones that are still queued came
  // true or not: this acquire says which, and reads what it needs itself.
  std::erase_if(queued_, [&](uint32_t k) { return layer_of(k) <= layer; });
  // Before anything is referenced: nothing to undo when it throws.
  if (!experts.empty()) refuse_changed_files(layer, experts[0]);
  size_t taken = 0;  // experts referenced so far, to undo on error
  try {
    while (taken < experts.size()) {
      const size_t i = taken;
      const uint32_t k = key(layer, experts[i]);
      auto it = where_.find(k);
      size_t s;
      if (it != where_.end()) {
        s = it->second;
        Slot& sl = slots_[s];
        if (sl.prefetched_unused) {
          // Its reads may be done or still in flight; either way it saved a demand read.
          stats_.prefetch_hits++;
          stats_.prefetch_used++;
          sl.prefetched_unused = false;
        } else {
          stats_.hits++;
        }
        if (sl.state == State::Ready) policy_->on_access(k);
        if (sl.state == State::Loading && !sl.demand) {
          sl.demand = true;
          demand_loading_++;
        }
        sl.refs++;
      } else {
        s = take_slot(in_request);
        if (s == SIZE_MAX) {
          // Every slot is held or loading. Reads nobody waits for (a
          // prefetch, or a read whose caller gave up after an error) end
          // soon; after one has, look again from the top, since another
          // caller may have loaded this very expert meanwhile.
          if (wait_for_orphan(lk)) continue;
          fail("no free expert slot for layer {}: all {} slots are in use or loading; raise --expert-ram", layer,
               slots_.size());
        }
        load_into(s, k, /*refs=*/1, /*by_prefetch=*/false);
        stats_.misses++;
      }
      h.handles[i] = s;
      h.weights[i] = slots_[s].views;
      if (slots_[s].state == State::Ready) {
        h.ready[i] = 1;
        h.waiting--;
      }
      taken++;
    }
  } catch (...) {
    for (size_t i = 0; i < taken; ++i) unref(size_t(h.handles[i]));
    throw;
  }
  h.held = true;
}

size_t ExpertStore::wait_any(ExpertHold& h) {
  if (!h.held || h.waiting == 0) fail("wait_any on layer {}: no expert is being read", h.layer);
  std::unique_lock lk(mu_);
  for (;;) {
    size_t landed = 0, oldest = SIZE_MAX;
    const std::string* error = nullptr;
    for (size_t i = 0; i < h.ready.size(); ++i) {
      if (h.ready[i]) continue;
      const size_t s = size_t(h.handles[i]);
      Slot& sl = slots_[s];
      if (sl.state == State::Loading && io_->poll(sl.ticket)) settle(s);
      if (sl.state == State::Ready) {
        h.ready[i] = 1;
        h.waiting--;
        landed++;
      } else if (sl.state == State::Failed) {
        if (!error) error = &sl.error;
      } else if (oldest == SIZE_MAX || sl.seq < slots_[oldest].seq) {
        oldest = s;
      }
    }
    // The demand reads may all have landed: the queued predictions go now.
    pump_prefetches();
    if (error) fail("{}", *error);
    if (landed) return landed;
    const IoTicket t = slots_[oldest].ticket;
    lk.unlock();
    const auto t0 = Clock::now();
    if (h.waiting == 1) io_->wait(t);
    else io_->wait_for(t, kRecheck);
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    lk.lock();
    stats_.read_wait_s += waited;
  }
}

void ExpertStore::release_hold(ExpertHold& h) {
  if (!h.held) return;
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < h.handles.size(); ++i) unref(size_t(h.handles[i]));
  h.held = false;
  pump_prefetches();
}

void ExpertStore::acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) {
  ExpertHold h;
  acquire_async(layer, experts, h);
  try {
    while (h.waiting > 0) wait_any(h);
  } catch (...) {
    release_hold(h);
    throw;
  }
  std::copy(h.weights.begin(), h.weights.end(), out.begin());
}

void ExpertStore::release(int layer, std::span<const int32_t> experts) {
  // The blocking acquire returns Ready slots only, and a referenced Ready
  // slot keeps its key, so the key finds the slot.
  std::lock_guard lk(mu_);
  for (int32_t e : experts) {
    auto it = where_.find(key(layer, e));
    if (it != where_.end() && slots_[it->second].refs > 0) unref(it->second);
  }
  pump_prefetches();
}

void ExpertStore::refuse_changed_files(int layer, int expert) {
  // check_due() first: it also drains the inotify queue.
  if (!model_files_->check_due() && !files_changed_) return;
  file_checks_++;
  // The I/O engine's files (identity when the store opened them) and the
  // maps' (identity at load): the same paths, seen from both opens.
  std::vector<ModelFileChange> changes = model_files_->check();
  for (const FileChange& c : io_->check_files())
    if (std::none_of(changes.begin(), changes.end(), [&](const ModelFileChange& m) { return m.path == c.path; }))
      changes.push_back({c.path, c.what});
  // Once something changed, check on every acquire: the change may be
  // undone (the file put back), and inotify follows the old inode.
  files_changed_ = !changes.empty();
  if (changes.empty()) return;
  // Where this expert's bytes are, when a changed file holds them.
  FileRange ranges[ExpertExtents::kMaxRanges];
  const int n = index_.at(layer, expert).ranges(ranges);
  for (ModelFileChange& c : changes)
    for (int i = 0; i < n; ++i)
      if (c.path == index_.files()[ranges[i].file]) {
        c.path += fmt::format(" (offset {})", ranges[i].offset);
        break;
      }
  fail("{}", describe_changes(layer, expert, changes));
}

void ExpertStore::pump_prefetches() {
  if (queued_.empty() || demand_loading_ > 0) return;
  auto is_queued = [&](uint32_t k) { return std::find(queued_.begin(), queued_.end(), k) != queued_.end(); };
  for (uint32_t k : queued_) {
    if (prefetch_loading_ >= prefetch_slots_) break;
    if (where_.count(k)) continue;
    const size_t s = take_slot(is_queued);
    if (s == SIZE_MAX) break;  // a hint: never wait for room
    load_into(s, k, /*refs=*/0, /*by_prefetch=*/true);
    stats_.prefetch_issued++;
  }
  // What did not fit now is dropped: by the time there is room the
  // prediction is for a layer already computed.
  queued_.clear();
}

void ExpertStore::prefetch(int layer, std::span<const int32_t> experts) {
  if (prefetch_slots_ == 0 || layer < 0 || layer >= index_.layers() || !index_.has_layer(layer)) return;
  std::lock_guard lk(mu_);
  settle_finished();
  queued_.clear();  // a newer prediction supersedes an older one
  for (int32_t e : experts) {
    if (e < 0 || e >= index_.experts()) continue;
    const uint32_t k = key(layer, e);
    if (!where_.count(k) && std::find(queued_.begin(), queued_.end(), k) == queued_.end()) queued_.push_back(k);
  }
  pump_prefetches();
}

ExpertStats ExpertStore::stats() const {
  std::lock_guard lk(mu_);
  ExpertStats s = stats_;
  s.bytes_read = io_->stats().bytes_read;
  return s;
}

uint64_t ExpertStore::file_checks() const {
  std::lock_guard lk(mu_);
  return file_checks_;
}

std::string ExpertStore::describe() const {
  std::string pf = "off";
  if (options_.prefetch)
    pf = fmt::format("{}{}{}, {} in flight", predictors_ & kPredictRouter ? "router" : "",
                     predictors_ == (kPredictRouter | kPredictPrevious) ? "+" : "",
                     predictors_ & kPredictPrevious ? "previous token" : "", prefetch_slots_);
  return fmt::format("expert store: {} slots of {} ({} of RAM), policy {}, prefetch {}, io {}{}", slots_.size(),
                     human_bytes(arena_->stride()), human_bytes(arena_->bytes()), policy_->name(), pf,
                     io_->describe(),
                     model_files_->watch().watching()
                         ? ""
                         : fmt::format(" (file watch off: {})", model_files_->watch().why_not()));
}

}  // namespace moeflux
