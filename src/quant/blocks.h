// GGML block layouts, byte for byte as llama.cpp's ggml-common.h and
// gguf-py's quants.py define them. Every struct is packed to its on-disk size
// (checked below against ggml_types.h), so a row of a GGUF tensor is an array
// of these and can be read in place from a mapped file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "format/ggml_types.h"

namespace moeflux::quant {

inline constexpr int kQK = 32;    // elements per block of the legacy formats and MXFP4
inline constexpr int kQK_K = 256; // elements per super-block of the K formats

// Scales are stored as raw f16 bits: blocks are byte-aligned (Q4_0 is 18
// bytes), so reading them through a 2-byte type would be misaligned.
using f16bits = uint16_t;

#pragma pack(push, 1)
struct BlockQ4_0 { f16bits d; uint8_t qs[kQK / 2]; };                  // q - 8, low nibbles first half
struct BlockQ4_1 { f16bits d, m; uint8_t qs[kQK / 2]; };               // d*q + m
struct BlockQ5_0 { f16bits d; uint8_t qh[4]; uint8_t qs[kQK / 2]; };   // 5th bit of element i at qh bit i
struct BlockQ5_1 { f16bits d, m; uint8_t qh[4]; uint8_t qs[kQK / 2]; };
struct BlockQ8_0 { f16bits d; int8_t qs[kQK]; };
struct BlockMXFP4 { uint8_t e; uint8_t qs[kQK / 2]; };                 // e8m0 scale, e2m1 nibbles

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low nibble scale, high nibble min, per 16 elements
  uint8_t qs[kQK_K / 4];       // 2-bit quants, 4 per byte (shift 0,2,4,6 = 32-element strides)
  f16bits d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];    // high bit; set means +0, clear means -4
  uint8_t qs[kQK_K / 4];       // low 2 bits
  uint8_t scales[12];          // 16 6-bit signed scales (offset 32)
  f16bits d;
};
struct BlockQ4_K {
  f16bits d, dmin;
  uint8_t scales[12];          // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  f16bits d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];       // low 4 bits
  uint8_t qh[kQK_K / 4];       // high 2 bits
  int8_t scales[kQK_K / 16];
  f16bits d;
};
#pragma pack(pop)

template <typename B>
constexpr bool size_matches(GgmlType t) {
  for (const auto& i : ggml_detail::kTypes)
    if (i.type == t) return i.type_size == sizeof(B);
  return false;
}
static_assert(size_matches<BlockQ4_0>(GgmlType::Q4_0) && size_matches<BlockQ4_1>(GgmlType::Q4_1));
static_assert(size_matches<BlockQ5_0>(GgmlType::Q5_0) && size_matches<BlockQ5_1>(GgmlType::Q5_1));
static_assert(size_matches<BlockQ8_0>(GgmlType::Q8_0) && size_matches<BlockMXFP4>(GgmlType::MXFP4));
static_assert(size_matches<BlockQ2_K>(GgmlType::Q2_K) && size_matches<BlockQ3_K>(GgmlType::Q3_K));
static_assert(size_matches<BlockQ4_K>(GgmlType::Q4_K) && size_matches<BlockQ5_K>(GgmlType::Q5_K));
static_assert(size_matches<BlockQ6_K>(GgmlType::Q6_K));

// e2m1 code -> value, doubled so that it is an integer (the block scale is
// halved to compensate, as ggml does).
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Half of 2^(e - 127) as an f32, exact for every e (ggml_e8m0_to_fp32_half):
// e < 2 lands in the subnormal range.
inline float e8m0_to_f32_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (uint32_t(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block.
// Bytes 0-3 hold scales 0-3 (low 6 bits), 4-7 mins 0-3; sub-blocks 4-7 keep
// their low 4 bits in bytes 8-11 and their top 2 bits in the spare top bits
// of bytes 0-7.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// The 16 signed scales of a Q3_K block: low nibbles in bytes 0-7 (scales 0-7
// low halves, 8-15 high halves), top 2 bits in bytes 8-11.
inline void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((lo | (hi << 4)) - 32);
  }
}

inline float load_f16(f16bits h) { return f16_to_f32(h); }

}  // namespace moeflux::quant
