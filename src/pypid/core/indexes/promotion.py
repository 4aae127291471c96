"""
A promotion's records: who promoted a file into an index, from which index
and when (L{Promotion}), an index's table of them (L{PromotedFiles}), and
the journal of a promotion under way (L{PromotionJournal}).

A promotion moves a release to another index without its bytes going
through pypid. The L{Promotion} is kept beside the file by the storage, not
in the record: C{FileRecord}'s JSON refuses unknown keys, so a field there
would make every older pypid refuse the records.

A promotion adopts its files one at a time; a crash between two would leave
the target with part of a release that no index lists. So the journal,
written to the target's storage before the first file is adopted and
removed once the target's index holds them all, is taken back by a start
that finds it (L{pypid.state.loader}): each file is discarded as
L{pypid.storage.base.capabilities.IAdoptingStorage.discard_adopted} does,
which leaves alone a file of that name with other bytes (hence whole
records, with their sha256, not only filenames).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Container, Mapping
from typing import Any, Protocol

import attrs

from pypid.core.dists.model import FileRecord


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"not JSON: {e}")


@attrs.frozen
class Promotion:
    """
    How a file came into an index other than by an upload: from the index
    C{source}, C{by} whom (as an upload's C{uploader}), C{at} (POSIX time).
    """

    source: str
    by: str
    at: float

    def to_json(self) -> dict[str, Any]:
        """The value as a JSON object."""
        return {"source": self.source, "by": self.by, "at": self.at}

    @classmethod
    def from_json(cls, data: Any) -> Promotion:
        """The value of what L{to_json} gave, else L{ValueError}."""
        if not isinstance(data, dict) or set(data) != {"source", "by", "at"}:
            raise ValueError("a promotion has source, by and at, and nothing else")
        source, by, at = data["source"], data["by"], data["at"]
        if not isinstance(source, str) or not source or not isinstance(by, str):
            raise ValueError("a promotion's source and by are text")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise ValueError("a promotion's at is a POSIX time")
        return cls(source, by, float(at))

    def to_bytes(self) -> bytes:
        """The JSON bytes a storage keeps beside the promoted file."""
        return json.dumps(self.to_json(), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Promotion:
        """The value of what L{to_bytes} gave, else L{ValueError}."""
        return cls.from_json(_loads(data))


@attrs.frozen
class PromotionJournal:
    """
    A promotion under way.

    @ivar name: unique among the target's journals (the storage's key).
    @ivar records: the files being adopted, as the target stores them.
    """

    name: str
    source: str
    records: tuple[FileRecord, ...]

    def to_bytes(self) -> bytes:
        """The JSON bytes the target's storage keeps."""
        return json.dumps({"name": self.name, "source": self.source,
                           "records": [r.to_json() for r in self.records]},
                          sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PromotionJournal:
        """The journal of what L{to_bytes} gave, else L{ValueError}."""
        parsed = _loads(data)
        if not isinstance(parsed, dict) or set(parsed) != {"name", "source", "records"}:
            raise ValueError("a promotion's journal has name, source and records")
        name, source, records = parsed["name"], parsed["source"], parsed["records"]
        if not isinstance(name, str) or not isinstance(source, str) or not isinstance(
                records, list):
            raise ValueError("a promotion's journal: name and source are text, records a list")
        return cls(name, source, tuple(FileRecord.from_json(r) for r in records))


class RecordHolder(Protocol):
    """Where a promoted file's record may be shared from: its source index."""

    def get_file(self, filename: str, project: str | None = None) -> FileRecord | None:
        """The record of the live file C{filename} (of C{project}), or L{None}."""


@attrs.define
class PromotedFiles:
    """
    The L{Promotion} of each promoted file of one index, by filename, kept
    in step with the index's files (a file removed, discarded or binned is
    no longer promoted).

    A promoted file takes its record's memory once, whatever the number of
    indexes holding it: after a restart, where each index's snapshot made a
    record of its own, the target takes the source's when the two are equal
    (L{shared}; the source found through C{peers(name)}, L{None}: no sharing).
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
        Take into C{records} (by filename) each promoted file's L{shared}
        record; the filenames so taken.
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
        are equal, else C{record}; C{home} holds C{record}, and is no source
        of its own.
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
