"""
Measure the upstream cache: C{pip download} of 50 projects straight from a
local upstream, then through pypid with a cold cache, with a warm one, and
warm with the upstream stopped.

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_upstream.py [--projects 50] [--rounds 3]

The upstream is L{tests.harness.upstream_server} in a process of its own, serving
one wheel per project (50 KiB of incompressible data each, plus metadata);
pip runs isolated from the machine's configuration, without its cache.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import Clients, Daemon  # noqa: E402
from tests.harness.upstream_server import UpstreamProcess  # noqa: E402


def download(clients, index_url, names, folder):
    """Time one C{pip download} of every name into a new folder."""
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    clients.pip("download", "--no-deps", "--progress-bar", "off", "--only-binary", ":all:",
                "--index-url", index_url, "-d", folder, *names)
    took = time.monotonic() - started
    if len(os.listdir(folder)) != len(names):
        raise SystemExit(f"pip downloaded {len(os.listdir(folder))} files, not {len(names)}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-upstream-bench-")
    names = [f"bench-up-{i:03d}" for i in range(options.projects)]
    upstream = UpstreamProcess(os.path.join(work, "upstream"))
    for name in names:
        upstream.add(*make_wheel(name, "1.0", extra_files=[
            (name.replace("-", "_") + "/blob.bin", os.urandom(50 << 10))]))
    upstream.start()
    clients = Clients(os.path.join(work, "clients"))
    results = {"projects": options.projects}
    try:
        direct = [download(clients, upstream.url, names, os.path.join(work, "d"))
                  for _ in range(options.rounds)]
        cold, warm, offline = [], [], []
        for round_ in range(options.rounds):
            daemon = Daemon(os.path.join(work, f"pypid-{round_}"), settings={
                "upstream.mode": "cache", "upstream.url": upstream.url})
            daemon.start()
            try:
                cold.append(download(clients, daemon.index_url, names, os.path.join(work, "d")))
                warm.append(download(clients, daemon.index_url, names, os.path.join(work, "d")))
                upstream.stop()
                offline.append(download(clients, daemon.index_url, names,
                                        os.path.join(work, "d")))
                upstream.start()
            finally:
                daemon.stop()
        for key, times in (("direct_from_upstream", direct), ("pypid_cold", cold),
                           ("pypid_warm", warm), ("pypid_warm_upstream_down", offline)):
            results[key] = {"median_s": round(statistics.median(times), 2),
                            "all": [round(t, 2) for t in times]}
    finally:
        upstream.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
