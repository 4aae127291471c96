"""
The records of the upstream files the cache's storage keeps, by filename.

One table read by the three sides of the upstream cache: the pages
(a kept file's hash wins over the page's, L{pypid.upstream.page_view}),
the downloads that add to it (L{pypid.upstream.downloads}), and the
snapshot and pre-caching (L{pypid.upstream.upkeep}). Only the downloads
side writes it.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from pypid.core.model import FileRecord


@attrs.define
class KeptFiles:
    """C{filename -> FileRecord} of the files kept in the cache's storage."""

    _records: dict[str, FileRecord] = attrs.field(factory=dict)

    def get(self, filename: str) -> FileRecord | None:
        """The record of C{filename}, or L{None} when it is not kept."""
        return self._records.get(filename)

    def __contains__(self, filename: str) -> bool:
        return filename in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[FileRecord]:
        """The records, in the order they were kept."""
        return iter(self._records.values())

    def put(self, record: FileRecord) -> None:
        """C{record}'s file is kept (in place of any record of that name)."""
        self._records[record.filename] = record

    def clear(self) -> None:
        """Forget every record (before learning again what the storage holds)."""
        self._records = {}
