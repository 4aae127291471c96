"""
Where the audit log is kept: with the packages, so it outlives the server
and every instance on a shared bucket writes to the same place: a file a
day in a local storage's folder (L{pypid.storage.audit_files}, in memory
too for the tests), numbered batches of each server's in a bucket
(L{pypid.storage.audit_bucket}). Here is what every log shares: its
interface, and the queue in front of its writes.

One writer's entries are one chain, across days: a day's first line links
to the writer's last line of the day before, so a day removed from the
middle, or the end of a day cut, breaks a link. Before it appends, the
running server checks that the last entry it wrote is still there, warns
when it is not, and links the new entry to the one it wrote, so that
C{verify} reports the change.

Every log is a L{BufferedAuditLog}: L{IAuditLog.append} (failed logins)
queues an entry, written within L{FLUSH_DELAY} (on S3,
L{pypid.storage.audit_bucket.S3_FLUSH_DELAY}) with those that follow;
L{IAuditLog.write} (changes) starts a write at once, or right after the
one under way, and fires when that attempt ends: a request answers only
once its change's entry is fsynced (a PUT answered, on S3), which costs an
upload about a millisecond (docs/performance.rst). Entries arriving during
a write go in the next one. A write that fails is logged and tried again
with what it did not write durably, in order; the change is not failed by
it. Under C{.pypid/}, these names are internal: the local scan skips dot
folders, and an S3 listing of files starts after every C{.pypid/} key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from pypid.core.records.audit_chain import (
    AuditError,
    Broken,
    Entry,
    Note,
    day_of,
    decode,
    split_lines,
)
from pypid.core.records.audit_query import EntryPage, Query
from pypid.core.records.metrics import Family, counter, gauge
from pypid.storage.interface import StorageError

log = Logger()

#: Seconds an entry L{IAuditLog.append}ed waits to be written with the
#: others that follow it (on S3, L{pypid.storage.audit_bucket.S3_FLUSH_DELAY}).
FLUSH_DELAY = 0.5

#: Seconds before a failed write is tried again, doubled each time up to
#: L{MAX_RETRY_DELAY}.
RETRY_DELAY = 2.0
MAX_RETRY_DELAY = 60.0

#: Entries held at most while writes fail (some 50 MB): past it, new
#: entries are counted as lost and the count logged as an error.
MAX_PENDING = 100_000


class IAuditLog(Interface):
    """The audit log of one storage."""

    pending = Attribute("How many entries wait to be written (queued, or in a write under "
                        "way): an integer.")
    written = Attribute("How many entries were written since the start: an integer.")
    write_failures = Attribute("How many write attempts failed since the start: an integer.")
    lost = Attribute("How many entries were dropped since the start: past MAX_PENDING "
                     "waiting, after the stop, or unwritten at the stop; an integer.")

    def append(entry: Entry) -> None:
        """
        Queue a L{pypid.core.records.audit_chain.Entry} (its C{prev} is set when written);
        it is written within L{FLUSH_DELAY}. Never fails, never waits.
        """

    def write(entry: Entry) -> Deferred[bool]:
        """
        Queue an entry and write it now (with what waits), or right after
        the write under way.

        @return: a L{Deferred} firing, once that attempt ended, with whether
            it wrote the entry durably (L{False}: it failed, is logged, and
            the entry will be tried again). Never fails.
        """

    def flush() -> Deferred[bool]:
        """
        Write what is queued now.

        @return: a L{Deferred} firing with whether everything queued before
            the call is written (L{False}: a write failed; it is logged and
            will be tried again).
        """

    def read(query: Query) -> Deferred[EntryPage]:
        """
        The entries a L{pypid.core.records.audit_query.Query} asks for.

        @return: a L{Deferred} firing with a L{pypid.core.records.audit_query.EntryPage}.
        """

    def verify() -> Deferred[ChainCheck]:
        """
        Check every chain.

        @return: a L{Deferred} firing with a L{ChainCheck}.
        """

    def close() -> Deferred[bool]:
        """Write what is queued (the server is stopping); a L{Deferred}."""

    def stored_files() -> Deferred[list[tuple[str, bytes]]]:
        """
        The log's own files as they are stored (for a bundle), oldest
        first, each read whole under the lock a reader takes: a
        L{Deferred} firing with C{[(name, bytes)]}, C{name} relative to
        the log's folder (C{YYYY-MM-DD.jsonl}, or on S3
        C{YYYY-MM-DD/<instance>/<n>.jsonl}).
        """

    def keep_imported(name: str, data: bytes) -> Deferred[bool]:
        """
        Keep a file of another server's log (from a bundle) as it is, under
        L{IMPORTED} C{+ name} in this log's folder, where this log's own
        chain, queries and check never look.

        @return: a L{Deferred} firing with L{True}, or L{False} when that
            file was there already with these very bytes (nothing written).
        """


#: Where the audit files of imported bundles are kept, in the log's folder:
#: C{imported/<when the bundle was made>/<their own names>}.
IMPORTED = "imported/"


def imported_name(name: str) -> str:
    """C{name} under L{IMPORTED}, refused when it could leave that folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not the name of an audit file")
    return IMPORTED + name


def audit_families(log: IAuditLog) -> Iterator[Family]:
    """The C{/metrics} families of an L{IAuditLog}: entries waiting, written, failed and lost."""
    yield gauge("pypid_audit_pending", "Audit log entries waiting to be written.", log.pending)
    yield counter("pypid_audit_written", "Audit log entries written.", log.written)
    yield counter("pypid_audit_write_failures", "Audit log writes that failed (retried).",
                  log.write_failures)
    yield counter("pypid_audit_lost", "Audit log entries dropped: more than the most that "
                  "may wait, or unwritten at the stop.", log.lost)


@attrs.frozen
class ChainCheck:
    """
    What L{IAuditLog.verify} found: how many files and entries, the broken
    links, and notes (where the kept part of a chain begins).
    """

    files: int
    entries: int
    broken: tuple[Broken, ...]
    notes: tuple[Note, ...] = ()

    @property
    def intact(self) -> bool:
        """Whether no link is broken."""
        return not self.broken


class PartlyWritten(Exception):
    """
    A write failed after the first C{written} entries of its batch were
    written durably (a batch across midnight, or of several S3 objects).
    """

    def __init__(self, written: int, error: BaseException) -> None:
        super().__init__(written, error)
        self.written = written
        self.error = error

    def __str__(self) -> str:
        return f"{_describe(self.error)} (after {self.written} entries were written)"


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def by_day(entries: Iterable[Entry],
           newest: str | None = None) -> list[tuple[str, list[Entry]]]:
    """
    C{entries} (in the order written) as runs of C{(day, entries)}: each in
    its day's file, except that an entry is never written to a day before
    one already written (C{newest}, or an earlier entry's): a wall clock
    set back goes on in the newest day, so a day's file is never appended
    to once the next day's links to it.
    """
    runs: list[tuple[str, list[Entry]]] = []
    for entry in entries:
        day = day_of(entry.time)
        if newest is not None and day < newest:
            day = newest
        newest = day
        if runs and runs[-1][0] == day:
            runs[-1][1].append(entry)
        else:
            runs.append((day, [entry]))
    return runs


def entries_of(data: bytes) -> list[Entry]:
    """The readable entries of a file's bytes (verify reports the others)."""
    entries = []
    for line in split_lines(data):
        try:
            entries.append(decode(line))
        except AuditError:
            pass
    return entries


# -- the buffer -------------------------------------------------------------------------------


class BufferedAuditLog:
    """
    What every log shares: the queue in front of its writes, one write at a
    time and in order, and the counts of its health (plain integers, for
    C{/metrics}). A subclass writes a batch with C{_write_batch(entries) ->
    Deferred}, which fails (with L{PartlyWritten} when it wrote a first
    part) when the entries are not all written durably.

    @ivar pending: entries waiting to be written (queued, or in a write
        under way).
    @ivar written: entries written since the start.
    @ivar write_failures: write attempts that failed since the start.
    @ivar lost: entries dropped since the start: past L{max_pending}
        waiting, after the stop, or unwritten at the stop.
    """

    #: Seconds an appended entry waits for others.
    delay = FLUSH_DELAY
    #: Entries held at most.
    max_pending = MAX_PENDING

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.pending = 0
        self.written = 0
        self.write_failures = 0
        self.lost = 0
        self._queue: list[Entry] = []
        # fired when the next write attempt (of the whole queue) ends
        self._waiters: list[Deferred[bool]] = []
        self._writing = False
        self._again = False
        # the delayed write, or the retry
        self._timer: IDelayedCall | None = None
        self._retry_delay = RETRY_DELAY
        self._failing = False
        self._closed = False

    def _write_batch(self, entries: list[Entry]) -> Deferred[Any]:
        raise NotImplementedError()

    def append(self, entry: Entry) -> None:
        """Queue one entry (see L{IAuditLog.append})."""
        if self._queued(entry) and not self._failing:
            self._schedule(self.delay)

    def write(self, entry: Entry) -> Deferred[bool]:
        """Queue one entry and write it now (see L{IAuditLog.write})."""
        if not self._queued(entry):
            return succeed(False)
        return self._next_attempt()

    def flush(self) -> Deferred[bool]:
        """Write what is queued (see L{IAuditLog.flush})."""
        if not self._queue and not self._writing:
            return succeed(True)
        return self._next_attempt()

    def _queued(self, entry: Entry) -> bool:
        """Queue C{entry}; whether it was (else it is lost, and that is logged)."""
        if self._closed:
            self.lost += 1
            log.error("An audit entry came after the stop, and is lost: {event} by {user}",
                      event=entry.event, user=entry.user)
            return False
        if self.pending >= self.max_pending:
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                log.error("The audit log cannot be written and holds {count} entries "
                          "already: {lost} entries are lost", count=self.pending,
                          lost=self.lost)
            return False
        self._queue.append(entry)
        self.pending += 1
        return True

    def _next_attempt(self) -> Deferred[bool]:
        waiter: Deferred[bool] = Deferred()
        self._waiters.append(waiter)
        self._kick()
        return waiter

    def _schedule(self, delay: float) -> None:
        if self._timer is None or not self._timer.active():
            self._timer = self._clock.callLater(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        self._kick()

    def _kick(self) -> None:
        """Write now; or, during a write, again as soon as it ends."""
        if self._writing:
            self._again = True
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        ensureDeferred(self._write_loop())

    async def _write_loop(self) -> None:
        self._writing = True
        try:
            while True:
                self._again = False
                batch, self._queue = self._queue, []
                waiters, self._waiters = self._waiters, []
                try:
                    done = await self._attempt(batch) if batch else True
                    for waiter in waiters:
                        waiter.callback(done)
                finally:
                    # (whatever happens, nobody waits for ever)
                    for waiter in waiters:
                        if not waiter.called:
                            waiter.callback(False)
                if not (self._again and (self._queue or self._waiters)):
                    break
        except Exception:
            log.failure("Writing the audit log")
        finally:
            self._writing = False
        if self._queue and not self._closed:
            self._schedule(self.delay)

    async def _attempt(self, batch: list[Entry]) -> bool:
        """Write C{batch}; requeue what it did not write. Whether all was written."""
        try:
            await self._write_batch(batch)
        except Exception as e:
            done = e.written if isinstance(e, PartlyWritten) else 0
            error = e.error if isinstance(e, PartlyWritten) else e
            self.written += done
            self.pending -= done
            self._queue[:0] = batch[done:]
            self.write_failures += 1
            log.error("Cannot write {count} audit entries (tried again in {delay:g} s): "
                      "{error}", count=len(batch) - done, delay=self._retry_delay,
                      error=str(e))
            if not isinstance(error, (StorageError, OSError)):
                log.failure("Writing the audit log")
            self._failing = True
            if not self._closed:
                if self._timer is not None and self._timer.active():
                    self._timer.cancel()
                self._timer = self._clock.callLater(self._retry_delay, self._due)
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
            return False
        self.written += len(batch)
        self.pending -= len(batch)
        if self._failing:
            log.info("The audit log is written again ({count} entries)", count=len(batch))
        self._failing = False
        self._retry_delay = RETRY_DELAY
        return True

    def close(self) -> Deferred[bool]:
        """
        Write what is queued, once (the stop); what cannot be written is
        logged and counted as lost. A L{Deferred} firing with whether all
        was written.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._closed = True

        def written(done: bool) -> bool:
            if self._queue:
                log.error("Stopping with {count} audit entries that could not be written",
                          count=len(self._queue))
                self.lost += len(self._queue)
                self.pending -= len(self._queue)
                self._queue = []
            return done
        return self.flush().addCallback(written)
