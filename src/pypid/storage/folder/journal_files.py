"""
The journal as a segment file a day, appended to (C{YYYY-MM-DD.jsonl},
UTC): in C{<storage path>/.pypid/audit/} (L{LocalJournal}: the audit log's
folder, so the lines from before the journal are its history and the chain
goes on from them), appended under an exclusive C{flock} (read under a
shared one) and fsynced once a batch; or in memory, for the tests
(L{MemoryJournal}). A day's first line links to the previous file's last.

A batch's serials are given under the folder's lock, from the newest file's
last line, so a machine's workers make one order. A reader finds a serial
from the files' first serials (a first line never changes) and the places
it last read up to.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.core.records.audit_chain import (
    AuditError,
    Entry,
    chain,
    decode,
    number,
    verify_files,
)
from pypid.core.records.audit_query import EntryPage, Query, select
from pypid.jobs.run import Run
from pypid.storage.base.disk import fsync_folder, read_if_present, write_atomically
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import (
    BEGINNING,
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
from pypid.storage.folder.journal_segments import (
    DiskSegment,
    SegmentFile,
    lines_from,
    read_tail,
    serial_at_end,
)

#: (the namespace its lines had before it was the journal)
log = Logger(namespace="pypid.storage.journal")

#: The places a reader read up to, remembered (by serial).
_PLACES = 256

_T = TypeVar("_T")

_FILE = re.compile(r"\A(\d{4}-\d{2}-\d{2})\.jsonl\Z")


def _bounds(asked: Sequence[tuple[int, int, object]]) -> tuple[int, int]:
    """The lowest serial asked after, and the furthest serial asked up to."""
    return (min(serial for serial, _limit, _answer in asked),
            max(serial + limit for serial, limit, _answer in asked))


@attrs.define
class _SharedRead:
    """
    One read of the journal and the readers it answers (see
    L{_DayFiles.since}): from the lowest serial asked to the furthest end
    asked, never longer than twice the longest read one of them asked for.
    """

    #: (serial, limit, the reader's answer) of each reader
    asked: list[tuple[int, int, Deferred[list[Entry]]]] = attrs.Factory(list)

    def joins(self, serial: int, limit: int) -> bool:
        """
        Whether a reader from C{serial} for C{limit} entries may share this
        read (one not begun): the read with it spans no more than twice the
        longest read asked (a reader far behind the others, or far ahead,
        does not make them all read its way: it reads on its own).
        """
        asked = [*self.asked, (serial, limit, None)]
        low, high = _bounds(asked)
        return high - low <= 2 * max(limit for _serial, limit, _answer in asked)

    def span(self) -> tuple[int, int]:
        """The serial the read begins after, and how many entries it reads at most."""
        low, high = _bounds(self.asked)
        return low, high - low

    def answer(self, result: list[Entry] | Failure) -> None:
        """Give each reader what it asked for of what was read, or the failure."""
        for serial, limit, answer in self.asked:
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(newer(result, serial, limit))


class _DayFiles(JournalWriter):
    """
    A journal of daily files appended to, over the file operations of
    L{LocalJournal} and L{MemoryJournal}. A batch's first line links to the
    last entry this writer wrote: when that is no longer at its end (the
    file cut or edited behind the server's back), a warning is logged and
    the link still names it, so verify reports the change; a file someone
    else appended to since goes on from its last line, as does a start.
    """

    def __init__(self, clock: IReactorTime, retry: Callable[[int], float] | None = None,
                 ) -> None:
        super().__init__(clock, retry)
        # (file name, its size after this writer's last line, the link to
        # that line, its serial): used by one write at a time.
        self._last: tuple[str, int, str | None, int] | None = None
        # a file's first serial, once known (a file's first line never changes)
        self._firsts: dict[str, int] = {}
        # serial -> (file, the offset after its line): where readers go on
        self._places: dict[int, tuple[str, int]] = {}
        # the reads readers may still join (each taken by the pool's thread as it begins)
        self._asking: list[_SharedRead] = []
        self._asking_lock = threading.Lock()

    # -- what a subclass gives: the file operations

    def _call(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        """Run C{f(*args)} (blocking work) as the subclass does."""
        raise NotImplementedError()

    def _names(self) -> list[str]:
        """The names of the files in the journal's folder."""
        raise NotImplementedError()

    def _appending(self, name: str) -> AbstractContextManager[SegmentFile]:
        """The file C{name} open to append to (created), under its exclusive lock."""
        raise NotImplementedError()

    def _reading(self, name: str) -> AbstractContextManager[SegmentFile | None]:
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

    # -- the serials and the chain through the files

    def _day_names(self) -> list[str]:
        return sorted(n for n in self._names() if _FILE.match(n))

    def _write_batch(self, entries: list[Entry]) -> Deferred[list[Entry]]:
        return self._call(self._write_sync, entries)

    def _write_sync(self, entries: list[Entry]) -> list[Entry]:
        with self._batch_lock():
            names = self._day_names()
            # (the newest day on disk, which another writer of the folder may
            # have begun: a day's file is never appended to once the next
            # day's links to it)
            newest = max([n[:10] for n in names]
                         + ([self._last[0][:10]] if self._last is not None else []),
                         default=None)
            numbered = number(entries, self._serial_sync(names) + 1)
            written: list[Entry] = []
            try:
                for day, group in by_day(numbered, newest):
                    self._append_sync(f"{day}.jsonl", group)
                    written += group
            except Exception as e:
                if written:
                    raise PartlyWritten(written, e) from e
                raise
            return numbered

    def _serial_sync(self, names: list[str]) -> int:
        """The last serial in the files (L{BEGINNING}: none)."""
        last = self._last
        if last is not None and names and names[-1] == last[0]:
            with self._reading(last[0]) as f:
                if f is not None and f.size() == last[1]:
                    return last[3]
        for name in reversed(names):
            with self._reading(name) as f:
                if f is None:
                    continue
                serial, entries = serial_at_end(f, f.size())
            if entries:
                return serial or BEGINNING
        return BEGINNING

    def _batch_lock(self) -> AbstractContextManager[None]:
        """Held while a batch is written: by one writer of the journal at a time."""
        return nullcontext()

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
            serial = entries[-1].serial or 0
            self._last = (name, size + len(data), new_head, serial)
            self._remember(serial, name, size + len(data))
            if size == 0 and entries[0].serial is not None:
                self._firsts[name] = entries[0].serial
        if size == 0:
            self._created()

    def _head_of(self, name: str, f: SegmentFile, size: int) -> tuple[str | None, bool]:
        """The link a batch appended to C{name} (open as C{f}) starts from, and whether torn."""
        last = self._last
        if last is not None and last[0] == name:
            return self._after_last(f, size)
        if size:
            # Not this writer's (it started since): go on from its last line.
            return read_tail(f, size)
        if last is not None:
            with self._reading(last[0]) as before:
                head, _torn = self._after_last(before, before.size() if before else 0)
            return head, False
        older = [n for n in self._day_names() if n < name]
        if not older:
            return None, False
        with self._reading(older[-1]) as before:
            return (read_tail(before, before.size())[0] if before else None), False

    def _after_last(self, f: SegmentFile | None, size: int) -> tuple[str | None, bool]:
        """The link to go on from in the file of this writer's last entry, and whether torn."""
        # (called only once this writer wrote a line)
        name, end, head, _serial = cast(tuple[str, int, str | None, int], self._last)
        if f is not None and end <= size and read_tail(f, end) == (head, False):
            return (head, False) if size == end else read_tail(f, size)
        log.warn("The audit file {path} was changed behind the server's back: the last entry "
                 "the server wrote is no longer at its end; the next entry links to that "
                 "entry all the same, so that verify reports the change",
                 path=self._shown(name))
        torn = f is not None and size > 0 and f.pread(1, size - 1) != b"\n"
        return head, torn

    # -- reading from a serial on

    def _remember(self, serial: int, name: str, offset: int) -> None:
        """Where the line after C{serial}'s begins, for the next reader from there."""
        self._places[serial] = (name, offset)
        if len(self._places) > _PLACES:
            del self._places[next(iter(self._places))]

    def since(self, serial: int, limit: int = MAX_SINCE) -> Deferred[list[Entry]]:
        """
        The entries after C{serial} (see L{IJournal.since}). Readers that ask
        before a read has begun share it: a worker's look asks for the same
        tail for each index and for the serials at once, and one read (one
        trip to the pool) answers them all.
        """
        checked_limit(limit)
        answer: Deferred[list[Entry]] = Deferred()
        with self._asking_lock:
            joined = next((read for read in self._asking if read.joins(serial, limit)), None)
            read = joined or _SharedRead()
            read.asked.append((serial, limit, answer))
            if joined is None:
                self._asking.append(read)
        if joined is None:
            self._call(self._shared_sync, read).addBoth(read.answer)
        return answer.addCallback(self._seen)

    def _shared_sync(self, read: _SharedRead) -> list[Entry]:
        with self._asking_lock:
            # (begun: later readers wait for a read of their own)
            self._asking.remove(read)
        return self._since_sync(*read.span())

    def _seen(self, entries: list[Entry]) -> list[Entry]:
        if entries:
            self.saw(entries[-1].serial or 0)
        return entries

    def head(self) -> Deferred[int]:
        """The last serial in the files now."""
        def seen(serial: int) -> int:
            self.saw(serial)
            return serial
        return self._call(lambda: self._serial_sync(self._day_names())).addCallback(seen)

    def _first_serial(self, name: str, newest: bool) -> int | None:
        """The first serial of the file C{name} (L{None}: it has none, yet)."""
        known = self._firsts.get(name)
        if known is not None:
            return known
        with self._reading(name) as f:
            if f is None:
                return None
            for line, _end in lines_from(f, 0):
                try:
                    entry = decode(line)
                except AuditError:
                    continue
                if entry.serial is not None:
                    self._firsts[name] = entry.serial
                    return entry.serial
        return None if newest else 0

    def _start(self, serial: int, names: list[str]) -> tuple[int, int]:
        """Where to read the entries after C{serial} from: C{(place in names, offset)}."""
        place = self._places.get(serial)
        if place is not None and place[0] in names:
            return names.index(place[0]), place[1]
        for at in range(len(names) - 1, -1, -1):
            first = self._first_serial(names[at], at == len(names) - 1)
            if first == 0:
                # (written before the journal: the serials begin after it)
                return at + 1, 0
            if first is not None and first <= serial + 1:
                return at, 0
        return 0, 0

    def _since_sync(self, serial: int, limit: int) -> list[Entry]:
        names = self._day_names()
        at, offset = self._start(serial, names)
        found: list[Entry] = []
        place: tuple[int, str, int] | None = None
        # (where the lines up to C{serial} end: a reader that finds nothing new
        # starts there next time, rather than reading the day's file again)
        passed: tuple[str, int] | None = None
        for name in names[at:]:
            with self._reading(name) as f:
                if f is None:
                    continue
                for line, end in lines_from(f, offset):
                    try:
                        entry = decode(line)
                    except AuditError:
                        entry = None
                    if entry is None or entry.serial is None or entry.serial <= serial:
                        if not found:
                            passed = (name, end)
                        continue
                    found.append(entry)
                    place = (entry.serial, name, end)
                    if len(found) >= limit:
                        break
            if len(found) >= limit:
                break
            offset = 0
        if place is not None:
            self._remember(*place)
        elif passed is not None:
            self._remember(serial, *passed)
        return found

    def _read_file(self, name: str) -> bytes:
        with self._reading(name) as f:
            return f.pread(f.size(), 0) if f is not None else b""

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The entries C{query} asks for."""
        return self._call(self._read_sync, query)

    def _read_sync(self, query: Query) -> EntryPage:
        return select(query, [n[:10] for n in self._day_names()],
                      lambda day: entries_of(self._read_file(f"{day}.jsonl")))

    def verify(self) -> Deferred[ChainCheck]:
        """Check the chain through every file (each read under a shared lock)."""
        return self._call(self._verify_sync)

    def _verify_sync(self) -> ChainCheck:
        names = self._day_names()
        report = verify_files((self._shown(n), self._read_file(n)) for n in names)
        return ChainCheck(len(names), report.entries, tuple(report.broken), tuple(report.notes))

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """The day files, oldest first (see L{IJournal.stored_files})."""
        return self._call(lambda: [(n, self._read_file(n)) for n in self._day_names()])

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep another log's file under C{imported/} (see L{IJournal.keep_imported})."""
        return self._call(self._keep_sync, imported_name(name), data)


@attrs.define
class _MemoryFile:
    """A file of a L{MemoryJournal}, as L{_DayFiles} uses one."""

    _log: MemoryJournal
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


@implementer(IJournal)
class MemoryJournal(_DayFiles):
    """
    The journal in memory, laid out as the local one: C{files} maps
    C{YYYY-MM-DD.jsonl} to its bytes, which tests may edit; C{fail} and
    C{fail_files} make writes, or a file's appends, fail.
    """

    def __init__(self, clock: IReactorTime, retry: Callable[[int], float] | None = None,
                 ) -> None:
        super().__init__(clock, retry)
        self.files: dict[str, bytes] = {}
        #: the files kept by L{keep_imported}, by their name under the folder
        self.imported: dict[str, bytes] = {}
        self.fail = False
        self.fail_files: set[str] = set()

    def _call(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return maybeDeferred(f, *args)

    def _write_sync(self, entries: list[Entry]) -> list[Entry]:
        if self.fail:
            raise StorageError("the journal cannot be written (test)")
        return super()._write_sync(entries)

    def _names(self) -> list[str]:
        return list(self.files)

    @contextmanager
    def _appending(self, name: str) -> Iterator[SegmentFile]:
        self.files.setdefault(name, b"")
        yield _MemoryFile(self, name)

    @contextmanager
    def _reading(self, name: str) -> Iterator[SegmentFile | None]:
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


@implementer(IJournal)
class LocalJournal(_DayFiles):
    """
    Daily JSON-lines files in C{folder} (C{<storage path>/.pypid/audit}).

    Appends take the file's exclusive C{flock}, reads a shared one, so a
    read never sees half an append; a batch's day and serials are decided
    under the folder's own lock (a machine's workers write one journal). A
    batch is fsynced before it counts; one failing half-way is cut off.
    """

    def __init__(self, folder: str, run: Run, clock: IReactorTime,
                 retry: Callable[[int], float] | None = None) -> None:
        super().__init__(clock, retry)
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
    def _batch_lock(self) -> Iterator[None]:
        # (a batch's day is decided under the lock of the folder itself, or
        # one worker could append to a day another's next day links to)
        fd = _opened(self.folder, self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _appending(self, name: str) -> Iterator[SegmentFile]:
        fd = _opened(self._shown(name), self.folder,
                     os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield DiskSegment(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _reading(self, name: str) -> Iterator[SegmentFile | None]:
        try:
            fd = os.open(self._shown(name), os.O_RDONLY)
        except FileNotFoundError:  # (pruned meanwhile)
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield DiskSegment(fd)
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


def _opened(path: str, folder: str, flags: int, mode: int = 0o777) -> int:
    """
    C{path} opened, its C{folder} made first where it is missing (a batch
    looks for it once, not with three system calls before each open).
    """
    try:
        return os.open(path, flags, mode)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return os.open(path, flags, mode)
