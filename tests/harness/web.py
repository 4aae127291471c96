"""
The real resource tree and site, built with L{pypid.web.app.build_web} as
the server does, over in-memory collaborators (L{_ServerMixin}), with the
users, distributions and Basic credentials the web tests upload and read
(they were L{tests.unit.web.test_web}'s).
"""

import base64
import os
import random

import treq
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.verifier import PasswordVerifier
from pypid.core.access.outside_logins import OutsideLogins
from pypid.core.access.sessions import SessionBook
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for, provenance_url_for
from pypid.state.loader import IndexMetrics
from pypid.storage.base.interface import MemoryFile
from pypid.storage.base.measured import MeasuredStorage
from pypid.storage.factory import StoragePart
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.web.app import build_web
from pypid.web.identity.browser_sessions import BrowserSessions
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditPart, AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.distributions import make_sdist, make_wheel, metadata_text
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    read_file,
    run_in_pool_now,
    run_now,
    site_agent,
    site_treq,
    twine_fields,
)
from tests.harness.memory_storage import MemoryStorage

ORIGIN = "http://pypi.test"
PASSWORD = "correct horse"
USERS = {name: hash_password(PASSWORD, FAST) for name in ("alice", "dave", "eve")}
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: the browser sessions' timeouts in the harness: half an hour unused, 12 hours at most
SESSION_IDLE = 1800.0
SESSION_LIFETIME = 12 * 3600.0


WHEEL_META = metadata_text("Holy.Grail", "1.0", requires_python=">=3.8",
                           requires_dist=["attrs"], summary="The grail")
WHEEL_NAME, WHEEL = make_wheel("Holy.Grail", "1.0", metadata=WHEEL_META)
SDIST_NAME, SDIST = make_sdist("Holy.Grail", "1.0")


def memory_sessions(clock, folder, base_url=None):
    """Browser sessions (issue 44) whose file, in C{folder}, is written at once."""
    book = SessionBook.new(SESSION_IDLE, SESSION_LIFETIME, os.urandom)
    return BrowserSessions(book, os.path.join(os.path.abspath(folder), "sessions.json"), clock,
                           run_now, base_url=base_url)


def basic(user="alice", password=PASSWORD):
    """Return the Basic Authorization header value for C{user}."""
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def kept_alive(site, *requests):
    """
    Write C{requests} (bytes) on one new connection to C{site}, as a
    client that keeps it alive sends them (treq's in-memory agent closes
    each: only this takes the express lane, L{pypid.web.serving.express}); return
    the answers (L{parse}) and the transport.
    """
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"".join(requests))
    return parse(transport.value()), transport


def parse(data):
    """
    The answers in C{data}: C{[(status, {lower-case name: value}, body)]}
    (a body by its Content-Length, so not for the answers to C{HEAD}).
    """
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
        length = int(headers.get(b"content-length", b"0"))
        answers.append((status, headers, rest[:length]))
        data = rest[length:]
    return answers


def parse_response(raw):
    """Split one HTTP/1.1 response (the first of C{raw}; the rest is its body) into C{(code, headers, body)}, header names lowercased."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request(method, path, headers=(), version=b"HTTP/1.1"):
    """A request's bytes."""
    lines = [b"%s %s %s" % (method, path, version), b"Host: pypi.test"]
    lines += [b"%s: %s" % pair for pair in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _ServerMixin:
    """Builds the resource tree and site with L{build_web}, as the server does, in memory."""

    read = "everyone"
    base_url = None
    max_upload_size = 10 << 20
    #: whether the test needs the local disk backend (its folder, its thread
    #: pool, its failures); others run on the in-memory storage
    on_disk = False

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        folder = os.path.abspath(self.mktemp())
        if self.on_disk:
            self.storage = LocalStorage(folder, self.make_storage_run(), self.clock)
        else:
            self.storage = MemoryStorage(os.path.join(folder, "spool"), self.clock)
        prepared = self.storage.prepare()
        self.finish_storage_work()
        self.successResultOf(prepared)
        self.index = Index(file_url_for(self.base_url),
                           provenance_url=provenance_url_for(self.base_url))
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=self.hashing_pool())
        self.sessions = self.browser_sessions(folder)
        sso = self.single_sign_on()
        # (who from outside the configuration lets in: its provider, as the
        # daemon's pypid.auth.factory.outside_logins says)
        outside = OutsideLogins(provider=sso.provider, mapping=sso.config.mapping) \
            if sso is not None and sso.config.issuer is not None else None
        self.access = Gates(self.access_model(), verifier, tokens=self.token_book(),
                             sessions=self.sessions, outside=outside)
        served = self.served_storage(self.storage)
        audit = self.audit_trail = AuditTrail(MemoryJournal(self.clock), self.clock)
        self.web = build_web(one_index(self.index, served, self.clock, usage=self.usage_log(),
                                       bin=self.recycle_bin()),
                             self.access, self.make_run(), self.clock,
                             SiteSettings(max_upload_size=self.max_upload_size,
                                          base_url=self.base_url),
                             SiteServices(audit=audit, sources=self.metric_sources(served, audit),
                                          sso=sso, registry=self.index_registry(),
                                          attestations=self.attestation_check(),
                                          webhooks=self.webhook_part()))
        self.root = self.web.root
        self.client = site_treq(self.web.site)

    def metric_sources(self, served, audit):
        """What C{/metrics} exposes beside the site, as the server wires it."""
        sources = [IndexMetrics(self.index), AuditPart(audit)]
        if isinstance(served, MeasuredStorage):
            sources.append(StoragePart(served))
        return sources

    def access_model(self):
        """Who may do what: C{read} for everyone, unless a test needs otherwise."""
        return AccessModel(read=self.read)

    def make_storage_run(self):
        """The storage's C{run(f, *args)}: synchronous unless a test needs otherwise."""
        return run_now

    def make_run(self):
        """The resources' C{run(f, *args)} (bodies, inspection): synchronous unless a test
        needs otherwise."""
        return run_now

    def hashing_pool(self):
        """How passwords are hashed: at once unless a test needs otherwise."""
        return run_in_pool_now

    def token_book(self):
        """The API tokens: none unless a test needs them."""
        return None

    def browser_sessions(self, folder):
        """The browser sessions (issue 44): a book kept in C{folder}, written at once."""
        return memory_sessions(self.clock, folder, self.base_url)

    def single_sign_on(self):
        """Single sign-on (C{[sso]}): none unless a test needs it."""
        return None

    def attestation_check(self):
        """What checks uploads' attestations: none (they are refused) unless a test needs one."""
        return None

    def usage_log(self):
        """What counts downloads: nothing unless a test needs it."""
        return None

    def recycle_bin(self):
        """Where deleted files wait: none (deleted at once) unless a test needs one."""
        return None

    def webhook_part(self):
        """The webhooks, for their admin API and pages: none unless a test needs them."""
        return None

    def index_registry(self):
        """The server's indexes, for the admin areas that read them: none unless needed."""
        return None

    def stored(self, record):
        """The bytes the storage keeps for C{record}, whichever backend it is."""
        location = self.storage.locate(record)
        return location.data if isinstance(location, MemoryFile) else read_file(location.path)

    def finish_storage_work(self):
        """Complete whatever storage work L{make_storage_run}'s runner holds back."""

    def served_storage(self, storage):
        """The storage the resources are given: the local one, unless a test needs otherwise."""
        return storage

    # -- requests --------------------------------------------------------------

    def request(self, method, path, headers=None, auth=False, **kwargs):
        """Make a request and return C{(response, body)}."""
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = basic() if auth is True else auth
        kwargs.setdefault("allow_redirects", False)
        response = self.successResultOf(
            self.client.request(method, ORIGIN + path, headers=headers, **kwargs))
        body = self.successResultOf(response.content())
        return response, body

    def raw(self, method, path, headers=None):
        """
        Make a request exactly as given and return C{(response, body)}: unlike
        treq, no C{Accept-Encoding: gzip} is added and nothing is decompressed.
        """
        agent = site_agent(self.web.site)
        headers = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        response = self.successResultOf(
            agent.request(method.encode(), (ORIGIN + path).encode(), headers))
        return response, self.successResultOf(treq.content(response))

    def get(self, path, **kwargs):
        """GET C{path}."""
        return self.request("GET", path, **kwargs)

    def header(self, response, name):
        """The first value of a response header, as bytes, or L{None}."""
        values = response.headers.getRawHeaders(name.encode("ascii"))
        return values[0] if values else None

    def upload(self, filename=WHEEL_NAME, data=WHEEL, auth=True, path="/legacy/", fields=None,
               **extra):
        """Upload a file the way twine does and return C{(response, body)}."""
        if fields is None:
            values = {} if filename.endswith(".whl") else {"filetype": "sdist",
                                                            "pyversion": "source"}
            values.update(extra)
            fields = twine_fields("Holy.Grail", "1.0", data, **values)
        ctype, body = multipart_body(fields, [("content", filename, data)])
        return self.request("POST", path, headers={"Content-Type": ctype}, auth=auth, data=body)

    def uploaded(self, filename=WHEEL_NAME, data=WHEEL):
        """Upload a file that must be accepted."""
        response, body = self.upload(filename, data)
        self.assertEqual(response.code, 200, body)

    def assertNothingStored(self):
        """Assert the index is empty and no upload was left in the spool folder."""
        self.assertEqual(len(self.index), 0)
        self.assertEqual(os.listdir(self.storage.temp_dir), [])


def randomness(seed=0):
    """A C{random(n)} of reproducible bytes."""
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))


class NoCookieJar(_ServerMixin):
    """Each request sends the cookies its test gives, none kept from earlier answers."""

    def request(self, *args, **kwargs):
        self.client = site_treq(self.web.site)
        return super().request(*args, **kwargs)
