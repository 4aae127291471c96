"""
The recycle bin of a hosted index: a file deleted through the API, or by a
retention rule, is kept for a while and can be restored meanwhile.

A binned file's record says when it went there (L{FileRecord.binned}); the
storage keeps that beside the file as a yank is (so the other servers on a
bucket learn it from the journal), and the index holds it apart from the live
files: not listed, not served, its name still taken. Once kept for
L{RecycleBin.keep_for}, L{BinUpkeep} purges it behind a tombstone, so its
filename is never used again for other bytes.

Every change to a file holds the index's L{KeyedLock} on its distribution key,
so a purge never races a restore, an upload or a promotion. A C{keep_for} of 0
turns the bin off.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import distribution_key
from pypid.core.indexes.index import Index
from pypid.core.records.audit_chain import Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.units import format_duration
from pypid.jobs.periodic import Periodic
from pypid.storage.base.interface import FilenameDeleted, IStorage
from pypid.storage.base.journal import IJournal
from pypid.storage.base.locks import KeyedLock

log = Logger()

#: How often the upkeep looks for files kept their time (s), at most: a
#: file is purged within this much of its due time (L{look_every}).
PURGE_INTERVAL = 3600.0
#: How long after the start the upkeep first looks (s): once the index is
#: loaded and the start's check of storage had its go.
FIRST_LOOK = 60.0
#: The default time a file stays in the bin (7 days).
DEFAULT_KEEP_FOR = 7 * 24 * 3600.0


def look_every(bins: Mapping[str, RecycleBin]) -> float:
    """
    How often the upkeep of C{bins} looks: L{PURGE_INTERVAL}, or a quarter of
    the shortest time a bin keeps files if less, never more than once a second.
    """
    kept = [bin.keep_for for bin in bins.values() if bin.enabled]
    return max(1.0, min([PURGE_INTERVAL, *(keep_for / 4 for keep_for in kept)]))


class NotInBin(Exception):
    """The file named is not in the recycle bin (never was, restored, or purged)."""


class RestoreConflict(Exception):
    """The file cannot be restored: another of the same distribution was uploaded meanwhile."""


def lock_key(record: FileRecord) -> str:
    """The key of the index's lock a change to C{record}'s file is made under."""
    return distribution_key(record.project, record.version, record.packagetype,
                            record.filename)


@attrs.define(eq=False)
class RecycleBin:
    """One hosted index's recycle bin; C{keep_for}: seconds a binned file is kept."""

    index: Index
    storage: IStorage
    locks: KeyedLock
    clock: IReactorTime
    keep_for: float = DEFAULT_KEEP_FOR

    @property
    def enabled(self) -> bool:
        """Whether removed files go to the bin (rather than being deleted at once)."""
        return self.keep_for > 0

    async def put(self, record: FileRecord) -> FileRecord | None:
        """
        Put the live file C{record} in the bin, or delete it when the bin is
        off; the caller holds the file's lock (L{lock_key}).

        @return: the binned record, or L{None} when the file was deleted.
        @raise pypid.storage.base.interface.StorageError: nothing changed.
        """
        if not self.enabled:
            await self.storage.delete(record)
            self.index.remove(record.filename)
            return None
        binned = record.replace(binned=self.clock.seconds())
        await self.storage.update(binned)
        self.index.add(binned)
        return binned

    async def restore(self, filename: str) -> FileRecord:
        """
        Take the file C{filename} out of the bin, as it was (its yank too).

        @raise RestoreConflict: a file of the same distribution is live.
        """
        record = self.index.binned_file(filename)
        if record is None:
            raise NotInBin(filename)
        return await self.locks.run(lock_key(record), self._restore, filename)

    async def _restore(self, filename: str) -> FileRecord:
        record = self.index.binned_file(filename)
        if record is None:
            raise NotInBin(filename)
        other = self.index.same_distribution(filename)
        if other is not None and self.index.get_file(other) is not None:
            raise RestoreConflict(other)
        live = record.replace(binned=None)
        await self.storage.update(live)
        self.index.add(live)
        return live

    def due(self, now: float | None = None) -> list[FileRecord]:
        """The binned files kept their time by C{now} (default: the clock's), first due first."""
        now = self.clock.seconds() if now is None else now
        return [record for record in self.index.binned()
                if record.binned is not None and record.binned + self.keep_for <= now]

    async def purge(self, record: FileRecord) -> bool:
        """Delete the binned file C{record} for good, if still binned as it says; whether it was."""
        return await self.locks.run(lock_key(record), self._purge, record)

    async def _purge(self, record: FileRecord) -> bool:
        if self.index.binned_file(record.filename) != record:
            return False
        try:
            await self.storage.delete(record)
        except FilenameDeleted:
            # (another server on the bucket purged it first: its purge)
            self.index.remove(record.filename)
            return False
        self.index.remove(record.filename)
        return True


class BinUpkeep(Periodic):
    """
    Purges, about every L{PURGE_INTERVAL}, the files each hosted index's bin
    (C{bins}, by name) has kept their time, with an C{audit} entry for each.
    """

    def __init__(self, bins: Mapping[str, RecycleBin], audit: IJournal | None,
                 clock: IReactorTime, interval: float = PURGE_INTERVAL) -> None:
        Periodic.__init__(self, self._look, interval, clock, what="The recycle bin's upkeep",
                          first=min(FIRST_LOOK, interval))
        self.bins = bins
        self.audit = audit

    @classmethod
    def of(cls, bins: Mapping[str, RecycleBin], audit: IJournal | None,
           clock: IReactorTime) -> BinUpkeep:
        """The upkeep of C{bins}, looking as often as the shortest bin needs (L{look_every})."""
        return cls(bins, audit, clock, look_every(bins))

    async def _look(self) -> None:
        for name, bin in self.bins.items():
            if not bin.enabled:
                continue
            for record in bin.due():
                if not self.running:
                    return
                try:
                    purged = await bin.purge(record)
                except Exception as e:
                    # (kept in the bin: the next look tries again)
                    log.warn("Cannot purge {filename} from the recycle bin yet: {error}",
                             filename=record.filename, error=str(e))
                    continue
                if purged:
                    self._record(name, record, bin.keep_for)

    def _record(self, name: str, record: FileRecord, keep_for: float) -> None:
        log.info("Purged {filename} from the recycle bin{of}", filename=record.filename,
                 of="" if name == "default" else f" of {name}")
        if self.audit is None:
            return
        self.audit.queue(Entry(
            time=format_time(self.clock.seconds()), event=ChangeKind.PURGE,
            index=None if name == "default" else name, project=record.project,
            version=record.version, filename=record.filename, sha256=record.sha256,
            detail=f"kept {format_duration(keep_for)} in the recycle bin"))

