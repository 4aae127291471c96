"""
Tests for L{pypid.core.dists.details}: what the pages for people keep of a file.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.details import Details, describe
from pypid.core.dists.metadata import parse_metadata
from pypid.core.dists.readme import MARKDOWN, PLAIN, RST, render_description

METADATA = """Metadata-Version: 2.1
Name: Holy.Grail
Version: 1.0
Summary: Finds the grail
License: MIT
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Requires-Dist: attrs>=22
Requires-Dist: rich; extra == "fancy"
Provides-Extra: fancy
Requires-Python: >=3.9
Project-URL: Source, https://code.example/grail
Project-URL: Docs, https://docs.example/grail
Description-Content-Type: text/markdown

# Holy Grail

```python
import grail
```

<script>alert(1)</script>
[bad](javascript:alert(1))
"""


class DescribeTests(SynchronousTestCase):
    """L{describe} renders the description once and keeps the fields the pages show."""

    def test_fields(self):
        """The fields the pages show are kept, lists as lists, URLs as pairs by label."""
        details = describe(parse_metadata(METADATA.encode()), render_description)
        self.assertEqual(details.get("summary"), "Finds the grail")
        self.assertEqual(details.get("license"), "MIT")
        self.assertEqual(details.get("requires_python"), ">=3.9")
        self.assertEqual(details.get("classifiers"),
                         ["Programming Language :: Python :: 3",
                          "License :: OSI Approved :: MIT License"])
        self.assertEqual(details.get("requires_dist"), ["attrs>=22", 'rich; extra == "fancy"'])
        self.assertEqual(details.get("project_urls"),
                         {"Source": "https://code.example/grail",
                          "Docs": "https://docs.example/grail"})
        self.assertNotIn("description", details.info)

    def test_rendered_and_sanitized(self):
        """The Markdown is rendered, and its script and javascript: link are inert."""
        details = describe(parse_metadata(METADATA.encode()), render_description)
        self.assertEqual(details.renderer, MARKDOWN)
        self.assertFalse(details.fell_back)
        self.assertIn(">Holy Grail<", details.html)
        self.assertIn("<h1", details.html)
        self.assertIn("<pre", details.html)
        self.assertNotIn("<script", details.html)
        self.assertNotIn("javascript:", details.html)

    def test_rst_fallback(self):
        """Invalid reStructuredText is kept as plain text, and says so."""
        text = "Metadata-Version: 2.1\nName: a\nVersion: 1\n\n.. raw:: html\n\n   <b>x</b>\n"
        details = describe(parse_metadata(text.encode()), render_description)
        self.assertEqual((details.renderer, details.fell_back), (PLAIN, True))
        self.assertIn("&lt;b&gt;", details.html)

    def test_rst(self):
        """A description without a content type is reStructuredText."""
        text = "Metadata-Version: 2.1\nName: a\nVersion: 1\n\nTitle\n=====\n\nText.\n"
        details = describe(parse_metadata(text.encode()), render_description)
        self.assertEqual(details.renderer, RST)
        self.assertIn("Title", details.html)

    def test_long_license_cut(self):
        """A whole licence text in C{License} is cut for the page."""
        text = "Metadata-Version: 2.1\nName: a\nVersion: 1\nLicense: " + "x" * 10000 + "\n"
        details = describe(parse_metadata(text.encode()), render_description)
        self.assertEqual(len(details.get("license")), 4097)

    def test_round_trip(self):
        """The sidecar's bytes give back the same details."""
        details = describe(parse_metadata(METADATA.encode()), render_description)
        self.assertEqual(Details.from_bytes(details.to_bytes()), details)

    def test_bad_bytes(self):
        """Bytes that are not a sidecar raise L{ValueError}."""
        for data in (b"", b"\xff", b"[]", b'{"info": 3}', b'{"info": {}, "html": 3}'):
            self.assertRaises(ValueError, Details.from_bytes, data)


class ReadBackTests(SynchronousTestCase):
    """A sidecar is read with care: it comes from storage."""

    def test_wrong_shapes_dropped(self):
        """A field of the wrong shape is dropped, not shown; unknown fields are ignored."""
        details = Details.from_bytes(
            b'{"info": {"requires_dist": 5, "classifiers": ["a", 3], "summary": ["x"],'
            b' "project_urls": {"a": 1}, "license": "MIT", "evil": "x"}, "html": ""}')
        self.assertEqual(details.get("license"), "MIT")
        for field in ("requires_dist", "classifiers", "summary", "project_urls", "evil"):
            self.assertIsNone(details.get(field), field)
