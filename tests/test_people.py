"""
Tests of the pages for people through the real site, in memory: the landing
page, search, project and version pages, their assets, and the access rules
on all of them. (The pages' HTML alone: C{tests/test_pages.py}; in a real
browser: C{tests/test_e2e_browser.py}.)
"""

import json
import re
from html.parser import HTMLParser

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel, parse_rule
from pypid.web.people import PEOPLE_CSP
from tests.distributions import make_sdist, make_wheel, metadata_text
from tests.fakes import twine_fields
from tests.test_web import _ServerMixin, basic

README = """# Holy Grail

Seek it with `grail.seek()`:

```python
import grail
grail.seek(knights=3)
```

See [the docs](https://docs.example/grail/).
"""

HOSTILE = """# Fine title

<script>document.title = "owned"</script>
<img src="https://img.example/huge.png" onerror="alert(1)" width="99999" style="position:fixed">
[click](javascript:alert(1))
<a href="#" onclick="alert(1)">x</a>
<style>body { display: none }</style>
<iframe src="https://evil.example/"></iframe>
<form action="https://evil.example/"><input name="password"></form>
"""


def rich_metadata(name, version, summary, readme=README, extra=()):
    """Core metadata with a Markdown README and the fields the pages show."""
    text = metadata_text(
        name, version, summary=summary, requires_python=">=3.9",
        requires_dist=["attrs>=22", 'rich; extra == "fancy"'],
        extra_headers=["Description-Content-Type: text/markdown", "License-Expression: MIT",
                       "Classifier: Programming Language :: Python :: 3",
                       "Project-URL: Source, https://code.example/grail",
                       "Project-URL: Trap, javascript:alert(1)", "Author: Arthur", *extra])
    return text.replace("A test project.", readme)


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.scripts, self.inline = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "script":
            self.scripts.append(attrs.get("src"))
            self._in_script = True

    def handle_endtag(self, tag):
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


def parse(body):
    """Links and scripts of a page."""
    parser = _Anchors()
    parser.feed(body.decode("utf-8"))
    return parser


def description(body):
    """The description's HTML in a project page."""
    text = body.decode("utf-8")
    start = text.index('<article class="description"')
    return text[start:text.index("</article>", start)]


class _PeopleMixin(_ServerMixin):
    """A site with a few projects uploaded through it."""

    def publish(self, name, version, summary="A project", readme=README, sdist=False,
                extra=()):
        """Upload a wheel (or an sdist) of C{name} C{version} with rich metadata."""
        metadata = rich_metadata(name, version, summary, readme, extra)
        if sdist:
            filename, data = make_sdist(name, version)
            fields = twine_fields(name, version, data, filetype="sdist", pyversion="source",
                                  summary=None)
        else:
            filename, data = make_wheel(name, version, metadata=metadata)
            fields = twine_fields(name, version, data, summary=summary)
        response, body = self.upload(filename, data, fields=fields)
        self.assertEqual(response.code, 200, body)
        self.clock.advance(60)
        return filename, data

    def page(self, path, code=200, **kwargs):
        response, body = self.get(path, **kwargs)
        self.assertEqual(response.code, code, (path, body[:300]))
        return response, body


class LandingTests(_PeopleMixin, SynchronousTestCase):
    """C{/}: what the index holds and how to use it."""

    def test_counts_and_recent_uploads(self):
        """The counts, and the latest releases (who, when) newest first, linked."""
        self.publish("Holy.Grail", "1.0", "Finds grails")
        self.publish("shrubbery", "0.3", "A nice one")
        self.publish("Holy.Grail", "1.1", "Finds grails faster")
        response, body = self.page("/")
        self.assertIn(b"2 projects, 3 files", body)
        rows = re.findall(rb'<tr><td><a href="project/([^/]+)/">[^<]*</a></td>'
                          rb'<td><a href="project/[^/]+/([^/]+)/">', body)
        self.assertEqual(rows, [(b"holy-grail", b"1.1"), (b"shrubbery", b"0.3"),
                                (b"holy-grail", b"1.0")])
        self.assertIn(b"<td>alice</td>", body)
        self.assertIn(b'<time datetime="2026-01-01T00:02:00Z">2026-01-01 00:02', body)

    def test_snippets_without_base_url(self):
        """Without a base URL the snippets name no host: the script fills in the origin."""
        _, body = self.page("/")
        self.assertIn(b'pip install --index-url <span data-base="">http://&lt;this server&gt;/'
                      b'</span>simple/ PROJECT', body)
        self.assertIn(b"twine upload --repository-url", body)
        self.assertIn(b"uv publish --publish-url", body)
        self.assertNotIn(b"127.0.0.1", body)

    def test_strict_policy(self):
        """The page has no inline script, and its policy allows its own assets only."""
        response, body = self.page("/")
        self.assertEqual(self.header(response, "Content-Security-Policy"), PEOPLE_CSP)
        self.assertIn(b"form-action 'self'", PEOPLE_CSP)
        self.assertNotIn(b"unsafe-inline", PEOPLE_CSP)
        self.assertEqual(self.header(response, "Referrer-Policy"), b"no-referrer")
        parsed = parse(body)
        self.assertEqual(parsed.inline, [])
        self.assertEqual(len(parsed.scripts), 1)
        self.assertTrue(parsed.scripts[0].startswith("static/pypid."))
        self.assertNotIn(b"style=", body)
        self.assertNotIn(b"<style", body)

    def test_assets(self):
        """The stylesheet, script and icon the page links are served, kept for good."""
        _, body = self.page("/")
        links = re.findall(rb'(?:href|src)="(static/[^"]+)"', body)
        self.assertEqual(len(links), 3)
        types = set()
        for link in links:
            response, data = self.page("/" + link.decode())
            self.assertTrue(data)
            types.add(self.header(response, "Content-Type").split(b";")[0])
            self.assertIn(b"immutable", self.header(response, "Cache-Control"))
        self.assertEqual(types, {b"text/css", b"text/javascript", b"image/svg+xml"})
        self.page("/static/pypid.css", code=404)
        self.page("/static/", code=404)

    def test_etag_and_gzip(self):
        """The page is answered 304 to its ETag, and gzip-compressed when asked."""
        response, body = self.raw("GET", "/")
        etag = self.header(response, "ETag")
        response, _ = self.raw("GET", "/", {"If-None-Match": etag.decode()})
        self.assertEqual(response.code, 304)
        response, data = self.raw("GET", "/", {"Accept-Encoding": "gzip"})
        self.assertEqual(self.header(response, "Content-Encoding"), b"gzip")

    def test_changes_shown(self):
        """An upload shows on the page at once."""
        self.page("/")
        self.publish("shrubbery", "0.3")
        _, body = self.page("/")
        self.assertIn(b"1 project, 1 file ", body)


class BaseUrlLandingTests(_PeopleMixin, SynchronousTestCase):
    """With a base URL, the snippets use it."""

    base_url = "https://pypi.internal.example/"

    def test_snippets(self):
        """The snippets name the configured URL, and nothing is left to the script."""
        self.publish("Holy.Grail", "1.0")
        _, body = self.page("/")
        self.assertIn(b"pip install --index-url https://pypi.internal.example/simple/", body)
        self.assertNotIn(b"data-base", body)
        _, body = self.page("/project/holy-grail/")
        self.assertIn(b'href="https://pypi.internal.example/files/holy-grail/', body)


class SearchTests(_PeopleMixin, SynchronousTestCase):
    """C{/search?q=} and C{/api/search?q=}."""

    def setUp(self):
        super().setUp()
        self.publish("Holy.Grail", "1.0", "Finds the grail")
        self.publish("grail-tools", "2.0", "Helpers")
        self.publish("shrubbery", "0.3", "Not too expensive, for a holy grail seeker")

    def test_name_then_summary(self):
        """The exact name first, then names holding it, then summaries."""
        _, body = self.page("/search?q=holy-grail")
        order = re.findall(rb'<li><a href="project/([^/]+)/">', body)
        self.assertEqual(order, [b"holy-grail", b"shrubbery"])
        _, body = self.page("/search?q=grail")
        order = re.findall(rb'<li><a href="project/([^/]+)/">', body)
        self.assertEqual(order, [b"grail-tools", b"holy-grail", b"shrubbery"])
        self.assertIn(b"3 projects match", body)
        self.assertIn(b'<span class="version">2.0</span>', body)

    def test_by_part_of_a_name(self):
        """A part of a name finds it."""
        _, body = self.page("/search?q=rubb")
        self.assertIn(b'href="project/shrubbery/"', body)
        self.assertIn(b"1 project matches", body)

    def test_no_query(self):
        """Without a query the page says what to type, and lists nothing."""
        _, body = self.page("/search")
        self.assertIn(b"Type part of", body)
        self.assertIn(b'action="search" method="get"', body)

    def test_query_escaped(self):
        """The query is shown escaped."""
        _, body = self.page("/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
        self.assertNotIn(b"<script>alert", body)
        self.assertIn(b"&lt;script&gt;", body)

    def test_pages(self):
        """Results come in pages of 20, with links to the others."""
        for n in range(22):
            self.publish(f"grail-{n}", "1.0")
        _, body = self.page("/search?q=grail")
        self.assertEqual(len(re.findall(rb"<li><a href=\"project/", body)), 20)
        self.assertIn(b'href="search?q=grail&amp;page=2">Next</a>', body)
        _, body = self.page("/search?q=grail&page=2")
        self.assertEqual(len(re.findall(rb"<li><a href=\"project/", body)), 5)
        self.assertIn(b'rel="prev"', body)

    def test_bad_page(self):
        """A page number that is not one is a 400 naming the field."""
        for value in ("abc", "0", "-1", "1e3", "\u0661"):
            response, body = self.get(f"/search?q=grail&page={value}")
            self.assertEqual(response.code, 400, value)
            self.assertTrue(body.startswith(b"page: "), body)

    def test_api(self):
        """The script's API gives the same results as JSON, with links and versions."""
        response, body = self.page("/api/search?q=grail&size=2")
        self.assertEqual(self.header(response, "Content-Type"), b"application/json")
        found = json.loads(body)
        self.assertEqual((found["query"], found["total"], found["pages"]), ("grail", 3, 2))
        self.assertEqual(found["hits"][0], {
            "name": "grail-tools", "display_name": "grail-tools", "summary": "Helpers",
            "version": "2.0", "url": "project/grail-tools/"})
        self.assertEqual(self.get("/api/search?q=grail&size=x")[0].code, 400)


class ProjectPageTests(_PeopleMixin, SynchronousTestCase):
    """C{/project/<name>/} and C{/project/<name>/<version>/}."""

    def setUp(self):
        super().setUp()
        self.publish("Holy.Grail", "1.0", "Finds the grail")
        self.publish("Holy.Grail", "1.0", sdist=True)
        self.publish("Holy.Grail", "1.1", "Finds the grail faster")
        self.publish("Holy.Grail", "2.0rc1", "Rewritten")
        response, _ = self.request("POST", "/api/files/holy_grail-1.0-py3-none-any.whl/yank",
                                   auth=True, data=b"reason=broken+on+3.12",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 200)

    def test_latest(self):
        """The latest final version: summary, description, metadata, files, snippets."""
        response, body = self.page("/project/holy-grail/")
        self.assertEqual(self.header(response, "Content-Security-Policy"), PEOPLE_CSP)
        self.assertIn(b"<h1>Holy.Grail <span class=\"version\">1.1</span></h1>", body)
        self.assertIn(b'<p class="summary">Finds the grail faster</p>', body)
        text = description(body)
        self.assertIn('<h1 id="user-content-holy-grail">Holy Grail', text)
        self.assertIn("<pre", text)
        self.assertIn('href="https://docs.example/grail/"', text)
        self.assertIn(b"<dt>Requires Python</dt><dd>&gt;=3.9</dd>", body)
        self.assertIn(b'<span class="licence">MIT</span>', body)
        self.assertIn(b'<a href="https://code.example/grail" rel="nofollow noopener noreferrer">'
                      b'Source</a>', body)
        self.assertIn(b"<li>Trap</li>", body)
        self.assertNotIn(b"javascript:", body)
        self.assertIn(b"<li><code>attrs&gt;=22</code></li>", body)
        self.assertIn(b"<li>Programming Language :: Python :: 3</li>", body)
        self.assertIn(b"holy-grail==1.1", body)
        self.assertIn(b"uv add --index", body)

    def test_files(self):
        """The version's files: link, size, time, uploader, sha256; the link downloads."""
        _, body = self.page("/project/holy-grail/")
        record = self.index.get_file("holy_grail-1.1-py3-none-any.whl")
        self.assertIn(f"<code class=\"hash\" data-copy=\"\">{record.sha256}</code>".encode(),
                      body)
        self.assertIn(b"<td>alice</td>", body)
        self.assertIn(f'title="{record.size} bytes"'.encode(), body)
        link = re.search(rb'<a href="([^"]+holy_grail-1\.1-py3-none-any\.whl)" download>',
                         body).group(1).decode()
        self.assertEqual(link, "../../files/holy-grail/holy_grail-1.1-py3-none-any.whl")
        response, data = self.page("/files/holy-grail/holy_grail-1.1-py3-none-any.whl")
        self.assertEqual(len(data), record.size)

    def test_history(self):
        """Every version, newest first, the latest, pre-releases and yanked releases marked."""
        response, _ = self.request("POST", "/api/projects/holy-grail/1.0/yank", auth=True,
                                   data=b"reason=broken+on+3.12",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 200)
        _, body = self.page("/project/holy-grail/")
        history = body[body.index(b'id="history"'):]
        self.assertEqual(re.findall(rb'<li><a href="[^"]+"[^>]*>([^<]+)</a>', history),
                         [b"2.0rc1", b"1.1", b"1.0"])
        self.assertIn(b'1.1</a> <time', history)
        self.assertRegex(history, rb'2\.0rc1</a> <time[^>]*>[^<]*</time> '
                                  rb'<span class="badge badge-pre">pre-release</span>')
        self.assertRegex(history, rb'1\.0</a> <time[^>]*>[^<]*</time> '
                                  rb'<span class="badge badge-yanked">yanked: broken on 3\.12')

    def test_version(self):
        """An older version's page: its files, and a link to the latest."""
        _, body = self.page("/project/holy-grail/1.0/")
        self.assertIn(b"holy_grail-1.0.tar.gz", body)
        self.assertNotIn(b"holy_grail-1.1-py3", body)
        self.assertIn(b'the latest version is <a href="../../../project/holy-grail/">1.1</a>',
                      body)
        self.assertIn(b'href="../../../static/pypid.', body)
        # (the wheel is yanked but the sdist is not: the file is marked, not the release)
        self.assertIn(b'holy_grail-1.0-py3-none-any.whl</a> <span class="badge badge-yanked">',
                      body)

    def test_redirects(self):
        """Other spellings of the name, the version, or the path lead to the page."""
        for path, target in (("/project/Holy.Grail/", b"/project/holy-grail/"),
                             ("/project/holy-grail", b"/project/holy-grail/"),
                             ("/project/holy_grail/1.00/", b"/project/holy-grail/1.0/"),
                             ("/project/holy-grail/1.0", b"/project/holy-grail/1.0/")):
            response, _ = self.get(path)
            self.assertEqual(response.code, 301, path)
            self.assertEqual(self.header(response, "Location"), target)

    def test_not_found(self):
        """Unknown projects and versions, and other paths, are 404 in plain text."""
        for path in ("/project/nothing/", "/project/holy-grail/9.9/", "/project/holy-grail/x!/",
                     "/project/", "/project//", "/project/holy-grail/1.0/files/",
                     "/project/%FF/"):
            response, body = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")

    def test_kept_until_changed(self):
        """The page is rendered once, kept as bytes, and rendered again after a change."""
        response, body = self.page("/project/holy-grail/")
        self.storage._details.clear()
        self.assertEqual(self.page("/project/holy-grail/")[1], body)
        response, _ = self.request("POST", "/api/projects/holy-grail/1.1/yank", auth=True)
        self.assertEqual(response.code, 200)
        _, changed = self.page("/project/holy-grail/")
        # (1.1 yanked: the latest version is 1.0 again)
        self.assertIn(b'<h1>Holy.Grail <span class="version">1.0</span></h1>', changed)

    def test_etag(self):
        """The page is answered 304 to its ETag."""
        response, _ = self.raw("GET", "/project/holy-grail/")
        response, _ = self.raw("GET", "/project/holy-grail/",
                               {"If-None-Match": self.header(response, "ETag").decode()})
        self.assertEqual(response.code, 304)

    def test_hostile_description(self):
        """Script, event attributes, javascript: links, styles and frames are inert."""
        self.publish("trap", "1.0", readme=HOSTILE)
        _, body = self.page("/project/trap/")
        text = description(body)
        self.assertIn("Fine title", text)
        for bad in ("<script", "onerror", "onclick", 'href="javascript:', "<style", "style=",
                    "<iframe", "<form"):
            self.assertNotIn(bad, text)
        self.assertEqual([h for h in parse(body).hrefs if h.lower().startswith("javascript")],
                         [])
        self.assertEqual(parse(body).inline, [])

    def test_described_in_the_background(self):
        """
        A file stored without details (before they were kept) gets a page
        saying its description is coming, not kept; once described, the
        page shows it.
        """
        filename, data = make_wheel("old-thing", "1.0",
                                    metadata=rich_metadata("old-thing", "1.0", "Old"))
        self.storage.objects[filename] = data
        scanned = self.successResultOf(self.storage.scan({}, 0)).records
        record = scanned[filename]
        self.storage._details.pop(filename)
        self.index.add(record)
        _, body = self.page("/project/old-thing/")
        self.assertIn(b"The description is being prepared", body)
        # (the memory backend described it at once)
        self.assertIn(filename, self.storage._details)
        _, body = self.page("/project/old-thing/")
        self.assertIn("Holy Grail", description(body))


class HiddenProjectTests(_PeopleMixin, SynchronousTestCase):
    """A project a reader may not read is never shown, counted or found."""

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"alice"}),
                           rules=(parse_rule("secret-*", "user:alice rw"),))

    def setUp(self):
        super().setUp()
        self.publish("secret-sauce", "1.0", "The grail recipe")
        self.publish("holy-grail", "1.0", "Finds the grail")

    def test_hidden_from_anonymous(self):
        """Anonymous readers see one project, counted, listed and found alone."""
        _, body = self.page("/")
        self.assertIn(b"1 project, 1 file ", body)
        self.assertNotIn(b"secret", body)
        for path in ("/search?q=grail", "/search?q=secret", "/search?q=recipe"):
            _, body = self.page(path)
            self.assertNotIn(b"secret-sauce", body, path)
            self.assertNotIn(b"Secret", body, path)
        self.assertIn(b"0 projects match", body)
        for query in ("sec", "recipe", "grail"):
            _, body = self.page("/api/search?q=" + query)
            self.assertNotIn("secret-sauce", [h["name"] for h in json.loads(body)["hits"]])
            self.assertEqual(json.loads(body)["total"], 1 if query == "grail" else 0)
        self.page("/project/secret-sauce/", code=404)
        self.page("/project/secret-sauce/1.0/", code=404)
        self.page("/project/Secret.Sauce/", code=404)

    def test_shown_to_a_reader(self):
        """Alice, who may read it, sees it everywhere."""
        auth = basic()
        _, body = self.page("/", auth=auth)
        self.assertIn(b"2 projects, 2 files", body)
        self.assertIn(b"secret-sauce", body)
        _, body = self.page("/search?q=recipe", auth=auth)
        self.assertIn(b'href="project/secret-sauce/"', body)
        self.page("/project/secret-sauce/", auth=auth)
