// Reference dequantizers, bit-identical to gguf-py. numpy never fuses a
// multiply and an add, so neither may we: `a * b - c` must round after the
// product. The pragmas below keep the compiler from contracting to FMA when
// the build targets a CPU that has it.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "quant/dequant.h"

#include <bit>
#include <cstring>

#include "core/error.h"
#include "quant/blocks.h"

namespace moeflux::quant {
namespace {

template <typename B>
const B* blocks(const uint8_t* p) {
  return reinterpret_cast<const B*>(p);
}

void deq_q4_0(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ4_0>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = load_f16(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(int(b[i].qs[j] & 0xF) - 8);
      y[j + kQK / 2] = d * float(int(b[i].qs[j] >> 4) - 8);
    }
  }
}

void deq_q4_1(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ4_1>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = load_f16(b[i].d), m = load_f16(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(b[i].qs[j] & 0xF) + m;
      y[j + kQK / 2] = d * float(b[i].qs[j] >> 4) + m;
    }
  }
}

template <typename B>
int q5_value(const B& b, int j) {  // 5-bit code of element j of a Q5_0/Q5_1 block
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const int lo = j < 16 ? (b.qs[j] & 0xF) : (b.qs[j - 16] >> 4);
  return lo | int(((qh >> j) & 1u) << 4);
}

void deq_q5_0(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ5_0>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = load_f16(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * float(q5_value(b[i], j) - 16);
  }
}

void deq_q5_1(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ5_1>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = load_f16(b[i].d), m = load_f16(b[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = d * float(q5_value(b[i], j)) + m;
  }
}

void deq_q8_0(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ8_0>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = load_f16(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(b[i].qs[j]) * d;
  }
}

void deq_mxfp4(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockMXFP4>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = e8m0_to_f32_half(b[i].e);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(kMxfp4Values[b[i].qs[j] & 0xF]);
      y[j + kQK / 2] = d * float(kMxfp4Values[b[i].qs[j] >> 4]);
    }
  }
}

// K formats: element e of a super-block; 2-bit fields sit at shift 2*((e%128)/32)
// of byte (e/128)*32 + e%32.
void deq_q2_k(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ2_K>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
    for (int s = 0; s < kQK_K / 16; ++s) {
      const float dl = d * float(b[i].scales[s] & 0xF);
      const float ml = dmin * float(b[i].scales[s] >> 4);
      for (int l = 0; l < 16; ++l) {
        const int e = s * 16 + l;
        const int q = (b[i].qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        y[e] = dl * float(q) - ml;
      }
    }
  }
}

void deq_q3_k(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ3_K>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = load_f16(b[i].d);
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    for (int s = 0; s < 16; ++s) {
      const float dl = d * float(sc[s]);
      for (int l = 0; l < 16; ++l) {
        const int e = s * 16 + l;
        const int lo = (b[i].qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const int hi = (b[i].hmask[e % 32] >> (e / 32)) & 1;
        y[e] = dl * float(lo - (hi ? 0 : 4));
      }
    }
  }
}

void deq_q4_k(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ4_K>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      k4_scale_min(s, b[i].scales, sc, m);
      const float dl = d * float(sc), ml = dmin * float(m);
      const uint8_t* q = b[i].qs + (s / 2) * 32;
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) y[s * 32 + l] = dl * float((q[l] >> shift) & 0xF) - ml;
    }
  }
}

void deq_q5_k(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ5_K>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      k4_scale_min(s, b[i].scales, sc, m);
      const float dl = d * float(sc), ml = dmin * float(m);
      const uint8_t* q = b[i].qs + (s / 2) * 32;
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0xF) | (((b[i].qh[l] >> s) & 1) << 4);
        y[s * 32 + l] = dl * float(v) - ml;
      }
    }
  }
}

void deq_q6_k(const uint8_t* src, float* y, size_t nb) {
  const auto* b = blocks<BlockQ6_K>(src);
  for (size_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = load_f16(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, k = e % 128;
      const uint8_t lb = b[i].ql[h * 64 + k % 64];
      const int lo = k < 64 ? (lb & 0xF) : (lb >> 4);
      const int hi = (b[i].qh[h * 32 + k % 32] >> (2 * (k / 32))) & 3;
      const float dl = d * float(b[i].scales[e / 16]);
      y[e] = dl * float((lo | (hi << 4)) - 32);
    }
  }
}

}  // namespace

bool dequant_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K:
    case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::MXFP4:
      return true;
    default:
      return false;
  }
}

void dequantize_row(GgmlType t, const uint8_t* src, float* dst, size_t n) {
  const auto info = ggml_type_info(uint32_t(t));
  if (!info || !dequant_supported(t))
    fail("dequantize: unsupported GGML type {} ({})", info ? info->name : "unknown", uint32_t(t));
  if (n % info->block != 0) fail("dequantize: {} elements is not a whole number of {} blocks of {}", n, info->name, info->block);
  const size_t nb = n / info->block;
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0: return deq_q4_0(src, dst, nb);
    case GgmlType::Q4_1: return deq_q4_1(src, dst, nb);
    case GgmlType::Q5_0: return deq_q5_0(src, dst, nb);
    case GgmlType::Q5_1: return deq_q5_1(src, dst, nb);
    case GgmlType::Q8_0: return deq_q8_0(src, dst, nb);
    case GgmlType::Q2_K: return deq_q2_k(src, dst, nb);
    case GgmlType::Q3_K: return deq_q3_k(src, dst, nb);
    case GgmlType::Q4_K: return deq_q4_k(src, dst, nb);
    case GgmlType::Q5_K: return deq_q5_k(src, dst, nb);
    case GgmlType::Q6_K: return deq_q6_k(src, dst, nb);
    case GgmlType::MXFP4: return deq_mxfp4(src, dst, nb);
    default: return;
  }
}

}  // namespace moeflux::quant
