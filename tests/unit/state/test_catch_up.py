"""
Tests for L{pypid.state.catch_up}: a worker that another worker's change
left behind takes it into its index before it answers, each index through
its shared folder's look; requests that find it behind at once share one
catching up, and one that finds it behind again starts the next.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.distribution import inspect
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub, Topic
from pypid.state.catch_up import CatchUp
from pypid.state.sync import SyncService
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.shared_folder import SharedFolder
from tests.harness.distributions import make_wheel
from tests.harness.fakes import ControlledLook, run_now, write_file

UPLOAD_TIME = 1767225600.25


class CatchUpTests(SynchronousTestCase):
    """The catching up, over a real ring."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=16, slot_size=64)
        self.addCleanup(self.ring.close)
        self.look = ControlledLook()
        self.catch_up = CatchUp(Hub(self.ring), [self.look])

    def test_behind(self):
        """Behind once another worker announced; not once the looks that began after ended."""
        self.assertFalse(self.catch_up.behind())
        self.ring.announce(b"f x a-1.0.tar.gz")
        self.assertTrue(self.catch_up.behind())
        d = self.catch_up.caught_up()
        self.assertNoResult(d)
        self.look.end()
        self.successResultOf(d)
        self.assertFalse(self.catch_up.behind())

    def test_own_announcements(self):
        """
        The worker's own announcements (its journal writes ring the doorbell
        too) leave it caught up: its requests do not wait for a look.
        """
        ring = ChangeRing.attach(self.ring.fileno(), 1)
        self.addCleanup(ring.close)
        hub = Hub(ring)
        catch_up = CatchUp(hub, [self.look])
        hub.publish(Topic.JOURNAL)
        hub.publish(Topic.JOURNAL)
        self.assertFalse(catch_up.behind())
        self.ring.announce(b"f x a-1.0.tar.gz")
        self.assertTrue(catch_up.behind())

    def test_shared_and_next(self):
        """
        Requests while a catching up is under way wait for the next one,
        which begins when it ends: a change announced meanwhile is taken in
        before they answer.
        """
        self.ring.announce(b"1")
        first = self.catch_up.caught_up()
        self.ring.announce(b"2")
        second, third = self.catch_up.caught_up(), self.catch_up.caught_up()
        self.assertEqual(len(self.look.under_way), 1)
        self.look.end()
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertEqual(len(self.look.under_way), 1, "the next look, for both")
        self.look.end()
        self.successResultOf(second)
        self.successResultOf(third)
        self.assertEqual(self.catch_up.seen, 2)


class WorkersTests(SynchronousTestCase):
    """Two workers' indexes over one folder: an upload through one is in the other's next answer."""

    def worker(self, number, root):
        ring = ChangeRing.attach(self.ring.fileno(), number)
        self.addCleanup(ring.close)
        hub = Hub(ring)
        clock = Clock()
        storage = SharedFolder(LocalStorage(root, run_now, clock, worker=1),
                               StoreChanges(self.journal, "", clock), hub, run_now, clock)
        self.successResultOf(storage.prepare())
        index = Index(file_url_for(None))
        return storage, index, CatchUp(hub, [SyncService(index, storage, clock)])

    def test_upload_then_install_elsewhere(self):
        """A file one worker stored and took into its index is in the other's after catching up."""
        self.ring = ChangeRing.create(slots=16, slot_size=256)
        self.addCleanup(self.ring.close)
        # (the store's journal, whose writes ring the doorbell, as the daemon's do)
        self.journal = MemoryJournal(Clock())
        self.journal.listen(lambda entries: Hub(self.ring).publish(Topic.JOURNAL))
        root = os.path.abspath(self.mktemp())
        one, one_index, one_catch_up = self.worker(1, root)
        two, two_index, two_catch_up = self.worker(2, root)
        filename, data = make_wheel("holy-grail", "1.0")
        temp = write_file(os.path.join(one.temp_dir, "upload"), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        stored = self.successResultOf(one.publish(temp, inspected.record, inspected.metadata))
        one_index.add(stored)
        self.assertTrue(two_catch_up.behind())
        self.assertIsNone(two_index.held(filename))
        self.successResultOf(two_catch_up.caught_up())
        self.assertEqual(two_index.held(filename), stored)
        self.assertFalse(two_catch_up.behind())
        # its own change: the first worker catches up with nothing to take in
        self.successResultOf(one_catch_up.caught_up())
        self.assertEqual(one_index.held(filename), stored)
