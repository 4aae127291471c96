"""
Bringing in the changes other servers on the same (shared) storage made:
a look at the change markers every C{sync_interval}, and a full check of
the storage when the storage says one is due.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.index import Index
from pypid.jobs.periodic import Periodic
from pypid.state.merge import apply_changes, differences
from pypid.storage.interface import ISharedStorage

log = Logger()


class SyncService(Periodic):
    """
    Brings in the changes other servers on the same storage made, every
    C{sync_interval}: new files, yanks, deletions.
    """

    def __init__(self, index: Index, storage: ISharedStorage, clock: IReactorTime) -> None:
        """
        @param index: the L{pypid.core.index.Index}.
        @param storage: the L{pypid.storage.interface.ISharedStorage}.
        @param clock: provides C{seconds()} and C{callLater}.
        """
        Periodic.__init__(self, self.sync, storage.sync_interval, clock,
                          what="The look for other servers' changes", first=0)
        self._index = index
        self._storage = storage
        self._reconciling: Deferred[None] | None = None

    def sync(self) -> Deferred[None]:
        """
        Poll once, and start a full check in the background when one is due;
        never fails (a failure is logged and the next tick tries again).
        """
        if self._reconciling is None and self._storage.reconcile_due():
            self._reconciling = ensureDeferred(self._reconcile())
            self._reconciling.addErrback(lambda f: log.warn(
                "Cannot check the index against the storage: {error}",
                error=f.getErrorMessage()))
            self._reconciling.addBoth(self._reconciled)
        d = ensureDeferred(self._sync())
        d.addErrback(lambda f: log.warn("Cannot look for changes by other servers: {error}",
                                        error=f.getErrorMessage()))
        return d

    def _reconciled(self, _: object) -> None:
        self._reconciling = None

    def stopService(self) -> Deferred[None]:
        """Stop polling; a full check under way is abandoned."""
        if self._reconciling is not None:
            self._reconciling.cancel()
        return Periodic.stopService(self)

    async def _sync(self) -> None:
        changes = await self._storage.poll()
        apply_changes(self._index, changes)
        if changes:
            log.info("Took in {count} changes made by other servers", count=len(changes))

    async def _reconcile(self) -> None:
        """
        Check the index against a full listing of the storage, and take in
        what only the listing shows (L{differences}). The storage reads
        again every file where the two disagree, so what is applied is the
        state as it is now.
        """
        index = self._index
        # (the files in the recycle bin too: storage holds them)
        known = {record.filename: record for record in index.records() + index.binned()}
        result = await self._storage.reconcile(known, index.tombstones())
        changes = differences(index, known, result.records, result.tombstones)
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)
        apply_changes(index, changes)
        log.info("Checked the index against the whole storage: {count} differences",
                 count=len(changes))
