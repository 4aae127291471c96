"""
Tests for L{pypid.machine.topics}: the table of what a machine's workers
tell each other, and each worker's hub over the ring.
"""

import fcntl

from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.machine.ring import ChangeRing, RingError
from pypid.machine.topic_table import FIELDS, Topic, decode, encode
from pypid.machine.topics import LONE, Hub


class TableTests(SynchronousTestCase):
    """The topics and their payloads."""

    def test_codes_kept(self):
        """Each topic's payload is the bytes announced before the table: one layout for all."""
        self.assertEqual(encode(Topic.JOURNAL, []), b"j")
        self.assertEqual(encode(Topic.WORKER_ENDED, [b"3"]), b"w 3")
        self.assertEqual(encode(Topic.SSO, [b"s", b'{"a": 1}']), b'o s {"a": 1}')
        self.assertEqual(encode(Topic.FAILED, [b"k", b"a.whl", b"1.5", b"bad hash"]),
                         b"F k a.whl 1.5 bad hash")
        self.assertEqual(len({topic.value for topic in Topic}), len(Topic))
        self.assertEqual(set(FIELDS), set(Topic))

    def test_decode(self):
        """The last field keeps its spaces; an unknown or malformed payload is no topic's."""
        self.assertEqual(decode(b"F k a.whl 1.5 bad hash"),
                         (Topic.FAILED, [b"k", b"a.whl", b"1.5", b"bad hash"]))
        self.assertEqual(decode(b"a"), (Topic.ADVISORIES, []))
        for payload in (b"a b", b"u key", b"?", b"", b"f 0123 x.whl"):
            self.assertIsNone(decode(payload), payload)

    def test_wrong_fields(self):
        """A publication with the wrong number of fields is refused before it is announced."""
        self.assertRaises(ValueError, encode, Topic.PAGE, [b"key"])


class HubTests(SynchronousTestCase):
    """Two workers' hubs (and the supervisor's ring) on one ring."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=4, slot_size=64)
        self.addCleanup(self.ring.close)
        self.hubs = []
        for number in (1, 2):
            worker = ChangeRing.attach(self.ring.fileno(), number)
            self.addCleanup(worker.close)
            self.hubs.append(Hub(worker))
        self.heard = []
        self.laps = []
        for hub in self.hubs:
            hub.on(Topic.PAGE, lambda fields, worker, hub=hub: self.heard.append(
                (hub.worker, "page", list(fields), worker)))
            hub.on(Topic.PIN, lambda fields, worker, hub=hub: self.heard.append(
                (hub.worker, "pin", list(fields), worker)))
            hub.lost(lambda hub=hub: self.laps.append(hub.worker))

    def test_dispatched_by_topic(self):
        """Each announcement goes to the handlers of its topic, in order, once."""
        one, two = self.hubs
        one.publish(Topic.PIN, b"key", b"a.whl")
        one.publish(Topic.USAGE, b"key", b"record")
        one.publish(Topic.PAGE, b"key", b"holy grail")
        two.take()
        self.assertEqual(self.heard, [(2, "pin", [b"key", b"a.whl"], 1),
                                      (2, "page", [b"key", b"holy grail"], 1)])
        two.take()
        self.assertEqual(len(self.heard), 2, "taken once")

    def test_own_skipped(self):
        """A worker's own announcements are the others' alone; the supervisor's are everyone's."""
        one, two = self.hubs
        one.publish(Topic.PIN, b"key", b"a.whl")
        one.take()
        self.assertEqual(self.heard, [])
        Hub(self.ring).publish(Topic.PIN, b"key", b"b.whl")
        one.take()
        self.assertEqual(self.heard, [(1, "pin", [b"key", b"b.whl"], 0)])

    def test_others_since(self):
        """
        Whether another worker announced since a number: not for this
        worker's own announcements in a row (its own journal writes), as
        soon as another's comes before or between them.
        """
        one, two = self.hubs
        seen = one.latest()
        self.assertFalse(one.others_since(seen))
        one.publish(Topic.JOURNAL)
        one.publish(Topic.JOURNAL)
        self.assertFalse(one.others_since(seen))
        self.assertTrue(two.others_since(seen))
        two.publish(Topic.JOURNAL)
        self.assertTrue(one.others_since(seen))
        one.publish(Topic.JOURNAL)
        self.assertTrue(one.others_since(seen), "another's between")
        self.assertFalse(one.others_since(one.latest() - 1))
        self.assertTrue(one.others_since(one.latest() - 2))
        Hub(self.ring).publish(Topic.JOURNAL)
        self.assertTrue(one.others_since(one.latest() - 1), "the supervisor's too")

    def test_lost(self):
        """A hub a whole ring behind calls its lost handlers, then reads from the latest."""
        one, two = self.hubs
        for number in range(6):
            one.publish(Topic.PIN, b"key", b"%d.whl" % number)
        two.take()
        self.assertEqual((self.laps, self.heard), ([2], []))
        one.publish(Topic.PIN, b"key", b"next.whl")
        two.take()
        self.assertEqual(self.heard, [(2, "pin", [b"key", b"next.whl"], 1)])

    def test_past(self):
        """
        A handler of the past is handed at once what the ring kept from
        before its hub was made, of its topic only, its own number's too
        (a worker started again); then, like any, only what comes later.
        """
        one, _ = self.hubs
        for name in (b"0", b"1", b"2"):
            one.publish(Topic.PIN, b"key", name + b".whl")
        one.publish(Topic.PAGE, b"key", b"p")
        one.publish(Topic.PIN, b"key", b"3.whl")
        again = ChangeRing.attach(self.ring.fileno(), 1)
        self.addCleanup(again.close)
        restarted, heard = Hub(again), []
        restarted.on(Topic.PIN, lambda fields, worker: heard.append((fields[1], worker)),
                     past=True)
        self.assertEqual(heard, [(b"1.whl", 1), (b"2.whl", 1), (b"3.whl", 1)],
                         "a ring of 4 slots keeps the last 4")
        self.hubs[1].publish(Topic.PIN, b"key", b"4.whl")
        restarted.take()
        restarted.take()
        self.assertEqual(heard[3:], [(b"4.whl", 2)])

    def test_past_read_once(self):
        """
        Every handler of the past registered before the hub's first read
        is handed it from one walk of the ring (a ring's length is 11 ms);
        one registered after reads the ring again.
        """
        one, _ = self.hubs
        one.publish(Topic.PIN, b"key", b"0.whl")
        one.publish(Topic.PAGE, b"key", b"p")
        again = ChangeRing.attach(self.ring.fileno(), 2)
        self.addCleanup(again.close)
        walks = []
        kept = ChangeRing.kept
        self.patch(ChangeRing, "kept", lambda ring, upto: walks.append(upto) or kept(ring, upto))
        hub, heard = Hub(again), []
        for topic in (Topic.PIN, Topic.PAGE, Topic.PIN):
            hub.on(topic, lambda fields, worker, topic=topic: heard.append((topic, fields[1])),
                   past=True)
        self.assertEqual(heard, [(Topic.PIN, b"0.whl"), (Topic.PAGE, b"p"),
                                 (Topic.PIN, b"0.whl")])
        self.assertEqual(len(walks), 1)
        hub.take()
        hub.on(Topic.PAGE, lambda fields, worker: heard.append(fields[1]), past=True)
        self.assertEqual((len(walks), heard[-1]), (2, b"p"))

    def test_failing_handler(self):
        """A handler that fails is logged; the others' announcements are still handed on."""
        one, two = self.hubs

        def fails(fields, worker):
            raise ValueError("bad")
        two.on(Topic.PAGE, fails)
        one.publish(Topic.PAGE, b"key", b"a")
        one.publish(Topic.PIN, b"key", b"b")
        two.take()
        self.assertEqual([kind for _, kind, _, _ in self.heard], ["page", "pin"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_forget(self):
        """Handlers forgotten get nothing more, lost or not; the others still do."""
        one, two = self.hubs
        mine, laps = [], []

        def heard(fields, worker):
            mine.append(list(fields))

        def lost():
            laps.append(2)
        two.on(Topic.PIN, heard)
        two.lost(lost)
        one.publish(Topic.PIN, b"key", b"a.whl")
        two.take()
        two.forget(heard, lost)
        for number in range(6):
            one.publish(Topic.PIN, b"key", b"%d.whl" % number)
        two.take()
        self.assertEqual((mine, laps, self.laps), ([[b"key", b"a.whl"]], [], [2]))

    def test_pass_throughs(self):
        """The worker's number, the machine's counts and tally, as the ring says them."""
        one, two = self.hubs
        self.ring.set_workers(2, 3, 1, 4, 5)
        self.assertEqual((two.worker, two.workers(), two.restarts(), two.watched()),
                         (2, (2, 3), 1, (1, 4, 5)))
        self.assertEqual((one.runs_once, two.runs_once, one.alone), (True, False, False))
        self.assertTrue(one.admit(b"a", 1, 1))
        self.assertFalse(two.admit(b"a", 1, 1), "one tally for the machine")
        self.assertRaises(RingError, one.publish, Topic.PAGE, b"key", b"x" * 64)


class LoneTests(SynchronousTestCase):
    """The hub of a server of one process."""

    def test_lone(self):
        """It runs what a machine runs once, tells nobody, hears nothing, bounds nothing."""
        heard = []
        LONE.on(Topic.PAGE, lambda fields, worker: heard.append(fields))
        LONE.lost(lambda: heard.append("lost"))
        LONE.publish(Topic.PAGE, b"key", b"x" * 10000)
        LONE.take()
        self.assertEqual(heard, [])
        self.assertTrue(LONE.alone and LONE.runs_once)
        self.assertEqual((LONE.latest(), LONE.worker, LONE.workers(), LONE.restarts(),
                          LONE.watched()), (0, 0, (1, 1), 0, (0, 0, 0)))
        self.assertTrue(LONE.admit(b"a", 1, 0))
        self.assertGreater(LONE.room, 1 << 20)


class LaneTests(SynchronousTestCase):
    """The topics of the lane on a ring of their own, beside the machine's ring."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=4, slot_size=64)
        self.lane = ChangeRing.create(slots=8, slot_size=64, tally=1)
        for made in (self.ring, self.lane):
            self.addCleanup(made.close)

    def hub(self, number, lane=True):
        """Worker C{number}'s hub, over the ring and (unless not C{lane}) the lane."""
        rings = [ChangeRing.attach(self.ring.fileno(), number)]
        if lane:
            rings.append(ChangeRing.attach(self.lane.fileno(), number))
        for attached in rings:
            self.addCleanup(attached.close)
        return Hub(*rings)

    def test_flood_of_the_ring(self):
        """
        A throttle's events travel on the lane: more announcements than
        the ring holds, while a worker reads nothing, take none of them
        round unread; the worker takes them in, after the others' lap.
        """
        one, two = self.hub(1), self.hub(2)
        heard, laps = [], []
        two.on(Topic.THROTTLE, lambda fields, worker: heard.append((list(fields), worker)))
        two.lost(lambda: laps.append(True))
        one.publish(Topic.THROTTLE, b"login", b"[1]")
        for number in range(10):
            one.publish(Topic.PIN, b"key", b"%d.whl" % number)
        one.publish(Topic.THROTTLE, b"login", b"[2]")
        self.assertEqual((self.ring.latest(), self.lane.latest()), (10, 2))
        two.take()
        self.assertEqual(heard, [([b"login", b"[1]"], 1), ([b"login", b"[2]"], 1)])
        self.assertEqual(laps, [True])

    def test_lane_lapped(self):
        """
        More throttle events than the lane holds while a worker reads
        nothing (stopped for minutes): it says so, at error, and reads on.
        """
        one, two = self.hub(1), self.hub(2)
        heard = []
        two.on(Topic.THROTTLE, lambda fields, worker: heard.append(fields[1]))
        for number in range(10):
            one.publish(Topic.THROTTLE, b"login", b"[%d]" % number)
        with capturedLogs() as events:
            two.take()
        self.assertEqual(heard, [])
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertIn("Fell 10 announcements behind the other workers' throttle events "
                      "(logins, token exchanges), more than the machine keeps (8)",
                      formatEvent(event))
        one.publish(Topic.THROTTLE, b"login", b"[10]")
        two.take()
        self.assertEqual(heard, [b"[10]"])

    def test_past_and_held(self):
        """
        A worker started again is handed the lane's past for the lane's
        topics (the ring's for the others'); the lane is what a throttle
        holds, so another's event waits for it.
        """
        one = self.hub(1)
        one.publish(Topic.THROTTLE, b"login", b"[1]")
        one.publish(Topic.PIN, b"key", b"a.whl")
        again, heard = self.hub(2), []
        again.on(Topic.THROTTLE, lambda fields, worker: heard.append(("x", list(fields))),
                 past=True)
        again.on(Topic.PIN, lambda fields, worker: heard.append(("pin", list(fields))),
                 past=True)
        self.assertEqual(heard, [("x", [b"login", b"[1]"]), ("pin", [b"key", b"a.whl"])])
        with again.held(Topic.THROTTLE):
            self.assertRaises(BlockingIOError, fcntl.flock, self.lane.fileno(),
                              fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(self.ring.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(self.ring.fileno(), fcntl.LOCK_UN)

    def test_without_a_lane(self):
        """A worker given no lane (by a supervisor of before it) tells them on the ring."""
        one, two = self.hub(1, lane=False), self.hub(2, lane=False)
        heard = []
        two.on(Topic.THROTTLE, lambda fields, worker: heard.append(list(fields)))
        one.publish(Topic.THROTTLE, b"login", b"[1]")
        two.take()
        self.assertEqual((heard, self.ring.latest(), self.lane.latest()),
                         ([[b"login", b"[1]"]], 1, 0))
