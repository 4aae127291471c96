"""
End-to-end tests of upstream project statuses (PEP 792, issue 27 section
2): the real daemon in front of the local upstream (L{tests.harness.upstream_server},
whose project page is answered with the status markers added, through its
C{raw} control), with real pip and uv.

A release installed once through pypid is kept; the upstream then
publishes a malicious release and quarantines the project: after
C{pypid-upstream refresh}, neither release installs and the kept file
answers 404; once the upstream lifts the quarantine, the kept file is
served again without being fetched again. pip and uv are also run against
deprecated and archived upstream projects, to record which of them read
the markers (docs/http-api.rst says what they do): pip does not, uv's
installs do not, C{uv audit} does.
"""

import json
import os
import subprocess
import sys

from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, http, installed
from tests.harness.upstream_server import UpstreamProcess

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
GOOD = make_wheel("up-quarantine", "1.0")
EVIL = make_wheel("up-quarantine", "2.0", module_text="import os  # malicious\n")
REMOVED = make_wheel("up-removed", "1.0")
TAKEN_1, TAKEN_2 = make_wheel("up-takedown", "1.0"), make_wheel("up-takedown", "2.0")


class UpstreamStatusTests(DaemonTestCase):
    """An upstream's project statuses, through pypid, with pip and uv."""

    @property
    def upstream(self):
        """The class's upstream, started on first use."""
        return self.shared("upstream", self._filled_upstream, UpstreamProcess.stop)

    def _filled_upstream(self):
        upstream = UpstreamProcess(self.shared_folder("-upstream"))
        upstream.add(*GOOD)
        upstream.add(*REMOVED)
        upstream.add(*TAKEN_1)
        upstream.add(*TAKEN_2)
        upstream.add_wheel("up-deprecated", "1.0")
        upstream.add_wheel("up-archived", "1.0")
        upstream.add_wheel("up-quarantined", "1.0")
        return upstream.start()

    @property
    def settings(self):
        return {"upstream.mode": "cache", "upstream.url": self.upstream.url,
                "upstream.ttl": "1h", "upstream.timeout": "3", "auth.admins": USER}

    def setUp(self):
        super().setUp()
        _ = self.daemon  # (started)
        if not self.upstream.running():
            self.upstream.start()

    def mark(self, project, status, reason=None):
        """Answer the upstream's JSON page of C{project} with C{status} (L{None}: as it is)."""
        path = f"/simple/{project}/"
        self.upstream.clear_raw(path)
        if status is None:
            return
        page = http("GET", self.upstream.base.rstrip("/") + path, {"Accept": JSON_TYPE}).json()
        page["meta"]["api-version"] = "1.4"
        page["project-status"] = {"status": status, **({"reason": reason} if reason else {})}
        self.upstream.raw(path, json.dumps(page).encode(),
                          headers=[(b"Content-Type", JSON_TYPE.encode())])

    def refresh(self, project):
        """C{pypid-upstream refresh PROJECT}; its output."""
        env = dict(os.environ, PYPID_PASSWORD=PASSWORD)
        done = subprocess.run(
            [sys.executable, "-m", "pypid.cli.upstream", "--server", self.daemon.url,
             "--user", USER, "refresh", project],
            capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done.stdout

    def target(self):
        return os.path.abspath(self.mktemp())

    def test_quarantine_withholds_kept_file(self):
        """
        Installed once (kept), then quarantined upstream with a malicious
        release: after a refresh neither release installs with pip or uv and
        the kept file answers 404; lifted, the kept file is served again,
        not fetched again.
        """
        index = self.daemon.index_url
        first = self.target()
        self.clients.pip_install(first, index, "up-quarantine")
        self.assertEqual(installed(first), {"up-quarantine": "1.0"})
        kept_url = f"{self.daemon.url}files/up-quarantine/{GOOD[0]}"
        self.assertEqual(http("GET", kept_url).body, GOOD[1])
        self.assertEqual(self.upstream.count(f"/files/{GOOD[0]}"), 1)

        self.upstream.add(*EVIL)
        self.mark("up-quarantine", "quarantined", "malware in 2.0")
        out = self.refresh("up-quarantine")
        self.assertIn("up-quarantine: 2 files upstream, quarantined", out)
        page = http("GET", f"{index}up-quarantine/", {"Accept": JSON_TYPE}).json()
        self.assertEqual(page["files"], [])
        self.assertEqual(page["project-status"],
                         {"status": "quarantined", "reason": "malware in 2.0"})
        for requirement in ("up-quarantine", "up-quarantine==1.0", "up-quarantine==2.0"):
            done = self.clients.pip_install(self.target(), index, requirement, check=False)
            self.assertNotEqual(done.returncode, 0, done.output)
            done = self.clients.uv_install(self.target(), index, requirement, check=False)
            self.assertNotEqual(done.returncode, 0, done.output)
        for name in (GOOD[0], EVIL[0]):
            answer = http("GET", f"{self.daemon.url}files/up-quarantine/{name}")
            self.assertEqual(answer.status, 404, name)
            self.assertIn(b"quarantined upstream", answer.body)
        self.assertEqual(self.upstream.count(f"/files/{EVIL[0]}"), 0)

        self.upstream.remove(EVIL[0])
        self.mark("up-quarantine", None)
        self.assertIn("up-quarantine: 1 file upstream\n", self.refresh("up-quarantine"))
        self.assertEqual(http("GET", kept_url).body, GOOD[1])
        again = self.target()
        self.clients.pip_install(again, index, "up-quarantine==1.0")
        self.assertEqual(installed(again), {"up-quarantine": "1.0"})
        self.assertEqual(self.upstream.count(f"/files/{GOOD[0]}"), 1)

    def test_quarantine_then_removal(self):
        """
        Kept, quarantined upstream, then removed upstream (its page 404):
        the page still carries the quarantine and the kept file answers 404
        to GET, a range and HEAD, through a restart; listed again without a
        quarantine, it is served from the cache (issue 45, item 3).
        """
        kept_url = f"{self.daemon.url}files/up-removed/{REMOVED[0]}"
        page_url = f"{self.daemon.index_url}up-removed/"
        self.assertEqual(http("GET", kept_url).body, REMOVED[1])
        self.mark("up-removed", "quarantined", "malware")
        self.assertIn("quarantined", self.refresh("up-removed"))
        self.upstream.clear_raw("/simple/up-removed/")
        self.upstream.remove(REMOVED[0])
        self.assertIn("removed upstream since", self.refresh("up-removed"))

        def withheld():
            page = http("GET", page_url, {"Accept": JSON_TYPE})
            self.assertEqual(page.status, 200, page.body)
            self.assertEqual((page.json()["files"], page.json()["project-status"]),
                             ([], {"status": "quarantined", "reason": "malware"}))
            for method, headers in (("GET", {}), ("GET", {"Range": "bytes=0-9"}),
                                    ("HEAD", {})):
                answer = http(method, kept_url, headers)
                self.assertEqual(answer.status, 404, (method, headers))
        withheld()
        self.daemon.restart()
        withheld()

        self.upstream.add(*REMOVED)
        self.assertEqual(self.refresh("up-removed"), "up-removed: 1 file upstream\n")
        self.assertEqual(http("GET", kept_url).body, REMOVED[1])
        self.assertEqual(http("GET", kept_url, {"Range": "bytes=0-9"}).status, 206)
        self.assertEqual(self.upstream.count(f"/files/{REMOVED[0]}"), 1)

    def upstream_command(self, *args):
        """C{pypid-upstream ARGS} as the admin; its output."""
        env = dict(os.environ, PYPID_PASSWORD=PASSWORD)
        done = subprocess.run(
            [sys.executable, "-m", "pypid.cli.upstream", "--server", self.daemon.url,
             "--user", USER, *args], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done.stdout

    def keep_removed(self, value):
        """Restart the daemon with C{[upstream] keep_removed = value}."""
        self.daemon.settings["upstream.keep_removed"] = value
        self.daemon.restart()

    def test_takedown(self):
        """
        Issue 46: a release kept here, then deleted upstream: after the
        page is refreshed its file answers 404 (not the copy kept), through
        a restart; the takedown is audited and listed by C{pypid-upstream
        takedowns}; with C{[upstream] keep_removed = yes} it is served
        again; listed again upstream, it is served with the key off too.
        """
        kept_url = f"{self.daemon.url}files/up-takedown/{TAKEN_1[0]}"
        self.assertEqual(http("GET", kept_url).body, TAKEN_1[1])
        self.upstream.remove(TAKEN_1[0])
        self.assertEqual(self.refresh("up-takedown"), "up-takedown: 1 file upstream\n")
        answer = http("GET", kept_url)
        self.assertEqual(answer.status, 404)
        self.assertIn(b"removed upstream", answer.body)
        listed = self.upstream_command("takedowns")
        self.assertIn(f"default: {TAKEN_1[0]} (up-takedown) no longer listed upstream", listed)
        self.assertIn("default: 1 file taken down upstream", listed)
        audit = http("GET", self.daemon.url + "api/audit?event=upstream-takedown",
                     auth=(USER, PASSWORD)).json()["entries"]
        self.assertEqual([(e["project"], e["filename"]) for e in audit],
                         [("up-takedown", TAKEN_1[0])])
        self.daemon.restart()
        self.assertEqual(http("GET", kept_url).status, 404)
        self.assertIn(TAKEN_1[0], self.upstream_command("takedowns"))
        # (reversible by configuration: the operator keeps serving it)
        self.keep_removed("yes")
        self.assertEqual(http("GET", kept_url).body, TAKEN_1[1])
        self.assertIn("still served (keep_removed)", self.upstream_command("takedowns"))
        self.keep_removed("no")
        self.assertEqual(http("GET", kept_url).status, 404)
        # (listed again upstream: served again, from the copy kept)
        self.upstream.add(*TAKEN_1)
        self.refresh("up-takedown")
        self.assertEqual(http("GET", kept_url).body, TAKEN_1[1])
        self.assertEqual(self.upstream.count(f"/files/{TAKEN_1[0]}"), 1)
        self.assertIn("0 files taken down", self.upstream_command("takedowns"))

    def test_clients_and_markers(self):
        """
        pip and uv install deprecated and archived upstream projects without
        a word of their status (pip 26.3, uv 0.13.9's C{uv pip install}),
        and neither installs a quarantined one.
        """
        self.mark("up-deprecated", "deprecated", "use up-archived")
        self.mark("up-archived", "archived", "no more releases")
        self.mark("up-quarantined", "quarantined", "under review")
        index = self.daemon.index_url
        html = http("GET", f"{index}up-deprecated/").body
        self.assertIn(b'<meta name="pypi:project-status" content="deprecated">', html)
        target = self.target()
        pip = self.clients.pip_install(target, index, "up-deprecated", "up-archived")
        self.assertEqual(installed(target), {"up-deprecated": "1.0", "up-archived": "1.0"})
        said = pip.output.lower()
        for word in ("up-deprecated", "up_deprecated", "up-archived", "up_archived"):
            said = said.replace(word, "")
        self.assertNotIn("deprecated", said)
        self.assertNotIn("archived", said)
        target = self.target()
        uv = self.clients.uv_install(target, index, "up-deprecated", "up-archived")
        self.assertEqual(installed(target), {"up-deprecated": "1.0", "up-archived": "1.0"})
        self.assertNotIn("deprecated", uv.output.replace("up-deprecated", ""))
        for client in (self.clients.pip_install, self.clients.uv_install):
            done = client(self.target(), index, "up-quarantined", check=False)
            self.assertNotEqual(done.returncode, 0, done.output)

    def test_uv_audit(self):
        """
        C{uv audit} (experimental in uv 0.13.9) reports the deprecated and
        archived dependencies, with their reasons, from pypid's pages; its
        vulnerability service is the local upstream, answering none.
        """
        self.mark("up-deprecated", "deprecated", "use up-archived")
        self.mark("up-archived", "archived", "no more releases")
        project = self.target()
        os.makedirs(project)
        with open(os.path.join(project, "pyproject.toml"), "w") as f:
            f.write('[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.8"\n'
                    'dependencies = ["up-deprecated", "up-archived"]\n')
        index = ["--default-index", self.daemon.index_url]
        self.upstream.raw("/osv/v1/querybatch", b'{"results": [{}, {}]}',
                          headers=[(b"Content-Type", b"application/json")])
        lock = self.clients.uv("lock", "--directory", project, "--python", sys.executable,
                               *index, check=False)
        audit = self.clients.uv("audit", "--directory", project, "--frozen",
                                "--service-url", self.upstream.base + "osv/", *index,
                                check=False)
        self.assertEqual(lock.returncode, 0, lock.output)
        self.assertNotIn("deprecated:", lock.output)
        self.assertIn("- up-archived is archived: no more releases", audit.output)
        self.assertIn("- up-deprecated is deprecated: use up-archived", audit.output)
