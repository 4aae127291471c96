"""
The upstream files: a file is fetched on its first download, checked
against the page's sha256 (and size), kept in the cache's storage, and
served from there ever after; its core metadata is read from the kept file,
or fetched and checked, and kept in memory.

A file's provenance (PEP 740), when its page gives a C{provenance} URL, is
fetched after the file is kept (in the background: the download's answer
never waits for it), or when a client asks pypid's Integrity API for it
first (never for a page): at most L{MAX_PROVENANCE_SIZE} bytes, checked to
be a provenance object whose every statement names this file and the
sha256 its page gives (L{pypid.core.provenance.read_provenance}). One that
is not is logged and remembered as failed for a while, never served. A
good one is kept in memory, and with the kept file in the cache's storage
(L{IStorage.keep_provenance}), where it outlives the upstream.

One download per file however many ask at once; downloads take turns
within C{[upstream] max_downloads} and C{download_space}
(L{pypid.upstream.admission}), and past ten waiting per turn a new one is
refused (503). A download whose bytes were wrong is not tried again at
once. Only files listed by a cached page are ever fetched, from the
upstream's hosts only (L{pypid.upstream.fetch}).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.bounded import put_newest
from pypid.core.distribution import file_digests, inspect
from pypid.core.lru import ByteLRU
from pypid.core.metadata import InvalidDistribution
from pypid.core.metrics import Timings
from pypid.core.model import FileRecord
from pypid.core.names import InvalidName
from pypid.core.provenance import MAX_PROVENANCE_SIZE, ProvenanceInvalid, read_provenance
from pypid.core.readme import Renderer, render_description
from pypid.http import bodies
from pypid.storage.disk import remove_file
from pypid.storage.interface import (
    FileExists,
    FilenameDeleted,
    IEvictingStorage,
    IStorage,
    Location,
    Run,
    StorageError,
)
from pypid.upstream.admission import Admission
from pypid.upstream.cache import Offline, Remembered, again, recent, remembered
from pypid.upstream.fetch import TransferFailed, UpstreamClient, UpstreamError
from pypid.upstream.kept import KeptFiles
from pypid.upstream.parser import UpstreamFile
from pypid.upstream.transfer import DownloadTee, ToFile, VerifyError, open_temp

log = Logger()

#: Upstream core metadata kept in memory (bytes, all files together).
METADATA_MEMORY = 32 << 20

#: The most bytes of upstream core metadata read for one file.
METADATA_LIMIT = 16 << 20

#: The most upstream files whose failed download is remembered
#: (L{pypid.upstream.cache.FAILURE_MEMORY}); past it the oldest are forgotten.
MAX_FAILED_FILES = 2000

#: Upstream provenance objects kept in memory (bytes, all files together).
PROVENANCE_MEMORY = 16 << 20

#: Downloads that may wait for a turn, per download allowed at once
#: (C{[upstream] max_downloads}); past it a new one is answered 503.
WAITING_PER_DOWNLOAD = 10


#: Seconds an evicted file's removal waits for others to join its batch:
#: one call of the I/O pool for many (measured with
#: L{tests.bench_upstream_cap}: a call a file made each fetch past the cap
#: some 0.4 ms slower, 6%).
EVICTION_DELAY = 1.0


class DownloadsBusy(Exception):
    """Too many upstream downloads wait already: try again shortly (503)."""


def _held(filename: str, data: bytes) -> int:
    """What one kept metadata file (and its digest) costs against L{METADATA_MEMORY}."""
    return len(data) + len(filename) + 300


def _metadata_url(url: str) -> str:
    """PEP 658: the metadata is at the file's URL plus C{.metadata} (before any query)."""
    path, sep, query = url.partition("?")
    return path + ".metadata" + sep + query


class PageListing(Protocol):
    """
    What the files side reads of the cached pages: what a page lists (a
    file is fetched only if a page listed it), and whom to tell of a file
    kept. L{pypid.upstream.source.UpstreamSource}'s views, one per index
    that reads the upstream.
    """

    def listed(self, project: str, filename: str) -> UpstreamFile | None:
        """The file C{filename} if a cached page of C{project} shows it."""

    def would_fetch(self, project: str) -> bool:
        """Whether showing C{project}'s page now would ask the upstream."""

    def file_kept(self, record: FileRecord) -> None:
        """A file was kept: its page shows it from now on."""

    def file_evicted(self, record: FileRecord) -> None:
        """A file was evicted (L{UpstreamConfig.max_cache_size}): its page shows the upstream's."""


@attrs.define
class UpstreamFiles:
    """
    The files of the upstream cache: fetched, checked, kept and served.

    @ivar _config: the limits of C{[upstream]}.
    @ivar _view: the cached pages as clients see them (what a page lists;
        told of every file kept).
    @ivar _client: the upstream.
    @ivar _storage: where fetched files are kept (an L{IStorage} of its own).
    @ivar _run: runs file work in the I/O thread pool.
    @ivar _clock: the time, for deadlines and the failures remembered.
    @ivar _kept: the records of the files kept, which this side adds to.
    @ivar _on_change: called (without arguments) when a file was kept, so
        that the snapshot is saved soon; or L{None}.
    """

    _config: UpstreamConfig
    _view: PageListing
    _client: UpstreamClient
    _storage: IStorage
    _run: Run
    _clock: IReactorTime
    _kept: KeptFiles
    _on_change: Callable[[], None] | None = None
    _render: Renderer = render_description
    # filename -> the callers waiting for its download
    _downloads: dict[str, list[Deferred[FileRecord]]] = attrs.field(init=False, factory=dict)
    # filename -> (metadata, its sha256), the oldest fetched first
    _metadata: ByteLRU[str, tuple[bytes, str]] = attrs.field(
        init=False, factory=lambda: ByteLRU(METADATA_MEMORY))
    # filename -> (when, error) of downloads that failed, but not on the way
    # (FAILURE_MEMORY)
    _failed: dict[str, tuple[float, Remembered]] = attrs.field(init=False, factory=dict)
    # filename -> the provenance fetched (checked), the oldest first
    _provenance: ByteLRU[str, bytes] = attrs.field(
        init=False, factory=lambda: ByteLRU(PROVENANCE_MEMORY))
    # filename -> the callers of the fetch of its provenance under way
    _provenance_fetches: dict[str, list[Deferred[bytes | None]]] = attrs.field(
        init=False, factory=dict)
    # filename -> when its provenance could not be had or was refused
    _provenance_failed: dict[str, float] = attrs.field(init=False, factory=dict)
    _admission: Admission = attrs.field(init=False)
    #: how files were served, for C{/metrics}: C{hit} (kept already),
    #: C{miss} (fetched from the upstream), C{unavailable} (offline)
    served: dict[str, int] = attrs.field(
        init=False, factory=lambda: {"hit": 0, "miss": 0, "unavailable": 0})
    #: the upstream fetches of files: count, failures, latency
    timings: Timings = attrs.field(init=False, factory=Timings)
    #: files evicted to keep the cache under its cap, since the start
    evicted: int = attrs.field(init=False, default=0)
    # filename -> the eviction of a file, waiting or under way (a fetch of
    # it waits for it)
    _evictions: dict[str, Deferred[None]] = attrs.field(init=False, factory=dict)
    # the files whose removal waits for the next batch (EVICTION_DELAY), and
    # that batch's end
    _batch: list[FileRecord] = attrs.field(init=False, factory=list)
    _batch_done: Deferred[None] | None = attrs.field(init=False, default=None)

    @_admission.default
    def _make_admission(self) -> Admission:
        return Admission(self._config.max_downloads, self._config.download_space)

    @property
    def storage(self) -> IStorage:
        """Where the files are kept (the pages for people read their details there)."""
        return self._storage

    def kept(self, filename: str) -> FileRecord | None:
        """The L{FileRecord} of an upstream file kept in the cache, or L{None}."""
        return self._kept.get(filename)

    def locate(self, record: FileRecord) -> Location:
        """Where a kept file is served from (see L{IStorage.locate})."""
        return self._storage.locate(record)

    def would_fetch(self, project: str, filename: str, metadata: bool = False) -> bool:
        """
        Whether answering for C{project}'s file C{filename} (or its
        C{metadata}) now would ask the upstream.
        """
        return (not self._config.offline and filename not in self._kept
                and not (metadata and filename in self._metadata)
                and filename not in self._downloads
                and self._failed_lately(filename) is None
                and (self._view.listed(project, filename) is not None
                     or self._view.would_fetch(project)))

    def _failed_lately(self, filename: str) -> Remembered | None:
        """The failure of C{filename}'s download still remembered (L{remembered}), or L{None}."""
        failed = self._failed.get(filename)
        if failed is not None and recent(failed[0], self._clock.seconds()):
            return failed[1]
        return None

    def fetch(self, upstream_file: UpstreamFile,
              tee: DownloadTee | None = None) -> Deferred[FileRecord]:
        """
        The stored record of an upstream file, fetching it first if needed:
        one download per file however many ask at once.

        @param tee: when this call starts the download, the bytes are also
            given to C{tee} as they arrive (see L{pypid.web.upstream_pages}): the
            first client is served while the file is fetched.
        """
        stored = self._kept.get(upstream_file.filename)
        if stored is not None:
            self.served["hit"] += 1
            return succeed(stored)
        evicting = self._evictions.get(upstream_file.filename)
        if evicting is not None:
            # (fetched again once its eviction is done: never under it)
            after: Deferred[None] = Deferred()

            def resume(_: object) -> None:
                after.callback(None)
            evicting.addBoth(resume)
            return after.addCallback(lambda _: self.fetch(upstream_file, tee))
        if self._config.offline:
            self.served["unavailable"] += 1
            return fail(Offline(upstream_file.filename))
        self.served["miss"] += 1
        d: Deferred[FileRecord] = Deferred()
        waiting = self._downloads.get(upstream_file.filename)
        if waiting is not None:
            waiting.append(d)
            return d
        failed = self._failed_lately(upstream_file.filename)
        if failed is not None:
            # (a file that just failed its hash is not asked for again at
            # every request: each would stream the wrong bytes)
            return fail(again(failed))
        if self._admission.waiting >= WAITING_PER_DOWNLOAD * self._config.max_downloads:
            return fail(DownloadsBusy(f"{self._admission.waiting} upstream downloads are waiting "
                                      "already; try again shortly"))
        self._downloads[upstream_file.filename] = [d]
        done = ensureDeferred(self._download(upstream_file, tee))
        done.addBoth(self._downloaded, upstream_file.filename)
        return d

    def _downloaded(self, result: FileRecord | Failure, filename: str) -> None:
        if (isinstance(result, Failure) and result.check(UpstreamError)
                and not result.check(TransferFailed)):
            # (bytes that were wrong, more than allowed, or an answer that is
            # not a file: asking again at once would stream them again; a
            # transfer cut short or too slow is tried again at the next
            # request, as pip's retries expect)
            put_newest(self._failed, filename,
                       (self._clock.seconds(), remembered(result.value)), MAX_FAILED_FILES)
        for d in self._downloads.pop(filename):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    async def _download(self, f: UpstreamFile, tee: DownloadTee | None = None) -> FileRecord:
        started = self._clock.seconds()
        try:
            stored = await self._download_to_storage(f, tee)
        except BaseException:
            self.timings.record("file", self._clock.seconds() - started, failed=True)
            if tee is not None:
                tee.abort()
            raise
        self.timings.record("file", self._clock.seconds() - started)
        if tee is not None:
            tee.finish()
        return stored

    async def _download_to_storage(self, f: UpstreamFile,
                                   tee: DownloadTee | None) -> FileRecord:
        # The cap is the smaller of the page's claim and max_file_size: a
        # page claiming a terabyte once lifted it, and an endless body
        # streamed gigabytes. A body longer than its claim is cut there.
        most = self._config.max_file_size
        if f.size is not None and f.size > most:
            raise VerifyError(f"{f.filename} is {f.size} bytes, more than [upstream] "
                              f"max_file_size ({most})")
        limit = f.size if f.size is not None else most
        await self._admission.acquire(limit)
        try:
            return await self._transfer(f, tee, limit)
        finally:
            self._admission.release(limit)

    async def _transfer(self, f: UpstreamFile, tee: DownloadTee | None,
                        limit: int) -> FileRecord:
        config = self._config
        started = self._clock.seconds()
        response = await self._client.open(f.url)
        try:
            temp, handle = await self._run(open_temp, self._storage.temp_dir)
        except BaseException:
            bodies.discard(response, self._clock, config.timeout)
            raise
        try:
            try:
                done: Deferred[int] = Deferred()
                transfer = ToFile(handle, self._run, self._clock, config.timeout, limit,
                                  done, tee=tee)
                left = max(config.fetch_deadline - (self._clock.seconds() - started), 0.0)
                timer = self._clock.callLater(left, transfer.overdue, config.fetch_deadline)
                response.deliverBody(transfer)
                try:
                    await done
                finally:
                    if timer.active():
                        timer.cancel()
            finally:
                await self._run(handle.close)
            digests = await self._run(file_digests, temp)
            size, sha256 = digests[0], digests[1]
            if sha256 != f.sha256 or (f.size is not None and size != f.size):
                log.warn("Not keeping {filename} from the upstream: it has sha256 {got} "
                         "and {size} bytes, its page said {want}", filename=f.filename,
                         got=sha256, size=size, want=f.sha256)
                raise VerifyError(f"{f.filename} from the upstream does not match the "
                                  "hash its page gives")
            upload_time = f.upload_time if f.upload_time is not None else self._clock.seconds()
            try:
                # (with its details: the page of an upstream project shows
                # the description of the files the cache keeps)
                inspected = await self._run(inspect, temp, f.filename, f.filename,
                                            upload_time, digests, True, self._render)
            except (InvalidName, InvalidDistribution) as e:
                raise VerifyError(f"{f.filename} from the upstream is not a valid "
                                  f"distribution: {e}")
            record = inspected.record.replace(yanked=f.yanked)
            try:
                stored = await self._storage.publish(temp, record, inspected.metadata,
                                                     inspected.details)
            except FileExists as e:
                # (another server sharing the cache, or an earlier run, kept
                # it: what storage holds is the truth, not these bytes)
                if e.record is not None:
                    stored = e.record
                elif e.sha256 in (None, record.sha256):
                    stored = record
                else:
                    raise VerifyError(f"another file named {f.filename} is kept already "
                                      f"(sha256 {e.sha256})")
            except FilenameDeleted:
                raise VerifyError(f"{f.filename} was deleted from the cache's storage; "
                                  "it is not kept again")
            self._keep(stored)
            log.info("Cached {filename} from the upstream ({size} bytes)",
                     filename=f.filename, size=size)
            if f.provenance_url is not None and stored.provenance_sha256 is None:
                # (in the background: the download's answer does not wait)
                self.provenance(f)
            return stored
        finally:
            await self._run(remove_file, temp)

    def _keep(self, record: FileRecord, announce: bool = True) -> None:
        """A file is kept: its page is kept past every other and shows it."""
        self._kept.put(record)
        self._view.file_kept(record)
        if announce:
            self._evict_over_cap()
            if self._on_change is not None:
                self._on_change()

    def served_kept(self, record: FileRecord) -> None:
        """A kept file is served: the last to be evicted from now on."""
        self._kept.touch(record.filename)

    def pin(self, filename: str) -> None:
        """Pre-caching asks for C{filename}: never evicted, if C{keep_precached}."""
        self._kept.pin(filename)

    def _evict_over_cap(self) -> None:
        """
        Evict the least recently downloaded files (but pinned ones, if
        protected) until the cache is back under its cap: each is no longer
        kept at once (no new download of it starts from the storage; a
        fetch of it waits for its eviction), then removed from the storage
        with the others of its batch, L{EVICTION_DELAY} later, in one call
        of the I/O pool. A removal that fails (or a stop before it) leaves
        the file in the storage, which the next start's scan finds and keeps
        again (and evicts, if the cache is over its cap).
        """
        cap = self._config.max_cache_size
        if not cap:
            return
        for record in self._kept.over(cap, self._config.keep_precached):
            self._kept.remove(record.filename)
            self._view.file_evicted(record)
            if self._batch_done is None:
                self._batch_done = Deferred()
                self._clock.callLater(EVICTION_DELAY, self._evict_batch)
            self._batch.append(record)
            self._evictions[record.filename] = self._batch_done

    def _evict_batch(self) -> None:
        batch, done = self._batch, self._batch_done
        self._batch, self._batch_done = [], None
        assert done is not None
        ensureDeferred(self._evict(batch)).addBoth(self._evicted, batch, done)

    async def _evict(self, batch: list[FileRecord]) -> None:
        try:
            await cast(IEvictingStorage, self._storage).evict(batch)
        except StorageError as e:
            log.warn("Cannot evict {count} files from the upstream cache yet: {error}",
                     count=len(batch), error=str(e))
            return
        self.evicted += len(batch)
        log.info("Evicted {count} files from the upstream cache ({size} bytes)",
                 count=len(batch), size=sum(record.size for record in batch))

    def _evicted(self, result: object, batch: list[FileRecord], done: Deferred[None]) -> None:
        """A batch's removal ended: a fetch of its files may start now."""
        for record in batch:
            if self._evictions.get(record.filename) is done:
                del self._evictions[record.filename]
        done.callback(None)

    async def rescan(self, known: dict[str, FileRecord], since: float) -> None:
        """
        Prepare the cache's storage and learn what it holds, starting from
        the C{known} records of a snapshot (what changed since C{since} is
        read again: the storage is the truth).
        """
        await self._storage.prepare()
        result = await self._storage.scan(known, since if known else 0.0, ())
        self._kept.clear()
        # (in the order the snapshot kept, the least recently downloaded
        # first; files it did not know, kept since, after them)
        order = {filename: n for n, filename in enumerate(known)}
        late = len(order)
        for record in sorted(result.records.values(), key=lambda r: (
                order.get(r.filename, late), r.upload_time)):
            self._keep(record, announce=False)
        self._evict_over_cap()
        log.info("Upstream cache: {count} files kept", count=len(self._kept))

    async def metadata(self, upstream_file: UpstreamFile) -> bytes | None:
        """
        The core metadata of an upstream file: from the stored file when it
        was fetched, else the upstream's C{.metadata}, checked against the
        page's hash and kept in memory.

        @return: bytes, or L{None} when the upstream offers none.
        """
        stored = self._kept.get(upstream_file.filename)
        if stored is not None and stored.metadata_sha256 is not None:
            data = await self._storage.read_metadata(stored)
            if upstream_file.metadata_sha256 in ("", hashlib.sha256(data).hexdigest()):
                return data
        if upstream_file.metadata_sha256 is None:
            return None
        kept = self._metadata.peek(upstream_file.filename)
        if kept is not None and upstream_file.metadata_sha256 in ("", kept[1]):
            # (kept under the hash it has: a page that now gives another is
            # answered with the metadata fetched anew)
            return kept[0]
        if self._config.offline:
            raise Offline(upstream_file.filename)
        data = await self._client.small(_metadata_url(upstream_file.url), METADATA_LIMIT,
                                        f"the upstream's metadata of {upstream_file.filename}")
        digest = hashlib.sha256(data).hexdigest()
        if upstream_file.metadata_sha256 and digest != upstream_file.metadata_sha256:
            raise VerifyError(f"the upstream's metadata of {upstream_file.filename} does not "
                              "match the hash its page gives")
        self._keep_metadata(upstream_file.filename, data, digest)
        return data

    def provenance(self, upstream_file: UpstreamFile) -> Deferred[bytes | None]:
        """
        The provenance object of an upstream file (see the module
        docstring): the kept one, or fetched and checked now (one fetch
        for every caller); L{None} when the upstream offers none, or it
        could not be had or was refused lately. Never fails.
        """
        filename = upstream_file.filename
        stored = self._kept.get(filename)
        if stored is not None and stored.provenance_sha256 is None \
                and stored.sha256 != upstream_file.sha256:
            # (the file served is the one kept, whose hash wins over the
            # page's: a provenance of the page's file would describe another)
            return succeed(None)
        if stored is not None and stored.provenance_sha256 is not None:
            return self._storage.read_provenance(stored).addErrback(
                self._provenance_unreadable, filename)
        if upstream_file.provenance_url is None:
            return succeed(None)
        kept = self._provenance.get(filename)
        if kept is not None:
            if stored is not None and stored.sha256 == upstream_file.sha256:
                self._persist_provenance(stored, kept)
            return succeed(kept)
        failed = self._provenance_failed.get(filename)
        if self._config.offline or (failed is not None
                                    and recent(failed, self._clock.seconds())):
            return succeed(None)
        d: Deferred[bytes | None] = Deferred()
        waiting = self._provenance_fetches.get(filename)
        if waiting is not None:
            waiting.append(d)
            return d
        self._provenance_fetches[filename] = [d]
        ensureDeferred(self._fetch_provenance(upstream_file)).addBoth(
            self._provenance_fetched, filename)
        return d

    async def _fetch_provenance(self, f: UpstreamFile) -> bytes | None:
        assert f.provenance_url is not None
        try:
            data = await self._client.small(f.provenance_url, MAX_PROVENANCE_SIZE,
                                            f"the upstream's provenance of {f.filename}")
            read_provenance(data, f.filename, f.sha256)
        except (UpstreamError, ProvenanceInvalid) as e:
            log.warn("No provenance of {filename} from the upstream: {reason}",
                     filename=f.filename, reason=str(e))
            put_newest(self._provenance_failed, f.filename, self._clock.seconds(),
                       MAX_FAILED_FILES)
            return None
        self._provenance.put(f.filename, data, _held(f.filename, data), keep=True)
        stored = self._kept.get(f.filename)
        if stored is not None and stored.sha256 == f.sha256:
            self._persist_provenance(stored, data)
        return data

    def _persist_provenance(self, stored: FileRecord, data: bytes) -> None:
        """Keep a checked provenance with its kept file (in the background; failures logged)."""
        if stored.provenance_sha256 is not None:
            return

        def kept(record: FileRecord) -> None:
            current = self._kept.get(record.filename)
            if current is not None and current.sha256 == record.sha256:
                self._keep(current.replace(provenance_sha256=record.provenance_sha256))

        def failed(failure: Failure) -> None:
            log.warn("Cannot keep the provenance of {filename}: {error}",
                     filename=stored.filename, error=failure.getErrorMessage())
        self._storage.keep_provenance(stored, data).addCallbacks(kept, failed)

    def _provenance_fetched(self, result: bytes | None | Failure, filename: str) -> None:
        if isinstance(result, Failure):
            log.failure("Fetching the provenance of {filename} failed", result,
                        filename=filename)
            put_newest(self._provenance_failed, filename, self._clock.seconds(),
                       MAX_FAILED_FILES)
            result = None
        for d in self._provenance_fetches.pop(filename):
            d.callback(result)

    def _provenance_unreadable(self, failure: Failure, filename: str) -> None:
        log.warn("Cannot read the kept provenance of {filename}: {error}",
                 filename=filename, error=failure.getErrorMessage())

    def _keep_metadata(self, filename: str, data: bytes, digest: str | None = None) -> None:
        # (each entry costs its dictionary slot and name too, so that many
        # tiny metadata files cannot grow the count without bound)
        self._metadata.put(filename, (data, digest or hashlib.sha256(data).hexdigest()),
                           _held(filename, data), keep=True)
