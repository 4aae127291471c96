"""
Tests for upstream project statuses (PEP 792, issue 27 section 2, the
upstream half): read from upstream pages in both forms, kept in the cache
and its saved state, carried by the pages pypid makes of them, and a
quarantine upstream withholding every file, those kept here included,
until it is lifted.
"""

import json

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.cli.upstream import refreshed_line, released_line
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.project_status import MAX_REASON, ProjectStatus
from pypid.upstream.cache import PageCache
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.page_model import UpstreamPage
from pypid.upstream.parser import parse_page
from pypid.upstream.quarantines import Quarantines, StillQuarantined
from pypid.upstream.source import SourceSide
from tests.harness.upstream import (
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
from tests.harness.upstream_pages import (
    HTML_TYPE,
    JSON_TYPE,
    PAGE_URL,
    PROJECT,
    anchor,
    html_body,
    json_body,
    json_file,
)
from tests.harness.upstream_served import FILE_URL, _Served, status_page

EVIL = "widget-2.0-py3-none-any.whl"
EVIL_BYTES = b"not really a wheel, and malicious"


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


class RememberedTests(SynchronousTestCase):
    """L{Quarantines}: what a quarantine upstream leaves behind, and its saved form."""

    def page(self, status=None, files=()):
        return UpstreamPage(project="widget", name="Widget", files=files, status=status)

    def test_seen(self):
        """Remembered at a quarantine, answered for a removal or an empty page, lifted by files."""
        memory = Quarantines()
        self.assertIsNone(memory.seen("widget", None, 1.0))
        quarantined = self.page(ProjectStatus("quarantined", "malware"))
        self.assertIs(memory.seen("widget", quarantined, 2.0), quarantined)
        self.assertFalse(memory.get("widget").removed)
        for answer in (None, self.page(), self.page(ProjectStatus("archived"))):
            kept = memory.seen("widget", answer, 3.0)
            self.assertEqual((kept.files, kept.status, kept.name),
                             ((), ProjectStatus("quarantined", "malware"), "Widget"))
            self.assertTrue(memory.get("widget").removed)
        self.assertEqual(memory.get("widget").since, 2.0)
        parsed = parse_page(status_page(None), JSON_TYPE, INDEX_A + "widget/", "widget")
        self.assertIs(memory.seen("widget", parsed, 4.0), parsed)
        self.assertIsNone(memory.get("widget"))

    def test_release(self):
        """Only a quarantine the upstream no longer says is released."""
        memory = Quarantines()
        memory.seen("widget", self.page(ProjectStatus("quarantined")), 1.0)
        self.assertRaises(StillQuarantined, memory.release, "widget")
        memory.seen("widget", None, 2.0)
        self.assertEqual(memory.release("widget").page.status, ProjectStatus("quarantined"))
        self.assertIsNone(memory.release("widget"))
        self.assertIsNone(memory.seen("widget", None, 3.0))

    def test_saved(self):
        """The saved form comes back; what is not a quarantine is skipped."""
        memory = Quarantines()
        memory.seen("widget", self.page(ProjectStatus("quarantined", "malware")), 1.0)
        memory.seen("widget", None, 2.0)
        saved = json.loads(json.dumps(memory.to_json()))
        saved.update({"archived": {"status": "archived", "since": 1.0},
                      "broken": "quarantined", "no-time": {"status": "quarantined"}})
        again = Quarantines()
        again.load_json(saved)
        self.assertEqual(list(again), [("widget", memory.get("widget"))])
        again.load_json(None)
        self.assertEqual(len(again), 1)

    def test_old_save(self):
        """A quarantined page saved before quarantines were remembered is remembered at load."""
        pages = PageCache(lambda project, previous=None: None, Clock(), 600.0)
        entry = CachedPage(self.page(ProjectStatus("quarantined", "malware")), 5.0)
        pages.load_json({"widget": entry_to_json(entry)})
        self.assertEqual(pages.quarantines.get("widget").since, 5.0)
        self.assertFalse(pages.quarantines.get("widget").removed)


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


class ApiVersionTests(_Served, SynchronousTestCase):
    """
    A cached upstream project's JSON page is at the API version of the
    index's own pages (issue 61: it said 1.5 with C{"namespaces": null} on
    a server with no namespace, where the hosted pages say 1.4).
    """

    def setUp(self):
        from pypid.core.indexes.namespace_api import IndexNamespaces
        self.namespaces = IndexNamespaces("default")
        super().setUp()

    def meta(self):
        code, body = self.get("/simple/widget/")
        self.assertEqual(code, 200, body)
        page = json.loads(body)
        return page["meta"]["api-version"], page.get("namespaces", "absent")

    def test_follows_the_namespaces_in_use(self):
        from pypid.core.indexes.grant_ledger import GrantLedger
        from pypid.core.indexes.namespaces import NamespaceGrants, parse_grant
        self.assertEqual(self.meta(), ("1.4", "absent"))
        grants = NamespaceGrants.of([parse_grant("acme", "user:bob")])
        self.assertTrue(self.namespaces.take(grants, GrantLedger()))
        self.assertEqual(self.meta(), ("1.5", None))
        self.assertTrue(self.namespaces.take(NamespaceGrants(), GrantLedger()))
        self.assertEqual(self.meta(), ("1.4", "absent"))


class RemovedAfterQuarantineTests(_Served, SynchronousTestCase):
    """
    The public index's "quarantine, then remove" (issue 45, item 3): the
    quarantine is remembered past the removal, across a restart, until the
    upstream lists the project's files again without one (or an admin
    releases it); a kept file no page lists is never served.
    """

    def quarantine_then_remove(self, removal):
        """
        C{widget} is downloaded (kept), quarantined upstream, then removed
        (C{removal}: the page answers 404, or an empty page without a
        status), each seen at a refresh.
        """
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.publish({"status": "quarantined", "reason": "malware"})
        self.refresh()
        if removal == "404":
            self.remove()
        else:
            self.publish(None, ())
        self.successResultOf(drain(self.agent, ensureDeferred(
            self.proxy.source.pages.refresh("widget"))))

    def assertWithheld(self):
        """The page carries the quarantine and lists nothing; no form of the kept file is served."""
        code, body = self.get("/simple/widget/")
        self.assertEqual(code, 200, body)
        page = json.loads(body)
        self.assertEqual((page["files"], page["project-status"]),
                         ([], {"status": "quarantined", "reason": "malware"}))
        html = self.get("/simple/widget/", "text/html")[1]
        self.assertIn(b'<meta name="pypi:project-status" content="quarantined">', html)
        url = f"/files/widget/{WHEEL}"
        for method, headers in (("GET", {}), ("GET", {"range": "bytes=0-9"}),
                                ("HEAD", {}), ("GET", {"if-none-match": f'"{sha(BYTES_A)}"'})):
            code, body = self.request(method, url, headers)
            self.assertEqual(code, 404, (method, headers))
            if method == "GET":
                self.assertIn(b"quarantined upstream", body)
        self.assertEqual(self.get(url + ".metadata")[0], 404)

    def test_removed_404(self):
        """Removed (404) after a quarantine: still quarantined, before and after a restart."""
        self.quarantine_then_remove("404")
        self.assertWithheld()
        self.restart()
        self.assertWithheld()
        # (past the page's ttl: asked again, still removed upstream)
        self.clock.advance(601)
        self.get("/simple/widget/")
        self.assertWithheld()
        code, body = self.request("POST", "/api/upstream/widget/refresh", user="alice")
        answer = json.loads(body)
        del answer["fetched_at"]
        self.assertEqual((code, answer), (200, {
            "project": "widget", "files": 0, "status": "quarantined", "reason": "malware",
            "removed": True}))
        self.assertWithheld()

    def test_removed_empty(self):
        """An empty page without a status after a quarantine keeps the quarantine too."""
        self.quarantine_then_remove("empty")
        self.assertWithheld()
        self.restart()
        self.assertWithheld()

    def test_listed_again(self):
        """Listed again without a quarantine: the kept file is served, not fetched again."""
        self.quarantine_then_remove("404")
        self.restart()
        self.publish(None)
        self.refresh()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        code, _ = self.request("GET", f"/files/widget/{WHEEL}", {"range": "bytes=0-9"})
        self.assertEqual(code, 206)
        self.assertEqual(self.file_fetches(), 1)
        self.assertNotIn("project-status", json.loads(self.get("/simple/widget/")[1]))
        # (forgotten: removed again, the project is simply gone)
        self.remove()
        self.refresh()
        self.assertEqual(self.get("/simple/widget/")[0], 404)

    def test_unlisted_kept_file(self):
        """A kept file the upstream's page no longer lists answers 404, saying so."""
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        other = "widget-1.1-py3-none-any.whl"
        self.origins.route(f"http://{ORIGIN_A}/f/{other}", EVIL_BYTES)
        self.publish(None, ((other, f"http://{ORIGIN_A}/f/{other}", EVIL_BYTES),))
        self.refresh()
        for method, headers in (("GET", {}), ("GET", {"range": "bytes=0-9"}), ("HEAD", {})):
            code, body = self.request(method, f"/files/widget/{WHEEL}", headers)
            self.assertEqual(code, 404, (method, headers))
            if method == "GET":
                self.assertIn(b"removed upstream", body)

    def test_admin_release(self):
        """
        An admin releases a remembered quarantine (audited): the page is
        asked again, and the project is gone; not an uploader, and not
        while the upstream itself quarantines it.
        """
        self.publish({"status": "quarantined", "reason": "malware"})
        self.refresh()
        path = "/api/upstream/widget/release"
        code, body = self.request("POST", path, user="admin")
        self.assertEqual(code, 409, body)
        self.assertIn(b"the upstream quarantines widget", body)
        self.remove()
        self.refresh()
        self.assertEqual(self.request("POST", path)[0], 401)
        self.assertEqual(self.request("POST", path, user="alice")[0], 403)
        self.assertEqual(json.loads(self.get("/simple/widget/")[1])["project-status"],
                         {"status": "quarantined", "reason": "malware"})
        code, body = self.request("POST", path, user="admin")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body), {"project": "widget", "released": "quarantined",
                                            "reason": "malware"})
        self.assertEqual(self.get("/simple/widget/")[0], 404)
        self.assertEqual(self.request("POST", path, user="admin")[0], 404)
        self.assertEqual(self.request("POST", "/api/upstream/-bad-/release", user="admin")[0],
                         404)
        self.assertIn(("upstream-release", "ok", "admin", "widget", "quarantined: malware"),
                      self.audited())
        self.assertIn(("upstream-release", "refused", "alice", "widget", "alice is not an admin (the admins are named in [auth] admins)"),
                      self.audited())


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

    def with_second_upstream(self):
        """The chain with a second upstream after the first, whose page lists widget's file."""
        other = make_source(self.agent, self.clock, INDEX_B, None, "b")
        self.origins.route(INDEX_B + "widget/", status_page(
            None, ((WHEEL, f"http://{ORIGIN_B}/f/{WHEEL}", BYTES_B),)))
        self.successResultOf(drain(self.agent, other.pages.refresh("widget")))
        return (*self.order, ChainSource("upstream:b", upstream=SourceSide.of(other, self.url)))

    def test_quarantine_covers_later_upstreams(self):
        """
        The first upstream that knows the project quarantines it: a later
        upstream's files are not listed either (the page says quarantined).
        """
        order = self.with_second_upstream()
        self.cache({"status": "quarantined"})
        composition = compose(order, "widget", Filters(), self.clock.seconds(), self.url)
        self.assertEqual(composition.status, ProjectStatus("quarantined"))
        self.assertEqual(composition.files, ())

    def test_quarantine_outlives_removal(self):
        """
        A project the first upstream quarantined, then removed, stays
        quarantined: a later upstream's files of it are not listed.
        """
        order = self.with_second_upstream()
        self.cache({"status": "quarantined"})
        del self.origins.routes[(ORIGIN_A, "/simple/widget/")]
        self.successResultOf(drain(self.agent, self.source.pages.refresh("widget")))
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
        self.assertEqual(
            refreshed_line({"project": "w", "files": 0, "status": "quarantined",
                            "reason": "malware", "removed": True}),
            "w: 0 files upstream, quarantined (none of its files is served): malware\n"
            "  (removed upstream since: the quarantine is remembered here; "
            "'pypid-upstream release w' forgets it)\n")

    def test_released(self):
        """What C{pypid-upstream release} prints: the quarantine released, its reason."""
        self.assertEqual(released_line({"project": "w", "released": "quarantined",
                                        "reason": "malware"}),
                         "w: quarantined released (malware); its page is asked of the "
                         "upstream again\n")
        self.assertEqual(released_line({"project": "w", "released": "quarantined",
                                        "reason": None}),
                         "w: quarantined released; its page is asked of the upstream again\n")


class NamedIndexStatusTests(SynchronousTestCase):
    """A named index whose base is an upstream (C{staging} of L{tests.unit.upstream.test_index_upstreams})."""

    def test_quarantine_and_lift(self):
        """
        The composed page carries the upstream's quarantine and lists no file;
        C{/NAME/files/} refuses the kept file, saying why; lifted, it is served
        again from the cache.
        """
        from tests.harness.upstream import INDEX_B, ORIGIN_B, VENDORED, VENDORED_BYTES, Server
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

    def test_quarantine_then_removal(self):
        """
        A project C{upstream:public} quarantined, then removed, stays
        quarantined in C{staging}: C{upstream:vendor}'s file of the same
        name is not listed nor served in its place.
        """
        from tests.harness.upstream import BYTES_A, INDEX_A, ORIGIN_A, Server
        server = Server(self)
        url = f"/staging/files/widget/{WHEEL}"
        self.assertEqual(server.request(url)[::2], (200, BYTES_A))
        source = server.sources["public"]
        server.origins.route(INDEX_A + "widget/", status_page(
            {"status": "quarantined", "reason": "malware"},
            [(WHEEL, f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)]))
        self.successResultOf(drain(server.agent, source.pages.refresh("widget")))
        self.assertEqual(server.request(url)[0], 404)
        del server.origins.routes[(ORIGIN_A, "/simple/widget/")]
        self.successResultOf(drain(server.agent, source.pages.refresh("widget")))
        # (served before the fix: upstream:vendor's bytes under the name)
        self.assertEqual(server.request(url)[0], 404)
        page = server.json_page("/staging/simple/widget/")
        self.assertEqual((page["files"], page["project-status"]),
                         ([], {"status": "quarantined", "reason": "malware"}))
        for headers in ({}, {"range": "bytes=0-9"}):
            code, _, body = server.request(url, headers)
            self.assertEqual(code, 404, headers)
            self.assertIn(b"quarantined upstream", body)
