#!/usr/bin/env python3
"""Indexing speed of camera-size HEIC photos against the same photos as JPEG, in the same run.

Makes out/bench_formats/ from Caltech-101 photos (../shared/datasets, or --source DIR) upscaled to
about 12 megapixels, the size of a phone photo, in three folders of the same pictures:
  jpeg/           JPEG quality 90
  heic/           HEIC as an iPhone writes it: 512x512 grid tiles, a 320-px thumbnail (320x240 for
                  4:3: below the 256-px short side preprocessing needs, so the full image is decoded)
  heic_thumb512/  the same with a 512-px thumbnail (512x384: decoded instead of the full image)
then times `lookalike index` (release build, fresh database each time, all cores) on each folder,
and on heic_thumb512/ again with LOOKALIKE_HEIF_THUMBNAILS=0 (the full decode), --repeat times
in turn, and prints the median images/s and the ratio to JPEG. It also exports the embeddings and
prints the cosine between the thumbnail and the full decode of every photo (the thumbnail is only
worth using if they agree: >= 0.98) and between the HEIC and the JPEG.

Needs: pip install pillow pillow-heif numpy; swift build -c release --product lookalike.
Run:   python3 scripts/bench_formats.py [--count 32] [--repeat 3] [--keep]   (--keep reuses the
       generated files; x265 takes a few seconds per 12 MP photo on 2 cores)
Caveat: upscaled photos are smoother than a camera's, so they compress better and HEVC decodes
them somewhat faster than real phone photos of the same size.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pillow_heif
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "lookalike")
OUT = os.path.join(ROOT, "out", "bench_formats")
DEFAULT_SOURCE = os.path.normpath(os.path.join(ROOT, "..", "shared", "datasets", "caltech101", "101_ObjectCategories"))
MEGAPIXELS = 12.0


def pick_sources(folder, count):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if f.lower().endswith((".jpg", ".jpeg", ".png")) and "BACKGROUND" not in d)
    if not files:
        raise SystemExit(f"bench_formats: no photos under {folder} (use --source DIR)")
    step = max(1, len(files) // count)
    return files[::step][:count]


def generate(sources, quality):
    pillow_heif.register_heif_opener()
    for sub in ("jpeg", "heic", "heic_thumb512"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    started = time.time()
    for i, src in enumerate(sources):
        name = f"{i:03d}"
        im = Image.open(src).convert("RGB")
        scale = math.sqrt(MEGAPIXELS * 1e6 / (im.width * im.height))
        big = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        big.save(os.path.join(OUT, "jpeg", name + ".jpg"), quality=90)
        for sub, thumb in (("heic", 320), ("heic_thumb512", 512)):
            big.save(os.path.join(OUT, sub, name + ".heic"), format="HEIF", quality=quality,
                     tile_size=512, thumbnails=[thumb], enc_params={"preset": "fast"})
        print(f"  generated {i + 1}/{len(sources)} ({big.width}x{big.height}) "
              f"{time.time() - started:.0f} s", file=sys.stderr, flush=True)


def index(folder, db, env_extra=None):
    if os.path.exists(db):
        os.remove(db)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run([BIN, "index", folder, "--db", db, "--json"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"bench_formats: index failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    summary = json.loads(p.stdout)
    if summary["failures"]:
        raise SystemExit(f"bench_formats: {len(summary['failures'])} files failed in {folder}: {summary['failures'][:3]}")
    return summary["embedded"] / summary["seconds"], summary


def embeddings(db, out):
    subprocess.run([BIN, "export", "--db", db, "--format", "npy", "--out", out], check=True, capture_output=True)
    vectors = np.load(os.path.join(out, "embeddings.npy")).astype(np.float64)
    paths = open(os.path.join(out, "paths.txt")).read().split("\n")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return {os.path.splitext(os.path.basename(p))[0]: v for p, v in zip(paths, vectors) if p}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="folder of photos to upscale")
    ap.add_argument("--count", type=int, default=32, help="photos (default 32)")
    ap.add_argument("--quality", type=int, default=80, help="HEIC quality (default 80)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds over all folders (default 3)")
    ap.add_argument("--keep", action="store_true", help="reuse out/bench_formats if it has --count photos")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit("bench_formats: build first: swift build -c release --product lookalike")

    have = len(os.listdir(os.path.join(OUT, "heic_thumb512"))) if os.path.isdir(os.path.join(OUT, "heic_thumb512")) else 0
    if not (a.keep and have == a.count):
        generate(pick_sources(a.source, a.count), a.quality)
    sizes = {sub: sum(os.path.getsize(os.path.join(OUT, sub, f)) for f in os.listdir(os.path.join(OUT, sub))) / a.count / 1e6
             for sub in ("jpeg", "heic", "heic_thumb512")}
    with Image.open(os.path.join(OUT, "jpeg", "000.jpg")) as im:
        size = f"{im.width}x{im.height}"

    runs = [("JPEG q90", "jpeg", None),
            ("HEIC, 320-px thumbnail (full decode)", "heic", None),
            ("HEIC, 512-px thumbnail (thumbnail decode)", "heic_thumb512", None),
            ("HEIC, 512-px thumbnail, LOOKALIKE_HEIF_THUMBNAILS=0", "heic_thumb512", {"LOOKALIKE_HEIF_THUMBNAILS": "0"})]
    dbs = os.path.join(OUT, "db")
    os.makedirs(dbs, exist_ok=True)
    rates = {label: [] for label, _, _ in runs}
    for r in range(a.repeat):
        for k, (label, sub, env) in enumerate(runs):
            rate, _ = index(os.path.join(OUT, sub), os.path.join(dbs, f"{k}.db"), env)
            rates[label].append(rate)
            print(f"  round {r + 1}: {label}: {rate:.1f} img/s", file=sys.stderr, flush=True)

    jpeg = embeddings(os.path.join(dbs, "0.db"), os.path.join(dbs, "e0"))
    heic_full = embeddings(os.path.join(dbs, "1.db"), os.path.join(dbs, "e1"))
    thumb = embeddings(os.path.join(dbs, "2.db"), os.path.join(dbs, "e2"))
    full = embeddings(os.path.join(dbs, "3.db"), os.path.join(dbs, "e3"))
    thumb_vs_full = [float(thumb[k] @ full[k]) for k in sorted(full)]
    heic_vs_jpeg = [float(heic_full[k] @ jpeg[k]) for k in sorted(jpeg)]

    base = statistics.median(rates["JPEG q90"])
    print(f"\n{a.count} photos, {size} (~{MEGAPIXELS:.0f} MP), `lookalike index` (release), "
          f"median of {a.repeat} rounds, {os.cpu_count()} cores")
    print(f"  {'folder':<55} {'MB/file':>8} {'img/s':>8} {'vs JPEG':>8}")
    for label, sub, _ in runs:
        m = statistics.median(rates[label])
        print(f"  {label:<55} {sizes[sub]:>8.2f} {m:>8.1f} {m / base:>7.2f}x")
    print(f"  cosine, 512-px thumbnail vs full decode: min {min(thumb_vs_full):.4f}, "
          f"mean {statistics.mean(thumb_vs_full):.4f} ({sum(c >= 0.98 for c in thumb_vs_full)}/{len(thumb_vs_full)} >= 0.98)")
    print(f"  cosine, HEIC (full decode) vs JPEG: min {min(heic_vs_jpeg):.4f}, mean {statistics.mean(heic_vs_jpeg):.4f}")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"count": a.count, "size": size, "rates": rates, "mb_per_file": sizes,
                   "thumb_vs_full": thumb_vs_full, "heic_vs_jpeg": heic_vs_jpeg}, f, indent=1)


if __name__ == "__main__":
    main()
