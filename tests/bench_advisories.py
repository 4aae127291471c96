"""
How long a full advisory export takes to load, in how much memory, and
what matching it against 100,000 files costs (issue 27). Not a test: a
script, run by hand (its figures go in the issue's closing note).

    .venv/bin/python tests/bench_advisories.py [--records 40000] [--projects 12000]
        [--files 100000] [--keep PATH]

The export is synthetic but of the real one's shape: records of 2-4 KB
(summary, details, references, a CVSS vector or a GitHub severity), a
third of them PYSEC records whose GHSA twin names them as an alias (so
aliases are merged), ranges with one to three introduced/fixed pairs,
some with explicit version lists of up to 40 versions, a few withdrawn;
projects named with a skew (a few projects have dozens of advisories).
The files: 100,000 (project, version) pairs, a tenth of the projects
named by some advisory.

The load runs L{pypid.advisories.feed.read_sources} as the part
does (archive read, JSON parsed, advisories merged and indexed); memory
is the tracemalloc peak during it and what the database keeps after it,
and the process's peak RSS.
"""

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pypid.advisories.feed import read_sources  # noqa: E402
from pypid.advisories.osv_archive import ArchiveLimits  # noqa: E402
from pypid.core.advisories import (  # noqa: E402
    AdvisoryBoard,
    AdvisoryPolicy,
    AdvisoryRules,
    parsed_version,
    release_key,
)
from pypid.core.osv import cvss_score  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--projects", type=int, default=12_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keep", help="write the export here (and keep it)")
    options = parser.parse_args()
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
