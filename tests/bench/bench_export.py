"""
Measure C{pypid-export} on a storage folder of 20,000 files (2,000 projects
of 10 wheels each, by default): the first, full export; an export when
nothing changed; and incremental exports after one change of one project (a
yank, a new upload, a delete), each as the exporter's own time and as the
whole command (a new interpreter, its imports, the real reactor).

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_export.py [--projects 2000] [--files 10] [--runs 3]

The folder is filled as the daemon leaves it (each wheel with its record
and metadata beside it, and the daemon's snapshot), in a temporary folder on
the same filesystem as the export, so that files are hard-linked.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.defer import maybeDeferred  # noqa: E402

from pypid.core.dists.distribution import inspect  # noqa: E402
from pypid.core.dists.metadata import parse_metadata  # noqa: E402
from pypid.core.dists.model import FileRecord  # noqa: E402
from pypid.export.exporter import Exporter  # noqa: E402
from pypid.export.people_files import make_people  # noqa: E402
from pypid.export.plan import ExportSettings  # noqa: E402
from pypid.export.target import LocalTarget  # noqa: E402
from pypid.storage.base import snapshot as snapshots  # noqa: E402
from pypid.storage.folder.local import LocalStorage  # noqa: E402
from tests.harness.distributions import make_wheel, metadata_text  # noqa: E402

COMMAND = os.path.join(os.path.dirname(sys.executable), "pypid-export")


def run_now(f, *args):
    """Blocking work done at once, as the command does it."""
    return maybeDeferred(f, *args)


def fill(root, projects, per_project):
    """
    Write C{projects} x C{per_project} wheels with their records and
    metadata, as the daemon keeps them; return the records.
    """
    files = os.path.join(root, ".pypid", "files")
    os.makedirs(files)
    records = []
    started = 1767225600.0
    for p in range(projects):
        name = f"bench-project-{p:05d}"
        for v in range(per_project):
            version = f"1.{v}"
            metadata = metadata_text(name, version, requires_python=">=3.9",
                                     summary=f"Project number {p}")
            filename, data = make_wheel(name, version, metadata=metadata)
            with open(os.path.join(root, filename), "wb") as f:
                f.write(data)
            raw = metadata.encode()
            with open(os.path.join(files, filename + ".metadata"), "wb") as f:
                f.write(raw)
            record = FileRecord(
                filename=filename, project=name, name=name, version=version,
                packagetype="bdist_wheel", path=filename, size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
                md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                upload_time=started + p * per_project + v, requires_python=">=3.9",
                metadata_sha256=hashlib.sha256(raw).hexdigest(),
                summary=parse_metadata(raw).summary, uploader="bench")
            with open(os.path.join(files, filename + ".json"), "w") as f:
                json.dump(record.to_json(), f, sort_keys=True)
            records.append(record)
    return records


def done(d):
    """The result of a Deferred that has fired (the storage works at once here)."""
    outcome = []
    d.addBoth(outcome.append)
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


def export(storage_root, dest, snapshot):
    """One export in this process; its report."""
    storage = LocalStorage(storage_root, run_now)
    # (with the pages for people, as the command writes them)
    exporter = Exporter(storage, LocalTarget(dest), ExportSettings(), run_now, snapshot,
                        people=make_people())
    return done(exporter.export())


def command(config, dest):
    """One export by the command, in a new process; its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([COMMAND, dest, "--config", config], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    """Fill a folder, export it, change one project at a time, and export again."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--files", type=int, default=10, help="wheels per project")
    parser.add_argument("--runs", type=int, default=3, help="runs of each incremental case")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-bench-export-")
    try:
        storage_root = os.path.join(work, "packages")
        dest = os.path.join(work, "site")
        snapshot = os.path.join(work, "index.json")
        config = os.path.join(work, "pypid.ini")
        with open(config, "w") as f:
            f.write(f"[pypid]\nsnapshot = {snapshot}\n[storage]\npath = {storage_root}\n")
        started = time.perf_counter()
        records = fill(storage_root, options.projects, options.files)
        time.sleep(0.01)
        snapshots.write(snapshot, snapshots.encode(records, [], time.time(),
                                                   storage=f"local:{storage_root}"))
        print(f"{len(records)} files in {options.projects} projects written in "
              f"{time.perf_counter() - started:.1f} s")

        report = export(storage_root, dest, snapshot)
        print(f"full export:            {report.seconds:6.3f} s "
              f"({report.written} paths written)")
        report = export(storage_root, dest, snapshot)
        print(f"nothing changed:        {report.seconds:6.3f} s "
              f"({report.written} paths written)")
        print(f"  the command:          {command(config, dest):6.3f} s")

        # (the daemon, changing its storage between exports; the exports
        # themselves never prepare it, nor write into it)
        storage = LocalStorage(storage_root, run_now)
        done(storage.prepare())
        by_name = {r.filename: r for r in records}
        cases = []
        for run in range(options.runs):
            yanked = records[(run * 7919) % len(records)]

            def yank(target=yanked, run=run):
                done(storage.update(target.replace(yanked=f"bad {run}")))
            cases.append(("a yank", yank))

            uploaded = records[(run * 104729) % len(records)].name

            def upload(run=run, project=uploaded):
                filename, data = make_wheel(project, f"9.{run}")
                path = os.path.join(storage.temp_dir, "bench.part")
                os.makedirs(storage.temp_dir, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                inspected = inspect(path, filename, filename, time.time())
                done(storage.publish(path, inspected.record, inspected.metadata))
            cases.append(("an upload", upload))

            deleted = records[(run * 15485863) % len(records)]

            def delete(target=deleted):
                done(storage.delete(by_name[target.filename]))
            cases.append(("a delete", delete))

        times = {}
        for label, change in cases:
            change()
            report = export(storage_root, dest, snapshot)
            assert report.changed == 1, (label, report)
            times.setdefault(label, []).append((report.seconds, report.written,
                                                report.deleted))
        for label, runs in times.items():
            seconds = [s for s, _w, _d in runs]
            print(f"one project, {label:>9}: {statistics.median(seconds):6.3f} s median, "
                  f"{max(seconds):.3f} worst ({runs[0][1]} written, {runs[0][2]} removed)")
        walls = []
        for run in range(options.runs):
            done(storage.update(records[-1 - run].replace(yanked=f"cmd {run}")))
            walls.append(command(config, dest))
        print(f"a yank, the command:    {statistics.median(walls):6.3f} s median, "
              f"{max(walls):.3f} worst (interpreter start and imports included)")
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
