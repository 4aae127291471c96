"""
Tests for L{pypid.state.loader} in a worker of a machine: a worker started
from the snapshot serves it, with the others' changes after it (the
journal's tail) taken in before it answers, and checks the folder once it
listens, as one process does.
"""

import os
import time
import types

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.distribution import inspect
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.records.serials import ProjectSerials
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.state.loader import IndexLoader
from pypid.state.writer import SnapshotWriter
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder import folder_scan
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.shared_folder import SharedFolder
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, write_file


class WorkerStartTests(SynchronousTestCase):
    """A worker (re)started on a folder its machine's others change."""

    def setUp(self):
        # (storage compares the snapshot's time with the files')
        self.clock = types.SimpleNamespace(seconds=time.time)
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 0.0)
        self.ring = ChangeRing.create(slots=16, slot_size=256)
        self.addCleanup(self.ring.close)
        self.journal = MemoryJournal(Clock())
        self.root = os.path.abspath(self.mktemp())
        self.snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")

    def storage(self, number):
        ring = ChangeRing.attach(self.ring.fileno(), number)
        self.addCleanup(ring.close)
        storage = SharedFolder(LocalStorage(self.root, run_now, self.clock, worker=number),
                               StoreChanges(self.journal, "", self.clock), Hub(ring), run_now,
                               self.clock)
        self.successResultOf(storage.prepare())
        return storage

    def publish(self, storage, index, project):
        filename, data = make_wheel(project, "1.0")
        temp = write_file(os.path.join(storage.temp_dir, "upload"), data)
        inspected = inspect(temp, filename, filename, time.time())
        stored = self.successResultOf(storage.publish(temp, inspected.record,
                                                      inspected.metadata))
        index.add(stored)
        return filename

    def started(self, number):
        """
        A file copied into the folder by hand, then worker C{number}
        started from the snapshot: the file's name, the worker's index,
        its loader and what the load logged.
        """
        by_hand, data = make_wheel("by-hand", "1.0")
        time.sleep(0.02)  # (a later time than the snapshot's, to the file system's grain)
        write_file(os.path.join(self.root, by_hand), data)
        index = Index(file_url_for(None))
        loader = IndexLoader(index, self.storage(number), self.snapshot, run_now, self.clock)
        with capturedLogs() as events:
            self.successResultOf(loader.load())
        return by_hand, index, loader, "".join(formatEvent(event) for event in events)

    def test_from_the_snapshot_and_the_tail(self):
        """
        The snapshot's files and those the others stored after it are
        served before the check; a file copied in by hand, once checked.
        """
        one, one_index = self.storage(1), Index(file_url_for(None))
        saved = self.publish(one, one_index, "saved-lib")
        writer = SnapshotWriter(one_index, self.snapshot, run_now, self.clock, one.identity(),
                                shared=one)
        self.successResultOf(writer.save_if_changed())
        later = self.publish(one, one_index, "later-lib")
        by_hand, index, loader, how = self.started(2)
        self.assertIn("from the snapshot; storage is checked against it now", how)
        self.assertEqual((index.held(saved) is not None, index.held(later) is not None,
                          index.held(by_hand)), (True, True, None))
        loader.follow_up()
        self.successResultOf(loader.checked)
        self.assertIsNotNone(index.held(by_hand))

    def test_snapshot_of_one_process(self):
        """
        A snapshot one process saved names the serial its index followed
        the journal up to: a worker serves it and the journal's entries
        after it, and checks once it listens; one that names none (no
        serials kept) is read whole, the folder scanned before it answers.
        """
        for followed, how in ((True, "from the snapshot; storage is checked against it now"),
                              (False, "from the snapshot and storage")):
            self.root = os.path.abspath(self.mktemp())
            alone = LocalStorage(self.root, run_now, self.clock)
            self.successResultOf(alone.prepare())
            index = Index(file_url_for(None))
            saved = self.publish(alone, index, "saved-lib")
            serials = ProjectSerials() if followed else None
            self.successResultOf(SnapshotWriter(index, self.snapshot, run_now, self.clock,
                                                alone.identity(),
                                                serials=serials).save_if_changed())
            alone.close()
            by_hand, index, loader, logged = self.started(1)
            self.assertIn(f"({how})", logged)
            self.assertIsNotNone(index.held(saved))
            if followed:
                self.assertIsNone(index.held(by_hand))
                loader.follow_up()
                self.successResultOf(loader.checked)
            self.assertIsNotNone(index.held(by_hand), how)
