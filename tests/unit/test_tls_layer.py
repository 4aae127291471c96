"""
Tests for L{pypid.tls_transport}: the TLS layer of C{https:} connections,
driven in memory by a client on Twisted's own TLS layer (pyOpenSSL), so
each side is checked by the other implementation.
"""

import socket
import ssl

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.test.iosim import FakeTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from pypid import tls_transport
from pypid.tls_transport import LINGER_IDLE, LINGER_MOST, TLSServerFactory
from tests.harness.tls import PEER, loaded, rsa_server, shared_ca, tls_connection


class _Server(Protocol):
    """The wrapped protocol: records what it gets; says C{hello} first if told."""

    greet = b""

    def __init__(self):
        self.received = b""
        self.lost = None

    def connectionMade(self):
        if self.greet:
            self.transport.write(self.greet)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


@implementer(IPushProducer)
class _Producer:
    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _Site(Factory):
    protocol = _Server

    def __init__(self, greet=b""):
        self.built = []
        self.greet = greet

    def buildProtocol(self, addr):
        server = _Server()
        server.greet = self.greet
        self.built.append(server)
        return server


class TLSServerTransportTests(SynchronousTestCase):
    """A connection through the layer, both ways, opened and closed."""

    def connect(self, greet=b""):
        self.site = _Site(greet)
        self.clock = Clock()
        client, self.server_io, self.pump = tls_connection(self.site, self.clock)
        [self.server] = self.site.built
        return client

    def test_both_ways(self):
        """Bytes go both ways; the wrapped protocol sees a secure TCP transport."""
        client = self.connect()
        client.transport.write(b"ping")
        self.pump.flush()
        self.assertEqual(self.server.received, b"ping")
        self.server.transport.writeSequence([b"po", b"ng", b"!" * 100_000])
        self.pump.flush()
        self.assertEqual(client.received, b"pong" + b"!" * 100_000)
        self.assertTrue(ISSLTransport.providedBy(self.server.transport))
        self.assertIsNone(self.server.transport.getPeerCertificate())
        self.assertEqual(self.server.transport.getPeer(), PEER)

    def test_write_before_handshake(self):
        """What the wrapped protocol writes before the handshake ends goes out after it."""
        client = self.connect(greet=b"hello")
        self.pump.flush()
        self.assertEqual(client.received, b"hello")

    def test_close_waits_for_producer(self):
        """loseConnection with a producer registered closes once it is unregistered."""
        client = self.connect()
        self.server.transport.registerProducer(_Producer(), True)
        self.server.transport.write(b"answer")
        self.server.transport.loseConnection()
        self.server.transport.write(b" and more")
        self.pump.flush()
        self.assertEqual(client.received, b"answer and more")
        self.assertIsNone(client.lost)
        self.server.transport.unregisterProducer()
        self.server.transport.write(b"too late")
        self.pump.flush()
        self.assertEqual(client.received, b"answer and more")
        self.assertIsNotNone(client.lost, "the client got the close_notify")

    def test_waits_for_client_close_notify(self):
        """After its close_notify the server drains the client until the client's own."""
        client = self.connect()
        self.server.transport.loseConnection()
        self.pump.flush()
        self.assertIsNotNone(client.lost)
        self.assertTrue(self.server_io.disconnecting)

    def test_client_close_notify(self):
        """The client's close_notify closes the connection; what came before it is delivered."""
        client = self.connect()
        client.transport.write(b"last words")
        client.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.server.received, b"last words")
        self.assertTrue(self.server_io.disconnecting)

    def test_client_close_notify_with_producer(self):
        """
        The client's close_notify closes even while the channel is registered
        as producer, paused or not: the producer leaves the TCP transport,
        which closes only once none is registered.
        """
        client = self.connect()
        self.server.transport.registerProducer(_Producer(), True)
        self.server_io.producer.pauseProducing()
        client.transport.loseConnection()
        self.pump.flush()
        self.assertTrue(self.server_io.disconnecting)
        self.assertIsNone(self.server_io.producer)
        self.assertIsNotNone(client.lost, "the client got this side's close_notify")

    def test_pauses_reach_the_producer_once(self):
        """
        The TCP transport may pause its producer again while paused (each
        write into a full buffer does): the producer sees one pause, and the
        one resume that follows resumes it.
        """
        self.connect()
        calls = []
        producer = _Producer()
        producer.pauseProducing = lambda: calls.append("pause")
        producer.resumeProducing = lambda: calls.append("resume")
        self.server.transport.registerProducer(producer, True)
        registered = self.server_io.producer
        registered.pauseProducing()
        registered.pauseProducing()
        registered.resumeProducing()
        registered.resumeProducing()
        self.assertEqual(calls, ["pause", "resume"])

    def test_garbage_after_handshake_aborts(self):
        """A record OpenSSL refuses mid-connection aborts it: no wait for a buffer to drain."""
        self.connect()
        aborted = []
        self.server_io.abortConnection = lambda: aborted.append(True)
        self.server.transport.registerProducer(_Producer(), True)
        self.server.transport.dataReceived(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        self.assertEqual(aborted, [True])

    def test_plain_http_refused(self):
        """Plain HTTP on the TLS port: closed, the wrapped protocol told OpenSSL's reason."""
        site = _Site()
        server = TLSServerFactory(loaded(rsa_server()).wrap, site, Clock()).buildProtocol(PEER)
        io = FakeTransport(server, isServer=True, peerAddress=PEER)
        server.makeConnection(io)
        server.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(io.disconnecting)
        server.connectionLost(None)
        [wrapped] = site.built
        self.assertIn("HTTP_REQUEST", wrapped.lost.getErrorMessage().upper())
        self.assertEqual(wrapped.received, b"")

    def test_refused_by_wrapped_factory(self):
        """A connection the wrapped factory refuses (too many from one address) gets none."""
        site = _Site()
        site.buildProtocol = lambda addr: None
        self.assertIsNone(TLSServerFactory(loaded(rsa_server()).wrap, site,
                                           Clock()).buildProtocol(PEER))

    def test_pause_and_resume_reach_the_socket(self):
        """The wrapped protocol pausing its transport pauses the TCP transport."""
        self.connect()
        calls = []
        self.server_io.pauseProducing = lambda: calls.append("pause")
        self.server_io.resumeProducing = lambda: calls.append("resume")
        self.server.transport.pauseProducing()
        self.server.transport.resumeProducing()
        self.assertEqual(calls, ["pause", "resume"])


class LingerTests(SynchronousTestCase):
    """
    After this side's close_notify, a client that neither sends its own
    nor closes keeps the connection a bounded time only, counted from when
    the answer has left (the TCP transport's C{writeConnectionLost}).
    """

    def setUp(self):
        self.site = _Site()
        self.clock = Clock()
        self.client, self.server_io, self.pump = tls_connection(self.site, self.clock)
        [self.server] = self.site.built
        self.layer = self.server_io.protocol
        self.aborted = []
        self.server_io.abortConnection = lambda: self.aborted.append(True)
        self.server_io.loseWriteConnection = lambda: self.half_closed.append(True)
        self.half_closed = []

    def close_silently(self):
        """The answer, then this side's close_notify, which the client never answers."""
        self.server.transport.write(b"answer")
        self.pump.flush()
        self.assertEqual(self.client.received, b"answer")
        self.server.transport.loseConnection()  # (not pumped: the client never hears it)

    def test_half_close_after_close_notify(self):
        """The FIN is asked for once the close_notify is written, never before."""
        self.assertFalse(IHalfCloseableProtocol.providedBy(self.layer))
        self.server.transport.loseConnection()
        self.assertEqual(self.half_closed, [True])
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.layer))

    def test_quiet_client_dropped(self):
        """A client silent for LINGER_IDLE seconds after the answer left is dropped."""
        self.close_silently()
        self.clock.advance(60)
        self.assertEqual(self.aborted, [], "nothing before the answer has left")
        self.layer.writeConnectionLost()
        self.clock.advance(LINGER_IDLE - 0.1)
        self.assertEqual(self.aborted, [])
        self.clock.advance(0.2)
        self.assertEqual(self.aborted, [True])

    def test_sending_client_bounded(self):
        """A client that keeps sending is read, and dropped after LINGER_MOST seconds."""
        self.close_silently()
        self.layer.writeConnectionLost()
        # (a record of 16 KiB begun, sent a few bytes at a time: never whole here)
        self.layer.dataReceived(b"\x17\x03\x03\x40\x00")
        record = b"\x00" * 8
        for _ in range(int(LINGER_MOST / (LINGER_IDLE / 2)) - 1):
            self.clock.advance(LINGER_IDLE / 2)
            self.layer.dataReceived(record)
            self.assertEqual(self.aborted, [])
        self.clock.advance(LINGER_IDLE / 2 + 0.1)
        self.assertEqual(self.aborted, [True])

    def test_client_fin_closes(self):
        """The client's FIN after this side's close_notify closes the connection."""
        self.close_silently()
        self.server_io.disconnecting = False
        self.layer.readConnectionLost()
        self.assertTrue(self.server_io.disconnecting)

    def test_timers_end_with_the_connection(self):
        """A connection that ends while lingering leaves no timer behind."""
        self.close_silently()
        self.layer.writeConnectionLost()
        self.layer.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LingerOverTCPTests(TestCase):
    """The linger over a real socket: the TCP transport calls writeConnectionLost."""

    async def test_quiet_client_dropped(self):
        """
        A client that asks to close, reads its answer and this side's
        close_notify, then neither answers it nor closes, is dropped once
        LINGER_IDLE (here 0.2 s) has passed after the answer left.
        """
        self.patch(tls_transport, "LINGER_IDLE", 0.2)
        lost = Deferred()

        class Closing(Protocol):
            def dataReceived(self, data):
                self.transport.write(b"answer")
                self.transport.loseConnection()

            def connectionLost(self, reason):
                lost.callback(reason.type)

        tls = loaded(rsa_server())
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            TLSServerFactory(tls.wrap, Factory.forProtocol(Closing), reactor))
        self.addCleanup(port.stopListening)
        context = ssl.create_default_context(cafile=shared_ca().root_path)
        raw = socket.create_connection(("127.0.0.1", port.getHost().port))
        client = context.wrap_socket(raw, server_hostname="localhost",
                                     do_handshake_on_connect=False)
        self.addCleanup(raw.close)
        client.setblocking(False)

        def read() -> bytes:
            # (the handshake, the request and the answer, in the reactor's
            # turns; never an unwrap: no close_notify of the client's)
            try:
                client.do_handshake()
                if not asked:
                    asked.append(client.send(b"ask"))
                return client.recv(100)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return b"..."
        asked: list[int] = []
        received = b""
        started = reactor.seconds()
        while not received.endswith(b"answer") and reactor.seconds() - started < 10:
            chunk = await deferLater(reactor, 0.01, read)
            received += b"" if chunk == b"..." else chunk
        self.assertTrue(received.endswith(b"answer"))
        self.assertIs(await lost, ConnectionAborted)
        self.assertLess(reactor.seconds() - started, 5)
