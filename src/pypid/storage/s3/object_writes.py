"""
Writing a stored file's objects to the bucket: the file itself, streamed
from the spool folder (one conditional C{PUT}, or, above a threshold, a
multipart upload completed conditionally), and its metadata sibling and
details beside it; or, for a promotion, copied on the store's side from
another index's object (L{ObjectWriter.copy_file}), never overwriting.

A copy must not overwrite either, and not every store honours
C{If-None-Match: *} on C{CopyObject} (moto 5 ignores it; a store that
ignores it on C{PUT} is refused at start-up). So the first promotion
asks the store, with two probe objects, whether a conditional copy is
refused over an object; where it is, a file is one C{CopyObject}, and
elsewhere a multipart upload of one part copied on the store's side
(C{UploadPartCopy}) completed with C{If-None-Match: *}, the same
conditional completion a large upload relies on: three requests rather
than one, and still never a byte through pypid, nor a window in which two
servers both find the name free and both write it.

Apart from L{pypid.storage.s3.storage.S3Storage} because this is all that
speaks S3's multipart protocol (parts hashed in the thread pool, an upload
aborted whenever it fails, so no parts are left to pay for), and the
storage only decides what to write: when the name is dead, whose the
object is when it was there already.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.util.s3_limits import MAX_PARTS, MIN_PART_SIZE
from pypid.jobs.gather import gather
from pypid.storage.interface import Run, StorageError
from pypid.storage.s3.api import (
    BucketCalls,
    FileRangeProducer,
    S3Client,
    S3Error,
    S3Unavailable,
    complete_body,
    copy_source,
    parse_error,
    parse_upload_id,
)
from pypid.storage.s3.layout import Layout
from pypid.storage.s3.sign import Bucket

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


async def _together(writes: Sequence[Coroutine[Any, Any, Any]]) -> None:
    """Run C{writes} at once; the first failure is raised once they are all done."""
    await gather([ensureDeferred(write) for write in writes])


@attrs.frozen
class CopySources:
    """
    Where a promotion copies a stored file's objects from: their
    C{x-amz-copy-source}s in the source index's prefix, and the store they
    are in (a copy on the store's side is within one endpoint).

    @ivar provenance: the provenance object's, when the record names one.
    """

    endpoint: str
    file: str
    metadata: str
    details: str
    provenance: str | None

    @classmethod
    def of(cls, bucket: Bucket, layout: Layout, record: FileRecord) -> CopySources:
        """The objects C{record}'s file has under C{layout} in C{bucket}."""
        digest = record.provenance_sha256
        return cls(
            endpoint=bucket.endpoint,
            file=copy_source(bucket.name, layout.file_key(record.path)),
            metadata=copy_source(bucket.name, layout.metadata_key(record.path)),
            details=copy_source(bucket.name, layout.details_key(record.filename)),
            provenance=None if digest is None else copy_source(
                bucket.name, layout.provenance_key(record.filename, digest)))


@attrs.define(eq=False)
class ObjectWriter:
    """
    Writes files and what is kept beside them.

    @ivar _client: the L{S3Client}.
    @ivar _layout: the L{Layout} of the prefix.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work (reading
        the spooled file).
    @ivar _threshold: the size above which a file is uploaded in parts.
    """

    _client: S3Client
    _layout: Layout
    _run: Run
    _threshold: int
    # Whether the store refuses a conditional copy over an object (L{None}:
    # not asked yet); see the module.
    _conditional_copy: bool | None = attrs.field(default=None, init=False)

    async def write_file(self, key: str, temp_path: str, record: FileRecord,
                         headers: dict[str, str]) -> bool:
        """
        Write the spooled file at C{temp_path} as the object C{key}, with
        C{headers}, unless an object has that key.

        @return: whether the object was written.
        """
        if record.size > self._threshold:
            return await self._multipart(key, temp_path, record, headers)
        response = await self._client.call(
            "PUT", key, headers=dict(headers, **{"if-none-match": "*"}),
            body=partial(self._producer, temp_path, 0, record.size),
            payload_sha256=record.sha256, ok=(200, 412))
        return response.code == 200

    async def copy_file(self, key: str, source: str, record: FileRecord,
                        headers: dict[str, str]) -> bool:
        """
        Copy the object at C{source} (an C{x-amz-copy-source}) to C{key} on
        the store's side, unless an object has that key; see the module.

        @param headers: the new object's user metadata and content type
            (for a copy in parts; a C{CopyObject} keeps the source's, the
            same by construction).
        @return: whether the object was written.
        @raise FileNotFoundError: when there is no object at C{source}.
        """
        if record.size > MAX_COPY_SIZE:
            raise StorageError(f"cannot promote {record.filename}: larger than the "
                               f"{MAX_COPY_SIZE >> 30} GiB one copy in the store can be")
        if await self._copies_conditionally():
            return await self._client.copy(key, source, if_none_match=True) is not None
        return await self._copy_in_parts(key, source, headers)

    async def _copies_conditionally(self) -> bool:
        """Whether the store refuses C{CopyObject} with C{If-None-Match: *} over an object."""
        if self._conditional_copy is None:
            client = self._client
            probe = self._layout.probe_key(f"copy-{uuid.uuid4().hex[:12]}-")
            try:
                await client.put(probe + "a", b"a")
                await client.put(probe + "b", b"b")
                try:
                    refused = await client.copy(
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
            etag = await self._client.copy(key, source, params=[("partNumber", "1"), *ident])
            return [etag or ""]
        return await self._in_parts(key, headers, part, "multipart copy")

    async def copy_beside(self, source: CopySources, filename: str,
                          extra: Sequence[Coroutine[Any, Any, Any]] = ()) -> None:
        """
        Copy a file's metadata sibling and details from another index's
        prefix (C{source}) beside its copy here, those it has, on the
        store's side; replaced, as an upload's are. The copies, and the
        C{extra} writes given, are made at once: a promotion waits for six
        rounds of requests a file rather than eight (on moto, ten files
        took 1.0 to 1.4 s either way: the noise of a shared machine).
        """
        await _together([
            self._copy_or_remove(source.metadata, self._layout.metadata_key(filename)),
            self._copy_or_remove(source.details, self._layout.details_key(filename)),
            *extra])

    async def _copy_or_remove(self, source: str, key: str) -> None:
        """Copy C{source} to C{key}, or remove C{key} when there is no C{source}."""
        try:
            await self._client.copy(key, source)
        except FileNotFoundError:
            await self._client.delete(key)

    async def keep_beside(self, record: FileRecord, metadata: bytes | None,
                          details: bytes | None, client: BucketCalls | None = None) -> None:
        """Write a file's metadata sibling and its details, those it has."""
        client = client or self._client
        if metadata is not None:
            await client.put(self._layout.metadata_key(record.path), metadata,
                             {"content-type": "application/octet-stream"})
        if details is not None:
            await client.put(self._layout.details_key(record.filename), details,
                             {"content-type": "application/json"})

    async def forget(self, key: str) -> None:
        """Remove the object of an upload that failed (a failure is only logged)."""
        try:
            await self._client.delete(key)
        except StorageError as e:
            log.warn("Cannot remove {key} after a failed upload: {error}", key=key, error=str(e))

    def _producer(self, path: str, offset: int, length: int) -> FileRangeProducer:
        return FileRangeProducer(path, offset, length, self._run)

    async def _multipart(self, key: str, temp_path: str, record: FileRecord,
                         headers: dict[str, str]) -> bool:
        """
        Upload in parts, streamed from the spooled file; the parts become
        the object only if no object has the key (C{If-None-Match} on the
        completion). A failed upload is aborted, so no parts are left to pay
        for.

        @return: whether the object was written.
        """
        async def parts(ident: list[tuple[str, str]]) -> list[str]:
            size = part_size(record.size, self._threshold)
            etags = []
            for number, offset in enumerate(range(0, record.size, size), 1):
                length = min(size, record.size - offset)
                digest = await self._run(_sha256_range, temp_path, offset, length)
                response = await self._client.call(
                    "PUT", key, params=[("partNumber", str(number)), *ident],
                    body=partial(self._producer, temp_path, offset, length),
                    payload_sha256=digest)
                etags.append(response.headers.get("etag", ""))
            return etags
        return await self._in_parts(key, headers, parts, "multipart upload", record.sha256)

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
                if existing is None or existing.get("x-amz-meta-sha256") != sha256:
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
