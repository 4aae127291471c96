"""
Tests for upstream project statuses (PEP 792, issue 27 section 2, the
upstream half): read from upstream pages in both forms, kept in the cache
and its saved state, carried by the pages pypid makes of them, and a
quarantine upstream withholding every file, those kept here included,
until it is lifted.
"""

import json

from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.cli.upstream import refreshed_line
from pypid.core.index import Index
from pypid.core.model import FileRecord
from pypid.core.project_status import MAX_REASON, ProjectStatus
from pypid.core.render import file_url_for
from pypid.core.views import ChainSource, Filters, compose
from pypid.storage.memory import MemoryStorage
from pypid.upstream.cache import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.parser import UpstreamPage, parse_page
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import SourceSide
from pypid.web.access import Access
from pypid.web.app import build_web
from tests.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness_upstream import (
    BYTES_A,
    BYTES_B,
    INDEX_A,
    INDEX_B,
    ORIGIN_A,
    ORIGIN_B,
    WHEEL,
    Origins,
    drain,
    make_source,
    sha,
)
from tests.harness_upstream_pages import (
    HTML_TYPE,
    JSON_TYPE,
    PAGE_URL,
    PROJECT,
    anchor,
    html_body,
    json_body,
    json_file,
)

FILE_URL = f"http://{ORIGIN_A}/f/{WHEEL}"
EVIL = "widget-2.0-py3-none-any.whl"
EVIL_BYTES = b"not really a wheel, and malicious"


def status_page(status=None, files=((WHEEL, FILE_URL, BYTES_A),)):
    """A PEP 691 page of C{widget}, with C{status} as its C{project-status} when given."""
    data = {
        "meta": {"api-version": "1.4"}, "name": "widget",
        "files": [{"filename": name, "url": url, "hashes": {"sha256": sha(data)},
                   "size": len(data), "upload-time": "2024-01-02T03:04:05Z"}
                  for name, url, data in files],
    }
    if status is not None:
        data["project-status"] = status
    return json.dumps(data).encode()


class ParseStatusTests(SynchronousTestCase):
    """L{parse_page} reads PEP 792's markers leniently, in both forms."""

    def parse_json(self, status):
        page = json.loads(json_body([json_file()]))
        page["project-status"] = status
        return parse_page(json.dumps(page).encode(), JSON_TYPE, PAGE_URL, PROJECT)

    def parse_html(self, head):
        body = html_body(anchor(json_file()["url"] + "#sha256=" + json_file()["hashes"]
                                ["sha256"]), head=head)
        return parse_page(body, HTML_TYPE, PAGE_URL, PROJECT)

    def test_json(self):
        """The JSON C{project-status} object gives the status and its reason."""
        page = self.parse_json({"status": "quarantined", "reason": "malware reported"})
        self.assertEqual(page.status, ProjectStatus("quarantined", "malware reported"))
        self.assertTrue(page.quarantined)
        self.assertEqual(len(page.files), 1)
        self.assertEqual(self.parse_json({"status": "archived"}).status,
                         ProjectStatus("archived"))

    def test_html(self):
        """The two meta tags of an HTML page give the status and its reason."""
        page = self.parse_html('<meta name="pypi:project-status" content="deprecated">\n'
                               '<meta name="pypi:project-status-reason" content="use gizmo">\n')
        self.assertEqual(page.status, ProjectStatus("deprecated", "use gizmo"))
        self.assertFalse(page.quarantined)
        self.assertEqual(len(page.files), 1)

    def test_active_and_absent(self):
        """No marker, or C{active}, is no status."""
        self.assertIsNone(parse_page(json_body([json_file()]), JSON_TYPE, PAGE_URL,
                                     PROJECT).status)
        self.assertIsNone(self.parse_json({"status": "active", "reason": "fine"}).status)
        self.assertIsNone(self.parse_html("").status)
        self.assertIsNone(self.parse_html(
            '<meta name="pypi:project-status" content="active">\n').status)

    def test_bad_values_ignored(self):
        """An unknown status or a malformed object counts as active; the page still reads."""
        for bad in ("quarantine", ["quarantined"], {"status": "evil"}, {"status": 3},
                    {"reason": "no status"}, None, 7):
            page = self.parse_json(bad)
            self.assertIsNone(page.status, bad)
            self.assertEqual(len(page.files), 1)
        self.assertIsNone(self.parse_html(
            '<meta name="pypi:project-status" content="QUARANTINED!">\n').status)

    def test_reason_bounded(self):
        """A reason is one printable line of at most MAX_REASON characters; a bad one is dropped."""
        long = self.parse_json({"status": "archived", "reason": "x" * 10_000})
        self.assertEqual(long.status.reason, "x" * MAX_REASON)
        lines = self.parse_json({"status": "archived", "reason": "one\ntwo\x00\tthree"})
        self.assertEqual(lines.status.reason, "one two three")
        self.assertEqual(self.parse_json({"status": "archived", "reason": 5}).status,
                         ProjectStatus("archived"))
        self.assertEqual(self.parse_json({"status": "archived", "reason": " \n"}).status,
                         ProjectStatus("archived"))


class SavedStatusTests(SynchronousTestCase):
    """The status is kept in a cached entry's saved JSON; older saves still load."""

    def test_round_trip(self):
        """A saved entry comes back with its status."""
        page = UpstreamPage(project="widget", name="widget",
                            status=ProjectStatus("quarantined", "malware"))
        data = json.loads(json.dumps(entry_to_json(CachedPage(page, 5.0))))
        self.assertEqual(entry_from_json(data).page.status,
                         ProjectStatus("quarantined", "malware"))

    def test_old_save(self):
        """A save without statuses (or with a broken one) loads as active."""
        data = entry_to_json(CachedPage(UpstreamPage(project="widget", name="widget"), 5.0))
        del data["page"]["status"]
        self.assertIsNone(entry_from_json(data).page.status)
        data["page"]["status"] = {"status": "nonsense"}
        self.assertIsNone(entry_from_json(data).page.status)
        data["page"]["status"] = "quarantined"
        self.assertIsNone(entry_from_json(data).page.status)


class _Served:
    """The default index over one upstream (L{Origins}), served in memory."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(FILE_URL, BYTES_A)
        self.publish(None)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        self.source = make_source(self.agent, self.clock, INDEX_A, self.storage)
        self.index = Index(file_url_for(None))
        self.proxy = UpstreamProxy.create(self.source, self.index, self.index.file_url)
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        access = Access(AccessModel(read="everyone"), verifier, None, TokenBook(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, upstream=self.proxy),
                        access, run_now, self.clock, max_upload_size=1 << 20,
                        upstream=self.proxy)
        self.treq = site_treq(web.site)

    def publish(self, status, files=((WHEEL, FILE_URL, BYTES_A),)):
        """The upstream's page of C{widget} from now on."""
        self.origins.route(INDEX_A + "widget/", status_page(status, files))

    def refresh(self):
        """What C{pypid-upstream refresh widget} does: the page fetched again now."""
        return self.successResultOf(drain(self.agent, self.proxy.upkeep.refresh("widget")))

    def get(self, path, accept=JSON_TYPE):
        d = self.treq.get("http://pypi.test" + path, headers={"accept": accept})
        drain(self.agent, d)
        response = self.successResultOf(d)
        return response.code, self.successResultOf(drain(self.agent, response.content()))

    def file_fetches(self):
        return len([s for s in self.origins.seen if s[1] == f"/f/{WHEEL}"])


class ServedStatusTests(_Served, SynchronousTestCase):
    """The default index's pages and files of an upstream project with a status."""

    def test_page_carries_status(self):
        """Both forms of the page carry the upstream's (non-quarantine) status; files stay."""
        self.publish({"status": "deprecated", "reason": "use gizmo"})
        code, body = self.get("/simple/widget/")
        self.assertEqual(code, 200)
        page = json.loads(body)
        self.assertEqual(page["project-status"], {"status": "deprecated", "reason": "use gizmo"})
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL])
        code, body = self.get("/simple/widget/", "text/html")
        self.assertIn(b'<meta name="pypi:project-status" content="deprecated">', body)
        self.assertIn(b'<meta name="pypi:project-status-reason" content="use gizmo">', body)

    def test_quarantine_withholds_kept_file(self):
        """
        A file kept before is refused (404, saying why) once a refresh sees the
        quarantine, and so is the new release; lifting it serves the kept file
        again without fetching it again.
        """
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.file_fetches(), 1)
        self.origins.route(f"http://{ORIGIN_A}/f/{EVIL}", EVIL_BYTES)
        self.publish({"status": "quarantined", "reason": "malware"},
                     ((WHEEL, FILE_URL, BYTES_A), (EVIL, f"http://{ORIGIN_A}/f/{EVIL}",
                                                   EVIL_BYTES)))
        self.refresh()
        code, body = self.get("/simple/widget/")
        page = json.loads(body)
        self.assertEqual((code, page["files"], page["project-status"]),
                         (200, [], {"status": "quarantined", "reason": "malware"}))
        for name in (WHEEL, EVIL, WHEEL + ".metadata"):
            code, body = self.get(f"/files/widget/{name}")
            self.assertEqual(code, 404, name)
            self.assertIn(b"quarantined upstream", body)
        self.assertEqual(self.file_fetches(), 1)
        self.publish(None)
        self.refresh()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.file_fetches(), 1)
        page = json.loads(self.get("/simple/widget/")[1])
        self.assertNotIn("project-status", page)
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL])

    def test_quarantine_at_ttl(self):
        """Without a forced refresh, the quarantine shows once the page's TTL ran out."""
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 200)
        self.publish({"status": "quarantined"})
        self.clock.advance(601)
        # (stale: served once while the refresh runs behind)
        self.get("/simple/widget/")
        self.assertEqual(json.loads(self.get("/simple/widget/")[1])["files"], [])
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)

    def test_not_cached_yet(self):
        """A quarantined project never cached before: its page lists nothing, no file is fetched."""
        self.publish({"status": "quarantined"})
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.assertEqual(self.file_fetches(), 0)

    def test_merged_page(self):
        """A hosted project merging upstream files carries the upstream's status, and none of its files when quarantined."""
        self.proxy = None
        hosted = FileRecord(filename="widget-0.1-py3-none-any.whl", project="widget",
                            name="widget", version="0.1", packagetype="bdist_wheel",
                            path=None, size=3, sha256="1" * 64, upload_time=1.0)
        index = Index(file_url_for(None))
        index.add(hosted)
        from pypid.upstream.confusion import UpstreamPolicy
        source = make_source(self.agent, self.clock, INDEX_A, self.storage,
                             policy=UpstreamPolicy("cache", merge=("widget",)))
        proxy = UpstreamProxy.create(source, index, index.file_url)
        self.publish({"status": "quarantined", "reason": "malware"})
        page, _ = self.successResultOf(drain(self.agent, proxy.pages.merged_page(
            index.project("widget"), "json")))
        data = json.loads(page.body)
        self.assertEqual([f["filename"] for f in data["files"]], [hosted.filename])
        self.assertEqual(data["project-status"], {"status": "quarantined", "reason": "malware"})
        index.statuses.set("widget", ProjectStatus("deprecated"))
        page, _ = self.successResultOf(drain(self.agent, proxy.pages.merged_page(
            index.project("widget"), "json")))
        self.assertEqual(json.loads(page.body)["project-status"], {"status": "deprecated"})


class ComposedStatusTests(SynchronousTestCase):
    """L{compose} with an upstream (L{SourceSide}) that gives a status."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.source = make_source(self.agent, self.clock, INDEX_A, None, "a")
        self.url = file_url_for(None)
        self.side = SourceSide.of(self.source, self.url)
        self.release = Index(self.url)
        self.order = (ChainSource("release", hosted=self.release),
                      ChainSource("upstream:a", upstream=self.side))

    def cache(self, status):
        self.origins.route(INDEX_A + "widget/", status_page(status))
        self.successResultOf(drain(self.agent, self.source.pages.refresh("widget")))

    def compose(self):
        return compose(self.order, "widget", Filters(), self.clock.seconds(), self.url)

    def test_upstream_status(self):
        """A status upstream is the page's when no hosted source gives one; files stay."""
        self.cache({"status": "archived", "reason": "done"})
        composition = self.compose()
        self.assertEqual(composition.status, ProjectStatus("archived", "done"))
        self.assertEqual([f.filename for f, _ in composition.files], [WHEEL])

    def test_quarantined_upstream(self):
        """A quarantine upstream lists none of its files, but the project is found; lifting it brings them back."""
        self.cache(None)
        before = self.side.cached("widget")[0]
        self.cache({"status": "quarantined"})
        composition = self.compose()
        self.assertTrue(composition.found)
        self.assertEqual(composition.files, ())
        self.assertEqual(composition.status, ProjectStatus("quarantined"))
        self.assertIsNot(self.side.cached("widget")[0], before)
        self.cache(None)
        composition = self.compose()
        self.assertIsNone(composition.status)
        self.assertEqual([f.filename for f, _ in composition.files], [WHEEL])

    def test_quarantine_covers_later_upstreams(self):
        """
        The first upstream that knows the project quarantines it: a later
        upstream's files are not listed either (the page says quarantined).
        """
        other = make_source(self.agent, self.clock, INDEX_B, None, "b")
        order = (*self.order, ChainSource("upstream:b", upstream=SourceSide.of(other, self.url)))
        self.origins.route(INDEX_B + "widget/", status_page(
            None, ((WHEEL, f"http://{ORIGIN_B}/f/{WHEEL}", BYTES_B),)))
        self.successResultOf(drain(self.agent, other.pages.refresh("widget")))
        self.cache({"status": "quarantined"})
        composition = compose(order, "widget", Filters(), self.clock.seconds(), self.url)
        self.assertEqual(composition.status, ProjectStatus("quarantined"))
        self.assertEqual(composition.files, ())

    def test_hosted_status_wins(self):
        """A hosted source's status is the page's over an upstream's."""
        self.cache({"status": "archived"})
        self.release.statuses.set("widget", ProjectStatus("deprecated", "here"))
        self.assertEqual(self.compose().status, ProjectStatus("deprecated", "here"))


class RefreshLineTests(SynchronousTestCase):
    """What C{pypid-upstream refresh} prints of the server's answer."""

    def test_lines(self):
        """The status is said unless active, a quarantine with what it does."""
        self.assertEqual(refreshed_line({"project": "w", "files": 2, "status": "active"}),
                         "w: 2 files upstream\n")
        self.assertEqual(refreshed_line({"project": "w", "files": 2}), "w: 2 files upstream\n")
        self.assertEqual(
            refreshed_line({"project": "w", "files": 2, "status": "quarantined",
                            "reason": "malware"}),
            "w: 2 files upstream, quarantined (none of its files is served): malware\n")


class NamedIndexStatusTests(SynchronousTestCase):
    """A named index whose base is an upstream (C{staging} of L{tests.test_index_upstreams})."""

    def test_quarantine_and_lift(self):
        """
        The composed page carries the upstream's quarantine and lists no file;
        C{/NAME/files/} refuses the kept file, saying why; lifted, it is served
        again from the cache.
        """
        from tests.harness_upstream import INDEX_B, ORIGIN_B, VENDORED, VENDORED_BYTES, Server
        server = Server(self)
        url = f"/staging/files/vendored/{VENDORED}"
        self.assertEqual(server.request(url)[::2], (200, VENDORED_BYTES))
        source = server.sources["vendor"]

        def publish(status):
            body = json.loads(status_page(status, [(VENDORED, f"http://{ORIGIN_B}/f/{VENDORED}",
                                                    VENDORED_BYTES)]))
            body["name"] = "vendored"
            server.origins.route(INDEX_B + "vendored/", json.dumps(body).encode())
            self.successResultOf(drain(server.agent, source.pages.refresh("vendored")))

        publish({"status": "quarantined", "reason": "malware"})
        page = server.json_page("/staging/simple/vendored/")
        self.assertEqual((page["files"], page["project-status"]),
                         ([], {"status": "quarantined", "reason": "malware"}))
        code, _, body = server.request(url)
        self.assertEqual(code, 404)
        self.assertIn(b"quarantined upstream", body)
        publish(None)
        self.assertEqual(server.request(url)[::2], (200, VENDORED_BYTES))
        self.assertEqual(len([a for a in server.asked() if a[1] == f"/f/{VENDORED}"]), 1)
        self.assertNotIn("project-status", server.json_page("/staging/simple/vendored/"))
