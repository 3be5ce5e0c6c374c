#!/usr/bin/env python3
"""Builds tests/fixtures/svhn-mini*.mat: small files in SVHN's exact format, written by
scipy.io.savemat as the real ones are MATLAB v5 files: X is a 32x32x3xN uint8 array (rows,
columns, RGB, image), y an Nx1 double array of labels 1..10 where 10 means the digit 0.

Image n is filled so that a reader can check the axis order: X[r, c, ch, n] = (7n + 3r + 5c
+ 50ch) % 256. Two files: svhn-mini.mat (uncompressed) and svhn-mini-z.mat (zlib-compressed
elements, as MATLAB -v7 writes). Usage (needs numpy and scipy):
    python3 scripts/make-svhn-fixture.py
"""
from pathlib import Path

import numpy as np
from scipy.io import savemat

out = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
n = 6
r, c, ch, k = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), np.arange(n), indexing="ij")
X = ((7 * k + 3 * r + 5 * c + 50 * ch) % 256).astype(np.uint8)
y = np.array([[1], [10], [3], [10], [9], [5]], dtype=np.float64)
savemat(out / "svhn-mini.mat", {"X": X, "y": y}, do_compression=False)
savemat(out / "svhn-mini-z.mat", {"X": X, "y": y}, do_compression=True)
print("wrote", out / "svhn-mini.mat", out / "svhn-mini-z.mat")
