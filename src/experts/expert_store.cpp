#include "experts/expert_store.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

namespace {

using Clock = std::chrono::steady_clock;

// Where an expert's three extents go in its slot. When they sit close
// together in one file (the usual safetensors order puts one expert's
// down/gate/up side by side) the slot mirrors the file, so the I/O engine
// reads the expert with one merged read; otherwise each gets its own
// aligned room.
struct Layout {
  uint64_t dst[3];  // offset of each request's destination in the slot
  uint64_t room;
};

Layout layout_of(const ExpertExtents& x) {
  const Extent* e[3] = {&x.gate, &x.up, &x.down};
  Layout l{};
  uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
  bool one_file = true;
  for (const Extent* p : e) {
    lo = std::min(lo, p->offset);
    hi = std::max(hi, p->offset + p->length);
    sum += p->length;
    one_file &= p->file == e[0]->file;
  }
  constexpr uint64_t kMaxHole = 256 << 10;
  if (one_file && hi - lo <= sum + kMaxHole) {
    const uint64_t base = io_align_down(lo);
    for (int i = 0; i < 3; ++i) l.dst[i] = io_align_down(e[i]->offset) - base;
    l.room = io_align_up(hi) - base;
  } else {
    uint64_t cursor = 0;
    for (int i = 0; i < 3; ++i) {
      l.dst[i] = cursor;
      cursor += io_room(e[i]->offset, e[i]->length);
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
    try {
      pct = std::stod(s.substr(0, s.size() - 1));
    } catch (const std::exception&) {
      fail("expert RAM budget '{}': expected a percentage like 25%", s);
    }
    if (pct <= 0 || pct > 100) fail("expert RAM budget '{}' must be in (0%, 100%]", s);
    return uint64_t(double(expert_total) * pct / 100.0);
  }
  return parse_size_suffix(s);
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

ExpertStore::ExpertStore(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st,
                         ExpertStoreOptions options)
    : spec_(spec), index_(spec, arch, st), options_(std::move(options)) {
  const StorePlan plan = plan_store(index_, spec, options_.host_budget_bytes, options_.pinned.size());
  if (options_.host_budget_bytes < plan.min_budget)
    fail("expert RAM budget {} is below the minimum {}: one layer's top-{} experts ({} each){} must fit at once",
         human_bytes(options_.host_budget_bytes), human_bytes(plan.min_budget), spec.top_k,
         human_bytes(plan.slot_bytes),
         options_.pinned.empty() ? "" : fmt::format(" plus {} pinned", options_.pinned.size()));
  // More slots than experts buys nothing.
  const size_t total_experts = size_t(spec.moe_layers()) * size_t(spec.experts);
  const size_t n_slots = std::min(plan.slots, total_experts);
  io_ = make_io_engine(options_.io);
  if (options_.io_decorator) io_ = options_.io_decorator(std::move(io_));
  for (const std::string& f : index_.files()) file_ids_.push_back(io_->add_file(f));
  arena_ = std::make_unique<HostArena>(n_slots, plan.slot_bytes);
  policy_ = make_cache_policy(options_.policy, uint32_t(spec.layers) * uint32_t(spec.experts));
  slots_.resize(n_slots);
  for (size_t i = n_slots; i-- > 0;) free_.push_back(i);
  max_acquire_ = n_slots - options_.pinned.size();
  if (options_.prefetch) {
    // Keep room for one layer's demand reads beside the reads in flight for
    // the next layer, so a prefetch never blocks a demand read.
    prefetch_slots_ = std::min<size_t>(size_t(2 * spec.top_k), max_acquire_ - size_t(spec.top_k));
    max_acquire_ -= prefetch_slots_;
  }

  // Pinned experts are read now and never evicted.
  if (!options_.pinned.empty()) {
    std::vector<size_t> loaded;
    for (auto [l, e] : options_.pinned) {
      if (l < 0 || l >= spec.layers || !index_.has_layer(l) || e < 0 || e >= spec.experts)
        fail("cannot pin expert {} of layer {}: no such routed expert", e, l);
      const uint32_t k = key(l, e);
      if (where_.count(k)) continue;
      const size_t s = free_.back();
      free_.pop_back();
      load_into(s, k, 0, false);
      slots_[s].pinned = true;
      loaded.push_back(s);
    }
    std::unique_lock lk(mu_);
    for (size_t s : loaded) finish_loading(lk, s);
  }
}

ExpertStore::~ExpertStore() {
  // Reads in flight write into the arena: let them land before it goes.
  for (auto& s : slots_)
    if (s.state == State::Loading && s.batch) io_->wait(s.batch->ticket);
}

void ExpertStore::load_into(size_t s, uint32_t k, int refs, bool prefetched) {
  // One submit per slot: the I/O engine merges the mirrored reads of one
  // submit into one read, and two slots' rooms could mirror each other by
  // coincidence of addresses; within a submit only this expert's three
  // extents (which do belong together) are merged.
  auto batch = std::make_shared<Batch>();
  slots_[s] = {State::Loading, k, refs, false, prefetched, batch, 0, 0};
  plan_reads(s, k, *batch);
  where_[k] = s;
  batch->ticket = io_->submit(batch->requests);
}

void ExpertStore::plan_reads(size_t s, uint32_t k, Batch& batch) {
  const int layer = int(k / uint32_t(index_.experts())), expert = int(k % uint32_t(index_.experts()));
  const ExpertExtents& x = index_.at(layer, expert);
  const Layout l = layout_of(x);
  const Extent* e[3] = {&x.gate, &x.up, &x.down};
  Slot& slot = slots_[s];
  slot.first_request = batch.requests.size();
  slot.n_requests = 3;
  for (int i = 0; i < 3; ++i) {
    ReadRequest r;
    r.file = file_ids_[e[i]->file];
    r.offset = e[i]->offset;
    r.length = e[i]->length;
    r.dst = arena_->slot(s) + l.dst[i];
    r.tag = k;
    r.group = uint32_t(s) + 1;  // this expert's extents may be read as one, across small holes
    batch.requests.push_back(std::move(r));
  }
}

ExpertWeights ExpertStore::views(size_t s) const {
  const uint32_t k = slots_[s].key;
  const ExpertExtents& x = index_.at(int(k / uint32_t(index_.experts())), int(k % uint32_t(index_.experts())));
  const Layout l = layout_of(x);
  auto view = [&](const Extent& e, uint64_t dst) {
    return WeightView{arena_->slot(s) + dst + io_data_offset(e.offset), e.dtype, e.rows, e.cols};
  };
  return {view(x.gate, l.dst[0]), view(x.up, l.dst[1]), view(x.down, l.dst[2])};
}

size_t ExpertStore::settle_prefetches() {
  size_t in_flight = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& sl = slots_[i];
    if (sl.state != State::Loading || sl.refs > 0 || !sl.prefetched_unused) continue;
    if (!io_->poll(sl.batch->ticket)) {
      in_flight++;
      continue;
    }
    bool ok = true;
    for (size_t r = sl.first_request; r < sl.first_request + sl.n_requests; ++r) ok &= sl.batch->requests[r].ok();
    if (ok) {
      sl.state = State::Ready;
      sl.batch.reset();
      policy_->on_insert(sl.key);
    } else {  // a failed prefetch is forgotten; a demand read will report the error
      where_.erase(sl.key);
      sl = Slot{};
      free_.push_back(i);
    }
  }
  return in_flight;
}

size_t ExpertStore::take_slot(const std::vector<uint32_t>& protect) {
  if (free_.empty()) settle_prefetches();
  if (!free_.empty()) {
    const size_t s = free_.back();
    free_.pop_back();
    return s;
  }
  const uint32_t victim = policy_->victim([&](uint32_t k) {
    const Slot& sl = slots_[where_.at(k)];
    return sl.state == State::Ready && sl.refs == 0 && !sl.pinned &&
           std::find(protect.begin(), protect.end(), k) == protect.end();
  });
  if (victim == UINT32_MAX) return SIZE_MAX;
  const size_t s = where_.at(victim);
  policy_->on_remove(victim);
  where_.erase(victim);
  stats_.evictions++;
  slots_[s] = Slot{};
  return s;
}

void ExpertStore::finish_loading(std::unique_lock<std::mutex>& lk, size_t s) {
  while (slots_[s].state == State::Loading) {
    std::shared_ptr<Batch> b = slots_[s].batch;
    if (!io_->poll(b->ticket)) {
      lk.unlock();
      const auto t0 = Clock::now();
      io_->wait(b->ticket);
      const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
      lk.lock();
      stats_.read_wait_s += waited;
      continue;  // another thread may have settled it meanwhile
    }
    Slot& sl = slots_[s];
    for (size_t i = sl.first_request; i < sl.first_request + sl.n_requests; ++i) {
      const ReadRequest& r = b->requests[i];
      if (!r.ok()) {
        const uint32_t k = sl.key;
        where_.erase(k);
        sl = Slot{};
        free_.push_back(s);
        fail("reading expert {} of layer {} failed: {}", k % uint32_t(index_.experts()),
             k / uint32_t(index_.experts()), r.message);
      }
    }
    sl.state = State::Ready;
    sl.batch.reset();
    policy_->on_insert(sl.key);
  }
}

void ExpertStore::acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) {
  if (experts.size() > max_acquire_)
    fail("{} experts of layer {} requested at once but the expert RAM budget holds {}", experts.size(), layer,
         max_acquire_);
  std::unique_lock lk(mu_);
  std::vector<uint32_t> keys;
  for (int32_t e : experts) {
    if (e < 0 || e >= index_.experts() || !index_.has_layer(layer))
      fail("expert {} of layer {} does not exist", e, layer);
    keys.push_back(key(layer, e));
  }
  std::vector<size_t> slot_of(experts.size());
  std::vector<size_t> taken;  // slots referenced so far, to undo on error
  bool files_checked = false;
  try {
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = where_.find(keys[i]);
      if (it != where_.end()) {
        Slot& sl = slots_[it->second];
        if (sl.prefetched_unused) {
          // Its reads may be done or still in flight; either way it saved a demand read.
          stats_.prefetch_hits++;
          stats_.prefetch_used++;
          sl.prefetched_unused = false;
        } else {
          stats_.hits++;
        }
        if (sl.state == State::Ready) policy_->on_access(keys[i]);
        sl.refs++;
        slot_of[i] = it->second;
        taken.push_back(it->second);
        continue;
      }
      if (!files_checked) {  // a file replaced under us must not serve stale or cut bytes
        refuse_changed_files(layer, experts[i]);
        files_checked = true;
      }
      const size_t s = take_slot(keys);
      if (s == SIZE_MAX)
        fail("no free expert slot for layer {}: all {} slots are in use or loading; raise --expert-ram", layer,
             slots_.size());
      load_into(s, keys[i], /*refs=*/1, /*prefetched=*/false);
      slot_of[i] = s;
      taken.push_back(s);
      stats_.misses++;
    }
    for (size_t i = 0; i < slot_of.size(); ++i) {
      finish_loading(lk, slot_of[i]);
      // A failed read (ours or another caller's) frees the slot.
      if (slots_[slot_of[i]].key != keys[i] || slots_[slot_of[i]].state != State::Ready)
        fail("expert {} of layer {} could not be read (see the previous error)", experts[i], layer);
    }
  } catch (...) {
    for (size_t s : taken)
      if (slots_[s].refs > 0) slots_[s].refs--;
    throw;
  }
  for (size_t i = 0; i < experts.size(); ++i) out[i] = views(slot_of[i]);
}

void ExpertStore::refuse_changed_files(int layer, int expert) {
  const auto changes = io_->check_files();
  if (changes.empty()) return;
  const ExpertExtents& x = index_.at(layer, expert);
  for (const FileChange& c : changes)
    if (c.path == index_.files()[x.gate.file])
      fail("expert {} of layer {}: {} (offset {}) changed since it was opened ({}); reload the model", expert, layer,
           c.path, x.gate.offset, c.what);
}

void ExpertStore::release(int layer, std::span<const int32_t> experts) {
  std::lock_guard lk(mu_);
  for (int32_t e : experts) {
    auto it = where_.find(key(layer, e));
    if (it != where_.end() && slots_[it->second].refs > 0) slots_[it->second].refs--;
  }
}

void ExpertStore::prefetch(int layer, std::span<const int32_t> experts) {
  if (!index_.has_layer(layer)) return;
  std::lock_guard lk(mu_);
  size_t in_flight = settle_prefetches();
  std::vector<uint32_t> keys;
  for (int32_t e : experts) keys.push_back(key(layer, e));
  for (uint32_t k : keys) {
    if (where_.count(k)) continue;
    if (in_flight >= prefetch_slots_) break;  // a hint: never crowd out demand reads
    const size_t s = take_slot(keys);
    if (s == SIZE_MAX) break;  // a hint: never wait for room
    in_flight++;
    load_into(s, k, /*refs=*/0, /*prefetched=*/true);
    stats_.prefetch_issued++;
  }
}

ExpertStats ExpertStore::stats() const {
  std::lock_guard lk(mu_);
  ExpertStats s = stats_;
  s.bytes_read = io_->stats().bytes_read;
  return s;
}

std::string ExpertStore::describe() const {
  return fmt::format("expert store: {} slots of {} ({} of RAM), policy {}, prefetch {}, io {}", slots_.size(),
                     human_bytes(arena_->stride()), human_bytes(arena_->bytes()), policy_->name(),
                     options_.prefetch ? "on" : "off", io_->describe());
}

}  // namespace moeflux
