"""
Whether a bucket can be used, and whether it answers now.

At a start the bucket must exist, answer to the credentials, and honour
C{If-None-Match: *} (some S3-compatible stores did not, until recently: on
them, two uploads of one filename would silently overwrite each other), or
the server refuses to start with a line a person can act on. For
C{/health}, one short listing without retries says whether it answers.
"""

from __future__ import annotations

import attrs

from pypid.storage.interface import StorageError, StorageState
from pypid.storage.s3.api import S3Client, S3Error, S3Unavailable
from pypid.storage.s3.layout import Layout


@attrs.define
class BucketCheck:
    """
    The checks of one bucket and prefix.

    @ivar _client: the L{S3Client}.
    @ivar _layout: the L{Layout} of the prefix.
    @ivar _probe: the name of the object the start-up check writes: this
        server's name in its change markers, so two starting at once do not
        disturb each other.
    """

    _client: S3Client
    _layout: Layout
    _probe: str

    async def usable(self) -> None:
        """
        Check that the bucket answers to the credentials and refuses to
        overwrite; L{StorageError} saying what to fix otherwise.
        """
        bucket = self._client.bucket
        try:
            await self._client.call("GET", "", params=self._one_key())
        except S3Error as e:
            if e.code == "NoSuchBucket" or e.status == 404:
                raise StorageError(f"the bucket {bucket.name} does not exist at {bucket.endpoint}")
            if e.status in (401, 403):
                raise StorageError(
                    f"S3 refused access to the bucket {bucket.name} ({e.code}): check "
                    "the credentials and that they may list, read and write it")
            raise StorageError(f"cannot use the bucket {bucket.name}: {e}")
        except S3Unavailable as e:
            raise StorageError(f"cannot use the bucket {bucket.name}: {e}")
        await self._check_conditional_writes()

    async def _check_conditional_writes(self) -> None:
        """Refuse a store that ignores C{If-None-Match: *}."""
        key = self._layout.probe_key(self._probe)
        client = self._client
        try:
            await client.put(key, b"1", if_none_match=True)
            second = await client.put(key, b"2", if_none_match=True)
        except StorageError as e:
            raise StorageError(f"cannot write to the bucket {client.bucket.name}: {e}")
        finally:
            try:
                await client.delete(key)
            except StorageError:
                pass
        if second:
            raise StorageError(
                f"the store at {client.bucket.endpoint} ignores conditional writes "
                "(If-None-Match: *); pypid needs them so that no upload overwrites another")

    async def state(self) -> StorageState:
        """Whether the bucket answers now (one short listing, not retried); never full."""
        try:
            await self._client.call("GET", "", params=self._one_key(), retry=False)
        except StorageError:
            return "down"
        return "ok"

    def _one_key(self) -> list[tuple[str, str]]:
        """A listing of at most one key of the prefix: the cheapest call that needs access."""
        return [("list-type", "2"), ("max-keys", "1"), ("prefix", self._layout.prefix)]
