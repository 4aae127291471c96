"""
A server's reader of its store's journal (L{JournalFollower}): what the journal
holds after the serial read up to, given to the serials every page carries
(L{pypid.core.records.serials.ProjectSerials}), from where the snapshot left
off.

The follower brings in what the others wrote (other servers, workers, the
command-line tools): at its start, before the listeners open, so the first page
carries the serials every server agrees on; then every C{every} seconds, and
whenever asked to catch up.

The others' entries are taken in no further than the shared storages read the
journal (C{bound}): a page never carries the serial of a change whose file this
server does not serve yet, which a mirror would then skip for good. A journal
gone back behind the serial read (restored from an older backup) is read again
from its last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.audit_chain import Entry
from pypid.core.records.serials import ProjectSerials
from pypid.jobs.coalesced import Coalesced
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import IJournal, read_after

log = Logger()

#: Seconds between two reads of a journal only this machine writes, and
#: the most between two of a bucket's.
EVERY = 5.0


class JournalFollower(Periodic):
    """Reads the journal into the serials; see the module."""

    def __init__(self, journal: IJournal, serials: ProjectSerials, clock: IReactorTime,
                 every: float = EVERY,
                 bound: Callable[[], int | None] = lambda: None) -> None:
        """@param bound: C{bound()}: the serial past which no entry is taken in yet, if any."""
        Periodic.__init__(self, self.sync, every, clock, what="The journal's follower")
        self._journal = journal
        self._serials = serials
        self._bound = bound
        # (the serial read is checked against the journal's last once, at the start)
        self._checked = False
        self._reading = Coalesced(lambda: ensureDeferred(self._read()))
        self._failures = RepeatedFailure("Cannot read the journal", clock, log)

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        """Read what the journal holds since the snapshot, then go on on the timer."""
        reading = self._reading()

        def started(_: object) -> None:
            Periodic.startService(self)
        return reading.addBoth(started)

    def sync(self) -> Deferred[None]:
        """Fires once a read begun after the call ended (one under way waited out); never fails."""
        return self._reading()

    async def _read(self) -> None:
        serials, bound = self._serials, self._bound()
        held: list[Entry] = []

        def take(entries: Sequence[Entry]) -> None:
            if bound is not None:
                held.extend(e for e in entries if (e.serial or 0) > bound)
                entries = [e for e in entries if (e.serial or 0) <= bound]
            serials.take(entries)
        try:
            read = await read_after(self._journal, serials.followed, take,
                                    check_head=not self._checked)
            self._checked = True
            serials.followed = min(read.serial, bound) if bound is not None and held \
                else read.serial
        except StorageError as e:
            self._failures.failed(str(e))
        else:
            self._failures.succeeded()
