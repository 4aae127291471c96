"""
The route x identity table of L{tests.test_access_table} holds for the real
daemon on S3 (moto's server, files relayed: C{[s3] download = stream}),
with every identity's read of every row sent at once (issue 15): the
rows that only read, as they are the ones many clients send together, and
the identities with a password (a token acts for the admin who issues it
through the API, so the table's tokens of other users are checked in
process only).
"""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from tests import s3server
from tests.distributions import make_wheel
from tests.e2e import DaemonTestCase, http, upload
from tests.test_access_table import IDENTITIES, ROWS, TABLE, filename_of, read_table
from tests.test_e2e_s3 import s3_settings

USERS = {"alice": "alice-pw", "carol": "carol-pw", "root": "root-pw"}


class _TableOverS3:
    """A daemon on a bucket of its own, with the table's users, rule and projects."""

    read = None
    users = USERS

    @property
    def settings(self):
        cls = type(self)
        if cls.__dict__.get("bucket") is None:
            cls.bucket = s3server.new_bucket()
        return {**s3_settings(cls.bucket, download="stream"), "auth.read": self.read,
                "auth.admins": "root", "acl.secret-*": "user:carol rw"}

    def prepare(self, daemon):
        for user, name in (("alice", "holy-grail"), ("carol", "secret-sauce")):
            for version in ("1.0", "2.0"):
                answer = upload(daemon, *make_wheel(name, version), auth=(user, USERS[user]))
                if answer.status != 200:
                    raise AssertionError(f"{user} could not upload {name} {version}: "
                                         f"{answer.status} {answer.body!r}")

    def test_reads_at_once(self):
        """Every identity's read of every row, sent at once, answers as the table says."""
        daemon = self.daemon
        auth = {"anon": None, "alice": ("alice", "alice-pw"), "carol": ("carol", "carol-pw"),
                "admin": ("root", "root-pw"), "wrong": ("alice", "wrong")}
        expected = read_table(TABLE)
        asks = []
        for method, template, projects in ROWS:
            if method != "GET" or template in ("/metrics",):
                continue  # (/metrics: the daemon's own rule, not the table's)
            for project in projects:
                path = template.format(p=project, f=filename_of(project), q=quote(project))
                want = expected[(self.read, method, template, project)]
                for who, code in zip(IDENTITIES, want):
                    if who in auth:
                        asks.append((path, who, code))
        # (each ask twice, all at once: a second request must not find a
        # different answer cached by the first of another identity)
        asks = asks * 2

        def ask(item):
            path, who, code = item
            return item, http("GET", daemon.url + path.lstrip("/"), auth=auth[who]).status
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(ask, asks))
        # (a wrong password is throttled after ten: 429 where the table,
        # asked without the throttle, says 401)
        wrong = [(path, who, want, status) for (path, who, want), status in got
                 if status != want and not (who == "wrong" and (want, status) == (401, 429))]
        self.assertEqual(wrong, [])
        self.assertGreater(len(got), 300)


class ReadEveryoneTests(_TableOverS3, DaemonTestCase):
    read = "everyone"


class ReadAuthenticatedTests(_TableOverS3, DaemonTestCase):
    read = "authenticated"
