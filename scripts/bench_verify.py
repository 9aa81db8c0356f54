#!/usr/bin/env python3
"""Latency of the default search of an edited copy (verified per query), served and on the command line.

Needs a library indexed with `lookalike index` whose local features are made (`lookalike info`
says `visual-words.lkix ... current`; `lookalike prepare verify` waits for them). Makes edited
copies of a seeded sample of the library's photos with libvips' command line (50 % centre crop,
rotation by 15 degrees, a quarter of the size, JPEG quality 10), then:

1. `lookalike serve`: the first upload after the server is up (it loads the network, the
   snapshot and the local features), then every copy once, one client (warm: the server is up,
   each copy is a new query); p50 / p90 / max milliseconds and how often the original came first.
2. `lookalike search COPY` from a cold process, a few times (what one command-line search costs).

Usage: scripts/bench_verify.py [--db out/caltech.db] [--dataset DIR] [--sample 40] [--seed 0]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

import bench_serve  # scripts/ is the script's own folder, first on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "lookalike")
OUT = os.path.join(ROOT, "out", "bench-verify")


def start_server(db):
    # The served-load benchmark's start-up, with time to load the local features of a big library.
    return bench_serve.start_server(db, log_dir=OUT, wait_s=60)


def upload(base, path):
    with open(path, "rb") as f:
        body = f.read()
    request = urllib.request.Request(base + "/api/search?k=10", data=body, headers={"Content-Type": "image/jpeg"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as r:
        answer = json.load(r)
    return (time.perf_counter() - started) * 1000, answer


def edit(source, dest, kind):
    if kind == "crop":
        w, h = [int(x) for x in subprocess.check_output(["vipsheader", "-f", "width", source]).split()] + \
               [int(x) for x in subprocess.check_output(["vipsheader", "-f", "height", source]).split()]
        subprocess.check_call(["vips", "extract_area", source, dest, str(w // 4), str(h // 4), str(w // 2), str(h // 2)])
        return
    if kind == "rotate":
        subprocess.check_call(["vips", "similarity", source, dest, "--angle", "15"])
        return
    if kind == "scale":
        subprocess.check_call(["vips", "resize", source, dest, "0.25"])
        return
    subprocess.check_call(["vips", "copy", source, dest + "[Q=10]"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=os.path.join(ROOT, "out", "caltech.db"))
    ap.add_argument("--dataset", default=os.path.join(ROOT, "..", "shared", "datasets", "caltech101", "101_ObjectCategories"))
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold", type=int, default=5)
    a = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    photos = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.dataset) for f in fs if f.lower().endswith(".jpg"))
    random.Random(a.seed).shuffle(photos)
    copies = []
    for i, photo in enumerate(photos[:a.sample]):
        for kind in ("crop", "rotate", "scale", "q10"):
            dest = os.path.join(OUT, f"{i:03d}-{kind}.jpg")
            edit(photo, dest, kind)
            copies.append((photo, kind, dest))

    proc, base = start_server(a.db)
    try:
        first_ms, _ = upload(base, copies[0][2])
        times, found, verified = [], {}, 0
        for photo, kind, path in copies[1:]:
            ms, answer = upload(base, path)
            times.append(ms)
            top = answer["results"][0] if answer["results"] else {}
            # The server shows paths under the library's folders (their last components).
            shown = top.get("path", "")
            hit = bool(shown) and os.path.realpath(photo).endswith("/" + shown.lstrip("/"))
            found.setdefault(kind, []).append(hit)
            verified += "verify:" in answer.get("reranking", "")
    finally:
        bench_serve.stop_server(proc)
    times.sort()
    p50 = statistics.median(times)
    p90 = times[int(0.9 * (len(times) - 1))]
    print(f"served uploads of edited copies ({len(times)} after the first, one client): "
          f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, max {times[-1]:.0f} ms; first after start {first_ms:.0f} ms; "
          f"verified {verified}/{len(times)}")
    print("original first: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in found.items()))

    cold = []
    for _, _, path in copies[1:1 + a.cold]:
        started = time.perf_counter()
        subprocess.run([BIN, "search", path, "--db", a.db, "--json"], capture_output=True, check=True)
        cold.append((time.perf_counter() - started) * 1000)
    print(f"command-line `lookalike search COPY` (a cold process each): median {statistics.median(cold):.0f} ms "
          f"over {len(cold)} ({', '.join(f'{c:.0f}' for c in cold)})")


if __name__ == "__main__":
    main()
