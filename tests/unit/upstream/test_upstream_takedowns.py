"""
Tests for the takedowns from an upstream (issue 46, part 3): a kept file
the upstream's page no longer lists (one version deleted, or the whole
project gone) is withheld once the page is refreshed, recorded (an audit
entry, a metric, C{GET /api/upstream/takedowns} and C{pypid-upstream
takedowns}), remembered across a restart, served again when listed
again; and served all the same with C{[upstream] keep_removed}.
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.cli.upstream import takedown_lines
from pypid.state.takedown_log import log_takedowns
from pypid.upstream.takedowns import MAX_TAKEDOWNS, Takedowns
from pypid.web.admin.cache_admin import CacheAdmin
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from tests.harness.fakes import FAST, run_in_pool_now
from tests.harness.upstream import BYTES_A, BYTES_B, INDEX_A, ORIGIN_A, WHEEL, Server, drain
from tests.harness.upstream_served import FILE_URL, PASSWORD, _Served, status_page

OTHER = "widget-1.1-py3-none-any.whl"
#: The upstream pages' time to live, as configured by default.
UPSTREAM_TTL = 600.0
OTHER_URL = f"http://{ORIGIN_A}/f/{OTHER}"


class TableTests(SynchronousTestCase):
    """The table of takedowns, worked out from each page."""

    def test_seen(self):
        table = Takedowns()
        down, back = table.seen("widget", ["a.whl", "b.whl"], ["b.whl", "c.whl"], 10.0)
        self.assertEqual(([t.filename for t in down], back), (["a.whl"], []))
        self.assertTrue(table.changed)
        # (seen again: once only)
        self.assertEqual(table.seen("widget", ["a.whl", "b.whl"], ["b.whl"], 20.0), ([], []))
        # (the whole project gone)
        down, _ = table.seen("widget", ["a.whl", "b.whl"], None, 30.0)
        self.assertEqual([t.filename for t in down], ["b.whl"])
        down, back = table.seen("widget", ["a.whl", "b.whl"], ["a.whl", "b.whl"], 40.0)
        self.assertEqual((down, sorted(t.filename for t in back)), ([], ["a.whl", "b.whl"]))
        self.assertEqual(len(table), 0)

    def test_evicted_forgotten(self):
        """A taken-down file evicted since is forgotten, without being said listed again."""
        table = Takedowns()
        table.seen("widget", ["a.whl"], [], 10.0)
        self.assertEqual(table.seen("widget", [], ["a.whl"], 20.0), ([], []))
        self.assertEqual(len(table), 0)

    def test_saved(self):
        table = Takedowns()
        table.seen("widget", ["a.whl"], [], 10.0)
        again = Takedowns()
        again.load_json(json.loads(json.dumps(table.to_json())))
        self.assertEqual(again.all(), table.all())
        again.load_json([{"project": 1}, "x", {"project": "p", "filename": "f", "seen": True}])
        self.assertEqual(len(again), 0)

    def test_bounded(self):
        table = Takedowns()
        table.seen("p", [f"{n}.whl" for n in range(MAX_TAKEDOWNS + 5)], [], 1.0)
        self.assertEqual(len(table), MAX_TAKEDOWNS)


class _Takedowns(_Served):
    def serve(self, state=None):
        super().serve(state)
        log_takedowns([self.source], self.audit, self.clock)

    def take_down(self):
        """The upstream deletes widget 1.0 (lists 1.1 alone); the page is refreshed."""
        self.origins.route(OTHER_URL, BYTES_B)
        self.publish(None, ((OTHER, OTHER_URL, BYTES_B),))
        self.refresh()

    def events(self):
        return [(event, project, detail) for event, _, _, project, detail in self.audited()
                if event.startswith("upstream-")]


class WithheldTests(_Takedowns, SynchronousTestCase):
    """By default, what the upstream took down is withheld."""

    def test_version_taken_down(self):
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.take_down()
        code, body = self.get(f"/files/widget/{WHEEL}")
        self.assertEqual(code, 404)
        self.assertIn(b"removed upstream", body)
        self.assertIn(b"keep_removed is off", body)
        self.assertEqual([t.filename for t in self.source.withheld()], [WHEEL])
        self.assertEqual(self.events(), [
            ("upstream-takedown", "widget",
             "upstream default: no longer listed upstream; not served")])
        families = {f.name: f for f in self.source.metric_families()}
        self.assertEqual(families["pypid_upstream_withheld_files"].samples[0][1], 1)
        self.assertEqual(families["pypid_upstream_takedowns_total"].samples[0][1], 1)
        # (refreshed again: seen once)
        self.refresh()
        self.assertEqual(len(self.events()), 1)

    def fetched_on_expiry(self):
        """The page asked for once its time to live passed: served, and fetched again behind."""
        self.clock.advance(UPSTREAM_TTL + 1)
        self.get("/simple/widget/")
        drain(self.agent, None)

    def test_flap_writes_nothing(self):
        """
        Issue 59, finding 7: a fetch on expiry that does not list a kept
        file (or the project's 404), then one that does, withholds nothing,
        keeps the page, and writes no takedown or relisted entry; the
        removal is taken once two such fetches a minute apart say so. An
        administrator's refresh takes what the upstream says at once.
        """
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        files = ((WHEEL, FILE_URL, BYTES_A), (OTHER, OTHER_URL, BYTES_B))
        self.origins.route(OTHER_URL, BYTES_B)
        for flap in (lambda: self.publish(None, ((OTHER, OTHER_URL, BYTES_B),)), self.remove):
            flap()
            self.fetched_on_expiry()
            self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
            self.assertIn(WHEEL, [f["filename"] for f in
                                  json.loads(self.get("/simple/widget/")[1])["files"]])
            self.publish(None, files)
            self.fetched_on_expiry()
            self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.events(), [])
        self.assertEqual(self.source.withheld(), [])
        # (said twice, far enough apart: taken)
        self.remove()
        self.fetched_on_expiry()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.fetched_on_expiry()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.assertEqual([e[0] for e in self.events()], ["upstream-takedown"])

    def test_survives_a_restart_then_listed_again(self):
        self.get(f"/files/widget/{WHEEL}")
        self.take_down()
        self.restart()
        self.assertEqual([t.filename for t in self.source.withheld()], [WHEEL])
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.publish(None, ((WHEEL, FILE_URL, BYTES_A), (OTHER, OTHER_URL, BYTES_B)))
        self.refresh()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.source.withheld(), [])
        self.assertEqual([e[0] for e in self.events()],
                         ["upstream-takedown", "upstream-relisted"])
        self.assertEqual(self.file_fetches(), 1, "served from the copy kept, not fetched again")

    def test_whole_project_removed(self):
        self.get(f"/files/widget/{WHEEL}")
        self.remove()
        self.refresh()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.assertEqual([t.filename for t in self.source.withheld()], [WHEEL])

    def test_quarantine_is_no_takedown(self):
        """A quarantine upstream withholds the files, and is not counted a takedown."""
        self.get(f"/files/widget/{WHEEL}")
        self.publish({"status": "quarantined", "reason": "malware"}, ())
        self.refresh()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.assertEqual(self.source.withheld(), [])

    def test_api_and_command(self):
        self.get(f"/files/widget/{WHEEL}")
        self.take_down()
        users = {"admin": hash_password(PASSWORD, FAST), "alice": hash_password(PASSWORD, FAST)}
        access = Gates(AccessModel(read="everyone", admins=frozenset({"admin"})),
                        PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now),
                        None, TokenBook(self.clock))

        admin = CacheAdmin(access, self.proxy, audit=AuditTrail(self.audit, self.clock),
                           sources=lambda: [self.source])
        client = StubTreq(admin.app.resource())
        response = self.successResultOf(client.get(
            "http://pypi.test/api/upstream/takedowns", auth=("admin", PASSWORD)))
        answer = json.loads(self.successResultOf(response.content()))
        self.assertEqual(answer["upstreams"][0]["keep_removed"], False)
        self.assertEqual([(f["project"], f["filename"]) for f in answer["upstreams"][0]["files"]],
                         [("widget", WHEEL)])
        response = self.successResultOf(client.get(
            "http://pypi.test/api/upstream/takedowns", auth=("alice", PASSWORD)))
        self.assertEqual(response.code, 403)
        lines = takedown_lines(answer)
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith(f"default: {WHEEL} (widget) no longer listed "
                                            "upstream since 2026-01-01"), lines[0])
        self.assertTrue(lines[0].endswith(": withheld"))
        self.assertEqual(lines[1], "default: 1 file taken down upstream")


class KeptServingTests(_Takedowns, SynchronousTestCase):
    """With C{keep_removed}, what the upstream took down is still served at its URL."""

    keep_removed = True

    def test_still_served(self):
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.take_down()
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.events(), [
            ("upstream-takedown", "widget",
             "upstream default: no longer listed upstream; still served (keep_removed)")])
        # (not listed on the page: a new resolution does not pick it)
        page = json.loads(self.get("/simple/widget/")[1])
        self.assertEqual([f["filename"] for f in page["files"]], [OTHER])


class YankReachesTests(_Takedowns, SynchronousTestCase):
    """A yank upstream reaches the proxy at the page's refresh: marked, still served, no takedown."""

    def test_yank_after_caching(self):
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        page = json.loads(status_page())
        page["files"][0]["yanked"] = "broken build"
        self.origins.route(INDEX_A + "widget/", json.dumps(page).encode())
        self.refresh()
        listed = json.loads(self.get("/simple/widget/")[1])["files"]
        self.assertEqual([(f["filename"], f["yanked"]) for f in listed], [(WHEEL, "broken build")])
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual((self.source.withheld(), self.events()), ([], []))


class KeptServingLimitsTests(_Takedowns, SynchronousTestCase):
    """C{keep_removed} serves what was taken down, and nothing else the pages leave out."""

    keep_removed = True

    def test_not_a_remembered_quarantine(self):
        """A quarantine remembered, its page forgotten, the upstream down: still withheld."""
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.publish({"status": "quarantined", "reason": "malware"})
        self.refresh()
        pages = self.source.pages
        pages._order.pop("widget")
        pages._evicted("widget")
        self.origins.route(INDEX_A + "widget/", b"down", status=503)
        self.assertEqual(self.get(f"/files/widget/{WHEEL}")[0], 404)
        self.flushLoggedErrors()


class KeptServingViewTests(SynchronousTestCase):
    """A view's filters still apply to what C{keep_removed} serves."""

    def test_cooldown_view(self):
        server = Server(self, keep_removed=True)
        self.assertEqual(server.json_page("/cool/simple/widget/")["files"], [])
        self.assertEqual(server.request(f"/staging/files/widget/{WHEEL}")[0], 200)
        # (kept, never taken down: the view's cooldown leaves it out)
        self.assertEqual(server.request(f"/cool/files/widget/{WHEEL}")[0], 404)
