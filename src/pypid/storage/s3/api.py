"""
S3 as an object store (L{pypid.storage.bucket.store.ObjectStore}): the
calls pypid makes of one bucket, signed by L{pypid.storage.s3.sign}.
User metadata travels as C{x-amz-meta-*} headers; a create refuses an
existing name with C{If-None-Match: *}; a large file, and a conditional
copy where the store ignores the condition, is a multipart upload
(L{Uploads}).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from hashlib import md5, sha256
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.metrics import Timings
from pypid.core.util.s3_limits import MAX_PARTS, MIN_PART_SIZE
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.http_calls import (
    Answer,
    Body,
    FileRangeProducer,
    HeaderMetadataClient,
)
from pypid.storage.bucket.store import Creation, ListPage, ObjectRef
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import EMPTY_SHA256, Bucket, presign, sign
from pypid.storage.s3.wire import (
    S3Error,
    S3Unavailable,
    complete_body,
    copy_source,
    location_body,
    parse_copy_etag,
    parse_error,
    parse_list,
    parse_upload_id,
    public_access_block_body,
)

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.s3.uploads")

#: The prefix of S3's user metadata headers.
META = "x-amz-meta-"


def _refused(status: int, body: bytes, headers: dict[str, str]) -> StorageError:
    error, message = parse_error(status, body)
    if status >= 500 or error == "ConditionalRequestConflict":
        return S3Unavailable(f"S3 failed: {status} {error}")
    return S3Error(status, error, message)


def _headers(content_type: str | None, metadata: Mapping[str, str] | None) -> dict[str, str]:
    headers = {META + name: value for name, value in (metadata or {}).items()}
    if content_type is not None:
        headers["content-type"] = content_type
    return headers


class S3Client(HeaderMetadataClient):
    """Signed calls to one L{pypid.storage.s3.sign.Bucket}."""

    label = "S3"
    kind = "s3"
    missing_codes = frozenset({"NoSuchBucket"})
    access_hint = "the credentials and that they may list, read and write it"
    _credentials: CredentialSource

    @staticmethod
    def metadata_of(headers: Mapping[str, str]) -> dict[str, str]:
        """The user metadata in an answer's headers."""
        return {name[len(META):]: value for name, value in headers.items()
                if name.startswith(META)}

    def __init__(self, bucket: Bucket, credentials: CredentialSource, http: Any,
                 clock: IReactorTime, timeout: float = 30.0, parallel: int = 16,
                 timings: Timings | None = None, *, run: Run,
                 multipart_threshold: int = 64 << 20, probe_prefix: str = ".pypid/probe/",
                 shared: bool = False) -> None:
        """
        @param multipart_threshold: the size above which a file is uploaded in parts.
        @param probe_prefix: where the objects that learn how the store
            behaves are written (and removed at once).
        """
        self.bucket = bucket
        super().__init__(bucket.endpoint, bucket.name, credentials, http, clock, timeout,
                         S3Unavailable, parallel, timings, shared)
        self._uploads = Uploads(self, run, multipart_threshold, probe_prefix)

    def identity(self) -> str:
        """The bucket, as C{s3://name/}."""
        return f"s3://{self.bucket.name}/"

    async def call(self, method: str, key: str = "", params: Sequence[tuple[str, str]] = (),
                   headers: dict[str, str] | None = None, body: Body = b"",
                   payload_sha256: str | None = None, ok: tuple[int, ...] = (200,),
                   limit: int = 1 << 20, stream: bool = False, retry: bool = True,
                   expect: int = 0) -> Answer:
        """
        Make one call (L{StoreHTTP.send}): L{S3Error} for another 4xx,
        L{S3Unavailable} when the store fails.

        @param payload_sha256: the body's digest, when it is a producer.
        """
        region = self.bucket.region

        def signed(method: str, url: str, headers: dict[str, str],
                   data: bytes | FileRangeProducer) -> dict[str, str]:
            digest = payload_sha256
            if digest is None:
                digest = sha256(data).hexdigest() if isinstance(data, bytes) and data \
                    else EMPTY_SHA256
            return sign(self._credentials.current(), region, method, url, headers, digest)
        return await self._http.send(method, self.bucket.url(key, params), signed, _refused,
                                     headers, body, ok, limit, stream, retry, expect)

    # -- the object store ------------------------------------------------------------

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """Write a small object; see L{ObjectStore.put}."""
        headers = _headers(content_type, metadata)
        if if_none_match:
            headers["if-none-match"] = "*"
        response = await self.call("PUT", key, headers=headers, body=body,
                                   ok=(200, 412) if if_none_match else (200,),
                                   retry=not if_none_match)
        return response.code == 200

    async def put_file(self, key: str, path: str, size: int, sha256: str,
                       content_type: str, metadata: Mapping[str, str]) -> bool:
        """Write a file unless an object has the key; see L{ObjectStore.put_file}."""
        return await self._uploads.write_file(key, path, size, sha256,
                                              _headers(content_type, metadata))

    async def copy(self, key: str, source: ObjectRef, size: int = 0, if_none_match: bool = False,
                   metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None) -> bool:
        """Copy an object on the store's side; see L{ObjectStore.copy}."""
        origin = copy_source(source.container, source.key)
        if if_none_match:
            return await self._uploads.copy_file(key, origin, size,
                                                 _headers(content_type, metadata))
        return await self.copy_object(key, origin) is not None

    async def copy_object(self, key: str, source: str, headers: dict[str, str] | None = None,
                          if_none_match: bool = False,
                          params: Sequence[tuple[str, str]] = ()) -> str | None:
        """
        C{CopyObject} (or C{UploadPartCopy}, with C{params}) from C{source}
        (an C{x-amz-copy-source}): the new ETag, or L{None} when
        C{if_none_match} (not every store honours it) found an object;
        L{FileNotFoundError} without C{source}.
        """
        headers = dict(headers or {}, **{"x-amz-copy-source": source})
        if if_none_match:
            headers["if-none-match"] = "*"
        response = await self.call("PUT", key, params=params, headers=headers,
                                   ok=(200, 404, 412), retry=not if_none_match)
        if response.code == 412:
            return None
        if response.code == 404:
            code, message = parse_error(404, response.body)
            if code in ("NoSuchKey", "NotFound"):
                raise FileNotFoundError(source)
            raise S3Error(404, code, message)
        return parse_copy_etag(response.body) or ""

    async def set_metadata(self, key: str, metadata: Mapping[str, str], content_type: str,
                           if_match: str) -> bool:
        """Copy an object onto itself with new metadata; see L{ObjectStore.set_metadata}."""
        headers = _headers(content_type, metadata)
        headers.update({
            "x-amz-copy-source": copy_source(self.bucket.name, key),
            "x-amz-metadata-directive": "REPLACE",
            "x-amz-copy-source-if-match": if_match,
        })
        response = await self.call("PUT", key, headers=headers, ok=(200, 412))
        return response.code == 200

    async def delete(self, key: str) -> None:
        """Remove an object (there being none is no error)."""
        await self.call("DELETE", key, ok=(200, 204, 404))

    async def list(self, prefix: str, start_after: str | None = None,
                   delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """Every key under C{prefix} (after C{start_after}), a C{ListObjectsV2} page at a time."""
        token = None
        while True:
            params = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000"),
                      ("encoding-type", "url")]
            if token is not None:
                params.append(("continuation-token", token))
            elif start_after:
                params.append(("start-after", start_after))
            if delimiter:
                params.append(("delimiter", delimiter))
            response = await self.call("GET", "", params=params, limit=16 << 20)
            page = parse_list(response.body)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    def sign_url(self, key: str, seconds: float, now: float) -> tuple[str, float]:
        """A presigned GET URL, never valid beyond the credentials' expiry."""
        credentials = self._credentials.current()
        if credentials.expiry is not None:
            seconds = min(seconds, credentials.expiry - now)
        url = presign(credentials, self.bucket.region, self.bucket.url(key), max(int(seconds), 1))
        return url, seconds

    def signer(self) -> str:
        """The access key that signs URLs now."""
        return self._credentials.current().access_key

    async def _list_one(self, prefix: str, retry: bool) -> None:
        await self.call("GET", "", params=[("list-type", "2"), ("max-keys", "1"),
                                           ("prefix", prefix)], retry=retry)

    async def create_bucket(self) -> Creation:
        """
        C{CreateBucket} in the client's region (ACLs disabled), then every
        setting of Block Public Access (S3's advice); see
        L{StoreClient.ensure}. A store without the second (SeaweedFS: 501)
        keeps its buckets private anyway: a note says so.

        @raise StorageError: for a name another account holds (S3's names
            are global), or when public access could not be blocked.
        """
        name, region = self.bucket.name, self.bucket.region
        headers = {"x-amz-object-ownership": "BucketOwnerEnforced"}
        body = b""
        if region != "us-east-1":
            body = location_body(region)
            headers["content-type"] = "application/xml"
        # (not retried: a retry after a lost answer would find it made, by us)
        response = await self.call("PUT", headers=headers, body=body, ok=(200, 409),
                                   retry=False)
        if response.code == 409:
            code, message = parse_error(409, response.body)
            if code == "BucketAlreadyOwnedByYou":
                return Creation(created=False)
            if code == "BucketAlreadyExists":
                raise StorageError(f"the bucket name {name} is taken by another account (a "
                                   "bucket's name is unique across every account of the "
                                   "store): choose another name")
            raise S3Error(409, code, message)
        where = f"in {region}"
        try:
            blocked = await self._block_public_access()
        except StorageError as e:
            raise StorageError(f"made the bucket {name} {where}, but could not block public "
                               f"access to it ({e}): block it with the store's own tools")
        if blocked:
            return Creation(True, where, "Block Public Access on, ACLs disabled")
        return Creation(True, where, notes=(
            "the store does not implement Block Public Access (it answered 501 "
            "NotImplemented): its buckets are private unless made public",))

    async def _block_public_access(self) -> bool:
        """C{PutPublicAccessBlock}, every setting on; L{False} where not implemented (501)."""
        body = public_access_block_body()
        digest = base64.b64encode(md5(body, usedforsecurity=False).digest()).decode()
        response = await self.call(
            "PUT", params=[("publicAccessBlock", "")], body=body, ok=(200, 204, 501),
            headers={"content-type": "application/xml", "content-md5": digest})
        return response.code != 501


def _sha256_range(path: str, offset: int, length: int) -> str:
    digest = sha256()
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
    The multipart uploads and conditional copies of one L{S3Client}: a file
    above the threshold is streamed in parts, hashed in the thread pool.

    Not every store honours C{If-None-Match: *} on C{CopyObject} (moto 5
    ignores it). So the first conditional copy asks, with two probe
    objects, whether one is refused over an object; where not, a copy is a
    one-part multipart upload copied on the store's side, completed
    conditionally: three requests rather than one, still never a byte
    through pypid nor a window in which two servers both write the name.
    """

    def __init__(self, client: S3Client, run: Run, threshold: int, probe_prefix: str) -> None:
        self._client = client
        self._run = run
        self._threshold = threshold
        self._probe_prefix = probe_prefix
        self._conditional_copy: bool | None = None

    async def write_file(self, key: str, temp_path: str, size: int, sha256: str,
                         headers: dict[str, str]) -> bool:
        """Write the spooled file as C{key} unless an object has it: whether written."""
        if size > self._threshold:
            return await self._multipart(key, temp_path, size, sha256, headers)
        response = await self._client.call(
            "PUT", key, headers=dict(headers, **{"if-none-match": "*"}),
            body=partial(FileRangeProducer, temp_path, 0, size, self._run),
            payload_sha256=sha256, ok=(200, 412))
        return response.code == 200

    async def copy_file(self, key: str, source: str, size: int,
                        headers: dict[str, str]) -> bool:
        """
        Copy C{source} (an C{x-amz-copy-source}) to C{key} on the store's
        side with C{headers}, unless an object has the key: whether written;
        L{FileNotFoundError} without C{source}.
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
        """A one-part multipart upload copied on the store's side (L{_in_parts})."""
        async def part(ident: list[tuple[str, str]]) -> list[str]:
            etag = await self._client.copy_object(key, source, params=[("partNumber", "1"), *ident])
            return [etag or ""]
        return await self._in_parts(key, headers, part, "multipart copy")

    async def _multipart(self, key: str, temp_path: str, size: int, sha256: str,
                         headers: dict[str, str]) -> bool:
        """Upload in parts, streamed from the spooled file (L{_in_parts})."""
        async def parts(ident: list[tuple[str, str]]) -> list[str]:
            part = part_size(size, self._threshold)
            etags = []
            for number, offset in enumerate(range(0, size, part), 1):
                length = min(part, size - offset)
                digest = await self._run(_sha256_range, temp_path, offset, length)
                response = await self._client.call(
                    "PUT", key, params=[("partNumber", str(number)), *ident],
                    body=partial(FileRangeProducer, temp_path, offset, length, self._run),
                    payload_sha256=digest)
                etags.append(response.headers.get("etag", ""))
            return etags
        return await self._in_parts(key, headers, parts, "multipart upload", sha256)

    async def _in_parts(self, key: str, headers: dict[str, str],
                        parts: Callable[[list[tuple[str, str]]], Awaitable[list[str]]],
                        what: str, sha256: str | None = None) -> bool:
        """
        A multipart upload, its parts sent by C{parts(ident)} (their ETags),
        completed with C{If-None-Match}: whether the object was written.
        Aborted whenever it fails, so no parts are left to pay for.

        @param what: what it is, for an error a completion answers in its body.
        @param sha256: the object's, when a completion may be retried: one
            whose answer was lost finds the upload gone (C{NoSuchUpload})
            and the object there, with this hash.
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
