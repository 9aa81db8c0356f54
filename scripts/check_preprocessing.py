#!/usr/bin/env python3
"""Compares Lookalike's decoder output (224x224 RGB8) with the reference peer's preprocessing.

Builds the C decoder (Sources/CVipsShim) as a shared library, decodes each image with it and with
`peer.py`'s preprocessing (Pillow), and prints the mean and max absolute pixel difference.
Usage: python3 scripts/check_preprocessing.py [IMAGE...]  (default: 40 Caltech-101 photos)
Evaluation only: needs gcc, libvips-dev, libturbojpeg0-dev, and the peer's Python packages.
"""
import ctypes
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "reference"))
import peer  # noqa: E402

src = os.path.join(ROOT, "Sources", "CVipsShim")
lib = os.path.join(tempfile.mkdtemp(), "liblkdecode.so")
flags = subprocess.run(["pkg-config", "--cflags", "--libs", "vips"], capture_output=True, text=True, check=True).stdout.split()
subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-I", os.path.join(src, "include"), os.path.join(src, "lk_vips.c"),
                os.path.join(src, "lk_resample.c"), "-o", lib, "-lturbojpeg", "-lm"] + flags, check=True)
dec = ctypes.CDLL(lib)


class Result(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("format", ctypes.c_int), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("message", ctypes.c_char * 512)]


paths = sys.argv[1:] or sorted(glob.glob(os.path.join(ROOT, "..", "shared", "datasets", "caltech101",
                                                      "101_ObjectCategories", "*", "image_0001.jpg")))[:40]
diffs = []
for p in paths:
    out = (ctypes.c_ubyte * (224 * 224 * 3))()
    r = Result()
    if dec.lk_decode_file(p.encode(), 256, 224, ctypes.c_longlong(100_000_000), out, ctypes.byref(r)) != 0:
        print(f"{p}: {r.message.decode()}")
        continue
    ours = np.frombuffer(out, np.uint8).reshape(224, 224, 3).astype(np.int32)
    ref = np.rint(peer.preprocess(p) * 128 + 127).astype(np.int32)
    d = np.abs(ours - ref)
    diffs.append(d.mean())
    print(f"{os.path.relpath(p, ROOT)}: mean {d.mean():.4f} max {d.max()} identical {np.mean(d == 0) * 100:.1f} %")
print(f"{len(diffs)} images: mean abs difference {np.mean(diffs):.4f} levels (0 = identical to the reference)")
