"""
The upstream files: a file is fetched on its first download, checked
against the page's sha256 (and size), kept in the cache's storage, and
served from there ever after (L{UpstreamFiles}), one download per file
however many ask at once.

A download writes to a temporary file in the cache storage's folder until
its bytes are checked, so the downloads under way decide how much disk the
cache may take beyond what it keeps: four requests for files whose pages
claimed a terabyte once put 4 GB in that folder. So downloads take turns
(L{Admission}): each reserves, before it starts, the most it may write
(the size its page gives, else C{[upstream] max_file_size}), and waits
while the reservations would pass C{download_space} or the downloads
C{max_downloads}; turns are given in the order asked, so a large file is
not overtaken for ever by small ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.dists.distribution import file_digests, inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.dists.wheel_variants import InvalidVariant, check_described
from pypid.core.records.metrics import Timings
from pypid.http import bodies
from pypid.jobs.run import Run
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import FileExists, FilenameDeleted, IStorage, Location
from pypid.upstream.cache import Offline, RecentFailures, Remembered, again, remembered
from pypid.upstream.fetch import HostRefused, TransferFailed, UpstreamClient, UpstreamError
from pypid.upstream.file_cache import FileCache, PageListing
from pypid.upstream.file_metadata import UpstreamMetadata
from pypid.upstream.file_provenance import UpstreamProvenance
from pypid.upstream.kept import KeptFiles
from pypid.upstream.machine_share import MachineShare, News
from pypid.upstream.page_model import UpstreamFile
from pypid.upstream.transfer import DownloadTee, ToFile, VerifyError, open_temp

log = Logger()

#: Downloads that may wait for a turn, per download allowed at once
#: (C{[upstream] max_downloads}); past it a new one is answered 503. A
#: waiting download holds a connection and a few hundred bytes; uv asks
#: for 50 files at once (its C{UV_CONCURRENT_DOWNLOADS}), and with ten
#: per turn (40 waiting at the default of 4) a cold cache turned a
#: 150-project C{uv pip install} into 503s that uv gave up on after its
#: three retries (measured with tests/bench/bench_install.py). 64 a turn lets
#: five such clients wait at once.
WAITING_PER_DOWNLOAD = 64


class DownloadsBusy(Exception):
    """Too many upstream downloads wait already: try again shortly (503)."""


@attrs.define
class UpstreamFiles:
    """
    The files of the upstream cache: fetched, checked, kept and served; the
    files kept, their metadata and provenance are its own parts, made here.

    @ivar _on_change: called when a file was kept, so that the snapshot is
        saved soon; or L{None}.
    @ivar _share: in a worker of a machine, the cache shared with the
        others (a file fetched once per machine); L{None} in one process.
    """

    _config: UpstreamConfig
    _view: PageListing
    _client: UpstreamClient
    storage: IStorage
    _run: Run
    _clock: IReactorTime
    _kept: KeptFiles
    _on_change: Callable[[], None] | None = None
    _render: Renderer = render_description
    _share: MachineShare | None = None
    _files: FileCache = attrs.field(init=False, default=attrs.Factory(
        lambda self: FileCache(self._config, self._view, self.storage, self._clock, self._kept,
                               self._on_change, self._share is None or self._share.first),
        takes_self=True))
    _metadata: UpstreamMetadata = attrs.field(init=False, default=attrs.Factory(
        lambda self: UpstreamMetadata(self._config, self._client, self._files), takes_self=True))
    _provenance: UpstreamProvenance = attrs.field(init=False, default=attrs.Factory(
        lambda self: UpstreamProvenance(self._config, self._client, self._files, self._clock),
        takes_self=True))
    # filename -> the callers waiting for its download
    _downloads: dict[str, list[Deferred[FileRecord]]] = attrs.field(init=False, factory=dict)
    # the downloads that failed lately, but not on the way
    _failed: RecentFailures[Remembered] = attrs.field(init=False, default=attrs.Factory(
        lambda self: RecentFailures(self._clock), takes_self=True))
    _admission: Admission = attrs.field(init=False, default=attrs.Factory(
        lambda self: Admission(self._config.max_downloads, self._config.download_space),
        takes_self=True))
    # the whole storage read in the background, when the others' changes
    # cannot be known otherwise
    _checking: Deferred[None] | None = attrs.field(init=False, default=None)
    #: how files were served, for C{/metrics}: C{hit} (kept already),
    #: C{miss} (fetched from the upstream), C{unavailable} (offline)
    served: dict[str, int] = attrs.field(
        init=False, factory=lambda: {"hit": 0, "miss": 0, "unavailable": 0})
    #: the upstream fetches of files: count, failures, latency
    timings: Timings = attrs.field(init=False, factory=Timings)

    @property
    def evicted(self) -> int:
        """Files evicted to keep the cache under its cap, since the start."""
        return self._files.evicted

    def kept(self, filename: str) -> FileRecord | None:
        """The L{FileRecord} of an upstream file kept in the cache, or L{None}."""
        return self._kept.get(filename)

    def locate(self, record: FileRecord) -> Location:
        """Where a kept file is served from (see L{IStorage.locate})."""
        return self.storage.locate(record)

    def would_fetch(self, project: str, filename: str, metadata: bool = False) -> bool:
        """Whether answering for C{filename} (or its C{metadata}) now would ask the upstream."""
        return (not self._config.offline and filename not in self._kept
                and not (metadata and filename in self._metadata)
                and filename not in self._downloads
                and self._failed.lately(filename) is None
                and (self._view.listed(project, filename) is not None
                     or self._view.would_fetch(project)))

    def fetch(self, upstream_file: UpstreamFile,
              tee: DownloadTee | None = None) -> Deferred[FileRecord]:
        """
        The stored record of an upstream file, fetching it first if needed:
        one download per file however many ask at once.

        @param tee: when this call starts the download, given the bytes as
            they arrive: the first client is served while the file is fetched.
        """
        stored = self._kept.get(upstream_file.filename)
        if stored is not None:
            self.served["hit"] += 1
            return succeed(stored)
        evicting = self._files.eviction(upstream_file.filename)
        if evicting is not None:  # (fetched again once its eviction is done: never under it)
            after: Deferred[None] = Deferred()
            evicting.addBoth(lambda _: after.callback(None))
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
        failed = self._failed.lately(upstream_file.filename)
        if failed is not None:
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
                and not result.check(TransferFailed, HostRefused)):
            # (bytes that were wrong, or not a file: asking again at once would
            # stream them again; a transfer cut short is tried again at the
            # next request, as pip's retries expect, and a host refused is
            # asked of the hosts then in force. A failure learnt from another
            # worker meanwhile is not remembered anew: it would outlast it there)
            if self._failed.lately(filename) is None:
                self._failed.remember(filename, remembered(result.value))
                if self._share is not None:
                    self._share.failed(filename, result.getErrorMessage(), self._clock.seconds())
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

    async def _download_to_storage(self, f: UpstreamFile, tee: DownloadTee | None) -> FileRecord:
        # The cap is the smaller of the page's claim and max_file_size: a
        # page claiming a terabyte once lifted it, and an endless body
        # streamed gigabytes. A body longer than its claim is cut there.
        most = self._config.max_file_size
        if f.size is not None and f.size > most:
            raise VerifyError(f"{f.filename} is {f.size} bytes, more than [upstream] "
                              f"max_file_size ({most})")
        limit = f.size if f.size is not None else most
        release = await self._share.turn(f.filename) if self._share is not None else None
        try:
            kept = self._kept.get(f.filename)
            if kept is not None:  # (another worker kept it meanwhile: served from there)
                return kept
            failed = self._failed.lately(f.filename)
            if failed is not None:  # (or found its bytes wrong meanwhile)
                raise again(failed)
            await self._admission.acquire(limit)
            try:
                return await self._transfer(f, tee, limit)
            finally:
                self._admission.release(limit)
        finally:
            if release is not None:
                release()

    async def _transfer(self, f: UpstreamFile, tee: DownloadTee | None, limit: int) -> FileRecord:
        """Stream C{f} into a temporary file (and C{tee}) within its deadlines, then keep it."""
        config = self._config
        started = self._clock.seconds()
        response = await self._client.open(f.url)
        try:
            temp, handle = await self._run(open_temp, self.storage.temp_dir)
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
            return await self._publish(f, temp)
        finally:
            await self._run(remove_file, temp)

    async def _publish(self, f: UpstreamFile, temp: str) -> FileRecord:
        """
        Check the bytes fetched into C{temp} against C{f}'s page, read their
        details, and keep them in the cache's storage.
        """
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
        if f.variant is not None:
            check_variant_data(f.filename, record.variant, f.variant)
        try:
            stored = await self.storage.publish(temp, record, inspected.metadata, inspected.details)
        except FileExists as e:
            # (another server sharing the cache, or an earlier run, kept
            # it: what storage holds is the truth, not these bytes)
            if e.record is not None:
                stored = e.record
                if f.variant is not None:
                    check_variant_data(f.filename, stored.variant, f.variant)
            elif e.sha256 in (None, record.sha256):
                stored = record
            else:
                raise VerifyError(f"another file named {f.filename} is kept already "
                                  f"(sha256 {e.sha256})")
        except FilenameDeleted:
            raise VerifyError(f"{f.filename} was deleted from the cache's storage; "
                              "it is not kept again")
        self._files.keep(stored)
        log.info("Cached {filename} from the upstream ({size} bytes)",
                 filename=f.filename, size=size)
        if f.provenance_url is not None and stored.provenance_sha256 is None:
            # (in the background: the download's answer does not wait)
            self._provenance.get(f)
        return stored

    def served_kept(self, record: FileRecord, hit: bool = True) -> None:
        """A kept file is served: the last to be evicted from now on; a C{hit} is counted."""
        if hit:
            self.served["hit"] += 1
        self._kept.touch(record.filename)

    def pin(self, filename: str) -> None:
        """Pre-caching asks for C{filename}: never evicted, if C{keep_precached}."""
        if self._kept.pin(filename) and self._share is not None:
            self._share.pinned(filename)

    def learn(self, news: News) -> None:
        """
        Take in what the machine's other workers kept, evicted, pinned and
        found wrong; when the storage must be read whole, it is, in the
        background (no request waits for a whole folder or bucket).
        """
        for filename in news.pins:
            self._kept.pin(filename)
        for filename, (at, reason) in news.failures.items():
            # (remembered as long as where it failed: the same clock)
            self._failed.remember(filename, (VerifyError, (reason,)), at)
        self._files.learnt([c.record for c in news.files if c.record is not None],
                           [c.filename for c in news.files if c.record is None])
        if news.rescan and self._checking is None:
            checking = Deferred.fromCoroutine(self._check())
            checking.addErrback(lambda f: log.warn(
                "Cannot check the upstream cache's storage against what other workers "
                "kept: {error}", error=f.getErrorMessage()))
            self._checking = checking
            checking.addBoth(lambda _: setattr(self, "_checking", None))

    async def _check(self) -> None:
        """
        The storage compared whole with what is known here: what it holds
        that is not known is kept (unless this worker evicts it now), what
        is known, unchanged since, and not there is forgotten.
        """
        known = {record.filename: record for record in self._kept}
        found = (await cast(ISharedStorage, self.storage).reconcile(known, ())).records
        self._files.learnt(
            [record for name, record in found.items()
             if name not in self._kept and self._files.eviction(name) is None],
            [name for name, record in known.items()
             if name not in found and self._kept.get(name) == record])

    def rescan(self, known: dict[str, FileRecord], since: float) -> Coroutine[Any, Any, None]:
        """Learn what the cache's storage holds (L{FileCache.rescan})."""
        return self._files.rescan(known, since)

    def metadata(self, upstream_file: UpstreamFile) -> Coroutine[Any, Any, bytes | None]:
        """The core metadata of an upstream file, or L{None} (L{UpstreamMetadata.read})."""
        return self._metadata.read(upstream_file)

    def kept_metadata(self, upstream_file: UpstreamFile) -> tuple[Location, str] | None:
        """Where the metadata of an upstream file is kept, with its sha256, or L{None}."""
        return self._metadata.kept(upstream_file)

    def provenance(self, upstream_file: UpstreamFile) -> Deferred[bytes | None]:
        """The provenance object of an upstream file, or L{None} (L{UpstreamProvenance.get})."""
        return self._provenance.get(upstream_file)


def check_variant_data(filename: str, variant: str | None, listed: str) -> None:
    """
    Refuse (L{VerifyError}) a variant wheel whose own C{variant.json} says
    otherwise than its release's index-level file, of which its pages were
    made (C{listed}). Held at its fetch, and at each download of a kept copy
    (the upstream's file may change after).
    """
    if variant is None:
        raise VerifyError(f"{filename} from the upstream has no variant.json (PEP 825)")
    try:
        check_described(variant, listed)
    except InvalidVariant as e:
        raise VerifyError(f"{filename} from the upstream disagrees with its release's "
                          f"index-level file: {e}")


class Admission:
    """
    Turns for the downloads: at most C{count} at once, reserving at most
    C{space} bytes together (no clock, no I/O).
    """

    def __init__(self, count: int, space: int) -> None:
        # (max_file_size is at most download_space: the configuration checks it)
        self._count = count
        self._space = space
        self._waiting: deque[tuple[Deferred[None], int]] = deque()
        self.running = 0
        self.reserved = 0

    @property
    def waiting(self) -> int:
        """How many downloads wait for a turn."""
        return len(self._waiting)

    def acquire(self, size: int) -> Deferred[None]:
        """
        A turn for a download that may write C{size} bytes, once given;
        cancelling it gives up the place in the queue.
        """
        size = min(size, self._space)
        if not self._waiting and self._fits(size):
            self._take(size)
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            try:
                self._waiting.remove((d, size))
            except ValueError:
                pass
        d: Deferred[None] = Deferred(cancel)
        self._waiting.append((d, size))
        return d

    def release(self, size: int) -> None:
        """A download that held a turn for C{size} bytes ended."""
        self.running -= 1
        self.reserved -= min(size, self._space)
        while self._waiting and self._fits(self._waiting[0][1]):
            d, size = self._waiting.popleft()
            self._take(size)
            d.callback(None)

    def _fits(self, size: int) -> bool:
        return self.running < self._count and self.reserved + size <= self._space

    def _take(self, size: int) -> None:
        self.running += 1
        self.reserved += size
