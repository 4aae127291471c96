"""
A server's reader of its store's journal (L{JournalFollower}): what the
journal holds after the serial it read up to, given to the serials every
page carries (L{pypid.core.records.serials.ProjectSerials}), from where the
snapshot left off (or the journal's beginning, without one).

What this server writes reaches the serials at once (the journal tells
its listeners); the follower brings in what the others wrote: the other
servers on a bucket, the other workers of a machine, the command-line
tools. It reads at its start, before the listeners open, so the first
page carries the serials every server agrees on; then every C{every}
seconds (the storage's C{sync_interval} on a bucket), and whenever it is
asked to catch up (a machine's worker, before it answers, once another
wrote).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.serials import ProjectSerials
from pypid.jobs.coalesced import Coalesced
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.storage.interface import StorageError
from pypid.storage.journal import MAX_SINCE, IJournal

log = Logger()

#: Seconds between two reads of a journal only this machine writes, and
#: the most between two of a bucket's.
EVERY = 5.0


class JournalFollower(Periodic):
    """Reads the journal into the serials; see the module."""

    def __init__(self, journal: IJournal, serials: ProjectSerials, clock: IReactorTime,
                 every: float = EVERY) -> None:
        Periodic.__init__(self, self._follow, every, clock, what="The journal's follower")
        self._journal = journal
        self._serials = serials
        self._reading = Coalesced(lambda: ensureDeferred(self._read()))
        self._failures = RepeatedFailure("Cannot read the journal", clock, log)

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        """Read what the journal holds since the snapshot, then go on on the timer."""
        reading = self._reading()

        def started(_: object) -> None:
            Periodic.startService(self)
        return reading.addBoth(started)

    def caught_up(self) -> Deferred[None]:
        """Fires once what the journal held at the call is read (a read under way joined)."""
        return self._reading()

    def sync(self) -> Deferred[None]:
        """L{caught_up}, as a machine's catching up asks every look (never fails)."""
        return self._reading()

    async def _follow(self) -> None:
        await self._reading()

    async def _read(self) -> None:
        serials = self._serials
        try:
            while True:
                entries = await self._journal.since(serials.followed, MAX_SINCE)
                if not entries:
                    break
                serials.take(entries)
                serials.followed = max(serials.followed, entries[-1].serial or 0)
                if len(entries) < MAX_SINCE:
                    break
        except StorageError as e:
            self._failures.failed(str(e))
        else:
            self._failures.succeeded()
