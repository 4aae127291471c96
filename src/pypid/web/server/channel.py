"""
The HTTP connection, hardened against clients that hold it open.

Twisted's own idle timeout is reset by every byte, and stopped while an answer is written, so
a client that sends its headers a byte at a time, its upload at a few bytes a second, or stops
reading its answer, keeps a connection (and whatever the request holds) for ever. Here:

  - a request's head must arrive within C{header_timeout} of the connection opening or the
    previous answer (else C{408}), its body at C{min_body_rate} bytes a second at least over
    each C{rate_window} (the server's pauses not counted);
  - an answer the client takes none of for C{send_timeout} (nginx's) has its connection
    dropped; a slow reader is kept (L{PypidChannel.check});
  - one client (an IPv6 one by its /64) may hold at most C{max_per_address} connections
    (L{ConnectionCounter}): more are closed at once, and logged once a minute for each;
  - a request line or header block over Twisted's limits (16 KiB) gets C{414} or C{431}
    rather than a silent close;
  - every close lingers a bounded time (nginx's lingering close): dropped once the client sent
    nothing for L{LINGER_IDLE} seconds after the answer left, or L{LINGER_MOST} after the
    close began (Twisted's TLS layer would wait for ever).

An answer written outside a request's own (those above, and the site's early answers) ends
with L{PypidChannel.close_after_answer}, which closes through the channel (unregistered as its
transport's producer first, or TLS never sends its close_notify) and drops a connection still
open L{CLOSE_TIMEOUT} seconds later. What a closing client sends is thrown away, so that one
still sending reads its answer, not a reset.
"""

from __future__ import annotations

import re
from typing import Protocol, cast

from twisted.internet import protocol
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    ITCPTransport,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import HTTPChannel, Request

from pypid.jobs.periodic import Periodic
from pypid.state.catch_up import CatchUp
from pypid.web.server.body import answer_before_body
from pypid.web.server.connections import ConnectionCounter
from pypid.web.server.twisted_http import (
    BadRequestHook,
    between_requests,
    body_follows,
    handling_request,
    head_bytes,
    queued_in_kernel,
    request_line,
    unsent_bytes,
    waiting_for_transport,
)

log = Logger()

#: Seconds a request's line and headers have to arrive.
HEADER_TIMEOUT = 30.0

#: The slowest body accepted, in bytes a second over each window.
MIN_BODY_RATE = 1024
RATE_WINDOW = 30.0

#: Seconds an answer may wait with none of it taken by the client.
SEND_TIMEOUT = 60.0

#: Seconds a connection answered outside a request (a refusal) has to take its answer and close.
CLOSE_TIMEOUT = 2.0

#: Seconds a connection the channel closes is kept for a client that sends nothing (nginx's
#: lingering_timeout is 5 s), and at most for one that keeps sending.
LINGER_IDLE = 5.0
LINGER_MOST = 30.0


#: The first byte of a TLS handshake: a client speaking HTTPS to a plain-HTTP listener (uv
#: probes C{https://} for trusted publishing). Twisted would wait for a line end that never
#: comes, for C{header_timeout}; answered at once.
TLS_HANDSHAKE = b"\x16"
PLAIN_HTTP_HERE = "this port speaks plain HTTP, not HTTPS: use an http:// URL"


class ExpressTake(Protocol):
    """What the channel asks of the express lane (L{pypid.web.serving.express.ExpressLane})."""

    def take(self, channel: HTTPChannel, data: bytes) -> bool:
        """Answer the one whole request head C{data}, if it can; whether it did."""


class PypidChannel(BadRequestHook):
    """An L{HTTPChannel} with the deadlines described in the module."""

    site: GuardedSite
    counter: ConnectionCounter
    #: the client address its counter counts it under, or L{None}
    counted_host: str | None

    header_timeout = HEADER_TIMEOUT
    send_timeout = SEND_TIMEOUT
    min_body_rate: float = MIN_BODY_RATE
    rate_window = RATE_WINDOW
    close_timeout = CLOSE_TIMEOUT
    linger_idle = LINGER_IDLE
    linger_most = LINGER_MOST

    #: since when the channel waits for a request's headers (or L{None}), for the sweep: a
    #: timestamp rather than a timer per request, this is the hot path
    waiting_since: float | None = None
    #: since when the client has taken none of the answer: set when the transport's buffer
    #: fills, moved on when the kernel took some (L{check}), L{None} once it drained
    stalled_since: float | None = None
    #: what the transport held unsent when last looked at (L{unsent_bytes})
    _unsent: int | None = None
    _rate_timer: IDelayedCall | None = None
    _body_bytes = 0
    _paused = False
    #: set by L{close_after_answer}: what arrives from then on is thrown away
    _closing = False
    _close_timer: IDelayedCall | None = None
    #: the linger's two timers (L{loseConnection}), idle and most, once closing
    _linger: tuple[IDelayedCall, IDelayedCall] | None = None
    #: set by L{loseConnection} while the transport's buffer is full
    _close_when_drained = False
    #: whether the connection ended (read by a worker's L{CatchUp.holds})
    lost = False
    #: set by L{ConnectionCounter.leave_all} when another worker came up: the next
    #: answer says C{Connection: close}, and the client reconnects
    leaving = False

    #: the transport's own address, asked once (L{getHost})
    _host: IAddress | None = None

    def connectionMade(self) -> None:
        """Start the clock for the first request's headers."""
        HTTPChannel.connectionMade(self)
        self._wait_for_headers()

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes from the client: between requests, offered to the site's express lane first,
        which answers a kept page or small file from the bytes alone; Twisted parses the rest.
        """
        if between_requests(self):
            catch_up = self.site.catch_up
            if catch_up is not None and catch_up.holds(self, data):
                return
            express = self.site.express
            if express is not None and not self.leaving and express.take(self, data):
                # (what requestDone does once a request's answer went out)
                self.resetTimeout()
                self._wait_for_headers()
                return
            if data[:1] == TLS_HANDSHAKE:
                self._refuse(400, b"Bad Request", PLAIN_HTTP_HERE)
                return
        HTTPChannel.dataReceived(self, data)

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        """Twisted's choice, but not once asked to leave (L{leaving})."""
        if self.leaving:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return bool(HTTPChannel.checkPersistence(self, request, version))

    def getHost(self) -> IAddress:
        """
        The server's end of the connection, asked of the transport once: Twisted asks at every
        request, and a TCP transport asks the kernel each time (C{getsockname}: 6 % of the
        reactor's time on the express lane's small file).
        """
        host = self._host
        if host is None:
            host = self._host = HTTPChannel.getHost(self)
        return host

    def bad_request(self) -> None:
        """
        Twisted refused the request's head: past C{totalHeadersSize} bytes, C{431}; otherwise
        C{400} with a reason. The checks stay Twisted's, so the hot path pays nothing for them.
        """
        if head_bytes(self) > self.totalHeadersSize:
            self._head_too_large(self.totalHeadersSize)
        else:
            self._refuse(400, b"Bad Request", "the request's head is malformed")

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        One line past C{MAX_LENGTH}: C{414} for the request line, C{431} for a header (Twisted
        closes the transport with no answer, and under TLS not even that).
        """
        self._head_too_large(self.MAX_LENGTH)

    def allHeadersReceived(self) -> None:
        """Headers are in: stop their clock, start watching the body."""
        self.waiting_since = None
        HTTPChannel.allHeadersReceived(self)
        # A body follows when a length was given, or chunks (no length).
        if body_follows(self):
            self._body_bytes = 0
            self._rate_timer = self.callLater(self.rate_window, self._check_rate)

    def rawDataReceived(self, data: bytes) -> None:
        """Body bytes: count them for the rate check."""
        self._body_bytes += len(data)
        HTTPChannel.rawDataReceived(self, data)

    def allContentReceived(self) -> None:
        """The body is in: stop watching its rate."""
        self._cancel("_rate_timer")
        HTTPChannel.allContentReceived(self)

    def requestDone(self, request: Request) -> None:
        """An answer went out: the next request's headers have their own deadline."""
        HTTPChannel.requestDone(self, request)
        if not handling_request(self) and self.transport is not None \
                and not getattr(self.transport, "disconnecting", False):
            self._wait_for_headers()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop every clock, and give the client address its place back."""
        self.waiting_since = None
        self.lost = True
        self._cancel("_rate_timer")
        self._cancel("_close_timer")
        for timer in self._linger or ():
            if timer.active():
                timer.cancel()
        counter = getattr(self, "counter", None)
        if counter is not None:
            counter.closed(self)
        HTTPChannel.connectionLost(self, reason)

    # -- reading paused by the server ----------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading the request body (the server is busy with it)."""
        self._paused = True
        if self.transport is not None:
            _producer(self.transport).pauseProducing()

    def resume_reading(self) -> None:
        """Read the body again; its rate is measured afresh from now."""
        self._paused = False
        self._body_bytes = 0
        if self._rate_timer is not None and self._rate_timer.active():
            self._rate_timer.reset(self.rate_window)
        if self.transport is not None:
            _producer(self.transport).resumeProducing()

    # -- the clocks --------------------------------------------------------------------

    def _wait_for_headers(self) -> None:
        self.waiting_since = self.site.reactor.seconds()

    def check(self, now: float) -> None:
        """
        Close the connection if its answer stalled, or its headers are overdue (the sweep
        calls this). An answer stalls from when the transport's buffer is full and starts again
        whenever the kernel took some (as nginx's C{send_timeout} counts between two writes):
        a client reading slowly is kept, one that stopped reading is dropped.
        """
        since = self.stalled_since
        if since is not None and self._stalled(now, since):
            self.stalled_since = self.waiting_since = None
            log.info("Dropping a connection whose client took none of its answer for {seconds:g} s",
                     seconds=self.send_timeout)
            self._count_refusal("send_timeout")
            _tcp(self.transport).abortConnection()
        elif self.waiting_since is not None and now - self.waiting_since >= self.header_timeout:
            self._headers_late()

    def _stalled(self, now: float, since: float) -> bool:
        """Whether the client, stalled C{since}, took none of the answer for C{send_timeout}."""
        unsent = self._left()
        if unsent is not None and self._unsent is not None and unsent < self._unsent:
            self.stalled_since = since = now  # (the kernel took some: the client reads)
        self._unsent = unsent
        return now - since >= self.send_timeout

    def _left(self) -> int | None:
        """What the answer has not sent: Twisted's buffer and the kernel's (L{None}: unknown)."""
        unsent = unsent_bytes(self.transport)
        return None if unsent is None else unsent + queued_in_kernel(self.transport)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None and timer.active():
            timer.cancel()
        setattr(self, name, None)

    def _headers_late(self) -> None:
        self.waiting_since = None
        log.info("Closing a connection whose request headers took over {seconds:g} s",
                 seconds=self.header_timeout)
        self._refuse(408, b"Request Timeout", "the request headers came too slowly")

    def _check_rate(self) -> None:
        self._rate_timer = None
        if not self._paused and self._body_bytes < self.min_body_rate * self.rate_window:
            log.info("Closing a connection whose request body came at {rate:.0f} bytes/s",
                     rate=self._body_bytes / self.rate_window)
            self._count_refusal("slow_body")
            _tcp(self.transport).abortConnection()
            return
        self._body_bytes = 0
        self._rate_timer = self.callLater(self.rate_window, self._check_rate)

    def _head_too_large(self, limit: int) -> None:
        if request_line(self)[0] is None:
            log.info("Refusing a request line over {limit} bytes", limit=limit)
            self._refuse(414, b"URI Too Long",
                         f"the request line is longer than {limit >> 10} KiB")
        else:
            # (never the headers themselves: one may be an Authorization header)
            log.info("Refusing request headers over {limit} bytes", limit=limit)
            self._refuse(431, b"Request Header Fields Too Large",
                         f"the request headers are larger than {limit >> 10} KiB")

    def _refuse(self, code: int, reason: bytes, message: str) -> None:
        """Answer outside any request (none is complete) and close."""
        if self.transport is None or self._closing:
            return
        self._count_refusal(code)
        answer_before_body(self.transport, code, message, reason=reason)
        self.close_after_answer()

    def _count_refusal(self, why: int | str) -> None:
        """Count a connection refused outside any request, for C{/metrics}."""
        stats = getattr(self.site, "stats", None)
        if stats is not None:
            stats.refused(why)

    # -- closing after an answer outside a request ----------------------------------------

    def close_after_answer(self) -> None:
        """
        Close the connection once the answer written has gone out (TLS close_notify or TCP
        FIN), throwing away what the client still sends; drop it if still open after
        C{close_timeout} seconds.
        """
        if self._closing or self.transport is None:
            return
        self._closing = True
        self.waiting_since = None
        self._cancel("_rate_timer")
        if self._paused:
            # Under TLS the client's close_notify must still be read.
            self._paused = False
            _producer(self.transport).resumeProducing()
        self._close_timer = self.callLater(self.close_timeout, self._close_overdue)
        # (HTTPChannel.loseConnection unregisters the channel as the transport's producer
        # first, see the module docstring; what the client still sends is thrown away)
        self.loseConnection()

    # -- every close: bounded ----------------------------------------------------------------

    def loseConnection(self) -> None:
        """
        Close as Twisted's channel does once the answer has left the transport's buffer, and
        drop the connection if the client has not closed within the linger (see the module
        docstring), its idle time counted from then; what it sends meanwhile is thrown away.
        """
        if self._linger is None and not self.lost and self.transport is not None:
            self._linger = (self.callLater(self.linger_idle, self._idle),
                            self.callLater(self.linger_most, self._lingered))
            # (an instance attribute, as Twisted does: the hot path keeps its method)
            self.dataReceived = self._linger_data  # type: ignore[method-assign]
        if waiting_for_transport(self) and not self.lost:
            self._close_when_drained = True  # (the transport resumes the channel then)
            return
        self._close_when_drained = False
        self._linger_data(b"")
        HTTPChannel.loseConnection(self)

    def pauseProducing(self) -> None:
        """The transport's buffer is full: the answer's progress is watched from now (L{check})."""
        HTTPChannel.pauseProducing(self)
        if self.stalled_since is None:
            self.stalled_since = self.site.reactor.seconds()
            self._unsent = self._left()

    def resumeProducing(self) -> None:
        """The transport's buffer has drained: a close waiting for it happens now."""
        self.stalled_since = None
        HTTPChannel.resumeProducing(self)
        if self._close_when_drained:
            self.loseConnection()

    def _linger_data(self, data: bytes) -> None:
        """What a closing client sends: thrown away, its idle time counted afresh."""
        if self._linger is not None and self._linger[0].active():
            self._linger[0].reset(self.linger_idle)

    def _idle(self) -> None:
        if self._close_when_drained:
            # (a client reading slowly: the idle time counts once the answer left)
            assert self._linger is not None
            self._linger = (self.callLater(self.linger_idle, self._idle), self._linger[1])
        else:
            self._lingered()

    def _lingered(self) -> None:
        _tcp(self.transport).abortConnection()

    def _close_overdue(self) -> None:
        self._close_timer = None
        log.info("Dropping a connection still open {seconds:g} s after its answer",
                 seconds=self.close_timeout)
        _tcp(self.transport).abortConnection()


def _producer(transport: ITransport | None) -> IPushProducer:
    """A connection's transport as the producer of what it reads (TCP and TLS are)."""
    return cast(IPushProducer, transport)


def _tcp(transport: ITransport | None) -> ITCPTransport:
    """A connection's transport as one that can be aborted (TCP and TLS can)."""
    return cast(ITCPTransport, transport)


def origin_form(target: bytes) -> bytes:
    """
    The path and query of a request target in origin form (C{/legacy/?x}) or absolute form
    (C{http://host/legacy/?x}); C{/} for a target with neither (C{*}, or nonsense).
    """
    if target.startswith(b"/"):
        return target
    match = _ABSOLUTE_FORM.match(target)
    if match is None:
        return b"/"
    rest = match.group(1)
    return rest if rest.startswith(b"/") else b"/" + rest


_ABSOLUTE_FORM = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*(.*)$", re.DOTALL)


class Refused(protocol.Protocol):
    """A connection refused on arrival (too many from its address): dropped at once."""

    def connectionMade(self) -> None:
        _tcp(self.transport).abortConnection()


class GuardedSite(server.Site):
    """
    A site of L{PypidChannel}s, guarded: the per-address limit (refused connections are
    dropped), and a sweep each second for overdue request headers and stalled answers.
    """

    protocol = PypidChannel  # type: ignore[assignment]  # (an HTTPChannel of ours)
    #: answers kept pages and small files from a request's bytes (L{PypidSite}'s; none here)
    express: ExpressTake | None = None
    #: a worker's catching up with the others' changes, asked before each request; L{None} in
    #: a server of one process
    catch_up: CatchUp | None = None
    # (Site's own counter numbers sessions, which pypid never makes)
    counter: ConnectionCounter  # type: ignore[assignment]
    _sweeper: Periodic | None = None

    def buildProtocol(  # type: ignore[override]  # (our channel, not Twisted's proxy of one)
            self, addr: IAddress | None) -> PypidChannel | Refused:
        """A new connection's channel, or a protocol that drops it."""
        channel = cast(PypidChannel, super().buildProtocol(addr))
        if not self.counter.opened(channel, addr, self.reactor.seconds()):
            # Not None: under TLS, Twisted would wrap it and keep the socket.
            return Refused()
        return channel

    def startFactory(self) -> None:
        """Start the sweep of slow connections."""
        super().startFactory()
        self._sweeper = Periodic(lambda: self.counter.sweep(self.reactor.seconds()), 1.0,
                                 self.reactor, what="The sweep of slow connections")
        self._sweeper.startService()

    def stopFactory(self) -> None:
        """Stop the sweep of slow connections."""
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stopService()
        self._sweeper = None
        super().stopFactory()
