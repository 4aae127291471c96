"""
Tests for L{pypid.core.dists.readme}: descriptions rendered as the public index
renders them, and hostile ones made inert.
"""

import datetime
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readme_renderer import markdown
from readme_renderer.rst import render
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.readme import (
    _PROSE_MAX,
    MARKDOWN,
    MAX_HTML,
    MAX_TEXT,
    PLAIN,
    RST,
    RenderedDescription,
    _own_ids,
    _render_rst,
    parse_content_type,
    render_description,
    render_without_renderer,
)

README = """# Holy Grail

Install it:

```python
import grail
grail.seek()
```

See [the docs](https://docs.example/grail/).
"""

HOSTILE = [
    "<script>alert('x')</script>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<img src="x" onerror="alert(1)">',
    '<div onclick="alert(1)" style="position:fixed;top:0;left:0;width:100%;height:100%">cover</div>',
    "<style>body { display: none }</style>",
    '<iframe src="https://evil.example/"></iframe>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    '<svg><script>alert(1)</script></svg>',
    '<form action="https://evil.example/"><input name="password"></form>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<meta http-equiv="refresh" content="0; url=https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
]


class ContentTypeTests(SynchronousTestCase):
    """Tests for L{parse_content_type}."""

    def test_types(self):
        """Each content type picks its renderer; parameters and case are read."""
        self.assertEqual(parse_content_type(None), (RST, None))
        self.assertEqual(parse_content_type(""), (RST, None))
        self.assertEqual(parse_content_type("text/markdown"), (MARKDOWN, "GFM"))
        self.assertEqual(parse_content_type("Text/Markdown; charset=UTF-8; variant=CommonMark"),
                         (MARKDOWN, "CommonMark"))
        self.assertEqual(parse_content_type('text/markdown; variant="gfm"'), (MARKDOWN, "GFM"))
        self.assertEqual(parse_content_type("text/markdown; variant=unknown"), (MARKDOWN, "GFM"))
        self.assertEqual(parse_content_type("text/x-rst; charset=UTF-8"), (RST, None))
        self.assertEqual(parse_content_type("text/plain"), (PLAIN, None))
        self.assertEqual(parse_content_type("application/pdf"), (PLAIN, None))


class RenderTests(SynchronousTestCase):
    """Tests for L{render_description}."""

    def test_markdown(self):
        """Markdown gives a heading, a highlighted code block and a nofollow link."""
        rendered = render_description(README, "text/markdown")
        self.assertEqual(rendered.renderer, MARKDOWN)
        self.assertFalse(rendered.fell_back)
        self.assertIn("<h1", rendered.html)
        self.assertIn(">Holy Grail<", rendered.html)
        self.assertIn("<pre", rendered.html)
        self.assertIn("grail", rendered.html)
        self.assertIn('href="https://docs.example/grail/"', rendered.html)
        self.assertIn('rel="nofollow"', rendered.html)

    def test_rst(self):
        """reStructuredText, also when no content type is given."""
        text = "Holy Grail\n==========\n\nSee `the docs <https://docs.example/>`_.\n"
        for content_type in ("text/x-rst", None):
            rendered = render_description(text, content_type)
            self.assertEqual(rendered.renderer, RST)
            self.assertIn("Holy Grail", rendered.html)
            self.assertIn('href="https://docs.example/"', rendered.html)

    def test_invalid_rst_falls_back(self):
        """A description that does not render as reStructuredText is shown as plain text."""
        rendered = render_description("`unclosed <b>bold</b>", "text/x-rst")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertIn("&lt;b&gt;bold&lt;/b&gt;", rendered.html)
        self.assertTrue(rendered.html.startswith("<pre"))

    def test_rst_raw_directive(self):
        """The raw directive is refused by the renderer: plain text, escaped."""
        text = "Title\n=====\n\n.. raw:: html\n\n   <script>alert(1)</script>\n"
        rendered = render_description(text, "text/x-rst")
        self.assertEqual(rendered.renderer, PLAIN)
        self.assertNotIn("<script", rendered.html)

    def test_plain(self):
        """Plain text is escaped in a <pre>, whatever it holds."""
        rendered = render_description("a < b & <script>x</script>\n  indented", "text/plain")
        self.assertEqual(rendered, RenderedDescription(
            '<pre class="description-text">a &lt; b &amp; &lt;script&gt;x&lt;/script&gt;\n'
            '  indented</pre>', PLAIN))

    def test_empty(self):
        """No description renders to nothing."""
        self.assertEqual(render_description(None), RenderedDescription("", PLAIN))
        self.assertEqual(render_description("  \n", "text/markdown"), RenderedDescription("", PLAIN))

    def test_hostile_markdown_is_inert(self):
        """Scripts, event attributes, javascript: and data: links, styles, frames and forms are removed."""
        for snippet in HOSTILE:
            rendered = render_description(f"# Title\n\n{snippet}\n", "text/markdown").html.lower()
            for bad in ("<script", "javascript:", "onerror", "onclick", "<style", "style=",
                        "<iframe", "data:text", "<form", "name=", "<object", "<embed",
                        "<meta", "<link"):
                self.assertNotIn(bad, rendered, (snippet, rendered))
            # (GFM task lists keep a disabled checkbox, and nothing else of a form)
            self.assertNotRegex(rendered, r"<input(?![^>]*disabled)")

    def test_hostile_rst_is_inert(self):
        """The same in reStructuredText links and substitutions."""
        text = ("Title\n=====\n\n`click <javascript:alert(1)>`_\n\n"
                ".. image:: javascript:alert(1)\n\n"
                "`data <data:text/html;base64,PHNjcmlwdD4=>`_\n")
        rendered = render_description(text, "text/x-rst").html.lower()
        self.assertNotRegex(rendered, r"(href|src)=\"(javascript|data):")
        self.assertIn('<a rel="nofollow">click</a>', rendered)


class ImportCostTests(SynchronousTestCase):
    """The renderer costs a server nothing until it renders."""

    def test_server_does_not_load_the_renderer(self):
        """Loading the whole server (pypid.tap) imports neither readme_renderer nor docutils."""
        import subprocess
        import sys

        code = ("import sys, pypid.tap; "
                "print(sorted(m for m in ('readme_renderer', 'docutils', 'pygments', 'nh3') "
                "if m in sys.modules))")
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout
        self.assertEqual(output.strip(), "[]")


class IdTests(SynchronousTestCase):
    """A README's ids stay in its own namespace."""

    def test_raw_ids_prefixed(self):
        """Raw HTML's ids and names take the prefix the renderer gives its own; text is left."""
        html = render_description('<div id="files">x</div> <a id="q" name="meta">y</a> '
                                  'id="z"\n\n# Title\n', "text/markdown").html
        self.assertIn('<div id="user-content-files">', html)
        self.assertIn('id="user-content-q"', html)
        self.assertIn('id="z"', html)
        self.assertIn('<h1 id="user-content-title">', html)
        self.assertNotIn('id="files"', html)


class SameAsTheRendererTests(SynchronousTestCase):
    """reStructuredText renders exactly as C{readme_renderer.rst.render} does."""

    def test_samples(self):
        """Prose, markup, code, a raw directive, broken markup and a field list alike."""
        samples = [
            "Just a line.", "Title\n=====\n\n*emphasis* and ``code``.\n",
            ".. code:: python\n\n   import grail\n", ".. raw:: html\n\n   <b>x</b>\n",
            "Broken `link\n", ":Author: Arthur\n:Version: 1.0\n\nText.\n",
            "`a link <https://docs.example/>`_ and <script>x</script>\n", "",
        ]
        for text in samples:
            expected = render(text)
            rendered = render_description(text).html
            if expected is None:
                self.assertEqual(render_description(text).renderer, PLAIN, text)
            else:
                self.assertEqual(_render_rst(text), expected, text)
                self.assertEqual(rendered, _own_ids(expected), text)


#: What the property tests try: a word or a mark from what decides
#: whether text is markup (enumerators, roman numerals, typographic dashes
#: and dots, links, markup characters), or a word of prose.
_MARKS = st.sampled_from([
        "A.", "I.", "x.", "ii.", "IV", "Mix", "1.", "1)", "(1)", "#.", "a", "Z", "1.0.0",
        "bench-upload-00042", "a,b", "foo.", "bar,", "--", "---", "...", "..", "-", "-a", "a-",
        "www.example", "WWW.Example.com", "e.g.", "::", ":", "*", "_", "`", "|", "+", "=",
        "====", "----", "#", ">", "<", "&", "'", '"', "1-2", "x.y", "@", "a@b.example",
        "http", "https://docs.example/", "\\", "[", "]", "(", ")", "~", "UNKNOWN", "caf\u00e9",
])
_WORDS = st.from_regex(r"[A-Za-z0-9]{1,6}([.,-][A-Za-z0-9]{1,3}){0,2}[.,]?", fullmatch=True)

#: What comes between them: spaces, line breaks, blank lines, indentation.
_BETWEEN = st.sampled_from([" ", " ", " ", " ", "  ", "\n", "\n", "\n\n", "\n\n\n", " \n",
                            "\n ", "\n   ", "\t", "\r\n", ""])


def _texts(tokens, between):
    """Texts of C{tokens}, each followed by one of C{between}."""
    return st.lists(st.tuples(tokens, between), min_size=1, max_size=14).map(
        lambda parts: "".join(token + after for token, after in parts))


@st.composite
def _near_prose(draw):
    """Words between spaces and line breaks, half of them with a mark or a space put in."""
    words = draw(st.lists(_WORDS, min_size=1, max_size=14))
    text = words[0]
    for word in words[1:]:
        text += draw(st.sampled_from([" ", " ", " ", "\n", "\n\n"])) + word
    text += draw(st.sampled_from(["", "\n", "\n\n"]))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.one_of(_MARKS, _BETWEEN)) + text[at:]
    return text


#: Texts of marks and words (prose now and then), and texts near prose.
_TEXTS = st.one_of(_texts(st.one_of(_MARKS, _WORDS), _BETWEEN), _near_prose())

_PROPERTY = settings(
    max_examples=int(os.environ.get("PYPID_HYPOTHESIS_EXAMPLES", "300")),
    deadline=datetime.timedelta(seconds=30),
    derandomize=not os.environ.get("PYPID_HYPOTHESIS_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class WithoutRendererTests(SynchronousTestCase):
    """
    L{render_without_renderer}: what needs no renderer is answered without
    one, with the renderer's own HTML.
    """

    @_PROPERTY
    @given(_TEXTS)
    def test_prose_is_the_renderers(self, text):
        """
        Whatever text it answers for as prose, its HTML is
        C{readme_renderer}'s, for reStructuredText (also without a content
        type), GitHub's Markdown and CommonMark.
        """
        for content_type, renderer, expected in [
                (None, RST, lambda: render(text)),
                ("text/x-rst", RST, lambda: render(text)),
                ("text/markdown", MARKDOWN, lambda: markdown.render(text, variant="GFM")),
                ("text/markdown; variant=CommonMark", MARKDOWN,
                 lambda: markdown.render(text, variant="CommonMark"))]:
            known = render_without_renderer(text, content_type)
            if known is None or known.renderer == PLAIN:
                continue
            self.assertEqual(known, RenderedDescription(expected(), renderer),
                             (text, content_type))
            self.assertEqual(known, render_description(text, content_type))

    def test_prose(self):
        """
        A sentence, lines and paragraphs of words are answered (the bench's
        uploads, C{UNKNOWN}, a summary repeated).
        """
        for text, html in [
                ("Benchmark package bench-upload-r0x1-00042 1.0.0.\n",
                 "<p>Benchmark package bench-upload-r0x1-00042 1.0.0.</p>\n"),
                ("UNKNOWN", "<p>UNKNOWN</p>\n"),
                ("Grail finder, version 2.\nSecond line\n\n\nNext paragraph.\n\n",
                 "<p>Grail finder, version 2.\nSecond line</p>\n<p>Next paragraph.</p>\n")]:
            for content_type, renderer in [(None, RST), ("text/markdown", MARKDOWN)]:
                self.assertEqual(render_without_renderer(text, content_type),
                                 RenderedDescription(html, renderer))

    def test_markup_is_left_to_the_renderer(self):
        """Text that either markup could read as markup is not answered."""
        for text in ["A. Einstein", "x.", "foo--bar", "foo...", " indented", "a  b", "a \nb",
                     "Title\n=====", "*a*", "caf\u00e9", "a\r\nb", "\nleading", README]:
            self.assertIsNone(render_without_renderer(text, None), text)
            self.assertIsNone(render_without_renderer(text, "text/markdown"), text)
        self.assertIsNone(render_without_renderer("see www.example", "text/markdown"))

    def test_long_prose_is_left_to_the_renderer(self):
        """Prose longer than _PROSE_MAX is not matched in the daemon (the match holds its lock)."""
        line = "A line of words.\n"
        self.assertIsNotNone(render_without_renderer(line * (_PROSE_MAX // len(line))))
        self.assertIsNone(render_without_renderer(line * (_PROSE_MAX // len(line) + 1)))

    def test_no_renderer_needed(self):
        """No text, plain text and text too long to render are answered as before."""
        self.assertEqual(render_without_renderer(None), RenderedDescription("", PLAIN))
        self.assertEqual(render_without_renderer("*x* < y", "text/plain"),
                         RenderedDescription('<pre class="description-text">*x* &lt; y</pre>',
                                             PLAIN))
        long = "*x* " * MAX_TEXT
        rendered = render_without_renderer(long, "text/markdown")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertEqual(rendered, render_description(long, "text/markdown"))


class BoundsTests(SynchronousTestCase):
    """
    The bounds of L{render_description} (issue 31): what a description may
    be and become; past them, plain text, and a reason for the log.
    """

    def test_too_long(self):
        """A description longer than MAX_TEXT is not rendered: plain text, cut to fit."""
        text = "# Title\n\n" + "word " * (MAX_TEXT // 5 + 10)
        rendered = render_description(text, "text/markdown")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertIn(f"more than {MAX_TEXT:,}", rendered.reason)
        self.assertLessEqual(len(rendered.html), MAX_HTML + 200)

    def test_html_too_large(self):
        """Markup that renders to more than MAX_HTML is shown as its plain text."""
        text = "* a\n" * (MAX_TEXT // 4 - 1)   # (each item a <li> and more: 4 chars give 14)
        self.assertLessEqual(len(text), MAX_TEXT)
        rendered = render_description(text, "text/markdown")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertIn("characters of HTML", rendered.reason)
        self.assertEqual(rendered.html, f'<pre class="description-text">{text}</pre>')

    def test_plain_text_cut_on_an_entity(self):
        """Plain text that escapes to more than MAX_HTML is cut, never inside an entity."""
        rendered = render_description("<" * MAX_HTML, "text/plain")
        self.assertEqual(rendered.renderer, PLAIN)
        body = rendered.html[len('<pre class="description-text">'):rendered.html.index("</pre>")]
        self.assertLessEqual(len(body), MAX_HTML)
        self.assertEqual(body, "&lt;" * (len(body) // 4))
        self.assertIn("The description is cut here", rendered.html)

    def test_deep_rst(self):
        """A 300-deep reStructuredText list (RecursionError in docutils): plain text."""
        for text in ("".join("  " * i + "- x\n\n" for i in range(300)),
                     "".join("  " * i + "x\n\n" for i in range(300))):
            rendered = render_description(text, "text/x-rst")
            self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
            self.assertEqual(rendered.reason, "the description nests too deeply to render")

    def test_renderer_bug(self):
        """Any error of a renderer is plain text with its reason, never an exception."""
        from readme_renderer import markdown

        def broken(text, variant):
            raise ValueError("bug")
        self.patch(markdown, "render", broken)
        rendered = render_description("# Title", "text/markdown")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertEqual(rendered.reason, "the renderer failed: ValueError: bug")

    def test_invalid_markup_has_no_reason(self):
        """Invalid markup falls back as on the public index, not worth a line in the log."""
        self.assertIsNone(render_description("`unclosed <b>bold</b>", "text/x-rst").reason)
