"""
Tests of L{pypid.core.formats.pages} and L{pypid.core.formats.catalog}: the pages for
people as HTML, and what they derive from the index; pure, no server.
"""

import re

import attrs
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.details import Details
from pypid.core.formats import pages, project_page
from pypid.core.formats.catalog import Catalog
from pypid.core.formats.search import Hit, Results, SearchEntry
from pypid.core.indexes.index import Index
from tests.harness.records import make_record

CHROME = pages.Chrome(css="static/p.css", js="static/p.js", icon="static/p.svg")

#: Text an uploader controls, in every form markup could take.
EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def text(body):
    return body.decode("utf-8")


class ReleasesTests(SynchronousTestCase):
    """Grouping files into releases, and choosing the latest."""

    def test_order_and_marks(self):
        """Newest first; pre-releases marked; a release is yanked when all its files are."""
        files = [make_record(version="1.0"), make_record(version="1.0", kind="sdist",
                                                         yanked="bad"),
                 make_record(version="2.0rc1"), make_record(version="1.1", yanked=""),
                 make_record(version="1.1", kind="sdist", yanked="gone")]
        releases = project_page.releases_of(files)
        self.assertEqual([r.version for r in releases], ["2.0rc1", "1.1", "1.0"])
        self.assertEqual([r.prerelease for r in releases], [True, False, False])
        self.assertEqual([r.yanked for r in releases], [None, "", None])
        self.assertEqual(project_page.latest_of(releases), "1.0")

    def test_latest(self):
        """Only pre-releases: the newest; all yanked: the newest final all the same."""
        self.assertEqual(project_page.latest_of(project_page.releases_of(
            [make_record(version="1.0a1"), make_record(version="1.0b2")])), "1.0b2")
        self.assertEqual(project_page.latest_of(project_page.releases_of(
            [make_record(version="1.0", yanked="x"), make_record(version="2.0", yanked="y"),
             make_record(version="3.0rc1")])), "2.0")
        self.assertIsNone(project_page.latest_of(()))

    def test_invalid_versions(self):
        """A version packaging cannot read sorts oldest, and counts as a pre-release."""
        releases = project_page.releases_of([make_record(version="1.0"),
                                      make_record(version="banana")])
        self.assertEqual([r.version for r in releases], ["1.0", "banana"])
        self.assertEqual([r.prerelease for r in releases], [False, True])

    def test_view(self):
        """A view of the latest version, of another, or none for an unknown version."""
        files = [make_record(version="1.0", summary="Old"), make_record(version="1.1",
                                                                      summary="New")]
        view = project_page.project_view("holy-grail", "Holy.Grail", files)
        self.assertEqual((view.current.version, view.latest, view.summary), ("1.1", "1.1", "New"))
        self.assertEqual(project_page.project_view("holy-grail", "x", files, "1.0").summary, "Old")
        self.assertIsNone(project_page.project_view("holy-grail", "x", files, "9.9"))


class EscapingTests(SynchronousTestCase):
    """Nothing an uploader writes becomes markup."""

    def test_project_page(self):
        """Every field of the files and the details is escaped, attributes too."""
        files = [make_record(version="1.0", yanked=EVIL, uploader=EVIL, summary=EVIL,
                             requires_python=EVIL),
                 make_record(version="1.0", kind="sdist", uploader=EVIL)]
        details = Details(info={
            "summary": EVIL, "license": EVIL, "author": EVIL, "author_email": EVIL,
            "keywords": EVIL, "classifiers": [EVIL], "requires_dist": [EVIL],
            "project_urls": {EVIL: "https://x.example/" + EVIL, "js": "javascript:alert(1)",
                             "data": "data:text/html,<b>"},
            "home_page": "JavaScript:alert(3)",
        }, html="<p>sanitized</p>")
        view = project_page.project_view("holy-grail", EVIL, files, details=details)
        body = text(project_page.project_page(CHROME, view, "../../"))
        self.assertNotIn("<script>", body.replace('<script src="../../static/p.js" defer>', ""))
        self.assertNotIn("<img", body)
        self.assertNotIn('href="javascript', body.lower())
        self.assertNotIn('href="data:', body)
        self.assertIn("&lt;script&gt;", body)
        self.assertIn('href="https://x.example/&quot;&gt;&lt;script&gt;', body)

    def test_search_page(self):
        """The query and the results' names and summaries are escaped."""
        entry = SearchEntry("x", EVIL, EVIL)
        results = Results(EVIL, 1, (Hit(entry, 0),), 1, 3)
        body = text(pages.search_page(CHROME, results, {"x": EVIL}))
        self.assertEqual(body.count("<script"), 1)  # (its own script only)
        self.assertNotIn("<img", body)
        self.assertIn("q=%22%3E%3Cscript%3E", body)

    def test_landing(self):
        """Names, versions and uploaders in the recent uploads are escaped."""
        body = text(pages.landing_page(CHROME, 1, 1, [
            pages.Upload("x", EVIL, "1.0", EVIL, 0.0)]))
        self.assertEqual(body.count("<script"), 1)
        self.assertNotIn("<img", body)


class FormatTests(SynchronousTestCase):
    """Times and sizes for people."""

    def test_when(self):
        """UTC to the minute in a <time>; a time that cannot be shown is 'unknown'."""
        self.assertEqual(pages.when(1767225600.5),
                         '<time datetime="2026-01-01T00:00:00Z">2026-01-01 00:00\u00a0UTC</time>')
        for odd in (None, float("nan"), float("inf"), 1e20, -1e20):
            self.assertEqual(pages.when(odd), "unknown", odd)

    def test_size(self):
        """Bytes, kB, MB and GB, the exact count in a tooltip; unknown sizes said so."""
        self.assertEqual(pages.size(None), "unknown")
        self.assertIn(">999 bytes<", pages.size(999))
        self.assertIn(">1.5\u00a0kB<", pages.size(1500))
        self.assertIn(">2.0\u00a0GB<", pages.size(2 * 10**9))
        self.assertIn('title="1500 bytes"', pages.size(1500))


class ChromeTests(SynchronousTestCase):
    """What every page shares."""

    def test_relative_links(self):
        """A version page reaches the root, assets and files three folders up."""
        view = project_page.project_view("holy-grail", "Holy.Grail", [make_record(version="1.0")],
                                  "1.0")
        body = text(project_page.project_page(CHROME, view, "../../../"))
        self.assertIn('href="../../../static/p.css"', body)
        self.assertIn('href="../../../files/holy-grail/holy_grail-1.0-py3-none-any.whl"', body)
        self.assertIn('action="../../../search"', body)
        self.assertIn('href="../../../login"', body)

    def test_files_url_and_static_copy(self):
        """Files under another URL; no login link in a static copy; its search in the browser."""
        chrome = attrs.evolve(CHROME, files_url="https://cdn.example/f/", login=None,
                              search="search/", suggest="packages.json")
        view = project_page.project_view("holy-grail", "Holy.Grail", [make_record()])
        body = text(project_page.project_page(chrome, view, "../../"))
        self.assertIn('href="https://cdn.example/f/holy-grail/holy_grail-1.0-py3-none-any.whl"',
                      body)
        self.assertNotIn("login", body)
        self.assertIn('data-suggest="../../packages.json"', body)
        search = text(pages.search_page(chrome, None, {}, "../"))
        self.assertIn("<noscript>", search)
        self.assertIn('action="../search/"', search)

    def test_pager(self):
        """Previous, next, and up to seven page numbers around the current one."""
        results = Results("grail", 300, (), 8, 15)
        body = text(pages.search_page(CHROME, results, {}))
        numbers = re.findall(r"page=(\d+)\">(\d+)</a>", body)
        self.assertEqual([int(n) for n, _ in numbers], [5, 6, 7, 9, 10, 11])
        self.assertIn('<span aria-current="page">8</span>', body)
        self.assertIn("page=7\">Previous", body)
        self.assertIn("page=9\">Next", body)


class CatalogTests(SynchronousTestCase):
    """L{Catalog}: search entries, latest versions and recent uploads of an index."""

    def setUp(self):
        self.index = Index(lambda r: r.filename)
        self.catalog = Catalog(self.index)
        for when, (project, version, summary) in enumerate(
                [("holy-grail", "1.0", "Old summary"), ("holy-grail", "1.1", "New summary"),
                 ("shrubbery", "0.3", "Nice"), ("holy-grail", "2.0rc1", "Rewrite")]):
            self.index.add(make_record(project, version, summary=summary, upload_time=when,
                                       uploader="alice"))
        self.index.add(make_record("holy-grail", "1.1", kind="sdist", upload_time=10.0))

    def test_entries(self):
        """Each project with its latest version's summary (not a pre-release's)."""
        index = self.catalog.search_index()
        self.assertEqual([(index.entry(name), self.catalog.latest(name))
                          for name in ("holy-grail", "shrubbery")], [
            (SearchEntry("holy-grail", "holy-grail", "New summary"), "1.1"),
            (SearchEntry("shrubbery", "shrubbery", "Nice"), "0.3")])
        self.assertEqual(len(index), 2)
        self.assertEqual(self.catalog.search_index().search("nice").total, 1)

    def test_recent(self):
        """One line per release at its newest file's time, newest first; hidden ones left out."""
        recent = self.catalog.recent()
        self.assertEqual([(u.project, u.version) for u in recent],
                         [("holy-grail", "1.1"), ("holy-grail", "2.0rc1"), ("shrubbery", "0.3"),
                          ("holy-grail", "1.0")])
        self.assertEqual(recent[0].uploader, None)  # (the sdist, newest, had none)
        shown = self.catalog.recent(lambda p: p != "holy-grail", count=5)
        self.assertEqual([u.project for u in shown], ["shrubbery"])
        self.assertEqual(len(self.catalog.recent(count=2)), 2)

    def test_follows_changes(self):
        """A change to the index shows in the next answer."""
        self.assertEqual(self.catalog.latest("shrubbery"), "0.3")
        self.index.add(make_record("shrubbery", "0.4", summary="Nicer", upload_time=20.0))
        self.assertEqual(self.catalog.latest("shrubbery"), "0.4")
        self.assertEqual(self.catalog.recent()[0].version, "0.4")
        self.assertEqual(self.catalog.search_index().search("nicer").total, 1)

    def test_counts(self):
        """Projects and files, of every project or of those visible."""
        self.assertEqual(self.catalog.counts(), (2, 5))
        self.assertEqual(self.catalog.counts(lambda p: p == "shrubbery"), (1, 1))


class HistoryTests(SynchronousTestCase):
    """
    The release history of a project of many versions (issue 31): each
    page lists a bounded part, and links reach every release.
    """

    def setUp(self):
        files = [make_record("many", f"1.{i}") for i in range(1200)]
        self.releases = project_page.releases_of(files)
        self.files = files

    def page(self, version=None):
        view = project_page.project_view("many", "many", self.files, version,
                                  releases=self.releases)
        return project_page.project_page(CHROME, view, "../../").decode("utf-8")

    def test_bounded(self):
        """Every page of 1,200 versions is small; all of them together grow linearly."""
        sizes = [len(self.page(f"1.{i}")) for i in range(0, 1200, 7)]
        self.assertLess(max(sizes), 24 * 1024)
        latest = self.page()
        self.assertIn('aria-current="page">1.1199<', latest)
        self.assertIn(">1,178 more releases<", latest)

    def test_every_release_reached(self):
        """Following the links of the history from the latest page reaches every release."""
        link = re.compile(r'href="\.\./\.\./project/many/([^/"]+)/"')
        seen, todo = set(), [None]
        while todo:
            version = todo.pop()
            for found in link.findall(self.page(version)):
                if found not in seen:
                    seen.add(found)
                    todo.append(found)
        self.assertEqual(len(seen), 1200)

    def test_shown(self):
        """history_shown: the newest, around the current one, the oldest, and runs left out."""
        self.assertEqual(project_page.history_shown(3, 0, 0), [0, 1, 2])
        entries = project_page.history_shown(100, 60, 0)
        self.assertEqual(entries[:20], list(range(20)))
        self.assertEqual(entries[20], (20, 40))
        self.assertEqual(entries[21:62], list(range(40, 81)))
        self.assertEqual(entries[62:], [(81, 99), 99])
