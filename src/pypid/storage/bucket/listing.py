"""
The full listing of a bucket storage's prefix.

A listing turns the bucket's keys into records: the files' (from their
user metadata, or by import: see L{pypid.storage.bucket.imports}), the
tombstones, the yank and recycle bin markers. It trusts a known record for an object
the listing shows unchanged since a time (less a margin for the store's
clock), so a listing of a bucket a snapshot already knows reads almost
nothing. It is apart from L{pypid.storage.bucket.storage.BucketStorage} because
it is the one read of the whole bucket, run both at start-up and by the
background check (L{pypid.storage.bucket.storage.BucketStorage.reconcile}), with
another, paced, client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.interface import ScanResult
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, binned_time, yank_reason
from pypid.storage.bucket.store import Listed, ObjectStore

log = Logger()


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
                log.warn("Unreadable promotion {key}: {error}", key=item.key, error=str(e))
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
