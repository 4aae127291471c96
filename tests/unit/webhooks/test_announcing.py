"""
The audit log that writes events (L{pypid.webhooks.announcing}): an entry
of a change a subscription wants gets an id and an event in the outbox,
written before its write is answered; refusals and unwanted changes
write none; a promoted release is one event; a failed write is tried
again.
"""

import json

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.core.records.audit_chain import REFUSED, decode, split_lines
from pypid.core.records.webhook_events import Filter
from pypid.storage.audit_files import MemoryAuditLog
from pypid.storage.interface import StorageError
from pypid.storage.outbox_store import MemoryOutboxStore
from pypid.webhooks.announcing import RETRY_DELAY, AnnouncingAuditLog
from pypid.webhooks.outbox import Outbox
from tests.harness.webhooks import change, subscription


class HeldStore(MemoryOutboxStore):
    """A store whose writes wait for the test (L{release})."""

    def __init__(self):
        super().__init__()
        self.held = []

    def put(self, items):
        d = Deferred()
        self.held.append((d, items))
        return d

    def release(self):
        held, self.held = self.held, []
        for d, items in held:
            MemoryOutboxStore.put(self, items).chainDeferred(d)


class AnnouncingCase(TestCase):

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = MemoryOutboxStore()
        self.audit = MemoryAuditLog(self.clock)
        self.subscriptions = {"builds": subscription()}
        self.added = []
        self.log = self.announcing()

    def announcing(self):
        return AnnouncingAuditLog(self.audit, Outbox(self.store, self.clock, "a"),
                                  lambda: self.subscriptions, self.clock,
                                  lambda: self.added.append(True))

    async def items(self):
        return await Outbox(self.store, self.clock).pending()

    def entries(self):
        return [decode(line) for data in self.audit.files.values()
                for line in split_lines(data)]


class EventTests(AnnouncingCase):

    async def test_written_before_answered(self):
        """The write of a wanted change fires once its event is in the outbox too."""
        self.store = HeldStore()
        self.log = self.announcing()
        writing = self.log.write(change())
        self.clock.advance(0)
        self.assertNoResult(writing)
        self.store.release()
        self.assertTrue(self.successResultOf(writing))
        [item] = await self.items()
        [entry] = self.entries()
        self.assertEqual(item.event.id, entry.id)
        self.assertEqual(item.event.type, "upload")
        self.assertEqual(item.to, ("builds",))
        self.assertEqual(self.added, [True])

    async def test_refused_writes_none(self):
        """A refused change's entry has no id and makes no event."""
        self.successResultOf(self.log.write(change(outcome=REFUSED)))
        self.clock.advance(0)
        self.assertEqual(await self.items(), [])
        self.assertIsNone(self.entries()[0].id)

    async def test_unwanted_writes_none(self):
        """A change no subscription wants: no id, no event, no outbox write."""
        self.subscriptions = {"builds": subscription(filter=Filter(frozenset({"yank"})))}
        self.successResultOf(self.log.write(change()))
        self.clock.advance(0)
        self.assertEqual(self.store.records, {})
        self.assertIsNone(self.entries()[0].id)

    async def test_no_subscription(self):
        """With no subscription at all, the log is the log."""
        self.subscriptions = {}
        self.successResultOf(self.log.write(change()))
        self.clock.advance(0)
        self.assertEqual(self.store.records, {})

    async def test_promotion_one_event(self):
        """Files of one release promoted in one turn: one event, one id in every entry."""
        for name in ("widget-1.0-py3-none-any.whl", "widget-1.0.tar.gz"):
            self.log.write(change("promote", filename=name, index="prod", target="staging"))
        self.log.write(change("promote", version="2.0", filename="widget-2.0.tar.gz",
                              index="prod", target="staging"))
        self.clock.advance(0)
        items = await self.items()
        self.assertEqual([len(item.event.data["files"]) for item in items], [2, 1])
        ids = [entry.id for entry in self.entries()]
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[1], ids[2])

    async def test_appended_too(self):
        """An entry the server appends (a purge) makes its event too."""
        self.log.append(change("purge", user=None, login=None))
        self.clock.advance(0)
        [item] = await self.items()
        self.assertEqual(item.event.data["actor"]["source"], "server")

    async def test_subscriptions_by_filter(self):
        """Each event names the subscriptions that want it."""
        self.subscriptions["acme"] = subscription("acme", filter=Filter(projects=("acme-*",)))
        self.log.write(change(project="acme-lib"))
        self.log.write(change())
        self.clock.advance(0)
        self.assertEqual([item.to for item in await self.items()],
                         [("builds", "acme"), ("builds",)])


class FailureTests(AnnouncingCase):

    async def test_retried(self):
        """A failed write is logged, the change still answered, and written later."""
        self.store.failing = StorageError("disk full")
        writing = self.log.write(change())
        self.clock.advance(0)
        self.assertTrue(self.successResultOf(writing))
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        self.store.failing = None
        self.clock.advance(RETRY_DELAY)
        [item] = await self.items()
        self.assertEqual(item.event.id, self.entries()[0].id)

    async def test_close_writes_the_turn(self):
        """Closing writes the events of this turn before the log closes."""
        self.log.append(change())
        self.successResultOf(self.log.close())
        self.assertEqual(len(await self.items()), 1)
        record = json.loads(next(iter(self.store.records.values())))
        self.assertEqual(record["event"]["type"], "upload")


class FailingOnce(MemoryOutboxStore):
    """A store whose next write fails once."""

    def __init__(self):
        super().__init__()
        self.fail_next = 1

    def put(self, items):
        if self.fail_next:
            self.fail_next -= 1
            return fail(StorageError("disk full for a moment"))
        return MemoryOutboxStore.put(self, items)


class OrderTests(AnnouncingCase):
    """This server's events land in the outbox in the order they were made."""

    async def test_failed_write_first(self):
        """A write that failed is written before the events made after it, with its key."""
        self.store = FailingOnce()
        self.log = self.announcing()
        writing = self.log.write(change("upload"))
        self.clock.advance(0)
        self.assertTrue(self.successResultOf(writing))
        self.log.write(change("yank"))
        self.clock.advance(0)
        self.assertEqual([item.event.type for item in await self.items()], ["upload", "yank"])

    async def test_writes_one_at_a_time(self):
        """A second write waits for the first: never a later event alone in the outbox."""
        self.store = HeldStore()
        self.log = self.announcing()
        self.log.write(change("upload"))
        self.clock.advance(0)
        self.log.write(change("yank"))
        self.clock.advance(0)
        self.assertEqual(len(self.store.held), 1)
        self.store.release()
        self.clock.advance(0)  # (the next batch goes in the turn after)
        self.assertEqual(len(self.store.held), 1)
        self.store.release()
        self.assertEqual([item.event.type for item in await self.items()], ["upload", "yank"])
