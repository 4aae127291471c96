"""
Named indexes in memory (issue 26), as the tests of the routes, the
registry and promotion build them (they were L{tests.unit.web.serving.test_index_routes}',
L{tests.unit.state.test_indexes}', L{tests.unit.web.changes.test_promote}'s and
L{tests.unit.state.test_recycle_bin}'s): L{Server}, the four named indexes and the
default one over StubTreq; L{_ServerMixin}, servers built by
L{pypid.daemon.server.build_service} on a memory reactor from a configuration
(C{NAMED}'s indexes); L{Stack}, what an area reads of a hosted stack; and
the entries of a memory audit log (L{entries}, L{audit_entries}).
"""

import base64
import json
import os
import time

import attrs
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import PublisherTokens
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.core.access.access_rules import IndexGrants
from pypid.core.access.upload_rules import IndexUploadRules
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.daemon.server import build_service
from pypid.state.hosted_source import HostedSource
from pypid.state.loader import IndexMetrics
from pypid.storage.base.locks import KeyedLock
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.serving.index_root import IndexMaterials
from pypid.web.web_inputs import SiteServices, SiteSettings
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
from tests.harness.memory_storage import MemoryStorage
from tests.harness.tap import ThreadedReactor, checking_pools, fake_pools
from tests.harness.web import memory_sessions

ORIGIN = "http://pypi.test"
PASSWORD = "correct horse"
START = 1767225600.0

#: L{Server.upload}'s default credentials: alice's password
ALICE = object()


def basic(user, password=PASSWORD):
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def grants(read, upload=("authenticated",)):
    return IndexGrants(frozenset(read), frozenset(upload))


class Server:
    """A server of the four named indexes and the default one, in memory."""

    def __init__(self, case, read="everyone", named=True, tokens_indexes=("release",),
                 rules=(), base_url=None, release_read=None, default_upload=None,
                 default_read=None, through=False, registry=False):
        """
        @param through: add two indexes that read C{secret} through their
            bases, with its readers alone (carol): C{vault}, a view of it,
            and C{team}, hosted on it (carol uploads).
        @param registry: give the site the registry of its indexes (the
            admin areas that read them: promotion above all).
        """
        self.case = case
        self.clock = Clock()
        self.clock.advance(START)
        folder = os.path.abspath(case.mktemp())
        self.stacks = {}
        hosted = ("default", "release", "staging", "secret", *(("team",) if through else ()))
        for name in hosted:
            storage = MemoryStorage(os.path.join(folder, name), self.clock)
            case.successResultOf(storage.prepare())
            # (its namespaces, as the daemon's indexes serve them: API 1.5)
            self.stacks[name] = HostedSource(name, Index(file_url_for(None),
                                                         namespaces=IndexNamespaces(name)),
                                             storage,
                                             KeyedLock(self.clock))
        s = self.stacks
        views = {
            # (its hosted index's own links: served from its kept pages, as
            # the daemon serves an index of one hosted source: views.own)
            "release": ComposedIndex("release", (ChainSource("release", hosted=s["release"].index),),
                                 Filters(), s["release"].index.file_url,
                                 advisories=s["release"].index.rendered.advisories,
                                 provenance_url=s["release"].index.rendered.provenance_url,
                                 namespaces=s["release"].index.rendered.namespaces),
            "staging": ComposedIndex("staging", (ChainSource("staging", hosted=s["staging"].index),
                                             ChainSource("release", hosted=s["release"].index)),
                                 Filters(), file_url_for(None),
                                 namespaces=IndexNamespaces("view")),
            "prod": ComposedIndex("prod", (ChainSource("release", hosted=s["release"].index),),
                              Filters(as_of=START + 1000), file_url_for(None),
                                 namespaces=IndexNamespaces("view")),
            "secret": ComposedIndex("secret", (ChainSource("secret", hosted=s["secret"].index),),
                                Filters(), file_url_for(None),
                                 namespaces=IndexNamespaces("view")),
        }
        order = {"release": ("release",), "staging": ("staging", "release"),
                 "prod": ("release",), "secret": ("secret",)}
        if through:
            views["vault"] = ComposedIndex("vault", (ChainSource("secret", hosted=s["secret"].index),),
                                       Filters(), file_url_for(None),
                                 namespaces=IndexNamespaces("view"))
            views["team"] = ComposedIndex("team", (ChainSource("team", hosted=s["team"].index),
                                               ChainSource("secret", hosted=s["secret"].index)),
                                      Filters(), file_url_for(None),
                                 namespaces=IndexNamespaces("view"))
            order.update(vault=("secret",), team=("team", "secret"))
        parts = [IndexMaterials(name, view, tuple(s[n] for n in order[name]),
                            hosted=name not in ("prod", "vault"))
                 for name, view in views.items()]
        users = {name: hash_password(PASSWORD, FAST) for name in ("alice", "carol", "root")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        model = AccessModel(read=read, admins=frozenset({"root"}), rules=tuple(rules), indexes={
            "release": grants((release_read or read,)), "staging": grants((read,)), "prod": grants((read,), ()),
            "secret": grants(("user:carol",), ("user:carol",)),
            **({"vault": grants(("user:carol",), ()),
                "team": grants(("user:carol",), ("user:carol",))} if through else {}),
        } if named else {})
        if default_upload is not None or default_read is not None:
            # ([index:default] read and upload: the default index's own grants)
            model = attrs.evolve(model, indexes={**model.indexes, "default": grants(
                default_read or (read,), default_upload or ("authenticated",))})
        self.tokens = TokenBook(self.clock)
        #: the tokens trusted publishing mints (L{mint})
        self.publishers = PublisherTokens(self.clock)
        self.log = MemoryJournal(self.clock)
        access = Gates(model, verifier, None, self.tokens, publishers=self.publishers,
                        sessions=memory_sessions(self.clock, folder))
        known = None
        if registry:
            from pypid.state.indexes import IndexRegistry
            known = IndexRegistry(
                {name: Stack(name, source.index, source.storage, source.locks)
                 for name, source in s.items()},
                {"default": ("default",), **order}, {})
        web = build_web([*one_index(s["default"].index, s["default"].storage, self.clock,
                                   locks=s["default"].locks), *(parts if named else ())],
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20, base_url=base_url),
                        SiteServices(audit=AuditTrail(self.log, self.clock), registry=known))
        self.web = web
        #: its gates (what a route of it asks who may do what)
        self.access = access
        self.client = site_treq(web.site)
        text, token = self.tokens.make("alice", {"read", "upload"}, indexes=tokens_indexes)
        self.tokens.tokens[token.id] = token
        self.scoped = basic("__token__", text)

    def request(self, method, path, auth=None, data=None, headers=None):
        """C{(code, headers, body)} of one request."""
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = auth
        response = self.case.successResultOf(self.client.request(
            method, ORIGIN + path, headers=headers, data=data, allow_redirects=False))
        body = self.case.successResultOf(response.content())
        return response.code, response.headers, body

    def upload(self, path, name, version, auth=ALICE, deps=()):
        """C{(code, headers, body)} of a twine upload; C{auth} L{None}: anonymous."""
        filename, data = make_wheel(name, version, requires_dist=deps)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        return self.request("POST", path, basic("alice") if auth is ALICE else auth, body,
                            {"Content-Type": ctype})


def entries(log):
    """The audit entries of a L{MemoryJournal}, in order."""
    return [json.loads(line) for name in sorted(log.files)
            for line in log.files[name].decode().splitlines() if line.strip()]


def same(answer):
    """An answer's status, body and headers (the Date header aside)."""
    code, headers, body = answer
    kept = sorted((k, tuple(v)) for k, v in headers.getAllRawHeaders() if k != b"Date")
    return code, body, kept


#: Two hosted indexes, one based on the other and listed before it, and a view.
NAMED = """\
[index:staging]
bases = release

[index:release]

[index:prod]
view = yes
bases = staging
exclude = experimental-*
"""


UPLOAD_TIME = 1767225600.25


class _ServerMixin:
    """Servers built on a memory reactor, their paths in this test's folder."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.reactor = MemoryReactorClock()

    def at_wall_time(self):
        """
        Serve on a reactor whose threads run at once and whose clock starts
        at the real time (storage compares the files' times with it).
        """
        self.reactor = ThreadedReactor()
        self.reactor.advance(time.time() - self.reactor.seconds())

    def config(self, text="", server=""):
        """A configuration of this test's folder, with C{text} (and C{server} in C{[pypid]})."""
        path = write_file(os.path.join(self.folder, "pypid.ini"), (
            f"[pypid]\nsnapshot = {self.folder}/index.json\n"
            "listen = tcp:0:interface=127.0.0.1\n" + server +
            f"[storage]\npath = {self.folder}/packages\n" + text).encode())
        return load_config(path)

    def service(self, text=""):
        """A server of C{config(text)}, stopped at the end of the test if started."""
        service = build_service(self.config(text), self.reactor, pools=fake_pools())

        def stop():
            if service.running:
                return service.stopService()
        self.addCleanup(stop)
        return service

    def served(self, text):
        """
        A server of the configuration C{text()}, read again at each reload
        (C{SIGHUP}), started on this test's reactor, and a client of its site.
        """
        service = build_service(text(), self.reactor, pools=checking_pools(), load_config=text)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        return service, site_treq(service.getServiceNamed("web").web.site)

    def started(self, text=""):
        """A server started (its clock at the real time: storage compares the files' times)."""
        self.reactor.advance(time.time() - self.reactor.seconds())
        service = self.service(text)
        service.startService()
        self.successResultOf(service.ready)
        return service


@attrs.frozen(eq=False)
class Stack:
    """What the area reads of a L{pypid.state.hosted_stack.HostedStack}."""

    name: str
    index: Index
    stored: object
    locks: KeyedLock
    usage: object = None
    bin: object = None
    cleanup: object = None
    #: its sizes, as the daemon's part sums them (L{IndexMetrics.sizes})
    part: IndexMetrics = attrs.field(
        default=attrs.Factory(lambda self: IndexMetrics(self.index), takes_self=True))
    upstream_part: object = None
    uploads: IndexUploadRules = attrs.field(factory=IndexUploadRules)


def audit_entries(log):
    """The entries a L{MemoryJournal} holds, as dicts, oldest first."""
    return [json.loads(line) for name in sorted(log.files)
            for line in log.files[name].splitlines()]
