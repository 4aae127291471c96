"""
End-to-end tests of the recycle bin (issue 29) with the real daemon on
local disk: a deleted file leaves the pages and is kept, across a clean
restart and a C{kill -9}, listed by C{pypid-admin bin}; restored by
C{pypid-admin bin restore}, pip installs it again; kept its time, it is
purged for good (its URL answers 410, its bytes are gone, its name stays
taken). The S3 side, two servers on a bucket: tests.test_e2e_s3.
"""

import os

from tests.distributions import make_wheel
from tests.e2e import (
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


class RecycleBinTests(DaemonTestCase):
    def admin(self, daemon, *args):
        env = clean_env(daemon.home, PYPID_PASSWORD=PASSWORD)
        return run([ADMIN, "--server", daemon.url, "--user", USER, *args],
                   cwd=daemon.directory, env=env, what="pypid-admin").output

    def file_status(self, daemon):
        return http("GET", f"{daemon.url}files/e2e-binned/{WHEEL[0]}").status

    def test_kept_restored_purged(self):
        daemon = self.new_daemon(settings={"auth.admins": USER,
                                           "retention.recycle_bin": "1h"})
        self.assertEqual(upload(daemon, *WHEEL).status, 200)
        stored = os.path.join(daemon.storage, WHEEL[0])
        self.assertEqual(self.admin(daemon, "delete", WHEEL[0], "--yes").strip(), "OK")
        self.assertEqual(self.file_status(daemon), 404)
        self.assertNotIn(WHEEL[0], http("GET", f"{daemon.url}simple/e2e-binned/").body.decode())
        self.assertTrue(os.path.exists(stored))
        # kept in the bin across a clean restart and a crash
        daemon.restart(clean=True)
        self.assertEqual(self.file_status(daemon), 404)
        daemon.restart(clean=False)
        self.assertEqual(self.file_status(daemon), 404)
        lines = self.admin(daemon, "bin").splitlines()
        self.assertEqual(lines[0], "default: 1 file in the recycle bin (kept 1 hour)")
        self.assertTrue(lines[1].endswith(WHEEL[0]), lines)
        self.assertEqual(upload(daemon, *WHEEL).status, 400)
        # restored: served, installable
        self.assertIn("Restored", self.admin(daemon, "bin", "restore", WHEEL[0]))
        self.assertEqual(self.file_status(daemon), 200)
        self.assertIn("0 files", self.admin(daemon, "bin").splitlines()[0])
        # a bin of seconds: deleted, then purged for good
        daemon.stop_cleanly()
        daemon.settings["retention.recycle_bin"] = "2s"
        daemon.start(port=daemon.port)
        self.admin(daemon, "delete", WHEEL[0], "--yes")
        wait_for(lambda: self.file_status(daemon) == 410, 15,
                 "the file was not purged from the bin in time")
        self.assertFalse(os.path.exists(stored))
        self.assertEqual(upload(daemon, *WHEEL).status, 400)
        daemon.restart(clean=False)
        self.assertEqual(self.file_status(daemon), 410)
        entries = http("GET", f"{daemon.url}api/audit?event=purge",
                       auth=(USER, PASSWORD)).json()["entries"]
        self.assertEqual([e["filename"] for e in entries], [WHEEL[0]])
