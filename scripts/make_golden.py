#!/usr/bin/env python3
"""make_golden.py - regenerate Tests/EngineTests/Fixtures/golden/ from the Python reference (peer.py).

For each image: `peer.py tensor IMAGE` gives the reference-preprocessed input [1,224,224,3]; since it is
exactly (p - 127) / 128 of 8-bit pixels, the PIXELS are stored (NAME.rgb: 224*224*3 uint8, RGB, HWC) and
checked to reproduce the tensor bit for bit. `peer.py run` on those tensors (ONNX Runtime) gives the raw
1280-d features (NAME.f32: little-endian float32) and the top-5 classes (golden.json).

Usage: python3 scripts/make_golden.py --peer /work/shared/reference/peer.py [IMAGE ...]
Default images: Tests/EngineTests/Fixtures/cat.jpg and three Caltech-101 photos from
/work/shared/datasets/caltech101/101_ObjectCategories.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/EngineTests/Fixtures/golden")
CALTECH = "/work/shared/datasets/caltech101/101_ObjectCategories"
DEFAULT = [("cat", os.path.join(ROOT, "Tests/EngineTests/Fixtures/cat.jpg")),
           ("caltech_airplanes_0001", f"{CALTECH}/airplanes/image_0001.jpg"),
           ("caltech_dalmatian_0001", f"{CALTECH}/dalmatian/image_0001.jpg"),
           ("caltech_cup_0001", f"{CALTECH}/cup/image_0001.jpg")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", default="/work/shared/reference/peer.py")
    ap.add_argument("images", nargs="*", help="NAME=PATH pairs (default: cat + 3 Caltech-101 photos)")
    a = ap.parse_args()
    items = [tuple(s.split("=", 1)) for s in a.images] if a.images else DEFAULT
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tensors = []
        for name, path in items:
            xp = os.path.join(tmp, name + ".npy")
            subprocess.run([sys.executable, a.peer, "tensor", path, "--out", xp], check=True, stdout=subprocess.DEVNULL)
            x = np.load(xp)[0]
            pixels = np.rint(x * 128 + 127)
            if pixels.min() < 0 or pixels.max() > 255:
                sys.exit(f"make_golden: {path}: tensor is not (p-127)/128 of 8-bit pixels")
            pixels = pixels.astype(np.uint8)
            if not np.array_equal((pixels.astype(np.float32) - 127) / 128, x):
                sys.exit(f"make_golden: {path}: pixels do not reproduce the tensor exactly")
            pixels.tofile(os.path.join(OUT, name + ".rgb"))
            tensors.append((pixels.astype(np.float32) - 127) / 128)
        xs = os.path.join(tmp, "x.npy")
        np.save(xs, np.stack(tensors).astype(np.float32))
        fp = os.path.join(tmp, "f.npy")
        out = subprocess.run([sys.executable, a.peer, "run", xs, "--out", fp, "--batch", "1"],
                             check=True, capture_output=True, text=True).stdout
        feats = np.load(fp)
    tops = {}
    for line in out.splitlines():
        m = re.match(r"peer run: \[(\d+)\] top-5 ImageNet ids: (.*)", line)
        if m:
            tops[int(m.group(1))] = [[int(i), float(p)] for i, p in re.findall(r"(\d+) \(([0-9.]+)\)", m.group(2))]
    golden = {}
    for k, (name, path) in enumerate(items):
        feats[k].astype("<f4").tofile(os.path.join(OUT, name + ".f32"))
        golden[name] = {"source": os.path.relpath(path, ROOT) if path.startswith(ROOT) else path.replace(CALTECH, "caltech101"),
                        "top5": tops[k]}
        print(f"make_golden: {name}: top-5 {tops[k]}")
    with open(os.path.join(OUT, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/make_golden.py (peer.py tensor + run, ONNX Runtime)",
                   "images": golden}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
