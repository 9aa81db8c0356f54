#!/usr/bin/env python3
"""make bench: Lookalike's speed side by side with the reference peer, measured in the same run.

1. Engine: network-only images/s and decode+embed end-to-end images/s over the same image files
   (default ../shared/datasets/caltech101 when present, else samples/), same thread count, vs
   `peer.py embed` (ONNX Runtime + Pillow): its "inference only" and "end-to-end" figures.
2. Exact search: single-query top-10 over N synthetic 1280-d vectors (default 1M) vs `peer.py
   search` (numpy/BLAS), plus Float16 storage: memory and recall@10 against Float32.

Prints each figure with the peer's and the ratio (>1 means Lookalike is faster). The peer needs
the Python packages in ../shared/reference/requirements.txt; without it only our figures print.
Options: --images DIR, --limit N (first N files, sorted), --threads T, --n N, --queries Q,
--skip-engine, --skip-search.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "lookalike")
BENCH = os.path.join(ROOT, ".build", "release", "lookalike-bench")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
PEER = os.path.join(SHARED, "reference", "peer.py")
EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}  # what the peer embeds


def run(cmd, env=None):
    print("  $", " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"bench: command failed ({p.returncode}): {' '.join(cmd)}")
    return p.stdout + p.stderr


def peer_available():
    if not os.path.exists(PEER):
        return False
    return subprocess.run([sys.executable, "-c", "import onnxruntime, PIL, onnx"], capture_output=True).returncode == 0


def row(name, ours, peer, unit, higher_is_better=True):
    if peer is None:
        print(f"  {name:<44} {ours:>10.2f} {unit:<9} {'-':>10}            -")
        return
    ratio = ours / peer if higher_is_better else peer / ours
    print(f"  {name:<44} {ours:>10.2f} {unit:<9} {peer:>10.2f} {unit:<9} {ratio:>6.2f}x")


def bench_engine(a, have_peer):
    folder = a.images or (os.path.join(SHARED, "datasets", "caltech101", "101_ObjectCategories")
                          if os.path.isdir(os.path.join(SHARED, "datasets", "caltech101")) else os.path.join(ROOT, "samples"))
    rels = sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                  for d, _, files in os.walk(folder) for f in files if os.path.splitext(f)[1].lower() in EXTS)
    if a.limit:
        rels = rels[:a.limit]
    tmp = tempfile.mkdtemp(prefix="lookalike-bench-")
    rel_list, abs_list = os.path.join(tmp, "rel.txt"), os.path.join(tmp, "abs.txt")
    with open(rel_list, "w") as f:
        f.write("\n".join(rels) + "\n")
    with open(abs_list, "w") as f:
        f.write("\n".join(os.path.join(folder, r) for r in rels) + "\n")
    print(f"engine: {len(rels)} images from {folder}, {a.threads} threads", flush=True)
    ours = json.loads(run([BENCH, "engine", "--list", abs_list, "--threads", str(a.threads)]).strip().splitlines()[-1])
    peer_net = peer_e2e = None
    if have_peer:
        out = run([sys.executable, PEER, "embed", folder, "--list", rel_list, "--out", os.path.join(tmp, "peer.npy"),
                   "--threads", str(a.threads), "--batch", "16"])
        m = re.search(r"([\d.]+) img/s end-to-end \(decode\+infer\), ([\d.]+) img/s inference only", out)
        if m:
            peer_e2e, peer_net = float(m.group(1)), float(m.group(2))
    print(f"  {'':<44} {'lookalike':>20} {'peer (ONNX Runtime)':>20} {'ratio':>7}")
    row("network only (img/s)", ours["network_img_s"], peer_net, "img/s")
    row("decode + embed end to end (img/s)", ours["e2e_img_s"], peer_e2e, "img/s")
    print(f"  network arrangement: {ours['network_arrangement']}; alternatives: "
          + ", ".join(f"{k}: {v:.1f}" for k, v in ours["network_alternatives"].items()))
    print(f"  decode + resize + crop alone: {ours['decode_ms']:.2f} ms/image (one thread)")
    print(f"  bars: network >= 1.0x, end to end >= 1.5x")


def bench_search(a, have_peer):
    print(f"search: exact top-10, {a.n} x 1280 synthetic unit vectors, {a.queries} single queries", flush=True)
    ours = json.loads(run([BENCH, "search", "--n", str(a.n), "--queries", str(a.queries)]).strip().splitlines()[-1])
    peer_ms = None
    if have_peer:
        out = run([sys.executable, PEER, "bench-search", "--n", str(a.n), "--queries", str(a.queries)])
        m = re.search(r"numpy single query ([\d.]+) ms/query", out)
        if m:
            peer_ms = float(m.group(1))
    print(f"  {'':<44} {'lookalike':>20} {'peer (numpy/BLAS)':>20} {'ratio':>7}")
    row("single query, float32 (ms, median)", ours["f32_ms_median"], peer_ms, "ms", higher_is_better=False)
    row("single query, float16 (ms, median)", ours["f16_ms_median"], peer_ms, "ms", higher_is_better=False)
    print(f"  memory: float32 {ours['f32_mib']:.0f} MiB, float16 {ours['f16_mib']:.0f} MiB; "
          f"float16 recall@10 vs float32: {ours['f16_recall_at_k']:.4f}")
    print(f"  bar: float32 within 1.2x of numpy (ratio >= 0.83); float16 recall@10 >= 0.999")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--skip-engine", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    a = p.parse_args()
    if not os.path.exists(BENCH):
        raise SystemExit("bench: build first (make release-bench)")
    have_peer = peer_available()
    if not have_peer:
        print("bench: reference peer unavailable (../shared/reference and its requirements); our figures only")
    if not a.skip_engine:
        bench_engine(a, have_peer)
    if not a.skip_search:
        bench_search(a, have_peer)


if __name__ == "__main__":
    main()
