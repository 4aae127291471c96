"""
Tests for L{pypid.web.server.redirect}: where the C{http-redirect:} listener sends
plain-HTTP requests, and that it answers before any body and never reaches
the index.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.web.server.redirect import HTTPSRedirect, RedirectSite


class RedirectTests(SynchronousTestCase):
    """Tests for L{HTTPSRedirect}: where plain-HTTP requests are sent."""

    def test_host_and_port(self):
        """Without a base URL, the Host header's name on the https port; 443 is left out."""
        redirect = HTTPSRedirect(None, 8443)
        self.assertEqual(redirect.location(b"/simple/x/?a=1", b"Pypi.Example:8080"),
                         "https://pypi.example:8443/simple/x/?a=1")
        self.assertEqual(HTTPSRedirect(None, 443).location(b"/", b"pypi.example"),
                         "https://pypi.example/")
        self.assertEqual(redirect.location(b"/", b"[::1]:8080"), "https://[::1]:8443/")
        self.assertEqual(redirect.location(b"/", b"10.0.0.5"), "https://10.0.0.5:8443/")

    def test_base_url(self):
        """With a base URL, that URL and the path, whatever the Host header says."""
        redirect = HTTPSRedirect("https://pypi.example/python/", 8443)
        self.assertEqual(redirect.location(b"/simple/x/", b"evil.example"),
                         "https://pypi.example/python/simple/x/")
        self.assertEqual(redirect.location(b"/", None), "https://pypi.example/python/")

    def test_bad_host(self):
        """A missing or malformed Host gives no location."""
        redirect = HTTPSRedirect(None, 8443)
        for host in (None, b"", b"evil.example/x", b"a b", b"evil\r\nX: y", b"user@host",
                     b"host:port", b"a..b", b".a", b"a.", b"-a.example", b"a-.example",
                     b"x" * 64 + b".example", b".".join([b"a" * 63] * 4) + b"a",
                     b"[::1::2]", b"[1.2.3.4]", b"[:::]:8080"):
            self.assertIsNone(redirect.location(b"/", host), host)
        self.assertEqual(redirect.location(b"/", b"[0:0::1]"), "https://[::1]:8443/")
        self.assertEqual(redirect.location(b"/", b"a-b.c1.example"), "https://a-b.c1.example:8443/")

    def test_path_quoted(self):
        """Bytes that may not stand in a URL are escaped; escapes already there are kept."""
        redirect = HTTPSRedirect(None, 8443)
        self.assertEqual(redirect.location(b"/a b/\xc3\xa9/%2e%2e/\\x", b"h"),
                         "https://h:8443/a%20b/%C3%A9/%2e%2e/%5Cx")
        self.assertEqual(redirect.location(b"//evil.example/", b"h"),
                         "https://h:8443//evil.example/")

    def test_absolute_form(self):
        """A request target in absolute form keeps only its path and query."""
        redirect = HTTPSRedirect(None, 8443)
        self.assertEqual(redirect.location(b"http://other/simple/?q", b"h"),
                         "https://h:8443/simple/?q")
        self.assertEqual(redirect.location(b"http://other", b"h"), "https://h:8443/")
        self.assertEqual(redirect.location(b"*", b"h"), "https://h:8443/")

    def test_answers(self):
        """301 for GET and HEAD, 308 for the rest, 400 without a Host; credentials are called out."""
        redirect = HTTPSRedirect(None, 8443)
        self.assertEqual(redirect.answer(b"GET", b"/", b"h", False)[:2],
                         (301, "https://h:8443/"))
        self.assertEqual(redirect.answer(b"HEAD", b"/", b"h", False)[0], 301)
        status, _, body = redirect.answer(b"POST", b"/legacy/", b"h", True)
        self.assertEqual(status, 308)
        self.assertIn("credentials sent with this request were not used", body)
        self.assertEqual(redirect.answer(b"GET", b"/", None, False)[:2], (400, None))


#: The redirect the connections below use by default (frozen: safe to share).
_REDIRECT = HTTPSRedirect(None, 8443)


class RedirectSiteTests(SynchronousTestCase):
    """Tests for L{RedirectSite} over a memory transport: it answers, and nothing else."""

    def connect(self, redirect=_REDIRECT):
        """A connection to a redirect site; return its transport."""
        site = RedirectSite(redirect, reactor=MemoryReactorClock())
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4321))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5555))
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, None)
        return protocol, transport

    def test_get(self):
        """A GET gets a 301 to the https URL of the same path, and the connection closes."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /simple/x/?a=1 HTTP/1.1\r\nHost: pypi.example:8080\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 301 Moved Permanently")
        self.assertIn(b"Location: https://pypi.example:8443/simple/x/?a=1", lines)
        self.assertIn(b"Connection: close", lines)
        self.assertIn(b"https://pypi.example:8443/simple/x/?a=1", body)
        self.assertTrue(transport.disconnecting)

    def test_upload_with_credentials(self):
        """An upload with credentials gets a 308 before its body, is logged without secrets, and goes nowhere."""
        protocol, transport = self.connect()
        body = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--b--\r\n"
        request = (b"POST /legacy/ HTTP/1.1\r\nHost: pypi.example\r\n"
                   b"Authorization: Basic dXBsb2FkZXI6czNjcmV0\r\nExpect: 100-continue\r\n"
                   b"Content-Type: multipart/form-data; boundary=b\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body))
        with capturedLogs() as events:
            protocol.dataReceived(request)
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 308 Permanent Redirect\r\n"))
            self.assertFalse(transport.disconnecting)
            protocol.dataReceived(body)
        answer = transport.value()
        self.assertEqual(answer.count(b"HTTP/1.1"), 1)
        self.assertNotIn(b"100 Continue", answer)
        self.assertIn(b"Location: https://pypi.example:8443/legacy/\r\n", answer)
        self.assertIn(b"were not used", answer)
        self.assertTrue(transport.disconnecting)
        lines = [formatEvent(e) for e in events]
        self.assertEqual(len(lines), 1)
        self.assertIn("Refused credentials sent over plain HTTP by 10.1.2.3", lines[0])
        self.assertNotIn("dXBsb2FkZXI6czNjcmV0", lines[0])
        self.assertNotIn("s3cret", lines[0])

    def test_large_body_closed(self):
        """A body declared over the discard limit is answered and the connection closed at once."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                              % (1 << 30))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 308 "))
        self.assertTrue(transport.disconnecting)

    def test_head(self):
        """A HEAD gets the headers only."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(transport.value().endswith(b"Connection: close\r\n\r\n"))

    def test_no_host(self):
        """An HTTP/1.0 request without a Host gets 400 and no Location."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertNotIn(b"Location", transport.value())


# -- configuration -----------------------------------------------------------------------------
