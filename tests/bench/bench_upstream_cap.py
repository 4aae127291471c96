"""
What the upstream cache's cap costs (issue 29, C{[upstream] max_cache_size}):
the real daemon in front of a local upstream (L{tests.harness.upstream_server}, a
process of its own), without a cap (A) and with one that the bench fills
(B: every new file fetched evicts the least recently downloaded), in
alternating rounds (A B B A) so the noise of a shared machine falls on both.

Each round starts a daemon on an empty cache, then:

  - fetch: GETs, one after another, files the cache does not hold: the
    first C{cap} fill it, the next C{cap} are timed (B evicts one file at
    each);
  - serve: once the evictions are done, GETs of files the cache holds (the
    last C{cap} fetched), from 8 threads over keep-alive connections for
    C{seconds}: requests a second.

Run: C{.venv/bin/python -m tests.bench.bench_upstream_cap [--files 100] [--seconds 5]}.
"""

import argparse
import http.client
import os
import tempfile
import threading
import time

from pypid.upstream.file_cache import EVICTION_DELAY
from tests.harness.distributions import make_wheel
from tests.harness.e2e import Daemon
from tests.harness.upstream_server import UpstreamProcess

FILE_BYTES = 20 << 10


def get(connection, path):
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status}")


def one_round(label, upstream, names, work, capped, seconds):
    files = len(names) // 2
    settings = {"upstream.mode": "cache", "upstream.url": upstream.url, "upstream.ttl": "1h",
                "upstream.max_file_size": "64K", "upstream.download_space": "1M",
                "upstream.max_misses_per_address": "1000000"}
    if capped:
        settings["upstream.max_cache_size"] = str(files * (FILE_BYTES + 2048))
    daemon = Daemon(os.path.join(work, f"{label}-{time.monotonic_ns()}"), settings=settings)
    daemon.start()
    try:
        host, port = "127.0.0.1", daemon.port
        connection = http.client.HTTPConnection(host, port)
        paths = [f"/files/{name}/{name.replace('-', '_')}-1.0-py3-none-any.whl"
                 for name in names]
        for path in paths[:files]:
            get(connection, path)
        started = time.perf_counter()
        for path in paths[files:]:
            get(connection, path)
        fetch_ms = (time.perf_counter() - started) / files * 1000
        # (the last evictions' batch is done before serving: EVICTION_DELAY)
        time.sleep(2 * EVICTION_DELAY)
        kept = paths[files:]
        counts = [0] * 8
        stop = time.monotonic() + seconds

        def serve(n):
            own = http.client.HTTPConnection(host, port)
            i = n
            while time.monotonic() < stop:
                get(own, kept[i % len(kept)])
                counts[n] += 1
                i += 8
        threads = [threading.Thread(target=serve, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cached = len([n for n in os.listdir(os.path.join(daemon.storage, ".upstream"))
                      if n.endswith(".whl")])
        return fetch_ms, sum(counts) / seconds, cached
    finally:
        daemon.stop_cleanly()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-cap-bench-")
    names = [f"cap-bench-{i:04d}" for i in range(2 * options.files)]
    upstream = UpstreamProcess(os.path.join(work, "upstream"))
    for name in names:
        upstream.add(*make_wheel(name, "1.0", extra_files=[
            (name.replace("-", "_") + "/blob.bin", os.urandom(FILE_BYTES))]))
    upstream.start()
    try:
        results = {"A": [], "B": []}
        for label in ("A", "B", "B", "A"):
            fetch_ms, rate, cached = one_round(label, upstream, names, work, label == "B",
                                               options.seconds)
            results[label].append((fetch_ms, rate))
            print(f"{label} ({'cap' if label == 'B' else 'no cap'}): fetch a new file "
                  f"{fetch_ms:.1f} ms, serve a cached one {rate:.0f} req/s; "
                  f"{cached} files kept", flush=True)
        for label, rows in results.items():
            fetch = sum(r[0] for r in rows) / len(rows)
            rate = sum(r[1] for r in rows) / len(rows)
            print(f"mean {label}: fetch {fetch:.1f} ms, serve {rate:.0f} req/s")
        a, b = results["A"], results["B"]
        fetch_ratio = (sum(r[0] for r in b) / 2) / (sum(r[0] for r in a) / 2)
        serve_ratio = (sum(r[1] for r in b) / 2) / (sum(r[1] for r in a) / 2)
        print(f"B/A: fetch time {fetch_ratio:.3f}, serve rate {serve_ratio:.3f}")
    finally:
        upstream.kill()


if __name__ == "__main__":
    main()
