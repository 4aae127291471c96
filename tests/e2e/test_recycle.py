"""
End-to-end tests of the recycle bin and the retention rules (issue 29)
with the real daemon on local disk: a deleted file leaves the pages and is
kept, across a clean restart and a C{kill -9}, listed by C{pypid-admin
bin}; restored by C{pypid-admin bin restore}, it is served again; kept
its time, it is purged for good (its URL answers 410, its bytes are gone,
its name stays taken). C{pypid-admin retention plan} and C{apply}, and an
apply killed half-way. The S3 side, two servers on a bucket:
tests.e2e.test_s3.
"""

import json
import os
import re
import threading

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    VENV_BIN,
    DaemonTestCase,
    clean_env,
    http,
    run,
    upload,
    wait_for,
)

ADMIN = os.path.join(VENV_BIN, "pypid-admin")

WHEEL = make_wheel("e2e-binned", "1.0")


def admin(daemon, *args):
    """
    What C{pypid-admin} prints, run as the admin against C{daemon} (with
    its C{PYTHONPATH}: the checkout's tool, as the daemon is the checkout's).
    """
    env = clean_env(daemon.home, PYPID_PASSWORD=PASSWORD, **daemon.environ)
    return run([ADMIN, "--server", daemon.url, "--user", USER, *args],
               cwd=daemon.directory, env=env, what="pypid-admin").output


class RecycleBinTests(DaemonTestCase):
    def file_status(self, daemon):
        return http("GET", f"{daemon.url}files/e2e-binned/{WHEEL[0]}").status

    def test_kept_restored_purged(self):
        daemon = self.new_daemon(settings={"auth.admins": USER,
                                           "retention.recycle_bin": "1h"})
        self.assertEqual(upload(daemon, *WHEEL).status, 200)
        stored = os.path.join(daemon.storage, WHEEL[0])
        self.assertEqual(admin(daemon, "delete", WHEEL[0], "--yes").strip(), "OK")
        self.assertEqual(self.file_status(daemon), 404)
        self.assertNotIn(WHEEL[0], http("GET", f"{daemon.url}simple/e2e-binned/").body.decode())
        self.assertTrue(os.path.exists(stored))
        # kept in the bin across a clean restart and a crash
        daemon.restart(clean=True)
        self.assertEqual(self.file_status(daemon), 404)
        daemon.restart(clean=False)
        self.assertEqual(self.file_status(daemon), 404)
        lines = admin(daemon, "bin").splitlines()
        self.assertEqual(lines[0], "default: 1 file in the recycle bin (kept 1 hour)")
        self.assertTrue(lines[1].endswith(WHEEL[0]), lines)
        self.assertEqual(upload(daemon, *WHEEL).status, 400)
        # restored: served, installable
        self.assertIn("Restored", admin(daemon, "bin", "restore", WHEEL[0]))
        self.assertEqual(self.file_status(daemon), 200)
        self.assertIn("0 files", admin(daemon, "bin").splitlines()[0])
        # a bin of seconds: deleted, then purged for good
        daemon.stop_cleanly()
        daemon.settings["retention.recycle_bin"] = "2s"
        daemon.start(port=daemon.port)
        admin(daemon, "delete", WHEEL[0], "--yes")
        wait_for(lambda: self.file_status(daemon) == 410, 15,
                 "the file was not purged from the bin in time")
        self.assertFalse(os.path.exists(stored))
        self.assertEqual(upload(daemon, *WHEEL).status, 400)
        daemon.restart(clean=False)
        self.assertEqual(self.file_status(daemon), 410)
        entries = http("GET", f"{daemon.url}api/audit?event=purge",
                       auth=(USER, PASSWORD)).json()["entries"]
        self.assertEqual([e["filename"] for e in entries], [WHEEL[0]])

    def test_named_index(self):
        """
        C{--index staging} on every command of one index: the project and
        its file are listed, yanked, unyanked, deleted into staging's bin
        (listed there, its purge due, not done) and restored, and the
        default index is never touched.
        """
        daemon = self.new_daemon(start=False, settings={"auth.admins": USER,
                                                        "retention.recycle_bin": "1h"})
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[index:staging]\n")
        daemon.start()
        self.assertEqual(upload(daemon, *WHEEL, path="staging/").status, 200)
        staging = ("--index", "staging")
        self.assertEqual(admin(daemon, "projects", *staging), "e2e-binned\n")
        self.assertEqual(admin(daemon, "projects"), "")
        self.assertIn(WHEEL[0], admin(daemon, "files", "e2e-binned", *staging))
        admin(daemon, "yank", WHEEL[0], "--reason", "broken", *staging)
        self.assertIn("yanked: broken", admin(daemon, "files", "e2e-binned", *staging))
        admin(daemon, "unyank", "e2e-binned", "1.0", *staging)
        self.assertNotIn("yanked", admin(daemon, "files", "e2e-binned", *staging))
        self.assertEqual(admin(daemon, "delete", "e2e-binned", "1.0", "--yes", *staging).strip(),
                         "OK")
        lines = admin(daemon, "bin", *staging).splitlines()
        self.assertEqual(lines[0], "staging: 1 file in the recycle bin (kept 1 hour)")
        self.assertRegex(lines[1], r"^deleted \S+Z  purge due \S+Z  " + re.escape(WHEEL[0]))
        self.assertIn("0 files", admin(daemon, "bin").splitlines()[0])
        self.assertIn("Restored", admin(daemon, "bin", "restore", WHEEL[0], *staging))
        self.assertEqual(http("GET", f"{daemon.url}staging/files/e2e-binned/{WHEEL[0]}").status,
                         200)


#: the releases of the cleanup's project: one kept, the others removed
RELEASES = 300


class RetentionTests(DaemonTestCase):
    """pypid-admin retention plan and apply, and an apply killed half-way."""

    def daemon_with_releases(self):
        daemon = self.new_daemon(settings={"auth.admins": USER,
                                           "retention.recycle_bin": "7d",
                                           "retention.keep_releases": "1",
                                           "retention.protect": "e2e-kept"})
        self.wheels = [make_wheel("e2e-cleaned", f"1.{n}") for n in range(RELEASES)]
        for wheel in self.wheels + [make_wheel("e2e-kept", "1.0"), make_wheel("e2e-kept", "2.0")]:
            self.assertEqual(upload(daemon, *wheel).status, 200)
        return daemon

    def sidecar(self, daemon, filename):
        with open(os.path.join(daemon.storage, ".pypid", "files", filename + ".json")) as f:
            return json.load(f)

    def test_apply_killed_half_way(self):
        """
        A C{kill -9} in the middle of an apply leaves each file live or in
        the bin, whole; the next apply goes on from there.
        """
        daemon = self.daemon_with_releases()
        plan = admin(daemon, "retention", "plan")
        self.assertIn(f"default: {RELEASES - 1} releases, {RELEASES - 1} files", plan)
        self.assertIn("not among the newest 1 releases", plan)
        self.assertIn("kept: 1 protected", plan)
        # the first file the apply bins is the second newest release's
        first = self.wheels[-2][0]
        body = json.dumps({"index": "default"}).encode()

        def post():
            try:
                http("POST", daemon.url + "api/retention/apply",
                     {"Content-Type": "application/json"}, body, auth=(USER, PASSWORD),
                     timeout=60)
            except OSError:
                pass  # (the server was killed under it)
        posting = threading.Thread(target=post)
        posting.start()
        wait_for(lambda: "binned" in self.sidecar(daemon, first), 30,
                 "the apply did not begin")
        daemon.kill()
        posting.join(60)
        binned = [w[0] for w in self.wheels if "binned" in self.sidecar(daemon, w[0])]
        self.assertLess(len(binned), RELEASES - 1, "the kill came after the whole apply")
        daemon.start(port=daemon.port)
        # every file is whole: served, or in the bin (not served, listed there)
        listed = http("GET", f"{daemon.url}api/recycle-bin", auth=(USER, PASSWORD)).json()
        in_bin = {f["filename"] for f in listed["files"]}
        self.assertEqual(in_bin, set(binned))
        for filename, _data in self.wheels:
            self.assertTrue(os.path.exists(os.path.join(daemon.storage, filename)))
            status = http("GET", f"{daemon.url}files/e2e-cleaned/{filename}").status
            self.assertEqual(status, 404 if filename in in_bin else 200, filename)
        # the next apply goes on
        output = admin(daemon, "retention", "apply", "--yes")
        self.assertIn(f"default: removed {RELEASES - 1 - len(binned)} files into the "
                      "recycle bin", output)
        listed = http("GET", f"{daemon.url}api/recycle-bin", auth=(USER, PASSWORD)).json()
        self.assertEqual(len(listed["files"]), RELEASES - 1)
        self.assertEqual(http("GET", f"{daemon.url}files/e2e-cleaned/{self.wheels[-1][0]}")
                         .status, 200)
        self.assertIn("default: 0 releases", admin(daemon, "retention",
                                                                   "plan"))
        entries = http("GET", f"{daemon.url}api/audit?event=retention&limit=1000",
                       auth=(USER, PASSWORD)).json()["entries"]
        self.assertGreaterEqual(len(entries), RELEASES - 1 - len(binned))
