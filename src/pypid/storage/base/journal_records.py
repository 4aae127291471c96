"""
The journal as records that cannot be appended to: objects in a bucket,
shared by its servers (and a dict, for the tests). A batch is one record,
C{entries/<first serial>.jsonl}, written create-only
(L{pypid.storage.base.records.IRecords.put_new}): of two servers claiming
one serial, one wins, and the other reads the winner's batch and claims
the serial after it. So the batches follow each other without a gap, in
one order, the chain going through them.

A writer knows the journal's end from its own last batch; one that
starts, or lost a race, lists the batches after the last it knew (or after
the C{head} record, rewritten now and then, never ahead of the end). A
writer's first batch of a day leaves a C{days/<YYYY-MM-DD>} record of its
serial, created once, where the audit log's queries find a day's entries.
A bucket's older audit log is read with it
(L{pypid.storage.bucket.bucket_journal.BucketJournal}).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.core.records.audit_chain import (
    Broken,
    Entry,
    Note,
    chain,
    first_entry,
    is_day,
    link,
    number,
    split_lines,
    verify_lines,
)
from pypid.core.records.audit_query import EntryPage, Query, Selection
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import (
    BEGINNING,
    JOURNAL_FILES,
    MAX_SINCE,
    ChainCheck,
    IJournal,
    JournalWriter,
    PartlyWritten,
    by_day,
    checked_limit,
    entries_of,
    imported_name,
    newer,
)
from pypid.storage.base.records import IRecords

#: Seconds an entry L{IJournal.queue}d waits to be written with the others
#: that follow it in a bucket, where each batch is an object (and a request).
BUCKET_FLUSH_DELAY = 1.0

#: Entries in one batch at most (an object stays under a few MB).
BATCH_ENTRIES = 1000

#: The folders of the journal's records.
ENTRIES, DAYS, HEAD = "entries", "days", "head"

#: The C{head} record is rewritten after this many batches of a writer's.
HEAD_EVERY = 64

#: Batches read at once.
READS = 8

_BATCH = re.compile(r"\A(\d{12})\.jsonl\Z")


def batch_name(serial: int) -> str:
    """The name of the batch whose first serial is C{serial}."""
    return f"{serial:012d}.jsonl"


def first_of(name: str) -> int | None:
    """The first serial of a batch's name, or L{None} (not a batch's)."""
    match = _BATCH.match(name)
    return int(match.group(1)) if match else None


def _last_of(first: int, data: bytes) -> tuple[int, str | None]:
    """
    The last serial of the batch C{first} holding C{data}, and the link
    to its last line: a line is an entry, even one that cannot be read.
    """
    lines = split_lines(data)
    return first + max(len(lines), 1) - 1, link(lines[-1]) if lines else None


@implementer(IJournal)
class RecordJournal(JournalWriter):
    """The journal as batch records in C{records} (see the module)."""

    delay = BUCKET_FLUSH_DELAY

    def __init__(self, records: IRecords, clock: IReactorTime, *,
                 prepare: Callable[[], Awaitable[Any]] | None = None,
                 on_close: Callable[[], Any] | None = None,
                 retry: Callable[[int], float] | None = None) -> None:
        """
        @param prepare: C{prepare() -> Deferred}, made ready before the
            first call (a bucket's credentials), or L{None}.
        @param on_close: called after the last write, or L{None}.
        """
        super().__init__(clock, retry)
        self.records = records
        self._prepare = prepare
        self._prepared = False
        self._preparing = DeferredLock()
        self._on_close = on_close
        self._reads = DeferredSemaphore(READS)
        # the serial the next batch claims (None: not known, listed first),
        # and the link to the journal's last line
        self._next: int | None = None
        self._head: str | None = None
        # last serial -> the name of the batch it ends: where a reader
        # that took it in goes on listing
        self._ends: dict[int, str] = {}
        self._batches = 0
        self._newest_day: str | None = None

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

    def _ended(self, last: int, name: str) -> None:
        self._ends[last] = name
        if len(self._ends) > 256:
            del self._ends[next(iter(self._ends))]

    # -- writing

    def _write_batch(self, entries: list[Entry]) -> Deferred[list[Entry]]:
        return ensureDeferred(self._write(entries))

    async def _write(self, entries: list[Entry]) -> list[Entry]:
        written: list[Entry] = []
        try:
            await self._ready()
            for _day, group in by_day(entries, self._newest_day):
                while group:
                    numbered = await self._claim(group[:BATCH_ENTRIES])
                    written += numbered
                    group = group[len(numbered):]
        except Exception as e:
            if written:
                raise PartlyWritten(written, e) from e
            raise
        return written

    async def _claim(self, group: list[Entry]) -> list[Entry]:
        """Write C{group} as the batch after the journal's last; the entries numbered."""
        while True:
            if self._next is None:
                await self._find_end()
            first = self._next
            assert first is not None
            numbered = number(group, first)
            lines, head = chain(numbered, self._head)
            body = b"".join(line + b"\n" for line in lines)
            name = batch_name(first)
            if await self.records.put_new(f"{ENTRIES}/{name}", body):
                break
            there = await self.records.get(f"{ENTRIES}/{name}")
            if there == body:
                break  # (this writer's own, whose answer was lost)
            # (another server's: the journal's end is after it, or later still)
            self._next = None
            self.saw(first)
        last = numbered[-1].serial or first
        self._next, self._head = last + 1, head
        self._ended(last, name)
        self._batches += 1
        day = numbered[0].time[:10]
        if self._newest_day is None or day > self._newest_day:
            self._newest_day = day
            await self._keep_hint(f"{DAYS}/{day}", str(first), create=True)
        if self._batches % HEAD_EVERY == 0:
            await self._keep_hint(HEAD, str(last))
        return numbered

    async def _keep_hint(self, name: str, value: str, create: bool = False) -> None:
        """Keep a hint (a day's first serial, the head); one that cannot be kept is no matter."""
        try:
            if create:
                await self.records.put_new(name, value.encode("ascii"))
            else:
                await self.records.put({name: value.encode("ascii")})
        except StorageError:
            pass

    async def _find_end(self) -> None:
        """Learn where the journal ends: the serial after its last batch, and that batch's link."""
        known = await self._hinted_head()
        names = await self._names_after(known)
        if not names and known > BEGINNING:
            # (the hint names a batch's last serial: that batch is where it ends)
            names = [self._ends[known]] if known in self._ends \
                else await self._names_after(BEGINNING)
        if not names:
            self._next, self._head = BEGINNING + 1, None
            return
        last, head = await self._read_end(names[-1])
        self._next, self._head = last + 1, head

    async def _read_end(self, name: str) -> tuple[int, str | None]:
        """The last serial of the batch C{name} and the link to it, noted as known."""
        first = first_of(name)
        assert first is not None
        last, head = _last_of(first, await self.records.get(f"{ENTRIES}/{name}") or b"")
        self._ended(last, name)
        self.saw(last)
        return last, head

    async def _hinted_head(self) -> int:
        """A serial the journal holds: what this process knows, else the C{head} record."""
        known = self.last_serial
        if known == BEGINNING:
            try:
                data = await self.records.get(HEAD)
            except StorageError:
                data = None
            known = max(int(data), BEGINNING) if data and data.isdigit() else BEGINNING
        return known

    async def _names_after(self, serial: int) -> list[str]:
        """
        The batches that may hold an entry after C{serial}: from the one that
        ends there when known, else from a batch's length before it.
        """
        after = self._ends.get(serial)
        if after is None and serial > BEGINNING:
            after = batch_name(max(serial - BATCH_ENTRIES, 0))
        names = await self.records.names(ENTRIES, after)
        return [name for name in names if first_of(name) is not None]

    # -- reading from a serial on

    def since(self, serial: int, limit: int = MAX_SINCE) -> Deferred[list[Entry]]:
        """The entries after C{serial} (see L{IJournal.since})."""
        checked_limit(limit)
        return ensureDeferred(self._since(serial, limit))

    async def _since(self, serial: int, limit: int) -> list[Entry]:
        await self._ready()
        names = await self._names_after(serial)
        found: list[Entry] = []
        # (read a few at a time, in order, until enough is found)
        for at in range(0, len(names), READS):
            part = names[at:at + READS]
            bodies = await gatherResults(
                [self._reads.run(self.records.get, f"{ENTRIES}/{name}") for name in part],
                consumeErrors=True).addErrback(lambda f: f.value.subFailure.raiseException())
            for name, body in zip(part, bodies, strict=True):
                first = first_of(name)
                assert first is not None
                last, _ = _last_of(first, body or b"")
                self._ended(last, name)
                found += newer(entries_of(body or b""), serial, limit - len(found))
                if len(found) >= limit:
                    break
            if len(found) >= limit:
                break
        if found:
            self.saw(found[-1].serial or 0)
        return found

    def head(self) -> Deferred[int]:
        """The last serial in the journal now (a listing after the last batch known)."""
        return ensureDeferred(self._head_now())

    async def _head_now(self) -> int:
        await self._ready()
        known = await self._hinted_head()
        names = await self._names_after(known)
        if not names:
            return known
        return (await self._read_end(names[-1]))[0]

    # -- the audit log's reads

    async def _journal_days(self) -> list[tuple[str, int]]:
        """C{(day, its first serial)} of the days' records, in the order of their serials."""
        days: list[tuple[str, int]] = []
        for name in await self.records.names(DAYS):
            if is_day(name):
                data = await self.records.get(f"{DAYS}/{name}")
                if data and data.isdigit():
                    days.append((name, int(data)))
        days.sort(key=lambda day: day[1])
        # (a day out of order, made by a clock far behind, counts with the one before)
        kept: list[tuple[str, int]] = []
        for day, serial in days:
            if not kept or day > kept[-1][0]:
                kept.append((day, serial))
        return kept

    async def _day_reader(self) -> Callable[[str], Awaitable[list[Entry]]]:
        """C{read(day)}: the journal's entries between that day's record and the next's."""
        days = await self._journal_days()
        ranges = {day: (serial, days[at + 1][1] if at + 1 < len(days) else None)
                  for at, (day, serial) in enumerate(days)}

        async def read(day: str) -> list[Entry]:
            if day not in ranges:
                return []
            start, end = ranges[day]
            entries: list[Entry] = []
            serial = start - 1
            while True:
                more = await self._since(serial, MAX_SINCE)
                if end is not None:
                    more = [e for e in more if (e.serial or 0) < end]
                entries += more
                if len(more) < MAX_SINCE:
                    return entries
                serial = more[-1].serial or serial + len(more)
        read.days = list(ranges)  # type: ignore[attr-defined]
        return read

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The entries C{query} asks for, a day's batches at a time."""
        return ensureDeferred(self._read(query))

    async def _older_days(self) -> list[str]:
        """The days of what was written before the journal (none here)."""
        return []

    async def _older(self, day: str) -> list[Entry]:
        """The entries of C{day} written before the journal (none here)."""
        return []

    async def _read(self, query: Query) -> EntryPage:
        await self._ready()
        read = await self._day_reader()
        older = await self._older_days()
        days = query.days(set(read.days) | set(older))  # type: ignore[attr-defined]
        selection = Selection(query)
        for count, day in enumerate(days, 1):
            entries = (await self._older(day) if day in older else []) + await read(day)
            if selection.take(day, entries):
                return selection.result(more=count < len(days))
        return selection.result(more=False)

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """The batches, in serial order, as C{journal/<serial>.jsonl}."""
        return ensureDeferred(self._stored_files())

    async def _stored_files(self) -> list[tuple[str, bytes]]:
        await self._ready()
        names = [n for n in await self.records.names(ENTRIES) if first_of(n) is not None]
        bodies = await gatherResults(
            [self._reads.run(self.records.get, f"{ENTRIES}/{name}") for name in names],
            consumeErrors=True)
        return [(f"{JOURNAL_FILES}{name}", body or b"")
                for name, body in zip(names, bodies, strict=True)]

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep another log's file under C{imported/} (see L{IJournal.keep_imported})."""
        return ensureDeferred(self._keep_imported(imported_name(name), data))

    async def _keep_imported(self, name: str, data: bytes) -> bool:
        await self._ready()
        if await self.records.get(name) == data:
            return False
        await self.records.put({name: data})
        return True

    def verify(self) -> Deferred[ChainCheck]:
        """Check the chain through the batches: in order, without a gap, each linked."""
        return ensureDeferred(self._verify())

    async def _verify(self) -> ChainCheck:
        await self._ready()
        names = [n for n in await self.records.names(ENTRIES) if first_of(n) is not None]
        broken: list[Broken] = []
        notes: list[Note] = []
        head: str | None = None
        before: str | None = None
        expected: int | None = None
        entries = 0
        for name in names:
            data = await self._reads.run(self.records.get, f"{ENTRIES}/{name}") or b""
            first = first_of(name)
            assert first is not None
            shown = self.records.shown(f"{ENTRIES}/{name}")
            if expected is None:
                start = first_entry(data)
                if start is not None and start.prev is not None:
                    notes.append(Note(shown, f"entries before {start.time} are not kept "
                                             "(pruned)"))
                    head = start.prev
            elif first != expected:
                broken.append(Broken(shown, 0, f"missing: serials {expected} to {first - 1} "
                                               "were removed" if first > expected
                                     else "overlaps the batch before it"))
            checked = verify_lines(shown, data, head, before)
            entries += len(checked.entries)
            broken += checked.broken
            head, before = checked.head, shown
            expected = _last_of(first, data)[0] + 1
        older = await self._verify_older()
        return ChainCheck(len(names) + older.files, entries + older.entries,
                          older.broken + tuple(broken), older.notes + tuple(notes))

    async def _verify_older(self) -> ChainCheck:
        """The check of what was written before the journal (nothing here)."""
        return ChainCheck(0, 0, ())
