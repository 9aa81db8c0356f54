#!/usr/bin/env python3
"""Load figures for `lookalike serve` (run by `make bench`, after the release build).

Indexes Caltech-101 once into out/bench-serve/caltech101.db, starts the release server, and drives it
with wrk (Debian package; `make setup` installs it):
  1. in-library search: 64 connections for 30 s against /api/search?id=... (ids varied by a Lua
     script over every image in the library): requests/s, p50/p99, errors. With the default
     re-ranking twice: answered from the answer lists `index` makes (what a served click gets), and
     computed for every request (a server started with --no-answer-lists: the live path the lists
     stand in for); then with rerank=none;
  2. upload search of a 1 MP JPEG: one client (p50), then 16 concurrent clients (p50/p99);
  3. 64 concurrent uploads of a 5 MB JPEG against a fresh server: its peak RSS (VmHWM).
Prints a table with the bars and writes out/bench-serve/results.json. Test/bench helper only: the
product never needs Python. The JPEGs are made with libvips' CLI from a Caltech photo.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build/release/lookalike")
OUT = os.path.join(ROOT, "out/bench-serve")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db, extra=(), log_dir=OUT, wait_s=30):
    port = free_port()
    log = open(os.path.join(log_dir, "server.log"), "a")
    proc = subprocess.Popen([BIN, "serve", "--db", db, "--port", str(port), *extra], stdout=log, stderr=log, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(int(wait_s * 10)):
        try:
            urllib.request.urlopen(base + "/api/stats", timeout=1).read()
            return proc, base
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None:
                sys.exit(f"server exited early, see {log.name}")
            time.sleep(0.1)
    sys.exit("server did not start")


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(base, script, connections, seconds, threads=2):
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s",
           "-s", script, base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return {"requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": to_ms(latency["50"]), "p99_ms": to_ms(latency["99"]), "errors": errors, "raw": out}


def dimensions(path):
    out = subprocess.run(["vipsheader", path], capture_output=True, text=True, check=True).stdout
    w, h = re.search(r"(\d+)x(\d+)", out).groups()
    return int(w), int(h)


def make_jpeg(source, dest, pixels=None, target_bytes=None, quality=90):
    """A JPEG of `source` resized (aspect kept) to about `pixels` pixels, or to about `target_bytes`."""
    w, h = dimensions(source)
    scale = (pixels / (w * h)) ** 0.5 if pixels else 4.0
    for _ in range(6):
        subprocess.run(["vips", "resize", source, f"{dest}[Q={quality}]", f"{scale:.4f}"], check=True)
        if not target_bytes:
            return
        size = os.path.getsize(dest)
        if abs(size - target_bytes) < 0.08 * target_bytes:
            return
        scale *= (target_bytes / size) ** 0.5


def main():
    global BIN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(ROOT, "../shared/datasets/caltech101/101_ObjectCategories"))
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--db", help="an indexed library to serve instead of indexing --dataset into out/bench-serve")
    parser.add_argument("--binary", default=BIN, help="the lookalike binary (default: the release build)")
    parser.add_argument("--rerank", action="append",
                        help="re-ranking settings to measure in-library search with (repeatable; default: the library default, then none)")
    parser.add_argument("--search-only", action="store_true", help="measure in-library search only")
    args = parser.parse_args()
    BIN = args.binary
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make setup`")
    os.makedirs(OUT, exist_ok=True)
    open(os.path.join(OUT, "server.log"), "w").close()  # this run's servers append to it (a line per request)
    db = args.db or os.path.join(OUT, "caltech101.db")
    if not args.db:
        started = time.time()
        subprocess.run([BIN, "index", args.dataset, "--db", db], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"library: {db} (index/update {time.time() - started:.0f} s)")

    # Ids of every image, for the Lua script to vary the query.
    proc, base = start_server(db)
    ids, page = [], 1
    while True:
        answer = json.load(urllib.request.urlopen(f"{base}/api/images?per_page=500&page={page}"))
        ids += [item["id"] for item in answer["items"]]
        if page >= answer["pages"]:
            break
        page += 1
    def search_lua(rerank):
        script = os.path.join(OUT, f"search-{rerank or 'default'}.lua".replace(":", "_").replace("+", "_"))
        with open(script, "w") as f:
            f.write("local ids = {" + ",".join(map(str, ids)) + "}\n")
            f.write("math.randomseed(42)\n")
            extra = f"&rerank={rerank}" if rerank else ""
            f.write(f'request = function()\n  return wrk.format("GET", "/api/search?k=20{extra}&id=" .. ids[math.random(#ids)])\nend\n')
        return script

    def wait_for_lists(base):
        """Seconds until a default search of a library image is read from the answer lists (the
        server reads them off the request path), or None when it never is (no lists: an older
        `index` made the library)."""
        started = time.time()
        while time.time() - started < 30:
            answer = json.load(urllib.request.urlopen(f"{base}/api/search?k=20&id={ids[0]}"))
            if answer.get("precomputed"):
                return time.time() - started
            time.sleep(0.2)
        return None

    def measure(base, rerank, name):
        script = search_lua(rerank)
        wrk(base, script, 64, 3)  # warm-up
        figures = wrk(base, script, 64, args.seconds)
        results["search_by_rerank"][name] = figures
        print(f"in-library search, {name}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
              f"p99 {figures['p99_ms']:.1f} ms, errors {figures['errors']}", flush=True)

    results = {"images": len(ids), "search_by_rerank": {}}
    if args.rerank:
        for rerank in args.rerank:
            measure(base, rerank, f"rerank={rerank or 'default'}")
    else:
        waited = wait_for_lists(base)
        results["answer_lists"] = waited is not None
        print("answer lists: " + (f"read after {waited:.1f} s" if waited is not None
                                  else "none (run `lookalike index` on the library to make them)"), flush=True)
        measure(base, "", "default" + (" (answer lists)" if waited is not None else ""))
        stop_server(proc)
        proc, base = start_server(db, ["--no-answer-lists"])
        measure(base, "", "default, computed (--no-answer-lists)")
        measure(base, "none", "rerank=none")
    results["search_64"] = next(iter(results["search_by_rerank"].values()))
    if args.search_only:
        stop_server(proc)
        return

    photo = os.path.join(args.dataset, "airplanes/image_0001.jpg")
    one_mp = os.path.join(OUT, "query-1mp.jpg")
    make_jpeg(photo, one_mp, pixels=1_000_000)
    five_mb = os.path.join(OUT, "query-5mb.jpg")
    make_jpeg(photo, five_mb, target_bytes=5_000_000, quality=97)

    def upload_lua(path, name):
        script = os.path.join(OUT, name)
        with open(script, "w") as f:
            f.write(f'local f = io.open("{path}", "rb")\nlocal body = f:read("*all")\nf:close()\n')
            f.write('wrk.method = "POST"\nwrk.body = body\nwrk.headers["Content-Type"] = "image/jpeg"\nwrk.path = "/api/search?k=20"\n')
        return script

    upload_1mp = upload_lua(one_mp, "upload-1mp.lua")
    upload_5mb = upload_lua(five_mb, "upload-5mb.lua")
    dims = subprocess.run(["vipsheader", one_mp], capture_output=True, text=True).stdout.strip()
    print(f"queries: {dims}; 5 MB JPEG {os.path.getsize(five_mb) / 1e6:.1f} MB")

    wrk(base, upload_1mp, 1, 3)  # warm-up (loads the network)
    results["upload_1"] = wrk(base, upload_1mp, 1, 20)
    results["upload_16"] = wrk(base, upload_1mp, 16, 20)
    stop_server(proc)

    proc, base = start_server(db)
    before = peak_rss_mb(proc.pid)
    results["upload_5mb_64"] = wrk(base, upload_5mb, 64, 20)
    results["rss_idle_mb"] = before
    results["rss_peak_mb"] = peak_rss_mb(proc.pid)
    stop_server(proc)

    s, u1, u16, big = results["search_64"], results["upload_1"], results["upload_16"], results["upload_5mb_64"]
    rows = [
        (f"in-library search, 64 conn, {args.seconds} s, {setting}",
         f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}",
         "p99 <= 50 ms, 0 errors", r["p99_ms"] <= 50 and r["errors"] == 0)
        for setting, r in results["search_by_rerank"].items()
    ] + [
        ("upload search 1 MP JPEG, 1 client", f"p50 {u1['p50_ms']:.1f} ms, p99 {u1['p99_ms']:.1f} ms ({u1['rps']:.1f} req/s, errors {u1['errors']})",
         "p50 <= 40 ms", u1["p50_ms"] <= 40 and u1["errors"] == 0),
        ("upload search 1 MP JPEG, 16 clients", f"p50 {u16['p50_ms']:.0f} ms, p99 {u16['p99_ms']:.0f} ms ({u16['rps']:.1f} req/s, errors {u16['errors']})",
         "(reported)", u16["errors"] == 0),
        ("64 concurrent 5 MB uploads, 20 s", f"peak RSS {results['rss_peak_mb']:.0f} MB (idle {before:.0f} MB); {big['rps']:.1f} req/s, errors {big['errors']}",
         "peak RSS <= 1536 MB", results["rss_peak_mb"] <= 1536),
    ]
    print()
    print("| figure | measured | bar | met |")
    print("| --- | --- | --- | --- |")
    for name, measured, bar, met in rows:
        print(f"| {name} | {measured} | {bar} | {'yes' if met else '**short**'} |")
    for r in (u1, u16, big, *results["search_by_rerank"].values()):
        r.pop("raw", None)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
