"""
Tests for L{pypid.web.server.channel}: the deadlines on request headers and bodies,
the limits on request heads, the limit on connections per client address,
and closing after a refusal, through a real channel over a
L{StringTransport} with a L{Clock}, and over a real TLS layer in memory.
"""

import os
import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from pypid.web.server.channel import (
    CLOSE_TIMEOUT,
    HEADER_TIMEOUT,
    LINGER_IDLE,
    LINGER_MOST,
    ConnectionCounter,
    PypidChannel,
    Refused,
    origin_form,
)
from pypid.web.site import PypidSite
from pypid.web.web_inputs import SiteSettings
from tests.harness.fakes import ControlledLook
from tests.harness.tls import PEER, started_site, tls_connection

#: A request whose Authorization header is one line of 64 KiB.
LONG_HEADER = (b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + b"A" * (64 << 10)
               + b"\r\n\r\n")

#: The answer to a request head over the limit.
TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


class _Hello(Resource):
    """Answers every request with a short body."""

    isLeaf = True

    def render(self, request):
        return b"hello"


class _ChannelMixin:
    """A site on a Clock, and one of its channels connected to a StringTransport."""

    def setUp(self):
        self.clock = Clock()
        self.site = started_site(self, self.clock, _Hello())
        self.channel = self.site.buildProtocol(PEER)
        self.assertIsInstance(self.channel, PypidChannel)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        self.addCleanup(self.channel.connectionLost, None)


class ChannelTests(_ChannelMixin, SynchronousTestCase):
    """Header and body deadlines."""

    def test_trickled_headers(self):
        """Headers sent a byte at a time past the deadline: 408, and the connection closes."""
        request = b"GET / HTTP/1.1\r\nHost: x\r\n"
        for byte in request:
            self.channel.dataReceived(bytes([byte]))
            self.clock.advance(2)
        self.assertIn(b"408 Request Timeout", self.transport.value())
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.site.stats.refusals, {"headers_timeout": 1})

    def test_headers_in_time(self):
        """Headers in time are answered, and no clock is left running but the next request's."""
        self.clock.advance(29)
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", self.transport.value())
        self.assertFalse(self.transport.disconnecting)

    def test_security_headers(self):
        """Every answer carries nosniff and a strict Content-Security-Policy."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = self.transport.value().lower()
        self.assertIn(b"x-content-type-options: nosniff", answer)
        self.assertIn(b"content-security-policy: default-src 'none'", answer)

    def test_keep_alive_deadline(self):
        """On a kept-alive connection, the next request's headers have their own deadline."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.transport.clear()
        self.clock.advance(20)
        self.channel.dataReceived(b"GET / HTTP/1.1\r\n")
        self.clock.advance(9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(2)
        self.assertIn(b"408", self.transport.value())

    def test_slow_body(self):
        """A body arriving slower than the minimum rate gets the connection aborted."""
        self.channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        self.channel.dataReceived(b"x" * 1000)
        self.clock.advance(self.channel.rate_window)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.site.stats.refusals, {"slow_body": 1})

    def test_steady_body(self):
        """A body arriving fast enough is read to its end."""
        self.channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(3):
            self.channel.dataReceived(b"x" * 40000 if _ < 2 else b"x" * 20000)
            self.clock.advance(self.channel.rate_window - 1)
        self.assertIn(b"200 OK", self.transport.value())
        self.assertFalse(self.transport.disconnecting)
        self.assertIsNone(self.channel._rate_timer)

    def test_server_pause_not_counted(self):
        """While the server pauses reading, the client is not blamed for a slow body."""
        self.channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        self.channel.pause_reading()
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(self.channel.rate_window + 20)
        self.assertFalse(self.transport.disconnecting)
        self.channel.resume_reading()
        self.assertEqual(self.transport.producerState, "producing")
        self.clock.advance(self.channel.rate_window)
        self.assertTrue(self.transport.disconnecting, "after resuming, the rate counts again")


class HeadLimitTests(_ChannelMixin, SynchronousTestCase):
    """Request heads over Twisted's limits get an answer, and the connection closes."""

    def assert_refused(self, status, message):
        """The one answer is C{status} with the plain-text C{message}, and the connection closes."""
        answer = self.transport.value()
        self.assertTrue(answer.startswith(status), answer[:100])
        self.assertIn(b"\r\nContent-Type: text/plain; charset=utf-8\r\n", answer)
        self.assertIn(b"\r\nConnection: close\r\n", answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n" + message), answer[-100:])
        self.assertTrue(self.transport.disconnecting)
        # Closed through the channel: it let go of the transport first, as a
        # TLS transport with a producer registered never closes.
        self.assertIsNone(self.transport.producer)

    def test_long_header_line(self):
        """A 64 KiB header line gets 431 (Twisted alone closes with no answer)."""
        self.channel.dataReceived(LONG_HEADER)
        self.assert_refused(TOO_LARGE, b"the request headers are larger than 16 KiB\n")

    def test_header_line_in_pieces(self):
        """A long header line arriving in small pieces is refused as soon as it passes the limit."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nAuthorization: Basic ")
        for _ in range(20):
            self.channel.dataReceived(b"A" * 1024)
        self.assert_refused(TOO_LARGE, b"the request headers are larger than 16 KiB\n")

    def test_many_headers(self):
        """Headers over 16 KiB in total get 431 rather than Twisted's bare 400."""
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        self.assert_refused(TOO_LARGE, b"the request headers are larger than 16 KiB\n")

    def test_malformed_head(self):
        """Twisted's other refusals of a head (a line without a colon) get 400 with a reason, closed through the channel."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nno colon here\r\nHost: x\r\n\r\n")
        self.assert_refused(b"HTTP/1.1 400 ", b"the request's head is malformed\n")
        self.assertEqual(self.site.stats.refusals, {"bad_request": 1})

    def test_tls_on_plain_port(self):
        """
        A TLS handshake sent to a plain-HTTP listener gets 400 at once
        (Twisted waited for a line end until the header timeout).
        """
        self.channel.dataReceived(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 32)
        self.assert_refused(b"HTTP/1.1 400 ",
                            b"this port speaks plain HTTP, not HTTPS: use an http:// URL\n")

    def test_long_request_line(self):
        """A request line over 16 KiB gets 414."""
        self.channel.dataReceived(b"GET /" + b"a" * (20 << 10) + b" HTTP/1.1\r\n\r\n")
        self.assert_refused(b"HTTP/1.1 414 URI Too Long\r\n",
                            b"the request line is longer than 16 KiB\n")
        self.assertEqual(self.site.stats.refusals, {"uri_too_long": 1})

    def test_limit_per_request(self):
        """On a kept-alive connection each request's head is measured on its own."""
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (12 << 10) + b"\r\n\r\n"
        self.channel.dataReceived(head)
        self.channel.dataReceived(head)
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200 OK\r\n"), 2)
        self.assertFalse(self.transport.disconnecting)

    def test_rest_ignored(self):
        """After the refusal, whatever else the client sends is thrown away unanswered."""
        self.channel.dataReceived(LONG_HEADER)
        self.transport.clear()
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        self.clock.advance(self.channel.header_timeout + 1)
        self.assertEqual(self.transport.value(), b"")

    def test_dropped_if_still_open(self):
        """A refused connection still open after the close timeout is aborted."""
        self.channel.dataReceived(LONG_HEADER)
        self.clock.advance(CLOSE_TIMEOUT - 0.1)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)

    def test_header_timeout_closes_through_channel(self):
        """The 408 of the header deadline closes through the channel too."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\n")
        self.clock.advance(self.channel.header_timeout + 1)
        self.assert_refused(b"HTTP/1.1 408 Request Timeout\r\n",
                            b"the request headers came too slowly\n")


class OverTLSTests(SynchronousTestCase):
    """Refusals over a real TLS layer: the answer arrives and the connection closes at once."""

    def setUp(self):
        self.clock = Clock()
        self.site = started_site(self, self.clock, _Hello(), limit=1)

    def test_header_too_large(self):
        """A 64 KiB or 1 MiB header gets 431 and a closed connection, with no time passing."""
        for size in (64 << 10, 1 << 20):
            client, server_io, pump = tls_connection(self.site, self.clock)
            client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                                   + b"A" * size + b"\r\n\r\n")
            pump.flush()
            self.assertTrue(client.received.startswith(TOO_LARGE), client.received[:100])
            self.assertTrue(client.received.endswith(b"larger than 16 KiB\n"))
            self.assertIsNotNone(client.lost, "the client saw the connection close")
            self.assertTrue(server_io.disconnecting)
            self.assertEqual(self.clock.seconds(), 0)
            # The address's one place is free again.
            probe = self.site.buildProtocol(PEER)
            self.assertNotIsInstance(probe, Refused)
            probe.makeConnection(StringTransport())
            probe.connectionLost(None)

    def test_header_timeout(self):
        """The header deadline's 408 arrives and the connection closes."""
        client, server_io, pump = tls_connection(self.site, self.clock)
        client.transport.write(b"GET / HTTP/1.1\r\n")
        pump.flush()
        self.clock.advance(HEADER_TIMEOUT + 1)
        pump.flush()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertIsNotNone(client.lost)

    def test_silent_client_dropped(self):
        """A client that neither reads the answer nor closes is dropped after the close timeout."""
        client, server_io, pump = tls_connection(self.site, self.clock)
        client.transport.write(LONG_HEADER)
        pump.pump()
        self.assertFalse(server_io.disconnecting, "TLS waits for the client's close_notify")
        self.clock.advance(CLOSE_TIMEOUT - 0.1)
        self.assertFalse(server_io.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(server_io.disconnecting)

    def test_normal_request(self):
        """An ordinary request over the same TLS layer is answered and the connection kept."""
        client, server_io, pump = tls_connection(self.site, self.clock)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        pump.flush()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(client.received.endswith(b"hello"))
        self.assertIsNone(client.lost)


class CounterTests(SynchronousTestCase):
    """Connections per client address."""

    def test_limit(self):
        """Past the limit a connection from the same address is refused; others are not."""
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        site = PypidSite(_Hello(), SiteSettings(1 << 20), spool, reactor=Clock(),
                         counter=ConnectionCounter(limit=2))
        one = IPv4Address("TCP", "10.0.0.1", 1)
        first, second = site.buildProtocol(one), site.buildProtocol(one)
        self.assertIsNotNone(first)
        self.assertIsNotNone(second)
        refused = site.buildProtocol(one)
        self.assertIsInstance(refused, Refused, "a protocol that drops it (TLS would wrap None)")
        transport = StringTransport()
        refused.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        self.assertIsNotNone(site.buildProtocol(IPv4Address("TCP", "10.0.0.2", 1)))
        first.makeConnection(StringTransport())
        first.connectionLost(None)
        self.assertIsNotNone(site.buildProtocol(one), "a closed connection frees its place")

    def test_ipv6_by_network(self):
        """
        The addresses of one IPv6 /64 share its limit (one host may hold a
        whole /64), another /64 has its own, and an IPv4 address seen
        through an IPv6 socket is that IPv4 address.
        """
        site = started_site(self, Clock(), _Hello(), limit=2)
        for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"):
            self.assertIsInstance(site.buildProtocol(IPv6Address("TCP", host, 1)), PypidChannel)
        self.assertIsInstance(site.buildProtocol(IPv6Address("TCP", "2001:db8:1:2::abcd", 1)),
                              Refused)
        self.assertIsInstance(site.buildProtocol(IPv6Address("TCP", "2001:db8:1:3::1", 1)),
                              PypidChannel)
        site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        site.buildProtocol(IPv6Address("TCP", "::ffff:10.0.0.1", 1))
        self.assertIsInstance(site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1)), Refused)

    def test_refusals_logged_once_a_minute(self):
        """
        An address's first refusal is logged at once, the rest in one line
        with their count when a minute has passed since; another address
        has its own lines, and one quiet for a minute is logged at once again.
        """
        clock = Clock()
        site = started_site(self, clock, _Hello(), limit=1)
        one, other = IPv4Address("TCP", "10.0.0.7", 1), IPv4Address("TCP", "10.0.0.8", 1)
        site.buildProtocol(one)
        site.buildProtocol(other)
        with capturedLogs() as logged:
            for _ in range(58):
                self.assertIsInstance(site.buildProtocol(one), Refused)
                clock.advance(0.5)
            self.assertIsInstance(site.buildProtocol(other), Refused)
            clock.advance(60 - 29)
        self.assertEqual([formatEvent(event) for event in logged], [
            "Refusing a connection from 10.0.0.7: it holds 1 already (more refusals from it "
            "are logged once a minute)",
            "Refusing a connection from 10.0.0.8: it holds 1 already (more refusals from it "
            "are logged once a minute)",
            "Refused 57 more connections from 10.0.0.7 over the per-address limit of 1 in "
            "the last 60 s"])
        self.assertEqual(site.counter.refused, 59)
        with capturedLogs() as logged:
            clock.advance(120)
            site.buildProtocol(one)
        self.assertEqual([formatEvent(event) for event in logged], [
            "Refusing a connection from 10.0.0.7: it holds 1 already (more refusals from it "
            "are logged once a minute)"])

    def test_ipv6_refusals_logged_by_network(self):
        """The refusals of two addresses of one /64 are logged as that network's."""
        clock = Clock()
        site = started_site(self, clock, _Hello(), limit=1)
        site.buildProtocol(IPv6Address("TCP", "2001:db8:1:2::1", 1))
        with capturedLogs() as logged:
            for host in ("2001:db8:1:2::2", "2001:db8:1:2::3", "2001:db8:1:2::4"):
                site.buildProtocol(IPv6Address("TCP", host, 1))
            clock.advance(60)
        self.assertEqual([formatEvent(event) for event in logged], [
            "Refusing a connection from 2001:db8:1:2::/64: it holds 1 already (more refusals "
            "from it are logged once a minute)",
            "Refused 2 more connections from 2001:db8:1:2::/64 over the per-address limit of 1 "
            "in the last 60 s"])


class OriginFormTests(SynchronousTestCase):
    """Tests for L{origin_form}."""

    def test_forms(self):
        """Origin and absolute forms give the path and query; anything else gives C{/}."""
        self.assertEqual(origin_form(b"/legacy/?a=b"), b"/legacy/?a=b")
        self.assertEqual(origin_form(b"http://host:8080/legacy/?a"), b"/legacy/?a")
        self.assertEqual(origin_form(b"https://host"), b"/")
        self.assertEqual(origin_form(b"https://host?x"), b"/?x")
        self.assertEqual(origin_form(b"*"), b"/")


class RealConnectionTests(TestCase):
    """Over a real TCP connection."""

    async def test_host_asked_once(self):
        """
        The channel asks the transport for the server's address once: each
        request of a kept-alive connection gets the same one. (Twisted's own
        channel sets C{TCP_NODELAY}, which a sequential client needs: checked
        here too, since the channel's C{connectionMade} is pypid's.)
        """
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        site = PypidSite(_Hello(), SiteSettings(1 << 20), spool)
        channels = []
        build = site.buildProtocol

        def keep(addr):
            channel = build(addr)
            channels.append(channel)
            return channel

        site.buildProtocol = keep
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client, answer = await deferToThread(self._get, port.getHost().port)
        self.addCleanup(client.close)
        self.assertIn(b"hello", answer)
        (channel,) = channels
        handle = channel.transport.getHandle()
        self.assertEqual(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        asked = []
        self.patch(channel.transport, "getHost", lambda: asked.append(1))
        self.assertEqual(channel.getHost().port, port.getHost().port)
        self.assertEqual(asked, [])
        channel.transport.loseConnection()

    @staticmethod
    def _get(port):
        """Ask for two answers on one kept-alive connection; the socket, still open, and both."""
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        data = b""
        while data.count(b"hello") < 2:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return s, data


#: A request whose client asks to close the connection after the answer.
CLOSING = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class _LingerMixin:
    """
    A connection the channel closes after its last answer, whose client
    neither closes nor (under TLS) answers the close_notify, is dropped
    once it sent nothing for C{linger_idle} seconds, or C{linger_most}
    after the close began; the subclasses run it on plain HTTP and on TLS.
    """

    def setUp(self):
        self.clock = Clock()
        self.site = started_site(self, self.clock, _Hello())
        self.aborted = []
        self.connect()

    def linger_calls(self):
        """The linger's timers still pending."""
        return [call for call in self.clock.getDelayedCalls()
                if call.func in (self.channel._idle, self.channel._lingered)]

    def assert_dropped_after(self, seconds):
        """Nothing is dropped until just before C{seconds} pass; just after, the connection is."""
        self.clock.advance(seconds - 0.1)
        self.assertEqual(self.aborted, [])
        self.clock.advance(0.2)
        self.assertEqual(self.aborted, [True])

    def test_quiet_client_dropped(self):
        """A client silent for LINGER_IDLE seconds after its answer is dropped."""
        self.ask(CLOSING)
        self.assert_dropped_after(LINGER_IDLE)

    def test_sending_client_bounded(self):
        """A client that keeps sending is read (thrown away), and dropped after LINGER_MOST."""
        self.ask(CLOSING)
        for _ in range(int(LINGER_MOST / (LINGER_IDLE / 2)) - 1):
            self.clock.advance(LINGER_IDLE / 2)
            self.channel.dataReceived(b"GET / HTTP/1.1\r\n")
            self.assertEqual(self.aborted, [])
        self.clock.advance(LINGER_IDLE / 2 + 0.1)
        self.assertEqual(self.aborted, [True])
        self.assertEqual(self.answer().count(b"HTTP/1.1 200 OK"), 1)

    def test_slow_reader_idle_counts_once_answer_left(self):
        """
        While the answer is still in the transport's full buffer (a slow
        reader), the close waits and the idle time does not count; once the
        transport resumes the channel, the close happens and it counts.
        """
        self.channel.pauseProducing()  # (as the transport does on a full buffer)
        self.ask(CLOSING)
        self.clock.advance(LINGER_IDLE * 3)
        self.assertEqual(self.aborted, [])
        self.channel.resumeProducing()
        self.assert_dropped_after(LINGER_IDLE)

    def test_non_reading_client_bounded(self):
        """A client that never reads its answer is dropped LINGER_MOST after the close began."""
        self.channel.pauseProducing()
        self.ask(CLOSING)
        self.assert_dropped_after(LINGER_MOST)

    def test_timers_end_with_the_connection(self):
        """A connection that ends while lingering leaves no timer behind."""
        self.ask(CLOSING)
        self.assertEqual(len(self.linger_calls()), 2)
        self.channel.connectionLost(None)
        self.assertEqual(self.linger_calls(), [])

    def test_kept_alive_not_lingering(self):
        """A kept-alive connection has no linger: it waits for its next request."""
        self.ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.linger_calls(), [])
        self.clock.advance(LINGER_MOST)
        self.assertEqual(self.aborted, [])

    def test_http10_lingers(self):
        """HTTP/1.0 without keep-alive closes after the answer: the linger bounds it too."""
        self.ask(b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"hello", self.answer())
        self.clock.advance(LINGER_IDLE + 0.1)
        self.assertEqual(self.aborted, [True])


class PlainLingerTests(_LingerMixin, SynchronousTestCase):
    """The linger on plain HTTP (a client that does not read, so the TCP close never ends)."""

    def connect(self):
        self.channel = self.site.buildProtocol(PEER)
        self.transport = StringTransport()
        self.transport.abortConnection = lambda: self.aborted.append(True)
        self.channel.makeConnection(self.transport)
        self.addCleanup(self.channel.connectionLost, None)

    def ask(self, request):
        self.channel.dataReceived(request)

    def answer(self):
        return self.transport.value()


class TLSLingerTests(_LingerMixin, SynchronousTestCase):
    """The linger under Twisted's TLS: the client reads its answer and the close_notify, and is silent."""

    def connect(self):
        self.client, self.server_io, self.pump = tls_connection(self.site, self.clock)
        self.channel = self.server_io.protocol.wrappedProtocol
        self.server_io.abortConnection = lambda: self.aborted.append(True)
        self.addCleanup(self.channel.connectionLost, None)

    def ask(self, request):
        self.client.transport.write(request)
        self.pump.pump()
        # (from now on the client answers nothing and never closes)
        client_io = self.pump.clientIO
        client_io.write = client_io.writeSequence = client_io.loseConnection = _nothing
        self.pump.flush()

    def answer(self):
        return self.client.received


def _nothing(*args):
    """Take anything and do nothing."""


class CatchUpTests(_ChannelMixin, SynchronousTestCase):
    """A worker behind the others' changes answers once it caught up."""

    def setUp(self):
        super().setUp()
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        from pypid.state.catch_up import CatchUp
        self.ring = ChangeRing.create(slots=4, slot_size=32)
        self.addCleanup(self.ring.close)
        self.look = ControlledLook()
        self.site.catch_up = CatchUp(Hub(self.ring), [self.look])
        self.ring.announce(b"f x a-1.0.tar.gz")

    def test_held_until_caught_up(self):
        """
        A request that begins while the worker is behind is not answered,
        and the connection not read, until it caught up; then it is, once.
        """
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.channel.dataReceived(b"\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.transport.producerState, "paused")
        self.assertEqual(len(self.look.under_way), 1, "one look for the connection")
        self.look.end()
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(self.transport.value().count(b"HTTP/1.1"), 1)
        self.assertEqual(self.transport.producerState, "producing")

    def test_not_behind(self):
        """A worker that is not behind answers at once, asking nothing more."""
        self.site.catch_up.seen = self.ring.latest()
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(self.look.under_way, [])

    def test_lost_while_held(self):
        """A client gone while its request waited is not answered."""
        self.channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.channel.connectionLost(None)
        self.look.end()
        self.assertEqual(self.transport.value(), b"")
