"""
One HTTP/1.1 exchange after another with a webhook's receiver, on kept
connections (L{Receiver}): a request written whole, its answer read by
llhttp through C{httptools}. Loaded with the first subscription.

Twisted's client cost a delivery about 200 us of CPU in the serving process,
about 8% of an upload with one subscription; this costs 81-94 us
(docs/performance.rst), reading only the status, C{Retry-After}, and at most
L{ANSWER_LIMIT} bytes of the body.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import httptools
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITCPTransport

#: The most bytes of a receiver's answer read (the rest is dropped).
ANSWER_LIMIT = 64 << 10
#: Seconds a kept connection to a receiver waits for the next delivery.
IDLE = 60.0

_T = TypeVar("_T")


class Receiver:
    """
    The kept connections to one receiver (of one CA bundle and bound): at
    most C{connections} deliveries at once, each on a connection of its own,
    kept for the next while the receiver keeps it, for at most L{IDLE} seconds.

    A delivery costs no timer of its own: each connection has one, moved
    only when it must come sooner (see L{_Exchange.until}), and the bound
    is a count, not a L{twisted.internet.defer.DeferredSemaphore} (whose
    turn cost a delivery eight Python calls and two Deferreds, cProfile).
    """

    def __init__(self, clock: IReactorTime, endpoint: IStreamClientEndpoint,
                 connections: int) -> None:
        self._clock = clock
        self._endpoint = endpoint
        self._connections = connections
        self._busy = 0
        self._waiting: deque[Deferred[None]] = deque()
        self._idle: list[_Exchange] = []
        self._closed = False

    def bounded(self, work: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        """
        C{work}'s result, C{work} called once fewer than C{connections}
        deliveries are under way (not called if cancelled while it waits).
        """
        if self._busy < self._connections:
            self._busy += 1
            return self._run(work)
        turn: Deferred[None] = Deferred(self._waiting.remove)
        self._waiting.append(turn)
        return turn.addCallback(lambda _: self._run(work))

    def _run(self, work: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        """C{work} on a turn taken: the turn given back once it ends, however it ends."""
        try:
            done = work()
        except BaseException:
            done = fail()
        return done.addBoth(self._release)

    def _release(self, result: _T) -> _T:
        if self._waiting:
            # (the turn passes on: as many under way as before)
            self._waiting.popleft().callback(None)
        else:
            self._busy -= 1
        return result

    def exchange(self, request: bytes, deadline: float) -> Deferred[Answer]:
        """
        Send C{request} and read its answer by C{deadline} (the clock's
        seconds), else fail with L{TimeoutError}. A kept connection the
        receiver closed before it answered is given up for a new one, once (the
        receiver drops a repeat by the event's id).
        """
        while self._idle:
            kept = self._idle.pop()
            if kept.take():
                return kept.post(request, deadline).addCallbacks(
                    self._answered, self._unanswered, callbackArgs=(kept,),
                    errbackArgs=(kept, request, deadline))
        return self._connect(request, deadline)

    def _connect(self, request: bytes, deadline: float) -> Deferred[Answer]:
        # (a new connection's own timer: the endpoint bounds only each attempt to connect)
        connecting = connectProtocol(self._endpoint, _Exchange(self._clock))
        timer = self._clock.callLater(max(deadline - self._clock.seconds(), 0.0),
                                      connecting.cancel)

        def connected(exchange: _Exchange) -> Deferred[Answer]:
            if timer.active():
                timer.cancel()
            return exchange.post(request, deadline).addBoth(self._answered, exchange)

        def not_connected(failure: Failure) -> Failure:
            if timer.active():
                timer.cancel()
                if failure.check(ConnectingCancelledError):
                    # (cancelled from outside, not timed out)
                    return Failure(CancelledError())
                return failure
            return Failure(TimeoutError())
        return connecting.addCallbacks(connected, not_connected)

    def _answered(self, answer: Answer | Failure, exchange: _Exchange) -> Answer | Failure:
        if exchange.keep and not self._closed:
            exchange.rest()
            self._idle.append(exchange)
        else:
            exchange.close()
        return answer

    def _unanswered(self, failure: Failure, kept: _Exchange, request: bytes, deadline: float,
                    ) -> Deferred[Answer] | Failure:
        kept.close()
        if failure.check(_Unanswered):
            return self._connect(request, deadline)
        return failure

    def close(self) -> Deferred[None]:
        """Close the kept connections (one under way once answered); fires once they are."""
        self._closed = True
        idle, self._idle = self._idle, []
        for exchange in idle:
            exchange.close()
        closed: Deferred[None] = gatherResults(
            [exchange.lost() for exchange in idle]).addCallback(lambda _: None)
        return closed


#: An answer: its status, the start of its body and its C{Retry-After}.
Answer = tuple[int, bytes, "bytes | None"]


class _Unanswered(Exception):
    """The receiver closed a kept connection before it answered anything."""

    def __str__(self) -> str:
        return "the receiver closed the connection before it answered"


class _Exchange(Protocol):
    """One connection to a receiver: a request written whole, its answer read by llhttp."""

    transport: ITCPTransport
    keep = False
    #: the answer's parser, a new one for each request (L{post})
    _parser: httptools.HttpResponseParser

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._answer: Deferred[Answer] | None = None
        self._result: Answer | Failure | None = None
        self._drop = False
        #: when the answer is given up (a request under way), or the
        #: connection closed (kept)
        self._deadline = 0.0
        #: comes at the deadline or before it (then set again)
        self._timer: IDelayedCall | None = None
        self._body = bytearray()
        self._retry: bytes | None = None
        self._began = False
        self._headed = False
        self._lost = self._closing = False
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
        return not self._lost and not self._closing

    def rest(self) -> None:
        """Kept for the next request, for at most L{IDLE} seconds."""
        self.until(self._clock.seconds() + IDLE)

    def until(self, deadline: float) -> None:
        """
        The deadline from now on. The timer is moved only when it must come
        sooner: one that comes early sets itself again (L{_tick}), so a busy
        connection costs about one timer a deadline's length, not one (and its
        cancel) for each request and each rest.
        """
        self._deadline = deadline
        timer = self._timer
        if timer is None:
            self._timer = self._clock.callLater(max(deadline - self._clock.seconds(), 0.0),
                                                self._tick)
        elif timer.getTime() > deadline:
            timer.reset(max(deadline - self._clock.seconds(), 0.0))

    def _tick(self) -> None:
        self._timer = None
        if self._lost:
            return
        if self._clock.seconds() < self._deadline:
            self.until(self._deadline)
        elif self._answer is not None:
            self.transport.abortConnection()
            self._end(Failure(TimeoutError()))
        else:
            # (kept too long)
            self.close()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def close(self) -> None:
        """Close the connection (kept too long, or not to be kept)."""
        self._closing = True
        self._stop_timer()
        if not self._lost:
            self.transport.loseConnection()

    def post(self, request: bytes, deadline: float) -> Deferred[Answer]:
        """Write C{request}; its answer, unless C{deadline} passes first (L{TimeoutError})."""
        self.until(deadline)
        self._answer = Deferred(self._cancel)
        self._parser = httptools.HttpResponseParser(self)
        self._body.clear()
        self._retry, self._result = None, None
        self._began = self._headed = self._drop = self.keep = False
        self.transport.write(request)
        return self._answer

    def _cancel(self, answer: Deferred[Answer]) -> None:
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
        # (given once the bytes at hand are read: a request written meanwhile
        # would meet this parser's leftovers)
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

    def on_headers_complete(self) -> None:
        """(llhttp's) the answer's head is read."""
        self._headed = self._parser.get_status_code() >= 200

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

    def _end(self, result: Answer | Failure) -> None:
        answer, self._answer = self._answer, None
        if answer is None:
            return
        if isinstance(result, Failure):
            answer.errback(result)
        else:
            answer.callback(result)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost, self.keep = True, False
        self._stop_timer()
        waiting, self._waiting_loss = self._waiting_loss, []
        for d in waiting:
            d.callback(None)
        if self._answer is None:
            return
        if self._headed:
            # (an answer whose end is the connection's: no length was given)
            self._end((self._parser.get_status_code(), bytes(self._body), self._retry))
        else:
            self._end(Failure(_Unanswered()) if not self._began else reason)
