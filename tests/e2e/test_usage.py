"""
End-to-end tests of download counts (issue 29) with the real daemon:
downloads counted and written every interval survive a C{kill -9} (what
was counted before the last write), a clean stop writes what it counted,
and C{/pypi/<p>/json}, C{GET /api/usage} and C{pypid-admin usage} give them.
"""

import os

from pypid.state.usage_log import INTERVAL
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

WHEEL = make_wheel("e2e-counted", "1.0")
OTHER = make_wheel("e2e-counted", "2.0")


class UsageTests(DaemonTestCase):
    def daemon_with_files(self):
        daemon = self.new_daemon(settings={"auth.admins": USER})
        for dist in (WHEEL, OTHER):
            self.assertEqual(upload(daemon, *dist).status, 200)
        return daemon

    def download(self, daemon, count):
        for _ in range(count):
            resp = http("GET", f"{daemon.url}files/e2e-counted/{WHEEL[0]}")
            self.assertEqual(resp.status, 200)

    def records(self, daemon):
        """The usage records written whole (a write's temporary file is not one yet)."""
        folder = os.path.join(daemon.storage, ".pypid", "usage")
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return sorted(name for name in names if not name.endswith(".tmp"))

    def downloads(self, daemon):
        resp = http("GET", f"{daemon.url}pypi/e2e-counted/json")
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()["info"]["downloads"]["last_day"]

    def test_kill_and_stop(self):
        """
        Counts written before a C{kill -9} survive it; those of the last
        interval are lost; a clean stop writes them all.
        """
        daemon = self.daemon_with_files()
        self.download(daemon, 3)
        wait_for(lambda: self.records(daemon), INTERVAL + 5,
                 "no usage record was written within the interval")
        self.download(daemon, 2)  # (counted, not written: lost to the crash)
        daemon.restart(clean=False)
        self.assertEqual(self.downloads(daemon), 3)
        self.download(daemon, 4)
        daemon.restart(clean=True)
        self.assertEqual(self.downloads(daemon), 7)

    def test_ranked(self):
        """GET /api/usage and pypid-admin usage: the most and the least downloaded."""
        daemon = self.daemon_with_files()
        self.download(daemon, 2)
        daemon.restart(clean=True)
        resp = http("GET", f"{daemon.url}api/usage?order=least", auth=(USER, PASSWORD))
        self.assertEqual(resp.status, 200, resp.body)
        rows = [(row["filename"], row["downloads"]) for row in resp.json()["files"]]
        self.assertEqual(rows, [(OTHER[0], 0), (WHEEL[0], 2)])
        self.assertEqual(http("GET", f"{daemon.url}api/usage").status, 401)
        env = clean_env(daemon.home, PYPID_PASSWORD=PASSWORD)
        lines = run([ADMIN, "--server", daemon.url, "--user", USER, "usage"],
                    cwd=daemon.directory, env=env, what="pypid-admin").output.splitlines()
        self.assertEqual(lines[0], "default: downloads over the last 30 days")
        self.assertEqual((lines[1].split()[0], lines[1].split()[-1]), ("2", WHEEL[0]))
        self.assertEqual((lines[2].split()[:2], lines[2].split()[-1]),
                         (["0", "never"], OTHER[0]))
