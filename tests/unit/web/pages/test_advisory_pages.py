"""
The indexes acting on security advisories in their simple pages and
downloads (issue 27 section 3: C{hide} and C{deny}), in memory.

L{Server}: the default index (its rules given per test), C{release}, a
hosted index that ignores advisories, and C{prod}, a view of C{release}
that denies; optionally the default index's upstream (a local one, in
memory) serving C{remote}. The advisories: C{widget} 2.0 (high, known as
a GHSA and a CVE), C{remote} 2.0 (high) and C{widget} 1.0 (low).
"""

import json
import os
import re
import time

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.advisories.compact_cache import (
    CompileTask,
    cache_key,
    cache_path,
    compile_sources,
)
from pypid.advisories.compile_child import ChildCompiler
from pypid.advisories.osv_archive import ArchiveLimits, signature
from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.dists.version_order import release_key
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.security.advisories import (
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.affected_releases import Affected
from pypid.daemon.server import build_service
from pypid.state.advisory_decisions import DecisionLog
from pypid.state.hosted_source import HostedSource
from pypid.state.indexes import drop_advised_pages
from pypid.storage.base.locks import KeyedLock
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import SourceSide
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.serving.index_root import IndexMaterials
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
    write_file,
)
from tests.harness.indexes import _ServerMixin, basic, entries
from tests.harness.memory_storage import MemoryStorage
from tests.harness.osv_records import osv_record, write_folder
from tests.harness.tap import fake_pools
from tests.harness.upstream import INDEX_A, ORIGIN_A, Origins, drain, make_source, page
from tests.harness.web import kept_alive, request

ORIGIN = "http://pypi.test"
PASSWORD = "correct horse"
START = 1767225600.0
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
HTML = {"Accept": "text/html"}

WIDGET_2 = Advisory("GHSA-wdgt-0000-0002", aliases=("CVE-2026-0002",),
                    summary="Widget 2.0 runs what it reads", severity="high",
                    affected=(Affected("widget", (), frozenset({release_key("2.0")})),))
WIDGET_1 = Advisory("PYSEC-2026-1", summary="a small leak", severity="low",
                    affected=(Affected("widget", (), frozenset({release_key("1.0")})),))
REMOTE_2 = Advisory("GHSA-rmte-0000-0002", summary="remote 2.0 is bad", severity="high",
                    affected=(Affected("remote", (), frozenset({release_key("2.0")})),))
REMOTE_WHEELS = [make_wheel("remote", v) for v in ("1.0", "2.0")]


def rules(mode, severity="", waive=()):
    return AdvisoryRules.parse(mode, severity, waive)


class Server:
    """The indexes of the module's docstring, in memory."""

    def __init__(self, case, default="off", prod="deny", upstream=False, db=None):
        self.case = case
        self.clock = Clock()
        self.clock.advance(START)
        self.board = AdvisoryBoard()
        self.board.replace(db if db is not None else AdvisoryDB.of([WIDGET_2, WIDGET_1,
                                                                    REMOTE_2]))
        self.policies = {name: AdvisoryPolicy(r, self.board) for name, r in (
            ("default", default if isinstance(default, AdvisoryRules) else rules(default)),
            ("release", rules("off")),
            ("prod", prod if isinstance(prod, AdvisoryRules) else rules(prod)))}
        folder = os.path.abspath(case.mktemp())
        self.stacks = {}
        for name in ("default", "release"):
            storage = MemoryStorage(os.path.join(folder, name), self.clock)
            case.successResultOf(storage.prepare())
            self.stacks[name] = HostedSource(
                name, Index(file_url_for(None), advisories=self.policies[name]), storage,
                KeyedLock(self.clock))
        default_index = self.stacks["default"].index
        release = ChainSource("release", hosted=self.stacks["release"].index)
        parts = [
            IndexMaterials("release", ComposedIndex("release", (release,), Filters(), file_url_for(None),
                                            advisories=self.policies["release"]),
                       (self.stacks["release"],), hosted=True),
            IndexMaterials("prod", ComposedIndex("prod", (release,), Filters(), file_url_for(None),
                                         advisories=self.policies["prod"]),
                       (self.stacks["release"],), hosted=False),
        ]
        self.proxy = None
        self.agent = None
        if upstream:
            from treq.testing import RequestTraversalAgent
            self.origins = Origins()
            self.agent = RequestTraversalAgent(self.origins)
            self.origins.route(INDEX_A + "remote/", page("remote", [
                (name, f"http://{ORIGIN_A}/f/{name}", data) for name, data in REMOTE_WHEELS]))
            for name, data in REMOTE_WHEELS:
                self.origins.route(f"http://{ORIGIN_A}/f/{name}", data)
            kept = MemoryStorage(os.path.join(folder, "upstream"), self.clock)
            case.successResultOf(kept.prepare())
            source = make_source(self.agent, self.clock, INDEX_A, kept)
            self.proxy = UpstreamProxy.create(source, default_index, default_index.file_url,
                                              advisories=self.policies["default"])
            # (ext: a view of the upstream alone, by prod's rules)
            side = SourceSide.of(source, file_url_for(None))
            parts.append(IndexMaterials(
                "ext", ComposedIndex("ext", (ChainSource("upstream:public", upstream=side),),
                                 Filters(), file_url_for(None),
                                 advisories=self.policies["prod"]),
                (), hosted=False, upstreams={"upstream:public": side}))
        # (the registry's listener, over these parts: pypid.state.indexes)
        self.board.listen(lambda before, after: drop_advised_pages(
            default_index, self.proxy, before.projects() | after.projects()))
        users = {name: hash_password(PASSWORD, FAST) for name in ("alice", "root")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone", admins=frozenset({"root"})), verifier,
                        None, TokenBook(self.clock))
        self.log = MemoryJournal(self.clock)
        web = build_web([*one_index(default_index, self.stacks["default"].storage, self.clock,
                                   locks=self.stacks["default"].locks, upstream=self.proxy),
                         *(parts)],
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20),
                        SiteServices(upstream=self.proxy, audit=AuditTrail(self.log, self.clock)))
        self.site = web.site
        self.client = site_treq(web.site)

    def request(self, method, path, headers=None, data=None):
        """C{(code, headers, body)} of one request."""
        d = self.client.request(method, ORIGIN + path, headers=headers or {}, data=data,
                                allow_redirects=False)
        if self.agent is not None:
            drain(self.agent, d)
        response = self.case.successResultOf(d)
        content = response.content()
        if self.agent is not None:
            drain(self.agent, content)
        return response.code, response.headers, self.case.successResultOf(content)

    def upload(self, path, name, version):
        """Upload a wheel of C{name} C{version} as alice; its filename."""
        filename, data = make_wheel(name, version)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        code, _, answer = self.request("POST", path, {"Authorization": basic("alice"),
                                                      "Content-Type": ctype}, body)
        self.case.assertEqual(code, 200, answer)
        return filename

    def json_page(self, path):
        """The JSON page at C{path}."""
        code, _, body = self.request("GET", path, JSON)
        self.case.assertEqual(code, 200, body)
        return json.loads(body)

    def listed(self, path):
        """C{{filename: yanked}} of the JSON page at C{path}."""
        return {f["filename"]: f["yanked"] for f in self.json_page(path)["files"]}

    def html(self, path):
        """The HTML page at C{path}."""
        code, _, body = self.request("GET", path, HTML)
        self.case.assertEqual(code, 200, body)
        return body.decode()


def _wheel(name, version):
    return f"{name}-{version}-py3-none-any.whl"


REASON = ("denied by advisory GHSA-wdgt-0000-0002 (high): Widget 2.0 runs what it reads")


class HostedPagesTests(SynchronousTestCase):
    """The default index's hosted pages and files."""

    def serve(self, default, **kwargs):
        s = Server(self, default, **kwargs)
        for version in ("1.0", "2.0", "3.0"):
            s.upload("/", "widget", version)
        return s

    def test_hide(self):
        """
        C{hide}: an affected release's files are not listed (nor its
        version), in both forms; asked for by name, they are served.
        """
        s = self.serve("hide")
        page = s.json_page("/simple/widget/")
        self.assertEqual([f["filename"] for f in page["files"]], [_wheel("widget", "3.0")])
        self.assertEqual(page["versions"], ["3.0"])
        html = s.html("/simple/widget/")
        self.assertNotIn("widget-2.0", html)
        self.assertIn("widget-3.0", html)
        self.assertEqual(s.request("GET", "/files/widget/" + _wheel("widget", "2.0"))[0], 200)

    def test_deny_yanked(self):
        """
        C{deny}: an affected release is listed yanked, the reason naming
        the advisories, in the JSON and the HTML page.
        """
        s = self.serve("deny")
        self.assertEqual(s.listed("/simple/widget/"), {
            _wheel("widget", "1.0"): "denied by advisory PYSEC-2026-1 (low): a small leak",
            _wheel("widget", "2.0"): REASON, _wheel("widget", "3.0"): False})
        self.assertEqual(s.json_page("/simple/widget/")["versions"], ["1.0", "2.0", "3.0"])
        anchor = re.search(r'<a [^>]*widget-2\.0[^>]*>', s.html("/simple/widget/")).group(0)
        self.assertIn(f'data-yanked="{REASON}"', anchor)

    def test_deny_download(self):
        """
        A denied release's file and its C{.metadata} answer 403 in plain
        text naming the advisory; a clean release's file is served.
        """
        s = self.serve("deny")
        for path in ("/files/widget/" + _wheel("widget", "2.0"),
                     "/files/widget/" + _wheel("widget", "2.0") + ".metadata"):
            code, headers, body = s.request("GET", path)
            self.assertEqual(code, 403, path)
            self.assertTrue(headers.getRawHeaders("content-type")[0].startswith("text/plain"))
            self.assertIn(b"GHSA-wdgt-0000-0002", body)
        self.assertEqual(s.request("GET", "/files/widget/" + _wheel("widget", "3.0"))[0], 200)

    def test_deny_local_build(self):
        """
        A local build of a listed release (C{2.0+corp1}, which C{pip
        download widget==2.0} would take) is denied as the release is:
        listed yanked, its file and C{.metadata} 403 (issue 45).
        """
        s = self.serve("deny")
        local = s.upload("/", "widget", "2.0+corp1")
        self.assertEqual(s.listed("/simple/widget/")[local], REASON)
        for path in ("/files/widget/" + local, "/files/widget/" + local + ".metadata"):
            code, _, body = s.request("GET", path)
            self.assertEqual(code, 403, path)
            self.assertIn(b"GHSA-wdgt-0000-0002", body)

    def test_denied_counted_and_audited(self):
        """
        Each refusal counts in C{pypid_advisory_denied_total} (labelled by
        index with named ones); the audit log has an C{advisory-denied}
        entry naming the project, file and advisory, one a minute for a
        client asking again.
        """
        s = self.serve("deny")
        path = "/files/widget/" + _wheel("widget", "2.0")
        for _ in range(3):
            self.assertEqual(s.request("GET", path)[0], 403)
        self.assertEqual(s.request("GET", "/prod/files/widget/x")[0], 404)
        metrics = s.request("GET", "/metrics")[2].decode()
        self.assertIn('pypid_advisory_denied_total{index="default"} 3', metrics)
        denied = [e for e in entries(s.log) if e["event"] == "advisory-denied"]
        self.assertEqual(len(denied), 1, denied)
        self.assertEqual((denied[0]["project"], denied[0]["filename"], denied[0]["version"],
                          denied[0]["outcome"], denied[0]["detail"]),
                         ("widget", _wheel("widget", "2.0"), "2.0", "refused",
                          "GHSA-wdgt-0000-0002"))

    def test_severity_and_waiver(self):
        """
        The lowest severity leaves the low advisory out; a waived release
        and a waived identifier (any alias) are listed as they are.
        """
        s = self.serve(rules("deny", "high", ["widget==2.0.0"]))
        self.assertEqual(s.listed("/simple/widget/"), {
            _wheel("widget", v): False for v in ("1.0", "2.0", "3.0")})
        self.assertEqual(s.request("GET", "/files/widget/" + _wheel("widget", "2.0"))[0], 200)
        s = self.serve(rules("hide", "", ["cve-2026-0002"]))
        self.assertEqual(set(s.listed("/simple/widget/")),
                         {_wheel("widget", "2.0"), _wheel("widget", "3.0")})

    def test_off_and_warn_list_everything(self):
        """C{off} and C{warn} list every file as it is, and serve it."""
        for mode in ("off", "warn"):
            s = self.serve(mode)
            self.assertEqual(s.listed("/simple/widget/"), {
                _wheel("widget", v): False for v in ("1.0", "2.0", "3.0")})
            self.assertEqual(s.request("GET", "/files/widget/" + _wheel("widget", "2.0"))[0],
                             200)

    def test_verdicts_not_per_request(self):
        """
        A page is rendered once per change: repeated requests of both forms
        and downloads work out no verdict again (counted at the database).
        """
        s = self.serve("deny")
        calls = []
        real = AdvisoryDB.affecting

        def counted(db, project, version):
            calls.append((project, version))
            return real(db, project, version)
        self.patch(AdvisoryDB, "affecting", counted)
        for _ in range(5):
            s.json_page("/simple/widget/")
            s.html("/simple/widget/")
            s.request("GET", "/files/widget/" + _wheel("widget", "2.0"))
            s.request("GET", "/files/widget/" + _wheel("widget", "3.0"))
        # (each release once, by the first page rendered: 20 requests)
        self.assertEqual(calls, [("widget", v) for v in ("1.0", "2.0", "3.0")])

    def test_board_change_drops_named_pages_only(self):
        """
        A new database drops the kept pages of the projects either database
        names, and no other; the release comes back when its advisory is
        withdrawn (gone from the new database).
        """
        s = self.serve("hide")
        s.upload("/", "gadget", "1.0")
        index = s.stacks["default"].index
        s.json_page("/simple/gadget/")
        s.json_page("/simple/widget/")
        gadget, widget = index.project("gadget"), index.project("widget")
        self.assertTrue(gadget.rendered)
        self.assertTrue(widget.rendered)
        s.board.replace(AdvisoryDB.of([WIDGET_1]))
        self.assertTrue(gadget.rendered)
        self.assertFalse(widget.rendered)
        self.assertEqual(s.json_page("/simple/widget/")["versions"], ["2.0", "3.0"])


class ViewPagesTests(SynchronousTestCase):
    """A view that denies over a hosted index that ignores advisories."""

    def setUp(self):
        self.s = Server(self, "off", "deny")
        for version in ("2.0", "3.0"):
            self.s.upload("/release/", "widget", version)

    def test_view_denies_base_does_not(self):
        """
        C{prod} lists 2.0 yanked with the reason (its own page, not the
        base's) and refuses its file and metadata; C{release} lists and
        serves it as it is.
        """
        s = self.s
        self.assertEqual(s.listed("/release/simple/widget/"),
                         {_wheel("widget", "2.0"): False, _wheel("widget", "3.0"): False})
        self.assertEqual(s.listed("/prod/simple/widget/"),
                         {_wheel("widget", "2.0"): REASON, _wheel("widget", "3.0"): False})
        self.assertIn("data-yanked", s.html("/prod/simple/widget/"))
        for path in ("/prod/files/widget/" + _wheel("widget", "2.0"),
                     "/prod/files/widget/" + _wheel("widget", "2.0") + ".metadata"):
            code, _, body = s.request("GET", path)
            self.assertEqual(code, 403, path)
            self.assertIn(b"GHSA-wdgt-0000-0002", body)
        self.assertEqual(s.request("GET", "/release/files/widget/" + _wheel("widget", "2.0"))[0],
                         200)
        self.assertEqual(s.request("GET", "/prod/files/widget/" + _wheel("widget", "3.0"))[0],
                         200)
        self.assertIn('pypid_advisory_denied_total{index="prod"} 2',
                      s.request("GET", "/metrics")[2].decode())

    def test_view_follows_board(self):
        """
        The view's page is composed again when the database changes: the
        release is listed as it is once its advisory is gone, yanked again
        once it is back.
        """
        s = self.s
        self.assertEqual(s.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], REASON)
        s.board.replace(AdvisoryDB.of([REMOTE_2]))
        self.assertEqual(s.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], False)
        self.assertEqual(s.request("GET", "/prod/files/widget/" + _wheel("widget", "2.0"))[0],
                         200)
        s.board.replace(AdvisoryDB.of([WIDGET_2]))
        self.assertEqual(s.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], REASON)

    def test_view_follows_rules(self):
        """The view's page follows its rules taken in place (a reload)."""
        s = self.s
        s.json_page("/prod/simple/widget/")
        s.policies["prod"].take_rules(rules("hide"))
        self.assertEqual(set(s.listed("/prod/simple/widget/")), {_wheel("widget", "3.0")})
        s.policies["prod"].take_rules(rules("off"))
        self.assertEqual(s.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], False)

    def test_view_off_over_hiding_base(self):
        """A view that ignores advisories lists what its base hides on its own pages."""
        s = Server(self, "off", "off")
        s.policies["release"].take_rules(rules("hide"))
        s.upload("/release/", "widget", "2.0")
        self.assertEqual(s.listed("/release/simple/widget/"), {})
        self.assertEqual(s.listed("/prod/simple/widget/"), {_wheel("widget", "2.0"): False})


class UpstreamPagesTests(SynchronousTestCase):
    """The default index's pages and files of an upstream project."""

    def test_hide(self):
        """C{hide}: the upstream page leaves 2.0 out, in both forms."""
        s = Server(self, "hide", upstream=True)
        self.assertEqual(set(s.listed("/simple/remote/")), {_wheel("remote", "1.0")})
        self.assertNotIn("remote-2.0", s.html("/simple/remote/"))

    def test_deny(self):
        """
        C{deny}: 2.0 is listed yanked with the reason, and its file and
        metadata answer 403 without the upstream being asked for them.
        """
        s = Server(self, "deny", upstream=True)
        self.assertEqual(s.listed("/simple/remote/"), {
            _wheel("remote", "1.0"): False,
            _wheel("remote", "2.0"): "denied by advisory GHSA-rmte-0000-0002 (high): "
                                      "remote 2.0 is bad"})
        for path in ("/files/remote/" + _wheel("remote", "2.0"),
                     "/files/remote/" + _wheel("remote", "2.0") + ".metadata"):
            code, _, body = s.request("GET", path)
            self.assertEqual(code, 403, path)
            self.assertIn(b"GHSA-rmte-0000-0002", body)
        self.assertNotIn(f"/f/{_wheel('remote', '2.0')}",
                         [path for _, path, _ in s.origins.seen])
        self.assertEqual(s.request("GET", "/files/remote/" + _wheel("remote", "1.0"))[0], 200)

    def test_view_of_upstream(self):
        """
        A view that denies lists the upstream's 2.0 yanked (the default
        index hiding it meanwhile) and refuses its file and metadata; 1.0 is served.
        """
        s = Server(self, "hide", "deny", upstream=True)
        self.assertEqual(s.listed("/ext/simple/remote/")[_wheel("remote", "2.0")],
                         "denied by advisory GHSA-rmte-0000-0002 (high): remote 2.0 is bad")
        self.assertEqual(set(s.listed("/simple/remote/")), {_wheel("remote", "1.0")})
        for path in ("/ext/files/remote/" + _wheel("remote", "2.0"),
                     "/ext/files/remote/" + _wheel("remote", "2.0") + ".metadata"):
            code, _, body = s.request("GET", path)
            self.assertEqual(code, 403, path)
            self.assertIn(b"GHSA-rmte-0000-0002", body)
        self.assertEqual(s.request("GET", "/ext/files/remote/" + _wheel("remote", "1.0"))[0],
                         200)

    def test_board_change(self):
        """The upstream page is rendered again once the database changes, and not before."""
        s = Server(self, "hide", upstream=True)
        self.assertEqual(set(s.listed("/simple/remote/")), {_wheel("remote", "1.0")})
        s.board.replace(AdvisoryDB.of([WIDGET_2]))
        self.assertEqual(set(s.listed("/simple/remote/")),
                         {_wheel("remote", "1.0"), _wheel("remote", "2.0")})


#: Every path of the default index that serves or lists a release of
#: widget, and the C{Accept} it is asked with.
RELEASE_PATHS = [
    ("/simple/widget/", HTML), ("/simple/widget/", JSON),
    ("/files/widget/" + _wheel("widget", "3.0"), {}),
    ("/files/widget/" + _wheel("widget", "3.0") + ".metadata", {}),
    ("/pypi/widget/json", {}), ("/pypi/widget/3.0/json", {}),
    ("/project/widget/", {}), ("/project/widget/3.0/", {}),
]


class UnreadTests(SynchronousTestCase):
    """
    Until the advisories are read (the first seconds after a start, issue
    43), an index that hides or denies serves no release they might
    cover: every path that serves or lists one answers 503, in plain text,
    with C{Retry-After}; the project lists (C{/simple/}) are served; an
    index that warns or ignores them serves as ever; once read, each path
    answers as the advisories say.
    """

    def serve(self, default, prod="deny", upstream=False):
        s = Server(self, default, prod=prod, upstream=upstream, db=AdvisoryDB.unread_yet())
        for version in ("1.0", "2.0", "3.0"):
            s.upload("/", "widget", version)
            s.upload("/release/", "widget", version)
        return s

    def assertUnread(self, s, path, headers, retry=b"5", word=b"still being read"):
        code, answer, body = s.request("GET", path, headers)
        self.assertEqual(code, 503, (path, body))
        self.assertEqual(answer.getRawHeaders("retry-after"), [retry.decode()], path)
        self.assertTrue(answer.getRawHeaders("content-type")[0].startswith("text/plain"), path)
        self.assertIn(word, body, path)

    def read(self, s):
        s.board.replace(AdvisoryDB.of([WIDGET_2, WIDGET_1, REMOTE_2]))

    def test_fail_closed(self):
        """
        C{deny} and C{hide}: every path of a release answers 503 while the
        advisories are being read, and as they say once read.
        """
        for mode in ("deny", "hide"):
            s = self.serve(mode)
            for path, headers in RELEASE_PATHS:
                self.assertUnread(s, path, headers)
            self.assertEqual(s.request("GET", "/simple/", HTML)[0], 200)
            self.assertEqual(s.request("GET", "/simple/", JSON)[0], 200)
            self.read(s)
            for path, headers in RELEASE_PATHS:
                self.assertEqual(s.request("GET", path, headers)[0], 200, (mode, path))
            denied = s.request("GET", "/files/widget/" + _wheel("widget", "2.0"))[0]
            self.assertEqual(denied, 403 if mode == "deny" else 200)
            self.assertNotEqual(_wheel("widget", "2.0") in s.listed("/simple/widget/"),
                                mode == "hide")

    def test_kept_alive(self):
        """
        A client that keeps its connection alive (whose reads the express
        lane answers, L{pypid.web.serving.express}) gets the same refusals, and the
        same answers once they are read.
        """
        s = self.serve("deny")
        paths = [(path, headers) for path, headers in RELEASE_PATHS
                 if path.startswith(("/simple/", "/files/"))]
        requests = [request(b"GET", path.encode(),
                            [(name.encode(), value.encode()) for name, value in headers.items()])
                    for path, headers in paths]
        answers, _ = kept_alive(s.site, *requests)
        self.assertEqual([(status, found.get(b"retry-after")) for status, found, _ in answers],
                         [(503, b"5")] * len(paths))
        self.read(s)
        answers, _ = kept_alive(s.site, *requests,
                                request(b"GET", b"/files/widget/" + _wheel("widget", "2.0").encode()))
        self.assertEqual([status for status, _, _ in answers], [200] * len(paths) + [403])

    def test_views_and_named_indexes(self):
        """A view that denies fails closed; the hosted index under it, ignoring them, does not."""
        s = self.serve("off")
        for path, headers in RELEASE_PATHS:
            self.assertEqual(s.request("GET", path, headers)[0], 200, path)
            self.assertEqual(s.request("GET", "/release" + path, headers)[0], 200, path)
            self.assertUnread(s, "/prod" + path, headers)
        self.read(s)
        self.assertEqual(s.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], REASON)
        self.assertEqual(s.request("GET", "/prod/files/widget/" + _wheel("widget", "3.0"))[0],
                         200)

    def test_warn_serves(self):
        """An index that warns serves everything while they are read, and warns once read."""
        s = self.serve("warn", prod="warn")
        for path, headers in RELEASE_PATHS:
            self.assertEqual(s.request("GET", path, headers)[0], 200, path)
            self.assertEqual(s.request("GET", "/prod" + path, headers)[0], 200, path)
        self.assertNotIn(b"Known vulnerabilities", s.request("GET", "/project/widget/2.0/")[2])
        self.read(s)
        self.assertIn(b"Known vulnerabilities", s.request("GET", "/project/widget/2.0/")[2])
        self.assertEqual(json.loads(s.request("GET", "/pypi/widget/2.0/json")[2])
                         ["vulnerabilities"][0]["id"], "GHSA-wdgt-0000-0002")

    def test_upstream(self):
        """
        An upstream project's page and files fail closed too (its page
        may be brought up to date meanwhile; no file is fetched).
        """
        s = self.serve("hide", upstream=True)
        for path in ("/simple/remote/", "/files/remote/" + _wheel("remote", "1.0"),
                     "/ext/simple/remote/", "/ext/files/remote/" + _wheel("remote", "1.0")):
            self.assertUnread(s, path, JSON)
        self.assertEqual([path for _, path, _ in s.origins.seen if path.startswith("/f/")], [])
        self.read(s)
        self.assertEqual(set(s.listed("/simple/remote/")), {_wheel("remote", "1.0")})
        self.assertEqual(s.request("GET", "/ext/files/remote/" + _wheel("remote", "1.0"))[0],
                         200)

    def test_failed(self):
        """Advisories that could not be read: the same refusal, saying so."""
        from pypid.core.security.advisories import FAILED
        s = self.serve("deny")
        s.board.replace(AdvisoryDB.unread_yet(FAILED))
        for path, headers in RELEASE_PATHS:
            self.assertUnread(s, path, headers, retry=b"60", word=b"could not be read")


class DecisionLogTests(SynchronousTestCase):
    """Each release whose decision changed is logged once, bounded."""

    def test_logged_once(self):
        """A change logs its releases once; the same database again, nothing."""
        board = AdvisoryBoard()
        policy = AdvisoryPolicy(rules("deny"), board)
        decisions = DecisionLog()
        releases = {"widget": ["1.0", "2.0", "3.0"]}
        reviewed = [("prod", policy, lambda p: releases.get(p, ()))]
        from twisted.logger import globalLogPublisher
        lines = []
        globalLogPublisher.addObserver(lines.append)
        self.addCleanup(globalLogPublisher.removeObserver, lines.append)
        board.replace(AdvisoryDB.of([WIDGET_2]))
        self.assertEqual(decisions.review(reviewed, {"widget"}), 1)
        board.replace(AdvisoryDB.of([WIDGET_2]))
        self.assertEqual(decisions.review(reviewed, {"widget"}), 0)
        board.replace(AdvisoryDB.of([]))
        self.assertEqual(decisions.review(reviewed, {"widget"}), 1)
        text = [formatEvent(e) for e in lines if "is now" in formatEvent(e)]
        self.assertEqual(text, ["prod: widget 2.0 is now denied (GHSA-wdgt-0000-0002)",
                                "prod: widget 2.0 is now allowed (GHSA-wdgt-0000-0002)"])

    def test_bounded(self):
        """Past the most lines, one summary line counts the rest."""
        board = AdvisoryBoard()
        policy = AdvisoryPolicy(rules("hide"), board)
        many = Advisory("PYSEC-2026-9", affected=(Affected("widget", (), frozenset(
            release_key(f"1.{i}") for i in range(30))),))
        board.replace(AdvisoryDB.of([many]))
        from twisted.logger import globalLogPublisher
        lines = []
        globalLogPublisher.addObserver(lines.append)
        self.addCleanup(globalLogPublisher.removeObserver, lines.append)
        decisions = DecisionLog(max_lines=10)
        self.assertEqual(decisions.review(
            [("default", policy, lambda p: [f"1.{i}" for i in range(30)])], {"widget"}), 30)
        text = [formatEvent(e) for e in lines]
        self.assertEqual(len([t for t in text if "is now hidden" in t]), 10)
        self.assertIn("Advisories: 20 more releases changed decision (not listed)", text)


class DaemonReloadTests(_ServerMixin, SynchronousTestCase):
    """
    The whole server in memory (L{build_service}): the registry's listener
    on the board, and the rules of every index taken at C{SIGHUP}, a
    hosted index's included.
    """

    SECTIONS = "[index:release]\n{release}[index:prod]\nview = yes\nbases = release\n{prod}"

    def setUp(self):
        super().setUp()
        self.text = self.server = ""
        for name, version in (("widget", "1.0"), ("widget", "2.0"), ("gadget", "1.0")):
            filename, data = make_wheel(name, version)
            for folder in ("packages", os.path.join("packages", ".indexes", "release")):
                write_file(os.path.join(self.folder, folder, filename), data)

    def serving(self, text, server):
        """A started server of C{text} and C{server} (C{[pypid]}'s lines)."""
        self.text, self.server = text, server
        self.reactor.advance(time.time() - self.reactor.seconds())
        service = build_service(self.config(text, server), self.reactor, pools=fake_pools(),
                                load_config=lambda: self.config(self.text, self.server))
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        web = service.getServiceNamed("web")
        self.treq = site_treq(web.web.site)
        # (the registry the server was built with: its board is the loader's to fill)
        self.registry = web._indexes._registry
        return service

    def listed(self, path):
        """C{{filename: yanked}} of the JSON page at C{path}."""
        response = self.successResultOf(self.treq.get("http://127.0.0.1" + path, headers=JSON))
        body = self.successResultOf(self.treq.content(response))
        self.assertEqual(response.code, 200, body)
        return {f["filename"]: f["yanked"] for f in json.loads(body)["files"]}

    def test_board_listener(self):
        """
        Replacing the board's database drops, in each index acting on
        advisories, the pages of the projects it names, and those only.
        """
        self.serving(self.SECTIONS.format(release="advisories = hide\n", prod=""),
                     "advisories = hide\n")
        for path in ("/simple/widget/", "/release/simple/widget/", "/prod/simple/widget/"):
            self.assertEqual(len(self.listed(path)), 2, path)
        self.listed("/simple/gadget/")
        default = self.registry.default.index
        gadget = default.project("gadget")
        with capturedLogs() as events:
            self.registry.board.replace(AdvisoryDB.of([WIDGET_2]))
        self.assertTrue(gadget.rendered)
        self.assertFalse(default.project("widget").rendered)
        for path in ("/simple/widget/", "/release/simple/widget/", "/prod/simple/widget/"):
            self.assertEqual(set(self.listed(path)), {_wheel("widget", "1.0")}, path)
        lines = [formatEvent(e) for e in events]
        for index in ("default", "release", "prod"):
            self.assertIn(f"{index}: widget 2.0 is now hidden (GHSA-wdgt-0000-0002)", lines)

    def test_rules_reload(self):
        """
        C{SIGHUP} takes the advisory keys of C{[pypid]}, of a hosted index
        and of a view (a change of these keys alone): the pages follow.
        """
        service = self.serving(self.SECTIONS.format(release="", prod=""), "")
        self.registry.board.replace(AdvisoryDB.of([WIDGET_2]))
        for path in ("/simple/widget/", "/release/simple/widget/", "/prod/simple/widget/"):
            self.assertEqual(self.listed(path)[_wheel("widget", "2.0")], False, path)
        self.text = self.SECTIONS.format(release="advisories = deny\n",
                                         prod="advisories = deny\nadvisory_waive = widget==2.0\n")
        self.server = "advisories = hide\n"
        with capturedLogs() as events:
            service.reload()
        lines = [formatEvent(e) for e in events]
        self.assertTrue([line for line in lines
                         if "advisory rules of default, release, prod" in line], lines)
        self.assertIn("default: widget 2.0 is now hidden (GHSA-wdgt-0000-0002)", lines)
        self.assertNotIn(_wheel("widget", "2.0"), self.listed("/simple/widget/"))
        self.assertEqual(self.listed("/release/simple/widget/")[_wheel("widget", "2.0")], REASON)
        self.assertEqual(self.listed("/prod/simple/widget/")[_wheel("widget", "2.0")], False)


class ServerStartTests(_ServerMixin, SynchronousTestCase):
    """
    The whole server in memory, started with C{[advisories] path} (issue
    43): the listeners open before the advisories are read; meanwhile
    C{/health} says so, and the indexes that hide or deny fail closed;
    the read (from the compact cache its last start wrote) puts them in force.
    """

    def setUp(self):
        super().setUp()
        filename, data = make_wheel("widget", "2.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        self.records = write_folder(os.path.join(self.folder, "osv"), [
            osv_record("GHSA-wdgt-0000-0002", "widget", versions=["2.0"], severity="HIGH")])
        # (the cache a first start wrote: read back, no child reads the records here)
        limits = ArchiveLimits()
        compile_sources(CompileTask(
            self.records, None, cache_path(os.path.join(self.folder, "index.json")),
            cache_key([self.records], signature([self.records]), limits), limits))

    def start(self, mode):
        """A server whose default index's mode is C{mode}; its first read held."""
        self.held = []

        def run(f, *args):
            if f is signature:
                d = Deferred()
                self.held.append((d, f, args))
                return d
            return run_now(f, *args)

        self.mode = mode
        self.reactor.advance(time.time() - self.reactor.seconds())

        def config():
            return self.config(f"[advisories]\npath = {self.records}\n",
                               f"advisories = {self.mode}\n")

        service = build_service(config(), self.reactor, pools=fake_pools(run=run),
                                load_config=config)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        self.treq = site_treq(service.getServiceNamed("web").web.site)
        return service

    def get(self, path):
        response = self.successResultOf(self.treq.get("http://127.0.0.1" + path, headers=JSON))
        return response, self.successResultOf(self.treq.content(response))

    def release(self):
        while self.held:
            d, f, args = self.held.pop()
            d.callback(f(*args))

    def test_order(self):
        """The first read begins once the listeners are open."""
        names = [name for name, _ in self.start("deny")._parts]
        self.assertEqual(names[names.index("listeners") + 1], "advisories-read")
        self.assertLess(names.index("advisories"), names.index("index"))

    def test_health_and_pages(self):
        """
        C{deny}: C{/health} is a 503 (starting, the advisories reading)
        and widget's page too until the read; then both are served.
        """
        self.start("deny")
        self.assertEqual(len(self.held), 1)
        response, body = self.get("/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body), {"status": "starting", "storage": "ok",
                                            "advisories": "reading"})
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        self.assertEqual(self.get("/simple/widget/")[0].code, 503)
        self.assertEqual(self.get("/simple/")[0].code, 200)
        with capturedLogs() as events:
            self.release()
        self.assertTrue(any("from its compact cache" in formatEvent(e) for e in events))
        response, body = self.get("/health")
        self.assertEqual((response.code, json.loads(body)), (200, {"status": "ok",
                                                                   "storage": "ok"}))
        response, body = self.get("/simple/widget/")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["files"][0]["yanked"],
                         "denied by advisory GHSA-wdgt-0000-0002 (high): "
                         "GHSA-wdgt-0000-0002 in widget")

    def test_warn_healthy(self):
        """C{warn}: C{/health} says the advisories are read, with a 200: every page is served."""
        self.start("warn")
        response, body = self.get("/health")
        self.assertEqual((response.code, json.loads(body)),
                         (200, {"status": "ok", "storage": "ok", "advisories": "reading"}))
        self.assertEqual(self.get("/simple/widget/")[0].code, 200)

    def test_failed(self):
        """A first read that fails: C{/health} a 503, degraded, the advisories failed."""
        from pypid.advisories import compact_cache
        os.remove(cache_path(os.path.join(self.folder, "index.json")))
        self.start("hide")
        self.patch(ChildCompiler, "compile", lambda compiler, task: compact_cache.Compiled(
            refused="the archive is hostile"))
        with capturedLogs() as events:
            self.release()
        self.assertIn("the archive is hostile", " ".join(formatEvent(e) for e in events))
        response, body = self.get("/health")
        self.assertEqual((response.code, json.loads(body)),
                         (503, {"status": "degraded", "storage": "ok", "advisories": "failed"}))
        self.assertEqual(self.get("/simple/widget/")[0].code, 503)

    def test_rules_changed_while_unread(self):
        """
        A SIGHUP while the advisories are read that makes an index deny:
        the pages it kept, composed under the old rules, go; it fails closed.
        """
        service = self.start("off")
        self.assertEqual(self.get("/simple/widget/")[0].code, 200)
        self.mode = "deny"
        with capturedLogs():
            service.reload()
        self.assertEqual(self.get("/simple/widget/")[0].code, 503)
        self.release()
        self.assertEqual(self.get("/simple/widget/")[0].code, 200)
