"""
The webhooks' outbox, kept in the store (L{pypid.storage.outbox_store}):
every event a subscription wants is written there as part of the change
it reports, before the change is answered, and stays until each of its
subscriptions took it or gave it up.

Its records, under the store's folder:
  - C{outbox/<key>.json}: an event and the subscriptions still to
    deliver it to (L{Item}). Keys sort as the events were made (the time
    in milliseconds, the server's instance, a count), so the outbox read
    in order is each subscription's queue in order.
  - C{failed/<subscription>/<key>.json}: an event given up after its last
    try, with why (L{GivenUp}); an admin sends it again (L{Outbox.redeliver}),
    which puts it back at the end of the outbox, under a new key and with
    the same event id (a receiver that took it after all sees the id again).
  - C{status/<subscription>.json}: the deliverer's last word on the
    subscription (L{pypid.webhooks.delivery}), which every server shows.

Only the deliverer (one per store: L{pypid.webhooks.lease}) changes or
removes an outbox record; every server adds them.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.webhook_events import WebhookEvent
from pypid.storage.outbox_store import IOutboxStore

log = Logger()

OUTBOX, FAILED, STATUS = "outbox", "failed", "status"
#: Records read at once (a backlog, on a bucket).
READS = 8
_SUFFIX = ".json"


def _record(data: bytes) -> dict[str, Any]:
    """
    The JSON object a record holds.

    @raise ValueError: when it holds none.
    """
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@attrs.frozen
class Item:
    """
    One record of the outbox: an event, and who still has to be told.

    @ivar key: its name in the outbox (without C{.json}).
    @ivar to: the subscriptions it is still to be delivered to, by name.
    @ivar created: when it was added (POSIX time): how long it is tried
        is counted from it.
    """

    key: str
    event: WebhookEvent
    to: tuple[str, ...]
    created: float

    def data(self) -> bytes:
        """The record's bytes."""
        return json.dumps({"event": self.event.to_json(), "to": list(self.to),
                           "created": self.created}, sort_keys=True).encode("utf-8")

    @classmethod
    def parse(cls, key: str, data: bytes) -> Item:
        """
        The item of a record.

        @raise ValueError: when it is not one.
        """
        value = _record(data)
        to, created = value.get("to"), value.get("created")
        if not isinstance(to, list) or not all(isinstance(name, str) for name in to) \
                or not isinstance(created, (int, float)):
            raise ValueError("not an outbox record")
        return cls(key, WebhookEvent.from_json(value.get("event")), tuple(to), float(created))


@attrs.frozen
class GivenUp:
    """
    An event given up for a subscription after its last try.

    @ivar key: its name in the subscription's folder of failures.
    @ivar tries: how many times it was tried.
    @ivar error: what the last try came to.
    @ivar when: when it was given up (POSIX time).
    """

    key: str
    event: WebhookEvent
    tries: int
    error: str
    when: float

    def data(self) -> bytes:
        """The record's bytes."""
        return json.dumps({"event": self.event.to_json(), "tries": self.tries,
                           "error": self.error, "when": self.when},
                          sort_keys=True).encode("utf-8")

    @classmethod
    def parse(cls, key: str, data: bytes) -> GivenUp:
        """
        The failure a record keeps.

        @raise ValueError: when it is not one.
        """
        value = _record(data)
        tries, error, when = value.get("tries"), value.get("error"), value.get("when")
        if not isinstance(tries, int) or not isinstance(error, str) \
                or not isinstance(when, (int, float)):
            raise ValueError("not a record of a failure")
        return cls(key, WebhookEvent.from_json(value.get("event")), tries, error, float(when))

    def public(self) -> dict[str, Any]:
        """What the API shows of it."""
        return {"key": self.key, "id": self.event.id, "type": self.event.type,
                "time": self.event.time, "tries": self.tries, "error": self.error,
                "given_up": self.when}


class Outbox:
    """
    The outbox of one store: events added by every server, taken off by
    the deliverer.

    @ivar instance: this server's part of the keys it makes (random at
        each start: two servers, or two starts, never make one key).
    """

    def __init__(self, store: IOutboxStore, clock: IReactorTime,
                 instance: str | None = None) -> None:
        self.store = store
        self._clock = clock
        self.instance = instance or secrets.token_hex(4)
        self._count = itertools.count()
        #: the items read, by key (only the deliverer reads them)
        self._known: dict[str, Item] = {}
        #: keys whose records cannot be read: logged once, left alone
        self._unreadable: set[str] = set()
        #: whether this server delivers now: then what it writes is
        #: remembered as written, not read back at the next look
        self.delivering = False
        self._changes = DeferredLock()
        # (this server's writes one at a time: they land in the order of
        # their keys, so the deliverer never sees a later event first)
        self._adding = DeferredLock()

    def new_key(self) -> str:
        """A key for an item added now, after every key this server made before."""
        return (f"{int(self._clock.seconds() * 1000):013d}-{self.instance}-"
                f"{next(self._count):08d}")

    def items(self, events: Iterable[tuple[WebhookEvent, Sequence[str]]]) -> list[Item]:
        """The items of C{events}, each with the subscriptions to tell, keyed now in order."""
        now = self._clock.seconds()
        return [Item(self.new_key(), event, tuple(to), now) for event, to in events]

    def put(self, items: Sequence[Item]) -> Deferred[None]:
        """
        Write C{items} durably, after this server's writes under way, one
        record after the other: the L{Deferred} fires once every record is
        written (or fails with L{pypid.storage.interface.StorageError}).
        """
        return self._adding.run(lambda: ensureDeferred(self._put(items)))

    async def _put(self, items: Sequence[Item]) -> None:
        # (one write of the store: on disk, one fsync of the folder; the
        # records land in the order given)
        await self.store.put({f"{OUTBOX}/{item.key}{_SUFFIX}": item.data() for item in items})
        if self.delivering:
            self._known.update((item.key, item) for item in items)

    def add(self, events: Iterable[tuple[WebhookEvent, Sequence[str]]]) -> Deferred[None]:
        """Write the items of C{events} (L{items}, L{put})."""
        return self.put(self.items(events))

    async def pending(self) -> list[Item]:
        """Every item of the outbox, oldest first (read once each, then remembered)."""
        names = [name[:-len(_SUFFIX)] for name in await self.store.names(OUTBOX)
                 if name.endswith(_SUFFIX)]
        present = set(names)
        for key in list(self._known):
            if key not in present:
                del self._known[key]
        unread = [key for key in names if key not in self._known and key not in self._unreadable]
        # (a backlog read a few records at a time, not one request after another)
        reads = DeferredSemaphore(READS)
        found = await gatherResults(
            [reads.run(self.store.get, f"{OUTBOX}/{key}{_SUFFIX}") for key in unread],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure.raiseException())
        for key, data in zip(unread, found, strict=True):
            if data is None:
                continue
            try:
                self._known[key] = Item.parse(key, data)
            except ValueError as e:
                self._unreadable.add(key)
                log.error("Cannot read the webhook outbox's record {key}: {error}; left "
                          "as it is", key=key, error=str(e))
        return [self._known[key] for key in names if key in self._known]

    def known(self) -> list[Item]:
        """The items read or written by this server while it delivers, oldest first."""
        return [self._known[key] for key in sorted(self._known)]

    def forget(self) -> None:
        """Read every item again at the next L{pending} (another server may have delivered)."""
        self.delivering = False
        self._known.clear()

    async def delivered(self, item: Item, subscription: str) -> None:
        """C{subscription} is done with C{item}: the record is changed, or removed with the last."""
        await self._changes.run(self._delivered, item, subscription)

    async def _delivered(self, item: Item, subscription: str) -> None:
        # (what this server knows of the record last, another lane's change
        # included; the item given when it was forgotten meanwhile)
        key = item.key
        item = self._known.get(key, item)
        if subscription not in item.to:
            return
        rest = tuple(name for name in item.to if name != subscription)
        if rest:
            changed = attrs.evolve(item, to=rest)
            await self.store.put({f"{OUTBOX}/{key}{_SUFFIX}": changed.data()})
            self._known[key] = changed
        else:
            await self.store.delete([f"{OUTBOX}/{key}{_SUFFIX}"])
            self._known.pop(key, None)

    async def give_up(self, item: Item, subscription: str, tries: int, error: str) -> GivenUp:
        """Keep C{item}'s event among C{subscription}'s failures, then take it off its queue."""
        failed = GivenUp(item.key, item.event, tries, error, self._clock.seconds())
        await self.store.put({f"{FAILED}/{subscription}/{item.key}{_SUFFIX}": failed.data()})
        await self.delivered(item, subscription)
        return failed

    async def given_up(self, subscription: str) -> list[GivenUp]:
        """C{subscription}'s events given up, oldest first."""
        found: list[GivenUp] = []
        for name in await self.store.names(f"{FAILED}/{subscription}"):
            if not name.endswith(_SUFFIX):
                continue
            data = await self.store.get(f"{FAILED}/{subscription}/{name}")
            if data is None:
                continue
            try:
                found.append(GivenUp.parse(name[:-len(_SUFFIX)], data))
            except ValueError as e:
                log.error("Cannot read the webhook failure {name} of {subscription}: "
                          "{error}", name=name, subscription=subscription, error=str(e))
        return found

    async def redeliver(self, subscription: str, keys: Sequence[str] | None = None) -> int:
        """
        Put C{subscription}'s given-up events (those of C{keys}; all:
        L{None}) back at the end of the outbox, for it alone; how many (two
        asked at once: the second finds none left).
        """
        return await self._changes.run(
            lambda: ensureDeferred(self._redeliver(subscription, keys)))

    async def _redeliver(self, subscription: str, keys: Sequence[str] | None) -> int:
        failed = [f for f in await self.given_up(subscription) if keys is None or f.key in keys]
        if not failed:
            return 0
        await self.add((f.event, (subscription,)) for f in failed)
        await self.store.delete([f"{FAILED}/{subscription}/{f.key}{_SUFFIX}" for f in failed])
        return len(failed)

    def keep_status(self, subscription: str, status: dict[str, Any]) -> Deferred[None]:
        """Keep the deliverer's last word on C{subscription}."""
        return self.store.put({f"{STATUS}/{subscription}{_SUFFIX}": json.dumps(
            status, sort_keys=True).encode("utf-8")})

    async def status(self, subscription: str) -> dict[str, Any] | None:
        """The deliverer's last word on C{subscription} (L{None}: none yet, or unreadable)."""
        data = await self.store.get(f"{STATUS}/{subscription}{_SUFFIX}")
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
