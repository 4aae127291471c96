"""
The deliveries of the journal's events (L{pypid.webhooks.delivery}) on a
L{Clock}, with a scripted sender: order within a project, groups taken in
turn (a flood of one actor's events holds another's back by one), retries,
Retry-After, giving up and sending again, a filter narrowed at a reload,
cursors kept across a restart, the outbox of before the journal carried
over, lanes that do not wait for each other, the lease of a shared store,
what they show.
"""

import json

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase

from pypid.core.records.webhook_events import Filter, WebhookEvent
from pypid.storage.base.interface import StorageError
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.webhooks.delivery import CURSOR_DELAY, STORE_PAUSE, Deliveries
from pypid.webhooks.lanes import Lane
from pypid.webhooks.lease import RENEW, TTL, Lease
from pypid.webhooks.ledger import Cursor, Ledger
from pypid.webhooks.sender import Attempt
from tests.harness.memory_records import MemoryRecords
from tests.harness.webhooks import ScriptedSender, change, subscription

OK = Attempt(200, None)
DOWN = Attempt(0, "cannot reach the receiver: connection refused")

#: The tests' clock starts here (2001-09-09).
START = 1_000_000_000


class DeliveriesCase(TestCase):
    """A journal, a ledger, and deliveries over them."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.journal = MemoryJournal(self.clock)
        self.store = MemoryRecords()
        self.ledger = Ledger(self.store, self.clock, "a")
        self.sender = ScriptedSender()
        self.subscriptions = {"builds": subscription("builds", retry_delay=10.0,
                                                     retry_for=100.0)}

    def deliveries(self, sender=None, lease=None, ledger=None, journal=None, **kwargs):
        deliveries = Deliveries(journal or self.journal, ledger or self.ledger,
                                sender or self.sender, lambda: self.subscriptions, self.clock,
                                lease, look_every=1.0, jitter=lambda: 0.0, **kwargs)
        (journal or self.journal).listen(deliveries.wake)
        deliveries.startService()
        self.addCleanup(deliveries.stopService)
        return deliveries

    async def add(self, *numbers, project="widget", **fields):
        """Uploads of files C{f<n>} of C{project}, written to the journal."""
        await self.journal.append([
            change(when=self.clock.seconds(), project=project, filename=f"f{n}", **fields)
            for n in numbers])

    def tick(self, seconds=1.0, times=1):
        for _ in range(times):
            self.clock.advance(seconds)


def files(sender, name=None):
    """The files of the events C{sender} sent (to C{name}), in order."""
    return [event.data["files"][0]["filename"] if event.data["files"] else event.type
            for sent_to, event in sender.sent if name in (None, sent_to)]


class OrderTests(DeliveriesCase):
    """Events go out in the journal's order, within a project."""

    async def test_in_order(self):
        """Events written while it delivers: sent in order, the cursor kept after them."""
        self.deliveries()
        self.tick(0)
        await self.add(1, 2, 3)
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1", "f2", "f3"])
        # (kept once for the three, a moment after)
        self.tick(CURSOR_DELAY)
        cursor = await self.ledger.cursor("builds")
        self.assertEqual((cursor.serial, cursor.done), (self.journal.last_serial, frozenset()))

    async def test_written_here_not_read_back(self):
        """
        What this server wrote, following what a lane read, is taken in as
        the journal told it: not read back; what another wrote between is.
        """
        self.deliveries()
        self.tick(0)
        reads = []
        real = self.journal.since
        self.patch(self.journal, "since", lambda *a: reads.append(a) or real(*a))
        await self.add(1, 2)
        await self.add(3)
        self.tick(0)
        self.assertEqual((files(self.sender), reads), (["f1", "f2", "f3"], []))
        # (another process's entry, told to no listener here: read, with what follows)
        other = MemoryJournal(self.clock)
        other.files = self.journal.files
        await other.append([change(when=self.clock.seconds(), project="widget",
                                   filename="f4")])
        await self.add(5)
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1", "f2", "f3", "f4", "f5"])
        self.assertEqual(len(reads), 1)

    async def test_new_subscription_begins_at_the_end(self):
        """A subscription sends what comes after it was first seen, not the journal's past."""
        await self.add(1)
        self.deliveries()
        self.tick(0)
        await self.add(2)
        self.tick(0)
        self.assertEqual(files(self.sender), ["f2"])

    async def test_held_back_by_a_failure(self):
        """While the first fails, the next of its project waits; another project goes."""
        self.sender.answers = [DOWN, OK]
        self.deliveries()
        self.tick(0)
        await self.add(1, 2)
        await self.add(9, project="other")
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1", "f9"])
        self.tick(9.9)
        self.assertEqual(files(self.sender), ["f1", "f9"])
        self.tick(0.1)
        self.assertEqual(files(self.sender), ["f1", "f9", "f1", "f2"])

    async def test_retry_after(self):
        """A receiver's Retry-After is waited, longer than the back-off."""
        self.sender.answers = [Attempt(429, "HTTP 429", retry_after=60.0), OK]
        self.deliveries()
        self.tick(0)
        await self.add(1)
        self.tick(0)
        self.tick(59)
        self.assertEqual(files(self.sender), ["f1"])
        self.tick(1)
        self.assertEqual(files(self.sender), ["f1", "f1"])

    async def test_promoted_release_is_one_event(self):
        """The files of a promoted release, written together, are one event naming each."""
        self.deliveries()
        self.tick(0)
        await self.journal.append([
            change("promote", when=self.clock.seconds(), filename=name, index="prod",
                   target="staging") for name in ("a.whl", "b.tar.gz")])
        self.tick(0)
        [(_, event)] = self.sender.sent
        self.assertEqual([f["filename"] for f in event.data["files"]], ["a.whl", "b.tar.gz"])

    async def test_refused_changes_are_not_events(self):
        """A refused change, a failed login: nothing sent, and the cursor goes past them."""
        self.deliveries()
        self.tick(0)
        await self.journal.append([change(outcome="refused"), change("login-failed")])
        self.tick(0)
        self.tick(2)
        self.assertEqual(self.sender.sent, [])
        self.assertEqual((await self.ledger.cursor("builds")).serial,
                         self.journal.last_serial)


class FairnessTests(DeliveriesCase):
    """One actor's flood holds the others back by one event at a time."""

    async def test_flood_of_tokens(self):
        """600 token events of one user, then an admin's upload: the upload goes second."""
        self.sender.hold = True
        self.deliveries()
        self.tick(0)
        await self.journal.append([change("token-issued", user="mallory", project=None,
                                          filename=None, target=f"t{n}") for n in range(600)])
        await self.add(1, user="admin")
        self.tick(0)
        self.sender.release()
        self.tick(0)
        self.sender.release()
        self.assertEqual(files(self.sender)[:2], ["token-issued", "f1"])
        self.sender.hold = False
        self.sender.release()
        self.tick(1, times=3)
        self.assertEqual(len(self.sender.sent), 601)

    async def test_window(self):
        """A lane reads no more than its window ahead; the rest once it moved."""
        self.deliveries(window=3)
        self.sender.hold = True
        self.tick(0)
        await self.add(*range(10))
        self.tick(0)
        deliveries_lane = self.sender.waiting
        self.assertEqual(len(deliveries_lane), 1)
        self.sender.hold = False
        self.sender.release()
        self.tick(1, times=5)
        self.assertEqual(files(self.sender), [f"f{n}" for n in range(10)])


class FilterTests(DeliveriesCase):
    """The subscription in force when an event is sent decides."""

    async def test_narrowed_at_a_reload(self):
        """Events waiting that a reload's filter no longer wants are not sent."""
        self.sender.answers = [DOWN, OK]
        self.deliveries()
        self.tick(0)
        await self.add(1, 2, index="private")
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1"])
        builds = self.subscriptions["builds"]
        self.subscriptions["builds"] = subscription(
            "builds", retry_delay=10.0, retry_for=100.0, filter=Filter(indexes=frozenset(
                {"public"})))
        self.assertNotEqual(builds, self.subscriptions["builds"])
        self.tick(10)
        await self.add(3, index="public")
        self.tick(1)
        self.assertEqual(files(self.sender), ["f1", "f3"])


class GiveUpTests(DeliveriesCase):
    """After C{retry_for}, an event is given up, kept, and sent again on demand."""

    async def test_given_up_and_redelivered(self):
        """Given up at the end of its time; the next goes; redelivered, it goes again."""
        self.sender.answers = [DOWN] * 5 + [OK]
        self.deliveries()
        self.tick(0)
        await self.add(1, 2)
        # tries at 0, 10, 30, 70, 100 (the end): five, then given up
        self.tick(0)
        self.tick(10, times=10)
        self.assertEqual(files(self.sender), ["f1"] * 5 + ["f2"])
        [failed] = await self.ledger.given_up("builds")
        self.assertEqual((failed.event.data["files"][0]["filename"], failed.tries), ("f1", 5))
        self.assertIn("connection refused", failed.error)
        self.assertEqual(await self.ledger.redeliver("builds"), 1)
        self.assertEqual(await self.ledger.given_up("builds"), [])
        self.tick(1)
        self.assertEqual(files(self.sender)[-1], "f1")
        self.assertEqual(await self.ledger.again("builds"), [])
        self.assertEqual(self.sender.sent[0][1].id, self.sender.sent[-1][1].id)

    async def test_removed_subscription(self):
        """A subscription removed loses its cursor: added back, it begins at the end."""
        self.deliveries()
        self.tick(0)
        self.assertIsNotNone(await self.ledger.cursor("builds"))
        builds = self.subscriptions.pop("builds")
        self.tick(1)
        self.assertIsNone(await self.ledger.cursor("builds"))
        await self.add(1)
        self.subscriptions["builds"] = builds
        self.tick(1)
        await self.add(2)
        self.tick(1)
        self.assertEqual(files(self.sender), ["f2"])


class RestartTests(DeliveriesCase):
    """The cursor outlives the server: a restart goes on where it was, nothing twice."""

    async def test_restart_goes_on(self):
        """Stopped with events waiting, the next start sends them, and only them."""
        self.sender.answers = [OK, DOWN, OK]
        deliveries = self.deliveries()
        self.tick(0)
        await self.add(1)
        await self.add(2, project="other")
        await self.add(3)
        self.tick(0)
        await deliveries.stopService()
        self.assertEqual(files(self.sender), ["f1", "f2", "f3"])
        sender = ScriptedSender()
        self.deliveries(sender=sender, ledger=Ledger(self.store, self.clock, "b"))
        self.tick(0)
        self.assertEqual(files(sender), ["f2"])

    async def test_outbox_carried_over(self):
        """What an outbox of before the journal held is sent once, then gone."""
        event = WebhookEvent("evt_1_ab", "upload", "2001-09-09T01:46:40.000000Z",
                             {"files": [{"filename": "old"}], "project": "widget",
                              "index": "default"})
        self.store.records["outbox/0001-a-00000000.json"] = json.dumps(
            {"event": event.to_json(), "to": ["builds", "gone"],
             "created": START}).encode()
        self.deliveries()
        self.tick(0)
        self.tick(1)
        self.assertEqual(files(self.sender), ["old"])
        self.assertEqual([n for n in self.store.records if n.startswith("outbox/")], [])
        self.assertEqual(await self.ledger.again("builds"), [])

    async def test_records_not_read_are_left(self):
        """
        A record of the outbox, or of the events given up or to send again,
        that is not one (damaged, or not a JSON object) is logged and left
        as it is: the others are read, and the API that lists them answers.
        """
        event = WebhookEvent("evt_1_ab", "upload", "2001-09-09T01:46:40.000000Z",
                             {"files": [{"filename": "old"}], "project": "widget",
                              "index": "default"})
        self.store.records["outbox/0001-a-00000000.json"] = json.dumps(
            {"event": event.to_json(), "to": ["builds"], "created": START}).encode()
        self.store.records["outbox/0002-a-00000000.json"] = b"[1, 2]"
        self.store.records["outbox/0003-a-00000000.json"] = json.dumps(
            {"event": event.to_json(), "to": "builds", "created": START}).encode()
        self.store.records["failed/builds/0004.json"] = b'{"tries": "many"}'
        self.store.records["again/builds/0005.json"] = b"\xff"
        with capturedLogs() as events:
            self.assertEqual(await self.ledger.carry_outbox(), 1)
            self.assertEqual(await self.ledger.given_up("builds"), [])
            self.assertEqual([a.key for a in await self.ledger.again("builds")],
                             ["0001-a-00000000"])
        refused = sorted(e["name"] for e in events if "Cannot read the webhook record"
                         in e.get("log_format", ""))
        self.assertEqual(refused, ["0002-a-00000000.json", "0003-a-00000000.json",
                                   "0004.json", "0005.json"])
        self.assertIn("outbox/0002-a-00000000.json", self.store.records)
        self.assertNotIn("outbox/0001-a-00000000.json", self.store.records)

    def delivered_by_the_outbox(self, name="builds"):
        """C{name} was delivered from the outbox before the journal: its deliverer's last word."""
        self.store.records[f"status/{name}.json"] = json.dumps(
            {"pending": 0, "counts": {"delivered": 3, "failed": 0, "given_up": 0},
             "deliverer": "0ld", "updated": "2001-09-09T01:46:40.000000Z"}).encode()

    async def test_upgraded_subscription_begins_at_the_journal_beginning(self):
        """
        A subscription the outbox delivered before the journal goes on from
        the journal's beginning: a change made after the upgrade, before
        the deliverer's first look (a server listens before it), is sent.
        """
        self.delivered_by_the_outbox()
        await self.add(1)
        await self.add(2, project="other")
        self.deliveries()
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1", "f2"])
        await self.add(3)
        self.tick(0)
        self.assertEqual(files(self.sender), ["f1", "f2", "f3"])

    async def test_upgraded_once(self):
        """Once the journal's deliverer kept its cursor, a restart goes on from it."""
        self.delivered_by_the_outbox()
        await self.add(1)
        deliveries = self.deliveries()
        self.tick(0)
        self.tick(CURSOR_DELAY)
        await deliveries.stopService()
        sender = ScriptedSender()
        self.deliveries(sender=sender, ledger=Ledger(self.store, self.clock, "b"))
        self.tick(0)
        await self.add(2)
        self.tick(0)
        self.assertEqual((files(self.sender), files(sender)), (["f1"], ["f2"]))

    async def test_removed_before_the_upgrade(self):
        """
        A subscription removed before the upgrade and added again after it
        begins at the journal's end: the outbox's last word of it is
        forgotten when the journal's deliverer first finds it unconfigured.
        """
        self.delivered_by_the_outbox("chat")
        await self.add(1)
        deliveries = self.deliveries()
        self.tick(0)
        await deliveries.stopService()
        self.assertNotIn("status/chat.json", self.store.records)
        self.subscriptions["chat"] = subscription("chat", url="https://chat.example/hook")
        sender = ScriptedSender()
        self.deliveries(sender=sender, ledger=Ledger(self.store, self.clock, "b"))
        self.tick(0)
        await self.add(2)
        self.tick(0)
        self.assertEqual(files(sender, "chat"), ["f2"])


class LaneTests(DeliveriesCase):
    """Each subscription has its own lane."""

    async def test_one_down_other_goes(self):
        """A receiver down holds back its own events only."""
        self.subscriptions["chat"] = subscription("chat", url="https://chat.example/hook",
                                                  retry_delay=10.0, retry_for=100.0)
        down = {"chat"}

        class Sender(ScriptedSender):
            def send(self, subscription, event):
                self.answers = [DOWN if subscription.name in down else OK]
                return ScriptedSender.send(self, subscription, event)
        sender = Sender()
        self.deliveries(sender=sender)
        self.tick(0)
        await self.add(1, 2)
        self.tick(0)
        self.assertEqual(files(sender, "builds"), ["f1", "f2"])
        self.assertEqual(files(sender, "chat"), ["f1"])
        down.clear()
        self.tick(10)
        self.assertEqual(files(sender, "chat"), ["f1", "f1", "f2"])


class CursorTests(DeliveriesCase):
    """A lane's cursor stands before its oldest event not yet taken care of."""

    async def test_settled_out_of_order(self):
        """Groups settled in any order: the cursor moves only past what is all settled."""
        for n, project in enumerate(["a", "b", "a", "c", "b", "a"], start=1):
            await self.add(n, project=project)
        entries = await self.journal.since(0, 100)
        lane = Lane("builds", 0)
        lane.read(entries, self.subscriptions["builds"])
        waiting = sorted((w for group in lane.groups.values() for w in group),
                         key=lambda w: w.serial)
        serials = [w.serial for w in waiting]
        self.assertEqual(lane.cursor, serials[0] - 1)
        settled = set()
        for index in (1, 3, 0, 5, 2, 4):
            # (a group's head first: the order a lane sends in)
            w = waiting[index]
            group = lane.groups[w.group]
            if group[0] is not w:
                continue
            lane.settled(w)
            settled.add(w.serial)
            rest = [s for s in serials if s not in settled]
            self.assertEqual(lane.cursor, rest[0] - 1 if rest else lane.read_to)
            self.assertEqual(lane.done, {s for s in settled if s > lane.cursor})
        for w in waiting:
            if w.serial not in settled:
                lane.settled(w)
        self.assertEqual((lane.cursor, lane.done, lane.count), (serials[-1], set(), 0))


class ShownTests(DeliveriesCase):
    """Metrics and the status every server reads."""

    async def test_metrics_and_status(self):
        """Deliveries by outcome, depth, oldest age; the status record says the same."""
        self.sender.answers = [OK, DOWN]
        deliveries = self.deliveries()
        self.tick(0)
        await self.add(1, 2)
        self.tick(0)
        self.tick(5)
        families = {f.name: f for f in deliveries.metric_families()}
        counts = dict(families["pypid_webhook_deliveries"].samples)
        self.assertEqual(counts[("builds", "delivered")], 1)
        self.assertEqual(counts[("builds", "failed")], 1)
        self.assertEqual(dict(families["pypid_webhook_outbox_depth"].samples),
                         {("builds",): 1.0})
        self.assertEqual(dict(families["pypid_webhook_outbox_oldest_seconds"].samples),
                         {("builds",): 5.0})
        self.tick(2)
        status = await self.ledger.status("builds")
        self.assertEqual(status["pending"], 1)
        self.assertEqual([r["status"] for r in status["recent"]], [0, 200])
        self.assertIn("connection refused", status["last_error"])

    async def test_no_subscription_no_work(self):
        """Without a subscription, no lease is taken and nothing is read or kept."""
        self.subscriptions.clear()
        self.store.shared = True
        deliveries = self.deliveries(lease=Lease(self.store, self.clock, "a"))
        self.tick(0)
        self.tick(10, times=5)
        self.assertEqual(self.store.records, {})
        self.assertEqual(list(deliveries.metric_families()), [])

    async def test_store_down(self):
        """The ledger's store down: said once, not a traceback a look; delivered once it is back."""
        self.store.failing = StorageError("the disk is gone")
        self.deliveries()
        self.tick(0)
        await self.add(1)
        self.tick(1, times=5)
        self.assertEqual(self.sender.sent, [])
        self.store.failing = None
        self.tick(1)
        await self.add(2)
        self.tick(1)
        self.assertEqual(files(self.sender), ["f2"])

    async def test_stop_drops_what_is_under_way(self):
        """A delivery under way at the stop is not taken off: the next start sends it again."""
        self.sender.hold = True
        deliveries = self.deliveries()
        self.tick(0)
        await self.add(1)
        self.tick(0)
        await deliveries.stopService()
        self.assertTrue(self.sender.closed)
        sender = ScriptedSender()
        self.deliveries(sender=sender)
        self.tick(0)
        self.assertEqual(files(sender), ["f1"])


class LeaseTests(DeliveriesCase):
    """On a shared store, one server delivers: the lease's holder."""

    def setUp(self):
        DeliveriesCase.setUp(self)
        self.store.shared = True

    def server(self, name):
        sender = ScriptedSender()
        journal = MemoryJournal(self.clock)
        journal.files = self.journal.files
        deliveries = self.deliveries(sender, Lease(self.store, self.clock, name),
                                     Ledger(self.store, self.clock, name), journal)
        return deliveries, sender

    async def test_one_delivers(self):
        """Two servers: each event is sent once, by the holder alone."""
        (_, sent_one), (_, sent_two) = self.server("one"), self.server("two")
        self.tick(0)
        self.tick(1)
        await self.add(1, 2, 3)
        self.tick(1, times=3)
        self.assertEqual(sorted(files(sent_one) + files(sent_two)), ["f1", "f2", "f3"])
        self.assertTrue(sent_one.sent == [] or sent_two.sent == [])

    async def test_taken_over_after_a_stop(self):
        """The holder stops (giving the lease up): the other delivers at its next look."""
        (one, sent_one), (two, sent_two) = self.server("one"), self.server("two")
        self.tick(0)
        self.tick(1)
        holder, sent_other = (one, sent_two) if one._active else (two, sent_one)
        await holder.stopService()
        await self.add(1)
        self.tick(1, times=2)
        self.assertEqual(files(sent_other), ["f1"])

    async def test_taken_over_after_silence(self):
        """A holder that stops renewing (killed) is taken over after the TTL, not before."""
        lease = Lease(self.store, self.clock, "dead")
        self.assertTrue(await lease.hold())
        await self.ledger.keep_cursor("builds", Cursor(self.journal.last_serial))
        (two, sent_two) = self.server("two")
        await self.add(1)
        self.tick(1, times=int(TTL) - 2)
        self.assertEqual(sent_two.sent, [])
        self.tick(1, times=4)
        self.assertEqual(files(sent_two), ["f1"])
        # the dead holder, back, finds the lease taken at its next renewal
        self.clock.advance(RENEW)
        self.assertFalse(await lease.hold())


class HeldLease:
    """A lease the test gives and takes back."""

    renew = 10.0

    def __init__(self):
        self.held = True

    def hold(self):
        return succeed(self.held)

    def release(self):
        return succeed(None)


class LaneLifeTests(DeliveriesCase):
    """A lane dropped sends nothing more; one lane per subscription, always."""

    async def test_lease_lost_and_won_back(self):
        """The lane of the lost lease keeps no timer: won back, the events go once, in order."""
        self.sender.answers = [DOWN, OK]
        lease = HeldLease()
        self.deliveries(lease=lease)
        self.tick(0)
        await self.add(1, 2)
        self.tick(0)
        lease.held = False
        self.tick(1)
        lease.held = True
        self.tick(1)
        self.tick(10)
        self.assertEqual(files(self.sender), ["f1", "f1", "f2"])

    async def test_store_down_after_a_send(self):
        """
        The cursor cannot be kept after a delivery: nothing is sent twice
        meanwhile, and the cursor is kept once the store answers again.
        """
        class Stuck(MemoryRecords):
            stuck = False

            def put(self, items):
                if self.stuck and any(n.startswith("cursors/") for n in items):
                    return fail(StorageError("the bucket is unreachable"))
                return MemoryRecords.put(self, items)
        self.store = Stuck()
        self.ledger = Ledger(self.store, self.clock, "a")
        self.deliveries()
        self.tick(0)
        self.store.stuck = True
        await self.add(1)
        self.tick(0)
        self.tick(1, times=int(STORE_PAUSE) + 2)
        self.assertEqual(files(self.sender), ["f1"])
        self.store.stuck = False
        self.tick(1, times=3)
        self.assertEqual((await self.ledger.cursor("builds")).serial, self.journal.last_serial)

    async def test_stop_with_the_store_down(self):
        """Stopping with the store down still gives the lease up and closes the connections."""
        released = []

        class Lease(HeldLease):
            def release(self):
                released.append(True)
                return succeed(None)
        self.sender.answers = [DOWN]
        deliveries = Deliveries(self.journal, self.ledger, self.sender,
                                lambda: self.subscriptions, self.clock, Lease(),
                                look_every=1.0, jitter=lambda: 0.0)
        deliveries.startService()
        self.tick(0)
        await self.add(1)
        self.tick(1)
        self.store.failing = StorageError("down")
        await deliveries.stopService()
        self.assertEqual((released, self.sender.closed), ([True], True))


class BacklogLeaseTests(TestCase):
    """A backlog read slowly on a bucket: the lease is renewed meanwhile, one server delivers."""

    async def test_one_deliverer(self):
        clock = Clock()
        clock.advance(START)

        class Slow(MemoryRecords):
            def get(self, name):
                d = Deferred()
                clock.callLater(1.0, lambda: MemoryRecords.get(self, name).chainDeferred(d))
                return d
        store = Slow(shared=True)
        journal = MemoryJournal(clock)
        hooks = {"builds": subscription("builds")}
        await Ledger(store, clock, "w").keep_cursor("builds", Cursor(1))
        await journal.append([change(when=clock.seconds(), filename=f"f{n}", project=f"p{n}")
                              for n in range(60)])
        senders, servers = [], []
        for name in ("one", "two"):
            sender = ScriptedSender()
            senders.append(sender)
            servers.append(Deliveries(journal, Ledger(store, clock, name), sender,
                                      lambda: hooks, clock, Lease(store, clock, name),
                                      look_every=5.0, jitter=lambda: 0.0))
            servers[-1].startService()
        for _ in range(400):
            clock.advance(1)
        stopped = [server.stopService() for server in servers]
        for _ in range(30):
            clock.advance(1)
        self.assertTrue(all(d.called for d in stopped))
        sent = files(senders[0]) + files(senders[1])
        self.assertEqual(sorted(set(sent)), sorted(f"f{n}" for n in range(60)))
        self.assertEqual(len(sent), len(set(sent)))
        self.assertTrue(senders[0].sent == [] or senders[1].sent == [])
