"""
The usage records of a bucket's files (download counts, L{pypid.core.records.usage}):
one small object each under C{.pypid/usage/}, each written once by one
instance under a name of its own, so servers sharing the bucket never
overwrite each other's.

Apart from L{pypid.storage.s3.storage.S3Storage} because the records share
nothing with the files but the bucket: this is L{IUsageStorage}'s half on S3.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from pypid.storage.s3.api import BucketCalls
from pypid.storage.s3.layout import Layout


@attrs.define
class UsageObjects:
    """
    The usage record objects under a prefix.

    @ivar _client: the L{pypid.storage.s3.api.S3Client}.
    @ivar _layout: the L{Layout} of the prefix.
    """

    _client: BucketCalls
    _layout: Layout

    async def add(self, name: str, data: bytes) -> None:
        """Keep the record C{name} (a name is written once)."""
        await self._client.put(self._layout.usage_prefix + name, data,
                               {"content-type": "application/json"})

    async def records(self) -> dict[str, bytes]:
        """Every record kept, by name."""
        return await self._client.read_all(self._layout.usage_prefix)

    async def drop(self, names: Sequence[str]) -> None:
        """Remove the records C{names}, one after another (missing ones are no error)."""
        for name in names:
            await self._client.delete(self._layout.usage_prefix + name)
