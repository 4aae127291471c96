"""
The journal of a promotion under way: which files it is
adopting into the target index, kept in the target's storage before the
first of them is adopted and removed once the target's index holds them
all.

A promotion adopts its files one at a time (a hard link, a copy on the
store's side); a crash between two of them would leave the target with
part of a release that no index lists, nor any answer acknowledged. So a
start that finds a journal takes that promotion back (the target's
loader, before the index serves: L{pypid.state.loader}): each file it
names is discarded as L{pypid.storage.capabilities.IAdoptingStorage.discard_adopted}
does, which leaves alone a file of that name with other bytes. The
records are kept whole, not only the filenames, because that comparison
needs the sha256.

Pure: bytes in, values out.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from pypid.core.dists.model import FileRecord


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
