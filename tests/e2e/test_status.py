"""
End-to-end tests of projects' statuses (PEP 792, simple API 1.4) with the
real daemon and real installers: pip and uv install an archived and a
deprecated project from pages announcing 1.4 with the status markers, and
cannot install a quarantined one; the status outlives a restart.
"""

import json
import os

from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, http, installed, upload

ARCHIVED = make_wheel("e2e-archived", "1.0")
DEPRECATED = make_wheel("e2e-deprecated", "1.0")
QUARANTINED = make_wheel("e2e-quarantined", "1.0")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class StatusInstallTests(DaemonTestCase):
    """Installers and a project's status."""

    settings = {"auth.admins": USER}

    def prepare(self, daemon):
        for dist in (ARCHIVED, DEPRECATED, QUARANTINED):
            resp = upload(daemon, *dist)
            self.assertEqual(resp.status, 200, resp.body)
        for project, status in (("e2e-archived", "archived"), ("e2e-deprecated", "deprecated"),
                                ("e2e-quarantined", "quarantined")):
            resp = http("POST", f"{daemon.url}api/projects/{project}/status",
                        {"Content-Type": "application/json"},
                        json.dumps({"status": status, "reason": "e2e"}).encode(),
                        auth=(USER, PASSWORD))
            self.assertEqual(resp.status, 200, resp.body)

    def page(self, project):
        resp = http("GET", f"{self.daemon.index_url}{project}/", {"Accept": JSON_TYPE})
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()

    def test_pages(self):
        """
        The pages announce 1.4 (1.5 in JSON only where a namespace is
        reserved: none here) and carry the status; the quarantined one lists
        no file.
        """
        page = self.page("e2e-archived")
        self.assertEqual(page["meta"]["api-version"], "1.4")
        self.assertEqual(page["project-status"], {"status": "archived", "reason": "e2e"})
        self.assertEqual(len(page["files"]), 1)
        self.assertEqual(self.page("e2e-quarantined")["files"], [])
        html = http("GET", f"{self.daemon.index_url}e2e-deprecated/").body
        self.assertIn(b'<meta name="pypi:repository-version" content="1.4">', html)
        self.assertIn(b'<meta name="pypi:project-status" content="deprecated">', html)
        resp = http("GET", f"{self.daemon.url}files/e2e-quarantined/{QUARANTINED[0]}")
        self.assertEqual(resp.status, 404)

    def test_pip(self):
        """pip installs the archived and the deprecated project, not the quarantined one."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "e2e-archived", "e2e-deprecated")
        self.assertEqual(installed(target), {"e2e-archived": "1.0", "e2e-deprecated": "1.0"})
        done = self.clients.pip_install(os.path.abspath(self.mktemp()), self.daemon.index_url, "e2e-quarantined",
                                        check=False)
        self.assertNotEqual(done.returncode, 0, done.output)

    def test_uv(self):
        """uv installs the archived and the deprecated project, not the quarantined one."""
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, "e2e-archived", "e2e-deprecated")
        self.assertEqual(installed(target), {"e2e-archived": "1.0", "e2e-deprecated": "1.0"})
        done = self.clients.uv_install(os.path.abspath(self.mktemp()), self.daemon.index_url, "e2e-quarantined",
                                       check=False)
        self.assertNotEqual(done.returncode, 0, done.output)

    def test_upload_refused(self):
        """An upload to the archived project is refused with its status."""
        resp = upload(self.daemon, *make_wheel("e2e-archived", "2.0"))
        self.assertEqual(resp.status, 400)
        self.assertIn(b"is archived", resp.body)

    def test_zz_restart(self):
        """After a restart, the statuses are read back from the storage folder."""
        self.daemon.restart()
        self.assertEqual(self.page("e2e-quarantined")["files"], [])
        self.assertEqual(self.page("e2e-archived")["project-status"]["status"], "archived")
