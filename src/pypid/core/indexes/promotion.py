"""
Who promoted a file into an index, from which index, and when.

A promotion moves a release from one index to another without its bytes
going through pypid: the target index stores the very file, and the same
L{pypid.core.dists.model.FileRecord} (bytes, hashes, upload time and uploader are
the upload's). What the promotion adds is this small value, kept beside the
promoted file by the storage (L{pypid.storage.capabilities.IAdoptingStorage})
rather than in the record: C{FileRecord}'s JSON refuses unknown keys, so a
field there would make every older pypid refuse the records, and a file
that was only uploaded would pay for it. Only promoted files have one.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs


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
