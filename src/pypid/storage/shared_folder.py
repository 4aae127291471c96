"""
A storage folder the workers of one machine share (L{SharedFolder}): what
several servers on one bucket are to each other through the bucket's
change markers, the workers are through the machine's ring
(L{pypid.machine.ring.ChangeRing}), at once rather than at the next look.

Each change a worker makes to the folder is announced on the ring once the
folder holds it, before the change's caller (the route that answers the
client) goes on; the other workers read the announcements since their
last look (L{pypid.storage.capabilities.ISharedStorage.poll}) and the
state of each file named, from the folder, as a look at a bucket reads
it. An announcement names the folder by a digest of its path, so the
storages of several hosted indexes share one ring, and a file or project
by its name: C{f <folder> <filename>} or C{s <folder> <project>}.

A worker that fell a whole ring behind cannot know what it missed: its
next look is a full check of the folder (L{reconcile_due}).

A bucket the workers share (L{MachineBucket}) is announced alike, named
by its bucket and prefix; there the change's own marker is in the bucket
before the change is announced, so a worker that reads an announcement of
another's asks the bucket's markers at once (one listing), as it asks
them every C{sync_interval} for the changes of other servers on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import directlyProvides, implementer, providedBy

from pypid.core.dists.model import FileRecord
from pypid.machine.ring import ChangeRing
from pypid.storage.capabilities import Changed, ISharedStorage, Polled
from pypid.storage.interface import IStorage, Run, ScanResult
from pypid.storage.local import LocalStorage
from pypid.storage.sidecars import Sidecars, is_tombstone

if TYPE_CHECKING:
    from pypid.storage.bucket.storage import BucketStorage

#: The calls that change a file, and how each names the files it changed
#: from its arguments.
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

#: What the supervisor announces when a worker ended (C{w <number>}): it may
#: have changed a file and ended before it announced the change.
WORKER_ENDED = b"w"

#: Seconds between two looks at the ring when no request asked for one: a
#: worker that answers nothing still catches up.
SYNC_INTERVAL = 1.0


def _unwrapped(storage: IStorage) -> IStorage:
    """
    The storage under its wrappers (timed, shared): what a promotion copies
    from (a folder or a bucket has no C{inner}).
    """
    while (inner := getattr(storage, "inner", None)) is not None:
        storage = inner
    return storage


def folder_key(root: str) -> bytes:
    """The name of a folder in its announcements: short, and the same in every worker."""
    return hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:16].encode()


def read_state(sidecars: Sidecars, filename: str) -> Changed:
    """
    A file's state as the folder holds it now (blocking): its record, or a
    tombstone, or nothing (a record that cannot be read is a tombstone when
    its file is gone, as a scan takes it).
    """
    data, damaged = sidecars.load_record(filename)
    if is_tombstone(data):
        return Changed(filename, None, True)
    if data is None:
        return Changed(filename, None, damaged)
    try:
        return Changed(filename, FileRecord.from_json(data), False)
    except ValueError:
        return Changed(filename, None, False)


def announced(ring: ChangeRing, seen: int, key: bytes,
              kinds: Collection[bytes]) -> tuple[list[tuple[bytes, str]] | None, int]:
    """
    What the other workers announced since C{seen} of the kinds C{kinds}
    for the storage named C{key}, C{(kind, name)} in order, with a worker's
    end as C{(WORKER_ENDED, "")}; L{None} when a whole ring went by. And
    the number looked up to.
    """
    announcements = ring.since(seen)
    if announcements is None:
        return None, ring.latest()
    latest = announcements[-1].sequence if announcements else seen
    named = []
    me = ring.worker
    for announcement in announcements:
        if announcement.worker == me:
            continue
        parts = announcement.payload.split(b" ", 2)
        if parts[0] == WORKER_ENDED:
            named.append((WORKER_ENDED, ""))
        elif len(parts) == 3 and parts[0] in kinds and parts[1] == key:
            named.append((parts[0], parts[2].decode("utf-8", "replace")))
    return named, latest


class _Announcing:
    """
    A storage the workers of a machine share: each change announced on the
    ring once the storage holds it (see the module); the rest passes through.
    """

    def __init__(self, inner: Any, ring: ChangeRing, key: bytes) -> None:
        self._inner = inner
        self._ring = ring
        self._key = key
        #: the last announcement looked at
        self.seen = ring.latest()
        directlyProvides(self, providedBy(inner), ISharedStorage)
        for name, files_of in _FILE_CHANGES.items():
            method = getattr(inner, name, None)
            if method is not None:
                setattr(self, name, self._announcing(method, files_of))
        # (a promotion's source is another index's shared storage: its own is adopted from)
        self.adopt = self._announcing(
            lambda source, record, promotion: inner.adopt(_unwrapped(source), record, promotion),
            _FILE_CHANGES["adopt"])

    def __getattr__(self, name: str) -> Any:
        # (what is not a change passes through: reads, locate, identity...)
        return getattr(self._inner, name)

    # -- announcing -----------------------------------------------------------------------

    def _announcing(self, method: Callable[..., Deferred[Any]],
                    files_of: Callable[..., list[str]]) -> Callable[..., Deferred[Any]]:
        def changed(*args: Any, **kwargs: Any) -> Deferred[Any]:
            filenames = files_of(*args, **kwargs)
            d = method(*args, **kwargs)
            return d.addCallback(self._announced, b"f", filenames)
        return changed

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """Keep a project's status, and announce it."""
        return self._inner.keep_status(project, data).addCallback(
            self._announced, b"s", [project])

    def _announced(self, result: Any, kind: bytes, names: Sequence[str]) -> Any:
        for name in names:
            self._ring.announce(b" ".join((kind, self._key, name.encode())))
        return result

    def _others(self) -> tuple[list[tuple[bytes, str]] | None, int]:
        """What the other workers announced for this storage since the last look (L{announced})."""
        return announced(self._ring, self.seen, self._key, (b"f", b"s"))


@implementer(ISharedStorage)
class SharedFolder(_Announcing):
    """
    The L{LocalStorage} C{inner}, shared with the other workers of the
    machine through C{ring}: it provides what C{inner} provides, and
    L{ISharedStorage}.
    """

    sync_interval = SYNC_INTERVAL

    def __init__(self, inner: LocalStorage, ring: ChangeRing, run: Run,
                 clock: IReactorTime) -> None:
        """
        @param run: C{run(f, *args) -> Deferred}, where the files' states
            are read.
        @param clock: provides C{seconds()}, for L{synced_at}.
        """
        super().__init__(inner, ring, folder_key(inner.root))
        self._run = run
        self._clock = clock
        self._sidecars = Sidecars(inner.root)
        self._lapped = False
        self._synced_at: float | None = None

    @property
    def inner(self) -> LocalStorage:
        """The folder itself."""
        return cast(LocalStorage, self._inner)

    # -- taking in the others' -----------------------------------------------------------

    def poll(self) -> Deferred[Polled]:
        """
        The changes the other workers announced for this folder since the
        last look, each file's state read from the folder now; a look a
        whole ring behind finds nothing and makes a full check due.
        """
        named, latest = self._others()
        if named is None:
            self._lapped = True
            self.seen = latest
            return succeed(Polled())
        files: dict[str, None] = {}
        projects: dict[str, None] = {}
        for kind, name in named:
            if kind == WORKER_ENDED:
                # (a worker ended, perhaps between a change and its
                # announcement: the whole folder is compared)
                self._lapped = True
            else:
                (files if kind == b"f" else projects)[name] = None
        if not files and not projects:
            # (only this worker's own, or other folders': nothing to read, and
            # no thread to wait for before the request it held goes on)
            self.seen = max(self.seen, latest)
            self._synced_at = self._clock.seconds()
            return succeed(Polled())
        return Deferred.fromCoroutine(self._read(latest, list(files), list(projects)))

    async def _read(self, latest: int, filenames: list[str], projects: list[str]) -> Polled:
        """The states of C{filenames}, then (after them) the statuses of C{projects}."""
        sidecars = self._sidecars
        files = await self._run(lambda: [read_state(sidecars, name) for name in filenames])
        statuses: dict[str, bytes | None] = {}
        if projects:
            kept = await self._inner.statuses()
            statuses = {project: kept.get(project) for project in projects}
        self.seen = max(self.seen, latest)
        self._synced_at = self._clock.seconds()
        return Polled(files, statuses)

    def reconcile_due(self) -> bool:
        """
        Whether a look fell a whole ring behind, or a worker ended (cleared
        by L{reconcile}).
        """
        return self._lapped

    def synced_at(self) -> float | None:
        """When this worker last took in every change the others announced."""
        return self._synced_at

    def reconcile(self, known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """The whole folder, compared with the index's records (a full scan)."""
        self._lapped = False
        return self._inner.scan(known, 0.0, tombstones)

    def state(self) -> None:
        """Nothing of the ring goes into the snapshot: a worker starts from the folder."""
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


@implementer(ISharedStorage)
class MachineBucket(_Announcing):
    """
    The L{BucketStorage} C{inner}, shared with the other workers of the machine
    through C{ring}: its changes announced, and a look that finds one of
    another worker's asks the bucket's change markers at once (see the
    module); the rest (full checks, the snapshot in the bucket) is the
    bucket's, as for any server on it.
    """

    def __init__(self, inner: BucketStorage, ring: ChangeRing, clock: IReactorTime) -> None:
        """@param clock: provides C{seconds()}: when the bucket's markers are due."""
        super().__init__(inner, ring, folder_key(inner.identity()))
        self._clock = clock
        #: looks at the ring this often; at the bucket, as often as the bucket says
        self.sync_interval = min(SYNC_INTERVAL, inner.sync_interval)
        self._asked_at: float | None = None

    @property
    def inner(self) -> BucketStorage:
        """The bucket's storage itself."""
        return cast("BucketStorage", self._inner)

    def poll(self) -> Deferred[Polled]:
        """
        The bucket's changes since the last look at its markers, when
        another worker announced one here (or ended, or a whole ring went
        by) or when the bucket's own interval is up; else none.
        """
        named, latest = self._others()
        now = self._clock.seconds()
        due = (self._asked_at is None or named is None or bool(named)
               or now - self._asked_at >= self.inner.sync_interval)
        if not due:
            self.seen = max(self.seen, latest)
            return succeed(Polled())
        self._asked_at = now

        def asked(polled: Polled) -> Polled:
            # (only now: a look meanwhile asks the bucket too, rather than
            # answer before this one's changes are taken in)
            self.seen = max(self.seen, latest)
            return polled
        return self.inner.poll().addCallback(asked)
