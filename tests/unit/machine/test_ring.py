"""
Tests for L{pypid.machine.ring}: announcements numbered in order, read
back by other openings of the ring and by other processes, a reader that
fell a whole ring behind told so, and descriptors that hold no ring
refused.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pypid.machine.ring import Announcement, ChangeRing, RingError
from tests import CHECKOUT


class RingTests(SynchronousTestCase):
    """One ring, opened by the supervisor and by workers in this process."""

    def ring(self, **kwargs):
        ring = ChangeRing.create(**kwargs)
        self.addCleanup(ring.close)
        return ring

    def attached(self, ring, worker):
        other = ChangeRing.attach(ring.fileno(), worker)
        self.addCleanup(other.close)
        return other

    def test_announced_in_order(self):
        """Each announcement gets the next number, and every opening reads them all."""
        ring = self.ring()
        one, two = self.attached(ring, 1), self.attached(ring, 2)
        self.assertEqual(ring.latest(), 0)
        self.assertEqual(ring.since(0), [])
        self.assertEqual(one.announce(b"upload a-1.0.tar.gz"), 1)
        self.assertEqual(two.announce(b"yank a-1.0.tar.gz"), 2)
        self.assertEqual(one.announce(b""), 3)
        for reader in (ring, one, two):
            self.assertEqual(reader.latest(), 3)
            self.assertEqual(reader.since(0), [
                Announcement(1, 1, b"upload a-1.0.tar.gz"),
                Announcement(2, 2, b"yank a-1.0.tar.gz"),
                Announcement(3, 1, b"")])
        self.assertEqual(two.since(2), [Announcement(3, 1, b"")])
        self.assertEqual(two.since(3), [])

    def test_look(self):
        """
        A look says what came since a number and where to look from next:
        nothing (and the same number) when nothing came; L{None} when it
        fell a whole ring behind.
        """
        ring = self.ring(slots=4, slot_size=64, tally=4)
        one = self.attached(ring, 1)
        self.assertEqual(ring.look(0), ([], 0))
        one.announce(b"a")
        one.announce(b"b")
        self.assertEqual(ring.look(0), ([Announcement(1, 1, b"a"), Announcement(2, 1, b"b")], 2))
        self.assertEqual(ring.look(2), ([], 2))
        for payload in (b"c", b"d", b"e", b"f", b"g"):
            one.announce(payload)
        self.assertEqual(ring.look(2), (None, 7))

    def test_workers(self):
        """How many workers run, as the supervisor says, is what every worker reads."""
        ring = self.ring()
        one = self.attached(ring, 1)
        self.assertEqual(one.workers(), (0, 0))
        ring.set_workers(1, 4)
        self.assertEqual(one.workers(), (1, 4))
        self.assertEqual(one.announce(b"upload"), 1)
        self.assertEqual((ring.workers(), ring.latest()), ((1, 4), 1))
        ring.set_workers(1, 4, 2, 3, 1)
        self.assertEqual((one.watched(), one.workers()), ((2, 3, 1), (1, 4)))

    def test_tally(self):
        """
        The tally counts each key up to its limit, on each day, in every
        worker alike; a key whose entries hold other keys of the day takes
        the first (counted anew).
        """
        ring = ChangeRing.create(slots=4, slot_size=64, tally=8)
        self.addCleanup(ring.close)
        one, two = self.attached(ring, 1), self.attached(ring, 2)
        self.assertEqual([one.admit(b"a", 7, 3), two.admit(b"a", 7, 3), one.admit(b"a", 7, 3),
                          two.admit(b"a", 7, 3)], [True, True, True, False])
        self.assertTrue(two.admit(b"a", 8, 3), "a new day")
        self.assertEqual([one.admit(b"ranged", 8, 1), two.admit(b"ranged", 8, 1)],
                         [True, False])
        keys = [b"k%d" % n for n in range(40)]
        for key in keys:
            one.admit(key, 8, 1)
        self.assertTrue(any(two.admit(key, 8, 1) for key in keys), "some forgotten")

    def test_lapped(self):
        """A reader a whole ring behind gets L{None}; one within it, what it missed."""
        ring = self.ring(slots=4, slot_size=32)
        for n in range(1, 7):
            ring.announce(b"%d" % n)
        self.assertIsNone(ring.since(0))
        self.assertIsNone(ring.since(1))
        self.assertEqual([a.payload for a in ring.since(2)], [b"3", b"4", b"5", b"6"])

    def test_kept(self):
        """What the ring still keeps, up to a number: nothing before the first, a ring at most."""
        ring = self.ring(slots=4, slot_size=32)
        self.assertEqual(ring.kept(5), [])
        for n in range(1, 7):
            ring.announce(b"%d" % n)
        self.assertEqual([a.payload for a in ring.kept(6)], [b"3", b"4", b"5", b"6"])
        self.assertEqual([a.sequence for a in ring.kept(4)], [3, 4])
        self.assertEqual(ring.kept(2), [])

    def test_payload_too_large(self):
        """A payload larger than a slot's room is refused, and nothing is announced."""
        ring = self.ring(slots=4, slot_size=32)
        ring.announce(b"x" * 20)
        with self.assertRaises(RingError) as caught:
            ring.announce(b"x" * 21)
        self.assertEqual(str(caught.exception), "an announcement of 21 bytes; a slot holds 20")
        self.assertEqual(ring.latest(), 1)

    def test_not_a_ring(self):
        """A descriptor of another file, or of a file too short, holds no ring."""
        path = self.mktemp()
        for data in (b"", b"x" * 100):
            with open(path, "wb") as f:
                f.write(data)
            fd = os.open(path, os.O_RDWR)
            self.addCleanup(os.close, fd)
            self.assertRaises(RingError, ChangeRing.attach, fd, 1)

    def test_bad_shape(self):
        """A ring of no slots, or of slots too small for their head, is not made."""
        self.assertRaises(ValueError, ChangeRing.create, slots=0)
        self.assertRaises(ValueError, ChangeRing.create, slot_size=12)

    def test_close_twice(self):
        """Closing a ring twice is harmless."""
        ring = ChangeRing.create(slots=2, slot_size=32)
        ring.close()
        ring.close()


#: A worker in another process: attaches to the descriptor it was given and
#: announces its count of numbered payloads.
_WORKER = """
import sys
from pypid.machine.ring import ChangeRing
ring = ChangeRing.attach(int(sys.argv[1]), int(sys.argv[2]))
for n in range(int(sys.argv[3])):
    ring.announce(b"%s-%d" % (sys.argv[2].encode(), n))
"""


class ProcessesTests(SynchronousTestCase):
    """Workers in other processes, announcing at once."""

    def test_racing_workers(self):
        """
        Three processes announcing at once, each through the descriptor it
        inherited: every announcement has its own number, none is lost,
        and each worker's are in its order.
        """
        ring = ChangeRing.create(slots=4096, slot_size=64)
        self.addCleanup(ring.close)
        fd = ring.fileno()
        env = dict(os.environ, PYTHONPATH=os.path.join(CHECKOUT, "src"))
        count = 500
        workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(fd), str(worker),
                                     str(count)], pass_fds=[fd], env=env)
                   for worker in (1, 2, 3)]
        for worker in workers:
            self.assertEqual(worker.wait(timeout=120), 0)
        seen = ring.since(0)
        self.assertEqual([a.sequence for a in seen], list(range(1, 3 * count + 1)))
        for worker in (1, 2, 3):
            self.assertEqual([a.payload for a in seen if a.worker == worker],
                             [b"%d-%d" % (worker, n) for n in range(count)])
