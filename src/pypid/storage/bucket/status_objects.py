"""
The projects' statuses (PEP 792) in a bucket: one object a project under
C{.pypid/projects/}. A change is told in the journal, as a file's is, but
before L{StatusObjects.keep} returns: an import keeps a quarantine before
the project's files, whose entries must never come before it.
"""

from __future__ import annotations

import attrs

from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.markers import BucketChanges
from pypid.storage.bucket.store import ObjectStore, read_all


async def read_status(client: ObjectStore, layout: Layout, project: str) -> bytes | None:
    """The status object of the normalized C{project} now, or L{None} (active)."""
    return await client.get(layout.statuses_prefix + project)


@attrs.define
class StatusObjects:
    """The status objects under a prefix, each change told to C{_changes}."""

    _client: ObjectStore
    _layout: Layout
    _changes: BucketChanges

    async def keep(self, project: str, data: bytes | None) -> None:
        """
        Keep the status of C{project}, or remove it (L{None}), then tell it;
        L{pypid.storage.base.interface.StorageError}: not written yet.
        """
        key = self._layout.statuses_prefix + project
        if data is None:
            await self._client.delete(key)
        else:
            await self._client.put(key, data)
        await self._changes.tell_status(project)

    async def all(self, client: ObjectStore | None = None) -> dict[str, bytes]:
        """Every status kept, by normalized project (read with C{client}, or the storage's)."""
        return await read_all(client or self._client, self._layout.statuses_prefix)
