"""
One storage's changes, told through its store's journal (L{StoreChanges}):
how the servers sharing a storage (on a bucket; a machine's workers on a
folder) learn of each other's changes.

A server that changes a file or a project's status tells it here once the
storage holds the change, before its caller goes on: a
L{pypid.core.records.change_kinds.ChangeKind.STORED} entry naming the
storage, the file or project, and the writer's instance. The others read
the entries after their serial, then each named file's state from the
storage itself, so they take in what it holds whatever the entries' order.

There is no other channel, no marker to clean up and no window to look
back over: a reader goes on from its serial even after a month away. One
gap is possible, and said (L{StoreChanges.gap}): the journal's oldest files
removed by hand past a reader's serial; it must then compare the whole
storage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from pypid.core.records.audit_chain import BEGINNING, Entry, format_time, milliseconds
from pypid.core.records.change_kinds import ChangeKind
from pypid.storage.base.journal import IJournal, read_after

#: The most entries L{StoreChanges.told_before} reads back.
LOOK_BACK = 4096


@attrs.frozen
class Stored:
    """
    One change a storage holds, as the journal told it: of a file, or of a
    project's status; C{when} in ms by the writer's clock; C{own}: told by
    this instance.
    """

    filename: str | None
    project: str | None
    when: int
    own: bool


class StoreChanges:
    """
    The changes of one storage in the journal (see the module).

    @ivar key: the storage's name in its entries (its C{within},
        L{pypid.storage.factory.below}: C{""} for the store's root).
    @ivar instance: this instance's name in its entries (random per start).
    @ivar cursor: the last serial read (L{None}: L{start} learns it).
    """

    def __init__(self, journal: IJournal, key: str, clock: IReactorTime, *,
                 owned: bool = False) -> None:
        """@param owned: whether the journal is this one's to close (a command's own)."""
        self.journal = journal
        self.key = key
        self._clock = clock
        self._owned = owned
        self.instance = uuid.uuid4().hex[:12]
        self.cursor: int | None = None
        self.gap = False
        # (a cursor taken from a snapshot is checked against the journal's
        # head once: a journal restored from an older backup, or begun
        # again, numbers new entries below it)
        self._checked = True

    def tell(self, filenames: Iterable[str] = (),
             projects: Iterable[str] = ()) -> Deferred[int | None]:
        """
        Tell that the storage holds changes of C{filenames} and C{projects}'
        statuses: fires once the first write ended, with the last serial
        (L{None}: not yet written, tried again in order); never fails.
        """
        now = format_time(self._clock.seconds())
        entries = [Entry(time=now, event=ChangeKind.STORED, target=self.key,
                         detail=self.instance, filename=name) for name in filenames]
        entries += [Entry(time=now, event=ChangeKind.STORED, target=self.key,
                          detail=self.instance, project=name) for name in projects]
        if not entries:
            return succeed(None)
        return self.journal.append(entries)

    def close(self) -> Deferred[Any]:
        """Write out a journal of its own (nothing when it is the server's, closed by it)."""
        if self._owned:
            return self.journal.close()
        return succeed(None)

    async def start(self) -> None:
        """Read from the journal's end now, unless a place to read from is known."""
        if self.cursor is None:
            self.cursor = await self.journal.head()

    def resume(self, serial: int) -> None:
        """Read from after C{serial}, what a snapshot took in (checked against the journal)."""
        self.cursor = serial
        self._checked = False

    def advance(self, serial: int) -> None:
        """Read from after C{serial}, what L{read} read up to, once it was taken in."""
        self.cursor = serial

    async def read(self) -> tuple[list[Stored], int]:
        """
        This storage's changes after L{cursor}, and the serial read up to;
        the cursor moves only at L{advance}, so a failure midway reads them
        again.
        """
        await self.start()
        assert self.cursor is not None
        found: list[Stored] = []

        def take(entries: Sequence[Entry]) -> None:
            # (the root's key, empty, is written as no target)
            found.extend(Stored(e.filename, e.project, milliseconds(e.time),
                                e.detail == self.instance) for e in entries
                         if e.event == ChangeKind.STORED and (e.target or "") == self.key)
        read = await read_after(self.journal, self.cursor, take, check_head=not self._checked)
        self._checked = True
        self.gap = self.gap or read.gap
        return found, read.serial

    async def told_before(self, serial: int, since: int) -> dict[str, int]:
        """
        The files this storage's entries up to C{serial} told of, back to
        C{since} (ms), with when each was last told: what a reader that
        begins at C{serial} did not read. Read backwards, a growing number
        of entries at a time (at most L{LOOK_BACK}).
        """
        told: dict[str, int] = {}
        step = 16
        start = serial
        while start > BEGINNING:
            start = max(BEGINNING, serial - step)
            entries = [e for e in await self.journal.since(start, serial - start)
                       if (e.serial or 0) <= serial]
            for entry in entries:
                if entry.event == ChangeKind.STORED and (entry.target or "") == self.key \
                        and entry.filename is not None:
                    told[entry.filename] = max(milliseconds(entry.time),
                                               told.get(entry.filename, 0))
            if not entries or milliseconds(entries[0].time) <= since \
                    or serial - start >= LOOK_BACK:
                break
            step *= 4
        return told
