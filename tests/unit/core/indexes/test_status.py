"""
Tests for projects' statuses (PEP 792, simple API 1.4; issue 27 section 2,
hosted): the admin route, the refusals, the audit entry, the uploads an
archived or quarantined project refuses, a quarantine that hides pages and
files from readers but not from admins, the markers on both page forms,
the status kept by storage across a restart, and the composed pages of a
named index.
"""

import json
import os

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.indexes import render
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.project_status import InvalidStatus, ProjectStatus, parse_status
from pypid.state.loader import IndexLoader
from pypid.storage.folder.local import LocalStorage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now
from tests.harness.memory_storage import MemoryStorage
from tests.harness.web import JSON_TYPE, SDIST, SDIST_NAME, WHEEL_NAME, _ServerMixin, basic

STATUS = "/api/projects/holy-grail/status"


class ParseTests(SynchronousTestCase):
    """What a status change's body may say."""

    def test_statuses(self):
        """Each PEP 792 status is read; C{active} is L{None}, with or without a reason."""
        self.assertIsNone(parse_status({"status": "active", "reason": "back"}))
        self.assertEqual(parse_status({"status": "archived", "reason": " done "}),
                         ProjectStatus("archived", "done"))
        self.assertEqual(parse_status({"status": "deprecated"}), ProjectStatus("deprecated"))

    def test_refused(self):
        """A bad status, a reason that is no short single line, another field: named."""
        for data, field in [({"status": "gone"}, "status:"), ({}, "status:"),
                            ({"status": "archived", "reason": 3}, "reason:"),
                            ({"status": "archived", "reason": "a\nb"}, "reason:"),
                            ({"status": "archived", "reason": "x" * 201}, "reason:"),
                            ({"status": "archived", "why": "x"}, "why:"), ([], "the body")]:
            with self.assertRaises(InvalidStatus) as caught:
                parse_status(data)
            self.assertTrue(str(caught.exception).startswith(field), (data, caught.exception))

    def test_bytes(self):
        """What storage keeps reads back as it was."""
        status = ProjectStatus("quarantined", "malware report")
        self.assertEqual(ProjectStatus.from_bytes(status.to_bytes()), status)
        with self.assertRaises(InvalidStatus):
            ProjectStatus.from_bytes(b"{")


class RenderTests(SynchronousTestCase):
    """The markers both page forms carry, at API version 1.4."""

    def test_html(self):
        """HTML: the version meta, then the status and its reason, escaped."""
        body = render.project_html("p", [], ProjectStatus("archived", 'no "more"'))
        self.assertIn(b'<meta name="pypi:repository-version" content="1.4">'
                      b'<meta name="pypi:project-status" content="archived">'
                      b'<meta name="pypi:project-status-reason" content="no &quot;more&quot;">',
                      body)
        self.assertNotIn(b"project-status", render.project_html("p", []))

    def test_json(self):
        """JSON: C{project-status} with its reason, left out for an active project."""
        page = json.loads(render.project_json("p", [], [], ProjectStatus("deprecated", "old")))
        self.assertEqual(page["meta"], {"api-version": "1.4"})
        self.assertEqual(page["project-status"], {"status": "deprecated", "reason": "old"})
        self.assertNotIn("project-status", json.loads(render.project_json("p", [], [])))


class StatusApiTests(_ServerMixin, SynchronousTestCase):
    """C{POST /api/projects/<project>/status} and what a status does to the index's paths."""

    def access_model(self):
        return AccessModel(read=self.read, admins=frozenset({"alice"}))

    def setUp(self):
        super().setUp()
        self.uploaded()

    def set_status(self, status, reason=None, user="alice", path=STATUS):
        """Ask for a status; return C{(code, body)}."""
        data = {"status": status} if reason is None else {"status": status, "reason": reason}
        response, body = self.request("POST", path, auth=basic(user),
                                      headers={"Content-Type": "application/json"},
                                      data=json.dumps(data).encode())
        return response.code, body

    def page(self, auth=False, kind=JSON_TYPE):
        """The project's simple page: C{(code, body)}."""
        response, body = self.request("GET", "/simple/holy-grail/", auth=auth,
                                      headers={"Accept": kind})
        return response.code, body

    def file_code(self, auth=False):
        """The status code of the project's wheel's download."""
        return self.request("GET", f"/files/holy-grail/{WHEEL_NAME}", auth=auth)[0].code

    def audit(self):
        """The audit log's status entries."""
        response, body = self.request("GET", "/api/audit?event=status", auth=True)
        self.assertEqual(response.code, 200, body)
        return json.loads(body)["entries"]

    def test_set_and_shown(self):
        """An admin archives a project: both page forms say so, the files stay."""
        self.assertEqual(self.set_status("archived", "moved on"),
                         (200, b"holy-grail is archived: moved on\n"))
        page = json.loads(self.page()[1])
        self.assertEqual(page["project-status"], {"status": "archived", "reason": "moved on"})
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL_NAME])
        html = self.page(kind="text/html")[1]
        self.assertIn(b'<meta name="pypi:project-status" content="archived">', html)
        self.assertEqual(self.file_code(), 200)
        self.assertEqual(self.index.statuses.get("holy-grail"), ProjectStatus("archived", "moved on"))

    def test_active_again(self):
        """C{active} takes the status away: no marker, and storage keeps nothing."""
        self.set_status("deprecated")
        self.assertEqual(self.set_status("active"), (200, b"holy-grail is active\n"))
        self.assertNotIn("project-status", json.loads(self.page()[1]))
        self.assertEqual(self.successResultOf(self.storage.statuses()), {})

    def test_refusals(self):
        """401 without credentials, 403 to a user who is no admin, 404, 400 naming the field."""
        response, _ = self.request("POST", STATUS, data=b"{}")
        self.assertEqual(response.code, 401)
        self.assertEqual(self.set_status("archived", user="dave")[0], 403)
        self.assertEqual(self.set_status("archived", path="/api/projects/nothing/status"),
                         (404, b"no such project\n"))
        code, body = self.set_status("closed")
        self.assertEqual(code, 400)
        self.assertTrue(body.startswith(b"status: "), body)
        code, body = self.set_status("archived", "two\nlines")
        self.assertEqual(code, 400)
        self.assertTrue(body.startswith(b"reason: "), body)
        self.assertIsNone(self.index.statuses.get("holy-grail"))

    def test_form_fields(self):
        """The route takes the form fields C{status} and C{reason} too."""
        response, body = self.request("POST", STATUS, auth=True,
                                      data={"status": "deprecated", "reason": "use ni"})
        self.assertEqual((response.code, body), (200, b"holy-grail is deprecated: use ni\n"))

    def test_audit_entry(self):
        """Each change is an audit entry C{status}, the status and reason in its detail."""
        self.set_status("quarantined", "malware report")
        self.set_status("deprecated", user="dave")
        entries = sorted((e["outcome"], e["user"], e["project"], e["detail"])
                         for e in self.audit())
        self.assertEqual(entries, [("ok", "alice", "holy-grail", "quarantined: malware report"),
                                   ("refused", "dave", "holy-grail", "dave is not an admin (the admins are named in [auth] admins)")])

    def test_upload_refused(self):
        """An archived or quarantined project takes no upload: 400 naming the status."""
        for status in ("archived", "quarantined"):
            self.set_status(status, "frozen")
            response, body = self.upload(SDIST_NAME, SDIST)
            self.assertEqual(response.code, 400)
            self.assertEqual(body, f"project holy-grail is {status} (frozen): it takes no new "
                                   "uploads\n".encode())
        self.assertIsNone(self.index.get_file(SDIST_NAME))
        self.set_status("deprecated")
        self.uploaded(SDIST_NAME, SDIST)

    def test_quarantine_hides(self):
        """
        Quarantined: the pages list no file and its files answer 404 to
        readers; admins still see and fetch them (uncached).
        """
        self.set_status("quarantined", "malware report")
        code, body = self.page()
        page = json.loads(body)
        self.assertEqual((code, page["files"], page["versions"]), (200, [], []))
        self.assertEqual(page["project-status"],
                         {"status": "quarantined", "reason": "malware report"})
        html = self.page(kind="text/html")[1]
        self.assertNotIn(WHEEL_NAME.encode(), html)
        self.assertIn(b'content="quarantined"', html)
        self.assertEqual(self.file_code(), 404)
        self.assertEqual(self.file_code(auth=basic("dave")), 404)
        self.assertEqual(self.request("GET", f"/files/holy-grail/{WHEEL_NAME}.metadata")[0].code,
                         404)
        # admins
        response, body = self.request("GET", "/simple/holy-grail/", auth=True,
                                      headers={"Accept": JSON_TYPE})
        self.assertEqual([f["filename"] for f in json.loads(body)["files"]], [WHEEL_NAME])
        self.assertEqual(self.header(response, "cache-control"), b"private, no-store")
        self.assertEqual(self.file_code(auth=True), 200)
        # the readers' page was not replaced by the admins'
        self.assertEqual(json.loads(self.page()[1])["files"], [])
        # released: every file is back
        self.set_status("active")
        self.assertEqual(len(json.loads(self.page()[1])["files"]), 1)
        self.assertEqual(self.file_code(), 200)

    def test_pages_invalidated(self):
        """A page kept before the change is not served after it (as after a yank)."""
        self.page()
        self.page(kind="text/html")
        self.set_status("archived")
        self.assertIn("project-status", json.loads(self.page()[1]))
        self.assertIn(b"pypi:project-status", self.page(kind="text/html")[1])

    def test_people_page(self):
        """The page for people says the status; a quarantined one lists files to admins only."""
        self.set_status("archived", "moved on")
        response, body = self.request("GET", "/project/holy-grail/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"This project is archived", body)
        self.assertIn(b"Reason: moved on", body)
        self.set_status("quarantined")
        response, body = self.request("GET", "/project/holy-grail/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"This project is quarantined", body)
        self.assertNotIn(WHEEL_NAME.encode(), body)
        response, body = self.request("GET", "/project/holy-grail/", auth=True)
        self.assertEqual(response.code, 200)
        self.assertIn(WHEEL_NAME.encode(), body)
        self.assertIn(b"This project is quarantined", body)
        # (the admins' page was not kept for the others)
        self.assertNotIn(WHEEL_NAME.encode(), self.request("GET", "/project/holy-grail/")[1])


class RestartTests(SynchronousTestCase):
    """The status is kept by storage, and a start reads it back."""

    def test_local_restart(self):
        """Set on a local folder, a new index loaded from it has the status (and its page)."""
        clock = Clock()
        clock.advance(1767225600)
        root = os.path.abspath(self.mktemp())
        storage = LocalStorage(root, run_now, clock)
        self.successResultOf(storage.prepare())
        self.successResultOf(storage.keep_status(
            "holy-grail", ProjectStatus("quarantined", "report").to_bytes()))
        storage.close()
        self.assertTrue(os.path.exists(os.path.join(root, ".pypid", "projects",
                                                    "holy-grail.status")))
        name, data = make_wheel("Holy.Grail", "1.0")
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        again = LocalStorage(root, run_now, clock)
        self.successResultOf(again.prepare())
        self.addCleanup(again.close)
        index = Index(lambda r: r.filename)
        snapshot = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        self.successResultOf(ensureDeferred(IndexLoader(index, again, snapshot, run_now,
                                                        clock).load()))
        self.assertEqual(index.statuses.get("holy-grail"), ProjectStatus("quarantined", "report"))
        project = index.project("holy-grail")
        self.assertEqual(json.loads(index.rendered.project_page(project, "json").body)["files"],
                         [])

    def test_memory_storage(self):
        """The in-memory storage keeps and forgets statuses as the local one does."""
        storage = MemoryStorage(self.mktemp(), Clock())
        self.successResultOf(storage.keep_status("a", b"x"))
        self.successResultOf(storage.keep_status("b", b"y"))
        self.successResultOf(storage.keep_status("a", None))
        self.assertEqual(self.successResultOf(storage.statuses()), {"b": b"y"})


class ViewTests(SynchronousTestCase):
    """A named index's composed pages respect a quarantine in any hosted source."""

    def test_quarantined_base(self):
        """A base's quarantine empties the composed page, its own files too."""
        from tests.harness.records import record

        base, own = Index(file_url_for(None)), Index(file_url_for(None))
        base.add(record("holy-grail", "1.0"))
        own.add(record("holy-grail", "2.0"))
        view = ComposedIndex("stage", (ChainSource("stage", hosted=own),
                                   ChainSource("base", hosted=base)), Filters(),
                         file_url_for(None))
        self.assertEqual(len(json.loads(view.page("holy-grail", "json", 0).body)["files"]), 2)
        base.statuses.set("holy-grail", ProjectStatus("quarantined"))
        page = json.loads(view.page("holy-grail", "json", 0).body)
        self.assertEqual((page["files"], page["project-status"]),
                         ([], {"status": "quarantined"}))
        base.statuses.set("holy-grail", ProjectStatus("archived"))
        page = json.loads(view.page("holy-grail", "json", 0).body)
        self.assertEqual((len(page["files"]), page["project-status"]),
                         (2, {"status": "archived"}))
        base.statuses.set("holy-grail", None)
        self.assertNotIn("project-status",
                         json.loads(view.page("holy-grail", "json", 0).body))



class NamedIndexTests(SynchronousTestCase):
    """C{/NAME/api/projects/<project>/status} of a hosted named index, and a view's 405."""

    def setUp(self):
        from tests.harness.indexes import Server
        self.server = Server(self)
        code, _, body = self.server.upload("/release/", "widget", "1.0")
        self.assertEqual(code, 200, body)

    def post(self, path, status, user="root"):
        from tests.harness.indexes import basic as named_basic
        code, _, body = self.server.request(
            "POST", path, named_basic(user), json.dumps({"status": status}).encode(),
            {"Content-Type": "application/json"})
        return code, body

    def files(self, path):
        code, _, body = self.server.request(
            "GET", path, headers={"Accept": JSON_TYPE})
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def test_hosted_index(self):
        """release's project is quarantined in release: its page, staging's and its file hide it."""
        self.assertEqual(self.post("/release/api/projects/widget/status", "quarantined"),
                         (200, b"widget is quarantined\n"))
        s = self.server
        self.assertEqual(s.stacks["release"].index.statuses.get("widget").status, "quarantined")
        self.assertIsNone(s.stacks["default"].index.statuses.get("widget"))
        for path in ("/release/simple/widget/", "/staging/simple/widget/"):
            page = self.files(path)
            self.assertEqual((page["files"], page["project-status"]),
                             ([], {"status": "quarantined"}))
        filename = make_wheel("widget", "1.0")[0]
        self.assertEqual(s.request("GET", f"/release/files/widget/{filename}")[0], 404)
        from tests.harness.indexes import basic as named_basic
        self.assertEqual(s.request("GET", f"/release/files/widget/{filename}",
                                   named_basic("root"))[0], 200)
        # not in the default index: 404
        self.assertEqual(self.post("/api/projects/widget/status", "archived")[0], 404)

    def test_view_refuses(self):
        """A view (prod) answers 405 with its reason, once the credentials passed."""
        code, body = self.post("/prod/api/projects/widget/status", "archived")
        self.assertEqual(code, 405)
        self.assertIn(b"is a view", body)


class CommandTests(SynchronousTestCase):
    """C{pypid-admin status PROJECT STATUS [--reason] [--index NAME]}."""

    def test_status(self):
        """The command posts the JSON body to the index's route and prints the answer."""
        import contextlib
        import io

        from pypid.cli import admin

        asked = []

        class FakeServer:
            @contextlib.contextmanager
            def request(self, method, path, headers=None, body=None):
                asked.append((method, path, headers, json.loads(body)))
                yield io.BytesIO(b"widget is archived: moved\n")

        self.patch(admin, "server_from", lambda options: FakeServer())
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(["status", "widget", "archived", "--reason", "moved",
                             "--index", "release"], out, err)
        self.assertEqual(status, 0, err.getvalue())
        self.assertEqual(asked, [("POST", "release/api/projects/widget/status",
                                  {"Content-Type": "application/json"},
                                  {"status": "archived", "reason": "moved"})])
        self.assertEqual(out.getvalue(), "widget is archived: moved\n")


class LegacyJsonTests(_ServerMixin, SynchronousTestCase):
    """The legacy JSON API lists no file of a quarantined project."""

    def test_quarantined(self):
        """C{/pypi/<project>/json} answers 404 while the project is quarantined."""
        self.uploaded()
        self.assertEqual(self.get("/pypi/holy-grail/json")[0].code, 200)
        self.index.statuses.set("holy-grail", ProjectStatus("quarantined"))
        self.assertEqual(self.get("/pypi/holy-grail/json")[0].code, 404)
        self.assertEqual(self.get("/pypi/holy-grail/1.0/json")[0].code, 404)
        self.index.statuses.set("holy-grail", ProjectStatus("archived"))
        self.assertEqual(self.get("/pypi/holy-grail/json")[0].code, 200)
