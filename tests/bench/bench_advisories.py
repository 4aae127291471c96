"""
How long a full advisory export takes to load, in how much memory, and
what matching it against 100,000 files costs (issue 27). Not a test: a
script, run by hand (its figures go in the issue's closing note).

    .venv/bin/python tests/bench/bench_advisories.py [--records 40000] [--projects 12000]
        [--files 100000] [--keep PATH]

The export is synthetic but of the real one's shape: records of 2-4 KB
(summary, details, references, a CVSS vector or a GitHub severity), a
third of them PYSEC records whose GHSA twin names them as an alias (so
aliases are merged), ranges with one to three introduced/fixed pairs,
some with explicit version lists of up to 40 versions, a few withdrawn;
projects named with a skew (a few projects have dozens of advisories).
The files: 100,000 (project, version) pairs, a tenth of the projects
named by some advisory.

The load runs L{pypid.advisories.compact_cache.read_sources} as the child
does (archive read, JSON parsed, advisories merged and indexed); memory
is the tracemalloc peak during it and what the database keeps after it,
and the process's peak RSS.

With C{--daemon}, the start-up of the real daemon instead (issue 43,
part 5): C{twistd pypid}, as the end-to-end tests start it, on an empty
storage, in three cases alternated round by round (ABC, then CBA, ...):

  - C{none}: no advisories (the empty-start floor);
  - C{cold}: C{[advisories] path} the synthetic export of C{--records}
    records, C{[pypid] advisories = deny}, with no compact cache beside
    the snapshot (the first start after the export changed);
  - C{warm}: the same, the cache the cold start wrote present.

With C{--baseline-src DIR} (a copy of an older commit's C{src/}, put
first on the daemon's C{PYTHONPATH}), two more cases join each round,
the code before: C{base-none} and C{base} (its advisories, read as it
reads them), so the two codes alternate in one run.

Each start is timed from the process's spawn until C{GET /simple/}
answers 200 (polled every 10 ms: ready), with the daemon's RSS and CPU
(utime+stime) at that moment; then until the log says the advisories
are in force (C{Loaded N advisories}), with its RSS and peak RSS (VmHWM)
then. Each case's deltas are paired, round by round, with the
C{none} (or C{base-none}) start of the same round::

    .venv/bin/python tests/bench/bench_advisories.py --daemon [--records 20000]
        [--rounds 5] [--baseline-src /tmp/base/src] [--json out.json]
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pypid.advisories.compact_cache import read_sources  # noqa: E402
from pypid.advisories.osv_archive import ArchiveLimits  # noqa: E402
from pypid.core.dists.version_order import release_key
from pypid.core.security.advisories import (  # noqa: E402
    AdvisoryBoard,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.affected_releases import parsed_version  # noqa: E402
from pypid.core.security.osv import cvss_score  # noqa: E402

VECTORS = ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
           "CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:N",
           "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
           "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"]
WORDS = "the a of to in and is that for on with as by an be this are from at or it".split()


def project_name(i):
    return f"project-{i:05d}"


def sentence(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_export(path, records, projects, seed=1):
    """Write a synthetic export of C{records} records over C{projects} projects; its size."""
    rng = random.Random(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        i = 0
        while i < records:
            # (a skew: low-numbered projects are named far more often)
            project = project_name(min(int(rng.paretovariate(1.2)) - 1, projects - 1)
                                   if rng.random() < 0.3 else rng.randrange(projects))
            events = []
            version = 0
            for _ in range(rng.randint(1, 3)):
                version += rng.randint(0, 3)
                events.append({"introduced": f"{version}.{rng.randint(0, 9)}" if version
                               else "0"})
                version += rng.randint(1, 3)
                events.append({"fixed": f"{version}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"})
            affected = {"package": {"ecosystem": "PyPI", "name": project,
                                    "purl": f"pkg:pypi/{project}"},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}]}
            if rng.random() < 0.4:
                affected["versions"] = [f"{v // 10}.{v % 10}" for v in range(rng.randint(1, 40))]
            ident = f"PYSEC-2026-{i}"
            twin = f"GHSA-{i:04x}-{rng.randrange(1 << 16):04x}-{rng.randrange(1 << 16):04x}"
            base = {"schema_version": "1.6.0", "modified": "2026-10-01T00:00:00Z",
                    "published": "2026-01-01T00:00:00Z",
                    "summary": sentence(rng, 12), "details": sentence(rng, rng.randint(150, 450)),
                    "affected": [affected],
                    "references": [{"type": "ADVISORY", "url": f"https://advisories.example/{i}"},
                                   {"type": "WEB", "url": f"https://code.example/{project}"}]}
            if rng.random() < 0.7:
                base["severity"] = [{"type": "CVSS_V3" if "3.1" in (v := rng.choice(VECTORS))
                                     else "CVSS_V4", "score": v}]
            else:
                base["database_specific"] = {"severity": rng.choice(
                    ["LOW", "MODERATE", "HIGH", "CRITICAL"])}
            if rng.random() < 0.01:
                base["withdrawn"] = "2026-02-01T00:00:00Z"
            z.writestr(f"{ident}.json", json.dumps({**base, "id": ident, "aliases": [twin]}))
            i += 1
            if rng.random() < 0.5 and i < records:
                z.writestr(f"{twin}.json", json.dumps({**base, "id": twin, "aliases": [ident]}))
                i += 1
    return os.path.getsize(path)


#: What the daemon logs once the advisories are in force.
LOADED = re.compile(rb"Loaded (\d+) advisor(?:y|ies) for (\d+) projects?")

#: The start-up cases of C{--daemon}, in the order of a round (and of the
#: code before, with C{--baseline-src}); each case's floor.
CASES = ("none", "cold", "warm")
BASE_CASES = ("base-none", "base")
FLOOR = {"none": "none", "cold": "none", "warm": "none", "base-none": "base-none",
         "base": "base-none"}


def proc_figures(pid):
    """
    C{(RSS MiB, peak RSS MiB, CPU s, CPU s with the children waited for)}
    of process C{pid} now (the child that reads the export is waited for).
    """
    figures = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    return (figures["VmRSS"], figures["VmHWM"], own,
            own + (int(fields[13]) + int(fields[14])) / ticks)


def start_daemon(work, case, export, baseline_src, timeout=300):
    """
    Start one daemon of C{case} in C{work}; return its figures at ready
    and once the advisories are in force. C{baseline_src} is used by the
    C{base} cases only.
    """
    if not case.startswith("base"):
        baseline_src = None
    from tests.harness.e2e import clean_env, free_port
    venv_bin = os.path.dirname(sys.executable)
    os.makedirs(os.path.join(work, "packages"), exist_ok=True)
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    snapshot = os.path.join(work, "var", "index.json")
    if case == "cold":
        shutil.rmtree(snapshot + ".d", ignore_errors=True)
    port = free_port()
    argv = [os.path.join(venv_bin, "twistd"), "-n", "--pidfile=", "pypid",
            "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--set", f"storage.path={os.path.join(work, 'packages')}",
            "--set", f"pypid.snapshot={snapshot}"]
    if FLOOR[case] != case:
        argv += ["--set", "pypid.advisories=deny", "--set", f"advisories.path={export}",
                 "--set", "advisories.refresh=0"]
    extra = {"PYTHONUNBUFFERED": "1"}
    if baseline_src:
        extra["PYTHONPATH"] = baseline_src
    log_path = os.path.join(work, f"{case}.log")
    url = f"http://127.0.0.1:{port}/simple/"
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                   env=clean_env(home, **extra))
        try:
            deadline = started + timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon did not start; see {log_path}")
                try:
                    with urllib.request.urlopen(url, timeout=60) as response:
                        if response.status == 200:
                            ready = time.monotonic() - started
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            rss, _, cpu, _ = proc_figures(process.pid)
            result = {"case": case, "ready_s": ready, "rss_ready": rss, "cpu_ready": cpu}
            if FLOOR[case] != case:
                while True:
                    with open(log_path, "rb") as f:
                        found = LOADED.search(f.read())
                    if found:
                        break
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the advisories were not loaded; see {log_path}")
                    time.sleep(0.01)
                result["loaded_s"] = time.monotonic() - started
                result["advisories"] = int(found.group(1))
            # (a moment for the collector and the last replies, the same in every case)
            time.sleep(0.5)
            rss, peak, cpu, tree = proc_figures(process.pid)
            result.update(rss_loaded=rss, peak=peak, cpu_loaded=cpu, cpu_tree=tree)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return result


def spread(values, digits=2):
    """C{median [min-max]} of C{values}."""
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def daemon_main(options):
    """The C{--daemon} mode: start-up with and without advisories, cold and warm."""
    work = tempfile.mkdtemp(prefix="bench-advisories-")
    export = os.path.join(work, "osv-pypi.zip")
    size = make_export(export, options.records, options.projects)
    print(f"export: {options.records} records, {size / 1e6:.1f} MB zipped"
          + (f"; code: {options.baseline_src}" if options.baseline_src else ""))
    cases = CASES + (BASE_CASES if options.baseline_src else ())
    # (a first start of each case, not counted: the byte-code compiled, the
    # cache written, the snapshot made; each code in its own folder)
    folders = {case: os.path.join(work, "base" if case.startswith("base") else "server")
               for case in cases}
    for case in cases:
        start_daemon(folders[case], case, export, options.baseline_src)
    results = []
    for i in range(options.rounds):
        order = cases if i % 2 == 0 else tuple(reversed(cases))
        for case in order:
            result = start_daemon(folders[case], case, export, options.baseline_src)
            result["round"] = i
            results.append(result)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in result.items()}), flush=True)
    by_case = {case: [r for r in results if r["case"] == case] for case in cases}
    print(f"\n{options.rounds} rounds; median [min-max]; deltas paired round by round "
          "against the floor (none, base-none)\n")
    print("| case | ready s | ready - floor s | RSS at ready MiB | RSS - floor MiB "
          "| CPU at ready s | in force s | RSS in force MiB | in force - floor MiB | peak MiB "
          "| CPU in force s (with child) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, runs in by_case.items():
        paired = list(zip(runs, by_case[FLOOR[case]], strict=True))
        row = [case, spread([r["ready_s"] for r in runs]),
               spread([r["ready_s"] - n["ready_s"] for r, n in paired]),
               spread([r["rss_ready"] for r in runs], 0),
               spread([r["rss_ready"] - n["rss_ready"] for r, n in paired], 0),
               spread([r["cpu_ready"] for r in runs]),
               spread([r["loaded_s"] for r in runs]) if FLOOR[case] != case else "-",
               spread([r["rss_loaded"] for r in runs], 0),
               spread([r["rss_loaded"] - n["rss_loaded"] for r, n in paired], 0),
               spread([r["peak"] for r in runs], 0),
               f"{spread([r['cpu_loaded'] for r in runs])} "
               f"({spread([r['cpu_tree'] for r in runs])})"]
        print("| " + " | ".join(row) + " |")
    if options.json:
        with open(options.json, "w") as f:
            json.dump(results, f, indent=1)
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--daemon", action="store_true",
                        help="measure the real daemon's start-up instead")
    parser.add_argument("--rounds", type=int, default=5, help="--daemon: rounds of 3 starts")
    parser.add_argument("--baseline-src", help="--daemon: run this source tree's pypid")
    parser.add_argument("--json", help="--daemon: write every start's figures here")
    parser.add_argument("--records", type=int, default=None,
                        help="records of the export (40,000; 20,000 with --daemon)")
    parser.add_argument("--projects", type=int, default=12_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keep", help="write the export here (and keep it)")
    options = parser.parse_args()
    if options.records is None:
        options.records = 20_000 if options.daemon else 40_000
    if options.daemon:
        return daemon_main(options)
    path = options.keep or os.path.join(tempfile.mkdtemp(), "osv-pypi.zip")
    started = time.monotonic()
    size = make_export(path, options.records, options.projects)
    print(f"export: {options.records} records, {size / 1e6:.1f} MB zipped, "
          f"made in {time.monotonic() - started:.1f} s")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = read_sources(path, None, ArchiveLimits())
    took = time.monotonic() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    db = result.db
    print(f"load: {len(db)} advisories of {len(db.by_project)} projects "
          f"({result.records} records, {result.withdrawn} withdrawn) in {took:.2f} s; "
          f"peak RSS {rss_after / 1024:.0f} MiB (+{(rss_after - rss_before) / 1024:.0f} MiB)")
    started = time.monotonic()
    read_sources(path, None, ArchiveLimits())
    print(f"load again (a refresh: versions and vectors remembered): "
          f"{time.monotonic() - started:.2f} s")
    release_key.cache_clear()
    parsed_version.cache_clear()
    cvss_score.cache_clear()
    tracemalloc.start()
    again = read_sources(path, None, ArchiveLimits())
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory (tracemalloc, caches cleared): peak {peak / 2**20:.0f} MiB during the "
          f"load, {kept / 2**20:.0f} MiB kept after it")
    del again

    rng = random.Random(2)
    named = sorted(db.by_project)
    files = []
    for _ in range(options.files):
        if rng.random() < 0.1:
            project = rng.choice(named)
        else:
            project = project_name(options.projects + rng.randrange(50_000))
        files.append((project, f"{rng.randint(0, 12)}.{rng.randint(0, 9)}"))
    board = AdvisoryBoard(result.db)
    policy = AdvisoryPolicy(AdvisoryRules.parse("deny", "medium"), board)
    started = time.monotonic()
    hits = sum(1 for project, version in files if policy.verdict(project, version))
    first = time.monotonic() - started
    started = time.monotonic()
    for project, version in files:
        policy.verdict(project, version)
    again = time.monotonic() - started
    print(f"match {options.files} files: {hits} denied; first pass {first:.2f} s "
          f"({first / options.files * 1e6:.1f} us a file), memoized {again * 1e3:.0f} ms "
          f"({again / options.files * 1e6:.2f} us a file)")
    if not options.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
