"""
Bringing in the changes other servers (or workers) on a shared storage made: a
look at the change markers every C{sync_interval}, and a full check when the
storage says one is due. Both take in the projects' statuses (PEP 792) before
the files, so a quarantine set elsewhere is in force before any of its files is
served.

A file changed here during a look keeps the change made here (a delete into the
bin just after the look read the file live was undone, and the name taken
again: seen on a busy machine); what another server did to it within that look
waits for the next full check.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.util.units import counted
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.state.merge import apply_changes, apply_statuses, checked_statuses, differences
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.reading import decode_status

log = Logger()

#: Seconds between two lines that count the changes taken in: a busy
#: machine's workers take some in at almost every look.
FOLD = 60.0


class SyncService(Periodic):
    """Brings in the other servers' changes every C{sync_interval}: files, yanks, statuses."""

    def __init__(self, index: Index, storage: ISharedStorage, clock: IReactorTime,
                 peers: str = "servers") -> None:
        """@param peers: who else changes the storage, as the log names them."""
        Periodic.__init__(self, self.sync, storage.sync_interval, clock,
                          what=f"The look for the other {peers}' changes", first=0)
        self._index = index
        self._storage = storage
        self._peers = peers
        #: the changes taken in since the last line that counted them, and its time
        self._untold = 0
        self._told_at: float | None = None
        self._reconciling: Deferred[None] | None = None
        self._failures = RepeatedFailure(f"Cannot look for changes by the other {peers}",
                                         clock, log)

    def changes_read(self) -> int | None:
        """The serial of the journal its storage took the changes in up to (L{None}: not yet)."""
        return self._storage.changes_read()

    def sync(self) -> Deferred[None]:
        """Poll once, and start a full check in the background when due; never fails."""
        if self._reconciling is None and self._storage.reconcile_due():
            self._reconciling = ensureDeferred(self._reconcile())
            self._reconciling.addErrback(lambda f: log.warn(
                "Cannot check the index against the storage: {error}",
                error=f.getErrorMessage()))
            self._reconciling.addBoth(self._reconciled)
        d = ensureDeferred(self._sync())
        d.addCallbacks(lambda _: self._failures.succeeded(),
                       lambda f: self._failures.failed(f.getErrorMessage()))
        return d

    def _reconciled(self, _: object) -> None:
        self._reconciling = None

    def stopService(self) -> Deferred[None]:
        """Stop polling; a full check under way is abandoned."""
        if self._reconciling is not None:
            self._reconciling.cancel()
        return Periodic.stopService(self)

    async def _sync(self) -> None:
        index = self._index
        # (a file changed here during the look is newer than what it read)
        index.watch_changes()
        try:
            polled = await self._storage.poll()
        finally:
            newer = index.watched()
        # (the statuses first; nothing is served between the two)
        statuses = {name: decode_status(name, data) for name, data in polled.statuses.items()}
        changed = apply_statuses(index, statuses)
        apply_changes(index, [c for c in polled.files if c.filename not in newer])
        self._told(changed, statuses)
        self._count(len(polled.files) + len(changed))

    def _count(self, taken: int) -> None:
        """Log the changes taken in: at once, then in one line a L{FOLD} at most."""
        self._untold += taken
        now = self.clock.seconds()
        if self._untold and (self._told_at is None or now - self._told_at >= FOLD):
            log.info("Took in {count} made by the other {peers}",
                     count=counted(self._untold, "change"), peers=self._peers)
            self._untold, self._told_at = 0, now

    def _told(self, changed: list[str], statuses: dict[str, ProjectStatus | None]) -> None:
        """Log each project's status taken in from the storage."""
        for name in changed:
            status = statuses[name]
            log.info("The project {project} is {status}, as set through another of the "
                     "{peers} or an import", project=name, peers=self._peers,
                     status="active" if status is None else status.status)

    async def _reconcile(self) -> None:
        """
        Check the index against a full listing of the storage and take in
        what only the listing shows; the storage reads again every file where
        the two disagree, so what is applied is the state now.
        """
        index = self._index
        # (the files in the recycle bin too: storage holds them)
        known = {record.filename: record for record in index.records() + index.binned()}
        began = index.statuses.serial
        result = await self._storage.reconcile(known, index.tombstones())
        changes = differences(index, known, result.records, result.tombstones)
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)
        if result.statuses is not None:
            # (read after the files: the statuses first, as at a poll)
            read = {name: status for name, data in result.statuses.items()
                    if (status := decode_status(name, data)) is not None}
            statuses = checked_statuses(index, read, began)
            self._told(apply_statuses(index, statuses), statuses)
        apply_changes(index, changes)
        log.info("Checked the index against the whole storage: {differences}",
                 differences=counted(len(changes), "difference"))
