"""
Memory by change, not by time (issue 80, item 4): what does each process
of a server keep of the changes it makes or takes in?

The soak (C{tests/bench/soak.py}) tells memory by the minute, where the
caches that fill with the reads blur what the changes cost. This drives
the real daemon through C{--uploads} uploads alone, each with three page
reads, at a fixed count of live files (each upload deletes the one
C{--keep} before it, into the recycle bin) and a C{SIGHUP} every 500
uploads, and samples each process's C{RssAnon} (its own memory: the
ring's shared pages and the mapped files apart) every 250 uploads. In a
machine of workers each worker makes about 1/N of the changes and takes
in the others': a worker that grew faster than one process would pay for
taking in its siblings' changes.

Run from the checkout, alternating the machines::

    .venv/bin/python tests/bench/bench_memory_by_change.py --workers 1 2 4 --rounds 2
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.bench.soak_faults import tree  # noqa: E402
from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import PASSWORD, USER, Daemon, http, upload_form  # noqa: E402

#: Uploads between two samples of the processes' memory.
SAMPLE_EVERY = 250
#: Uploads between two SIGHUPs.
SIGHUP_EVERY = 500


def anonymous_mib(pid):
    """The process's C{RssAnon}, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no RssAnon for {pid}")


def run(workers, uploads, keep):
    """One machine of C{workers} (1: one process); its processes' samples."""
    settings = {"pypid.workers": str(workers)} if workers > 1 else {}
    daemon = Daemon(tempfile.mkdtemp(prefix="bench-memory-"), settings=settings)
    daemon.start()
    try:
        time.sleep(3)  # (every worker up)
        pids = tree(daemon.pid)
        samples = {pid: [] for pid in pids}
        live = []
        started = time.monotonic()
        for i in range(uploads):
            name, data = make_wheel(f"proj{i % 50}", f"1.{i}")
            content_type, body = upload_form(name, data)
            answer = http("POST", daemon.url, {"Content-Type": content_type}, body,
                          auth=(USER, PASSWORD))
            assert answer.status == 200, (name, answer.status)
            live.append(name)
            if len(live) > keep:
                old = live.pop(0)
                answer = http("DELETE", daemon.url + f"api/files/{old}", auth=(USER, PASSWORD))
                assert answer.status == 200, (old, answer.status)
            for j in range(3):
                http("GET", daemon.url + f"simple/proj{(i + j) % 50}/")
            if i % SIGHUP_EVERY == SIGHUP_EVERY - 1:
                os.kill(daemon.pid, signal.SIGHUP)
            if i % SAMPLE_EVERY == 0 or i == uploads - 1:
                for pid in pids:
                    samples[pid].append(round(anonymous_mib(pid), 1))
        seconds = time.monotonic() - started
    finally:
        daemon.stop()
    roles = (["server"] if workers == 1
             else ["supervisor", *(f"worker {n}" for n in range(1, workers + 1))])
    return {"workers": workers, "uploads": uploads, "seconds": round(seconds, 1),
            "processes": [{"role": role, "anon_mib": samples[pid],
                           "growth_mib": round(samples[pid][-1] - samples[pid][0], 1),
                           # (from the third sample: past the first fills of the caches)
                           "growth_after_warmup_mib": round(samples[pid][-1] - samples[pid][2], 1)}
                          for role, pid in zip(roles, pids, strict=True)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--uploads", type=int, default=3000)
    parser.add_argument("--keep", type=int, default=100, help="live uploads kept")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write every run as JSON lines too")
    args = parser.parse_args()
    for _ in range(args.rounds):
        for workers in args.workers:
            result = run(workers, args.uploads, args.keep)
            print(f"workers={workers}: {result['uploads']} uploads in {result['seconds']} s")
            for process in result["processes"]:
                print(f"  {process['role']:<11} RssAnon {process['anon_mib'][0]:6.1f} -> "
                      f"{process['anon_mib'][-1]:6.1f} MiB  (+{process['growth_mib']}, "
                      f"+{process['growth_after_warmup_mib']} after {2 * SAMPLE_EVERY})")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
