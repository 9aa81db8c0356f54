#!/usr/bin/env python3
"""Search latency and recall@10 through Milvus at N vectors, against exact search on the same vectors.

    python3 scripts/bench_milvus_scale.py [--n 100000] [--queries 200] [--feats out/caltech-export/embeddings.npy]

Vectors as in the approximate-search benchmark: Caltech-101's embeddings (`lookalike export`) tiled
with N(0, 0.01) noise per dimension and renormalised; queries are other perturbed copies; ground
truth by exact inner product (numpy). Starts a throw-away Milvus (scripts/milvus_server.py from
.venv-milvus/), creates a collection through REST v1 (IP, AUTOINDEX) as `index --store` does,
inserts with two requests in flight (7-decimal JSON, as the product writes it), waits until a search
sees every row, then times single searches (top 10) and reports p50/p99, recall@10 and the RSS of
the Milvus server. Milvus builds its HNSW index segment by segment in the background, and a sealed
segment without its index yet is searched by brute force: with --settle S the searches are timed
again every 2 minutes for S seconds after the rows became visible (one line each), until p50 stops
improving. Query expansion is timed as the product runs it over a store (two searches, the first
returning its 10 neighbours' vectors). Run one system at a time (Milvus holds the vectors in memory).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

from milvus_server import throwaway  # scripts/ is on the path when a script runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def post(base, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(req, timeout=300))
    if answer.get("code", 200) != 200:
        raise SystemExit(f"{path}: {answer}")
    return answer


def perturbed(base, count, rng, noise):
    rows = base[rng.integers(0, len(base), size=count)] + rng.normal(0, noise, size=(count, base.shape[1])).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32)


def rss_mib(pid):
    total = 0
    for p in [pid] + [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--feats", default=os.path.join(ROOT, "out", "caltech-export", "embeddings.npy"))
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--settle", type=float, default=0, help="seconds to keep re-timing while Milvus builds its index")
    a = ap.parse_args()
    python = os.path.join(ROOT, ".venv-milvus/bin/python")
    if not os.path.exists(a.feats) or not os.access(python, os.X_OK):
        sys.exit("needs --feats (lookalike export --format npy) and .venv-milvus (make setup)")
    rng = np.random.default_rng(0)
    base = np.load(a.feats).astype(np.float32)
    vectors = perturbed(base, a.n, rng, a.noise)
    queries = perturbed(base, a.queries, rng, a.noise)
    t = time.time()
    scores = queries @ vectors.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    truth = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
    del scores
    exact_ms = (time.time() - t) * 1000 / a.queries
    with tempfile.TemporaryDirectory(prefix="bench-milvus-scale-") as tmp, throwaway(f"{tmp}/milvus") as milvus:
        base_url = f"http://127.0.0.1:{milvus['port']}/v1/vector"
        post(base_url, "/collections/create", {"collectionName": "scale", "dimension": vectors.shape[1], "metricType": "IP"})
        batches = [range(s, min(s + a.batch, a.n)) for s in range(0, a.n, a.batch)]
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not batches:
                        return
                    rows = batches.pop()
                # 7 decimals as the product writes them (rounded in float64, so each prints short).
                values = np.round(vectors[rows.start:rows.stop].astype(np.float64), 7).tolist()
                body = json.dumps({"collectionName": "scale",
                                   "data": [{"vector": v, "row": i} for v, i in zip(values, rows)]}).encode()
                post(base_url, "/insert", body)

        t = time.time()
        threads = [threading.Thread(target=worker) for _ in range(2)]
        [th.start() for th in threads]
        [th.join() for th in threads]
        ingest_s = time.time() - t
        # Until Milvus shows the inserts (its staleness bound): 200 sampled rows, then every
        # batch's last row, visible to a query.
        t = time.time()
        probe = sorted(set(rng.integers(0, a.n, size=200).tolist()) | {min(r.stop, a.n) - 1 for r in
                                                                            [range(s, min(s + a.batch, a.n)) for s in range(0, a.n, a.batch)]})
        while True:
            seen = set()
            for s0 in range(0, len(probe), 500):
                chunk = probe[s0:s0 + 500]
                hits = post(base_url, "/query", {"collectionName": "scale", "filter": f"row in {chunk}",
                                                 "outputFields": ["row"], "limit": len(chunk)})
                seen |= {h["row"] for h in hits.get("data", [])}
            if len(seen) == len(probe) or time.time() - t > 600:
                break
            time.sleep(2)
        visible_s = time.time() - t
        def measure():
            times, recalls = [], []
            for qi, q in enumerate(queries):
                body = {"collectionName": "scale", "vector": [float(x) for x in q], "limit": 10, "outputFields": ["row"]}
                t = time.perf_counter()
                hits = post(base_url, "/search", body)["data"]
                times.append((time.perf_counter() - t) * 1000)
                got = [h["row"] for h in hits]
                recalls.append(len(set(got) & set(truth[qi].tolist())) / 10)
            times = np.array(times)
            # Query expansion as `StoreLibrary` runs it: the top 10 with their vectors, then the
            # expanded query (weights cos^3) searched with the result vectors (raw scores).
            qe_times = []
            for q in queries[: max(1, a.queries // 2)]:
                t = time.perf_counter()
                first = post(base_url, "/search", {"collectionName": "scale", "vector": [float(x) for x in q], "limit": 10,
                                                   "outputFields": ["row", "vector"]})["data"]
                expanded = q.astype(np.float64).copy()
                for h in first:
                    expanded += max(0.0, h["distance"]) ** 3 * np.asarray(h["vector"], dtype=np.float64)
                expanded /= np.linalg.norm(expanded)
                post(base_url, "/search", {"collectionName": "scale", "vector": expanded.tolist(), "limit": 10,
                                           "outputFields": ["row", "vector"]})
                qe_times.append((time.perf_counter() - t) * 1000)
            return {"milvus_p50_ms": float(np.percentile(times, 50)), "milvus_p99_ms": float(np.percentile(times, 99)),
                    "milvus_recall_at_10": float(np.mean(recalls)),
                    "milvus_qe_p50_ms": float(np.percentile(qe_times, 50)), "milvus_qe_p99_ms": float(np.percentile(qe_times, 99)),
                    "milvus_rss_mib": rss_mib(milvus.get("pid", 0))}

        result = {"n": a.n, "queries": a.queries, "ingest_vectors_per_s": a.n / ingest_s, "visible_after_s": visible_s,
                  "numpy_exact_ms_per_query_batched": exact_ms, **measure()}
        settled_from = time.time()
        while time.time() - settled_from < a.settle:
            print(json.dumps({"after_visible_s": round(time.time() - settled_from), **result}), flush=True)
            time.sleep(120)
            again = measure()
            if again["milvus_p50_ms"] > 0.9 * result["milvus_p50_ms"] and time.time() - settled_from > 240:
                result.update(again)
                break
            result.update(again)
        print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as error:  # the throw-away Milvus did not start (its helper said why)
        sys.exit(f"bench_milvus_scale: {error}")
