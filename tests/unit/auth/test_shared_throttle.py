"""
Tests for L{pypid.auth.shared_throttle}: two workers' login throttles on
one ring count every failure and every check under way of the machine.
"""

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.shared_throttle import PENDING_TTL, STARTED, ThrottleShare, counted_user
from pypid.auth.throttle import LoginThrottle
from pypid.jobs.periodic import Periodic
from pypid.machine.ring import ChangeRing
from pypid.machine.topic_table import LANE_SLOT_SIZE, LANE_SLOTS
from pypid.machine.topics import TAKE_EVERY, Hub, Topic

ADDRESS = "192.0.2.7"


class SharedThrottleTests(SynchronousTestCase):
    """Two workers' throttles, as one."""

    def setUp(self):
        self.clock = Clock()
        ring = ChangeRing.create(slots=64, slot_size=1024)
        self.addCleanup(ring.close)
        self.throttles = []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            self.throttles.append(LoginThrottle(self.clock, max_failures=3, window=60,
                                                share=ThrottleShare(Hub(worker), b"login")))

    def wrong_password(self, throttle, user="alice", address=ADDRESS):
        throttle.started(user, address)
        throttle.failed(user, address)

    def test_failures_of_the_machine(self):
        """Failures spread over both workers meet one limit, in both, after their looks."""
        one, two = self.throttles
        self.wrong_password(one)
        self.wrong_password(two)
        self.assertEqual(one.wait("alice", ADDRESS), 0.0)
        self.successResultOf(one.sync())
        self.wrong_password(one)
        self.assertGreater(one.wait("alice", ADDRESS), 1.0)
        self.successResultOf(two.sync())
        self.assertGreater(two.wait("alice", ADDRESS), 1.0)
        self.assertEqual(two.wait("bob", ADDRESS), 0.0)

    def test_checks_under_way(self):
        """
        A check another worker began holds one of the failures still
        allowed until it ends there, or for L{PENDING_TTL} at most.
        """
        one, two = self.throttles
        self.wrong_password(one)
        self.wrong_password(one)
        one.started("alice", ADDRESS)
        self.successResultOf(two.sync())
        self.assertGreater(two.wait("alice", ADDRESS), 0.0)
        one.succeeded("alice", ADDRESS)
        self.successResultOf(two.sync())
        self.assertEqual(two.wait("alice", ADDRESS), 0.0, "a good login clears the pair")
        self.wrong_password(one)
        self.wrong_password(one)
        one.started("alice", ADDRESS)
        self.successResultOf(two.sync())
        self.assertGreater(two.wait("alice", ADDRESS), 0.0)
        self.clock.advance(PENDING_TTL + 1)
        self.successResultOf(two.sync())
        self.assertEqual(two.wait("alice", ADDRESS), 0.0, "its worker never said: let go")

    def test_last_failure_allowed_once(self):
        """
        The last check allowed, asked of both workers before either took in
        the other's start: one reserves it, the other is told to wait
        (each reservation takes in the others' events with the ring held).
        """
        one, two = self.throttles
        self.wrong_password(one)
        self.wrong_password(one)
        self.successResultOf(two.sync())
        self.assertEqual(one.reserve("alice", ADDRESS), 0.0)
        self.assertGreater(two.reserve("alice", ADDRESS), 0.0)
        one.failed("alice", ADDRESS)
        self.assertGreater(two.reserve("alice", ADDRESS), 1.0)
        self.assertEqual(two.reserve("bob", ADDRESS), 0.0)

    def test_flood_read_while_idle(self):
        """
        A flood of other announcements, more than the ring holds, while
        worker 2 answers nothing: its read of the ring every L{TAKE_EVERY}
        keeps worker 1's failures (without it, they went round unread).
        """
        ring = ChangeRing.create(slots=16, slot_size=256)
        self.addCleanup(ring.close)
        hubs = []
        for number in (1, 2):
            attached = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(attached.close)
            hubs.append(Hub(attached))
        one, two = (LoginThrottle(self.clock, max_failures=3, window=60,
                                  share=ThrottleShare(hub, b"login")) for hub in hubs)
        reader = Periodic(hubs[1].take, TAKE_EVERY, self.clock, "The ring's read")
        reader.startService()
        self.addCleanup(reader.stopService)
        for _ in range(3):
            self.wrong_password(one)
        for _ in range(8):
            for number in range(10):
                hubs[0].publish(Topic.PIN, b"key", b"%d.whl" % number)
            self.clock.advance(TAKE_EVERY)
        self.assertGreater(two.reserve("alice", ADDRESS), 1.0)

    def test_flood_of_throttle_events_while_idle(self):
        """
        More throttle events than the lane holds pass (an attacker's own
        account, logged in again and again on worker 1) while worker 2
        answers nothing: its reads of the lane count each event as it is
        read, so the failures told before the flood still count there
        (they were queued for its next look, and the oldest fell off).
        """
        lane = ChangeRing.create(slots=LANE_SLOTS, slot_size=LANE_SLOT_SIZE, tally=1)
        self.addCleanup(lane.close)
        hubs = []
        for number in (1, 2):
            attached = ChangeRing.attach(lane.fileno(), number)
            self.addCleanup(attached.close)
            hubs.append(Hub(attached, attached))
        one, two = (LoginThrottle(self.clock, max_failures=3, window=60,
                                  max_address_failures=5, share=ThrottleShare(hub, b"login"))
                    for hub in hubs)
        reader = Periodic(hubs[1].take, TAKE_EVERY, self.clock, "The ring's read")
        reader.startService()
        self.addCleanup(reader.stopService)
        for _ in range(3):
            self.wrong_password(one)
        for _ in range(3):
            for _ in range(LANE_SLOTS // 4):
                one.started("mallory", "198.51.100.1")
                one.succeeded("mallory", "198.51.100.1")
            self.clock.advance(TAKE_EVERY)
        self.assertGreater(lane.latest(), LANE_SLOTS)
        self.assertGreater(two.reserve("alice", ADDRESS), 1.0)
        self.assertEqual(two.reserve("mallory", "198.51.100.1"), 0.0)

    def test_unreadable_event_skipped(self):
        """
        An event a worker of this code would not tell (a list for a user,
        an unknown kind) is not counted, and does not stop a worker that
        starts after it, nor hide the events after it.
        """
        lane = ChangeRing.create(slots=64, slot_size=LANE_SLOT_SIZE, tally=1)
        self.addCleanup(lane.close)
        first = ChangeRing.attach(lane.fileno(), 1)
        self.addCleanup(first.close)
        hub = Hub(first, first)
        for odd in ([STARTED, ["alice"], ADDRESS, True, 1.0], ["?", "alice", ADDRESS, True, 1.0],
                    [STARTED, "alice", {"a": 1}, True, 1.0]):
            hub.publish(Topic.THROTTLE, b"login", json.dumps(odd).encode())
        one = LoginThrottle(self.clock, max_failures=3, window=60,
                            share=ThrottleShare(hub, b"login"))
        for _ in range(3):
            self.wrong_password(one)
        second = ChangeRing.attach(lane.fileno(), 2)
        self.addCleanup(second.close)
        two = LoginThrottle(self.clock, max_failures=3, window=60,
                            share=ThrottleShare(Hub(second, second), b"login"))
        self.assertGreater(two.reserve("alice", ADDRESS), 1.0)
        self.assertEqual(two.reserve("bob", ADDRESS), 0.0)

    def test_started_since(self):
        """
        A worker that starts after the others' failures (the machine's
        second, or one started again under the same number) takes in what
        the ring still keeps of them, each counted from when it was made.
        """
        ring = ChangeRing.create(slots=64, slot_size=1024)
        self.addCleanup(ring.close)
        first = ChangeRing.attach(ring.fileno(), 1)
        self.addCleanup(first.close)
        one = LoginThrottle(self.clock, max_failures=3, window=60,
                            share=ThrottleShare(Hub(first), b"login"))
        for _ in range(2):
            self.wrong_password(one)
        self.clock.advance(20)
        self.wrong_password(one)
        self.clock.advance(30)
        for number in (2, 1):
            attached = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(attached.close)
            late = LoginThrottle(self.clock, max_failures=3, window=60,
                                 share=ThrottleShare(Hub(attached), b"login"))
            self.successResultOf(late.sync())
            self.assertEqual(late.wait("alice", ADDRESS), 10.0, f"worker {number}")
            self.assertEqual(late.wait("bob", ADDRESS), 0.0)

    def test_started_long_after(self):
        """
        Failures the ring keeps from before the window count for nothing on
        a worker that starts now: neither the pair's count nor the user
        name's bucket (rule 6), which leaked them long since.
        """
        ring = ChangeRing.create(slots=64, slot_size=1024)
        self.addCleanup(ring.close)
        first = ChangeRing.attach(ring.fileno(), 1)
        self.addCleanup(first.close)
        one = LoginThrottle(self.clock, max_failures=3, window=60, max_identity_failures=5,
                            share=ThrottleShare(Hub(first), b"login"))
        for number in range(8):
            self.wrong_password(one, address=f"192.0.2.{number}")
        self.clock.advance(3600)
        self.assertEqual(one.wait("alice", "198.51.100.1"), 0.0)
        second = ChangeRing.attach(ring.fileno(), 2)
        self.addCleanup(second.close)
        late = LoginThrottle(self.clock, max_failures=3, window=60, max_identity_failures=5,
                             share=ThrottleShare(Hub(second), b"login"))
        self.successResultOf(late.sync())
        self.assertEqual(late.wait("alice", "198.51.100.1"), 0.0)
        self.assertEqual(late.wait("alice", "192.0.2.1"), 0.0)

    def test_older_announcements(self):
        """An event told without its time (by an older worker) counts from when it is taken in."""
        one, two = self.throttles
        share = one.share
        for _ in range(3):
            share._hub.publish(Topic.THROTTLE, b"login", b'["s","alice","192.0.2.7",true]')
            share._hub.publish(Topic.THROTTLE, b"login", b'["f","alice","192.0.2.7",true]')
        self.clock.advance(5)
        self.successResultOf(two.sync())
        self.assertEqual(two.wait("alice", ADDRESS), 60.0)

    def test_reserve_alone(self):
        """A throttle of one process reserves as it waits and starts."""
        throttle = LoginThrottle(self.clock, max_failures=1, window=60)
        self.assertEqual(throttle.reserve("alice", ADDRESS), 0.0)
        self.assertGreater(throttle.reserve("alice", ADDRESS), 0.0)
        throttle.failed("alice", ADDRESS)
        self.assertGreater(throttle.reserve("alice", ADDRESS), 1.0)

    def test_forgiven_everywhere(self):
        """A password set again (on one worker) ends the lock-out on every worker."""
        one, two = self.throttles
        for _ in range(3):
            self.wrong_password(one)
        self.successResultOf(two.sync())
        self.assertGreater(two.wait("alice", ADDRESS), 1.0)
        one.forgive(["alice"])
        self.successResultOf(two.sync())
        self.assertEqual(two.wait("alice", ADDRESS), 0.0)

    def test_long_names(self):
        """A name too long for an announcement is counted by its digest, alike in each worker."""
        one, two = self.throttles
        name = "é" * 5000
        self.assertTrue(counted_user(name).startswith("#"))
        self.assertEqual(counted_user("alice"), "alice")
        for _ in range(3):
            self.wrong_password(one, name)
        self.successResultOf(two.sync())
        self.assertGreater(two.wait(name, ADDRESS), 1.0)

    def test_longest_event_fits_the_lane(self):
        """
        Every event fits a slot of the lane, whatever its names hold: a
        name that its JSON would write longer than the bound (a control
        character takes six bytes there) is counted by its digest.
        """
        lane = ChangeRing.create(slots=4, slot_size=LANE_SLOT_SIZE, tally=1)
        self.addCleanup(lane.close)
        share = ThrottleShare(Hub(lane, lane), b"exchange")
        for name in ("é" * 5000, "\x01" * 67, "\x01" * 400, '"' * 200, "a" * 400, "\ud800" * 133):
            counted = counted_user(name)
            self.assertTrue(counted == name or counted.startswith("#"), name[:3])
            share.tell(STARTED, counted, counted, True, 1.5e9)
        self.assertTrue(counted_user("\x01" * 67).startswith("#"))
        self.assertEqual(counted_user('"' * 199), '"' * 199)
        self.assertEqual(lane.latest(), 6)

    def test_own_events_once(self):
        """A worker's own announcements are never counted twice."""
        one, _ = self.throttles
        self.wrong_password(one)
        self.wrong_password(one)
        self.successResultOf(one.sync())
        self.assertEqual(one.wait("alice", ADDRESS), 0.0)


USERS = st.sampled_from(["alice", "bob"])
ADDRESSES = st.sampled_from(["192.0.2.7", "198.51.100.1"])


class MachineThrottleModel(RuleBasedStateMachine):
    """
    Two workers' login throttles on one ring and its lane, each started
    again at any step, against one process's throttle that sees every event
    in the same order: after its look at the ring, every worker (one just
    started included) tells every user and client to wait as long as the
    one process does, even after a flood of other announcements, more than
    the ring holds, came between a failure and the other's look.
    """

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.ring = ChangeRing.create(slots=64, slot_size=1024)
        self.lane = ChangeRing.create(slots=512, slot_size=1024, tally=1)
        self.attached = {}
        self.hubs = {}
        self.workers = {number: self._start(number) for number in (1, 2)}
        self.alone = self._throttle(None)

    def _throttle(self, share):
        # (rule 6's bucket out of reach: a late failure's share of it is
        # an estimate, which the pair's and the client's counts are not)
        return LoginThrottle(self.clock, max_failures=3, window=60, max_address_failures=5,
                             max_identity_failures=10_000, share=share)

    def _start(self, number):
        for old in self.attached.pop(number, ()):
            old.close()
        self.attached[number] = [ChangeRing.attach(made.fileno(), number)
                                 for made in (self.ring, self.lane)]
        self.hubs[number] = Hub(*self.attached[number])
        return self._throttle(ThrottleShare(self.hubs[number], b"login"))

    def teardown(self):
        for attached in self.attached.values():
            for ring in attached:
                ring.close()
        self.ring.close()
        self.lane.close()

    @rule(worker=st.sampled_from([1, 2]), user=USERS, address=ADDRESSES,
          good=st.booleans(), flood=st.booleans())
    def login(self, worker, user, address, good, flood):
        for throttle in (self.workers[worker], self.alone):
            throttle.started(user, address)
            (throttle.succeeded if good else throttle.failed)(user, address)
        for number in range(100 if flood else 0):
            self.hubs[worker].publish(Topic.PIN, b"key", b"%d.whl" % number)

    @rule(worker=st.sampled_from([1, 2]), user=USERS)
    def forgive(self, worker, user):
        self.workers[worker].forgive([user])
        self.alone.forgive([user])

    @rule(seconds=st.sampled_from([1, 20, 45, 70]))
    def later(self, seconds):
        self.clock.advance(seconds)

    @rule(worker=st.sampled_from([1, 2]))
    def start_again(self, worker):
        self.workers[worker] = self._start(worker)

    @invariant()
    def as_one_process(self):
        for throttle in self.workers.values():
            throttle.sync()
            for user in ("alice", "bob"):
                for address in ("192.0.2.7", "198.51.100.1"):
                    assert throttle.wait(user, address) == self.alone.wait(user, address), (
                        user, address)


class MachineThrottleModelTests(SynchronousTestCase):
    """The model above, run (trial runs no C{runTest} of its own)."""

    def test_as_one_process(self):
        case = MachineThrottleModel.TestCase
        case.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
        case(methodName="runTest").runTest()
