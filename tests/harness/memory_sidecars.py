"""
What the in-memory backend keeps beside each file, by filename: the
local backend's sidecars (L{pypid.storage.folder.sidecars}) as dicts. Apart from
L{tests.harness.memory_storage.MemoryStorage} so that the storage's operations read
as what they do to a file, and the ways a file's kept state is replaced or
forgotten are written once.
"""

from __future__ import annotations

import attrs

from pypid.core.dists.distribution import Inspected
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion


@attrs.define(eq=False)
class MemorySidecars:
    """
    The records, metadata, details, provenance, promotions and tombstones of
    a storage's files.

    @ivar records: the records (C{.pypid/files/*.json} on disk).
    @ivar metadata: the core metadata.
    @ivar details: the details for the pages for people.
    @ivar provenance: the provenance objects (PEP 740).
    @ivar tombstones: the deleted filenames, with the time of the delete.
    @ivar changed: when each name last changed through this storage (for
        a scan's trust of a snapshot).
    @ivar unwritten: metadata of objects without a record read by a scan
        that did not persist: the local backend's memory of them.
    @ivar promotions: who promoted each adopted file, and when.
    """

    records: dict[str, FileRecord] = attrs.field(factory=dict)
    metadata: dict[str, bytes] = attrs.field(factory=dict)
    details: dict[str, bytes | None] = attrs.field(factory=dict)
    provenance: dict[str, bytes] = attrs.field(factory=dict)
    tombstones: dict[str, float] = attrs.field(factory=dict)
    changed: dict[str, float] = attrs.field(factory=dict)
    unwritten: dict[str, bytes] = attrs.field(factory=dict)
    promotions: dict[str, Promotion] = attrs.field(factory=dict)

    def imported(self, filename: str, inspected: Inspected, now: float,
                 persist: bool) -> FileRecord:
        """
        The record of bytes found without one, described at C{now}: kept
        with what goes beside it when C{persist}, else only their metadata,
        aside (L{unwritten}).
        """
        if not persist:
            if inspected.metadata is not None:
                self.unwritten[filename] = inspected.metadata
            else:
                self.unwritten.pop(filename, None)
            return inspected.record
        self.records[filename] = inspected.record
        self.keep(filename, inspected.metadata, inspected.details)
        self.changed[filename] = now
        return inspected.record

    def keep(self, filename: str, metadata: bytes | None, details: bytes | None) -> None:
        """Keep a file's metadata and details, forgetting older ones it has not."""
        self.unwritten.pop(filename, None)
        for kept, data in ((self.metadata, metadata), (self.details, details)):
            if data is not None:
                kept[filename] = data
            else:
                kept.pop(filename, None)

    def metadata_of(self, filename: str) -> bytes | None:
        """A file's metadata: what a scan that did not persist read first, as it is newer."""
        data = self.unwritten.get(filename)
        return data if data is not None else self.metadata.get(filename)

    def forget(self, filename: str) -> None:
        """Forget everything kept beside a file but its tombstone and when it changed."""
        for kept in (self.metadata, self.unwritten, self.details, self.provenance,
                     self.records, self.promotions):
            kept.pop(filename, None)
