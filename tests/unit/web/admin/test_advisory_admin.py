"""
Tests for C{GET /api/advisories} (L{pypid.web.admin.advisory_admin}) and
C{pypid-admin advisories check}: what the advisories do to each index, and
the dry run of another mode, over the whole server in memory.
"""

import argparse
import io
import json
import os
import time
from base64 import b64encode

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.cli.admin import _advisories
from pypid.core.dists.version_order import release_key
from pypid.core.security.advisories import Advisory, AdvisoryDB
from pypid.core.security.advisory_waivers import parse_waiver
from pypid.core.security.affected_releases import Affected
from pypid.daemon.server import build_service
from tests.harness.distributions import make_wheel
from tests.harness.fakes import FAST, site_treq, write_file
from tests.harness.indexes import _ServerMixin
from tests.harness.tap import ThreadedReactor, checking_pools

PASSWORD = "correct horse"
WIDGET_2 = Advisory("GHSA-wdgt-0000-0002", aliases=("CVE-2026-0002",), summary="runs input",
                    severity="high",
                    affected=(Affected("widget", (), frozenset({release_key("2.0")})),))
GADGET_1 = Advisory("PYSEC-2026-7", severity="low",
                    affected=(Affected("gadget", (), frozenset({release_key("1.0")})),))


class _AdvisedServer(_ServerMixin):
    """The server: a default index that hides and a view that ignores advisories."""

    def setUp(self):
        super().setUp()
        self.reactor = ThreadedReactor()
        for name, version in (("widget", "1.0"), ("widget", "2.0"), ("gadget", "1.0")):
            filename, data = make_wheel(name, version)
            write_file(os.path.join(self.folder, "packages", filename), data)
        users = "".join(f"{name} = {hash_password(PASSWORD, FAST)}\n" for name in ("root", "bob"))
        self.service = service = self.started_with(
            "[auth]\nadmins = root\n[users]\n" + users
            + "[index:prod]\nview = yes\nbases = default\nadvisories = off\n",
            "advisories = hide\nadvisory_severity = medium\n")
        web = service.getServiceNamed("web")
        self.treq = site_treq(web.web.site)
        self.board = web._indexes._registry.board
        self.board.replace(AdvisoryDB.of([WIDGET_2, GADGET_1], "osv.zip"))

    def started_with(self, text, server):
        self.reactor.advance(time.time() - self.reactor.seconds())
        service = build_service(self.config(text, server), self.reactor, pools=checking_pools())
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        return service

    def get(self, query="", user="root"):
        auth = b64encode(f"{user}:{PASSWORD}".encode()).decode()
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1/api/advisories" + query, headers={"Authorization": "Basic " + auth}))
        body = self.successResultOf(self.treq.content(response))
        return response.code, body



class AdvisoryCheckTests(_AdvisedServer, SynchronousTestCase):
    """The dry run over a default index that hides and a view that ignores advisories."""

    def test_each_index(self):
        """The default index hides widget 2.0 (gadget's low advisory is below medium); prod is off."""
        code, body = self.get()
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual(answer["database"], {"advisories": 2, "projects": 2,
                                              "source": "osv.zip"})
        self.assertIsNone(answer["dry_run"])
        reports = {r["index"]: r for r in answer["indexes"]}
        self.assertEqual((reports["default"]["mode"], reports["default"]["severity"]),
                         ("hide", "medium"))
        [release] = reports["default"]["releases"]
        self.assertEqual((release["project"], release["version"], release["action"]),
                         ("widget", "2.0", "hide"))
        self.assertEqual(release["advisories"], [{"id": "GHSA-wdgt-0000-0002",
                                                  "aliases": ["CVE-2026-0002"],
                                                  "severity": "high", "summary": "runs input"}])
        self.assertEqual(reports["prod"]["releases"], [])
        self.assertEqual(reports["prod"]["stricter_bases"], [{"index": "default", "mode": "hide"}])
        self.assertEqual(reports["default"]["stricter_bases"], [])

    def test_dry_run(self):
        """
        C{mode=deny}: what each index would deny, its severity (medium,
        [pypid]'s) kept, so not gadget's low advisory; C{index} keeps one.
        """
        answer = json.loads(self.get("?mode=deny&index=prod")[1])
        self.assertEqual(answer["dry_run"], "deny")
        [report] = answer["indexes"]
        self.assertEqual(report["index"], "prod")
        self.assertEqual(report["stricter_bases"], [], "a dry run puts every index in one mode")
        self.assertEqual([(r["project"], r["version"], r["action"]) for r in report["releases"]],
                         [("widget", "2.0", "deny")])

    def test_refused(self):
        """A bad mode, an unknown index and a user who is no admin are refused, each named."""
        self.assertEqual(self.get("?mode=block"),
                         (400, b"mode: one of warn, hide, deny (or none for each index's own)\n"))
        self.assertEqual(self.get("?index=nosuch"), (404, b"index: no index 'nosuch'\n"))
        self.assertEqual(self.get(user="bob")[0], 403)

    def test_unread(self):
        """
        While the advisories are still being read (issue 43), what they do
        is not known: a 503 saying so, not a report of nothing.
        """
        self.board.replace(AdvisoryDB.unread_yet())
        code, body = self.get()
        self.assertEqual(code, 503)
        self.assertIn(b"still being read", body)

    def test_cli_lines(self):
        """C{pypid-admin advisories check} prints a line a release, then a count an index."""
        answer = json.loads(self.get()[1])
        out = io.StringIO()
        _advisories(_Answering(answer), argparse.Namespace(index=None, mode=None), out)
        self.assertEqual(out.getvalue().splitlines(), [
            "2 advisories of 2 projects in force (from osv.zip)",
            "default: widget 2.0 hidden: GHSA-wdgt-0000-0002 (high) runs input",
            "default: 1 release hidden",
            "prod: advisories are off (try --as deny for a dry run)",
            "prod: serves default's releases by its own mode (off), though default is in"
            " hide: set prod's own advisories key to act on them",
        ])


class _Answering:
    """A server (L{pypid.cli.server_client.Server}) answering one JSON value."""

    def __init__(self, value):
        self.value = value

    def request(self, method, path, headers=None, body=None):
        return _Response(json.dumps(self.value).encode())


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ConsoleAdvisoriesTests(_AdvisedServer, SynchronousTestCase):
    """The console's advisories page (admins): GET /api/advisories's report, and a dry run."""

    def console(self, path, user="root"):
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/login", data={"user": user, "password": PASSWORD},
            allow_redirects=False))
        self.assertEqual(response.code, 303)
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1" + path, headers={"Cookie": cookie}, allow_redirects=False))
        return response.code, self.successResultOf(self.treq.content(response))

    def test_page(self):
        code, page = self.console("/console/advisories")
        self.assertEqual(code, 200, page)
        self.assertIn(b"2 advisories of 2 projects from osv.zip.", page)
        self.assertIn(b"<td>widget</td><td>2.0</td><td>hide</td>"
                      b"<td>GHSA-wdgt-0000-0002 (high)</td>", page)
        self.assertIn(b"It acts on no release.", page)
        code, page = self.console("/console/advisories?mode=deny")
        self.assertIn(b'<option value="deny" selected>', page)
        self.assertIn(b"<h2>prod</h2><p>Mode <strong>deny</strong>", page)
        self.assertNotIn(b"It acts on no release.", page)
        self.assertEqual(self.console("/console/advisories", user="bob")[0], 403)
        self.assertEqual(self.console("/console/advisories?mode=off")[0], 400)


class WaiverTests(_AdvisedServer, SynchronousTestCase):
    """
    The waivers admins keep (issue 44): C{/api/advisories/waivers}, kept
    in the default index's storage, acted on by the index at once and
    after a restart, each change audited.
    """

    def call(self, method, path, user="root", **kwargs):
        headers = {}
        if user is not None:
            auth = b64encode(f"{user}:{PASSWORD}".encode()).decode()
            headers["Authorization"] = "Basic " + auth
        response = self.successResultOf(self.treq.request(
            method, "http://127.0.0.1" + path, headers=headers, **kwargs))
        return response.code, self.successResultOf(self.treq.content(response))

    def waive(self, user="root", **fields):
        return self.call("POST", "/api/advisories/waivers", user=user,
                         data=json.dumps(fields).encode())

    def listed(self, project="widget", index=""):
        """The versions the simple page of C{project} lists."""
        path = f"/{index}/simple/{project}/" if index else f"/simple/{project}/"
        code, body = self.call("GET", path, user=None)
        self.assertEqual(code, 200, body)
        return sorted(v for v in ("1.0", "2.0") if f"-{v}-".encode() in body)

    def test_failed_read_reported(self):
        """
        A read of the kept document that fails: C{GET} says C{"read": false}
        (not a read that never happened, taken for a good one).
        """
        code, body = self.call("GET", "/api/advisories/waivers")
        self.assertEqual((code, json.loads(body)["read"]), (200, True))
        # (a folder where the document is kept: every read fails)
        os.makedirs(os.path.join(self.folder, "packages", ".pypid", "waivers.json"))
        keeper = self.service.getServiceNamed("advisory-waivers")
        self.reactor.advance(keeper.interval)
        self.successResultOf(keeper.refresh())
        code, body = self.call("GET", "/api/advisories/waivers")
        self.assertEqual((code, json.loads(body)["read"]), (200, False))
        self.flushLoggedErrors()

    def test_waive_and_unwaive(self):
        """
        An advisory waived for widget lets its 2.0 through the default
        index at once; the waiver is listed, in the storage's document,
        audited with the admin's name, and its removal hides 2.0 again.
        """
        self.assertEqual(self.listed(), ["1.0"])
        code, body = self.waive(index="default", project="Widget",
                                advisory="cve-2026-0002", reason="not reachable from our code")
        self.assertEqual(code, 201, body)
        waiver = json.loads(body)["waiver"]
        self.assertEqual({k: waiver[k] for k in ("index", "project", "advisory", "version",
                                                  "reason", "by")},
                         {"index": "default", "project": "widget",
                          "advisory": "CVE-2026-0002", "version": None,
                          "reason": "not reachable from our code", "by": "root"})
        self.assertEqual(self.listed(), ["1.0", "2.0"])
        self.assertEqual(json.loads(self.get()[1])["indexes"][0]["releases"], [])
        code, body = self.call("GET", "/api/advisories/waivers?project=WIDGET")
        self.assertEqual([w["advisory"] for w in json.loads(body)["waivers"]],
                         ["CVE-2026-0002"])
        with open(os.path.join(self.folder, "packages", ".pypid", "waivers.json"), "rb") as f:
            self.assertIn(b'"CVE-2026-0002"', f.read())
        code, body = self.call(
            "DELETE", "/api/advisories/waivers?index=default&project=widget"
            "&advisory=CVE-2026-0002")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.listed(), ["1.0"])
        self.assertEqual(self.call(
            "DELETE", "/api/advisories/waivers?index=default&project=widget"
            "&advisory=CVE-2026-0002"), (404, b"no such waiver\n"))
        code, body = self.call("GET", "/api/audit?event=advisory-waive")
        self.assertEqual(code, 200, body)
        [entry] = json.loads(body)["entries"]
        self.assertEqual((entry["user"], entry["project"], entry["outcome"]),
                         ("root", "widget", "ok"))
        self.assertEqual(entry["detail"], "CVE-2026-0002: not reachable from our code")
        code, body = self.call("GET", "/api/audit?event=advisory-unwaive")
        self.assertEqual(sorted((e["outcome"], e.get("project"))
                                for e in json.loads(body)["entries"]),
                         [("ok", "widget"), ("refused", None)])

    def test_release_waiver(self):
        """A release's waiver (C{version}) lets it through every advisory, 2 being 2.0."""
        code, body = self.waive(index="default", project="widget", version="2")
        self.assertEqual(code, 201, body)
        self.assertEqual(self.listed(), ["1.0", "2.0"])
        code, body = self.call("GET", "/api/advisories/project/widget")
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        [release] = answer["releases"]
        self.assertEqual((release["version"], release["action"]), ("2.0", None))
        self.assertEqual([a["standing"] for a in release["advisories"]], ["waived"])
        self.assertEqual([w["version"] for w in answer["waivers"]], ["2"])
        # (a waiver of the same release replaces it)
        self.assertEqual(self.waive(index="default", project="widget", version="2.0",
                                    reason="again")[0], 201)
        code, body = self.call("GET", "/api/advisories/waivers")
        self.assertEqual([(w["version"], w["reason"]) for w in json.loads(body)["waivers"]],
                         [("2.0", "again")])

    def test_dry_run_keeps_them(self):
        """A dry run in any mode keeps each index's waivers, as it keeps its severity."""
        self.assertEqual(self.waive(index="default", project="widget",
                                    advisory="CVE-2026-0002")[0], 201)
        for query in ("?index=default", "?index=default&mode=hide", "?index=default&mode=deny"):
            [report] = json.loads(self.get(query)[1])["indexes"]
            self.assertEqual(report["releases"], [], query)

    def test_an_index_gone(self):
        """A waiver of an index the configuration no longer has is listed and removed."""
        keeper = self.service.getServiceNamed("web")._indexes._registry.waivers
        gone = parse_waiver({"index": "gone", "project": "widget", "version": "1.0"})
        self.successResultOf(keeper.change(lambda w: (w.adding(gone), gone)))
        code, body = self.call("GET", "/api/advisories/waivers?index=gone")
        self.assertEqual([w["index"] for w in json.loads(body)["waivers"]], ["gone"])
        code, body = self.call("DELETE", "/api/advisories/waivers?index=gone&project=widget"
                                         "&version=1.0")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.waive(index="gone", project="widget", version="1.0"),
                         (400, b"index: no index 'gone'\n"))

    def test_a_view(self):
        """A waiver of a view acts on the view only."""
        self.assertEqual(self.waive(index="prod", project="widget",
                                    advisory="GHSA-wdgt-0000-0002")[0], 201)
        self.assertEqual(self.listed(), ["1.0"])

    def test_survives_a_restart(self):
        """A server started again over the same storage acts by the waivers kept."""
        self.assertEqual(self.waive(index="default", project="widget", version="2.0")[0], 201)
        self.successResultOf(self.service.stopService())
        service = self.started_with(
            "[auth]\nadmins = root\n[users]\n"
            + f"root = {hash_password(PASSWORD, FAST)}\n",
            "advisories = hide\nadvisory_severity = medium\n")
        registry = service.getServiceNamed("web")._indexes._registry
        registry.board.replace(AdvisoryDB.of([WIDGET_2, GADGET_1], "osv.zip"))
        self.assertIsNone(registry.policies["default"].verdict("widget", "2.0"))
        self.assertEqual(len(registry.waivers.current), 1)

    def test_project_report(self):
        """
        C{GET /api/advisories/project/<p>}: each affected release, newest
        first, its action, and where the index stands on each advisory.
        """
        code, body = self.call("GET", "/api/advisories/project/Widget")
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual((answer["index"], answer["project"], answer["mode"]),
                         ("default", "widget", "hide"))
        [release] = answer["releases"]
        self.assertEqual((release["version"], release["action"]), ("2.0", "hide"))
        self.assertEqual([(a["id"], a["standing"]) for a in release["advisories"]],
                         [("GHSA-wdgt-0000-0002", "acted")])
        code, body = self.call("GET", "/api/advisories/project/gadget")
        self.assertEqual([a["standing"] for a in json.loads(body)["releases"][0]["advisories"]],
                         ["below-severity"])
        self.assertEqual(self.call("GET", "/api/advisories/project/nosuch")[0], 404)
        self.assertEqual(self.call("GET", "/api/advisories/project/widget?index=nosuch")[0],
                         404)
        self.assertEqual(self.call("GET", "/api/advisories/project/widget", user=None)[0], 401)

    def test_refused(self):
        """Bad requests get a 400 naming the field; others than admins are refused."""
        cases = [
            ({"index": "default", "project": "widget"},
             b"advisory or version: exactly one is required\n"),
            ({"index": "default", "project": "widget", "advisory": "X-1", "version": "1"},
             b"advisory or version: exactly one is required\n"),
            ({"index": "nosuch", "project": "widget", "advisory": "X-1"},
             b"index: no index 'nosuch'\n"),
            ({"project": "widget", "advisory": "X-1"}, b"index: required\n"),
            ({"index": "default", "project": "-bad-", "advisory": "X-1"},
             b"project: a valid project name is required\n"),
            ({"index": "default", "project": "widget", "advisory": "X 1"},
             b"advisory: an advisory identifier is required\n"),
            ({"index": "default", "project": "widget", "advisory": "X-1", "reason": "a\nb"},
             b"reason: a single line of printable text is required\n"),
            ({"index": "default", "project": "widget", "advisory": "X-1", "reason": "r" * 201},
             b"reason: at most 200 characters\n"),
            ({"index": "default", "project": "widget", "advisory": "X-1", "by": "eve"},
             b"by: unknown field\n"),
            ({"index": "default", "project": "widget", "advisory": ["X-1"]},
             b"advisory: text is required\n"),
        ]
        for fields, said in cases:
            self.assertEqual(self.waive(**fields), (400, said), fields)
        self.assertEqual(self.call("POST", "/api/advisories/waivers", data=b"[1]"),
                         (400, b"the body is not a JSON object\n"))
        self.assertEqual(self.call("POST", "/api/advisories/waivers", data=b"{"),
                         (400, b"the body is not JSON\n"))
        self.assertEqual(self.call("POST", "/api/advisories/waivers", data=b" " * 5000),
                         (400, b"the body is larger than 4096 bytes\n"))
        self.assertEqual(self.waive(user="bob", index="default", project="widget",
                                    advisory="X-1")[0], 403)
        self.assertEqual(self.waive(user=None, index="default", project="widget",
                                    advisory="X-1")[0], 401)
        self.assertEqual(self.call("GET", "/api/advisories/waivers", user="bob")[0], 403)
        self.assertEqual(self.call("DELETE", "/api/advisories/waivers?index=default",
                                   )[0], 400)
        # (who asks is checked before the fields are read, as for a waive)
        self.assertEqual(self.call("DELETE", "/api/advisories/waivers?advisory=%ff",
                                   user="bob")[0], 403)
        self.assertEqual(self.call("DELETE", "/api/advisories/waivers?advisory=%ff"),
                         (400, b"advisory: not valid UTF-8\n"))
        code, body = self.call("GET", "/api/audit?event=advisory-unwaive")
        self.assertEqual([(e["user"], e["outcome"]) for e in json.loads(body)["entries"]],
                         [("root", "refused"), ("bob", "refused"), ("root", "refused")],
                         "each refusal to someone logged in audited")
        self.assertEqual(self.listed(), ["1.0"])


class ConsoleWaiverTests(_AdvisedServer, SynchronousTestCase):
    """The project page's waivers (admins): its forms call the API's own code."""

    def session(self, user="root"):
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/login", data={"user": user, "password": PASSWORD},
            allow_redirects=False))
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        page = self.page(cookie)[1]
        csrf = page.split(b'name="csrf" value="')[1].split(b'"')[0].decode()
        return cookie, csrf

    def page(self, cookie, path="/console/project/widget/"):
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1" + path, headers={"Cookie": cookie}, allow_redirects=False))
        return response.code, self.successResultOf(self.treq.content(response))

    def post(self, cookie, verb, **fields):
        response = self.successResultOf(self.treq.post(
            f"http://127.0.0.1/console/project/widget/{verb}", data=fields,
            headers={"Cookie": cookie}, allow_redirects=False))
        return response.code, self.successResultOf(self.treq.content(response))

    def test_waive_then_unwaive(self):
        """
        The page lists the advisory acted on with a Waive button; the form
        keeps the waiver, the page then lists it with Unwaive.
        """
        cookie, csrf = self.session()
        code, page = self.page(cookie)
        self.assertEqual(code, 200, page)
        self.assertIn(b"<td>2.0</td><td>GHSA-wdgt-0000-0002</td><td>high</td>"
                      b"<td>runs input</td><td>acted on</td>", page)
        self.assertIn(b'aria-label="Waive GHSA-wdgt-0000-0002"', page)
        code, body = self.post(cookie, "waive", csrf=csrf, advisory="GHSA-wdgt-0000-0002",
                               reason="sandboxed", project="gadget")
        self.assertEqual(code, 303, body)
        [waiver] = json.loads(self.get("/waivers")[1])["waivers"]
        self.assertEqual((waiver["index"], waiver["project"], waiver["reason"]),
                         ("default", "widget", "sandboxed"),
                         "the page's project, never the form's")
        page = self.page(cookie)[1]
        self.assertIn(b"<td>waived</td>", page)
        self.assertIn(b'aria-label="Unwaive GHSA-WDGT-0000-0002"', page)
        self.assertEqual(self.post(cookie, "unwaive", csrf=csrf,
                                   advisory="GHSA-wdgt-0000-0002")[0], 303)
        self.assertEqual(json.loads(self.get("/waivers")[1])["waivers"], [])
        code, page = self.post(cookie, "unwaive", csrf=csrf, advisory="GHSA-wdgt-0000-0002")
        self.assertEqual(code, 404)
        self.assertIn(b"no such waiver", page)

    def test_refused(self):
        """Without the session's CSRF token, or as another than an admin, nothing is kept."""
        cookie, csrf = self.session()
        self.assertEqual(self.post(cookie, "waive", advisory="X-1")[0], 403)
        cookie, csrf = self.session("bob")
        page = self.page(cookie)[1]
        self.assertNotIn(b'aria-label="Waive', page)
        self.assertIn(b"acted on", page)
        code, body = self.post(cookie, "waive", csrf=csrf, advisory="X-1")
        self.assertEqual(code, 403, body)
        self.assertIn(b"bob is not an admin", body)
        # (who asks before what the form says, and the page with the refusal)
        code, body = self.post(cookie, "unwaive", csrf=csrf, advisory=b"\xff")
        self.assertEqual(code, 403, body)
        self.assertIn(b"bob is not an admin", body)
        self.assertEqual(json.loads(self.get("/waivers")[1])["waivers"], [])

    def test_bad_form_audited(self):
        """A form the API refuses is refused on the page, and audited as the API's refusal."""
        cookie, csrf = self.session()
        code, page = self.post(cookie, "waive", csrf=csrf, advisory="X 1")
        self.assertEqual(code, 400, page)
        self.assertIn(b"advisory: an advisory identifier is required", page)
        self.assertIn(b'id="console-error"', page)
        auth = b64encode(f"root:{PASSWORD}".encode()).decode()
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1/api/audit?event=advisory-waive",
            headers={"Authorization": "Basic " + auth}))
        entries = json.loads(self.successResultOf(self.treq.content(response)))["entries"]
        self.assertEqual([(e["user"], e["outcome"]) for e in entries], [("root", "refused")])


class IndexesTests(_AdvisedServer, SynchronousTestCase):
    """
    C{GET /api/indexes} and the console's "Indexes" page (admins; issue
    44): the default hosted index with its sizes, and a view of it.
    """

    def api(self, user="root"):
        auth = b64encode(f"{user}:{PASSWORD}".encode()).decode()
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1/api/indexes", headers={"Authorization": "Basic " + auth}))
        return response.code, self.successResultOf(self.treq.content(response))

    def test_api(self):
        code, body = self.api()
        self.assertEqual(code, 200, body)
        found = json.loads(body)
        default, prod = found["indexes"]
        self.assertEqual({k: default[k] for k in ("name", "kind", "path", "sources",
                                                  "advisories", "projects", "files")},
                         {"name": "default", "kind": "hosted", "path": "/", "sources": [],
                          "advisories": "hide", "projects": 2, "files": 3})
        sizes = sum(os.path.getsize(os.path.join(self.folder, "packages", name))
                    for name in os.listdir(os.path.join(self.folder, "packages"))
                    if name.endswith(".whl"))
        self.assertEqual(default["bytes"], sizes)
        self.assertEqual(default["recycle_bin"], {"files": 0, "bytes": 0})
        self.assertEqual(default["downloads"], {"days": 30, "total": 0})
        self.assertEqual(prod, {"name": "prod", "kind": "view", "path": "/prod/",
                                "sources": ["default"], "advisories": "off"})
        self.assertEqual(found["upstreams"], [])
        self.assertEqual(self.api("bob")[0], 403)

    def test_page(self):
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/login", data={"user": "root", "password": PASSWORD},
            allow_redirects=False))
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1/console/indexes", headers={"Cookie": cookie}))
        page = self.successResultOf(self.treq.content(response))
        self.assertEqual(response.code, 200, page)
        self.assertIn(b'<td><a href="../simple/">default</a></td><td>hosted</td><td>none</td>'
                      b'<td>hide</td><td>2</td><td>3</td>', page)
        self.assertIn(b'<td><a href="../prod/simple/">prod</a></td><td>view</td>'
                      b'<td>default</td><td>off</td>', page)
        self.assertIn(b"The server proxies no upstream.", page)
