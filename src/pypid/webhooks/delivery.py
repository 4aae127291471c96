"""
Delivering the outbox (L{Deliveries}): each subscription has a lane, its
events in the outbox's order, one delivery under way at a time, so a
receiver gets them in the order the changes were made. An event that
fails is tried again after a back-off with jitter (honouring the
receiver's C{Retry-After}) until its subscription's C{retry_for} is
over, and meanwhile holds back the events after it; then it is given up
(kept among the subscription's failures, for an admin to send again) and
the lane goes on. A receiver that is down slows nothing but its lane:
deliveries run beside serving, with at most C{max_connections} to its host.

One server delivers a store's outbox: on local disk the server (a
machine's first worker), on a bucket the holder of the lease
(L{pypid.webhooks.lease}). It looks every L{LOCAL_LOOK} (L{SHARED_LOOK}
on a bucket, where a look is a listing), and at once when this server
added events. Its last word on each subscription (the lane's depth, its
oldest event, the last deliveries) is kept in the store every
L{STATUS_EVERY} while it changes, for every server's console and API.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.parts import IMetricsSource
from pypid.core.records.audit_chain import format_time
from pypid.core.records.metrics import GAUGE, Family, counter
from pypid.core.records.webhook_events import next_try
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.storage.interface import StorageError
from pypid.webhooks.lease import Lease
from pypid.webhooks.outbox import Item, Outbox
from pypid.webhooks.sender import Attempt, Sender

log = Logger()

#: Seconds between two looks at the outbox on local disk, and on a bucket.
LOCAL_LOOK = 1.0
SHARED_LOOK = 5.0
#: Seconds between two writes of a subscription's status while it changes.
STATUS_EVERY = 2.0
#: The last deliveries a status keeps.
RECENT = 20
#: Seconds a lane waits after the outbox could not be changed (its head
#: taken or given up) before it tries again.
STORE_PAUSE = 5.0
#: Seconds an event for a subscription this server does not know waits
#: before it is given up: another server, or another worker, may have read
#: a configuration that adds it a moment before this one did.
UNKNOWN_GRACE = 600.0

DELIVERED, FAILED, GIVEN_UP = "delivered", "failed", "given_up"


@attrs.define(eq=False)
class Lane:
    """
    One subscription's queue and its head's tries.

    @ivar queue: its items, oldest first.
    @ivar failures: the head's failed tries so far.
    @ivar due: when the head is tried next (POSIX time).
    @ivar closed: dropped (the lease lost, the subscription removed): it
        sends nothing more, whatever was under way; a new lane takes over.
    """

    name: str
    queue: list[Item] = attrs.field(factory=list)
    failures: int = 0
    due: float = 0.0
    running: bool = False
    closed: bool = False
    timer: IDelayedCall | None = None
    sending: Deferred[Attempt] | None = None
    recent: deque[dict[str, Any]] = attrs.field(factory=lambda: deque(maxlen=RECENT))
    counts: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(
        (DELIVERED, FAILED, GIVEN_UP), 0))
    changed: bool = True
    last_error: str | None = None

    def close(self) -> None:
        """Send nothing more: the timer cancelled, the delivery under way dropped."""
        self.closed = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.sending is not None:
            self.sending.cancel()


@implementer(IMetricsSource)
class Deliveries(Service):
    """The deliverer of one store's outbox; see the module."""

    def __init__(self, outbox: Outbox, sender: Sender,
                 subscriptions: Callable[[], Mapping[str, WebhookConfig]],
                 clock: IReactorTime, lease: Lease | None = None,
                 look_every: float | None = None,
                 jitter: Callable[[], float] = random.random, alone: bool = False) -> None:
        """
        @param lease: the lease of a shared store; L{None}: this server
            alone delivers.
        @param alone: whether this process alone writes the outbox (a
            server of one process on local disk): then the events it adds
            are delivered from what it wrote, without listing the outbox
            again (with other writers, an event of another one, older and
            not yet listed, must not be overtaken).
        @param look_every: seconds between looks (L{LOCAL_LOOK}, or
            L{SHARED_LOOK} with a lease, by default).
        @param jitter: a number from 0 to 1, at random (the tests fix it).
        """
        self.outbox = outbox
        self.sender = sender
        self._subscriptions = subscriptions
        self._clock = clock
        self._lease = lease
        self._jitter = jitter
        self._alone = alone
        every = look_every or (SHARED_LOOK if lease is not None else LOCAL_LOOK)
        self._looks = Periodic(self._look, every, clock, what="The webhooks' deliveries",
                               first=0)
        self._status = Periodic(self._keep_statuses, STATUS_EVERY, clock,
                                what="The webhooks' status")
        # (the lease renewed on a timer of its own: a long look, a backlog
        # read record by record, never lets it lapse)
        self._renewals = (Periodic(self._renew, lease.renew / 2, clock,
                                   what="The webhooks' lease") if lease is not None else None)
        self._lanes: dict[str, Lane] = {}
        self._active = False
        self._soon: IDelayedCall | None = None
        self._failures = RepeatedFailure("Cannot look at the webhooks' outbox", clock, log)
        self._keeping = RepeatedFailure("Cannot keep what the webhooks' deliveries did",
                                        clock, log)

    # -- the service ---------------------------------------------------------------------------

    def startService(self) -> None:
        """Start looking at the outbox."""
        Service.startService(self)
        self._looks.startService()
        self._status.startService()
        if self._renewals is not None:
            self._renewals.startService()

    async def _stop(self) -> None:
        # (each step whatever the one before came to: a store that is down
        # at the stop still lets the lease and the connections go)
        # (the last word kept while the lanes still say it)
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
        """Look at the outbox now (the run under way, if one is): fires once it ended."""
        return self._looks.run_now()

    def wake(self) -> None:
        """
        This server added events: deliver them soon, from what it knows it
        wrote (the outbox is listed at the next look only: a burst of
        uploads does not list a growing outbox once each).
        """
        if self.running and self._active and (self._soon is None or not self._soon.active()):
            self._soon = self._clock.callLater(0, self._take_known if self._alone else self.look)

    def _take_known(self) -> None:
        if self.running and self._active:
            self._lay(self.outbox.known())

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
            self.outbox.forget()

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
        if not self._subscriptions():
            # (no webhook: no lease taken, no outbox read; what waits in it
            # is delivered once a subscription names it again)
            if self._lease is not None and self._lease.held:
                await self._lease.release()
            self._deactivate()
            return
        if self._lease is not None and not await self._lease.hold():
            self._deactivate()
            return
        items = await self.outbox.pending()
        if self._lease is not None and not self._lease.held:
            # (lost while the outbox was read)
            self._deactivate()
            return
        self._active = self.outbox.delivering = True
        subscriptions = self._subscriptions()
        now = self._clock.seconds()
        for item in items:
            for name in item.to:
                if name not in subscriptions and now - item.created >= UNKNOWN_GRACE:
                    await self.outbox.give_up(item, name, 0, "the webhook is no longer "
                                              "configured")
        self._lay(items)

    def _lay(self, items: list[Item]) -> None:
        """Lay C{items} (the outbox, oldest first) in each subscription's lane, and start it."""
        subscriptions = self._subscriptions()
        self._close_lanes([name for name in self._lanes if name not in subscriptions])
        for name in subscriptions:
            lane = self._lanes.setdefault(name, Lane(name))
            queue = [item for item in items if name in item.to]
            if [i.key for i in queue] != [i.key for i in lane.queue]:
                if not queue or not lane.queue or queue[0].key != lane.queue[0].key:
                    lane.failures, lane.due = 0, 0.0
                lane.queue, lane.changed = queue, True
            self._start(lane)

    def _start(self, lane: Lane) -> None:
        if lane.closed or lane.running or not lane.queue or not self.running:
            return
        now = self._clock.seconds()
        if lane.due > now:
            if lane.timer is None or not lane.timer.active():
                lane.timer = self._clock.callLater(lane.due - now, self._start, lane)
            return
        lane.running = True
        run = ensureDeferred(self._run(lane))
        run.addErrback(lambda f: log.failure("The deliveries of the webhook {name} stopped",
                                             f, name=lane.name))

        def ended(_: object) -> None:
            lane.running = False
            if self.running and self._active and not lane.closed:
                self._start(lane)
        run.addBoth(ended)

    async def _run(self, lane: Lane) -> None:
        """Deliver the lane's head, then the next, until one fails or none is left."""
        while lane.queue and self.running and self._active and not lane.closed:
            subscription = self._subscriptions().get(lane.name)
            if subscription is None:
                return
            item = lane.queue[0]
            lane.sending = self.sender.send(subscription, item.event)
            try:
                attempt = await lane.sending
            except CancelledError:
                return  # (dropped: the event stays, and is sent again by the next)
            finally:
                lane.sending = None
            if lane.closed or not self.running:
                return
            self._note(lane, item, attempt)
            try:
                if not await self._settle(lane, item, attempt, subscription):
                    return
            except StorageError as e:
                # (the outbox cannot be changed: the event stays at the head,
                # sent again once the store answers, after a pause)
                self._keeping.failed(str(e))
                lane.due = self._clock.seconds() + STORE_PAUSE
                return
            self._keeping.succeeded()
            if lane.queue and lane.queue[0].key == item.key:
                lane.queue.pop(0)
            lane.failures, lane.due, lane.changed = 0, 0.0, True

    async def _settle(self, lane: Lane, item: Item, attempt: Attempt,
                      subscription: WebhookConfig) -> bool:
        """
        Take C{item} off C{lane} after C{attempt} (delivered, or given up):
        whether it was; else when the next try is.
        """
        if attempt.delivered:
            await self.outbox.delivered(item, lane.name)
            return True
        lane.failures += 1
        due = next_try(lane.failures, self._clock.seconds(), item.created,
                       subscription.retry_for, subscription.retry_delay, self._jitter(),
                       attempt.retry_after)
        if due is not None:
            lane.due = due
            log.warn("Cannot deliver {id} to the webhook {name} ({error}); trying again in "
                     "{delay:.0f} s", id=item.event.id, name=lane.name, error=attempt.error,
                     delay=due - self._clock.seconds())
            return False
        await self.outbox.give_up(item, lane.name, lane.failures, attempt.error or "")
        lane.counts[GIVEN_UP] += 1
        log.error("Gave up delivering {id} ({type}) to the webhook {name} after {tries} "
                  "tries: {error}", id=item.event.id, type=item.event.type, name=lane.name,
                  tries=lane.failures, error=attempt.error)
        return True

    def _note(self, lane: Lane, item: Item, attempt: Attempt) -> None:
        lane.counts[DELIVERED if attempt.delivered else FAILED] += 1
        lane.last_error = attempt.error
        lane.changed = True
        lane.recent.appendleft({
            "id": item.event.id, "type": item.event.type,
            "time": format_time(self._clock.seconds()), "status": attempt.status,
            "error": attempt.error, "seconds": round(attempt.seconds, 3),
            "try": lane.failures + 1})

    # -- what it shows -------------------------------------------------------------------------

    def status_of(self, lane: Lane) -> dict[str, Any]:
        """A subscription's status, as kept for every server's console and API."""
        head = lane.queue[0] if lane.queue else None
        return {"pending": len(lane.queue),
                "oldest": format_time(head.created) if head is not None else None,
                "next_try": format_time(lane.due) if head is not None and lane.failures
                else None,
                "failures": lane.failures, "last_error": lane.last_error,
                "recent": list(lane.recent), "counts": dict(lane.counts),
                "deliverer": self.outbox.instance,
                "updated": format_time(self._clock.seconds())}

    async def _keep_statuses(self) -> None:
        if not self._active:
            return
        for lane in list(self._lanes.values()):
            if lane.changed:
                lane.changed = False
                await self.outbox.keep_status(lane.name, self.status_of(lane))

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
                     "Events waiting in the outbox for a webhook.", ("webhook",),
                     tuple(((lane.name,), float(len(lane.queue))) for lane in lanes))
        yield Family(GAUGE, "pypid_webhook_outbox_oldest_seconds",
                     "Age of the oldest event waiting for a webhook (0: none waits).",
                     ("webhook",),
                     tuple(((lane.name,), now - lane.queue[0].created if lane.queue else 0.0)
                           for lane in lanes))
