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
class StringIdMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }
  size_t size() const { return size_; }

  // Inserts or overwrites (JSON objects: the last duplicate key wins, as in serde).
  void insert(std::string_view key, int32_t id) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    uint64_t h = hash_bytes(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.hash = h;
        s.off = uint32_t(arena_.size());
        s.len = uint32_t(key.size());
        s.id = id;
        arena_.append(key);
        ++size_;
        return;
      }
      if (s.hash == h && key_of(s) == key) { s.id = id; return; }
    }
  }

  int32_t find(std::string_view key) const {  // -1 when absent
    if (slots_.empty()) return -1;
    uint64_t h = hash_bytes(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == h && key_of(s) == key) return s.id;
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
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
      size_t i = s.hash & mask;
      while (slots_[i].id >= 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
};

// (left id, right id) -> (merge rank, merged id).
class PairMap {
 public:
  struct Entry {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, Entry{-1, -1});
    size_ = 0;
  }
  // Overwrites: HF collects the merges list into a HashMap, so a pair listed
  // twice keeps its last rank.
  bool insert(int32_t a, int32_t b, Entry e) {
    if ((size_ + 1) * 2 > keys_.size()) grow();
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = hash_mix(k, 0x9E3779B97F4A7C15ULL) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == kEmpty) { keys_[i] = k; vals_[i] = e; ++size_; return true; }
      if (keys_[i] == k) { vals_[i] = e; return false; }
    }
  }
  const Entry* find(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = hash_mix(k, 0x9E3779B97F4A7C15ULL) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  std::vector<uint64_t> keys_;
  std::vector<Entry> vals_;
  size_t size_ = 0;
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void grow() {
    auto ok = std::move(keys_);
    auto ov = std::move(vals_);
    reserve(ok.empty() ? 8 : ok.size());
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) insert(int32_t(ok[i] >> 32), int32_t(uint32_t(ok[i])), ov[i]);
  }
};

}  // namespace moeflux
