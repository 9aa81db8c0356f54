#!/usr/bin/env python3
"""Test helper: runs a throw-away Milvus standalone server (PyPI `milvus==2.3.5`, installed by
`make setup` into .venv-milvus/) for the Milvus tests and the Milvus benchmarks
(scripts/bench_milvus*.py start it through `throwaway`).

    .venv-milvus/bin/python scripts/milvus_server.py --data DIR

Starts `milvus run standalone` with its data under DIR on free loopback ports (the gRPC/REST proxy
on a port the kernel picked; health and the internal services on the first free ports from their
defaults), waits until GET /healthz answers OK, then prints one line
    READY {"port": P, "health": H, "pid": N}
and keeps the server until its stdin closes or it gets SIGTERM/SIGINT, then stops it. Exits 1
with a reason on stderr when the server cannot start.
"""
import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway(data: str):
    """For the benchmarks, run by the system Python: this helper under .venv-milvus's Python with
    its data in `data`. Yields its READY facts ({"port", "health", "pid"}) and stops the server on
    leaving; raises RuntimeError when it did not start (the helper has said why on stderr)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen([os.path.join(root, ".venv-milvus/bin/python"), os.path.abspath(__file__), "--data", data],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError("Milvus did not start")
        yield json.loads(line[6:])
    finally:
        server.stdin.close()
        server.wait(timeout=60)


def wait_healthy(server, timeout: float) -> None:
    """Polls /healthz; unlike the package's own wait, notices a server that exited."""
    deadline = time.monotonic() + timeout
    # Health first, then the REST API itself: after a restart /healthz can say OK before the
    # proxy port answers.
    urls = [(f"http://127.0.0.1:{server.webservice_port}/healthz", b"OK"),
            (f"http://127.0.0.1:{server.listen_port}/v1/vector/collections", b'"code":200')]
    for url, expected in urls:
        while True:
            code = server.server_proc.poll() if server.server_proc else -1
            if code is not None:
                raise RuntimeError(f"the server exited with status {code}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if expected in answer.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no good answer from {url} within {timeout:.0f} s")
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data folder (created; the caller removes it)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for health")
    parser.add_argument("--port", type=int, default=0, help="proxy (gRPC + REST) port; 0: a free one")
    args = parser.parse_args()
    try:
        from milvus import MilvusServer  # the PyPI package `milvus` (embedded standalone server)
    except ImportError as error:
        print(f"milvus_server: the PyPI package milvus==2.3.5 is not installed here ({error}); run `make setup`",
              file=sys.stderr)
        return 1
    # Given as a setting, the port is required (start fails if it is taken) rather than moved on.
    server = MilvusServer(proxy_port=args.port or free_port())
    server.set_base_dir(args.data)
    # The embedded etcd's peer port (2380) is not a setting of the package: without this a second
    # server on the machine (a developer's own, a parallel test run) fails to start. Its own config
    # file gives it free client and peer ports, and milvus.yaml points at it.
    os.makedirs(args.data, exist_ok=True)
    client_port, peer_port = free_port(), free_port()
    etcd_config = os.path.join(os.path.abspath(args.data), "embedEtcd.yaml")
    with open(etcd_config, "w", encoding="utf-8") as f:
        f.write(f"listen-client-urls: http://127.0.0.1:{client_port}\n"
                f"advertise-client-urls: http://127.0.0.1:{client_port}\n"
                f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
                f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
                f"initial-cluster: default=http://127.0.0.1:{peer_port}\n")
    server.config.set("etcd_port", client_port)
    original = server.config.update_extra_configs

    def with_etcd_config(content: str) -> str:
        content = original(content)
        return content.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_config}\n", 1)

    server.config.update_extra_configs = with_etcd_config
    try:
        server.wait_for_started = False
        server.start()
        wait_healthy(server, args.timeout)
    except Exception as error:  # the server's own errors: ports, binary, exit, timeout
        print(f"milvus_server: Milvus did not start ({error}); logs in {args.data}/logs", file=sys.stderr)
        server.stop()
        return 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    pid = server.server_proc.pid if server.server_proc else 0
    print("READY " + json.dumps({"port": server.listen_port, "health": server.webservice_port, "pid": pid}), flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
