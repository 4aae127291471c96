"""
The copy of the index's snapshot kept in the bucket
(C{.pypid/snapshot.json.gz}) for a new server, or one whose own is too old:
a C{HEAD} and a C{GET}, where listing a million files is 2,000 requests.
Compressed in the thread pool, read with a cap before and after
decompression, trusted only when of this bucket and prefix and naming
its journal serial.
"""

from __future__ import annotations

import gzip
import zlib

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from pypid.jobs.run import Run
from pypid.storage.base import snapshot as snapshots
from pypid.storage.base import snapshot_reading
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.pending_writes import PendingWrites
from pypid.storage.bucket.store import ObjectStore

log = Logger()

#: The snapshot kept in the bucket is read up to this size (compressed).
SNAPSHOT_LIMIT = 256 << 20


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip C{data}, refusing more than C{limit} bytes of output."""
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError(f"more than {limit} bytes once decompressed")
    return out


@attrs.define
class BucketSnapshot:
    """
    The snapshot object of a prefix.

    @ivar _pending: what a clean stop waits for, so the last snapshot lands.
    @ivar _enabled: whether a copy is kept and read (C{[s3] bucket_snapshot}).
    """

    _client: ObjectStore
    _layout: Layout
    _run: Run
    _pending: PendingWrites
    _enabled: bool
    _clock_margin: float

    @property
    def enabled(self) -> bool:
        """Whether a copy is kept and read."""
        return self._enabled

    def keep(self, data: bytes) -> Deferred[None] | None:
        """Keep a copy of the snapshot's bytes, in the background; L{None} when none is kept."""
        if not self._enabled:
            return None

        async def keep() -> None:
            packed = await self._run(gzip.compress, data, 6)
            await self._client.put(self._layout.snapshot_key, packed,
                                   "application/gzip")
        return self._pending.track(ensureDeferred(keep()))

    async def load(self) -> bytes | None:
        """The copy kept, or L{None} (none, or not one to use: logged)."""
        if not self._enabled:
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

    async def newer(self, since: float, identity: str) -> snapshots.Snapshot | None:
        """
        The copy kept, when another instance kept one newer than the local
        snapshot (taken at C{since}), of this storage, naming its journal
        serial; else L{None}.
        """
        if not self._enabled:
            return None
        try:
            head = await self._client.head(self._layout.snapshot_key)
            if head is None or not head.modified:
                return None
            # By the store's clock, which the margin allows for: a snapshot
            # written just after the local one's time is that one's copy.
            if head.modified <= since + self._clock_margin:
                return None
            data = await self.load()
            snap = await self._run(snapshot_reading.decode, data) if data is not None else None
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the bucket: {error}", error=str(e))
            return None
        if (snap is None or snap.storage not in (None, identity)
                or snap.saved_at <= since or snap.changes is None):
            return None
        log.info("The local snapshot is old: starting from the newer one kept in the bucket")
        return snap
