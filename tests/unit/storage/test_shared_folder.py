"""
Tests for L{pypid.storage.folder.shared_folder}: two workers' storages over one
folder and one journal, each seeing at its next look what the other changed
(uploads, yanks, deletes, tombstones, statuses), never its own changes,
however many changes went by, a worker's end making a full check due, and
the storages of two folders on one journal kept apart.
"""

import os

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from pypid.core.dists.distribution import inspect
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.storage.base.capabilities import Changed, ISharedStorage, Polled
from pypid.storage.base.interface import IStorage, StorageError
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.shared_folder import SharedFolder
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, write_file

UPLOAD_TIME = 1767225600.25


class SharedFolderTests(TestCase):
    """Two workers on one folder."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=8, slot_size=256)
        self.addCleanup(self.ring.close)
        self.journal = MemoryJournal(Clock())
        self.root = os.path.abspath(self.mktemp())
        self.one = self.worker(1)
        self.two = self.worker(2)

    def worker(self, number, root=None, key=""):
        """
        A worker's storage of the folder (C{root}, or the test's, named
        C{key} in the journal), prepared.
        """
        ring = ChangeRing.attach(self.ring.fileno(), number)
        self.addCleanup(ring.close)
        storage = SharedFolder(LocalStorage(root or self.root, run_now, Clock(), worker=number),
                               StoreChanges(self.journal, key, Clock()), Hub(ring), run_now, Clock())
        self.assertIsNone(self.successResultOf(storage.prepare()))
        return storage

    def publish(self, storage, filename, data):
        temp = write_file(os.path.join(storage.temp_dir, "upload-" + filename), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        return self.successResultOf(storage.publish(temp, inspected.record, inspected.metadata))

    def polled(self, storage):
        result = self.successResultOf(storage.poll())
        self.assertIsInstance(result, Polled)
        return result

    def test_interfaces(self):
        """A worker's folder is a storage, and a shared one."""
        self.assertTrue(verifyObject(IStorage, self.one))
        self.assertTrue(verifyObject(ISharedStorage, self.one))

    def test_no_lock_taken(self):
        """Workers take no lock of the folder: their supervisor holds it."""
        self.assertFalse(os.path.exists(os.path.join(self.root, ".pypid", "lock")))

    def test_spools(self):
        """
        Each worker spools in a folder of its own, which the one started in
        its place sweeps, never the others'; the supervisor's start sweeps
        them all (and leaves folders a person put there).
        """
        self.assertNotEqual(self.one.temp_dir, self.two.temp_dir)
        self.assertEqual(os.path.dirname(self.one.temp_dir), os.path.join(self.root, ".pypid"))
        for storage in (self.one, self.two):
            write_file(os.path.join(storage.temp_dir, "upload-x.part"), b"half")
        self.worker(2)
        self.assertEqual((os.listdir(self.one.temp_dir), os.listdir(self.two.temp_dir)),
                         (["upload-x.part"], []))
        os.mkdir(os.path.join(self.one.temp_dir, "keep"))
        supervisor = LocalStorage(self.root, run_now, Clock())
        self.successResultOf(supervisor.prepare())
        self.addCleanup(supervisor.close)
        self.assertEqual((os.listdir(self.one.temp_dir), os.listdir(self.two.temp_dir)),
                         (["keep"], []))

    def test_upload_seen_by_the_other(self):
        """An upload through one worker is in the other's next look, and not in its own."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored = self.publish(self.one, filename, data)
        self.assertEqual(self.polled(self.two).files, [Changed(filename, stored, False)])
        self.assertEqual(self.polled(self.one).files, [])
        self.assertEqual(self.polled(self.two).files, [], "each change is seen once")

    def test_own_changes_read_nothing(self):
        """A look that finds only its own worker's changes reads nothing, in no thread."""
        asked = []
        self.one._run = lambda f, *args: asked.append(f)
        self.publish(self.one, *make_wheel("holy-grail", "1.0"))
        self.assertEqual(self.polled(self.one).files, [])
        self.assertEqual(asked, [])
        self.assertEqual(self.one.changes_read(), self.journal.last_serial)

    def test_yank_delete_and_tombstone(self):
        """A yank, a delete and a tombstone are each read as the folder holds them after."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored = self.publish(self.one, filename, data)
        self.polled(self.two)
        yanked = stored.replace(yanked="broken")
        self.successResultOf(self.one.update(yanked))
        self.assertEqual(self.polled(self.two).files, [Changed(filename, yanked, False)])
        self.successResultOf(self.two.delete(yanked))
        self.assertEqual(self.polled(self.one).files, [Changed(filename, None, True)])
        self.successResultOf(self.one.add_tombstone("other-1.0.tar.gz"))
        self.assertEqual(self.polled(self.two).files,
                         [Changed("other-1.0.tar.gz", None, True)])

    def test_several_changes_read_once(self):
        """A file changed twice since the last look is read once, as it is now."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored = self.publish(self.one, filename, data)
        yanked = stored.replace(yanked="")
        self.successResultOf(self.one.update(yanked))
        self.assertEqual(self.polled(self.two).files, [Changed(filename, yanked, False)])

    def test_status(self):
        """A project's status kept through one worker is in the other's look, and its end."""
        self.successResultOf(self.one.keep_status("holy-grail", b'{"status": "archived"}'))
        self.assertEqual(self.polled(self.two).statuses,
                         {"holy-grail": b'{"status": "archived"}'})
        self.successResultOf(self.one.keep_status("holy-grail", None))
        self.assertEqual(self.polled(self.two).statuses, {"holy-grail": None})

    def test_refused_change_not_told(self):
        """A change the folder refused (a name taken by other bytes) tells nothing."""
        filename, data = make_wheel("holy-grail", "1.0")
        self.publish(self.one, filename, data)
        before = self.journal.last_serial
        other = make_wheel("holy-grail", "1.0", module_text="OTHER = 1\n")[1]
        temp = write_file(os.path.join(self.two.temp_dir, "other"), other)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        self.failureResultOf(self.two.publish(temp, inspected.record, inspected.metadata))
        self.assertEqual(self.journal.last_serial, before)

    def test_status_refused_while_untold(self):
        """
        A status the journal cannot tell yet is refused (L{StorageError}, a
        503), as on a bucket: answered, it might never reach the others.
        """
        self.journal.fail = True
        self.failureResultOf(self.one.keep_status("holy-grail", b'{"status": "archived"}'),
                             StorageError)

    def test_full_check_reads_statuses(self):
        """
        The full check a worker's end makes due reads every status after
        the files (a status told by no entry is not missed), and stays due
        when it fails.
        """
        self.successResultOf(self.one.keep_status("holy-grail", b'{"status": "archived"}'))
        self.two.changes.gap = True
        self.assertEqual(self.successResultOf(self.two.reconcile({}, ())).statuses,
                         {"holy-grail": b'{"status": "archived"}'})
        self.assertFalse(self.two.reconcile_due())
        self.two.changes.gap = True
        self.patch(LocalStorage, "scan", lambda *a: fail(StorageError("EIO")))
        self.failureResultOf(self.two.reconcile({}, ()), StorageError)
        self.assertTrue(self.two.reconcile_due())

    def test_many_behind(self):
        """
        A worker many changes behind (more than the ring's slots) takes
        them all in at its next look: the journal keeps them, no full
        check is due (before: a look a whole ring behind found nothing).
        """
        for n in range(10):
            self.publish(self.one, *make_wheel("holy-grail", f"1.{n}"))
        self.assertEqual(len(self.polled(self.two).files), 10)
        self.assertFalse(self.two.reconcile_due())
        self.assertEqual(self.polled(self.two).files, [], "the next look starts after")

    def test_folders_apart(self):
        """Two folders' storages on one journal see only their own folder's changes."""
        elsewhere = os.path.abspath(self.mktemp())
        three = self.worker(3, elsewhere, key=".indexes/three")
        self.publish(self.one, *make_wheel("holy-grail", "1.0"))
        self.assertEqual(self.polled(three).files, [])
        self.assertEqual(len(self.polled(self.two).files), 1)

    def test_promoted_between_shared_folders(self):
        """
        A promotion from another index's shared folder (timed, as the
        server holds it) links the file in, and announces it to the other
        workers of the target folder (before: refused, the source not a
        folder of the same kind), with its promotion (before: without, so a
        dated view of theirs took it as uploaded then, not promoted later).
        The source comes unwrapped, as the promoter hands it.
        """
        from pypid.core.indexes.promotion import Promotion
        from pypid.storage.base.measured import MeasuredStorage, unwrapped
        staging = self.worker(3, os.path.abspath(self.mktemp()), key=".indexes/staging")
        record = self.publish(staging, *make_wheel("holy-grail", "1.0"))
        source = unwrapped(MeasuredStorage(staging, lambda: 0.0))
        adopted = self.successResultOf(self.one.adopt(source, record,
                                                      Promotion("staging", "bob", 1.0)))
        self.assertEqual(adopted.filename, record.filename)
        self.assertEqual([(changed.filename, changed.promotion)
                          for changed in self.polled(self.two).files],
                         [(record.filename, Promotion("staging", "bob", 1.0))])

    def test_other_announcements(self):
        """
        The ring's other announcements (a throttle's, the advisories', a
        download count's) are not a folder's (before: one of another shape
        failed the look); a worker that ended makes a full check due: it
        may have changed the folder and not said so.
        """
        ring = ChangeRing.attach(self.ring.fileno(), 9)
        self.addCleanup(ring.close)
        for payload in (b"a", b"x login [\"f\",\"a\",\"b\",true]", b"u 0123 1-a-1"):
            ring.announce(payload)
        self.assertEqual(self.polled(self.two).files, [])
        self.assertFalse(self.two.reconcile_due())
        ring.announce(b"w 1")
        self.assertEqual(self.polled(self.two).files, [])
        self.assertTrue(self.two.reconcile_due())
        self.successResultOf(self.two.reconcile({}, ()))
        self.assertFalse(self.two.reconcile_due())

    def test_reads_pass_through(self):
        """What is not a change is the folder's own: a scan, a file's location."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored = self.publish(self.one, filename, data)
        self.assertEqual(self.successResultOf(self.two.scan({})).records, {filename: stored})
        self.assertEqual(self.two.locate(stored).path, self.one.locate(stored).path)
