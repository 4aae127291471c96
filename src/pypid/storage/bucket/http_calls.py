"""
One request to an object store, as every cloud's adapter sends it: with
treq on the reactor, a deadline that grows with the bytes sent and
expected, a bounded answer (a misbehaving store cannot grow the server's
memory), retries of what may be retried, and every attempt timed for
C{/metrics}. The URL, the signature and the errors are the adapter's.
Bodies are streamed from files by L{FileRangeProducer}, in the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any, TypeAlias

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from pypid.core.records.metrics import Timings
from pypid.http import bodies
from pypid.jobs.run import Run
from pypid.storage.base.interface import Deliverable, StorageError
from pypid.storage.bucket.credential_life import SharedStarts, Startable
from pypid.storage.bucket.store import (
    Creation,
    ObjectHead,
    ObjectRef,
    StoreRefused,
    StoreUnavailable,
    parse_http_time,
)

#: Error answers are read up to this size (a store's are a few hundred bytes).
ERROR_BODY_LIMIT = 64 << 10

#: A request with a body gets this much more time per byte than the base
#: deadline: uploads are slow on slow links, and must still end.
MIN_RATE = 256 << 10

#: Waits before each retry of an idempotent request that failed for want of
#: the store (connection lost, a 5xx such as SlowDown).
RETRY_DELAYS = (0.2, 1.0)


@attrs.frozen
class Answer:
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
    pool a chunk at a time at the consumer's pace, with C{prefix} and
    C{suffix} around them (a multipart body's framing).
    """

    def __init__(self, path: str, offset: int, length: int, run: Run,
                 chunk: int = 1 << 20, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self.length = len(prefix) + length + len(suffix)
        self._path = path
        self._offset = offset
        self._left = length
        self._run = run
        self._chunk = chunk
        self._prefix, self._suffix = prefix, suffix
        self._paused: Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """Send the range to C{consumer}: fires when all is sent (never once stopped)."""
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
            if self._prefix:
                consumer.write(self._prefix)
            left = self._left
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
            if self._suffix:
                consumer.write(self._suffix)
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


#: The body of a call: bytes, or a callable returning a fresh
#: L{FileRangeProducer} (called once per attempt).
Body: TypeAlias = bytes | Callable[[], FileRangeProducer]

#: Signs a request: C{(method, url, headers, body bytes or producer)} ->
#: the headers to send (the URL is the one signed).
Signer: TypeAlias = Callable[[str, str, dict[str, str], "bytes | FileRangeProducer"],
                             dict[str, str]]

#: What a store's error answer becomes: C{(status, body, headers)} -> the
#: exception to raise.
Refusal: TypeAlias = Callable[[int, bytes, dict[str, str]], StorageError]


def read_body(response: IResponse, limit: int, label: str,
              unavailable: type[StoreUnavailable]) -> Deferred[bytes]:
    """Read an answer's body, failing with C{unavailable} beyond C{limit}."""
    d = bodies.read_body(response, limit)

    def failed(failure: Failure) -> bytes:
        failure.trap(bodies.BodyError)
        if failure.check(bodies.BodyTooLarge):
            raise unavailable(f"{label} sent more than {limit} bytes")
        raise unavailable(f"the answer from {label} was {failure.getErrorMessage()}")
    return d.addErrback(failed)


@attrs.define
class StoreHTTP:
    """
    The requests of one store's client: its treq C{http} client, deadline
    (C{timeout}, without a body), limit of calls in flight and timings;
    C{unavailable} is the class of a failure of the store.
    """

    label: str
    endpoint: str
    http: Any
    clock: IReactorTime
    timeout: float = 30.0
    unavailable: type[StoreUnavailable] = StoreUnavailable
    limit: DeferredSemaphore = attrs.field(factory=lambda: DeferredSemaphore(16))
    timings: Timings = attrs.field(factory=Timings)

    async def send(self, method: str, url: str, sign: Signer, refused: Refusal,
                   headers: dict[str, str] | None = None, body: Body = b"",
                   ok: tuple[int, ...] = (200,), limit: int = 1 << 20, stream: bool = False,
                   retry: bool = True, expect: int = 0) -> Answer:
        """
        Make one call, retrying (when C{retry}) after a failure of the store.

        @param ok: the statuses that are answers rather than errors.
        @param stream: leave an answer of 200 or 206 unread, for a relay.
        @param expect: the answer's expected size, extending the deadline.
        @raise StorageError: what C{refused} makes of another status, or
            C{unavailable} when the store fails.
        """
        delays = RETRY_DELAYS if retry else ()
        attempt = 0
        seconds, record = self.clock.seconds, self.timings.record
        while True:
            started = seconds()
            try:
                answer = await self._once(method, url, sign, refused, headers or {}, body, ok,
                                          limit, stream, expect)
                record(method, seconds() - started)
                return answer
            except StoreUnavailable:
                record(method, seconds() - started, failed=True)
                if attempt >= len(delays):
                    raise
                await sleep(self.clock, delays[attempt])
                attempt += 1
            except StorageError:
                # (an answer the call did not expect: a 403, say)
                record(method, seconds() - started, failed=True)
                raise

    async def _once(self, method: str, url: str, sign: Signer, refused: Refusal,
                    headers: dict[str, str], body: Body, ok: tuple[int, ...], limit: int,
                    stream: bool, expect: int) -> Answer:
        data: FileRangeProducer | bytes
        data = body() if callable(body) else body
        size = data.length if isinstance(data, FileRangeProducer) else len(data)
        signed = sign(method, url, headers, data)
        deadline = self.timeout + (size + expect) / MIN_RATE
        current: list[Deferred[Any] | None] = [None]
        timed_out = []
        label, unavailable = self.label, self.unavailable

        def expire() -> None:
            timed_out.append(True)
            if current[0] is not None:
                current[0].cancel()
        timer = self.clock.callLater(deadline, expire)
        try:
            current[0] = request = self.http.request(method, url, headers=signed,
                                                     data=data or None,
                                                     allow_redirects=False, unbuffered=True)
            try:
                response: IResponse = await request
            except CancelledError:
                if not timed_out:
                    raise  # cancelled by the caller: no answer is wanted
                raise unavailable(f"{label} did not answer {method} within {deadline:.0f} s")
            except Exception as e:
                raise unavailable(f"cannot reach {label} at {self.endpoint}: "
                                  f"{bodies.describe(e)}")
            code = response.code
            head = {name.decode("latin-1").lower(): values[0].decode("latin-1")
                    for name, values in response.headers.getAllRawHeaders()}
            if stream and code in (200, 206):
                return Answer(code, head, stream=response)
            current[0] = reading = read_body(
                response, limit if code in ok else ERROR_BODY_LIMIT, label, unavailable)
            try:
                content = await reading
            except CancelledError:
                if not timed_out:
                    raise
                raise unavailable(f"{label} did not finish its answer to {method} within "
                                  f"{deadline:.0f} s")
        finally:
            if timer.active():
                timer.cancel()
        if code in ok:
            return Answer(code, head, content)
        raise refused(code, content, head)


class StoreClient:
    """
    What every cloud's client shares: its L{StoreHTTP}, its credentials'
    starts and stops, and L{answers}, saying what to fix in the store's own
    words. A client lists one key with L{_list_one}.
    """

    label: str
    kind: str
    #: what the store calls a bucket, in messages
    noun = "bucket"
    #: the error codes that say, beside a 404, that the bucket does not exist
    missing_codes: frozenset[str] = frozenset()
    #: what a refusal of access asks the operator to check
    access_hint = "the credentials and that they may list, read and write objects"
    #: whether messages name the bucket with its endpoint (an account's containers)
    where_has_endpoint = False

    def __init__(self, endpoint: str, name: str, credentials: Startable, http: Any,
                 clock: IReactorTime, timeout: float, unavailable: type[StoreUnavailable],
                 parallel: int, timings: Timings | None, shared: bool) -> None:
        """@param shared: whether several storages share the client (L{SharedStarts})."""
        self._name = name
        self._credentials: Any = credentials
        self._starts = SharedStarts(credentials, shared)
        self._http = StoreHTTP(self.label, endpoint, http, clock, timeout, unavailable,
                               DeferredSemaphore(parallel), timings or Timings())
        self.limit = self._http.limit
        self.timings = self._http.timings

    @property
    def timeout(self) -> float:
        """The deadline of one call, in seconds."""
        return self._http.timeout

    async def start(self) -> None:
        """Find the credentials (once, when the client is shared)."""
        await self._starts.start()

    def stop(self) -> None:
        """Stop refreshing the credentials (after the last user, when shared)."""
        self._starts.stop()

    def signer(self) -> str:
        """Who signs URLs now."""
        return str(self._credentials.signer())

    def ref(self, key: str) -> ObjectRef:
        """The object C{key}, as another prefix of this endpoint copies it."""
        return ObjectRef(self._http.endpoint, self._name, key)

    async def _list_one(self, prefix: str, retry: bool) -> None:
        raise NotImplementedError()

    def _named(self) -> str:
        """The bucket in messages: C{the bucket NAME}."""
        return f"the {self.noun} {self._name}"

    def _where(self) -> str:
        """The bucket in messages, with its endpoint where it needs one."""
        named = self._named()
        return f"{named} at {self._http.endpoint}" if self.where_has_endpoint else named

    def _missing(self, e: StoreRefused) -> bool:
        """Whether a refusal says the bucket does not exist."""
        return e.code in self.missing_codes or e.status == 404

    def _refusal(self, e: StoreRefused) -> str:
        """What a refusal of a call on the bucket asks the operator to fix, in one line."""
        if self._missing(e):
            return f"{self._named()} does not exist at {self._http.endpoint}"
        if e.status in (401, 403):
            return (f"{self.label} refused access to {self._where()} ({e.code}): "
                    f"check {self.access_hint}")
        return f"cannot use {self._where()}: {e}"

    async def answers(self, prefix: str = "", retry: bool = True) -> None:
        """List at most one key under C{prefix}, the cheapest call needing access."""
        try:
            await self._list_one(prefix, retry)
        except StoreRefused as e:
            raise StorageError(self._refusal(e))
        except StoreUnavailable as e:
            raise StorageError(f"cannot use {self._where()}: {e}")

    async def ensure(self, prefix: str, create: Callable[[], Awaitable[Creation]]) -> Creation:
        """
        Make the bucket with C{create} (the cloud's call, making it private)
        only when the store says there is none: one that answers a short
        listing is left as it is. A name C{create} finds taken is this
        bucket when it answers now (a race); one the credentials were
        refused listing is another's, or out of reach. L{StorageError}: one
        line saying why the bucket cannot be used.
        """
        denied = None
        try:
            await self._list_one(prefix, True)
            return Creation(created=False)
        except StoreRefused as e:
            if not self._missing(e):
                if e.status not in (401, 403):
                    raise StorageError(self._refusal(e))
                denied = e
        except StoreUnavailable as e:
            raise StorageError(f"cannot use {self._where()}: {e}")
        try:
            made = await create()
        except StoreRefused as e:
            if denied is not None and e.status in (401, 403):
                raise StorageError(self._refusal(denied))
            raise StorageError(f"cannot create {self._named()}: {e}")
        except StoreUnavailable as e:
            raise StorageError(f"cannot create {self._named()}: {e}")
        if made.created:
            return made
        if denied is not None:
            raise StorageError(
                f"{self._named()} is taken: there is one of that name, which these credentials "
                f"may not list ({denied.code}): choose another name, or check {self.access_hint}")
        await self.answers(prefix)
        return made


async def sleep(clock: IReactorTime, seconds: float) -> None:
    """Wait C{seconds} on C{clock}."""
    d: Deferred[None] = Deferred()
    clock.callLater(seconds, d.callback, None)
    await d


class HeaderMetadataClient(StoreClient):
    """The reads of a store keeping metadata in headers (S3, Azure), with its C{call}."""

    #: the header a read of part of an object names its range in
    range_header = "range"
    #: the client's call: C{call(method, key, headers=..., ok=..., ...)} -> L{Answer}
    call: Callable[..., Awaitable[Answer]]
    #: the user metadata in an answer's headers
    metadata_of: Callable[[Mapping[str, str]], dict[str, str]]

    async def head(self, key: str) -> ObjectHead | None:
        """The object's size, time and user metadata, or L{None} when there is none."""
        response = await self.call("HEAD", key, ok=(200, 404))
        if response.code != 200:
            return None
        headers = response.headers
        return ObjectHead(int(headers.get("content-length", "0")),
                          parse_http_time(headers.get("last-modified", "")),
                          headers.get("etag", "").strip('"'), self.metadata_of(headers))

    async def get(self, key: str, limit: int = 1 << 20, expect: int = 0) -> bytes | None:
        """An object's bytes (up to C{limit}), or L{None} when there is none."""
        response = await self.call("GET", key, ok=(200, 404), limit=limit, expect=expect)
        return response.body if response.code == 200 else None

    async def fetch(self, key: str, start: int, length: int, size: int) -> Deliverable | None:
        """A range of an object, unread (a relay), or L{None} when there is none."""
        headers = {}
        if start or length != size:
            headers[self.range_header] = f"bytes={start}-{start + length - 1}"
        response = await self.call("GET", key, headers=headers, ok=(200, 206, 404), stream=True)
        return response.stream
