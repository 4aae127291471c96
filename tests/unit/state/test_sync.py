"""
Tests for L{pypid.state.sync}: a look at a shared storage never undoes a
change made here while it was under way.
"""

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.state.sync import FOLD, SyncService
from pypid.storage.base.capabilities import Changed, Polled
from tests.harness.records import make_record


class _SlowShared:
    """A shared storage whose look answers when the test says (L{answer})."""

    sync_interval = 5.0

    def __init__(self):
        self.looks = []

    def poll(self):
        d = Deferred()
        self.looks.append(d)
        return ensureDeferred(_wait(d))

    def reconcile_due(self):
        return False


async def _wait(d):
    return await d


class LookUnderWayTests(SynchronousTestCase):
    """What the look read before a change made here is older than that change."""

    def setUp(self):
        self.index = Index(file_url_for(None))
        self.storage = _SlowShared()
        self.sync = SyncService(self.index, self.storage, Clock())
        self.record = make_record(filename="lib-1.0-py3-none-any.whl", project="lib")
        self.index.add(self.record)

    def test_delete_while_looking(self):
        """
        The look read the file live; it is deleted into the bin here before
        the look answers: it stays in the bin, its name taken (the race the
        end-to-end test of two servers on one bucket met on a busy machine).
        """
        done = self.sync.sync()
        self.index.add(self.record.replace(binned=1767225600.0))
        self.storage.looks[0].callback(Polled([Changed(self.record.filename, self.record,
                                                       False)]))
        self.successResultOf(done)
        self.assertIsNone(self.index.get_file(self.record.filename))
        self.assertIsNotNone(self.index.binned_file(self.record.filename))

    def test_other_files_taken(self):
        """The look's other files are taken in, and the next look notes nothing old."""
        other = make_record(filename="app-2.0-py3-none-any.whl", project="app")
        done = self.sync.sync()
        self.index.remove(self.record.filename)
        self.storage.looks[0].callback(Polled([Changed(self.record.filename, self.record, False),
                                               Changed(other.filename, other, False)]))
        self.successResultOf(done)
        self.assertIsNone(self.index.get_file(self.record.filename))
        self.assertEqual(self.index.get_file(other.filename), other)
        done = self.sync.sync()
        self.storage.looks[1].callback(Polled([Changed(self.record.filename, None, True)]))
        self.successResultOf(done)
        self.assertTrue(self.index.is_deleted(self.record.filename))


class CountedTests(SynchronousTestCase):
    """The changes taken in are logged at once, then in a line a minute at most."""

    def test_folded(self):
        index, storage, clock = Index(file_url_for(None)), _SlowShared(), Clock()
        sync = SyncService(index, storage, clock, peers="workers")
        lines = []
        for number, wait in enumerate((0, 1, 1, FOLD, 1, 1)):
            clock.advance(wait)
            record = make_record(filename=f"lib-{number}.0-py3-none-any.whl", project="lib")
            done = sync.sync()
            with capturedLogs() as events:
                storage.looks[-1].callback(Polled([Changed(record.filename, record, False)]))
            self.successResultOf(done)
            lines += [formatEvent(event) for event in events]
        self.assertEqual(lines, ["Took in 1 change made by the other workers",
                                 "Took in 3 changes made by the other workers"])
        self.assertEqual(len(index.records()), 6)
