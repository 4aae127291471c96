"""
Where the audit log is kept: with the packages, so it outlives the server
and every instance on a shared bucket writes to the same place.

  - Local storage: C{<storage path>/.pypid/audit/YYYY-MM-DD.jsonl}, one file
    a day (UTC), appended under an exclusive C{flock} (read under a shared
    one) and fsynced once a batch.
  - S3: C{<prefix>.pypid/audit/YYYY-MM-DD/<instance>/<n>.jsonl}. Objects
    cannot be appended to, and several servers share a bucket, so each
    server (each start: a random instance name) writes its own numbered
    batches of a day, with C{If-None-Match: *}: no two writers ever write
    one key.
  - In memory, for the tests (laid out as the local files).

One writer's entries are one chain, across days: a day's first line links
to the writer's last line of the day before (locally, the previous file's
last line; on S3, the instance's previous batch), so a day's file (or an
instance's day) removed from the middle, or the end of a day cut, breaks a
link. The newest entry of all has no successor: the running server checks,
before it appends, that the last entry it wrote is still there, warns when
it is not, and links the new entry to the one it wrote, so that C{verify}
reports the change.

Every log is a L{BufferedAuditLog}: L{IAuditLog.append} (failed logins)
queues an entry, written within L{FLUSH_DELAY} (L{S3_FLUSH_DELAY}) with the
ones that follow it; L{IAuditLog.write} (changes) starts a write at once,
or right after the one under way, and fires when that write attempt ends:
a request answers only once its change's entry is fsynced (a PUT answered,
on S3). Entries arriving during a write go in the next one, so writes stay
batched under load. A write that fails is logged as an error and tried
again with what it did not write durably, in order; the change itself is
not failed by it, and nobody waits for the retries.

Cost, measured against the daemon (twistd, local storage on ext4 over a
virtual disk, 2 cores: server on one, client on the other; 300 uploads of
a 1 KB wheel per run, 6 runs of each code alternated): one upload at a
time took 11.3 ms before (the entry buffered for up to 0.5 s) and 12.6 ms
waiting for its entry's fsync (+1.3 ms, paired median +1.0 ms); over 8
connections, 157 uploads/s before and 138 after (-12%), the entries of
concurrent uploads sharing fsyncs.

Under C{.pypid/}, these names are internal: the local scan skips dot
folders, and an S3 listing of files starts after every C{.pypid/} key
(L{pypid.storage.s3.layout.Layout.files_start_after}).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from pypid.core.records.audit_chain import (
    AuditError,
    Broken,
    Entry,
    EntryPage,
    Note,
    Query,
    Selection,
    chain,
    day_of,
    decode,
    first_entry,
    is_day,
    link,
    select,
    split_lines,
    verify_files,
    verify_lines,
)
from pypid.core.records.metrics import Family, counter, gauge
from pypid.storage.disk import fsync_folder, read_if_present, write_atomically
from pypid.storage.interface import Run, StorageError

if TYPE_CHECKING:
    # (not at run time: the S3 client brings botocore, which a local log
    # has no use for)
    from pypid.storage.s3.api import BucketCalls

log = Logger()

_T = TypeVar("_T")

#: Seconds an entry L{IAuditLog.append}ed waits to be written with the
#: others that follow it; on S3, where each batch is an object (and a
#: request), a second.
FLUSH_DELAY = 0.5
S3_FLUSH_DELAY = 1.0

#: Seconds before a failed write is tried again, doubled each time up to
#: L{MAX_RETRY_DELAY}.
RETRY_DELAY = 2.0
MAX_RETRY_DELAY = 60.0

#: Entries held at most while writes fail (some 50 MB): past it, new
#: entries are counted as lost and the count logged as an error.
MAX_PENDING = 100_000

#: Entries in one S3 batch object at most (an object stays under a few MB).
BATCH_ENTRIES = 1000

#: An S3 batch object is read up to this size.
OBJECT_LIMIT = 16 << 20

#: What follows the prefix (the storage's) in every audit key of a bucket.
S3_FOLDER = ".pypid/audit/"

_FILE = re.compile(r"\A(\d{4}-\d{2}-\d{2})\.jsonl\Z")
_OBJECT = re.compile(r"\A(\d{4}-\d{2}-\d{2})/([0-9a-z]+)/(\d{6,})\.jsonl\Z")


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
        The entries a L{pypid.core.records.audit_chain.Query} asks for.

        @return: a L{Deferred} firing with a L{pypid.core.records.audit_chain.EntryPage}.
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


def _imported_name(name: str) -> str:
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


def _entries_of(data: bytes) -> list[Entry]:
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


# -- daily files (local, and in memory) -------------------------------------------------------


class _AuditFile(Protocol):
    """An open file of a log of daily files (L{_LocalFile}, L{_MemoryFile})."""

    def size(self) -> int:
        """Its size in bytes."""
        ...

    def pread(self, count: int, offset: int) -> bytes:
        """Up to C{count} bytes from C{offset}."""
        ...

    def append(self, data: bytes) -> None:
        """Append C{data}, durably."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to C{size} bytes."""
        ...


def _read_tail(f: _AuditFile, size: int) -> tuple[str | None, bool]:
    """
    The link to the last line of the first C{size} bytes of an open file
    (L{None} when there are none), and whether that line is cut short (no
    newline: a write that a crash cut).
    """
    if size == 0:
        return None, False
    block = 16 << 10
    end = size
    tail = b""
    torn = f.pread(1, size - 1) != b"\n"
    if not torn:
        end -= 1
    while True:
        start = max(end - block, 0)
        tail = f.pread(end - start, start) + tail
        end = start
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return link(tail[cut + 1:]), torn
        if start == 0:
            return link(tail), torn


class _DayFiles(BufferedAuditLog):
    """
    A log of daily files appended to: the chain through them, reads and
    the check, shared by L{LocalAuditLog} and L{MemoryAuditLog}, which give
    the file operations (C{_names}, C{_appending}, C{_reading},
    C{_created}, C{_call}, C{_shown}).

    A batch is written under the file's exclusive lock. Its first line
    links to the last entry this writer wrote, whose end it remembers: when
    that entry is no longer where it was (the file was cut or edited behind
    the server's back), a warning is logged and the link still names it,
    so that verify reports the change; a file appended to by someone else
    after it goes on from its last line. At the start, the chain goes on
    from the newest file's last line.
    """

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__(clock)
        # (file name, its size after this writer's last line, the link to
        # that line): used by one write at a time.
        self._last: tuple[str, int, str | None] | None = None

    # -- what a subclass gives: the file operations

    def _call(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        """Run C{f(*args)} (blocking work) as the subclass does."""
        raise NotImplementedError()

    def _names(self) -> list[str]:
        """The names of the files in the log's folder."""
        raise NotImplementedError()

    def _appending(self, name: str) -> AbstractContextManager[_AuditFile]:
        """The file C{name} open to append to (created), under its exclusive lock."""
        raise NotImplementedError()

    def _reading(self, name: str) -> AbstractContextManager[_AuditFile | None]:
        """The file C{name} open to read, under a shared lock; L{None} when it is gone."""
        raise NotImplementedError()

    def _created(self) -> None:
        """A file was created (made durable in its folder)."""
        raise NotImplementedError()

    def _shown(self, name: str) -> str:
        """How the file C{name} is named to a person."""
        raise NotImplementedError()

    def _keep_sync(self, name: str, data: bytes) -> bool:
        """Keep C{data} under C{name}; whether it was written (see L{keep_imported})."""
        raise NotImplementedError()

    # -- the chain through the files

    def _day_names(self) -> list[str]:
        return sorted(n for n in self._names() if _FILE.match(n))

    def _write_batch(self, entries: list[Entry]) -> Deferred[None]:
        return self._call(self._write_sync, entries)

    def _write_sync(self, entries: list[Entry]) -> None:
        newest = self._last[0][:10] if self._last is not None else None
        if newest is None:
            newest = max((n[:10] for n in self._day_names()), default=None)
        written = 0
        try:
            for day, group in by_day(entries, newest):
                self._append_sync(f"{day}.jsonl", group)
                written += len(group)
        except Exception as e:
            if written:
                raise PartlyWritten(written, e) from e
            raise

    def _append_sync(self, name: str, entries: list[Entry]) -> None:
        with self._appending(name) as f:
            size = f.size()
            head, torn = self._head_of(name, f, size)
            lines, new_head = chain(entries, head)
            data = (b"\n" if torn else b"") + b"".join(line + b"\n" for line in lines)
            try:
                f.append(data)
            except Exception:
                # Cut the batch off again: it is tried again later.
                try:
                    f.truncate(size)
                except OSError:
                    pass
                raise
            self._last = (name, size + len(data), new_head)
        if size == 0:
            self._created()

    def _head_of(self, name: str, f: _AuditFile, size: int) -> tuple[str | None, bool]:
        """
        The link a batch appended to C{name} (open as C{f}, C{size} bytes)
        starts from, and whether the file's last line is torn.
        """
        last = self._last
        if last is not None and last[0] == name:
            return self._after_last(f, size)
        if size:
            # Not this writer's (it started since): go on from its last line.
            return _read_tail(f, size)
        if last is not None:
            with self._reading(last[0]) as before:
                head, _torn = self._after_last(before, before.size() if before else 0)
            return head, False
        older = [n for n in self._day_names() if n < name]
        if not older:
            return None, False
        with self._reading(older[-1]) as before:
            return (_read_tail(before, before.size())[0] if before else None), False

    def _after_last(self, f: _AuditFile | None, size: int) -> tuple[str | None, bool]:
        """
        The link to go on from in the file of this writer's last entry
        (open as C{f}, L{None} when it is gone), and whether the file's last
        line is torn.
        """
        # (called only once this writer wrote a line)
        name, end, head = cast(tuple[str, int, str | None], self._last)
        if f is not None and end <= size and _read_tail(f, end) == (head, False):
            return (head, False) if size == end else _read_tail(f, size)
        log.warn("The audit file {path} was changed behind the server's back: the last entry "
                 "the server wrote is no longer at its end; the next entry links to that "
                 "entry all the same, so that verify reports the change",
                 path=self._shown(name))
        torn = f is not None and size > 0 and f.pread(1, size - 1) != b"\n"
        return head, torn

    def _read_file(self, name: str) -> bytes:
        with self._reading(name) as f:
            return f.pread(f.size(), 0) if f is not None else b""

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The entries C{query} asks for."""
        return self._call(self._read_sync, query)

    def _read_sync(self, query: Query) -> EntryPage:
        return select(query, [n[:10] for n in self._day_names()],
                      lambda day: _entries_of(self._read_file(f"{day}.jsonl")))

    def verify(self) -> Deferred[ChainCheck]:
        """Check the chain through every file (each read under a shared lock)."""
        return self._call(self._verify_sync)

    def _verify_sync(self) -> ChainCheck:
        names = self._day_names()
        report = verify_files((self._shown(n), self._read_file(n)) for n in names)
        return ChainCheck(len(names), report.entries, tuple(report.broken), tuple(report.notes))

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """The day files, oldest first (see L{IAuditLog.stored_files})."""
        return self._call(lambda: [(n, self._read_file(n)) for n in self._day_names()])

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep another log's file under C{imported/} (see L{IAuditLog.keep_imported})."""
        return self._call(self._keep_sync, _imported_name(name), data)


@attrs.define
class _MemoryFile:
    """A file of a L{MemoryAuditLog}, as L{_DayFiles} uses one."""

    _log: MemoryAuditLog
    _name: str

    def size(self) -> int:
        return len(self._log.files.get(self._name, b""))

    def pread(self, count: int, offset: int) -> bytes:
        return self._log.files.get(self._name, b"")[offset:offset + count]

    def append(self, data: bytes) -> None:
        if self._name in self._log.fail_files:
            raise StorageError(f"{self._name} cannot be written (test)")
        self._log.files[self._name] = self._log.files.get(self._name, b"") + data

    def truncate(self, size: int) -> None:
        self._log.files[self._name] = self._log.files.get(self._name, b"")[:size]


@implementer(IAuditLog)
class MemoryAuditLog(_DayFiles):
    """
    The audit log in memory, laid out as the local one: C{files} maps
    C{YYYY-MM-DD.jsonl} to its bytes, which tests may edit.

    @ivar fail: when true, writes fail with L{StorageError} (tests).
    @ivar fail_files: names of files whose appends fail (tests).
    """

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__(clock)
        self.files: dict[str, bytes] = {}
        #: the files kept by L{keep_imported}, by their name under the folder
        self.imported: dict[str, bytes] = {}
        self.fail = False
        self.fail_files: set[str] = set()

    def _call(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return maybeDeferred(f, *args)

    def _write_sync(self, entries: list[Entry]) -> None:
        if self.fail:
            raise StorageError("the audit log cannot be written (test)")
        return super()._write_sync(entries)

    def _names(self) -> list[str]:
        return list(self.files)

    @contextmanager
    def _appending(self, name: str) -> Iterator[_AuditFile]:
        self.files.setdefault(name, b"")
        yield _MemoryFile(self, name)

    @contextmanager
    def _reading(self, name: str) -> Iterator[_AuditFile | None]:
        yield _MemoryFile(self, name) if name in self.files else None

    def _created(self) -> None:
        pass

    def _shown(self, name: str) -> str:
        return name

    def _keep_sync(self, name: str, data: bytes) -> bool:
        if self.imported.get(name) == data:
            return False
        self.imported[name] = data
        return True


@attrs.define
class _LocalFile:
    """An open file of a L{LocalAuditLog}, as L{_DayFiles} uses one."""

    _fd: int

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def pread(self, count: int, offset: int) -> bytes:
        chunks = []
        while count > 0:
            chunk = os.pread(self._fd, count, offset)
            if not chunk:
                break
            chunks.append(chunk)
            count -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)


@implementer(IAuditLog)
class LocalAuditLog(_DayFiles):
    """
    Daily JSON-lines files in a folder (C{<storage path>/.pypid/audit}).

    Appends take the file's exclusive C{flock}, reads (queries, verify) a
    shared one, so a read never sees half an append, and a second process
    on the folder cannot interleave with a batch. A batch is fsynced before
    it counts as written; a batch that fails half-way is cut off again.

    @ivar folder: the folder of the files.
    @ivar _run: C{run(f, *args) -> Deferred}, the I/O thread pool.
    """

    def __init__(self, folder: str, run: Run, clock: IReactorTime) -> None:
        super().__init__(clock)
        self.folder = folder
        self._run = run

    def _call(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return self._run(f, *args)

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []

    def _shown(self, name: str) -> str:
        return os.path.join(self.folder, name)

    @contextmanager
    def _appending(self, name: str) -> Iterator[_AuditFile]:
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self._shown(name), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield _LocalFile(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _reading(self, name: str) -> Iterator[_AuditFile | None]:
        try:
            fd = os.open(self._shown(name), os.O_RDONLY)
        except FileNotFoundError:  # (pruned meanwhile)
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield _LocalFile(fd)
        finally:
            os.close(fd)

    def _keep_sync(self, name: str, data: bytes) -> bool:
        path = os.path.join(self.folder, *name.split("/"))
        if read_if_present(path) == data:
            return False
        write_atomically(path, data)
        return True

    def _created(self) -> None:
        fsync_folder(self.folder)


# -- S3 ---------------------------------------------------------------------------------------


@implementer(IAuditLog)
class S3AuditLog(BufferedAuditLog):
    """
    Numbered batch objects per day and instance, under C{<prefix>.pypid/audit/}.

    An instance's batches are one chain across its days: the first line of
    batch C{n} links to the last line of batch C{n - 1}, and batch 0 of a
    day to the instance's last batch of an earlier day.

    @ivar _client: an L{pypid.storage.s3.api.S3Client} of the bucket.
    @ivar folder: the key prefix of the audit objects (the storage's prefix
        and L{S3_FOLDER}).
    @ivar instance: this writer's name in its keys (random per start).
    @ivar _prepare: C{prepare() -> Deferred}, made ready before the first
        call (the credentials), or L{None}.
    @ivar _on_close: called after the last write, or L{None}.
    """

    delay = S3_FLUSH_DELAY

    def __init__(self, client: BucketCalls, prefix: str, clock: IReactorTime, *,
                 instance: str | None = None,
                 prepare: Callable[[], Awaitable[Any]] | None = None,
                 on_close: Callable[[], Any] | None = None, parallel: int = 8) -> None:
        super().__init__(clock)
        self._client = client
        self.folder = prefix + S3_FOLDER
        self.instance = instance or secrets.token_hex(6)
        self._prepare = prepare
        self._prepared = False
        self._preparing = DeferredLock()
        self._on_close = on_close
        self._reads = DeferredSemaphore(parallel)
        # day -> the number of its next batch
        self._numbers: dict[str, int] = {}
        # the link to the last line this instance wrote, and its day
        self._head: str | None = None
        self._day: str | None = None

    def close(self) -> Deferred[bool]:
        """Write what is queued (the stop), then let the client go."""
        def closed(result: Any) -> Any:
            if self._on_close is not None:
                self._on_close()
            return result
        return super().close().addBoth(closed)

    async def _ready(self) -> None:
        """Make the client ready (once; again after a failure)."""
        if self._prepare is not None and not self._prepared:
            await self._preparing.run(lambda: ensureDeferred(self._prepare_once()))

    async def _prepare_once(self) -> None:
        if self._prepare is not None and not self._prepared:
            await self._prepare()
            self._prepared = True

    def key(self, day: str, instance: str, number: int) -> str:
        """The key of batch C{number} of C{instance} on C{day}."""
        return f"{self.folder}{day}/{instance}/{number:06d}.jsonl"

    def _write_batch(self, entries: list[Entry]) -> Deferred[None]:
        return ensureDeferred(self._write(entries))

    async def _write(self, entries: list[Entry]) -> None:
        written = 0
        try:
            await self._ready()
            for day, group in by_day(entries, self._day):
                while group:
                    done = await self._put(day, group[:BATCH_ENTRIES])
                    written += done
                    group = group[done:]
        except Exception as e:
            if written:
                raise PartlyWritten(written, e) from e
            raise

    async def _put(self, day: str, entries: list[Entry]) -> int:
        """
        Write one batch; return how many of C{entries} it holds (all, unless
        an earlier attempt whose answer was lost wrote fewer).
        """
        number = self._numbers.get(day, 0)
        lines, new_head = chain(entries, self._head)
        body = b"".join(line + b"\n" for line in lines)
        key = self.key(day, self.instance, number)
        if await self._client.put(key, body, {"content-type": "application/x-ndjson"},
                                  if_none_match=True):
            self._numbers[day], self._head, self._day = number + 1, new_head, day
            return len(entries)
        # The key is taken: by an attempt of ours whose answer was lost
        # (its lines begin this batch), or by something else.
        there = await self._client.get(key, limit=OBJECT_LIMIT)
        if there and there.endswith(b"\n") and body.startswith(there):
            written = split_lines(there)
            self._numbers[day], self._head, self._day = number + 1, link(written[-1]), day
            return len(written)
        raise StorageError(f"the audit object {key} is there already, with other entries")

    async def _list(self, prefix: str,
                    delimiter: str | None = None) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        prefixes: list[str] = []
        async for page in self._client.list(prefix, delimiter=delimiter):
            keys += [item.key for item in page.keys]
            prefixes += page.prefixes
        return keys, prefixes

    async def _days(self) -> list[str]:
        _keys, prefixes = await self._list(self.folder, "/")
        days = [p[len(self.folder):].rstrip("/") for p in prefixes]
        return sorted(d for d in days if is_day(d))

    def _parse(self, key: str) -> tuple[str, str, int] | None:
        """C{(day, instance, number)} of an audit key, or L{None}."""
        match = _OBJECT.match(key[len(self.folder):])
        if match is None:
            return None
        return match.group(1), match.group(2), int(match.group(3))

    async def _get(self, key: str) -> bytes:
        data = await self._reads.run(self._client.get, key, OBJECT_LIMIT)
        return data or b""

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The entries C{query} asks for, a day's objects at a time."""
        return ensureDeferred(self._read(query))

    async def _read(self, query: Query) -> EntryPage:
        await self._ready()
        days = query.days(await self._days())
        selection = Selection(query)
        for number, day in enumerate(days, 1):
            keys, _ = await self._list(f"{self.folder}{day}/")
            keys = [k for k in keys if self._parse(k) is not None]
            bodies = await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                         consumeErrors=True)
            if selection.take(day, [e for body in bodies for e in _entries_of(body)]):
                return selection.result(more=number < len(days))
        return selection.result(more=False)

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """Every instance's batches, in key order (see L{IAuditLog.stored_files})."""
        return ensureDeferred(self._stored_files())

    async def _stored_files(self) -> list[tuple[str, bytes]]:
        await self._ready()
        keys, _ = await self._list(self.folder)
        keys = [k for k in keys if self._parse(k) is not None]
        bodies = await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                     consumeErrors=True)
        return [(k[len(self.folder):], body) for k, body in zip(keys, bodies, strict=False)]

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep another log's file under C{imported/} (see L{IAuditLog.keep_imported})."""
        return ensureDeferred(self._keep_imported(self.folder + _imported_name(name), data))

    async def _keep_imported(self, key: str, data: bytes) -> bool:
        await self._ready()
        if await self._client.get(key, limit=OBJECT_LIMIT) == data:
            return False
        await self._client.put(key, data, {"content-type": "application/x-ndjson"})
        return True

    def verify(self) -> Deferred[ChainCheck]:
        """Check every instance's chain: its batches of each day, in order, across days."""
        return ensureDeferred(self._verify())

    async def _verify(self) -> ChainCheck:
        await self._ready()
        keys, _ = await self._list(self.folder)
        writers: dict[str, list[tuple[str, int, str]]] = {}
        broken: list[Broken] = []
        notes: list[Note] = []
        for key in keys:
            if key.startswith(self.folder + IMPORTED):
                continue  # (other servers' logs, kept as they came)
            parsed = self._parse(key)
            if parsed is None:
                broken.append(Broken(key, 0, "not the name of an audit object"))
                continue
            day, instance, number = parsed
            writers.setdefault(instance, []).append((day, number, key))
        files = entries = 0
        for instance, batches in sorted(writers.items()):
            batches.sort()
            head = before = None
            for position, (day, number, key) in enumerate(batches):
                data = await self._get(key)
                files += 1
                first = first_entry(data)
                if position == 0:
                    if number != 0 or (first is not None and first.prev is not None):
                        since = first.time if first is not None else day
                        notes.append(Note(key, f"entries before {since} are not kept "
                                               "(pruned)"))
                        head = first.prev if first is not None else None
                else:
                    last_day, last_number, _ = batches[position - 1]
                    expected = last_number + 1 if day == last_day else 0
                    if number != expected:
                        broken.append(Broken(
                            self.key(day, instance, expected), 0,
                            f"missing: batches {expected} to {number - 1} of this server's "
                            "day were removed" if number - 1 > expected
                            else "missing: this batch was removed"))
                        head = first.prev if first is not None else None
                        before = None
                checked = verify_lines(key, data, head, before)
                entries += len(checked.entries)
                broken += checked.broken
                head, before = checked.head, key
        return ChainCheck(files, entries, tuple(broken), tuple(notes))
