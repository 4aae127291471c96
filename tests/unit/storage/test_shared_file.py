"""
Tests for L{pypid.storage.folder.shared_file}: a small file a machine's workers
change one at a time, each from the file as it is, announced on the ring
so that the others read it again; and the token book over it.
"""

import os

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.tokens import TokenBook
from pypid.jobs.run import run_at_once
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.storage.folder.shared_file import SharedFile


class SharedFileTests(SynchronousTestCase):
    """Two workers' views of one file, on one ring."""

    def setUp(self):
        ring = ChangeRing.create(slots=8, slot_size=128)
        self.addCleanup(ring.close)
        self.rings = [ChangeRing.attach(ring.fileno(), number) for number in (1, 2)]
        for each in self.rings:
            self.addCleanup(each.close)
        self.hubs = [Hub(each) for each in self.rings]
        self.path = os.path.join(os.path.abspath(self.mktemp()), "state", "tokens.json")

    def shared(self, number):
        return SharedFile(self.path, self.hubs[number - 1], run_at_once, ".tokens-")

    def test_change_from_the_file(self):
        """
        A change gets the file as it is (another worker's change in it),
        writes what it gives, and the other worker's look then finds it
        changed; its own changes never make it read again.
        """
        one, two = self.shared(1), self.shared(2)
        seen = []

        def append(word):
            async def change(current):
                seen.append(current)
                return (current or b"") + word
            return change
        self.successResultOf(_done(one.change(append(b"a"))))
        self.assertFalse(one.changed_elsewhere())
        self.assertTrue(two.changed_elsewhere())
        self.assertFalse(two.changed_elsewhere(), "taken in once")
        self.successResultOf(_done(two.change(append(b"b"))))
        self.assertEqual(seen, [None, b"a"])
        self.assertEqual(self.successResultOf(one.read()), b"ab")
        self.assertTrue(one.changed_elsewhere())
        self.assertEqual(oct(os.stat(self.path).st_mode & 0o777), oct(0o600))

    def test_closed(self):
        """A file closed (replaced at a reload) follows the other workers no more."""
        one, two = self.shared(1), self.shared(2)
        handlers = sum(len(listed) for listed in self.hubs[1]._handlers.values())
        two.close()
        self.assertEqual(sum(len(listed) for listed in self.hubs[1]._handlers.values()),
                         handlers - 2)
        self.assertEqual(self.hubs[1]._lost, [])

        async def change(current):
            return b"a"
        self.successResultOf(_done(one.change(change)))
        self.assertFalse(two.changed_elsewhere())

    def test_unchanged(self):
        """A change that gives the same bytes (or none) writes and announces nothing."""
        one, two = self.shared(1), self.shared(2)
        one.change_now(lambda current: b"x")
        two.changed_elsewhere()
        one.change_now(lambda current: current)
        one.change_now(lambda current: None)
        self.assertFalse(two.changed_elsewhere())

    def test_another_file(self):
        """An announcement of another file (or a folder's) is not this one's."""
        one = self.shared(1)
        other = SharedFile(self.path + ".other", self.hubs[1], run_at_once)
        other.change_now(lambda current: b"y")
        self.rings[1].announce(b"f 0123456789abcdef wheel.whl")
        self.assertFalse(one.changed_elsewhere())

    def test_worker_ended(self):
        """A worker that ended may have written the file and not said so: it is read again."""
        one = self.shared(1)
        self.rings[1].announce(b"w 2")
        self.assertTrue(one.changed_elsewhere())

    def test_lapped(self):
        """A look a whole ring behind reads the file again: it cannot know what it missed."""
        one = self.shared(1)
        for number in range(20):
            self.rings[1].announce(b"f 0123456789abcdef %d.whl" % number)
        self.assertTrue(one.changed_elsewhere())

    def test_failed_write(self):
        """A change whose write fails leaves the file as it was, announces nothing, and says why."""
        one, two = self.shared(1), self.shared(2)
        one.change_now(lambda current: b"kept")
        two.changed_elsewhere()
        os.chmod(os.path.dirname(self.path), 0o500)
        self.addCleanup(os.chmod, os.path.dirname(self.path), 0o700)
        if os.geteuid() == 0:
            # (root writes anywhere: a name the folder cannot hold instead)
            one.path = os.path.join(os.path.dirname(self.path), "x" * 300)
        failure = self.failureResultOf(_done(one.change(lambda current: succeed(b"lost"))))
        self.assertIsInstance(failure.value, OSError)
        self.assertEqual(self.successResultOf(two.read()), b"kept")
        self.assertFalse(two.changed_elsewhere())


class SharedTokensTests(SynchronousTestCase):
    """Two workers' token books over one file."""

    def setUp(self):
        ring = ChangeRing.create(slots=8, slot_size=128)
        self.addCleanup(ring.close)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "tokens.json")
        self.clock = Clock()
        self.books = []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            self.books.append(TokenBook(self.clock, path=self.path, shared=SharedFile(
                self.path, Hub(worker), run_at_once, ".tokens-")))

    def issue(self, book, user):
        made = []

        def add(tokens):
            text, token = book.make(user, ["read"])
            made.append(text)
            return {**tokens, token.id: token}
        self.successResultOf(_done(book.change(add, run_at_once)))
        return made[0]

    def test_issued_and_revoked_elsewhere(self):
        """
        A token issued by one worker verifies on the other after its look;
        each change starts from the file, so neither loses the other's;
        one revoked by the other is refused by the first after its look.
        """
        one, two = self.books
        alice = self.issue(one, "alice")
        self.assertIsNone(two.verify(alice))
        self.successResultOf(two.sync())
        self.assertIsNotNone(two.verify(alice))
        bob = self.issue(two, "bob")
        self.successResultOf(one.sync())
        self.assertEqual({one.verify(t).user for t in (alice, bob)}, {"alice", "bob"})
        alice_id = one.verify(alice).id
        self.successResultOf(_done(two.change(
            lambda tokens: {k: v for k, v in tokens.items() if k != alice_id}, run_at_once)))
        self.assertIsNotNone(one.verify(alice))
        self.successResultOf(one.sync())
        self.assertIsNone(one.verify(alice))
        self.assertIsNotNone(one.verify(bob))

    def test_change_without_a_look(self):
        """A change made before the look still starts from the file: nothing is lost."""
        one, two = self.books
        carol = self.issue(one, "carol")
        dave = self.issue(two, "dave")
        self.assertIsNotNone(two.verify(carol))
        self.successResultOf(one.sync())
        self.assertIsNotNone(one.verify(dave))

    def test_nothing_to_read(self):
        """A look with nothing changed elsewhere reads nothing and fires at once."""
        one, two = self.books
        self.issue(one, "alice")
        before = one.tokens
        self.assertIsNone(self.successResultOf(one.sync()))
        self.assertIs(one.tokens, before)


def _done(coroutine):
    """A coroutine as a L{Deferred}."""
    from twisted.internet.defer import Deferred
    return Deferred.fromCoroutine(coroutine)
