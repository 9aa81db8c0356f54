#!/usr/bin/env python3
"""Ingest speed into Milvus: vectors per second that `lookalike index --store` inserts (bar: 2,000/s).

    python3 scripts/bench_milvus.py [--copies 40] [--batch 256 512]

Starts a throw-away Milvus (scripts/milvus_server.py from .venv-milvus/, made by `make setup`),
builds a library of distinct images (each bundled sample photo with `copies` different trailers after
its end-of-image marker: 36 x copies images, embedded once into a local library), then pushes that
library into a fresh collection per batch size and reports the insert rate `index --store` measures
(the sending loop: lookups by hash and inserts, two requests in flight; embedding is not counted)
and the whole push time (lookups by hash, inserts,
waiting until Milvus shows them, duplicate check). Uses .build/release/lookalike when built, else
the debug build (said in the output).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from milvus_server import throwaway  # scripts/ is on the path when a script runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--binary", help="the lookalike binary to measure (default: the release build, else the debug one)")
    args = parser.parse_args()
    binary = args.binary or next((os.path.join(ROOT, p) for p in (".build/release/lookalike", ".build/debug/lookalike")
                   if os.access(os.path.join(ROOT, p), os.X_OK)), None)
    python = os.path.join(ROOT, ".venv-milvus/bin/python")
    if not binary or not os.access(python, os.X_OK):
        print("bench_milvus: needs a built lookalike (swift build) and .venv-milvus (make setup)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-milvus-") as tmp, throwaway(f"{tmp}/milvus") as milvus:
        port = milvus["port"]
        samples = os.path.join(ROOT, "samples/library")
        count = 0
        for label in sorted(os.listdir(samples)):
            os.makedirs(f"{tmp}/lib/{label}")
            for name in sorted(os.listdir(f"{samples}/{label}")):
                data = open(f"{samples}/{label}/{name}", "rb").read()
                for k in range(args.copies):
                    with open(f"{tmp}/lib/{label}/{k}-{name}", "wb") as f:
                        f.write(data + f"copy {k}".encode())
                    count += 1
        t = time.time()
        subprocess.run([binary, "index", f"{tmp}/lib", "--db", f"{tmp}/lib.db"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"binary {os.path.relpath(binary, ROOT)}; {count} images embedded locally in {time.time() - t:.1f} s")
        for batch in args.batch:
            store = f"milvus://127.0.0.1:{port}/bench_{batch}"
            t = time.time()
            out = subprocess.run([binary, "index", f"{tmp}/lib", "--db", f"{tmp}/lib.db", "--store", store,
                                  "--store-batch", str(batch)], check=True, capture_output=True, text=True).stdout
            total = time.time() - t
            m = re.search(r"inserted (\d+),.*index (.*?), .*\(([\d.]+) vectors/s inserted\)", out)
            if not m:
                print(out)
                return 1
            rate = float(m.group(3))
            print(f"batch {batch}: inserted {m.group(1)} at {rate:.0f} vectors/s (lookups + inserts), "
                  f"whole command {total:.1f} s; index {m.group(2)}; bar 2000/s: {'met' if rate >= 2000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as error:  # the throw-away Milvus did not start (its helper said why)
        sys.exit(f"bench_milvus: {error}")
