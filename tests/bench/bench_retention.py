"""
How long a retention plan takes over a large index (issue 29): the bench
corpus of L{tests.bench.bench_scale} (wheels, 5 versions a project, one a
second), loaded in an L{pypid.core.indexes.index.Index}, with download counts for
a third of the files, planned with every rule on (keep the 2 newest
releases, pre-releases older than 30 days (none in the corpus: each
version is parsed for it), keep what was downloaded within 14 days,
protect a glob), best and worst of 5, in process.

Run: C{.venv/bin/python -m tests.bench.bench_retention [files]} (default 100,000).
"""

import sys
import time

from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.retention import RetentionRules, make_plan
from tests.bench.bench_scale import made_up_records

DAY = 86400.0


def main(files: int) -> None:
    records = made_up_records(files)
    index = Index(file_url_for(None))
    index.load(records)
    now = records[-1].upload_time + 40 * DAY
    last = {r.filename: now - (r.upload_time % 20) * DAY for r in records[::3]}
    rules = RetentionRules(keep_releases=2, remove_prereleases_after=30 * DAY,
                           keep_downloaded=14 * DAY, protect=("project-0000*",))
    times = []
    for _ in range(5):
        started = time.perf_counter()
        plan = make_plan("default", ((p.name, p.files.values()) for p in index.projects()),
                         rules, now, last.get)
        times.append(time.perf_counter() - started)
    files_removed = sum(len(removal.files) for removal in plan.removals)
    print(f"{files} files, {len(index.projects())} projects: plan removes {files_removed} "
          f"files ({len(plan.removals)} releases, {plan.size} bytes), kept {dict(plan.kept)}; "
          f"{min(times):.2f}-{max(times):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
