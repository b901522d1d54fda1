// A small PRNG whose output is fixed by its seed on every platform.
//
// The standard engines are portable, but std::uniform_real_distribution and
// friends are implementation-defined, so "same seed -> same text" would break
// between libstdc++ and libc++. We use xoshiro256** (Blackman & Vigna), seeded
// through splitmix64 as its authors recommend, and build doubles ourselves.
#pragma once
#include <cstdint>

namespace moeflux {

// splitmix64: advances `state` and returns the next output. Used to expand a
// 64-bit seed into xoshiro's 256-bit state (never all zero this way).
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64(sm);
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1): the top 53 bits scaled by 2^-53, exact in a double, so
  // every platform computes the same value.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace moeflux
