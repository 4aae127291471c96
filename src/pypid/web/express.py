"""
The express lane: a kept page sent to an anonymous C{GET} in one write,
without Twisted's resource traversal and response machinery (issue 43).

Most of what an index answers is the same few pages to clients that send
no credentials: C{/simple/} and C{/simple/<project>/}, as HTML or JSON,
compressed or not. The page itself is rendered once and kept
(L{pypid.core.rendered_pages}); what a request then cost was Twisted's:
the resource tree walked, a dozen headers set one by one through
L{Headers}' checks, the status line and headers written, the body written,
the request finished. Measured in process on the real site (in-memory
storage, 2 cores shared with other work, best of 15 runs of 1,000
requests): 70 us a page through that path, 36 us for the same bytes
written at once.

So a request the lane can answer is answered here, before
L{pypid.web.site.PypidRequest.process} builds anything: the same decision
as the resource's (L{pypid.web.index_root.IndexPath.plain_page}: the same
objects, the read gate, the project's status, the upstream merged or not,
the backfill), the same headers and bytes as
L{pypid.web.respond.send_page}, the same counting and access log line
(L{Request.finish} calls the site's C{log}). Anything else goes the usual
way: credentials (the lane serves only indexes anyone may read, and never
looks at who asks), a conditional request (C{If-None-Match}: C{304} is
L{send_page}'s), a query (C{?format=}), a name to redirect or to ask the
upstream for, a quarantined project (admins see its files), a path with
escapes, HTTP/1.0 or a connection the client closes after the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.web.server import Request

from pypid.core.negotiate import accepts_gzip
from pypid.core.render import Page
from pypid.web.respond import PAGE_CACHE_CONTROL

#: C{plain_page(request, rest) -> Page | None}: the kept page for
#: C{/simple/<rest>}, or L{None} when the usual path must answer.
PlainPage = Callable[[Request, bytes], Page | None]

_PREFIX = b"/simple/"
_PAGE_HEAD = (b"\r\nCache-Control: " + PAGE_CACHE_CONTROL
              + b"\r\nVary: Accept, Accept-Encoding\r\n")


def fixed_head(headers: Iterable[tuple[bytes, Iterable[bytes]]]) -> bytes:
    """
    The header lines every answer carries (the security headers), as bytes,
    their names capitalized as Twisted writes them.
    """
    return b"".join(b"-".join(word.capitalize() for word in name.split(b"-"))
                    + b": " + value + b"\r\n" for name, values in headers for value in values)


class ExpressPages:
    """
    Answers the requests it can (L{__call__}); see the module.

    @ivar _plain_page: the default index's L{PlainPage}.
    @ivar _date: C{date() -> bytes}, the Date header's value now.
    @ivar _fixed: the header lines of L{fixed_head}.
    """

    def __init__(self, plain_page: PlainPage, date: Callable[[], bytes], fixed: bytes) -> None:
        self._plain_page = plain_page
        self._date = date
        self._fixed = fixed

    def __call__(self, request: Request) -> bool:
        """
        Send the answer and finish C{request} if the lane can; whether it
        did. Called once Twisted has parsed the request (its method, path,
        query and version), before anything else reads it.
        """
        path = request.path
        if not path.startswith(_PREFIX) or request.args:
            return False
        method = request.method
        if method != b"GET" and method != b"HEAD":
            return False
        channel = request.channel
        if request.clientproto != b"HTTP/1.1" or not channel.persistent:
            return False
        headers = request.requestHeaders
        if headers.hasHeader(b"authorization") or headers.hasHeader(b"if-none-match"):
            return False
        page = self._plain_page(request, path[len(_PREFIX):])
        if page is None:
            return False
        gz = page.gzipped is not None and accepts_gzip(
            headers.getRawHeaders(b"accept-encoding", (None,))[0])
        if gz:
            body: bytes = page.gzipped  # type: ignore[assignment]  # (not None: gz says so)
            etag: bytes = page.gzip_etag  # type: ignore[assignment]  # (set with gzipped)
        else:
            body, etag = page.body, page.etag
        parts = [b"HTTP/1.1 200 OK\r\nDate: ", self._date(), b"\r\n", self._fixed,
                 b"Content-Type: ", page.content_type, b"\r\nETag: ", etag, _PAGE_HEAD,
                 b"Content-Encoding: gzip\r\n" if gz else b"",
                 b"Content-Length: %d\r\n\r\n" % len(body)]
        if method == b"GET":
            parts.append(body)
            request.sentLength = len(body)
        request.code = 200
        # (the status line and headers are written: finish() writes none)
        request.startedWriting = 1
        channel.write(b"".join(parts))
        request.finish()
        return True
