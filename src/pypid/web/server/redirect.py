"""
The plain-HTTP C{http-redirect:} listener: L{RedirectSite} answers every request with a
redirect to the same path over HTTPS as soon as its headers are in, without reading the body
first and without ever handing the request to the index. Credentials sent to it in clear are
never checked or used.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote

import attrs
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.logger import Logger
from twisted.web import http, resource, server

from pypid.web.server.body import DiscardedBody, answer_before_body
from pypid.web.server.channel import GuardedSite, origin_form
from pypid.web.server.connections import ConnectionCounter
from pypid.web.server.twisted_http import parse_form_body, request_line

log = Logger()

#: How much of a request body is read and thrown away after the answer, so that the client
#: reads it rather than a reset connection; past this, the connection is closed.
REDIRECT_DISCARD_LIMIT = 64 << 20

#: A C{Host} header the redirect may name: a DNS name of labels (1 to 63 letters, digits and
#: inner hyphens, none empty) or an IPv6 literal in brackets (read by L{ipaddress}), a port or not.
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rb"^(?:(?P<name>" + _LABEL + rb"(?:\." + _LABEL + rb")*)"
                   rb"|\[(?P<ipv6>[0-9A-Fa-f:.]{2,45})\])(?::[0-9]{1,5})?$")

#: What may stay unquoted in a redirect's path and query (RFC 3986's
#: reserved and unreserved characters, and "%" of escapes already there).
_URL_SAFE = "/?[]@!$&'()*+,;=:%~"


@attrs.frozen
class HTTPSRedirect:
    """
    Where the C{http-redirect:} listener sends clients.

    @ivar base_url: C{[pypid] base_url} (an C{https://} URL), or L{None}: then
        the host of the request's C{Host} header, on C{https_port}.
    @ivar https_port: the port of the (first) C{https:} listener.
    """

    base_url: str | None
    https_port: int

    def location(self, target: bytes, host: bytes | None) -> str | None:
        """The HTTPS URL for a request target and C{Host}; L{None} without base URL or good host."""
        path = quote(origin_form(target), safe=_URL_SAFE)
        if self.base_url is not None:
            return self.base_url + path[1:]
        match = _HOST.match(host or b"")
        if match is None:
            return None
        if match.group("ipv6") is not None:
            try:
                name = f"[{ipaddress.IPv6Address(match.group('ipv6').decode('ascii'))}]"
            except ValueError:
                return None
        elif len(match.group("name")) > 253:
            return None
        else:
            name = match.group("name").decode("ascii").lower()
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{name}{port}{path}"

    def answer(self, method: bytes | None, target: bytes, host: bytes | None,
               has_credentials: bool) -> tuple[int, str | None, str]:
        """
        C{(status, location, body)}: 301 for GET and HEAD, 308 (which keeps the method) for the
        others, or 400 without a usable C{Host}.
        """
        location = self.location(target, host)
        if location is None:
            return 400, None, ("This server answers over HTTPS only, and this request has "
                               "no usable Host header to redirect it with.\n")
        status = 301 if method in (b"GET", b"HEAD") else 308
        body = f"This server answers over HTTPS only: {location}\n"
        if has_credentials:
            body += ("The credentials sent with this request were not used: they crossed the "
                     "network unencrypted. Use the https:// URL (and consider the password "
                     "exposed).\n")
        return status, location, body


_REASONS = {301: b"Moved Permanently", 308: b"Permanent Redirect", 400: b"Bad Request"}


class RedirectRequest(http.Request):
    """A request answered with its redirect once its headers are in, then closed."""

    content: DiscardedBody  # type: ignore[assignment]  # (Twisted's is a file, None at first)

    def gotLength(self, length: int | None) -> None:
        """Answer now; throw the body away (and close past the discard limit)."""
        channel = self.channel
        # (the connection is open, its headers just in; the channel is a RedirectSite's)
        transport: ITransport = channel.transport  # type: ignore[assignment]
        site: RedirectSite = channel.site  # type: ignore[attr-defined]
        parse_form_body(self, False)
        self.content = DiscardedBody(REDIRECT_DISCARD_LIMIT, transport.loseConnection)
        # No "100 Continue" after the final answer.
        self.requestHeaders.removeHeader(b"expect")
        method, target = request_line(channel, b"GET", b"/")
        host = self.requestHeaders.getRawHeaders(b"host", [None])[0]
        has_credentials = self.requestHeaders.hasHeader(b"authorization")
        status, location, body = site.redirect.answer(method, target, host, has_credentials)
        if has_credentials:
            peer = transport.getPeer()
            log.warn("Refused credentials sent over plain HTTP by {client}: redirected to "
                     "HTTPS", client=getattr(peer, "host", str(peer)))
        headers = [(b"Location", location.encode("ascii"))] if location is not None else []
        answer_before_body(transport, status, body, headers, reason=_REASONS[status],
                           send_body=method != b"HEAD")
        channel.persistent = False
        if length is not None and length > REDIRECT_DISCARD_LIMIT:
            transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The answer is out and the body read: close."""
        self.channel.transport.loseConnection()  # type: ignore[union-attr]  # (still open)


class RedirectSite(GuardedSite):
    """
    The C{http-redirect:} listener's factory: every request gets a redirect to HTTPS (see
    L{HTTPSRedirect}) and nothing else; no request reaches the index.
    """

    requestFactory = RedirectRequest  # type: ignore[assignment]  # (a Request of ours)
    displayTracebacks = False
    noisy = False

    def __init__(self, redirect: HTTPSRedirect, reactor: IReactorTime | None = None,
                 counter: ConnectionCounter | None = None) -> None:
        server.Site.__init__(self, resource.NoResource(), reactor=reactor)
        self.redirect = redirect
        # The main listeners' guards: the per-address limit, the deadlines of PypidChannel.
        self.counter = counter if counter is not None else ConnectionCounter()

    def log(self, request: http.Request) -> None:
        """No access log: nothing is served here."""
