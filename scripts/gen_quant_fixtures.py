#!/usr/bin/env python3
"""Oracle fixtures for src/quant: gguf-py (llama.cpp's Python package) and the
MLX affine formula in numpy.

Writes tests/fixtures/quant/manifest.json and small binary files next to it:
  dequant  random blocks of every GGML type (seeded; scale fields set to edge
           values: zero, tiny/subnormal, huge, negative; NaN-free) and
           gguf.quants.dequantize's f32 output;
  quantize f32 rows with edge cases and gguf.quants.quantize's bytes, for the
           types gguf-py quantizes;
  mlx      uint32-packed MLX affine weights with f16/bf16/f32 scales and
           biases, and w = scale * q + bias computed in f32 by numpy.
All binary data is little-endian. Committed, so the C++ tests need no Python.

  /work/pyenv/bin/python scripts/gen_quant_fixtures.py   (see requirements-quant.txt)
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")
SEED = 20250501

# Byte offsets of the f16 scale fields inside each block (ggml-common.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
DEQUANT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                 T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.MXFP4]
QUANT_TYPES = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.MXFP4]


def edge_f16(rng, n):
    """f16 scale values: mostly ordinary, with zeros, subnormals, the largest
    finite values and negatives mixed in."""
    v = (rng.standard_normal(n) * 0.05).astype(np.float16)
    pick = rng.integers(0, 8, n)
    v = np.where(pick == 0, np.float16(0), v)
    v = np.where(pick == 1, np.float16(-0.0), v)
    v = np.where(pick == 2, (rng.integers(1, 1024, n).astype(np.uint16)).view(np.float16), v)  # subnormal
    v = np.where(pick == 3, np.float16(65504) * np.sign(rng.standard_normal(n)).astype(np.float16), v)
    v = np.where(pick == 4, -np.abs(v), v)
    return v.astype(np.float16)


def non_nan_bits16(rng, n, is_f16):
    u = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    if is_f16:
        nan = ((u & 0x7C00) == 0x7C00) & ((u & 0x03FF) != 0)
    else:
        nan = ((u & 0x7F80) == 0x7F80) & ((u & 0x007F) != 0)
    return np.where(nan, u & 0x8000, u).astype(np.uint16)


def random_rows(rng, qtype, rows, cols):
    block, tsize = GGML_QUANT_SIZES[qtype]
    nb = rows * cols // block
    if qtype == T.F32:
        v = rng.standard_normal(rows * cols).astype(np.float32) * np.float32(10.0) ** rng.integers(-30, 30, rows * cols)
        v[:8] = [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-40, 3.4e38, -1.17549435e-38]
        return v.astype(np.float32).view(np.uint8).reshape(rows, -1)
    if qtype in (T.F16, T.BF16):
        return non_nan_bits16(rng, rows * cols, qtype == T.F16).view(np.uint8).reshape(rows, -1)
    data = rng.integers(0, 256, (nb, tsize), dtype=np.uint16).astype(np.uint8)
    if qtype == T.MXFP4:
        # every exponent byte, including 0/1 (subnormal scales) and 255
        data[:, 0] = np.concatenate([np.arange(256), rng.integers(0, 256, max(0, nb - 256))])[:nb].astype(np.uint8)
        rng.shuffle(data[:, 0])
    for off in F16_FIELDS.get(qtype, []):
        data[:, off:off + 2] = edge_f16(rng, nb).view(np.uint8).reshape(nb, 2)
    if nb >= 2 and qtype != T.MXFP4:
        data[0, :] = 0            # an all-zero block
        data[1, :] = 0xFF         # all bits set (then its scales made finite)
        for off in F16_FIELDS.get(qtype, []):
            data[1, off:off + 2] = np.array([0xFF, 0x7B], np.uint8)  # 65504
    return data.reshape(rows, -1)


def quant_inputs(rng, rows, cols):
    x = np.zeros((rows, cols), np.float32)
    x[0] = rng.standard_normal(cols)
    x[1] = rng.standard_normal(cols) * 1e-3
    x[1, 7] = 0.5                                   # an outlier
    x[2, :32] = 0                                   # zero block
    x[2, 32:64] = 1.25                              # constant block
    x[2, 64:] = -np.abs(rng.standard_normal(cols - 64))  # all negative
    x[3] = rng.standard_normal(cols) * 1e4
    x[4] = rng.standard_normal(cols) * 1e-6         # scales become f16 subnormals
    x[5] = rng.integers(-16, 17, cols) * 0.5        # exact half steps: rounding ties
    # block maxima exactly at and just below powers of two (MXFP4's exponent)
    for b in range(cols // 32):
        k = int(rng.integers(-10, 10))
        x[5, b * 32] = np.float32(2.0 ** k) * (np.float32(1) - np.float32(2 ** -24) * (b % 2)) * (1 if b % 4 < 2 else -1)
        x[5, b * 32 + 1:b * 32 + 32] *= np.float32(2.0 ** k) / 16
    x[6] = rng.uniform(-1, 1, cols)
    x[7] = rng.standard_t(2, cols)
    return x.astype(np.float32)


def unpack_mlx(wq, bits, cols):
    """q values of uint32-packed MLX rows: one little-endian bit stream per row."""
    rows = wq.shape[0]
    bits_le = np.unpackbits(wq.astype("<u4").view(np.uint8).reshape(rows, -1), axis=-1, bitorder="little")
    bits_le = bits_le[:, :cols * bits].reshape(rows, cols, bits).astype(np.uint32)
    return (bits_le << np.arange(bits, dtype=np.uint32)).sum(axis=-1).astype(np.uint32)


def to_f32(raw, dtype):
    if dtype == "bf16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def mlx_case(rng, bits, gs, dtype, rows, cols):
    wq = rng.integers(0, 1 << 32, (rows, cols * bits // 32), dtype=np.uint64).astype(np.uint32)
    ng = cols // gs
    s = (rng.standard_normal((rows, ng)) * 0.02).astype(np.float32)
    b = (rng.standard_normal((rows, ng)) * 0.1).astype(np.float32)
    s[0, 0] = 0.0                # a zero scale: the group is its bias
    s[-1, -1] = -s[-1, -1]       # negative scales occur after MLX's rounding
    b[0, -1] = 0.0
    if dtype == "f16":
        s_raw, b_raw = s.astype(np.float16), b.astype(np.float16)
    elif dtype == "bf16":
        s_raw = (s.view(np.uint32) >> 16).astype(np.uint16)
        b_raw = (b.view(np.uint32) >> 16).astype(np.uint16)
    else:
        s_raw, b_raw = s, b
    q = unpack_mlx(wq, bits, cols).astype(np.float32).reshape(rows, ng, gs)
    sf = to_f32(s_raw, dtype).reshape(rows, ng, 1)
    bf = to_f32(b_raw, dtype).reshape(rows, ng, 1)
    w = (sf * q + bf).reshape(rows, cols).astype(np.float32)
    return wq, s_raw, b_raw, w


def write(name, arr):
    arr = np.ascontiguousarray(arr)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(arr.tobytes())
    return name


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    cases = []
    for qt in DEQUANT_TYPES:
        block, _ = GGML_QUANT_SIZES[qt]
        rows, cols = (4, 4 * 256) if block == 256 else (4, 32 * 32) if qt != T.MXFP4 else (8, 32 * 32)
        if block == 1:
            rows, cols = 4, 512
        data = random_rows(rng, qt, rows, cols)
        out = gguf.quants.dequantize(data, qt).astype(np.float32, copy=False)
        assert out.shape == (rows, cols), (qt, out.shape)
        assert not np.isnan(out).any(), qt.name
        cases.append({"kind": "dequant", "type": qt.name, "rows": rows, "cols": cols,
                      "input": write(f"dequant_{qt.name}.bin", data), "output": write(f"dequant_{qt.name}.f32", out)})
    x = quant_inputs(rng, 8, 512)
    write("quantize_input.f32", x)
    for qt in QUANT_TYPES:
        q = gguf.quants.quantize(x, qt)
        q = np.ascontiguousarray(q).view(np.uint8).reshape(x.shape[0], -1)
        cases.append({"kind": "quantize", "type": qt.name, "rows": 8, "cols": 512,
                      "input": "quantize_input.f32", "output": write(f"quantize_{qt.name}.bin", q)})
    for bits in (2, 3, 4, 6, 8):
        for gs in (32, 64, 128):
            dtype = ("f16", "bf16", "f32")[(bits + gs // 32) % 3]
            rows, cols = 3, 384
            wq, s, b, w = mlx_case(rng, bits, gs, dtype, rows, cols)
            stem = f"mlx_b{bits}_g{gs}_{dtype}"
            cases.append({"kind": "mlx", "bits": bits, "group_size": gs, "scale_dtype": dtype,
                          "rows": rows, "cols": cols, "weight": write(stem + ".w.bin", wq),
                          "scales": write(stem + ".s.bin", s), "biases": write(stem + ".b.bin", b),
                          "output": write(stem + ".f32", w)})
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"generator": "scripts/gen_quant_fixtures.py", "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                   "numpy": np.__version__, "seed": SEED, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    sys.exit(main())
