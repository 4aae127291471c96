"""
The express lane: a kept page, or a small stored file, sent to an
anonymous C{GET} in one write, without Twisted's resource traversal and
response machinery (issue 43).

Most of what an index answers is the same few pages to clients that send
no credentials: C{/simple/} and C{/simple/<project>/} (or a named
index's C{/NAME/simple/...}), as HTML or JSON, compressed or not. The page
itself is rendered once and kept (L{pypid.core.rendered_pages}); what a
request then cost was Twisted's: the resource tree walked, a dozen
headers set one by one through L{Headers}' checks, the status line and
headers written, the body written, the request finished. Measured in
process on the real site (in-memory storage, 2 cores shared with other
work, best of 15 runs of 1,000 requests): 70 us a page through that
path, 36 us for the same bytes written at once.

So a request the lane can answer is answered here, before
L{pypid.web.site.PypidRequest.process} builds anything: the same decision
as the resource's, for the default index and every named one alike
(L{pypid.web.simple.RootResource.plain_page} and C{plain_file}, through
L{pypid.web.index_root.IndexSimple.plain_page} and
L{pypid.web.index_root.IndexFiles.plain_file}: the same objects, the
index's gates, the project's status, the
upstream merged or not, the backfill), the same headers and bytes as
L{pypid.web.respond.send_page} and C{send_file}, the same download count
and the same counting and access log line (L{Request.finish} calls the
site's C{log}). Anything else goes the usual way: credentials (the lane
serves only indexes anyone may read, and never looks at who asks), a
conditional request or a range (C{304} and C{206} are the usual path's), a
query (C{?format=}), a name to redirect or to ask the upstream for, a
quarantined project (admins see its files), a project an advisory names (a
denied download is refused and audited), a file larger than
L{pypid.web.respond.SMALL_FILE} (streamed at the client's pace) or kept
elsewhere than on this machine, a path with escapes, HTTP/1.0 or a
connection the client closes after the answer.

A small file read from disk is kept in memory for the next request
(L{SMALL_FILES}: bytes by path and sha256, the least recently sent
forgotten first): a file's content never changes under its name, and the
key holds its digest all the same. Measured with C{wrk
-c32} on the lane's small file (py-spy): opening, reading and closing it
were a sixth of the reactor's time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from twisted.web.server import Request

from pypid.core.http_errors import HTTPError
from pypid.core.lru import ByteLRU
from pypid.core.negotiate import accepts_gzip
from pypid.core.render import Page
from pypid.storage.interface import LocalFile, MemoryFile
from pypid.web.index_root import PlainFile
from pypid.web.request_auth import client_address
from pypid.web.respond import (
    FILE_CACHE_CONTROL,
    FILE_CONTENT_TYPE,
    PAGE_CACHE_CONTROL,
    SMALL_FILE,
)

#: The bytes of small files read from disk that the lane keeps: a few
#: hundred C{.metadata} files and small wheels, a few MiB at most.
SMALL_FILES = 8 << 20

#: C{plain_page(request, index, rest) -> Page | None}: the kept page for
#: C{/simple/<rest>} (C{index} L{None}) or C{/<index>/simple/<rest>}, or
#: L{None} when the usual path must answer.
PlainPage = Callable[[Request, bytes | None, bytes], Page | None]

#: C{plain_file(request, index, rest) -> PlainFile | None}: the stored file
#: for C{/files/<rest>} or C{/<index>/files/<rest>}, or L{None} when the
#: usual path must answer.
PlainFileOf = Callable[[Request, bytes | None, bytes], PlainFile | None]

_PAGES = b"/simple/"
_FILES = b"/files/"
_PAGE_HEAD = (b"\r\nCache-Control: " + PAGE_CACHE_CONTROL
              + b"\r\nVary: Accept, Accept-Encoding\r\n")
_FILE_HEAD = (b"Content-Type: " + FILE_CONTENT_TYPE + b"\r\nETag: %s\r\nCache-Control: "
              + FILE_CACHE_CONTROL + b"\r\nAccept-Ranges: bytes\r\nContent-Length: %d\r\n\r\n")


def fixed_head(headers: Iterable[tuple[bytes, Iterable[bytes]]]) -> bytes:
    """
    The header lines every answer carries (the security headers), as bytes,
    their names capitalized as Twisted writes them.
    """
    return b"".join(b"-".join(word.capitalize() for word in name.split(b"-"))
                    + b": " + value + b"\r\n" for name, values in headers for value in values)


class ExpressLane:
    """
    Answers the requests it can (L{__call__}); see the module.

    @ivar _plain_page: the L{PlainPage} of every index.
    @ivar _plain_file: the L{PlainFileOf} of every index.
    @ivar _date: C{date() -> bytes}, the Date header's value now.
    @ivar _fixed: the header lines of L{fixed_head}.
    """

    def __init__(self, plain_page: PlainPage, plain_file: PlainFileOf,
                 date: Callable[[], bytes], fixed: bytes,
                 kept_bytes: int = SMALL_FILES) -> None:
        self._plain_page = plain_page
        self._plain_file = plain_file
        self._date = date
        self._fixed = fixed
        #: small files read from disk: C{(path, etag) -> bytes}
        self._kept: ByteLRU[tuple[str, bytes], bytes] = ByteLRU(kept_bytes)

    def __call__(self, request: Request) -> bool:
        """
        Send the answer and finish C{request} if the lane can; whether it
        did. Called once Twisted has parsed the request (its method, path,
        query and version), before anything else reads it.
        """
        path = request.path
        index: bytes | None = None
        if path.startswith(_PAGES):
            pages, rest = True, path[len(_PAGES):]
        elif path.startswith(_FILES):
            pages, rest = False, path[len(_FILES):]
        else:
            # (a named index's: /<index>/simple/... or /<index>/files/...)
            slash = path.find(b"/", 1)
            if slash < 0:
                return False
            index, after = path[1:slash], path[slash:]
            if after.startswith(_PAGES):
                pages, rest = True, after[len(_PAGES):]
            elif after.startswith(_FILES):
                pages, rest = False, after[len(_FILES):]
            else:
                return False
        if request.args:
            return False
        method = request.method
        if method != b"GET" and method != b"HEAD":
            return False
        if request.clientproto != b"HTTP/1.1" or not request.channel.persistent:
            return False
        has = request.requestHeaders.hasHeader
        if has(b"authorization") or has(b"if-none-match") or has(b"range") or has(b"if-range"):
            return False
        if pages:
            return self._page(request, index, rest)
        return self._file(request, index, rest)

    def _page(self, request: Request, index: bytes | None, rest: bytes) -> bool:
        try:
            page = self._plain_page(request, index, rest)
        except HTTPError:
            return False  # (the usual path answers it: advisories not read yet, say)
        if page is None:
            return False
        gz = page.gzipped is not None and accepts_gzip(
            request.requestHeaders.getRawHeaders(b"accept-encoding", (None,))[0])
        if gz:
            body: bytes = page.gzipped  # type: ignore[assignment]  # (not None: gz says so)
            etag: bytes = page.gzip_etag  # type: ignore[assignment]  # (set with gzipped)
        else:
            body, etag = page.body, page.etag
        head = b"".join((b"Content-Type: ", page.content_type, b"\r\nETag: ", etag, _PAGE_HEAD,
                         b"Content-Encoding: gzip\r\n" if gz else b"",
                         b"Content-Length: %d\r\n\r\n" % len(body)))
        self._send(request, head, body)
        return True

    def _file(self, request: Request, index: bytes | None, rest: bytes) -> bool:
        try:
            found = self._plain_file(request, index, rest)
        except HTTPError:
            return False
        if found is None:
            return False
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
                            return False
                        data = f.read(SMALL_FILE + 1)
                except OSError:
                    return False  # (the usual path answers, and logs, a missing file)
                if len(data) > SMALL_FILE:
                    return False
                self._kept.put(key, data, len(data))
        else:
            return False
        if found.usage is not None and request.method == b"GET":
            # (a whole body: a download, as the usual path counts it)
            found.usage.count(found.filename, client_address(request), False)
        self._send(request, _FILE_HEAD % (found.etag, len(data)), data)
        return True

    def _send(self, request: Request, head: bytes, body: bytes) -> None:
        """Write the status line, every header and the body (not to HEAD), and finish."""
        parts = [b"HTTP/1.1 200 OK\r\nDate: ", self._date(), b"\r\n", self._fixed, head]
        if request.method == b"GET":
            parts.append(body)
            request.sentLength = len(body)
        request.code = 200
        # (the status line and headers are written: finish() writes none)
        request.startedWriting = 1
        request.channel.write(b"".join(parts))
        request.finish()
