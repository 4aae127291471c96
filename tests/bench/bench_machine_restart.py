"""
A whole machine's start after C{kill -9}, under load (issue 80, item 3):
the soak's daemon, readers and prober (L{tests.bench.soak},
L{tests.bench.soak_faults}) with C{workers = 2}; the journal grown for
C{--grow} seconds of uploads, yanks and deletes; then C{--rounds} times a
C{kill -9} of the supervisor and its workers and a start on the same
folder and port, the load going on. Rounds alternate (A B B A) the
forked first workers with the same build told C{--reactor=epoll}, which
spawns every worker (L{pypid.daemon.first_worker.may_fork}). Each round
prints the time to the first C{/health} 200 and to every worker up, and
the new connections' longest wait and waits over 1 s in the 20 s after
the kill.

Not a test (trial loads only C{test_*.py}); run it by hand, on an idle
machine::

    .venv/bin/python tests/bench/bench_machine_restart.py [--grow 240] [--rounds 8]
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.bench import soak, soak_faults  # noqa: E402


class RestartedDaemon(soak.SoakDaemon):
    """The soak's daemon, told C{--reactor=epoll} (every worker spawned) while C{spawn}."""

    spawn = False

    def command(self, port):
        argv = super().command(port)
        return [*argv[:2], "--reactor=epoll", *argv[2:]] if self.spawn else argv


def drive(load, churn, rate, per_second, down, stop):
    """The readers at C{rate} a second, and the churn's steps while the machine is up."""
    interval, tick, step = 1.0 / rate, time.monotonic(), time.monotonic()
    while not stop.is_set():
        if not down.is_set() and time.monotonic() >= step:
            churn.step()
            step += 1.0 / per_second
        if len(load.queue) < 200:
            load.submit(load.reads())
        tick += interval
        time.sleep(max(0.0, tick - time.monotonic()))


def restart(daemon, prober, down):
    """One C{kill -9} of the whole machine and a start: its figures."""
    down.set()
    pids = soak_faults.tree(daemon.pid)
    began = time.monotonic()
    os.killpg(os.getpgid(daemon.pid), signal.SIGKILL)
    daemon.kill()
    while any(soak_faults.alive(pid) for pid in pids):
        time.sleep(0.01)
    started = time.monotonic()
    daemon.start(port=daemon.port, timeout=120)
    first = time.monotonic() - started
    down.clear()
    while soak_faults.workers_up(daemon) < 2:
        time.sleep(0.02)
    up = time.monotonic() - started
    time.sleep(20)
    waits = [waited for at, waited, outcome in prober.results
             if at >= began and waited is not None and outcome == "ok"]
    return {"spawned": daemon.spawn, "first_health_s": round(first, 2),
            "all_up_s": round(up, 2), "longest_wait_s": round(max(waits), 2),
            "over_1s": sum(1 for waited in waits if waited > 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--grow", type=float, default=240, help="seconds of churn first")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50, help="reads a second")
    parser.add_argument("--churn", type=float, default=3, help="uploads a second")
    options = parser.parse_args()
    args = soak.options(["--workers", "2", "--keep", "30", "--yank"])
    directory = tempfile.mkdtemp(prefix="pypid-restarts-")
    upstream = soak.make_daemon(args, directory, None)[1]
    daemon = RestartedDaemon(os.path.join(directory, "daemon"),
                             {"retention.recycle_bin": "0", "pypid.workers": "2",
                              "upstream.mode": "cache", "upstream.url": upstream.url,
                              "upstream.ttl": "60"})
    hosted = soak.seed(daemon, args)
    daemon.start(timeout=60)
    load = soak.Load(daemon, hosted, [f"cached-{i:04d}" for i in range(args.cached)])
    churn = soak.Churn(load, args.keep, args.yank)
    down, stop = threading.Event(), threading.Event()
    threading.Thread(target=drive, args=(load, churn, options.rate, options.churn, down, stop),
                     daemon=True).start()
    prober = soak_faults.Prober(daemon, f"/simple/{sorted(hosted)[0]}/").start()
    try:
        time.sleep(options.grow)
        for round_ in range(options.rounds):
            daemon.spawn = round_ % 4 in (1, 2)
            print(json.dumps({"round": round_, **restart(daemon, prober, down)}), flush=True)
            time.sleep(10)
    finally:
        stop.set()
        prober.stop()
        load.stop()
        daemon.stop()
        upstream.kill()


if __name__ == "__main__":
    main()
