"""
Storage and the journal, built from the configuration: the one place the
daemon and the command-line tools get them from, so a tool opens a
storage exactly as the server does; and L{StoragePart}, the packages'
storage as a part of the daemon, prepared first and closed last but for
the thread pools.

A named hosted index has a storage of its own under a root of its own
(L{index_settings}), which the default index's scan never sees (a
folder's scan skips dot-entries; in a bucket, C{.indexes/} sorts before
C{.pypid0}, where the default's listing starts), and a snapshot of its own
(L{index_snapshot_path}). The storages of a server's indexes in one bucket
share one client (L{SharedBucket}).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config import Config
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family, Timings
from pypid.core.util.startup import StartupError
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub
from pypid.storage.base.interface import IStorage, StorageError
from pypid.storage.base.measured import MeasuredStorage
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.cloud_clients import make_client
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.shared_folder import SharedFolder
from pypid.storage.folder.sidecars import spool_name

if TYPE_CHECKING:
    from pypid.storage.base.journal import IJournal
    from pypid.storage.bucket.store import ObjectStore

log = Logger()

_T = TypeVar("_T")


#: The folder (under C{[storage] path}) and the key segment (after C{[s3]
#: prefix}) under which the named indexes' storages live, one each.
INDEXES = ".indexes"


def index_settings(config: Config, name: str) -> Config:
    """
    The configuration of the storage of the hosted index C{name}: the
    default's, its root moved to C{<path>/.indexes/NAME/} and
    C{<prefix>.indexes/NAME/}, on one file system and in one bucket (a
    promotion is a hard link, or a server-side copy).
    """
    if name == DEFAULT:
        return config
    return below(config, f"{INDEXES}/{name}")


def below(config: Config, where: str, **changes: Any) -> Config:
    """
    The configuration of a storage kept below the packages' own, in
    C{<path>/<where>/} or under C{<prefix><where>/}, with C{changes} to the
    store's section (a named index's storage, an upstream's cache).
    """
    def moved(section: Any) -> Any:
        return attrs.evolve(section, prefix=f"{section.prefix}{where}/", **changes)
    within = f"{config.storage.within}/{where}" if config.storage.within else where
    return attrs.evolve(
        config,
        storage=attrs.evolve(config.storage,
                             path=os.path.join(config.storage.path, *where.split("/")),
                             within=within),
        stores={name: moved(section) for name, section in config.stores.items()})


def store_root(config: Config) -> Config:
    """The configuration of the root of the store a storage is kept below: the journal's."""
    within = config.storage.within
    if not within:
        return config
    depth = len(within.split("/"))
    path = config.storage.path
    for _ in range(depth):
        path = os.path.dirname(path)

    def rooted(section: Any) -> Any:
        return attrs.evolve(section, prefix=section.prefix[:-len(within) - 1])
    return attrs.evolve(
        config, storage=attrs.evolve(config.storage, path=path, within=""),
        stores={name: rooted(section) for name, section in config.stores.items()})


def index_snapshot_path(snapshot: str, name: str) -> str:
    """
    Where the hosted index C{name} keeps its snapshot: C{[pypid] snapshot}
    for the default, else C{<snapshot>.d/NAME.json}: a folder of their own,
    so no name meets the default's running mark or temporary files.
    """
    if name == DEFAULT:
        return snapshot
    return os.path.join(snapshot + ".d", name + ".json")


@attrs.define
class SharedBucket:
    """
    One client of the configured bucket for every hosted index's storage:
    one pool (closed after the last storage), one credential refresh, and
    one L{Timings} (C{/metrics} counts each request once).
    """

    client: ObjectStore
    timings: Timings
    _close: Callable[[], Deferred[Any]]
    _users: int = 0

    @classmethod
    def create(cls, config: Config, run: Run, reactor: IReactorTime) -> SharedBucket:
        """The client of the configuration's bucket (L{StartupError}: as L{make_client})."""
        timings = Timings()
        client, close = make_client(config, run, reactor, timings, shared=True)
        return cls(client, timings, close)

    def use(self) -> Callable[[], Deferred[Any] | None]:
        """Count one more storage using the client: what it calls as it closes."""
        self._users += 1
        return self._release

    def _release(self) -> Deferred[Any] | None:
        self._users -= 1
        return self._close() if self._users == 0 else None


@attrs.frozen
class Sharing:
    """
    What a server's storages share with other servers and workers: the
    bucket's client (L{None}: each makes its own), the store's journal
    (L{None}: each its own), and the worker's hub (a folder is then shared
    with the other workers; L{LONE}: a server of one process).
    """

    bucket: SharedBucket | None = None
    journal: IJournal | None = None
    hub: Hub = LONE


#: A server of one process and one index: its storage shares nothing it did not make.
ALONE = Sharing()


def make_storage(config: Config, run: Run, reactor: IReactorTime,
                 timings: Timings | None = None, sharing: Sharing = ALONE, *,
                 render: Renderer = render_description) -> IStorage:
    """
    The storage backend the configuration names, sharing what C{sharing}
    says (a journal of its own is closed with it), a bucket's requests
    counted in C{timings}, C{render} the daemon's sandbox.

    @raise StartupError: as L{make_client}.
    """
    journal, hub = sharing.journal, sharing.hub
    section = config.bucket
    if section is None:
        local = LocalStorage(config.storage.path, run, reactor, config.storage.min_free,
                             render=render, worker=hub.worker)
        if hub.alone:
            return local
        own = journal is None
        if journal is None:
            journal = make_journal(config, run, reactor)
        changes = StoreChanges(journal, config.storage.within, reactor, owned=own)
        return cast(IStorage, SharedFolder(local, changes, hub, run, reactor))
    from pypid.storage.bucket.layout import Layout
    from pypid.storage.bucket.storage import BucketSettings, BucketStorage

    client, close = _bucket_client(config, run, reactor, sharing.bucket, timings)
    own = journal is None
    if journal is None:
        journal = _bucket_journal(store_root(config), client, reactor)
    # (a worker's spool is its own: a start sweeps its spool, and must not
    # sweep the uploads another worker is receiving)
    return BucketStorage(
        client, Layout(section.prefix), run, reactor,
        os.path.join(config.storage.path, ".pypid", spool_name(hub.worker)),
        BucketSettings.from_config(section, config.server.max_upload_size), on_close=close,
        render=render,
        changes=StoreChanges(journal, config.storage.within, reactor, owned=own))


def make_journal(config: Config, run: Run, reactor: IReactorTime,
                 bucket: SharedBucket | None = None) -> IJournal:
    """
    The journal kept with the store's root: daily files in
    C{<path>/.pypid/audit/}, or batch objects under C{<prefix>.pypid/journal/};
    with the storages' shared C{bucket} client, if any.
    """
    from pypid.storage.folder.journal_files import LocalJournal

    config = store_root(config)
    if config.bucket is None:
        return LocalJournal(os.path.join(config.storage.path, ".pypid", "audit"), run, reactor)
    client, close = _bucket_client(config, run, reactor, bucket)

    def closed() -> None:
        client.stop()
        close()
    return _bucket_journal(config, client, reactor, prepare=client.start, on_close=closed)


def _bucket_client(config: Config, run: Run, reactor: IReactorTime, bucket: SharedBucket | None,
                   timings: Timings | None = None,
                   ) -> tuple[ObjectStore, Callable[[], Deferred[Any] | None]]:
    """The shared C{bucket}'s client (one more use), or one of its own; and what closes it."""
    if bucket is None:
        return make_client(config, run, reactor, timings)
    return bucket.client, bucket.use()


def _bucket_journal(config: Config, client: ObjectStore, reactor: IReactorTime,
                    **kwargs: Any) -> IJournal:
    """The journal in the bucket of the store's root C{config}, written with C{client}."""
    from pypid.storage.base.records import FOLDER
    from pypid.storage.bucket.bucket_journal import BucketJournal
    from pypid.storage.bucket.bucket_records import BucketRecords

    assert config.bucket is not None
    prefix = config.bucket.prefix
    return BucketJournal(BucketRecords(client, prefix + FOLDER + "journal/"), client, prefix,
                         reactor, **kwargs)


@implementer(IMetricsSource)
class StoragePart(Service):
    """
    The packages' storage, timed for C{/metrics}: prepared as the daemon
    starts (a failure stops start-up), closed as it stops.

    @ivar s3_timings: the bucket's request counts, for its other clients.
    """

    def __init__(self, storage: MeasuredStorage, s3_timings: Timings | None = None) -> None:
        self.storage = storage
        self.s3_timings = s3_timings

    @classmethod
    def from_config(cls, config: Config, run: Run, reactor: IReactorTime,
                    sharing: Sharing = ALONE, *,
                    render: Renderer = render_description) -> StoragePart:
        """The part for the configuration's storage (L{make_storage}), timed monotonically."""
        if sharing.bucket is not None:
            timings: Timings | None = sharing.bucket.timings
        else:
            timings = Timings() if config.bucket is not None else None
        storage = make_storage(config, run, reactor, timings, sharing, render=render)
        return cls(MeasuredStorage(storage, time.monotonic), timings)

    def startService(self) -> Deferred[None]:
        """Prepare the storage; its failure is the start-up's one line."""
        Service.startService(self)
        return ensureDeferred(loading_index(self.storage.prepare()))

    def stopService(self) -> Deferred[Any]:
        """Close the storage (a bucket's markers finished, its connections dropped)."""
        Service.stopService(self)
        closing = maybeDeferred(self.storage.close)
        closing.addErrback(lambda f: log.warn("Cannot close the storage cleanly: {error}",
                                              error=f.getErrorMessage()))
        return closing

    def metric_families(self) -> Iterator[Family]:
        """The storage's operations, and its bucket's requests and presigned URLs."""
        yield from self.storage.operation_families("packages")
        if IMetricsSource.providedBy(self.storage):
            yield from self.storage.metric_families()


async def loading_index(work: Awaitable[_T]) -> _T:
    """
    Await C{work}, a step of loading the index at start-up: a
    L{StorageError} becomes the line operators know,
    C{Cannot load the index: <reason>}.
    """
    try:
        return await work
    except StorageError as e:
        raise StartupError(f"Cannot load the index: {e}")
