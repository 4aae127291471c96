"""
The journal: the one ordered record of every change a store's servers
acknowledge, which the audit log shows and every other reader follows
(webhooks, the other servers on a bucket or workers of a machine, the
pages' serials). Each entry's serial is one more than the one before it in
the store, whoever wrote it; a reader keeps the last serial it took in and
asks for what came after (L{IJournal.since}).

It is kept with the packages, so it outlives the server and a shared
bucket's servers write one: on disk, a file a day appended to under a
lock, one fsync a batch (L{pypid.storage.folder.journal_files}); in a
bucket, objects named by their first serial, claimed by a conditional
create (L{pypid.storage.base.journal_records}). Here is what both share:
the interface and the queue in front of the writes (L{JournalWriter}).
The entries are one chain (L{pypid.core.records.audit_chain}): an entry
removed or edited breaks a link that L{IJournal.verify} names.

L{IJournal.append} (a change) writes at once, or right after the write
under way, and fires when that attempt ends: a request answers only once
its change is durable, about a millisecond on disk (docs/performance.rst).
L{IJournal.queue} (failed logins) is written within L{FLUSH_DELAY}. A
failed write is logged and tried again after a back-off, in order; the
change is not failed by it. Its names under C{.pypid/} are internal: no
scan of the files lists them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs
from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from pypid.core.records.audit_chain import (
    BEGINNING,
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
from pypid.storage.base.interface import StorageError

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.journal")

#: Seconds an entry L{IJournal.queue}d waits to be written with the
#: others that follow it (on a bucket, longer: each batch is an object).
FLUSH_DELAY = 0.5

#: Seconds before a failed write is tried again, grown by half each time
#: (and a second of jitter) up to L{MAX_RETRY_DELAY}.
RETRY_DELAY = 2.0
MAX_RETRY_DELAY = 60.0

#: Entries held at most while writes fail (some 50 MB): past it, new
#: entries are counted as lost and the count logged as an error.
MAX_PENDING = 100_000

#: The most entries one L{IJournal.since} answers.
MAX_SINCE = 1000


def retry_policy(jitter: Callable[[], float] = random.random) -> Callable[[int], float]:
    """The back-off between failed writes: after the C{n}th failure, C{policy(n - 1)} seconds."""
    return backoffPolicy(RETRY_DELAY, MAX_RETRY_DELAY, 1.5, jitter)


class IJournal(Interface):
    """The journal of one store; see the module."""

    pending = Attribute("How many entries wait to be written (queued, or in a write under "
                        "way): an integer.")
    written = Attribute("How many entries were written since the start: an integer.")
    write_failures = Attribute("How many write attempts failed since the start: an integer.")
    lost = Attribute("How many entries were dropped since the start: past MAX_PENDING "
                     "waiting, after the stop, or unwritten at the stop; an integer.")
    last_serial = Attribute("The last serial this process knows is in the journal (written "
                            "or read by it): an integer, BEGINNING before any.")

    def queue(entry: Entry) -> None:
        """Queue an entry, written within L{FLUSH_DELAY}; never fails, never waits."""

    def append(entries: Sequence[Entry]) -> Deferred[int | None]:
        """
        Queue C{entries} and write them now, or right after the write under
        way: fires with the last one's serial, or L{None} when that attempt
        failed (logged, tried again); never fails.
        """

    def listen(listener: Callable[[Sequence[Entry]], None]) -> None:
        """
        Call C{listener(entries)} with each batch this process writes from
        now on, numbered, once durable (before its L{append}s fire).
        """

    def since(serial: int, limit: int = MAX_SINCE) -> Deferred[list[Entry]]:
        """The entries after C{serial}, in order, C{limit} at most (fewer: no more now)."""

    def head() -> Deferred[int]:
        """The last serial in the journal now, whoever wrote it (L{BEGINNING}: none)."""

    def flush() -> Deferred[bool]:
        """
        Write what is queued now: whether all queued before the call is
        written (L{False}: a write failed, logged, and tried again).
        """

    def read(query: Query) -> Deferred[EntryPage]:
        """The entries a L{pypid.core.records.audit_query.Query} asks for."""

    def verify() -> Deferred[ChainCheck]:
        """Check the chain."""

    def close() -> Deferred[bool]:
        """Write what is queued (the server is stopping)."""

    def stored_files() -> Deferred[list[tuple[str, bytes]]]:
        """
        The journal's own files as stored (for a bundle), oldest first, each
        read whole under a reader's lock, by name in its folder
        (C{YYYY-MM-DD.jsonl}; in a bucket C{journal/<serial>.jsonl}, and
        C{YYYY-MM-DD/<instance>/<n>.jsonl} from before the journal).
        """

    def keep_imported(name: str, data: bytes) -> Deferred[bool]:
        """
        Keep a file of another server's log (from a bundle) under L{IMPORTED}
        C{+ name}, where this journal's chain, queries and check never look:
        L{False} when it was there already with these bytes.
        """


#: Where the audit files of imported bundles are kept, in the journal's
#: folder: C{imported/<when the bundle was made>/<their own names>}.
IMPORTED = "imported/"


#: What a bucket's batches are named in a bundle, and by the check:
#: C{journal/<first serial>.jsonl}.
JOURNAL_FILES = "journal/"


def imported_name(name: str) -> str:
    """C{name} under L{IMPORTED}, refused when it could leave that folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not the name of an audit file")
    return IMPORTED + name


def journal_families(journal: IJournal) -> Iterator[Family]:
    """The C{/metrics} families of an L{IJournal}: entries waiting, written, failed and lost."""
    yield gauge("pypid_audit_pending", "Journal entries waiting to be written.",
                journal.pending)
    yield counter("pypid_audit_written", "Journal entries written.", journal.written)
    yield counter("pypid_audit_write_failures", "Journal writes that failed (retried).",
                  journal.write_failures)
    yield counter("pypid_audit_lost", "Journal entries dropped: more than the most that "
                  "may wait, or unwritten at the stop.", journal.lost)
    yield gauge("pypid_journal_serial", "The last serial this server knows is in the "
                "journal.", journal.last_serial)


@attrs.frozen
class ChainCheck:
    """What L{IJournal.verify} found: files, entries, broken links, and notes."""

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
    A write failed after the first entries of its batch, C{written} (as
    numbered), were durable (a batch across midnight, or of several objects).
    """

    def __init__(self, written: Sequence[Entry], error: BaseException) -> None:
        super().__init__(len(written), error)
        self.written = list(written)
        self.error = error

    def __str__(self) -> str:
        said = str(self.error) or type(self.error).__name__
        return f"{said} (after {len(self.written)} entries were written)"


def by_day(entries: Iterable[Entry],
           newest: str | None = None) -> list[tuple[str, list[Entry]]]:
    """
    C{entries} as runs of C{(day, entries)}, never a day before one already
    written (C{newest}, or an earlier entry's): a clock set back goes on in
    the newest day, so a day's file is never appended to once the next's
    links to it.
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


# -- the writer -------------------------------------------------------------------------------


@attrs.define
class _Waiter:
    """An L{IJournal.append} waiting: fired with the serial of its last entry (its place)."""

    done: Deferred[int | None]
    #: the place of its last entry in the order entries were queued
    place: int


class JournalWriter:
    """
    What every journal shares: the queue in front of its writes, one write
    at a time and in order, and the health counts of L{IJournal}. A
    subclass writes a batch with C{_write_batch(entries)}, firing with the
    entries numbered, or failing (L{PartlyWritten} after a first part).
    """

    delay = FLUSH_DELAY
    max_pending = MAX_PENDING

    def __init__(self, clock: IReactorTime,
                 retry: Callable[[int], float] | None = None) -> None:
        """@param retry: the back-off after failed writes (L{retry_policy} by default)."""
        self._clock = clock
        self._retry = retry or retry_policy()
        self.pending = 0
        self.written = 0
        self.write_failures = 0
        self.lost = 0
        self.last_serial = BEGINNING
        self._queue: list[Entry] = []
        # how many entries were queued, and written, since the start (an
        # entry's place is the count before it was queued)
        self._queued_count = 0
        self._written_count = 0
        self._waiters: list[_Waiter] = []
        self._listeners: list[Callable[[Sequence[Entry]], None]] = []
        self._writing = False
        self._again = False
        # the delayed write, or the retry
        self._timer: IDelayedCall | None = None
        self._failures = 0
        self._closed = False

    def _write_batch(self, entries: list[Entry]) -> Deferred[list[Entry]]:
        raise NotImplementedError()

    def listen(self, listener: Callable[[Sequence[Entry]], None]) -> None:
        """Call C{listener} with each batch written (see L{IJournal.listen})."""
        self._listeners.append(listener)

    def saw(self, serial: int) -> None:
        """A read found C{serial} in the journal: the last serial known is at least it."""
        self.last_serial = max(self.last_serial, serial)

    def queue(self, entry: Entry) -> None:
        """Queue one entry (see L{IJournal.queue})."""
        if self._queued([entry]) and not self._failures:
            self._schedule(self.delay)

    def append(self, entries: Sequence[Entry]) -> Deferred[int | None]:
        """Queue C{entries} and write them now (see L{IJournal.append})."""
        if not entries:
            return succeed(self.last_serial)
        if not self._queued(entries):
            return succeed(None)
        waiter = _Waiter(Deferred(), self._queued_count - 1)
        self._waiters.append(waiter)
        self._kick()
        return waiter.done

    def flush(self) -> Deferred[bool]:
        """Write what is queued (see L{IJournal.flush})."""
        if not self._queue and not self._writing:
            return succeed(True)
        waiter = _Waiter(Deferred(), self._queued_count - 1)
        self._waiters.append(waiter)
        self._kick()
        return waiter.done.addCallback(lambda serial: serial is not None)

    def _queued(self, entries: Sequence[Entry]) -> bool:
        """Queue C{entries}; whether they were (else they are lost, and that is logged)."""
        if self._closed:
            self.lost += len(entries)
            log.error("A journal entry came after the stop, and is lost: {event} by {user}",
                      event=entries[0].event, user=entries[0].user)
            return False
        if self.pending + len(entries) > self.max_pending:
            self.lost += len(entries)
            if self.lost <= len(entries) or self.lost % 1000 < len(entries):
                log.error("The journal cannot be written and holds {count} entries "
                          "already: {lost} entries are lost", count=self.pending,
                          lost=self.lost)
            return False
        self._queue.extend(entries)
        self._queued_count += len(entries)
        self.pending += len(entries)
        return True

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
                first = self._written_count
                collected = False
                try:
                    numbered = await self._attempt(batch) if batch else []
                    for waiter in waiters:
                        at = waiter.place - first
                        waiter.done.callback(
                            numbered[at].serial if 0 <= at < len(numbered)
                            else self.last_serial if at < 0 else None)
                except GeneratorExit:
                    # (the loop is collected, suspended, with its waiters,
                    # whose coroutines are closed already: none to resume)
                    collected = True
                    raise
                finally:
                    # (whatever happens, nobody waits for ever)
                    for waiter in waiters if not collected else ():
                        if not waiter.done.called:
                            waiter.done.callback(None)
                if not (self._again and (self._queue or self._waiters)):
                    break
        except Exception:
            log.failure("Writing the journal")
        finally:
            self._writing = False
        if self._queue and not self._closed and not self._failures:
            self._schedule(self.delay)

    async def _attempt(self, batch: list[Entry]) -> list[Entry]:
        """Write C{batch}; requeue what it did not write. The entries written, numbered."""
        try:
            numbered = await self._write_batch(batch)
        except Exception as e:
            done = e.written if isinstance(e, PartlyWritten) else []
            error = e.error if isinstance(e, PartlyWritten) else e
            self._wrote(done)
            self._queue[:0] = batch[len(done):]
            self.write_failures += 1
            delay = self._retry(self._failures)
            self._failures += 1
            log.error("Cannot write {count} journal entries (tried again in {delay:.0f} s): "
                      "{error}", count=len(batch) - len(done), delay=delay, error=str(e))
            if not isinstance(error, (StorageError, OSError)):
                log.failure("Writing the journal")
            if not self._closed:
                if self._timer is not None and self._timer.active():
                    self._timer.cancel()
                self._timer = self._clock.callLater(delay, self._due)
            return done
        self._wrote(numbered)
        if self._failures:
            log.info("The journal is written again ({count} entries)", count=len(batch))
        self._failures = 0
        return numbered

    def _wrote(self, numbered: list[Entry]) -> None:
        """C{numbered} are durable: counted, known, and told to the listeners."""
        if not numbered:
            return
        self.written += len(numbered)
        self.pending -= len(numbered)
        self._written_count += len(numbered)
        self.saw(max(entry.serial or 0 for entry in numbered))
        for listener in self._listeners:
            try:
                listener(numbered)
            except Exception:
                log.failure("A reader of the journal failed on what was written")

    def close(self) -> Deferred[bool]:
        """Write what is queued, once (the stop): whether all was; the rest is lost."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._closed = True

        def written(done: bool) -> bool:
            if self._queue:
                log.error("Stopping with {count} journal entries that could not be written",
                          count=len(self._queue))
                self.lost += len(self._queue)
                self.pending -= len(self._queue)
                self._queue = []
            return done
        return self.flush().addCallback(written)


@attrs.frozen
class ReadTo:
    """
    How far a read of the journal went (L{read_after}): every entry up to
    C{serial}; C{gap} when entries were missing (serials that did not
    follow on, or a start past the journal's last: restored from an older
    backup, or begun again).
    """

    serial: int
    gap: bool


async def read_after(journal: IJournal, serial: int, take: Callable[[Sequence[Entry]], None],
                     check_head: bool = False) -> ReadTo:
    """
    Give C{take} every entry after C{serial}, in pages of L{MAX_SINCE}, in
    order; with C{check_head}, a C{serial} past the journal's last is a
    gap, and reading goes on from the last.
    """
    gap = False
    while True:
        entries = await journal.since(serial, MAX_SINCE)
        if not entries and check_head:
            head = await journal.head()
            if head < serial:
                gap, serial = True, head
        if not entries:
            return ReadTo(serial, gap)
        gap = gap or any(e.serial != serial + n for n, e in enumerate(entries, start=1))
        serial = entries[-1].serial or serial
        take(entries)
        check_head = False
        if len(entries) < MAX_SINCE:
            return ReadTo(serial, gap)


def newer(entries: Iterable[Entry], serial: int, limit: int) -> list[Entry]:
    """The entries of C{entries} after C{serial}, in order, C{limit} at most."""
    found: list[Entry] = []
    for entry in entries:
        if entry.serial is not None and entry.serial > serial:
            found.append(entry)
            if len(found) >= limit:
                break
    return found


def checked_limit(limit: int) -> int:
    """C{limit}, refused below 1 (a reader asks for at least one)."""
    if limit < 1:
        raise ValueError(f"a read of the journal asks for at least one entry, not {limit}")
    return limit


class JournalPart(Service):
    """
    The journal as a part of the daemon: started before the storages and
    the audit trail that write to it, closed after them.
    """

    def __init__(self, journal: IJournal) -> None:
        self.journal = journal

    def stopService(self) -> Deferred[bool]:
        """Write what is queued; what cannot be is logged and counted as lost."""
        Service.stopService(self)
        return self.journal.close()
