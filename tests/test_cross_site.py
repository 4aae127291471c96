"""
Tests for L{pypid.core.cross_site}: which requests a browser sent for
another site (issue 31), and their refusal by the site before the body.
"""

import os

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.cross_site import cross_site_refusal
from pypid.web.site import PypidSite
from tests.test_site import AUTH, FORM, MULTIPART, _Recorder


class RefusalTests(SynchronousTestCase):
    """Tests for L{cross_site_refusal}."""

    def refused(self, method=b"POST", fetch=None, origin=None, host=b"pypi.example:8080",
                base_url=None):
        return cross_site_refusal(method, fetch, origin, host, base_url)

    def test_clients(self):
        """twine, uv and pip send neither header: taken."""
        for method in (b"POST", b"PUT", b"DELETE", b"PATCH"):
            self.assertIsNone(self.refused(method))

    def test_safe_methods(self):
        """GET, HEAD and OPTIONS change nothing: taken from anywhere."""
        for method in (b"GET", b"HEAD", b"OPTIONS"):
            self.assertIsNone(self.refused(method, b"cross-site", b"https://evil.example"))

    def test_fetch_metadata(self):
        """Sec-Fetch-Site: the server's own pages and the address bar only."""
        for value in (b"same-origin", b"none", b"Same-Origin "):
            self.assertIsNone(self.refused(fetch=value, origin=b"https://evil.example"), value)
        for value in (b"cross-site", b"same-site", b"", b"nonsense"):
            reason = self.refused(fetch=value, origin=b"http://pypi.example:8080")
            self.assertTrue(reason.startswith("Sec-Fetch-Site: "), value)

    def test_origin(self):
        """Without Fetch Metadata, the Origin must be this server's, as Host or base_url name it."""
        own = [(b"http://pypi.example:8080", b"pypi.example:8080", None),
               (b"http://PYPI.example:8080", b"pypi.example:8080", None),
               (b"https://pypi.example", b"pypi.example", None),
               (b"http://pypi.example", b"pypi.example:80", None),
               (b"http://[::1]:8080", b"[::1]:8080", None),
               (b"https://pypi.example", b"127.0.0.1:8080", "https://pypi.example/"),
               (b"https://pypi.example:8443", b"10.0.0.1", "https://pypi.example:8443/pypi/")]
        for origin, host, base_url in own:
            self.assertIsNone(self.refused(origin=origin, host=host, base_url=base_url), origin)
        foreign = [(b"https://evil.example", b"pypi.example", None),
                   (b"http://pypi.example:8081", b"pypi.example:8080", None),
                   (b"http://pypi.example.evil.example", b"pypi.example", None),
                   (b"null", b"pypi.example", None),
                   (b"", b"pypi.example", None),
                   (b"file://", b"pypi.example", None),
                   (b"http://pypi.example:99999", b"pypi.example", None),
                   (b"\xff", b"pypi.example", None),
                   (b"https://evil.example", None, None),
                   (b"https://evil.example", b"pypi.example", "https://pypi.example/")]
        for origin, host, base_url in foreign:
            reason = self.refused(origin=origin, host=host, base_url=base_url)
            self.assertTrue(reason.startswith("Origin: "), origin)


class SiteRefusalTests(SynchronousTestCase):
    """The site answers a cross-site change 403 before reading its body."""

    def setUp(self):
        self.resource = _Recorder()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.site = PypidSite(self.resource, 1 << 20, self.spool, reactor=Clock())
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)

    def send(self, data):
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        return transport

    def test_upload_refused(self):
        """A foreign upload form: 403 naming the header, nothing spooled, nothing rendered."""
        transport = self.send(
            b"POST /legacy/ HTTP/1.1\r\nHost: pypi.example\r\nOrigin: https://evil.example\r\n"
            + AUTH + MULTIPART + b"Content-Length: %d\r\n\r\n" % len(FORM) + FORM)
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Origin: a browser sent"), answer)
        self.assertEqual(os.listdir(self.spool), [])
        self.assertEqual(self.resource.seen, [])

    def test_small_form_refused(self):
        """A foreign yank or delete form: 403, never rendered."""
        body = b"reason=gone"
        transport = self.send(
            b"POST /api/yank HTTP/1.1\r\nHost: pypi.example\r\nSec-Fetch-Site: cross-site\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n" + AUTH +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 403 Sec-Fetch-Site: "))
        self.assertEqual(self.resource.seen, [])

    def test_own_and_clients_taken(self):
        """The server's own pages, and clients without either header, reach the resource."""
        for extra in (b"", b"Origin: http://pypi.example\r\n", b"Sec-Fetch-Site: same-origin\r\n"):
            transport = self.send(
                b"POST /api/yank HTTP/1.1\r\nHost: pypi.example\r\n" + extra +
                b"Content-Length: 0\r\n\r\n")
            self.assertIn(b"rendered", transport.value(), extra)
        self.assertEqual(len(self.resource.seen), 3)
        transport = self.send(b"GET / HTTP/1.1\r\nHost: pypi.example\r\n"
                              b"Sec-Fetch-Site: cross-site\r\n\r\n")
        self.assertIn(b"rendered", transport.value())
