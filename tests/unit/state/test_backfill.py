"""
Tests for answering a bare folder from its filenames at once and describing
its files in the background: L{pypid.core.indexes.pending}, L{pypid.state.backfill}, the
local storage's C{later} scan and C{describe_pending}, and the pages that
wait for a project's files.
"""

import json
import os

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes.index import Index
from pypid.core.indexes.pending import DescribeQueue, PendingFile, project_of
from pypid.state.backfill import Backfill
from pypid.storage.folder.local import LocalStorage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import one_index, run_now, write_file


class ProjectOfTests(SynchronousTestCase):
    """L{project_of} reads the project from a filename alone."""

    def test_names(self):
        """Wheels and sdists, old and new spellings; not other files."""
        cases = {
            "Demo.Pkg-1.0-py3-none-any.whl": ("demo-pkg", "Demo.Pkg"),
            "demo_pkg-2.0.tar.gz": ("demo-pkg", "demo_pkg"),
            "my-old-project-1.0.zip": ("my-old-project", "my-old-project"),
            # (served from a folder as the others: listed at once too, issue 69)
            "Old.Style-0.9.tar.bz2": ("old-style", "Old.Style"),
            "older-0.1.tgz": ("older", "older"),
            "name-v2.0.tar.gz": ("name", "name"),
            "notes.txt": None,
            "noversion.tar.gz": None,
            "-1.0.tar.gz": None,
            "bad name-1.0-py3-none-any.whl": None,
            # (ASCII only: lookalikes of names an [acl] rule may cover)
            "\u017fecret-1.0.tar.gz": None,
            "\u212aey-1.0-py3-none-any.whl": None,
            "name\n-1.0.tar.gz": None,
            "name-\u0661.0.tar.gz": None,
        }
        for filename, expected in cases.items():
            self.assertEqual(project_of(filename), expected, filename)


class DescribeQueueTests(SynchronousTestCase):
    """L{DescribeQueue} describes in order found, the project asked for first."""

    def test_order(self):
        queue = DescribeQueue()
        for name in ("a", "b", "c"):
            queue.add(name, [PendingFile(f"{name}-1.0.tar.gz", "k", 1, 0.0)] * 2)
        self.assertEqual((queue.files, len(queue), queue.of("b")), (6, 3, 2))
        queue.first("c")
        queue.first("unknown")
        self.assertEqual([queue.take()[0] for _ in range(3)], ["c", "a", "b"])
        self.assertIsNone(queue.take())
        self.assertEqual(queue.files, 0)


class HeldStorage:
    """A storage whose C{describe_pending} answers when the test says."""

    def __init__(self, records):
        self.records = records
        self.asked = []

    def describe_pending(self, files):
        d = Deferred()
        self.asked.append((files, d))
        return d

    def answer(self):
        files, d = self.asked.pop(0)
        d.callback([(f, self.records.get(f.filename, "not a distribution")) for f in files])


def begun(backfill, files, done=None):
    """C{backfill}, its files C{note}d and begun at once, as the loader does in two steps."""
    backfill.note(files)
    backfill.begin(done)
    return backfill


def pending(filename):
    return PendingFile(filename, filename, 10, 1767225600.0)


class DescriberTests(SynchronousTestCase):
    """L{Backfill} fills the index a project at a time."""

    def setUp(self):
        from pypid.core.dists.distribution import inspect
        self.clock = Clock()
        self.index = Index(lambda r: r.filename)
        folder = self.mktemp()
        os.makedirs(folder)
        self.records = {}
        for name, version in (("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0"),
                              ("gamma", "1.0")):
            filename, data = make_wheel(name, version)
            path = os.path.join(folder, filename)
            write_file(path, data)
            self.records[filename] = inspect(path, filename, filename, 1767225600.0).record
        self.storage = HeldStorage(self.records)
        self.finished = []
        self.backfill = self.start(workers=1)

    def start(self, workers):
        """A backfill of C{workers} at once, started on the files."""
        backfill = Backfill(self.index, self.storage, self.clock, wait_limit=10.0,
                              workers=workers)
        begun(backfill, [pending(f) for f in self.records] + [pending("junk-1.0.tar.gz"),
                                                             pending("readme.txt")],
              lambda: self.finished.append(True))
        return backfill

    def test_waits_for_after(self):
        """
        Noted (as the index loads), the projects are listed at once; the
        describing begins only when told to (once the server listens).
        """
        self.storage.asked.clear()
        self.index = Index(lambda r: r.filename)
        listening = Deferred()
        backfill = Backfill(self.index, self.storage, self.clock)
        backfill.note([pending(f) for f in self.records])
        listening.addCallback(lambda _: backfill.begin())
        self.assertEqual(len(self.index.projects()), 3)
        self.assertEqual(self.storage.asked, [])
        self.assertTrue(backfill.is_pending("alpha"))
        listening.callback(None)
        self.assertEqual(len(self.storage.asked), 2)

    def test_two_at_a_time(self):
        """
        Two workers describe two projects at once; the work ends (and is
        said to) once both are done with the queue.
        """
        self.storage.asked.clear()
        self.index = Index(lambda r: r.filename)
        self.backfill = self.start(workers=2)
        self.assertEqual([[f.filename for f in files][0] for files, _ in self.storage.asked],
                         ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"])
        self.assertTrue(self.backfill.is_pending("alpha"))
        self.assertTrue(self.backfill.is_pending("beta"))
        self.assertEqual(self.backfill.remaining, 6)
        while self.storage.asked:
            self.storage.answer()
        self.assertEqual(self.finished, [True])
        self.assertEqual(len(self.index), 4)
        self.assertEqual(self.backfill.remaining, 0)

    def test_counts_add_up(self):
        """
        The start's lines count the same files: those a name tells no
        project of apart from the projects (they counted as one more
        project: "5 projects, then 4", issue 69), and the end says how many
        were served of those described.
        """
        self.index, self.storage = Index(lambda r: r.filename), HeldStorage(self.records)
        with capturedLogs() as events:
            backfill = Backfill(self.index, self.storage, self.clock, name="staging")
            begun(backfill, [pending(f) for f in self.records]
                  + [pending("junk-1.0.tar.gz"), pending("readme.txt")])
            while self.storage.asked:
                self.storage.answer()
        lines = [formatEvent(e) for e in events if "escrib" in e["log_format"]]
        self.assertEqual(lines, [
            "Describing 6 files (5 of 4 projects, 1 not named as distributions) of index "
            "staging found without a record; their pages answer once they are",
            "Described 6 files of index staging in 0.0 s: 4 distributions, 2 not served"])

    def test_one_of_each(self):
        """A file of a project, on a server of one index: said in the singular, no name."""
        self.index, self.storage = Index(lambda r: r.filename), HeldStorage(self.records)
        with capturedLogs() as events:
            begun(Backfill(self.index, self.storage, self.clock),
                  [pending("alpha-1.0-py3-none-any.whl")])
            self.storage.answer()
        self.assertEqual([formatEvent(e) for e in events if "escrib" in e["log_format"]], [
            "Describing 1 file of 1 project found without a record; their pages answer "
            "once they are",
            "Described 1 file in 0.0 s: 1 distribution, 0 not served"])

    def test_listed_at_once(self):
        """Every project a filename names is listed before any file is described."""
        self.assertEqual([p.name for p in self.index.projects()],
                         ["alpha", "beta", "gamma", "junk"])
        self.assertEqual(len(self.index), 0)
        self.assertEqual(self.backfill.remaining, 6)
        self.assertTrue(self.backfill.is_pending("beta"))
        self.assertFalse(self.backfill.is_pending("delta"))

    def test_asked_for_first(self):
        """
        A page asked for waits for its project, which goes first; then it
        is served with what was described, and the rest follows.
        """
        files, _ = self.storage.asked[0]
        self.assertEqual([f.filename for f in files][0], "alpha-1.0-py3-none-any.whl")
        waited = self.backfill.when_described("gamma")
        self.assertNoResult(waited)
        self.storage.answer()  # (alpha, already asked for)
        self.assertNoResult(waited)
        self.assertEqual([f.filename for f in self.storage.asked[0][0]],
                         ["gamma-1.0-py3-none-any.whl"])
        self.storage.answer()
        self.assertTrue(self.successResultOf(waited))
        self.assertEqual(self.index.project("gamma").pending, 0)
        self.assertEqual(len(self.index.project("gamma").files), 1)
        self.assertEqual(self.index.project("beta").pending, 1)
        self.assertTrue(self.successResultOf(self.backfill.when_described("alpha")))
        while self.storage.asked:
            self.storage.answer()
        self.assertEqual(self.finished, [True])
        self.assertEqual(sorted(r.filename for r in self.index.records()),
                         sorted(self.records))
        self.assertIsNone(self.index.project("junk"))
        self.assertEqual((self.backfill.described, self.backfill.refused), (4, 2))
        self.assertEqual(self.backfill.remaining, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_metrics(self):
        """C{/metrics} tells how many files are still to be read, and how many were."""
        from pypid.web.admin.exposition import Collector

        def values():
            return {family.name: family.samples[0].value
                    for family in Collector((self.backfill,)).collect()}
        self.assertEqual(values(), {"pypid_files_to_describe": 6, "pypid_files_described": 0,
                                    "pypid_files_not_distributions": 0})
        while self.storage.asked:
            self.storage.answer()
        self.assertEqual(values(), {"pypid_files_to_describe": 0, "pypid_files_described": 4,
                                    "pypid_files_not_distributions": 2})

    def test_wait_limit(self):
        """A page waits L{Backfill.wait_limit} at most, then is told so (no timer left)."""
        waited = self.backfill.when_described("beta")
        self.clock.advance(9.9)
        self.assertNoResult(waited)
        self.clock.advance(0.2)
        self.assertFalse(self.successResultOf(waited))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_changes_meanwhile_win(self):
        """
        A file uploaded or deleted through the server while it waited to be
        described is left as the server made it.
        """
        first = sorted(self.records)[0]
        self.index.remove(first)
        self.storage.answer()
        self.assertIsNone(self.index.get_file(first))
        self.assertTrue(self.index.is_deleted(first))


class PagesWaitTests(SynchronousTestCase):
    """
    A pending project's page and files wait for its files to be described,
    or answer 503 with C{Retry-After} after the limit; the project list
    does not wait.
    """

    def setUp(self):
        from pypid.auth.policy import AccessModel
        from pypid.auth.verifier import PasswordVerifier
        from pypid.core.dists.distribution import inspect
        from pypid.core.indexes.links import file_url_for
        from pypid.web.app import build_web
        from pypid.web.identity.gates import Gates
        from pypid.web.web_inputs import SiteSettings
        from tests.harness.fakes import run_in_pool_now, site_treq
        from tests.harness.memory_storage import MemoryStorage

        self.clock = Clock()
        self.index = Index(file_url_for(None))
        folder = self.mktemp()
        os.makedirs(folder)
        filename, data = make_wheel("alpha", "1.0")
        write_file(os.path.join(folder, filename), data)
        record = inspect(os.path.join(folder, filename), filename, filename, 1.0).record
        self.storage = HeldStorage({filename: record})
        self.backfill = Backfill(self.index, self.storage, self.clock, wait_limit=5.0)
        begun(self.backfill, [pending(filename)])
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        web = build_web(one_index(self.index, MemoryStorage(self.mktemp(), self.clock), self.clock,
                                  backfill=self.backfill),
                        Gates(AccessModel(read="everyone"), verifier), run_now, self.clock,
                        SiteSettings(max_upload_size=1 << 20))
        self.client = site_treq(web.site)
        self.sha256 = record.sha256
        self.filename = filename

    def get(self, path):
        return self.client.get("http://pypi.example" + path,
                               headers={"accept": "application/vnd.pypi.simple.v1+json"})

    def test_list_does_not_wait(self):
        response = self.successResultOf(self.get("/simple/"))
        self.assertEqual(response.code, 200)
        listed = json.loads(self.successResultOf(response.content()))
        self.assertEqual([p["name"] for p in listed["projects"]], ["alpha"])

    def test_waits_then_served_with_hashes(self):
        answered = self.get("/simple/alpha/")
        self.assertNoResult(answered)
        self.storage.answer()
        self.client.flush()
        response = self.successResultOf(answered)
        self.assertEqual(response.code, 200)
        page = json.loads(self.successResultOf(response.content()))
        self.assertEqual(page["files"][0]["hashes"], {"sha256": self.sha256})

    def test_file_waits(self):
        answered = self.get(f"/files/alpha/{self.filename}")
        self.assertNoResult(answered)
        self.storage.answer()
        self.client.flush()
        # (the web's storage holds no bytes: described, the file is looked
        # for there, where a real folder has it)
        self.assertEqual(self.successResultOf(answered).code, 404)
        self.assertEqual(self.index.get_file(self.filename).sha256, self.sha256)

    def test_unavailable_after_the_limit(self):
        answered = self.get("/simple/alpha/")
        self.clock.advance(5.1)
        self.client.flush()
        response = self.successResultOf(answered)
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["5"])
        self.assertIn(b"still being read", self.successResultOf(response.content()))


class LaterScanTests(SynchronousTestCase):
    """
    What the backfill takes from the local storage's C{later} scan (the
    storage's side is the contract of
    L{tests.unit.storage.test_storage.BackfillStorageContractMixin}).
    """

    def test_later_records(self):
        """
        A later scan leaves files with a record to be read from it; a
        record that says deleted is a tombstone at once when its file is
        gone, and refuses its file when not; a record of another size is
        not used (the file is described again).
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        files = [make_wheel("alpha", "1.0"), make_wheel("beta", "1.0"), make_wheel("gamma", "1.0")]
        for filename, data in files:
            write_file(os.path.join(root, filename), data)
        storage = LocalStorage(root, run_now)
        self.addCleanup(storage.close)
        self.successResultOf(storage.prepare())
        first = self.successResultOf(storage.scan({}, 0.0, ()))
        alpha, beta, gamma = (first.records[f] for f, _ in files)
        self.successResultOf(storage.delete(alpha))
        self.successResultOf(storage.delete(beta))
        write_file(os.path.join(root, beta.filename), files[1][1])  # (back, by hand)
        write_file(os.path.join(root, gamma.filename), files[2][1] + b"x")
        result = self.successResultOf(storage.scan({}, 0.0, (), later=True))
        self.assertEqual(result.tombstones, frozenset([alpha.filename]))
        self.assertEqual(sorted(p.filename for p in result.pending),
                         [beta.filename, gamma.filename])
        read_back = {p.filename: r for p, r in self.successResultOf(
            storage.describe_pending(result.pending))}
        self.assertIn("deleted", read_back[beta.filename])
        # The backfill keeps its name deleted, as the scan does a
        # tombstone without its file.
        index = Index(lambda r: r.filename)
        backfill = Backfill(index, storage, Clock())
        begun(backfill, [p for p in result.pending if p.filename == beta.filename])
        self.assertTrue(index.is_deleted(beta.filename))
        self.assertIsNone(index.get_file(beta.filename))
        # (described again from the file: its size and hashes, not the record's)
        self.assertEqual(read_back[gamma.filename].size, gamma.size + 1)
        self.assertNotEqual(read_back[gamma.filename].sha256, gamma.sha256)


class StoppedWhileReadingTests(SynchronousTestCase):
    """
    A start without a snapshot that is stopped before every record is
    read saves no snapshot: the next start reads them all again.
    """

    def test_next_start_reads_again(self):
        import time
        import types

        from pypid.state.loader import IndexLoader
        from pypid.state.writer import SnapshotWriter
        from pypid.storage.base.snapshot_reading import read

        clock = types.SimpleNamespace(seconds=time.time)
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        files = [make_wheel("alpha", "1.0"), make_wheel("beta", "1.0")]
        for filename, data in files:
            write_file(os.path.join(root, filename), data)
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json")

        def start(backfill):
            index = Index(lambda r: r.filename)
            writer = SnapshotWriter(index, path, run_now, clock)
            storage = LocalStorage(root, run_now, clock)
            loader = IndexLoader(index, storage, path, run_now, clock, writer,
                                 backfill=backfill(index, storage))
            self.successResultOf(loader.load())
            loader.follow_up()
            if loader.checked is not None:
                self.successResultOf(loader.checked)
            storage.close()  # (its lock: the next start is another server's)
            return index, writer

        # Records made beside the files, and saved in a snapshot once all
        # were described; then the snapshot deleted.
        index, writer = start(lambda index, storage: Backfill(index, storage, Clock()))
        self.assertEqual(len(index.records()), 2)
        self.assertEqual(len(read(path).records), 2)
        os.unlink(path)
        time.sleep(0.02)

        class Stopped:
            """A backfill stopped before it read anything."""
            def __init__(self, index, storage):
                self.index = index

            def note(self, pending):
                self.index.add_pending("alpha", 1)
                self.index.add_pending("beta", 1)

            def begin(self, done=None):
                pass

        index, writer = start(Stopped)
        self.assertEqual(index.records(), [])
        self.successResultOf(writer.save_if_changed(final=True))
        self.assertFalse(os.path.exists(path))
        time.sleep(0.02)
        # The next start has no snapshot to trust: it lists the storage and
        # reads every record again, though no folder changed since.
        index, writer = start(lambda index, storage: Backfill(index, storage, Clock()))
        self.assertEqual(sorted(r.filename for r in index.records()),
                         sorted(f for f, _ in files))
        self.assertEqual(len(read(path).records), 2)
