"""
Tests for L{pypid.web.server.connections}: the open connections a worker
asks to reconnect when another worker of the machine is (back) up.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub, Topic
from pypid.web.server.connections import ConnectionCounter


class _Channel:
    """What the counter keeps of a connection."""

    leaving = False


class LeaveTests(SynchronousTestCase):
    """Another worker up: every open connection of this worker is asked to leave."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=8, slot_size=64)
        self.addCleanup(self.ring.close)
        self.worker = ChangeRing.attach(self.ring.fileno(), 1)
        self.addCleanup(self.worker.close)
        self.hub = Hub(self.worker)
        self.counter = ConnectionCounter(4, self.hub)
        self.channels = [_Channel() for _ in range(3)]
        for channel in self.channels:
            self.assertTrue(self.counter.opened(channel, None, 0.0))

    def test_other_worker_up(self):
        """The supervisor says worker 2 is ready: worker 1's connections are to leave."""
        Hub(self.ring).publish(Topic.WORKER_READY, b"2")
        self.assertEqual([c.leaving for c in self.channels], [False] * 3)
        self.hub.take()
        self.assertEqual([c.leaving for c in self.channels], [True] * 3)

    def test_own_ready(self):
        """Its own ready (it was started again) asks nothing of its connections."""
        Hub(self.ring).publish(Topic.WORKER_READY, b"1")
        self.hub.take()
        self.assertEqual([c.leaving for c in self.channels], [False] * 3)
        self.assertEqual(self.counter.leave_all(), 3)
        self.assertEqual([c.leaving for c in self.channels], [True] * 3)
