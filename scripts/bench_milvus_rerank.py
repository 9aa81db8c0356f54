#!/usr/bin/env python3
"""What re-ranking costs over a Milvus store: `prepare-rerank` time and per-request latency of
`serve --store` (plain, query expansion, the library default) against the local `serve --db`.

    python3 scripts/bench_milvus_rerank.py [--dataset DIR] [--db LIB] [--queries 60] [--uploads 20]

Starts a throw-away Milvus (scripts/milvus_server.py from .venv-milvus/, made by `make setup`),
pushes the library (`index DIR --db LIB --store`: images already in LIB are not embedded again;
default: Caltech-101 from ../shared into out/caltech.db), runs `prepare-rerank` and reports its
phases, then serves the collection and the local library in turn and times, one client at a time,
`/api/search?id=...&k=20` for the same sampled library images and uploads of one bundled query
photo, with `rerank=none`, `qe:10` and the default. Uses .build/release/lookalike.
"""
import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from milvus_server import throwaway  # scripts/ is on the path when a script runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build/release/lookalike")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(arguments):
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", *arguments, "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base}/api/stats", timeout=2)
            return proc, base
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"serve {' '.join(arguments)} exited early")
            time.sleep(0.5)
    sys.exit("server did not start")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def timed(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/jpeg"} if data else {})
    started = time.perf_counter()
    answer = json.load(urllib.request.urlopen(request, timeout=60))
    return (time.perf_counter() - started) * 1000, answer


def listing(base):
    """name (label/file) -> id of every image a server lists."""
    ids, page = {}, 1
    while True:
        answer = json.load(urllib.request.urlopen(f"{base}/api/images?per_page=500&page={page}"))
        for item in answer["items"]:
            ids["/".join(item["path"].split("/")[-2:])] = item["id"]
        if page >= answer["pages"]:
            return ids
        page += 1


def measure(base, names, upload, rounds):
    """Per setting: p50 / p90 ms of library searches (the same images on either server) and uploads."""
    known = listing(base)
    ids = [known[name] for name in names if name in known]
    figures = {}
    for setting in ["none", "qe:10", "default"]:
        extra = "" if setting == "default" else f"&rerank={setting}"
        library = [timed(f"{base}/api/search?k=20&id={i}{extra}") for i in ids]
        uploads = [timed(f"{base}/api/search?k=20{extra}", upload) for _ in range(rounds)]
        figures[setting] = {
            "library_p50": percentile([t for t, _ in library], 0.5), "library_p90": percentile([t for t, _ in library], 0.9),
            "library_reranking": library[-1][1]["reranking"],
            "upload_p50": percentile([t for t, _ in uploads], 0.5), "upload_reranking": uploads[-1][1]["reranking"],
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(ROOT, "../shared/datasets/caltech101/101_ObjectCategories"))
    parser.add_argument("--db", default=os.path.join(ROOT, "out/caltech.db"))
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--uploads", type=int, default=20)
    args = parser.parse_args()
    python = os.path.join(ROOT, ".venv-milvus/bin/python")
    if not os.access(BIN, os.X_OK) or not os.access(python, os.X_OK):
        print("bench_milvus_rerank: needs the release build and .venv-milvus (make setup)", file=sys.stderr)
        return 1
    if not os.path.isdir(args.dataset):
        print(f"bench_milvus_rerank: skipped ({args.dataset} is missing)")
        return 0
    upload = open(os.path.join(ROOT, "samples/queries/pizza_0010.jpg"), "rb").read()
    with tempfile.TemporaryDirectory(prefix="bench-milvus-rerank-") as tmp, throwaway(f"{tmp}/milvus") as milvus:
        store = f"milvus://127.0.0.1:{milvus['port']}/rerank_bench"
        t = time.time()
        subprocess.run([BIN, "index", args.dataset, "--db", args.db, "--store", store], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        print(f"library {os.path.relpath(args.db, ROOT)} pushed to {store} in {time.time() - t:.1f} s")
        t = time.time()
        out = subprocess.run([BIN, "prepare-rerank", "--store", store, "--json"], check=True, capture_output=True,
                             text=True, cwd=ROOT).stdout
        prepared = json.loads(out)
        print(f"prepare-rerank: {prepared['reranking']} for {prepared['images']} images in {time.time() - t:.1f} s "
              f"(read {prepared['readSeconds']:.1f} s, neighbours {prepared['neighbourSeconds']:.1f} s, "
              f"write {prepared['writeSeconds']:.1f} s)")

        proc, base = serve(["--store", store])
        try:
            # Library images sampled from the collection's pages (named label/file on both servers).
            random.seed(3)
            paths = random.sample(sorted(listing(base)), args.queries)
            remote = measure(base, paths, upload, args.uploads)
        finally:
            proc.terminate()
            proc.wait()
        proc, base = serve(["--db", args.db])
        try:
            local = measure(base, paths, upload, args.uploads)
        finally:
            proc.terminate()
            proc.wait()
    print(f"one client, k 20, {len(paths)} library images, {args.uploads} uploads of a 300x200 JPEG (ms)")
    print("| re-ranking | store: library p50 / p90 | local: library p50 / p90 | store: upload p50 | local: upload p50 |")
    print("| --- | --- | --- | --- | --- |")
    for setting in ["none", "qe:10", "default"]:
        r, l = remote[setting], local[setting]
        name = setting if setting != "default" else f"default ({r['library_reranking']}; uploads {r['upload_reranking']})"
        print(f"| {name} | {r['library_p50']:.1f} / {r['library_p90']:.1f} | {l['library_p50']:.1f} / {l['library_p90']:.1f} "
              f"| {r['upload_p50']:.1f} | {l['upload_p50']:.1f} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as error:  # the throw-away Milvus did not start (its helper said why)
        sys.exit(f"bench_milvus_rerank: {error}")
