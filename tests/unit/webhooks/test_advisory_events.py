"""
The advisories that newly concern a release (L{pypid.core.security.advisory_news},
L{pypid.webhooks.advisory_events}): told once, in the audit log, when the
database names them or the release comes after; the first database read
with nothing kept is where the telling starts.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.version_order import release_key
from pypid.core.security.advisories import Advisory, AdvisoryDB
from pypid.core.security.advisory_news import Told, described, matches_of
from pypid.core.security.affected_releases import Affected
from pypid.storage.base.interface import StorageError
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.webhooks.advisory_events import TOLD, AdvisoryEvents
from tests.harness.memory_records import MemoryRecords
from tests.harness.webhooks import change

OLD = Advisory("GHSA-old0-0000-0001", summary="old news", severity="low",
               affected=(Affected("widget", (), frozenset({release_key("1.0")})),))
NEW = Advisory("GHSA-new0-0000-0002", aliases=("CVE-2026-0002",), summary="runs input",
               severity="high",
               affected=(Affected("widget", (), frozenset({release_key("1.0"),
                                                           release_key("2.0")})),))


def db(*advisories):
    by_project = {}
    for advisory in advisories:
        for affected in advisory.affected:
            by_project.setdefault(affected.project, []).append(advisory)
    return AdvisoryDB({p: tuple(a) for p, a in by_project.items()}, "test", str(advisories))


class NewsTests(SynchronousTestCase):
    """The pure part."""

    def test_matches(self):
        """Every (index, project, version, advisory) of the releases each index knows."""
        found = matches_of(db(OLD, NEW), {"default": lambda p: {"1.0", "2.0", "3.0"},
                                          "prod": lambda p: {"2.0"}})
        self.assertEqual(sorted(found), [
            ("default", "widget", "1.0", NEW.id), ("default", "widget", "1.0", OLD.id),
            ("default", "widget", "2.0", NEW.id), ("prod", "widget", "2.0", NEW.id)])

    def test_told_once(self):
        """News once; kept and read back, still told."""
        told = Told()
        found = matches_of(db(OLD), {"default": lambda p: {"1.0"}})
        self.assertEqual(len(told.news(found)), 1)
        self.assertEqual(told.news(found), [])
        again = Told.from_bytes(told.to_bytes())
        self.assertEqual(again.news(found), [])
        self.assertRaises(ValueError, Told.from_bytes, b'{"default": []}')

    def test_described(self):
        """Severity, every identifier, the summary."""
        self.assertEqual(described(NEW), "high: GHSA-new0-0000-0002, CVE-2026-0002: runs input")


class EventsTests(SynchronousTestCase):
    """What the audit log is told."""

    def setUp(self):
        self.clock = Clock()
        self.store = MemoryRecords()
        self.audit = MemoryJournal(self.clock)
        self.entries = []
        self.audit.append = lambda entries: succeed(self.entries.extend(entries) or 2)
        self.versions = {"1.0"}
        self.db = db(OLD)
        self.events = AdvisoryEvents(self.store, self.audit, self.clock,
                                     lambda: {"default": lambda p: set(self.versions)},
                                     lambda: self.db)

    def test_first_read_is_no_news(self):
        """With nothing kept, the first database read is where telling starts."""
        self.events.changed(db(), self.db)
        self.assertEqual(self.entries, [])
        self.assertIn(TOLD, self.store.records)

    def test_new_advisory(self):
        """An advisory read later that concerns a release is told, once."""
        self.events.changed(db(), self.db)
        self.db = db(OLD, NEW)
        self.events.changed(db(OLD), self.db)
        self.events.changed(db(OLD), self.db)
        [entry] = self.entries
        self.assertEqual((entry.event, entry.index, entry.project, entry.version, entry.target),
                         ("advisory", None, "widget", "1.0", NEW.id))
        self.assertIn("runs input", entry.detail)

    def test_release_after_advisory(self):
        """A release uploaded after the advisory is told when its upload is."""
        self.db = db(OLD, NEW)
        self.events.changed(db(), self.db)
        self.versions.add("2.0")
        self.events.written([change("upload", version="2.0")])
        [entry] = self.entries
        self.assertEqual((entry.version, entry.target), ("2.0", NEW.id))
        # (an entry of another kind, or a refusal, looks at nothing)
        self.events.written([change("yank", version="2.0")])
        self.assertEqual(len(self.entries), 1)

    def test_restart_tells_nothing_again(self):
        """Another start (or server) reads what was told: nothing again."""
        self.events.changed(db(), self.db)
        self.db = db(OLD, NEW)
        self.events.changed(db(OLD), self.db)
        again = AdvisoryEvents(self.store, self.audit, self.clock,
                               lambda: {"default": lambda p: set(self.versions)},
                               lambda: self.db)
        again.changed(db(), self.db)
        self.assertEqual(len(self.entries), 1)

    def test_unread_is_nothing(self):
        """A database still to be read decides nothing."""
        self.events.changed(db(), AdvisoryDB.unread_yet())
        self.assertEqual(self.store.records, {})


class TellingTests(SynchronousTestCase):
    """Told at least once, never twice by two servers, never a flood after a failure."""

    def setUp(self):
        self.clock = Clock()
        self.store = MemoryRecords(shared=True)
        self.entries = []
        self.versions = {"1.0"}
        self.db = db(OLD)

    def server(self):
        audit = MemoryJournal(self.clock)
        audit.append = lambda entries: succeed(self.entries.extend(entries) or 2)
        return AdvisoryEvents(self.store, audit, self.clock,
                              lambda: {"default": lambda p: set(self.versions)},
                              lambda: self.db)

    def test_told_again_after_a_failed_write(self):
        """The record cannot be written: the news is told again at the next review."""
        one = self.server()
        one.changed(db(), self.db)
        self.db = db(OLD, NEW)
        self.store.failing = StorageError("bucket down")
        one.changed(db(OLD), self.db)
        self.flushLoggedErrors()
        self.store.failing = None
        one.changed(db(OLD), self.db)
        self.assertEqual([(e.version, e.target) for e in self.entries], [("1.0", NEW.id)])

    def test_two_servers_tell_once(self):
        """Two servers on one bucket, reviewing one after the other: told once."""
        one, two = self.server(), self.server()
        one.changed(db(), self.db)
        two.changed(db(), self.db)
        self.db = db(OLD, NEW)
        one.changed(db(OLD), self.db)
        two.changed(db(OLD), self.db)
        self.assertEqual(len(self.entries), 1)

    def test_no_flood_after_a_failed_start(self):
        """The first review failed: an upload then tells nothing until a whole read starts it."""
        one = self.server()
        self.store.failing = StorageError("bucket down")
        one.changed(db(), self.db)
        self.store.failing = None
        self.versions.add("2.0")
        one.written([change("upload", version="2.0")])
        self.assertEqual(self.entries, [])
