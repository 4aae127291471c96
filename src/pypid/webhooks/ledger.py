"""
What the deliverer keeps of each subscription, in the store (small
records), so a restart, or another server taking over the lease, goes on
where it was: the events are the journal's; only the deliverer writes here.

Its records, under C{.pypid/webhooks/}:
  - C{cursors/<subscription>.json}: the journal's serial up to which every
    event was taken care of (sent, given up, or not wanted), and the serials
    after it already sent.
  - C{failed/<subscription>/<key>.json}: an event given up after its last
    try, with why (L{GivenUp}); an admin sends it again (L{Ledger.redeliver}).
  - C{again/<subscription>/<key>.json}: an event to send once more, outside
    the journal's order: one an admin put back, or one the outbox held when
    the server was upgraded to the journal (L{Ledger.carry_outbox}).
  - C{status/<subscription>.json}: the deliverer's last word on the
    subscription, which every server shows.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import DeferredLock, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.audit_chain import format_time
from pypid.core.records.webhook_events import WebhookEvent
from pypid.storage.base.records import IRecords

log = Logger()

CURSORS, FAILED, AGAIN, STATUS = "cursors", "failed", "again", "status"
#: Where the events waited before the journal (read once, to carry them over).
OUTBOX = "outbox"
_SUFFIX = ".json"


T = TypeVar("T")


def _record(data: bytes) -> dict[str, Any]:
    """The JSON object a record holds; L{ValueError} when it holds none."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _outbox_record(key: str, data: bytes) -> tuple[str, WebhookEvent, list[str], float]:
    """An outbox record of before the journal: its key, event, subscriptions and time."""
    value = _record(data)
    event = WebhookEvent.from_json(value.get("event"))
    to, created = value.get("to"), value.get("created")
    if not isinstance(to, list) or not isinstance(created, (int, float)):
        raise ValueError("not an outbox record")
    return key, event, [name for name in to if isinstance(name, str)], float(created)


@attrs.frozen
class Cursor:
    """Where a subscription's deliveries are: every event up to C{serial}, and C{done}."""

    serial: int
    done: frozenset[int] = frozenset()

    def data(self) -> bytes:
        """The record's bytes."""
        return json.dumps({"serial": self.serial, "done": sorted(self.done)}).encode("ascii")

    @classmethod
    def parse(cls, data: bytes) -> Cursor:
        """The cursor of a record (L{ValueError}: not one)."""
        value = _record(data)
        serial, done = value.get("serial"), value.get("done", [])
        if not isinstance(serial, int) or not isinstance(done, list) \
                or not all(isinstance(s, int) for s in done):
            raise ValueError("not a cursor")
        return cls(serial, frozenset(s for s in done if s > serial))


@attrs.frozen
class GivenUp:
    """
    An event given up for a subscription after its last try.

    @ivar key: its name in the subscription's folder of failures.
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
        """The failure a record keeps (L{ValueError}: not one)."""
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
                "given_up": format_time(self.when)}


@attrs.frozen
class Again:
    """An event to send once more (see the module), and when it was put back (POSIX time)."""

    key: str
    event: WebhookEvent
    created: float

    def data(self) -> bytes:
        """The record's bytes."""
        return json.dumps({"event": self.event.to_json(), "created": self.created},
                          sort_keys=True).encode("utf-8")

    @classmethod
    def parse(cls, key: str, data: bytes) -> Again:
        """The event a record holds (L{ValueError}: not one)."""
        value = _record(data)
        created = value.get("created")
        if not isinstance(created, (int, float)):
            raise ValueError("not an event to send again")
        return cls(key, WebhookEvent.from_json(value.get("event")), float(created))


class Ledger:
    """The deliverer's records of one store; C{instance}: this server's name in statuses."""

    def __init__(self, store: IRecords, clock: IReactorTime,
                 instance: str | None = None) -> None:
        self.store = store
        self._clock = clock
        self.instance = instance or secrets.token_hex(4)
        self._changes = DeferredLock()

    def _key(self) -> str:
        """A key for a record made now, after every key made before (in its millisecond)."""
        return f"{int(self._clock.seconds() * 1000):013d}-{secrets.token_hex(4)}"

    # -- cursors

    async def cursor(self, subscription: str) -> Cursor | None:
        """Where C{subscription}'s deliveries are (L{None}: nowhere yet, or unreadable)."""
        data = await self.store.get(f"{CURSORS}/{subscription}{_SUFFIX}")
        if data is None:
            return None
        try:
            return Cursor.parse(data)
        except ValueError as e:
            log.error("Cannot read the cursor of the webhook {name}: {error}; its "
                      "deliveries begin at the journal's end", name=subscription, error=str(e))
            return None

    async def keep_cursor(self, subscription: str, cursor: Cursor) -> None:
        """Keep where C{subscription}'s deliveries are."""
        await self.store.put({f"{CURSORS}/{subscription}{_SUFFIX}": cursor.data()})

    async def forget_cursor(self, subscription: str) -> None:
        """C{subscription} was removed: a new one of its name begins at the journal's end."""
        await self.store.delete([f"{CURSORS}/{subscription}{_SUFFIX}",
                                 f"{STATUS}/{subscription}{_SUFFIX}"])

    async def known(self) -> list[str]:
        """The subscriptions the ledger keeps a cursor or a status of."""
        names = set(await self.store.names(CURSORS)) | set(await self.store.names(STATUS))
        return sorted(name[:-len(_SUFFIX)] for name in names if name.endswith(_SUFFIX))

    async def delivered_by_outbox(self, subscription: str) -> bool:
        """
        Whether C{subscription}, which has no cursor, was delivered from the
        outbox before the journal: its status is the outbox deliverer's last
        word (the journal's deliverer's names a serial). Then its events of
        before the journal were delivered or are carried over, and its cursor
        begins at the journal's beginning.
        """
        status = await self.status(subscription)
        return status is not None and "serial" not in status

    # -- failures, and what is sent again

    async def give_up(self, subscription: str, event: WebhookEvent, tries: int,
                      error: str) -> GivenUp:
        """Keep C{event} among C{subscription}'s failures."""
        failed = GivenUp(self._key(), event, tries, error, self._clock.seconds())
        await self.store.put({f"{FAILED}/{subscription}/{failed.key}{_SUFFIX}": failed.data()})
        return failed

    async def given_up(self, subscription: str) -> list[GivenUp]:
        """C{subscription}'s events given up, oldest first."""
        return await self._read(f"{FAILED}/{subscription}", GivenUp.parse)

    async def again(self, subscription: str) -> list[Again]:
        """C{subscription}'s events to send once more, oldest first."""
        return await self._read(f"{AGAIN}/{subscription}", Again.parse)

    async def _read(self, folder: str, parse: Callable[[str, bytes], T]) -> list[T]:
        """
        The records of C{folder}, each read by C{parse(key, data)}; one it
        refuses is logged and left as it is, never stopping the others.
        """
        found: list[T] = []
        for name in await self.store.names(folder):
            if not name.endswith(_SUFFIX):
                continue
            data = await self.store.get(f"{folder}/{name}")
            if data is None:
                continue
            try:
                found.append(parse(name[:-len(_SUFFIX)], data))
            except ValueError as e:
                log.error("Cannot read the webhook record {folder}/{name}: {error}; left as "
                          "it is", folder=folder, name=name, error=str(e))
        return found

    async def sent_again(self, subscription: str, key: str) -> None:
        """An event sent once more is taken care of (sent, or given up again)."""
        await self.store.delete([f"{AGAIN}/{subscription}/{key}{_SUFFIX}"])

    async def redeliver(self, subscription: str, keys: Sequence[str] | None = None) -> int:
        """
        Send C{subscription}'s given-up events (those of C{keys}; L{None}:
        all) once more, after what waits; how many.
        """
        return await self._changes.run(
            lambda: ensureDeferred(self._redeliver(subscription, keys)))

    async def _redeliver(self, subscription: str, keys: Sequence[str] | None) -> int:
        failed = [f for f in await self.given_up(subscription) if keys is None or f.key in keys]
        if not failed:
            return 0
        now = self._clock.seconds()
        await self.store.put({f"{AGAIN}/{subscription}/{f.key}{_SUFFIX}":
                              Again(f.key, f.event, now).data() for f in failed})
        await self.store.delete([f"{FAILED}/{subscription}/{f.key}{_SUFFIX}" for f in failed])
        return len(failed)

    async def carry_outbox(self) -> int:
        """
        Carry the events an outbox held before the journal over to each of
        their subscriptions' events to send again (each record removed once
        carried); how many events.
        """
        count = 0
        for key, event, to, created in await self._read(OUTBOX, _outbox_record):
            await self.store.put({f"{AGAIN}/{subscription}/{key}{_SUFFIX}":
                                  Again(key, event, created).data() for subscription in to})
            await self.store.delete([f"{OUTBOX}/{key}{_SUFFIX}"])
            count += 1
        return count

    # -- the status every server shows

    async def keep_status(self, subscription: str, status: dict[str, Any]) -> None:
        """Keep the deliverer's last word on C{subscription}."""
        await self.store.put({f"{STATUS}/{subscription}{_SUFFIX}": json.dumps(
            status, sort_keys=True).encode("utf-8")})

    async def status(self, subscription: str) -> dict[str, Any] | None:
        """The deliverer's last word on C{subscription} (L{None}: none yet, or unreadable)."""
        data = await self.store.get(f"{STATUS}/{subscription}{_SUFFIX}")
        if data is None:
            return None
        try:
            return _record(data)
        except ValueError:
            return None
