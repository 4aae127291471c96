"""
The console end to end (issue 44), in real Chromium against the real
daemon with named indexes: a person logged in through the form promotes a
release from C{staging} to C{release} on the project's page, and an admin
sets the project's status there; each checked in the API and the audit
log. (Single sign-on and the directory drive the console in
L{tests.e2e.test_sso} and L{tests.e2e.test_ldap}.)
"""

import json
import os

from tests.harness.browser import BrowserTestCase
from tests.harness.console import audit_events
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, http, upload, wait_for
from tests.harness.osv_records import osv_record, write_folder

SECTIONS = """
[index:release]

[index:staging]
bases = release
"""


class ConsolePromoteTests(BrowserTestCase, DaemonTestCase):
    """Promotion and status on the project's page."""

    def start_daemon(self):
        daemon = self.new_daemon(settings={"auth.admins": USER}, start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(SECTIONS)
        daemon.start()
        for wheel in (make_wheel("widget", "1.0"), make_wheel("widget", "1.1")):
            response = upload(daemon, *wheel, path="staging/")
            self.assertEqual(response.status, 200, response.body)
        return daemon

    def log_in(self, daemon, next_page):
        page = self.open_page(daemon.url + "login?next=" + next_page)
        page.page.fill("#user", USER)
        page.page.fill("#password", PASSWORD)
        with page.page.expect_navigation():
            page.page.click("button[type=submit]")
        return page

    def test_promote_and_status(self):
        daemon = self.start_daemon()
        page = self.log_in(daemon, "/console/project/widget/?index=staging")
        self.assertTrue(page.page.url.endswith("/console/project/widget/?index=staging"),
                        page.page.url)
        page.page.select_option("#promote-version", "1.0")
        page.page.select_option("#promote-to", "release")
        with page.page.expect_navigation():
            page.page.get_by_role("button", name="Promote").click()
        self.assertIn("Promoted widget 1.0 to release: 1 file.",
                      page.page.inner_text("#console-notice"))
        listed = http("GET", daemon.url + "release/simple/widget/",
                      {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual([f["filename"] for f in json.loads(listed.body)["files"]],
                         ["widget-1.0-py3-none-any.whl"])
        admin = (USER, PASSWORD)
        (entry,) = audit_events(daemon, admin, "promote")
        self.assertEqual((entry["user"], entry["index"], entry["target"], entry["outcome"]),
                         (USER, "release", "staging", "ok"))
        # an admin sets the project's status, with a reason
        page.page.select_option("#status-choice", "archived")
        page.page.fill("#status-reason", "moved to widget2")
        with page.page.expect_navigation():
            page.page.get_by_role("button", name="Set the status").click()
        self.assertEqual(page.page.inner_text("#status"), "archived: moved to widget2")
        project = http("GET", daemon.url + "staging/simple/widget/",
                       {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual(json.loads(project.body)["project-status"],
                         {"status": "archived", "reason": "moved to widget2"})
        (entry,) = audit_events(daemon, admin, "status")
        self.assertEqual((entry["user"], entry["detail"]), (USER, "archived: moved to widget2"))
        self.assert_clean(page)


class ConsoleRetentionTests(BrowserTestCase, DaemonTestCase):
    """An admin applies the retention plan shown in the console (Chromium)."""

    def test_dry_run_then_apply(self):
        daemon = self.new_daemon(settings={"auth.admins": USER, "retention.keep_releases": "1",
                                           "retention.recycle_bin": "7d"})
        for version in ("1.0", "2.0"):
            response = upload(daemon, *make_wheel("gizmo", version))
            self.assertEqual(response.status, 200, response.body)
        page = self.open_page(daemon.url + "login?next=/console/retention")
        page.page.fill("#user", USER)
        page.page.fill("#password", PASSWORD)
        with page.page.expect_navigation():
            page.page.click("button[type=submit]")
        self.assertIn("not among the newest 1 release", page.page.inner_text("main"))
        # (a dry run: nothing has moved)
        admin = (USER, PASSWORD)
        self.assertIn(b"gizmo-1.0-py3-none-any.whl",
                      http("GET", daemon.url + "simple/gizmo/", auth=admin).body)
        with page.page.expect_navigation():
            page.page.get_by_role("button", name="Apply the plan of default").click()
        self.assertIn("default: 1 file moved to the recycle bin",
                      page.page.inner_text("#console-notice"))
        self.assertIn("Nothing to remove now.", page.page.inner_text("main"))
        body = http("GET", daemon.url + "simple/gizmo/", auth=admin).body
        self.assertNotIn(b"gizmo-1.0-py3-none-any.whl", body)
        self.assertIn(b"gizmo-2.0-py3-none-any.whl", body)
        binned = json.loads(http("GET", daemon.url + "api/recycle-bin", auth=admin).body)
        self.assertIn("gizmo-1.0-py3-none-any.whl", json.dumps(binned))
        self.assertEqual([(e["user"], e["filename"], e["outcome"])
                          for e in audit_events(daemon, admin, "retention")],
                         [(USER, "gizmo-1.0-py3-none-any.whl", "ok")])
        self.assert_clean(page)


WAIVED = "e2e-waive-widget"
ADVISORY = osv_record("GHSA-e2e0-wave-0001", WAIVED, versions=["2.0"], severity="HIGH",
                      summary="reads files it should not")


class ConsoleWaiverTests(BrowserTestCase, DaemonTestCase):
    """An admin waives an advisory on the project's page, then removes the waiver (Chromium)."""

    def test_waive_and_unwaive(self):
        records = os.path.abspath(self.mktemp())
        write_folder(records, [ADVISORY])
        daemon = self.new_daemon(settings={"auth.admins": USER, "pypid.advisories": "hide",
                                           "advisories.path": records})
        for version in ("1.0", "2.0"):
            response = upload(daemon, *make_wheel(WAIVED, version))
            self.assertEqual(response.status, 200, response.body)
        admin = (USER, PASSWORD)
        wait_for(lambda: http("GET", daemon.url + "api/advisories", auth=admin).status == 200,
                 60, "the advisories were never read")
        self.assertEqual(self.listed(daemon), ["1.0"])
        page = self.open_page(daemon.url + f"login?next=/console/project/{WAIVED}/")
        page.page.fill("#user", USER)
        page.page.fill("#password", PASSWORD)
        with page.page.expect_navigation():
            page.page.click("button[type=submit]")
        section = page.page.inner_text("main")
        self.assertIn("GHSA-E2E0-WAVE-0001".lower(), section.lower())
        self.assertIn("acted on", section)
        page.page.get_by_label("Reason to waive GHSA-e2e0-wave-0001").fill(
            "only in the CLI, which we do not ship")
        with page.page.expect_navigation():
            page.page.get_by_role("button", name="Waive GHSA-e2e0-wave-0001").click()
        self.assertIn("only in the CLI, which we do not ship", page.page.inner_text("main"))
        self.assertEqual(self.listed(daemon), ["1.0", "2.0"])
        kept = json.loads(http("GET", daemon.url + "api/advisories/waivers", auth=admin).body)
        self.assertEqual([(w["project"], w["advisory"], w["by"]) for w in kept["waivers"]],
                         [(WAIVED, "GHSA-E2E0-WAVE-0001", USER)])
        (entry,) = audit_events(daemon, admin, "advisory-waive")
        self.assertEqual((entry["user"], entry["project"], entry["outcome"]),
                         (USER, WAIVED, "ok"))
        with page.page.expect_navigation():
            page.page.get_by_role("button", name="Unwaive GHSA-E2E0-WAVE-0001").click()
        self.assertIn("acted on", page.page.inner_text("main"))
        self.assertEqual(self.listed(daemon), ["1.0"])
        (entry,) = audit_events(daemon, admin, "advisory-unwaive")
        self.assertEqual((entry["user"], entry["project"]), (USER, WAIVED))
        self.assert_clean(page)

    def listed(self, daemon):
        """The versions the simple page of the project lists."""
        body = json.loads(http("GET", daemon.url + f"simple/{WAIVED}/",
                               {"Accept": "application/vnd.pypi.simple.v1+json"}).body)
        return sorted({f["filename"].split("-")[1] for f in body["files"]})
