"""
A subscription's lane (L{Lane}): the events of the journal it wants, waiting in
groups (one project of one index, or one actor), taken in turn, one event each,
and its cursor. The lane is the bookkeeping only: what is sent, when, and what
is kept is L{pypid.webhooks.delivery}'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IDelayedCall

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.audit_chain import Entry, format_time, is_event, milliseconds
from pypid.core.records.webhook_events import WebhookEvent, events_of
from pypid.webhooks.ledger import Again
from pypid.webhooks.sender import Attempt

#: The last deliveries a status keeps.
RECENT = 20
#: The group of the events sent again (an admin's, or an outbox's carried over).
AGAIN = "again"

DELIVERED, FAILED, GIVEN_UP = "delivered", "failed", "given_up"


@attrs.define(eq=False)
class Waiting:
    """
    An event waiting in a lane.

    @ivar serial: the journal's serial of its (first) entry; L{None} for
        an event sent again (C{again}: its ledger's key).
    @ivar serials: the serials of all its entries (a promoted release's files).
    @ivar created: when its change was made, from which its tries are counted.
    """

    serial: int | None
    serials: tuple[int, ...]
    event: WebhookEvent
    created: float
    group: str
    again: str | None = None

    def wanted_by(self, subscription: WebhookConfig) -> bool:
        """Whether C{subscription}, as it is now, wants the event."""
        data = self.event.data
        return subscription.filter.wants(self.event.type, data.get("index"),
                                         data.get("project"))


def group_of(event: WebhookEvent) -> str:
    """The group of C{event}: its index and project, or its actor for an event of no project."""
    data = event.data
    if data.get("project") is not None:
        return f"project {data.get('index')} {data['project']}"
    actor = data.get("actor") or {}
    return f"actor {actor.get('source')} {actor.get('name')}"


def waiting_of(entries: Sequence[Entry]) -> list[Waiting]:
    """The events of C{entries} (the journal's, in order), each as it waits in a lane."""
    events = [e for e in entries if is_event(e)]
    serials: dict[str | None, list[int]] = {}
    for e in events:
        serials.setdefault(e.id, []).append(e.serial or 0)
    return [Waiting(serials[event.id][0], tuple(serials[event.id]), event,
                    milliseconds(event.time) / 1000, group_of(event))
            for event in events_of(events)]


@attrs.define(eq=False)
class Lane:
    """
    One subscription's reader of the journal, and its events waiting.

    @ivar cursor: every event up to this serial is taken care of.
    @ivar done: the serials after the cursor whose events are taken care of.
    @ivar order: the journal's events waiting (not those sent again), in its
        order, the settled ones until the cursor passes them.
    @ivar held: a group's next try (POSIX time) and its head's failures so far.
    @ivar closed: dropped (the lease lost, the subscription removed): it
        sends nothing more; a new lane takes over.
    """

    name: str
    cursor: int
    done: set[int] = attrs.field(factory=set)
    read_to: int = 0
    groups: dict[str, deque[Waiting]] = attrs.field(factory=dict)
    turns: deque[str] = attrs.field(factory=deque)
    order: deque[Waiting] = attrs.field(factory=deque)
    held: dict[str, tuple[float, int]] = attrs.field(factory=dict)
    again: set[str] = attrs.field(factory=set)
    count: int = 0
    running: bool = False
    closed: bool = False
    timer: IDelayedCall | None = None
    sending: Deferred[Attempt] | None = None
    recent: deque[dict[str, Any]] = attrs.field(factory=lambda: deque(maxlen=RECENT))
    counts: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(
        (DELIVERED, FAILED, GIVEN_UP), 0))
    changed: bool = True
    moved: bool = False
    last_error: str | None = None
    #: one read of the journal into the lane at a time
    reading: DeferredLock = attrs.field(factory=DeferredLock)
    #: the write of its cursor, to come
    keeping: IDelayedCall | None = None

    def add(self, waiting: Waiting) -> None:
        """C{waiting} waits, after the events of its group."""
        group = self.groups.get(waiting.group)
        if group is None:
            group = self.groups[waiting.group] = deque()
            self.turns.append(waiting.group)
        group.append(waiting)
        self.count += 1
        if waiting.again is not None:
            self.again.add(waiting.again)
        else:
            self.order.append(waiting)

    def add_again(self, again: Again) -> None:
        """C{again}, an event to send once more, waits in a group of its own."""
        self.add(Waiting(None, (), again.event, again.created, AGAIN, again.key))

    def next(self, now: float) -> Waiting | None:
        """The head of the next group whose turn it is and that may be tried now."""
        for _ in range(len(self.turns)):
            name = self.turns[0]
            self.turns.rotate(-1)
            held = self.held.get(name)
            if self.groups[name] and (held is None or held[0] <= now):
                return self.groups[name][0]
        return None

    def due(self) -> float | None:
        """When the first held group may be tried again (L{None}: none is held)."""
        return min((due for name, (due, _) in self.held.items() if self.groups.get(name)),
                   default=None)

    def settled(self, waiting: Waiting) -> None:
        """C{waiting} is taken care of (sent, given up, or no longer wanted)."""
        group = self.groups[waiting.group]
        group.popleft()
        self.count -= 1
        self.held.pop(waiting.group, None)
        if not group:
            del self.groups[waiting.group]
            self.turns.remove(waiting.group)
        if waiting.again is not None:
            self.again.discard(waiting.again)
        else:
            self.done.update(waiting.serials)
            self.moved = True
        self.changed = True
        self._advance()

    def _advance(self) -> None:
        # (the first of the journal's events not settled is the oldest head;
        # not a look at every group's head: with a receiver slower than the
        # uploads, hundreds of groups wait)
        order = self.order
        while order and order[0].serial in self.done:
            order.popleft()
        cursor = (order[0].serial or 0) - 1 if order else self.read_to
        if cursor > self.cursor:
            self.cursor = cursor
            self.done = {serial for serial in self.done if serial > cursor}

    def read(self, entries: Sequence[Entry], subscription: WebhookConfig) -> None:
        """Take in what the journal holds after C{read_to}: the events wanted, waiting."""
        for waiting in waiting_of(entries):
            if waiting.serial not in self.done and waiting.wanted_by(subscription):
                self.add(waiting)
        self.read_to = max([self.read_to] + [e.serial or 0 for e in entries])
        self._advance()
        self.moved = True

    def take_news(self, news: Sequence[Entry], subscription: WebhookConfig, last: int,
                  window: int) -> bool:
        """
        Take in C{news}, entries this server wrote, when those after L{read_to}
        follow on with none missing up to the journal's C{last} serial, no read
        is under way and they fit in the C{window}: whether it did (else the
        journal is read).
        """
        fresh = [e for e in news if (e.serial or 0) > self.read_to]
        if not fresh or self.reading.locked or self.count + len(fresh) > window \
                or fresh[-1].serial != last \
                or any(e.serial != self.read_to + n for n, e in enumerate(fresh, start=1)):
            return False
        self.read(fresh, subscription)
        return True

    def note(self, waiting: Waiting, attempt: Attempt, now: float) -> None:
        """C{attempt} of C{waiting} was made at C{now}: counted, and kept among the recent."""
        self.counts[DELIVERED if attempt.delivered else FAILED] += 1
        self.last_error = attempt.error
        self.changed = True
        self.recent.appendleft({
            "id": waiting.event.id, "type": waiting.event.type, "time": now,
            "status": attempt.status, "error": attempt.error,
            "seconds": round(attempt.seconds, 3),
            "try": self.held.get(waiting.group, (0.0, 0))[1] + 1})

    def recent_shown(self) -> list[dict[str, Any]]:
        """The recent attempts as the status shows them (their times formatted only now)."""
        return [{**recent, "time": format_time(recent["time"])} for recent in self.recent]

    def close(self) -> None:
        """Send nothing more: the timers cancelled, the delivery under way dropped."""
        self.closed = True
        for timer in (self.timer, self.keeping):
            if timer is not None and timer.active():
                timer.cancel()
        if self.sending is not None:
            self.sending.cancel()

    def oldest(self) -> float | None:
        """When the oldest event waiting was made."""
        return min((w.created for group in self.groups.values() for w in group), default=None)
