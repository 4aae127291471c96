"""
The hostile cases of an C{https:} connection, against the TLS layer in use:
Twisted's (on pyOpenSSL, with L{pypid.tls.ServerTLS} as its connection
creator) as L{pypid.web.server.tls_layer} closes it, driven in memory by a
client on Twisted's layer, and over real loopback sockets by Python's
C{ssl}.  What a closing client that never closes costs is bounded by the
HTTP channel, on plain HTTP too: those tests are
L{tests.unit.web.server.test_channel}'s C{LingerTests}.
"""

import os
import socket
import ssl

from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from pypid.web.server.channel import (
    CLOSE_TIMEOUT,
    HEADER_TIMEOUT,
    PypidChannel,
)
from pypid.web.server.tls_layer import ClosingTLSFactory
from pypid.web.site import PypidSite
from pypid.web.web_inputs import SiteSettings
from tests.harness.e2e import TCP_CLOSE
from tests.harness.memory_socket import MemorySocket, Stream, pump
from tests.harness.tls import (
    PEER,
    client_context,
    loaded,
    rsa_server,
    shared_ca,
    started_site,
    tls_connection,
)

#: An application-data record OpenSSL refuses (its authentication fails).
BAD_RECORD = b"\x17\x03\x03\x00\x20" + b"\x00" * 32

#: The size of the streamed answer: far more than the transport's buffer (64 KiB).
ANSWER = 1 << 20


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


def _server_side(site):
    """The server's side of a new connection to C{site}, on a L{FakeTransport}, no client."""
    server = ClosingTLSFactory(loaded(rsa_server()), False, site, Clock()).buildProtocol(PEER)
    io = FakeTransport(server, isServer=True, peerAddress=PEER)
    server.makeConnection(io)
    return server, io


class TLSLayerTests(SynchronousTestCase):
    """A connection through the layer, both ways, opened and closed, and its hostile ends."""

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

    def test_close_notify_answered(self):
        """After its close_notify the server closes once the client answers with its own."""
        client = self.connect()
        self.server.transport.loseConnection()
        self.pump.flush()
        self.assertIsNotNone(client.lost)
        self.assertTrue(self.server_io.disconnecting)
        self.assertIsNotNone(self.server.lost)

    def test_client_close_notify(self):
        """The client's close_notify closes the connection; what came before it is delivered."""
        client = self.connect()
        client.transport.write(b"last words")
        client.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.server.received, b"last words")
        self.assertTrue(self.server_io.disconnecting)
        self.assertIsNotNone(self.server.lost)

    def test_client_close_notify_while_paused(self):
        """
        The client's close_notify closes even while the wrapped protocol is
        registered as producer and paused: this side's close_notify goes
        out and the TCP connection is closed.
        """
        client = self.connect()
        self.server.transport.registerProducer(_Producer(), True)
        self.server_io.producer.pauseProducing()
        client.transport.loseConnection()
        self.pump.flush()
        self.assertTrue(self.server_io.disconnecting)
        self.assertIsNotNone(client.lost, "the client got this side's close_notify")
        self.assertIsNotNone(self.server.lost)

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

    def test_bad_record_mid_download(self):
        """
        A record OpenSSL refuses in the middle of an answer closes the
        connection; the wrapped protocol learns OpenSSL's error, and what it
        still writes goes nowhere.
        """
        client = self.connect()
        self.server.transport.registerProducer(_Producer(), True)
        self.server.transport.write(b"!" * 100_000)
        self.server.transport.dataReceived(BAD_RECORD)
        self.assertTrue(self.server_io.disconnecting)
        self.server.transport.write(b"more")
        self.pump.flush()
        self.assertTrue(client.received.startswith(b"!"))
        self.assertNotIn(b"more", client.received)
        self.assertIsNotNone(self.server.lost)
        self.assertIsInstance(self.server.lost.value, SSL.Error)

    def test_plain_http_refused(self):
        """Plain HTTP on the TLS port: closed, the wrapped protocol told OpenSSL's reason."""
        site = _Site()
        server, io = _server_side(site)
        server.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(io.disconnecting)
        server.connectionLost(None)
        [wrapped] = site.built
        self.assertIn("HTTP REQUEST", wrapped.lost.getErrorMessage().upper().replace("_", " "))
        self.assertEqual(wrapped.received, b"")

    def test_pause_and_resume_reach_the_socket(self):
        """The wrapped protocol pausing its transport pauses the TCP transport."""
        self.connect()
        calls = []
        self.server_io.pauseProducing = lambda: calls.append("pause")
        self.server_io.resumeProducing = lambda: calls.append("resume")
        self.server.transport.pauseProducing()
        self.server.transport.resumeProducing()
        self.assertEqual(calls, ["pause", "resume"])


class _Hello(Resource):
    """Answers every request with its path."""

    isLeaf = True

    def render(self, request):
        return b"hello " + request.path


class SiteOverTLSTests(SynchronousTestCase):
    """The site's channel over the layer: its guards hold before, during and after the handshake."""

    def setUp(self):
        self.clock = Clock()
        self.site = started_site(self, self.clock, _Hello(), limit=1)

    def test_refused_by_the_site(self):
        """A connection past the per-address limit is aborted before its handshake."""
        client, server_io, pump = tls_connection(self.site, self.clock)
        server, io = _server_side(self.site)
        self.assertTrue(io.disconnecting)
        self.assertFalse(server_io.disconnecting, "the first connection is kept")

    def test_slowloris_handshake(self):
        """
        A client that sends its handshake a byte at a time is closed by the
        header deadline, counted from the TCP connection, and dropped after
        the close timeout: the handshake holds nothing for longer.
        """
        server, io = _server_side(self.site)
        aborted = []
        io.abortConnection = lambda: aborted.append(True)
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        for second in range(int(HEADER_TIMEOUT) + 1):
            server.dataReceived(hello[second % len(hello):][:1])
            self.clock.advance(1)
        self.assertEqual(aborted, [])
        self.clock.advance(CLOSE_TIMEOUT)
        self.assertEqual(aborted, [True])
        server.connectionLost(None)
        self.assertEqual(self.site.counter.open, 0)

    def test_pipelined(self):
        """Requests sent together are answered in order; after Connection: close, no more."""
        client, server_io, pump = tls_connection(self.site, self.clock)
        client.transport.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        pump.flush()
        self.assertEqual(client.received.count(b"HTTP/1.1 200 OK\r\n"), 2)
        first, second = client.received.index(b"hello /a"), client.received.index(b"hello /b")
        self.assertLess(first, second)
        self.assertNotIn(b"hello /c", client.received)
        self.assertIsNotNone(client.lost, "the connection closed after /b")


class _Answers(Resource):
    """C{/big} streams L{ANSWER} bytes through a push producer; anything else is small."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.streams = []

    def render(self, request):
        if request.path != b"/big":
            return b"small"
        request.setHeader(b"content-length", b"%d" % ANSWER)
        stream = Stream(request, ANSWER)
        self.streams.append(stream)
        request.registerProducer(stream, True)
        stream.resumeProducing()
        return NOT_DONE_YET


class _Received(Protocol):
    """The client's protocol: what it read of its answers."""

    def __init__(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class ClientEndsMidAnswerTests(SynchronousTestCase):
    """
    A client whose bytes end the TLS session (a bad record, its
    close_notify) while its answer is still unsent is reset at once, on
    Twisted's own buffer and flow control (L{MemorySocket}); with nothing
    unsent, its close_notify gets the graceful close. (Twisted's layer
    alone waited for the client to read the answer, and then for the
    channel's next deadline.)
    """

    def setUp(self):
        self.clock = Clock()
        self.resource = _Answers()
        self.site = started_site(self, self.clock, self.resource)
        with open(shared_ca().root_path, "rb") as f:
            root = Certificate.loadPEM(f.read())
        self.client = TLSMemoryBIOFactory(optionsForClientTLS("localhost", trustRoot=root), True,
                                          Factory.forProtocol(_Received), self.clock
                                          ).buildProtocol(PEER)
        self.server = ClosingTLSFactory(loaded(rsa_server()), False, self.site, self.clock
                                        ).buildProtocol(PEER)
        self.client_io = StringTransport()
        self.socket = MemorySocket(self.clock, self.client.dataReceived)
        self.server.makeConnection(self.socket)
        self.client.makeConnection(self.client_io)
        # The handshake, the kernel taking all the server sends.
        self.socket.room = 1 << 30
        self.pump()
        self.assertEqual(self.site.counter.open, 1)

    def pump(self):
        """Move what the client wrote to the server, and what the kernel took to the client."""
        pump(self.clock, self.client_io, self.server, self.socket)

    def download(self):
        """Ask for the large answer, the client reading none of it: most of it stays unsent."""
        self.socket.room = 0
        self.client.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        self.pump()
        [stream] = self.resource.streams
        self.assertTrue(stream.paused)
        self.assertGreater(self.socket.unsent(), 0)
        return stream

    def assert_reset(self, stream, line):
        """The connection was aborted at once, saying C{line}; its end stops the answer."""
        self.assertTrue(self.socket.aborted, "the connection was not aborted")
        self.assertIn(line, self.logged)
        # (as a TCP transport ends: its producer stopped, then its protocol told)
        reason = Failure(ConnectionAborted())
        self.socket.connectionLost(reason)
        self.server.connectionLost(reason)
        self.assertTrue(stream.stopped)
        self.assertEqual(self.site.counter.open, 0)

    def test_bad_record_mid_answer(self):
        """A record OpenSSL refuses in the middle of an answer resets the connection."""
        stream = self.download()
        with capturedLogs() as logged:
            self.server.dataReceived(BAD_RECORD)
        self.logged = [formatEvent(event) for event in logged]
        self.assert_reset(stream, "Dropping a TLS connection whose client sent a record TLS "
                                  "refused")

    def test_close_notify_mid_answer(self):
        """The client's close_notify in the middle of an answer resets the connection."""
        stream = self.download()
        unsent = self.socket.unsent()
        with capturedLogs() as logged:
            self.client.loseConnection()
            self.pump()
        self.logged = [formatEvent(event) for event in logged]
        self.assert_reset(stream, f"Dropping a TLS connection its client closed with {unsent} "
                                  "bytes of its answer unsent")

    def test_close_notify_after_answers(self):
        """
        A client that read its answers (the connection kept alive between
        them) and sends its close_notify gets this side's, then the FIN, at
        once: no reset.
        """
        for path in (b"/big", b"/small"):
            self.client.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.pump()
        received = self.client.wrappedProtocol.received
        self.assertEqual(received.count(b"HTTP/1.1 200 OK\r\n"), 2)
        self.assertIn(b"\r\n\r\n" + b"f" * ANSWER + b"HTTP/1.1 200 OK\r\n", received)
        self.assertTrue(received.endswith(b"\r\n\r\nsmall"))
        self.client.loseConnection()
        self.pump()
        self.assertTrue(self.socket.closed, "the server did not close")
        self.assertFalse(self.socket.aborted)
        self.assertTrue(self.client.getHandle().get_shutdown() & SSL.RECEIVED_SHUTDOWN,
                        "the client got no close_notify")

    def test_bad_record_between_answers(self):
        """A bad record with nothing unsent resets the connection too: the client is broken."""
        self.client.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        self.pump()
        self.assertEqual(self.socket.unsent(), 0)
        self.server.dataReceived(BAD_RECORD)
        self.assertTrue(self.socket.aborted)


class FailedHandshakeTests(SynchronousTestCase):
    """A handshake that fails keeps Twisted's close: its alert goes out, then the FIN."""

    def test_alert_sent(self):
        """A client offering TLS 1.1 only gets OpenSSL's alert, then the FIN: no reset."""
        sent = []
        socket_ = MemorySocket(Clock(), sent.append)
        server = ClosingTLSFactory(loaded(rsa_server()), False, _Site(), Clock()
                                   ).buildProtocol(PEER)
        server.makeConnection(socket_)
        client = SSL.Connection(client_context(SSL.TLS1_1_VERSION, SSL.TLS1_1_VERSION), None)
        client.set_connect_state()
        with self.assertRaises(SSL.WantReadError):
            client.do_handshake()
        server.dataReceived(client.bio_read(1 << 16))
        socket_.take(1 << 16)
        self.assertFalse(socket_.aborted)
        self.assertTrue(socket_.closed)
        self.assertEqual(b"".join(sent)[:1], b"\x15", "a TLS alert record")


class _Loopback(TestCase):
    """Over real loopback sockets: a TLS listener, a client, a wait in the reactor's turns."""

    async def serve(self, protocol):
        """A TLS listener on loopback for C{protocol}; return its port number."""
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            ClosingTLSFactory(loaded(rsa_server()), False, Factory.forProtocol(protocol),
                              reactor))
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def client(self, port):
        """
        A non-blocking TLS client socket, handshake not yet done, and the
        same TCP socket unwrapped (for bytes that are not TLS).
        """
        context = ssl.create_default_context(cafile=shared_ca().root_path)
        client = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                     server_hostname="localhost",
                                     do_handshake_on_connect=False)
        self.addCleanup(client.close)
        client.setblocking(False)
        raw = socket.socket(fileno=os.dup(client.fileno()))
        self.addCleanup(raw.close)
        return raw, client

    async def poll(self, step, limit=10.0):
        """Call C{step()} in the reactor's turns until it is true, at most C{limit} seconds."""
        started = reactor.seconds()
        while reactor.seconds() - started < limit:
            if await deferLater(reactor, 0.01, step):
                return True
        return False


class NonReadingClientTests(_Loopback):
    """Over a real socket: a client that stops reading slows the server down, and frees it."""

    async def test_paused_then_resumed_then_bad_record(self):
        """
        A 16 MiB answer to a client that reads nothing pauses the server's
        producer (never twice in a row) until it stalls with most of it
        unsent; reading resumes it; a bad record then ends the connection
        at once, the client still open and reading nothing: the client's
        socket is reset, the producer told OpenSSL's error.
        """
        calls, lost = [], Deferred()
        size = 16 << 20

        @implementer(IPushProducer)
        class Download(Protocol):
            sent = 0

            def dataReceived(self, data):
                self.transport.registerProducer(self, True)
                self.resumeProducing()

            def pauseProducing(self):
                calls.append(("pause", self.sent))
                self.running = False

            def resumeProducing(self):
                calls.append(("resume", self.sent))
                self.running = True
                while self.running and self.sent < size:
                    self.sent += 1 << 16
                    self.transport.write(b"!" * (1 << 16))

            def stopProducing(self):
                self.running = False

            def connectionLost(self, reason):
                lost.callback(reason.value)

        raw, client = self.client(await self.serve(Download))
        asked = []

        def ask():
            try:
                client.do_handshake()
                if not asked:
                    asked.append(client.send(b"GET"))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            return any(call == "pause" for call, _ in calls)
        self.assertTrue(await self.poll(ask), "the server was never paused")
        seen = []

        def stalled():
            seen.append(len(calls))
            return len(seen) > 30 and seen[-30] == seen[-1]
        self.assertTrue(await self.poll(stalled), "the server never stalled")
        kinds = [call for call, _ in calls]
        self.assertEqual(kinds[-1], "pause")
        self.assertNotIn(("pause", "pause"), list(zip(kinds, kinds[1:], strict=False)))
        self.assertLess(calls[-1][1], size // 2)
        received = []

        def read_some():
            try:
                received.append(len(client.recv(1 << 17)))
            except ssl.SSLWantReadError:
                pass
            return sum(received) > 4 << 20
        self.assertTrue(await self.poll(read_some), "reading did not resume the server")
        raw.sendall(BAD_RECORD)
        # (a limit far above the reactor's few turns: the test is that it
        # ends while the client holds its side open and reads nothing)
        self.assertTrue(await self.poll(lambda: lost.called, 10), "the server kept the connection")
        self.assertIsInstance(await lost, SSL.Error)
        self.assertTrue(await self.poll(
            lambda: raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE, 10),
            "the client's socket was not reset")


class LingerOverTCPTests(_Loopback):
    """The channel's linger over a real TLS connection (the cases are L{tests.unit.web.server.test_channel}'s)."""

    async def test_closing_client_dropped(self):
        """
        A client that asks to close, reads its answer and the close_notify,
        then neither answers it nor closes, is dropped once it was silent
        for the channel's C{linger_idle} (here 0.2 s).
        """
        self.patch(PypidChannel, "linger_idle", 0.2)
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        site = PypidSite(_Hello(), SiteSettings(1 << 20), spool)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            ClosingTLSFactory(loaded(rsa_server()), False, site, reactor))
        self.addCleanup(port.stopListening)
        raw, client = self.client(port.getHost().port)
        asked, received = [], []

        def read():
            # (the handshake, the request and the answer; never an unwrap)
            try:
                client.do_handshake()
                if not asked:
                    asked.append(client.send(b"GET /x HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n"))
                received.append(client.recv(1 << 16))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            return b"hello /x" in b"".join(received)
        started = reactor.seconds()
        self.assertTrue(await self.poll(read), "no answer")
        self.assertEqual(site.counter.open, 1)
        self.assertTrue(await self.poll(lambda: site.counter.open == 0, 5),
                        "the server kept the connection")
        self.assertLess(reactor.seconds() - started, 5)
