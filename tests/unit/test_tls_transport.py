"""
Tests for L{pypid.tls_transport}: the TLS layer of C{https:} connections,
driven in memory by a client on Twisted's own TLS layer (pyOpenSSL), so
each side is checked by the other implementation.
"""

from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pypid.tls_transport import TLSServerFactory
from tests.harness.tls import PEER, loaded, rsa_server, tls_connection


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
        client, self.server_io, self.pump = tls_connection(self.site, Clock())
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
        server = TLSServerFactory(loaded(rsa_server()).wrap, site).buildProtocol(PEER)
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
        self.assertIsNone(TLSServerFactory(loaded(rsa_server()).wrap, site).buildProtocol(PEER))

    def test_pause_and_resume_reach_the_socket(self):
        """The wrapped protocol pausing its transport pauses the TCP transport."""
        self.connect()
        calls = []
        self.server_io.pauseProducing = lambda: calls.append("pause")
        self.server_io.resumeProducing = lambda: calls.append("resume")
        self.server.transport.pauseProducing()
        self.server.transport.resumeProducing()
        self.assertEqual(calls, ["pause", "resume"])
