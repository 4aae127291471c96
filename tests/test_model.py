"""
A model of the whole index (issue 41): a Hypothesis state machine drives
the real composition of a server of several indexes (the registry made
from a configuration, as the daemon makes it, its hosted indexes on disk,
its upstream answered in memory, the Klein site, no sockets) through
random uploads, deletes into the recycle bin, restores, purges, yanks,
promotions, upstream releases and the clock moving; a plain reference
model (L{Reference}: what each index holds, in a few dicts) says what
every index must list, and after every step the site is checked against
it, for every index and project:

  - every file a page lists downloads, with the listed hash and size,
    and its C{.metadata} when the page says it has one; nothing unlisted
    downloads;
  - a name hosted in an index (live, binned or deleted) never yields an
    upstream file there;
  - a dated view never gains a file once its date has passed (nothing
    newer than the date, uploaded or promoted, shadows or joins it);
  - probes that transfer nothing (C{HEAD}, C{304}, C{Range: bytes=0-0})
    count no download.

The suite runs a short profile; before a release, run the long one::

    HYPOTHESIS_PROFILE=long .venv/bin/python -m twisted.trial tests.test_model

(about 20 minutes here). Examples it finds are kept as ordinary tests in
L{tests.test_composition}.
"""

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from functools import cache

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.core.advisories import AdvisoryBoard
from pypid.core.index_names import DEFAULT
from pypid.core.names import filename_key
from pypid.state.indexes import IndexRegistry
from pypid.storage.audit_log import MemoryAuditLog
from pypid.tap import index_parts
from pypid.upstream.proxy import UpstreamProxy
from pypid.web.access import Access
from pypid.web.app import build_web
from pypid.web.audit_trail import AuditTrail
from tests.distributions import make_wheel
from tests.fakes import FAST, multipart_body, run_in_pool_now, run_now, site_treq, twine_fields
from tests.test_upstream_sources import Origins, make_source

settings.register_profile("ci", max_examples=12, stateful_step_count=12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("medium", max_examples=200, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=4000, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

DAY = 86400.0
START = 1767225600.0  # 2026-01-01T00:00:00Z
#: The dated view's date: two days after the start.
AS_OF = START + 2 * DAY
ORIGIN = "127.0.0.1:9001"
UPSTREAM = f"http://{ORIGIN}/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
PASSWORD = "correct horse"
ROOT = b"Basic " + __import__("base64").b64encode(f"root:{PASSWORD}".encode())

CONFIG = """
[pypid]
snapshot = {root}/index.json
[storage]
path = {root}/packages
[upstream]
mode = cache
url = {upstream}
[retention]
recycle_bin = 7d
[index:release]
[index:staging]
bases = release upstream:default
[index:prod]
view = yes
bases = staging
[index:dated]
view = yes
bases = staging
as_of = {as_of}
"""

HOSTED = ("default", "release", "staging")
#: Every index, and the sources it reads, in order (as the configuration says).
ORDERS = {
    "default": ("default", "upstream"),
    "release": ("release",),
    "staging": ("staging", "release", "upstream"),
    "prod": ("staging", "release", "upstream"),
    "dated": ("staging", "release", "upstream"),
}
VIEWS_AS_OF = {"dated": AS_OF}
PROJECTS = ("alpha", "corp-lib", "public-lib")
VERSIONS = ("1.0", "2.0", "9.9")


@attrs.define
class Held:
    """A file one hosted index holds, as the reference sees it."""

    project: str
    version: str
    filename: str
    sha256: str
    #: C{live}, C{binned} or C{deleted}
    state: str
    #: when it arrived in this index (uploaded or promoted here)
    arrived: float
    yanked: bool = False


@attrs.define
class Offered:
    """A file the upstream's page offers."""

    project: str
    version: str
    filename: str
    sha256: str
    published: float


@cache
def wheel(project, version, upstream=False):
    """
    C{(filename, bytes)} of a wheel, the same bytes every time it is asked
    for (a zip stamps the time); the upstream's differ from an upload's.
    """
    return make_wheel(project, version, module_text="upstream" if upstream else None)


@attrs.define
class Reference:
    """What each index holds, and what the upstream offers: the model's truth."""

    held: dict = attrs.field(factory=lambda: {name: {} for name in HOSTED})
    offered: dict = attrs.field(factory=dict)

    def files_of(self, index, project):
        return [f for f in self.held[index].values() if f.project == project]

    def hosts(self, index, project):
        """Whether C{index} holds C{project} at all: a live, binned or deleted file."""
        return any(True for _ in self.files_of(index, project))

    def listing(self, index, project):
        """
        The files C{index} lists of C{project}: its sources in order, the
        first of each filename (or distribution) winning, an upstream
        asked only for a name no hosted source of the chain holds; a
        dated view takes only what arrived in each source before its date,
        before anything shadows anything.
        """
        order = ORDERS[index]
        as_of = VIEWS_AS_OF.get(index)
        hosted = any(self.hosts(source, project) for source in order if source != "upstream")
        names, keys, listed = set(), set(), {}
        for source in order:
            if source == "upstream":
                if hosted:
                    continue
                candidates = [(f.filename, f.sha256, f.published)
                              for f in self.offered.values() if f.project == project]
            else:
                candidates = [(f.filename, f.sha256, f.arrived)
                              for f in self.files_of(source, project) if f.state == "live"]
            given = []
            for filename, sha256, when in candidates:
                if as_of is not None and when >= as_of:
                    continue
                key = filename_key(filename)
                if filename in names or (key is not None and key in keys):
                    continue
                given.append((filename, key))
                listed[filename] = (sha256, source)
            for filename, key in given:
                names.add(filename)
                keys.add(key)
        return listed


class IndexMachine(RuleBasedStateMachine):
    """The server, and the reference it must agree with after every step."""

    @initialize()
    def start(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.folder = tempfile.mkdtemp(prefix="pypid-model-")
        path = os.path.join(self.folder, "pypid.ini")
        as_of = datetime.fromtimestamp(AS_OF, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(path, "w") as f:
            f.write(CONFIG.format(root=self.folder, upstream=UPSTREAM, as_of=as_of))
        config = load_config(path)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        kept = None
        proxies = []

        def attach(index, learnt):
            nonlocal kept
            from pypid.storage.memory import MemoryStorage
            kept = MemoryStorage(os.path.join(self.folder, "upstream"), self.clock)
            kept.prepare()
            source = make_source(self.agent, self.clock, UPSTREAM, kept)
            proxies.append(UpstreamProxy.create(source, index, index.file_url))
            return proxies[0]
        self.registry = IndexRegistry.from_config(config, run_now, self.clock, upstream=attach,
                                                  board=AdvisoryBoard())
        self.proxy = proxies[0]
        for stack in self.registry.stacks.values():
            stack.storage.startService()
            stack.part.startService()
        users = {"root": hash_password(PASSWORD, FAST)}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        access = Access(AccessModel(read="everyone", admins=frozenset({"root"})), verifier,
                        None, TokenBook(self.clock))
        web = build_web(index_parts(self.registry), access, run_now, self.clock,
                        max_upload_size=10 << 20, registry=self.registry, upstream=self.proxy,
                        audit=AuditTrail(MemoryAuditLog(self.clock), self.clock))
        self.treq = site_treq(web.site)
        self.reference = Reference()
        self.dated_seen = None
        for project in PROJECTS:
            self.publish_page(project)

    def teardown(self):
        for stack in getattr(self, "registry", None) and self.registry.stacks.values() or ():
            for _, part in stack.parts():
                if part.running:
                    part.stopService()

    # -- the site --------------------------------------------------------------------

    def request(self, method, path, headers=None, data=None, auth=None):
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = auth
        d = self.treq.request(method, "http://pypi.test" + path, headers=headers, data=data,
                              allow_redirects=False)
        for _ in range(30):
            self.agent.flush()
        response = d.result if d.called else None
        assert response is not None, f"{method} {path}: no answer"
        body = self.treq.content(response)
        for _ in range(30):
            self.agent.flush()
        return response, body.result

    @staticmethod
    def prefix(index):
        return "/" if index == DEFAULT else f"/{index}/"

    def publish_page(self, project):
        """The upstream's page of C{project}, as the reference offers it."""
        files = [f for f in self.reference.offered.values() if f.project == project]
        body = json.dumps({
            "meta": {"api-version": "1.1"}, "name": project,
            "files": [{"filename": f.filename, "url": f"http://{ORIGIN}/f/{f.filename}",
                       "hashes": {"sha256": f.sha256},
                       "upload-time": datetime.fromtimestamp(f.published, UTC)
                       .strftime("%Y-%m-%dT%H:%M:%SZ")} for f in files]}).encode()
        self.origins.route(UPSTREAM + project + "/", body)

    # -- what happens ----------------------------------------------------------------

    @rule(index=st.sampled_from(HOSTED), project=st.sampled_from(PROJECTS),
          version=st.sampled_from(VERSIONS))
    def upload(self, index, project, version):
        filename, data = wheel(project, version)
        ctype, body = multipart_body(twine_fields(project, version, data),
                                     [("content", filename, data)])
        response, text = self.request("POST", self.prefix(index), {"Content-Type": ctype},
                                      body, ROOT)
        held = self.reference.held[index].get(filename)
        if held is None:
            assert response.code == 200, (index, filename, response.code, text)
            self.reference.held[index][filename] = Held(
                project, version, filename, hashlib.sha256(data).hexdigest(), "live",
                self.clock.seconds())
        elif held.state == "live":
            assert response.code == 200, (index, filename, response.code, text)
        else:
            assert response.code == 400, (index, filename, response.code, text)

    @rule(index=st.sampled_from(HOSTED), data=st.data())
    def delete(self, index, data):
        live = sorted(f for f, h in self.reference.held[index].items() if h.state == "live")
        if not live:
            return
        filename = data.draw(st.sampled_from(live))
        response, text = self.request("DELETE", f"{self.prefix(index)}api/files/{filename}",
                                      auth=ROOT)
        assert response.code == 200, (index, filename, response.code, text)
        self.reference.held[index][filename].state = "binned"

    @rule(index=st.sampled_from(HOSTED), data=st.data())
    def restore(self, index, data):
        binned = sorted(f for f, h in self.reference.held[index].items() if h.state == "binned")
        if not binned:
            return
        filename = data.draw(st.sampled_from(binned))
        response, text = self.request(
            "POST", f"{self.prefix(index)}api/files/{filename}/restore", auth=ROOT)
        assert response.code == 200, (index, filename, response.code, text)
        self.reference.held[index][filename].state = "live"

    @rule(index=st.sampled_from(HOSTED), data=st.data())
    def purge(self, index, data):
        binned = sorted(f for f, h in self.reference.held[index].items() if h.state == "binned")
        if not binned:
            return
        filename = data.draw(st.sampled_from(binned))
        bin = self.registry.bins()[index]
        record = self.registry.stacks[index].index.binned_file(filename)
        assert ensureDeferred(bin.purge(record)).result is True
        self.reference.held[index][filename].state = "deleted"

    @rule(index=st.sampled_from(HOSTED), data=st.data())
    def yank(self, index, data):
        live = sorted(f for f, h in self.reference.held[index].items() if h.state == "live")
        if not live:
            return
        filename = data.draw(st.sampled_from(live))
        response, text = self.request("POST", f"{self.prefix(index)}api/files/{filename}/yank",
                                      auth=ROOT)
        assert response.code == 200, (index, filename, response.code, text)
        self.reference.held[index][filename].yanked = True

    @rule(source=st.sampled_from(HOSTED), into=st.sampled_from(HOSTED),
          project=st.sampled_from(PROJECTS), version=st.sampled_from(VERSIONS))
    def promote(self, source, into, project, version):
        if source == into:
            return
        filename, _ = wheel(project, version)
        held = self.reference.held[source].get(filename)
        response, text = self.request(
            "POST", "/api/promote", {"Content-Type": "application/json"},
            json.dumps({"from": source, "to": into, "project": project,
                        "version": version}).encode(), ROOT)
        if held is None or held.state != "live":
            assert response.code == 404, (source, into, filename, response.code, text)
            return
        there = self.reference.held[into].get(filename)
        if there is None:
            assert response.code == 200, (source, into, filename, response.code, text)
            self.reference.held[into][filename] = Held(
                project, version, filename, held.sha256, "live", self.clock.seconds(),
                held.yanked)
        elif there.state == "live":
            assert response.code == 200, (source, into, filename, response.code, text)
        else:
            assert response.code in (200, 409), (source, into, response.code, text)

    @rule(project=st.sampled_from(PROJECTS), version=st.sampled_from(VERSIONS))
    def upstream_release(self, project, version):
        filename, data = wheel(project, version, upstream=True)
        if filename in self.reference.offered:
            return
        self.origins.route(f"http://{ORIGIN}/f/{filename}", data)
        self.reference.offered[filename] = Offered(
            project, version, filename, hashlib.sha256(data).hexdigest(), self.clock.seconds())
        self.publish_page(project)
        d = ensureDeferred(self.proxy.upkeep.refresh(project))
        for _ in range(30):
            self.agent.flush()
        assert d.called, "the upstream page was not fetched again"

    @rule(seconds=st.sampled_from((60.0, 3600.0, DAY)))
    def time_passes(self, seconds):
        self.clock.advance(seconds)

    # -- what must hold ----------------------------------------------------------------

    @invariant()
    def pages_and_files_agree(self):
        if not hasattr(self, "reference"):
            return
        known = {project: set() for project in PROJECTS}
        for files in self.reference.held.values():
            for f in files.values():
                known[f.project].add(f.filename)
        for f in self.reference.offered.values():
            known[f.project].add(f.filename)
        for index in ORDERS:
            for project in PROJECTS:
                expected = self.reference.listing(index, project)
                response, body = self.request(
                    "GET", f"{self.prefix(index)}simple/{project}/", {"Accept": JSON})
                listed = {}
                if response.code == 200:
                    for f in json.loads(body)["files"]:
                        listed[f["filename"]] = f
                else:
                    assert response.code == 404, (index, project, response.code, body)
                assert set(listed) == set(expected), (
                    index, project, sorted(listed), sorted(expected))
                for filename, f in listed.items():
                    sha256, source = expected[filename]
                    assert f["hashes"]["sha256"] == sha256, (index, filename, source)
                    got, data = self.request(
                        "GET", f"{self.prefix(index)}files/{project}/{filename}")
                    assert got.code == 200, (index, filename, source, got.code, data)
                    assert hashlib.sha256(data).hexdigest() == sha256, (index, filename, source)
                    if f.get("size") is not None:
                        assert len(data) == f["size"], (index, filename)
                    if f.get("core-metadata"):
                        got, meta = self.request(
                            "GET", f"{self.prefix(index)}files/{project}/{filename}.metadata")
                        assert got.code == 200, (index, filename, got.code)
                        assert hashlib.sha256(meta).hexdigest() == \
                            f["core-metadata"]["sha256"], (index, filename)
                for filename in sorted(known[project] - set(listed)):
                    got, data = self.request(
                        "GET", f"{self.prefix(index)}files/{project}/{filename}")
                    assert got.code != 200, (index, filename, "served, not listed")

    @invariant()
    def dated_view_never_gains(self):
        """
        Once its date has passed, the dated view lists no file it did not
        list then (a file deleted since may come back, restored from the
        bin; nothing uploaded or promoted later joins or shadows).
        """
        if not hasattr(self, "reference") or self.clock.seconds() < AS_OF:
            return
        for project in PROJECTS:
            response, body = self.request("GET", f"/dated/simple/{project}/", {"Accept": JSON})
            listed = ({f["filename"] for f in json.loads(body)["files"]}
                      if response.code == 200 else set())
            if self.dated_seen is None:
                self.dated_seen = {}
            seen = self.dated_seen.setdefault(project, None)
            if seen is None:
                # (the first look after the date: what the view held at it)
                self.dated_seen[project] = listed
                continue
            gained = listed - seen
            assert not gained, ("dated", project, sorted(gained))

    @invariant()
    def probes_count_nothing(self):
        if not hasattr(self, "reference"):
            return
        for index in HOSTED:
            live = sorted(f for f, h in self.reference.held[index].items() if h.state == "live")
            if not live:
                continue
            held = self.reference.held[index][live[0]]
            usage = self.registry.stacks[index].usage
            if usage is None:
                continue
            before = usage._counter.last_of(held.filename), repr(usage._counter._pending)
            path = f"{self.prefix(index)}files/{held.project}/{held.filename}"
            etag = f'"{held.sha256}"'
            for method, headers in (("HEAD", {}), ("GET", {"If-None-Match": etag}),
                                    ("GET", {"Range": "bytes=0-0"})):
                self.request(method, path, headers)
            after = usage._counter.last_of(held.filename), repr(usage._counter._pending)
            assert before == after, (index, held.filename, "counted a probe")


class ModelTests(SynchronousTestCase):
    """The state machine, in the profile the environment names (L{PROFILE})."""

    def test_whole_index(self):
        case = IndexMachine.TestCase
        case.settings = settings.get_profile(PROFILE)
        case(methodName="runTest").runTest()
