#include "text/tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <queue>

#include "core/error.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

struct BpeSymbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes of the source word; 0 = merged away
};

namespace {

std::atomic<uint64_t> g_next_uid{1};

// Map inserts and lookups go in blocks: hash and prefetch a block's keys
// first, then touch them, so that the cache misses of a block overlap.
constexpr size_t kBlock = 16;

// Per-thread cache of recent words -> ids, direct-mapped (one probe, no
// locks). Words repeat heavily in text ("the", " and", "\n"), and a hit
// skips the merge loop entirely. Keyed by the model's uid so that one
// thread can serve several tokenizers.
struct WordCache {
  static constexpr size_t kSlots = 8192;  // power of two
  static constexpr size_t kMaxWord = 48;  // longer words are rare and cheap to skip
  struct Slot {
    uint64_t hash = 0;
    std::string key;
    std::vector<int32_t> ids;
  };
  std::vector<Slot> slots{kSlots};
};

WordCache& cache_for(uint64_t uid) {
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<WordCache>>> caches;
  for (auto& [u, c] : caches)
    if (u == uid) return *c;
  if (caches.size() >= 4) caches.erase(caches.begin());  // oldest model first
  caches.emplace_back(uid, std::make_unique<WordCache>());
  return *caches.back().second;
}

struct Merge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  int32_t left, right;  // the pair when queued: if unchanged, the entry is valid without a lookup
  // std::priority_queue is a max-heap: "less" means later (higher rank, then
  // further right), so the lowest rank, leftmost merge pops first, as in HF.
  bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct Workspace {
  std::vector<Merge> heap;
  std::vector<BpeSymbol> syms;  // reused: one allocation per thread, not per word
};

Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

}  // namespace

BpeModel::BpeModel(const json::Value& model) : uid_(g_next_uid++) {
  std::fill(std::begin(byte_fallback_ids_), std::end(byte_fallback_ids_), -1);
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  if (model.has("dropout") && !model.at("dropout").is_null() && model.at("dropout").as_double() > 0.0)
    model.at("dropout").fail_msg("BPE dropout is random at encode time; not supported for inference");
  if (model.has("unk_token") && !model.at("unk_token").is_null()) unk_token_ = model.at("unk_token").str();
  prefix_ = model.str_or("continuing_subword_prefix", "");
  suffix_ = model.str_or("end_of_word_suffix", "");
  fuse_unk_ = model.bool_or("fuse_unk", false);
  byte_fallback_ = model.bool_or("byte_fallback", false);
  ignore_merges_ = model.bool_or("ignore_merges", false);

  // ---- vocab: read straight from the flat nodes; this loop is most of load time.
  json::Value vocab = model.at("vocab");
  if (!vocab.is_object()) vocab.fail_type("object");
  const json::Document& doc = vocab.doc();
  token_to_id_.reserve(vocab.size());
  std::string tmp;
  int64_t max_id = -1;
  std::vector<std::pair<std::string_view, int32_t>> entries;
  entries.reserve(vocab.size());
  std::deque<std::string> unescaped;  // keeps escaped keys alive (deque: views stay valid)
  for (uint32_t c = vocab.node().first; c != 0; c = doc.node(c).next) {
    const json::Node& n = doc.node(c);
    int64_t id = -1;
    if (n.type == json::Type::Number) {
      auto raw = doc.raw(n);
      auto r = std::from_chars(raw.data(), raw.data() + raw.size(), id);
      if (r.ec != std::errc() || r.ptr != raw.data() + raw.size()) id = -1;
    }
    std::string_view key = doc.key(n);
    if (n.key_escaped) {
      unescaped.emplace_back(json::unescape(key, true, tmp));
      key = unescaped.back();
    }
    if (id < 0 || id > kMaxTokenId)
      fail("{}: model.vocab.{}: expected an integer id in [0, {}], got {}", doc.source(), std::string(key), kMaxTokenId,
           n.type == json::Type::Number ? std::string(doc.raw(n)) : json::type_name(n.type));
    entries.emplace_back(key, int32_t(id));
    max_id = std::max(max_id, id);
  }
  insert_vocab(entries, max_id);

  // ---- merges: ["a b", ...] (older files) or [["a", "b"], ...].
  json::Value merges = model.at("merges");
  if (!merges.is_array()) merges.fail_type("array");
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(merges.size());
  std::deque<std::string> merge_strings;  // unescaped parts (rare)
  auto keep = [&](std::string_view raw, bool escaped) -> std::string_view {
    if (!escaped) return raw;
    merge_strings.emplace_back(json::unescape(raw, true, tmp));
    return merge_strings.back();
  };
  for (uint32_t c = merges.node().first; c != 0; c = doc.node(c).next) {
    const json::Node& n = doc.node(c);
    if (n.type == json::Type::String) {
      std::string_view s = keep(doc.raw(n), n.escaped);
      size_t sp = s.find(' ');
      if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
        fail("{}: model.merges[{}]: expected \"left right\", got \"{}\"", doc.source(), pairs.size(), std::string(s));
      pairs.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (n.type == json::Type::Array && n.count == 2 && doc.node(n.first).type == json::Type::String &&
               doc.node(doc.node(n.first).next).type == json::Type::String) {
      const json::Node& na = doc.node(n.first);
      const json::Node& nb = doc.node(na.next);
      std::string_view a = keep(doc.raw(na), na.escaped);
      pairs.emplace_back(a, keep(doc.raw(nb), nb.escaped));
    } else {
      fail("{}: model.merges[{}]: expected a string or a pair of strings, got {}", doc.source(), pairs.size(),
           json::type_name(n.type));
    }
  }
  insert_merges(pairs, doc.source(), "model.merges", "model.vocab");
  build_byte_tables();
}

BpeModel::BpeModel(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                   const Options& options, const std::string& source)
    : uid_(g_next_uid++) {
  std::fill(std::begin(byte_fallback_ids_), std::end(byte_fallback_ids_), -1);
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  ignore_merges_ = options.ignore_merges;

  std::vector<std::pair<std::string_view, int32_t>> entries;
  entries.reserve(tokens.size());
  std::deque<std::string> renamed;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty()) {  // llama.cpp loads these under this name rather than refusing the file
      renamed.push_back("[EMPTY_" + std::to_string(i) + "]");
      entries.emplace_back(renamed.back(), int32_t(i));
    } else {
      entries.emplace_back(tokens[i], int32_t(i));
    }
  }
  token_to_id_.reserve(entries.size());
  insert_vocab(entries, int64_t(entries.size()) - 1);
  if (token_to_id_.size() != entries.size()) {
    for (const auto& [text, id] : entries) {
      int32_t first = token_to_id_.find(text);
      if (first != id)
        fail("{}: tokenizer.ggml.tokens: token {} \"{}\" is also token {}", source, std::min(first, id),
             std::string(text), std::max(first, id));
    }
  }

  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string_view m = merges[i];
    // llama.cpp splits at the first space after the first byte, so a left
    // part may itself be a space.
    size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (sp == std::string_view::npos || sp + 1 >= m.size())
      fail("{}: tokenizer.ggml.merges[{}]: expected \"left right\", got \"{}\"", source, i, std::string(m));
    pairs.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  insert_merges(pairs, source, "tokenizer.ggml.merges", "tokenizer.ggml.tokens");
  build_byte_tables();
}

void BpeModel::insert_vocab(const std::vector<std::pair<std::string_view, int32_t>>& entries, int64_t max_id) {
  id_to_token_.resize(size_t(max_id + 1));
  has_id_.assign(size_t(max_id + 1), 0);
  uint64_t hv[kBlock];
  for (size_t base = 0; base < entries.size(); base += kBlock) {
    size_t m = std::min(kBlock, entries.size() - base);
    for (size_t k = 0; k < m; ++k) {
      hv[k] = hash_bytes(entries[base + k].first);
      token_to_id_.prefetch(hv[k]);
    }
    for (size_t k = 0; k < m; ++k) {
      auto [key, id] = entries[base + k];
      token_to_id_.insert(key, id, hv[k]);
      id_to_token_[size_t(id)] = std::string(key);
      has_id_[size_t(id)] = 1;
    }
  }
}

void BpeModel::insert_merges(const std::vector<std::pair<std::string_view, std::string_view>>& pairs,
                             const std::string& source, std::string_view merges_key, std::string_view vocab_key) {
  merges_.reserve(pairs.size());
  // Lookups in blocks: hash and prefetch a block's 3 keys per merge first,
  // then probe, so that the cache misses of one block overlap (this loop
  // was a third of Qwen3's load time probing one key at a time).
  std::string joined[kBlock];
  uint64_t h[kBlock][3];
  int32_t ids[kBlock][3];
  for (size_t base = 0; base < pairs.size(); base += kBlock) {
    size_t m = std::min(kBlock, pairs.size() - base);
    for (size_t k = 0; k < m; ++k) {
      auto [a, b] = pairs[base + k];
      joined[k].assign(a);
      joined[k].append(b.substr(std::min(prefix_.size(), b.size())));
      h[k][0] = hash_bytes(a);
      h[k][1] = hash_bytes(b);
      h[k][2] = hash_bytes(joined[k]);
      for (auto x : h[k]) token_to_id_.prefetch(x);
    }
    for (size_t k = 0; k < m; ++k) {
      auto [a, b] = pairs[base + k];
      int32_t rank = int32_t(base + k);
      int32_t ia = token_to_id_.find(a, h[k][0]), ib = token_to_id_.find(b, h[k][1]);
      if (ia < 0 || ib < 0)
        fail("{}: {}[{}]: token \"{}\" is not in {}", source, merges_key, rank, std::string(ia < 0 ? a : b),
             vocab_key);
      int32_t inew = token_to_id_.find(joined[k], h[k][2]);
      if (inew < 0)
        fail("{}: {}[{}]: merged token \"{}\" is not in {}", source, merges_key, rank, joined[k], vocab_key);
      ids[k][0] = ia;
      ids[k][1] = ib;
      ids[k][2] = inew;
      merges_.prefetch(ia, ib);
    }
    for (size_t k = 0; k < m; ++k) merges_.insert(ids[k][0], ids[k][1], {int32_t(base + k), ids[k][2]});
  }
}

void BpeModel::build_byte_tables() {
  if (byte_fallback_) {
    char buf[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      byte_fallback_ids_[b] = token_to_id_.find(buf);
    }
  }
  std::string ch;
  for (int b = 0; b < 256; ++b) {
    ch.clear();
    utf8::append(ch, utf8::byte_to_char(uint8_t(b)));
    byte_ids_[b] = token_to_id_.find(ch);
  }
  if (ignore_merges_) build_raw_index();
}

BpeModel::~BpeModel() = default;

void BpeModel::build_raw_index() {
  raw_to_id_.reserve(token_to_id_.size());
  std::string raw;
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    if (!has_id_[id]) continue;
    raw.clear();
    if (utf8::chars_to_bytes(id_to_token_[id], raw)) raw_to_id_.insert(raw, int32_t(id));
  }
  raw_index_ = true;
}

void BpeModel::set_extra_token(int32_t id, const std::string& text) {
  if (id < 0) return;
  if (size_t(id) >= id_to_token_.size()) {
    id_to_token_.resize(size_t(id) + 1);
    has_id_.resize(size_t(id) + 1, 0);
  }
  if (!has_id_[size_t(id)]) id_to_token_[size_t(id)] = text;
}

void BpeModel::merge_all(std::vector<Symbol>& syms, std::vector<int32_t>& out) const {
  const int32_t n = int32_t(syms.size());
  if (n > 1) {
    auto& heap = workspace().heap;
    heap.clear();
    for (int32_t i = 0; i + 1 < n; ++i) {
      int32_t l = syms[size_t(i)].id, r = syms[size_t(i) + 1].id;
      if (const auto* m = merges_.find(l, r)) heap.push_back({m->rank, i, m->id, l, r});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      Merge top = heap.back();
      heap.pop_back();
      Symbol& cur = syms[size_t(top.pos)];
      if (cur.len == 0 || cur.next < 0) continue;
      Symbol right = syms[size_t(cur.next)];
      // Stale entry? HF looks the current pair up and compares only the
      // merged id; an unchanged pair trivially passes, so skip the lookup.
      if (cur.id != top.left || right.id != top.right) {
        const auto* m = merges_.find(cur.id, right.id);
        if (m == nullptr || m->id != top.new_id) continue;
      }
      cur.id = top.new_id;
      cur.len += right.len;
      int32_t right_pos = cur.next;
      cur.next = right.next;
      syms[size_t(right_pos)].len = 0;
      if (right.next >= 0 && right.next < n) syms[size_t(right.next)].prev = top.pos;
      if (cur.prev >= 0) {
        int32_t l = syms[size_t(cur.prev)].id;
        if (const auto* pm = merges_.find(l, cur.id)) {
          heap.push_back({pm->rank, cur.prev, pm->id, l, cur.id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (cur.next >= 0 && cur.next < n) {
        int32_t r = syms[size_t(cur.next)].id;
        if (const auto* nm = merges_.find(cur.id, r)) {
          heap.push_back({nm->rank, top.pos, nm->id, cur.id, r});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
  }
  for (const auto& s : syms)
    if (s.len != 0) out.push_back(s.id);
}

template <typename WordFn>
void BpeModel::cached(std::string_view key, std::vector<int32_t>& out, WordFn&& fn) const {
  if (key.size() > WordCache::kMaxWord) { fn(out); return; }
  WordCache& wc = cache_for(uid_);
  uint64_t h = hash_bytes(key);
  auto& slot = wc.slots[h & (WordCache::kSlots - 1)];
  if (slot.hash == h && slot.key == key) {
    out.insert(out.end(), slot.ids.begin(), slot.ids.end());
    return;
  }
  size_t before = out.size();
  fn(out);
  slot.hash = h;
  slot.key.assign(key);
  slot.ids.assign(out.begin() + std::ptrdiff_t(before), out.end());
}

void BpeModel::tokenize(std::string_view w, std::vector<int32_t>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    int32_t id = token_to_id_.find(w);
    if (id >= 0) { out.push_back(id); return; }
  }
  cached(w, out, [&](std::vector<int32_t>& dst) {
    auto& syms = workspace().syms;
    syms.clear();
    auto add = [&](int32_t id, uint32_t len) {
      int32_t i = int32_t(syms.size());
      syms.push_back({id, i - 1, i + 1, len});
    };
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    std::string s;
    for (size_t i = 0; i < w.size();) {
      size_t b = i;
      utf8::next(w, i);
      bool is_first = b == 0, is_last = i == w.size();
      uint32_t byte_len = uint32_t(i - b);
      s.clear();
      if (!is_first) s += prefix_;
      s.append(w.substr(b, i - b));
      if (is_last) s += suffix_;
      int32_t id = token_to_id_.find(s);
      if (id >= 0) {
        if (unk_id >= 0) { add(unk_id, unk_len); unk_id = -1; }
        add(id, byte_len);
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (unsigned char c : s) all = all && byte_fallback_ids_[c] >= 0;
        if (all) {
          // HF does not flush a pending unk here (it lands after these
          // bytes); mirrored for exactness.
          for (unsigned char c : s) add(byte_fallback_ids_[c], 1);
          continue;
        }
      }
      if (unk_token_) {
        int32_t uid = token_to_id_.find(*unk_token_);
        if (uid < 0) fail("BPE: unk_token \"{}\" is not in the vocab", *unk_token_);
        if (unk_id >= 0 && fuse_unk_) {
          unk_len += byte_len;
        } else {
          if (unk_id >= 0) add(unk_id, unk_len);
          unk_id = uid;
          unk_len = byte_len;
        }
      }
    }
    if (unk_id >= 0) add(unk_id, unk_len);
    if (!syms.empty()) syms.back().next = -1;
    merge_all(syms, dst);
  });
}

void BpeModel::tokenize_bytes(std::string_view w, std::vector<int32_t>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    int32_t id = raw_to_id_.find(w);
    if (id >= 0) { out.push_back(id); return; }
  }
  cached(w, out, [&](std::vector<int32_t>& dst) {
    bool simple = prefix_.empty() && suffix_.empty();
    for (unsigned char c : w) simple = simple && byte_ids_[c] >= 0;
    if (!simple) {
      // Rare: a byte whose character is missing from the vocab, or a
      // subword prefix/suffix. Take the general path on the mapped text.
      std::string mapped;
      utf8::bytes_to_chars(w, mapped);
      tokenize(mapped, dst);
      return;
    }
    auto& syms = workspace().syms;
    int32_t n = int32_t(w.size());
    syms.resize(size_t(n));
    for (int32_t i = 0; i < n; ++i) syms[size_t(i)] = {byte_ids_[uint8_t(w[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1, 1};
    merge_all(syms, dst);
  });
}

}  // namespace moeflux
