#!/usr/bin/env python3
"""Writes the gguf-py oracle for the converter's Q8_0/Q4_0 bytes
(tests/fixtures/convert/): a 32 x 256 f32 matrix and what gguf-py's
gguf.quants.quantize (0.19.0, the code llama.cpp's convert_hf_to_gguf.py
quantizes with) makes of it as Q8_0 and Q4_0. tests/convert places the matrix
as one routed expert of a small model, converts the model and checks the
bytes of that expert's slice of the stacked GGUF tensor.

Row 0 is zeros (the zero-scale path), row 1 has one large outlier, row 2 is
tiny values; the rest are seeded normal values.

    /work/pyenv/bin/python scripts/gen_convert_fixtures.py [--out tests/fixtures/convert]
"""
import argparse
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "convert"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261127)
    x = rng.standard_normal((32, 256)).astype(np.float32) * np.float32(0.05)
    x[0] = 0
    x[1, 77] = 3.0
    x[2] *= np.float32(1e-6)
    x.tofile(os.path.join(args.out, "expert_rows.f32"))
    for qt, name in ((QT.Q8_0, "q8_0"), (QT.Q4_0, "q4_0")):
        gguf.quants.quantize(x, qt).tofile(os.path.join(args.out, f"expert_rows.{name}"))


if __name__ == "__main__":
    main()
