"""
End-to-end tests of a burst of correct credentials on a cold server: the
login throttle must hold back guessers, never a client that sends the right
password many times at once (C{uv pip install} of many projects from a
private index, parallel uploads from CI).

The user's password has argon2id's default cost here (not the cheap one the
other end-to-end tests use), so that each check takes long enough for the
burst's requests to arrive while it is under way, as on a real server.
"""

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from pypid.auth.hashes import hash_password
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, Clients, DaemonTestCase, http, installed, upload

#: Projects installed at once.
PROJECTS = 30

#: Parallel requests of the raw burst.
BURST = 50

WHEELS = [make_wheel(f"burst-{number:02d}", "1.0") for number in range(PROJECTS)]


def at_once(count, request):
    """
    Call C{request()} from C{count} threads released together; return the
    answers in order.
    """
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return request()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def statuses(access_log):
    """The status of every request in a combined-format access log, in order."""
    with open(access_log, encoding="utf-8") as f:
        return [int(m.group(1)) for m in re.finditer(r'" (\d{3}) ', f.read())]


class WarningClients(Clients):
    """The isolated clients, with uv's warnings on its output: a retry (after a 429) is one."""

    def env(self, **extra):
        """The environment of a client, with C{RUST_LOG=warn}."""
        return super().env(RUST_LOG="warn", **extra)


class BurstTests(DaemonTestCase):
    """A private index (C{read = authenticated}) hit by bursts of the right credentials."""

    def setUp(self):
        super().setUp()
        self.clients = WarningClients(self.clients.directory)

    def cold_daemon(self):
        """A fresh private daemon with an access log and a real-cost password, started."""
        daemon = self.new_daemon(settings={"auth.read": "authenticated"}, users={},
                                 start=False)
        daemon.access_log = os.path.join(daemon.directory, "access.log")
        daemon.settings["pypid.access_log"] = daemon.access_log
        daemon.settings[f"users.{USER}"] = hash_password(PASSWORD)
        return daemon.start()

    def assertNo429(self, daemon, *outputs):
        """
        Assert that the daemon's access log (every answer's status) has no
        429, nor the clients' outputs a 429 or a retry; return the statuses.
        """
        codes = statuses(daemon.access_log)
        self.assertNotIn(429, codes)
        for output in outputs:
            self.assertNotRegex(output, r"\b429\b|Retry attempt")
        return codes

    def test_uv_installs_thirty_projects_from_cold_private_index(self):
        """
        Thirty parallel uploads on a cold server are all accepted, and after a
        restart (a cold verifier) C{uv pip install} of all thirty with
        credentials in the index URL succeeds with no 429 anywhere.
        """
        daemon = self.cold_daemon()
        feed = iter(WHEELS)
        lock = threading.Lock()

        def next_upload():
            with lock:
                wheel = next(feed)
            return upload(daemon, *wheel)

        answers = at_once(PROJECTS, next_upload)
        refused = [(a.status, a.body) for a in answers if a.status != 200]
        self.assertEqual(refused, [])

        daemon.restart()
        target = os.path.abspath(self.mktemp())
        names = [f"burst-{number:02d}" for number in range(PROJECTS)]
        done = self.clients.uv_install(target, daemon.authed_index_url(), *names)
        self.assertEqual(installed(target), {name: "1.0" for name in names})
        codes = self.assertNo429(daemon, done.output)
        # The log is not vacuous: every page and file was read through it.
        self.assertGreaterEqual(codes.count(200), 2 * PROJECTS)
        with open(daemon.access_log, encoding="utf-8") as f:
            logged = daemon.log_text() + f.read()
        for secret in (PASSWORD, quote(PASSWORD, safe="")):
            self.assertNotIn(secret, logged)

    def test_burst_of_authenticated_reads_on_cold_server(self):
        """Fifty parallel GETs with the right credentials on a freshly started server all answer 200."""
        daemon = self.cold_daemon()
        self.assertEqual(upload(daemon, *WHEELS[0]).status, 200)
        daemon.restart()
        url = daemon.index_url + "burst-00/"
        answers = at_once(BURST, lambda: http("GET", url, auth=(USER, PASSWORD)))
        self.assertEqual([a.status for a in answers], [200] * BURST)
        self.assertEqual(statuses(daemon.access_log)[-BURST:], [200] * BURST)
        self.assertNo429(daemon)
