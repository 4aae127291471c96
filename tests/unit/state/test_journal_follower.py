"""
The server's reader of its journal (L{pypid.state.journal_follower}): at
its start it reads what came after the serial the snapshot kept (all,
without one), then on its timer and when asked, whoever wrote it.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.audit_chain import BEGINNING, Entry, format_time
from pypid.core.records.serials import ProjectSerials
from pypid.state.journal_follower import JournalFollower
from pypid.storage.base.interface import StorageError
from pypid.storage.folder.journal_files import MemoryJournal


def change(project):
    return Entry(time=format_time(0), event="upload", project=project)


class Counted(MemoryJournal):
    """A journal that keeps the serials it was asked to read after."""

    def __init__(self, clock):
        super().__init__(clock)
        self.asked = []
        self.failing = False

    def since(self, serial, limit=1000):
        self.asked.append(serial)
        if self.failing:
            from twisted.internet.defer import fail
            return fail(StorageError("the disk is gone"))
        return super().since(serial, limit)


class FollowerTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.journal = Counted(self.clock)
        self.other = MemoryJournal(self.clock)
        self.other.files = self.journal.files

    def test_from_the_snapshot(self):
        """A start reads only what came after the serial the snapshot kept."""
        self.successResultOf(self.other.append([change("a"), change("b"), change("c")]))
        serials = ProjectSerials()
        serials.restore({"followed": BEGINNING + 2, "projects": {"": {"a": 2, "b": 3}}})
        follower = JournalFollower(self.journal, serials, self.clock, every=5.0)
        self.successResultOf(follower.startService())
        self.assertEqual(self.journal.asked[0], BEGINNING + 2)
        self.assertEqual((serials.of(None, "c"), serials.followed), (4, 4))

    def test_others_writes(self):
        """What another server or worker wrote is read on the timer, or at once when asked."""
        serials = ProjectSerials()
        follower = JournalFollower(self.journal, serials, self.clock, every=5.0)
        self.successResultOf(follower.startService())
        self.successResultOf(self.other.append([change("a")]))
        self.assertEqual(serials.of(None, "a"), BEGINNING)
        self.clock.advance(5)
        self.assertEqual(serials.of(None, "a"), BEGINNING + 1)
        self.successResultOf(self.other.append([change("b")]))
        self.successResultOf(follower.sync())
        self.assertEqual(serials.of(None, "b"), BEGINNING + 2)
        follower.stopService()

    def test_store_down(self):
        """A journal that cannot be read is said, and read again at the next tick."""
        serials = ProjectSerials()
        follower = JournalFollower(self.journal, serials, self.clock, every=5.0)
        self.journal.failing = True
        self.successResultOf(follower.startService())
        self.successResultOf(self.other.append([change("a")]))
        self.journal.failing = False
        self.clock.advance(5)
        self.assertEqual(serials.of(None, "a"), BEGINNING + 1)
        follower.stopService()

    def test_not_past_the_storages(self):
        """
        What others wrote is taken in no further than the shared storages
        read the journal: no page carries the serial of a file not served yet.
        """
        serials = ProjectSerials()
        read = [BEGINNING]
        follower = JournalFollower(self.journal, serials, self.clock, every=5.0,
                                   bound=lambda: read[0])
        self.successResultOf(follower.startService())
        self.successResultOf(self.other.append([change("a"), change("b")]))
        self.clock.advance(5)
        self.assertEqual((serials.of(None, "a"), serials.followed), (BEGINNING, BEGINNING))
        read[0] = BEGINNING + 1
        self.clock.advance(5)
        self.assertEqual((serials.of(None, "a"), serials.of(None, "b")), (BEGINNING + 1, BEGINNING))
        read[0] = BEGINNING + 2
        self.successResultOf(follower.sync())
        self.assertEqual((serials.of(None, "b"), serials.followed), (BEGINNING + 2, BEGINNING + 2))
        follower.stopService()

    def test_journal_behind_the_snapshot(self):
        """
        A journal whose last serial is below the one the snapshot kept
        (restored from an older backup) is read from its last: what is
        written next is taken in.
        """
        self.successResultOf(self.other.append([change("a")]))
        serials = ProjectSerials()
        serials.restore({"followed": BEGINNING + 50, "projects": {}})
        follower = JournalFollower(self.journal, serials, self.clock, every=5.0)
        self.successResultOf(follower.startService())
        self.assertEqual(serials.followed, BEGINNING + 1)
        self.successResultOf(self.other.append([change("c")]))
        self.clock.advance(5)
        self.assertEqual(serials.of(None, "c"), BEGINNING + 2)
        follower.stopService()
