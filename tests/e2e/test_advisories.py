"""
End-to-end tests of security advisories (issue 27 section 3) with the real
daemon, OSV records of the tests' own in a folder, and real pip and uv.

The records: an advisory of C{e2e-adv-widget} from 1.1 (both its later
releases, 1.1 and 2.0, affected), known under a PYSEC and a GHSA
identifier (two records, aliases of each other: one advisory); a
withdrawn one naming 1.0 (ignored); a low-severity one of
C{e2e-adv-other} 1.0.

The indexes: the default one hides (C{[pypid] advisories = hide}, every
severity); C{prod}, a view over it, denies from C{medium} up; C{waived},
a view that denies but waives C{e2e-adv-widget==2.0}.
"""

import os
import signal
import time

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    VENV_BIN,
    DaemonTestCase,
    clean_env,
    http,
    installed,
    run,
    upload,
)
from tests.harness.osv_records import CRITICAL, LOW, osv_record, write_folder

WIDGET = "e2e-adv-widget"
RELEASES = [make_wheel(WIDGET, v) for v in ("1.0", "1.1", "2.0")]
OTHER = make_wheel("e2e-adv-other", "1.0")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
IDS = ("PYSEC-2026-9001", "GHSA-e2e0-aaaa-0001")
ADMIN = os.path.join(VENV_BIN, "pypid-admin")


RECORDS = [
    osv_record(IDS[0], WIDGET, aliases=[IDS[1]], cvss=CRITICAL,
               events=[{"introduced": "1.1"}, {"fixed": "9.0"}]),
    osv_record(IDS[1], WIDGET, aliases=[IDS[0]], events=[{"introduced": "1.1"}], severity="HIGH"),
    osv_record("PYSEC-2026-9002", WIDGET, versions=["1.0"], withdrawn="2026-11-02T00:00:00Z"),
    osv_record("PYSEC-2026-9003", "e2e-adv-other", versions=["1.0"], cvss=LOW),
]


class AdvisoryInstallTests(DaemonTestCase):
    """pip and uv against indexes that hide, deny and waive."""

    @property
    def records(self):
        """The folder of advisories the class's daemon reads, written on first use."""
        return self.shared("records", self._write_records)

    def _write_records(self):
        folder = self.shared_folder("-records")
        write_folder(folder, RECORDS)
        return folder

    @property
    def settings(self):
        return {"auth.admins": USER, "pypid.advisories": "hide", "advisories.path": self.records,
                "index:prod.view": "yes", "index:prod.bases": "default",
                "index:prod.advisories": "deny", "index:prod.advisory_severity": "medium",
                "index:waived.view": "yes", "index:waived.bases": "default",
                "index:waived.advisories": "deny",
                "index:waived.advisory_waive": f"{WIDGET}==2.0"}

    def prepare(self, daemon):
        for dist in (*RELEASES, OTHER):
            resp = upload(daemon, *dist)
            self.assertEqual(resp.status, 200, resp.body)

    def versions(self, index_url, project=WIDGET):
        resp = http("GET", f"{index_url}{project}/", {"Accept": JSON_TYPE})
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()

    def install(self, install, index_url, *requirements, check=True):
        target = os.path.abspath(self.mktemp())
        done = install(target, index_url, *requirements, check=check)
        return installed(target) if check else done

    def test_hidden_not_chosen(self):
        """The default index hides 1.1 and 2.0: pip and uv install 1.0; its file still serves."""
        page = self.versions(self.daemon.index_url)
        self.assertEqual([f["filename"] for f in page["files"]], [RELEASES[0][0]])
        for install in (self.clients.pip_install, self.clients.uv_install):
            self.assertEqual(self.install(install, self.daemon.index_url, WIDGET), {WIDGET: "1.0"})
            done = self.install(install, self.daemon.index_url, f"{WIDGET}==2.0", check=False)
            self.assertNotEqual(done.returncode, 0, done.output)
        # (hide lists nothing, but refuses nothing asked for by name)
        resp = http("GET", f"{self.daemon.url}files/{WIDGET}/{RELEASES[2][0]}")
        self.assertEqual(resp.status, 200)

    def test_pinned_denied(self):
        """
        prod denies: unpinned, both install 1.0; pinned to 2.0 both fail, the
        advisory's identifier in what they print; the download answers 403
        naming it, counted in /metrics and written in the audit log.
        """
        prod = self.daemon.url + "prod/simple/"
        for install in (self.clients.pip_install, self.clients.uv_install):
            self.assertEqual(self.install(install, prod, WIDGET), {WIDGET: "1.0"})
            done = self.install(install, prod, f"{WIDGET}==2.0", check=False)
            self.assertNotEqual(done.returncode, 0, done.output)
            self.assertIn(IDS[0], done.output)
        resp = http("GET", f"{self.daemon.url}prod/files/{WIDGET}/{RELEASES[2][0]}")
        self.assertEqual(resp.status, 403)
        self.assertIn(IDS[0].encode(), resp.body)
        metrics = http("GET", self.daemon.url + "metrics", auth=(USER, PASSWORD)).body
        self.assertIn(b"pypid_advisory_denied_total", metrics)
        audit = http("GET", self.daemon.url + "api/audit?event=advisory-denied",
                     auth=(USER, PASSWORD))
        self.assertEqual(audit.status, 200, audit.body)
        self.assertTrue(audit.json()["entries"], audit.body)

    def test_severity_minimum(self):
        """prod acts from medium up: the low advisory of e2e-adv-other is not; the default's is."""
        prod = self.daemon.url + "prod/simple/"
        self.assertEqual(self.install(self.clients.pip_install, prod, "e2e-adv-other"),
                         {"e2e-adv-other": "1.0"})
        self.assertEqual(self.versions(self.daemon.index_url, "e2e-adv-other")["files"], [])

    def test_waiver(self):
        """waived lets 2.0 through, for pip and uv, pinned or not."""
        waived = self.daemon.url + "waived/simple/"
        for install in (self.clients.pip_install, self.clients.uv_install):
            self.assertEqual(self.install(install, waived, WIDGET), {WIDGET: "2.0"})
        self.assertEqual(self.install(self.clients.uv_install, waived, f"{WIDGET}==2.0"),
                         {WIDGET: "2.0"})

    def test_vulnerabilities_json(self):
        """C{/pypi/<p>/<v>/json} lists the advisory, aliases merged; a clean release none."""
        resp = http("GET", f"{self.daemon.url}pypi/{WIDGET}/2.0/json")
        self.assertEqual(resp.status, 200, resp.body)
        [vulnerability] = resp.json()["vulnerabilities"]
        self.assertEqual((vulnerability["id"], vulnerability["aliases"]), (IDS[0], [IDS[1]]))
        clean = http("GET", f"{self.daemon.url}pypi/{WIDGET}/1.0/json").json()
        self.assertEqual(clean["vulnerabilities"], [])

    def test_admin_check(self):
        """C{pypid-admin advisories check} lists what each index acts on, and a dry run."""
        argv = [ADMIN, "--server", self.daemon.url, "--user", USER, "advisories", "check"]
        env = clean_env(self.daemon.home, PYPID_PASSWORD=PASSWORD)
        lines = run(argv, cwd=self.daemon.directory, env=env,
                    what="pypid-admin").output.splitlines()
        self.assertIn("2 advisories of 2 projects in force (from "
                      f"{self.records})", lines)
        self.assertIn(f"prod: {WIDGET} 2.0 denied: {IDS[0]} (critical) {IDS[0]} in {WIDGET}",
                      lines)
        self.assertIn("default: 3 releases hidden", lines)
        self.assertIn("waived: 2 releases denied", lines)
        lines = run([*argv, "--as", "warn", "--index", "prod"], cwd=self.daemon.directory, env=env,
                    what="pypid-admin").output.splitlines()
        self.assertEqual(lines[-1], "prod: 2 releases warned (dry run)")

    def test_zz_sighup_reads_new_records(self):
        """A record added to the folder is in force after SIGHUP: 1.0 is hidden too."""
        write_folder(self.records, [osv_record("PYSEC-2026-9004", WIDGET, versions=["1.0"])])
        os.kill(self.daemon.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while self.versions(self.daemon.index_url)["files"] and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.versions(self.daemon.index_url)["files"], [])
        done = self.install(self.clients.pip_install, self.daemon.index_url, WIDGET, check=False)
        self.assertNotEqual(done.returncode, 0, done.output)

    def test_zzz_restart_reads_cache(self):
        """
        A restart reads the advisories from the compact cache the last read
        wrote beside the snapshot (issue 43): the same releases hidden, the
        records not read again.
        """
        cache = self.daemon.snapshot + ".d/advisories.cache"
        self.assertTrue(os.path.exists(cache))
        hidden = self.versions(self.daemon.index_url)["files"]
        self.daemon.restart()
        self.assertIn(b"from its compact cache", self.daemon.log_since_start())
        self.assertEqual(self.versions(self.daemon.index_url)["files"], hidden)
