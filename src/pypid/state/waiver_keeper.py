"""
The advisory waivers admins keep (L{pypid.core.security.advisory_waivers}),
between the storage that holds them and the indexes that act by them.

Read again on a timer: every server on a shared bucket must act on a waiver
made through another, and reading the one small document costs one GET.

A change reads the document first, so two servers changing waivers at once each
add to what the other kept, unless both write within the same instant (the
storage has no conditional write here). Until the first read, no waiver is in
force: an index that hides or denies fails closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from pypid.core.security.advisory_waivers import InvalidWaiver, Waiver, Waivers
from pypid.jobs.periodic import Periodic
from pypid.jobs.repeated_failure import RepeatedFailure
from pypid.storage.base.capabilities import WAIVERS, IServerDocuments, ISharedStorage

log = Logger()

#: How often a storage of one server's is read again (seconds).
UNSHARED_INTERVAL = 300.0


class WaiverKeeper(Periodic):
    """
    Reads the waivers from storage (at the start, then on a timer) and changes
    them (L{change}), telling its listeners each time they differ; C{read_ok}:
    whether the last read succeeded (L{None}: none yet).
    """

    def __init__(self, storage: IServerDocuments, clock: IReactorTime) -> None:
        """@param storage: the default index's storage."""
        shared = ISharedStorage(storage, None)
        interval = shared.sync_interval if shared is not None else UNSHARED_INTERVAL
        Periodic.__init__(self, self.refresh, interval, clock,
                          what="The read of the advisory waivers")
        self._storage = storage
        self._listeners: list[Callable[[Waivers], Iterable[str]]] = []
        self._lock = DeferredLock()
        self.current = Waivers()
        self._kept: bytes | None = None
        self._kept_ok = True
        self.read_ok: bool | None = None
        self._failures = RepeatedFailure("Cannot read the advisory waivers", clock, log,
                                         LogLevel.error)

    def listen(self, take: Callable[[Waivers], Iterable[str]]) -> None:
        """Call C{take(waivers)}, which says which indexes changed, whenever the waivers do."""
        self._listeners.append(take)

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        """Read the waivers before the server answers (a failure is logged: none in force)."""
        Service.startService(self)
        return self.run_now()

    def refresh(self) -> Deferred[None]:
        """Read the document again and act by it if it changed; never fails."""
        d = self._lock.run(self._read)
        d.addCallbacks(lambda _: self._failures.succeeded(), self._unread)
        return d

    def _unread(self, failure: Failure) -> None:
        self.read_ok = False
        self._failures.failed(failure.getErrorMessage())

    async def _read(self) -> None:
        data = await self._storage.document(WAIVERS)
        if data == self._kept:
            # (the same bytes read as before: as readable as they were)
            self.read_ok = self._kept_ok
            return
        try:
            waivers = Waivers() if data is None else Waivers.from_bytes(data)
        except InvalidWaiver as e:
            # (a document another tool broke must not drop every waiver, nor add one)
            log.error("The advisory waivers kept are unreadable, not taken: {error}",
                      error=str(e))
            self._kept, self._kept_ok = data, False
            self.read_ok = False
            return
        self._kept, self._kept_ok = data, True
        self.read_ok = True
        self._set(waivers)

    def _set(self, waivers: Waivers) -> None:
        self.current = waivers
        changed = [name for take in list(self._listeners) for name in take(waivers)]
        if changed:
            log.info("Advisory waivers in force: {count} ({indexes} changed)",
                     count=len(waivers), indexes=", ".join(changed))

    def change(self, edit: Callable[[Waivers], tuple[Waivers, Waiver | None]]
               ) -> Deferred[Waiver | None]:
        """
        Change the waivers: the document read again, C{edit(waivers)} ->
        C{(new waivers, the waiver added or removed)}, kept, then in force.
        Fires with that waiver (L{None}: nothing to change, nothing kept).

        @raise pypid.core.security.advisory_waivers.InvalidWaiver: what C{edit}
            refused, or the document kept is unreadable (then nothing changes).
        """
        return self._lock.run(self._change, edit)

    async def _change(self, edit: Callable[[Waivers], tuple[Waivers, Waiver | None]]
                      ) -> Waiver | None:
        data = await self._storage.document(WAIVERS)
        waivers = Waivers() if data is None else Waivers.from_bytes(data)
        new, touched = edit(waivers)
        if touched is None:
            return None
        kept = new.to_bytes()
        await self._storage.keep_document(WAIVERS, kept)
        self._kept, self._kept_ok = kept, True
        self.read_ok = True
        self._set(new)
        return touched
