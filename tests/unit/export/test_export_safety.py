"""
Tests of the static export against what a hostile or unlucky world does to
it: exports cut short twice in a row, or while removing; tampered records;
links in the storage or in DEST; a lost manifest; descriptions that arrive
after a project was exported; the modes of what it writes.
"""

import hashlib
import io
import itertools
import json
import os
import types
import zipfile

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import export as cli
from pypid.core.dists.details import describe
from pypid.core.dists.metadata import parse_metadata
from pypid.core.dists.readme import render_description
from pypid.core.indexes.project_status import ProjectStatus
from pypid.export import plan as plans
from pypid.export.exporter import Exporter
from pypid.export.people_files import make_people
from pypid.export.plan import ExportError, ExportSettings
from pypid.export.target import LocalTarget
from tests.harness.distributions import make_wheel
from tests.harness.export import FILES, ExportCase, make_record
from tests.harness.fakes import read_file, run_now, write_file


class Crash(Exception):
    """Raised by L{CrashingTarget} in place of a kill -9."""


class CrashingTarget(LocalTarget):
    """A folder target that dies at its C{n}th write or removal of a path."""

    def __init__(self, root, n):
        LocalTarget.__init__(self, root)
        self._left = n

    def _tick(self, path):
        if path.startswith(".pypid-export"):
            return
        self._left -= 1
        if self._left <= 0:
            raise Crash(path)

    def write(self, path, data, content_type):
        self._tick(path)
        return LocalTarget.write(self, path, data, content_type)

    def remove(self, path):
        self._tick(path)
        return LocalTarget.remove(self, path)

    def put_file(self, path, source, sha256, consume, size=None):
        self._tick(path)
        return LocalTarget.put_file(self, path, source, sha256, consume, size)


def tree(root):
    """Every file under C{root} but the export's own, with its bytes."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, root)] = read_file(path)
    return found


class CutShortTests(ExportCase):
    """Exports killed part of the way, then run again, end as a full export would."""

    def crashing(self, storage, n, settings=None):
        exporter = Exporter(storage, CrashingTarget(self.dest, n), settings or ExportSettings(),
                            run_now, None)
        return exporter.export()

    def full_copy(self, storage):
        dest = os.path.abspath(self.mktemp())
        self.successResultOf(Exporter(storage, LocalTarget(dest), ExportSettings(), run_now, None,
                                      full=True).export())
        return tree(dest)

    def same_as_full(self, storage):
        self.export(storage)
        mine, full = tree(self.dest), self.full_copy(storage)
        mine.pop("simple/index.json", None), full.pop("simple/index.json", None)
        for data in (mine, full):
            for path in [p for p in data if p.startswith("pypi/")]:
                data[path] = json.loads(data[path])
                data[path].pop("last_serial", None)
        self.assertEqual(sorted(mine), sorted(full))
        self.assertEqual(mine, full)

    def test_twice_in_a_row(self):
        """A second export cut short hands on what the first was writing (review defect 1)."""
        storage = self.memory(*FILES)
        self.export(storage)
        storage.objects.update([make_wheel("alpha", "1.2")])
        new = "files/alpha/alpha-1.2-py3-none-any.whl"
        for n in itertools.count(1):
            self.failureResultOf(self.crashing(storage, n), Crash)
            if self.exists(new):
                break  # (cut short just after the new file was put in place)
        # Meanwhile the new file is deleted again, and another project changes.
        record = self.records(storage)["alpha-1.2-py3-none-any.whl"]
        self.successResultOf(storage.delete(record))
        storage.objects.update([make_wheel("beta", "3.0")])
        self.failureResultOf(self.crashing(storage, 2), Crash)
        self.same_as_full(storage)
        self.assertFalse(self.exists(new))

    def test_while_removing(self):
        """
        An export cut short while removing is not trusted for what it
        removed (review defect 2): here the files, when switching to
        --files-url, then back.
        """
        storage = self.memory(*FILES)
        self.export(storage)
        wheel = "files/alpha/alpha-1.0-py3-none-any.whl"
        elsewhere = ExportSettings(files_url="https://files.example/f/")
        for n in itertools.count(1):
            self.failureResultOf(self.crashing(storage, n, elsewhere), Crash)
            if not self.exists(wheel):
                break  # (cut short while removing the files)
        self.same_as_full(storage)
        self.assertTrue(self.exists(wheel))

    def test_every_point(self):
        """Cut short at each of its writes in turn, every next export is a full one's equal."""
        storage = self.memory(*FILES)
        self.export(storage)
        storage.objects.update([make_wheel("gamma", "2.0"), make_wheel("delta", "1.0")])
        for n in itertools.count(1):
            result = []
            self.crashing(storage, n).addBoth(result.append)
            if not (isinstance(result[0], Failure) and result[0].check(Crash)):
                break  # (this one went through: every point was tried)
        self.assertGreater(n, 5)
        self.same_as_full(storage)


    def test_quarantine_at_every_point(self):
        """
        Issue 45: a project quarantined after an export, exported again and
        cut short at each point in turn: a page that does not carry the
        quarantine yet lists only files still there, and the export that
        finishes leaves none of its files, as a full one would.
        """
        storage = self.memory(*FILES)
        self.export(storage)
        alpha = [f for f, _ in FILES if f.startswith("alpha")]
        self.successResultOf(storage.keep_status(
            "alpha", ProjectStatus("quarantined", "under review").to_bytes()))
        for n in itertools.count(1):
            result = []
            self.crashing(storage, n).addBoth(result.append)
            page = self.read("simple/alpha/index.html")
            if b'content="quarantined"' not in page:
                for filename in alpha:
                    self.assertTrue(self.exists(f"files/alpha/{filename}"), (n, filename))
            else:
                self.assertFalse(any(f.encode() in page for f in alpha), n)
            if not (isinstance(result[0], Failure) and result[0].check(Crash)):
                break
        self.assertGreater(n, 3)
        self.same_as_full(storage)
        self.assertFalse(self.exists("files/alpha"))
        self.assertFalse(self.exists("pypi/alpha"))


class TamperedRecordTests(ExportCase):
    """A record is read from storage: its fields must not lead out of DEST."""

    def test_project_with_dots(self):
        """A record naming its project ../../.. is left out, and nothing is written outside."""
        storage = self.folder(*FILES)
        sidecar = os.path.join(storage.root, ".pypid", "files",
                               "alpha-0.9-py3-none-any.whl.json")
        record = json.loads(read_file(sidecar))
        record["project"] = "../../../escaped"
        write_file(sidecar, json.dumps(record).encode())
        report = self.export(storage)
        self.assertIn("alpha-0.9-py3-none-any.whl", " ".join(report.problems))
        outside = os.path.dirname(self.dest)
        self.assertFalse(os.path.exists(os.path.join(outside, "..", "escaped")))
        self.assertFalse(os.path.exists(os.path.join(outside, "escaped")))
        self.assertFalse(self.exists("files/alpha/alpha-0.9-py3-none-any.whl"))

    def test_safe_records(self):
        """Only records whose project and filename agree, normalized, are kept."""
        good = make_record("alpha-1.0-py3-none-any.whl")
        bad = [make_record("alpha-1.0-py3-none-any.whl", project="../x"),
               make_record("alpha-1.0-py3-none-any.whl", project="Alpha"),
               make_record("beta-1.0-py3-none-any.whl", project="alpha"),
               make_record("README.txt")]
        kept, left = plans.safe_records([good, *bad])
        self.assertEqual(kept, [good])
        self.assertEqual([r for r, _ in left], bad)

    def test_manifest_path_outside(self):
        """A manifest edited to list a path outside DEST is refused, and nothing is removed."""
        storage = self.memory(*FILES)
        self.export(storage)
        victim = write_file(os.path.join(os.path.dirname(self.dest), "victim.txt"), b"keep")
        manifest = json.loads(self.read(plans.MANIFEST))
        manifest["root"]["../victim.txt"] = "0" * 64
        write_file(os.path.join(self.dest, plans.MANIFEST), json.dumps(manifest).encode())
        self.failureResultOf(self.exporter(storage).export(), ExportError)
        self.assertEqual(read_file(victim), b"keep")


class LinkTests(SynchronousTestCase):
    """Links: never to a symbolic link, never through one out of DEST."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        self.target = LocalTarget(self.root, "always")
        self.successResultOf(self.target.open())
        self.addCleanup(self.target.close)

    def test_storage_symlink_not_published(self):
        """A storage file that is a symbolic link is linked as the file it is now, not as a link."""
        elsewhere = os.path.abspath(self.mktemp())
        real = write_file(os.path.join(elsewhere, "real.whl"), b"wheel bytes")
        other = write_file(os.path.join(elsewhere, "other"), b"secret")
        link = os.path.join(elsewhere, "link.whl")
        os.symlink(real, link)
        sha = hashlib.sha256(b"wheel bytes").hexdigest()
        self.successResultOf(self.target.put_file("files/a/x.whl", link, sha, False, 11))
        exported = os.path.join(self.root, "files", "a", "x.whl")
        self.assertFalse(os.path.islink(exported))
        os.remove(link)
        os.symlink(other, link)
        self.assertEqual(read_file(exported), b"wheel bytes")

    def test_size_differs_copied_and_checked(self):
        """A file not of its recorded size is copied, so checked, and refused."""
        source = write_file(os.path.join(os.path.abspath(self.mktemp()), "f"), b"other bytes")
        self.failureResultOf(self.target.put_file("files/a/x.whl", source, "0" * 64, False, 3))
        self.assertFalse(os.path.exists(os.path.join(self.root, "files", "a", "x.whl")))

    def test_no_removal_through_a_link(self):
        """A folder of DEST replaced by a link out of it: nothing is removed there."""
        elsewhere = os.path.abspath(self.mktemp())
        victim = write_file(os.path.join(elsewhere, "x.whl"), b"keep")
        os.symlink(elsewhere, os.path.join(self.root, "files"))
        self.failureResultOf(self.target.remove("files/x.whl"), ExportError)
        self.assertEqual(read_file(victim), b"keep")

    def test_public_modes(self):
        """What is written is readable by everyone whatever the umask."""
        old = os.umask(0o077)
        try:
            self.successResultOf(self.target.write("project/a/index.html", b"x", "text/html"))
        finally:
            os.umask(old)
        self.assertEqual(os.stat(os.path.join(self.root, "project", "a", "index.html"))
                         .st_mode & 0o777, 0o644)
        self.assertEqual(os.stat(os.path.join(self.root, "project", "a")).st_mode & 0o777,
                         0o755)


class LostManifestTests(ExportCase):
    """A DEST that holds an export but no manifest is not written over blindly."""

    def test_refused_unless_full(self):
        """The export stops and says so; --full writes it again."""
        storage = self.memory(*FILES)
        self.export(storage)
        os.remove(os.path.join(self.dest, plans.MANIFEST))
        failure = self.failureResultOf(self.exporter(storage).export(), ExportError)
        self.assertIn("--full", str(failure.value))
        self.assertTrue(self.export(storage, full=True).rebuilt)


class LaterDescriptionTests(ExportCase):
    """A description the daemon renders after a project was exported is picked up."""

    def test_picked_up(self):
        """A project rendered without a file's details is rendered again once they exist."""
        storage = self.memory(*FILES)
        people = make_people()
        self.export(storage, people=people)
        record = self.records(storage)["alpha-1.0-py3-none-any.whl"]
        storage._sidecars.details.pop(record.filename, None)
        self.export(storage, people=people, full=True)
        manifest = plans.ExportManifest.from_bytes(self.read(plans.MANIFEST))
        self.assertIn(record.filename, manifest.projects["alpha"].undescribed)
        self.assertEqual(self.export(storage, people=people).changed, 0)
        data = storage.objects[record.path]
        storage._sidecars.details[record.filename] = describe(parse_metadata(_metadata(data)), render_description).to_bytes()
        self.assertEqual(self.export(storage, people=people).changed, 1)
        manifest = plans.ExportManifest.from_bytes(self.read(plans.MANIFEST))
        self.assertNotIn(record.filename, manifest.projects["alpha"].undescribed)


def _metadata(wheel):
    """The METADATA of a wheel's bytes."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name)


class BucketApartTests(SynchronousTestCase):
    """An export into the storage's own bucket must stay out of the storage's keys."""

    def test_overlap_refused(self):
        """Under the storage's prefix, or around it, is refused; beside it is allowed."""
        s3 = types.SimpleNamespace(bucket="pkgs", prefix="", endpoint_url=None)
        config = types.SimpleNamespace(bucket=s3,
                                       storage=types.SimpleNamespace(backend="s3"))
        options = types.SimpleNamespace(bucket="pkgs", prefix="site/", endpoint=None)
        self.assertRaises(ExportError, cli._check_apart_in_bucket, config, options)
        s3.prefix = "store/"
        cli._check_apart_in_bucket(config, options)
        for prefix in ("store/site/", "", "store/"):
            options.prefix = prefix
            self.assertRaises(ExportError, cli._check_apart_in_bucket, config, options)
        options.bucket = "other"
        cli._check_apart_in_bucket(config, options)

    def test_other_cloud_apart(self):
        """A bucket of the same name on another cloud than the storage's is apart from it."""
        gcs = types.SimpleNamespace(bucket="pkgs", prefix="", endpoint_url=None)
        config = types.SimpleNamespace(bucket=gcs,
                                       storage=types.SimpleNamespace(backend="gcs"))
        options = types.SimpleNamespace(bucket="pkgs", prefix="", endpoint=None)
        cli._check_apart_in_bucket(config, options)
