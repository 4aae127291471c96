"""
Tests for C{/health} (L{pypid.web.server.health}) and the readiness it reports
(L{pypid.daemon.readiness}): ready only once the index answers with every
stored file, and a full local disk is a degraded storage.
"""

import json
import os

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.readiness import Readiness, RunningMark
from pypid.storage.folder.local import LocalStorage
from pypid.web.server.health import CHECK_WAIT, Health, StorageProbe
from tests.harness.fakes import run_now


def full_disk(free, min_free=1 << 30):
    """C{statvfs} of a file system with C{free} bytes free (of 4 GiB)."""
    def statvfs(path):
        return os.statvfs_result((4096, 4096, 1 << 20, free // 4096, free // 4096,
                                  0, 0, 0, 0, 255))
    return statvfs


class FakeLoader:
    """What L{Readiness} reads of an L{pypid.state.loader.IndexLoader}."""

    def __init__(self, checked=None, storage_checked=False):
        self.checked = checked
        self.storage_checked = storage_checked
        self.followed = 0

    def follow_up(self):
        self.followed += 1


class FakeWriter:
    """What L{RunningMark} reads of a L{pypid.state.writer.SnapshotWriter}."""

    def __init__(self, saved=True):
        self.saved = saved

    def saved_up_to_now(self):
        return self.saved


class FakeMark:
    """What L{Readiness} reads of a L{RunningMark}."""

    def __init__(self, unclean):
        self.unclean = unclean


class SlowChecks:
    """A storage whose checks answer when the test says (C{answer})."""

    def __init__(self):
        self.asked = []

    def check(self):
        d = Deferred()
        self.asked.append(d)
        return d


class StorageProbeTests(SynchronousTestCase):
    """
    L{StorageProbe}: one check at a time, shared, and a probe never waits
    longer than L{CHECK_WAIT} (issue 61: every server's /health timed out
    together behind a balancer while the store was slow).
    """

    def setUp(self):
        self.clock = Clock()
        self.storage = SlowChecks()
        self.probe = StorageProbe(self.storage, self.clock)

    def test_shared(self):
        first, second = self.probe.state(), self.probe.state()
        self.assertEqual(len(self.storage.asked), 1, "one check for both")
        self.storage.asked[0].callback("ok")
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)),
                         ("ok", "ok"))
        # (an answer is not kept: the next probe asks again)
        self.probe.state()
        self.assertEqual(len(self.storage.asked), 2)

    def test_slow_is_down(self):
        waiting = self.probe.state()
        self.clock.advance(CHECK_WAIT - 0.01)
        self.assertNoResult(waiting)
        self.clock.advance(0.02)
        self.assertEqual(self.successResultOf(waiting), "down")
        # (the check still running is shared, not asked again; its answer stands)
        again = self.probe.state()
        self.assertEqual(len(self.storage.asked), 1)
        self.storage.asked[0].callback("ok")
        self.assertEqual(self.successResultOf(again), "ok")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failed_check_is_down(self):
        waiting = self.probe.state()
        self.storage.asked[0].errback(RuntimeError("broken"))
        self.assertEqual(self.successResultOf(waiting), "down")


class HealthTests(SynchronousTestCase):
    """C{/health} says ready only when the index answers, and a full disk is degraded."""

    def storage(self, free):
        storage = LocalStorage(os.path.abspath(self.mktemp()), run_now, Clock(),
                               1 << 30, full_disk(free))
        self.successResultOf(storage.prepare())
        self.addCleanup(storage.close)
        return storage

    def health(self, storage, ready=None, workers=None):
        """C{(code, headers, JSON)} of C{GET /health}."""
        treq = StubTreq(Health(storage, ready, clock=Clock(), workers=workers).app.resource())
        response = self.successResultOf(treq.get("http://127.0.0.1/health"))
        body = self.successResultOf(response.content())
        return response.code, response.headers, json.loads(body)

    def test_ok(self):
        """A ready server on a storage with room: 200, ok."""
        code, _, answer = self.health(self.storage(2 << 30), lambda: True)
        self.assertEqual((code, answer), (200, {"status": "ok", "storage": "ok"}))

    def test_workers(self):
        """
        A worker of a machine says which it is and how many run; one
        starting again leaves the machine healthy (it answers).
        """
        code, _, answer = self.health(self.storage(2 << 30), lambda: True, lambda: (2, 3, 4))
        self.assertEqual((code, answer), (200, {
            "status": "ok", "storage": "ok", "workers": {"up": 3, "of": 4, "answered_by": 2}}))

    def test_full_disk(self):
        """
        Less free space than C{[storage] min_free}: 503, degraded, full
        (before the fix: 200 C{{"status": "ok", "storage": "ok"}}).
        """
        code, _, answer = self.health(self.storage(100 << 20))
        self.assertEqual((code, answer), (503, {"status": "degraded", "storage": "full"}))

    def test_starting(self):
        """
        Before the index answers with every stored file: 503, starting,
        with C{Retry-After} (before the fix: 200 ok).
        """
        code, headers, answer = self.health(self.storage(2 << 30), lambda: False)
        self.assertEqual((code, answer), (503, {"status": "starting", "storage": "ok"}))
        self.assertEqual(headers.getRawHeaders(b"retry-after"), [b"1"])


class ReadinessTests(SynchronousTestCase):
    """L{Readiness}: ready once storage was checked against the snapshot; after a crash, first."""

    def test_no_check(self):
        """An index loaded without a snapshot to check is ready at once."""
        readiness = Readiness([FakeLoader(storage_checked=True)], FakeMark(False))
        self.assertIsNone(readiness.startService())
        self.assertTrue(readiness.ready())
        self.successResultOf(readiness.when_ready())

    def test_clean_stop(self):
        """After a clean stop the listeners open at once; ready when the check ends."""
        checked = Deferred()
        loader = FakeLoader(checked)
        readiness = Readiness([loader], FakeMark(False))
        self.assertIsNone(readiness.startService())
        self.assertEqual(loader.followed, 0)
        waiting = readiness.when_ready()
        self.assertFalse(readiness.ready())
        self.assertNoResult(waiting)
        loader.storage_checked = True
        checked.callback(None)
        self.assertTrue(readiness.ready())
        self.successResultOf(waiting)

    def test_after_a_crash(self):
        """After an unclean stop the check begins, and the start waits for it."""
        checked = Deferred()
        loader = FakeLoader(checked)
        started = Readiness([loader], FakeMark(True)).startService()
        self.assertEqual(loader.followed, 1)
        self.assertNoResult(started)
        checked.callback(None)
        self.successResultOf(started)

    def test_check_failed(self):
        """
        A check that failed lets the start go on (the snapshot's index is
        served, systemd hears READY) but the server is not ready until a
        check passes (before: ready at once, with files missing).
        """
        checked = Deferred()
        loader = FakeLoader(checked)
        readiness = Readiness([loader], FakeMark(True))
        started = readiness.startService()
        checked.errback(RuntimeError("boom"))
        self.successResultOf(started)
        self.assertFalse(readiness.ready())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        loader.storage_checked = True
        self.assertTrue(readiness.ready())

    def test_every_index(self):
        """
        With named hosted indexes, the server is ready once every index's
        storage was checked; after an unclean stop every check begins
        before the listeners open (before: the default index's alone).
        """
        checks = [Deferred(), Deferred()]
        loaders = [FakeLoader(checked) for checked in checks]
        readiness = Readiness(loaders, FakeMark(True))
        started = readiness.startService()
        self.assertEqual([loader.followed for loader in loaders], [1, 1])
        loaders[0].storage_checked = True
        checks[0].callback(None)
        self.assertNoResult(started)
        self.assertFalse(readiness.ready())
        loaders[1].storage_checked = True
        checks[1].callback(None)
        self.successResultOf(started)
        self.assertTrue(readiness.ready())

    def test_checked_after(self):
        """
        Without an unclean stop (a worker of several has no mark: the
        first keeps the machine's), the check follows the listening:
        ready once it ends.
        """
        checked = Deferred()
        loader = FakeLoader(checked)
        readiness = Readiness([loader], None)
        self.assertIsNone(readiness.startService())
        self.assertEqual(loader.followed, 0)
        waiting = readiness.when_ready()
        self.assertNoResult(waiting)
        checked.callback(None)
        self.successResultOf(waiting)


class RunningMarkTests(SynchronousTestCase):
    """L{RunningMark}: a run that did not save its last snapshot is told at the next start."""

    def test_clean_and_unclean(self):
        """A stop that saved leaves no mark; one that did not (or a crash) does."""
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json.running")
        writer = FakeWriter()
        mark = RunningMark(path, writer, FakeLoader(storage_checked=True))
        mark.startService()
        self.assertFalse(mark.unclean)
        mark.stopService()
        self.assertFalse(os.path.exists(path))
        mark.startService()
        self.assertFalse(mark.unclean)
        writer.saved = False
        mark.stopService()
        again = RunningMark(path, FakeWriter(), FakeLoader(storage_checked=True))
        again.startService()
        self.assertTrue(again.unclean)
        self.flushLoggedErrors()

    def test_stopped_during_the_check_after_a_crash(self):
        """
        A start after a crash stopped before storage was checked against the
        snapshot leaves the mark: the next start checks before listening
        too (before the fix: the mark was removed, as nothing had changed
        since the load, and the next start opened the listeners on the
        snapshot's index, the uploads made before the crash answering 404).
        """
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json.running")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb"):
            pass
        checked = Deferred()
        loader = FakeLoader(checked)
        mark = RunningMark(path, FakeWriter(), loader)
        readiness = Readiness([loader], mark)
        mark.startService()
        self.assertTrue(mark.unclean)
        self.assertNoResult(readiness.startService())
        readiness.stopService()
        mark.stopService()
        self.assertTrue(os.path.exists(path))
        again = RunningMark(path, FakeWriter(), FakeLoader(storage_checked=True))
        again.startService()
        self.assertTrue(again.unclean)
        checked.callback(None)
        self.flushLoggedErrors()

    def test_checked_after_a_crash(self):
        """Once the check after a crash ended, a stop that saved removes the mark."""
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json.running")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb"):
            pass
        checked = Deferred()
        loader = FakeLoader(checked)
        mark = RunningMark(path, FakeWriter(), loader)
        readiness = Readiness([loader], mark)
        mark.startService()
        started = readiness.startService()
        loader.storage_checked = True
        checked.callback(None)
        self.successResultOf(started)
        mark.stopService()
        self.assertFalse(os.path.exists(path))
        self.flushLoggedErrors()
