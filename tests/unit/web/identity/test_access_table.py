"""
Every route of C{docs/http-api.rst} against every kind of identity, under
C{[auth] read = everyone} and C{read = authenticated}: the answer expected
in each cell is in L{TABLE}, which the test reads; a documented route
without a row there fails it (issue 15).

The index holds a public project (C{holy-grail}) and one an C{[acl]} rule
keeps to carol (C{secret-sauce}); each route that names a project is asked
about both, and about one that does not exist (C{no-such}). The
identities: anonymous; alice, a user; carol, the secret project's; an
admin; a wrong password; API tokens of alice's (read, upload, read scoped
to another project, expired, revoked) and of carol's (upload).

The table was written from the answers the site gave, each read and
judged (a hidden project answers exactly as one that does not exist, to
everyone who may not see it; a writer without read is refused before
anything is looked up); a changed answer is a change to judge again, and
to write here. C{/metrics} answers everyone in L{TABLE}: the test's client
is on the loopback address, which its default rule lets scrape; who may
scrape from elsewhere, under each C{[metrics]} setting, is L{METRICS_TABLE}'s,
written from C{docs/configuration.rst} and C{docs/http-api.rst} (the
C{[metrics]} section, C{GET /metrics}).
"""

import base64
import json
import os
import re
import time
from urllib.parse import quote

import bcrypt
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config.metrics_settings import DEFAULT_ALLOW, MetricsConfig, parse_networks
from pypid.core.access.access_rules import parse_rule
from pypid.core.access.credential_syntax import parse_htpasswd
from pypid.core.dists.provenance import Publisher, provenance_document
from pypid.core.dists.version_order import release_key
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.indexes.retention import RetentionRules
from pypid.core.security.advisories import (
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.affected_releases import Affected
from pypid.daemon.server import build_service
from pypid.state.cleanup import IndexCleanup
from pypid.state.indexes import IndexRegistry, index_view
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.state.waiver_keeper import WaiverKeeper
from pypid.storage.base.locks import KeyedLock
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteServices, SiteSettings
from pypid.webhooks.ledger import Ledger
from pypid.webhooks.part import WebhookPart
from tests import CHECKOUT
from tests.harness.access_table import (
    IDENTITIES,
    ROWS,
    TABLE,
    digest_path,
    filename_of,
    keep_digest,
    read_table,
)
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
    write_file,
)
from tests.harness.indexes import Server, Stack, _ServerMixin, same
from tests.harness.memory_records import MemoryRecords
from tests.harness.memory_storage import MemoryStorage
from tests.harness.sigstore_root import TestSigstore, github_claims
from tests.harness.tap import ThreadedReactor, checking_pools
from tests.harness.web import memory_sessions
from tests.harness.webhooks import ScriptedSender, subscription

#: signs the provenance of the files whose Integrity API rows are checked
SIGSTORE = TestSigstore()

ORIGIN = "http://pypi.test"
PASSWORD = "correct horse"
DOCS = os.path.join(CHECKOUT, "docs",
                    "http-api.rst")

#: the users as an htpasswd file (bcrypt, cost 4: the cheapest, for speed)
HTPASSWD = "".join(
    f"{name}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n"
    for name in ("alice", "carol", "root"))


def basic(user, password=PASSWORD):
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def may_have_changed(method, code, who):
    """
    Whether a cell's request may have changed the server, which is then
    built again for the next cell (none sees another's change): a change
    let through (an answer below 400), or any change asked with a wrong
    password (a refusal the login throttle counts). A refused change
    changes nothing; were that not so, the next cell's answer would
    differ from its table's.
    """
    return method != "GET" and (code < 400 or who == "wrong")


class AccessTableTests(SynchronousTestCase):
    """Each cell of L{TABLE}, asked of the real site (in memory)."""

    #: how the server is set up beyond the table's rules: C{None}, or
    #: C{"base_url"} (a base URL set), C{"htpasswd"} (the users read from an
    #: htpasswd file of bcrypt hashes, as pypiserver's)
    variant = None

    def build(self, read, metrics=None):
        """
        A server as the table says, with C{[auth] read = read}; C{metrics},
        its C{[metrics]} (by default, the default). alice is in the group
        C{monitoring}, which only C{[metrics] group} names.
        """
        self.clock = Clock()
        self.clock.advance(1767225600)
        folder = os.path.abspath(self.mktemp())
        self.storage = MemoryStorage(os.path.join(folder, "spool"), self.clock)
        self.successResultOf(self.storage.prepare())
        base_url = "https://pypi.example/" if self.variant == "base_url" else None
        self.index = Index(file_url_for(base_url), namespaces=IndexNamespaces("default"))
        users = {name: hash_password(PASSWORD, FAST) for name in ("alice", "carol", "root")}
        if self.variant == "htpasswd":
            users = parse_htpasswd(HTPASSWD, "users.htpasswd")
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        model = AccessModel(read=read, admins=frozenset({"root"}),
                            groups={"monitoring": frozenset({"alice"})},
                            rules=(parse_rule("secret-*", "user:carol rw", 0),))
        self.tokens = TokenBook(self.clock)
        access = Gates(model, verifier, None, self.tokens,
                        sessions=memory_sessions(self.clock, self.mktemp()))
        # (the default index alone, as a server without [index:NAME] has it:
        # POST /api/promote then knows one index, and promotes nothing)
        # (and its download counts and recycle bin, as a daemon has them:
        # GET /api/usage, GET /api/recycle-bin)
        usage = UsageLog(self.storage, self.clock)
        locks = KeyedLock(self.clock)
        bin = RecycleBin(self.index, self.storage, locks, self.clock)
        cleanup = IndexCleanup("default", bin, usage, RetentionRules(keep_releases=1))
        # (and its advisory policy and view: GET /api/advisories/project/<p>)
        stacks = {"default": Stack("default", self.index, self.storage, locks, usage=usage,
                                   bin=bin, cleanup=cleanup)}
        board = AdvisoryBoard()
        policies = {"default": AdvisoryPolicy(AdvisoryRules(), board)}
        registry = IndexRegistry(
            stacks, {"default": ("default",)},
            {"default": index_view(None, "default", ("default",), stacks, {}, base_url,
                                   policies["default"])},
            board=board, policies=policies, waivers=WaiverKeeper(self.storage, self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, locks=locks, bin=bin),
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20, base_url=base_url),
                        SiteServices(metrics=metrics, registry=registry,
                                     webhooks=WebhookPart(
                                         Ledger(MemoryRecords(), self.clock),
                                         ScriptedSender(), {"builds": subscription("builds")},
                                         self.clock)))
        self.site = web.site
        self.client = site_treq(web.site)
        t = self.tokens.issue
        revoked, token = t("alice", {"read", "upload"})
        self.tokens.revoke(token.id)
        self.auth = {
            "anon": None, "alice": basic("alice"), "carol": basic("carol"),
            "admin": basic("root"), "wrong": basic("alice", "wrong"),
            "t-read": basic("__token__", t("alice", {"read"})[0]),
            "t-upload": basic("__token__", t("alice", {"upload"})[0]),
            "t-other": basic("__token__", t("alice", {"read", "upload"}, ["other-*"])[0]),
            "t-expired": basic("__token__", t("alice", {"read", "upload"}, lifetime=60)[0]),
            "t-revoked": basic("__token__", revoked),
            "t-carol": basic("__token__", t("carol", {"read", "upload"})[0]),
        }
        for user, name in (("alice", "holy-grail"), ("carol", "secret-sauce")):
            for version in ("1.0", "2.0"):
                code = self.upload(basic(user), name, version)
                self.assertEqual(code, 200, (user, name, version))
        for name in ("holy-grail", "secret-sauce"):
            # (each 1.0 wheel with a provenance of its own bytes, for the
            # Integrity API's rows: one of other bytes is never served)
            record = self.index.get_file(filename_of(name))
            provenance = provenance_document([(Publisher("GitHub"), [SIGSTORE.attest(
                record.filename, record.sha256, claims=github_claims())])])
            self.index.add(self.successResultOf(
                self.storage.keep_provenance(record, provenance)))
        self.clock.advance(120)  # (the expired token's lifetime is over)

    def upload(self, auth, name, version, path="/legacy/"):
        filename, data = make_wheel(name, version)
        keep_digest(filename, data)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        return self.request("POST", path, auth, body, {"Content-Type": ctype})

    def request(self, method, path, auth, data=None, headers=None):
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = auth
        response = self.successResultOf(self.client.request(
            method, ORIGIN + path, headers=headers, data=data, allow_redirects=False))
        self.successResultOf(response.content())
        return response.code

    def matrix(self, read):
        """
        C{[(method, path, project, codes)]}: every row's concrete requests,
        with the status each identity got.

        Each cell is asked of a server as it was set up (L{may_have_changed}).
        """
        self.build(read)
        changed = False
        found = []
        for method, template, projects in ROWS:
            for project in projects:
                path = template.format(p=project, f=filename_of(project), q=quote(project),
                                       **digest_path(project))
                codes = []
                for who in IDENTITIES:
                    if changed:
                        self.build(read)
                        changed = False
                    if method == "POST" and path in UPLOADS:
                        code = self.upload(self.auth[who], project, "3.0", path)
                    else:
                        code = self.request(method, path, self.auth[who])
                    codes.append(code)
                    changed = may_have_changed(method, code, who)
                found.append((method, template, project, tuple(codes)))
        return found

    def test_table(self):
        """Every cell answers as L{TABLE} says."""
        expected = read_table(TABLE)
        for read in ("everyone", "authenticated"):
            for method, template, project, codes in self.matrix(read):
                want = expected.get((read, method, template, project))
                self.assertIsNotNone(want, f"no row in TABLE for {read} {method} {template} "
                                           f"{project or '-'}")
                self.assertEqual(dict(zip(IDENTITIES, codes, strict=True)), dict(zip(IDENTITIES, want, strict=True)),
                                 f"{read} {method} {template} {project or '-'}")

    def test_same_with_base_url(self):
        """A base URL changes no answer."""
        self.variant = "base_url"
        self.test_table()

    def test_same_with_htpasswd_users(self):
        """Users of an htpasswd file (bcrypt, as pypiserver's) get the same answers."""
        self.variant = "htpasswd"
        self.test_table()

    def test_every_documented_route(self):
        """Every route and method of C{docs/http-api.rst} has rows (HEAD as GET)."""
        covered = {(method, shape(template)) for method, template, _ in ROWS + INDEX_ROWS}
        missing = sorted(pair for pair in documented_routes() if pair not in covered)
        self.assertEqual(missing, [])

    def test_metrics_from_elsewhere(self):
        """
        Every cell of L{METRICS_TABLE}: C{/metrics} asked from another
        address than the test client's loopback one (or relayed by a proxy,
        which no address lets in), under C{[metrics] allow} and C{group}.
        """
        expected = read_metrics_table(METRICS_TABLE)
        for (read, allow, group, client, via), want in expected.items():
            self.build(read, MetricsConfig(
                allow=parse_networks({"default": DEFAULT_ALLOW, "none": ""}.get(allow, allow)),
                group=None if group == "-" else group))
            self.client = site_treq_from(self.site, client)
            headers = {} if via == "-" else {via: "192.0.2.1"}
            got = [self.request("GET", "/metrics", self.auth[who], headers=headers)
                   for who in IDENTITIES]
            self.assertEqual(dict(zip(IDENTITIES, got, strict=True)), dict(zip(IDENTITIES, want, strict=True)),
                             f"{read} allow={allow} group={group} from {client} via {via}")


class _FromAddress:
    """
    A site as a client at another address reaches it: treq's in-memory
    agent connects every request from 127.0.0.1 (its transport's peer),
    and C{/metrics}, the login throttle and the connection limit read the
    peer.
    """

    def __init__(self, site, address):
        self._site = site
        self._address = address

    def buildProtocol(self, addr):
        protocol = self._site.buildProtocol(self._address)
        connect = protocol.makeConnection

        def makeConnection(transport):
            transport.peerAddress = self._address
            connect(transport)
        protocol.makeConnection = makeConnection
        return protocol


def site_treq_from(site, host):
    """A L{site_treq} whose requests come from C{host} (an IPv4 or IPv6 address)."""
    client = site_treq(site)
    kind = IPv6Address if ":" in host else IPv4Address
    client._agent._serverFactory = _FromAddress(site, kind("TCP", host, 40000))
    return client


#: the rows whose request is an upload (of the project's version 3.0)
UPLOADS = ("/", "/legacy", "/legacy/")


def shape(path):
    """A route's shape, as the docs and L{ROWS} both give it: no query, every variable C{*}."""
    path = path.partition("?")[0]
    path = re.sub(r"<[^>]*>|\{[a-z]\}", "*", path)
    path = re.sub(r"/(?:\d+(?:\.\d+)*|nosuchid|nothing\.css)(?=/|$)", "/*", path)
    return path


def documented_routes():
    """C{{(method, shape)}} of the route table of C{docs/http-api.rst} (HEAD left out)."""
    with open(DOCS, encoding="utf-8") as f:
        lines = f.read().splitlines()
    routes = set()
    for number, line in enumerate(lines):
        if line.startswith("   * - ``/"):
            paths = re.findall(r"``([^`]+)``", line)
            methods = lines[number + 1].strip().lstrip("- ").split(", ")
            for path in paths:
                for method in methods:
                    if method != "HEAD":
                        routes.add((method, shape(path)))
    return routes


def read_metrics_table(text):
    """
    L{METRICS_TABLE} as C{{(read, allow, group, client, via): codes}}: a
    line C{ALLOW GROUP CLIENT VIA | codes (read = everyone) | codes
    (authenticated)}.
    """
    table = {}
    for line in text.strip().splitlines():
        head, everyone, authenticated = line.split("|")
        allow, group, client, via = head.split()
        for read, codes in (("everyone", everyone), ("authenticated", authenticated)):
            table[(read, allow, group, client, via)] = tuple(int(c) for c in codes.split())
    return table


#: C{/metrics}, asked by each identity (columns in L{IDENTITIES} order),
#: under C{[metrics] allow} (C{default}: C{127.0.0.0/8 ::1}; C{none}:
#: empty) and C{group} (C{monitoring}: alice alone), from a client at
#: CLIENT, through a proxy that adds the header VIA, or directly; with
#: [auth] read = everyone, then read = authenticated. As the docs say:
#: an allowed address scrapes without credentials, whatever they are; a
#: request a proxy relayed is never let in by its address; the group's
#: users scrape with their password or any token of theirs, whatever its
#: actions and projects (alice's); anyone else gets 403, or 401 when
#: C{group} is set and the request has no valid credentials (anonymous, a
#: wrong password, an expired or revoked token). An admin is no member.
METRICS_TABLE = """
default     -          127.0.0.1   -               | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
default     -          ::1         -               | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
default     -          192.0.2.10  -               | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
default     -          2001:db8::7 -               | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
default     -          127.0.0.1   X-Forwarded-For | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
default     -          127.0.0.1   Forwarded       | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
default     -          127.0.0.1   X-Real-IP       | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
10.0.0.0/8  -          10.1.2.3    -               | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
10.0.0.0/8  -          192.0.2.10  -               | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
10.0.0.0/8  -          127.0.0.1   -               | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
10.0.0.0/8  -          10.1.2.3    X-Forwarded-For | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
none        -          127.0.0.1   -               | 403 403 403 403 403 403 403 403 403 403 403 | 403 403 403 403 403 403 403 403 403 403 403
default     monitoring 127.0.0.1   -               | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
default     monitoring 192.0.2.10  -               | 401 200 403 403 401 200 200 200 401 401 403 | 401 200 403 403 401 200 200 200 401 401 403
default     monitoring 2001:db8::7 -               | 401 200 403 403 401 200 200 200 401 401 403 | 401 200 403 403 401 200 200 200 401 401 403
default     monitoring 127.0.0.1   X-Forwarded-For | 401 200 403 403 401 200 200 200 401 401 403 | 401 200 403 403 401 200 200 200 401 401 403
10.0.0.0/8  monitoring 10.1.2.3    -               | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
10.0.0.0/8  monitoring 192.0.2.10  -               | 401 200 403 403 401 200 200 200 401 401 403 | 401 200 403 403 401 200 200 200 401 401 403
none        monitoring 127.0.0.1   -               | 401 200 403 403 401 200 200 200 401 401 403 | 401 200 403 403 401 200 200 200 401 401 403
"""


#: the identities of L{INDEX_TABLE}, in the order of its columns: as
#: L{IDENTITIES}, alice's tokens kept to the index C{release} and to
#: C{staging} (read and upload), and a token trusted publishing minted for
#: C{holy-grail} (upload)
INDEX_IDENTITIES = ("anon", "alice", "carol", "admin", "wrong", "t-release", "t-staging",
                    "minted")

#: the indexes of L{INDEX_TABLE}: hosted C{release}; C{staging}, hosted,
#: based on release; C{prod}, a view of release; C{secret}, hosted, that
#: carol alone reads and uploads to; C{vault}, a view of secret, and
#: C{team}, hosted on it, that carol alone reads (issue 41, defect 6: an
#: index that reads a restricted one through its bases keeps to its
#: readers, or the configuration is refused); C{nosuch}, missing
INDEXES = ("release", "staging", "prod", "secret", "vault", "team", "nosuch")

#: the routes under C{/NAME/} ({i} the index), as L{ROWS}
INDEX_ROWS = (
    ("GET", "/{i}", ("",)),
    ("GET", "/{i}/simple/", ("",)),
    ("GET", "/{i}/simple/namespaces", ("",)),
    ("GET", "/{i}/simple/namespace/{p}", ("acme",)),
    ("GET", "/{i}/simple/{p}/", ("holy-grail", "no-such")),
    ("GET", "/{i}/files/{p}/{f}", ("holy-grail",)),
    ("GET", "/{i}/files/{p}/{f}.metadata", ("holy-grail",)),
    ("GET", "/{i}/pypi/{p}/json", ("holy-grail",)),
    ("GET", "/{i}/pypi/{p}/1.0/json", ("holy-grail",)),
    ("GET", "/{i}/", ("",)),
    ("GET", "/{i}/search?q={p}", ("holy-grail",)),
    ("GET", "/{i}/api/search?q={p}", ("holy-grail",)),
    ("GET", "/{i}/project/{p}/", ("holy-grail", "no-such")),
    ("GET", "/{i}/project/{p}/1.0/", ("holy-grail",)),
    ("POST", "/{i}/", ("holy-grail",)),
    ("POST", "/{i}/legacy", ("holy-grail",)),
    ("POST", "/{i}/legacy/", ("holy-grail",)),
    ("POST", "/{i}/api/files/{f}/yank", ("holy-grail",)),
    ("POST", "/{i}/api/files/{f}/unyank", ("holy-grail",)),
    ("DELETE", "/{i}/api/files/{f}", ("holy-grail",)),
    ("POST", "/{i}/api/files/{f}/restore", ("holy-grail",)),
    ("POST", "/{i}/api/projects/{p}/1.0/yank", ("holy-grail",)),
    ("POST", "/{i}/api/projects/{p}/1.0/unyank", ("holy-grail",)),
    ("DELETE", "/{i}/api/projects/{p}/2.0", ("holy-grail",)),
    ("POST", "/{i}/api/projects/{p}/status", ("holy-grail",)),
)


class IndexAccessTableTests(SynchronousTestCase):
    """
    Each cell of L{INDEX_TABLE}, asked of a server of named indexes (in
    memory, L{tests.harness.indexes.Server}), and the rule behind the
    table's C{secret} rows: to whoever may not read it, a hidden index
    answers byte for byte as the missing C{nosuch} (status, body, headers).
    """

    def build(self, read):
        server = Server(self, read=read, through=True)
        make = server.tokens.make
        auth = {"anon": None, "alice": basic("alice"), "carol": basic("carol"),
                "admin": basic("root"), "wrong": basic("alice", "wrong")}
        for name, index in (("t-release", "release"), ("t-staging", "staging")):
            text, token = make("alice", {"read", "upload"}, indexes=(index,))
            server.tokens.tokens[token.id] = token
            auth[name] = basic("__token__", text)
        text, _ = server.publishers.issue("publisher:github:acme/grail", ["holy-grail"], 900, "")
        auth["minted"] = basic("__token__", text)
        for version in ("1.0", "2.0"):
            for path, user in (("/release/", "alice"), ("/secret/", "carol")):
                code = server.upload(path, "holy-grail", version, auth[user])[0]
                self.assertEqual(code, 200, (path, version))
        return server, auth

    def answers(self, read):
        """C{{(method, template, index, project): {identity: (code, body, headers)}}}."""
        server, auth = self.build(read)
        changed = False
        found = {}
        for method, template, projects in INDEX_ROWS:
            for index in INDEXES:
                for project in projects:
                    path = template.format(i=index, p=project, f=filename_of(project))
                    cells = {}
                    for who in INDEX_IDENTITIES:
                        if changed:
                            server, auth = self.build(read)
                        if method == "POST" and template.endswith(("/{i}/", "legacy", "legacy/")):
                            answer = server.upload(path, project, "3.0", auth[who])
                        else:
                            answer = server.request(method, path, auth[who])
                        cells[who] = same(answer)
                        changed = may_have_changed(method, answer[0], who)
                    found[(method, template, index, project)] = cells
        return found

    def test_table(self):
        """Every cell answers as L{INDEX_TABLE} says; hidden answers as missing, byte for byte."""
        expected = read_index_table(INDEX_TABLE)
        for read in ("everyone", "authenticated"):
            answers = self.answers(read)
            for (method, template, index, project), cells in answers.items():
                key = (read, method, template, index, project)
                want = expected.get(key)
                self.assertIsNotNone(want, f"no row in INDEX_TABLE for {key}")
                got = tuple(cells[who][0] for who in INDEX_IDENTITIES)
                self.assertEqual(dict(zip(INDEX_IDENTITIES, got, strict=True)),
                                 dict(zip(INDEX_IDENTITIES, want, strict=True)), str(key))
                if index not in ("secret", "vault", "team"):
                    continue
                missing = answers[(method, template, "nosuch", project)]
                for who in INDEX_IDENTITIES:
                    # (a minted token enters every index: its publisher may
                    # upload to any, so none is hidden from it; it reads
                    # there only what anyone reads: pypid.auth.reader)
                    if who not in ("carol", "admin", "minted"):
                        self.assertEqual(cells[who], missing[who], f"{key} {who}")


def read_index_table(text):
    """
    L{INDEX_TABLE} as C{{(read, method, template, index, project): codes}}:
    a line C{METHOD TEMPLATE INDEX PROJECT | codes (read = everyone) |
    codes (authenticated)}.
    """
    table = {}
    for line in text.strip().splitlines():
        head, everyone, authenticated = line.split("|")
        method, template, index, project = head.split()
        project = "" if project == "-" else project
        for read, codes in (("everyone", everyone), ("authenticated", authenticated)):
            table[(read, method, template, index, project)] = tuple(
                int(c) for c in codes.split())
    return table


#: what each identity gets (columns in L{INDEX_IDENTITIES} order), with
#: [auth] read = everyone, then read = authenticated (the read grant of
#: release, staging and prod; secret's is carol's). Written from the
#: site's answers, each judged: an index anonymous clients may not enter
#: (secret; every index under read = authenticated) asks them for
#: credentials, and so does a missing one; to a user or token that may not
#: read it, an index is missing (404; a token kept to another index, once
#: reads need credentials); a token kept to another index uploads nothing
#: there and changes nothing (403 where anyone may read: credentials never
#: give less than none, so it sees what anyone sees, as the default
#: index's t-other; pypid.auth.reader); a view
#: refuses changes with 405 once the credentials passed; a change names
#: an index's own files only (staging inherits holy-grail: 404 there). A
#: token trusted publishing minted (for holy-grail) enters every index, a
#: hidden one too, and uploads its project to any hosted one, whatever
#: their grants (its [publishers] rule is its grant); it reads only what
#: anyone reads (404 where anyone may not), and changes nothing but by
#: uploading (403, as a token that may only upload).
#: The pages for people of an index (C{/{i}/}, search, project pages)
#: answer as its simple pages do.
INDEX_TABLE = """
GET    /{i}                             release -          | 301 301 301 301 401 301 301 301 | 401 301 301 301 401 301 404 301
GET    /{i}                             staging -          | 301 301 301 301 401 301 301 301 | 401 301 301 301 401 404 301 301
GET    /{i}                             prod    -          | 301 301 301 301 401 301 301 301 | 401 301 301 301 401 404 404 301
GET    /{i}                             secret  -          | 401 404 301 301 401 404 404 301 | 401 404 301 301 401 404 404 301
GET    /{i}                             vault   -          | 401 404 301 301 401 404 404 301 | 401 404 301 301 401 404 404 301
GET    /{i}                             team    -          | 401 404 301 301 401 404 404 301 | 401 404 301 301 401 404 404 301
GET    /{i}                             nosuch  -          | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/                     release -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 200
GET    /{i}/simple/                     staging -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 200
GET    /{i}/simple/                     prod    -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 200
GET    /{i}/simple/                     secret  -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/                     vault   -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/                     team    -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/                     nosuch  -          | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespaces          release -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 200
GET    /{i}/simple/namespaces          staging -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 200
GET    /{i}/simple/namespaces          prod    -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 200
GET    /{i}/simple/namespaces          secret  -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/namespaces          vault   -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/namespaces          team    -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/simple/namespaces          nosuch  -          | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       release acme       | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       staging acme       | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       prod    acme       | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       secret  acme       | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       vault   acme       | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       team    acme       | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/namespace/{p}       nosuch  acme       | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/simple/{p}/                 release no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/simple/{p}/                 staging no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/simple/{p}/                 prod    no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/simple/{p}/                 vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/simple/{p}/                 team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/simple/{p}/                 secret  no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 vault   no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 team    no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/simple/{p}/                 nosuch  no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/files/{p}/{f}               release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/files/{p}/{f}               staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/files/{p}/{f}               prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}               secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}               vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}               team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}               nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/files/{p}/{f}.metadata      release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/files/{p}/{f}.metadata      staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/files/{p}/{f}.metadata      prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}.metadata      secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}.metadata      vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}.metadata      team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/files/{p}/{f}.metadata      nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/pypi/{p}/json               release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/pypi/{p}/json               staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/pypi/{p}/json               prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/pypi/{p}/json               secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/json               vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/json               team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/json               nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/pypi/{p}/1.0/json           release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/pypi/{p}/1.0/json           staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/pypi/{p}/1.0/json           prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/pypi/{p}/1.0/json           secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/1.0/json           vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/1.0/json           team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/pypi/{p}/1.0/json           nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/                            release -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 200
GET    /{i}/                            staging -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 200
GET    /{i}/                            prod    -          | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 200
GET    /{i}/                            secret  -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/                            vault   -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/                            team    -          | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/                            nosuch  -          | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/search?q={p}                release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 200
GET    /{i}/search?q={p}                staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 200
GET    /{i}/search?q={p}                prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 200
GET    /{i}/search?q={p}                secret  holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/search?q={p}                vault   holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/search?q={p}                team    holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/search?q={p}                nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/api/search?q={p}            release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 200
GET    /{i}/api/search?q={p}            staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 200
GET    /{i}/api/search?q={p}            prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 200
GET    /{i}/api/search?q={p}            secret  holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/api/search?q={p}            vault   holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/api/search?q={p}            team    holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
GET    /{i}/api/search?q={p}            nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/project/{p}/                release no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/project/{p}/                staging no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/project/{p}/                prod    no-such    | 404 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/                vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/                team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/                secret  no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                vault   no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                team    no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/                nosuch  no-such    | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
GET    /{i}/project/{p}/1.0/            release holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 200 404 404
GET    /{i}/project/{p}/1.0/            staging holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 200 404
GET    /{i}/project/{p}/1.0/            prod    holy-grail | 200 200 200 200 401 200 200 200 | 401 200 200 200 401 404 404 404
GET    /{i}/project/{p}/1.0/            secret  holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/1.0/            vault   holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/1.0/            team    holy-grail | 401 404 200 200 401 404 404 404 | 401 404 200 200 401 404 404 404
GET    /{i}/project/{p}/1.0/            nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/                            release holy-grail | 401 200 200 200 401 200 403 200 | 401 200 200 200 401 200 404 200
POST   /{i}/                            staging holy-grail | 401 200 200 200 401 403 200 200 | 401 200 200 200 401 404 200 200
POST   /{i}/                            prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/                            secret  holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/                            vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/                            team    holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/                            nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/legacy                      release holy-grail | 401 200 200 200 401 200 403 200 | 401 200 200 200 401 200 404 200
POST   /{i}/legacy                      staging holy-grail | 401 200 200 200 401 403 200 200 | 401 200 200 200 401 404 200 200
POST   /{i}/legacy                      prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/legacy                      secret  holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/legacy                      vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/legacy                      team    holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/legacy                      nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/legacy/                     release holy-grail | 401 200 200 200 401 200 403 200 | 401 200 200 200 401 200 404 200
POST   /{i}/legacy/                     staging holy-grail | 401 200 200 200 401 403 200 200 | 401 200 200 200 401 404 200 200
POST   /{i}/legacy/                     prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/legacy/                     secret  holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/legacy/                     vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/legacy/                     team    holy-grail | 401 404 200 200 401 404 404 200 | 401 404 200 200 401 404 404 200
POST   /{i}/legacy/                     nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/files/{f}/yank          release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
POST   /{i}/api/files/{f}/yank          staging holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/yank          prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/files/{f}/yank          secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
POST   /{i}/api/files/{f}/yank          vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/files/{f}/yank          team    holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/yank          nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/files/{f}/unyank        release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
POST   /{i}/api/files/{f}/unyank        staging holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/unyank        prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/files/{f}/unyank        secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
POST   /{i}/api/files/{f}/unyank        vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/files/{f}/unyank        team    holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/unyank        nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
DELETE /{i}/api/files/{f}               release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
DELETE /{i}/api/files/{f}               staging holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
DELETE /{i}/api/files/{f}               prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
DELETE /{i}/api/files/{f}               secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
DELETE /{i}/api/files/{f}               vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
DELETE /{i}/api/files/{f}               team    holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
DELETE /{i}/api/files/{f}               nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/files/{f}/restore       release holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/restore       staging holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/restore       prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/files/{f}/restore       secret  holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/restore       vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/files/{f}/restore       team    holy-grail | 401 404 404 404 401 404 404 403 | 401 404 404 404 401 404 404 403
POST   /{i}/api/files/{f}/restore       nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/yank   release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
POST   /{i}/api/projects/{p}/1.0/yank   staging holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/yank   prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/1.0/yank   secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
POST   /{i}/api/projects/{p}/1.0/yank   vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/1.0/yank   team    holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/yank   nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/unyank release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
POST   /{i}/api/projects/{p}/1.0/unyank staging holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/unyank prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/1.0/unyank secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
POST   /{i}/api/projects/{p}/1.0/unyank vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/1.0/unyank team    holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/1.0/unyank nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
DELETE /{i}/api/projects/{p}/2.0        release holy-grail | 401 200 200 200 401 200 403 403 | 401 200 200 200 401 200 404 403
DELETE /{i}/api/projects/{p}/2.0        staging holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
DELETE /{i}/api/projects/{p}/2.0        prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
DELETE /{i}/api/projects/{p}/2.0        secret  holy-grail | 401 404 200 200 401 404 404 403 | 401 404 200 200 401 404 404 403
DELETE /{i}/api/projects/{p}/2.0        vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
DELETE /{i}/api/projects/{p}/2.0        team    holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
DELETE /{i}/api/projects/{p}/2.0        nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
POST   /{i}/api/projects/{p}/status     release holy-grail | 401 403 403 400 401 403 403 403 | 401 403 403 400 401 403 404 403
POST   /{i}/api/projects/{p}/status     staging holy-grail | 401 403 403 400 401 403 403 403 | 401 403 403 400 401 404 403 403
POST   /{i}/api/projects/{p}/status     prod    holy-grail | 401 405 405 405 401 405 405 405 | 401 405 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/status     secret  holy-grail | 401 404 403 400 401 404 404 403 | 401 404 403 400 401 404 404 403
POST   /{i}/api/projects/{p}/status     vault   holy-grail | 401 404 405 405 401 404 404 405 | 401 404 405 405 401 404 404 405
POST   /{i}/api/projects/{p}/status     team    holy-grail | 401 404 403 400 401 404 404 403 | 401 404 403 400 401 404 404 403
POST   /{i}/api/projects/{p}/status     nosuch  holy-grail | 401 404 404 404 401 404 404 404 | 401 404 404 404 401 404 404 404
"""


#: the identities of L{PROMOTE_TABLE}, in the order of its columns:
#: anonymous; alice, a plain uploader (the indexes' upload grant,
#: C{authenticated}); carol, the owner of C{carols-*} (C{[acl] carols-* =
#: user:carol rw, everyone r}); an admin
PROMOTE_IDENTITIES = ("anon", "alice", "carol", "admin")

#: the release each identity promotes in a row (its own, so that one cell
#: does not answer for another's promotion); every file is hosted in the
#: default index and in staging (based on release), none in release (which
#: holds 0.9 of each project)
PROMOTE_VERSIONS = {"anon": "1.0", "alice": "1.1", "carol": "1.2", "admin": "1.3"}

#: a scenario of L{PROMOTE_TABLE}: C{(from, statuses set by the admin as
#: (index, status), advisory modes by index, allow_denied)}, promoting to
#: C{release}; the advisory covers every release of both projects
PROMOTE_SCENARIOS = {
    "clean": ("staging", (), {}, False),
    "quarantined-from": ("staging", (("staging", "quarantined"),), {}, False),
    "archived-from": ("staging", (("staging", "archived"),), {}, False),
    "deprecated-from": ("staging", (("staging", "deprecated"),), {}, False),
    "quarantined-to": ("default", (("release", "quarantined"),), {}, False),
    "archived-to": ("default", (("release", "archived"),), {}, False),
    "denied-from": ("staging", (), {"staging": "deny"}, False),
    "denied-from-allowed": ("staging", (), {"staging": "deny"}, True),
    "denied-to": ("staging", (), {"release": "deny"}, False),
    "denied-to-allowed": ("staging", (), {"release": "deny"}, True),
}

PROMOTE_PROJECTS = ("holy-grail", "carols-grail")


class PromoteAccessTableTests(_ServerMixin, SynchronousTestCase):
    """
    Issue 45: C{POST /api/promote} of a release whose project is
    quarantined or archived, or that advisories deny, by each identity
    (L{PROMOTE_TABLE}), over the whole server in memory (L{build_service}),
    and what an anonymous client downloads from C{release} afterwards.
    """

    def serve(self, modes):
        """
        A started server of the table's indexes, users, rule and files, in
        a folder of its own, C{modes} its advisories.
        """
        self.folder = os.path.abspath(self.mktemp())
        self.reactor = ThreadedReactor()
        for project in PROMOTE_PROJECTS:
            for version in PROMOTE_VERSIONS.values():
                filename, data = make_wheel(project, version)
                for folder in ("packages", os.path.join("packages", ".indexes", "staging")):
                    write_file(os.path.join(self.folder, folder, filename), data)
            # (release holds an earlier release: a status is set on a project there)
            filename, data = make_wheel(project, "0.9")
            write_file(os.path.join(self.folder, "packages", ".indexes", "release", filename),
                       data)
        users = "".join(f"{name} = {hash_password(PASSWORD, FAST)}\n"
                        for name in ("alice", "carol", "root"))
        text = ("[auth]\nadmins = root\n[users]\n" + users
                + "[acl]\ncarols-* = user:carol rw, everyone r\n"
                + "".join(f"[index:{name}]\n{bases}advisories = {modes.get(name, 'off')}\n"
                          for name, bases in (("release", ""), ("staging", "bases = release\n"))))
        self.reactor.advance(time.time() - self.reactor.seconds())
        service = build_service(self.config(text), self.reactor, pools=checking_pools())
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        web = service.getServiceNamed("web")
        web._indexes._registry.board.replace(AdvisoryDB.of([Advisory(
            "GHSA-grai-0000-0001", severity="high", affected=tuple(
                Affected(project, (), frozenset(map(release_key, PROMOTE_VERSIONS.values())))
                for project in PROMOTE_PROJECTS))]))
        self.client = site_treq(web.web.site)

    def request(self, method, path, who=None, body=None):
        headers = {"Content-Type": "application/json"}
        if who not in (None, "anon"):
            headers["Authorization"] = basic("root" if who == "admin" else who)
        response = self.successResultOf(self.client.request(
            method, ORIGIN + path, headers=headers, data=body, allow_redirects=False))
        return response.code, self.successResultOf(response.content())

    def row(self, scenario, project):
        """C{(promotion codes, download codes)} of one row, each in L{PROMOTE_IDENTITIES} order."""
        source, statuses, modes, allow_denied = PROMOTE_SCENARIOS[scenario]
        self.serve(modes)
        for index, status in statuses:
            prefix = "" if index == "default" else f"/{index}"
            code, body = self.request("POST", f"{prefix}/api/projects/{project}/status", "admin",
                                      json.dumps({"status": status}))
            self.assertEqual(code, 200, body)
        promoted, downloads = [], []
        for who in PROMOTE_IDENTITIES:
            version = PROMOTE_VERSIONS[who]
            asked = {"from": source, "to": "release", "project": project, "version": version}
            if allow_denied:
                asked["allow_denied"] = True
            promoted.append(self.request("POST", "/api/promote", who, json.dumps(asked))[0])
            filename = make_wheel(project, version)[0]
            downloads.append(self.request("GET", f"/release/files/{project}/{filename}")[0])
        return tuple(promoted), tuple(downloads)

    def test_table(self):
        """Every row of L{PROMOTE_TABLE} answers as it says, and every scenario has its rows."""
        expected = read_promote_table(PROMOTE_TABLE)
        self.assertEqual(set(expected), {(s, p) for s in PROMOTE_SCENARIOS
                                         for p in PROMOTE_PROJECTS})
        for (scenario, project), want in expected.items():
            got = self.row(scenario, project)
            self.assertEqual([dict(zip(PROMOTE_IDENTITIES, codes, strict=True)) for codes in got],
                             [dict(zip(PROMOTE_IDENTITIES, codes, strict=True))
                              for codes in want], f"{scenario} {project}")


def read_promote_table(text):
    """
    L{PROMOTE_TABLE} as C{{(scenario, project): (promotion codes, download
    codes)}}: a line C{SCENARIO PROJECT | codes | codes}.
    """
    table = {}
    for line in text.strip().splitlines():
        head, promoted, downloaded = line.split("|")
        scenario, project = head.split()
        table[(scenario, project)] = (tuple(int(c) for c in promoted.split()),
                                      tuple(int(c) for c in downloaded.split()))
    return table


#: what each identity's promotion answers (columns in L{PROMOTE_IDENTITIES}
#: order), then what an anonymous download of that identity's wheel from
#: C{/release/files/} answers after it. Written from the rules of
#: docs/http-api.rst ("Promotion"): credentials first (401), rights next
#: (alice may not upload carols-grail: 403; C{allow_denied} is an admin's:
#: 403), then the project's status (409: quarantined or archived in the
#: source, or in the target, for everyone, the admin too; deprecated
#: promotes), then the advisories (409 without C{allow_denied}; with it,
#: the admin's promotion lands, and release still refuses its download
#: when release itself denies: 403). Nothing refused is downloadable (404).
PROMOTE_TABLE = """
clean               holy-grail   | 401 200 200 200 | 404 200 200 200
clean               carols-grail | 401 403 200 200 | 404 404 200 200
quarantined-from    holy-grail   | 401 409 409 409 | 404 404 404 404
quarantined-from    carols-grail | 401 403 409 409 | 404 404 404 404
archived-from       holy-grail   | 401 409 409 409 | 404 404 404 404
archived-from       carols-grail | 401 403 409 409 | 404 404 404 404
deprecated-from     holy-grail   | 401 200 200 200 | 404 200 200 200
deprecated-from     carols-grail | 401 403 200 200 | 404 404 200 200
quarantined-to      holy-grail   | 401 409 409 409 | 404 404 404 404
quarantined-to      carols-grail | 401 403 409 409 | 404 404 404 404
archived-to         holy-grail   | 401 409 409 409 | 404 404 404 404
archived-to         carols-grail | 401 403 409 409 | 404 404 404 404
denied-from         holy-grail   | 401 409 409 409 | 404 404 404 404
denied-from         carols-grail | 401 403 409 409 | 404 404 404 404
denied-from-allowed holy-grail   | 401 403 403 200 | 404 404 404 200
denied-from-allowed carols-grail | 401 403 403 200 | 404 404 404 200
denied-to           holy-grail   | 401 409 409 409 | 404 404 404 404
denied-to           carols-grail | 401 403 409 409 | 404 404 404 404
denied-to-allowed   holy-grail   | 401 403 403 200 | 404 404 404 403
denied-to-allowed   carols-grail | 401 403 403 200 | 404 404 404 403
"""
