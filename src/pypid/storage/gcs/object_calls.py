"""
Google Cloud Storage as an object store
(L{pypid.storage.bucket.store.ObjectStore}): the JSON API's calls pypid
makes of one bucket, with a token from L{pypid.storage.gcs.gcs_auth}.

A create is a multipart upload (resource and bytes in one request,
streamed) with C{ifGenerationMatch=0}, so of two writers exactly one is
acknowledged. A copy is a C{rewrite}, followed until done, as
conditionally; but fake-gcs-server 1.54 ignores that condition on a
rewrite, so the first conditional copy asks with two probe objects, and
where it is ignored a conditional copy is the bytes read and uploaded
conditionally through pypid (up to L{GCSClient._copy_limit}). A listing
after a name is C{startOffset}, inclusive: the name itself is skipped.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.metrics import Timings
from pypid.jobs.run import Run
from pypid.storage.base.interface import Deliverable, StorageError
from pypid.storage.bucket.http_calls import Answer, Body, FileRangeProducer, StoreClient
from pypid.storage.bucket.store import (
    Creation,
    Listed,
    ListPage,
    ObjectHead,
    ObjectRef,
    StoreRefused,
    StoreUnavailable,
    parse_iso_time,
)
from pypid.storage.gcs.gcs_auth import GCSCredentials
from pypid.storage.gcs.v4_urls import MAX_SECONDS, signed_url

log = Logger()


class GCSError(StoreRefused):
    """Google Cloud Storage answered with an error (a 4xx): C{status}, C{code}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__("Google Cloud Storage", status, code, message)


class GCSUnavailable(StoreUnavailable):
    """Google Cloud Storage could not be reached, timed out, or failed (a 5xx)."""


def _refused(status: int, body: bytes, headers: dict[str, str]) -> StorageError:
    code, message = str(status), ""
    try:
        error = json.loads(body)["error"]
        message = str(error.get("message", ""))
        reasons = [e.get("reason") for e in error.get("errors", ()) if isinstance(e, dict)]
        code = str(reasons[0] if reasons and reasons[0] else error.get("code", status))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if status >= 500 or status == 429:
        return GCSUnavailable(f"Google Cloud Storage failed: {status} {code}")
    return GCSError(status, code, message)


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise GCSUnavailable(f"Google Cloud Storage sent an unreadable answer to {what}")


def _head(resource: Mapping[str, Any]) -> ObjectHead:
    metadata = resource.get("metadata") or {}
    return ObjectHead(int(resource.get("size", 0)), parse_iso_time(resource.get("updated", "")),
                      str(resource.get("generation", "")),
                      {str(k).lower(): str(v) for k, v in metadata.items() if v})


def _framing(resource: Mapping[str, Any], content_type: str) -> tuple[bytes, bytes, str]:
    """The multipart body's parts around the bytes, and its content type."""
    boundary = "pypid-" + secrets.token_hex(16)
    prefix = (f"--{boundary}\r\ncontent-type: application/json; charset=utf-8\r\n\r\n"
              f"{json.dumps(resource)}\r\n--{boundary}\r\ncontent-type: {content_type}\r\n\r\n")
    return (prefix.encode("utf-8"), f"\r\n--{boundary}--\r\n".encode("ascii"),
            f"multipart/related; boundary={boundary}")


class GCSClient(StoreClient):
    """
    Calls to one bucket at the JSON API's C{endpoint}
    (L{pypid.config.gcs_settings.GOOGLE}, or an emulator's).
    """

    label = "Google Cloud Storage"
    kind = "gcs"
    _credentials: GCSCredentials

    def __init__(self, endpoint: str, bucket: str, credentials: GCSCredentials, http: Any,
                 clock: IReactorTime, *, run: Run, timeout: float = 30.0, parallel: int = 16,
                 timings: Timings | None = None, probe_prefix: str = ".pypid/probe/",
                 copy_limit: int = 1 << 30, shared: bool = False) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        super().__init__(self.endpoint, bucket, credentials, http, clock, timeout,
                         GCSUnavailable, parallel, timings, shared)
        self._run = run
        self._clock = clock
        self._probe_prefix = probe_prefix
        self._copy_limit = copy_limit
        self._conditional_rewrite: bool | None = None

    def identity(self) -> str:
        """The bucket, as C{gs://name/}."""
        return f"gs://{self.bucket}/"

    def _object(self, key: str, bucket: str | None = None) -> str:
        return (f"/storage/v1/b/{quote(bucket or self.bucket, safe='')}"
                f"/o/{quote(key, safe='')}")

    async def call(self, method: str, path: str, params: Mapping[str, str] | None = None,
                   headers: dict[str, str] | None = None, body: Body = b"",
                   ok: tuple[int, ...] = (200,), limit: int = 1 << 20, stream: bool = False,
                   retry: bool = True, expect: int = 0) -> Answer:
        """One request with the token; see L{StoreHTTP.send}."""
        url = self.endpoint + path
        if params:
            url += "?" + urlencode(sorted(params.items()), quote_via=quote, safe="")

        def proven(method: str, url: str, headers: dict[str, str],
                   data: bytes | FileRangeProducer) -> dict[str, str]:
            headers = dict(headers)
            self._credentials.authorize(headers)
            return headers
        return await self._http.send(method, url, proven, _refused, headers, body, ok, limit,
                                     stream, retry, expect)

    # -- the object store ------------------------------------------------------------

    async def head(self, key: str, bucket: str | None = None) -> ObjectHead | None:
        """The object's size, time, generation and metadata, or L{None}."""
        response = await self.call("GET", self._object(key, bucket), ok=(200, 404))
        if response.code != 200:
            return None
        return _head(_json(response.body, "an object's resource"))

    async def get(self, key: str, limit: int = 1 << 20, expect: int = 0,
                  bucket: str | None = None) -> bytes | None:
        """An object's bytes (up to C{limit}), or L{None}."""
        response = await self.call("GET", self._object(key, bucket), {"alt": "media"},
                                   ok=(200, 404), limit=limit, expect=expect)
        return response.body if response.code == 200 else None

    async def fetch(self, key: str, start: int, length: int, size: int) -> Deliverable | None:
        """A range of an object, unread (a relay), or L{None}."""
        headers = {}
        if start or length != size:
            headers["range"] = f"bytes={start}-{start + length - 1}"
        response = await self.call("GET", self._object(key), {"alt": "media"}, headers,
                                   ok=(200, 206, 404), stream=True)
        return response.stream

    async def _upload(self, body: Body, framing_type: str, if_none_match: bool) -> bool:
        params = {"uploadType": "multipart"}
        if if_none_match:
            params["ifGenerationMatch"] = "0"
        response = await self.call(
            "POST", f"/upload/storage/v1/b/{quote(self.bucket, safe='')}/o", params,
            {"content-type": framing_type}, body,
            ok=(200, 412) if if_none_match else (200,), retry=not if_none_match)
        return response.code == 200

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """Write a small object; see L{ObjectStore.put}."""
        prefix, suffix, framing_type = _framing(
            {"name": key, "contentType": content_type, "metadata": dict(metadata or {})},
            content_type)
        return await self._upload(prefix + body + suffix, framing_type, if_none_match)

    async def put_file(self, key: str, path: str, size: int, sha256: str,
                       content_type: str, metadata: Mapping[str, str]) -> bool:
        """Write a file unless an object has the name: one multipart upload, streamed."""
        prefix, suffix, framing_type = _framing(
            {"name": key, "contentType": content_type, "metadata": dict(metadata)},
            content_type)
        body = partial(FileRangeProducer, path, 0, size, self._run, prefix=prefix, suffix=suffix)
        return await self._upload(body, framing_type, True)

    async def copy(self, key: str, source: ObjectRef, size: int = 0, if_none_match: bool = False,
                   metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None) -> bool:
        """A rewrite on the service's side; see the module for a conditional one."""
        if if_none_match and not await self._rewrites_conditionally():
            return await self._copy_through(key, source, metadata, content_type)
        return await self._rewrite(key, source, if_none_match, metadata, content_type)

    async def _rewrite(self, key: str, source: ObjectRef, if_none_match: bool,
                       metadata: Mapping[str, str] | None, content_type: str | None) -> bool:
        resource: dict[str, Any] = {}
        if metadata is not None:
            resource["metadata"] = dict(metadata)
        if content_type is not None:
            resource["contentType"] = content_type
        params = {"ifGenerationMatch": "0"} if if_none_match else {}
        path = (self._object(source.key, source.container) + "/rewriteTo"
                + self._object(key).removeprefix("/storage/v1"))
        while True:
            response = await self.call("POST", path, params,
                                       {"content-type": "application/json"},
                                       json.dumps(resource).encode("utf-8"), ok=(200, 404, 412),
                                       retry=not if_none_match)
            if response.code == 412:
                return False
            if response.code == 404:
                raise FileNotFoundError(source.key)
            answer = _json(response.body, "a rewrite")
            if answer.get("done", True):
                return True
            params = dict(params, rewriteToken=str(answer.get("rewriteToken", "")))

    async def _rewrites_conditionally(self) -> bool:
        """Whether the store refuses a rewrite with C{ifGenerationMatch=0} over an object."""
        if self._conditional_rewrite is None:
            probe = f"{self._probe_prefix}rewrite-{uuid.uuid4().hex[:12]}-"
            try:
                await self.put(probe + "a", b"a")
                await self.put(probe + "b", b"b")
                refused = not await self._rewrite(probe + "b", self.ref(probe + "a"), True,
                                                  None, None)
            finally:
                for name in ("a", "b"):
                    try:
                        await self.delete(probe + name)
                    except StorageError:
                        pass
            self._conditional_rewrite = refused
            log.info("The store {how} conditional rewrites: a promotion copies each file "
                     "{way}", how="honours" if refused else "ignores",
                     way="on the store's side" if refused else "through the server")
        return self._conditional_rewrite

    async def _copy_through(self, key: str, source: ObjectRef,
                            metadata: Mapping[str, str] | None,
                            content_type: str | None) -> bool:
        """A conditional copy as a read and a conditional upload (see the module)."""
        head = await self.head(source.key, source.container)
        data = await self.get(source.key, self._copy_limit, bucket=source.container)
        if head is None or data is None:
            raise FileNotFoundError(source.key)
        # (a conditional copy is a promoted file's: its bytes are a distribution's)
        return await self.put(key, data, content_type or "application/octet-stream",
                              metadata if metadata is not None else head.metadata, True)

    async def set_metadata(self, key: str, metadata: Mapping[str, str], content_type: str,
                           if_match: str) -> bool:
        """
        Replace the object's metadata if it is still the listed generation (a
        patch merges: the names C{metadata} lacks are patched to C{null}).
        """
        head = await self.head(key)
        if head is None or head.etag != if_match:
            return False
        patch: dict[str, str | None] = {name: None for name in head.metadata
                                        if name not in metadata}
        patch.update(metadata)
        response = await self.call(
            "PATCH", self._object(key), {"ifGenerationMatch": if_match},
            {"content-type": "application/json"},
            json.dumps({"metadata": patch, "contentType": content_type}).encode(),
            ok=(200, 404, 412))
        return response.code == 200

    async def delete(self, key: str) -> None:
        """Remove an object (there being none is no error)."""
        await self.call("DELETE", self._object(key), ok=(200, 204, 404))

    async def list(self, prefix: str, start_after: str | None = None,
                   delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """Every object under C{prefix} (after C{start_after}), a page at a time."""
        token = None
        while True:
            params = {"prefix": prefix, "maxResults": "1000"}
            if token is not None:
                params["pageToken"] = token
            if start_after:
                params["startOffset"] = start_after
            if delimiter:
                params["delimiter"] = delimiter
            response = await self.call("GET", f"/storage/v1/b/{quote(self.bucket, safe='')}/o",
                                       params, limit=32 << 20)
            answer = _json(response.body, "a listing")
            keys = tuple(Listed(str(item["name"]), int(item.get("size", 0)),
                                str(item.get("generation", "")),
                                parse_iso_time(item.get("updated", "")))
                         for item in answer.get("items", ()) if "name" in item)
            if start_after:
                keys = tuple(item for item in keys if item.key > start_after)
            token = answer.get("nextPageToken") or None
            yield ListPage(keys, tuple(answer.get("prefixes", ())), token)
            if token is None:
                return

    def sign_url(self, key: str, seconds: float, now: float) -> tuple[str, float]:
        """A V4 signed URL (see L{pypid.storage.gcs.v4_urls})."""
        email, sign = self._credentials.signing()
        seconds = min(seconds, MAX_SECONDS)
        return signed_url(self.endpoint, self.bucket, key, email, sign, int(seconds), now), seconds

    async def _list_one(self, prefix: str, retry: bool) -> None:
        await self.call("GET", f"/storage/v1/b/{quote(self.bucket, safe='')}/o",
                        {"prefix": prefix, "maxResults": "1"}, retry=retry)

    async def create_bucket(self, project: str, location: str | None = None) -> Creation:
        """
        C{buckets.insert} in C{project} (at C{location}, or Google's
        default), with uniform bucket-level access and public access
        prevention enforced; see L{StoreClient.ensure}, which tells a name
        taken (409) by another project from this bucket.
        """
        resource: dict[str, Any] = {"name": self.bucket, "iamConfiguration": {
            "uniformBucketLevelAccess": {"enabled": True},
            "publicAccessPrevention": "enforced"}}
        if location:
            resource["location"] = location
        response = await self.call("POST", "/storage/v1/b", {"project": project},
                                   {"content-type": "application/json"},
                                   json.dumps(resource).encode("utf-8"), ok=(200, 409),
                                   retry=False)
        if response.code == 409:
            return Creation(created=False)
        made = _json(response.body, "a new bucket")
        where = f"in project {project}" + (f", {made['location']}" if made.get("location")
                                           else "")
        return Creation(True, where, "uniform bucket-level access, public access "
                                     "prevention enforced")
