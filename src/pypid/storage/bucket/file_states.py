"""
What the bucket holds of its files: one file's state now (L{FileStates}:
its tombstone, its object's headers, the record, its yank and recycle-bin
markers, and its promotion), or every file's (L{BucketListing}).

A file's state is read after another server's change
(L{pypid.storage.bucket.markers.BucketChanges}), where a full check
disagrees with the index, and where an upload or a promotion finds the
name taken by the same bytes. A listing turns the bucket's keys into
records: the files' (from their user metadata, or by import: see
L{pypid.storage.bucket.imports}), the tombstones, the yank and recycle bin
markers. It trusts a known record for an object the listing shows
unchanged since a time (less a margin for the store's clock), so a
listing of a bucket a snapshot already knows reads almost nothing; it runs
at start-up and in the background check, with another, paced, client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion
from pypid.jobs.gather import gather
from pypid.storage.base.capabilities import Changed
from pypid.storage.base.interface import ScanResult
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, binned_time, record_from_metadata, yank_reason
from pypid.storage.bucket.store import Listed, ObjectStore

log = Logger()
#: (the listing's lines keep the namespace they had before its module
#: joined this one: log filters keep matching)
listing_log = Logger(namespace="pypid.storage.bucket.listing")


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


@attrs.define
class BucketListing:
    """
    Lists the files, tombstones and yank markers under a prefix.

    @ivar _client: what a listing uses unless given another.
    @ivar _imports: reads what the listing cannot trust, and learns where
        each listed file lives.
    @ivar _clock_margin: how far to distrust the store's times near the
        time a view was known complete (s).
    """

    _client: ObjectStore
    _layout: Layout
    _imports: Importer
    _clock_margin: float

    async def _keys(self, prefix: str, client: ObjectStore) -> list[Listed]:
        """Every listed key under C{prefix} (the markers: a few, unlike the files)."""
        found: list[Listed] = []
        async for page in client.list(prefix):
            found.extend(page.keys)
        return found

    async def scan(self, known: dict[str, FileRecord], since: float, persist: bool = True,
                   client: ObjectStore | None = None) -> ScanResult:
        """
        List the bucket: the records of its files, trusting C{known} for
        objects unchanged since C{since}, and reading the others.

        The files are taken in a page (1,000 keys) at a time, so a bucket
        of a million files never holds its whole listing in memory (some
        300 bytes a key), only the records and the few objects to read.

        @param client: the client to list and read with (a
            L{pypid.storage.bucket.store.PacedStore} for the background
            check); L{_client} by default.
        """
        client = client or self._client
        layout = self._layout
        trusted_before = since - self._clock_margin if since else 0.0
        deleted = {item.key[len(layout.deleted_prefix):]
                   for item in await self._keys(layout.deleted_prefix, client)}
        yanked = {item.key[len(layout.yanked_prefix):]: item
                  for item in await self._keys(layout.yanked_prefix, client)}
        binned = {item.key[len(layout.binned_prefix):]: item
                  for item in await self._keys(layout.binned_prefix, client)}
        records, skipped, to_read, reading = {}, [], [], set()
        async for page in client.list(layout.prefix, layout.files_start_after):
            for item in page.keys:
                path = layout.path_of(item.key)
                if path is None:
                    continue
                filename = path.rpartition("/")[2]
                if filename in deleted:
                    continue
                if filename in records or filename in reading:
                    skipped.append((path, f"another file named {filename} is already listed"))
                    continue
                previous = known.get(filename)
                if (previous is not None and previous.path == path
                        and previous.size == item.size
                        and item.modified < trusted_before):
                    records[previous.filename] = previous
                else:
                    reading.add(filename)
                    to_read.append((filename, path, item))
        results = await self._imports.read_all(to_read, persist, client)
        for (filename, path, _item), outcome in zip(to_read, results, strict=False):
            if isinstance(outcome, str):
                skipped.append((path, outcome))
            else:
                records[filename] = outcome
        await self._apply_markers(records, yanked, "yanked",
                                  lambda body, _: yank_reason(body),
                                  known, trusted_before, client)
        await self._apply_markers(records, binned, "binned",
                                  lambda body, item: binned_time(body,
                                                                 item.modified),
                                  known, trusted_before, client)
        for record in records.values():
            self._imports.remember(record)
        promotions = await self._promotions(records, client)
        return ScanResult(records=records, tombstones=frozenset(deleted), skipped=tuple(skipped),
                          promotions=promotions)

    async def _promotions(self, records: dict[str, FileRecord],
                          client: ObjectStore) -> dict[str, Promotion]:
        """
        The promotions of the listed files that have one: one listing (of
        the promoted files only), and one read of each.
        """
        layout, promotions = self._layout, {}
        for item in await self._keys(layout.promoted_prefix, client):
            filename = item.key[len(layout.promoted_prefix):]
            if filename not in records:
                continue
            body = await client.get(item.key)
            if body is None:
                continue
            try:
                promotions[filename] = Promotion.from_bytes(body)
            except ValueError as e:
                listing_log.warn("Unreadable promotion {key}: {error}", key=item.key,
                                 error=str(e))
        return promotions

    async def _apply_markers(self, records: dict[str, FileRecord], markers: dict[str, Listed],
                             field: str, read: Callable[[bytes, Listed], Any],
                             known: dict[str, FileRecord], trusted_before: float,
                             client: ObjectStore) -> None:
        """
        Give C{records} the state their markers hold (C{markers}: filename
        -> listed marker; C{field}: the record's field it sets, C{yanked}
        or C{binned}; C{read(body, listed)}: the value of a marker's body),
        trusting C{known} for markers unchanged since C{trusted_before},
        reading the others; a record without a marker has none.
        """
        for filename, record in list(records.items()):
            item = markers.get(filename)
            if item is None:
                if getattr(record, field) is not None:
                    records[filename] = record.replace(**{field: None})
                continue
            previous = known.get(filename)
            if (previous is not None and getattr(previous, field) is not None
                    and item.modified < trusted_before):
                value = getattr(previous, field)
            else:
                body = await client.get(item.key)
                if body is None:
                    continue
                value = read(body, item)
            if getattr(record, field) != value:
                records[filename] = record.replace(**{field: value})
