"""
Sending a stored object (a distribution file, its metadata) wherever the storage keeps it:
from a local file, from memory, by a redirect to where a remote store serves it, or relayed
from that store as it arrives. Its validators and byte ranges (C{If-None-Match}, C{Range},
C{If-Range}) are read here, once, for the answer and for what counts as a download.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from typing import BinaryIO, Literal, cast

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.tcp import Connection
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.iweb import IRequest, IResponse
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import NoRangeStaticProducer, SingleRangeStaticProducer
from zope.interface import implementer

from pypid.core.dists.model import FileRecord
from pypid.core.util.http_errors import HTTPError, NotFound
from pypid.storage.base.interface import (
    LocalFile,
    Location,
    MemoryFile,
    Redirect,
    RemoteBytes,
    RemoteFile,
    StorageError,
)
from pypid.web.server.respond import (
    TEXT,
    Answer,
    Rendered,
    connected,
    etag_matches,
    storage_unavailable,
)
from pypid.web.server.twisted_http import plain_socket, unsent_bytes, wait_until_writable

#: (the namespace these lines always had, before they were split from respond)
log = Logger(namespace="pypid.web.serving.respond")


FILE_CACHE_CONTROL = b"max-age=365000000, immutable"
FILE_CONTENT_TYPE = b"application/octet-stream"

#: What a redirect target may hold: printable ASCII, so never a CR, an LF or
#: any other byte that could end or split the Location header.
_URL = re.compile(r"[!-~]+\Z")

#: Files up to this size are read and written in one piece; larger ones are
#: streamed by a producer that follows the client's pace.
SMALL_FILE = 256 << 10

_RANGE = re.compile(rb"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def storage_failure(failure: Failure, request: IRequest) -> Failure:
    """
    Turn a failure to read a stored object into its answer (raised): 404 when the object is
    missing (logged, since the index lists it), 503 with C{Retry-After} when the storage is
    down. Other failures pass on.
    """
    if failure.check(FileNotFoundError):
        log.error("The stored file for {uri} is missing", uri=request.uri)
        raise NotFound("the stored file is missing")
    if failure.check(StorageError):
        log.error("Cannot read the stored file for {uri}: {error}", uri=request.uri,
                  error=str(failure.value))
        raise storage_unavailable(failure.value)
    return failure


def parse_range(header: bytes, size: int,
                ) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """
    Parse a single C{Range: bytes=...} header against a file of C{size}: C{(start, end)}
    inclusive, L{None} to send the whole file (no range, several or a malformed one), or
    C{"unsatisfiable"}.
    """
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return (max(size - suffix, 0), size - 1) if size else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


#: What a GET of a stored object transfers (L{transfer_of}).
WHOLE, TAIL = "whole", "tail"


def transfer_of(request: IRequest, size: int, etag: bytes) -> str | None:
    """
    What the answer to C{request} for a stored object of C{size} bytes transfers, as L{_plan}
    will decide it: L{WHOLE}, L{TAIL} (a range through its last byte), or L{None}: nothing that
    completes a download (C{HEAD}, C{304}, C{416}, a range that stops short of the end).
    """
    if request.method != b"GET":
        return None
    wanted = _wanted(request, size, etag)
    if wanted is None:
        return WHOLE
    if isinstance(wanted, int):
        return None
    return TAIL if wanted[1] == size - 1 else None


def _wanted(request: IRequest, size: int, etag: bytes) -> int | tuple[int, int] | None:
    """
    What C{request} asks of a stored object of C{size} bytes: L{None} (all of it), C{(start,
    end)} (a range, both included), or the status of an answer with none of it (C{304},
    C{416}). One reading for L{_plan}, which answers, and L{transfer_of}, which counts.
    """
    reqheaders = request.requestHeaders
    inm = reqheaders.getRawHeaders(b"if-none-match")
    if inm and etag_matches(inm, etag):
        return 304
    range_header = reqheaders.getRawHeaders(b"range")
    if range_header:
        if_range = reqheaders.getRawHeaders(b"if-range")
        if not if_range or if_range[0].strip() == etag:
            byte_range = parse_range(range_header[0], size)
            if byte_range == "unsatisfiable":
                return 416
            return byte_range
    return None


def _plan(request: IRequest, size: int, etag: bytes) -> tuple[int, int] | tuple[bytes, None]:
    """
    Set the headers of a stored object's answer and decide what to send: C{(start, length)}
    of the bytes, or C{(body, None)} when the answer is complete (304, 416, or a C{HEAD}).
    """
    headers = request.responseHeaders
    headers.setRawHeaders(b"content-type", [FILE_CONTENT_TYPE])
    headers.setRawHeaders(b"etag", [etag])
    headers.setRawHeaders(b"cache-control", [FILE_CACHE_CONTROL])
    headers.setRawHeaders(b"accept-ranges", [b"bytes"])
    wanted = _wanted(request, size, etag)
    if isinstance(wanted, int):
        request.setResponseCode(wanted)
        if wanted == 304:
            return b"", None
        headers.setRawHeaders(b"content-range", [b"bytes */%d" % size])
        headers.setRawHeaders(b"content-type", [TEXT])
        return b"Requested range not satisfiable\n", None
    if wanted is None:
        start, length = 0, size
    else:
        start, end = wanted
        request.setResponseCode(206)
        headers.setRawHeaders(b"content-range", [b"bytes %d-%d/%d" % (start, end, size)])
        length = end - start + 1
    headers.setRawHeaders(b"content-length", [b"%d" % length])
    if request.method == b"HEAD":
        return b"", None
    return start, length


def send_bytes(request: IRequest, data: bytes, etag: bytes) -> bytes:
    """Send a stored object held in memory, like L{send_file}."""
    plan = _plan(request, len(data), etag)
    if plan[1] is None:
        return plan[0]
    start, length = plan
    return data[start:start + length]


def send_file(request: Request, path: str, etag: bytes) -> Rendered:
    """
    Send a stored file (immutable: a file URL never changes content) with its validators and
    ranges. Small files go out in one write; larger ones through a producer that reads as fast
    as the client takes them, so a slow reader costs no memory. L{FileNotFoundError} if gone.
    """
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        plan = _plan(request, size, etag)
        if plan[1] is None:
            f.close()
            return plan[0]
        start, length = plan
        if length <= SMALL_FILE:
            f.seek(start)
            data = f.read(length)
            f.close()
            return data
        # (behind an answer still in Twisted's buffer too: the sender waits for it)
        connection = plain_socket(getattr(request.channel, "transport", None), drained=False)
        if connection is not None:
            KernelSender(request, f, start, length, connection).start()
        elif length != size:
            SingleRangeStaticProducer(request, f, start, length).start()
        else:
            NoRangeStaticProducer(request, f).start()
        return NOT_DONE_YET
    except BaseException:
        f.close()
        raise


#: What C{sendfile} says when the client has gone (its reset, or a close).
_CLIENT_GONE = frozenset((errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED,
                          errno.ETIMEDOUT))


@implementer(IPushProducer)
class KernelSender:
    """
    A stored file's bytes (C{length} from C{start}) sent by the kernel from the file to a
    plain TCP connection (C{os.sendfile}, nginx's C{sendfile on}): none is read into Python,
    copied or buffered. Paced as Twisted's producers are: when the socket is full, the channel
    is paused as for a full buffer (its C{send_timeout} watches the client), and the sending
    goes on when the socket is writable again. TLS and relayed answers go through Twisted.
    """

    #: The most bytes handed to the kernel in one turn of the reactor, so that one fast
    #: client, or a file not in the page cache, does not hold the others' answers back
    #: (nginx's C{sendfile_max_chunk} is 2 MiB too).
    TURN = 2 << 20

    def __init__(self, request: Request, f: BinaryIO, start: int, length: int,
                 connection: Connection) -> None:
        self._request = request
        self._file = f
        self._offset = start
        self._remaining = length
        self._connection = connection
        self._paused = False
        self._done = False

    def start(self) -> None:
        """Write the head (through Twisted), then the body as the socket takes it."""
        self._request.registerProducer(self, True)
        self._request.write(b"")
        self._send()

    def pauseProducing(self) -> None:
        """The socket, or Twisted's buffer before it, is full."""
        self._paused = True

    def resumeProducing(self) -> None:
        """It takes bytes again."""
        self._paused = False
        self._send()

    def stopProducing(self) -> None:
        """The client has gone."""
        self._done = True
        self._file.close()

    def _send(self) -> None:
        connection = self._connection
        if self._done or self._paused:
            return
        if connection.producer is None or connection.disconnecting or not connection.connected:
            # (the connection is closing or closed under the answer: nothing waits for it)
            self._end(whole=False)
            return
        if unsent_bytes(connection):
            # (the head, or the answer before, still in Twisted's buffer: the body follows it)
            wait_until_writable(connection)
            return
        turn = 0
        while self._remaining and turn < self.TURN:
            try:
                sent = os.sendfile(connection.fileno(), self._file.fileno(), self._offset,
                                   min(self._remaining, self.TURN - turn))
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in _CLIENT_GONE:
                    log.warn("Cannot send the stored file for {uri}: {error}",
                             uri=self._request.uri, error=e.strerror)
                # (a client that left, as a client may, is not logged: the connection's own
                # read of the socket says so, as when Twisted's write finds it)
                self._end(whole=False)
                return
            if not sent:
                log.warn("The stored file for {uri} was cut short, {missing} bytes missing: "
                         "it is shorter than when it was opened",
                         uri=self._request.uri, missing=self._remaining)
                self._end(whole=False)
                return
            self._offset += sent
            self._remaining -= sent
            self._request.sentLength += sent
            turn += sent
        if self._remaining:
            wait_until_writable(connection)
            return
        self._end(whole=True)

    def _end(self, whole: bool) -> None:
        """Finish the answer, or end it short: what was sent still reaches the client."""
        self._done = True
        self._file.close()
        self._request.unregisterProducer()
        if whole:
            self._request.finish()
        else:
            self._request.loseConnection()


def send_redirect(request: IRequest, url: str) -> bytes:
    """
    Send the client to where a stored object is served (a presigned URL of the bucket, a
    CDN): 302, never 301 or 308, which pip caches for good, and C{no-store}, because a
    presigned URL expires. The storage's C{url} is checked all the same: one that is not
    printable ASCII (a CR or LF would end the header) is refused (500) rather than sent.
    """
    if not isinstance(url, str) or not _URL.match(url):
        # The URL is not logged: a presigned one carries a signature.
        log.error("The storage gave an unusable redirect URL for {uri}", uri=request.uri)
        raise HTTPError("the storage gave an invalid location for this file")
    request.setResponseCode(302)
    request.responseHeaders.setRawHeaders(b"location", [url.encode("ascii")])
    request.responseHeaders.setRawHeaders(b"content-type", [TEXT])
    request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
    return b"Found: the file is served from the Location given\n"


def send_remote(request: Request, remote: RemoteFile, etag: bytes,
                ) -> bytes | int | Deferred[int]:
    """
    Relay a stored object from a remote store as it arrives, at the client's pace, like
    L{send_file}: C{HEAD}, C{304} and C{416} are answered from the record's size and never
    reach the store. The body when the answer is complete already; else a L{Deferred} for
    L{finish_later}, firing once the relay has started (it finishes the request itself), or
    failing with 503 when the store is unavailable, 404 when the object is missing.
    """
    plan = _plan(request, remote.size, etag)
    if plan[1] is None:
        return plan[0]
    start, length = plan
    if length == 0:
        return b""
    if not connected(request):
        # Gone while a read gate was checked: nothing to fetch for.
        return NOT_DONE_YET
    # (RemoteFile.fetch is typed as an object by the storage's interface)
    fetch = cast(Callable[[int, int], Deferred[IResponse]], remote.fetch)
    return _Relay(request, length).start(fetch, start)


def _unplan(request: IRequest) -> None:
    """Take back the headers L{_plan} set, before an error is answered instead."""
    for name in (b"etag", b"accept-ranges", b"content-range", b"content-length"):
        request.responseHeaders.removeHeader(name)


@implementer(IPushProducer)
class _Relay(Protocol):
    """
    The body of a remote store's answer, written to a client as it arrives. It is the
    request's push producer, so a client that reads slowly pauses the store's connection
    rather than filling memory, and a client that leaves stops it. A body that ends early (or
    runs long) closes the client's connection unfinished: with C{Content-Length} sent, the
    client sees a truncated download, never a short file that looks whole.

    @ivar _done: whether the answer has ended (finished, cut short or its client gone): from
        then on, nothing touches the request.
    """

    def __init__(self, request: Request, length: int) -> None:
        self._request = request
        self._remaining = length
        self._fetching: Deferred[IResponse] | None = None
        self._done = False

    def start(self, fetch: Callable[[int, int], Deferred[IResponse]], start: int,
              ) -> Deferred[int]:
        """Fetch the bytes; see L{send_remote} for the L{Deferred} returned."""
        self._request.notifyFinish().addErrback(self._client_gone)
        self._fetching = fetching = maybeDeferred(fetch, start, self._remaining)
        return fetching.addCallbacks(self._deliver, self._failed)

    def _deliver(self, response: IResponse) -> int:
        # Even when the client has gone: connectionMade then stops the body (read for nobody).
        response.deliverBody(self)
        return NOT_DONE_YET

    def _failed(self, failure: Failure) -> int | Failure:
        if self._done:
            return NOT_DONE_YET
        self._done = True
        _unplan(self._request)
        return storage_failure(failure, self._request)

    def connectionMade(self) -> None:
        """The body is coming: relay it, or stop it if the client has gone."""
        if self._done:
            self._body().stopProducing()
            return
        self._request.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        """Pass a piece of the body on to the client."""
        if self._done:
            return
        if len(data) > self._remaining:
            log.error("The storage sent more than the bytes asked for {uri}", uri=self._request.uri)
            self._cut_short()
            self._body().stopProducing()
            return
        self._remaining -= len(data)
        self._request.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Finish the answer when the whole body came, else cut it short."""
        if self._done:
            return
        if reason.check(ResponseDone) and not self._remaining:
            self._done = True
            self._request.unregisterProducer()
            self._request.finish()
            return
        log.warn("The stored file for {uri} was cut short, {missing} bytes missing: {reason}",
                 uri=self._request.uri, missing=self._remaining, reason=reason.getErrorMessage())
        self._cut_short()

    def _cut_short(self) -> None:
        self._done = True
        self._request.unregisterProducer()
        # The channel's loseConnection, not its transport's, which never closes with a producer
        # (the channel) registered. What was written still reaches the client.
        self._request.loseConnection()

    def _body(self) -> IPushProducer:
        """The store's body as it is delivered (its transport is its producer)."""
        return cast(IPushProducer, self.transport)

    # -- the client's side: IPushProducer ---------------------------------------

    def pauseProducing(self) -> None:
        """The client reads slowly: stop reading from the store meanwhile."""
        if not self._done:
            self._body().pauseProducing()

    def resumeProducing(self) -> None:
        """The client caught up: read from the store again."""
        if not self._done:
            self._body().resumeProducing()

    def stopProducing(self) -> None:
        """The client has gone: stop the store's body."""
        self._client_gone(None)

    def _client_gone(self, _reason: Failure | None) -> None:
        if self._done:
            return
        self._done = True
        if self.transport is not None:
            self._body().stopProducing()
        elif self._fetching is not None:
            self._fetching.cancel()


def send_stored(request: Request, record: FileRecord, location: Location,
                etag: bytes) -> Answer:
    """
    Send a stored object wherever the storage keeps it: the body, L{NOT_DONE_YET}, or a
    L{Deferred} for L{finish_later} when the object comes from a remote store.
    """
    if isinstance(location, LocalFile):
        try:
            return send_file(request, location.path, etag)
        except FileNotFoundError:
            log.error("Stored file {filename} is missing at {path}",
                      filename=record.filename, path=location.path)
            raise NotFound("the stored file is missing")
    if isinstance(location, MemoryFile):
        return send_bytes(request, location.data, etag)
    if isinstance(location, Redirect):
        return send_redirect(request, location.url)
    if isinstance(location, RemoteFile):
        return send_remote(request, location, etag)
    if isinstance(location, RemoteBytes):
        d = maybeDeferred(location.read)
        d.addCallbacks(lambda data: send_bytes(request, data, etag), storage_failure,
                       errbackArgs=(request,))
        return d
    raise NotFound("no such file")
