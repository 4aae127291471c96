"""
The HTTP site: a L{Site} whose requests choose where their body goes before it arrives.

Twisted's L{Request} keeps a body in memory (or a temporary file), then parses a
C{multipart/form-data} body into C{request.args} all at once, dropping the part's filename.
Here every body is an L{IRequestBody}: an upload streams to a L{SpooledForm} (parsed, hashed
and spooled in a worker thread), anything else is a small L{PlainBody}, a refused one discarded.

Whether to read a body at all is decided before it arrives: an upload whose declared length is
over the limit, or whose credentials are missing or wrong (reading pauses until they are
verified), is answered at once and its body discarded. Other requests carry at most 1 MiB.

A client that sent C{Expect: 100-continue} is invited to send an upload's body only once its
credentials passed: Twisted answers C{100 Continue} as soon as the headers are in (measured: a
wrong password got C{100 Continue}, then the C{401}), so the expectation is held back until the
check succeeds; a refused client gets the final answer alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import HTTPChannel, datetimeToString, unquote
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource

from pypid.auth.basic import MalformedCredentials, www_authenticate_header
from pypid.auth.verifier import Identity
from pypid.core.access.cross_site import SAFE_METHODS, cross_site_refusal
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.index_names import NO_SUCH_INDEX, index_upload_path, simple_of
from pypid.core.records.metrics import BATCH, UPLOAD_PATHS, RequestStats
from pypid.core.util.http_errors import HTTPError, NotFound
from pypid.jobs.run import Run, run_at_once
from pypid.state.catch_up import CatchUp
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import IRequestAuth, request_credentials, resolve_client
from pypid.web.server.body import (
    MAX_PLAIN_BODY,
    PLAIN_TOO_LARGE,
    DiscardedBody,
    IRequestBody,
    PlainBody,
    SpooledForm,
    answer_before_body,
    too_large_message,
)
from pypid.web.server.channel import (
    ConnectionCounter,
    GuardedSite,
    PypidChannel,
    Refused,
    origin_form,
)
from pypid.web.server.multipart import FormSink, boundary_from_content_type
from pypid.web.server.respond import Rendered, simple_post_error
from pypid.web.server.twisted_http import parse_form_body, request_line, request_version
from pypid.web.server.upload_form import MultipartError, UploadTooLarge
from pypid.web.serving.express import ExpressLane, ExpressSource, fixed_head
from pypid.web.web_inputs import SiteSettings

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.web.server.site")

#: On every answer: a browser must not guess another type for it, nor run
#: anything in it (the pages for people use inline style only).
SECURITY_HEADERS = (
    (b"x-content-type-options", [b"nosniff"]),
    (b"content-security-policy", [b"default-src 'none'; style-src 'unsafe-inline'; "
                                  b"frame-ancestors 'none'; base-uri 'none'; "
                                  b"form-action 'none'"]),
)

#: How much of a refused body is read and thrown away, so that the client reads the answer
#: rather than a reset connection; past this, the connection closes right after the answer.
DISCARD_LIMIT = 64 << 20

#: What an upload body may hold beyond the file: its text fields and framing.
_FIELDS_ALLOWANCE = 9 << 20


def _utf8(data: bytes) -> bool:
    """Whether C{data} is UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _header(headers: Headers, name: bytes) -> bytes | None:
    """A request header's first value, or L{None}."""
    values = headers.getRawHeaders(name)
    return values[0] if values else None


class PypidRequest(server.Request):
    """A request streaming uploads, with a cached C{Date}, and no C{Server} (nobody's business)."""

    site: PypidSite
    content: IRequestBody  # type: ignore[assignment]  # (Twisted's is a file, None at first)

    #: set when an answer was sent before the body arrived
    early_answer = False
    #: set once the whole body arrived and the request went to its resource
    _body_done = False
    #: when the request's headers were in (the site's C{timer}), for its latency
    started: float | None = None
    #: request body bytes received so far
    received = 0
    #: the request line's method and path (origin form, no query), read
    #: once the headers are in
    _line: tuple[bytes | None, bytes] = (b"", b"/")

    def has_credentials(self) -> bool:
        """Whether the request carried an C{Authorization} header."""
        return self.requestHeaders.hasHeader(b"authorization")

    def gotLength(self, length: int | None) -> None:
        """Choose where the body goes, before any of it arrives."""
        channel = self.channel
        # (this request's channel is one of PypidSite's)
        site: PypidSite = channel.site  # type: ignore[attr-defined]
        self.started = site.timer()
        # Who the client is, once, before anything (credential check, routes, audit log) asks.
        resolve_client(self, site.trusted_proxies)
        parse_form_body(self, False)
        command, target = request_line(channel)
        path = origin_form(target).split(b"?", 1)[0]
        self._line = (command, path)
        if b"%" in path and not _utf8(unquote(path)):
            # (Klein would log a traceback for each, and answer in its own words)
            site.note_bad_path()
            return self._answer_early(length, 400, "path: not valid UTF-8")
        # A change a browser sent on behalf of another site (a foreign page's form, with this
        # site's credentials) is refused before its body; a GET (the hot path) reads no header.
        if command not in SAFE_METHODS:
            headers = self.requestHeaders
            refusal = cross_site_refusal(
                command or b"", _header(headers, b"sec-fetch-site"),
                _header(headers, b"origin"), _header(headers, b"host"), site.base_url)
            if refusal is not None:
                return self._answer_early(length, 403, refusal)
        if command != b"POST" or (path not in UPLOAD_PATHS and not (
                site.index_uploads and index_upload_path(path))):
            if length is not None and length > MAX_PLAIN_BODY:
                misdirected = (self._misdirected_upload(path, site)
                               if command == b"POST" else None)
                if misdirected is not None:
                    return self._answer_early(length, misdirected.code, misdirected.detail,
                                              extra=misdirected.headers,
                                              reason=misdirected.reason)
                return self._answer_early(length, 413, PLAIN_TOO_LARGE)
            # Small forms (a yank reason, a token request): Twisted parses them from memory.
            parse_form_body(self, True)
            self.content = PlainBody(self._plain_too_large)
            return
        ctype = self.requestHeaders.getRawHeaders(b"content-type", [b""])[0]
        try:
            boundary = boundary_from_content_type(ctype)
        except MultipartError:
            # Not a form: the upload route answers 400 with the reason.
            self.content = DiscardedBody()
            return
        try:
            credentials = request_credentials(self)
        except MalformedCredentials as e:
            return self._answer_early(length, 401, f"Authorization: {e}", www=True)
        if credentials is None:
            return self._answer_early(length, 401, "authentication is required to upload", www=True)
        limit = site.max_upload_size
        # The file may be up to the limit, the text fields beside it up to the parser's 8 MiB.
        if length is not None and length > limit + _FIELDS_ALLOWANCE:
            return self._answer_early(length, 413, too_large_message(limit))
        auth = IRequestAuth(self)
        auth.credentials = credentials
        pause, resume = _reading_controls(self.channel)
        self.content = SpooledForm(FormSink(boundary, site.spool_dir, max_file_size=limit),
                                   site.run, pause, resume, self._sink_failed)
        if site.access is not None:
            # (the default index's grant before its uploads' bodies; a named
            # index's once its gate showed it: pypid.web.changes.publish)
            index = DEFAULT_INDEX if path in UPLOAD_PATHS else None
            self._verify_before_body(site.access.gate_upload(self, credentials, index=index),
                                     length)

    def _verify_before_body(self, verified: Deferred[Identity], length: int | None) -> None:
        """
        Read no body until the credentials are verified: wrong ones must not spool a large
        upload onto the storage's disk. Verified credentials are cached: for twine and uv this
        costs nothing after the first upload.
        """
        pause, resume = _reading_controls(self.channel)
        paused = not verified.called
        # (a check already done: Twisted answers the expectation, or the refusal removes it)
        invite = paused and self._hold_continue()
        if paused:
            pause()

        # The upload route waits for this check (the body may be in before it is done):
        # credentials are checked, and failures counted, once.
        IRequestAuth(self).verified = check = Deferred[Identity]()

        def verified_ok(identity: Identity) -> None:
            if getattr(self, "channel", None) is None:
                # The client left meanwhile (Twisted drops a lost request's channel).
                check.callback(identity)
                return
            if invite:
                # Before the route may run and answer (the body may be in).
                self._send_continue()
            check.callback(identity)
            if paused and not self.early_answer:
                resume()

        def refused(failure: Failure) -> None:
            failure.trap(HTTPError)
            check.errback(failure)
            if self._body_done:
                return  # the upload route answers it
            check.addErrback(lambda _: None)  # answered here; no route will wait
            if getattr(self, "channel", None) is None:
                return  # the client left while its credentials were checked
            self.content.close()
            self._answer_early(length, failure.value.code, failure.value.detail,
                               www=failure.value.code == 401, extra=failure.value.headers)
            if paused and self.channel.transport is not None:
                resume()

        verified.addCallbacks(verified_ok, refused)
        verified.addErrback(lambda f: log.failure("Verifying upload credentials", f))

    def _hold_continue(self) -> bool:
        """Take away the C{Expect: 100-continue} Twisted would answer after L{gotLength}; if any."""
        expect = self.requestHeaders.getRawHeaders(b"expect")
        if not expect or expect[0].lower() != b"100-continue" \
                or request_version(self.channel) != b"HTTP/1.1":
            return False  # (no expectation to meet: RFC 9110 10.1.1)
        self.requestHeaders.removeHeader(b"expect")
        return True

    def _send_continue(self) -> None:
        """Invite the body held back by L{_hold_continue}, unless it is too late for that."""
        if self.early_answer or self._body_done:
            return
        channel = getattr(self, "channel", None)  # (gone once a request is answered)
        if channel is None or channel.transport is None:
            return
        channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def handleContentChunk(self, data: bytes) -> None:
        """Feed the body on (each body enforces its own limit)."""
        self.received += len(data)
        self.content.write(data)

    def _plain_too_large(self) -> None:
        """A small body passed its limit: answer 413 at once."""
        self._answer_early(None, 413, PLAIN_TOO_LARGE)

    def _sink_failed(self, error: BaseException) -> None:
        """An upload's sink found an error while the body arrives: answer 413 at once."""
        if isinstance(error, UploadTooLarge) and not self.early_answer and not self._body_done:
            self.content.close()
            self._answer_early(None, 413, too_large_message(self._site().max_upload_size))

    def _misdirected_upload(self, path: bytes, site: PypidSite) -> HTTPError | None:
        """
        What a large C{POST} to a URL an upload client may be pointed at is told rather than
        that its body is too large, as the routes answer a small one: at an index's simple
        pages, the URL that takes uploads; at a C{/NAME/} without named indexes, that there is
        none. L{None} for another URL.
        """
        simple = simple_of(path, site.index_uploads)
        if simple is not None:
            base = site.base_url or "/"
            return simple_post_error(self, base if simple == DEFAULT_INDEX
                                     else f"{base}{simple}/")
        if index_upload_path(path):
            return NotFound(NO_SUCH_INDEX)
        return None

    def _answer_early(self, length: int | None, code: int, message: str, www: bool = False,
                      extra: Iterable[tuple[bytes, bytes]] = (),
                      reason: bytes | None = None) -> None:
        """
        Answer now, before the body, then close the connection: after the discarded body when
        it is small, at once when large. C{reason}: the status line's, by default the message's.
        """
        transport = self.channel.transport
        close = _closer(self.channel)
        self.content = DiscardedBody(DISCARD_LIMIT, close)
        self.early_answer = True
        # No "100 Continue" after a final answer (Twisted sends one after gotLength).
        self.requestHeaders.removeHeader(b"expect")
        # (the values are the server's own: Retry-After, say)
        headers = [(b"WWW-Authenticate", www_authenticate_header())] if www else []
        # (an early answer is for a connection still open: it has a transport)
        answer_before_body(transport, code, message, headers + list(extra),  # type: ignore[arg-type]
                           reason=reason, send_body=self._line[0] != b"HEAD")
        self._site().count(self, code, 0)
        self.channel.persistent = False
        if length is None or length > DISCARD_LIMIT:
            close()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Hand a finished body to the resource once it is drained, unless answered already."""
        self._body_done = True
        if self.early_answer:
            _closer(self.channel)()
            return
        d = self.content.drained()
        if d.called:
            server.Request.requestReceived(self, command, path, version)
            return
        # The route sees the body once the worker has fed all of it.
        d.addCallback(lambda _: self._received(command, path, version))
        d.addErrback(self.processingFailed)

    def _received(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.channel is not None and not self.early_answer:
            server.Request.requestReceived(self, command, path, version)

    def process(self) -> None:
        """Like L{server.Request.process}, with cheaper, quieter headers."""
        self.site = site = self.channel.site  # type: ignore[attr-defined]  # (a PypidSite's)
        express = site.express
        if express is not None and express(self):
            return
        headers = self.responseHeaders
        headers.setRawHeaders(b"date", [site.date_header()])
        for name, value in SECURITY_HEADERS:
            headers.setRawHeaders(name, value)
        self.prepath = []
        self.postpath = list(map(unquote, self.path[1:].split(b"/")))
        try:
            self.render(site.getResourceFor(self))
        except BaseException:
            self.processingFailed(Failure())

    def render(self, resrc: IResource) -> None:
        """
        Render as Twisted does, but quietly for a C{HEAD} whose resource gives the C{GET}'s body
        (many errors and redirects do): Twisted answers it alike, but logs a warning for each,
        a line any client can write by the thousand.
        """
        server.Request.render(self, _Headless(resrc) if self.method == b"HEAD" else resrc)

    def processingFailed(self, reason: Failure) -> Failure:
        """A bug: log it and answer a plain 500 with no traceback."""
        log.failure("Unhandled error answering {method} {path}", reason,
                    method=self.method, path=self.path)
        body = b"Internal server error\n"
        if not self.startedWriting:
            self.setResponseCode(500)
            self.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self.setHeader(b"content-length", b"%d" % len(body))
            self.write(body)
        if not self.finished:
            self.finish()
        return reason

    def _site(self) -> PypidSite:
        """The site whose channel this request came on."""
        return cast(PypidSite, self.channel.site)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure) -> None:
        """Remove a half-received upload's spooled file; count the request as abandoned."""
        if self.content is not None:  # (None until the headers are in)
            self.content.close()
        if not self.finished and not self.early_answer and self.started is not None:
            site = getattr(self.channel, "site", None)
            if site is not None:
                site.count(self, None, self.sentLength)
        server.Request.connectionLost(self, reason)


@attrs.frozen
class _Headless:
    """A resource as a C{HEAD} sees it: the length of the body it gives, without the body."""

    _resource: IResource

    def render(self, request: server.Request) -> Rendered:
        """The resource's answer; a body it gives only sets C{Content-Length}."""
        body: Rendered = self._resource.render(request)
        # (Twisted answers a HEAD the resource does not take with a GET)
        if isinstance(body, bytes) and body and request.method == b"HEAD":
            request.setHeader(b"content-length", b"%d" % len(body))
            return b""
        return body


def _reading_controls(channel: HTTPChannel,
                      ) -> tuple[Callable[[], object], Callable[[], object]]:
    """
    How to pause and resume reading a request body: through a L{PypidChannel}, which keeps
    pauses from counting against the client's rate, else on the transport.
    """
    if isinstance(channel, PypidChannel):
        return channel.pause_reading, channel.resume_reading
    transport = cast(IPushProducer, channel.transport)  # (TCP's or TLS's)
    return transport.pauseProducing, transport.resumeProducing


def _closer(channel: HTTPChannel) -> Callable[[], object]:
    """
    How to close the connection after an early answer: through the channel, never the bare
    transport, which under TLS stays open while the channel is registered as its producer.
    """
    return getattr(channel, "close_after_answer", channel.loseConnection)


class PypidSite(GuardedSite):
    """
    The site: our request class, no access log unless configured, and a C{Date} header
    formatted once a second. The L{SiteSettings} a request reads are attributes.

    @ivar access: verifies an upload's credentials before its body is read; L{None} leaves it
        to the route.
    @ivar index_uploads: whether named indexes are served: then C{/NAME/} and
        C{/NAME/legacy[/]} take uploads too, for every name an index could have, so that a
        missing index asks for credentials before the body as a hidden one does.
    @ivar run: runs the parsing, hashing and writing of upload bodies in a worker thread; by
        default on the reactor thread, for tests of the same body path with no threads.
    """

    requestFactory = PypidRequest
    displayTracebacks = False

    def __init__(self, resource: IResource, settings: SiteSettings, spool_dir: str,
                 reactor: IReactorTime | None = None,
                 access: Gates | None = None, run: Run | None = None,
                 counter: ConnectionCounter | None = None,
                 timer: Callable[[], float] | None = None, stats: RequestStats | None = None,
                 express: ExpressSource | None = None,
                 catch_up: CatchUp | None = None, index_uploads: bool = False) -> None:
        server.Site.__init__(self, resource, logPath=settings.access_log, reactor=reactor)
        self.catch_up = catch_up
        #: the express lane (L{pypid.web.serving.express}) of the kept pages and
        #: stored files C{express} gives, or L{None}
        self.express = None if express is None else ExpressLane(
            express, self.date_header, fixed_head(SECURITY_HEADERS))
        self.base_url = settings.base_url
        self.trusted_proxies = settings.trusted_proxies
        #: what was answered, for C{/metrics}
        self.stats = stats if stats is not None else RequestStats()
        self._batch = self.stats.batch
        #: the clock of latencies: C{time.monotonic} in the server, by default the reactor's
        #: C{seconds}, so that a test's L{Clock} works
        self.timer = timer if timer is not None else self.reactor.seconds
        self.counter = counter if counter is not None else ConnectionCounter()
        self.header_timeout = settings.header_timeout
        self.min_body_rate = settings.min_upload_rate
        self.send_timeout = settings.send_timeout
        self.max_upload_size = settings.max_upload_size
        self.spool_dir = spool_dir
        self.access = access
        self.index_uploads = index_uploads
        self.run = run if run is not None else run_at_once
        self._access_log = settings.access_log
        self._date: tuple[int | None, bytes] = (None, b"")
        self._bad_path_noted = False

    def note_bad_path(self) -> None:
        """Log once that non-UTF-8 paths are refused: a client may send them by the thousand."""
        if not self._bad_path_noted:
            self._bad_path_noted = True
            log.info("Refusing requests whose path is not UTF-8 (400; logged once)")

    def buildProtocol(  # type: ignore[override]  # (our channel, not Twisted's proxy of one)
            self, addr: IAddress | None) -> PypidChannel | Refused:
        """A new connection, unless its address holds too many already."""
        channel = super().buildProtocol(addr)
        if isinstance(channel, Refused):
            return channel
        for name in ("header_timeout", "min_body_rate", "send_timeout"):
            if (value := getattr(self, name)) is not None:
                setattr(channel, name, value)
        return channel

    def date_header(self) -> bytes:
        """The current time as an HTTP date, formatted at most once a second."""
        now = int(self.reactor.seconds())
        if self._date[0] != now:
            self._date = (now, datetimeToString(now))
        return self._date[1]

    def log(self, request: PypidRequest) -> None:  # type: ignore[override]
        """Count a finished request (L{Request.finish} calls this), and log it if configured."""
        started = request.started
        if started is not None:
            # (L{RequestStats.record}, inlined: this runs for every request)
            method, path = request._line
            status = request.code
            batch = self._batch
            batch.append((method, path, status, self.timer() - started, request.sentLength,
                          request.received))
            if status == 401 and request.has_credentials():
                self.stats.login_failures += 1
            if len(batch) >= BATCH:
                self.stats.settle()
        if self._access_log is not None:
            server.Site.log(self, request)

    def count(self, request: PypidRequest, status: int | None, sent: int) -> None:
        """Count an answered request, or one abandoned (C{status} L{None})."""
        started = getattr(request, "started", None)
        if started is None:
            return  # (not ours: a test's bare request)
        method, path = request._line
        self.stats.record(method, path, status, self.timer() - started, sent,
                          request.received, request.has_credentials)
