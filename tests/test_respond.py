"""
Tests for L{pypid.web.respond}: conditional requests and byte ranges, the
pure parts of writing answers.
"""

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from pypid.errors import BadRequest, Unauthorized
from pypid.index import Page
from pypid.web.respond import (
    PAGE_CACHE_CONTROL,
    etag_matches,
    parse_range,
    send_error,
    send_page,
    send_text,
)

TAG = b'"abc123"'


class EtagMatchesTests(SynchronousTestCase):
    """Tests for L{etag_matches}."""

    def test_exact(self):
        """The same tag matches."""
        self.assertTrue(etag_matches([TAG], TAG))

    def test_other(self):
        """A different tag, or the tag without its quotes, does not match."""
        self.assertFalse(etag_matches([b'"abc124"'], TAG))
        self.assertFalse(etag_matches([b"abc123"], TAG))
        self.assertFalse(etag_matches([b""], TAG))
        self.assertFalse(etag_matches([], TAG))

    def test_list(self):
        """Any tag of a comma-separated list matches, spaces around it ignored."""
        self.assertTrue(etag_matches([b'"x", "y",' + TAG], TAG))
        self.assertTrue(etag_matches([b' "x" ,  ' + TAG + b"  "], TAG))
        self.assertFalse(etag_matches([b'"x", "y"'], TAG))

    def test_several_headers(self):
        """A tag in any of several If-None-Match headers matches."""
        self.assertTrue(etag_matches([b'"x"', TAG], TAG))

    def test_weak(self):
        """A weak tag matches its strong form (weak comparison, as RFC 9110 asks)."""
        self.assertTrue(etag_matches([b"W/" + TAG], TAG))
        self.assertTrue(etag_matches([b'"x", w/' + TAG], TAG))

    def test_star(self):
        """C{*} matches any tag."""
        self.assertTrue(etag_matches([b"*"], TAG))


class ParseRangeTests(SynchronousTestCase):
    """Tests for L{parse_range}, against a 100-byte file unless said otherwise."""

    def test_first_last(self):
        """C{a-b} is the bytes from a to b inclusive."""
        self.assertEqual(parse_range(b"bytes=0-9", 100), (0, 9))
        self.assertEqual(parse_range(b"bytes=99-99", 100), (99, 99))

    def test_open_end(self):
        """C{a-} runs to the end of the file."""
        self.assertEqual(parse_range(b"bytes=5-", 100), (5, 99))

    def test_suffix(self):
        """C{-n} is the last n bytes, or the whole file when n is larger."""
        self.assertEqual(parse_range(b"bytes=-5", 100), (95, 99))
        self.assertEqual(parse_range(b"bytes=-500", 100), (0, 99))

    def test_empty_suffix(self):
        """C{-0} asks for nothing and cannot be satisfied."""
        self.assertEqual(parse_range(b"bytes=-0", 100), "unsatisfiable")

    def test_end_beyond_size(self):
        """An end past the file is cut to its last byte."""
        self.assertEqual(parse_range(b"bytes=50-1000", 100), (50, 99))

    def test_start_beyond_size(self):
        """A start at or past the end of the file cannot be satisfied."""
        self.assertEqual(parse_range(b"bytes=100-150", 100), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=200-300", 100), "unsatisfiable")

    def test_open_start_beyond_size(self):
        """
        An open range starting at or past the end (a resumed download that has
        every byte already) cannot be satisfied: 416, not the whole file again.
        """
        self.assertEqual(parse_range(b"bytes=100-", 100), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=150-", 100), "unsatisfiable")

    def test_empty_file(self):
        """No range of an empty file can be satisfied."""
        self.assertEqual(parse_range(b"bytes=-5", 0), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=0-5", 0), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=0-", 0), "unsatisfiable")

    def test_end_before_start(self):
        """A range that ends before it starts is invalid, so the whole file is sent."""
        self.assertIsNone(parse_range(b"bytes=9-5", 100))

    def test_several_ranges(self):
        """Several ranges are not served: the whole file is sent instead."""
        self.assertIsNone(parse_range(b"bytes=0-1,5-6", 100))
        self.assertIsNone(parse_range(b"bytes=0-1, -5", 100))

    def test_garbage(self):
        """Anything else is ignored."""
        for header in (b"", b"bytes", b"bytes=", b"bytes=-", b"bytes=a-b", b"items=0-5",
                       b"bytes=0x10-", b"bytes=1.5-2", b"0-5", b"bytes=--5"):
            self.assertIsNone(parse_range(header, 100), header)

    def test_spelling(self):
        """The unit is case-insensitive and spaces around the parts are tolerated."""
        self.assertEqual(parse_range(b"BYTES = 0 - 9 ", 100), (0, 9))


class SendTests(SynchronousTestCase):
    """Tests for L{send_page}, L{send_text} and L{send_error}."""

    def page(self):
        """A page large enough to be compressed."""
        return Page.of(b"<p>" + b"x" * 1000 + b"</p>", b"text/html; charset=utf-8")

    def header(self, request, name):
        """The single value of a response header."""
        values = request.responseHeaders.getRawHeaders(name)
        return values[0] if values else None

    def test_page(self):
        """A page is sent with its type, ETag and revalidation headers."""
        request = DummyRequest([b""])
        page = self.page()
        self.assertEqual(send_page(request, page), page.body)
        self.assertEqual(self.header(request, b"etag"), page.etag)
        self.assertEqual(self.header(request, b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(self.header(request, b"cache-control"), PAGE_CACHE_CONTROL)
        self.assertEqual(self.header(request, b"vary"), b"Accept, Accept-Encoding")
        self.assertIsNone(self.header(request, b"content-encoding"))

    def test_page_gzip(self):
        """A client that takes gzip gets the compressed bytes under their own ETag."""
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"accept-encoding", [b"gzip, deflate"])
        page = self.page()
        self.assertEqual(send_page(request, page), page.gzipped)
        self.assertEqual(self.header(request, b"content-encoding"), b"gzip")
        self.assertEqual(self.header(request, b"etag"), page.gzip_etag)

    def test_page_not_modified(self):
        """A matching If-None-Match gets a 304 with no body."""
        request = DummyRequest([b""])
        page = self.page()
        request.requestHeaders.setRawHeaders(b"if-none-match", [page.etag])
        self.assertEqual(send_page(request, page), b"")
        self.assertEqual(request.responseCode, 304)
        self.assertEqual(self.header(request, b"etag"), page.etag)

    def test_text(self):
        """An error text goes in the body and, cleaned, in the reason phrase."""
        request = DummyRequest([b""])
        body = send_text(request, 400, "name: bad \N{SNOWMAN}\r\nInjected: yes")
        self.assertEqual(body, "name: bad \N{SNOWMAN}\r\nInjected: yes\n".encode("utf-8"))
        self.assertEqual(request.responseCode, 400)
        self.assertEqual(request.responseMessage, b"name: bad ???Injected: yes")
        self.assertEqual(self.header(request, b"cache-control"), b"no-store")

    def test_error_unauthorized(self):
        """An L{Unauthorized} error carries the Basic challenge."""
        request = DummyRequest([b""])
        send_error(request, Unauthorized("who are you"))
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(self.header(request, b"www-authenticate"), b'Basic realm="pypid"')

    def test_error_headers(self):
        """An error's own headers are sent."""
        request = DummyRequest([b""])
        send_error(request, BadRequest("no", [(b"retry-after", b"30")]))
        self.assertEqual(self.header(request, b"retry-after"), b"30")
