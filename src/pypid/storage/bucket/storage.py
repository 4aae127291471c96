"""
Storage in a bucket of an object store (S3 or a compatible store, Azure
Blob Storage, Google Cloud Storage), reached through its
L{pypid.storage.bucket.store.ObjectStore}.

The bucket is the only state to keep safe: each file object carries its
record in its user metadata, and yanks and deletes are marker objects
(L{pypid.storage.bucket.layout}); a server with an empty disk lists it
and serves a complete index. A new file is a conditional create, so of
two servers uploading one filename exactly one wins; a promotion copies
on the store's side, as conditionally.

Several servers may share a bucket: each change is told in the store's
journal, and each server reads the entries after its serial, then the
changed files' states (L{pypid.storage.bucket.shared_view}). Each writes
its own usage records. Downloads are redirects or relays
(L{pypid.storage.bucket.object_reads}).

L{BucketStorage} passes each call to the collaborator it built for that
seam, keeping the small objects by name (documents, usage) itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.config.bucket_settings import BucketConfig
from pypid.core.dists.model import FileRecord
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.promotion import Promotion
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family, timing_families
from pypid.core.util.s3_limits import CHECK_RATE
from pypid.jobs.run import Run
from pypid.storage.base.capabilities import (
    IAdoptingStorage,
    IEvictingStorage,
    IServerDocuments,
    ISharedStorage,
    IUsageStorage,
    Polled,
)
from pypid.storage.base.disk import sweep_files
from pypid.storage.base.interface import (
    IStorage,
    MemoryFile,
    Redirect,
    RemoteBytes,
    RemoteFile,
    ScanResult,
    StorageError,
    StorageState,
)
from pypid.storage.base.journal_records import RecordJournal
from pypid.storage.base.records import FOLDER
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.bucket.bucket_records import BucketRecords
from pypid.storage.bucket.bucket_snapshot import BucketSnapshot
from pypid.storage.bucket.file_states import BucketListing, FileStates
from pypid.storage.bucket.file_writes import FileWrites
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.markers import LOOKBACK, BucketChanges
from pypid.storage.bucket.object_adoption import JournalObjects, ObjectAdoption
from pypid.storage.bucket.object_reads import ObjectReads, PresignedURLs
from pypid.storage.bucket.object_writes import CopySources, ObjectWriter
from pypid.storage.bucket.pending_writes import PendingWrites
from pypid.storage.bucket.shared_view import SharedView
from pypid.storage.bucket.status_objects import StatusObjects, read_status
from pypid.storage.bucket.store import ObjectStore, read_all

#: A listed object modified this close to the snapshot's time is read again
#: rather than trusted (the store's clock and ours may disagree).
CLOCK_MARGIN = 60.0


@attrs.frozen
class BucketSettings:
    """
    How a bucket storage works its bucket (its store section's keys).

    @ivar clock_margin: how far to distrust the store's times near a
        snapshot's (0 only on this machine's clock, as in tests).
    @ivar replay_window: how far before a snapshot's time start-up lists
        intent markers (default: C{sync_interval} plus a poll's look-back).
    """

    download: str = "redirect"
    public_url: str | None = None
    expire_after: float = 900.0
    buffer_time: float = 300.0
    sync_interval: float = 30.0
    bucket_snapshot: bool = True
    max_import_size: int = 1 << 30
    clock_margin: float = CLOCK_MARGIN
    replay_window: float | None = None
    check_rate: float = CHECK_RATE

    @classmethod
    def from_config(cls, section: BucketConfig, max_import_size: int) -> BucketSettings:
        """The settings the store's section gives."""
        return cls(download=section.download, public_url=section.public_url,
                   expire_after=section.expire_after, buffer_time=section.buffer_time,
                   sync_interval=section.sync_interval,
                   bucket_snapshot=section.bucket_snapshot, max_import_size=max_import_size,
                   check_rate=section.check_rate)


@implementer(IStorage, IAdoptingStorage, IEvictingStorage, ISharedStorage, IMetricsSource,
             IUsageStorage, IServerDocuments)
class BucketStorage:
    """
    Files in a bucket, under a prefix; each seam of its interfaces is the
    collaborator its section below names.

    @ivar temp_dir: the local folder where uploads are spooled.
    """

    #: (its listing is read before the server answers: ISharedStorage.checked_after_start)
    checked_after_start = False

    def __init__(self, client: ObjectStore, layout: Layout, run: Run, clock: IReactorTime,
                 temp_dir: str, settings: BucketSettings = BucketSettings(), *,
                 on_close: Callable[[], Any] | None = None,
                 render: Renderer = render_description,
                 changes: StoreChanges | None = None) -> None:
        """
        @param render: renders descriptions (the daemon's sandbox).
        @param on_close: called once the storage closed (its own client's).
        @param changes: where its changes are told and read (L{None}: a
            journal of its own, under its prefix, closed with it).
        """
        sync_interval, clock_margin = settings.sync_interval, settings.clock_margin
        self._client = client
        self._layout = layout
        self._run = run
        self.temp_dir = temp_dir
        self.sync_interval = sync_interval
        self._on_close = on_close
        self._urls = PresignedURLs(client, clock, settings.expire_after, settings.buffer_time)
        self._pending = PendingWrites()
        self._writer = ObjectWriter(client, layout)
        self._imports = Importer(client, layout, run, temp_dir, self._writer.keep_beside,
                                 settings.max_import_size, render)
        states = FileStates(client, layout, self._imports, clock)
        if changes is None:
            changes = StoreChanges(
                RecordJournal(BucketRecords(client, layout.prefix + FOLDER + "journal/"), clock),
                "", clock, owned=True)
        self._changes = BucketChanges(client, layout, clock, states.read,
                                partial(read_status, client, layout), self._pending.run,
                                changes)
        self._journals = journals = JournalObjects(client, layout, self._changes)
        self._statuses = StatusObjects(client, layout, self._changes)
        self._files = FileWrites(client, layout, self._writer, self._imports, self._changes,
                                 states, run, clock)
        self._reads = ObjectReads(client, layout, self._urls, self._imports, clock,
                                  settings.download, settings.public_url)
        self._adoption = ObjectAdoption(client, layout, self._writer, self._imports,
                                        self._changes, states, journals)
        self._snapshot = BucketSnapshot(client, layout, run, self._pending,
                                        settings.bucket_snapshot, clock_margin)
        self._view = SharedView(
            client, clock, self._changes,
            BucketListing(client, layout, self._imports, clock_margin),
            self._imports, states, self._statuses, self._snapshot, self.identity(),
            sync_interval + LOOKBACK if settings.replay_window is None else settings.replay_window,
            settings.check_rate)

    # -- life ------------------------------------------------------------------------

    def identity(self) -> str:
        """The bucket and prefix: a snapshot of another bucket is not used."""
        return self._client.identity() + self._layout.prefix

    def copy_source(self, record: FileRecord) -> CopySources:
        """Where a promotion from this index copies C{record}'s objects from."""
        return CopySources.of(self._client, self._layout, record)

    def prepare(self) -> Deferred[None]:
        """Find credentials; check the bucket answers and refuses to overwrite."""
        async def prepare() -> None:
            await self._run(sweep_files, self.temp_dir)
            await self._client.start()
            await self._client.answers(self._layout.prefix)
            await self._refuse_overwrites()
        return ensureDeferred(prepare())

    async def _refuse_overwrites(self) -> None:
        """
        Refuse a store that ignores a conditional create (some S3-compatible
        stores did: two uploads of one name would overwrite each other). The
        probe is named after this server's instance, so two starting at once
        do not disturb each other.
        """
        key = self._layout.probe_key(self._changes.instance)
        client = self._client
        try:
            await client.put(key, b"1", if_none_match=True)
            second = await client.put(key, b"2", if_none_match=True)
        except StorageError as e:
            raise StorageError(f"cannot write to {client.identity()}: {e}")
        finally:
            try:
                await client.delete(key)
            except StorageError:
                pass
        if second:
            raise StorageError(
                f"{client.label} at {client.identity()} ignores conditional writes "
                "(If-None-Match: *); pypid needs them so that no upload overwrites another")

    def close(self) -> Deferred[Any]:
        """Finish and tell the changes under way, then stop the credentials and connections."""
        def told(_: object) -> Any:
            return self._changes.store_changes.close()

        def closed(_: object) -> Any:
            self._client.stop()
            if self._on_close is not None:
                return self._on_close()
        return self.settle().addBoth(told).addBoth(closed)

    def check(self) -> Deferred[StorageState]:
        """Whether the bucket answers now (one short listing, not retried); never full."""
        async def check() -> StorageState:
            try:
                await self._client.answers(self._layout.prefix, retry=False)
            except StorageError:
                return "down"
            return "ok"
        return ensureDeferred(check())

    # -- writes (L{FileWrites}) --------------------------------------------------------

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """Write the file, conditionally, and what is kept beside it; see the module."""
        return ensureDeferred(self._files.publish(temp_path, record, metadata, details,
                                                  provenance))

    def keep_provenance(self, record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """Keep a stored file's provenance; see L{FileWrites.keep_provenance}."""
        return ensureDeferred(self._files.keep_provenance(record, provenance))

    def update(self, record: FileRecord) -> Deferred[None]:
        """Write a file's markers; see L{FileWrites.update}."""
        return ensureDeferred(self._files.update(record))

    def delete(self, record: FileRecord) -> Deferred[None]:
        """Keep a tombstone, then remove the file; see L{FileWrites.delete}."""
        return ensureDeferred(self._files.delete(record))

    def add_tombstone(self, filename: str) -> Deferred[None]:
        """Keep a tombstone for a name no file has; see L{FileWrites.add_tombstone}."""
        return ensureDeferred(self._files.add_tombstone(filename))

    # -- promotions and eviction (L{ObjectAdoption}, L{JournalObjects}) --------------------

    def adopt(self, source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """Copy another index's object here on the store's side; see L{IAdoptingStorage.adopt}."""
        if not isinstance(source, BucketStorage):
            return fail(StorageError(
                "a file can be promoted only from a storage of the same store"))
        return ensureDeferred(self._adoption.adopt(source.copy_source(record), record,
                                                   promotion))

    def evict(self, records: Sequence[FileRecord]) -> Deferred[None]:
        """Remove cached files' objects, keeping no tombstone; see L{IEvictingStorage.evict}."""
        return ensureDeferred(self._adoption.evict(records))

    def discard_adopted(self, record: FileRecord) -> Deferred[None]:
        """Remove an adopted file's objects; see L{IAdoptingStorage.discard_adopted}."""
        return ensureDeferred(self._adoption.discard(record))

    def keep_journal(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a promotion's journal object; see L{JournalObjects.keep}."""
        return ensureDeferred(self._journals.keep(name, data))

    def drop_journal(self, name: str) -> Deferred[None]:
        """Remove a promotion's journal object; see L{JournalObjects.drop}."""
        return ensureDeferred(self._journals.drop(name))

    def journals(self) -> Deferred[dict[str, bytes]]:
        """The journal objects kept; see L{IAdoptingStorage.journals}."""
        return ensureDeferred(self._journals.all())

    # -- statuses (L{StatusObjects}), documents and usage records -----------------------

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """Keep or remove a project's status object; see L{StatusObjects.keep}."""
        return ensureDeferred(self._statuses.keep(project, data))

    def statuses(self) -> Deferred[dict[str, bytes]]:
        """The projects' status objects; see L{IStorage.statuses}."""
        return ensureDeferred(self._statuses.all())

    def keep_document(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a server document's object; see L{IServerDocuments.keep_document}."""
        kept = ensureDeferred(self._client.put(self._layout.document_key(name), data))
        return kept.addCallback(lambda _: None)

    def document(self, name: str) -> Deferred[bytes | None]:
        """A server document's object; see L{IServerDocuments.document}."""
        return ensureDeferred(self._client.get(self._layout.document_key(name)))

    def add_usage(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a usage record object; see L{IUsageStorage.add_usage}."""
        kept = ensureDeferred(self._client.put(self._layout.usage_prefix + name, data,
                                               "application/json"))
        return kept.addCallback(lambda _: None)

    def usage_records(self) -> Deferred[dict[str, bytes]]:
        """The usage record objects, by name; see L{IUsageStorage.usage_records}."""
        return ensureDeferred(read_all(self._client, self._layout.usage_prefix))

    def usage_record(self, name: str) -> Deferred[bytes | None]:
        """One usage record object; see L{IUsageStorage.usage_record}."""
        return ensureDeferred(self._client.get(self._layout.usage_prefix + name))

    def drop_usage(self, names: Sequence[str]) -> Deferred[None]:
        """Remove usage record objects, one after another; see L{IUsageStorage.drop_usage}."""
        return ensureDeferred(self._drop_usage([self._layout.usage_prefix + name
                                                for name in names]))

    async def _drop_usage(self, keys: list[str]) -> None:
        for key in keys:
            await self._client.delete(key)

    # -- reads (L{ObjectReads}) --------------------------------------------------------

    def locate(self, record: FileRecord) -> Redirect | RemoteFile:
        """A redirect (presigned or public URL), or a relay through the server."""
        return self._reads.locate(record)

    def locate_metadata(self, record: FileRecord) -> MemoryFile | Redirect | RemoteBytes:
        """Like L{locate}, for the metadata sibling; see L{ObjectReads.locate_metadata}."""
        return self._reads.locate_metadata(record)

    def read_metadata(self, record: FileRecord) -> Deferred[bytes]:
        """The metadata sibling's bytes (see L{locate_metadata})."""
        return self._reads.read_metadata(record)

    def read_details(self, record: FileRecord) -> Deferred[bytes | None]:
        """The details object's bytes, or L{None} when there is none."""
        return self._reads.read_details(record)

    def read_provenance(self, record: FileRecord) -> Deferred[bytes | None]:
        """The provenance object the record names, checked against its digest."""
        return self._reads.read_provenance(record)

    def describe(self, record: FileRecord) -> Deferred[bytes | None]:
        """Fetch the file, render its details in a worker thread, and keep them."""
        return ensureDeferred(self._imports.describe(record))

    def metric_families(self) -> Iterator[Family]:
        """The requests to the bucket (the client's, shared with the journal's) and the URLs."""
        kind = self._client.kind
        yield from timing_families((f"pypid_{kind}_requests", f"pypid_{kind}_request_errors",
                                    f"pypid_{kind}_request_duration_seconds"),
                                   f"Requests to {self._client.label}",
                                   ("method",), [((), self._client.timings)])
        yield from self._urls.metric_families()

    # -- the snapshot (L{PresignedURLs}, L{BucketSnapshot}) ------------------------------

    def state(self) -> dict[str, Any] | None:
        """What the local snapshot keeps for this backend: the presigned URL cache."""
        return self._urls.state()

    def state_changed(self) -> bool:
        """Whether URLs were signed since the last L{state}."""
        return self._urls.changed()

    def restore_state(self, state: Any) -> None:
        """Take back the URL cache from a snapshot (see L{PresignedURLs.restore})."""
        self._urls.restore(state)

    @property
    def keeps_snapshot(self) -> bool:
        """Whether a copy is kept in the bucket (C{bucket_snapshot})."""
        return self._snapshot.enabled

    def keep_snapshot(self, data: bytes) -> Deferred[None] | None:
        """Keep a copy of the snapshot (without the URL cache) in the bucket."""
        return self._snapshot.keep(data)

    def load_snapshot(self) -> Deferred[bytes | None]:
        """The snapshot kept in the bucket, or L{None}."""
        return ensureDeferred(self._snapshot.load())

    # -- the shared view (L{SharedView}) -------------------------------------------------

    def scan(self, known: dict[str, FileRecord] | None = None, since: float = 0.0,
             tombstones: Iterable[str] = (), persist: bool = True) -> Deferred[ScanResult]:
        """
        What the bucket holds; see L{IStorage.scan}, and L{SharedView} for a
        start from a snapshot that says where it read the journal up to.
        Otherwise, and always without C{persist} (no later poll reconciles
        for a reader), the bucket is listed now, objects without a record
        read in memory.
        """
        return ensureDeferred(self._view.start(known or {}, since, frozenset(tombstones),
                                               persist))

    def reconcile(self, known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """List the whole bucket and say what it holds; see L{SharedView.reconcile}."""
        return ensureDeferred(self._view.reconcile(dict(known)))

    def settle(self) -> Deferred[Any]:
        """A L{Deferred} that fires once the background writes under way are done."""
        return self._pending.settle()

    def poll(self) -> Deferred[Polled]:
        """The other instances' changes since the last poll; see L{BucketChanges.poll}."""
        return ensureDeferred(self._changes.poll())

    def reconcile_due(self) -> bool:
        """Whether the index must be checked against a full listing (see L{reconcile})."""
        return self._changes.reconcile_due()

    def synced_at(self) -> float | None:
        """When the index last took in every change in the bucket (L{None}: never)."""
        return self._changes.synced_at()

    def changes_read(self) -> int | None:
        """The journal's serial up to which the index took in the bucket's changes."""
        return self._changes.store_changes.cursor

    def resume(self, serial: int) -> None:
        """The index's snapshot took in the changes up to C{serial}: the start reads on."""
        self._changes.store_changes.resume(serial)
