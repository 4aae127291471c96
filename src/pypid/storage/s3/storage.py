"""
Storage in an S3 bucket (or an S3-compatible store: MinIO, Ceph, moto).

The bucket is the only state that must be kept safe: each file object
carries its record in its user metadata, and yanks and deletes are marker
objects (see L{pypid.storage.s3.layout}). A server with an empty disk lists the
bucket and serves a complete index; with a snapshot it only reads what the
listing shows changed since.

Writes cannot overwrite: a new file is written with C{If-None-Match: *}, so
of two servers uploading one filename exactly one wins, and the other gets
the same "File already exists" answer as on local disk. A promotion from
another index of the same store (L{S3Storage.adopt}) copies the object on
the store's side, as conditionally (see L{pypid.storage.s3.object_writes}),
and keeps who promoted it under C{.pypid/promoted/}.

Several servers may share a bucket. Each change leaves a marker object whose
key says when, by whom and to which file; every instance lists the markers
newer than its last look (a listing that starts after a key, so a poll costs
one request plus one per change, whatever the size of the repository) and
reads the changed files' state from the bucket. See L{poll}.

Downloads are redirects to presigned URLs (cached, and kept in the snapshot,
until shortly before they expire), relays of the object through the server
(C{download = stream}), or redirects to a public URL.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, gatherResults, succeed
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.core.metrics import Family, timing_families
from pypid.core.model import FileRecord
from pypid.core.parts import IMetricsSource
from pypid.core.promotion import Promotion
from pypid.core.promotion_journal import PromotionJournal
from pypid.core.provenance import MAX_PROVENANCE_SIZE
from pypid.core.readme import Renderer, render_description
from pypid.core.s3_limits import CHECK_RATE
from pypid.http.bodies import Deadline
from pypid.storage import snapshot as snapshots
from pypid.storage.disk import remove_file
from pypid.storage.interface import (
    AlreadyBinned,
    Changed,
    Deliverable,
    FileExists,
    FilenameDeleted,
    IAdoptingStorage,
    IEvictingStorage,
    ISharedStorage,
    IStorage,
    IUsageStorage,
    MemoryFile,
    Redirect,
    RemoteBytes,
    RemoteFile,
    Run,
    ScanResult,
    StorageError,
    StorageState,
    checked_provenance,
)
from pypid.storage.s3.api import (
    BucketCalls,
    PacedClient,
    S3Client,
    S3Error,
    S3Unavailable,
    copy_source,
)
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.imports import Importer
from pypid.storage.s3.layout import (
    Layout,
    binned_body,
    binned_time,
    metadata_headers,
    parse_time,  # noqa: F401  (imported from here by pypid.bundle.pypicloud)
    record_from_headers,
    yank_body,
    yank_reason,
)
from pypid.storage.s3.listing import BucketListing
from pypid.storage.s3.markers import LOOKBACK, MARKER_RETENTION, ChangeFeed, Pacer
from pypid.storage.s3.object_writes import ObjectWriter
from pypid.storage.s3.presign import PresignedURLs

log = Logger()

#: Where the projects' statuses are kept, after the prefix.
_STATUSES = ".pypid/projects/"


#: The snapshot kept in the bucket is read up to this size (compressed).
SNAPSHOT_LIMIT = 256 << 20

#: Core metadata objects are read up to this size.
METADATA_LIMIT = 16 << 20

#: Details objects (a rendered README, highlighted, is a few times the
#: 1 MiB description it came from) are read up to this size.
DETAILS_LIMIT = 32 << 20

#: A listed object modified this close to the snapshot's time is read again
#: rather than trusted (the store's clock and ours may disagree).
CLOCK_MARGIN = 60.0

#: How many objects a rebuild reads at once.
PARALLEL_READS = 16


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip C{data}, refusing more than C{limit} bytes of output."""
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError(f"more than {limit} bytes once decompressed")
    return out


def _provenance_keys(layout: Layout, record: FileRecord) -> tuple[str, ...]:
    """The provenance object a record names, as a key to remove with its file (or none)."""
    digest = record.provenance_sha256
    return () if digest is None else (layout.provenance_key(record.filename, digest),)


def _sweep(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False):
            remove_file(entry.path)


def _catches_up(since: float, now: float) -> bool:
    """
    Whether a view of the bucket taken at C{since} can be brought up to
    date from the change markers alone (they are kept for
    L{MARKER_RETENTION}; half of it leaves a wide margin).
    """
    return 0 <= now - since < MARKER_RETENTION / 2


@implementer(IStorage, IAdoptingStorage, IEvictingStorage, ISharedStorage, IMetricsSource,
             IUsageStorage)
class S3Storage:
    """
    Files in a bucket, under a prefix.

    @ivar _client: the L{pypid.storage.s3.api.S3Client}.
    @ivar _layout: the L{pypid.storage.s3.layout.Layout} of the prefix.
    @ivar _credentials: the L{pypid.storage.s3.credentials.CredentialSource}.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work.
    @ivar _clock: provides C{seconds()} and C{callLater}; wall-clock time in
        production, since marker names and S3's times are compared with it.
    @ivar temp_dir: the local folder where uploads are spooled.
    @ivar _urls: the L{PresignedURLs} that redirected downloads go to
        (and that the local snapshot keeps: see L{state}).
    @ivar _imports: the L{Importer} of objects listed without a record,
        which knows where each file lives (L{Importer.path_of}).
    @ivar _listing: the L{BucketListing} of the whole bucket (L{scan},
        L{reconcile}).
    @ivar _writer: the L{ObjectWriter} of files and their metadata and
        details (an upload's, an import's).
    """

    def __init__(self, client: S3Client, layout: Layout, credentials: CredentialSource,
                 run: Run, clock: IReactorTime, temp_dir: str, *,
                 download: str = "redirect", public_url: str | None = None,
                 expire_after: float = 86400.0, buffer_time: float = 600.0,
                 multipart_threshold: int = 64 << 20, sync_interval: float = 30.0,
                 bucket_snapshot: bool = True, max_import_size: int = 1 << 30,
                 on_close: Callable[[], Any] | None = None,
                 clock_margin: float = CLOCK_MARGIN, replay_window: float | None = None,
                 check_rate: float = CHECK_RATE,
                 render: Renderer = render_description) -> None:
        """
        @param render: renders the description of a file found without
            a record (the daemon's sandbox).
        @param check_rate: the most requests a second the background full
            check (L{reconcile}) makes; 0 for no cap.
        @param clock_margin: how far to distrust the store's times near a
            snapshot's (servers' clocks differ; 0 only where the store runs
            on this machine's clock, as in tests).
        @param replay_window: how far before a snapshot's time start-up
            replays change markers; by default C{sync_interval} plus the
            look-back of a poll.
        """
        self._client = client
        self._layout = layout
        self._credentials = credentials
        self._run = run
        self._clock = clock
        self.temp_dir = temp_dir
        self._download = download
        self._public_url = public_url
        self.sync_interval = sync_interval
        self._bucket_snapshot = bucket_snapshot
        self._on_close = on_close
        self._urls = PresignedURLs(client, credentials, clock, expire_after, buffer_time)
        self._feed = ChangeFeed(client, layout, clock, self._state_of, self._background)
        # journal name -> the files of a promotion under way, announced at its end
        self._journaled: dict[str, frozenset[str]] = {}
        self.instance = self._feed.instance
        self._clock_margin = clock_margin
        self._check_rate = check_rate
        self._replay_window = (sync_interval + LOOKBACK if replay_window is None
                               else replay_window)
        # Background writes (change markers, the bucket's snapshot) not
        # finished yet: a clean stop waits for them.
        self._pending: set[Deferred[Any]] = set()
        self._writer = ObjectWriter(client, layout, run, multipart_threshold)
        self._imports = Importer(client, layout, run, temp_dir, self._writer.keep_beside,
                                 max_import_size, render)
        self._listing = BucketListing(client, layout, self._imports, clock_margin)

    # -- life ------------------------------------------------------------------------

    def identity(self) -> str:
        """The bucket and prefix: a snapshot of another bucket is not used."""
        return f"s3://{self._client.bucket.name}/{self._layout.prefix}"

    def prepare(self) -> Deferred[None]:
        """Find credentials and check that the bucket answers to them."""
        return ensureDeferred(self._prepare())

    async def _prepare(self) -> None:
        await self._run(_sweep, self.temp_dir)
        await self._credentials.start()
        bucket = self._client.bucket
        try:
            await self._client.call("GET", "", params=[("list-type", "2"), ("max-keys", "1"),
                                                       ("prefix", self._layout.prefix)])
        except S3Error as e:
            if e.code == "NoSuchBucket" or e.status == 404:
                raise StorageError(f"the bucket {bucket.name} does not exist at {bucket.endpoint}")
            if e.status in (401, 403):
                raise StorageError(
                    f"S3 refused access to the bucket {bucket.name} ({e.code}): check "
                    "the credentials and that they may list, read and write it")
            raise StorageError(f"cannot use the bucket {bucket.name}: {e}")
        except S3Unavailable as e:
            raise StorageError(f"cannot use the bucket {bucket.name}: {e}")
        await self._check_conditional_writes()

    async def _check_conditional_writes(self) -> None:
        """
        Refuse a store that ignores C{If-None-Match: *} (some S3-compatible
        stores did, until recently): on it, two uploads of one filename
        would silently overwrite each other.
        """
        key = self._layout.prefix + f".pypid/probe/{self.instance}"
        client = self._client
        try:
            await client.put(key, b"1", if_none_match=True)
            second = await client.put(key, b"2", if_none_match=True)
        except StorageError as e:
            raise StorageError(f"cannot write to the bucket {client.bucket.name}: {e}")
        finally:
            try:
                await client.delete(key)
            except StorageError:
                pass
        if second:
            raise StorageError(
                f"the store at {client.bucket.endpoint} ignores conditional writes "
                "(If-None-Match: *); pypid needs them so that no upload overwrites another")

    def close(self) -> Deferred[Any]:
        """
        Finish the change markers under way, then stop refreshing
        credentials and drop the connections.
        """
        def closed(_: object) -> Any:
            self._credentials.stop()
            if self._on_close is not None:
                return self._on_close()
        return self.settle().addBoth(closed)

    def check(self) -> Deferred[StorageState]:
        """Whether the bucket answers now (one short listing); a bucket is never full."""
        async def check() -> StorageState:
            try:
                await self._client.call("GET", "", params=[
                    ("list-type", "2"), ("max-keys", "1"), ("prefix", self._layout.prefix)],
                    retry=False)
            except StorageError:
                return "down"
            return "ok"
        return ensureDeferred(check())

    # -- writes ----------------------------------------------------------------------

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """
        Write the provenance (under its own digest), then the file,
        conditionally, then its metadata and details; see the module.
        """
        return ensureDeferred(self._publish(temp_path, record, metadata, details, provenance))

    async def _publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                       details: bytes | None, provenance: bytes | None = None) -> FileRecord:
        layout, client = self._layout, self._client
        key = layout.file_key(record.path)
        try:
            if await client.head(layout.deleted_key(record.filename)) is not None:
                raise FilenameDeleted(record.filename)
            if provenance is not None and record.provenance_sha256 is not None:
                # (named by its digest: never over another file's, and there
                # before the file whose headers name it)
                await client.put(layout.provenance_key(record.filename,
                                                       record.provenance_sha256),
                                 provenance, {"content-type": "application/json"})
            headers = metadata_headers(record)
            headers["content-type"] = "application/octet-stream"
            written = await self._writer.write_file(key, temp_path, record, headers)
            if not written:
                existing = await client.head(key)
                sha256 = existing.get("x-amz-meta-sha256") if existing is not None else None
                if sha256 != record.sha256:
                    raise FileExists(record.filename, sha256)
            try:
                # Written again for the same bytes too: they may be this
                # upload's own first attempt, whose answer was lost before
                # its metadata was written (the content is the same).
                await self._writer.keep_beside(record, metadata, details)
                # A delete through another server may have come between the
                # first tombstone check and the write: the name stays dead.
                if written and await client.head(layout.deleted_key(record.filename)):
                    await self._writer.forget(key)
                    raise FilenameDeleted(record.filename)
            except StorageError:
                if written:
                    await self._writer.forget(key)
                raise
            if not written:
                # The same bytes are stored: answer with their state as the
                # bucket holds it (a yank made elsewhere is kept).
                current = await self._state_of(record.filename, record.path)
                raise FileExists(record.filename, record.sha256, current.record)
            self._imports.remember(record)
            self._feed.announce(record.filename)
            return record
        finally:
            await self._run(remove_file, temp_path)

    def adopt(self, source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """
        Copy another index's object (of this store) here on the store's
        side, never over an object, with its metadata and details, and keep
        C{promotion}; see L{IAdoptingStorage.adopt}. The other servers learn
        of it by its change marker, as of an upload.
        """
        return ensureDeferred(self._adopt(source, record, promotion))

    async def _adopt(self, source: IStorage, record: FileRecord,
                     promotion: Promotion) -> FileRecord:
        if (not isinstance(source, S3Storage)
                or source._client.bucket.endpoint != self._client.bucket.endpoint):
            raise StorageError("a file can be promoted only from a storage of the same store")
        layout, client = self._layout, self._client
        adopted = record.replace(path=record.filename)
        key = layout.file_key(adopted.path)
        if await client.head(layout.deleted_key(adopted.filename)) is not None:
            raise FilenameDeleted(adopted.filename)
        bucket = source._client.bucket.name
        headers = metadata_headers(adopted)
        headers["content-type"] = "application/octet-stream"
        written = await self._writer.copy_file(
            key, copy_source(bucket, source._layout.file_key(record.path)), adopted, headers)
        if not written:
            existing = await client.head(key)
            sha256 = existing.get("x-amz-meta-sha256") if existing is not None else None
            if sha256 != record.sha256:
                raise FileExists(adopted.filename, sha256)
            # There already, with these bytes: nothing changes.
            current = await self._state_of(adopted.filename, adopted.path)
            return current.record if current.record is not None else adopted
        try:
            await self._writer.copy_beside(record, source._layout, bucket, adopted.filename, [
                client.put(layout.promoted_key(adopted.filename), promotion.to_bytes(),
                           {"content-type": "application/json"}),
                *(self._copy_provenance(source._layout, bucket, record, adopted.filename))])
            # A delete through another server may have come between the
            # tombstone check and the copy: the name stays dead.
            if await client.head(layout.deleted_key(adopted.filename)):
                raise FilenameDeleted(adopted.filename)
        except (StorageError, FilenameDeleted):
            await self._forget_adopted(adopted)
            raise
        self._imports.remember(adopted)
        if not any(adopted.filename in names for names in self._journaled.values()):
            self._feed.announce(adopted.filename)
        # (else its marker waits for the end of its promotion: drop_journal)
        return adopted

    def _copy_provenance(self, source: Layout, bucket: str, record: FileRecord,
                         filename: str) -> list[Coroutine[Any, Any, Any]]:
        """The copy of a promoted file's provenance object, if its record names one."""
        digest = record.provenance_sha256
        if digest is None:
            return []

        async def copy() -> None:
            try:
                await self._client.copy(self._layout.provenance_key(filename, digest),
                                        copy_source(bucket, source.provenance_key(
                                            record.filename, digest)))
            except FileNotFoundError:
                log.warn("The provenance of {filename} is missing from its index: not promoted",
                         filename=record.filename)
        return [copy()]

    def evict(self, records: Sequence[FileRecord]) -> Deferred[None]:
        """
        Remove cached files' objects, keeping no tombstone; see
        L{IEvictingStorage.evict}.
        """
        async def evict_all() -> None:
            for record in records:
                await self._discard_adopted(record)
        return ensureDeferred(evict_all())

    def discard_adopted(self, record: FileRecord) -> Deferred[None]:
        """
        Remove an adopted file's objects, keeping no tombstone; see
        L{IAdoptingStorage.discard_adopted}.
        """
        return ensureDeferred(self._discard_adopted(record))

    async def _discard_adopted(self, record: FileRecord) -> None:
        key = self._layout.file_key(record.filename)
        existing = await self._client.head(key)
        if existing is not None and existing.get("x-amz-meta-sha256") != record.sha256:
            return
        await self._forget_adopted(record.replace(path=record.filename), strict=True)
        self._feed.announce(record.filename)

    async def _forget_adopted(self, record: FileRecord, strict: bool = False) -> None:
        """
        Remove the objects of an adopted file, the file first (a failure is
        only logged, unless C{strict}).
        """
        layout = self._layout
        for key in (layout.file_key(record.path), layout.metadata_key(record.path),
                    layout.details_key(record.filename),
                    layout.promoted_key(record.filename), *_provenance_keys(layout, record)):
            try:
                await self._client.delete(key)
            except StorageError as e:
                if strict:
                    raise
                log.warn("Cannot remove {key} after a failed promotion: {error}",
                         key=key, error=str(e))

    def keep_journal(self, name: str, data: bytes) -> Deferred[None]:
        """
        Keep a promotion's journal object; see L{IAdoptingStorage.keep_journal}.

        Until it is dropped, the files it names leave no change marker as
        they are adopted: the sync (this server's, and the other servers')
        would otherwise take a promotion's files into the index one by one
        while it runs, and keep those of a promotion that failed until it
        read them again. They are announced together as the journal is
        dropped (L{drop_journal}), once the promotion ended either way.
        """
        try:
            names = frozenset(r.filename for r in PromotionJournal.from_bytes(data).records)
        except ValueError:
            names = frozenset()
        self._journaled[name] = names
        d = ensureDeferred(self._client.put(self._journal_key(name), data))

        def failed(failure: Failure) -> Failure:
            self._journaled.pop(name, None)
            return failure
        return d.addCallbacks(lambda _: None, failed)

    def drop_journal(self, name: str) -> Deferred[None]:
        """
        Remove a promotion's journal object (see
        L{IAdoptingStorage.drop_journal}), then leave the change markers of
        the files it named (L{keep_journal}): the other servers, and this
        one's sync, read them again only now.
        """
        async def drop() -> None:
            try:
                await self._client.delete(self._journal_key(name))
            finally:
                # (the promotion ended either way: its files' markers go out,
                # and the next adoption of those names announces itself)
                for filename in sorted(self._journaled.pop(name, ())):
                    self._feed.announce(filename)
        return ensureDeferred(drop())

    def journals(self) -> Deferred[dict[str, bytes]]:
        """The journal objects kept; see L{IAdoptingStorage.journals}."""
        return ensureDeferred(self._read_all(self._journal_key("")))

    def add_usage(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a usage record object; see L{IUsageStorage.add_usage}."""
        async def add() -> None:
            await self._client.put(self._usage_prefix + name, data,
                                   {"content-type": "application/json"})
        return ensureDeferred(add())

    def usage_records(self) -> Deferred[dict[str, bytes]]:
        """The usage record objects, by name; see L{IUsageStorage.usage_records}."""
        return ensureDeferred(self._read_all(self._usage_prefix))

    def drop_usage(self, names: Sequence[str]) -> Deferred[None]:
        """Remove usage record objects; see L{IUsageStorage.drop_usage}."""
        async def drop() -> None:
            for name in names:
                await self._client.delete(self._usage_prefix + name)
        return ensureDeferred(drop())

    @property
    def _usage_prefix(self) -> str:
        return self._layout.prefix + ".pypid/usage/"

    async def _read_all(self, prefix: str) -> dict[str, bytes]:
        """The objects under C{prefix} (few and small), by the rest of their keys."""
        found: dict[str, bytes] = {}
        async for page in self._client.list(prefix):
            for listed in page.keys:
                data = await self._client.get(listed.key)
                if data is not None:
                    found[listed.key[len(prefix):]] = data
        return found

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """
        Keep or remove a project's status object (see L{IStorage.keep_status}).
        Another server learns it at its next start (no change marker).
        """
        key = self._layout.prefix + _STATUSES + project
        if data is None:
            return ensureDeferred(self._client.delete(key)).addCallback(lambda _: None)
        return ensureDeferred(self._client.put(key, data)).addCallback(lambda _: None)

    def statuses(self) -> Deferred[dict[str, bytes]]:
        """The projects' status objects; see L{IStorage.statuses}."""
        return ensureDeferred(self._read_all(self._layout.prefix + _STATUSES))

    def _journal_key(self, name: str) -> str:
        """Where the journal C{name} of a promotion under way is kept."""
        return self._layout.prefix + ".pypid/promotions/" + name

    def keep_provenance(self, record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """
        Keep the provenance of a stored file (a cached upstream file's,
        fetched after it), under its digest; the record naming it is the
        index's and its snapshot's (the file's own headers are written once:
        a scan without the snapshot, or another instance, does not learn
        it, and the upstream cache fetches it again when asked).
        """
        async def keep() -> FileRecord:
            if await self._client.head(self._layout.file_key(record.path)) is None:
                raise FileNotFoundError(record.path)
            digest = hashlib.sha256(provenance).hexdigest()
            await self._client.put(self._layout.provenance_key(record.filename, digest),
                                   provenance, {"content-type": "application/json"})
            return record.replace(provenance_sha256=digest)
        return ensureDeferred(keep())

    def read_provenance(self, record: FileRecord) -> Deferred[bytes | None]:
        """The provenance object the record names, checked against its digest."""
        digest = record.provenance_sha256
        if digest is None:
            return succeed(None)

        async def read() -> bytes | None:
            data = await self._client.get(self._layout.provenance_key(record.filename, digest),
                                          limit=MAX_PROVENANCE_SIZE)
            return checked_provenance(record, data)
        return ensureDeferred(read())

    def update(self, record: FileRecord) -> Deferred[None]:
        """
        Store a file's yank state and whether it is in the recycle bin
        (marker objects); never after a delete.
        """
        return ensureDeferred(self._update(record))

    async def _update(self, record: FileRecord) -> None:
        layout, client = self._layout, self._client
        if await client.head(layout.deleted_key(record.filename)) is not None:
            raise FilenameDeleted(record.filename)
        json_type = {"content-type": "application/json"}
        if record.yanked is not None:
            await client.put(layout.yanked_key(record.filename), yank_body(record.yanked),
                             json_type)
        else:
            await client.delete(layout.yanked_key(record.filename))
        if record.binned is not None:
            # (one server bins a file: two applying retention rules at once,
            # or deleting it, write one marker, and one audit entry)
            written = await client.put(layout.binned_key(record.filename),
                                       binned_body(record.binned), json_type,
                                       if_none_match=True)
            if not written:
                raise AlreadyBinned(record.filename)
        else:
            await client.delete(layout.binned_key(record.filename))
        self._feed.announce(record.filename)

    def delete(self, record: FileRecord) -> Deferred[None]:
        """
        Keep a tombstone first, then remove the file, its metadata and
        markers; L{FilenameDeleted} when another server deleted it already.
        """
        return ensureDeferred(self._delete(record))

    async def _delete(self, record: FileRecord) -> None:
        layout, client = self._layout, self._client
        tombstone = dict(record.to_json(), deleted=True, deleted_at=self._clock.seconds())
        written = await client.put(layout.deleted_key(record.filename),
                                   json.dumps(tombstone, sort_keys=True).encode("utf-8"),
                                   {"content-type": "application/json"}, if_none_match=True)
        if not written:
            # (another server deleted it first: a purge of the recycle bin
            # both ran, say; its tombstone stands, and the delete is its)
            raise FilenameDeleted(record.filename)
        # The tombstone is the delete: from here on the file is not served
        # by any server. The objects go next; one that cannot be removed now
        # is hidden by the tombstone, and removed by the next full check.
        self._feed.announce(record.filename)
        for key in (layout.file_key(record.path), layout.metadata_key(record.path),
                    layout.details_key(record.filename), layout.yanked_key(record.filename),
                    layout.binned_key(record.filename), layout.promoted_key(record.filename),
                    *_provenance_keys(layout, record)):
            try:
                await client.delete(key)
            except StorageError as e:
                log.warn("Deleted {filename}, but cannot remove {key} yet: {error}",
                         filename=record.filename, key=key, error=str(e))

    def add_tombstone(self, filename: str) -> Deferred[None]:
        """
        Keep a tombstone for a name no stored file has (its marker, like a
        delete's, so the other servers learn it); see
        L{IStorage.add_tombstone}.
        """
        return ensureDeferred(self._add_tombstone(filename))

    async def _add_tombstone(self, filename: str) -> None:
        layout, client = self._layout, self._client
        if await client.head(layout.deleted_key(filename)) is not None:
            return
        for path in {filename, self._imports.path_of(filename)}:
            existing = await client.head(layout.file_key(path))
            if existing is not None:
                raise FileExists(filename, existing.get("x-amz-meta-sha256"))
        tombstone = {"filename": filename, "deleted": True, "deleted_at": self._clock.seconds()}
        await client.put(layout.deleted_key(filename),
                         json.dumps(tombstone, sort_keys=True).encode("utf-8"),
                         {"content-type": "application/json"})
        self._feed.announce(filename)

    # -- reads -----------------------------------------------------------------------

    def locate(self, record: FileRecord) -> Redirect | RemoteFile:
        """A redirect (presigned or public URL), or a relay through the server."""
        key = self._layout.file_key(record.path)
        if self._public_url is not None:
            return Redirect(self._public_url + quote(record.path, safe="/~"))
        if self._download == "stream":
            return RemoteFile(record.size, partial(self._fetch, key, record.size))
        return Redirect(self._urls.url(key))

    def locate_metadata(self, record: FileRecord) -> MemoryFile | Redirect | RemoteBytes:
        """
        Like L{locate}, for the metadata sibling; from memory for an object
        read by a scan that did not persist (the bucket has no sibling).
        """
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return MemoryFile(data)
        key = self._layout.metadata_key(record.path)
        if self._public_url is not None:
            return Redirect(self._public_url + quote(record.path + ".metadata", safe="/~"))
        if self._download == "stream":
            return RemoteBytes(partial(self.read_metadata, record))
        return Redirect(self._urls.url(key))

    def read_metadata(self, record: FileRecord) -> Deferred[bytes]:
        """The metadata sibling's bytes (see L{locate_metadata})."""
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return succeed(data)

        async def read() -> bytes:
            data = await self._client.get(self._layout.metadata_key(record.path),
                                          limit=METADATA_LIMIT)
            if data is None:
                raise FileNotFoundError(record.path + ".metadata")
            return data
        return ensureDeferred(read())

    def read_details(self, record: FileRecord) -> Deferred[bytes | None]:
        """The details object's bytes, or L{None} when there is none."""
        return ensureDeferred(self._client.get(self._layout.details_key(record.filename),
                                               limit=DETAILS_LIMIT))

    def describe(self, record: FileRecord) -> Deferred[bytes | None]:
        """Fetch the file, render its details in a worker thread, and keep them."""
        return ensureDeferred(self._imports.describe(record))

    def _fetch(self, key: str, size: int, start: int, length: int) -> Deferred[Deliverable]:
        async def fetch() -> Deliverable:
            headers = {}
            if start or length != size:
                headers["range"] = f"bytes={start}-{start + length - 1}"
            response = await self._client.call("GET", key, headers=headers,
                                               ok=(200, 206, 404), stream=True)
            if response.stream is None:
                raise FileNotFoundError(key)
            return _IdleGuard(response.stream, self._clock, self._client.timeout)
        return ensureDeferred(fetch())

    @property
    def presigned_cached(self) -> int:
        """How many presigned URLs the cache holds."""
        return len(self._urls)

    def metric_families(self) -> Iterator[Family]:
        """
        The requests to the bucket (the client's, shared with the audit
        log's) and the presigned URLs.
        """
        yield from timing_families(("pypid_s3_requests", "pypid_s3_request_errors",
                                    "pypid_s3_request_duration_seconds"), "Requests to S3",
                                   ("method",), [((), self._client.timings)])
        yield from self._urls.metric_families()

    def presigned(self, key: str) -> str:
        """A presigned GET URL for C{key}; see L{PresignedURLs.url}."""
        return self._urls.url(key)

    # -- the snapshot ------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """What the local snapshot keeps for this backend: the presigned URL cache."""
        return self._urls.state()

    def state_changed(self) -> bool:
        """Whether URLs were signed since the last L{state}."""
        return self._urls.changed()

    def restore_state(self, state: Any) -> None:
        """
        Take back the URL cache from a snapshot: only URLs signed with the
        credentials in use now, and not due for renewal.
        """
        self._urls.restore(state)

    def keep_snapshot(self, data: bytes) -> Deferred[None] | None:
        """Keep a copy of the snapshot (without the URL cache) in the bucket."""
        if not self._bucket_snapshot:
            return None

        async def keep() -> None:
            packed = await self._run(gzip.compress, data, 6)
            await self._client.put(self._layout.snapshot_key, packed,
                                   {"content-type": "application/gzip"})
        d = ensureDeferred(keep())
        # A clean stop waits for it (see close), so the last snapshot lands.
        self._pending.add(d)

        def done(result: Any) -> Any:
            self._pending.discard(d)
            return result
        d.addBoth(done)
        return d

    def load_snapshot(self) -> Deferred[bytes | None]:
        """The snapshot kept in the bucket, or L{None}."""
        async def load() -> bytes | None:
            if not self._bucket_snapshot:
                return None
            packed = await self._client.get(self._layout.snapshot_key, limit=SNAPSHOT_LIMIT,
                                            expect=SNAPSHOT_LIMIT // 16)
            if packed is None:
                return None
            try:
                return await self._run(_gunzip, packed, SNAPSHOT_LIMIT * 16)
            except (OSError, EOFError, ValueError, zlib.error) as e:
                log.warn("Ignoring the snapshot in the bucket: {error}", error=str(e))
                return None
        return ensureDeferred(load())

    # -- the full listing ----------------------------------------------------------------

    def scan(self, known: dict[str, FileRecord] | None = None, since: float = 0.0,
             tombstones: Iterable[str] = (), persist: bool = True) -> Deferred[ScanResult]:
        """
        What the bucket holds; see L{IStorage.scan}.

        From a snapshot younger than half the markers' retention, the
        answer is the snapshot plus the changes its markers name (a few
        requests, whatever the size of the bucket); the full listing that
        catches what changed behind pypid's back (objects copied in by
        hand) then runs in the background: the first L{poll} asks for it
        (see L{reconcile}). Otherwise the bucket is listed now.

        Without C{persist}, the bucket is always listed now, trusting the
        snapshot's records for objects unchanged since: a reader has no
        later poll to reconcile for it, and a poll removes old markers.
        Objects without a record are read (in memory, not through the
        spool folder), but nothing is written back (no metadata sibling, no
        details, no copy in place): their metadata is kept in memory.
        """
        return ensureDeferred(self._start(known or {}, since, frozenset(tombstones), persist))

    async def _start(self, known: dict[str, FileRecord], since: float,
                     tombstones: Iterable[str], persist: bool = True) -> ScanResult:
        if not persist:
            return await self._scan(known, since, persist=False)
        now = self._clock.seconds()
        if known and since and not _catches_up(since, now):
            newer = await self._newer_bucket_snapshot(since, now)
            if newer is not None:
                known, since, tombstones = newer.records, newer.saved_at, newer.tombstones
        if not (known and since and _catches_up(since, now)):
            return await self._scan(known, since)
        # The snapshot holds other servers' changes up to its writer's last
        # poll, up to a sync interval before it was taken; and markers appear
        # late by up to LOOKBACK.
        self._feed.start_from_snapshot(since, self._replay_window)
        records, deleted = dict(known), set(tombstones)
        for record in records.values():
            self._imports.remember(record)
        for change in await self._feed.poll(starting=True):
            if change.deleted:
                records.pop(change.filename, None)
                deleted.add(change.filename)
            elif change.record is None:
                records.pop(change.filename, None)
            else:
                records[change.filename] = change.record
        # (promotions: L{None}, as the snapshot has them)
        return ScanResult(records=records, tombstones=frozenset(deleted), promotions=None)

    async def _newer_bucket_snapshot(self, since: float,
                                     now: float) -> snapshots.Snapshot | None:
        """
        The snapshot kept in the bucket, when the local one (taken at
        C{since}) is too old to catch up from change markers and another
        instance kept a newer one that is not: starting from it costs a
        C{HEAD} and a C{GET}, where the listing of a million files is
        2,000 requests before the server can answer. L{None} otherwise.
        """
        if not self._bucket_snapshot:
            return None
        try:
            headers = await self._client.head(self._layout.snapshot_key)
            if headers is None:
                return None
            try:
                written = parsedate_to_datetime(headers.get("last-modified", "")).timestamp()
            except (TypeError, ValueError):
                return None
            # By the store's clock, which the margin allows for: a snapshot
            # written just after the local one's time is that one's copy.
            margin = self._clock_margin
            if written <= since + margin or now - written >= MARKER_RETENTION / 2 + margin:
                return None
            data = await self.load_snapshot()
            snap = await self._run(snapshots.decode, data) if data is not None else None
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the bucket: {error}", error=str(e))
            return None
        if (snap is None or snap.storage not in (None, self.identity())
                or snap.saved_at <= since or not _catches_up(snap.saved_at, now)):
            return None
        log.info("The local snapshot is too old to catch up from the change markers: "
                 "starting from the newer one kept in the bucket")
        return snap

    def reconcile(self, known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """
        List the whole bucket and say what it holds, trusting C{known} for
        objects unchanged since the view was last known to be complete.
        Where the listing disagrees with C{known} about a file (missing, or
        another yank state), the file's state is read again, so a listing
        that a concurrent change overtook never wins over it.
        """
        return ensureDeferred(self._reconcile(dict(known)))

    async def _reconcile(self, known: dict[str, FileRecord]) -> ScanResult:
        # Paced: the check runs while the server answers, and must cost
        # neither a burst on the cloud bill nor the uploads' turn.
        client = PacedClient(self._client, Pacer(self._clock, self._check_rate))
        result = await self._scan(known, self._feed.reconcile_since(), client=client)
        records = dict(result.records)
        for filename, record in known.items():
            listed = records.get(filename)
            if filename in result.tombstones or listed == record:
                continue
            if listed is not None and listed.yanked == record.yanked:
                continue
            state = await self._state_of(filename, record.path, client)
            if state.record is not None:
                records[filename] = state.record
            else:
                records.pop(filename, None)
        self._feed.reconciled()
        return attrs.evolve(result, records=records)

    async def _scan(self, known: dict[str, FileRecord], since: float, persist: bool = True,
                    client: BucketCalls | None = None) -> ScanResult:
        """
        List the bucket (see L{BucketListing.scan}); polls go on from when
        the listing began.
        """
        started = self._clock.seconds()
        result = await self._listing.scan(known, since, persist, client)
        self._feed.listed(started)
        return result

    # -- changes by other instances -----------------------------------------------------

    def settle(self) -> Deferred[Any]:
        """A L{Deferred} that fires once the background writes under way are done."""
        return DeferredList(list(self._pending))

    def poll(self) -> Deferred[list[Changed]]:
        """
        Look for changes made by other instances since the last poll.

        @return: a L{Deferred} firing with a list of L{Changed}. When the
            instance was out of touch for so long that markers may have been
            removed, L{reconcile_due} says so.
        """
        return ensureDeferred(self._feed.poll())

    def reconcile_due(self) -> bool:
        """Whether the index must be checked against a full listing (see L{reconcile})."""
        return self._feed.reconcile_due()

    def synced_at(self) -> float | None:
        """When the index last took in every change in the bucket (L{None}: never)."""
        return self._feed.synced_at()

    def _background(self, coroutine: Coroutine[Any, Any, Any]) -> Deferred[Any]:
        d = ensureDeferred(coroutine)
        self._pending.add(d)
        d.addBoth(lambda _: self._pending.discard(d))
        return d

    async def _state_of(self, filename: str, path: str | None = None,
                        client: BucketCalls | None = None) -> Changed:
        """A file's state as the bucket holds it now (read with C{client}, or this storage's)."""
        layout, client = self._layout, client or self._client
        if await client.head(layout.deleted_key(filename)) is not None:
            return Changed(filename, None, True)
        path = path or self._imports.path_of(filename)
        headers = await client.head(layout.file_key(path))
        if headers is None:
            return Changed(filename, None, False)
        record = record_from_headers(path, int(headers.get("content-length", "0")), headers)
        if record is None:
            return Changed(filename, None, False)
        # (the two markers at once: a change costs the time of one read)
        yanked, binned = await gatherResults([
            ensureDeferred(client.get(layout.yanked_key(filename))),
            ensureDeferred(client.get(layout.binned_key(filename)))])
        if yanked is not None:
            record = record.replace(yanked=yank_reason(yanked))
        if binned is not None:
            record = record.replace(binned=binned_time(binned, self._clock.seconds()))
        return Changed(filename, record, False)


class _IdleGuard:
    """
    A relayed answer whose body is cut short when the store sends nothing
    for C{timeout} seconds (while the client is reading: a pause for a
    slow client does not count), so a stalled store cannot hold a download
    open for ever. The relay then closes the client's connection.
    """

    def __init__(self, response: Deliverable, clock: IReactorTime, timeout: float) -> None:
        self._response = response
        self._clock = clock
        self._timeout = timeout

    def deliverBody(self, protocol: IProtocol) -> None:
        """Deliver the body to C{protocol}, watched."""
        self._response.deliverBody(_IdleProtocol(protocol, self._clock, self._timeout))


class _IdleProtocol:
    """Passes a body on, and stops it after a silence (see L{_IdleGuard})."""

    def __init__(self, inner: IProtocol, clock: IReactorTime, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._deadline = Deadline(clock, timeout, self._expired)
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        # (this is the inner protocol's transport: a producer it can pause)
        self._inner.makeConnection(self)  # type: ignore[arg-type]
        self._deadline.arm()

    def dataReceived(self, data: bytes) -> None:
        self._deadline.arm()
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        self._deadline.disarm()
        self._inner.connectionLost(reason)

    # The transport the inner protocol sees: pauses stop the watch.

    def pauseProducing(self) -> None:
        self._deadline.disarm()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._deadline.arm()
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._deadline.disarm()
        self.transport.stopProducing()

    def _expired(self) -> None:
        log.warn("S3 sent nothing for {seconds} s: cutting the download short",
                 seconds=self._timeout)
        self.transport.stopProducing()

