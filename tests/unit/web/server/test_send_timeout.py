"""
Tests for the channel's send timeout (L{pypid.web.server.channel.PypidChannel.check}):
a client that stops reading its answer is dropped once it took none of it
for C{send_timeout} seconds, and one that reads slowly is kept, on plain
HTTP, behind the PROXY protocol's layer and under the https: listeners'
TLS layer. The transport is Twisted's own buffering and flow control over
a kernel in memory (L{MemorySocket}) that takes only what the test lets
the client read, with a L{Clock}.
"""

import os

from twisted.internet.defer import succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.haproxy import proxyEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from pypid.web.server.channel import PypidChannel
from pypid.web.server.tls_layer import ClosingTLSFactory
from pypid.web.site import PypidSite
from pypid.web.web_inputs import SiteSettings
from tests.harness.memory_socket import MemorySocket, Stream, pump
from tests.harness.tls import PEER, loaded, rsa_server, shared_ca

#: The send timeout of these tests' site.
SEND_TIMEOUT = 5.0

#: The size of the answers: far more than the transport's buffer (64 KiB).
ANSWER = 1 << 20


class _Whole(Resource):
    """A large answer written at once (as a page is): it waits in the transport's buffer."""

    isLeaf = True

    def render(self, request):
        return b"p" * ANSWER


class _Streamed(Resource):
    """Streams its answer through a push producer."""

    isLeaf = True

    def render(self, request):
        stream = Stream(request, ANSWER)
        request.registerProducer(stream, True)
        stream.resumeProducing()
        return NOT_DONE_YET


class _SendTimeoutMixin:
    """The site with a send timeout of L{SEND_TIMEOUT}; the subclasses connect to it."""

    resource = _Whole

    def setUp(self):
        self.clock = Clock()
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        self.site = PypidSite(self.resource(), SiteSettings(1 << 20, send_timeout=SEND_TIMEOUT),
                              spool, reactor=self.clock)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)
        self.connect()
        self.addCleanup(self.channel.connectionLost, None)

    def advance(self, seconds):
        """Let C{seconds} pass, a second at a time (the site's sweep runs each second)."""
        for _ in range(int(seconds)):
            self.clock.advance(1)

    def test_stalled_answer_dropped(self):
        """
        A client that takes none of its answer is dropped once
        C{send_timeout} seconds have passed, counted and logged.
        """
        self.ask()
        self.assertIsNotNone(self.channel.stalled_since, "the answer fills the buffer")
        with capturedLogs() as logged:
            self.advance(SEND_TIMEOUT - 1)
            self.assertFalse(self.socket.aborted)
            self.advance(1)
        self.assertTrue(self.socket.aborted)
        self.assertEqual(self.site.stats.refusals, {"send_timeout": 1})
        self.assertIn("Dropping a connection whose client took none of its answer for 5 s",
                      [event["log_format"].format(**event) for event in logged])

    def test_slow_reader_kept(self):
        """
        A client that takes a little of its answer every few seconds, never
        enough to drain the buffer, is kept; once it stops, the timeout counts
        from the last bytes it took (seen by the sweep's next round, a second
        later at most).
        """
        self.ask()
        for _ in range(5):
            self.advance(SEND_TIMEOUT - 1)
            self.socket.take(1000)
        self.assertFalse(self.socket.aborted)
        self.advance(SEND_TIMEOUT)
        self.assertFalse(self.socket.aborted)
        self.advance(1)
        self.assertTrue(self.socket.aborted)

    def test_drained_answer_forgotten(self):
        """A client that reads its whole answer is never dropped, however long it keeps the connection."""
        self.ask()
        self.advance(SEND_TIMEOUT - 1)
        self.socket.take(2 * ANSWER)
        self.assertIsNone(self.channel.stalled_since)
        self.advance(SEND_TIMEOUT * 3)
        self.assertFalse(self.socket.aborted)
        self.assertEqual(self.site.stats.refusals, {})


class _PlainMixin(_SendTimeoutMixin):
    """Over plain HTTP."""

    def connect(self):
        self.channel = self.site.buildProtocol(PEER)
        self.assertIsInstance(self.channel, PypidChannel)
        self.socket = MemorySocket(self.clock)
        self.channel.makeConnection(self.socket)

    def ask(self):
        self.channel.dataReceived(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")


class PlainTests(_PlainMixin, SynchronousTestCase):
    """A large answer written at once, over plain HTTP."""


class PlainStreamedTests(_PlainMixin, SynchronousTestCase):
    """A large answer streamed by a producer (a download), over plain HTTP."""

    resource = _Streamed


class ProxyProtocolTests(_SendTimeoutMixin, SynchronousTestCase):
    """Behind the PROXY protocol's layer (a C{haproxy:} listener): the channel sees through it too."""

    def connect(self):
        listening = _Endpoint()
        proxyEndpoint(listening).listen(self.site)
        wrapper = listening.factory.buildProtocol(PEER)
        self.socket = MemorySocket(self.clock)
        wrapper.makeConnection(self.socket)
        self.channel = wrapper.wrappedProtocol
        self.assertIsInstance(self.channel, PypidChannel)

    def ask(self):
        self.channel.transport.dataReceived(b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 8080\r\n"
                                            b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")


class TLSTests(_SendTimeoutMixin, SynchronousTestCase):
    """
    Under the TLS layer over the same transport: the channel learns
    that the buffer is full through the layer, and sees through it what
    the kernel took.
    """

    def connect(self):
        with open(shared_ca().root_path, "rb") as f:
            root = Certificate.loadPEM(f.read())
        client = TLSMemoryBIOFactory(optionsForClientTLS("localhost", trustRoot=root), True,
                                     Factory.forProtocol(_Received), self.clock
                                     ).buildProtocol(PEER)
        server = ClosingTLSFactory(loaded(rsa_server()), False, self.site, self.clock
                                   ).buildProtocol(PEER)
        self.client_io = StringTransport()
        self.socket = MemorySocket(self.clock, client.dataReceived)
        self.server = server
        server.makeConnection(self.socket)
        client.makeConnection(self.client_io)
        self.client = client
        # The handshake, the kernel taking all the server sends.
        self.socket.room = 1 << 30
        self.pump()
        self.socket.room = 0
        self.channel = server.wrappedProtocol

    def pump(self):
        """Move what the client wrote to the server, and what the kernel took to the client."""
        pump(self.clock, self.client_io, self.server, self.socket)

    def ask(self):
        self.client.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        self.pump()


class _Endpoint:
    """An endpoint that keeps the factory it is to listen with."""

    def listen(self, factory):
        self.factory = factory
        return succeed(None)


class _Received(Protocol):
    """The client's protocol over TLS: reads what the kernel gave it, and keeps nothing."""

    def dataReceived(self, data):
        pass
