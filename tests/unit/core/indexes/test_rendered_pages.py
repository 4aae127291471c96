"""
Tests for L{pypid.core.indexes.rendered_pages}: the pages an index keeps rendered,
within their budget of bytes, and never older than its records.
"""

import gzip
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes import render
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import provenance_url_for
from pypid.core.indexes.render import CONTENT_TYPES, HTML, JSON, Page
from pypid.core.indexes.rendered_pages import PAGE_CACHE_SIZE, page_bytes
from pypid.core.security.advisories import (
    DENY,
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.affected_releases import Affected
from tests.harness.records import file_url, make_record


class PageTests(SynchronousTestCase):
    """Tests for the rendered pages and their cache."""

    def setUp(self):
        self.index = Index(file_url)
        self.record = make_record(name="Holy.Grail", requires_python=">=3.8")
        self.index.add(self.record)

    def test_root_cached(self):
        """The root page is rendered once and then the same object is served."""
        for kind in (HTML, JSON):
            self.assertIs(self.index.rendered.root_page(kind), self.index.rendered.root_page(kind))

    def test_root_changes_with_projects(self):
        """A new project makes a new root page; a new file of a known one does not."""
        page = self.index.rendered.root_page(HTML)
        self.index.add(make_record(version="2.0"))
        self.assertIs(self.index.rendered.root_page(HTML), page)
        self.index.add(make_record(project="another"))
        new = self.index.rendered.root_page(HTML)
        self.assertIsNot(new, page)
        self.assertIn(b"another/", new.body)

    def test_root_sorted(self):
        """The root pages list projects sorted by normalized name."""
        for project in ("zope", "attrs"):
            self.index.add(make_record(project=project))
        names = [p["name"] for p in json.loads(self.index.rendered.root_page(JSON).body)["projects"]]
        self.assertEqual(names, ["attrs", "Holy.Grail", "zope"])
        body = self.index.rendered.root_page(HTML).body
        self.assertLess(body.index(b"attrs/"), body.index(b"holy-grail/"))
        self.assertLess(body.index(b"holy-grail/"), body.index(b"zope/"))

    def test_project_cached(self):
        """A project page is rendered once until the project changes."""
        project = self.index.project("holy-grail")
        for kind in (HTML, JSON):
            self.assertIs(self.index.rendered.project_page(project, kind),
                          self.index.rendered.project_page(project, kind))

    def test_project_changes(self):
        """Adding, yanking and removing a file each make a new project page."""
        project = self.index.project("holy-grail")
        pages = [self.index.rendered.project_page(project, JSON)]
        sdist = make_record(kind="sdist")
        for change in (lambda: self.index.add(sdist),
                       lambda: self.index.add(sdist.replace(yanked="oops")),
                       lambda: self.index.remove(sdist.filename)):
            change()
            page = self.index.rendered.project_page(project, JSON)
            self.assertIsNot(page, pages[-1])
            pages.append(page)
        files = json.loads(pages[2].body)["files"]
        self.assertEqual([f["yanked"] for f in files], [False, "oops"])
        self.assertEqual(len(json.loads(pages[3].body)["files"]), 1)

    def test_other_project_untouched(self):
        """A change to one project keeps the other's page."""
        self.index.add(make_record(project="other"))
        other = self.index.project("other")
        page = self.index.rendered.project_page(other, HTML)
        self.index.add(make_record(version="3.0"))
        self.assertIs(self.index.rendered.project_page(other, HTML), page)

    def test_project_page_content(self):
        """The pages hold each file, linked by C{file_url}, with their content types."""
        project = self.index.project("holy-grail")
        url = file_url(self.record)
        html_page = self.index.rendered.project_page(project, HTML)
        self.assertEqual(html_page.content_type, b"text/html; charset=utf-8")
        self.assertIn(f'href="{url}#sha256={"a" * 64}"'.encode(), html_page.body)
        self.assertIn(b'data-requires-python="&gt;=3.8"', html_page.body)
        json_page = self.index.rendered.project_page(project, JSON)
        self.assertEqual(json_page.content_type, b"application/vnd.pypi.simple.v1+json")
        data = json.loads(json_page.body)
        self.assertEqual(data["name"], "holy-grail")
        self.assertEqual(data["versions"], ["1.0"])
        self.assertEqual(data["files"][0]["url"], url)
        self.assertEqual(data["files"][0]["filename"], self.record.filename)

    def test_etag(self):
        """A page's ETag is the strong tag of its body."""
        page = self.index.rendered.root_page(JSON)
        self.assertEqual(page.etag, render.etag(page.body))
        self.assertTrue(page.etag.startswith(b'"') and page.etag.endswith(b'"'))

    def test_gzip_round_trip(self):
        """A large page carries its gzip form, which decompresses to the body, with its own ETag."""
        for version in range(10):
            self.index.add(make_record(version=f"1.{version}"))
        page = self.index.rendered.project_page(self.index.project("holy-grail"), HTML)
        self.assertIsNotNone(page.gzipped)
        self.assertEqual(gzip.decompress(page.gzipped), page.body)
        self.assertEqual(page.gzip_etag, page.etag[:-1] + b'-gz"')
        self.assertNotEqual(page.gzip_etag, page.etag)

    def test_gzip_reproducible(self):
        """The same body always compresses to the same bytes (no timestamp in the header)."""
        body = b"x" * 1000
        self.assertEqual(Page.of(body, b"t").gzipped, Page.of(body, b"t").gzipped)

    def test_small_page_not_gzipped(self):
        """A tiny page is not worth compressing."""
        page = Page.of(b"{}", CONTENT_TYPES[JSON])
        self.assertIsNone(page.gzipped)
        self.assertIsNone(page.gzip_etag)
        self.assertEqual(page.content_type, CONTENT_TYPES[JSON])


def kept_bytes(index):
    """The bytes of the pages every project of C{index} holds, counted afresh."""
    return sum(page_bytes(value) for project in index.projects()
               for value in project.rendered.values())


class PageBudgetTests(SynchronousTestCase):
    """
    The projects' rendered pages are kept within L{RenderedPages.max_bytes}
    bytes, the least recently asked for evicted first, and rendered again
    the same when asked for again.
    """

    def setUp(self):
        self.index = Index(file_url)
        for i in range(40):
            for version in ("1.0", "1.1", "2.0"):
                self.index.add(make_record(project=f"project-{i:03}", version=version))
        # (every project's pages are the same size: names of one length)
        first = self.index.project("project-000")
        self.one = sum(page_bytes(self.index.rendered.project_page(first, kind)) for kind in (HTML, JSON))
        self.index.rendered.max_bytes = 0

    def fit(self, count):
        """A budget that holds the pages of C{count} projects (their gzip sizes differ a little)."""
        return count * self.one + self.one // 2

    def ask(self, *numbers, kinds=(HTML, JSON)):
        """Ask for both pages of each project, in order; return the last page."""
        for number in numbers:
            project = self.index.project(f"project-{number:03}")
            for kind in kinds:
                page = self.index.rendered.project_page(project, kind)
        return page

    def kept(self, number, key=HTML):
        """The value kept under C{key} with project C{number}'s pages, or L{None}."""
        return self.index.project(f"project-{number:03}").rendered.get(key)

    def assert_within(self, budget):
        """The counted bytes are those the projects hold, and within C{budget}."""
        self.assertEqual(self.index.rendered.bytes, kept_bytes(self.index))
        self.assertLessEqual(self.index.rendered.bytes, budget)

    def test_default(self):
        """A new index keeps 64 MiB of pages, the default of the configuration."""
        self.assertEqual(Index(file_url).rendered.max_bytes, 64 << 20)
        self.assertEqual(PAGE_CACHE_SIZE, 64 << 20)

    def test_fill_past_budget(self):
        """Past the budget the counted bytes stay within it, at as many projects as fit."""
        budget = self.fit(10)
        self.index.rendered.max_bytes = budget
        for number in range(40):
            self.ask(number)
            self.assert_within(budget)
        self.assertEqual(self.index.rendered.kept_projects, 10)
        self.assertGreater(self.index.rendered.bytes, budget - self.one)
        self.assertEqual([n for n in range(40) if self.kept(n) is not None], list(range(30, 40)))

    def test_evicted_rendered_again_the_same(self):
        """An evicted page is rendered again at its next request, to the same bytes and ETags."""
        self.index.rendered.max_bytes = self.fit(3)
        first = {kind: self.ask(0, kinds=[kind]) for kind in (HTML, JSON)}
        self.ask(1, 2, 3, 4)
        self.assertIsNone(self.kept(0))
        for kind, page in first.items():
            again = self.ask(0, kinds=[kind])
            self.assertIsNot(again, page)
            self.assertEqual(again, page)  # (body, gzipped, ETags, type)
        self.assertIsNotNone(self.kept(0))
        self.assert_within(self.fit(3))

    def test_recently_used_survives(self):
        """A project asked for again moves behind the others, which go first."""
        self.index.rendered.max_bytes = self.fit(3)
        self.ask(0, 1, 2)
        self.ask(0, kinds=[JSON])  # (one kind is enough: the project's pages go together)
        self.ask(3)
        self.assertIsNone(self.kept(1))
        self.assertIsNotNone(self.kept(0))
        self.ask(4)
        self.assertIsNone(self.kept(2))
        self.assertIsNotNone(self.kept(0))

    def test_change_drops_pages(self):
        """An upload, a yank, a delete and a discard each drop the project's pages, uncounted."""
        self.index.rendered.max_bytes = self.fit(5)
        self.ask(0, 1)
        other = sum(page_bytes(self.kept(0, kind)) for kind in (HTML, JSON))
        sdist = make_record(project="project-001", kind="sdist")
        for change in (lambda: self.index.add(sdist),
                       lambda: self.index.add(sdist.replace(yanked="bad")),
                       lambda: self.index.remove(sdist.filename),
                       lambda: self.index.discard("project_001-1.0-py3-none-any.whl")):
            before = self.ask(1)
            change()
            self.assertIsNone(self.kept(1))
            self.assertEqual(self.index.rendered.bytes, other)
            self.assert_within(self.fit(5))
            self.assertNotEqual(self.ask(1).body, before.body)
        self.assertIsNotNone(self.kept(0))

    def test_discarded_project(self):
        """A project that goes with its last file takes its counted pages with it."""
        self.index.add(make_record(project="brief"))
        self.index.rendered.max_bytes = self.fit(5)
        project = self.index.project("brief")
        self.index.rendered.project_page(project, HTML)
        self.index.discard("brief-1.0-py3-none-any.whl")
        self.assertIsNone(self.index.project("brief"))
        self.assertEqual(self.index.rendered.bytes, 0)
        self.assertEqual(self.index.rendered.kept_projects, 0)

    def test_load_forgets(self):
        """Loading new content forgets every kept page."""
        self.index.rendered.max_bytes = self.fit(5)
        self.ask(0, 1)
        self.index.load([make_record(project="project-000")])
        self.assertEqual(self.index.rendered.bytes, 0)
        self.assertEqual(self.index.rendered.kept_projects, 0)
        self.assertNotIn(b"2.0", self.ask(0, kinds=[HTML]).body)

    def test_extra_page_evicted_with_its_project(self):
        """A legacy JSON page counts with its project's pages, and goes when they go."""
        self.index.rendered.max_bytes = self.fit(3)
        project = self.index.project("project-000")
        legacy = Page.of(b'{"info": {}}' * 40, b"application/json")
        self.index.rendered.keep_page(project, ("legacy", None), legacy)
        self.assertIs(self.index.rendered.extra_page(project, ("legacy", None)), legacy)
        self.assertEqual(self.index.rendered.bytes, page_bytes(legacy))
        self.ask(0)
        self.assertEqual(self.index.rendered.bytes, page_bytes(legacy) + self.one)
        self.ask(1, 2, 3)
        self.assertIsNone(self.index.rendered.extra_page(project, ("legacy", None)))
        self.assert_within(self.fit(3))
        # Kept again, it goes with the project's next change.
        self.index.rendered.keep_page(project, ("legacy", None), legacy)
        self.index.add(make_record(project="project-000", version="3.0"))
        self.assertIsNone(self.index.rendered.extra_page(project, ("legacy", None)))
        self.assert_within(self.fit(3))

    def test_extra_page_keeps_recent(self):
        """Asking for a kept extra page (the proxy's C{(page, entry)} too) marks it used."""
        self.index.rendered.max_bytes = self.fit(3)
        project = self.index.project("project-000")
        merged = (Page.of(b"merged", b"text/html"), object())
        self.index.rendered.keep_page(project, ("merged", HTML), merged)
        self.ask(0, 1, 2)
        self.assertIs(self.index.rendered.extra_page(project, ("merged", HTML)), merged)
        self.ask(3)
        self.assertIs(self.index.rendered.extra_page(project, ("merged", HTML)), merged)
        self.assertIsNone(self.kept(1))

    def test_other_values_not_evicted(self):
        """A value that is no page (a search entry, a token) survives eviction, not a change."""
        self.index.rendered.max_bytes = self.fit(1)
        project = self.index.project("project-000")
        token = object()
        self.index.rendered.keep_page(project, ("people-token",), token)
        self.assertEqual(self.index.rendered.kept_projects, 0)
        self.ask(0, 1, 2)
        self.assertIsNone(self.kept(0))
        self.assertIs(self.index.rendered.extra_page(project, ("people-token",)), token)
        self.index.add(make_record(project="project-000", version="3.0"))
        self.assertIsNone(self.index.rendered.extra_page(project, ("people-token",)))

    def test_zero_keeps_nothing(self):
        """With a budget of 0 every request renders its page (the same bytes); the root is kept."""
        self.assertEqual(self.index.rendered.max_bytes, 0)
        project = self.index.project("project-000")
        page = self.index.rendered.project_page(project, HTML)
        again = self.index.rendered.project_page(project, HTML)
        self.assertIsNot(again, page)
        self.assertEqual(again, page)
        self.index.rendered.keep_page(project, ("legacy", None), page)
        self.assertIsNone(self.index.rendered.extra_page(project, ("legacy", None)))
        self.assertEqual((self.index.rendered.bytes, self.index.rendered.kept_projects), (0, 0))
        self.assertIs(self.index.rendered.root_page(HTML), self.index.rendered.root_page(HTML))

    def test_page_over_budget_served_not_kept(self):
        """A project whose pages exceed the whole budget is served, and not kept."""
        self.index.rendered.max_bytes = self.fit(2)
        self.ask(0)
        for version in range(100):
            self.index.add(make_record(project="project-001", version=f"3.{version}"))
        page = self.ask(1, kinds=[HTML])
        self.assertIn(b"3.99", page.body)
        self.assertIsNone(self.kept(1))
        self.assertIsNotNone(self.kept(0))
        self.assert_within(self.fit(2))

    def test_smaller_budget_evicts_at_once(self):
        """Lowering the budget (a reload) evicts down to it at once; a negative one is refused."""
        self.index.rendered.max_bytes = self.fit(10)
        self.ask(*range(10))
        self.index.rendered.max_bytes = self.fit(4)
        self.assert_within(self.fit(4))
        self.assertEqual([n for n in range(10) if self.kept(n) is not None], [6, 7, 8, 9])
        self.assertRaises(ValueError, setattr, self.index.rendered, "max_bytes", -1)
        self.assertEqual(self.index.rendered.max_bytes, self.fit(4))
        self.assertRaises(ValueError, Index, file_url, page_cache_size=-1)

    def test_replaced_project_object(self):
        """Pages kept for a project the index replaced are counted apart, then evicted."""
        self.index.rendered.max_bytes = self.fit(5)
        self.index.add(make_record(project="brief"))
        old = self.index.project("brief")
        self.index.discard("brief-1.0-py3-none-any.whl")
        self.index.add(make_record(project="brief", version="2.0"))
        new = self.index.project("brief")
        self.assertIsNot(old, new)
        self.index.rendered.project_page(new, HTML)
        # (a render that began before the change ends after it)
        self.index.rendered.project_page(old, HTML)
        self.assertIsNone(new.rendered.get(HTML))
        self.index.rendered.project_page(new, HTML)
        self.assertEqual(self.index.rendered.bytes,
                         sum(page_bytes(v) for v in new.rendered.values()))
        self.assertEqual(self.index.rendered.kept_projects, 1)


class DeniedPageTests(SynchronousTestCase):
    """Tests for the pages of an index that denies a release."""

    def test_denied_file_keeps_its_provenance_link(self):
        """
        A denied release's file is listed yanked with the advisory as the
        reason, and keeps the rest of what it is: its provenance link too.
        """
        board = AdvisoryBoard()
        board.replace(AdvisoryDB.of([Advisory("PYSEC-2026-1", summary="a leak", severity="high",
                                              affected=(Affected("holy-grail", (), ("1",)),))]))
        index = Index(file_url, advisories=AdvisoryPolicy(AdvisoryRules(DENY), board),
                      provenance_url=provenance_url_for("https://pypi.example/"))
        index.add(make_record(provenance_sha256="b" * 64))
        page = json.loads(index.rendered.project_page(index.project("holy-grail"), JSON).body)
        [listed] = page["files"]
        self.assertEqual(listed["yanked"], "denied by advisory PYSEC-2026-1 (high): a leak")
        self.assertEqual(listed["provenance"], "https://pypi.example/integrity/holy-grail/1.0/"
                                               "holy_grail-1.0-py3-none-any.whl/provenance")
