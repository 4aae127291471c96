"""Tests for L{pypid.storage.base.locks}."""

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.base.locks import KeyedLock


class KeyedLockTests(SynchronousTestCase):
    """Tests for L{KeyedLock}."""

    def setUp(self):
        self.locks = KeyedLock()
        self.started = []

    def job(self, name, gate):
        async def work():
            self.started.append(name)
            return await gate
        return work

    def test_one_at_a_time_per_key(self):
        """A second call on a key starts only when the first has finished."""
        first, second = Deferred(), Deferred()
        a = ensureDeferred(self.locks.run("k", self.job("a", first)))
        b = ensureDeferred(self.locks.run("k", self.job("b", second)))
        self.assertEqual(self.started, ["a"])
        first.callback(1)
        self.assertEqual(self.successResultOf(a), 1)
        self.assertEqual(self.started, ["a", "b"])
        second.callback(2)
        self.assertEqual(self.successResultOf(b), 2)
        self.assertEqual(len(self.locks), 0)

    def test_keys_independent(self):
        """Calls on different keys run at the same time."""
        ensureDeferred(self.locks.run("k1", self.job("a", Deferred())))
        ensureDeferred(self.locks.run("k2", self.job("b", Deferred())))
        self.assertEqual(self.started, ["a", "b"])

    def test_failure_releases(self):
        """A call that fails releases its key, and the failure reaches its caller."""
        gate = Deferred()
        a = ensureDeferred(self.locks.run("k", self.job("a", gate)))
        b = ensureDeferred(self.locks.run("k", self.job("b", Deferred())))
        gate.errback(ValueError("no"))
        self.failureResultOf(a, ValueError)
        self.assertEqual(self.started, ["a", "b"])
        self.assertNoResult(b)

    def test_oldest(self):
        """L{KeyedLock.oldest} is when the oldest call still under way began."""
        from twisted.internet.task import Clock
        clock = Clock()
        locks = KeyedLock(clock)
        self.assertIsNone(locks.oldest())
        gate = Deferred()
        clock.advance(5)
        done = ensureDeferred(locks.run("k", self.job("a", gate)))
        clock.advance(5)
        # Both held here: a coroutine parked on a Deferred nobody else
        # refers to is garbage, and the collector closing it ran its
        # finally (CI once saw oldest() None).
        other = Deferred()
        waiting = ensureDeferred(locks.run("k2", self.job("b", other)))
        self.assertEqual(locks.oldest(), 5)
        gate.callback(None)
        self.successResultOf(done)
        self.assertEqual(locks.oldest(), 10)
        other.callback(None)
        self.successResultOf(waiting)
        self.assertIsNone(locks.oldest())
