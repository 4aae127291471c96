"""
The projects' statuses (PEP 792) in a bucket: one small object a project
under C{.pypid/projects/}, read whole at a start.

Apart from L{pypid.storage.s3.storage.S3Storage} because a status is no
file's: it leaves no change marker, and another server learns it at its
next start.
"""

from __future__ import annotations

import attrs

from pypid.storage.s3.api import BucketCalls
from pypid.storage.s3.layout import Layout


@attrs.define
class StatusObjects:
    """
    The status objects under a prefix.

    @ivar _client: the L{pypid.storage.s3.api.S3Client}.
    @ivar _layout: the L{Layout} of the prefix.
    """

    _client: BucketCalls
    _layout: Layout

    async def keep(self, project: str, data: bytes | None) -> None:
        """Keep the status of the normalized C{project}, or remove it (L{None})."""
        key = self._layout.statuses_prefix + project
        if data is None:
            await self._client.delete(key)
        else:
            await self._client.put(key, data)

    async def all(self) -> dict[str, bytes]:
        """Every status kept, by normalized project."""
        return await self._client.read_all(self._layout.statuses_prefix)
