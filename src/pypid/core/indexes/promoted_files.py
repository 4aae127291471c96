"""
Who promoted each promoted file into an index, from which index and when,
by filename; and the sharing of a promoted file's record with
the index it came from.

A table of its own, apart from the index's records: only promoted files
pay for it, a dict entry each, and a file that was only uploaded pays
nothing. A promoted file takes its record's memory once, whatever the
number of indexes holding it: a promotion puts the source's very record in
the target, and after a restart, where each index's snapshot made a
record of its own, the target takes the source's instead when the two are
equal (L{PromotedFiles.shared}; the source found by its name through the
index's C{peers}). Only promoted files are looked up, and only in an index
given C{peers} (a server of named indexes).

The index keeps it in step with its files (a file removed, discarded or
binned is no longer promoted).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Protocol

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion


class RecordHolder(Protocol):
    """Where a promoted file's record may be shared from: its source index."""

    def get_file(self, filename: str, project: str | None = None) -> FileRecord | None:
        """The record of the live file C{filename} (of C{project}), or L{None}."""


@attrs.define
class PromotedFiles:
    """
    The L{Promotion} of each promoted file of one index, by filename.

    @ivar _peers: C{peers(name)}: the server's hosted index of that name,
        or L{None}; L{None} for no sharing (a server of one index).
    """

    _peers: Callable[[str], RecordHolder | None] | None = None
    _by_file: dict[str, Promotion] = attrs.field(factory=dict)

    def get(self, filename: str) -> Promotion | None:
        """How the file C{filename} was promoted into the index, or L{None} (uploaded)."""
        return self._by_file.get(filename)

    def of(self, files: Container[str]) -> dict[str, Promotion]:
        """The promotions of those C{files} that are promoted, by filename."""
        return {filename: promotion for filename, promotion in self._by_file.items()
                if filename in files}

    def note(self, filename: str, promotion: Promotion) -> None:
        """Note how C{filename} was promoted."""
        self._by_file[filename] = promotion

    def forget(self, filename: str) -> None:
        """Forget C{filename}'s promotion, if any (the file is gone, or binned)."""
        self._by_file.pop(filename, None)

    def replace(self, promotions: Mapping[str, Promotion]) -> None:
        """Take these promotions instead of every one noted."""
        self._by_file = dict(promotions)

    def share_in(self, records: dict[str, FileRecord], home: RecordHolder) -> list[str]:
        """
        Take into C{records} (by filename), for each promoted file among
        them, its source index's record when the two are equal
        (L{shared}); the filenames so taken.
        """
        promoted = self._by_file
        if self._peers is None or not promoted:
            return []
        # (the fewer looked up in the other: a project's few files made
        # later, or the few promoted files of a large index)
        fewer, other = (records, promoted) if len(records) < len(promoted) else (promoted, records)
        taken = []
        for filename in [filename for filename in fewer if filename in other]:
            record = records[filename]
            shared = self.shared(record, home)
            if shared is not record:
                records[filename] = shared
                taken.append(filename)
        return taken

    def shared(self, record: FileRecord, home: RecordHolder) -> FileRecord:
        """
        The source index's record of the promoted file C{record} when the two
        are equal, else C{record} (a file not promoted, a source not hosted
        or not loaded yet, a record that differs).

        @param home: the index that holds C{record}, which is no source of its own.
        """
        promotion = self._by_file.get(record.filename)
        peers = self._peers
        if promotion is None or peers is None:
            return record
        source = peers(promotion.source)
        if source is None or source is home:
            return record
        # (a project of the source loaded later is made by the asking)
        theirs = source.get_file(record.filename, record.project)
        return theirs if theirs is not None and theirs == record else record
