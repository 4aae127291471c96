"""
Azure Blob Storage as an object store
(L{pypid.storage.bucket.store.ObjectStore}): the calls pypid makes of one
container, proven by L{pypid.storage.azure.blob_auth}.

A create refuses an existing name with C{If-None-Match: *} (409
C{BlobAlreadyExists}); a file larger than a block is staged in blocks and
committed with the same condition (an uncommitted block is dropped after a
week). A copy is C{Copy Blob}, waited for while pending. A listing after a
name is C{startFrom}, inclusive, so the name itself is skipped.
"""

from __future__ import annotations

import base64
import datetime
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from email.utils import formatdate
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from azure.storage.blob import UserDelegationKey
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.metrics import Timings
from pypid.jobs.run import Run
from pypid.storage.azure.blob_auth import AzureCredentials, AzureIdentity
from pypid.storage.azure.shared_key import (
    API_VERSION,
    START_FROM_VERSION,
    metadata_headers,
    metadata_of,
)
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.http_calls import (
    Answer,
    Body,
    FileRangeProducer,
    HeaderMetadataClient,
    sleep,
)
from pypid.storage.bucket.store import (
    Creation,
    Listed,
    ListPage,
    ObjectRef,
    StoreRefused,
    StoreUnavailable,
    parse_http_time,
)

log = Logger()

#: Azure's largest block (and so the block size of a large file).
MAX_BLOCK = 100 << 20

#: How long a copy the service says is pending is waited for, at most.
COPY_WAIT = 300.0


class AzureError(StoreRefused):
    """Azure answered with an error (a 4xx): C{status}, C{code}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__("Azure", status, code, message)


class AzureUnavailable(StoreUnavailable):
    """Azure could not be reached, timed out, or failed (a 5xx)."""


def _text(element: ET.Element | None, name: str) -> str:
    found = element.find(name) if element is not None else None
    return (found.text or "") if found is not None else ""


def _xml(body: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise AzureUnavailable(f"Azure sent an unreadable answer to {what}")


def _refused(status: int, body: bytes, headers: dict[str, str]) -> StorageError:
    code, message = headers.get("x-ms-error-code", ""), ""
    if body:
        try:
            root = ET.fromstring(body)
            code = code or _text(root, "Code")
            message = _text(root, "Message").split("\n")[0]
        except ET.ParseError:
            pass
    code = code or str(status)
    if status >= 500:
        return AzureUnavailable(f"Azure failed: {status} {code}")
    return AzureError(status, code, message)


def parse_list(body: bytes) -> ListPage:
    """Parse a C{List Blobs} answer into a L{ListPage}."""
    root = _xml(body, "a listing")
    blobs = root.find("Blobs")
    keys = []
    prefixes = []
    if blobs is not None:
        for blob in blobs.findall("Blob"):
            properties = blob.find("Properties")
            keys.append(Listed(_text(blob, "Name"),
                               int(_text(properties, "Content-Length") or 0),
                               _text(properties, "Etag").strip('"'),
                               parse_http_time(_text(properties, "Last-Modified"))))
        prefixes = [_text(prefix, "Name") for prefix in blobs.findall("BlobPrefix")]
    return ListPage(tuple(keys), tuple(prefixes), _text(root, "NextMarker") or None)


def block_list(ids: list[str]) -> bytes:
    """The body of C{Put Block List} committing C{ids}, in order."""
    root = ET.Element("BlockList")
    for block in ids:
        ET.SubElement(root, "Latest").text = block
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def block_id(upload: str, number: int) -> str:
    """
    The id of the C{number}th block of the upload C{upload}: two uploads of
    one name staged at once keep their own (a blob's ids are all as long).
    """
    return base64.b64encode(f"{upload}-{number:08d}".encode("ascii")).decode("ascii")


class AzureClient(HeaderMetadataClient):
    """
    Calls to one container of one storage account, at its blob C{endpoint}
    (C{https://ACCOUNT.blob.core.windows.net}, or an emulator's).
    """

    label = "Azure"
    kind = "azure"
    noun = "container"
    missing_codes = frozenset({"ContainerNotFound", "ResourceNotFound"})
    access_hint = ("the account key, SAS token or identity, and that it may list, read and "
                   "write blobs")
    where_has_endpoint = True
    range_header = "x-ms-range"
    metadata_of = staticmethod(metadata_of)
    _credentials: AzureCredentials

    def __init__(self, endpoint: str, account: str, container: str,
                 credentials: AzureCredentials, http: Any, clock: IReactorTime, *, run: Run,
                 timeout: float = 30.0, parallel: int = 16, timings: Timings | None = None,
                 block_size: int = 64 << 20, shared: bool = False) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.container = container
        super().__init__(self.endpoint, container, credentials, http, clock, timeout,
                         AzureUnavailable, parallel, timings, shared)
        self._start_from = True
        self._run = run
        self._clock = clock
        self._block_size = min(block_size, MAX_BLOCK)
        if isinstance(credentials, AzureIdentity):
            credentials.delegate_with(self._delegation_key)

    def identity(self) -> str:
        """The container, as C{azure://account/container/}."""
        return f"azure://{self.account}/{self.container}/"

    def url(self, key: str = "", params: Mapping[str, str] | None = None,
            container: str | None = None) -> str:
        """The URL of a blob (of the container, with no key), with C{params}."""
        url = f"{self.endpoint}/{quote(container or self.container, safe='')}"
        if key:
            url += "/" + quote(key, safe="/~")
        if params:
            url += "?" + urlencode(sorted(params.items()), quote_via=quote, safe="")
        return url

    async def call(self, method: str, key: str = "", params: Mapping[str, str] | None = None,
                   headers: dict[str, str] | None = None, body: Body = b"",
                   ok: tuple[int, ...] = (200,), limit: int = 1 << 20, stream: bool = False,
                   retry: bool = True, expect: int = 0, url: str | None = None,
                   version: str = API_VERSION) -> Answer:
        """One request, proven by the credentials; see L{StoreHTTP.send}."""
        target = url or self.url(key, params)
        sent = dict(headers or {})

        def proven(method: str, url: str, headers: dict[str, str],
                   data: bytes | FileRangeProducer) -> dict[str, str]:
            headers = dict(headers, **{"x-ms-version": version,
                                       "x-ms-date": formatdate(self._clock.seconds(),
                                                               usegmt=True)})
            # (signed with its length, which the HTTP client sends itself)
            size = data.length if isinstance(data, FileRangeProducer) else len(data)
            signed = dict(headers, **{"content-length": str(size)}) if size or method in (
                "PUT", "POST") else dict(headers)
            self._credentials.authorize(method, url, signed)
            signed.pop("content-length", None)
            return signed
        target = self._credentials.with_token(target)
        return await self._http.send(method, target, proven, _refused, sent, body, ok, limit,
                                     stream, retry, expect)

    # -- the object store ------------------------------------------------------------

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """Write a small blob; see L{ObjectStore.put}."""
        headers = dict(metadata_headers(metadata or {}), **{
            "x-ms-blob-type": "BlockBlob", "content-type": content_type})
        return await self._create(key, headers, body, if_none_match)

    async def _create(self, key: str, headers: dict[str, str], body: Body, if_none_match: bool,
                      params: Mapping[str, str] | None = None) -> bool:
        if if_none_match:
            headers["if-none-match"] = "*"
        response = await self.call("PUT", key, params=params, headers=headers, body=body,
                                   ok=(201, 409, 412) if if_none_match else (201,),
                                   retry=not if_none_match)
        if response.code == 409 and response.headers.get("x-ms-error-code") not in (
                "BlobAlreadyExists", None):
            raise _refused(409, response.body, response.headers)
        return response.code == 201

    async def put_file(self, key: str, path: str, size: int, sha256: str,
                       content_type: str, metadata: Mapping[str, str]) -> bool:
        """
        Write a file unless a blob has the name: one C{Put Blob} up to the
        block size, else blocks committed conditionally.
        """
        headers = dict(metadata_headers(metadata), **{"x-ms-blob-type": "BlockBlob",
                                                      "content-type": content_type})
        if size <= self._block_size:
            return await self._create(key, headers, partial(
                FileRangeProducer, path, 0, size, self._run), True)
        ids = []
        upload = uuid.uuid4().hex
        for number, offset in enumerate(range(0, size, self._block_size)):
            length = min(self._block_size, size - offset)
            ids.append(block_id(upload, number))
            await self.call("PUT", key, params={"comp": "block", "blockid": ids[-1]},
                            body=partial(FileRangeProducer, path, offset, length, self._run),
                            ok=(201,))
        del headers["x-ms-blob-type"]
        headers["x-ms-blob-content-type"] = headers.pop("content-type")
        headers["content-type"] = "application/xml"
        return await self._create(key, headers, block_list(ids), True, {"comp": "blocklist"})

    async def copy(self, key: str, source: ObjectRef, size: int = 0, if_none_match: bool = False,
                   metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None) -> bool:
        """
        C{Copy Blob} (C{metadata}, or the source's; always its content
        type), waited for while pending; one failing after the service took
        it is aborted and removed, so no half-made blob holds the name.
        """
        origin = self._credentials.with_token(self.url(source.key, container=source.container))
        headers = {"x-ms-copy-source": origin}
        if metadata is not None:
            headers.update(metadata_headers(metadata))
        if if_none_match:
            headers["if-none-match"] = "*"
        response = await self.call("PUT", key, headers=headers, ok=(202, 404, 409, 412),
                                   retry=not if_none_match)
        code = response.headers.get("x-ms-error-code")
        if response.code == 404 and code in ("BlobNotFound", "CannotVerifyCopySource"):
            raise FileNotFoundError(source.key)
        if response.code == 412 or (response.code == 409 and code == "BlobAlreadyExists"):
            return False  # (whatever the 412's code: TargetConditionNotMet, ConditionNotMet)
        if response.code != 202:
            raise _refused(response.code, response.body, response.headers)
        try:
            await self._copied(key, response.headers.get("x-ms-copy-status", "success"))
        except StorageError:
            await self._abandon(key, response.headers.get("x-ms-copy-id"))
            raise
        return True

    async def _copied(self, key: str, status: str) -> None:
        """Wait for a copy the service says is pending (C{Copy Blob} may be asynchronous)."""
        waited = 0.0
        while status == "pending":
            if waited >= COPY_WAIT:
                raise AzureUnavailable(f"Azure did not finish copying {key} in {COPY_WAIT:.0f} s")
            await sleep(self._clock, 1.0)
            waited += 1.0
            response = await self.call("HEAD", key, ok=(200, 404))
            if response.code == 404:
                raise AzureUnavailable(f"Azure's copy to {key} vanished while it was pending")
            status = response.headers.get("x-ms-copy-status", "success")
        if status != "success":
            raise AzureUnavailable(f"Azure could not copy {key}: {status}")

    async def _abandon(self, key: str, copy_id: str | None) -> None:
        """Abort a copy under way (if it is) and remove its blob; failures are only logged."""
        try:
            if copy_id:
                await self.call("PUT", key, params={"comp": "copy", "copyid": copy_id},
                                headers={"x-ms-copy-action": "abort"}, ok=(204, 404, 409))
            await self.delete(key)
        except StorageError as e:
            log.warn("Cannot remove {key} after a failed copy: {error}", key=key, error=str(e))

    async def set_metadata(self, key: str, metadata: Mapping[str, str], content_type: str,
                           if_match: str) -> bool:
        """C{Set Blob Metadata}, if the blob is still the listed version."""
        headers = dict(metadata_headers(metadata), **{"if-match": f'"{if_match}"'})
        response = await self.call("PUT", key, params={"comp": "metadata"}, headers=headers,
                                   ok=(200, 404, 412))
        return response.code == 200

    async def delete(self, key: str) -> None:
        """Remove a blob (there being none is no error)."""
        await self.call("DELETE", key, ok=(202, 404))

    async def list(self, prefix: str, start_after: str | None = None,
                   delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """Every blob under C{prefix} (after C{start_after}), a page at a time."""
        marker = None
        while True:
            params = {"restype": "container", "comp": "list", "prefix": prefix,
                      "maxresults": "5000"}
            if marker is not None:
                params["marker"] = marker
            if delimiter:
                params["delimiter"] = delimiter
            response = await self._list_page(params, start_after if marker is None else None)
            page = parse_list(response.body)
            if start_after:
                page = ListPage(tuple(item for item in page.keys if item.key > start_after),
                                page.prefixes, page.next_token)
            yield page
            if not page.next_token:
                return
            marker = page.next_token

    async def _list_page(self, params: dict[str, str], start_from: str | None) -> Answer:
        """
        A page of a listing, from C{start_from} (inclusive) where the endpoint
        takes C{startFrom}, else (learnt at the first refusal) from the start.
        """
        if start_from and self._start_from:
            try:
                return await self.call("GET", params=dict(params, startFrom=start_from),
                                       limit=32 << 20, version=START_FROM_VERSION)
            except AzureError as e:
                if e.status != 400:
                    raise
                self._start_from = False
                log.info("{endpoint} does not take startFrom ({code}): listings after a "
                         "name start at the prefix", endpoint=self.endpoint, code=e.code)
        return await self.call("GET", params=params, limit=32 << 20)

    def sign_url(self, key: str, seconds: float, now: float) -> tuple[str, float]:
        """A read-only SAS URL of the blob, never beyond the credentials."""
        return self._credentials.sign_url(self.container, key, self.url(key), seconds, now)

    async def _list_one(self, prefix: str, retry: bool) -> None:
        await self.call("GET", params={"restype": "container", "comp": "list",
                                       "prefix": prefix, "maxresults": "1"}, retry=retry)

    async def create_bucket(self) -> Creation:
        """C{Create Container}, without public access; see L{StoreClient.ensure}."""
        response = await self.call("PUT", params={"restype": "container"}, ok=(201, 409),
                                   retry=False)
        if response.code == 409:
            if response.headers.get("x-ms-error-code") == "ContainerAlreadyExists":
                return Creation(created=False)
            raise _refused(409, response.body, response.headers)
        return Creation(True, private="no public access")

    async def _delegation_key(self, start: float, expiry: float) -> Any:
        """A user delegation key (C{Get User Delegation Key}), with the identity's token."""
        def iso(seconds: float) -> str:
            return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        body = (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{iso(start)}</Start>"
                f"<Expiry>{iso(expiry)}</Expiry></KeyInfo>").encode()
        parts = urlsplit(self.endpoint)
        url = f"{parts.scheme}://{parts.netloc}{parts.path}/?restype=service&comp=userdelegationkey"
        response = await self.call("POST", url=url, body=body,
                                   headers={"content-type": "application/xml"})
        root = _xml(response.body, "a user delegation key")
        key = UserDelegationKey()
        for field in ("oid", "tid", "start", "expiry", "service", "version"):
            setattr(key, f"signed_{field}", _text(root, f"Signed{field.capitalize()}"))
        key.value = _text(root, "Value")
        return key

