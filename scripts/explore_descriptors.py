#!/usr/bin/env python3
"""Two label-free changes to the vectors themselves, measured with rerank_explore.py's protocol
(README "Retrieval quality", the rows under "What else was tried"):

  posteriors  append the network's own ImageNet posteriors to each vector: the square root of the
              softmax of its 1,000 logits (the classifier of models/efficientnet-lite0.lkw applied
              to the unit vector times --scale), unit-normalised, times --weight;
  mirror      replace each vector by the mean of the photo's and its mirror image's: needs a second
              export of the same library with every image flipped left-right (e.g. `vips flip` into
              a parallel tree, `lookalike index` it, `lookalike export`), matched by relative path.

  python3 scripts/explore_descriptors.py posteriors out/caltech-export [--scale 20 --weight 0.4]
  python3 scripts/explore_descriptors.py mirror out/caltech-export /tmp/flipped-export

Each prints P@20 and mAP for plain cosine and for the default re-ranking (dba15+qe10+diff30g10).
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rerank_explore as R  # noqa: E402

METHODS = ["plain", "dba15+qe10+diff30g10"]


def classifier(path="models/efficientnet-lite0.lkw"):
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[8:16])[0]
    header = json.loads(data[16:16 + size])
    start = (16 + size + 63) // 64 * 64

    def tensor(name):
        t = header["tensors"][name]
        raw = data[start + t["offset"]:start + t["offset"] + t["nbytes"]]
        return np.frombuffer(raw, dtype=np.float32).reshape(t["shape"])
    return tensor("_fc.weight"), tensor("_fc.bias")


def report(name, x, labels_from):
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/embeddings.npy", (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
        shutil.copy(f"{labels_from}/labels.txt", d)
        lib = R.Library(d)
        for m in METHODS:
            p, ap = R.evaluate_fast(lib, R.method_scores(lib, m))
            print(f"{name}\t{m}\tP@20 {p:.4f}\tmAP {ap:.4f}", flush=True)


def relative(paths_file, n):
    paths = open(paths_file).read().split("\n")[:n]
    root = os.path.commonpath(paths)
    return [os.path.relpath(p, root) for p in paths]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["posteriors", "mirror"])
    ap.add_argument("export")
    ap.add_argument("flipped", nargs="?")
    ap.add_argument("--scale", type=float, default=20, help="norm given to the unit vectors before the classifier")
    ap.add_argument("--weight", type=float, default=0.4)
    args = ap.parse_args()
    x = np.load(f"{args.export}/embeddings.npy").astype(np.float32)
    report("as stored", x, args.export)
    if args.what == "posteriors":
        w, b = classifier()
        z = (x * args.scale) @ w.T + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = np.sqrt(p)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        report(f"posteriors x{args.weight}", np.concatenate([x, args.weight * g], 1), args.export)
    else:
        if not args.flipped:
            raise SystemExit("mirror needs the flipped library's export too")
        y = np.load(f"{args.flipped}/embeddings.npy").astype(np.float32)
        where = {p: i for i, p in enumerate(relative(f"{args.flipped}/paths.txt", len(y)))}
        order = [where[p] for p in relative(f"{args.export}/paths.txt", len(x))]
        report("mirror mean", x + y[order], args.export)


if __name__ == "__main__":
    main()
