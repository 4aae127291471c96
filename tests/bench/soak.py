"""
A soak of the real daemon (issue 69, item 7): does its memory grow with
time, or with the files that come and go, at a fixed file count?

One daemon (C{twistd}, as the end-to-end tests start it,
L{tests.harness.e2e.Daemon}) on loopback, hosting C{--projects} projects of
C{--versions} wheels each, and (with C{--cached N}) caching N more
projects from a small upstream process (L{UpstreamProcess}, page TTL 60 s).
For C{--minutes}, at C{--rate} requests a second spread over 8 keep-alive
connections, it reads project pages (HTML and PEP 691 JSON), files and the
legacy JSON API of hosted and cached projects; C{--churn} times a second
it uploads a new version of a hosted project and deletes the oldest file
it uploaded, so the file count stays fixed while every name is new; with
C{--sighup S} it sends C{SIGHUP} every S seconds. Every C{--sample}
seconds it reads the daemon's RSS and open fds from C{/proc}; at the end it
prints a table and the growth per 10 minutes (a least-squares line through
the samples after C{--warmup} minutes)::

    .venv/bin/python tests/bench/soak.py --minutes 30 --rate 100 --churn 1 --sighup 60

C{--tracemalloc DIR} starts the daemon (and, with C{--workers}, each
worker: the supervisor starts them with its environment) with
C{PYTHONTRACEMALLOC} and a C{sitecustomize} whose C{SIGUSR2} handler dumps
a snapshot into DIR (this script sends it to the serving processes at the
end of the warm-up and at the end) and prints what grew between the two,
by line, for each process: slow (every allocation is traced), for finding
a leak, not for figures. Not a test (trial loads only C{test_*.py}).

C{--workers N} runs a machine of N workers (C{[pypid] workers}): the RSS
is then each process's of the tree (the supervisor and every worker), and
the growth is printed for each, as issue 79 compares a worker's with one
process's. Each process's is also split into its shared memory and the
rest: a worker's RSS counts every page of the machine's ring
(L{pypid.machine.ring}) that it has read, up to the ring's 9 MiB, which the
machine holds once; at the soak's 4-5 announcements a second, each in a
slot of a page, the first lap takes some 7 minutes.

C{--keep K} deletes each upload only after K more were acknowledged (1, as
before, by default), and C{--yank} yanks each upload a step after it was
acknowledged: the churn is then uploads, yanks and deletes, and K
acknowledged uploads are on the server at any time for the check below.

C{--faults} breaks the server while the load goes on
(L{tests.bench.soak_faults}, where the schedule is): at 25 % of the run a
C{kill -9} of one worker, at 45 % a C{SIGSTOP} of one worker for
C{--stop-seconds} then C{SIGCONT} (the supervisor's watchdog may replace
it meanwhile), at 70 % a C{kill -9} of the whole machine and a start on
the same folder and port; with one process the first two are "n/a". A
prober opens a new connection every 100 ms, so that a user's wait is
measured whatever worker takes it. Every run then ends with a summary: the
longest wait of a new connection and, in each window (before the faults,
from each fault to the next, after every worker is up again), the failed
probes, waits over 1 s and requests not answered; the time to the first
C{/health} 200 and to every worker up after the machine's kill; the reads'
p99 per minute (from sent to answered, so a read that waited for a
connection counts its wait); each process's RSS slope, one row a lifetime
(a process is named by its title, C{pypid: worker 2}, so a replaced worker
follows its predecessor); and how many acknowledged uploads, not deleted
by the soak, are no longer listed and served, checked after each fault
and at the end (and a delete of one answered 404 is one lost). C{--json
PATH} writes the summary as JSON too. As issue 80 compares them::

    .venv/bin/python tests/bench/soak.py --minutes 20 --rate 50 --churn 1 --sighup 60 \\
        --keep 30 --yank --faults --workers 2 --json soak-2.json
"""

import argparse
import collections
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http import client as httpclient
from urllib.parse import quote

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests import CHECKOUT  # noqa: E402
from tests.bench import soak_faults  # noqa: E402
from tests.bench.soak_faults import alive, memories, slope, tree  # noqa: E402
from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import HOST, PASSWORD, USER, Daemon, basic, upload_form, write_files  # noqa: E402
from tests.harness.upstream_server import UpstreamProcess  # noqa: E402

JSON = "application/vnd.pypi.simple.v1+json"

#: The C{sitecustomize} of a traced process: a handler of C{SIGUSR2} that
#: dumps a snapshot as C{<pid>-<n>.snap} (every process of a machine loads it,
#: since the supervisor passes its environment on to the workers).
TRACED = """
import os, signal, tracemalloc
if tracemalloc.is_tracing() and os.environ.get("SOAK_TRACE_DIR"):
    count = [0]
    def dump(signum, frame):
        count[0] += 1
        path = os.path.join(os.environ["SOAK_TRACE_DIR"], f"{os.getpid()}-{count[0]}.snap")
        tracemalloc.take_snapshot().dump(path + ".tmp")
        os.rename(path + ".tmp", path)
    signal.signal(signal.SIGUSR2, dump)
"""


class SoakDaemon(Daemon):
    """The daemon, run under C{tracemalloc} when given a folder for its snapshots."""

    def __init__(self, directory, settings, trace_dir=None):
        super().__init__(directory, settings=settings)
        self.trace_dir = trace_dir
        if trace_dir:
            site = os.path.join(trace_dir, "site")
            os.makedirs(site, exist_ok=True)
            with open(os.path.join(site, "sitecustomize.py"), "w") as f:
                f.write(TRACED)
            self.environ.update(SOAK_TRACE_DIR=trace_dir, PYTHONTRACEMALLOC="12")
            self.environ["PYTHONPATH"] = os.pathsep.join([site, self.environ["PYTHONPATH"]])


def wheel_name(project, version):
    """The filename L{make_wheel} gives."""
    return f"{project.replace('-', '_')}-{version}-py3-none-any.whl"


class Load:
    """
    The requests of the soak, at a fixed rate from one pacing thread over
    a few worker threads with a keep-alive connection each; counts answers
    by status class, and keeps the list of hosted files current as the
    churn uploads and deletes.

    @ivar answers: C{(monotonic time sent, seconds to the answer, status or
        None, whether a read)} of every request, for the figures by minute
        and by window: from sent, not from taken by a thread, so a read
        that waited for a connection held by a hung worker counts its wait.
    @ivar skipped: the monotonic times of the reads not sent because 200
        waited already.
    """

    def __init__(self, daemon, hosted, cached, workers=8):
        self.daemon = daemon
        self.hosted = hosted  # {project: [filenames, oldest first]}
        self.cached = cached  # [project]
        self.counts = collections.Counter()
        #: the first answers other than 200: C{(status, method, path)}
        self.failed = []
        self.answers = []
        self.skipped = []
        self.lock = threading.Lock()
        self.queue = collections.deque()
        self.ready = threading.Semaphore(0)
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self.threads:
            thread.start()

    def reads(self):
        """One read request: C{(method, path, headers)}, hosted or cached alike."""
        kind = random.choice(("html", "json", "file", "legacy"))
        cached = self.cached and random.random() < 0.3
        with self.lock:
            project = random.choice(self.cached if cached else list(self.hosted))
            filename = (wheel_name(project, "1.0") if cached
                        else random.choice(self.hosted[project]))
        if kind == "html":
            return "GET", f"/simple/{project}/", {"Accept": "text/html"}
        if kind == "json":
            return "GET", f"/simple/{project}/", {"Accept": JSON}
        if kind == "legacy":
            return "GET", f"/pypi/{project}/json", {}
        return "GET", f"/files/{project}/{filename}", {}

    def submit(self, request, done=None):
        """
        Queue C{request} for a worker; C{done(status, retried)} is called
        with its answer (L{None}: none) and whether it was sent twice.
        """
        self.queue.append((request, done, time.monotonic()))
        self.ready.release()

    def _work(self):
        conn = None
        while True:
            self.ready.acquire()
            if self.stopping:
                return
            (method, path, headers, *body), done, sent = self.queue.popleft()
            status, conn, retried = self._one(conn, method, path, headers,
                                              body[0] if body else None)
            with self.lock:
                self.answers.append((sent, time.monotonic() - sent, status, method == "GET"))
                self.counts[f"{status // 100}xx" if status else "error"] += 1
                if status != 200:
                    self.counts[f"{status} {method}"] += 1
                    if len(self.failed) < 20:
                        self.failed.append((status, method, path))
            if done:
                done(status, retried)

    def _one(self, conn, method, path, headers, body):
        """C{(status or None, the connection to keep, whether sent twice)} of one request."""
        for attempt in range(2):
            if conn is None:
                conn = httpclient.HTTPConnection(HOST, self.daemon.port, timeout=30)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                return resp.status, conn, attempt > 0
            except (OSError, httpclient.HTTPException):
                conn.close()
                conn = None
        return None, None, True

    def stop(self):
        """Stop, and wait for the requests in flight (so what was acknowledged is known)."""
        self.stopping = True
        for _ in self.threads:
            self.ready.release()
        for thread in self.threads:
            thread.join(65)


class Churn:
    """
    Uploads of new versions balanced by deletes of the oldest uploaded
    files, C{keep} acknowledged uploads behind: the file count stays what
    it was, every filename is new. With C{yank}, each upload is yanked at
    the step after it was acknowledged.

    @ivar acked: C{{filename: project}} of the uploads acknowledged and not
        yet sent a delete: what must be on the server (L{check}).
    @ivar delete_404: the acknowledged files whose delete answered 404 or
        410 at its first sending: lost. (Sent again after no answer, the
        first may have deleted it: those are only counted.)
    """

    def __init__(self, load, keep=1, yank=False):
        self.load = load
        self.keep = keep
        self.yank = yank
        self.versions = itertools.count(1)
        self.acked = {}
        self.to_yank = collections.deque()
        self.to_delete = collections.deque()
        self.delete_404 = []
        self.delete_404_retried = 0
        self.auth = {"Authorization": basic(USER, PASSWORD)}

    def step(self):
        project = random.choice(sorted(self.load.hosted))
        version = f"2.{next(self.versions)}"
        filename = wheel_name(project, version)
        ctype, body = upload_form(filename, make_wheel(project, version)[1])

        def uploaded(status, retried):
            if status == 200:
                with self.load.lock:
                    self.load.hosted[project].append(filename)
                    self.acked[filename] = project
                self.to_yank.append(filename)
                self.to_delete.append(filename)

        self.load.submit(("POST", "/", {"Content-Type": ctype, **self.auth}, body), uploaded)
        if self.yank and self.to_yank:
            form = {"Content-Type": "application/x-www-form-urlencoded", **self.auth}
            self.load.submit(("POST", f"/api/files/{quote(self.to_yank.popleft())}/yank", form,
                              b"reason=soak"))
        if len(self.to_delete) > self.keep:
            old = self.to_delete.popleft()
            with self.load.lock:
                old_project = self.acked.pop(old)
                self.load.hosted[old_project].remove(old)
            self.load.submit(("DELETE", f"/api/files/{quote(old)}", self.auth),
                             lambda status, retried: self._deleted(old, status, retried))

    def _deleted(self, filename, status, retried):
        if status in (404, 410):
            with self.load.lock:
                if retried:
                    self.delete_404_retried += 1
                else:
                    self.delete_404.append(filename)

    def check(self):
        """Whether every upload acknowledged, not deleted, is served (L{soak_faults.verify})."""
        return soak_faults.verify(self.load.daemon, self.acked, self.load.lock)


def drive(daemon, load, churn, args, on_warm, paused=lambda: False):
    """
    Run the load for C{args.minutes}; return the samples C{(s, RSS KiB,
    fds, counts, each process's)}. While C{paused()} (the whole machine
    killed, not yet started again) it sends no signal and samples nothing.
    """
    start = time.monotonic()
    end = start + args.minutes * 60
    samples, next_sample, next_hup, next_churn = [], start, start + args.sighup, start
    warm = start + args.warmup * 60
    interval = 1.0 / args.rate
    tick = start
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            next_sample += args.sample
            try:
                rss, fds, each = memories(daemon.pid) if not paused() else (None, 0, {})
            except (FileNotFoundError, ProcessLookupError):
                rss = None
            with load.lock:
                counts = dict(load.counts)
            if rss is not None:
                samples.append((now - start, rss, fds, counts, each))
                print(f"{(now - start) / 60:6.1f} min  RSS {rss / 1024:7.1f} MiB  fds {fds:3d}  "
                      f"{counts}", flush=True)
        if warm and now >= warm:
            on_warm()
            warm = None
        if args.sighup and now >= next_hup:
            next_hup += args.sighup
            if not paused():
                try:
                    os.kill(daemon.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass
        if args.churn and now >= next_churn:
            churn.step()
            next_churn += 1.0 / args.churn
        if len(load.queue) < 200:
            load.submit(load.reads())
        else:
            load.skipped.append(now)
        tick += interval
        time.sleep(max(0.0, tick - time.monotonic()))
    if not paused() and daemon.running():
        rss, fds, each = memories(daemon.pid)
        samples.append((time.monotonic() - start, rss, fds, dict(load.counts), each))
    return samples


def report(samples, args):
    """
    The table of samples and the growth per 10 minutes after the warm-up
    (of the whole tree; with C{--faults} the tree's spans restarts: read
    each process's, in the summary).
    """
    print(f"\n{'min':>6} {'RSS MiB':>8} {'fds':>4} {'requests':>9} {'5xx':>4} {'errors':>6}")
    for seconds, rss, fds, counts, _ in samples:
        total = sum(n for key, n in counts.items() if key.endswith("xx") or key == "error")
        print(f"{seconds / 60:6.1f} {rss / 1024:8.1f} {fds:4d} {total:9d} "
              f"{counts.get('5xx', 0):4d} {counts.get('error', 0):6d}")
    later = [sample for sample in samples if sample[0] >= args.warmup * 60]
    if not later:
        return
    warm = [(s, rss / 1024) for s, rss, *_ in later]
    fds = [(s, fd) for s, _, fd, *_ in later]
    print(f"after {args.warmup} min of warm-up: RSS {slope(warm) * 600:+.2f} MiB per 10 min, "
          f"fds {slope(fds) * 600:+.2f} per 10 min; "
          f"RSS from {warm[0][1]:.1f} to {warm[-1][1]:.1f} MiB")
    # (a worker's RSS counts each page of the machine's ring it has read,
    # shared memory that the machine holds once: its own memory is the rest)
    for row in soak_faults.segments(samples, args.warmup * 60):
        if row["samples"] > 1:
            print(f"  {row['role']} (pid {row['pid']}, {row['from_min']:.1f}-{row['to_min']:.1f} "
                  f"min): RSS {row['rss_mib_per_10min']:+.2f} MiB per 10 min, from "
                  f"{row['rss_from_mib']:.1f} to {row['rss_to_mib']:.1f} MiB; shared memory "
                  f"{row['shared_mib_per_10min']:+.2f} ({row['shared_from_mib']:.1f} to "
                  f"{row['shared_to_mib']:.1f}), the rest {row['rest_mib_per_10min']:+.2f} "
                  f"({row['rest_from_mib']:.1f} to {row['rest_to_mib']:.1f})")


def snapshots(trace_dir, pid):
    """The names of process C{pid}'s snapshots in C{trace_dir}, in order."""
    names = [n for n in os.listdir(trace_dir)
             if n.endswith(".snap") and n.startswith(f"{pid}-")]
    return sorted(names, key=lambda n: int(n.split("-")[1].split(".")[0]))


def traced_growth(trace_dir, pid, top=25):
    """Print what grew in process C{pid} between its first and its last snapshot, by line."""
    import tracemalloc

    names = snapshots(trace_dir, pid)
    if len(names) < 2:
        print("fewer than two snapshots")
        return
    first, last = (tracemalloc.Snapshot.load(os.path.join(trace_dir, n))
                   for n in (names[0], names[-1]))
    for key in ("lineno", "traceback"):
        print(f"\ngrowth by {key}, top {top}:")
        for stat in last.compare_to(first, key)[:top]:
            print(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                  f"{stat.traceback.format()[-1].strip() if key == 'lineno' else ''}")
            if key == "traceback":
                for line in stat.traceback.format(limit=12):
                    print("      " + line)


def seed(daemon, args):
    """Write the hosted files into the package folder; return C{{project: [filenames]}}."""
    hosted = {}
    for i in range(args.projects):
        project = f"soak-{i:04d}"
        versions = [f"1.{v}" for v in range(args.versions)]
        write_files(daemon.storage, *(make_wheel(project, v) for v in versions))
        hosted[project] = [wheel_name(project, v) for v in versions]
    return hosted


def options(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2, help="minutes left out of the slope")
    parser.add_argument("--rate", type=float, default=50, help="read requests a second")
    parser.add_argument("--churn", type=float, default=1,
                        help="uploads a second, each with a delete (0: reads only)")
    parser.add_argument("--keep", type=int, default=1,
                        help="acknowledged uploads kept before the oldest is deleted")
    parser.add_argument("--yank", action="store_true", help="yank each upload before its delete")
    parser.add_argument("--sighup", type=float, default=60, help="seconds between SIGHUPs (0: none)")
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--cached", type=int, default=50, help="projects cached from an upstream")
    parser.add_argument("--tracemalloc", metavar="DIR", help="snapshots of the daemon's heap")
    parser.add_argument("--dir", help="the daemon's folder (default: a temporary one, kept)")
    parser.add_argument("--src", help="the source the daemon runs (default: this checkout's src)")
    parser.add_argument("--workers", type=int, default=0,
                        help="a machine of this many workers (0 or 1: one process)")
    parser.add_argument("--faults", action="store_true",
                        help="kill -9 a worker, SIGSTOP one, kill -9 the machine (at 25, 45, 70 %%)")
    parser.add_argument("--stop-seconds", type=float, default=60,
                        help="how long the SIGSTOPped worker stays stopped")
    parser.add_argument("--json", metavar="PATH", help="write the summary as JSON too")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the daemon (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args(argv)
    if args.yank and args.keep < 2:
        parser.error("--yank needs --keep 2 or more (a yank a step before the delete)")
    return args


def source(args):
    """What the daemon runs: the checkout's commit (C{+} if its src differs), or C{--src}."""
    if args.src:
        return os.path.abspath(args.src)
    try:
        git = ["git", "-C", CHECKOUT]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+" if changed else "")


def make_daemon(args, directory, trace_dir):
    """The daemon (not started) and the upstream it caches from (started), if any."""
    upstream = None
    settings = {"retention.recycle_bin": "0"}
    if args.workers:
        settings["pypid.workers"] = str(args.workers)
    cached = [f"cached-{i:04d}" for i in range(args.cached)]
    if cached:
        upstream = UpstreamProcess(os.path.join(directory, "upstream"))
        for project in cached:
            write_files(upstream.directory, make_wheel(project, "1.0"))
        upstream.start()
        settings.update({"upstream.mode": "cache", "upstream.url": upstream.url,
                         "upstream.ttl": "60"})
    daemon = SoakDaemon(os.path.join(directory, "daemon"), settings, trace_dir)
    if args.src:
        # (after the tracing's sitecustomize, if any)
        first = daemon.environ["PYTHONPATH"].split(os.pathsep)[:-1]
        daemon.environ["PYTHONPATH"] = os.pathsep.join([*first, os.path.abspath(args.src)])
    for setting in args.env:
        name, _, value = setting.partition("=")
        daemon.environ[name] = value
    return daemon, upstream, cached


def soak(daemon, hosted, cached, args, trace_dir):
    """
    The load (with the prober, and the faults if asked) for the run, then
    the report and the summary; the pids traced (C{--tracemalloc}).
    """
    load = Load(daemon, hosted, cached)
    churn = Churn(load, args.keep, args.yank)
    timeline = soak_faults.Timeline("before faults" if args.faults else "whole run")
    prober = soak_faults.Prober(daemon, f"/simple/{sorted(hosted)[0]}/").start()
    count = max(1, args.workers)
    faults = (soak_faults.Faults(daemon, timeline, args.minutes * 60, count, args.stop_seconds,
                                 churn.check, 600 if trace_dir else soak_faults.RECOVERY).start()
              if args.faults else None)
    traced = []

    def snap():
        # (the serving processes, as at the end of the warm-up: a
        # machine's workers, not its supervisor)
        if trace_dir and not traced:
            traced.extend(tree(daemon.pid)[1:] if args.workers > 1 else [daemon.pid])
        for pid in traced:
            if alive(pid):
                os.kill(pid, signal.SIGUSR2)
    try:
        samples = drive(daemon, load, churn, args, snap,
                        faults.down.is_set if faults else lambda: False)
        if faults:
            faults.thread.join(soak_faults.RECOVERY * 2)
        snap()
    finally:
        prober.stop()
        load.stop()
    while trace_dir and any(alive(pid) and len(snapshots(trace_dir, pid)) < 2 for pid in traced):
        time.sleep(1)
    report(samples, args)
    for status, method, path in load.failed:
        print(f"answered {status}: {method} {path}")
    checks = {name: result for name, result in (faults.results if faults else {}).items()
              if isinstance(result, dict) and "lost" in result}
    final = churn.check()
    names = set(final["lost"]).union(churn.delete_404, *(r["lost"] for r in checks.values()))
    lost = {"count": len(names), "names": sorted(names), "final": final,
            "after_faults": {name: f"{len(r['lost'])} of {r['checked']}"
                             for name, r in checks.items()},
            "delete_404": churn.delete_404, "delete_404_retried": churn.delete_404_retried}
    run = {"processes": f"{count} workers" if count > 1 else "one process",
           "source": source(args), **{k: v for k, v in vars(args).items() if k != "tracemalloc"}}
    figures = soak_faults.summary(run, timeline, prober.results, load, faults, samples,
                                  args.warmup * 60, lost)
    soak_faults.print_summary(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return traced


def main(argv=None):
    args = options(argv)
    # (stopped by a signal, even started in the background: the daemons stop too)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    directory = args.dir or tempfile.mkdtemp(prefix="pypid-soak-")
    trace_dir = os.path.abspath(args.tracemalloc) if args.tracemalloc else None
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
    daemon, upstream, cached = make_daemon(args, directory, trace_dir)
    traced = []
    try:
        hosted = seed(daemon, args)
        # (traced, each worker starts some times slower, one after the other)
        daemon.start(timeout=600 if trace_dir else 60)
        print(f"daemon {daemon.pid} on {daemon.url}, folder {directory}", flush=True)
        traced = soak(daemon, hosted, cached, args, trace_dir)
    finally:
        daemon.stop()
        if upstream:
            upstream.kill()
    if trace_dir:
        for pid in traced:
            print(f"\n==== process {pid} ====")
            traced_growth(trace_dir, pid)


if __name__ == "__main__":
    main()
