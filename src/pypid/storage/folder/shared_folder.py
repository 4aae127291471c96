"""
A storage folder the workers of one machine share (L{SharedFolder}), as
servers share a bucket: through the store's journal
(L{pypid.storage.base.store_changes}). Each change is told once the folder
holds it, before its caller answers; the others read the entries since
their last look, and each named file's state from the folder.

A worker that ended may have changed a file and not told it: the
supervisor says so on the ring (L{pypid.machine.topics.Topic.WORKER_ENDED}),
and the next look is a full check (L{SharedFolder.reconcile_due}).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import directlyProvides, implementer, providedBy

from pypid.core.dists.model import FileRecord
from pypid.jobs.run import Run
from pypid.machine.topics import Hub, Topic
from pypid.storage.base.capabilities import Changed, ISharedStorage, Polled
from pypid.storage.base.interface import ScanResult, StorageError
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.sidecars import Sidecars, is_tombstone

#: The calls that change a file, and the files each changes, from its arguments.
_FILE_CHANGES: dict[str, Callable[..., list[str]]] = {
    "publish": lambda temp_path, record, *_, **__: [record.filename],
    "update": lambda record, *_, **__: [record.filename],
    "delete": lambda record, *_, **__: [record.filename],
    "add_tombstone": lambda filename, *_, **__: [filename],
    "adopt": lambda source, record, *_, **__: [record.filename],
    "discard_adopted": lambda record, *_, **__: [record.filename],
    "evict": lambda records, *_, **__: [record.filename for record in records],
    "keep_provenance": lambda record, *_, **__: [record.filename],
}

#: Seconds between two looks at the ring when no request asked for one: a
#: worker that answers nothing still catches up.
SYNC_INTERVAL = 1.0


def folder_key(root: str) -> bytes:
    """The name of a folder in its announcements: short, and the same in every worker."""
    return hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:16].encode()


def read_state(sidecars: Sidecars, filename: str) -> Changed:
    """
    A file's state as the folder holds it now (blocking); an unreadable
    record is a tombstone when its file is gone, as a scan takes it.
    """
    data, damaged = sidecars.load_record(filename)
    if is_tombstone(data):
        return Changed(filename, None, True)
    if data is None:
        return Changed(filename, None, damaged)
    try:
        record = FileRecord.from_json(data)
    except ValueError:
        return Changed(filename, None, False)
    return Changed(filename, record, False, sidecars.read_promotion(filename))


@implementer(ISharedStorage)
class SharedFolder:
    """
    The L{LocalStorage} C{inner}, shared with the machine's other workers:
    it provides what C{inner} does and L{ISharedStorage}; each change is
    told through C{changes}, and the rest passes through.
    """

    sync_interval = SYNC_INTERVAL
    checked_after_start = True
    #: (the snapshot is the machine's own file: L{keep_snapshot})
    keeps_snapshot = False

    def __init__(self, inner: LocalStorage, changes: StoreChanges, hub: Hub, run: Run,
                 clock: IReactorTime) -> None:
        self.inner = inner
        self.changes = changes
        self._hub = hub
        self._run = run
        self._clock = clock
        self._sidecars = Sidecars(inner.root)
        self._lapped = False
        self._synced_at: float | None = None
        # (a worker ended, perhaps between a change and telling it, or a
        # whole ring went by: the whole folder is compared)
        hub.on(Topic.WORKER_ENDED, lambda fields, worker: self._lap())
        hub.lost(self._lap)
        directlyProvides(self, providedBy(inner), ISharedStorage)
        for name, files_of in _FILE_CHANGES.items():
            method = getattr(inner, name, None)
            if method is not None:
                setattr(self, name, self._telling(method, files_of))
        # (the promoter hands the source's backend, unwrapped: L{unwrapped})
        self.adopt = self._telling(inner.adopt, _FILE_CHANGES["adopt"])

    def __getattr__(self, name: str) -> Any:
        # (what is not a change passes through: reads, locate, identity...)
        return getattr(self.inner, name)

    def prepare(self) -> Deferred[None]:
        """The folder's, then where the journal ends: the start's scan sees what came before."""
        return self.inner.prepare().addCallback(
            lambda _: Deferred.fromCoroutine(self.changes.start()))

    def close(self) -> Deferred[Any]:
        """The folder's, once what is told is written (a journal of its own)."""
        return self.changes.close().addBoth(lambda _: self.inner.close())

    # -- telling -------------------------------------------------------------------------

    def _telling(self, method: Callable[..., Deferred[Any]],
                 files_of: Callable[..., list[str]]) -> Callable[..., Deferred[Any]]:
        def changed(*args: Any, **kwargs: Any) -> Deferred[Any]:
            filenames = files_of(*args, **kwargs)
            return method(*args, **kwargs).addCallback(self._told, filenames, ())
        return changed

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """
        Keep a project's status, and tell it: refused (L{StorageError}) while
        the journal cannot be written, as on a bucket, rather than answered
        and perhaps never told.
        """
        def told(serial: int | None) -> None:
            if serial is None:
                raise StorageError(
                    f"the journal cannot be written to tell that {project}'s status changed")
        return self.inner.keep_status(project, data).addCallback(
            lambda _: self.changes.tell((), [project])).addCallback(told)

    def _told(self, result: Any, filenames: Sequence[str], projects: Sequence[str]) -> Any:
        return self.changes.tell(filenames, projects).addCallback(lambda _: result)

    # -- taking in the others' -----------------------------------------------------------

    def poll(self) -> Deferred[Polled]:
        """The changes the other workers told since the last look, read from the folder now."""
        return Deferred.fromCoroutine(self._poll())

    def _lap(self) -> None:
        self._lapped = True

    async def _poll(self) -> Polled:
        self._hub.take()
        told, serial = await self.changes.read()
        files = list(dict.fromkeys(c.filename for c in told
                                   if not c.own and c.filename is not None))
        projects = list(dict.fromkeys(c.project for c in told
                                      if not c.own and c.project is not None))
        sidecars = self._sidecars
        states: list[Changed] = []
        statuses: dict[str, bytes | None] = {}
        if files or projects:
            states = await self._run(lambda: [read_state(sidecars, name) for name in files])
        if projects:
            kept = await self.inner.statuses()
            statuses = {project: kept.get(project) for project in projects}
        self.changes.advance(serial)
        self._synced_at = self._clock.seconds()
        return Polled(states, statuses)

    def reconcile_due(self) -> bool:
        """Whether a worker ended, a whole ring went by, or the journal lost entries."""
        return self._lapped or self.changes.gap

    def synced_at(self) -> float | None:
        """When this worker last took in every change the others told."""
        return self._synced_at

    def changes_read(self) -> int | None:
        """The journal's serial this worker took in the changes up to."""
        return self.changes.cursor

    def resume(self, serial: int) -> None:
        """A start from a snapshot that took in the changes up to C{serial}: read those after."""
        self.changes.resume(serial)

    def reconcile(self, known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """A full scan and every status, read after the files; a failure leaves it due."""
        self._lapped = self.changes.gap = False

        async def check() -> ScanResult:
            try:
                scanned = await self.inner.scan(known, 0.0, tombstones)
                return attrs.evolve(scanned, statuses=await self.inner.statuses())
            except BaseException:
                self._lapped = True
                raise
        return ensureDeferred(check())

    def state(self) -> None:
        """Nothing of the journal goes into the snapshot: a worker starts from the folder."""
        return None

    def state_changed(self) -> bool:
        """Never: see L{state}."""
        return False

    def restore_state(self, state: object) -> None:
        """Nothing to take back: see L{state}."""

    def keep_snapshot(self, data: bytes) -> None:
        """The snapshot is the machine's own file: no copy kept here."""
        return None

    def load_snapshot(self) -> Deferred[bytes | None]:
        """No copy is kept: see L{keep_snapshot}."""
        return succeed(None)
