"""
One upstream file's bytes on their way to a temporary file: written in the
thread pool in order, the transfer paused while too much waits to be
written (or while the client fed alongside is behind), an idle deadline
and a cap on the size. Apart from L{pypid.upstream.downloads} because this
is the part that meets the network: it is tested alone with a fake transport.
"""

from __future__ import annotations

import os
import secrets
from typing import IO, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from pypid.http import bodies
from pypid.jobs.run import Run
from pypid.upstream.fetch import TransferFailed, UpstreamError

log = Logger()

class VerifyError(UpstreamError):
    """What the upstream sent is not what its page promised; nothing is kept."""


class DownloadTee(Protocol):
    """
    Who is fed a file's bytes while it is fetched (the first client to ask),
    so that it need not wait for the whole file.
    """

    #: whether anything was sent on (the caller then answers nothing more)
    started: bool

    def start(self, transfer: ToFile) -> None:
        """The first bytes are coming; C{transfer} may be held and released."""

    def write(self, data: bytes) -> None:
        """One more piece of the file."""

    def finish(self) -> None:
        """The bytes matched the page: the answer may end."""

    def abort(self) -> None:
        """The bytes were wrong or cut short: the answer must look broken."""


def open_temp(folder: str) -> tuple[str, IO[bytes]]:
    """A new temporary file in C{folder} (made if need be): its path, open for writing."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"upstream-{secrets.token_hex(8)}")
    return path, open(path, "wb")


class ToFile(TwistedProtocol):
    """Writes a response's body to a file, as the module docstring says."""

    def __init__(self, f: IO[bytes], run: Run, clock: IReactorTime, idle: float,
                 limit: int, done: Deferred[int], high: int = 4 << 20,
                 tee: DownloadTee | None = None) -> None:
        self._tee = tee
        self._holds: set[str] = set()
        self._client_timer: IDelayedCall | None = None
        self._f = f
        self._run = run
        self._clock = clock
        self._idle = idle
        self._limit = limit
        self._done = done
        self._high = high
        self._queued = 0
        self._size = 0
        self._paused = False
        self._chain: Deferred[object] = succeed(None)
        self._error: Exception | None = None
        self._deadline = bodies.Deadline(clock, idle, self._stalled)

    def connectionMade(self) -> None:
        """The body starts: the idle deadline runs, the tee is told."""
        self._chain = succeed(None)
        self._deadline.arm()
        if self._tee is not None:
            self._tee.start(self)

    def dataReceived(self, data: bytes) -> None:
        """Queue C{data} to be written, within the limit."""
        if self._error is not None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._fail(VerifyError(f"the upstream sent more than {self._limit} bytes"))
            return
        self._deadline.arm()
        if self._tee is not None:
            self._tee.write(data)
        self._queued += len(data)
        if self._queued > self._high:
            self.hold("disk")
        self._chain.addCallback(lambda _: self._run(self._f.write, data))
        self._chain.addCallback(self._written, len(data))

    def _written(self, _: object, length: int) -> None:
        self._queued -= length
        if self._queued < self._high // 4:
            self.release("disk")

    def hold(self, reason: str) -> None:
        """Pause the transfer (the disk, or the client being fed, is behind)."""
        if not self._holds and self._error is None:
            self._deadline.disarm()
            bodies.producer(self).pauseProducing()
        self._holds.add(reason)
        if reason == "client" and self._client_timer is None:
            # The download is shared (the cache, other clients wait for it):
            # a client that stops reading is dropped after a while.
            self._client_timer = self._clock.callLater(self._idle, self._drop_client)

    def _drop_client(self) -> None:
        self._client_timer = None
        tee, self._tee = self._tee, None
        if tee is not None:
            log.warn("Dropping a client that stopped reading while its file was fetched")
            tee.abort()
        self.release("client")

    def release(self, reason: str) -> None:
        """Let the transfer go on once nothing holds it."""
        if reason == "client" and self._client_timer is not None:
            if self._client_timer.active():
                self._client_timer.cancel()
            self._client_timer = None
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self._error is None:
            self._deadline.arm()
            bodies.producer(self).resumeProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The body ended: once all is written, C{done} fires with the size, or fails."""
        self._deadline.disarm()
        if self._client_timer is not None and self._client_timer.active():
            self._client_timer.cancel()
        self._client_timer = None
        if self._error is None and not reason.check(ResponseDone, PotentialDataLoss):
            self._error = TransferFailed(
                f"the download was cut short: {bodies.describe(reason.value)}")
        error = self._error

        def finished(_: object) -> int:
            if error is not None:
                raise error
            return self._size
        self._chain.addCallback(finished).chainDeferred(self._done)

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._deadline.disarm()
        bodies.producer(self).stopProducing()

    def _stalled(self) -> None:
        self._fail(TransferFailed(f"the upstream sent nothing for {self._idle:g} s"))

    def overdue(self, deadline: float) -> None:
        """The whole download took too long, however steadily bytes came."""
        if self._error is None and self.transport is not None:
            self._fail(TransferFailed(f"the download took longer than {deadline:g} s "
                                      "([upstream] fetch_deadline)"))
