"""
Tests for L{pypid.advisories}: the advisories read at start-up, on a
timer and at SIGHUP, from a folder, a zip and a URL, within bounds
(issue 27): a hostile archive (a zip bomb, names leaving it, a huge or
malformed record, too many entries) is refused or bounded with one log
line, and the advisories in force stay.
"""

import io
import json
import os
import zipfile

from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.advisories import feed as feed_module
from pypid.advisories.compact_cache import LocalCompiler, cache_path
from pypid.advisories.feed import AdvisoryFeed, LoadFailed, read_in_force, saved_path
from pypid.advisories.osv_archive import ArchiveLimits, ArchiveRefused, Tally, records
from pypid.config.advisory_settings import AdvisoriesConfig
from pypid.core.security.advisories import FAILED, READING, AdvisoryBoard
from pypid.core.util.startup import StartupError
from tests.harness.fakes import run_now
from tests.harness.osv_records import osv_record, write_folder, write_zip
from tests.harness.upstream import Origins, drain

WIDGET = osv_record("PYSEC-2026-1", "widget", versions=["1.0"])
GADGET = osv_record("PYSEC-2026-2", "gadget", events=[{"introduced": "0"}, {"fixed": "2"}])
URL = "http://127.0.0.1:9/osv/all.zip"


def _lines(events):
    return [formatEvent(e) for e in events]


def start(case, feed):
    """Start the part as the daemon does: its start, then (the listeners open) its first read."""
    case.successResultOf(feed.startService())
    case.successResultOf(feed.read_first())
    return feed


class ArchiveTests(SynchronousTestCase):
    """L{records}: what is read of a zip or a folder, and what is refused."""

    def read(self, path, limits=None):
        tally = Tally()
        return list(records(path, limits or ArchiveLimits(), tally)), tally

    def test_zip_and_folder(self):
        """Both give each .json record; other files are skipped; the digest names the content."""
        folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET, GADGET])
        with open(os.path.join(folder, "README"), "w") as f:
            f.write("not a record")
        path = write_zip(os.path.abspath(self.mktemp()), [WIDGET, GADGET],
                         extra=[("nested.zip", b"PK..."), ("dir/", b"")])
        for source in (folder, path):
            found, tally = self.read(source)
            self.assertEqual([json.loads(d)["id"] for d in found], ["PYSEC-2026-1",
                                                                     "PYSEC-2026-2"])
        self.assertEqual(self.read(path)[1].digest, self.read(folder)[1].digest)
        self.assertEqual(self.read(path)[1].skipped, {"entries that are not .json": 1})

    def test_traversal_names_skipped(self):
        """Names that would leave a folder are skipped and counted, never used as paths."""
        path = write_zip(os.path.abspath(self.mktemp()), [WIDGET], extra=[
            ("../evil.json", b"{}"), ("/abs.json", b"{}"), ("C:/x.json", b"{}"),
            ("a/../../b.json", b"{}")])
        found, tally = self.read(path)
        self.assertEqual(len(found), 1)
        self.assertEqual(tally.skipped, {"entries with a name leaving the archive": 4})

    def test_zip_bomb_refused(self):
        """An entry compressed past the ratio refuses the whole archive."""
        path = os.path.abspath(self.mktemp())
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("bomb.json", b"0" * (3 << 20))
        with self.assertRaises(ArchiveRefused) as caught:
            self.read(path, ArchiveLimits(max_entry=8 << 20))
        self.assertIn("bomb.json is compressed", str(caught.exception))

    def test_lying_header(self):
        """An entry whose header claims less than it decompresses to is skipped at the limit."""
        path = write_zip(os.path.abspath(self.mktemp()), [WIDGET],
                         extra=[("huge.json", b" " * 5000)])
        found, tally = self.read(path, ArchiveLimits(max_entry=1000, max_ratio=10_000))
        self.assertEqual(len(found), 1)
        self.assertEqual(tally.skipped, {"records over 1000 bytes": 1})
        # the header says 5000 bytes: make it say 10, the data unchanged
        data = bytearray(open(path, "rb").read())
        central = data.rfind(b"PK\x01\x02")
        while central != -1:
            name_len = int.from_bytes(data[central + 28:central + 30], "little")
            if data[central + 46:central + 46 + name_len] == b"huge.json":
                data[central + 24:central + 28] = (10).to_bytes(4, "little")
            central = data.rfind(b"PK\x01\x02", 0, central)
        with open(path, "wb") as f:
            f.write(data)
        found, tally = self.read(path, ArchiveLimits(max_entry=1000, max_ratio=10_000))
        self.assertEqual(len(found), 1)
        self.assertEqual(len(tally.skipped), 1, tally.skipped)

    def test_too_many_entries(self):
        """More entries than the limit: refused from the central directory alone."""
        path = write_zip(os.path.abspath(self.mktemp()),
                         [osv_record(f"PYSEC-{i}", "w", versions=["1"]) for i in range(11)])
        with self.assertRaises(ArchiveRefused) as caught:
            self.read(path, ArchiveLimits(max_entries=10))
        self.assertIn("has 11 entries, more than 10", str(caught.exception))

    def test_too_big_and_not_a_zip(self):
        """An archive over max_size, and a file that is no zip, are refused."""
        path = write_zip(os.path.abspath(self.mktemp()), [WIDGET])
        with self.assertRaises(ArchiveRefused):
            self.read(path, ArchiveLimits(max_size=10))
        other = os.path.abspath(self.mktemp())
        with open(other, "wb") as f:
            f.write(b"this is no zip")
        with self.assertRaises(ArchiveRefused) as caught:
            self.read(other)
        self.assertIn("is not a zip archive", str(caught.exception))

    def test_folder_links_not_followed(self):
        """A link in the folder (to a record outside it) is not read."""
        outside = write_folder(os.path.abspath(self.mktemp()), [GADGET])
        folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET])
        os.symlink(os.path.join(outside, "PYSEC-2026-2.json"), os.path.join(folder, "l.json"))
        found, tally = self.read(folder)
        self.assertEqual(len(found), 1)
        self.assertEqual(list(tally.skipped.values()), [1])


class FeedTests(SynchronousTestCase):
    """The part: start-up, timer, SIGHUP, bad archives keeping the old advisories."""

    def setUp(self):
        self.clock = Clock()
        self.board = AdvisoryBoard()
        self.folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET])
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")

    def feed(self, **settings):
        settings.setdefault("path", self.folder)
        return AdvisoryFeed(self.board, AdvisoriesConfig(**settings), run_now, self.clock,
                              self.snapshot, agent=getattr(self, "agent", None))

    def test_start_reads(self):
        """Start-up reads the path; one line says how many advisories, from where."""
        with capturedLogs() as events:
            start(self, self.feed())
        self.assertEqual(self.board.db.projects(), {"widget"})
        self.assertTrue(any(line.startswith(f"Loaded 1 advisory for 1 project from "
                                            f"{self.folder} in ") for line in _lines(events)))

    def test_start_refused(self):
        """A path that cannot be read, or an archive refused, stops the start with one line."""
        failure = self.failureResultOf(self.feed(path="/nonexistent").startService(),
                                       StartupError)
        self.assertEqual(str(failure.value), "[advisories] path: cannot read /nonexistent: "
                                             "No such file or directory")

    def test_refresh_on_timer(self):
        """
        Every C{refresh}, the sources are looked at again: unchanged, nothing
        is read (their files' sizes, times and inodes are the same); a
        record added is read, and put in force.
        """
        from pypid.advisories import compact_cache
        reads = []
        real = compact_cache.read_sources
        self.patch(compact_cache, "read_sources", lambda *a: reads.append(a) or real(*a))
        start(self, self.feed(refresh=3600))
        generation = self.board.generation
        self.clock.advance(3600)
        self.assertEqual((self.board.generation, len(reads)), (generation, 1))
        write_folder(self.folder, [GADGET])
        self.clock.advance(3600)
        self.assertEqual(self.board.db.projects(), {"widget", "gadget"})
        self.assertEqual(len(reads), 2)

    def test_refresh_zero(self):
        """
        C{refresh = 0} is accepted, and the sources are read at start-up
        only (and at C{SIGHUP}): no timer reads them again.
        """
        from pypid.advisories import compact_cache
        from pypid.config.advisory_settings import parse_refresh
        self.assertEqual(parse_refresh("0"), 0.0)
        reads = []
        real = compact_cache.read_sources
        self.patch(compact_cache, "read_sources", lambda *a: reads.append(a) or real(*a))
        start(self, self.feed(refresh=0))
        self.assertEqual(self.board.db.projects(), {"widget"})
        write_folder(self.folder, [GADGET])
        self.clock.advance(30 * 86400)
        self.assertEqual((self.board.db.projects(), len(reads)), ({"widget"}, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_workers(self):
        """
        A machine's first worker alone refreshes on its timer, and says so
        when it put other advisories in force; the others read them then
        (from the compact cache it wrote), following it every second.
        """
        from pypid.advisories import compact_cache
        from pypid.advisories.feed import FOLLOW_INTERVAL
        from pypid.core.security.advisories import AdvisoryBoard
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        ring = ChangeRing.create(slots=16, slot_size=64)
        self.addCleanup(ring.close)
        feeds = []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            feeds.append(AdvisoryFeed(AdvisoryBoard(), AdvisoriesConfig(
                path=self.folder, refresh=3600), run_now, self.clock, self.snapshot, hub=Hub(worker)))
        first, other = feeds
        reads = []
        real = compact_cache.read_sources
        self.patch(compact_cache, "read_sources", lambda *a: reads.append(a) or real(*a))
        for feed in feeds:
            start(self, feed)
        self.assertEqual(len(reads), 1, "the second read the first's compact cache")
        write_folder(self.folder, [GADGET])
        self.clock.advance(3600 - FOLLOW_INTERVAL)
        self.assertEqual(other.board.db.projects(), {"widget"})
        self.clock.advance(FOLLOW_INTERVAL)
        self.assertEqual(first.board.db.projects(), {"widget", "gadget"})
        self.clock.advance(FOLLOW_INTERVAL)
        self.assertEqual(other.board.db.projects(), {"widget", "gadget"})
        self.assertEqual(len(reads), 2, "read once, by the first")
        for feed in feeds:
            feed.stopService()

    def test_hostile_keeps_old(self):
        """
        A refresh that finds a hostile archive (too many entries) keeps the
        advisories in force, with one error line; a malformed record is
        skipped, counted in one warning, the rest read.
        """
        path = write_zip(os.path.abspath(self.mktemp()), [WIDGET])
        feed = AdvisoryFeed(self.board, AdvisoriesConfig(path=path), run_now, self.clock,
                                self.snapshot, limits=ArchiveLimits(max_entries=3))
        start(self, feed)
        in_force = self.board.db
        write_zip(path, [osv_record(f"PYSEC-9-{i}", "w", versions=["1"]) for i in range(4)])
        with capturedLogs() as events:
            self.successResultOf(feed.refresh())
        self.assertIs(self.board.db, in_force)
        self.assertEqual([line for line in _lines(events) if "Keeping" in line],
                         [f"Keeping the advisories in force: {path} has 4 entries, more than 3"])
        write_zip(path, [GADGET], extra=[("bad.json", b"{nope")])
        with capturedLogs() as events:
            self.successResultOf(feed.refresh())
        self.assertEqual(self.board.db.projects(), {"gadget"})
        self.assertIn("Skipped in the advisories: 1 not JSON", _lines(events))

    def test_sighup(self):
        """SIGHUP takes a new path and reads it at once."""
        feed = self.feed()
        start(self, feed)
        other = write_folder(os.path.abspath(self.mktemp()), [GADGET])

        class Reloaded:
            advisories = AdvisoriesConfig(path=other)

        commit = feed.prepare_reload(Reloaded())
        self.assertEqual(commit(), "advisories read again")
        self.assertEqual(self.board.db.projects(), {"gadget"})

    def test_sighup_during_start(self):
        """
        A SIGHUP while the first read runs waits for it, then reads the new
        path: the first read, finishing last, does not undo the reload.
        """
        from twisted.internet.defer import Deferred
        pending = []

        def run(f, *args):
            d = Deferred()
            pending.append((d, f, args))
            return d

        feed = AdvisoryFeed(self.board, AdvisoriesConfig(path=self.folder), run,
                                self.clock, self.snapshot)
        self.successResultOf(feed.startService())
        started = feed.read_first()
        other = write_folder(os.path.abspath(self.mktemp()), [GADGET])

        class Reloaded:
            advisories = AdvisoriesConfig(path=other)

        feed.prepare_reload(Reloaded())()
        while pending:
            d, f, args = pending.pop()   # (the latest first: the reload's read ends first)
            d.callback(f(*args))
        self.successResultOf(started)
        self.assertEqual(self.board.db.projects(), {"gadget"})

    def test_timer_survives_errors(self):
        """A refresh that fails in any way is logged; the timer goes on."""
        from pypid.advisories import feed as advisory_feed
        feed = self.feed(refresh=3600)
        start(self, feed)

        def broken(*args):
            raise OSError("the disk is on fire")

        self.patch(advisory_feed, "signature", broken)
        with capturedLogs() as events:
            self.clock.advance(3600)
        self.assertIn("Cannot refresh the advisories; keeping those in force", _lines(events))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertTrue(feed._timer.running)

    def test_too_many_versions_refused(self):
        """
        Records naming more versions and ranges than a load may hold refuse
        the archive: the first read fails, with one error line, and the
        unread database stays in force, failed.
        """
        from pypid.core.security import osv
        self.patch(osv, "MAX_ITEMS", 3)
        write_folder(self.folder, [osv_record("PYSEC-9-1", "w", versions=["1", "2", "3"])])
        with capturedLogs() as events:
            start(self, self.feed())
        self.assertEqual(self.board.unread, FAILED)
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("the records name more than 3 versions and ranges", errors[0])

    def test_metrics(self):
        """The advisories in force, the projects, the time read and the reads by result."""
        feed = self.feed()
        start(self, feed)
        families = {f.name: f for f in feed.metric_families()}
        self.assertEqual(families["pypid_advisories"].samples, (((), 1),))
        self.assertEqual(families["pypid_advisory_reads"].samples, ((("loaded",), 1),))
        self.assertIn("pypid_advisories_read_timestamp_seconds", families)


class _CountedCompiler:
    """A L{LocalCompiler} that counts its readings, and whether it was stopped."""

    def __init__(self):
        self.tasks = []
        self.stopped = False

    def compile(self, task):
        self.tasks.append(task)
        return LocalCompiler().compile(task)

    def stop(self):
        self.stopped = True


class StartupTests(SynchronousTestCase):
    """
    The start (issue 43): the listeners do not wait for the advisories;
    until they are read the board holds the unread database; they are read
    from the compact cache when it is theirs, from the export (into the
    cache) when not; a cache that is not as written is read again from
    the export, never a failure.
    """

    def setUp(self):
        self.clock = Clock()
        self.board = AdvisoryBoard()
        self.folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET])
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        self.compiler = _CountedCompiler()

    def feed(self, run=run_now, **settings):
        settings.setdefault("path", self.folder)
        return AdvisoryFeed(self.board, AdvisoriesConfig(**settings), run, self.clock,
                            self.snapshot, compiler=self.compiler)

    def test_unread_until_read(self):
        """The start puts the unread database in force; the first read replaces it."""
        feed = self.feed()
        self.successResultOf(feed.startService())
        self.assertEqual(self.board.unread, READING)
        self.successResultOf(feed.read_first())
        self.assertIsNone(self.board.unread)
        self.assertEqual(self.board.db.projects(), {"widget"})

    def test_nothing_to_read(self):
        """Without a path, and a URL not fetched yet, nothing is awaited: nothing is unread."""
        self.successResultOf(self.feed(path=None, url=URL).startService())
        self.assertIsNone(self.board.unread)
        self.successResultOf(self.feed(path=None).startService())
        self.assertIsNone(self.board.unread)

    def test_first_read_waits_for_nothing(self):
        """The first read runs in the pool; the start and the part after the listeners do not wait."""
        from twisted.internet.defer import Deferred
        pending = []

        def run(f, *args):
            d = Deferred()
            pending.append((d, f, args))
            return d

        feed = self.feed(run=run)
        self.successResultOf(feed.startService())
        feed.first_read.startService()
        self.assertEqual(self.board.unread, READING)
        while pending:
            d, f, args = pending.pop(0)
            d.callback(f(*args))
        self.assertEqual(self.board.db.projects(), {"widget"})

    def test_sighup_before_first_read(self):
        """
        A SIGHUP between the start and the first read: its read is the
        first (the first read waits for it, reads nothing more), then the
        timer runs.
        """
        from twisted.internet.defer import Deferred
        pending = []

        def run(f, *args):
            d = Deferred()
            pending.append((d, f, args))
            return d

        feed = self.feed(run=run, refresh=3600)
        self.successResultOf(feed.startService())
        other = write_folder(os.path.abspath(self.mktemp()), [GADGET])

        class Reloaded:
            advisories = AdvisoriesConfig(path=other, refresh=3600)

        feed.prepare_reload(Reloaded())()
        first = feed.read_first()
        while pending:
            d, f, args = pending.pop(0)
            d.callback(f(*args))
        self.successResultOf(first)
        self.assertEqual(self.board.db.projects(), {"gadget"})
        self.assertEqual(len(self.compiler.tasks), 1)
        self.assertTrue(feed._timer.running)

    def test_warm_start(self):
        """A second start reads the cache the first wrote, not the export."""
        start(self, self.feed())
        self.assertEqual(len(self.compiler.tasks), 1)
        self.assertTrue(os.path.exists(cache_path(self.snapshot)))
        self.board = AdvisoryBoard()
        with capturedLogs() as events:
            start(self, self.feed())
        self.assertEqual(len(self.compiler.tasks), 1)
        self.assertEqual(self.board.db.projects(), {"widget"})
        self.assertTrue(any(line.startswith("Loaded 1 advisory for 1 project from ")
                            and line.endswith("from its compact cache)")
                            for line in _lines(events)), _lines(events))

    def test_export_changed(self):
        """An export changed while the server was down is read again, not its old cache."""
        start(self, self.feed())
        write_folder(self.folder, [GADGET])
        self.board = AdvisoryBoard()
        start(self, self.feed())
        self.assertEqual(len(self.compiler.tasks), 2)
        self.assertEqual(self.board.db.projects(), {"widget", "gadget"})

    def test_bounds_changed(self):
        """A cache read within other bounds (max_size) is not used."""
        start(self, self.feed())
        self.board = AdvisoryBoard()
        start(self, self.feed(max_size=1 << 20))
        self.assertEqual(len(self.compiler.tasks), 2)

    def test_damaged_cache(self):
        """
        A cache cut short, or of garbage, is a warning: the export is read
        again, the cache written anew, the advisories in force.
        """
        start(self, self.feed())
        path = cache_path(self.snapshot)
        with open(path, "rb") as f:
            data = f.read()
        for damaged in (data[:-7], b"\x00" * 100, data.replace(b"PYSEC-2026-1", b"<script>!!")):
            with open(path, "wb") as f:
                f.write(damaged)
            self.board = AdvisoryBoard()
            with capturedLogs() as events:
                start(self, self.feed())
            self.assertEqual(self.board.db.projects(), {"widget"})
            warnings = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
            self.assertEqual(len(warnings), 1, warnings)
            self.assertTrue(warnings[0].startswith(f"Not reading the advisories' cache {path}: "))
        self.assertEqual(len(self.compiler.tasks), 4)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_failed_then_read(self):
        """
        A first read that fails leaves the board unread, failed (the
        indexes that hide or deny fail closed); the next refresh that
        succeeds puts the advisories in force.
        """
        def broken(task):
            raise OSError("the disk is on fire")

        self.compiler.compile = broken
        with capturedLogs() as events:
            start(self, self.feed(refresh=3600))
        self.assertEqual(self.board.unread, FAILED)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertTrue(any(line.startswith("Cannot read the advisories: cannot read the "
                                            "advisories: the disk is on fire; until they are "
                                            "read, the indexes that hide or deny serve none")
                            for line in errors), errors)
        del self.compiler.compile
        self.clock.advance(3600)
        self.assertIsNone(self.board.unread)
        self.assertEqual(self.board.db.projects(), {"widget"})

    def test_stopped_while_reading(self):
        """
        A stop during the first read kills its child; what the read brings
        is not put in force.
        """
        from twisted.internet.defer import Deferred
        pending = []

        def run(f, *args):
            d = Deferred()
            pending.append((d, f, args))
            return d

        feed = self.feed(run=run)
        self.successResultOf(feed.startService())
        done = feed.read_first()
        feed.stopService()
        self.assertTrue(self.compiler.stopped)
        while pending:
            d, f, args = pending.pop(0)
            d.callback(f(*args))
        self.successResultOf(done)
        self.assertEqual(self.board.unread, READING)


class UrlTests(SynchronousTestCase):
    """The archive of C{[advisories] url}: fetched, kept, never waited for."""

    def setUp(self):
        self.clock = Clock()
        self.board = AdvisoryBoard()
        self.origins = Origins()
        self.http = RequestTraversalAgent(self.origins)
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        buffer = io.BytesIO()
        write_zip(buffer, [WIDGET])
        self.archive = buffer.getvalue()

    def feed(self):
        return AdvisoryFeed(self.board, AdvisoriesConfig(url=URL), run_now, self.clock,
                              self.snapshot, agent=lambda: self.http)

    def fetch(self, feed):
        d = feed.refresh()
        drain(self.http, d)
        return self.successResultOf(d)

    def test_fetched_and_kept(self):
        """Fetched, kept beside the snapshot, read; a 304 reads the kept copy again."""
        self.origins.route(URL, self.archive, headers={b"etag": b'"v1"'})
        feed = self.feed()
        start(self, feed)   # (nothing kept yet: nothing to wait for)
        self.fetch(feed)
        self.assertEqual(self.board.db.projects(), {"widget"})
        with open(saved_path(self.snapshot), "rb") as f:
            self.assertEqual(f.read(), self.archive)
        self.origins.route(URL, b"", status=304)
        self.fetch(feed)
        self.assertEqual(self.origins.seen[-1][1], "/osv/all.zip")
        self.assertEqual(self.board.db.projects(), {"widget"})

    def test_unreachable_keeps_old(self):
        """A failed fetch keeps the advisories in force; a restart reads the kept copy."""
        self.origins.route(URL, self.archive)
        self.fetch(self.feed())
        self.origins.route(URL, b"gone", status=500)
        board = self.board
        self.board = AdvisoryBoard()
        restarted = self.feed()
        start(self, restarted)
        self.assertEqual(self.board.db.projects(), {"widget"})
        with capturedLogs() as events:
            self.fetch(restarted)
        self.assertIn(f"Cannot fetch the advisories from {URL}: 500", _lines(events))
        self.assertEqual(self.board.db.projects(), {"widget"})
        self.assertEqual(board.db.projects(), {"widget"})


def _lying_count(path, count):
    """Make the end of central directory record of the zip at C{path} claim C{count} entries."""
    with open(path, "r+b") as f:
        data = f.read()
        end = data.rfind(b"PK\x05\x06")
        f.seek(end + 8)
        f.write(count.to_bytes(2, "little") * 2)


class CentralDirectoryTests(SynchronousTestCase):
    """
    The entries of a zip are counted from its central directory before
    the standard library reads it (C{ZipFile} makes an object of every
    entry: 4,000,000 empty entries, 350 MB, took 55 s and 1.4 GB there).
    """

    def refused(self, path, limits):
        def no_zipfile(*args, **kwargs):
            raise AssertionError("the archive was opened with zipfile")
        import pypid.advisories.osv_archive as osv_archive
        self.patch(osv_archive.zipfile, "ZipFile", no_zipfile)
        with self.assertRaises(ArchiveRefused) as caught:
            list(records(path, limits, Tally()))
        return str(caught.exception)

    def test_count_read_first(self):
        """More entries than allowed, as the end record says: refused before zipfile reads it."""
        path = write_zip(os.path.abspath(self.mktemp()),
                         [osv_record(f"PYSEC-{i}", "w", versions=["1"]) for i in range(11)])
        self.assertEqual(self.refused(path, ArchiveLimits(max_entries=10)),
                         f"{path} has 11 entries, more than 10")

    def test_count_lies(self):
        """An end record that understates the entries is caught by the directory's own records."""
        path = write_zip(os.path.abspath(self.mktemp()),
                         [osv_record(f"PYSEC-{i}", "w", versions=["1"]) for i in range(11)])
        _lying_count(path, 2)
        self.assertEqual(self.refused(path, ArchiveLimits(max_entries=10)),
                         f"{path} has 11 entries, more than 10")

    def test_zip64(self):
        """A zip64 archive's count is read from its zip64 end record."""
        path = os.path.abspath(self.mktemp())
        with zipfile.ZipFile(path, "w", allowZip64=True) as z:
            for i in range(11):
                z.writestr(f"{i}.json", b"{}")
        with open(path, "rb") as f:
            data = f.read()
        # (the library writes zip64 records only past 65,535 entries: add them by hand)
        end = data.rfind(b"PK\x05\x06")
        cd_size = int.from_bytes(data[end + 12:end + 16], "little")
        cd_offset = int.from_bytes(data[end + 16:end + 20], "little")
        import struct
        record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 11, 11,
                             cd_size, cd_offset)
        locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
        tail = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
        with open(path, "wb") as f:
            f.write(data[:end] + record + locator + tail)
        self.assertEqual(self.refused(path, ArchiveLimits(max_entries=10)),
                         f"{path} has 11 entries, more than 10")


class FolderTests(SynchronousTestCase):
    """A folder's files that are not regular files are never waited on."""

    def test_fifo_skipped(self):
        """A named pipe called C{x.json} is skipped, not opened for a writer that never comes."""
        import threading
        folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET])
        fifo = os.path.join(folder, "x.json")
        os.mkfifo(fifo)
        found = []
        tally = Tally()
        reader = threading.Thread(target=lambda: found.extend(
            records(folder, ArchiveLimits(), tally)), daemon=True)
        reader.start()
        reader.join(5)
        if reader.is_alive():
            with open(fifo, "wb"):
                pass   # (let the stuck reader go)
            reader.join(5)
            self.fail("the reader waited on a named pipe")
        self.assertEqual(len(found), 1)
        self.assertEqual(tally.skipped, {"files that are not regular files": 1})


class _Validators(Origins):
    """L{Origins} that also records each request's validators."""

    def render_GET(self, request):
        self.validators = getattr(self, "validators", [])
        self.validators.append((request.getHeader(b"if-none-match"),
                                request.getHeader(b"if-modified-since")))
        return Origins.render_GET(self, request)


class HostileUrlTests(SynchronousTestCase):
    """
    What the URL answers is kept beside the snapshot only once it reads:
    a hostile or broken answer neither replaces the last good copy nor
    stops a restart.
    """

    def setUp(self):
        self.clock = Clock()
        self.origins = _Validators()
        self.http = RequestTraversalAgent(self.origins)
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        buffer = io.BytesIO()
        write_zip(buffer, [WIDGET])
        self.archive = buffer.getvalue()

    def feed(self, board, **settings):
        settings.setdefault("url", URL)
        return AdvisoryFeed(board, AdvisoriesConfig(**settings), run_now, self.clock,
                              self.snapshot, agent=lambda: self.http,
                              limits=ArchiveLimits(max_entries=3))

    def fetch(self, feed):
        d = feed.refresh()
        drain(self.http, d)
        return self.successResultOf(d)

    def test_hostile_answer_not_kept(self):
        """
        An answer refused (not a zip; too many entries) keeps the last good
        copy and its validators; a restart reads that copy.
        """
        self.origins.route(URL, self.archive, headers={b"etag": b'"v1"'})
        feed = self.feed(AdvisoryBoard())
        self.fetch(feed)
        for hostile in (b"PK\x03\x04 no zip at all",
                        _zip_bytes([osv_record(f"PYSEC-9-{i}", "w", versions=["1"])
                                    for i in range(4)])):
            self.origins.route(URL, hostile, headers={b"etag": b'"v2"'})
            with capturedLogs() as events:
                self.fetch(feed)
            self.assertEqual(feed.board.db.projects(), {"widget"})
            with open(saved_path(self.snapshot), "rb") as f:
                self.assertEqual(f.read(), self.archive)
            self.assertEqual(len([e for e in events if e["log_level"].name == "error"]), 1,
                             _lines(events))
        self.assertFalse(os.path.exists(saved_path(self.snapshot) + ".part"))
        self.assertEqual(self.origins.validators[-1][0], b'"v1"')
        board = AdvisoryBoard()
        start(self, self.feed(board))
        self.assertEqual(board.db.projects(), {"widget"})

    def test_saved_copy_refused_at_start(self):
        """
        A kept copy that no longer reads (damaged; a smaller max_size) is a
        warning at start-up: the path's advisories are in force.
        """
        os.makedirs(os.path.dirname(saved_path(self.snapshot)))
        with open(saved_path(self.snapshot), "wb") as f:
            f.write(b"damaged")
        with open(saved_path(self.snapshot) + ".url", "w") as f:
            f.write(URL)   # (a copy of this URL's: one of another's is not read)
        folder = write_folder(os.path.abspath(self.mktemp()), [GADGET])
        board = AdvisoryBoard()
        with capturedLogs() as events:
            start(self, self.feed(board, path=folder))
        self.assertEqual(board.db.projects(), {"gadget"})
        self.assertTrue(any("damaged" not in line and "is not a zip archive" in line
                            for line in _lines(events)), _lines(events))


class ChangedUrlTests(SynchronousTestCase):
    """A kept copy is of one URL: another URL's is neither read nor asked about conditionally."""

    def test_other_url(self):
        """Fetched from one URL, the copy is not read once the configuration names another."""
        clock, board, origins = Clock(), AdvisoryBoard(), Origins()
        http = RequestTraversalAgent(origins)
        snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        other = "http://127.0.0.1:9/other/all.zip"
        origins.route(URL, _zip_bytes([WIDGET]), headers={b"last-modified":
                                                          b"Sun, 01 Nov 2026 00:00:00 GMT"})
        origins.route(other, b"", status=304)
        first = AdvisoryFeed(board, AdvisoriesConfig(url=URL), run_now, clock, snapshot,
                               agent=lambda: http)
        drain(http, first.refresh())
        self.assertEqual(board.db.projects(), {"widget"})
        board = AdvisoryBoard()
        moved = AdvisoryFeed(board, AdvisoriesConfig(url=other), run_now, clock, snapshot,
                               agent=lambda: http)
        start(self, moved)
        self.assertEqual(board.db.projects(), frozenset())
        d = moved.refresh()
        drain(http, d)
        self.assertEqual(board.db.projects(), frozenset())


def _zip_bytes(records_):
    buffer = io.BytesIO()
    write_zip(buffer, records_)
    return buffer.getvalue()


class RestartValidatorTests(SynchronousTestCase):
    """A restart asks the URL for its archive conditionally too (the kept copy's date)."""

    def test_restart_conditional(self):
        """
        The kept copy carries the answer's C{Last-Modified}; after a restart
        the first fetch sends it as C{If-Modified-Since}, and a 304 keeps the copy.
        """
        clock = Clock()
        origins = _Validators()
        http = RequestTraversalAgent(origins)
        snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        modified = b"Sun, 01 Nov 2026 10:00:00 GMT"
        origins.route(URL, _zip_bytes([WIDGET]), headers={b"last-modified": modified})

        def fetch(board):
            feed = AdvisoryFeed(board, AdvisoriesConfig(url=URL), run_now, clock, snapshot,
                                    agent=lambda: http)
            start(self, feed)
            d = feed.refresh()
            drain(http, d)
            self.successResultOf(d)
            return feed

        fetch(AdvisoryBoard())
        self.assertEqual(origins.validators, [(None, None)])
        origins.route(URL, b"", status=304)
        board = AdvisoryBoard()
        fetch(board)
        self.assertEqual(origins.validators[1:], [(None, modified)])
        self.assertEqual(board.db.projects(), {"widget"})


class ReadInForceTests(SynchronousTestCase):
    """
    L{read_in_force} (issue 45): the advisories a daemon puts in force at
    its start, read for the static export without a network and without
    writing beside the snapshot.
    """

    def setUp(self):
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        os.makedirs(os.path.dirname(self.snapshot))

    def beside(self):
        """What is beside the snapshot (its C{.d} folder's names)."""
        folder = self.snapshot + ".d"
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    def test_path_read_nothing_written(self):
        """The path's records are read, and nothing is written beside the snapshot."""
        folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET, GADGET])
        found = read_in_force(AdvisoriesConfig(path=folder), self.snapshot)
        self.assertEqual((len(found.db), found.warnings), (2, ()))
        self.assertEqual(self.beside(), [])

    def test_daemon_cache_used(self):
        """The daemon's compact cache of the same sources is read instead of the records."""
        folder = write_folder(os.path.abspath(self.mktemp()), [WIDGET])
        settings = AdvisoriesConfig(path=folder)
        feed = AdvisoryFeed(AdvisoryBoard(), settings, run_now, Clock(), self.snapshot,
                            compiler=LocalCompiler())
        start(self, feed)
        feed.stopService()
        self.assertEqual(self.beside(), ["advisories.cache"])
        compiled = []
        self.patch(feed_module, "compile_sources", compiled.append)
        found = read_in_force(settings, self.snapshot)
        self.assertEqual((len(found.db), compiled), (1, []))
        self.assertEqual(found.db.digest, feed.board.db.digest)

    def test_url_kept_copy(self):
        """The URL's copy kept beside the snapshot is read; without one, a warning says so."""
        settings = AdvisoriesConfig(url=URL)
        found = read_in_force(settings, self.snapshot)
        self.assertEqual(len(found.db), 0)
        [warning] = found.warnings
        self.assertIn("[advisories] url was never fetched here", warning)
        saved = saved_path(self.snapshot)
        os.makedirs(os.path.dirname(saved))
        write_zip(saved, [GADGET])
        with open(saved + ".url", "w") as f:
            f.write(URL)
        found = read_in_force(settings, self.snapshot)
        self.assertEqual((len(found.db), found.warnings), (1, ()))

    def test_refused(self):
        """A path that cannot be read, or is refused, is L{LoadFailed}: nothing pretends."""
        with self.assertRaises(LoadFailed):
            read_in_force(AdvisoriesConfig(path=os.path.abspath(self.mktemp())), self.snapshot)
        broken = os.path.abspath(self.mktemp())
        with open(broken, "wb") as f:
            f.write(b"not a zip")
        with self.assertRaises(LoadFailed):
            read_in_force(AdvisoriesConfig(path=broken), self.snapshot)
