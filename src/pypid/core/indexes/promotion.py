"""
A promotion's records: who promoted a file into an index, from which index
and when (L{Promotion}), and the journal of a promotion under way
(L{PromotionJournal}).

A promotion moves a release from one index to another without its bytes
going through pypid: the target index stores the very file, and the same
L{pypid.core.dists.model.FileRecord} (bytes, hashes, upload time and uploader are
the upload's). What the promotion adds is this small value, kept beside the
promoted file by the storage (L{pypid.storage.base.capabilities.IAdoptingStorage})
rather than in the record: C{FileRecord}'s JSON refuses unknown keys, so a
field there would make every older pypid refuse the records, and a file
that was only uploaded would pay for it. Only promoted files have one.

The journal says which files a promotion under way is
adopting into the target index, kept in the target's storage before the
first of them is adopted and removed once the target's index holds them
all.

A promotion adopts its files one at a time (a hard link, a copy on the
store's side); a crash between two of them would leave the target with
part of a release that no index lists, nor any answer acknowledged. So a
start that finds a journal takes that promotion back (the target's
loader, before the index serves: L{pypid.state.loader}): each file it
names is discarded as L{pypid.storage.base.capabilities.IAdoptingStorage.discard_adopted}
does, which leaves alone a file of that name with other bytes. The
records are kept whole, not only the filenames, because that comparison
needs the sha256.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs

from pypid.core.dists.model import FileRecord


@attrs.frozen
class Promotion:
    """
    How a file came into an index other than by an upload.

    @ivar source: the name of the index the file was promoted from.
    @ivar by: who promoted it (the identity's name, as an upload's
        C{uploader} is).
    @ivar at: when (POSIX time).
    """

    source: str
    by: str
    at: float

    def to_json(self) -> dict[str, Any]:
        """The value as a JSON object."""
        return {"source": self.source, "by": self.by, "at": self.at}

    @classmethod
    def from_json(cls, data: Any) -> Promotion:
        """
        The value a JSON object gives.

        @raise ValueError: when C{data} is not one L{to_json} gives.
        """
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
        """
        The value L{to_bytes} gave.

        @raise ValueError: for bytes it did not give.
        """
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"not JSON: {e}")
        return cls.from_json(parsed)


@attrs.frozen
class PromotionJournal:
    """
    A promotion under way.

    @ivar name: unique among the target's journals (the storage's key).
    @ivar source: the index the files come from.
    @ivar records: the files being adopted, as the target stores them
        (their path their filename).
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
        """
        The journal L{to_bytes} gave.

        @raise ValueError: for bytes it did not give.
        """
        try:
            parsed: Any = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"not JSON: {e}")
        if not isinstance(parsed, dict) or set(parsed) != {"name", "source", "records"}:
            raise ValueError("a promotion's journal has name, source and records")
        name, source, records = parsed["name"], parsed["source"], parsed["records"]
        if not isinstance(name, str) or not isinstance(source, str) or not isinstance(
                records, list):
            raise ValueError("a promotion's journal: name and source are text, records a list")
        return cls(name, source, tuple(FileRecord.from_json(r) for r in records))
