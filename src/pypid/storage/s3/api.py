"""
S3 as an object store (L{pypid.storage.bucket.store.ObjectStore}): the
calls pypid makes of one bucket, signed by L{pypid.storage.s3.sign} and
sent by L{pypid.storage.bucket.http_calls.StoreHTTP}.

User metadata travels as C{x-amz-meta-*} headers; a create refuses an
existing name with C{If-None-Match: *} (a store that ignores it is refused
at start-up); a large file is a multipart upload, and a conditional copy
where the store ignores the condition is a one-part multipart copy
(L{pypid.storage.s3.uploads}). Errors come out as L{S3Error} (a 4xx) or
L{S3Unavailable} (unreachable, timed out, a 5xx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from hashlib import sha256
from typing import Any

from twisted.internet.interfaces import IReactorTime

from pypid.core.records.metrics import Timings
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.http_calls import (
    Answer,
    Body,
    FileRangeProducer,
    HeaderMetadataClient,
)
from pypid.storage.bucket.store import ListPage, ObjectRef
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import EMPTY_SHA256, Bucket, presign, sign
from pypid.storage.s3.uploads import Uploads
from pypid.storage.s3.wire import (
    S3Error,
    S3Unavailable,
    copy_source,
    parse_copy_etag,
    parse_error,
    parse_list,
)

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
    """
    Signed calls to one bucket.

    @ivar bucket: the L{pypid.storage.s3.sign.Bucket}.
    @ivar _credentials: has C{current()} returning L{pypid.storage.s3.sign.Credentials}.
    @ivar _uploads: the L{Uploads} of large files and conditional copies.
    """

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
        @param run: C{run(f, *args) -> Deferred} for blocking work (reading
            and hashing the files it uploads).
        @param multipart_threshold: the size above which a file is uploaded in parts.
        @param probe_prefix: where the objects that learn how the store
            behaves are written (and removed at once).
        @param shared: see L{StoreClient}.
        """
        self.bucket = bucket
        super().__init__(bucket.endpoint, bucket.name, credentials, http, clock, timeout,
                         S3Unavailable, parallel, timings, shared)
        self._uploads = Uploads(self, run, multipart_threshold, probe_prefix)

    def identity(self) -> str:
        """The bucket, as C{s3://name/}."""
        return f"s3://{self.bucket.name}/"

    def ref(self, key: str) -> ObjectRef:
        """The object C{key}, as another prefix of this endpoint copies it."""
        return ObjectRef(self.bucket.endpoint, self.bucket.name, key)

    async def call(self, method: str, key: str = "", params: Sequence[tuple[str, str]] = (),
                   headers: dict[str, str] | None = None, body: Body = b"",
                   payload_sha256: str | None = None, ok: tuple[int, ...] = (200,),
                   limit: int = 1 << 20, stream: bool = False, retry: bool = True,
                   expect: int = 0) -> Answer:
        """
        Make one call, retrying (when C{retry}) after a failure of the store;
        see L{StoreHTTP.send}.

        @param payload_sha256: the body's digest, when it is a producer.
        @raise S3Error: for another 4xx.
        @raise S3Unavailable: when the store fails.
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
        Copy an object of this store into C{key} on the store's side
        (C{CopyObject}, or C{UploadPartCopy} with C{params}).

        @param source: the C{x-amz-copy-source}, from L{copy_source}.
        @param if_none_match: only if no object has the key (where the store
            honours C{If-None-Match} on a copy: not every one does).
        @return: the new object's (or part's) ETag; L{None} only when
            C{if_none_match} and an object is there already.
        @raise FileNotFoundError: when there is no object at C{source}.
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
        """
        Replace an object's user metadata by copying it onto itself, if it
        is still the listed version; see L{ObjectStore.set_metadata}.
        """
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
        """
        Every key under C{prefix} (after C{start_after}), one page
        (C{ListObjectsV2}) at a time.
        """
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

