"""
Measure how start-up scales with the number of files: the time until
C{GET /simple/} answers 200 naming every project, and the peak memory, of a
real daemon started on a corpus of C{--projects} x C{--versions} wheels
(default 20,000 x 5: 100,000 files, the figures of issue 14), in three cases:

  - C{bare}: a folder of files only, as pypiserver keeps one (no C{.pypid/},
    no snapshot): answered from the filenames, every file then opened and
    hashed in the background (C{describe_s}, from the log);
  - C{records}: the records kept beside the files (C{.pypid/files/}), the
    snapshot deleted: answered from the filenames too, every record read
    in the background (C{describe_s});
  - C{snapshot}: from the snapshot, with the records beside the files,
    checked against storage after the server answers (C{check_s}).

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench_scale.py [--projects 20000] [--versions 5]
        [--cases bare,records,snapshot] [--reps 3] [--keep]

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e import clean_env, free_port  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "..", "shared", "bench", "corpus.py")
CASES = ("bare", "records", "snapshot")
LABELS = {
    "bare": "bare folder (no snapshot, no records)",
    "records": "snapshot deleted, records kept beside the files",
    "snapshot": "from the snapshot",
}
LOADED = re.compile(rb"Index loaded: (\d+) files in (\d+) projects .* in ([0-9.]+) s")
CHECKED = re.compile(rb"Storage checked against the snapshot in ([0-9.]+) s")
DESCRIBED = re.compile(rb"Described (\d+) files \((\d+) not distributions\) in ([0-9.]+) s")


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


class Daemon:
    """One C{twistd pypid} serving C{storage} with the snapshot C{snapshot}."""

    def __init__(self, storage, snapshot, log):
        self.storage, self.snapshot, self.log = storage, snapshot, log
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
            [os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "pypid",
             "--listen", f"tcp:{port}:interface=127.0.0.1",
             "--set", f"storage.path={self.storage}", "--set", f"pypid.snapshot={self.snapshot}"],
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
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{url} did not list {projects} projects within {timeout} s")

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


def run_case(case, rep, source, work, projects):
    """Start one daemon for C{case}; return its measurements."""
    if case == "bare":
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
    daemon = Daemon(storage, snapshot, log)
    took = daemon.start(projects)
    result = {"case": case, "rep": rep, "ready_s": round(took, 2),
              "peak_rss_mib": round(status_of(daemon.process.pid, "VmHWM"), 1),
              "rss_mib": round(status_of(daemon.process.pid, "VmRSS"), 1)}
    loaded = daemon.logged(LOADED)
    if loaded:
        result["load_s"] = float(loaded.group(3))
    if case == "snapshot" and os.path.exists(snapshot):
        result["snapshot_mb"] = round(os.path.getsize(snapshot) / 1e6, 1)
        # (served from the snapshot at once, storage checked right after)
        checked = daemon.logged(CHECKED, timeout=300)
        if checked:
            result["check_s"] = float(checked.group(1))
            result["peak_rss_checked_mib"] = round(status_of(daemon.process.pid, "VmHWM"), 1)
    if case in ("bare", "records"):
        # (answered from the filenames; every file described, or its record
        # read, in the background: a daemon stopped before saves no snapshot)
        described = daemon.logged(DESCRIBED, timeout=3600)
        if described:
            result["describe_s"] = float(described.group(3))
            result["peak_rss_described_mib"] = round(status_of(daemon.process.pid, "VmHWM"), 1)
    daemon.stop(timeout=5 if case == "bare" else 300)
    if case == "bare":
        shutil.rmtree(os.path.dirname(storage), ignore_errors=True)
    return result


def prepare_kept(source, work, projects):
    """
    The copy the C{records} and C{snapshot} cases share: served once until
    every file is described and its record kept beside it, then stopped,
    which saves the snapshot. Returns the seconds that took.
    """
    storage = os.path.join(work, "kept", "packages")
    snapshot = os.path.join(work, "kept", "index.json")
    if os.path.exists(snapshot) and os.path.isdir(os.path.join(storage, ".pypid", "files")):
        return None
    started = time.monotonic()
    link_copy(source, storage)
    daemon = Daemon(storage, snapshot, os.path.join(work, "kept", "prepare.log"))
    daemon.start(projects)
    if not daemon.logged(DESCRIBED, timeout=7200):
        raise SystemExit(f"the files were not described; see {daemon.log}")
    daemon.stop()
    return time.monotonic() - started


def table(results, files):
    """The results as the issue's table: medians of the reps, and each rep."""
    lines = [f"| start-up case at {files:,} files | ready (full `/simple/`) | peak RSS "
             f"| index loaded (log) | reps |", "|---|---|---|---|---|"]
    for case in CASES:
        runs = [r for r in results if r["case"] == case]
        if not runs:
            continue
        ready = statistics.median(r["ready_s"] for r in runs)
        peak = statistics.median(r["peak_rss_mib"] for r in runs)
        loads = [r["load_s"] for r in runs if "load_s" in r]
        load = f"{statistics.median(loads):.2f} s" if loads else "-"
        each = ", ".join(f"{r['ready_s']:.2f} s / {r['peak_rss_mib']:.0f} MiB" for r in runs)
        lines.append(f"| {LABELS[case]} | {ready:.2f} s | {peak:.0f} MiB | {load} | {each} |")
    return "\n".join(lines)


def main():
    """Run every case C{--reps} times and print the table and the raw results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", action="store_true",
                        help="keep the served copies (and the prepared records) for the next run")
    options = parser.parse_args()
    cases = [c.strip() for c in options.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown case(s) {', '.join(sorted(unknown))}; "
                     f"choose among {', '.join(CASES)}")
    folder, projects, files = corpus(options.projects, options.versions)
    source = os.path.join(folder, "packages")
    work = os.path.join(bench_home(), f"scale-{options.projects}x{options.versions}")
    os.makedirs(work, exist_ok=True)
    results = []
    try:
        if {"records", "snapshot"} & set(cases):
            took = prepare_kept(source, work, projects)
            if took is not None:
                print(f"prepare (records and snapshot written): {took:.1f} s", flush=True)
        for rep in range(options.reps):
            for case in cases:
                result = run_case(case, rep, source, work, projects)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results, files))


if __name__ == "__main__":
    main()
