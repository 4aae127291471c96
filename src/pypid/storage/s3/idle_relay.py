"""
A relayed download (C{download = stream}) whose body is cut short when the
store sends nothing for a while, so a stalled store cannot hold a download
open for ever; the relay then closes the client's connection. A pause the
client asks for (a slow reader) does not count as the store's silence.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.http.bodies import Deadline
from pypid.storage.interface import Deliverable

# (the namespace its lines always had, before S3Storage was split)
log = Logger(namespace="pypid.storage.s3.storage")


class IdleGuard:
    """
    A relayed answer whose body is cut short when the store sends nothing
    for C{timeout} seconds while the client is reading.
    """

    def __init__(self, response: Deliverable, clock: IReactorTime, timeout: float) -> None:
        self._response = response
        self._clock = clock
        self._timeout = timeout

    def deliverBody(self, protocol: IProtocol) -> None:
        """Deliver the body to C{protocol}, watched."""
        self._response.deliverBody(_IdleProtocol(protocol, self._clock, self._timeout))


class _IdleProtocol:
    """Passes a body on, and stops it after a silence (see L{IdleGuard})."""

    def __init__(self, inner: IProtocol, clock: IReactorTime, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._deadline = Deadline(clock, timeout, self._expired)
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        # (this is the inner protocol's transport: a producer it can pause)
        self._inner.makeConnection(self)  # type: ignore[arg-type]
        self._deadline.arm()

    def dataReceived(self, data: bytes) -> None:
        self._deadline.arm()
        self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        self._deadline.disarm()
        self._inner.connectionLost(reason)

    # The transport the inner protocol sees: pauses stop the watch.

    def pauseProducing(self) -> None:
        self._deadline.disarm()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._deadline.arm()
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._deadline.disarm()
        self.transport.stopProducing()

    def _expired(self) -> None:
        log.warn("S3 sent nothing for {seconds} s: cutting the download short",
                 seconds=self._timeout)
        self.transport.stopProducing()
