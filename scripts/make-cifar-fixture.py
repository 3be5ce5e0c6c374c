#!/usr/bin/env python3
"""Builds tests/fixtures/cifar{10,100}-test20.bin: the first 20 CIFAR-10 and CIFAR-100 test
images, real pixels, repacked in the CIFAR binary record layout.

Source: the PNGs `foolbox/data/cifar10_NN_label.png` and `cifar100_NN_label.png` shipped in
PyPI's foolbox 3.3.4 wheel (MIT). Each record is the label byte(s) then the R, G and B 32x32
planes, row-major. CIFAR-100 records have two label bytes (coarse, fine); the PNG names give
only the fine label, so the coarse byte is written as 0 (mixsweep reads the fine one).

Usage (needs pillow):  pip download --no-deps foolbox==3.3.4 -d /tmp/fb
                       python3 scripts/make-cifar-fixture.py /tmp/fb/foolbox-3.3.4-py3-none-any.whl
"""
import io
import re
import sys
import zipfile
from pathlib import Path

from PIL import Image


def main(wheel: str) -> None:
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name, label_bytes in (("cifar10", 1), ("cifar100", 2)):
            pattern = re.compile(rf"foolbox/data/{name}_(\d\d)_(\d+)\.png$")
            entries = sorted((int(m[1]), int(m[2]), f) for f in z.namelist() if (m := pattern.match(f)))
            assert [i for i, _, _ in entries] == list(range(20)), entries
            records = bytearray()
            for _, label, f in entries:
                img = Image.open(io.BytesIO(z.read(f))).convert("RGB")
                assert img.size == (32, 32), (f, img.size)
                records += bytes([0] * (label_bytes - 1) + [label])
                for channel in img.split():  # R, G, B planes, each row-major
                    records += channel.tobytes()
            (out / f"{name}-test20.bin").write_bytes(records)
            print(f"{name}: {len(entries)} records, labels {[l for _, l, _ in entries]}")


if __name__ == "__main__":
    main(sys.argv[1])
