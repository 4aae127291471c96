"""
Tests for L{pypid.web.channel}: the deadlines on request headers and bodies,
and the limit on connections per client address, through a real channel
over a L{StringTransport} with a L{Clock}.
"""

import os

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.web.channel import ConnectionCounter, PypidChannel, Refused, origin_form
from pypid.web.site import PypidSite


class _Hello(Resource):
    """Answers every request with a short body."""

    isLeaf = True

    def render(self, request):
        return b"hello"


class ChannelTests(SynchronousTestCase):
    """Header and body deadlines."""

    def setUp(self):
        self.clock = Clock()
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        self.site = PypidSite(_Hello(), 1 << 20, spool, reactor=self.clock)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)
        self.channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        self.assertIsInstance(self.channel, PypidChannel)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        self.addCleanup(self.channel.connectionLost, None)

    def test_trickled_headers(self):
        """Headers sent a byte at a time past the deadline: 408, and the connection closes."""
        request = b"GET / HTTP/1.1\r\nHost: x\r\n"
        for byte in request:
            self.channel.dataReceived(bytes([byte]))
            self.clock.advance(2)
        self.assertIn(b"408 Request Timeout", self.transport.value())
        self.assertTrue(self.transport.disconnecting)

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


class CounterTests(SynchronousTestCase):
    """Connections per client address."""

    def test_limit(self):
        """Past the limit a connection from the same address is refused; others are not."""
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        site = PypidSite(_Hello(), 1 << 20, spool, reactor=Clock(),
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


class OriginFormTests(SynchronousTestCase):
    """Tests for L{origin_form}."""

    def test_forms(self):
        """Origin and absolute forms give the path and query; anything else gives C{/}."""
        self.assertEqual(origin_form(b"/legacy/?a=b"), b"/legacy/?a=b")
        self.assertEqual(origin_form(b"http://host:8080/legacy/?a"), b"/legacy/?a")
        self.assertEqual(origin_form(b"https://host"), b"/")
        self.assertEqual(origin_form(b"https://host?x"), b"/?x")
        self.assertEqual(origin_form(b"*"), b"/")
