"""
Tests of the pages for people through the real site, in memory: the landing
page, search, project and version pages, their assets, and the access rules
on all of them. (The pages' HTML alone: C{tests/unit/core/formats/test_pages.py}; in a real
browser: C{tests/e2e/test_browser.py}.)
"""

import json
import random
import re
from html.parser import HTMLParser

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.access.access_rules import parse_rule
from pypid.core.formats.catalog import IndexCatalog
from pypid.core.indexes.composition import ChainSource, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.render import Page
from pypid.storage.base.interface import StorageError
from pypid.web.pages.people import PEOPLE_CSP
from pypid.web.pages.project_pages import DetailsRenderer, KeptPages
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import twine_fields
from tests.harness.people import HOSTILE, README, rich_metadata
from tests.harness.records import T0
from tests.harness.records import record as make_record
from tests.harness.web import ORIGIN, _ServerMixin, basic


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
        """
        Without a base URL the snippets name the origin the request reached
        the server by (issue 60: filled in on the server, not only by the
        script); a C{Host} that is no host leaves the script's placeholder,
        and never reaches the page.
        """
        _, body = self.page("/")
        self.assertIn(f"pip install --index-url {ORIGIN}/simple/ PROJECT".encode(), body)
        self.assertIn(f"twine upload --repository-url {ORIGIN}/".encode(), body)
        self.assertIn(b"uv publish --publish-url", body)
        _, other = self.page("/", headers={"Host": "pypi.other.example:8443"})
        self.assertIn(b"pip install --index-url http://pypi.other.example:8443/simple/ PROJECT",
                      other)
        for host in ('evil"><script>', "a b", "x/y"):
            _, body = self.page("/", headers={"Host": host})
            self.assertIn(b'pip install --index-url <span data-base="">http://&lt;this '
                          b'server&gt;/</span>simple/ PROJECT', body)
            self.assertNotIn(b"<script>", body.replace(b"<script src", b""))

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

    def test_huge_page_numbers(self):
        """A page past the last is the last; a size past 50 is 50, however long."""
        _, body = self.page("/search?q=grail&page=99999999999999999999")
        self.assertIn(b"3 projects match", body)
        found = json.loads(self.page("/api/search?q=grail&size=99999999999999")[1])
        self.assertEqual(found["total"], 3)

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
                     "/project/", "/project//", "/project/holy-grail/1.0/files/"):
            response, body = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")
        # (a path that is no UTF-8 is refused before any route: issue 31)
        response, body = self.get("/project/%FF/")
        self.assertEqual((response.code, body), (400, b"path: not valid UTF-8\n"))

    def test_redirects_only_for_what_exists(self):
        """
        A name or version that does not exist gets 404 whatever its spelling,
        so a redirect never tells that a name exists.
        """
        for path in ("/project/No_Such/", "/project/no-such", "/project/Holy.Grail/9.00/",
                     "/project/holy-grail/9.9"):
            self.assertEqual(self.get(path)[0].code, 404, path)

    def test_no_name(self):
        """C{/project} and C{/project/} are 404 in plain text, for GET and HEAD."""
        for method in ("GET", "HEAD"):
            for path in ("/project", "/project/"):
                response, _ = self.request(method, path)
                self.assertEqual(response.code, 404, (method, path))

    def test_other_methods(self):
        """Other methods get a plain-text 405 naming GET and HEAD, as the other areas do."""
        for path in ("/project/holy-grail/", "/static/x", "/simple/", "/files/a/b"):
            response, body = self.request("POST", path)
            self.assertEqual(response.code, 405, path)
            self.assertEqual(self.header(response, "Allow"), b"GET, HEAD")
            self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")
            self.assertTrue(body.startswith(b"this URL does not take POST"), body)

    def test_deleted_project(self):
        """A project whose files are all deleted is not counted, found or shown."""
        response, _ = self.request("DELETE", "/api/projects/holy-grail/1.0", auth=True)
        self.assertEqual(response.code, 200)
        for version in ("1.1", "2.0rc1"):
            self.assertEqual(self.request("DELETE", f"/api/projects/holy-grail/{version}",
                                          auth=True)[0].code, 200)
        self.assertEqual(json.loads(self.page("/api/search?q=holy")[1])["total"], 0)
        self.assertIn(b"0 projects, 0 files", self.page("/")[1])
        self.page("/project/holy-grail/", code=404)

    def test_kept_until_changed(self):
        """The page is rendered once, kept as bytes, and rendered again after a change."""
        response, body = self.page("/project/holy-grail/")
        self.storage._sidecars.details.clear()
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
        self.storage._sidecars.details.pop(filename)
        self.index.add(record)
        _, body = self.page("/project/old-thing/")
        self.assertIn(b"The description is being prepared", body)
        # (the memory backend described it at once)
        self.assertIn(filename, self.storage._sidecars.details)
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

    def test_private_upload_unseen(self):
        """
        An upload to a hidden project changes nothing an anonymous reader
        gets of the landing page, not even its ETag (issue 15, 1).
        """
        response, before = self.page("/")
        etag = self.header(response, "ETag")
        self.publish("secret-sauce", "2.0", "The grail recipe, again")
        response, after = self.page("/")
        self.assertEqual((after, self.header(response, "ETag")), (before, etag))
        response, _ = self.get("/", headers={"If-None-Match": etag.decode()})
        self.assertEqual(response.code, 304)

    def test_no_redirect_oracle(self):
        """Another spelling of a hidden name, and of a name that does not exist, alike: 404."""
        for path in ("/project/Secret.Sauce/", "/project/Secret_Nothing/", "/project/No.Such/",
                     "/project/secret-sauce", "/project/secret-sauce/1.00/"):
            self.assertEqual(self.get(path)[0].code, 404, path)

    def test_shown_to_a_reader(self):
        """Alice, who may read it, sees it everywhere."""
        auth = basic()
        _, body = self.page("/", auth=auth)
        self.assertIn(b"2 projects, 2 files", body)
        self.assertIn(b"secret-sauce", body)
        _, body = self.page("/search?q=recipe", auth=auth)
        self.assertIn(b'href="project/secret-sauce/"', body)
        self.page("/project/secret-sauce/", auth=auth)


class KeptPagesTests(SynchronousTestCase):
    """L{KeptPages}: pages kept up to a size, each while its project's token holds."""

    def page(self, size):
        return Page.of(b"x" * size, b"text/html")

    def test_token(self):
        """A page is answered for its token only."""
        kept, token = KeptPages(), object()
        page = self.page(10)
        kept.put(("a", None), token, page)
        self.assertIs(kept.get(("a", None), token), page)
        self.assertIsNone(kept.get(("a", None), object()))
        self.assertIsNone(kept.get(("b", None), token))

    def test_size(self):
        """The least recently asked for go first past the limit; a huge page is not kept."""
        kept = KeptPages(limit=8000)
        for name in "abc":
            kept.put((name, None), 1, self.page(100))
        kept.get(("a", None), 1)
        kept.put(("d", None), 1, self.page(900))  # (gzipped: far smaller)
        for name in "abcd":
            self.assertIsNotNone(kept.get((name, None), 1), name)
        big = Page.of(bytes(range(256)) * 8, b"text/html")  # 2 KiB that do not compress
        kept.put(("e", None), 1, big)
        self.assertIsNone(kept.get(("e", None), 1))
        for n in range(30):
            kept.put((f"f{n}", None), 1, Page.of(random.Random(n).randbytes(400), b"text/html"))
        self.assertIsNone(kept.get(("a", None), 1))
        self.assertIsNotNone(kept.get(("f29", None), 1))
        self.assertLessEqual(kept.bytes, 8000)


class DetailsRendererTests(SynchronousTestCase):
    """L{DetailsRenderer}: one description at a time, bounded, with a pause after a failure."""

    def setUp(self):
        self.clock = Clock()
        self.calls = []
        self.describer = DetailsRenderer(self.clock, limit=2, retry=60.0)

    def describe(self, record):
        d = Deferred()
        self.calls.append((record, d))
        return d

    def test_one_at_a_time_and_bounded(self):
        """The second waits for the first; past the limit, asks are dropped until later."""
        storage = type("S", (), {"describe": lambda _, r: self.describe(r)})()
        records = [type("R", (), {"filename": f"f{n}"})() for n in range(3)]
        for record in records:
            self.describer.ask(storage, record)
        self.describer.ask(storage, records[0])
        self.assertEqual([r.filename for r, _ in self.calls], ["f0"])
        self.calls[0][1].callback(b"{}")
        self.assertEqual([r.filename for r, _ in self.calls], ["f0", "f1"])
        self.calls[1][1].callback(None)
        self.assertTrue(self.describer.undescribable(storage, records[1]))
        self.describer.ask(storage, records[2])
        self.assertEqual([r.filename for r, _ in self.calls], ["f0", "f1", "f2"])

    def test_retry_after_a_failure(self):
        """A failure is tried again only after C{retry} seconds."""
        storage = type("S", (), {"describe": lambda _, r: self.describe(r)})()
        record = type("R", (), {"filename": "f"})()
        self.describer.ask(storage, record)
        self.calls[0][1].errback(StorageError("disk full"))
        self.flushLoggedErrors()
        self.describer.ask(storage, record)
        self.assertEqual(len(self.calls), 1)
        self.clock.advance(61)
        self.describer.ask(storage, record)
        self.assertEqual(len(self.calls), 2)


class IndexCatalogTests(SynchronousTestCase):
    """
    L{IndexCatalog}: a named index's search and landing page, from the
    union of its hosted sources as its pages list them (issue 26).
    """

    def setUp(self):
        self.staging = Index(file_url_for(None))
        self.release = Index(file_url_for(None))
        self.order = (ChainSource("staging", hosted=self.staging),
                      ChainSource("release", hosted=self.release))

    def test_union_and_latest(self):
        """A project of both sources is one entry, its latest version over both."""
        self.release.add(make_record("widget", "1.0", summary="Old", upload_time=T0))
        self.staging.add(make_record("widget", "2.0", summary="New", upload_time=T0 + 60))
        self.release.add(make_record("gadget", "1.0", upload_time=T0 + 120))
        catalog = IndexCatalog(self.order, Filters())
        hits = catalog.search_index().search("widget", None, 1, 10).hits
        self.assertEqual([(h.entry.project, h.entry.summary) for h in hits], [("widget", "New")])
        self.assertEqual(catalog.latest("widget"), "2.0")
        self.assertEqual(catalog.counts(), (2, 3))
        self.assertEqual(catalog.counts(lambda p: p == "gadget"), (1, 1))
        self.assertEqual([(u.project, u.version) for u in catalog.recent()],
                         [("gadget", "1.0"), ("widget", "2.0"), ("widget", "1.0")])

    def test_filters(self):
        """A view's filters: a version it leaves out is not the latest, a project without files not found."""
        self.release.add(make_record("widget", "1.0", upload_time=T0))
        self.release.add(make_record("widget", "2.0", upload_time=T0 + 100))
        self.release.add(make_record("newer", "1.0", upload_time=T0 + 100))
        self.release.add(make_record("other", "1.0", upload_time=T0))
        catalog = IndexCatalog(self.order[1:], Filters(as_of=T0 + 50, exclude=("other",)))
        self.assertEqual(catalog.latest("widget"), "1.0")
        self.assertEqual(catalog.counts(), (1, 1))
        self.assertEqual(catalog.search_index().search("newer", None, 1, 10).total, 0)
        self.assertEqual(catalog.search_index().search("other", None, 1, 10).total, 0)

    def test_worked_out_again_only_when_changed(self):
        """After a change, only the projects whose sources changed are worked out again."""
        self.release.add(make_record("widget", "1.0"))
        self.release.add(make_record("gadget", "1.0"))
        catalog = IndexCatalog(self.order, Filters())

        def entries():
            return {name: catalog.search_index().search(name, None, 1, 10).hits[0].entry
                    for name in ("widget", "gadget")}

        before = entries()
        self.staging.add(make_record("gadget", "2.0"))
        after = entries()
        self.assertIs(after["widget"], before["widget"])
        self.assertIsNot(after["gadget"], before["gadget"])
        self.assertEqual(catalog.latest("gadget"), "2.0")
