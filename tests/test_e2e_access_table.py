"""
The route x identity table of L{tests.test_access_table} holds for the real
daemon, on S3 (moto's server, files relayed: C{[s3] download = stream})
and behind an C{https:} listener with its C{http-redirect:} one, with
every identity's read of every row sent at once (issue 15): the rows that
only read, as they are the ones many clients send together, and the
identities with a password (a token acts for the admin who issues it
through the API, so the table's tokens of other users are checked in
process only).
"""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from tests import s3server
from tests.distributions import make_wheel
from tests.e2e import DaemonTestCase, free_port, http, upload_form
from tests.test_access_table import IDENTITIES, ROWS, TABLE, filename_of, read_table
from tests.test_e2e_s3 import s3_settings
from tests.test_e2e_tls import TLSDaemonTestCase, https

USERS = {"alice": "alice-pw", "carol": "carol-pw", "root": "root-pw"}


def fill(daemon, request):
    """Upload the table's projects, as their owners, with C{request(method, url, ...)}."""
    for user, name in (("alice", "holy-grail"), ("carol", "secret-sauce")):
        for version in ("1.0", "2.0"):
            ctype, body = upload_form(*make_wheel(name, version))
            answer = request("POST", daemon.url, {"Content-Type": ctype}, body,
                             auth=(user, USERS[user]))
            if answer.status != 200:
                raise AssertionError(f"{user} could not upload {name} {version}: "
                                     f"{answer.status} {answer.body!r}")


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
        fill(daemon, http)

    def test_reads_at_once(self):
        """Every identity's read of every row, sent at once, answers as the table says."""
        self.assertEqual(reads_at_once(self.daemon.url, self.read, http), [])


#: the identities with a password, as HTTP Basic credentials
PASSWORDS = {"anon": None, "alice": ("alice", "alice-pw"), "carol": ("carol", "carol-pw"),
             "admin": ("root", "root-pw"), "wrong": ("alice", "wrong")}


def reads_at_once(url, read, request):
    """
    Send every password identity's read of every row of the table to the
    server at C{url}, twice and all at once (16 at a time), with
    C{request(method, url, auth=...)}; the answers that are not the table's.
    """
    expected = read_table(TABLE)
    asks = []
    for method, template, projects in ROWS:
        if method != "GET" or template == "/metrics":
            continue  # (/metrics: the daemon's own rule, not the table's)
        for project in projects:
            path = template.format(p=project, f=filename_of(project), q=quote(project))
            want = expected[(read, method, template, project)]
            asks += [(path, who, code) for who, code in zip(IDENTITIES, want)
                     if who in PASSWORDS]
    # (each ask twice: a second request must not find an answer kept for
    # another identity)
    asks = asks * 2

    def ask(item):
        path, who, _ = item
        return item, request("GET", url + path.lstrip("/"), auth=PASSWORDS[who]).status
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(ask, asks))
    assert len(got) > 300, len(got)
    # (a wrong password is throttled after ten: 429 where the table, asked
    # without the throttle, says 401)
    return [(path, who, want, status) for (path, who, want), status in got
            if status != want and not (who == "wrong" and (want, status) == (401, 429))]


class ReadEveryoneTests(_TableOverS3, DaemonTestCase):
    read = "everyone"


class ReadAuthenticatedTests(_TableOverS3, DaemonTestCase):
    read = "authenticated"


class OverTLSTests(TLSDaemonTestCase):
    """
    The table over an C{https:} listener (local disk, C{read =
    authenticated}); its C{http-redirect:} listener answers every read of
    every identity with a redirect to the same path over HTTPS, and reads
    nothing: no project is told from another there.
    """

    def test_reads_at_once(self):
        daemon = self.new_tls_daemon(start=False, redirect_port=free_port(), users=USERS,
                                     settings={"auth.read": "authenticated",
                                               "auth.admins": "root",
                                               "acl.secret-*": "user:carol rw"})
        daemon.start()
        fill(daemon, https)
        self.assertEqual(reads_at_once(daemon.url, "authenticated", https), [])
        answers = set()
        for path in ("simple/secret-sauce/", "simple/no-such/", "project/secret-sauce/",
                     "files/secret-sauce/" + filename_of("secret-sauce")):
            for who in PASSWORDS:
                answer = http("GET", daemon.redirect_url + path, auth=PASSWORDS[who])
                answers.add((answer.status, answer.header("location") == daemon.url + path))
        self.assertEqual(answers, {(301, True)})


class UpstreamRedirectTests(DaemonTestCase):
    """
    With C{[upstream] mode = redirect}, a name the reader may not see
    answers as a missing one of the same C{[acl]} namespace: C{404} both,
    never a redirect for one and not the other. (Outside every rule, an
    unknown name is sent upstream, and no hidden project can be there.)
    """

    def test_hidden_like_missing(self):
        daemon = self.new_daemon(users=USERS, settings={
            "upstream.mode": "redirect", "upstream.url": "http://127.0.0.1:9/simple/",
            "auth.admins": "root", "acl.secret-*": "user:carol rw"})
        fill(daemon, http)
        for who in ("anon", "alice"):
            answers = {path: http("GET", daemon.url + path, auth=PASSWORDS[who]).status
                       for path in ("simple/secret-sauce/", "simple/secret-nothing/",
                                    "simple/Secret.Sauce/", "simple/Secret.Nothing/")}
            self.assertEqual(set(answers.values()), {404}, (who, answers))
            answer = http("GET", daemon.url + "simple/no-such/", auth=PASSWORDS[who])
            self.assertEqual((answer.status, answer.header("location")),
                             (302, "http://127.0.0.1:9/simple/no-such/"))
        self.assertEqual(http("GET", daemon.url + "simple/secret-sauce/",
                              auth=PASSWORDS["carol"]).status, 200)
