#!/usr/bin/env python3
"""Measures near-duplicate detection to choose `lookalike dedupe`'s default threshold.

Builds a set from real photos: for each of N originals, four transformed copies (JPEG re-encode at
quality 50, resize to 50 %, centre crop keeping 85 % of each side, brightness +25 %), plus M
unrelated photos (from the same dataset, many of the same classes: hard negatives). Indexes it with
`lookalike index`, then for a sweep of thresholds groups images whose cosine distance is under the
threshold (union-find, as the tool does) and reports pairwise precision and recall of the groups
(a pair is correct when both images come from the same original). Finally runs `lookalike dedupe
--json` at its default threshold and scores its groups the same way.

Usage: python3 scripts/dedupe_eval.py [--source DIR] [--originals 100] [--unrelated 400]
Needs Pillow and numpy (benchmark/evaluation only; the product does not use Python).
"""
import argparse
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageEnhance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "lookalike")


def transforms(img):
    w, h = img.size
    yield "reencode", img, {"quality": 50}
    yield "resize", img.resize((max(16, w // 2), max(16, h // 2)), Image.BILINEAR), {"quality": 90}
    cw, ch = int(w * 0.85), int(h * 0.85)
    yield "crop", img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)), {"quality": 90}
    yield "bright", ImageEnhance.Brightness(img).enhance(1.25), {"quality": 90}


def pairs_of(groups):
    out = set()
    for g in groups:
        out.update(itertools.combinations(sorted(g), 2))
    return out


def union_find_groups(n, pairs):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    groups = {}
    for a, b in pairs:
        groups.setdefault(find(a), set()).update((a, b))
    return list(groups.values())


def score(pred_pairs, true_pairs):
    tp = len(pred_pairs & true_pairs)
    p = tp / len(pred_pairs) if pred_pairs else 1.0
    r = tp / len(true_pairs) if true_pairs else 1.0
    return p, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=os.path.join(ROOT, "..", "shared", "datasets", "caltech101", "101_ObjectCategories"))
    ap.add_argument("--originals", type=int, default=100)
    ap.add_argument("--unrelated", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.source) for f in fs if f.lower().endswith(".jpg"))
    files = [f for f in files if "BACKGROUND_Google" not in f]
    rng = random.Random(a.seed)
    rng.shuffle(files)
    originals, unrelated = files[:a.originals], files[a.originals:a.originals + a.unrelated]
    work = tempfile.mkdtemp(prefix="lookalike-dedupe-")
    folder = os.path.join(work, "set")
    os.makedirs(folder)
    origin = {}  # path -> group id (original index) or None
    source = {}  # path -> the dataset photo it was made from
    for i, src in enumerate(originals):
        img = Image.open(src).convert("RGB")
        p = os.path.join(folder, f"o{i:04d}.jpg")
        img.save(p, quality=95)
        origin[p] = i
        source[p] = src
        for name, t, kw in transforms(img):
            q = os.path.join(folder, f"o{i:04d}_{name}.jpg")
            t.save(q, **kw)
            origin[q] = i
            source[q] = f"{src} ({name})"
    for j, src in enumerate(unrelated):
        p = os.path.join(folder, f"u{j:04d}.jpg")
        Image.open(src).convert("RGB").save(p, quality=95)
        origin[p] = None
        source[p] = src
    db = os.path.join(work, "set.db")
    subprocess.run([BIN, "index", folder, "--db", db], check=True, capture_output=True)
    out = os.path.join(work, "export")
    subprocess.run([BIN, "export", "--db", db, "--format", "npy", "--out", out], check=True, capture_output=True)
    X = np.load(os.path.join(out, "embeddings.npy"))
    paths = open(os.path.join(out, "paths.txt")).read().split()
    gid = [origin[os.path.realpath(p)] if os.path.realpath(p) in origin else origin.get(p) for p in paths]
    true_groups = {}
    for idx, g in enumerate(gid):
        if g is not None:
            true_groups.setdefault(g, set()).add(idx)
    true_pairs = pairs_of(true_groups.values())
    D = 1 - X @ X.T
    iu = np.triu_indices(len(X), 1)
    d = D[iu]
    print(f"set: {a.originals} originals x 5 versions + {a.unrelated} unrelated = {len(X)} images; {len(true_pairs)} true pairs")
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7}")
    for t in [0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.25, 0.30]:
        sel = d < t
        pred = pairs_of(union_find_groups(len(X), list(zip(iu[0][sel], iu[1][sel]))))
        p, r = score(pred, true_pairs)
        print(f"{t:>9.2f} {p:>9.3f} {r:>7.3f}")
    # The closest wrongly grouped pairs at the default, to see what they are.
    t = float(re.search(r"default ([0-9.]+)", subprocess.run([BIN, "dedupe", "--help"], capture_output=True, text=True).stdout).group(1))
    wrong = sorted((d[j], iu[0][j], iu[1][j]) for j in np.nonzero(d < t)[0] if (iu[0][j], iu[1][j]) not in true_pairs)
    print(f"pairs under the default {t} that are not copies of one photo: {len(wrong)}; closest:")
    for dist, x, y in wrong[:8]:
        sx, sy = (os.path.relpath(source.get(os.path.realpath(paths[i]), paths[i]), a.source) for i in (x, y))
        print(f"  {dist:.3f}  {sx}  {sy}")
    groups = json.loads(subprocess.run([BIN, "dedupe", "--db", db, "--json"], check=True, capture_output=True, text=True).stdout)
    index_of = {p: i for i, p in enumerate(paths)}
    pred = pairs_of([{index_of[p] for p in g["paths"] if p in index_of} for g in groups])
    p, r = score(pred, true_pairs)
    print(f"lookalike dedupe at its default threshold: {len(groups)} groups, pairwise precision {p:.3f}, recall {r:.3f}")
    # Which transformations are found: an (original, copy) pair counts when both are in one group.
    group_of = {}
    for gi, g in enumerate(groups):
        for q in g["paths"]:
            group_of[os.path.basename(q)] = gi
    for name in ["reencode", "resize", "crop", "bright"]:
        found = sum(1 for i in range(a.originals)
                    if f"o{i:04d}.jpg" in group_of and group_of.get(f"o{i:04d}_{name}.jpg") == group_of[f"o{i:04d}.jpg"])
        print(f"  {name:<9} copy grouped with its original: {found}/{a.originals}")


if __name__ == "__main__":
    main()
