"""
The removal of evicted upstream files from the cache's storage, in batches
(C{[upstream] max_cache_size}).

Which files go is decided elsewhere (L{pypid.upstream.kept.KeptFiles.over},
by L{pypid.upstream.file_cache.FileCache}); this module only removes them:
each file handed over waits L{EVICTION_DELAY} for others to join its batch,
and the batch is removed in one call of the I/O pool
(L{IEvictingStorage.evict}). Until its batch is done a file's eviction is
under way, and a fetch of that file waits for it (never a download under
a removal).
"""

from __future__ import annotations

from typing import cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.storage.capabilities import IEvictingStorage
from pypid.storage.interface import IStorage, StorageError

#: (the downloads' namespace: their log lines read as before the split)
log = Logger(namespace="pypid.upstream.downloads")

#: Seconds an evicted file's removal waits for others to join its batch:
#: one call of the I/O pool for many (measured with
#: L{tests.bench.bench_upstream_cap}: a call a file made each fetch past the cap
#: some 0.4 ms slower, 6%).
EVICTION_DELAY = 1.0


@attrs.define
class EvictionBatches:
    """
    The evicted files waiting for their batch's removal, or under it.

    A removal that fails (or a stop before it) leaves the files in the
    storage, which the next start's scan finds and keeps again.

    @ivar _storage: the cache's storage (an L{IEvictingStorage}).
    @ivar _clock: schedules each batch's removal.
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
