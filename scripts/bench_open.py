#!/usr/bin/env python3
"""Opening a large library: time and peak memory of a one-shot `lookalike search --id` on a
synthetic catalogue of N random unit vectors (default 1M x 1280), before and after library
snapshots.

  python3 scripts/bench_open.py [--n 1000000] [--old-binary PATH] [--binary .build/release/lookalike]

Builds out/open-bench/v1.db in the v1 schema (the committed v1 fixture's schema and model rows,
then N images/files/embeddings), then measures:
  - before: --old-binary (a build of the v1 code, e.g. commit 3200dd2) searching v1.db, when given;
  - after, no snapshot: the current binary streaming the vectors from the catalogue;
  - after, snapshot: the current binary mapping the snapshot `lookalike index` writes.
Wall seconds and max RSS come from /usr/bin/time. Needs ~25 GB of free disk at 1M.
"""
import argparse, json, os, shutil, sqlite3, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "Tests/LibraryTests/Fixtures/v1-library.db")


def build_v1(path, n, dim=1280, seed=0):
    if os.path.exists(path):
        con = sqlite3.connect(path)
        have = con.execute("select count(*) from embedding").fetchone()[0]
        con.close()
        if have == n:
            return
        os.remove(path)
    shutil.copy(FIXTURE, path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    for table in ("embedding", "file", "image", "indexRun"):
        con.execute(f"delete from {table}")
    rng = np.random.default_rng(seed)
    chunk = 10000
    started = time.time()
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        v = rng.standard_normal((rows, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ids = range(start + 1, start + rows + 1)
        con.executemany("insert into image (id, contentHash, byteSize, width, height, tags, createdAt) values (?, ?, 1000, 640, 480, '', '2026-01-01 00:00:00.000')",
                        ((i, f"{i:064x}") for i in ids))
        con.executemany("insert into file (id, path, imageId, label, fileSize, mtime, indexedAt) values (?, ?, ?, ?, 1000, 0, '2026-01-01 00:00:00.000')",
                        ((i, f"/synthetic/c{i % 100}/{i}.jpg", i, f"c{i % 100}") for i in ids))
        con.executemany("insert into embedding (imageId, model, vector, norm) values (?, 'efficientnet-lite0', ?, 1.0)",
                        ((i, v[k].tobytes()) for k, i in enumerate(ids)))
        con.commit()
        print(f"\rbuilding v1 catalogue: {start + rows}/{n} ({time.time() - started:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def timed(cmd):
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    wall, rss_kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kb) / 1024, out.stdout


def search(binary, db):
    wall, rss, stdout = timed([binary, "search", "--id", "1", "-k", "5", "--db", db, "--json"])
    load_ms = json.loads(stdout).get("load_ms")
    return {"wall_s": wall, "max_rss_mib": round(rss), "load_ms": round(load_ms) if load_ms else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "out/open-bench"))
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/lookalike"))
    ap.add_argument("--old-binary")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    v1 = os.path.join(args.out, "v1.db")
    build_v1(v1, args.n)
    report = {"n": args.n, "binary": args.binary}
    if args.old_binary:
        before = os.path.join(args.out, "before.db")
        shutil.copy(v1, before)
        report["before (v1 code)"] = search(args.old_binary, before)
        os.remove(before)
    after = os.path.join(args.out, "after.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(after + suffix):
            os.remove(after + suffix)
    shutil.rmtree(after + ".indexes", ignore_errors=True)
    shutil.copy(v1, after)
    wall, rss, _ = timed([args.binary, "info", "--db", after])
    report["v1 -> v2 migration (once)"] = {"wall_s": wall, "max_rss_mib": round(rss)}
    report["after, no snapshot (streamed from the catalogue)"] = search(args.binary, after)
    empty = tempfile.mkdtemp()
    wall, rss, _ = timed([args.binary, "index", empty, "--db", after])
    report["snapshot written by index (once)"] = {"wall_s": wall, "max_rss_mib": round(rss)}
    search(args.binary, after)  # page cache warm, as for the other runs
    report["after, snapshot"] = search(args.binary, after)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
