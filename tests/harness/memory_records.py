"""
Records in memory for the tests: L{MemoryRecords}, an
L{pypid.storage.base.records.IRecords} whose records are a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred
from zope.interface import implementer

from pypid.storage.base.records import IRecords, checked, cut_names, is_record_name

_T = TypeVar("_T")


@implementer(IRecords)
class MemoryRecords:
    """The records in a dict, for the tests; C{shared} as the test says."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.records: dict[str, bytes] = {}
        #: set to an exception to make every call fail with it
        self.failing: Exception | None = None

    def shown(self, name: str) -> str:
        """The record's name."""
        return checked(name)

    def _call(self, work: Callable[[], _T]) -> Deferred[_T]:
        if self.failing is not None:
            return fail(self.failing)
        return maybeDeferred(work)

    def put(self, items: Mapping[str, bytes]) -> Deferred[None]:
        """Keep the records."""
        kept = {checked(name): bytes(data) for name, data in items.items()}
        return self._call(lambda: self.records.update(kept))

    def put_new(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep the record if none of its name is kept."""
        checked(name)

        def put() -> bool:
            if name in self.records:
                return False
            self.records[name] = bytes(data)
            return True
        return self._call(put)

    def get(self, name: str) -> Deferred[bytes | None]:
        """A record's bytes."""
        checked(name)
        return self._call(lambda: self.records.get(name))

    def delete(self, names: Sequence[str]) -> Deferred[None]:
        """Forget the records."""
        gone = [checked(name) for name in names]

        def delete() -> None:
            for name in gone:
                self.records.pop(name, None)
        return self._call(delete)

    def names(self, folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """The records directly in a folder."""
        prefix = checked(folder) + "/"
        return self._call(lambda: cut_names(sorted(
            name[len(prefix):] for name in self.records
            if name.startswith(prefix) and is_record_name(name[len(prefix):])), after, limit))
