"""
The TLS layer of the C{https:} listeners: the standard library's C{ssl}
(OpenSSL) over memory buffers, between a TCP connection and the site's
HTTP channel.

Twisted's own layer (C{TLSMemoryBIOProtocol}, on pyOpenSSL) cost pypid
more than nginx on the same protocol: uv opens a connection whenever none
is idle, about a hundred for one resolution, and each paid a handshake
through pyOpenSSL's glue, the interfaces declared on each wrapper, and
every answer cut into 16 KiB sends with its small writes held to the next
turn of the reactor.  Measured in process (ECDSA P-256, TLS 1.3, server
side only): a handshake 205 us with pyOpenSSL, 165 us with C{ssl}; 1 MiB
sent in 64 KiB writes 460 us against 370 us. The parsing is OpenSSL's in
both; this module only moves bytes between it and the sockets.

What the channel relies on is kept: writes made before the handshake
ends wait for it; the producer registered (the channel itself) and
C{pauseProducing}/C{resumeProducing} go to the TCP transport, which
applies them to the socket, so a slow client still slows the channel
down; C{loseConnection} sends the close_notify once no producer is
registered (as Twisted's layer does), then the TCP FIN once the answer
has left, and closes when the client's close_notify or FIN comes (what it
still sends thrown away, so that it reads the answer, not a reset), or
once it has sent nothing for L{LINGER_IDLE} seconds or lingered
L{LINGER_MOST} (a client that read its answer and neither closes nor
sends would keep the connection for good); the client's close_notify
closes at once, as its TCP close would;
the TCP transport's pauses reach the channel once each (L{_Membrane}); a
handshake or record that OpenSSL refuses closes the connection, the
channel seeing the error as the reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

#: The largest application read from OpenSSL at once.
READ_SIZE = 1 << 17

#: Seconds a connection is kept, once this side's close_notify and FIN
#: have left, for a client that sends nothing more (nginx's
#: lingering_timeout is 5 s), and at most for one that keeps sending.
LINGER_IDLE = 5.0
LINGER_MOST = 30.0

#: C{wrap(incoming, outgoing)}: the server side of a new TLS connection
#: (L{pypid.tls.ServerTLS.wrap}).
Wrap = Callable[[ssl.MemoryBIO, ssl.MemoryBIO], ssl.SSLObject]


@implementer(ITCPTransport, ISSLTransport, IPushProducer, IConsumer)
class TLSServerTransport(Protocol):
    """
    One TLS connection: a protocol to the TCP transport below, a transport
    to the wrapped protocol above.
    """

    def __init__(self, wrapped: IProtocol, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO, clock: IReactorTime) -> None:
        self.wrapped = wrapped
        self._clock = clock
        self._linger: list[IDelayedCall] = []
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._handshaken = False
        self._before_handshake: list[bytes] = []
        self._producer: IProducer | None = None
        self._failure: Failure | None = None
        self._shut = False
        self.disconnecting = False

    # -- the TCP side --

    def connectionMade(self) -> None:
        """The wrapped protocol gets this layer as its transport at once (its timeouts start)."""
        self.wrapped.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        """Feed OpenSSL; hand the application bytes it gives to the wrapped protocol."""
        self._incoming.write(data)
        if self._shut:
            if self._linger and self._linger[0].active():
                self._linger[0].reset(LINGER_IDLE)
            self._drain()
            return
        if not self._handshaken and not self._handshake():
            return
        received: list[bytes] = []
        try:
            while True:
                chunk = self._tls.read(READ_SIZE)
                if not chunk:  # the client's close_notify: it sends no more
                    self._deliver(received)
                    self._closed_by_client()
                    return
                received.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            self._fail(e)
            return
        self._send()  # (OpenSSL may have answered: a key update, say)
        self._deliver(received)

    def _handshake(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send()
            return False
        except ssl.SSLError as e:
            self._fail(e)
            return False
        self._handshaken = True
        self._send()
        waiting, self._before_handshake = self._before_handshake, []
        if waiting:
            self.write(b"".join(waiting))
        return True

    def _drain(self) -> None:
        """
        After this side's close_notify: throw away what the client still
        sends until its own close_notify, then close.  Closing at once would
        reset a connection whose client is still sending (a refused upload,
        an oversized header) before it read the answer; a client that never
        closes is dropped once it lingered (L{writeConnectionLost}), or
        earlier by the channel's close timer after a refusal.
        """
        try:
            while self._tls.read(READ_SIZE):
                pass
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError:
            pass  # its close_notify (or garbage): either way, done
        assert self.transport is not None
        self.transport.loseConnection()

    def _deliver(self, received: list[bytes]) -> None:
        if received and self._failure is None:
            self.wrapped.dataReceived(b"".join(received))

    def _send(self) -> None:
        if self._outgoing.pending:
            assert self.transport is not None
            self.transport.write(self._outgoing.read())

    def _closed_by_client(self) -> None:
        """
        The client's close_notify: it sends no more, so the connection
        ends as when a client closes its TCP side (an answer still being
        written is cut, as Twisted's HTTP channel does there): this side's
        close_notify goes out and the connection closes, a producer
        registered or not.
        """
        self.disconnecting = True
        if self._producer is not None:
            # (the TCP transport closes only once no producer is registered:
            # a paused download was resumed into nothing, found by a review)
            self.unregisterProducer()  # (which shuts down: disconnecting)
        else:
            self._shutdown()

    def _fail(self, error: ssl.SSLError) -> None:
        """
        OpenSSL refused the peer's bytes: send its alert, and close; once
        answers flow, at once (a client sending garbage mid-answer may not
        be reading either, and the buffer would never drain).
        """
        self._failure = Failure(error)
        self._send()
        assert self.transport is not None
        if self._handshaken:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The wrapped protocol learns of it, with OpenSSL's error if that was the cause."""
        for call in self._linger:
            if call.active():
                call.cancel()
        self.wrapped.connectionLost(self._failure or reason)

    # -- after this side's close_notify (L{IHalfCloseableProtocol} from then on) --

    def writeConnectionLost(self) -> None:
        """The answer, the close_notify and the FIN have left: linger, bounded."""
        self._linger = [self._clock.callLater(LINGER_IDLE, self._lingered),
                        self._clock.callLater(LINGER_MOST, self._lingered)]

    def readConnectionLost(self) -> None:
        """The client's FIN after this side's close_notify: done."""
        assert self.transport is not None
        self.transport.loseConnection()

    def _lingered(self) -> None:
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- the transport of the wrapped protocol --

    def write(self, data: bytes) -> None:
        """Encrypt and send at once; before the handshake ends, keep it for then."""
        if self._shut or self._failure is not None or not data:
            return
        if not self._handshaken:
            self._before_handshake.append(data)
            return
        try:
            view = memoryview(data)
            while view:
                view = view[self._tls.write(view):]
        except ssl.SSLError as e:
            self._fail(e)
            return
        self._send()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """One write of the pieces joined."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """
        Send the close_notify and close, once no producer is registered (the
        channel unregisters itself first); before the handshake ends, close
        the TCP connection.
        """
        if self.disconnecting:
            return
        self.disconnecting = True
        if self._producer is None:
            self._shutdown()

    def _shutdown(self) -> None:
        """Send the close_notify, then wait for the client's (L{_drain})."""
        assert self.transport is not None
        self._shut = True
        if not self._handshaken or self._failure is not None:
            self.transport.loseConnection()
            return
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # (the close_notify is written; the client's comes later)
        except ssl.SSLError:
            self.transport.loseConnection()
            return
        self._send()
        # (the FIN once all has left, then writeConnectionLost; the client's
        # FIN, readConnectionLost: both only from now on)
        alsoProvides(self, IHalfCloseableProtocol)
        cast(ITCPTransport, self.transport).loseWriteConnection()
        self._drain()

    def abortConnection(self) -> None:
        """Close the TCP connection at once."""
        self.disconnecting = True
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def loseWriteConnection(self) -> None:
        """As L{loseConnection}: a TLS connection is not half-closed."""
        self.loseConnection()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        The TCP transport pauses and resumes it as its buffer fills and
        drains, through a L{_Membrane} when it is a push producer.
        """
        self._producer = producer
        assert self.transport is not None
        if streaming:
            producer = _Membrane(cast(IPushProducer, producer))
        self.transport.registerProducer(producer, streaming)  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        """Forget the producer; a close asked for meanwhile happens now."""
        if self._producer is None:
            return
        self._producer = None
        assert self.transport is not None
        self.transport.unregisterProducer()  # type: ignore[attr-defined]
        if self.disconnecting:
            self._shutdown()

    def pauseProducing(self) -> None:
        """Stop reading from the socket."""
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        """Read from the socket again."""
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        """Close the connection."""
        self.transport.stopProducing()  # type: ignore[union-attr]

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self.transport.getPeer()  # type: ignore[union-attr,return-value]

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.transport.getHost()  # type: ignore[union-attr,return-value]

    def getPeerCertificate(self) -> None:
        """No client certificates are asked for."""
        return None

    def getTcpNoDelay(self) -> bool:
        return bool(self.transport.getTcpNoDelay())  # type: ignore[union-attr]

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.transport.setTcpNoDelay(enabled)  # type: ignore[union-attr]

    def getTcpKeepAlive(self) -> bool:
        return bool(self.transport.getTcpKeepAlive())  # type: ignore[union-attr]

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.transport.setTcpKeepAlive(enabled)  # type: ignore[union-attr]


@implementer(IPushProducer)
class _Membrane:
    """
    Between the TCP transport and the push producer registered: a pause or
    resume that changes nothing is not passed on. The TCP transport pauses
    its producer on every write that finds its buffer full, paused or not;
    a write of this layer's own (an alert, a key update) into a full buffer
    paused the channel twice, and its download, resumed once, waited for
    ever on a connection nobody would close (found by a hostile run;
    Twisted's own TLS layer has such a membrane too).
    """

    __slots__ = ("_producer", "_paused")

    def __init__(self, producer: IPushProducer) -> None:
        self._producer = producer
        self._paused = False

    def pauseProducing(self) -> None:
        if not self._paused:
            self._paused = True
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        self._producer.stopProducing()


class TLSServerFactory(Factory):
    """Wraps each connection of C{wrapped} (the site) in a L{TLSServerTransport}."""

    noisy = False

    def __init__(self, wrap: Wrap, wrapped: IProtocolFactory, clock: IReactorTime) -> None:
        """
        @param wrap: the server side of a new connection, on the context in
            use when it opens (L{pypid.tls.ServerTLS.wrap}).
        @param clock: the time a closing connection lingers by.
        """
        self._wrap = wrap
        self.wrapped = wrapped
        self._clock = clock

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        return getattr(self.wrapped, "logPrefix", lambda: "pypid")()

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """The wrapped factory's protocol (L{None}: refused) inside a new TLS connection."""
        protocol = self.wrapped.buildProtocol(addr)  # type: ignore[arg-type]  # (a listener always gives one)
        if protocol is None:
            return None
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        transport = TLSServerTransport(protocol, self._wrap(incoming, outgoing), incoming,
                                       outgoing, self._clock)
        transport.factory = self
        return transport
