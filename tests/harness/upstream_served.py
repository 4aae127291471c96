"""
The default index over one upstream (L{tests.harness.upstream.Origins}),
served in memory, for the tests of the upstream's statuses and takedowns.
"""

import base64
import json

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.records.audit_query import make_query
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.upstream.proxy import UpstreamProxy
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.fakes import FAST, one_index, run_in_pool_now, run_now, site_treq
from tests.harness.memory_storage import MemoryStorage
from tests.harness.upstream import (
    BYTES_A,
    INDEX_A,
    ORIGIN_A,
    WHEEL,
    Origins,
    drain,
    make_source,
    sha,
)
from tests.harness.upstream_pages import JSON_TYPE

FILE_URL = f"http://{ORIGIN_A}/f/{WHEEL}"
PASSWORD = "a-password"


def status_page(status=None, files=((WHEEL, FILE_URL, BYTES_A),)):
    """A PEP 691 page of C{widget}, with C{status} as its C{project-status} when given."""
    data = {
        "meta": {"api-version": "1.4"}, "name": "widget",
        "files": [{"filename": name, "url": url, "hashes": {"sha256": sha(data)},
                   "size": len(data), "upload-time": "2024-01-02T03:04:05Z"}
                  for name, url, data in files],
    }
    if status is not None:
        data["project-status"] = status
    return json.dumps(data).encode()


class _Served:
    """
    The default index over one upstream (L{Origins}), served in memory;
    C{admin} and C{alice} (who may upload, not an admin) log in with
    L{PASSWORD}, and what they do is in C{self.audit}.
    """

    #: the cache's C{keep_removed} (issue 46)
    keep_removed = False
    #: the index's PEP 752 namespaces (L{None}: it serves none)
    namespaces = None

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(FILE_URL, BYTES_A)
        self.publish(None)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        self.audit = MemoryJournal(self.clock)
        self.serve()

    def serve(self, state=None):
        """
        Serve the index over a new source of the cache's storage, loaded
        from a saved C{state} (as a start after a restart) when given.
        """
        self.source = make_source(self.agent, self.clock, INDEX_A, self.storage,
                                  keep_removed=self.keep_removed)
        if state is not None:
            # (as the saved file gives it back: JSON)
            state = json.loads(json.dumps(state))
            self.successResultOf(ensureDeferred(self.source.load(state, self.clock.seconds())))
        self.index = Index(file_url_for(None), namespaces=self.namespaces)
        self.proxy = UpstreamProxy.create(self.source, self.index, self.index.file_url)
        users = {name: hash_password(PASSWORD, FAST) for name in ("admin", "alice")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone", admins=frozenset({"admin"})), verifier,
                        None, TokenBook(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, upstream=self.proxy),
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(upstream=self.proxy, audit=AuditTrail(self.audit, self.clock)))
        self.treq = site_treq(web.site)

    def restart(self):
        """A restart: the source's state saved, and a new server started from it."""
        self.serve(self.source.state())

    def publish(self, status, files=((WHEEL, FILE_URL, BYTES_A),)):
        """The upstream's page of C{widget} from now on."""
        self.origins.route(INDEX_A + "widget/", status_page(status, files))

    def refresh(self):
        """What C{pypid-upstream refresh widget} does: the page fetched again now."""
        return self.successResultOf(drain(self.agent, self.proxy.refresh("widget")))

    def get(self, path, accept=JSON_TYPE):
        return self.request("GET", path, {"accept": accept})

    def request(self, method, path, headers=None, user=None):
        """C{(code, body)} of a request, as C{user} (with L{PASSWORD}) when given."""
        headers = dict(headers or {})
        if user is not None:
            token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
            headers["authorization"] = f"Basic {token}"
        d = self.treq.request(method, "http://pypi.test" + path, headers=headers)
        drain(self.agent, d)
        response = self.successResultOf(d)
        return response.code, self.successResultOf(drain(self.agent, response.content()))

    def remove(self):
        """The upstream removes C{widget}: its page and file answer 404."""
        self.origins.routes.pop((ORIGIN_A, "/simple/widget/"))
        self.origins.routes.pop((ORIGIN_A, f"/f/{WHEEL}"), None)

    def audited(self):
        """C{(event, outcome, user, project, detail)} of the audit log's entries."""
        self.successResultOf(self.audit.flush())
        entries = self.successResultOf(self.audit.read(make_query())).entries
        return [(e.event, e.outcome, e.user, e.project, e.detail) for e in entries]

    def file_fetches(self):
        return len([s for s in self.origins.seen if s[1] == f"/f/{WHEEL}"])
