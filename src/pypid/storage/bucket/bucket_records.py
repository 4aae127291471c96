"""
The records (L{pypid.storage.base.records.IRecords}) of a bucket: objects
under C{<prefix>.pypid/<folder>/}, each one PUT (a new one with
C{If-None-Match: *}, so one of several writers succeeds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from zope.interface import implementer

from pypid.storage.base.records import IRecords, checked, cut_names, is_record_name
from pypid.storage.bucket.store import ObjectStore


@implementer(IRecords)
class BucketRecords:
    """The records as objects under a prefix (C{<prefix>.pypid/<name>/})."""

    shared = True

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        """@param prefix: the records' folder in the bucket (C{packages/.pypid/webhooks/})."""
        self._store = store
        self._prefix = prefix

    def shown(self, name: str) -> str:
        """The object's key."""
        return self._prefix + checked(name)

    def put(self, items: Mapping[str, bytes]) -> Deferred[None]:
        """Write objects one after the other, in order; fires once the last is answered."""
        keys = {self._prefix + checked(name): data for name, data in items.items()}
        return ensureDeferred(self._put(keys))

    async def _put(self, keys: Mapping[str, bytes]) -> None:
        for key, data in keys.items():
            await self._store.put(key, data, "application/json")

    def put_new(self, name: str, data: bytes) -> Deferred[bool]:
        """Write an object with C{If-None-Match: *}."""
        return ensureDeferred(self._store.put(self._prefix + checked(name), data,
                                              "application/json", if_none_match=True))

    def get(self, name: str) -> Deferred[bytes | None]:
        """An object's bytes."""
        return ensureDeferred(self._store.get(self._prefix + checked(name)))

    def delete(self, names: Sequence[str]) -> Deferred[None]:
        """Remove objects, one after the other."""
        return ensureDeferred(self._delete([self._prefix + checked(name) for name in names]))

    async def _delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self._store.delete(key)

    def names(self, folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """The objects directly under a folder, listed (from after C{after}, as the bucket can)."""
        return ensureDeferred(self._names(self._prefix + checked(folder) + "/", after, limit))

    async def _names(self, prefix: str, after: str | None, limit: int | None) -> list[str]:
        found: list[str] = []
        async for page in self._store.list(prefix, None if after is None else prefix + after,
                                           delimiter="/"):
            found.extend(name for item in page.keys
                         if is_record_name(name := item.key[len(prefix):]))
            if limit is not None and len(found) >= limit:
                break
        return cut_names(sorted(found), after, limit)
