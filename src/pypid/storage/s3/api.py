"""
The S3 calls pypid makes, sent with treq: never blocking, each with a
deadline and a bounded answer.

Requests are signed by L{pypid.storage.s3.sign}. Bodies are streamed from
files by L{FileRangeProducer}, which reads in the thread pool; answers are
read with a size cap, so a misbehaving store cannot grow the server's memory.
Errors come out as L{S3Error} (the store refused: a 4xx) or L{S3Unavailable}
(the store cannot be reached, timed out or failed: a 5xx), both
L{StorageError}s, which the web layer answers with 503.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from hashlib import sha256
from typing import IO, Any, Protocol, TypeAlias, cast
from urllib.parse import unquote

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from pypid.core.records.metrics import Timings
from pypid.http import bodies
from pypid.storage.interface import Run, StorageError
from pypid.storage.s3.sign import EMPTY_SHA256, Bucket, Credentials, quote_key, sign

#: Error answers are read up to this size (S3's are a few hundred bytes).
_ERROR_BODY_LIMIT = 64 << 10

#: A request with a body gets this much more time per byte than the base
#: deadline: uploads are slow on slow links, and must still end.
_MIN_RATE = 256 << 10

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

#: Waits before each retry of an idempotent request that failed for want of
#: the store (connection lost, a 5xx such as SlowDown).
RETRY_DELAYS = (0.2, 1.0)


class S3Error(StorageError):
    """The store answered with an error (a 4xx): C{status}, C{code}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 answered {status} {code}: {message}" if message
                         else f"S3 answered {status} {code}")
        self.status = status
        self.code = code


class S3Unavailable(StorageError):
    """The store could not be reached, timed out, or failed (a 5xx)."""


def _text(element: ET.Element, name: str) -> str | None:
    found = element.find(_S3_NS + name)
    if found is None:
        found = element.find(name)
    return found.text or "" if found is not None else None


def _all(element: ET.Element, name: str) -> list[ET.Element]:
    """Every C{name} element under C{element}, with S3's namespace or without."""
    return [*element.iter(_S3_NS + name), *element.iter(name)]


def _parse(body: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise S3Unavailable(f"S3 sent an unreadable answer to {what}")


def parse_error(status: int, body: bytes) -> tuple[str, str]:
    """The C{(code, message)} of an error answer (its XML body, when there is one)."""
    if body:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            root = None
        if root is not None:
            return (_text(root, "Code") or str(status)), (_text(root, "Message") or "")
    return {403: "AccessDenied", 404: "NotFound", 412: "PreconditionFailed"}.get(
        status, str(status)), ""


@attrs.frozen
class Listed:
    """One key of a listing."""

    key: str
    size: int
    etag: str
    last_modified: str


@attrs.frozen
class ListPage:
    """One page of C{ListObjectsV2}."""

    keys: tuple[Listed, ...]
    prefixes: tuple[str, ...]
    next_token: str | None


def parse_list(body: bytes) -> ListPage:
    """Parse a C{ListObjectsV2} answer into a L{ListPage}."""
    root = _parse(body, "a listing")
    # Asked for with encoding-type=url (keys may hold characters XML cannot):
    # decoded only when the store says it encoded them.
    encoded = (_text(root, "EncodingType") or "").lower() == "url"
    decode: Callable[[str], str] = unquote if encoded else (lambda text: text)
    keys = []
    for item in _all(root, "Contents"):
        # (a key is always there in an answer of S3's)
        keys.append(Listed(decode(cast(str, _text(item, "Key"))),
                           int(_text(item, "Size") or 0),
                           (_text(item, "ETag") or "").strip('"'),
                           _text(item, "LastModified") or ""))
    prefixes = tuple(decode(cast(str, _text(p, "Prefix")))
                     for p in _all(root, "CommonPrefixes"))
    truncated = (_text(root, "IsTruncated") or "").lower() == "true"
    token = _text(root, "NextContinuationToken") if truncated else None
    return ListPage(tuple(keys), prefixes, token)


def parse_upload_id(body: bytes) -> str | None:
    """The C{UploadId} of a C{CreateMultipartUpload} answer (L{None} if none)."""
    return _text(_parse(body, "a multipart upload"), "UploadId")


def parse_copy_etag(body: bytes) -> str | None:
    """
    The C{ETag} of a C{CopyObject} or C{UploadPartCopy} answer (L{None} if
    none).

    @raise S3Unavailable: for an error in the body of a 200 answer, which S3
        sends for a copy that failed after it began.
    """
    root = _parse(body, "a copy")
    if root.tag in ("Error", _S3_NS + "Error"):
        raise S3Unavailable("S3 could not complete a copy: " + parse_error(200, body)[0])
    return _text(root, "ETag")


def copy_source(bucket: str, key: str) -> str:
    """The C{x-amz-copy-source} of the object C{key} of C{bucket}."""
    return "/" + quote_key(bucket + "/" + key)


def complete_body(etags: list[str]) -> bytes:
    """The body of C{CompleteMultipartUpload} for the parts' ETags, in order."""
    root = ET.Element("CompleteMultipartUpload", xmlns=_S3_NS.strip("{}"))
    for number, etag in enumerate(etags, 1):
        part = ET.SubElement(root, "Part")
        ET.SubElement(part, "PartNumber").text = str(number)
        ET.SubElement(part, "ETag").text = etag
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@attrs.frozen
class S3Response:
    """
    An answer: status, headers (lowercase names, first values) and body; or,
    for a streamed GET, the unread Twisted response in C{stream}.
    """

    code: int
    headers: dict[str, str]
    body: bytes = b""
    stream: IResponse | None = None


@implementer(IBodyProducer)
class FileRangeProducer:
    """
    Streams C{length} bytes of a file from C{offset}, reading in the thread
    pool a chunk at a time and following the consumer's pace.
    """

    def __init__(self, path: str, offset: int, length: int, run: Run,
                 chunk: int = 1 << 20) -> None:
        self.length = length
        self._path = path
        self._offset = offset
        self._run = run
        self._chunk = chunk
        self._paused: Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Send the range to C{consumer}; the Deferred fires when all is sent
        (and, as L{IBodyProducer} requires, never once stopped).
        """
        done: Deferred[None] = Deferred()

        def finished(result: None) -> None:
            if not self._stopped:
                done.callback(None)

        def failed(failure: Failure) -> None:
            if not self._stopped:
                done.errback(failure)

        ensureDeferred(self._produce(consumer)).addCallbacks(finished, failed)
        return done

    async def _produce(self, consumer: IConsumer) -> None:
        f: IO[bytes] = await self._run(open, self._path, "rb")
        try:
            await self._run(f.seek, self._offset)
            left = self.length
            while left > 0:
                if self._stopped:
                    raise CancelledError("upload stopped")
                if self._paused is not None:
                    await self._paused
                    continue
                data = await self._run(f.read, min(self._chunk, left))
                if self._stopped:
                    raise CancelledError("upload stopped")
                if not data:
                    raise StorageError(f"{self._path} is shorter than expected")
                left -= len(data)
                consumer.write(data)
        finally:
            await self._run(f.close)

    def pauseProducing(self) -> None:
        """The connection is full: wait."""
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        """Go on."""
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        """The request was abandoned."""
        self._stopped = True
        self.resumeProducing()


def read_body(response: IResponse, limit: int) -> Deferred[bytes]:
    """Read an answer's body, failing with L{S3Unavailable} beyond C{limit}."""
    d = bodies.read_body(response, limit)

    def failed(failure: Failure) -> bytes:
        failure.trap(bodies.BodyError)
        if failure.check(bodies.BodyTooLarge):
            raise S3Unavailable(f"S3 sent more than {limit} bytes")
        raise S3Unavailable(f"the answer from S3 was {failure.getErrorMessage()}")
    return d.addErrback(failed)


class _CredentialSource(Protocol):
    """Where a client finds the credentials to sign with now."""

    def current(self) -> Credentials:
        """The credentials to sign with now (never blocks)."""
        ...


#: The body of a call: bytes, or a callable returning a fresh
#: L{FileRangeProducer} (called once per attempt).
Body: TypeAlias = bytes | Callable[[], FileRangeProducer]


class BucketCalls:
    """
    The calls pypid makes of one bucket, over one L{call}: the base of the
    L{S3Client} that makes them and of the L{PacedClient} that paces them.

    @ivar bucket: the L{pypid.storage.s3.sign.Bucket}.
    @ivar limit: how many calls may be in flight at once.
    """

    bucket: Bucket
    limit: DeferredSemaphore

    @property
    def timeout(self) -> float:
        """The deadline of one call, in seconds."""
        raise NotImplementedError

    async def call(self, method: str, key: str = "", params: Sequence[tuple[str, str]] = (),
                   headers: dict[str, str] | None = None, body: Body = b"",
                   payload_sha256: str | None = None, ok: tuple[int, ...] = (200,),
                   limit: int = 1 << 20, stream: bool = False, retry: bool = True,
                   expect: int = 0) -> S3Response:
        """Make one call; see L{S3Client.call}."""
        raise NotImplementedError

    async def head(self, key: str) -> dict[str, str] | None:
        """The object's headers, or L{None} when there is no such object."""
        response = await self.call("HEAD", key, ok=(200, 404))
        return response.headers if response.code == 200 else None

    async def get(self, key: str, limit: int = 1 << 20, expect: int = 0) -> bytes | None:
        """An object's bytes (up to C{limit}), or L{None} when there is no such object."""
        response = await self.call("GET", key, ok=(200, 404), limit=limit, expect=expect)
        return response.body if response.code == 200 else None

    async def put(self, key: str, body: bytes, headers: dict[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """
        Write a small object.

        @return: whether it was written (L{False} only when C{if_none_match}
            and an object is there already).
        """
        headers = dict(headers or {})
        if if_none_match:
            headers["if-none-match"] = "*"
        response = await self.call("PUT", key, headers=headers, body=body,
                                   ok=(200, 412) if if_none_match else (200,),
                                   retry=not if_none_match)
        return response.code == 200

    async def copy(self, key: str, source: str, headers: dict[str, str] | None = None,
                   if_none_match: bool = False,
                   params: Sequence[tuple[str, str]] = ()) -> str | None:
        """
        Copy an object of this store into C{key} on the store's side
        (C{CopyObject}, or C{UploadPartCopy} with C{params}): no byte of it
        goes through pypid.

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

    async def delete(self, key: str) -> None:
        """Remove an object (there being none is no error)."""
        await self.call("DELETE", key, ok=(200, 204, 404))

    async def read_all(self, prefix: str) -> dict[str, bytes]:
        """
        The objects under C{prefix}, by the rest of their keys, read one
        after another: for the few small ones pypid keeps of its own
        (statuses, journals, usage records), never for the files.
        """
        found: dict[str, bytes] = {}
        async for page in self.list(prefix):
            for listed in page.keys:
                data = await self.get(listed.key)
                if data is not None:
                    found[listed.key[len(prefix):]] = data
        return found

    async def list(self, prefix: str, start_after: str | None = None,
                   delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """
        Every key under C{prefix} (after C{start_after}), one page at a time.

        @return: an async iterator of L{ListPage}s.
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


class S3Client(BucketCalls):
    """
    Signed calls to one bucket.

    @ivar bucket: the L{pypid.storage.s3.sign.Bucket}.
    @ivar _credentials: has C{current()} returning L{Credentials}.
    @ivar _http: a treq C{HTTPClient}.
    @ivar _clock: provides C{seconds()} and C{callLater}.
    @ivar _timeout: deadline of one call, in seconds.
    @ivar limit: how many calls may be in flight at once.
    @ivar timings: every request to the store, by method: counted,
        failures and latency (retries are requests of their own), for
        C{/metrics}; given to share one with another client of the bucket.
    """

    def __init__(self, bucket: Bucket, credentials: _CredentialSource, http: Any,
                 clock: IReactorTime, timeout: float = 30.0, parallel: int = 16,
                 timings: Timings | None = None) -> None:
        self.bucket = bucket
        self._credentials = credentials
        self._http = http
        self._clock = clock
        self._timeout = timeout
        self.limit = DeferredSemaphore(parallel)
        self.timings = timings if timings is not None else Timings()

    @property
    def timeout(self) -> float:
        """The deadline of one call, in seconds."""
        return self._timeout

    async def call(self, method: str, key: str = "", params: Sequence[tuple[str, str]] = (),
                   headers: dict[str, str] | None = None, body: Body = b"",
                   payload_sha256: str | None = None, ok: tuple[int, ...] = (200,),
                   limit: int = 1 << 20, stream: bool = False, retry: bool = True,
                   expect: int = 0) -> S3Response:
        """
        Make one call, retrying (when C{retry}) after a failure of the store.

        @param body: bytes, or a callable returning a fresh
            L{FileRangeProducer} (called once per attempt).
        @param ok: the statuses that are answers rather than errors.
        @param limit: the most bytes of answer to read.
        @param stream: leave an answer of status 200 or 206 unread, in
            C{S3Response.stream}, for the caller to relay.
        @param expect: the size of the answer expected, which extends the
            deadline like the size of a body sent does.
        @rtype: L{S3Response}
        @raise S3Error: for another 4xx.
        @raise S3Unavailable: when the store fails.
        """
        delays = RETRY_DELAYS if retry else ()
        attempt = 0
        seconds, record = self._clock.seconds, self.timings.record
        while True:
            started = seconds()
            try:
                response = await self._call_once(method, key, params, headers, body,
                                                 payload_sha256, ok, limit, stream, expect)
                record(method, seconds() - started)
                return response
            except S3Error:
                # (an answer the call did not expect: a 403, say)
                record(method, seconds() - started, failed=True)
                raise
            except S3Unavailable:
                record(method, seconds() - started, failed=True)
                if attempt >= len(delays):
                    raise
                await _sleep(self._clock, delays[attempt])
                attempt += 1

    async def _call_once(self, method: str, key: str, params: Sequence[tuple[str, str]],
                         headers: dict[str, str] | None, body: Body,
                         payload_sha256: str | None, ok: tuple[int, ...], limit: int,
                         stream: bool, expect: int = 0) -> S3Response:
        url = self.bucket.url(key, params)
        data: FileRangeProducer | bytes | None
        if callable(body):
            producer = body()
            data = producer
            size = producer.length
        else:
            data = body or None
            size = len(body)
            if payload_sha256 is None and body:
                payload_sha256 = sha256(body).hexdigest()
        signed = sign(self._credentials.current(), self.bucket.region, method, url,
                      headers, payload_sha256 or EMPTY_SHA256)
        deadline = self._timeout + (size + expect) / _MIN_RATE
        current: list[Deferred[Any] | None] = [None]
        timed_out = []

        def expire() -> None:
            timed_out.append(True)
            if current[0] is not None:
                current[0].cancel()
        timer = self._clock.callLater(deadline, expire)
        try:
            current[0] = request = self._http.request(method, url, headers=signed, data=data,
                                                      allow_redirects=False, unbuffered=True)
            try:
                response: IResponse = await request
            except CancelledError:
                if not timed_out:
                    raise  # cancelled by the caller: no answer is wanted
                raise S3Unavailable(f"S3 did not answer {method} within {deadline:.0f} s")
            except Exception as e:
                raise S3Unavailable(f"cannot reach S3 at {self.bucket.endpoint}: "
                                    f"{bodies.describe(e)}")
            code = response.code
            head = {name.decode("latin-1").lower(): values[0].decode("latin-1")
                    for name, values in response.headers.getAllRawHeaders()}
            if stream and code in (200, 206):
                return S3Response(code, head, stream=response)
            current[0] = reading = read_body(response, limit if code in ok else _ERROR_BODY_LIMIT)
            try:
                content = await reading
            except CancelledError:
                if not timed_out:
                    raise
                raise S3Unavailable(f"S3 did not finish its answer to {method} within "
                                    f"{deadline:.0f} s")
        finally:
            if timer.active():
                timer.cancel()
        if code in ok:
            return S3Response(code, head, content)
        error, message = parse_error(code, content)
        if code >= 500 or error == "ConditionalRequestConflict":
            raise S3Unavailable(f"S3 failed: {code} {error}")
        raise S3Error(code, error, message)

class _Pacer(Protocol):
    """What paces a L{PacedClient} (a L{pypid.storage.s3.markers.Pacer})."""

    def wait(self) -> Deferred[None]:
        """Fires when the next call may start."""
        ...


class PacedClient(BucketCalls):
    """
    The calls of an L{S3Client}, each started no sooner than a
    L{pypid.storage.s3.markers.Pacer} allows: what the background full check
    lists and reads the bucket with. The client's other users (uploads,
    downloads, polls) call it directly, so they never wait behind the check.
    """

    def __init__(self, client: BucketCalls, pacer: _Pacer) -> None:
        self._client = client
        self._pacer = pacer
        self.bucket = client.bucket
        self.limit = client.limit

    @property
    def timeout(self) -> float:
        """The deadline of one call, in seconds."""
        return self._client.timeout

    async def call(self, *args: Any, **kwargs: Any) -> S3Response:
        """L{S3Client.call}, once the pacer gives it a slot (its retries included)."""
        await self._pacer.wait()
        return await self._client.call(*args, **kwargs)


async def _sleep(clock: IReactorTime, seconds: float) -> None:
    d: Deferred[None] = Deferred()
    clock.callLater(seconds, d.callback, None)
    await d
