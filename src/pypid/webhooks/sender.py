"""
One delivery of an event to a receiver: a signed POST (Standard
Webhooks' C{webhook-id}, C{webhook-timestamp} and C{webhook-signature}),
and what came of it (L{Attempt}).

Pointed wherever an admin chose, a delivery is kept small: it follows no
redirect (a 3xx is a failure, named), sends nothing of pypid's but the
event and its signature (no credentials, no cookies), reads at most
L{ANSWER_LIMIT} bytes of the answer, and ends after the subscription's
C{timeout} in all, connecting and reading included. HTTPS is checked as
every outbound call of pypid's is (the subscription's C{ca_bundle}, else
C{[pypid] ca_bundle}, else the system's roots); the deliveries to one
receiver's host share a pool of at most its C{max_connections}.

The request is written whole, and the answer read with llhttp (through
C{httptools}, the parser uvicorn uses), on connections kept per receiver
(L{_Receiver}). Twisted's client, which did this before, cost a delivery
about 200 us of CPU in the serving process, most of it in its parsing of
the answer line by line and the Deferreds of a request and its body: more
than the rest of an event's handling together, and about 8% of an upload
with one subscription (docs/performance.rst).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import httptools
from hyperlink import DecodedURL
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    TimeoutError,
    ensureDeferred,
    gatherResults,
    succeed,
)
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import URI

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.webhook_events import WebhookEvent, parse_retry_after, signature
from pypid.core.util.terminal_text import escaped
from pypid.http.bodies import describe

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITCPTransport

#: The most bytes of a receiver's answer read (the rest is dropped).
ANSWER_LIMIT = 64 << 10
#: The most characters of an answer kept to show with a failed delivery.
SHOWN = 200

#: What pypid says it is.
USER_AGENT = b"pypid-webhooks/1"
#: Seconds a kept connection to a receiver waits for the next delivery.
IDLE = 60.0


@attrs.frozen
class Attempt:
    """
    What one delivery came to.

    @ivar status: the receiver's HTTP status, or 0 when none came.
    @ivar error: why it failed (L{None}: it was delivered).
    @ivar retry_after: the seconds the receiver asked to wait, if it did.
    @ivar seconds: how long it took.
    """

    status: int
    error: str | None
    retry_after: float | None = None
    seconds: float = 0.0

    @property
    def delivered(self) -> bool:
        """Whether the receiver took it (a 2xx)."""
        return self.error is None


def outcome(status: int, answer: bytes) -> str | None:
    """Why an answer of C{status} is a failure, or L{None} for a 2xx."""
    if 200 <= status < 300:
        return None
    # (the receiver's words, as it sent them: one line, no escape sequence)
    shown = escaped(answer[:SHOWN].decode("utf-8", "replace").strip())
    kind = ("a redirect, which deliveries never follow" if 300 <= status < 400
            else "refused" if status < 500 else "failed")
    return f"HTTP {status} ({kind})" + (f": {shown}" if shown else "")


class Sender:
    """
    Sends events, a pool of kept connections per receiver's host and CA
    bundle (L{_Receiver}), each bounded by the subscription's
    C{max_connections}.
    """

    def __init__(self, clock: IReactorTime, default_ca_bundle: str | None,
                 wall: Callable[[], float] = _time.time) -> None:
        """
        @param default_ca_bundle: C{[pypid] ca_bundle}, for a subscription
            that names none.
        @param wall: the time the signatures carry (receivers compare it to
            theirs).
        """
        self._clock = clock
        self._default_ca_bundle = default_ca_bundle
        self._wall = wall
        self._receivers: dict[tuple[str, str | None, int, float], _Receiver] = {}
        self._targets: dict[str, tuple[URI, bytes]] = {}

    def _receiver(self, subscription: WebhookConfig, uri: URI) -> _Receiver:
        bundle = subscription.ca_bundle or self._default_ca_bundle
        key = (subscription.receiver, bundle, subscription.max_connections, subscription.timeout)
        receiver = self._receivers.get(key)
        if receiver is None:
            # (the outbound client comes with the first subscription: a
            # server without webhooks never loads it at its start)
            from pypid.http.client import KeptEndpoints, https_policy

            endpoints = KeptEndpoints(self._clock, https_policy(bundle), subscription.timeout)
            receiver = self._receivers[key] = _Receiver(
                self._clock, endpoints.endpointForURI(uri), subscription.max_connections)
        return receiver

    def _target(self, url: str) -> tuple[URI, bytes]:
        """
        The URL as sent (an international host or path encoded once), and
        the start of its request: the request line and C{Host}.
        """
        if url not in self._targets:
            uri = URI.fromBytes(DecodedURL.from_text(url).to_uri().to_text().encode("ascii"))
            host = b"[" + uri.host + b"]" if isIPv6Address(uri.host.decode("ascii")) else uri.host
            if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
                host += b":%d" % uri.port
            self._targets[url] = (uri, b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (uri.originForm, host))
        return self._targets[url]

    def send(self, subscription: WebhookConfig, event: WebhookEvent) -> Deferred[Attempt]:
        """Deliver C{event} to C{subscription}'s receiver once; never fails."""
        try:
            uri, start = self._target(subscription.url)
        except ValueError as e:
            return succeed(Attempt(0, f"cannot send to its URL: {e}"))
        try:
            receiver = self._receiver(subscription, uri)
        except ValueError as e:
            return succeed(Attempt(0, f"cannot use the CA bundle: {e}"))
        return receiver.bound.run(
            lambda: ensureDeferred(self._send(receiver, start, subscription, event)))

    async def _send(self, receiver: _Receiver, start: bytes, subscription: WebhookConfig,
                    event: WebhookEvent) -> Attempt:
        began = self._clock.seconds()
        body = event.body()
        stamp = int(self._wall())
        request = b"".join((
            start, b"Content-Type: application/json\r\nUser-Agent: ", USER_AGENT,
            b"\r\nwebhook-id: ", event.id.encode("ascii"),
            b"\r\nwebhook-timestamp: %d\r\nwebhook-signature: " % stamp,
            signature(subscription.key, event.id, stamp, body).encode("ascii"),
            b"\r\nContent-Length: %d\r\n\r\n" % len(body), body))
        call = ensureDeferred(receiver.exchange(request))
        call.addTimeout(subscription.timeout, self._clock)
        try:
            status, answer, retry = await call
        except TimeoutError:
            attempt = Attempt(0, f"no answer within {subscription.timeout:g} s")
        except Exception as e:
            attempt = Attempt(0, f"cannot reach {subscription.receiver}: {describe(e)}")
        else:
            error = outcome(status, answer)
            attempt = Attempt(status, error,
                              parse_retry_after(retry.decode("latin-1"), self._wall())
                              if error and retry is not None else None)
        return attrs.evolve(attempt, seconds=self._clock.seconds() - began)

    def reset(self) -> Deferred[None]:
        """
        Make new pools from now on (a reload: a CA bundle rotated in place,
        another timeout), the kept connections closed.
        """
        return self.close()

    def close(self) -> Deferred[None]:
        """Close every pool's kept connections."""
        receivers = list(self._receivers.values())
        self._receivers.clear()
        self._targets.clear()
        closed: Deferred[None] = gatherResults(
            [receiver.close() for receiver in receivers]).addCallback(lambda _: None)
        return closed


class _Receiver:
    """
    The kept connections to one receiver (of one CA bundle and bound), and
    the bound: at most C{connections} deliveries at once, each on a
    connection of its own, which is kept for the next while the receiver
    keeps it (C{Connection: keep-alive}, an answer read to its end) for
    at most L{IDLE} seconds.
    """

    def __init__(self, clock: IReactorTime, endpoint: IStreamClientEndpoint,
                 connections: int) -> None:
        self._clock = clock
        self._endpoint = endpoint
        self.bound = DeferredSemaphore(connections)
        self._idle: list[_Exchange] = []

    async def exchange(self, request: bytes) -> _Answer:
        """
        Send C{request} and read its answer: the status, the start of the
        body and C{Retry-After}. A kept connection that the receiver closed
        before it answered anything is given up for a new one, once (the
        receiver drops a repeat by the event's id).
        """
        while self._idle:
            kept = self._idle.pop()
            if kept.take():
                try:
                    return await self._exchange(kept, request)
                except _Unanswered:
                    break
        return await self._exchange(await connectProtocol(self._endpoint, _Exchange()), request)

    async def _exchange(self, exchange: _Exchange, request: bytes,
                        ) -> _Answer:
        answer = await exchange.post(request)
        if exchange.keep:
            exchange.rest(self._clock.callLater(IDLE, exchange.close))
            self._idle.append(exchange)
        else:
            exchange.close()
        return answer

    def close(self) -> Deferred[None]:
        """Close the kept connections: fires once they are closed."""
        idle, self._idle = self._idle, []
        for exchange in idle:
            exchange.close()
        closed: Deferred[None] = gatherResults(
            [exchange.lost() for exchange in idle]).addCallback(lambda _: None)
        return closed


#: An answer: its status, the start of its body and its C{Retry-After}.
_Answer = tuple[int, bytes, "bytes | None"]


class _Unanswered(Exception):
    """The receiver closed a kept connection before it answered anything."""

    def __str__(self) -> str:
        return "the receiver closed the connection before it answered"


class _Exchange(Protocol):
    """
    One connection to a receiver: a request written whole, its answer read
    by llhttp (L{httptools.HttpResponseParser}), one at a time.
    """

    transport: ITCPTransport
    keep = False

    def __init__(self) -> None:
        self._answer: Deferred[_Answer] | None = None
        self._result: _Answer | Failure | None = None
        self._drop = False
        self._parser = httptools.HttpResponseParser(self)
        self._idle: IDelayedCall | None = None
        self._body = bytearray()
        self._retry: bytes | None = None
        self._began = False
        self._lost = False
        self._waiting_loss: list[Deferred[None]] = []

    def lost(self) -> Deferred[None]:
        """Fires once the connection is closed."""
        if self._lost:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting_loss.append(d)
        return d

    def take(self) -> bool:
        """Take this kept connection for a request: whether it is still open."""
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        return not self._lost

    def rest(self, timer: IDelayedCall) -> None:
        """Kept until C{timer} closes it, unless taken before."""
        self._idle = timer

    def close(self) -> None:
        """Close the connection (kept too long, or not to be kept)."""
        self.take()
        if not self._lost:
            self.transport.loseConnection()

    def post(self, request: bytes) -> Deferred[_Answer]:
        """Write C{request}; the answer's status, start of its body and C{Retry-After}."""
        self._answer = Deferred(self._cancel)
        self._parser = httptools.HttpResponseParser(self)
        self._body.clear()
        self._retry, self._result, self._began, self._drop, self.keep = (
            None, None, False, False, False)
        self.transport.write(request)
        return self._answer

    def _cancel(self, answer: Deferred[_Answer]) -> None:
        # (no answer awaited any more: the connection goes)
        self._answer = None
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._answer is None:
            # (nothing was asked: a receiver talking out of turn is not kept)
            self.transport.abortConnection()
            return
        self._began = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            if self._result is None:
                self._result = Failure(ValueError(f"an answer that is not HTTP/1.1 ({e})"))
            self._drop = True
        # (the answer is given once the bytes at hand are read: a request
        # written meanwhile would meet this parser's leftovers)
        result, self._result = self._result, None
        if result is not None:
            if self._drop:
                self.keep = False
                self.transport.abortConnection()
            self._end(result)

    def on_message_begin(self) -> None:
        """(llhttp's) an answer begins: one after the answer is not kept."""
        if self._result is not None:
            self._drop = True

    def on_header(self, name: bytes, value: bytes) -> None:
        """(llhttp's) a header of the answer."""
        if name.lower() == b"retry-after":
            self._retry = value

    def on_body(self, body: bytes) -> None:
        """(llhttp's) a piece of the answer's body: kept up to L{ANSWER_LIMIT}."""
        if self._result is not None:
            return
        self._body += body[:ANSWER_LIMIT - len(self._body)]
        if len(self._body) >= ANSWER_LIMIT:
            # (a longer answer is not read to its end: the connection goes)
            self._result = (self._parser.get_status_code(), bytes(self._body), self._retry)
            self._drop = True

    def on_message_complete(self) -> None:
        """(llhttp's) the answer is read to its end (a C{1xx} is not the answer)."""
        status = self._parser.get_status_code()
        if self._result is not None:
            return
        if status < 200:
            self._body.clear()
            return
        self.keep = self._parser.should_keep_alive()
        self._result = (status, bytes(self._body), self._retry)

    def _end(self, result: _Answer | Failure) -> None:
        answer, self._answer = self._answer, None
        if answer is None:
            return
        if isinstance(result, Failure):
            answer.errback(result)
        else:
            answer.callback(result)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost, self.keep = True, False
        self.take()
        waiting, self._waiting_loss = self._waiting_loss, []
        for d in waiting:
            d.callback(None)
        if self._answer is None:
            return
        if self._parser.get_status_code() >= 200:
            # (an answer whose end is the connection's: no length was given)
            self._end((self._parser.get_status_code(), bytes(self._body), self._retry))
        else:
            self._end(Failure(_Unanswered()) if not self._began else reason)
