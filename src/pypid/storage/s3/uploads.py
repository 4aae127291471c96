"""
How S3 writes a large file, and copies one conditionally: the parts of
its multipart protocol that L{pypid.storage.s3.api.S3Client} needs for
L{pypid.storage.bucket.store.ObjectStore.put_file} and C{copy}.

A file above the threshold is a multipart upload, streamed from the
spool folder, its parts hashed in the thread pool, completed with
C{If-None-Match: *}; aborted whenever it fails, so no parts are left to
pay for.

A copy must not overwrite either, and not every store honours
C{If-None-Match: *} on C{CopyObject} (moto 5 ignores it; a store that
ignores it on C{PUT} is refused at start-up). So the first conditional
copy asks the store, with two probe objects, whether a conditional copy
is refused over an object; where it is, a file is one C{CopyObject}, and
elsewhere a multipart upload of one part copied on the store's side
(C{UploadPartCopy}) completed with C{If-None-Match: *}, the same
conditional completion a large upload relies on: three requests rather
than one, and still never a byte through pypid, nor a window in which two
servers both find the name free and both write it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Protocol

from twisted.logger import Logger

from pypid.core.util.s3_limits import MAX_PARTS, MIN_PART_SIZE
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.http_calls import Answer, Body, FileRangeProducer
from pypid.storage.bucket.store import ObjectHead
from pypid.storage.s3.sign import Bucket
from pypid.storage.s3.wire import (
    S3Error,
    S3Unavailable,
    complete_body,
    copy_source,
    parse_error,
    parse_upload_id,
)


class _Client(Protocol):
    """The calls of L{pypid.storage.s3.api.S3Client} that uploads and copies make."""

    bucket: Bucket

    async def call(self, method: str, key: str = "", params: Sequence[tuple[str, str]] = (),
                   headers: dict[str, str] | None = None, body: Body = b"",
                   payload_sha256: str | None = None, ok: tuple[int, ...] = (200,),
                   limit: int = 1 << 20, stream: bool = False, retry: bool = True,
                   expect: int = 0) -> Answer:
        """A signed request."""
        ...

    async def copy_object(self, key: str, source: str, headers: dict[str, str] | None = None,
                          if_none_match: bool = False,
                          params: Sequence[tuple[str, str]] = ()) -> str | None:
        """A C{CopyObject} or C{UploadPartCopy}."""
        ...

    async def head(self, key: str) -> ObjectHead | None:
        """An object's head."""
        ...

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """A small object."""
        ...

    async def delete(self, key: str) -> None:
        """No object."""
        ...

log = Logger()

def _sha256_range(path: str, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            data = f.read(min(1 << 20, length))
            if not data:
                break
            digest.update(data)
            length -= len(data)
    return digest.hexdigest()


#: The largest object one C{CopyObject} (or one C{UploadPartCopy}) copies.
MAX_COPY_SIZE = 5 << 30


def part_size(size: int, threshold: int) -> int:
    """The part size for a multipart upload of C{size} bytes."""
    return max(threshold, MIN_PART_SIZE, -(-size // MAX_PARTS))


class Uploads:
    """
    The multipart uploads and conditional copies of one
    L{pypid.storage.s3.api.S3Client}.

    @ivar _client: the client.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work (reading
        and hashing the spooled file).
    @ivar _threshold: the size above which a file is uploaded in parts.
    @ivar _probe_prefix: where the conditional copy probe writes.
    @ivar _conditional_copy: whether the store refuses a conditional copy
        over an object (L{None}: not asked yet); see the module.
    """

    def __init__(self, client: _Client, run: Run, threshold: int, probe_prefix: str) -> None:
        self._client = client
        self._run = run
        self._threshold = threshold
        self._probe_prefix = probe_prefix
        self._conditional_copy: bool | None = None

    async def write_file(self, key: str, temp_path: str, size: int, sha256: str,
                         headers: dict[str, str]) -> bool:
        """
        Write the spooled file at C{temp_path} as the object C{key}, with
        C{headers}, unless an object has that key.

        @return: whether the object was written.
        """
        if size > self._threshold:
            return await self._multipart(key, temp_path, size, sha256, headers)
        response = await self._client.call(
            "PUT", key, headers=dict(headers, **{"if-none-match": "*"}),
            body=partial(self._producer, temp_path, 0, size),
            payload_sha256=sha256, ok=(200, 412))
        return response.code == 200

    async def copy_file(self, key: str, source: str, size: int,
                        headers: dict[str, str]) -> bool:
        """
        Copy the object at C{source} (an C{x-amz-copy-source}) to C{key} on
        the store's side, with its metadata, unless an object has that
        key; see the module.

        @param headers: the new object's user metadata and content type.
        @return: whether the object was written.
        @raise FileNotFoundError: when there is no object at C{source}.
        """
        if size > MAX_COPY_SIZE:
            raise StorageError(f"cannot copy {key}: larger than the "
                               f"{MAX_COPY_SIZE >> 30} GiB one copy in S3 can be")
        if await self._copies_conditionally():
            # (the new object's metadata, as a copy in parts gives it)
            replace = dict(headers, **{"x-amz-metadata-directive": "REPLACE"})
            return await self._client.copy_object(key, source, replace,
                                                  if_none_match=True) is not None
        return await self._copy_in_parts(key, source, headers)

    async def _copies_conditionally(self) -> bool:
        """Whether the store refuses C{CopyObject} with C{If-None-Match: *} over an object."""
        if self._conditional_copy is None:
            client = self._client
            probe = f"{self._probe_prefix}copy-{uuid.uuid4().hex[:12]}-"
            try:
                await client.put(probe + "a", b"a")
                await client.put(probe + "b", b"b")
                try:
                    refused = await client.copy_object(
                        probe + "b", copy_source(client.bucket.name, probe + "a"),
                        if_none_match=True) is None
                except S3Error:
                    refused = False  # (a store that does not take the header at all)
            finally:
                for name in ("a", "b"):
                    try:
                        await client.delete(probe + name)
                    except StorageError:
                        pass
            self._conditional_copy = refused
            log.info("The store {how} conditional copies: a promotion copies each file "
                     "{way}", how="honours" if refused else "ignores",
                     way="in one request" if refused else "as a one-part multipart upload")
        return self._conditional_copy

    async def _copy_in_parts(self, key: str, source: str, headers: dict[str, str]) -> bool:
        """
        A multipart upload of one part copied on the store's side, made the
        object only if no object has the key; aborted whenever it fails.

        @return: whether the object was written.
        """
        async def part(ident: list[tuple[str, str]]) -> list[str]:
            etag = await self._client.copy_object(key, source, params=[("partNumber", "1"), *ident])
            return [etag or ""]
        return await self._in_parts(key, headers, part, "multipart copy")

    def _producer(self, path: str, offset: int, length: int) -> FileRangeProducer:
        return FileRangeProducer(path, offset, length, self._run)

    async def _multipart(self, key: str, temp_path: str, size: int, sha256: str,
                         headers: dict[str, str]) -> bool:
        """
        Upload in parts, streamed from the spooled file; the parts become
        the object only if no object has the key (C{If-None-Match} on the
        completion). A failed upload is aborted, so no parts are left to pay
        for.

        @return: whether the object was written.
        """
        async def parts(ident: list[tuple[str, str]]) -> list[str]:
            part = part_size(size, self._threshold)
            etags = []
            for number, offset in enumerate(range(0, size, part), 1):
                length = min(part, size - offset)
                digest = await self._run(_sha256_range, temp_path, offset, length)
                response = await self._client.call(
                    "PUT", key, params=[("partNumber", str(number)), *ident],
                    body=partial(self._producer, temp_path, offset, length),
                    payload_sha256=digest)
                etags.append(response.headers.get("etag", ""))
            return etags
        return await self._in_parts(key, headers, parts, "multipart upload", sha256)

    async def _in_parts(self, key: str, headers: dict[str, str],
                        parts: Callable[[list[tuple[str, str]]], Awaitable[list[str]]],
                        what: str, sha256: str | None = None) -> bool:
        """
        A multipart upload (the one way S3 writes a large object, or copies
        one on its side, only if no object has the key): made, its parts
        sent by C{parts(ident)} (their ETags), then completed with
        C{If-None-Match}; aborted whenever it fails, so no parts are left
        to pay for.

        @param what: what it is, for the error a completion answers in its body.
        @param sha256: the object's, when a completion may be retried: one
            whose answer was lost then finds the upload gone (C{NoSuchUpload})
            and the object there, with this hash; L{None}: not retried.
        @return: whether the object was written (not when one had the key).
        """
        client = self._client
        created = await client.call("POST", key, params=[("uploads", "")], headers=headers,
                                    retry=False)
        upload_id = parse_upload_id(created.body)
        if not upload_id:
            raise S3Unavailable("S3 gave no upload id for a multipart upload")
        ident = [("uploadId", upload_id)]
        try:
            etags = await parts(ident)
            try:
                response = await client.call(
                    "POST", key, params=ident, body=complete_body(etags),
                    headers={"if-none-match": "*", "content-type": "application/xml"},
                    ok=(200, 412), retry=sha256 is not None, limit=1 << 20)
            except S3Error as e:
                # A retry after a lost answer finds the upload completed.
                existing = (await client.head(key)
                            if sha256 is not None and e.code == "NoSuchUpload" else None)
                if existing is None or existing.metadata.get("sha256") != sha256:
                    raise
                return True
            # S3 may answer 200 and put the error in the body.
            if response.code == 200 and b"<Error>" in response.body:
                raise S3Unavailable(f"S3 could not complete the {what}: "
                                    + parse_error(200, response.body)[0])
        except BaseException:
            await self._abort(key, ident)
            raise
        if response.code == 412:
            await self._abort(key, ident)
            return False
        return True

    async def _abort(self, key: str, ident: list[tuple[str, str]]) -> None:
        """Abort a multipart upload (a failure is only logged)."""
        try:
            await self._client.call("DELETE", key, params=ident, ok=(200, 204, 404))
        except StorageError as e:
            log.warn("Cannot abort the multipart upload of {key}: {error}",
                     key=key, error=str(e))
