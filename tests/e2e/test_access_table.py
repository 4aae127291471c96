"""
The route x identity table of L{tests.unit.web.identity.test_access_table} holds for the real
daemon, on S3 (moto's server, files relayed: C{[s3] download = stream})
and behind an C{https:} listener with its C{http-redirect:} one, with
every identity's read of every row sent at once (issue 15): the rows that
only read, as they are the ones many clients send together, and the
identities with a password (a token acts for the admin who issues it
through the API, so the table's tokens of other users are checked in
process only). With C{[upstream] mode = redirect}, a hidden project answers
as a missing one; with C{mode = cache} and C{merge}, L{UPSTREAM_TABLE} says
what hosted projects (public or hidden, merged or not), names only
upstream and names nowhere answer, and a hidden one is never asked of the
upstream for those who may not read it.
"""

import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from tests.harness import s3server
from tests.harness.access_table import (
    IDENTITIES,
    ROWS,
    TABLE,
    WEBHOOK,
    digest_path,
    filename_of,
    keep_digest,
    read_table,
)
from tests.harness.distributions import make_wheel
from tests.harness.e2e import DaemonTestCase, free_port, http, sha256, upload_form
from tests.harness.e2e_s3 import s3_settings
from tests.harness.e2e_tls import TLSDaemonTestCase, https
from tests.harness.upstream_server import UpstreamProcess

USERS = {"alice": "alice-pw", "carol": "carol-pw", "root": "root-pw"}


def fill(daemon, request, projects=(("alice", "holy-grail"), ("carol", "secret-sauce"))):
    """
    Upload the table's projects (versions 1.0 and 2.0 of each), as their
    owners, with C{request(method, url, ...)}; return the sha256 of each
    file uploaded, by filename.
    """
    uploaded = {}
    for user, name in projects:
        for version in ("1.0", "2.0"):
            filename, data = make_wheel(name, version)
            keep_digest(filename, data)
            ctype, body = upload_form(filename, data)
            answer = request("POST", daemon.url, {"Content-Type": ctype}, body,
                             auth=(user, USERS[user]))
            if answer.status != 200:
                raise AssertionError(f"{user} could not upload {name} {version}: "
                                     f"{answer.status} {answer.body!r}")
            uploaded[filename] = sha256(data)
    return uploaded


class _TableOverS3:
    """A daemon on a bucket of its own, with the table's users, rule and projects."""

    read = None
    users = USERS

    @property
    def settings(self):
        bucket = self.shared("bucket", s3server.new_bucket)
        return {**s3_settings(bucket, download="stream"), "auth.read": self.read,
                "auth.admins": "root", "acl.secret-*": "user:carol rw", **WEBHOOK}

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
        if method != "GET" or template == "/metrics" or template.startswith("/integrity/"):
            # (/metrics: the daemon's own rule, not the table's; /integrity:
            # the files uploaded here have no provenance, so every reader
            # gets 404: the in-memory table, tests.unit.web.identity.test_access_table, gives
            # its files one)
            continue
        for project in projects:
            path = template.format(p=project, f=filename_of(project), q=quote(project),
                                       **digest_path(project))
            want = expected[(read, method, template, project)]
            asks += [(path, who, code) for who, code in zip(IDENTITIES, want, strict=True)
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
                                               "acl.secret-*": "user:carol rw", **WEBHOOK})
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


#: the password identities, in the order of L{UPSTREAM_TABLE}'s columns
UPSTREAM_IDENTITIES = ("anon", "alice", "carol", "admin", "wrong")

#: the identities that may not read C{secret-*}, to whom a hidden project
#: must answer byte for byte as a missing one of that namespace
NOT_READERS = ("anon", "alice", "wrong")

#: what the upstream serves: C{(project, version, module text)}; the
#: hosted projects are there too (their upstream files must never show,
#: but where C{merge} says), the 1.0 of the merged ones in other bytes than
#: the hosted 1.0 (the hosted file must win)
UPSTREAM_HOLDS = (
    ("holy-grail", "9.0", None), ("secret-sauce", "9.0", None),
    ("mixed-bag", "1.0", "ORIGIN = 'upstream'\n"), ("mixed-bag", "3.0", None),
    ("secret-mix", "1.0", "ORIGIN = 'upstream'\n"), ("secret-mix", "3.0", None),
    ("up-only", "1.0", None), ("secret-upstream", "1.0", None),
)

#: the hosted projects and their owners: public; hidden (C{secret-*} is
#: carol's); public and merged; hidden and merged
HOSTED = (("alice", "holy-grail"), ("carol", "secret-sauce"), ("alice", "mixed-bag"),
          ("carol", "secret-mix"))

#: the upstream files that reach a reader through the cache
FETCHED = ("mixed_bag-3.0-py3-none-any.whl", "secret_mix-3.0-py3-none-any.whl",
           "up_only-1.0-py3-none-any.whl", "secret_upstream-1.0-py3-none-any.whl")

#: a name that C{[acl]} hides from some (C{secret-} and a word), in any spelling
_HIDDEN_WORD = re.compile(r"(?i)(?<=secret[-_.])(sauce|mix|upstream)")


def missing_twin(path):
    """
    C{path} with its hidden project named as the missing C{secret-nothing}
    (spelt alike: C{Secret_Sauce} is C{Secret_Nothing}), or L{None}.
    """
    def nothing(match):
        word = match.group()
        return "NOTHING" if word.isupper() else "Nothing" if word[0].isupper() else "nothing"
    twin = _HIDDEN_WORD.sub(nothing, path)
    return None if twin == path else twin


def read_upstream_table(text):
    """
    L{UPSTREAM_TABLE} as C{{(read, path, accept): codes}}: a line C{PATH
    ACCEPT | codes (read = everyone) | codes (authenticated)}.
    """
    table = {}
    for line in text.strip().splitlines():
        head, everyone, authenticated = line.split("|")
        path, accept = head.split()
        for read, codes in (("everyone", everyone), ("authenticated", authenticated)):
            table[(read, path, accept)] = tuple(int(c) for c in codes.split())
    return table


#: the C{Accept} header of each kind of page
ACCEPT = {"html": {}, "json": {"Accept": "application/vnd.pypi.simple.v1+json"}}


def fingerprint(answer):
    """What a client learns of an answer: its status, headers (but C{Date}) and body."""
    headers = sorted((name.lower(), value) for name, value in answer.headers.items()
                     if name.lower() != "date")
    return answer.status, tuple(headers), answer.body


class _MergeTable:
    """
    The daemon in C{[upstream] mode = cache} before an upstream of its
    class's own (a L{UpstreamProcess}, stopped with the class's daemon), with
    the table's users and rule (C{secret-*} is carol's) and C{merge =
    mixed-bag secret-mix}: hosted projects public and hidden, merged or
    not, all also upstream; names only upstream, in the hidden namespace or
    not; names nowhere, in it or not. Every answer is L{UPSTREAM_TABLE}'s;
    a hidden project answers who may not read it as C{secret-nothing}
    does, and is never asked of the upstream for them (issue 15).
    """

    read = None
    users = USERS

    @property
    def upstream(self):
        """The class's upstream, started on first use."""
        return self.shared("upstream", self._start_upstream, UpstreamProcess.stop)

    def _start_upstream(self):
        upstream = UpstreamProcess(self.shared_folder("-upstream"))
        for name, version, text in UPSTREAM_HOLDS:
            upstream.add(*make_wheel(name, version, module_text=text))
        return upstream.start()

    @property
    def settings(self):
        return {"auth.read": self.read, "auth.admins": "root", "acl.secret-*": "user:carol rw",
                "upstream.mode": "cache", "upstream.url": self.upstream.url,
                "upstream.merge": "mixed-bag secret-mix", "upstream.timeout": "5", **WEBHOOK}

    def prepare(self, daemon):
        # (the sha256 of each file uploaded, by filename: self.prepared)
        return fill(daemon, http, HOSTED)

    def asks(self, identities, pages=True):
        """Each row's request by each of C{identities}; the pages for people unless not C{pages}."""
        table = read_upstream_table(UPSTREAM_TABLE)
        return [(path, accept, who, code)
                for (read, path, accept), codes in table.items() if read == self.read
                if pages or not path.startswith("project/")
                for who, code in zip(UPSTREAM_IDENTITIES, codes, strict=True) if who in identities]

    def send(self, asks):
        """Send C{asks}, twice and all at once (16 at a time); C{[(ask, answer)]}."""
        url = self.daemon.url

        def ask(item):
            path, accept, who, _ = item
            return item, http("GET", url + path, ACCEPT[accept], auth=PASSWORDS[who])
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(ask, asks * 2))

    def asked_upstream(self):
        """The paths the upstream was asked for since the log was cleared."""
        return [entry["path"] for entry in self.upstream.requests()]

    def test_reads_at_once(self):
        """
        Every row, asked by every password identity at once, answers as the
        table says (a wrong password may be throttled: 429), and never
        with a 5xx; to those who may not read it, a hidden project answers
        as C{secret-nothing} does, in each spelling and on each route, and
        the upstream is not asked about it. Those who may read first ask
        alone, then everyone at once; the pages for people last, as they
        show an upstream project only once the cache knows it.
        """
        self.upstream.clear_requests()
        got = self.send(self.asks(NOT_READERS, pages=False))
        self.assertEqual([p for p in self.asked_upstream() if "secret" in p.lower()], [])
        got += self.send(self.asks(("carol", "admin"), pages=False))
        got += self.send(self.asks(UPSTREAM_IDENTITIES))
        self.assertGreater(len(got), 700)
        # (a wrong password is throttled after ten: 429 where the table says 401)
        mismatches = [(path, accept, who, want, answer.status, answer.body[:80])
                      for (path, accept, who, want), answer in got
                      if answer.status != want and not (
                          who == "wrong" and (want, answer.status) == (401, 429))]
        self.maxDiff = None
        self.assertEqual(mismatches, [])
        self.assertEqual([a for a in got if a[1].status >= 500], [])
        seen = {}
        for (path, accept, who, _), answer in got:
            if who in ("anon", "alice"):
                seen.setdefault((path, accept, who), set()).add(fingerprint(answer))
        twins = [(path, missing_twin(path), accept, who) for path, accept, who in seen
                 if missing_twin(path) is not None]
        self.assertGreater(len(twins), 50)
        for path, twin, accept, who in twins:
            self.assertIn((twin, accept, who), seen, f"no row in UPSTREAM_TABLE for {twin}")
            self.assertEqual(seen[path, accept, who], seen[twin, accept, who],
                             f"{who} tells {path} ({accept}) from {twin}")
            self.assertEqual(len(seen[path, accept, who]), 1, (path, accept, who))
        asked = self.asked_upstream()
        self.assertEqual([p for p in asked if re.search(r"holy|secret[-_]sauce", p)], [])
        # (once each: a connection closed under a concurrent request once
        # made the agent send it twice, bodies.discard)
        self.assertEqual({name: asked.count("/files/" + name) for name in FETCHED},
                         dict.fromkeys(FETCHED, 1))

    def test_merged_where_merge_says(self):
        """
        A reader of a hosted project gets its hosted files, and the
        upstream's only where C{merge} says; a hosted file wins over an
        upstream one of the same name, on the page and in the download.
        """
        readers = ("alice", "carol", "admin") + (("anon",) if self.read == "everyone" else ())
        wanted = {
            "holy-grail": (readers, ["1.0", "2.0"]),
            "mixed-bag": (readers, ["1.0", "2.0", "3.0"]),
            "secret-sauce": (("carol", "admin"), ["1.0", "2.0"]),
            "secret-mix": (("carol", "admin"), ["1.0", "2.0", "3.0"]),
        }
        for project, (who_reads, versions) in wanted.items():
            dist = project.replace("-", "_")
            for who in who_reads:
                answer = http("GET", f"{self.daemon.url}simple/{project}/", ACCEPT["json"],
                              auth=PASSWORDS[who])
                self.assertEqual(answer.status, 200, (project, who))
                files = {f["filename"]: f["hashes"]["sha256"] for f in answer.json()["files"]}
                self.assertEqual(sorted(files),
                                 [f"{dist}-{v}-py3-none-any.whl" for v in versions], who)
                hosted = {name: digest for name, digest in self.prepared.items()
                          if name.startswith(dist + "-")}
                self.assertEqual({name: files[name] for name in hosted}, hosted, who)
                first = f"{dist}-1.0-py3-none-any.whl"
                answer = http("GET", f"{self.daemon.url}files/{project}/{first}",
                              auth=PASSWORDS[who])
                self.assertEqual(sha256(answer.body), hosted[first], (project, who))


class UpstreamMergeReadEveryoneTests(_MergeTable, DaemonTestCase):
    read = "everyone"


class UpstreamMergeReadAuthenticatedTests(_MergeTable, DaemonTestCase):
    read = "authenticated"


#: what anon, alice, carol, admin and a wrong password get, with [auth]
#: read = everyone, then read = authenticated, in L{_MergeTable}'s
#: daemon: for each path and Accept (HTML, or PEP 691's JSON). As the docs
#: say: a project the reader may not see does not exist (404, however spelt,
#: on every route); one the reader may see is redirected from another
#: spelling (301), and so, in the cache mode, is any other name of a
#: namespace it may read; /simple/<name> without its slash is redirected
#: only for a hosted project; the legacy JSON is the hosted projects';
#: the pages for people show what the cache knows; /health is always open.
UPSTREAM_TABLE = """
simple/holy-grail/                                            html | 200 200 200 200 401 | 401 200 200 200 401
simple/holy-grail/                                            json | 200 200 200 200 401 | 401 200 200 200 401
simple/holy-grail                                             html | 301 301 301 301 401 | 401 301 301 301 401
simple/Holy_Grail/                                            html | 301 301 301 301 401 | 401 301 301 301 401
simple/mixed-bag/                                             html | 200 200 200 200 401 | 401 200 200 200 401
simple/mixed-bag/                                             json | 200 200 200 200 401 | 401 200 200 200 401
simple/secret-sauce/                                          html | 404 404 200 200 401 | 401 404 200 200 401
simple/secret-sauce/                                          json | 404 404 200 200 401 | 401 404 200 200 401
simple/secret-sauce                                           html | 404 404 301 301 401 | 401 404 301 301 401
simple/Secret_Sauce/                                          html | 404 404 301 301 401 | 401 404 301 301 401
simple/Secret_Sauce/                                          json | 404 404 301 301 401 | 401 404 301 301 401
simple/SECRET.sauce/                                          html | 404 404 301 301 401 | 401 404 301 301 401
simple/Secret_Sauce                                           html | 404 404 301 301 401 | 401 404 301 301 401
simple/secret-mix/                                            html | 404 404 200 200 401 | 401 404 200 200 401
simple/secret-mix/                                            json | 404 404 200 200 401 | 401 404 200 200 401
simple/Secret_Mix/                                            html | 404 404 301 301 401 | 401 404 301 301 401
simple/secret-upstream/                                       html | 404 404 200 200 401 | 401 404 200 200 401
simple/secret-upstream/                                       json | 404 404 200 200 401 | 401 404 200 200 401
simple/Secret_Upstream/                                       html | 404 404 301 301 401 | 401 404 301 301 401
simple/secret-nothing/                                        html | 404 404 404 404 401 | 401 404 404 404 401
simple/secret-nothing/                                        json | 404 404 404 404 401 | 401 404 404 404 401
simple/secret-nothing                                         html | 404 404 404 404 401 | 401 404 404 404 401
simple/Secret_Nothing/                                        html | 404 404 301 301 401 | 401 404 301 301 401
simple/Secret_Nothing/                                        json | 404 404 301 301 401 | 401 404 301 301 401
simple/SECRET.nothing/                                        html | 404 404 301 301 401 | 401 404 301 301 401
simple/Secret_Nothing                                         html | 404 404 404 404 401 | 401 404 404 404 401
simple/up-only/                                               html | 200 200 200 200 401 | 401 200 200 200 401
simple/up-only/                                               json | 200 200 200 200 401 | 401 200 200 200 401
simple/Up_Only/                                               html | 301 301 301 301 401 | 401 301 301 301 401
simple/up-only                                                html | 404 404 404 404 401 | 401 404 404 404 401
simple/no-such/                                               html | 404 404 404 404 401 | 401 404 404 404 401
simple/no-such/                                               json | 404 404 404 404 401 | 401 404 404 404 401
simple/No_Such/                                               html | 301 301 301 301 401 | 401 301 301 301 401
files/holy-grail/holy_grail-1.0-py3-none-any.whl              html | 200 200 200 200 401 | 401 200 200 200 401
files/holy-grail/holy_grail-9.0-py3-none-any.whl              html | 404 404 404 404 401 | 401 404 404 404 401
files/mixed-bag/mixed_bag-1.0-py3-none-any.whl                html | 200 200 200 200 401 | 401 200 200 200 401
files/mixed-bag/mixed_bag-3.0-py3-none-any.whl                html | 200 200 200 200 401 | 401 200 200 200 401
files/secret-sauce/secret_sauce-1.0-py3-none-any.whl          html | 404 404 200 200 401 | 401 404 200 200 401
files/secret-sauce/secret_sauce-1.0-py3-none-any.whl.metadata html | 404 404 200 200 401 | 401 404 200 200 401
files/secret-sauce/secret_sauce-9.0-py3-none-any.whl          html | 404 404 404 404 401 | 401 404 404 404 401
files/secret-mix/secret_mix-1.0-py3-none-any.whl              html | 404 404 200 200 401 | 401 404 200 200 401
files/secret-mix/secret_mix-3.0-py3-none-any.whl              html | 404 404 200 200 401 | 401 404 200 200 401
files/secret-upstream/secret_upstream-1.0-py3-none-any.whl    html | 404 404 200 200 401 | 401 404 200 200 401
files/secret-nothing/secret_nothing-1.0-py3-none-any.whl      html | 404 404 404 404 401 | 401 404 404 404 401
files/secret-nothing/secret_nothing-1.0-py3-none-any.whl.metadata html | 404 404 404 404 401 | 401 404 404 404 401
files/secret-nothing/secret_nothing-3.0-py3-none-any.whl      html | 404 404 404 404 401 | 401 404 404 404 401
files/secret-nothing/secret_nothing-9.0-py3-none-any.whl      html | 404 404 404 404 401 | 401 404 404 404 401
files/up-only/up_only-1.0-py3-none-any.whl                    html | 200 200 200 200 401 | 401 200 200 200 401
files/no-such/no_such-1.0-py3-none-any.whl                    html | 404 404 404 404 401 | 401 404 404 404 401
project/holy-grail/                                           html | 200 200 200 200 401 | 401 200 200 200 401
project/mixed-bag/                                            html | 200 200 200 200 401 | 401 200 200 200 401
project/secret-sauce/                                         html | 404 404 200 200 401 | 401 404 200 200 401
project/secret-sauce                                          html | 404 404 301 301 401 | 401 404 301 301 401
project/Secret_Sauce/                                         html | 404 404 301 301 401 | 401 404 301 301 401
project/secret-mix/                                           html | 404 404 200 200 401 | 401 404 200 200 401
project/secret-upstream/                                      html | 404 404 200 200 401 | 401 404 200 200 401
project/secret-nothing/                                       html | 404 404 404 404 401 | 401 404 404 404 401
project/secret-nothing                                        html | 404 404 404 404 401 | 401 404 404 404 401
project/Secret_Nothing/                                       html | 404 404 404 404 401 | 401 404 404 404 401
project/up-only/                                              html | 200 200 200 200 401 | 401 200 200 200 401
project/no-such/                                              html | 404 404 404 404 401 | 401 404 404 404 401
pypi/holy-grail/json                                          html | 200 200 200 200 401 | 401 200 200 200 401
pypi/secret-sauce/json                                        html | 404 404 200 200 401 | 401 404 200 200 401
pypi/Secret_Sauce/json                                        html | 404 404 301 301 401 | 401 404 301 301 401
pypi/secret-mix/json                                          html | 404 404 200 200 401 | 401 404 200 200 401
pypi/secret-upstream/json                                     html | 404 404 200 200 401 | 401 404 200 200 401
pypi/secret-nothing/json                                      html | 404 404 404 404 401 | 401 404 404 404 401
pypi/Secret_Nothing/json                                      html | 404 404 301 301 401 | 401 404 301 301 401
pypi/up-only/json                                             html | 200 200 200 200 401 | 401 200 200 200 401
pypi/no-such/json                                             html | 404 404 404 404 401 | 401 404 404 404 401
health                                                        html | 200 200 200 200 200 | 200 200 200 200 200
"""
