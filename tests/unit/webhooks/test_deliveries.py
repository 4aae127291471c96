"""
The deliveries of the outbox (L{pypid.webhooks.delivery}) on a L{Clock},
with a scripted sender: order, retries, Retry-After, giving up and
redelivering, lanes that do not wait for each other, the lease of a
shared store, what they show.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.core.records.webhook_events import WebhookEvent
from pypid.storage.interface import StorageError
from pypid.storage.outbox_store import MemoryOutboxStore
from pypid.webhooks.delivery import UNKNOWN_GRACE, Deliveries
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
