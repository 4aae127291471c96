"""
Measure, through the real daemon, the page rate of a named index's
C{/dev/simple/<p>/} for a project inherited through two bases (C{dev ->
staging -> release}) against the default index's C{/simple/<p>/} on the
same server (issue 26: at least 0.9x), as C{../shared/bench/} measures
pages: the server pinned to one core (C{taskset}), wrk pinned to
another (C{-t1 -c32 -d10s}, 2 s of warm-up discarded, the server left
to go idle before each run), the two URLs alternated in one run, ABBA
then BAAB, several rounds; the report is the ratio of the medians (and
the median of the rounds' paired ratios).

One daemon (C{twistd}, as the end-to-end tests start it,
L{tests.harness.e2e.Daemon}) with C{[index:release]}, C{[index:staging]} based
on it and C{[index:dev]} based on staging; C{release} and the default
index each host the same files of project C{p}::

    .venv/bin/python tests/bench/bench_index_daemon.py [--rounds 3] [-d 10s] [--accept json]

Needs wrk and taskset (the shared bench's C{setup.sh}). Not a test
(trial loads only C{test_*.py}).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.distributions import make_sdist, make_wheel  # noqa: E402
from tests.harness.e2e import Daemon, http, upload  # noqa: E402

SECTIONS = """
[index:release]

[index:staging]
bases = release

[index:dev]
bases = staging
"""

ACCEPTS = {"json": "application/vnd.pypi.simple.v1+json", "html": "text/html"}

#: wrk's done() hook of the shared bench (C{wrk_report.lua}): exact counters, one JSON line.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"err_status":%d,"errors":%d,"p50_us":%d}\\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50)))
end
"""


class PinnedDaemon(Daemon):
    """The daemon run on the cores C{cpu} alone, as the shared bench runs a server."""

    def __init__(self, directory, cpu):
        super().__init__(directory)
        self.cpu = cpu

    def command(self, port):
        """C{taskset -c CPU} before the daemon's own command."""
        return ["taskset", "-c", self.cpu, *super().command(port)]


def files_of(project, versions):
    """A wheel and an sdist of each of C{versions} of C{project}."""
    files = []
    for version in versions:
        files += [make_wheel(project, version), make_sdist(project, version)]
    return files


def cpu_ticks(pid):
    """User and system clock ticks the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_idle(pid, quiet=0.3, timeout=30.0):
    """Wait until the server uses no CPU for C{quiet} s (a backlog of a run is gone)."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_ticks(pid)
        if now == last:
            return
        last = now


def wrk(url, options, script, duration, accept):
    """One wrk run on C{url}; return its requests a second (and fail on errors)."""
    argv = ["taskset", "-c", options.client_cpu, "wrk", f"-t{options.threads}",
            f"-c{options.conns}", f"-d{duration}", "--timeout", "30s", "-s", script,
            "-H", f"Accept: {accept}", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^WRKJSON (.*)$", out, re.M)
    if not found:
        raise SystemExit(f"wrk output not understood:\n{out}")
    report = json.loads(found.group(1))
    if report["err_status"] or report["errors"]:
        raise SystemExit(f"wrk saw errors on {url}: {report}")
    return report["requests"] / (report["duration_us"] / 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds (4 runs each)")
    parser.add_argument("-d", "--duration", default="10s", help="wrk -d")
    parser.add_argument("-c", "--conns", type=int, default=32, help="wrk -c")
    parser.add_argument("-t", "--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of discarded wrk before each run")
    parser.add_argument("--accept", choices=sorted(ACCEPTS), default="json")
    parser.add_argument("--versions", type=int, default=5, help="releases of p (2 files each)")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    options = parser.parse_args()
    accept = ACCEPTS[options.accept]
    work = tempfile.mkdtemp(prefix="bench-index-daemon-")
    script = os.path.join(work, "wrk_report.lua")
    with open(script, "w") as f:
        f.write(WRK_REPORT)
    daemon = PinnedDaemon(os.path.join(work, "daemon"), options.server_cpu)
    with open(daemon.config_path, "a", encoding="utf-8") as f:
        f.write(SECTIONS)
    daemon.start(timeout=30)
    try:
        for path in ("", "release/"):
            for filename, data in files_of("p", [f"1.{i}" for i in range(options.versions)]):
                answer = upload(daemon, filename, data, path=path)
                if answer.status != 200:
                    raise SystemExit(f"upload of {filename} to /{path} failed: {answer.status}")
        urls = {"default": daemon.url + "simple/p/", "dev": daemon.url + "dev/simple/p/"}
        pages = {name: http("GET", url, {"Accept": accept}) for name, url in urls.items()}
        for name, page in pages.items():
            if page.status != 200:
                raise SystemExit(f"{urls[name]}: {page.status}")
        print(f"page bytes: default {len(pages['default'].body)}, dev {len(pages['dev'].body)}; "
              f"server on cpu {options.server_cpu}, wrk on cpu {options.client_cpu}, "
              f"-t{options.threads} -c{options.conns} -d{options.duration}, Accept {accept}",
              flush=True)
        rates = {"default": [], "dev": []}
        paired = []
        for round_ in range(options.rounds):
            order = ("default", "dev", "dev", "default") if round_ % 2 == 0 else (
                "dev", "default", "default", "dev")
            got = {"default": [], "dev": []}
            for name in order:
                wait_idle(daemon.pid)
                if options.warmup:
                    wrk(urls[name], options, script, f"{options.warmup}s", accept)
                    wait_idle(daemon.pid)
                rate = wrk(urls[name], options, script, options.duration, accept)
                got[name].append(rate)
                rates[name].append(rate)
                print(f"  round {round_ + 1} {name:7} {rate:9.1f} req/s", flush=True)
            paired.append(statistics.mean(got["dev"]) / statistics.mean(got["default"]))
        default, dev = statistics.median(rates["default"]), statistics.median(rates["dev"])
        print(f"/simple/p/ median {default:.1f} req/s; /dev/simple/p/ median {dev:.1f} req/s; "
              f"ratio of medians {dev / default:.3f}; median paired ratio "
              f"{statistics.median(paired):.3f} ({options.rounds} rounds)")
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
