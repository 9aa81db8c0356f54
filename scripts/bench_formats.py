#!/usr/bin/env python3
"""Indexing speed of camera-size HEIC photos against the same photos as JPEG, in the same run.

Makes out/bench_formats/ from Caltech-101 photos (../shared/datasets, or --source DIR) upscaled to
about 12 megapixels at 4:3 (the centre of each), the size and shape of a phone photo, in three folders of the same pictures:
  jpeg/        JPEG quality 90
  heic_phone/  HEIC as an iPhone writes it: the photo plus a 320-px thumbnail (320x240 for 4:3)
               downscaled with a proper filter (Lanczos) and stored with libheif's
               heif_context_assign_thumbnail (scripts/heic_with_thumbnail.c, built here with cc)
  heic/        HEIC as libheif writes it (pillow-heif): 512x512 grid tiles and a 320-px thumbnail
               that libheif scales nearest-neighbour (aliased)
then times `lookalike index` (release build, fresh database each time, all cores) on each folder,
and on both HEIC folders again with LOOKALIKE_HEIF_THUMBNAILS=0 (the full decode), --repeat times
in turn, and prints the median images/s and the ratio to JPEG. It also exports the embeddings and
prints the cosine between the thumbnail and the full decode of every photo (the thumbnail is only
worth using if they agree: >= 0.98) and between the HEIC and the JPEG.

Needs: pip install pillow pillow-heif numpy; swift build -c release --product lookalike; cc and
       libheif-dev (make setup installs it).
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
THUMBNAIL = 320  # an iPhone's: 320x240 for a 4:3 photo
SUBFOLDERS = ("jpeg", "heic_phone", "heic")


def pick_sources(folder, count):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if f.lower().endswith((".jpg", ".jpeg", ".png")) and "BACKGROUND" not in d)
    if not files:
        raise SystemExit(f"bench_formats: no photos under {folder} (use --source DIR)")
    step = max(1, len(files) // count)
    return files[::step][:count]


def phone_shape(im):
    """The centre of the photo at 4:3 (3:4 when taller than wide): the shape a phone camera writes
    by default, whose 320-px thumbnail is 320x240."""
    w, h = im.size
    tw, th = (w, round(w * 3 / 4)) if w >= h else (round(h * 3 / 4), h)
    if th > h:
        tw, th = round(h * 4 / 3), h
    elif tw > w:
        tw, th = w, round(w * 4 / 3)
    left, top = (w - tw) // 2, (h - th) // 2
    return im.crop((left, top, left + tw, top + th))


def thumbnail_writer():
    """Builds scripts/heic_with_thumbnail.c against the system libheif (once)."""
    exe = os.path.join(OUT, "heic_with_thumbnail")
    source = os.path.join(ROOT, "scripts", "heic_with_thumbnail.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(source):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libheif"], check=True,
                               capture_output=True, text=True).stdout.split()
        subprocess.run(["cc", "-O2", source, "-o", exe, *flags], check=True)
    return exe


def generate(sources, quality):
    pillow_heif.register_heif_opener()
    for sub in SUBFOLDERS:
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    writer = thumbnail_writer()
    started = time.time()
    for i, src in enumerate(sources):
        name = f"{i:03d}"
        im = phone_shape(Image.open(src).convert("RGB"))
        scale = math.sqrt(MEGAPIXELS * 1e6 / (im.width * im.height))
        big = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        big.save(os.path.join(OUT, "jpeg", name + ".jpg"), quality=90)
        big.save(os.path.join(OUT, "heic", name + ".heic"), format="HEIF", quality=quality,
                 tile_size=512, thumbnails=[THUMBNAIL], enc_params={"preset": "fast"})
        f = THUMBNAIL / max(big.size)
        thumb = big.resize((round(big.width * f), round(big.height * f)), Image.Resampling.LANCZOS)
        raw_big, raw_thumb = os.path.join(OUT, "big.rgb"), os.path.join(OUT, "thumb.rgb")
        with open(raw_big, "wb") as out:
            out.write(big.tobytes())
        with open(raw_thumb, "wb") as out:
            out.write(thumb.tobytes())
        subprocess.run([writer, raw_big, str(big.width), str(big.height), raw_thumb, str(thumb.width),
                        str(thumb.height), str(quality), str(quality),
                        os.path.join(OUT, "heic_phone", name + ".heic")], check=True)
        os.remove(raw_big)
        os.remove(raw_thumb)
        print(f"  generated {i + 1}/{len(sources)} ({big.width}x{big.height}, thumbnail "
              f"{thumb.width}x{thumb.height}) {time.time() - started:.0f} s", file=sys.stderr, flush=True)


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

    have = len(os.listdir(os.path.join(OUT, "heic"))) if os.path.isdir(os.path.join(OUT, "heic")) else 0
    if not (a.keep and have == a.count):
        generate(pick_sources(a.source, a.count), a.quality)
    sizes = {sub: sum(os.path.getsize(os.path.join(OUT, sub, f)) for f in os.listdir(os.path.join(OUT, sub))) / a.count / 1e6
             for sub in SUBFOLDERS}
    with Image.open(os.path.join(OUT, "jpeg", "000.jpg")) as im:
        size = f"{im.width}x{im.height}"

    full_decode = {"LOOKALIKE_HEIF_THUMBNAILS": "0"}
    runs = [("JPEG q90", "jpeg", None),
            ("HEIC, filtered 320-px thumbnail (phone)", "heic_phone", None),
            ("HEIC, same files, LOOKALIKE_HEIF_THUMBNAILS=0", "heic_phone", full_decode),
            ("HEIC, nearest-neighbour 320-px thumbnail (libheif)", "heic", None),
            ("HEIC, same files, LOOKALIKE_HEIF_THUMBNAILS=0", "heic", full_decode)]
    dbs = os.path.join(OUT, "db")
    os.makedirs(dbs, exist_ok=True)
    rates = {k: [] for k in range(len(runs))}
    for r in range(a.repeat):
        for k, (label, sub, env) in enumerate(runs):
            rate, _ = index(os.path.join(OUT, sub), os.path.join(dbs, f"{k}.db"), env)
            rates[k].append(rate)
            print(f"  round {r + 1}: {label} ({sub}): {rate:.1f} img/s", file=sys.stderr, flush=True)

    vectors = [embeddings(os.path.join(dbs, f"{k}.db"), os.path.join(dbs, f"e{k}")) for k in range(len(runs))]
    jpeg = vectors[0]

    def cosines(a_, b_):
        return [float(a_[k] @ b_[k]) for k in sorted(b_)]

    phone_vs_full = cosines(vectors[1], vectors[2])
    nearest_vs_full = cosines(vectors[3], vectors[4])
    heic_vs_jpeg = cosines(vectors[2], jpeg)

    base = statistics.median(rates[0])
    print(f"\n{a.count} photos, {size} (~{MEGAPIXELS:.0f} MP), `lookalike index` (release), "
          f"median of {a.repeat} rounds, {os.cpu_count()} cores")
    print(f"  {'folder':<52} {'MB/file':>8} {'img/s':>8} {'vs JPEG':>8}")
    for k, (label, sub, _) in enumerate(runs):
        m = statistics.median(rates[k])
        print(f"  {label:<52} {sizes[sub]:>8.2f} {m:>8.1f} {m / base:>7.2f}x")

    def summary(name, values):
        print(f"  cosine, {name}: min {min(values):.4f}, mean {statistics.mean(values):.4f} "
              f"({sum(c >= 0.98 for c in values)}/{len(values)} >= 0.98)")

    summary("filtered 320-px thumbnail vs full decode", phone_vs_full)
    summary("nearest-neighbour 320-px thumbnail vs full decode", nearest_vs_full)
    summary("HEIC (full decode) vs JPEG", heic_vs_jpeg)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"count": a.count, "size": size, "runs": [label for label, _, _ in runs],
                   "rates": [rates[k] for k in range(len(runs))], "mb_per_file": sizes,
                   "phone_thumb_vs_full": phone_vs_full, "nearest_thumb_vs_full": nearest_vs_full,
                   "heic_vs_jpeg": heic_vs_jpeg}, f, indent=1)

if __name__ == "__main__":
    main()
