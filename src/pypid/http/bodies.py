"""
Reading HTTP answers from other servers (S3, an upstream index) with limits:
a size cap, so a misbehaving server cannot grow our memory, and an idle
deadline, so one that stops sending midway cannot hold a request for ever.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse


class BodyError(Exception):
    """The body could not be read whole."""


class BodyTooLarge(BodyError):
    """The body is longer than the limit; the transfer was stopped."""


class BodyCutShort(BodyError):
    """The connection ended before the body did."""


class BodyStalled(BodyError):
    """Nothing arrived for the idle deadline; the transfer was stopped."""


class Deadline:
    """
    A deadline that moves: C{expired()} is called when C{seconds} pass
    after the last L{arm} without a L{disarm} (no clock: it never fires).
    """

    def __init__(self, clock: IReactorTime | None, seconds: float | None,
                 expired: Callable[[], object]) -> None:
        self._clock = clock
        self._seconds = seconds
        self._expired = expired
        self._timer: IDelayedCall | None = None

    def arm(self) -> None:
        """Start (or restart) the wait."""
        if self._clock is None or self._seconds is None:
            return
        self.disarm()
        self._timer = self._clock.callLater(self._seconds, self._fire)

    def disarm(self) -> None:
        """Stop waiting."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._expired()


class _Collect(Protocol):
    """Collects a body up to a limit, watching for silence."""

    def __init__(self, limit: int, done: Deferred[bytes], clock: IReactorTime | None,
                 idle: float | None, gzipped: bool = False) -> None:
        self._limit = limit
        self._done: Deferred[bytes] | None = done
        self._idle = idle
        self._deadline = Deadline(clock, idle, self._stalled)
        self._parts: list[bytes] = []
        self._size = 0
        self._error: BodyError | None = None
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None

    def connectionMade(self) -> None:
        self._deadline.arm()

    def dataReceived(self, data: bytes) -> None:
        if self._inflate is None:
            self._take(data)
            return
        # Inflated a piece at a time, never more than the limit allows: a
        # 64 KiB piece of a gzip bomb is 64 MiB at once otherwise.
        try:
            while data and self._error is None:
                out = self._inflate.decompress(data, self._limit - self._size + 1)
                data = self._inflate.unconsumed_tail
                self._take(out)
        except zlib.error as e:
            self._stop(BodyError(f"not valid gzip: {e}"))

    def _take(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._stop(BodyTooLarge(f"more than {self._limit} bytes"))
            return
        self._parts.append(data)
        self._deadline.arm()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._deadline.disarm()
        # This protocol outlives its body, in reference cycles (its deadline's
        # callback, the Deferred's canceller) only the cyclic collector frees:
        # it lets go of the body, in pieces and whole, here.
        parts, self._parts = self._parts, []
        done, self._done = self._done, None
        if done is None or done.called:
            return
        if self._error is not None:
            done.errback(self._error)
        elif reason.check(ResponseDone, PotentialDataLoss):
            if self._inflate is not None and not self._inflate.eof:
                done.errback(BodyCutShort("cut short: the gzip stream did not end"))
                return
            done.callback(b"".join(parts))
        else:
            done.errback(BodyCutShort(f"cut short: {reason.getErrorMessage()}"))

    def _stop(self, error: BodyError) -> None:
        self._error = error
        self._deadline.disarm()
        producer(self).stopProducing()

    def _stalled(self) -> None:
        self._stop(BodyStalled(f"nothing for {self._idle:g} s"))


def producer(protocol: Protocol) -> IPushProducer:
    """The transport of a body being delivered: the response's producer."""
    return cast(IPushProducer, protocol.transport)


def read_body(response: IResponse, limit: int, clock: IReactorTime | None = None,
              idle: float | None = None, gzipped: bool = False) -> Deferred[bytes]:
    """
    Read a response's body: the bytes, or a L{BodyError}; cancelling stops the transfer.

    @param limit: the most bytes accepted (once inflated, for C{gzipped}).
    @param idle: seconds without data (on C{clock}) after which the transfer is stopped.
    """
    collector: _Collect | None = None

    def cancel(d: Deferred[bytes]) -> None:
        if collector is not None and collector.transport is not None:
            collector._deadline.disarm()
            producer(collector).stopProducing()

    done: Deferred[bytes] = Deferred(cancel)
    collector = _Collect(limit, done, clock, idle, gzipped)
    response.deliverBody(collector)
    return done


#: The largest body L{discard} reads to its end (with a clock) so that the
#: connection goes back to the pool whole.
DRAIN_LIMIT = 64 << 10


def discard(response: IResponse, clock: IReactorTime | None = None,
            idle: float | None = None) -> None:
    """
    Drop an answer's body.

    With a clock, a short body of known length (up to L{DRAIN_LIMIT}) is
    read to its end under the C{idle} deadline, and the connection is
    reused. Stopping it instead closed a connection that the agent had
    already put back in its pool when the body arrived with the headers: a
    request sent on it at that moment got no answer, and was sent again on
    another (the upstream saw 15 to 20% of the requests made beside 404s
    twice). Otherwise the transfer is stopped, so a server that stalls
    after its headers, or sends a large body, costs nothing.
    """
    length = response.length
    if clock is not None and isinstance(length, int) and length <= DRAIN_LIMIT:
        d = read_body(response, DRAIN_LIMIT, clock, idle)
        if idle is not None:
            # (in all, not only between pieces: a body that trickles a byte
            # at a time would hold its connection for days)
            timer = clock.callLater(idle, d.cancel)

            def ended(result: Any) -> Any:
                if timer.active():
                    timer.cancel()
                return result
            d.addBoth(ended)
    else:
        d = read_body(response, 0)
        d.cancel()
    d.addErrback(lambda _: None)


def describe(error: BaseException) -> str:
    """A short reason for a failed request (Twisted's client wraps the causes)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        # (a reason without a message, a cancelled connection's, by its
        # class: "cannot reach S3 at ...: " once ended there)
        return "; ".join(r.getErrorMessage() or getattr(r.type, "__name__", "failed")
                         for r in reasons)
    return str(error) or type(error).__name__
