"""
Tests for L{pypid.core.formats.negotiate}.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.formats import negotiate
from pypid.core.formats.negotiate import accepts_gzip, choose
from pypid.core.indexes import render

PIP = (
    b"application/vnd.pypi.simple.v1+json, "
    b"application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
UV = (
    b"application/vnd.pypi.simple.v1+json, "
    b"application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
POETRY = b"application/vnd.pypi.simple.v1+json, */*;q=0.1"
# pdm (unearth) sends the same string as pip.
PDM = PIP
BROWSER = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CURL = b"*/*"

# (Accept, expected kind) pairs, checked one by one.
ACCEPT_TABLE = [
    # the real clients
    (PIP, "json"),
    (UV, "json"),
    (POETRY, "json"),
    (PDM, "json"),
    (BROWSER, "html"),
    (CURL, "html"),
    # defaults
    (None, "html"),
    (b"", "html"),
    (b"   ", "html"),
    (b"text/html", "html"),
    (b"application/vnd.pypi.simple.v1+html", "html"),
    (b"application/vnd.pypi.simple.v1+json", "json"),
    # latest aliases
    (b"application/vnd.pypi.simple.latest+json", "json"),
    (b"application/vnd.pypi.simple.latest+html", "html"),
    (b"application/vnd.pypi.simple.latest+json, text/html;q=0.5", "json"),
    # q ordering, whatever the order of entries
    (b"text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6", "json"),
    (b"application/vnd.pypi.simple.v1+json;q=0.6, text/html;q=0.5", "json"),
    (b"application/vnd.pypi.simple.v1+json;q=0.4, text/html;q=0.5", "html"),
    (b"application/vnd.pypi.simple.v1+json;q=0.001, text/html;q=0", "json"),
    # ties go to HTML, also when the JSON match is more specific
    (b"application/vnd.pypi.simple.v1+json, text/html", "html"),
    (b"application/vnd.pypi.simple.v1+json, */*", "html"),
    (b"application/vnd.pypi.simple.v1+json;q=0.5, application/*;q=0.5", "html"),
    (b"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html", "html"),
    # the most specific range decides, and q=0 refuses
    (b"application/vnd.pypi.simple.v1+json;q=0, */*", "html"),
    (b"text/html;q=0, application/vnd.pypi.simple.v1+html;q=0, */*", "json"),
    (b"*/*;q=0.1, application/vnd.pypi.simple.v1+json", "json"),
    (b"application/*", "html"),
    (b"application/*;q=0.5, text/*;q=0.4", "html"),
    (b"text/*;q=0.4, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    # whitespace, case and parameters
    (b"  Application/VND.PyPI.Simple.V1+JSON  ;  Q=1.0 , TEXT/HTML ; q=0.5 ", "json"),
    (b"application/vnd.pypi.simple.v1+json; charset=utf-8", "json"),
    (b"text/html;level=1;q=0.2, application/vnd.pypi.simple.v1+json;q=0.1", "html"),
    # 406: nothing served is acceptable
    (b"application/json", None),
    (b"image/png, application/xml", None),
    (b"text/html;q=0", None),
    (b"*/*;q=0", None),
    (b"text/html;q=0, application/*;q=0", None),
    (b"application/json;q=0.9, text/plain;q=0.8", None),
    # uv publish's Accept is for uploads, but it still negotiates to HTML
    (b"application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7", "html"),
    # malformed entries are ignored
    (b"garbage, application/vnd.pypi.simple.v1+json", "json"),
    (b",,, application/vnd.pypi.simple.v1+json,,", "json"),
    (b"*/html, application/vnd.pypi.simple.v1+json", "json"),
    (b"text/, /html, text, application/vnd.pypi.simple.v1+json", "json"),
    (b"text/html;q=bogus, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q=2, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q=-1, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q=, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q=.5, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q=0.5x, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    (b"text/html;q, application/vnd.pypi.simple.v1+json;q=0.5", "json"),
    # a header with no usable entry counts as missing
    (b"garbage", "html"),
    (b"text/html;q=bogus", "html"),
    (b"\xff\xfe\x00", "html"),
]

# (format, Accept, expected kind)
FORMAT_TABLE = [
    (b"application/vnd.pypi.simple.v1+json", None, "json"),
    (b"application/vnd.pypi.simple.v1+json", b"text/html", "json"),
    (b"application/vnd.pypi.simple.latest+json", b"text/html", "json"),
    (b"text/html", PIP, "html"),
    (b"application/vnd.pypi.simple.v1+html", PIP, "html"),
    (b"application/vnd.pypi.simple.latest+html", PIP, "html"),
    (b" Application/Vnd.PyPI.Simple.V1+Json ", None, "json"),
    (b"application/json", PIP, None),
    (b"json", None, None),
    (b"*/*", None, None),
    (b"application/vnd.pypi.simple.v1+json;q=0.5", None, None),
    (b"", PIP, "json"),
    (b"", None, "html"),
]

# (Accept-Encoding, expected)
GZIP_TABLE = [
    (None, False),
    (b"", False),
    (b"gzip", True),
    (b"gzip, deflate, zstd", True),
    (b"gzip, deflate, br", True),
    (b"GZIP", True),
    (b"x-gzip", True),
    (b"deflate, gzip;q=1.0, *;q=0.5", True),
    (b"gzip;q=0", False),
    (b"gzip;q=0.000", False),
    (b"gzip;q=0, *", False),
    (b"*", True),
    (b"*;q=0", False),
    (b"br, *;q=0.1", True),
    (b"identity", False),
    (b"identity;q=1, *;q=0", False),
    (b"deflate, zstd", False),
    (b"gzip;q=bogus", False),
    (b"gzip;q=bogus, *", True),
    (b" gzip ; q=0.5 ", True),
    (b",,,", False),
]


class ChooseTests(SynchronousTestCase):
    """
    Tests for L{choose}.
    """

    def setUp(self):
        negotiate._choose_memo.clear()

    def test_accept_table(self):
        """Every header in the table, real clients' included, chooses the expected kind."""
        for accept, expected in ACCEPT_TABLE:
            self.assertEqual(
                (accept, choose(accept)), (accept, expected)
            )

    def test_accept_table_cached(self):
        """A second lookup of each header, served from the memo, gives the same answer."""
        first = [choose(accept) for accept, _ in ACCEPT_TABLE]
        second = [choose(accept) for accept, _ in ACCEPT_TABLE]
        self.assertEqual(first, second)
        self.assertEqual(second, [expected for _, expected in ACCEPT_TABLE])

    def test_format_table(self):
        """A non-empty C{?format=} names one media type and wins over C{Accept}."""
        for format_param, accept, expected in FORMAT_TABLE:
            self.assertEqual(
                (format_param, accept, choose(accept, format_param)),
                (format_param, accept, expected),
            )

    def test_format_does_not_poison_memo(self):
        """A C{?format=} answer is not remembered as the answer for its C{Accept}."""
        choose(PIP, b"text/html")
        self.assertEqual(choose(PIP), "json")

    def test_memo_bounded(self):
        """The memo never holds more than L{negotiate.MEMO_LIMIT} entries, however many distinct headers arrive."""
        for i in range(negotiate.MEMO_LIMIT * 3 + 7):
            choose(b"text/x-%d" % (i,))
        self.assertLessEqual(len(negotiate._choose_memo), negotiate.MEMO_LIMIT)

    def test_memo_survives_clear(self):
        """Answers stay correct after the memo has been emptied."""
        for i in range(negotiate.MEMO_LIMIT + 1):
            choose(b"text/x-%d" % (i,))
        self.assertEqual(choose(PIP), "json")
        self.assertEqual(choose(b"text/x-0"), None)

    def test_memo_hit(self):
        """A repeated header is answered from the memo."""
        choose(UV)
        negotiate._choose_memo[UV] = "sentinel"
        self.assertEqual(choose(UV), "sentinel")

    def test_content_types(self):
        """
        The Content-Types the pages are sent with (L{render.CONTENT_TYPES})
        are the exact strings clients compare, for the kinds L{choose} picks.
        """
        self.assertEqual(render.CONTENT_TYPES[choose(b"text/html")], b"text/html; charset=utf-8")
        self.assertEqual(render.CONTENT_TYPES[choose(PIP)], b"application/vnd.pypi.simple.v1+json")


class AcceptsGzipTests(SynchronousTestCase):
    """
    Tests for L{accepts_gzip}.
    """

    def setUp(self):
        negotiate._gzip_memo.clear()

    def test_table(self):
        """Every C{Accept-Encoding} in the table gives the expected answer, twice."""
        for _ in range(2):
            for header, expected in GZIP_TABLE:
                self.assertEqual((header, accepts_gzip(header)), (header, expected))

    def test_memo_bounded(self):
        """The memo never holds more than L{negotiate.MEMO_LIMIT} entries."""
        for i in range(negotiate.MEMO_LIMIT * 2 + 3):
            accepts_gzip(b"x-%d" % (i,))
        self.assertLessEqual(len(negotiate._gzip_memo), negotiate.MEMO_LIMIT)
