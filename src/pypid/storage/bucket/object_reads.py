"""
How a bucket's objects reach a client or the server, changing nothing: a
redirect to a presigned URL (cached until shortly before it expires:
L{PresignedURLs}) or a public one, a relay through the server (C{download =
stream}), and the small objects read whole.

A relayed body is cut short when the store sends nothing for a while
(L{IdleGuard}), so a stalled store cannot hold a download open for ever; a
pause the client asks for does not count as the store's silence.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import MAX_PROVENANCE_SIZE
from pypid.core.records.metrics import Family, counter, gauge
from pypid.core.util.bounded import put_newest
from pypid.http.bodies import Deadline
from pypid.storage.base.interface import (
    Deliverable,
    MemoryFile,
    Redirect,
    RemoteBytes,
    RemoteFile,
    StorageError,
    checked_provenance,
)
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.store import ObjectStore

log = Logger()

#: Core metadata objects are read up to this size.
METADATA_LIMIT = 16 << 20

#: Details objects (a rendered README, highlighted, is a few times the
#: 1 MiB description it came from) are read up to this size.
DETAILS_LIMIT = 32 << 20


@attrs.define
class ObjectReads:
    """
    The reads of a prefix's objects.

    @ivar _imports: holds the metadata of objects a scan read without persisting.
    @ivar _download: C{"redirect"} or C{"stream"} (C{[s3] download}).
    @ivar _public_url: where the objects are public (a CDN), or L{None}.
    """

    _client: ObjectStore
    _layout: Layout
    _urls: PresignedURLs
    _imports: Importer
    _clock: IReactorTime
    _download: str
    _public_url: str | None

    def locate(self, record: FileRecord) -> Redirect | RemoteFile:
        """A redirect (presigned or public URL), or a relay through the server."""
        key = self._layout.file_key(record.path)
        if self._public_url is not None:
            return Redirect(self._public_url + quote(record.path, safe="/~"))
        if self._download == "stream":
            return RemoteFile(record.size, partial(self._fetch, key, record.size))
        return Redirect(self._urls.url(key))

    def locate_metadata(self, record: FileRecord) -> MemoryFile | Redirect | RemoteBytes:
        """Like L{locate}, for the metadata sibling (or from memory, as L{read_metadata})."""
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return MemoryFile(data)
        key = self._layout.metadata_key(record.path)
        if self._public_url is not None:
            return Redirect(self._public_url + quote(record.path + ".metadata", safe="/~"))
        if self._download == "stream":
            return RemoteBytes(partial(self.read_metadata, record))
        return Redirect(self._urls.url(key))

    def read_metadata(self, record: FileRecord) -> Deferred[bytes]:
        """The metadata sibling's bytes, from memory after a scan that did not persist."""
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return succeed(data)

        async def read() -> bytes:
            data = await self._client.get(self._layout.metadata_key(record.path),
                                          limit=METADATA_LIMIT)
            if data is None:
                raise FileNotFoundError(record.path + ".metadata")
            return data
        return ensureDeferred(read())

    def read_details(self, record: FileRecord) -> Deferred[bytes | None]:
        """The details object's bytes, or L{None} when there is none."""
        return ensureDeferred(self._client.get(self._layout.details_key(record.filename),
                                               limit=DETAILS_LIMIT))

    def read_provenance(self, record: FileRecord) -> Deferred[bytes | None]:
        """The provenance object the record names, checked against its digest."""
        digest = record.provenance_sha256
        if digest is None:
            return succeed(None)

        async def read() -> bytes | None:
            data = await self._client.get(self._layout.provenance_key(record.filename, digest),
                                          limit=MAX_PROVENANCE_SIZE)
            return checked_provenance(record, data)
        return ensureDeferred(read())

    def _fetch(self, key: str, size: int, start: int, length: int) -> Deferred[Deliverable]:
        """The bytes C{start} to C{start + length} of the object C{key}, relayed as they come."""
        async def fetch() -> Deliverable:
            stream = await self._client.fetch(key, start, length, size)
            if stream is None:
                raise FileNotFoundError(key)
            return IdleGuard(stream, self._clock, self._client.timeout)
        return ensureDeferred(fetch())


# -- the signed URLs ---------------------------------------------------------------

#: The most presigned URLs kept, the oldest signed going first: a URL and its
#: key are about 600 bytes (measured), some 30 MiB at most; one forgotten is
#: signed again at its next download (tens of microseconds).
MAX_PRESIGNED = 50_000


@attrs.define
class PresignedURLs:
    """
    Presigned C{GET} URLs by object key, reused while they have at least the
    buffer time to live: signing costs tens of microseconds, and a CDN or
    proxy in front of the store may cache by URL. The cache goes into the
    local snapshot, so a restart does not sign everything again.

    @ivar _clock: wall-clock time, as expiries are.
    @ivar _buffer_time: how long before its expiry a URL stops being handed
        out (s): a client redirected just before must still have time.
    @ivar _urls: key -> C{(url, usable until)}, oldest signed first.
    """

    _client: ObjectStore
    _clock: IReactorTime
    _expire_after: float = 900.0
    _buffer_time: float = 300.0
    _urls: dict[str, tuple[str, float]] = attrs.field(factory=dict, init=False)
    _changed: bool = attrs.field(default=False, init=False)
    hits: int = attrs.field(default=0, init=False)
    misses: int = attrs.field(default=0, init=False)

    def __len__(self) -> int:
        """How many URLs the cache holds."""
        return len(self._urls)

    def url(self, key: str) -> str:
        """A presigned GET URL for C{key}, cached or signed now."""
        now = self._clock.seconds()
        cached = self._urls.get(key)
        if cached is not None and cached[1] > now:
            self.hits += 1
            return cached[0]
        self.misses += 1
        url, expires = self._client.sign_url(key, self._expire_after, now)
        usable_until = now + expires - self._buffer_time
        if usable_until > now:
            put_newest(self._urls, key, (url, usable_until), MAX_PRESIGNED)
            self._changed = True
        return url

    def metric_families(self) -> Iterator[Family]:
        """The cache's size, and how many URLs came from it or were signed anew."""
        kind = self._client.kind
        yield gauge(f"pypid_{kind}_presigned_urls", "Presigned download URLs cached.",
                    len(self._urls))
        yield counter(f"pypid_{kind}_presigned", "Downloads redirected to a presigned URL, by "
                      "whether the URL came from the cache.", None, ("result",),
                      [(("hit",), self.hits), (("miss",), self.misses)])

    # -- the snapshot ------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """
        The cache for the snapshot, without URLs due for renewal, and its
        signer; L{None} while there are no credentials.
        """
        now = self._clock.seconds()
        try:
            access_key = self._client.signer()
        except StorageError:
            return None
        self._urls = {key: value for key, value in self._urls.items() if value[1] > now}
        self._changed = False
        urls = {key: [url, until] for key, (url, until) in self._urls.items()}
        return {"access_key": access_key, "presigned": urls}

    def changed(self) -> bool:
        """Whether URLs were signed since the last L{state}."""
        return self._changed

    def restore(self, state: object) -> None:
        """
        Take back the cache from a snapshot's L{state}: only URLs of the
        signer now, not due for renewal, within L{MAX_PRESIGNED}; anything
        malformed is ignored (a snapshot is a cache, not a promise).
        """
        if not isinstance(state, dict):
            return
        try:
            if state.get("access_key") != self._client.signer():
                return
        except StorageError:
            return
        now = self._clock.seconds()
        presigned = state.get("presigned")
        if not isinstance(presigned, dict):
            return
        for key, value in presigned.items():
            if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                    and isinstance(value[1], (int, float)) and value[1] > now
                    and len(self._urls) < MAX_PRESIGNED):
                self._urls[key] = (value[0], float(value[1]))


# -- the relay's stall guard ---------------------------------------------------------


class IdleGuard:
    """A relayed answer, cut short when the store sends nothing for C{timeout} s."""

    def __init__(self, response: Deliverable, clock: IReactorTime, timeout: float) -> None:
        self._response = response
        self._clock = clock
        self._timeout = timeout

    def deliverBody(self, protocol: IProtocol) -> None:
        """Deliver the body to C{protocol}, watched."""
        self._response.deliverBody(_IdleProtocol(protocol, self._clock, self._timeout))


class _IdleProtocol:
    """Passes a body on, and stops it after a silence (see L{IdleGuard})."""

    def __init__(self, inner: IProtocol, clock: IReactorTime, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._deadline = Deadline(clock, timeout, self._expired)
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        # (this is the inner protocol's transport: a producer it can pause)
        self._inner.makeConnection(self)  # type: ignore[arg-type]
        self._deadline.arm()

    def dataReceived(self, data: bytes) -> None:
        self._deadline.arm()
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        self._deadline.disarm()
        self._inner.connectionLost(reason)

    # The transport the inner protocol sees: pauses stop the watch.

    def pauseProducing(self) -> None:
        self._deadline.disarm()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._deadline.arm()
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._deadline.disarm()
        self.transport.stopProducing()

    def _expired(self) -> None:
        log.warn("The store sent nothing for {seconds} s: cutting the download short",
                 seconds=self._timeout)
        self.transport.stopProducing()
