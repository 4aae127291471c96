"""
Tests for L{pypid.core.access.cross_site}: which requests a browser sent for
another site (issue 31). The site's refusal of them, before the body, is
tested in L{tests.unit.web.test_site}.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.access.cross_site import cross_site_refusal


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
