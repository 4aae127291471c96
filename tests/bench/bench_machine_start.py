"""
A machine's start against one process's (issue 80, item 3): the time from
C{twistd -n pypid} to the first answer of C{GET /simple/}, and to
C{/health} saying every worker is up, of C{workers = 1} and C{workers = N}
started alternately on an empty folder, each round's pair compared.

Not a test (trial loads only C{test_*.py}); run it by hand, on an idle
machine::

    .venv/bin/python tests/bench/bench_machine_start.py [--workers 2] [--rounds 10]

Each start has a folder of its own and is stopped (C{SIGTERM}) once
measured. The ratios are each round's machine against the same round's
one process: its first answer, and every worker up against one
process's first answer (on an empty folder, one process is up when it
first answers).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

VENV_BIN = os.path.dirname(sys.executable)


def free_port():
    """A free port of the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workers, timeout=60.0):
    """C{(first answer, every worker up)} of one start, in seconds."""
    folder = tempfile.mkdtemp(prefix="pypid-start-")
    port = free_port()
    config = os.path.join(folder, "pypid.ini")
    with open(config, "w") as f:
        f.write(f"[pypid]\nlisten = tcp:{port}:interface=127.0.0.1\nworkers = {workers}\n")
    began = time.monotonic()
    process = subprocess.Popen([os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "pypid",
                                "--config", config], cwd=folder, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = up = None
    try:
        while up is None and time.monotonic() - began < timeout:
            try:
                if first is None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/",
                                                timeout=5) as answer:
                        answer.read()
                    first = time.monotonic() - began
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                            timeout=5) as answer:
                    said = json.loads(answer.read()).get("workers") or {}
                if said.get("up", 1) == workers:
                    up = time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    if up is None:
        raise SystemExit(f"workers = {workers}: not up within {timeout} s")
    return first, up


def spread(values):
    """Median [min-max], two decimals."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    one, machine = [], []
    for round_ in range(args.rounds):
        # (alternating which starts first, so that neither is always the warmer)
        if round_ % 2:
            machine.append(start(args.workers))
            one.append(start(1))
        else:
            one.append(start(1))
            machine.append(start(args.workers))
    print(f"workers = 1, first answer, s:        {spread([s[0] for s in one])}")
    print(f"workers = {args.workers}, first answer, s:        {spread([s[0] for s in machine])}")
    print(f"workers = {args.workers}, every worker up, s:     {spread([s[1] for s in machine])}")
    print("first answer / one process's:        "
          + spread([m[0] / o[0] for m, o in zip(machine, one, strict=True)]))
    print("every worker up / one process's first: "
          + spread([m[1] / o[0] for m, o in zip(machine, one, strict=True)]))


if __name__ == "__main__":
    main()
