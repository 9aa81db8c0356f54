#!/usr/bin/env python3
"""Label-free changes to the vectors themselves, measured with rerank_explore.py's protocol
(docs/retrieval-quality.md: the last four rows of the re-rankings not kept under "Re-ranking", and
the table under "Descriptor"):

  views       other views and poolings of the same network (needs the reference toolkit:
              ../shared/reference/requirements.txt and peer.py, i.e. onnx + onnxruntime + Pillow):
              for every image of an export, the head's map (before the average pool) for two views,
              the reference's centre crop and the whole image stretched to 224 x 224, pooled as
              average, GeM (p = 3), max and R-MAC (14 regions at 3 scales); each single one and the
              sums in --combos are evaluated (plain and the default re-ranking with --alpha);
  golden      the whole+rmac vector of one image, for Tests/EngineTests/Fixtures/golden/;

  posteriors  append the network's own ImageNet posteriors to each vector: the square root of the
              softmax of its 1,000 logits (the classifier of models/efficientnet-lite0.lkw applied
              to the unit vector times --scale), unit-normalised, times --weight;
  mirror      replace each vector by the mean of the photo's and its mirror image's: needs a second
              export of the same library with every image flipped left-right (e.g. `vips flip` into
              a parallel tree, `lookalike index` it, `lookalike export`), matched by relative path.

  python3 scripts/explore_descriptors.py views out/caltech-export --cache /tmp/views-caltech
  python3 scripts/explore_descriptors.py golden Tests/EngineTests/Fixtures/cat.jpg \
      Tests/EngineTests/Fixtures/golden/cat-whole-rmac.f32
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
PEER = "/work/shared/reference/peer.py"


def head_map_session():
    """peer.py's ONNX graph with the head's map ([N,1280,h,w], after ReLU6) as an extra output."""
    import onnx
    import onnxruntime as ort
    import subprocess
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, PEER, "export-onnx", f"{d}/lite0.onnx"], check=True, stdout=subprocess.DEVNULL)
        m = onnx.load(f"{d}/lite0.onnx")
    m.graph.output.append(onnx.helper.make_tensor_value_info("head.relu6", onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(["head.relu6"], {"input": x})[0][0]


def view(path, whole):
    """The reference's preprocessing (Pillow bilinear, reducing_gap None), or the whole image stretched."""
    from PIL import Image, ImageOps
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if whole:
        r = im.resize((224, 224), Image.BILINEAR, reducing_gap=None)
    else:
        w, h = im.size
        nw, nh = (256, int(h * 256 / w + 0.5)) if w < h else (int(w * 256 / h + 0.5), 256)
        r = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
        left, top = (nw - 224) // 2, (nh - 224) // 2
        r = r.crop((left, top, left + 224, top + 224))
    return ((np.asarray(r, dtype=np.float32) - 127) / 128)[None]


def unit(v):
    return v / max(np.linalg.norm(v), 1e-12)


def rmac_regions(side=7):
    """Descriptor.regions(side:) of the Swift engine: the whole map, then l x l grids at l = 2, 3."""
    out = [(0, 0, side)]
    for level in (2, 3):
        size = 2 * side // (level + 1)
        step = max(1, (side - size) // (level - 1))
        out += [(t, l, size) for t in range(0, side - size + 1, step) for l in range(0, side - size + 1, step)]
    return out


def poolings(F):
    """F: [1280, h, w] -> {name: 1280-d}."""
    return {"avg": F.mean((1, 2)), "gem3": np.cbrt((np.maximum(F, 1e-6) ** 3).mean((1, 2))), "max": F.max((1, 2)),
            "rmac": sum(unit(F[:, t:t + s, l:l + s].max((1, 2))) for t, l, s in rmac_regions(F.shape[1]))}


def whole_rmac(run, path):
    p = poolings(run(view(path, whole=True)))
    return unit(unit(p["avg"]) + unit(p["rmac"]))


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


def views(args):
    paths = [p for p in open(f"{args.export}/paths.txt").read().split("\n") if p]
    cache = args.cache or tempfile.mkdtemp()
    os.makedirs(cache, exist_ok=True)
    names = [f"{v}-{p}" for v in ("crop", "whole") for p in ("avg", "gem3", "max", "rmac")]
    if not all(os.path.exists(f"{cache}/{n}.npy") for n in names):
        run = head_map_session()
        out = {n: [] for n in names}
        for i, path in enumerate(paths):
            for v in ("crop", "whole"):
                for p, vec in poolings(run(view(path, whole=v == "whole"))).items():
                    out[f"{v}-{p}"].append(vec)
            if i % 1000 == 0:
                print(f"views: {i}/{len(paths)}", file=sys.stderr, flush=True)
        for n, vs in out.items():
            np.save(f"{cache}/{n}.npy", np.array(vs, dtype=np.float32))
    global METHODS
    a = f"a{args.alpha:g}" if args.alpha != 3 else ""
    METHODS = ["plain", f"dba15{a}+qe10{a}+diff30g10"]

    def load(n):
        v = np.load(f"{cache}/{n}.npy")
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    for n in names + args.combos.split(","):
        report(n, sum(load(part) for part in n.split("+")), args.export)


def relative(paths_file, n):
    paths = open(paths_file).read().split("\n")[:n]
    root = os.path.commonpath(paths)
    return [os.path.relpath(p, root) for p in paths]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["views", "golden", "posteriors", "mirror"])
    ap.add_argument("export", help="an export (views, posteriors, mirror) or an image (golden)")
    ap.add_argument("flipped", nargs="?", help="mirror: the flipped export; golden: the .f32 to write")
    ap.add_argument("--cache", help="views: keep the pooled vectors here (NAME.npy) and reuse them")
    ap.add_argument("--combos", default="whole-avg+whole-rmac,crop-avg+whole-avg,crop-rmac+whole-avg,whole-gem3+whole-avg")
    ap.add_argument("--alpha", type=float, default=3, help="views: alpha of the default re-ranking's DBA and QE")
    ap.add_argument("--scale", type=float, default=20, help="norm given to the unit vectors before the classifier")
    ap.add_argument("--weight", type=float, default=0.4)
    args = ap.parse_args()
    if args.what == "golden":
        whole_rmac(head_map_session(), args.export).astype("<f4").tofile(args.flipped)
        return
    if args.what == "views":
        return views(args)
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
