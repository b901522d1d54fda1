#!/usr/bin/env python3
"""Reference values for moeflux's FP8 (e4m3, 128x128 block scales) weights.

Writes, under tests/fixtures/quant/ (requirements-oracle.txt's torch):
  fp8_e4m3fn.f32          float32 [256]: torch.float8_e4m3fn code i as float
  fp8_block_weight.bin    uint8 [130, 259]: random e4m3 codes (torch's rounding of N(0, 40^2))
  fp8_block_scale_inv.f32 float32 [2, 3]: one scale per 128x128 block (ceil division)
  fp8_block_dequant.f32   float32 [130, 259]: weight * scale_inv of its block, as
                          DeepSeek-V3's weight_dequant computes it (f32 product)
"""
from pathlib import Path

import torch

out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "quant"
v = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
(out / "fp8_e4m3fn.f32").write_bytes(v.numpy().astype("<f4").tobytes())
g = torch.Generator().manual_seed(7)
rows, cols = 130, 259
w = (torch.randn(rows, cols, generator=g) * 40).to(torch.float8_e4m3fn)
s = torch.rand((rows + 127) // 128, (cols + 127) // 128, generator=g) * 0.01 + 1e-3
full = w.float() * s.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
(out / "fp8_block_weight.bin").write_bytes(w.view(torch.uint8).numpy().tobytes())
(out / "fp8_block_scale_inv.f32").write_bytes(s.numpy().astype("<f4").tobytes())
(out / "fp8_block_dequant.f32").write_bytes(full.numpy().astype("<f4").tobytes())
