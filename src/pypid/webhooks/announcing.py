"""
The audit log that also tells the webhooks (L{AnnouncingAuditLog}): every
change pypid makes is written to its audit log, by the requests that make
them (before they answer) and by the server's own work (the recycle bin's
purges, retention, an upstream's takedowns, advisories, reloads). So the
audit log is where an event is born, and this wrapper of it is the one
door: an entry of a change some subscription wants gets an id, and is
written to the outbox as an event beside its write to the log.

A request waits for both writes before it answers (its entry's
L{IAuditLog.write}): a change acknowledged is in the outbox, and a
C{kill -9} the moment after delivers it after the restart. A change
refused writes no event (its entry's outcome is not C{ok}). The events
of one reactor turn are written together (one fsync, or a few PUTs at
once), and the entries of one promoted release, made in one turn, share
one id and make one event. A write that fails is logged, and tried again
(after L{RETRY_DELAY}, doubled up to L{MAX_RETRY_DELAY}) without anyone
waiting: the change was made, and is not undone for it; its event is
lost only if the server stops before a write succeeds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.audit_chain import Entry
from pypid.core.records.audit_query import EntryPage, Query
from pypid.core.records.webhook_events import event_id, events_of, index_of, is_event
from pypid.storage.audit_log import ChainCheck, IAuditLog
from pypid.webhooks.outbox import Item, Outbox

log = Logger()

#: Seconds before a failed write of events is tried again, doubled each
#: time up to L{MAX_RETRY_DELAY}.
RETRY_DELAY = 2.0
MAX_RETRY_DELAY = 60.0


@attrs.define
class _Batch:
    """The events of one turn: their entries, whom each is for, and who waits."""

    entries: list[Entry] = attrs.field(factory=list)
    to: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: a promoted release's id, by what names the release
    releases: dict[tuple[str | None, ...], str] = attrs.field(factory=dict)
    waiting: list[Deferred[None]] = attrs.field(factory=list)


@implementer(IAuditLog)
class AnnouncingAuditLog:
    """
    An L{IAuditLog} that writes the events of its entries to the outbox
    (see the module).

    @ivar log: the audit log it writes to.
    """

    def __init__(self, log: IAuditLog, outbox: Outbox,
                 subscriptions: Callable[[], Mapping[str, WebhookConfig]],
                 clock: IReactorTime, added: Callable[[], None] = lambda: None) -> None:
        """
        @param subscriptions: the subscriptions in force (they change at a reload).
        @param added: called once events were added (the deliverer looks at once).
        """
        self.log = log
        self._outbox = outbox
        self._subscriptions = subscriptions
        self._clock = clock
        self._added = added
        self._batch = _Batch()
        self._flush: IDelayedCall | None = None
        self._retry_delay = RETRY_DELAY
        #: items not yet written after a failure, keyed already: they are
        #: written first with the next batch, so this server's events land
        #: in their order
        self._failed: list[Item] = []
        self._retry: IDelayedCall | None = None
        #: the writes under way (the close waits for them)
        self._writing: set[Deferred[None]] = set()
        self._closed = False
        self._watchers: list[Callable[[Entry], None]] = []

    def watch(self, watcher: Callable[[Entry], None]) -> None:
        """Call C{watcher(entry)} with every entry from now on, once it is queued."""
        self._watchers.append(watcher)

    # -- the log's attributes ------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """The audit log's."""
        return self.log.pending

    @property
    def written(self) -> int:
        """The audit log's."""
        return self.log.written

    @property
    def write_failures(self) -> int:
        """The audit log's."""
        return self.log.write_failures

    @property
    def lost(self) -> int:
        """The audit log's."""
        return self.log.lost

    # -- entries -------------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Queue C{entry} in the log, and its event in the outbox (nobody waits)."""
        entry = self._announce(entry)[0]
        self.log.append(entry)
        self._tell(entry)

    def write(self, entry: Entry) -> Deferred[bool]:
        """
        Write C{entry} now, and its event: fires once both first attempts
        ended, with whether the entry was written.
        """
        entry, outboxed = self._announce(entry)
        writing = self.log.write(entry)
        self._tell(entry)
        if outboxed is None:
            return writing
        both: Deferred[list[Any]] = gatherResults([writing, outboxed])
        return both.addCallback(lambda results: bool(results[0]))

    def _tell(self, entry: Entry) -> None:
        for watcher in self._watchers:
            watcher(entry)

    def _announce(self, entry: Entry) -> tuple[Entry, Deferred[None] | None]:
        """C{entry} with its event's id, and the write of its event (L{None}: none is wanted)."""
        if self._closed or not is_event(entry):
            return entry, None
        wanted = tuple(name for name, subscription in self._subscriptions().items()
                       if subscription.filter.wants_entry(entry))
        if not wanted:
            return entry, None
        batch = self._batch
        release = None
        if entry.event == "promote":
            release = (index_of(entry), entry.target, entry.project, entry.version)
        id = batch.releases.get(release) if release is not None else None
        if id is None:
            id = event_id(int(self._clock.seconds() * 1000), secrets.token_hex(5))
            if release is not None:
                batch.releases[release] = id
        entry = attrs.evolve(entry, id=id)
        batch.entries.append(entry)
        batch.to[id] = tuple(dict.fromkeys(batch.to.get(id, ()) + wanted))
        done: Deferred[None] = Deferred()
        batch.waiting.append(done)
        self._schedule()
        return entry, done

    def _schedule(self) -> None:
        """Write the batch in the next turn, unless a write is under way (it follows that one)."""
        if self._flush is None and not self._writing and self._batch.entries:
            self._flush = self._clock.callLater(0, self._write_batch)

    def _write_batch(self) -> Deferred[None]:
        self._flush = None
        batch, self._batch = self._batch, _Batch()
        items = self._outbox.items((event, batch.to[event.id])
                                   for event in events_of(batch.entries))
        return self._write(items, batch.waiting)

    def _write(self, items: list[Item], waiting: list[Deferred[None]]) -> Deferred[None]:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        items, self._failed = self._failed + items, []
        writing = self._outbox.put(items)

        def written(_: object) -> None:
            self._retry_delay = RETRY_DELAY
            self._added()

        def failed(failure: Any) -> None:
            log.error("Cannot write {count} webhook events to the outbox: {error}; trying "
                      "again in {delay:g} s", count=len(items), error=failure.getErrorMessage(),
                      delay=self._retry_delay)
            self._failed = sorted(items + self._failed, key=lambda item: item.key)
            if not self._closed:
                self._retry = self._clock.callLater(self._retry_delay, self._write_failed)
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)

        def answered(_: object) -> None:
            for done in waiting:
                done.callback(None)
        def next_batch(_: object) -> None:
            # (one write at a time: what came meanwhile is the next batch,
            # so this server's events land in their order, failures first)
            self._writing.discard(writing)
            if not self._closed:
                self._schedule()
        self._writing.add(writing)
        writing.addCallbacks(written, failed).addBoth(answered)
        writing.addBoth(next_batch)
        return writing

    def _write_failed(self) -> None:
        self._retry = None
        if self._failed:
            self._write([], [])

    # -- the rest is the log's -----------------------------------------------------------------

    def flush(self) -> Deferred[bool]:
        """The audit log's."""
        return self.log.flush()

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The audit log's."""
        return self.log.read(query)

    def verify(self) -> Deferred[ChainCheck]:
        """The audit log's."""
        return self.log.verify()

    def close(self) -> Deferred[bool]:
        """Write the events of this turn (and those that failed, once more), then close the log."""
        self._closed = True
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        under_way: Deferred[list[Any]] = gatherResults(list(self._writing))
        return under_way.addCallback(lambda _: self._write_last()).addCallback(
            lambda _: self.log.close())

    def _write_last(self) -> Deferred[None]:
        """Write what failed once more, at the stop; what still fails is lost, and said."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        batch, self._batch = self._batch, _Batch()
        items = self._failed + self._outbox.items((event, batch.to[event.id])
                                                  for event in events_of(batch.entries))
        self._failed = []
        for done in batch.waiting:
            done.callback(None)
        if not items:
            return succeed(None)
        return self._outbox.put(items).addErrback(lambda f: log.error(
            "Cannot write {count} webhook events to the outbox at the stop; they are lost: "
            "{error}", count=len(items), error=f.getErrorMessage()))

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """The audit log's."""
        return self.log.stored_files()

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """The audit log's."""
        return self.log.keep_imported(name, data)
