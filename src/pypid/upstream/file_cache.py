"""
The upstream files the cache keeps: their records (L{KeptFiles}), the
storage that holds them, the pages told of each file kept or evicted, and
the cap on their bytes (C{[upstream] max_cache_size}).

Past the cap the least recently downloaded files (but pinned ones, if
protected) are evicted: no longer kept at once, and removed from the
storage later in batches (L{EvictionBatches}), one call of the I/O pool
for many. Until its batch is done a fetch of such a file waits for it
(never a download under a removal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.dists.model import FileRecord
from pypid.storage.base.capabilities import IEvictingStorage
from pypid.storage.base.interface import IStorage, StorageError
from pypid.upstream.kept import KeptFiles
from pypid.upstream.page_model import UpstreamFile

#: (the downloads' namespace: their log lines read as before the split)
log = Logger(namespace="pypid.upstream.downloads")

#: Seconds an evicted file's removal waits for others to join its batch:
#: one call of the I/O pool for many (measured with
#: L{tests.bench.bench_upstream_cap}: a call a file made each fetch past the cap
#: some 0.4 ms slower, 6%).
EVICTION_DELAY = 1.0


class PageListing(Protocol):
    """
    What the files side reads of the cached pages (a file is fetched only
    if a page listed it), and whom to tell of a file kept: the views of
    L{pypid.upstream.source.UpstreamSource}, one per index that reads it.
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
class FileCache:
    """
    The files kept in the cache's storage, kept under its cap.

    @ivar _kept: the records of the files kept, which only this adds to.
    @ivar _evicts: whether this keeps the cache under its cap (of a
        machine's workers, the first alone: L{pypid.upstream.machine_share}).
    """

    _config: UpstreamConfig
    _view: PageListing
    storage: IStorage
    _clock: IReactorTime
    _kept: KeptFiles
    _on_change: Callable[[], None] | None = None
    _evicts: bool = True
    _eviction: EvictionBatches = attrs.field(init=False, default=attrs.Factory(
        lambda self: EvictionBatches(self.storage, self._clock), takes_self=True))

    @property
    def evicted(self) -> int:
        """Files evicted to keep the cache under its cap, since the start."""
        return self._eviction.evicted

    def get(self, filename: str) -> FileRecord | None:
        """The record of C{filename} if it is kept, or L{None}."""
        return self._kept.get(filename)

    def eviction(self, filename: str) -> Deferred[None] | None:
        """The end of C{filename}'s eviction while under way (a fetch waits for it), or L{None}."""
        return self._eviction.under_way(filename)

    def keep(self, record: FileRecord, announce: bool = True) -> None:
        """
        A file is kept (its page shows it); when C{announce}d, the cache is
        brought back under its cap and the snapshot is told.
        """
        self._kept.put(record)
        self._view.file_kept(record)
        if announce:
            self._evict_over_cap()
            if self._on_change is not None:
                self._on_change()

    def _evict_over_cap(self) -> None:
        """Evict files until the cache is back under its cap (see the module docstring)."""
        cap = self._config.max_cache_size
        if not cap or not self._evicts:
            return
        for record in self._kept.over(cap, self._config.keep_precached):
            self._kept.remove(record.filename)
            self._view.file_evicted(record)
            self._eviction.remove_later(record)

    def learnt(self, kept: list[FileRecord], gone: list[str]) -> None:
        """What another worker of the machine kept, and evicted (or removed), taken in."""
        for filename in gone:
            record = self._kept.remove(filename)
            if record is not None:
                self._view.file_evicted(record)
        for record in kept:
            # (one this worker evicts now is not taken back from an older look)
            if self._eviction.under_way(record.filename) is None:
                self.keep(record, announce=False)
        if kept:
            self._evict_over_cap()
            if self._on_change is not None:
                self._on_change()

    async def rescan(self, known: dict[str, FileRecord], since: float) -> None:
        """
        Learn what the cache's storage holds, starting from the C{known} records
        of a snapshot (the storage is the truth: what changed since C{since} is
        read again).
        """
        await self.storage.prepare()
        result = await self.storage.scan(known, since if known else 0.0, ())
        self._kept.clear()
        # (in the order the snapshot kept, the least recently downloaded
        # first; files it did not know, kept since, after them)
        order = {filename: n for n, filename in enumerate(known)}
        late = len(order)
        for record in sorted(result.records.values(), key=lambda r: (
                order.get(r.filename, late), r.upload_time)):
            self.keep(record, announce=False)
        self._evict_over_cap()


@attrs.define
class EvictionBatches:
    """
    The evicted files waiting for their batch's removal, or under it: a removal
    that fails (or a stop before it) leaves the files in the storage, which
    the next start's scan finds and keeps again.
    """

    _storage: IStorage
    _clock: IReactorTime
    #: files evicted to keep the cache under its cap, since the start
    evicted: int = attrs.field(init=False, default=0)
    # filename -> the end of its batch's removal, waiting or under way
    _under_way: dict[str, Deferred[None]] = attrs.field(init=False, factory=dict)
    # the files whose removal waits for the next batch, and that batch's end
    _batch: list[FileRecord] = attrs.field(init=False, factory=list)
    _batch_done: Deferred[None] | None = attrs.field(init=False, default=None)

    def remove_later(self, record: FileRecord) -> None:
        """Remove C{record}'s file with the next batch (L{EVICTION_DELAY} after its first)."""
        if self._batch_done is None:
            self._batch_done = Deferred()
            self._clock.callLater(EVICTION_DELAY, self._remove_batch)
        self._batch.append(record)
        self._under_way[record.filename] = self._batch_done

    def under_way(self, filename: str) -> Deferred[None] | None:
        """
        The end of C{filename}'s removal (it never fails), while it waits or
        runs; else L{None}. Shared: a caller chains on it, never to it.
        """
        return self._under_way.get(filename)

    def _remove_batch(self) -> None:
        batch, done = self._batch, self._batch_done
        self._batch, self._batch_done = [], None
        assert done is not None
        ensureDeferred(self._remove(batch)).addBoth(self._removed, batch, done)

    async def _remove(self, batch: list[FileRecord]) -> None:
        try:
            await cast(IEvictingStorage, self._storage).evict(batch)
        except StorageError as e:
            log.warn("Cannot evict {count} files from the upstream cache yet: {error}",
                     count=len(batch), error=str(e))
            return
        self.evicted += len(batch)
        log.info("Evicted {count} files from the upstream cache ({size} bytes)",
                 count=len(batch), size=sum(record.size for record in batch))

    def _removed(self, result: object, batch: list[FileRecord], done: Deferred[None]) -> None:
        """A batch's removal ended: a fetch of its files may start now."""
        for record in batch:
            if self._under_way.get(record.filename) is done:
                del self._under_way[record.filename]
        done.callback(None)
