"""
Whether a bucket can be used, and whether it answers now.

At a start the bucket must exist, answer to the credentials, and honour
a conditional create (some S3-compatible stores ignored C{If-None-Match: *}
until recently: on them, two uploads of one filename would silently
overwrite each other), or
the server refuses to start with a line a person can act on. For
C{/health}, one short listing without retries says whether it answers.
"""

from __future__ import annotations

import attrs

from pypid.storage.base.interface import StorageError, StorageState
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.store import ObjectStore


@attrs.define
class BucketCheck:
    """
    The checks of one bucket and prefix.

    @ivar _probe: the name of the object the start-up check writes: this
        server's name in its change markers, so two starting at once do not
        disturb each other.
    """

    _client: ObjectStore
    _layout: Layout
    _probe: str

    async def usable(self) -> None:
        """
        Check that the bucket answers to the credentials and refuses to
        overwrite; L{StorageError} saying what to fix otherwise.
        """
        await self._client.answers(self._layout.prefix)
        await self._check_conditional_writes()

    async def _check_conditional_writes(self) -> None:
        """Refuse a store that ignores a conditional create."""
        key = self._layout.probe_key(self._probe)
        client = self._client
        try:
            await client.put(key, b"1", if_none_match=True)
            second = await client.put(key, b"2", if_none_match=True)
        except StorageError as e:
            raise StorageError(f"cannot write to {client.identity()}: {e}")
        finally:
            try:
                await client.delete(key)
            except StorageError:
                pass
        if second:
            raise StorageError(
                f"{client.label} at {client.identity()} ignores conditional writes "
                "(If-None-Match: *); pypid needs them so that no upload overwrites another")

    async def state(self) -> StorageState:
        """Whether the bucket answers now (one short listing, not retried); never full."""
        try:
            await self._client.answers(self._layout.prefix, retry=False)
        except StorageError:
            return "down"
        return "ok"
