"""
A file's state as the bucket holds it now: its tombstone, its object's
headers (the record), its yank and recycle-bin markers, and its promotion.

Read after another server's change (L{pypid.storage.bucket.markers.BucketChanges}),
where a full check disagrees with the index, and where an upload or a
promotion finds the name taken by the same bytes: apart because all of
them need it and none owns it.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.indexes.promotion import Promotion
from pypid.jobs.gather import gather
from pypid.storage.base.capabilities import Changed
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, binned_time, record_from_metadata, yank_reason
from pypid.storage.bucket.store import ObjectStore

log = Logger()


def _promotion(filename: str, body: bytes | None) -> Promotion | None:
    """The promotion a marker's C{body} says (one unreadable is logged, and left out)."""
    if body is None:
        return None
    try:
        return Promotion.from_bytes(body)
    except ValueError as e:
        log.warn("Unreadable promotion of {filename}: {error}", filename=filename, error=str(e))
        return None


@attrs.define
class FileStates:
    """
    Reads files' states from the bucket.

    @ivar _client: what a read uses unless given another (the paced
        store of a full check).
    @ivar _imports: knows where each file lives.
    @ivar _clock: a recycle-bin marker without a time is taken as binned now.
    """

    _client: ObjectStore
    _layout: Layout
    _imports: Importer
    _clock: IReactorTime

    async def read(self, filename: str, path: str | None = None,
                   client: ObjectStore | None = None) -> Changed:
        """A file's state as the bucket holds it now (read with C{client}, or the storage's)."""
        layout, client = self._layout, client or self._client
        if await client.head(layout.deleted_key(filename)) is not None:
            return Changed(filename, None, True)
        path = path or self._imports.path_of(filename)
        head = await client.head(layout.file_key(path))
        if head is None:
            return Changed(filename, None, False)
        record = record_from_metadata(path, head.size, head.metadata)
        if record is None:
            return Changed(filename, None, False)
        # (the markers at once: a change costs the time of one read)
        yanked, binned, promoted = await gather([
            ensureDeferred(client.get(layout.yanked_key(filename))),
            ensureDeferred(client.get(layout.binned_key(filename))),
            ensureDeferred(client.get(layout.promoted_key(filename)))])
        if yanked is not None:
            record = record.replace(yanked=yank_reason(yanked))
        if binned is not None:
            record = record.replace(binned=binned_time(binned, self._clock.seconds()))
        return Changed(filename, record, False, _promotion(filename, promoted))
