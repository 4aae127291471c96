"""
What the bucket holds of its files: one file's state now (L{FileStates}),
read after another server's change, where a full check disagrees, or where
a name is taken by the same bytes; or every file's (L{BucketListing}),
from the keys, the files' user metadata (or an import), and the markers.
A listing trusts a known record for an object unchanged since a time (less
a margin for the store's clock), so it reads almost nothing of a bucket a
snapshot knows.
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
#: (the listing's own namespace, which log filters match)
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
    """Reads files' states (C{_clock}: a bin marker without a time is binned now)."""

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
    Lists the files, tombstones and markers under a prefix; C{_imports}
    reads what it cannot trust.
    """

    _client: ObjectStore
    _layout: Layout
    _imports: Importer
    _clock_margin: float

    async def _markers(self, prefix: str, client: ObjectStore) -> dict[str, Listed]:
        """The keys under C{prefix} by the rest of their names (markers: a few, unlike files)."""
        found: dict[str, Listed] = {}
        async for page in client.list(prefix):
            found.update((item.key[len(prefix):], item) for item in page.keys)
        return found

    async def scan(self, known: dict[str, FileRecord], since: float, persist: bool = True,
                   client: ObjectStore | None = None) -> ScanResult:
        """
        The records of the bucket's files, trusting C{known} for objects
        unchanged since C{since} and reading the others (with C{client}: a
        paced one for the background check). A page of keys at a time, so a
        million files' listing (some 300 bytes a key) is never held whole.
        """
        client = client or self._client
        layout = self._layout
        trusted_before = since - self._clock_margin if since else 0.0
        deleted = set(await self._markers(layout.deleted_prefix, client))
        yanked = await self._markers(layout.yanked_prefix, client)
        binned = await self._markers(layout.binned_prefix, client)
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
        await self._apply_markers(records, yanked, "yanked", lambda body, _: yank_reason(body),
                                  known, trusted_before, client)
        await self._apply_markers(records, binned, "binned",
                                  lambda body, item: binned_time(body, item.modified),
                                  known, trusted_before, client)
        for record in records.values():
            self._imports.remember(record)
        promotions = await self._promotions(records, client)
        return ScanResult(records=records, tombstones=frozenset(deleted), skipped=tuple(skipped),
                          promotions=promotions)

    async def _promotions(self, records: dict[str, FileRecord],
                          client: ObjectStore) -> dict[str, Promotion]:
        """The promotions of the listed files: one listing, and one read of each."""
        promotions = {}
        for filename, item in (await self._markers(self._layout.promoted_prefix, client)).items():
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
        Set each record's C{field} from its marker (C{read(body, listed)}),
        trusting C{known} for markers unchanged since C{trusted_before}; a
        record without a marker has none.
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
