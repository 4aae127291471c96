"""
Delivering the journal's events to the webhooks (L{Deliveries}): each
subscription is a reader of the journal with a cursor of its own (kept by
L{pypid.webhooks.ledger}), and a lane that sends one event at a time. The
subscription in force when an event is sent decides whether it is sent: a
reload that narrows a filter stops the waiting events it no longer wants.

Within a lane (L{pypid.webhooks.lanes}), each group's events are sent in the
journal's order, the groups taking turns, one event each; the lane reads at
most L{WINDOW} events ahead of its cursor. An event that fails is tried again
after a back-off with jitter (honouring C{Retry-After}) until the
subscription's C{retry_for} is over, holding back its group; then it is given
up (kept for an admin to send again) and the group goes on.

One server delivers a store's events: on local disk the server (a machine's
first worker), on a bucket the holder of the lease (L{pypid.webhooks.lease}).
It looks every L{LOCAL_LOOK} (L{SHARED_LOOK} on a bucket, where a look is a
listing), and at once when this server wrote to the journal. Deliveries are at
least once: after a crash, the events sent since the cursor was last kept are
sent again, with the same id, by which a receiver drops a repeat.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.parts import IMetricsSource
from pypid.core.records.audit_chain import BEGINNING, Entry, format_time, is_event
from pypid.core.records.metrics import GAUGE, Family, counter
from pypid.core.records.webhook_events import next_try
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import IJournal
from pypid.webhooks.lanes import GIVEN_UP, Lane, Waiting
from pypid.webhooks.lease import Lease
from pypid.webhooks.ledger import Cursor, Ledger
from pypid.webhooks.sender import Attempt, Sender

log = Logger()

#: Seconds between two looks at the journal on local disk, and on a bucket.
LOCAL_LOOK = 1.0
SHARED_LOOK = 5.0
#: Seconds between two writes of a subscription's status while it changes.
STATUS_EVERY = 2.0
#: Seconds a lane waits after the store could not be written (an event
#: given up, a cursor kept) before it tries again.
STORE_PAUSE = 5.0
#: The events a lane reads ahead of its cursor at most.
WINDOW = 10_000
#: Entries read from the journal at once.
READ = 500
#: Seconds a lane's cursor waits to be kept after an event was taken care
#: of, with those that follow: one write for a burst, not one an event.
CURSOR_DELAY = 0.5

@implementer(IMetricsSource)
class Deliveries(Service):
    """The deliverer of one store's events to its webhooks; see the module."""

    def __init__(self, journal: IJournal, ledger: Ledger, sender: Sender,
                 subscriptions: Callable[[], Mapping[str, WebhookConfig]],
                 clock: IReactorTime, lease: Lease | None = None,
                 look_every: float | None = None,
                 jitter: Callable[[], float] = random.random, window: int = WINDOW) -> None:
        """
        @param lease: the lease of a shared store; L{None}: this server alone delivers.
        @param jitter: a number from 0 to 1, at random (the tests fix it).
        """
        self.journal = journal
        self.ledger = ledger
        self.sender = sender
        self._subscriptions = subscriptions
        self._clock = clock
        self._lease = lease
        self._jitter = jitter
        self._window = window
        every = look_every or (SHARED_LOOK if lease is not None else LOCAL_LOOK)
        self._looks = Periodic(self._look, every, clock, what="The webhooks' deliveries",
                               first=0)
        self._status = Periodic(self._keep_statuses, STATUS_EVERY, clock,
                                what="The webhooks' status")
        # (the lease renewed on a timer of its own: a long look never lets it lapse)
        self._renewals = (Periodic(self._renew, lease.renew / 2, clock,
                                   what="The webhooks' lease") if lease is not None else None)
        self._lanes: dict[str, Lane] = {}
        self._active = False
        self._carried = False
        self._soon: IDelayedCall | None = None
        # (what this server wrote since the last wake, as the journal told it)
        self._news: list[Entry] = []
        self._failures = RepeatedFailure("Cannot read the journal for the webhooks", clock,
                                         log)
        self._keeping = RepeatedFailure("Cannot keep what the webhooks' deliveries did",
                                        clock, log)

    # -- the service ---------------------------------------------------------------------------

    def startService(self) -> None:
        """Start looking at the journal."""
        Service.startService(self)
        for part in (self._looks, self._status, self._renewals):
            if part is not None:
                part.startService()

    async def _stop(self) -> None:
        # (each step whatever the one before came to: a store down still frees the lease)
        for step in (self._looks.stopService, self._status.stopService,
                     self._keep_statuses if self._active else None, self._close_lanes,
                     self._renewals.stopService if self._renewals is not None else None,
                     self._lease.release if self._lease is not None else None,
                     self.sender.close):
            if step is None:
                continue
            try:
                await maybeDeferred(step)
            except Exception as e:
                log.warn("While the webhooks' deliveries stopped: {error}", error=str(e))

    def stopService(self) -> Deferred[None]:
        """Stop delivering (a delivery under way is dropped, and made again by the next)."""
        Service.stopService(self)
        return ensureDeferred(self._stop())

    def look(self) -> Deferred[None]:
        """Look at the journal now (the run under way, if one is): fires once it ended."""
        return self._looks.run_now()

    def wake(self, entries: Sequence[Entry] = ()) -> None:
        """
        This server wrote C{entries} to the journal: its lanes take them in
        soon, without reading them back when they follow what a lane read.
        """
        if not (self.running and self._active):
            return
        # (kept, events or not: they carry the serials on; past a read's worth,
        # the lanes read the journal instead)
        if len(self._news) < READ:
            self._news.extend(entries)
        else:
            self._news.clear()
        if (self._soon is None or not self._soon.active()) \
                and (not entries or any(is_event(e) for e in entries)):
            self._soon = self._clock.callLater(0, self._take_news)

    def _take_news(self) -> None:
        subscriptions = self._subscriptions()
        news, self._news = self._news, []
        for name, lane in list(self._lanes.items()):
            subscription = subscriptions.get(name)
            if subscription is None or self.journal.last_serial <= lane.read_to:
                continue
            if lane.take_news(news, subscription, self.journal.last_serial, self._window):
                self._start(lane)
                continue
            reading = ensureDeferred(self._fill(lane, subscription, again=False))
            reading.addCallback(partial(self._started, lane))
            reading.addErrback(lambda f: self._failures.failed(f.getErrorMessage()))

    def _started(self, lane: Lane, _: object) -> None:
        self._start(lane)

    # -- looking -------------------------------------------------------------------------------

    def _close_lanes(self, names: list[str] | None = None) -> None:
        """Drop the lanes of C{names} (L{None}: every one); see L{Lane.close}."""
        if self._soon is not None and self._soon.active() and names is None:
            self._soon.cancel()
        for name in list(self._lanes) if names is None else names:
            self._lanes.pop(name).close()

    def _deactivate(self) -> None:
        """This server delivers no more (the lease is another's): drop every lane."""
        if self._active:
            self._active = False
            self._close_lanes()

    async def _renew(self) -> None:
        assert self._lease is not None
        if not self._subscriptions() or not self._lease.held:
            return
        try:
            held = await self._lease.hold()
        except StorageError as e:
            self._failures.failed(str(e))
            return
        if not held:
            self._deactivate()

    async def _look(self) -> None:
        try:
            await self._look_once()
        except StorageError as e:
            # (the store down: said once, and again as it goes on; the next look tries)
            self._failures.failed(str(e))
        else:
            self._failures.succeeded()

    async def _look_once(self) -> None:
        subscriptions = self._subscriptions()
        if not subscriptions:
            # (no webhook: no lease taken, nothing read; removed ones forgotten)
            for name in list(self._lanes):
                self._close_lanes([name])
                await self.ledger.forget_cursor(name)
            if self._lease is not None and self._lease.held:
                await self._lease.release()
            self._deactivate()
            return
        if self._lease is not None and not await self._lease.hold():
            self._deactivate()
            return
        if not self._carried:
            carried = await self.ledger.carry_outbox()
            self._carried = True
            if carried:
                log.info("Carried {count} webhook events of the outbox over to the journal's "
                         "deliveries", count=carried)
        removed = [name for name in self._lanes if name not in subscriptions]
        self._close_lanes(removed)
        for name in removed:
            await self.ledger.forget_cursor(name)
        if not self._active:
            # (taking over: what the ledger holds of subscriptions gone goes)
            for name in await self.ledger.known():
                if name not in subscriptions:
                    await self.ledger.forget_cursor(name)
        self._active = True
        for name, subscription in subscriptions.items():
            lane = self._lanes.get(name)
            if lane is None:
                lane = await self._open(name)
                if self._lease is not None and not self._lease.held or not self.running:
                    return
                self._lanes[name] = lane
            await self._fill(lane, subscription)
            self._start(lane)

    async def _open(self, name: str) -> Lane:
        """
        The lane of C{name}, from its cursor. A new subscription begins at the
        journal's end; one the outbox delivered before the journal (the first
        look since the upgrade) at its beginning, so that what was written
        since the upgrade is sent, before this look too.
        """
        cursor = await self.ledger.cursor(name)
        if cursor is None:
            cursor = Cursor(BEGINNING if await self.ledger.delivered_by_outbox(name)
                            else await self.journal.head())
            await self.ledger.keep_cursor(name, cursor)
        return Lane(name, cursor.serial, set(cursor.done), cursor.serial)

    async def _fill(self, lane: Lane, subscription: WebhookConfig, again: bool = True) -> None:
        """Read into C{lane} the journal up to the window, and with C{again} what to resend."""
        await lane.reading.run(lambda: ensureDeferred(self._read(lane, subscription, again)))

    async def _read(self, lane: Lane, subscription: WebhookConfig, again: bool) -> None:
        if again:
            known = set(lane.again)
            for record in await self.ledger.again(lane.name):
                if record.key not in known:
                    lane.add_again(record)
        while lane.count < self._window and not lane.closed:
            entries = await self.journal.since(lane.read_to, READ)
            if not entries:
                return
            full = len(entries) == READ
            if full:
                # (the files of a promoted release are one event: never cut one apart)
                last = entries[-1].id
                whole = [e for e in entries if last is None or e.id != last]
                entries = whole or entries
            lane.read(entries, subscription)
            if not full:
                return

    def _start(self, lane: Lane) -> None:
        if lane.closed or lane.running or not lane.count or not self.running:
            return
        lane.running = True
        run = ensureDeferred(self._run(lane))
        run.addErrback(lambda f: log.failure("The deliveries of the webhook {name} stopped",
                                             f, name=lane.name))

        def ended(_: object) -> None:
            lane.running = False
        run.addBoth(ended)

    def _wait(self, lane: Lane) -> None:
        """Start C{lane} again once its first held group may be tried."""
        due = lane.due()
        if due is None or lane.closed:
            return
        if lane.timer is not None and lane.timer.active():
            lane.timer.cancel()
        lane.timer = self._clock.callLater(max(due - self._clock.seconds(), 0.0),
                                           self._start, lane)

    async def _run(self, lane: Lane) -> None:
        """Deliver the lane's events in turn, until none may be sent now."""
        while self.running and self._active and not lane.closed:
            subscription = self._subscriptions().get(lane.name)
            if subscription is None:
                return
            waiting = lane.next(self._clock.seconds())
            if waiting is None and not lane.held and self.journal.last_serial > lane.read_to:
                # (what this server wrote meanwhile, or the rest past the window)
                await self._fill(lane, subscription, again=False)
                waiting = lane.next(self._clock.seconds())
            if waiting is None:
                self._wait(lane)
                return
            try:
                if not waiting.wanted_by(subscription):
                    # (a reload narrowed the filter since it was read)
                    await self._taken(lane, waiting)
                    continue
                lane.sending = self.sender.send(subscription, waiting.event)
                try:
                    attempt = await lane.sending
                except CancelledError:
                    return  # (dropped: the event is sent again by the next)
                finally:
                    lane.sending = None
                if lane.closed or not self.running:
                    return
                lane.note(waiting, attempt, self._clock.seconds())
                await self._settle(lane, waiting, attempt, subscription)
            except StorageError as e:
                # (the store cannot be written: the event stays, tried after a pause)
                self._keeping.failed(str(e))
                lane.held[waiting.group] = (self._clock.seconds() + STORE_PAUSE,
                                            lane.held.get(waiting.group, (0.0, 0))[1])
                continue
            self._keeping.succeeded()

    async def _taken(self, lane: Lane, waiting: Waiting) -> None:
        """C{waiting} is taken care of: off the lane, and the cursor kept soon."""
        if waiting.again is not None:
            await self.ledger.sent_again(lane.name, waiting.again)
        lane.settled(waiting)
        if lane.keeping is None or not lane.keeping.active():
            lane.keeping = self._clock.callLater(CURSOR_DELAY, self._keep_later, lane)

    def _keep_later(self, lane: Lane) -> None:
        lane.keeping = None
        keeping = ensureDeferred(self._keep_cursor(lane))
        keeping.addCallbacks(lambda _: self._keeping.succeeded(),
                             lambda f: self._keeping.failed(f.getErrorMessage()))

    async def _settle(self, lane: Lane, waiting: Waiting, attempt: Attempt,
                      subscription: WebhookConfig) -> None:
        """Take C{waiting} off C{lane} after C{attempt} (sent, or given up), or hold its group."""
        if attempt.delivered:
            await self._taken(lane, waiting)
            return
        failures = lane.held.get(waiting.group, (0.0, 0))[1] + 1
        due = next_try(failures, self._clock.seconds(), waiting.created,
                       subscription.retry_for, subscription.retry_delay, self._jitter(),
                       attempt.retry_after)
        if due is not None:
            lane.held[waiting.group] = (due, failures)
            lane.changed = True
            log.warn("Cannot deliver {id} to the webhook {name} ({error}); trying again in "
                     "{delay:.0f} s", id=waiting.event.id, name=lane.name, error=attempt.error,
                     delay=due - self._clock.seconds())
            return
        await self.ledger.give_up(lane.name, waiting.event, failures, attempt.error or "")
        lane.counts[GIVEN_UP] += 1
        log.error("Gave up delivering {id} ({type}) to the webhook {name} after {tries} "
                  "tries: {error}", id=waiting.event.id, type=waiting.event.type,
                  name=lane.name, tries=failures, error=attempt.error)
        await self._taken(lane, waiting)

    async def _keep_cursor(self, lane: Lane) -> None:
        if lane.moved and not lane.closed:
            cursor = Cursor(lane.cursor, frozenset(lane.done))
            await self.ledger.keep_cursor(lane.name, cursor)
            lane.moved = (lane.cursor, lane.done) != (cursor.serial, cursor.done)

    # -- what it shows -------------------------------------------------------------------------

    def status_of(self, lane: Lane) -> dict[str, Any]:
        """A subscription's status, as kept for every server's console and API."""
        oldest = lane.oldest()
        due = lane.due()
        return {"pending": lane.count,
                "oldest": format_time(oldest) if oldest is not None else None,
                "next_try": format_time(due) if due is not None else None,
                "failures": max((failures for _, failures in lane.held.values()), default=0),
                "last_error": lane.last_error,
                "recent": lane.recent_shown(), "counts": dict(lane.counts),
                "serial": lane.cursor, "read_to": lane.read_to,
                "deliverer": self.ledger.instance,
                "updated": format_time(self._clock.seconds())}

    async def _keep_statuses(self) -> None:
        if not self._active:
            return
        try:
            for lane in list(self._lanes.values()):
                await self._keep_cursor(lane)
                if lane.changed:
                    await self.ledger.keep_status(lane.name, self.status_of(lane))
                    lane.changed = False
        except StorageError as e:
            # (said once; kept at the next tick)
            self._keeping.failed(str(e))

    def metric_families(self) -> Iterator[Family]:
        """The deliveries by outcome, and each lane's depth and oldest event's age."""
        now = self._clock.seconds()
        lanes = sorted(self._lanes.values(), key=lambda lane: lane.name) \
            if self._active else []
        if not lanes:
            return
        yield counter("pypid_webhook_deliveries",
                      "Deliveries of webhook events, by outcome: delivered, failed (to be "
                      "tried again), given_up.", None, ("webhook", "outcome"),
                      [((lane.name, outcome), count) for lane in lanes
                       for outcome, count in lane.counts.items()])
        yield Family(GAUGE, "pypid_webhook_outbox_depth",
                     "Events waiting to be delivered to a webhook.", ("webhook",),
                     tuple(((lane.name,), float(lane.count)) for lane in lanes))
        yield Family(GAUGE, "pypid_webhook_outbox_oldest_seconds",
                     "Age of the oldest event waiting for a webhook (0: none waits).",
                     ("webhook",),
                     tuple(((lane.name,), now - oldest if (oldest := lane.oldest()) is not None
                            else 0.0) for lane in lanes))
