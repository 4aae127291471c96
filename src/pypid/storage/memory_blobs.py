"""
Small objects kept by name in memory: the in-memory backend's promotion
journals and project statuses, which a disk keeps as small files under
C{.pypid/} and a bucket as small objects (the same seams as
L{pypid.storage.s3.journal_objects} and L{pypid.storage.s3.status_objects}).
One class for both: in memory they differ in nothing but their names.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.define(eq=False)
class NamedBlobs:
    """Bytes by name; the Deferreds are the storage's, which does everything at once."""

    _kept: dict[str, bytes] = attrs.field(factory=dict, init=False)

    def keep(self, name: str, data: bytes) -> None:
        """Keep C{data} under C{name}, over what was kept there."""
        self._kept[name] = data

    def drop(self, names: Iterable[str]) -> None:
        """Forget C{names} (missing ones are no error)."""
        for name in names:
            self._kept.pop(name, None)

    def all(self) -> dict[str, bytes]:
        """Everything kept, by name (a copy: the caller may change it)."""
        return dict(self._kept)
