"""
The express lane: a kept page, or a small stored file, sent to an anonymous C{GET} in one
write, without Twisted's resource traversal and response machinery.

Most of what an index answers is the same few pages (C{/simple/...}, C{/NAME/simple/...}) to
clients that send no credentials. The page is rendered once and kept
(L{pypid.core.indexes.rendered_pages}); what a request then cost was Twisted's: 70 us a page
through the resource tree, 36 us for the same bytes written at once (in process, best of 15
runs of 1,000; figures: docs/performance.rst).

So the lane answers as early as it can: a request's whole head that arrives between requests
(as pip and uv send them) goes to L{ExpressLane.take}, which reads it strictly and answers
before Twisted parses a line; a head it does not read goes to Twisted's parser, and is offered
again once parsed (L{ExpressLane.__call__}), before L{PypidRequest.process} builds anything.

The lane sends only what the read path's one decider says to send as it is
(L{IndexSimple.decide}, L{IndexFiles.decide}: the same gates, status, advisories, upstream
merge and backfill), with the headers, bytes, download count and log line of the usual path.
It serves only indexes anyone may read, never looking at who asks; credentials, a conditional
request or range, a query, a redirect, an upstream to ask, a quarantined or advised project, a
file over L{SMALL_FILE} or kept elsewhere, HTTP/1.0 or a closing connection go the usual way,
which answers exactly as without the lane. A small file read is kept in memory
(L{SMALL_FILES}, keyed by path and sha256: a name's bytes never change).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet.interfaces import IAddress
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from pypid.core.access.forwarded import TrustedProxies
from pypid.core.formats.negotiate import accepts_gzip
from pypid.core.indexes.render import AgedPage, Page
from pypid.core.util.http_errors import HTTPError
from pypid.core.util.lru import ByteLRU
from pypid.storage.base.interface import LocalFile, MemoryFile
from pypid.web.identity.request_auth import client_address, forwarded_client
from pypid.web.server.respond import PAGE_CACHE_CONTROL
from pypid.web.server.twisted_http import write_between_requests, write_now
from pypid.web.serving.read_decisions import PlainFile
from pypid.web.serving.stored_objects import FILE_CACHE_CONTROL, FILE_CONTENT_TYPE, SMALL_FILE

#: The bytes of small files read from disk that the lane keeps: a few
#: hundred C{.metadata} files and small wheels, a few MiB at most.
SMALL_FILES = 8 << 20


class ExpressSource(Protocol):
    """What the lane answers from: the site's root."""

    def plain_page(self, accept: bytes | None, index: bytes | None,
                   rest: bytes) -> Page | AgedPage | None:
        """
        The kept page an anonymous C{GET} of C{/simple/<rest>} (C{index} L{None}) or
        C{/<index>/simple/<rest>} with the C{Accept} header C{accept} gets (with its C{Age} when
        composed from an upstream's cached page), or L{None} when the usual path must answer.
        """

    def plain_file(self, index: bytes | None, rest: bytes) -> PlainFile | None:
        """The stored file for C{/files/<rest>} or C{/<index>/files/<rest>}, as L{plain_page}."""


_PAGES = b"/simple/"
_FILES = b"/files/"
_PAGE_HEAD = (b"\r\nCache-Control: " + PAGE_CACHE_CONTROL
              + b"\r\nVary: Accept, Accept-Encoding\r\n")
_FILE_HEAD = (b"Content-Type: " + FILE_CONTENT_TYPE + b"\r\nETag: %s\r\nCache-Control: "
              + FILE_CACHE_CONTROL + b"\r\nAccept-Ranges: bytes\r\nContent-Length: %d\r\n\r\n")

#: The request headers that send a request the usual way: credentials, a condition, a range.
USUAL_HEADERS = frozenset((b"authorization", b"if-none-match", b"range", b"if-range"))

#: And those that do when the lane reads the bytes: a body, an expectation, a protocol change.
_RAW_USUAL = USUAL_HEADERS | {b"content-length", b"transfer-encoding", b"expect", b"upgrade",
                              b"http2-settings"}

#: The longest request head, and the most header lines, L{ExpressLane.take} reads (Twisted's
#: own limits are 16 KiB and 500).
MAX_HEAD = 8192
MAX_FIELDS = 100

#: A request line the lane answers: C{GET} or C{HEAD} of a path, no query, over HTTP/1.1.
_REQUEST_LINE = re.compile(rb"(GET|HEAD) (/[!-\x3e\x40-~]*) HTTP/1\.1")

#: The header lines after the request line: each a CRLF, a name (a token, RFC 9110 5.6.2), a
#: colon and a value with no NUL, CR or LF (5.5), the blanks around it left out: what Twisted
#: accepts, less the obsolete folding. Matched in one pass, its quantifiers possessive: it never
#: backtracks (an expression that also took the blanks apart took minutes on a value of blanks
#: then a NUL; this one, 40 us on 8 KiB).
_FIELDS = re.compile(rb"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]++:[^\x00\r\n]*+)*+")


def fixed_head(headers: Iterable[tuple[bytes, Iterable[bytes]]]) -> bytes:
    """The header lines every answer carries, their names capitalized as Twisted writes them."""
    return b"".join(b"-".join(word.capitalize() for word in name.split(b"-"))
                    + b": " + value + b"\r\n" for name, values in headers for value in values)


class ExpressLane:
    """Answers what it can: from the bytes (L{take}), or once Twisted parsed them (L{__call__})."""

    def __init__(self, source: ExpressSource, date: Callable[[], bytes], fixed: bytes,
                 kept_bytes: int = SMALL_FILES) -> None:
        # (bound once: the lane's every answer calls one)
        self._plain_page = source.plain_page
        self._plain_file = source.plain_file
        self._date = date
        self._fixed = fixed
        #: small files read from disk: C{(path, etag) -> bytes}
        self._kept: ByteLRU[tuple[str, bytes], bytes] = ByteLRU(kept_bytes)

    def take(self, channel: HTTPChannel, data: bytes) -> bool:
        """
        Answer the request C{data} holds, if the lane can; whether it did. The channel calls
        this when C{data} arrives between requests: the lane answers when C{data} is one whole
        request head and nothing more, read strictly (L{_REQUEST_LINE}, L{_FIELDS}); the channel
        parses the rest as usual. The answer is counted and logged as L{Request.finish} would
        (the site's C{log}), but no L{Request} is made.
        """
        end = len(data) - 4
        if end > MAX_HEAD or data.find(b"\r\n\r\n") != end:
            return False
        first = data.find(b"\r\n")
        line = _REQUEST_LINE.fullmatch(data, 0, first)
        if line is None:
            return False
        headers: dict[bytes, bytes] = {}
        if first < end:
            if _FIELDS.fullmatch(data, first, end) is None:
                return False
            lines = data[first + 2:end].split(b"\r\n")
            if len(lines) >= MAX_FIELDS:
                return False
            for raw in lines:
                name, _, value = raw.partition(b":")
                name = name.lower()
                if name in headers or name in _RAW_USUAL:
                    return False
                headers[name] = value.strip(b" \t")
        connection = headers.get(b"connection")
        if connection is not None and connection.lower() != b"keep-alive":
            return False
        site = channel.site  # type: ignore[attr-defined]  # (a PypidSite's channel)
        asked = Asked(line.group(1), line.group(2), headers, channel, site.timer())
        answer = self.answer(asked.method, asked.path, headers.get(b"accept"),
                             headers.get(b"accept-encoding"), asked.client)
        if answer is None:
            return False
        if site.trusted_proxies.networks:
            # (resolved, and a bad X-Forwarded-For logged, once per request
            # answered, as the usual path does for every request it parses)
            asked.client()
        data, asked.sentLength = answer
        write_between_requests(channel, data)
        site.log(asked)
        return True

    def __call__(self, request: Request) -> bool:
        """
        Send the answer and finish C{request} if the lane can; whether it did. Called once
        Twisted parsed the request, before anything else reads it: a request that came in
        parts, or behind another on the connection.
        """
        if request.args or request.clientproto != b"HTTP/1.1" \
                or not request.channel.persistent:
            return False
        headers = request.requestHeaders
        has = headers.hasHeader
        for name in USUAL_HEADERS:
            if has(name):
                return False
        get = headers.getRawHeaders
        answer = self.answer(request.method, request.path, get(b"accept", (None,))[0],
                             get(b"accept-encoding", (None,))[0],
                             lambda: client_address(request))
        if answer is None:
            return False
        data, request.sentLength = answer
        request.code = 200
        # (the status line and headers are written: finish() writes none)
        request.startedWriting = 1
        write_now(request.channel.transport, data)
        request.finish()
        return True

    def answer(self, method: bytes, path: bytes, accept: bytes | None,
               accept_encoding: bytes | None,
               client: Callable[[], str | None]) -> tuple[bytes, int] | None:
        """
        The whole answer to an anonymous C{method} of C{path} (no query) with the C{Accept} and
        C{Accept-Encoding} given, when the lane may send it: its bytes, and how many bytes of
        body they hold; else L{None}. C{client()} is the client's address, for a download's count.
        """
        if method != b"GET" and method != b"HEAD":
            return None
        index: bytes | None = None
        if path.startswith(_PAGES):
            pages, rest = True, path[len(_PAGES):]
        elif path.startswith(_FILES):
            pages, rest = False, path[len(_FILES):]
        else:
            # (a named index's: /<index>/simple/... or /<index>/files/...)
            slash = path.find(b"/", 1)
            if slash < 0:
                return None
            index, after = path[1:slash], path[slash:]
            if after.startswith(_PAGES):
                pages, rest = True, after[len(_PAGES):]
            elif after.startswith(_FILES):
                pages, rest = False, after[len(_FILES):]
            else:
                return None
        if pages:
            return self._page(method, index, rest, accept, accept_encoding)
        return self._file(method, index, rest, client)

    def _page(self, method: bytes, index: bytes | None, rest: bytes, accept: bytes | None,
              accept_encoding: bytes | None) -> tuple[bytes, int] | None:
        try:
            page = self._plain_page(accept, index, rest)
        except HTTPError:
            return None  # (the usual path answers it: advisories not read yet, say)
        if page is None:
            return None
        age = b""
        if isinstance(page, AgedPage):
            age = b"Age: " + page.age + b"\r\n"
            page = page.page
        gz = page.gzipped is not None and accepts_gzip(accept_encoding)
        if gz:
            body: bytes = page.gzipped  # type: ignore[assignment]  # (not None: gz says so)
            etag: bytes = page.gzip_etag  # type: ignore[assignment]  # (set with gzipped)
        else:
            body, etag = page.body, page.etag
        head = b"".join((b"Content-Type: ", page.content_type, b"\r\nETag: ", etag, _PAGE_HEAD,
                         b"Content-Encoding: gzip\r\n" if gz else b"", age,
                         b"X-PyPI-Last-Serial: %d\r\n" % page.serial
                         if page.serial is not None else b"",
                         b"Content-Length: %d\r\n\r\n" % len(body)))
        return self._whole(method, head, body)

    def _file(self, method: bytes, index: bytes | None, rest: bytes,
              client: Callable[[], str | None]) -> tuple[bytes, int] | None:
        try:
            found = self._plain_file(index, rest)
        except HTTPError:
            return None
        if found is None:
            return None
        location = found.location
        if isinstance(location, MemoryFile):
            data = location.data
        elif isinstance(location, LocalFile):
            key = (location.path, found.etag)
            kept = self._kept.get(key)
            if kept is not None:
                data = kept
            else:
                try:
                    with open(location.path, "rb") as f:
                        if os.fstat(f.fileno()).st_size > SMALL_FILE:
                            return None
                        data = f.read(SMALL_FILE + 1)
                except OSError:
                    return None  # (the usual path answers, and logs, a missing file)
                if len(data) > SMALL_FILE:
                    return None
                self._kept.put(key, data, len(data))
        else:
            return None
        if found.usage is not None and method == b"GET":
            # (a whole body: a download, as the usual path counts it)
            found.usage.count(found.filename, client(), False)
        return self._whole(method, _FILE_HEAD % (found.etag, len(data)), data)

    def _whole(self, method: bytes, head: bytes, body: bytes) -> tuple[bytes, int]:
        """The status line, every header and the body (not to HEAD), and the body's length sent."""
        parts = [b"HTTP/1.1 200 OK\r\nDate: ", self._date(), b"\r\n", self._fixed, head]
        if method == b"GET":
            parts.append(body)
            return b"".join(parts), len(body)
        return b"".join(parts), 0


class Asked:
    """
    A request the lane answered from its bytes, as the site's C{log} reads a finished request:
    what it counts, and what an access log line says (Twisted's C{combinedLogFormatter}).
    """

    __slots__ = ("method", "path", "_headers", "_channel", "started", "sentLength", "_client")

    clientproto = b"HTTP/1.1"
    code = 200
    received = 0

    def __init__(self, method: bytes, path: bytes, headers: dict[bytes, bytes],
                 channel: HTTPChannel, started: float) -> None:
        self.method = method
        self.path = path
        self._headers = headers
        self._channel = channel
        self.started = started
        self.sentLength = 0
        #: the client L{client} found, in a tuple (it may be L{None})
        self._client: tuple[str | None] | None = None

    @property
    def uri(self) -> bytes:
        """The request target (no query: the lane answers none)."""
        return self.path

    @property
    def _line(self) -> tuple[bytes, bytes]:
        """The method and path, as L{pypid.web.site.PypidRequest} keeps them."""
        return (self.method, self.path)

    def has_credentials(self) -> bool:
        """None: the lane answers no request that has them."""
        return False

    def getHeader(self, name: bytes) -> bytes | None:
        """A request header's value, or L{None}."""
        return self._headers.get(name.lower())

    def getClientAddress(self) -> IAddress:
        """The connection's peer."""
        return self._channel.transport.getPeer()  # type: ignore[union-attr]  # (connected)

    def client(self) -> str | None:
        """
        The client's address, resolved once as L{resolve_client} does: behind a trusted proxy,
        the client it names (a header that cannot be read is logged); else the peer's host.
        """
        if self._client is not None:
            return self._client[0]
        host = getattr(self.getClientAddress(), "host", None)
        proxies: TrustedProxies = self._channel.site.trusted_proxies  # type: ignore[attr-defined]
        if proxies.networks:
            forwarded = self._headers.get(b"x-forwarded-for")
            host = forwarded_client(proxies, host, () if forwarded is None else (forwarded,))
        self._client = (host,)
        return host
