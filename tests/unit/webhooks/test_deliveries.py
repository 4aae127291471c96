"""
The deliveries of the outbox (L{pypid.webhooks.delivery}) on a L{Clock},
with a scripted sender: order, retries, Retry-After, giving up and
redelivering, lanes that do not wait for each other, the lease of a
shared store, what they show.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.core.records.webhook_events import WebhookEvent
from pypid.storage.interface import StorageError
from pypid.storage.outbox_store import MemoryOutboxStore
from pypid.webhooks.delivery import STORE_PAUSE, UNKNOWN_GRACE, Deliveries
from pypid.webhooks.lease import RENEW, TTL, Lease
from pypid.webhooks.outbox import Outbox
from pypid.webhooks.sender import Attempt
from tests.harness.webhooks import ScriptedSender, subscription

OK = Attempt(200, None)
DOWN = Attempt(0, "cannot reach the receiver: connection refused")


def event(n, type="upload"):
    return WebhookEvent(f"evt_{n}", type, "2026-11-28T01:00:00.000000Z", {"n": n})


class DeliveriesCase(TestCase):
    """A store, an outbox, and deliveries over them."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.store = MemoryOutboxStore()
        self.outbox = Outbox(self.store, self.clock, "a")
        self.sender = ScriptedSender()
        self.subscriptions = {"builds": subscription("builds", retry_delay=10.0,
                                                     retry_for=100.0)}

    def deliveries(self, outbox=None, sender=None, lease=None):
        deliveries = Deliveries(outbox or self.outbox, sender or self.sender,
                                lambda: self.subscriptions, self.clock, lease,
                                look_every=1.0, jitter=lambda: 0.0)
        deliveries.startService()
        self.addCleanup(deliveries.stopService)
        return deliveries

    async def add(self, *numbers, to=("builds",)):
        await self.outbox.add([(event(n), to) for n in numbers])

    def pending(self):
        return sorted(self.store.records)

    def tick(self, seconds=1.0, times=1):
        for _ in range(times):
            self.clock.advance(seconds)


class OrderTests(DeliveriesCase):
    """Events go out in the order they were made, and leave the outbox."""

    async def test_in_order(self):
        """Three events, delivered in order; the outbox is empty after."""
        await self.add(1, 2, 3)
        self.deliveries()
        self.tick(0)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_2", "evt_3"])
        self.assertEqual([n for n in self.pending() if n.startswith("outbox/")], [])

    async def test_held_back_by_a_failure(self):
        """While the first fails, the second is not sent; both go once it is taken."""
        self.sender.answers = [DOWN, DOWN, OK]
        await self.add(1, 2)
        self.deliveries()
        self.tick(0)
        self.assertEqual(self.sender.ids(), ["evt_1"])
        self.tick(9.9)
        self.assertEqual(self.sender.ids(), ["evt_1"])
        self.tick(0.1)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1"])
        # (the wait doubles: 20 s)
        self.tick(20)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1", "evt_1", "evt_2"])

    async def test_retry_after(self):
        """A receiver's Retry-After is waited, longer than the back-off."""
        self.sender.answers = [Attempt(429, "HTTP 429", retry_after=60.0), OK]
        await self.add(1)
        self.deliveries()
        self.tick(0)
        self.tick(59)
        self.assertEqual(self.sender.ids(), ["evt_1"])
        self.tick(1)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1"])

    async def test_new_events_woken(self):
        """Events added later are delivered at the next look, or at once when woken."""
        deliveries = self.deliveries()
        self.tick(0)
        await self.add(1)
        deliveries.wake()
        self.tick(0)
        self.assertEqual(self.sender.ids(), ["evt_1"])


class GiveUpTests(DeliveriesCase):
    """After C{retry_for}, an event is given up, kept, and sent again on demand."""

    async def test_given_up_and_redelivered(self):
        """Given up at the end of its time; the next goes; redelivered, it goes again."""
        self.sender.answers = [DOWN] * 5 + [OK]
        await self.add(1, 2)
        self.deliveries()
        # tries at 0, 10, 30, 70, 100 (the end): five, then given up
        self.tick(0)
        self.tick(10, times=10)
        self.assertEqual(self.sender.ids(), ["evt_1"] * 5 + ["evt_2"])
        [failed] = await self.outbox.given_up("builds")
        self.assertEqual((failed.event.id, failed.tries), ("evt_1", 5))
        self.assertIn("connection refused", failed.error)
        self.assertEqual(await self.outbox.redeliver("builds"), 1)
        self.assertEqual(await self.outbox.given_up("builds"), [])
        self.tick(1)
        self.assertEqual(self.sender.ids()[-1], "evt_1")
        self.assertEqual([n for n in self.pending() if n.startswith("outbox/")], [])

    async def test_removed_subscription(self):
        """
        Events of a subscription no longer configured are given up, with
        why, once another server (or worker) cannot be about to know it.
        """
        await self.add(1, to=("gone",))
        self.deliveries()
        self.tick(0)
        self.assertEqual(await self.outbox.given_up("gone"), [])
        self.tick(UNKNOWN_GRACE)
        [failed] = await self.outbox.given_up("gone")
        self.assertIn("no longer configured", failed.error)
        self.assertEqual(self.sender.sent, [])


class LaneTests(DeliveriesCase):
    """Each subscription has its own lane."""

    async def test_one_down_other_goes(self):
        """A receiver down holds back its own events only; an event for both stays until both took it."""
        self.subscriptions["chat"] = subscription("chat", url="https://chat.example/hook")
        down = {"chat"}

        class Sender(ScriptedSender):
            def send(self, subscription, event):
                self.answers = [DOWN if subscription.name in down else OK]
                return ScriptedSender.send(self, subscription, event)
        sender = Sender()
        await self.add(1, 2, to=("builds", "chat"))
        self.deliveries(sender=sender)
        self.tick(0)
        self.assertEqual(sender.ids("builds"), ["evt_1", "evt_2"])
        self.assertEqual(sender.ids("chat"), ["evt_1"])
        items = await self.outbox.pending()
        self.assertEqual([item.to for item in items], [("chat",), ("chat",)])
        down.clear()
        self.tick(10)
        self.assertEqual(sender.ids("chat"), ["evt_1", "evt_1", "evt_2"])
        self.assertEqual(await self.outbox.pending(), [])


class ShownTests(DeliveriesCase):
    """Metrics and the status every server reads."""

    async def test_metrics_and_status(self):
        """Deliveries by outcome, depth, oldest age; the status record says the same."""
        self.sender.answers = [OK, DOWN]
        await self.add(1, 2)
        deliveries = self.deliveries()
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
        status = await self.outbox.status("builds")
        self.assertEqual(status["pending"], 1)
        self.assertEqual([r["id"] for r in status["recent"]], ["evt_2", "evt_1"])
        self.assertIn("connection refused", status["last_error"])

    async def test_no_subscription_no_work(self):
        """Without a subscription, no lease is taken and the outbox is not read."""
        self.subscriptions.clear()
        self.store.shared = True
        deliveries = self.deliveries(lease=Lease(self.store, self.clock, "a"))
        self.tick(0)
        self.tick(10, times=5)
        self.assertEqual(self.store.records, {})
        self.assertEqual(list(deliveries.metric_families()), [])

    async def test_store_down(self):
        """The store down: said once, not a traceback a look; delivered once it is back."""
        await self.add(1)
        self.store.failing = StorageError("the disk is gone")
        self.deliveries()
        self.tick(0)
        self.tick(1, times=5)
        self.assertEqual(self.sender.sent, [])
        self.store.failing = None
        self.tick(1)
        self.assertEqual(self.sender.ids(), ["evt_1"])

    async def test_stop_drops_what_is_under_way(self):
        """A delivery under way at the stop is not taken off: the next start sends it again."""
        self.sender.hold = True
        await self.add(1)
        deliveries = self.deliveries()
        self.tick(0)
        await deliveries.stopService()
        self.assertEqual(len(await self.outbox.pending()), 1)
        self.assertTrue(self.sender.closed)


class LeaseTests(DeliveriesCase):
    """On a shared store, one server delivers: the lease's holder."""

    def setUp(self):
        DeliveriesCase.setUp(self)
        self.store.shared = True

    def server(self, name):
        outbox = Outbox(self.store, self.clock, name)
        sender = ScriptedSender()
        deliveries = self.deliveries(outbox, sender, Lease(self.store, self.clock, name))
        return deliveries, sender

    async def test_one_delivers(self):
        """Two servers: each event is sent once, by the holder alone."""
        (_, sent_one), (_, sent_two) = self.server("one"), self.server("two")
        self.tick(0)
        await self.add(1, 2, 3)
        self.tick(1, times=3)
        self.assertEqual(sorted(sent_one.ids() + sent_two.ids()), ["evt_1", "evt_2", "evt_3"])
        self.assertTrue(sent_one.ids() == [] or sent_two.ids() == [])

    async def test_taken_over_after_a_stop(self):
        """The holder stops (giving the lease up): the other delivers at its next look."""
        (one, sent_one), (two, sent_two) = self.server("one"), self.server("two")
        self.tick(0)
        holder, other, sent_other = (one, two, sent_two) if one._active else (two, one, sent_one)
        await holder.stopService()
        await self.add(1)
        self.tick(1, times=2)
        self.assertEqual(sent_other.ids(), ["evt_1"])

    async def test_taken_over_after_silence(self):
        """A holder that stops renewing (killed) is taken over after the TTL, not before."""
        store = self.store
        lease = Lease(store, self.clock, "dead")
        self.assertTrue(await lease.hold())
        (two, sent_two) = self.server("two")
        await self.add(1)
        self.tick(1, times=int(TTL) - 2)
        self.assertEqual(sent_two.ids(), [])
        self.tick(1, times=4)
        self.assertEqual(sent_two.ids(), ["evt_1"])
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
        await self.add(1, 2)
        self.deliveries(lease=lease)
        self.tick(0)
        lease.held = False
        self.tick(1)
        lease.held = True
        self.tick(1)
        self.tick(10)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1", "evt_2"])

    async def test_removed_and_added_back(self):
        """A subscription removed then added back at reloads: one lane, no repeat."""
        self.sender.answers = [DOWN, OK]
        await self.add(1, 2)
        self.deliveries()
        self.tick(0)
        builds = self.subscriptions.pop("builds")
        self.tick(1)
        self.subscriptions["builds"] = builds
        self.tick(1)
        self.tick(10)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1", "evt_2"])

    async def test_other_lane_took_it_first(self):
        """
        Another subscription takes an event first (its record rewritten) and
        a new one arrives meanwhile: the event is sent once to this one.
        """
        self.subscriptions["chat"] = subscription("chat", url="https://chat.example/h")

        class Holding(ScriptedSender):
            def send(self, subscription, event):
                self.hold = subscription.name == "builds"
                return ScriptedSender.send(self, subscription, event)
        sender = Holding()
        await self.add(1, to=("builds", "chat"))
        self.deliveries(sender=sender)
        self.tick(0)
        await self.add(2, to=("builds", "chat"))
        self.tick(1)
        sender.release()
        self.tick(0)
        sender.release()
        self.tick(0)
        self.assertEqual(sender.ids("builds"), ["evt_1", "evt_2"])

    async def test_store_down_after_a_send(self):
        """
        The outbox cannot be changed after a delivery: a pause before the
        event is sent again, not a send a moment; taken off once it can be.
        """
        class Stuck(MemoryOutboxStore):
            stuck = False

            def delete(self, names):
                if self.stuck:
                    return fail(StorageError("the bucket is unreachable"))
                return MemoryOutboxStore.delete(self, names)
        self.store = Stuck()
        self.outbox = Outbox(self.store, self.clock, "a")
        await self.add(1)
        self.store.stuck = True
        self.deliveries()
        self.tick(0)
        self.tick(1, times=int(STORE_PAUSE) - 1)
        self.assertEqual(self.sender.ids(), ["evt_1"])
        self.store.stuck = False
        self.tick(1)
        self.assertEqual(self.sender.ids(), ["evt_1", "evt_1"])
        self.assertEqual([n for n in self.pending() if n.startswith("outbox/")], [])

    async def test_stop_with_the_store_down(self):
        """Stopping with the store down still gives the lease up and closes the connections."""
        released = []

        class Lease(HeldLease):
            def release(self):
                released.append(True)
                return succeed(None)
        self.sender.answers = [DOWN]
        await self.add(1)
        deliveries = Deliveries(self.outbox, self.sender, lambda: self.subscriptions,
                                self.clock, Lease(), look_every=1.0, jitter=lambda: 0.0)
        deliveries.startService()
        self.tick(0)
        self.store.failing = StorageError("down")
        await deliveries.stopService()
        self.assertEqual((released, self.sender.closed), ([True], True))


class OddNamesTests(DeliveriesCase):
    """A file copied into the outbox by hand is left alone, not a failure of every look."""

    async def test_stray_record(self):
        await self.add(1)
        self.store.records["outbox/copy of 1.json"] = b"{}"
        self.store.records["failed/builds/x y.json"] = b"{}"
        self.deliveries()
        self.tick(0)
        self.assertEqual(self.sender.ids(), ["evt_1"])
        self.assertEqual(await self.outbox.given_up("builds"), [])


class BacklogLeaseTests(TestCase):
    """A backlog read slowly on a bucket: the lease is renewed meanwhile, one server delivers."""

    async def test_one_deliverer(self):
        clock = Clock()
        clock.advance(1_000_000)

        class Slow(MemoryOutboxStore):
            def get(self, name):
                d = Deferred()
                clock.callLater(1.0, lambda: MemoryOutboxStore.get(self, name).chainDeferred(d))
                return d
        store = Slow(shared=True)
        hooks = {"builds": subscription("builds")}
        await Outbox(store, clock, "w").add([(event(n), ("builds",)) for n in range(60)])
        senders, servers = [], []
        for name in ("one", "two"):
            sender = ScriptedSender()
            senders.append(sender)
            servers.append(Deliveries(Outbox(store, clock, name), sender, lambda: hooks, clock,
                                      Lease(store, clock, name), look_every=5.0,
                                      jitter=lambda: 0.0))
            servers[-1].startService()
        for _ in range(200):
            clock.advance(1)
        stopped = [server.stopService() for server in servers]
        for _ in range(30):
            clock.advance(1)
        self.assertTrue(all(d.called for d in stopped))
        ids = senders[0].ids() + senders[1].ids()
        self.assertEqual(sorted(set(ids)), sorted(f"evt_{n}" for n in range(60)))
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue(senders[0].ids() == [] or senders[1].ids() == [])


class AloneTests(DeliveriesCase):
    """A server of one process on disk delivers what it wrote without listing the outbox again."""

    async def test_no_listing_per_event(self):
        listings = []

        class Counted(MemoryOutboxStore):
            def names(self, folder):
                listings.append(folder)
                return MemoryOutboxStore.names(self, folder)
        self.store = Counted()
        self.outbox = Outbox(self.store, self.clock, "a")
        deliveries = Deliveries(self.outbox, self.sender, lambda: self.subscriptions,
                                self.clock, look_every=1.0, jitter=lambda: 0.0, alone=True)
        deliveries.startService()
        self.addCleanup(deliveries.stopService)
        self.tick(0)
        looked = len(listings)
        for n in range(5):
            await self.add(n)
            deliveries.wake()
            self.tick(0)
        self.assertEqual(self.sender.ids(), [f"evt_{n}" for n in range(5)])
        self.assertEqual(len(listings), looked)
