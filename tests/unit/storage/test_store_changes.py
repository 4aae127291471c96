"""
A shared storage's changes in the journal (L{pypid.storage.base.store_changes}):
what a reader takes in, and when it must compare the whole store instead
(entries missing, or a journal that went back behind its cursor).
"""

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder.journal_files import MemoryJournal


class StoreChangesTests(TestCase):
    """Two servers' views of one storage's changes."""

    def setUp(self):
        self.journal = MemoryJournal(Clock())
        self.writer = StoreChanges(self.journal, "", Clock())
        self.reader = StoreChanges(self.journal, "", Clock())
        self.successResultOf(ensureDeferred(self.reader.start()))

    def tell(self, *filenames):
        return self.successResultOf(self.writer.tell(filenames))

    def read(self):
        return self.successResultOf(ensureDeferred(self.reader.read()))

    def test_read_and_advance(self):
        """
        What another wrote after the cursor is read, in order, not its own
        as another's; the cursor moves only when told.
        """
        self.tell("a-1.0.tar.gz", "b-1.0.tar.gz")
        self.successResultOf(self.reader.tell(["c-1.0.tar.gz"]))
        told, serial = self.read()
        self.assertEqual([(c.filename, c.own) for c in told],
                         [("a-1.0.tar.gz", False), ("b-1.0.tar.gz", False),
                          ("c-1.0.tar.gz", True)])
        self.assertEqual(self.read()[1], serial, "read again until advanced")
        self.reader.advance(serial)
        self.assertEqual(self.read(), ([], serial))
        self.assertFalse(self.reader.gap)

    def test_other_storage_left_out(self):
        """The entries of another storage of the store (another key) are not this one's."""
        self.successResultOf(StoreChanges(self.journal, ".indexes/team", Clock()).tell(
            ["a-1.0.tar.gz"]))
        self.assertEqual(self.read()[0], [])

    def test_entries_missing_between(self):
        """A read that finds serials missing between two entries says so (L{gap})."""
        self.tell("a-1.0.tar.gz")
        self.tell("b-1.0.tar.gz")
        self.tell("c-1.0.tar.gz")
        [name] = self.journal.files
        lines = self.journal.files[name].splitlines(keepends=True)
        self.journal.files[name] = b"".join(line for line in lines if b"b-1.0" not in line)
        told, _ = self.read()
        self.assertEqual([c.filename for c in told], ["a-1.0.tar.gz", "c-1.0.tar.gz"])
        self.assertTrue(self.reader.gap)

    def test_snapshot_past_the_journal(self):
        """
        A cursor from a snapshot past the journal's head (a journal restored
        from an older backup, or begun again) is a gap, so the store is
        compared whole, and reading goes on from the head: what is written
        next is read.
        """
        self.tell("a-1.0.tar.gz")
        head = self.successResultOf(self.journal.head())
        self.reader.resume(head + 50)
        told, serial = self.read()
        self.assertTrue(self.reader.gap)
        self.assertEqual((told, serial), ([], head))
        self.reader.advance(serial)
        self.tell("b-1.0.tar.gz")
        self.assertEqual([c.filename for c in self.read()[0]], ["b-1.0.tar.gz"])

    def test_advance_checks_nothing(self):
        """Advancing after a read asks the journal nothing more than the read."""
        self.tell("a-1.0.tar.gz")
        _, serial = self.read()
        self.reader.advance(serial)
        asked = []
        real = self.journal.head
        self.patch(self.journal, "head", lambda: asked.append(1) or real())
        self.read()
        self.assertEqual(asked, [])
