#!/usr/bin/env python3
"""How far the library's default answers depend on the candidate method.

Searches a seeded sample of library images (`search --batch` with their paths: library queries,
each leaving itself out) through `--method exact` and each other method, with the library's
default re-ranking (or --rerank), and prints the share of each method's top k that exact's top k
holds, as issue 25's bar asks (>= 95 % for hnsw:32 and exact:f16 on 500 Caltech-101 queries).

  python3 scripts/method_agreement.py --db out/caltech.db --queries 500
"""
import argparse, json, os, random, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/lookalike"))
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rerank", default="default")
    ap.add_argument("--methods", default="hnsw:32,exact:f16")
    a = ap.parse_args()
    with sqlite3.connect(f"file:{a.db}?mode=ro", uri=True) as db:
        paths = sorted(r[0] for r in db.execute("SELECT path FROM file"))
    sample = random.Random(a.seed).sample(paths, min(a.queries, len(paths)))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(sample) + "\n")
        listing = f.name

    def answers(method):
        started = time.time()
        out = subprocess.run([a.bin, "search", "--batch", listing, "--db", a.db, "-k", str(a.k), "--method", method,
                              "--rerank", a.rerank], check=True, capture_output=True, text=True).stdout
        lines = [json.loads(l) for l in out.splitlines() if l.strip()]
        failed = [l for l in lines if l.get("error")]
        if failed:
            sys.exit(f"{method}: {len(failed)} queries failed, first: {failed[0]['error']}")
        return {l["query"]: [r["id"] for r in l["results"]] for l in lines}, time.time() - started

    exact, seconds = answers("exact")
    print(f"{len(exact)} library queries from {a.db}, top {a.k}, re-ranking {a.rerank}")
    print(f"{'method':<12} {'shared with exact':>18} {'identical lists':>16} {'seconds':>8}")
    print(f"{'exact':<12} {1.0:>18.3f} {1.0:>16.3f} {seconds:>8.1f}")
    for method in a.methods.split(","):
        got, seconds = answers(method)
        shared = sum(len(set(got[q]) & set(exact[q])) for q in exact) / sum(len(exact[q]) for q in exact)
        same = sum(got[q] == exact[q] for q in exact) / len(exact)
        print(f"{method:<12} {shared:>18.3f} {same:>16.3f} {seconds:>8.1f}")
    os.unlink(listing)


if __name__ == "__main__":
    main()
