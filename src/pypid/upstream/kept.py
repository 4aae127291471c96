"""
The records of the upstream files the cache's storage keeps, by filename:
one table the pages, the downloads (which alone write it), the snapshot
and pre-caching read.

It is also the order of the cache's eviction (C{[upstream]
max_cache_size}): the records are held least recently downloaded first
(a dict's order: L{touch} moves a file to the end, 0.2 us), so the files
to evict are the first ones (L{over}). The snapshot keeps that order, so a
restart keeps it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.names_by_project import NamesByProject


@attrs.define
class KeptFiles:
    """C{filename -> FileRecord} of the files kept in the cache's storage."""

    _records: dict[str, FileRecord] = attrs.field(factory=dict)
    #: the bytes of the files kept, together
    size: int = 0
    #: the files pre-caching asked for, which may be protected from eviction
    _pinned: set[str] = attrs.field(factory=set)
    #: moves at every file kept or removed (the snapshot is saved again)
    changes: int = 0
    #: the filenames kept of each project, without a walk of them all
    _by_project: NamesByProject = attrs.field(factory=NamesByProject)

    def of_project(self, project: str) -> list[str]:
        """The filenames kept of the normalized C{project}."""
        return sorted(self._by_project.of(project))

    def get(self, filename: str) -> FileRecord | None:
        """The record of C{filename}, or L{None} when it is not kept."""
        return self._records.get(filename)

    def __contains__(self, filename: str) -> bool:
        return filename in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[FileRecord]:
        """The records, the least recently downloaded first."""
        return iter(self._records.values())

    def put(self, record: FileRecord) -> None:
        """C{record}'s file is kept (in place of any record of that name), as the newest."""
        records = self._records
        previous = records.pop(record.filename, None)
        if previous is not None:
            self.size -= previous.size
            self._by_project.discard(previous.project, previous.filename)
        records[record.filename] = record
        self._by_project.add(record.project, record.filename)
        self.size += record.size
        self.changes += 1

    def touch(self, filename: str) -> None:
        """C{filename} was downloaded: the last to be evicted from now on."""
        record = self._records.pop(filename, None)
        if record is not None:
            self._records[filename] = record

    def remove(self, filename: str) -> FileRecord | None:
        """Forget C{filename} (evicted); its record, or L{None}."""
        record = self._records.pop(filename, None)
        if record is not None:
            self._by_project.discard(record.project, record.filename)
            self.size -= record.size
            self.changes += 1
        return record

    def pin(self, filename: str) -> bool:
        """Pre-caching asked for C{filename}; whether it was not pinned before."""
        new = filename not in self._pinned
        self._pinned.add(filename)
        return new

    def pinned(self) -> list[str]:
        """The pinned files kept, for the snapshot."""
        return sorted(name for name in self._pinned if name in self._records)

    def take_pins(self, filenames: Iterable[str]) -> None:
        """The pins a snapshot kept."""
        self._pinned = set(filenames)

    def over(self, cap: int, protect_pinned: bool, busy: Iterable[str] = ()) -> list[FileRecord]:
        """
        The files to evict, least recently downloaded first, so that what
        stays takes at most C{cap} bytes (fewer when only pinned or C{busy}
        files are left: those are never chosen).
        """
        excess = self.size - cap
        if excess <= 0:
            return []
        skip = set(busy)
        if protect_pinned:
            skip |= self._pinned
        chosen = []
        for filename, record in self._records.items():
            if filename in skip:
                continue
            chosen.append(record)
            excess -= record.size
            if excess <= 0:
                break
        return chosen

    def clear(self) -> None:
        """Forget every record (before learning again what the storage holds)."""
        self._records = {}
        self._by_project.clear()
        self.size = 0
