"""
End-to-end tests of the audit log: the real daemon records what twine,
the HTTP API and failed logins did, C{GET /api/audit} shows it to admins
only, C{pypid-admin audit} prints it, and C{pypid-admin audit verify}
finds a line edited on disk.
"""

import json
import os
import subprocess
import sys
from urllib.parse import urlencode

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, form, http, sha256, upload

ADMIN, ADMIN_PASSWORD = "root", "root-pw"


def audit_files(daemon):
    """The daemon's audit files, oldest first."""
    folder = os.path.join(daemon.storage, ".pypid", "audit")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


class AuditTests(DaemonTestCase):
    """The audit log of a daemon on local storage."""

    users = {USER: PASSWORD, ADMIN: ADMIN_PASSWORD}
    settings = {"auth.admins": ADMIN}

    def admin_cli(self, *args, config=False):
        """Run C{pypid-admin} as the admin; C{(status, out, err)}."""
        argv = [sys.executable, "-m", "pypid.cli.admin", "--server", self.daemon.url,
                "--user", ADMIN]
        if config:
            argv += ["--config", self.daemon.config_path]
        done = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYPID_PASSWORD=ADMIN_PASSWORD))
        return done.returncode, done.stdout, done.stderr

    def audit(self, auth=(ADMIN, ADMIN_PASSWORD), **query):
        """C{GET /api/audit}; the response."""
        return http("GET", self.daemon.url + "api/audit?" + urlencode(query), auth=auth)

    def test_recorded_shown_verified(self):
        """
        Uploads (twine and raw), a yank, a delete, a token issued and a failed
        login are all in C{GET /api/audit} with their fields; a non-admin is
        refused; the chain verifies, and no longer once a line is edited.
        """
        daemon = self.daemon
        wheel, sdist = make_wheel("audited", "1.0"), make_sdist("audited", "1.0")
        done = self.clients.twine_upload(daemon, self.dist_dir(wheel))
        self.assertEqual(done.returncode, 0, done.output)
        self.assertEqual(upload(daemon, *sdist).status, 200)
        # (a reason that tries to forge a line and clear the screen of whoever reads it)
        reason = "broken\n2026-01-01T00:00:00.000000Z  delete  ok  mallory\x1b[2J"
        yank = http("POST", daemon.url + f"api/files/{wheel[0]}/yank", *form(reason=reason),
                    auth=(USER, PASSWORD))
        self.assertEqual(yank.status, 200, yank.body)
        gone = http("DELETE", daemon.url + f"api/files/{sdist[0]}", auth=(USER, PASSWORD))
        self.assertEqual(gone.status, 200, gone.body)
        issued = http("POST", daemon.url + "api/tokens", *form(actions="upload"),
                      auth=(ADMIN, ADMIN_PASSWORD))
        self.assertEqual(issued.status, 200, issued.body)
        wrong = upload(daemon, *make_wheel("audited", "2.0"), auth=(USER, "not-the-password"))
        self.assertEqual(wrong.status, 401)

        response = self.audit()
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.header("Content-Type"), "application/json")
        entries = response.json()["entries"]
        self.assertEqual([(e["event"], e["outcome"]) for e in entries], [
            ("upload", "ok"), ("upload", "ok"), ("yank", "ok"), ("delete", "ok"),
            ("token-issued", "ok"), ("login-failed", "refused")])
        for e, data in zip(entries[:2], (wheel[1], sdist[1]), strict=True):
            self.assertEqual({k: e[k] for k in ("user", "address", "project", "version",
                                                "sha256")},
                             {"user": USER, "address": "127.0.0.1", "project": "audited",
                              "version": "1.0", "sha256": sha256(data)})
        self.assertEqual([e["filename"] for e in entries[:4]],
                         [wheel[0], sdist[0], wheel[0], sdist[0]])
        self.assertEqual(entries[2]["detail"], reason)
        self.assertEqual((entries[4]["user"], entries[4]["target"]),
                         (ADMIN, issued.json()["id"]))
        self.assertEqual((entries[5]["user"], entries[5]["address"]), (USER, "127.0.0.1"))
        self.assertNotIn("not-the-password", json.dumps(entries))
        self.assertEqual([e["event"] for e in self.audit(user=USER, event="upload")
                          .json()["entries"]], ["upload", "upload"])

        page = http("GET", daemon.url + "project/audited/1.0/")
        self.assertEqual(page.status, 200)
        # (who uploaded each file, as before: the yanked wheel's row names them)
        self.assertIn(f"<td>{USER}</td>".encode(), page.body)

        self.assertEqual(self.audit(auth=(USER, PASSWORD)).status, 403)
        self.assertEqual(self.audit(since="yesterday-ish").status, 400)

        status, out, err = self.admin_cli("audit", "--project", "audited", "--since", "1h")
        self.assertEqual(status, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 4, out)
        self.assertIn(f"  upload  ok  {USER}  127.0.0.1  audited 1.0 {wheel[0]}", lines[0])
        self.assertNotIn("\x1b", out)
        self.assertTrue(lines[2].endswith("(broken\\n2026-01-01T00:00:00.000000Z  delete  ok  "
                                          "mallory\\x1b[2J)"), lines[2])

        status, out, err = self.admin_cli("audit", "verify", config=True)
        self.assertEqual(status, 0, err)
        self.assertIn("every chain is intact", out)

        [path] = audit_files(daemon)
        with open(path, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        lines[1] = lines[1].replace(sha256(sdist[1]).encode(), b"0" * 64)
        with open(path, "wb") as f:
            f.write(b"".join(lines))
        status, out, err = self.admin_cli("audit", "verify", config=True)
        self.assertEqual(status, 1)
        self.assertEqual(out.splitlines(), [
            f"{path}: line 3: does not follow line 2: line 2 was edited, or entries "
            "between them were removed, or entries were moved"])
        self.assertIn("1 broken link\n", err)

    def test_killed_and_stopped(self):
        """
        An upload answered, then C{kill -9} at once: its entry is on disk
        (a change is answered once its entry is written). Started again,
        the daemon goes on with the chain; a failed login (buffered) just
        before a clean stop is on disk after it; the chain verifies.
        """
        daemon = self.new_daemon(users=self.users)
        self.assertEqual(upload(daemon, *make_wheel("last-one", "1.0")).status, 200)
        daemon.kill()
        with open(audit_files(daemon)[-1], "rb") as f:
            entries = [json.loads(line) for line in f]
        self.assertEqual([(e["event"], e["filename"]) for e in entries],
                         [("upload", "last_one-1.0-py3-none-any.whl")])
        daemon.start()
        wrong = upload(daemon, *make_wheel("last-one", "2.0"), auth=(USER, "wrong"))
        self.assertEqual(wrong.status, 401)
        daemon.stop()
        with open(audit_files(daemon)[-1], "rb") as f:
            entries = [json.loads(line) for line in f]
        self.assertEqual([e["event"] for e in entries], ["upload", "login-failed"])
        argv = [sys.executable, "-m", "pypid.cli.admin", "--config", daemon.config_path,
                "audit", "verify"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
