#pragma once
// Open-addressing hash maps for the BPE hot path. std::unordered_map costs a
// node allocation per entry and a pointer chase per lookup; these keep
// entries in one array (linear probing, power-of-two capacity, load <= 1/2).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

inline uint64_t hash_mix(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return uint64_t(r) ^ uint64_t(r >> 64);
}

// wyhash-style string hash: 8 bytes per step, good enough spread for short keys.
inline uint64_t hash_bytes(std::string_view s) {
  const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
  uint64_t h = k0 ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = hash_mix(h ^ w, k1);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = hash_mix(h ^ w ^ (uint64_t(n) << 56), k1);
  }
  return hash_mix(h, k0);
}

// string -> int32 id. Keys are copied into an arena owned by the map.
// Slots are 16 bytes (a 32-bit tag from the hash's high half instead of the
// full hash): the maps of a 200k-token vocab are cache-miss bound at load.
class StringIdMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }
  size_t size() const { return size_; }

  // Inserts or overwrites (JSON objects: the last duplicate key wins, as in serde).
  void insert(std::string_view key, int32_t id) { insert(key, id, hash_bytes(key)); }
  void insert(std::string_view key, int32_t id, uint64_t h) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    uint32_t tag = uint32_t(h >> 32);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.tag = tag;
        s.off = uint32_t(arena_.size());
        s.len = uint32_t(key.size());
        s.id = id;
        arena_.append(key);
        ++size_;
        return;
      }
      if (s.tag == tag && key_of(s) == key) { s.id = id; return; }
    }
  }

  int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
  // With a precomputed h = hash_bytes(key) (see prefetch).
  int32_t find(std::string_view key, uint64_t h) const {  // -1 when absent
    if (slots_.empty()) return -1;
    uint32_t tag = uint32_t(h >> 32);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && key_of(s) == key) return s.id;
    }
  }
  // Starts loading the slot of hash h, so that a batch of lookups overlaps
  // its cache misses.
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & (slots_.size() - 1)]);
  }

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t off = 0, len = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;

  std::string_view key_of(const Slot& s) const { return std::string_view(arena_).substr(s.off, s.len); }

  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    size_t mask = cap - 1;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      size_t i = hash_bytes(key_of(s)) & mask;
      while (slots_[i].id >= 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
};

// (left id, right id) -> (merge rank, merged id). One 16-byte slot per
// entry so that a probe costs one cache miss.
class PairMap {
 public:
  struct Entry {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{kEmpty, {-1, -1}});
    size_ = 0;
  }
  // Overwrites: HF collects the merges list into a HashMap, so a pair listed
  // twice keeps its last rank.
  bool insert(int32_t a, int32_t b, Entry e) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    uint64_t k = key(a, b);
    size_t mask = slots_.size() - 1;
    for (size_t i = index(k); ; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key == kEmpty) { s.key = k; s.e = e; ++size_; return true; }
      if (s.key == k) { s.e = e; return false; }
    }
  }
  void prefetch(int32_t a, int32_t b) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[index(key(a, b))]);
  }
  const Entry* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    uint64_t k = key(a, b);
    size_t mask = slots_.size() - 1;
    for (size_t i = index(k); ; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.e;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key;
    Entry e;
  };
  std::vector<Slot> slots_;
  size_t size_ = 0;
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t index(uint64_t k) const { return hash_mix(k, 0x9E3779B97F4A7C15ULL) & (slots_.size() - 1); }
  void grow() {
    auto old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const auto& s : old)
      if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.e);
  }
};

}  // namespace moeflux
