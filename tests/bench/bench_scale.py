"""
Measure how start-up scales with the number of files: the time until
C{GET /simple/} answers 200 naming every project, and the peak memory, of a
real daemon started on a corpus of C{--projects} x C{--versions} wheels
(default 20,000 x 5: 100,000 files, the figures of issue 14), in three cases
and a floor:

  - C{empty}: an empty folder, no snapshot: what a start costs before it
    loads anything (the interpreter, the imports, the listeners, the first
    C{/simple/}), the floor the other cases are reported above;
  - C{bare}: a folder of files only, as pypiserver keeps one (no C{.pypid/},
    no snapshot): answered from the filenames, every file then opened and
    hashed in the background (C{describe_s}, from the log);
  - C{records}: the records kept beside the files (C{.pypid/files/}), the
    snapshot deleted: answered from the filenames too, every record read
    in the background (C{describe_s});
  - C{snapshot}: from the snapshot, with the records beside the files,
    checked against storage after the server answers (C{check_s}).

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_scale.py [--projects 20000] [--versions 5]
        [--cases empty,bare,records,snapshot] [--reps 3] [--keep]
        [--baseline-venv ../wt-581/.venv]

With C{--workers N}, every daemon is a machine of N workers, and the time
until C{/health} says all are up is reported beside the first full
listing (C{all_up_s}); the CPU and memory are then the supervisor's.

Besides the time until ready and the peak RSS (C{VmHWM}) then, it reads
the daemon's CPU time until ready (utime + stime, from C{/proc}: steadier
than the wall time on a shared machine). With C{--baseline-venv}, every
case is run again by the daemon of that virtual environment (a checkout
of an earlier commit, installed there), each rep in the order this,
baseline then baseline, this (A B B A), in a work folder of its own, so
that the two compare pair by pair in one session. Given several times,
every one is (this, then each in turn, then the other way round), named
by the folder holding the environment (C{wt-581} for C{../wt-581/.venv}).

A variant measures several indexes in process (issue 26), on records made
up rather than a corpus (no files: only the snapshots are read)::

    .venv/bin/python tests/bench/bench_scale.py --indexes [--files 100000]
        [--promoted 0.2] [--reps 3] [--baseline-src ../main/src]

It writes the snapshot of one index of C{--files} files, and of a server
of three hosted indexes: C{default} with those files, C{release} with
C{--promoted} of them promoted from C{default}, and C{stable} with the
same promoted again from C{release}. A fresh interpreter then starts from
them as the daemon does (L{pypid.state.loader.IndexLoader}, bases first,
then every record made, as the check after a start makes them, and the
follow-up's sharing): the start-up time (best and median of the reps)
and, in a run of its own, the memory C{tracemalloc} counts once every
record is made. The three-index start is measured with the records
shared (C{multi}) and, for comparison, without (C{multi-unshared}: what
each index's own copy costs). With C{--baseline-src}, the one-index
start is measured again with that source tree first on C{sys.path} (a
checkout of main, say), in the same session, so that the two compare.

The corpus comes from ../shared/bench/corpus.py and is cached as the bench
harness caches it (C{$BENCH_HOME/corpus-NxV}, C{~/.cache/pypid-bench} by
default; never committed). Every case serves a hard-linked copy of it, made
in C{$BENCH_HOME/scale-NxV} (hard links need the same filesystem), so the
records a server writes never reach the corpus; the C{bare} case gets a fresh
copy each rep, so one rep's records do not leak into the next. The
C{records} and C{snapshot} cases share one copy, which a first server fills
with records and a snapshot (its time is reported as C{prepare}).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.e2e import clean_env, free_port  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)

#: C{--workers}: the daemons' C{[pypid] workers} (1: one process).
WORKERS = 1
CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "..", "shared", "bench", "corpus.py")
CASES = ("empty", "bare", "records", "snapshot")
LABELS = {
    "empty": "empty folder (the floor)",
    "bare": "bare folder (no snapshot, no records)",
    "records": "snapshot deleted, records kept beside the files",
    "snapshot": "from the snapshot",
}
LOADED = re.compile(rb"Index loaded: (\d+) files? in (\d+) projects? .* in ([0-9.]+) s")
CHECKED = re.compile(rb"Storage checked against the snapshot in ([0-9.]+) s")
DESCRIBED = re.compile(rb"Described (\d+) files? in ([0-9.]+) s: (\d+) distributions?, "
                       rb"(\d+) not served")


def bench_home():
    """Where the bench harness keeps corpora and state."""
    return os.environ.get("BENCH_HOME") or os.path.expanduser("~/.cache/pypid-bench")


def corpus(projects, versions):
    """The corpus folder (made when missing) and how many projects it holds."""
    folder = os.path.join(bench_home(), f"corpus-{projects}x{versions}")
    if not os.path.exists(os.path.join(folder, "corpus.json")):
        started = time.monotonic()
        subprocess.check_call([sys.executable, CORPUS, folder, "-n", str(projects),
                               "-v", str(versions)])
        print(f"corpus {folder}: made in {time.monotonic() - started:.0f} s", flush=True)
    with open(os.path.join(folder, "corpus.json")) as f:
        params = json.load(f)
    files = sum(1 for e in os.scandir(os.path.join(folder, "packages"))
                if e.is_file() and not e.name.startswith("."))
    return folder, params["projects"] + (1 if params.get("big_mb") else 0), files


def link_copy(source, target):
    """
    A fresh copy of the files of the folder C{source} at C{target}, made of
    hard links (anything hidden, such as a C{.pypid/} a server left in the
    corpus, is left out).
    """
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    for entry in os.scandir(source):
        if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
            os.link(entry.path, os.path.join(target, entry.name))


def status_of(pid, key):
    """A C{/proc/PID/status} figure (C{VmHWM}, C{VmRSS}), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(pid):
    """The CPU seconds (utime + stime) the process C{pid} used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """One C{twistd pypid} serving C{storage} with the snapshot C{snapshot}."""

    def __init__(self, storage, snapshot, log, venv_bin=VENV_BIN, workers=1):
        self.storage, self.snapshot, self.log = storage, snapshot, log
        self.venv_bin = venv_bin
        self.workers = workers
        self.process = None

    def start(self, projects, timeout=900):
        """
        Start the daemon and poll C{/simple/} every 20 ms until it answers
        200 naming C{projects} projects; return the seconds that took.
        """
        port = free_port()
        url = f"http://127.0.0.1:{port}/simple/"
        home = os.path.join(os.path.dirname(self.log), "home")
        os.makedirs(home, exist_ok=True)
        self.log_file = open(self.log, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [os.path.join(self.venv_bin, "twistd"), "-n", "--pidfile=", "pypid",
             "--listen", f"tcp:{port}:interface=127.0.0.1",
             "--set", f"storage.path={self.storage}", "--set", f"pypid.snapshot={self.snapshot}",
             *(["--set", f"pypid.workers={self.workers}"] if self.workers > 1 else [])],
            cwd=os.path.dirname(self.log), stdout=self.log_file, stderr=subprocess.STDOUT,
            env=clean_env(home, PYTHONUNBUFFERED="1"))
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the daemon stopped (status {self.process.returncode}); "
                                 f"see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    if response.status == 200 and response.read().count(b"<a ") >= projects:
                        took = time.monotonic() - started
                        self.cpu_at_ready = cpu_of(self.process.pid)
                        if self.workers > 1:
                            self.all_up = self._all_up(url, started, deadline)
                        return took
            except OSError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{url} did not list {projects} projects within {timeout} s")

    def _all_up(self, url, started, deadline):
        """With C{--workers}: the seconds from C{started} until C{/health} says all are up."""
        health = url.replace("/simple/", "/health")
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health, timeout=60) as response:
                    if json.loads(response.read())["workers"]["up"] >= self.workers:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"not every worker was up within {deadline - started:.0f} s")

    def logged(self, pattern, timeout=0):
        """The first match of C{pattern} in the log, waiting up to C{timeout} s."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "rb") as f:
                found = pattern.search(f.read())
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)

    def stop(self, timeout=300):
        """
        Stop the daemon cleanly (it saves its snapshot on the way out), or
        kill it after C{timeout} seconds: a bare folder's daemon otherwise
        finishes writing every imported record first, for minutes.
        """
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


def run_case(case, rep, source, work, projects, venv_bin=VENV_BIN):
    """Start one daemon (of C{venv_bin}) for C{case}; return its measurements."""
    if case == "empty":
        storage = os.path.join(work, "empty", "packages")
        shutil.rmtree(os.path.dirname(storage), ignore_errors=True)
        os.makedirs(storage)
        snapshot = os.path.join(work, "empty", "index.json")
        log = os.path.join(work, "empty", "server.log")
        projects = 0
    elif case == "bare":
        storage = os.path.join(work, f"bare-{rep}", "packages")
        link_copy(source, storage)
        snapshot = os.path.join(work, f"bare-{rep}", "index.json")
        log = os.path.join(work, f"bare-{rep}", "server.log")
    else:
        storage = os.path.join(work, "kept", "packages")
        snapshot = os.path.join(work, "kept", "index.json")
        log = os.path.join(work, "kept", f"{case}-{rep}.log")
        if case == "records" and os.path.exists(snapshot):
            os.unlink(snapshot)
    # (a case runs as --workers says; the copy it serves was prepared by one process)
    daemon = Daemon(storage, snapshot, log, venv_bin, WORKERS)
    took = daemon.start(projects)
    result = {"case": case, "rep": rep, "ready_s": round(took, 2),
              "cpu_s": round(daemon.cpu_at_ready, 2),
              "peak_rss_mib": round(status_of(daemon.process.pid, "VmHWM"), 1),
              "rss_mib": round(status_of(daemon.process.pid, "VmRSS"), 1)}
    if WORKERS > 1:
        result["all_up_s"] = round(daemon.all_up, 2)
    loaded = daemon.logged(LOADED)
    if loaded:
        result["load_s"] = float(loaded.group(3))
    if case == "snapshot" and os.path.exists(snapshot):
        result["snapshot_mb"] = round(os.path.getsize(snapshot) / 1e6, 1)
        # (served from the snapshot at once, storage checked right after;
        # a machine's workers scan their shared storage before they serve)
        checked = daemon.logged(CHECKED, timeout=300 if WORKERS == 1 else 0)
        if checked:
            result["check_s"] = float(checked.group(1))
            result["peak_rss_checked_mib"] = round(status_of(daemon.process.pid, "VmHWM"), 1)
    if case in ("bare", "records"):
        # (answered from the filenames; every file described, or its record
        # read, in the background: a daemon stopped before saves no snapshot)
        described = daemon.logged(DESCRIBED, timeout=3600)
        if described:
            result["describe_s"] = float(described.group(2))
            result["peak_rss_described_mib"] = round(status_of(daemon.process.pid, "VmHWM"), 1)
    daemon.stop(timeout=5 if case == "bare" else 300)
    if case in ("bare", "empty"):
        shutil.rmtree(os.path.dirname(storage), ignore_errors=True)
    return result


def prepare_kept(source, work, projects, venv_bin=VENV_BIN):
    """
    The copy the C{records} and C{snapshot} cases share: served once (by the
    daemon of C{venv_bin}) until every file is described and its record kept
    beside it, then stopped, which saves the snapshot. Returns the seconds
    that took.
    """
    storage = os.path.join(work, "kept", "packages")
    snapshot = os.path.join(work, "kept", "index.json")
    if os.path.exists(snapshot) and os.path.isdir(os.path.join(storage, ".pypid", "files")):
        return None
    started = time.monotonic()
    link_copy(source, storage)
    daemon = Daemon(storage, snapshot, os.path.join(work, "kept", "prepare.log"), venv_bin)
    daemon.start(projects)
    if not daemon.logged(DESCRIBED, timeout=7200):
        raise SystemExit(f"the files were not described; see {daemon.log}")
    daemon.stop()
    return time.monotonic() - started


def _spread(values, unit, digits=2):
    """The median of C{values} and their range: C{1.23 s [1.10-1.40]}."""
    return (f"{statistics.median(values):.{digits}f}{unit} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def table(results, files):
    """
    The results as the issue's table: medians of the reps (and their
    range), the ready time and CPU above the floor (the C{empty} case of
    the same rep and source) when it was measured, and each rep.
    """
    lines = [f"| start-up case at {files:,} files | source | ready (full `/simple/`) "
             f"| ready - floor | CPU at ready - floor | peak RSS | index loaded (log) | reps |",
             "|---|---|---|---|---|---|---|---|"]
    floors = {(r["source"], r["rep"]): r for r in results if r["case"] == "empty"}
    sources = list(dict.fromkeys(r["source"] for r in results))
    for case in CASES:
        for source in sources:
            runs = [r for r in results if r["case"] == case and r["source"] == source]
            if not runs:
                continue
            above = [(r["ready_s"] - floors[source, r["rep"]]["ready_s"],
                      r["cpu_s"] - floors[source, r["rep"]]["cpu_s"])
                     for r in runs if (source, r["rep"]) in floors]
            ready = _spread([r["ready_s"] for r in runs], " s")
            over = _spread([a for a, _ in above], " s") if above else "-"
            cpu = _spread([c for _, c in above], " s") if above else "-"
            peak = _spread([r["peak_rss_mib"] for r in runs], " MiB", 0)
            loads = [r["load_s"] for r in runs if "load_s" in r]
            load = f"{statistics.median(loads):.2f} s" if loads else "-"
            each = ", ".join(f"{r['ready_s']:.2f} s / {r['peak_rss_mib']:.0f} MiB"
                             for r in runs)
            lines.append(f"| {LABELS[case]} | {source} | {ready} | {over} | {cpu} | {peak} "
                         f"| {load} | {each} |")
    return "\n".join(lines)


#: the in-process start of the C{--indexes} variant, run in a fresh
#: interpreter: C{argv} = folder, case, whether to trace memory
_START = r"""
import gc, json, os, sys, time
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer
from pypid.core.indexes.index import Index
from pypid.state.loader import IndexLoader
from pypid.storage.base.interface import IStorage

folder, case, trace = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if trace:
    import tracemalloc
    tracemalloc.start()


@implementer(IStorage)
class Idle:
    def identity(self):
        return None

    def statuses(self):
        return succeed({})


def run_now(f, *args):
    return succeed(f(*args))


names = ["default"] if case == "single" else ["default", "release", "stable"]
indexes = {}
peers = indexes.get if case == "multi" else None
started = time.perf_counter()
for name in names:
    index = (Index(lambda r: r.filename) if peers is None
             else Index(lambda r: r.filename, peers=peers))
    indexes[name] = index
    loader = IndexLoader(index, Idle(), os.path.join(folder, name + ".json"), run_now, Clock())
    ensureDeferred(loader.load())
loaded = time.perf_counter() - started
for index in indexes.values():
    if peers is not None:
        index.share_promoted()
    index.later.make()
made = time.perf_counter() - started
result = {"case": case, "load_s": round(loaded, 3), "all_made_s": round(made, 3),
          "files": sum(len(index) for index in indexes.values())}
if case != "single":
    default, release = indexes["default"], indexes["release"]
    promoted = list(release.live_promotions())
    result["promoted"] = len(promoted)
    result["shared"] = sum(release.get_file(f) is default.get_file(f) for f in promoted)
if trace:
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    result["traced_mib"] = round(current / 2**20, 1)
    result["traced_peak_mib"] = round(peak / 2**20, 1)
print(json.dumps(result))
"""


def made_up_records(files):
    """C{files} records of wheels, 5 versions a project, as an upload describes them."""
    import hashlib

    from pypid.core.dists.model import FileRecord

    records = []
    for i in range(files):
        project, version = f"project-{i // 5:05d}", f"1.{i % 5}"
        filename = f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
        digest = hashlib.sha256(filename.encode()).hexdigest()
        records.append(FileRecord(
            filename, project, project, version, "bdist_wheel", filename, 10_000 + i,
            digest, 1767225600.0 + i, blake2_256=digest, md5=digest[:32],
            requires_python=">=3.9", metadata_sha256=digest[::-1],
            summary=f"The {project} project", uploader="ci"))
    return records


def write_indexes(folder, files, promoted):
    """The snapshots of the C{--indexes} variant (see the module's docstring)."""
    from pypid.core.indexes.promotion import Promotion
    from pypid.storage.base import snapshot

    records = made_up_records(files)
    os.makedirs(folder, exist_ok=True)
    snapshot.write(os.path.join(folder, "default.json"),
                   snapshot.lines(records, [], time.time(), 1))
    chosen = records[::round(1 / promoted)]
    for name, source in (("release", "default"), ("stable", "release")):
        # (one promotion a project's release, as POST /api/promote makes them)
        by_release = {}
        for record in chosen:
            by_release.setdefault((record.project, record.version),
                                  Promotion(source, "bob", 1767300000.0 + len(by_release)))
        promotions = {r.filename: by_release[r.project, r.version] for r in chosen}
        snapshot.write(os.path.join(folder, f"{name}.json"),
                       snapshot.lines(chosen, [], time.time(), 1, promotions=promotions))
    return len(chosen)


def start_indexes(folder, case, trace, source=None):
    """One in-process start of the C{--indexes} variant, in a fresh interpreter."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.path.abspath(source)
    out = subprocess.run([sys.executable, "-c", _START, folder, case, "1" if trace else "0"],
                         check=True, capture_output=True, env=env).stdout
    return json.loads(out)


def indexes_variant(options):
    """Run the C{--indexes} variant and print its results and table."""
    folder = os.path.join(bench_home(), f"indexes-{options.files}")
    promoted = write_indexes(folder, options.files, options.promoted)
    print(f"{options.files:,} files in default, {promoted:,} promoted to release and "
          "from there to stable", flush=True)
    runs = [("single", None), ("multi", None), ("multi-unshared", None)]
    if options.baseline_src:
        runs.insert(1, ("single", options.baseline_src))
    results = {}
    try:
        for _ in range(options.reps):
            for case, source in runs:
                result = start_indexes(folder, case, False, source)
                result["source"] = source or "this"
                print(json.dumps(result), flush=True)
                results.setdefault((case, source), []).append(result)
        for case, source in runs:
            result = start_indexes(folder, case, True, source)
            print(json.dumps({**result, "source": source or "this", "traced": True}),
                  flush=True)
            results[case, source].append(result)
    finally:
        if not options.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("| start | source | load (best / median) | every record made | traced memory "
          "(peak) |\n|---|---|---|---|---|")
    for case, source in runs:
        timed = [r for r in results[case, source] if "traced_mib" not in r]
        traced = [r for r in results[case, source] if "traced_mib" in r][0]
        loads = sorted(r["load_s"] for r in timed)
        made = sorted(r["all_made_s"] for r in timed)
        print(f"| {case} | {source or 'this'} | {loads[0]:.3f} / "
              f"{statistics.median(loads):.3f} s | {made[0]:.3f} / "
              f"{statistics.median(made):.3f} s | {traced['traced_mib']:.0f} MiB "
              f"({traced['traced_peak_mib']:.0f}) |")


def main():
    """Run every case C{--reps} times and print the table and the raw results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", action="store_true",
                        help="keep the served copies (and the prepared records) for the next run")
    parser.add_argument("--indexes", action="store_true",
                        help="the in-process variant of several indexes (see above)")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--promoted", type=float, default=0.2)
    parser.add_argument("--baseline-src", default=None,
                        help="with --indexes: a source tree to measure one index against")
    parser.add_argument("--baseline-venv", action="append", default=[],
                        help="a virtual environment whose daemon runs every case too, "
                             "alternating with this one's (may be given several times)")
    parser.add_argument("--workers", type=int, default=1,
                        help="[pypid] workers of every daemon; the time until /health says "
                             "all are up is then reported too (all_up_s)")
    options = parser.parse_args()
    global WORKERS
    WORKERS = options.workers
    if options.indexes:
        indexes_variant(options)
        return
    cases = [c.strip() for c in options.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown case(s) {', '.join(sorted(unknown))}; "
                     f"choose among {', '.join(CASES)}")
    folder, projects, files = corpus(options.projects, options.versions)
    source = os.path.join(folder, "packages")
    work = os.path.join(bench_home(), f"scale-{options.projects}x{options.versions}")
    daemons = [("this", VENV_BIN, work)]
    for venv in options.baseline_venv:
        name = os.path.basename(os.path.dirname(os.path.abspath(venv)))
        daemons.append((name, os.path.join(os.path.abspath(venv), "bin"), f"{work}-{name}"))
    results = []
    try:
        for name, venv_bin, where in daemons:
            os.makedirs(where, exist_ok=True)
            if {"records", "snapshot"} & set(cases):
                took = prepare_kept(source, where, projects, venv_bin)
                if took is not None:
                    print(f"prepare {name} (records and snapshot written): {took:.1f} s",
                          flush=True)
        for rep in range(options.reps):
            # (A B B A: neither daemon always runs first)
            for name, venv_bin, where in daemons if rep % 2 == 0 else daemons[::-1]:
                for case in cases:
                    result = run_case(case, rep, source, where, projects, venv_bin)
                    result["source"] = name
                    print(json.dumps(result), flush=True)
                    results.append(result)
    finally:
        if not options.keep:
            for _, _, where in daemons:
                shutil.rmtree(where, ignore_errors=True)
    print(table(results, files))


if __name__ == "__main__":
    main()
