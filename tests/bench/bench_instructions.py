"""
The hot path's work per request, counted rather than timed: the machine
instructions the daemon executes to answer a project's page (HTML and
JSON) and a small wheel, and to take an upload (twine's request, a wheel
of 1 kB), for this checkout and another, under valgrind's callgrind. On a shared machine the server CPU per request of two runs of
one build differs by a quarter or more (wrk's figures of 2026-11-29 gave
per-round ratios from 0.69 to 1.45); an instruction count differs by
about 1% between runs, so a change of 2% is seen in one run.

Each build's daemon (C{workers} processes) is started under callgrind
with counting off, on a fresh hard-linked copy of the shared bench's
corpus (C{../shared/bench/corpus.py DIR -n 200 -v 5}), and warmed with
200 requests. Counting is turned on for C{--requests} requests sent one
after another on one kept-alive connection, then off; then on again for
as long with no request, so that what the timers do meanwhile (the
heartbeat, the sweeps: under valgrind a request takes a thousand times
as long) is taken away. The figure is each process's count of the first
window less the second, divided by the requests, summed over the
machine's processes; the process that answered is given apart. An
upload is counted until the webhook receiver (in this process, outside
valgrind) has every event, when a side has a subscription
(C{--webhook baseline}, C{this} or C{both}; the same checkout on both
sides, C{--baseline .}, measures what a subscription costs). ::

    .venv/bin/python tests/bench/bench_instructions.py --baseline ../base
        [--workers 1] [--routes html,json,wheel,upload] [--requests 1000]
        [--uploads 200] [--webhook this]
        [--corpus ~/.cache/pypid-bench/corpus-200x5/packages]

C{--baseline} is a checkout with its own C{.venv} and C{etc/pypid.ini}.
Needs valgrind (Debian's package). Not a test (trial loads only
C{test_*.py}).
"""

import argparse
import glob
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(1, HERE)

from tests.bench.bench_upload import free_port, receiver, tree, upload_all, wheels  # noqa: E402

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PROJECT = "bench-proj-00100"
ROUTES = {
    "html": (f"/simple/{PROJECT}/", "text/html"),
    "json": (f"/simple/{PROJECT}/", JSON_TYPE),
    "wheel": (f"/files/{PROJECT}/bench_proj_00100-0.1.0-py3-none-any.whl", "*/*"),
}


def requests(port, path, accept, n):
    """C{n} GETs of C{path}, one after another on one connection, each read whole."""
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n"
            f"Accept: {accept}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(n):
            s.sendall(head)
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(65536)
            status, _, body = got.partition(b"\r\n\r\n")
            if not status.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"{path}: {status[:80]!r}")
            length = int(re.search(rb"(?im)^content-length: *(\d+)", status).group(1))
            while len(body) < length:
                body += s.recv(65536)


def control(pid, *args):
    """Tell C{pid} and its children's callgrind (only theirs: another run may be going on)."""
    for one in tree(pid):
        subprocess.run(["callgrind_control", *args, str(one)], capture_output=True)


def measure(checkout, corpus, workers, load, n, work, extra=()):
    """
    C{(answering, machine)}: instructions per request, net of the idle
    window; C{load(port, count)} sends C{count} requests.
    """
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    subprocess.check_call(["cp", "-al", corpus, f"{work}/packages"])
    port = free_port()
    venv = os.path.join(checkout, ".venv", "bin")
    daemon = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
         f"--callgrind-out-file={work}/cg.%p", f"{venv}/python", f"{venv}/twistd", "-n",
         "--pidfile=", "pypid", "--config", os.path.join(checkout, "etc", "pypid.ini"),
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--set", f"storage.path={work}/packages",
         "--set", f"pypid.snapshot={work}/index.json", "--set", f"pypid.workers={workers}", *extra],
        cwd=work, stdout=open(f"{work}/log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/bench-proj-00199/",
                                       timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit(f"{checkout}: no answer (see {work}/log)")
                time.sleep(1)
        time.sleep(30)  # (the check of the storage after the start, the workers' loads)
        load(port, 20)
        started = time.monotonic()
        control(daemon.pid, "-i", "on")
        load(port, n)
        control(daemon.pid, "-i", "off")
        took = time.monotonic() - started
        control(daemon.pid, "-d")
        time.sleep(1)
        control(daemon.pid, "-i", "on")
        time.sleep(took)
        control(daemon.pid, "-i", "off")
        control(daemon.pid, "-d")
        time.sleep(1)
    finally:
        daemon.terminate()
        daemon.wait()
    nets = []
    for busy in glob.glob(f"{work}/cg.*.1"):
        counts = [int(re.search(r"^totals: (\d+)", open(f).read(), re.M).group(1))
                  for f in (busy, busy[:-1] + "2")]
        nets.append((counts[0] - counts[1]) / n)
    return max(nets), sum(nets)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="a checkout with its own .venv")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--routes", default="html,json,wheel")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--uploads", type=int, default=200)
    ap.add_argument("--webhook", choices=("baseline", "this", "both"),
                    help="the side(s) with one subscription to every event")
    ap.add_argument("--corpus", default=os.path.expanduser(
        "~/.cache/pypid-bench/corpus-200x5/packages"))
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    builds = {"baseline": os.path.abspath(a.baseline), "this": HERE}
    hook, received = receiver()
    subscription = ("--set", f"webhook:bench.url=http://127.0.0.1:{hook}/",
                    "--set", "webhook:bench.allow_http=yes",
                    "--set", "webhook:bench.allow_private=yes",
                    "--set", "webhook:bench.secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"workers = {a.workers}; instructions per request, net of an idle window; "
              f"a subscription on {a.webhook or 'neither'}")
        for route in a.routes.split(","):
            got = {}
            for name, checkout in builds.items():
                hooked = a.webhook in (name, "both")
                if route == "upload":
                    load, n = uploads(name, hooked, received), a.uploads
                else:
                    path, accept = ROUTES[route]
                    n = a.requests

                    def load(port, count, path=path, accept=accept):
                        requests(port, path, accept, count)
                # (an upload's count leaves out the snapshot's saves: under
                # valgrind the uploads take fifty times as long, so a save
                # each 30 s would come every few uploads, not every thousands)
                extra = (*(subscription if hooked else ()),
                         *(("--set", "pypid.snapshot_interval=86400") if route == "upload"
                           else ()))
                got[name] = measure(checkout, a.corpus, a.workers, load, n,
                                    os.path.join(tmp, name), extra)
            (b_one, b_all), (t_one, t_all) = got["baseline"], got["this"]
            print(f"{route:6} answering process: {b_one:9.0f} -> {t_one:9.0f} "
                  f"({t_one / b_one:.3f}); machine: {b_all:9.0f} -> {t_all:9.0f} "
                  f"({t_all / b_all:.3f})", flush=True)


def uploads(side, hooked, received):
    """
    C{load(port, count)}: C{count} fresh wheels uploaded over 4 connections,
    until the receiver has their events when C{hooked}.
    """
    made = itertools.count()

    def load(port, count):
        batch = wheels(count, f"{side}{next(made)}", "prose")
        before = len(received)
        _, failures = upload_all(port, batch, 4, "admin:admin")
        if failures:
            raise SystemExit(f"upload refused: {failures[0]}")
        deadline = time.monotonic() + 600
        while hooked and len(received) < before + count and time.monotonic() < deadline:
            time.sleep(0.1)
    return load

if __name__ == "__main__":
    sys.exit(main())
