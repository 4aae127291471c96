"""
A model of the whole index (issue 41): a Hypothesis state machine drives
the real composition of a server of several indexes (the registry made
from a configuration, as the daemon makes it, its hosted indexes on disk,
its upstream answered in memory, the access gate of the configuration's
users, grants and tokens, the Klein site, no sockets) through random
uploads, deletes into the recycle bin, restores, purges, yanks, project
statuses, promotions, advisories published and withdrawn, upstream
releases (variant wheels among them), downloads by each identity, exports and the clock moving; a
plain reference model (L{Reference}: what each index holds and who may
read it, in a few dicts) says what every index must list, and after
every step the site is checked against it, for every index and project:

  - every file a page lists downloads, with the listed hash and size,
    and its C{.metadata} when the page says it has one, unless the
    index's advisories deny its release (then it is listed yanked and
    refused, 403); nothing unlisted downloads; the legacy JSON lists the
    same files with the same hashes, and the export of the index (a
    rule) writes the pages' hosted files;
  - a name hosted in an index (live, binned or deleted) never yields an
    upstream file there;
  - each page links the index-level file (PEP 825) of each release whose
    variant wheels it lists (the upstream's), naming exactly their
    labels, with their data, and serving the bytes the page hashes; no
    other index-level file is served;
  - the views' filters (include and exclude, pre-releases, yanked files,
    a cooldown, a date) and quarantines (PEP 792) take effect on every
    route; an admin sees a quarantined project's files;
  - a dated view never lists a file that was not in its bases before its
    date (nothing newer, uploaded or promoted, shadows or joins it);
  - an identity that may not read an index (its C{read} grant, a token
    kept to other indexes) finds it missing on every route, uploads too,
    and learns no hash there;
  - download counts move by one for each full download by one who may
    read the file (at most L{MAX_PER_ADDRESS} a client, file and day),
    and never for a refusal or a probe (C{HEAD}, C{304},
    C{Range: bytes=0-0}).

The suite runs a short profile; before a release, run the long one::

    HYPOTHESIS_PROFILE=long .venv/bin/python -m twisted.trial tests.unit.core.indexes.test_model

(20 to 30 minutes on two cores: 15,123 steps in 408 examples ran clean in
29 minutes with the other core busy). Examples it finds are kept as
ordinary tests in L{tests.unit.web.test_composition}.
"""

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from base64 import b64encode
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from packaging.version import Version
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.factory import make_gate_materials
from pypid.auth.hashes import hash_password
from pypid.auth.throttle import WINDOW as THROTTLE_WINDOW
from pypid.auth.verifier import PasswordVerifier
from pypid.cli.export import export_command, parse_options
from pypid.config import load_config
from pypid.core.dists.names import filename_key
from pypid.core.dists.version_order import is_prerelease, release_key
from pypid.core.dists.wheel_variants import split_label, variants_filename
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.audit_chain import is_event
from pypid.core.records.usage import MAX_PER_ADDRESS, day_of
from pypid.core.records.webhook_events import events_of
from pypid.core.security.advisories import Advisory, AdvisoryBoard, AdvisoryDB
from pypid.core.security.affected_releases import Affected
from pypid.machine.topics import LONE, Hub, Topic
from pypid.state.indexes import IndexRegistry
from pypid.storage.base.journal import BEGINNING
from pypid.storage.factory import Sharing
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.upstream.factory import UpstreamPart, cache_storage
from pypid.upstream.proxy import UpstreamProxy
from pypid.web.app import build_web, index_materials
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from pypid.webhooks.delivery import Deliveries
from pypid.webhooks.ledger import Ledger
from tests.harness.admin import admin_options
from tests.harness.distributions import make_wheel, variant_document
from tests.harness.fakes import (
    FAST,
    multipart_body,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
)
from tests.harness.memory_records import MemoryRecords
from tests.harness.osv_records import osv_record
from tests.harness.tap import AtOncePool, ThreadedReactor
from tests.harness.upstream import Origins, make_source
from tests.harness.webhooks import ScriptedSender, subscription

# (print_blob: a failure prints the @reproduce_failure line that replays
# it, since trial's folder, and the example database in it, is cleared by
# the next run)
settings.register_profile("ci", max_examples=12, stateful_step_count=12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("medium", max_examples=200, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("long", max_examples=400, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

DAY = 86400.0
START = 1767225600.0  # 2026-01-01T00:00:00Z
#: The dated view's date: two days after the start.
AS_OF = START + 2 * DAY
ORIGIN = "127.0.0.1:9001"
UPSTREAM = f"http://{ORIGIN}/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
PASSWORD = "correct horse"


def basic(user, password=PASSWORD):
    """An C{Authorization} header's value for C{user}."""
    return b"Basic " + b64encode(f"{user}:{password}".encode())


ROOT = basic("root")

CONFIG = """
[pypid]
snapshot = {root}/index.json
[storage]
path = {root}/packages
[auth]
admins = root
tokens = {root}/tokens.json
[users]
root = {hash}
dev = {hash}
ops = {hash}
[upstream]
mode = cache
url = {upstream}
[retention]
recycle_bin = 7d
[advisories]
path = {root}/osv
[index:release]
upload = user:ops
advisories = deny
[index:staging]
bases = release upstream:default
upload = user:dev user:ops
[index:secret]
read = user:ops
upload = user:ops
[index:vault]
view = yes
bases = secret
read = user:ops
[index:prod]
view = yes
bases = staging
[index:dated]
view = yes
bases = staging
as_of = {as_of}
[index:curated]
view = yes
bases = staging
include = alpha public-*
prereleases = hide
yanked = hide
[index:cool]
view = yes
bases = staging
exclude = alpha
min_age = 1d
advisories = deny
"""

HOSTED = ("default", "release", "staging", "secret")
#: Every index, and the sources it reads, in order (as the configuration says).
ORDERS = {
    "default": ("default", "upstream"),
    "release": ("release",),
    "staging": ("staging", "release", "upstream"),
    "secret": ("secret",),
    "vault": ("secret",),
    "prod": ("staging", "release", "upstream"),
    "dated": ("staging", "release", "upstream"),
    "curated": ("staging", "release", "upstream"),
    "cool": ("staging", "release", "upstream"),
}
VIEWS_AS_OF = {"dated": AS_OF}
#: The views' other filters, as the configuration says.
INCLUDE = {"curated": ("alpha", "public-*")}
EXCLUDE = {"cool": ("alpha",)}
HIDE_PRERELEASES = frozenset({"curated"})
HIDE_YANKED = frozenset({"curated"})
MIN_AGE = {"cool": DAY}
#: The indexes whose advisories deny (the others' are off).
DENY = frozenset({"cool", "release"})
PROJECTS = ("alpha", "corp-lib", "public-lib")
#: The versions advisories name; a local build of one (C{1.0+corp1}) is
#: affected by what names its public version (issue 45).
PUBLIC_VERSIONS = ("1.0", "2.0", "3.0rc1", "9.9")
VERSIONS = (*PUBLIC_VERSIONS, "1.0+corp1")
STATUSES = ("active", "deprecated", "archived", "quarantined")

#: Who asks: anonymous clients, two users, an admin, and C{dev}'s token
#: kept to C{staging} (it may read and upload there, and nowhere else).
IDENTITIES = ("anonymous", "dev", "ops", "root", "token")
#: Who may read each index but the admin (C{root}, who reads all).
READERS = {
    "secret": frozenset({"ops"}),
    "vault": frozenset({"ops"}),
}
EVERYONE = frozenset({"anonymous", "dev", "ops"})
#: Who may upload to each hosted index (the admin too).
UPLOADERS = {
    "default": frozenset({"dev", "ops"}),
    "release": frozenset({"ops"}),
    "staging": frozenset({"dev", "ops", "token"}),
    "secret": frozenset({"ops"}),
}
#: An index no configuration names: how every route of a hidden index must answer.
MISSING = "nonesuch"


def may_read(identity, index):
    """
    Whether C{identity} reads C{index} (the reference's grants): a token
    kept to C{staging} reads there, and where anyone reads (as anonymous
    clients do: its scope takes nothing from what needs no credentials).
    """
    if identity == "root":
        return True
    if identity == "token":
        return index == "staging" or may_read("anonymous", index)
    return identity in READERS.get(index, EVERYONE)


def may_upload(identity, index):
    """Whether C{identity} may upload to the hosted C{index}."""
    return identity == "root" or identity in UPLOADERS[index]


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


@attrs.frozen
class Listed:
    """A file an index lists: its hash, the source it comes from, whether it is denied."""

    sha256: str
    source: str
    version: str
    denied: bool = False


@cache
def wheel(project, version, upstream=False, label=None):
    """
    C{(filename, bytes)} of a wheel, the same bytes every time it is asked
    for (a zip stamps the time); the upstream's differ from an upload's.
    A C{label} makes it a variant wheel (PEP 825) of that label, whose
    C{variant.json} is L{variant_document}'s.
    """
    return make_wheel(project, version, module_text="upstream" if upstream else None,
                      variant=label)


def label_of(filename):
    """The variant label of a wheel's C{filename} (PEP 825), or L{None}."""
    return split_label(filename)[1]


def index_level_files(listed):
    """
    The index-level files (PEP 825) of a page's C{{filename: entry}},
    taken out of it: the reference lists distributions, and the page makes
    these of the variant wheels it lists (L{IndexMachine.variants_agree}).
    """
    return {name: listed.pop(name) for name in sorted(listed)
            if name.endswith("-variants.json")}


def wanted_levels(project, expected):
    """C{{name: release}} of the index-level files a page listing C{expected} must link."""
    return {variants_filename(project, f.version): release_key(f.version)
            for filename, f in expected.items() if label_of(filename) is not None}


def public(version):
    """The public version of C{version}: what an advisory's list names of a local build."""
    return Version(version).public


def _matches(project, patterns):
    return any(fnmatchcase(project, pattern) for pattern in patterns)


@attrs.define
class Reference:
    """
    What each index holds, the upstream offers, each project's status,
    the advisories in force and the downloads counted: the model's truth.
    """

    held: dict = attrs.field(factory=lambda: {name: {} for name in HOSTED})
    offered: dict = attrs.field(factory=dict)
    #: C{(index, project)}: its status, when not active
    statuses: dict = attrs.field(factory=dict)
    #: C{(project, version)} of the releases an advisory names
    advised: set = attrs.field(factory=set)
    #: project: what the upstream says of it now, when not C{listed}:
    #: C{quarantined} (a page with the status, no file) or C{removed} (404)
    upstream_state: dict = attrs.field(factory=dict)
    #: the projects the upstream quarantined and has not listed again since
    #: (issue 45: a removal after the quarantine does not lift it)
    quarantined_upstream: set = attrs.field(factory=set)
    #: C{(index, filename)}: downloads counted
    counts: dict = attrs.field(factory=dict)
    #: C{(index, filename, day)}: downloads by the one client address (all
    #: of ours), bounded in each hosted index, as each counts its own
    by_client: dict = attrs.field(factory=dict)
    #: C{(type, index, files)} of each change acknowledged, in order: the
    #: webhook events a subscription to everything must be told
    events: list = attrs.field(factory=list)

    def files_of(self, index, project):
        return [f for f in self.held[index].values() if f.project == project]

    def hosts(self, index, project):
        """Whether C{index} holds C{project} at all: a live, binned or deleted file."""
        return any(True for _ in self.files_of(index, project))

    def status(self, index, project):
        return self.statuses.get((index, project), "active")

    def listing(self, index, project, now, admin=False):
        """
        The files C{index} lists of C{project} (C{admin}: as an admin sees
        them): its sources in order, the first of each filename (or
        distribution) winning, an upstream asked only for a name no hosted
        source of the chain holds, nothing at all of a project a hosted
        source of the chain quarantines (but to an admin); a dated view
        takes only what arrived in each source before its date, before
        anything shadows anything; the other filters apply after.
        """
        if index in INCLUDE and not _matches(project, INCLUDE[index]):
            return {}
        if index in EXCLUDE and _matches(project, EXCLUDE[index]):
            return {}
        order = ORDERS[index]
        hosted_sources = [source for source in order if source != "upstream"]
        if not admin and any(self.status(source, project) == "quarantined"
                             for source in hosted_sources):
            return {}
        as_of = VIEWS_AS_OF.get(index)
        hosted = any(self.hosts(source, project) for source in hosted_sources)
        names, keys, taken = set(), set(), []
        for source in order:
            if source == "upstream":
                if hosted or not self.upstream_lists(project):
                    continue
                candidates = [(f, f.published) for f in self.offered.values()
                              if f.project == project]
            else:
                candidates = [(f, f.arrived) for f in self.files_of(source, project)
                              if f.state == "live"]
            given = []
            for f, when in candidates:
                if as_of is not None and when >= as_of:
                    continue
                key = filename_key(f.filename)
                if f.filename in names or (key is not None and key in keys):
                    continue
                given.append((f.filename, key))
                taken.append((f, source))
            for filename, key in given:
                names.add(filename)
                keys.add(key)
        listed = {}
        for f, source in taken:
            upstream = source == "upstream"
            if upstream and index in MIN_AGE and f.published > now - MIN_AGE[index]:
                continue
            if index in HIDE_YANKED and not upstream and f.yanked:
                continue
            if index in HIDE_PRERELEASES and is_prerelease(f.version):
                continue
            denied = index in DENY and (project, public(f.version)) in self.advised
            listed[f.filename] = Listed(f.sha256, source, f.version, denied)
        return listed

    def upstream_lists(self, project):
        """Whether the upstream's files of C{project} are offered: it lists them, unquarantined."""
        return (self.upstream_state.get(project, "listed") == "listed"
                and project not in self.quarantined_upstream)

    def ever_before(self, index, project, as_of):
        """
        C{{(filename, sha256)}} of every file that was in one of C{index}'s
        sources before C{as_of}, whatever became of it since (a name two
        sources held with other bytes is there twice).
        """
        found = set()
        for source in ORDERS[index]:
            if source == "upstream":
                found.update((f.filename, f.sha256) for f in self.offered.values()
                             if f.project == project and f.published < as_of)
            else:
                found.update((f.filename, f.sha256) for f in self.files_of(source, project)
                             if f.arrived < as_of)
        return found

    def count(self, index, filename, now):
        """One full download of C{index}'s C{filename} now, as the server bounds it."""
        key = (index, filename, day_of(now))
        if self.by_client.get(key, 0) >= MAX_PER_ADDRESS:
            return
        self.by_client[key] = self.by_client.get(key, 0) + 1
        self.counts[(index, filename)] = self.counts.get((index, filename), 0) + 1


class IndexMachine(RuleBasedStateMachine):
    """The server, and the reference it must agree with after every step."""

    @initialize(uploads=st.lists(st.tuples(st.sampled_from(HOSTED), st.sampled_from(PROJECTS),
                                           st.sampled_from(VERSIONS)),
                                 min_size=1, max_size=4))
    def start(self, uploads):
        """
        The server of L{CONFIG}, and a few files an admin uploads first: the
        steps that act on what an index holds (statuses, promotions,
        exports, bundles) then find something to act on far more often.
        """
        self.clock = Clock()
        self.clock.advance(START)
        self.folder = tempfile.mkdtemp(prefix="pypid-model-")
        self.config_path = os.path.join(self.folder, "pypid.ini")
        as_of = datetime.fromtimestamp(AS_OF, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # (the advisories in force are also written where the static
        # export reads them, as a daemon's start would read them)
        self.osv = os.path.join(self.folder, "osv")
        os.mkdir(self.osv)
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(root=self.folder, upstream=UPSTREAM, as_of=as_of,
                                  hash=password_hash()))
        config = load_config(self.config_path)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)

        def upstream(hub):
            """The upstream of a server, or of a worker of a machine (its cache shared)."""
            def made(index, learnt):
                kept, share = cache_storage(config, None, run_now, self.clock, hub)
                assert kept.prepare().called
                source = make_source(self.agent, self.clock, UPSTREAM, kept, share=share)
                return UpstreamPart(source, kept,
                                    UpstreamProxy.create(source, index, index.file_url))
            return made
        self.board = AdvisoryBoard()
        parts = make_gate_materials(config, self.clock, None)
        verifier = PasswordVerifier(config.users, self.clock, None,
                                    run_in_pool=run_in_pool_now)
        access = Gates(parts.model, verifier, None, parts.tokens)
        text, token = parts.tokens.make("dev", ("read", "upload"), indexes=("staging",))
        parts.tokens.tokens[token.id] = token
        self.auth = {"anonymous": None, "dev": basic("dev"), "ops": basic("ops"),
                     "root": ROOT, "token": basic("__token__", text)}
        self.serve(config, upstream, access)
        self.reference = Reference()
        for project in PROJECTS:
            self.publish_page(project)
        for index, project, version in uploads:
            self.upload(index, project, version, "root")

    def serve(self, config, upstream, access, hub=LONE):
        """
        The server of C{config} (its registry, its upstream's proxy, its
        site): a server of one process, or (given C{hub}) one worker of
        a machine.
        """
        # (one journal for the server, its storages' and its audit trail's,
        # whose writes ring the other workers' doorbell, as the daemon wires it)
        journal = self.journal()
        journal.listen(lambda entries: hub.publish(Topic.JOURNAL))
        self.registry = IndexRegistry.from_config(config, run_now, self.clock,
                                                  upstream=upstream(hub), board=self.board,
                                                  sharing=Sharing(journal=journal, hub=hub))
        self.proxy = self.registry.default.upstream
        for stack in self.registry.stacks.values():
            stack.storage.startService()
            stack.part.startService()
        web = build_web(index_materials(self.registry), access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20),
                        SiteServices(upstream=self.proxy,
                                     audit=AuditTrail(journal, self.clock),
                                     registry=self.registry, hub=hub))
        self.treq = site_treq(web.site)
        self.site = web.site

    def journal(self):
        """
        The journal of a server (or of each worker of a machine: one
        store's, shared), whose events the first delivers to a
        subscription to everything, to L{received}.
        """
        journal = MemoryJournal(self.clock)
        if not hasattr(self, "journals"):
            self.journals = [journal]
            receiver = ScriptedSender()
            self.received = receiver.sent
            self.hooks = {"all": subscription("all")}
            self.deliveries = Deliveries(journal, Ledger(MemoryRecords(), self.clock), receiver,
                                         lambda: self.hooks, self.clock, look_every=DAY)
            journal.listen(self.deliveries.wake)
            self.deliveries.startService()
            self.clock.advance(0)
        else:
            journal.files = self.journals[0].files
            self.journals.append(journal)
        return journal

    def teardown(self):
        self.stop_parts()
        if getattr(self, "folder", None) is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stop_parts(self):
        if hasattr(self, "deliveries"):
            self.deliveries.stopService()
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
            # (a change's events are sent in the turn after its entry is written)
            self.clock.advance(0)
            self.treq.flush()
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
        """
        The upstream's page of C{project}, as the reference offers it: its
        files; or a quarantine (PEP 792: the status, no file); or none (404).
        """
        state = self.reference.upstream_state.get(project, "listed")
        if state == "removed":
            self.origins.route(UPSTREAM + project + "/", b"no such project", status=404)
            return
        files = [f for f in self.reference.offered.values()
                 if f.project == project and state == "listed"]
        page = {
            "meta": {"api-version": "1.4"}, "name": project,
            "files": [{"filename": f.filename, "url": f"http://{ORIGIN}/f/{f.filename}",
                       "hashes": {"sha256": f.sha256},
                       "upload-time": datetime.fromtimestamp(f.published, UTC)
                       .strftime("%Y-%m-%dT%H:%M:%SZ")} for f in files]}
        # (PEP 825: each release with variant wheels, its index-level file)
        releases = {}
        for f in files:
            if label_of(f.filename) is not None:
                releases.setdefault(f.version, set()).add(label_of(f.filename))
        for version, labels in sorted(releases.items()):
            document = variant_document(sorted(labels)[0])
            for label in sorted(labels):
                document["variants"].update(variant_document(label)["variants"])
            body = json.dumps(document, indent=1).encode()
            name = variants_filename(project, version)
            self.origins.route(f"http://{ORIGIN}/f/{name}", body)
            page["files"].append({"filename": name, "url": f"http://{ORIGIN}/f/{name}",
                                  "hashes": {"sha256": hashlib.sha256(body).hexdigest()}})
        if state == "quarantined":
            page["project-status"] = {"status": "quarantined", "reason": "malware"}
        self.origins.route(UPSTREAM + project + "/", json.dumps(page).encode())

    def refresh_upstream(self, project):
        """The proxy fetches C{project}'s upstream page again (an administrator's refresh)."""
        d = ensureDeferred(self.proxy.refresh(project))
        for _ in range(30):
            self.agent.flush()
        assert d.called, "the upstream page was not fetched again"
        if isinstance(d.result, Failure):
            d.result.trap(Exception)  # (a 404 of a removed project is an answer too)

    def listing(self, index, project, identity="anonymous"):
        return self.reference.listing(index, project, self.clock.seconds(),
                                      admin=identity == "root")

    def page(self, index, project, auth=None):
        """C{(status, {filename: file})} of C{index}'s JSON page of C{project}."""
        response, body = self.request("GET", f"{self.prefix(index)}simple/{project}/",
                                      {"Accept": JSON}, auth=auth)
        if response.code != 200:
            self.last_status = None
            return response.code, {}
        page = json.loads(body)
        self.last_status = (page.get("project-status") or {}).get("status")
        return 200, {f["filename"]: f for f in page["files"]}

    # -- what happens ----------------------------------------------------------------

    @rule(index=st.sampled_from(HOSTED), project=st.sampled_from(PROJECTS),
          version=st.sampled_from(VERSIONS), identity=st.sampled_from(IDENTITIES))
    def upload(self, index, project, version, identity):
        filename, data = wheel(project, version)
        ctype, body = multipart_body(twine_fields(project, version, data),
                                     [("content", filename, data)])
        response, text = self.request("POST", self.prefix(index), {"Content-Type": ctype},
                                      body, self.auth[identity])
        if not may_read(identity, index):
            self.check_missing(index, response, text, "POST", self.prefix(MISSING),
                               {"Content-Type": ctype}, body, self.auth[identity])
            return
        if not may_upload(identity, index):
            assert response.code in (401, 403), (identity, index, response.code, text)
            return
        held = self.reference.held[index].get(filename)
        if self.reference.status(index, project) in ("archived", "quarantined"):
            assert response.code in (400, 403, 409), (index, filename, response.code, text)
            return
        if held is None:
            assert response.code == 200, (index, filename, response.code, text)
            self.reference.held[index][filename] = Held(
                project, version, filename, hashlib.sha256(data).hexdigest(), "live",
                self.clock.seconds())
            self.reference.events.append(("upload", index, (filename,)))
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
        self.reference.events.append(("delete", index, (filename,)))

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
        self.reference.events.append(("restore", index, (filename,)))

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
        if not self.reference.held[index][filename].yanked:
            self.reference.events.append(("yank", index, (filename,)))
        self.reference.held[index][filename].yanked = True

    @rule(index=st.sampled_from(HOSTED), status=st.sampled_from(STATUSES), data=st.data())
    def set_status(self, index, status, data):
        """An admin sets a project's status, most often of a project C{index} holds."""
        hosted = sorted({f.project for f in self.reference.held[index].values()})
        pool = hosted if hosted and data.draw(st.booleans()) else PROJECTS
        project = data.draw(st.sampled_from(pool))
        self.status_is(index, project, status)

    def status_is(self, index, project, status):
        response, text = self.request(
            "POST", f"{self.prefix(index)}api/projects/{project}/status",
            {"Content-Type": "application/json"}, json.dumps({"status": status}).encode(), ROOT)
        if not self.reference.hosts(index, project):
            assert response.code == 404, (index, project, response.code, text)
            return
        assert response.code == 200, (index, project, status, response.code, text)
        self.reference.events.append(("status", index, ()))
        if status == "active":
            self.reference.statuses.pop((index, project), None)
        else:
            self.reference.statuses[(index, project)] = status

    def may_promote(self, identity, source, into, project, version, override):
        """
        Whether the reference lets C{identity} promote the release (issue
        45): read in C{source}, upload to C{into}; the project neither
        quarantined in a hosted index either reads, nor archived in
        either; a release either's advisories deny only by an admin who
        asks for it; C{allow_denied} from an admin only. A token kept to
        C{staging} promotes into it what anyone reads (its scope takes
        nothing from what needs no credentials).
        """
        if not (may_read(identity, source) and may_upload(identity, into)):
            return False
        if override and identity != "root":
            return False
        chains = {s for index in (source, into) for s in ORDERS[index] if s != "upstream"}
        if any(self.reference.status(s, project) == "quarantined" for s in chains):
            return False
        if "archived" in (self.reference.status(source, project),
                          self.reference.status(into, project)):
            return False
        denied = (project, public(version)) in self.reference.advised and (
            source in DENY or into in DENY)
        return not denied or override

    @rule(source=st.sampled_from(HOSTED), into=st.sampled_from(HOSTED),
          identity=st.sampled_from(IDENTITIES), override=st.booleans(), data=st.data())
    def promote(self, source, into, identity, override, data):
        """
        C{identity} promotes a release (an admin may override a denial),
        most often one C{source} holds: a quarantined, archived or denied
        release never walks out (issue 45); what the reference allows is
        promoted.
        """
        if source == into:
            return
        held = sorted((f.project, f.version) for f in self.reference.held[source].values())
        if held and data.draw(st.booleans()):
            project, version = data.draw(st.sampled_from(held))
        else:
            project = data.draw(st.sampled_from(PROJECTS))
            version = data.draw(st.sampled_from(VERSIONS))
        filename, _ = wheel(project, version)
        held = self.reference.held[source].get(filename)
        asked = {"from": source, "to": into, "project": project, "version": version}
        if override:
            asked["allow_denied"] = True
        response, text = self.request(
            "POST", "/api/promote", {"Content-Type": "application/json"},
            json.dumps(asked).encode(), self.auth[identity])
        allowed = self.may_promote(identity, source, into, project, version, override)
        if not allowed:
            assert response.code in (401, 403, 404, 409), (
                identity, source, into, filename, override, response.code, text)
            return
        if held is None or held.state != "live":
            assert response.code == 404, (source, into, filename, response.code, text)
            return
        there = self.reference.held[into].get(filename)
        if there is None:
            assert response.code == 200, (source, into, filename, response.code, text)
            self.reference.held[into][filename] = Held(
                project, version, filename, held.sha256, "live", self.clock.seconds(),
                held.yanked)
            self.reference.events.append(("promote", into, (filename,)))
        elif there.state == "live":
            assert response.code == 200, (source, into, filename, response.code, text)
        else:
            assert response.code in (200, 409), (source, into, response.code, text)

    @rule(project=st.sampled_from(PROJECTS), version=st.sampled_from(VERSIONS),
          label=st.sampled_from((None, None, "x86_64_v3", "x86_64_v4")))
    def upstream_release(self, project, version, label=None):
        """
        The upstream publishes a wheel, or a variant wheel (PEP 825) with
        its release's index-level file (L{publish_page}).
        """
        filename, data = wheel(project, version, upstream=True, label=label)
        if filename in self.reference.offered:
            return
        self.origins.route(f"http://{ORIGIN}/f/{filename}", data)
        self.reference.offered[filename] = Offered(
            project, version, filename, hashlib.sha256(data).hexdigest(), self.clock.seconds())
        self.lifted_if_listed(project)
        self.publish_page(project)
        self.refresh_upstream(project)

    def lifted_if_listed(self, project):
        """A page that lists files of the project without a quarantine lifts the one remembered."""
        if self.reference.upstream_state.get(project, "listed") == "listed" and any(
                f.project == project for f in self.reference.offered.values()):
            self.reference.quarantined_upstream.discard(project)

    @rule(project=st.sampled_from(PROJECTS),
          state=st.sampled_from(("quarantined", "removed", "listed")))
    def upstream_says(self, project, state):
        """
        The upstream quarantines C{project}, removes it, or lists its files
        again (the public index's "quarantine, then remove"): a quarantine
        is remembered through a removal, until the files are listed again
        (issue 45), and a file no page lists is never served.
        """
        self.reference.upstream_state[project] = state
        if state == "quarantined":
            self.reference.quarantined_upstream.add(project)
        self.lifted_if_listed(project)
        self.publish_page(project)
        self.refresh_upstream(project)

    @rule(project=st.sampled_from(PROJECTS), version=st.sampled_from(PUBLIC_VERSIONS))
    def advise(self, project, version):
        """
        An advisory on the release (its public version: a local build of it
        is affected too) is published, or withdrawn if there was one; in
        force at once, and in the OSV folder the static export reads.
        """
        self.reference.advised ^= {(project, version)}
        ident = f"PYSEC-2026-{project}-{version}"
        path = os.path.join(self.osv, f"{ident}.json")
        if (project, version) in self.reference.advised:
            with open(path, "w") as f:
                json.dump(osv_record(ident, project, versions=[version], summary="a flaw"), f)
        else:
            os.remove(path)
        self.board.replace(AdvisoryDB.of(
            Advisory(f"PYSEC-2026-{p}-{v}", summary="a flaw",
                     affected=(Affected(p, versions=frozenset({release_key(v)})),))
            for p, v in sorted(self.reference.advised)))

    @rule(seconds=st.sampled_from((60.0, 3600.0, DAY)))
    def time_passes(self, seconds):
        self.clock.advance(seconds)

    @rule(identity=st.sampled_from(IDENTITIES), index=st.sampled_from(tuple(ORDERS)),
          project=st.sampled_from(PROJECTS), data=st.data())
    def download(self, identity, index, project, data):
        """
        C{identity} downloads a file of C{index}'s page (or one it may not
        read), whole: counted by the source that holds it, if it may.
        """
        listed = self.listing(index, project, identity)
        if not listed:
            return
        filename = data.draw(st.sampled_from(sorted(listed)))
        entry = listed[filename]
        response, body = self.request("GET", f"{self.prefix(index)}files/{project}/{filename}",
                                      auth=self.auth[identity])
        if not may_read(identity, index):
            assert response.code in (401, 404), (identity, index, filename, response.code)
            assert entry.sha256.encode() not in body
            return
        if entry.denied:
            assert response.code == 403, (identity, index, filename, response.code)
            return
        assert response.code == 200, (identity, index, filename, response.code, body)
        assert hashlib.sha256(body).hexdigest() == entry.sha256
        if entry.source != "upstream":
            self.reference.count(entry.source, filename, self.clock.seconds())

    @rule(identity=st.sampled_from(IDENTITIES), index=st.sampled_from(tuple(ORDERS)),
          project=st.sampled_from(PROJECTS))
    def look_as(self, identity, index, project):
        """
        What C{identity} finds of C{project} in C{index}, on every route:
        the reference's listing if it may read the index (an admin's sees
        a quarantined project's files), the answers of an index that does
        not exist if it may not, with no hash of any file in them.
        """
        auth = self.auth[identity]
        prefix = self.prefix(index)
        paths = [f"simple/{project}/", "simple/", f"pypi/{project}/json",
                 f"project/{project}/", f"search?q={project}"]
        if not may_read(identity, index):
            hashes = {f.sha256 for files in self.reference.held.values()
                      for f in files.values()}
            for path in paths:
                response, body = self.request("GET", prefix + path, auth=auth)
                self.check_missing(index, response, body, "GET", self.prefix(MISSING) + path,
                                   auth=auth)
                assert not any(h.encode() in body for h in hashes), (identity, index, path)
            return
        expected = self.listing(index, project, identity)
        code, listed = self.page(index, project, auth)
        assert code in (200, 404), (identity, index, project, code)
        levels = index_level_files(listed)
        assert set(listed) == set(expected), (
            identity, index, project, sorted(listed), sorted(expected))
        assert set(levels) == set(wanted_levels(project, expected)), (
            identity, index, project, sorted(levels))
        for filename, f in listed.items():
            assert f["hashes"]["sha256"] == expected[filename].sha256, (identity, index, filename)

    @rule(index=st.sampled_from(("default", "release", "staging", "prod", "dated", "curated",
                                 "cool")))
    def export(self, index):
        """
        C{pypid-export --index} writes what the index's pages list of its
        hosted sources (upstream files are not the server's to export), as
        an anonymous client is served them: nothing of a quarantined
        project, a denied release listed yanked and its file not written
        (issue 45); no other file.
        """
        target = tempfile.mkdtemp(prefix="export-", dir=self.folder)
        out, err = io.StringIO(), io.StringIO()
        options = parse_options([target, "--config", self.config_path, "--index", index])
        d = ensureDeferred(export_command(options, self.clock, out, err))
        assert d.called, "the export did not finish"
        assert d.result == 0, (index, err.getvalue())
        for project in PROJECTS:
            expected = {name: f for name, f in self.listing(index, project).items()
                        if f.source != "upstream"}
            page = os.path.join(target, "simple", project, "index.json")
            exported = {}
            if os.path.exists(page):
                with open(page) as f:
                    exported = {entry["filename"]: entry for entry in json.load(f)["files"]}
                assert set(index_level_files(exported)) == set(
                    wanted_levels(project, expected)), (index, project)
            assert set(exported) == set(expected), (
                index, project, sorted(exported), sorted(expected))
            for filename, entry in exported.items():
                assert entry["hashes"]["sha256"] == expected[filename].sha256
                if expected[filename].denied:
                    assert entry.get("yanked"), (index, filename, "denied, not yanked")
            folder = os.path.join(target, "files", project)
            written = set(os.listdir(folder)) if os.path.isdir(folder) else set()
            written = {name for name in written if not name.endswith(".metadata")}
            assert written == {name for name, f in expected.items() if not f.denied}, (
                index, project, sorted(written), sorted(expected))

    @rule(index=st.sampled_from(HOSTED))
    def bundle(self, index):
        """
        C{pypid-admin export --index} bundles the index's files with its
        projects' statuses (issue 45: an import must not make a
        quarantined project active): each status the reference holds, and
        a file of each live or binned one it holds.
        """
        from pypid.bundle import manifest
        from pypid.cli.bundle import pack_command

        target = os.path.join(tempfile.mkdtemp(prefix="bundle-", dir=self.folder), "b")
        out, err = io.StringIO(), io.StringIO()
        d = ensureDeferred(pack_command(load_config(self.config_path), admin_options(
            "export", to=target, index=[index]), _AtOnceReactor(), out, err))
        assert d.called, "the bundle was not written"
        assert d.result == 0, (index, err.getvalue())
        where = "" if index == DEFAULT else f"indexes/{index}/"
        statuses = {}
        path = os.path.join(target, where + manifest.STATUSES)
        if os.path.exists(path):
            with open(path, "rb") as f:
                statuses = {project: bundled.status.status for project, bundled
                            in manifest.parse_statuses(f.read()).items()}
        expected = {project: status for (held, project), status
                    in self.reference.statuses.items() if held == index}
        assert statuses == expected, (index, statuses, expected)

    def check_missing(self, index, response, body, method, path, headers=None, data=None,
                      auth=None):
        """
        C{response} is the answer an index that does not exist gives to the
        same request; for the default index, which always exists: a read
        finds nothing (404), a change is refused (403 or 404).
        """
        if index == DEFAULT:
            allowed = (404,) if method == "GET" else (403, 404)
            assert response.code in allowed, (index, method, path, response.code, body)
            return
        theirs, their_body = self.request(method, path, headers, data, auth)
        assert response.code == theirs.code, (index, path, response.code, theirs.code, body)

    # -- what must hold ----------------------------------------------------------------

    @invariant()
    def events_are_the_changes(self):
        """
        The webhook events delivered are the changes acknowledged, one each,
        in order: made by every kind of change the model makes (a purge of
        the bin's upkeep is not one: the model purges by hand), signed for
        the subscription, none refused, none twice.
        """
        if not hasattr(self, "reference"):
            return
        assert self.deliveries.look().called
        told = [(event.type, event.data["index"],
                 tuple(f["filename"] for f in event.data["files"]))
                for _, event in self.received]
        assert told == self.reference.events, (told, self.reference.events)
        assert len({event.id for _, event in self.received}) == len(self.received)

    @invariant()
    def journal_is_the_changes(self):
        """
        The journal holds every change acknowledged once, in order, with
        serials one after the other, whichever worker wrote it; what each
        worker's journal reads of it is the same.
        """
        if not hasattr(self, "reference"):
            return
        seen = []
        for journal in self.journals:
            read = journal.since(0, 100_000)
            assert read.called
            seen.append(read.result)
        entries = seen[0]
        assert all(other == entries for other in seen), "the workers read other journals"
        assert [e.serial for e in entries] == list(range(BEGINNING + 1,
                                                         BEGINNING + 1 + len(entries)))
        told = [(event.type, event.data["index"],
                 tuple(f["filename"] for f in event.data["files"]))
                for event in events_of([e for e in entries if is_event(e)])]
        assert told == self.reference.events, (told, self.reference.events)

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
            # (as one who may read it: the restricted ones' reader)
            reader = "anonymous" if may_read("anonymous", index) else "ops"
            auth = self.auth[reader]
            for project in PROJECTS:
                expected = self.listing(index, project, reader)
                code, listed = self.page(index, project, auth)
                assert code in (200, 404), (index, project, code)
                levels = index_level_files(listed)
                assert set(listed) == set(expected), (
                    index, project, sorted(listed), sorted(expected))
                self.variants_agree(index, project, expected, levels, auth)
                for filename, f in listed.items():
                    entry = expected[filename]
                    assert f["hashes"]["sha256"] == entry.sha256, (index, filename, entry)
                    got, data = self.request(
                        "GET", f"{self.prefix(index)}files/{project}/{filename}", auth=auth)
                    if entry.denied:
                        assert f.get("yanked"), (index, filename, "denied, not yanked")
                        assert got.code == 403, (index, filename, got.code)
                        continue
                    assert got.code == 200, (index, filename, entry, got.code, data)
                    assert hashlib.sha256(data).hexdigest() == entry.sha256, (index, filename)
                    if entry.source != "upstream":
                        self.reference.count(entry.source, filename, self.clock.seconds())
                    if f.get("size") is not None:
                        assert len(data) == f["size"], (index, filename)
                    if f.get("core-metadata"):
                        got, meta = self.request(
                            "GET", f"{self.prefix(index)}files/{project}/{filename}.metadata",
                            auth=auth)
                        assert got.code == 200, (index, filename, got.code)
                        assert hashlib.sha256(meta).hexdigest() == \
                            f["core-metadata"]["sha256"], (index, filename)
                if index in ("default", "staging") and not any(
                        self.reference.hosts(source, project) for source in ORDERS[index]
                        if source != "upstream"):
                    # (a project of the upstream alone has the upstream's
                    # status: a quarantine outlives a removal, issue 45)
                    quarantined = project in self.reference.quarantined_upstream
                    assert code == 200 or not quarantined, (index, project, code)
                    assert code != 200 or (self.last_status == "quarantined") == quarantined, (
                        index, project, self.last_status)
                for filename in sorted(known[project] - set(listed)):
                    got, data = self.request(
                        "GET", f"{self.prefix(index)}files/{project}/{filename}", auth=auth)
                    assert got.code != 200, (index, filename, "served, not listed")
                self.legacy_json_agrees(index, project, expected, auth)

    def variants_agree(self, index, project, expected, levels, auth):
        """
        (PEP 825) The page links the index-level file of each release
        whose variant wheels it lists, and no other; each serves the bytes
        the page hashes, and names exactly the labels of the release's
        variant wheels the page lists (whatever the view's filters, date,
        cooldown and advisories left), as their own data says. No other
        index-level file of the project is served.
        """
        labels = {}
        for filename, f in expected.items():
            if label_of(filename) is not None:
                labels.setdefault(release_key(f.version), set()).add(label_of(filename))
        wanted = wanted_levels(project, expected)
        assert set(levels) == set(wanted), (index, project, sorted(levels), sorted(wanted))
        for name, entry in levels.items():
            got, data = self.request("GET", f"{self.prefix(index)}files/{project}/{name}",
                                     auth=auth)
            assert got.code == 200, (index, name, got.code, data)
            assert hashlib.sha256(data).hexdigest() == entry["hashes"]["sha256"], (index, name)
            variants = json.loads(data)["variants"]
            assert set(variants) == labels[wanted[name]], (index, name, sorted(variants))
            for label, props in variants.items():
                assert props == variant_document(label)["variants"][label], (index, name)
        offered = {variants_filename(project, f.version) for f in self.reference.offered.values()
                   if f.project == project and label_of(f.filename) is not None}
        for name in sorted(offered - set(levels)):
            got, data = self.request("GET", f"{self.prefix(index)}files/{project}/{name}",
                                     auth=auth)
            assert got.code == 404, (index, name, "served, not linked", got.code)

    def legacy_json_agrees(self, index, project, expected, auth):
        """
        C{/pypi/<project>/json} lists the hosted files the page lists, with
        the same hashes; a project the page lists from the upstream alone,
        the upstream's files (issue 46).
        """
        hosted = {name: f for name, f in expected.items() if f.source != "upstream"}
        expected = hosted or expected
        response, body = self.request("GET", f"{self.prefix(index)}pypi/{project}/json",
                                      auth=auth)
        if response.code != 200:
            assert response.code == 404, (index, project, response.code, body)
            assert not expected, (index, project, "legacy JSON missing", sorted(expected))
            return
        releases = json.loads(body)["releases"]
        found = {f["filename"]: f for files in releases.values() for f in files}
        assert set(found) == set(expected), (index, project, sorted(found), sorted(expected))
        for filename, f in found.items():
            assert f["digests"]["sha256"] == expected[filename].sha256, (index, filename)

    @invariant()
    def dated_view_never_gains(self):
        """
        After its date, the dated view lists only files that were in its
        bases before it, with the hash they had (a file deleted since may
        come back, restored from the bin; nothing uploaded or promoted
        later joins or shadows).
        """
        if not hasattr(self, "reference") or self.clock.seconds() < AS_OF:
            return
        for project in PROJECTS:
            code, listed = self.page("dated", project)
            before = self.reference.ever_before("dated", project, AS_OF)
            for filename, f in listed.items():
                if filename.endswith("-variants.json"):
                    # (made by the page of the variant wheels it lists, each
                    # held here: L{variants_agree} holds the file to them)
                    continue
                assert (filename, f["hashes"]["sha256"]) in before, ("dated", filename)

    @invariant()
    def counts_move_by_full_downloads(self):
        """
        Probes (C{HEAD}, a C{304}, a first-byte range) count nothing; the
        counts are the full downloads the reference counted.
        """
        if not hasattr(self, "reference"):
            return
        for index in HOSTED:
            live = sorted(f for f, h in self.reference.held[index].items() if h.state == "live")
            if live:
                held = self.reference.held[index][live[0]]
                path = f"{self.prefix(index)}files/{held.project}/{held.filename}"
                for method, headers in (("HEAD", {}),
                                        ("GET", {"If-None-Match": f'"{held.sha256}"'}),
                                        ("GET", {"Range": "bytes=0-0"})):
                    self.request(method, path, headers, auth=self.auth["ops"])
            usage = self.registry.stacks[index].usage
            if usage is None:
                continue
            assert usage.flush().called
            response, body = self.request("GET", f"/api/usage?index={index}&days=90&limit=10000",
                                          auth=ROOT)
            assert response.code == 200, (index, response.code, body)
            counted = {f["filename"]: f["downloads"] for f in json.loads(body)["files"]
                       if f["downloads"]}
            expected = {filename: n for (where, filename), n in self.reference.counts.items()
                        if where == index and filename in counted or where == index and
                        self.reference.held[index][filename].state == "live"}
            assert counted == expected, (index, counted, expected)


class MachineOfTwo(IndexMachine):
    """
    The same steps on a machine of two workers over the same folders
    (issue 70): their registries on one ring, each request to the other
    worker than the one before (an upload's page and files are asked of
    the worker that did not take it), each worker catching up before a
    request only when the doorbell rang (its journal's writes ring it, as
    the daemon wires it); their upstream's cache shared
    as a machine's is (a page one fetched, the other serves); after every
    step, every invariant holds for each worker alike.
    """

    def serve(self, config, upstream, access, hub=LONE):
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topic_table import LANE_SLOT_SIZE
        self.ring = ChangeRing.create(slots=256, slot_size=4096)
        # (the throttles' events on a lane of their own, as a supervisor makes it)
        self.lane = ChangeRing.create(slots=256, slot_size=LANE_SLOT_SIZE, tally=1)
        self.served = (config, upstream, access)
        self.workers = []
        for number in (1, 2):
            self.workers.append(self.worker(number))
        self.turn = 0
        self.pinned = None

    def worker(self, number):
        """Worker C{number} of the machine, started: its registry, proxy, client and site."""
        from pypid.machine.ring import ChangeRing
        IndexMachine.serve(self, *self.served, Hub(
            *(ChangeRing.attach(made.fileno(), number) for made in (self.ring, self.lane))))
        return self.registry, self.proxy, self.treq, self.site

    @rule(saved=st.booleans())
    def restart_second(self, saved):
        """
        The second worker ends and the supervisor starts it again, from
        the snapshot the first saved (C{saved}), or from the folder; the
        first hears of its end. The new one answers as both did.
        """
        if saved:
            for stack in self.workers[0][0].stacks.values():
                assert stack.writer.save_if_changed().called
        # (a clean stop: its download counts written, as its usage part's
        # stop writes them; then its parts in the reverse of their start)
        for stack in self.workers[1][0].stacks.values():
            if stack.usage is not None:
                assert stack.usage.flush().called
            for _, part in reversed(list(stack.parts())):
                if part.running:
                    assert maybeDeferred(part.stopService).called
        Hub(self.ring).publish(Topic.WORKER_ENDED, b"2")
        self.workers[1] = self.worker(2)
        # (the counts written before it started, read as its usage part's start reads them)
        for stack in self.workers[1][0].stacks.values():
            if stack.usage is not None:
                assert ensureDeferred(stack.usage.load()).called

    def stop_parts(self):
        for registry, *_ in getattr(self, "workers", ()):
            self.registry = registry
            IndexMachine.stop_parts(self)

    def use(self, worker):
        """Ask C{worker} from now on: its registry, proxy and site, caught up."""
        self.registry, self.proxy, self.treq, site = self.workers[worker]
        # (as a worker's connections do: a look only when the doorbell rang)
        if site.catch_up.behind():
            caught = site.catch_up.caught_up()
            assert caught.called, "the worker did not catch up at once"

    def request(self, method, path, headers=None, data=None, auth=None):
        worker = self.pinned if self.pinned is not None else self.turn
        self.turn = 1 - self.turn
        self.use(worker)
        return IndexMachine.request(self, method, path, headers, data, auth)

    def refresh_upstream(self, project):
        """
        One worker's proxy fetches the page again (the next asked): the
        other serves it from the machine's share at its next request.
        """
        self.use(self.turn)
        self.turn = 1 - self.turn
        IndexMachine.refresh_upstream(self, project)

    def each_worker(self, check):
        for worker in range(len(self.workers)):
            self.pinned = worker
            try:
                check(self)
            finally:
                self.pinned = None

    @invariant()
    def pages_and_files_agree(self):
        """L{IndexMachine.pages_and_files_agree}, of each worker."""
        if hasattr(self, "workers"):
            self.each_worker(IndexMachine.pages_and_files_agree)

    @invariant()
    def dated_view_never_gains(self):
        """L{IndexMachine.dated_view_never_gains}, of each worker."""
        if hasattr(self, "workers"):
            self.each_worker(IndexMachine.dated_view_never_gains)

    @invariant()
    def counts_move_by_full_downloads(self):
        """
        L{IndexMachine.counts_move_by_full_downloads}, of each worker, once
        each wrote its counts and took in the other's (every interval).
        """
        if not hasattr(self, "workers"):
            return
        for registry, *_ in self.workers:
            for stack in registry.stacks.values():
                if stack.usage is not None:
                    assert stack.usage.flush().called
        for registry, *_ in self.workers:
            for stack in registry.stacks.values():
                if stack.usage is not None:
                    assert ensureDeferred(stack.usage.take_in()).called
        self.each_worker(IndexMachine.counts_move_by_full_downloads)


class _AtOnceReactor(ThreadedReactor):
    """A reactor whose thread pool does its work at once (a command run in the test's thread)."""

    def getThreadPool(self):
        return AtOncePool(name="io")


@cache
def password_hash():
    """The one password's hash (the users share it)."""
    return hash_password(PASSWORD, FAST)


class ModelTests(SynchronousTestCase):
    """The state machine, in the profile the environment names (L{PROFILE})."""

    def test_denied_release_of_a_proxied_project(self):
        """
        (Found by the model.) In a view that denies a release, the legacy
        JSON of a project it lists from the upstream alone lists that
        release, as its page does (listed yanked, its file refused), and
        names its advisory; it answered 404 once the release was its only one.
        """
        machine = IndexMachine()
        machine.start(uploads=[("default", "public-lib", "1.0")])
        machine.advise(project="corp-lib", version="9.9")
        machine.upstream_release(project="corp-lib", version="9.9")
        machine.time_passes(seconds=DAY)
        response, body = machine.request("GET", "/cool/pypi/corp-lib/json")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json.loads(body)["vulnerabilities"][0]["id"],
                         "PYSEC-2026-corp-lib-9.9")
        machine.pages_and_files_agree()
        machine.teardown()

    def test_upstream_variant_wheels(self):
        """
        An upstream's variant wheels (PEP 825) through every index: each
        page links its own index-level file of the variant wheels it
        lists, the cooldown view's without the young one, until it is old
        enough; a release an advisory denies keeps its variants listed,
        its files refused (every listed file is downloaded by the
        invariant, the variant wheels held to their data).
        """
        machine = IndexMachine()
        machine.start(uploads=[("release", "alpha", "1.0")])
        machine.upstream_release(project="public-lib", version="2.0")
        machine.upstream_release(project="public-lib", version="2.0", label="x86_64_v3")
        machine.time_passes(seconds=DAY)
        machine.upstream_release(project="public-lib", version="2.0", label="x86_64_v4")
        code, listed = machine.page("cool", "public-lib")
        self.assertEqual(sorted(listed), ["public_lib-2.0-py3-none-any-x86_64_v3.whl",
                                          "public_lib-2.0-py3-none-any.whl",
                                          "public_lib-2.0-variants.json"])
        code, listed = machine.page("staging", "public-lib")
        self.assertIn("public_lib-2.0-py3-none-any-x86_64_v4.whl", listed)
        machine.pages_and_files_agree()
        machine.advise(project="public-lib", version="2.0")
        machine.time_passes(seconds=DAY)
        machine.pages_and_files_agree()
        machine.teardown()

    def test_admin_downloads_a_quarantined_project_through_bases(self):
        """
        (Found by the model.) An admin downloads every file its page lists
        of a project a base quarantines: the base's file through the
        index that reads it, and the index's own through a view of it
        (each answered 404, as to anyone, while the page listed them).
        """
        machine = IndexMachine()
        machine.start(uploads=[("release", "alpha", "1.0"), ("staging", "alpha", "1.0+corp1")])
        machine.status_is("release", "alpha", "quarantined")
        for index in ("staging", "prod", "dated"):
            for filename in ("alpha-1.0-py3-none-any.whl", "alpha-1.0+corp1-py3-none-any.whl"):
                response, _ = machine.request(
                    "GET", f"{machine.prefix(index)}files/alpha/{filename}", auth=ROOT)
                self.assertEqual(response.code, 200, (index, filename))
                response, _ = machine.request(
                    "GET", f"{machine.prefix(index)}files/alpha/{filename}")
                self.assertEqual(response.code, 404, (index, filename))
        machine.teardown()

    def test_promotion_after_the_date_through_either_worker(self):
        """
        (Found by the model.) A release promoted into a dated view's base
        after its date joins the view through neither worker: the one
        that takes the promotion in reads when it was promoted (it took
        the file as arrived when it was uploaded, and the view listed it).
        """
        machine = MachineOfTwo()
        machine.start(uploads=[("default", "public-lib", "1.0")])
        machine.time_passes(seconds=3 * DAY)
        response, text = machine.request(
            "POST", "/api/promote", {"Content-Type": "application/json"},
            json.dumps({"from": "default", "to": "staging", "project": "public-lib",
                        "version": "1.0"}).encode(), ROOT)
        self.assertEqual(response.code, 200, text)
        for worker in (0, 1):
            machine.pinned = worker
            self.assertEqual(machine.page("dated", "public-lib")[1], {}, worker)
            code, listed = machine.page("staging", "public-lib")
            self.assertEqual(sorted(listed), ["public_lib-1.0-py3-none-any.whl"], worker)
        machine.pinned = None
        machine.teardown()

    def test_restarted_worker_and_the_pages_fetched_since(self):
        """
        (Found by the model.) A worker restarted from a snapshot saved
        before the other refreshed an upstream page serves the page as
        refreshed, not the snapshot's: it reads the pages its machine
        wrote since, whose announcements went by before it started.
        """
        machine = MachineOfTwo()
        machine.start(uploads=[("staging", "public-lib", "2.0")])
        machine.pages_and_files_agree()
        machine.restart_second(saved=True)
        machine.upstream_release(project="alpha", version="3.0rc1", label="x86_64_v4")
        machine.restart_second(saved=False)
        machine.pinned = 1
        code, listed = machine.page("default", "alpha")
        machine.pinned = None
        self.assertEqual(sorted(listed), ["alpha-3.0rc1-py3-none-any-x86_64_v4.whl",
                                          "alpha-3.0rc1-variants.json"])
        machine.pages_and_files_agree()
        machine.teardown()

    def test_whole_index(self):
        case = IndexMachine.TestCase
        case.settings = settings.get_profile(PROFILE)
        case(methodName="runTest").runTest()

    def test_machine_of_two(self):
        case = MachineOfTwo.TestCase
        case.settings = settings.get_profile(PROFILE)
        case(methodName="runTest").runTest()


# -- configuration changes and identities (issue 59) -------------------------------------

#: The local users the configuration may hold (root is always there: an admin).
LOCAL_USERS = ("root", "amy", "ben")
#: The directory's people (a fake directory, as L{tests.harness.ldap} keeps
#: it) and their groups there: one an admin by its group, one a reader.
DIRECTORY_PEOPLE = {"dora": frozenset({"ops"}), "erin": frozenset({"readers"}),
                    "fred": frozenset()}
#: The provider's people, and the groups it gives them.
PROVIDER_PEOPLE = {"gina": frozenset({"platform"}), "hank": frozenset({"readers"})}
#: What C{[sso] allow} may say (empty: everyone the provider signs in).
ALLOWS = ("", "group:platform", "hank")
ISSUER = "https://login.corp.example/realms/acme"
#: The providers C{[sso]} may be switched between: each has people of the
#: same names, other people (their subjects differ).
ISSUERS = (ISSUER, "https://login.corp.example/realms/other")
#: The indexes a token may be kept to (empty: every index).
KEPT = ("", "default", "secret")

LDAP_SECTION = "[ldap]\nurl = ldap://127.0.0.1:1\nuser_base = ou=people,dc=example,dc=test\n"


def user_password(name, version):
    return f"pw-{name}-{version}"


@cache
def user_hash(name, version):
    return hash_password(user_password(name, version), FAST)


@attrs.define
class Settings:
    """The configuration as data: what the reference reads."""

    versions: dict = attrs.Factory(lambda: {"root": 0, "amy": 0, "ben": 0})
    ops: frozenset = frozenset({"root"})
    readers: frozenset = frozenset({"root"})
    ldap: bool = False
    sso: bool = False
    allow: str = ""
    issuer: str = ISSUER
    #: whether C{[acl]} keeps C{vault-*} to C{group:ops}
    acl: bool = False
    #: whether C{[upstream] private} names C{acme-*}: a key only a restart
    #: takes, so a reload that changes it is refused whole
    private: bool = False

    def copy(self):
        return attrs.evolve(self, versions=dict(self.versions))

    def text(self, root):
        users = "".join(f"{name} = {user_hash(name, version)}\n"
                        for name, version in self.versions.items())
        text = (f"[pypid]\nsnapshot = {root}/index.json\nlisten = tcp:0:interface=127.0.0.1\n"
                f"[storage]\npath = {root}/packages\n"
                f"[auth]\nadmins = group:ops\ntokens = {root}/tokens.json\n"
                f"sessions = {root}/sessions.json\n"
                f"[users]\n{users}"
                f"[groups]\nops = {' '.join(sorted(self.ops))}\n"
                f"readers = {' '.join(sorted(self.readers))}\n"
                "[index:secret]\nread = group:readers\nupload = group:readers\n")
        if self.acl:
            text += "[acl]\nvault-* = group:ops rw\n"
        text += ("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
                 + ("private = acme-*\n" if self.private else ""))
        if self.ldap:
            text += LDAP_SECTION
        if self.sso:
            text += (f"[sso]\nissuer = {self.issuer}\nclient_id = pypid\nclient_secret = s\n"
                     + (f"allow = {self.allow}\n" if self.allow else ""))
        return text

    def local(self, name):
        return name in self.versions

    def groups_of(self, name, outside=frozenset()):
        return {g for g, members in (("ops", self.ops), ("readers", self.readers))
                if name in members} | set(outside)

    def allows(self, name, groups):
        if not self.allow:
            return True
        if self.allow.startswith("group:"):
            return self.allow.removeprefix("group:") in groups
        return self.allow == name


@attrs.frozen
class Credential:
    """A credential an identity holds: a session's cookie or a token's text."""

    owner: str
    source: str
    value: str
    #: a password user's password version at the login (sessions)
    version: int | None = None
    #: the directory's or provider's groups at the login
    groups: frozenset = frozenset()
    #: the provider a person of single sign-on came through
    issuer: str = ""
    #: which account of a local user's name (a name added again is a new one)
    account: int = 0
    #: the index a token is kept to (empty: every index)
    kept: str = ""

    @property
    def person(self):
        """Who it is the credential of: a name alone is not a person."""
        return (self.owner, self.source, self.issuer, self.account)


def is_token(held):
    return held.value.startswith("pypid-") and not held.value.startswith("pypid-session=")


def token_id(text):
    return text.removeprefix("pypid-").partition("-")[0]


class AccessMachine(RuleBasedStateMachine):
    """
    The daemon of a configuration that changes (users, passwords, groups,
    the directory, single sign-on and its C{allow}), taken by C{SIGHUP} or
    by a restart, and the identities of every source (local passwords, a
    directory and a provider through fakes, tokens, browser sessions):
    after every step, what each identity may do on the routes equals what
    the configuration in force alone says, however the change came.
    """

    @initialize()
    def start(self):
        from pypid.daemon.server import build_service
        from tests.harness.ldap import MemoryDirectory
        from tests.harness.tap import checking_pools
        self.build_service = build_service
        self.checking_pools = checking_pools
        self.folder = tempfile.mkdtemp(prefix="pypid-access-model-")
        self.path = os.path.join(self.folder, "pypid.ini")
        self.reactor = ThreadedReactor()
        self.reactor.advance(START)
        self.pending = Settings()
        self.in_force = self.pending.copy()
        self.directory = MemoryDirectory({(name, f"dir-{name}"): groups
                                          for name, groups in DIRECTORY_PEOPLE.items()})
        self.held: list[Credential] = []
        #: the sessions and tokens that ended (they stood for nobody once)
        self.ended: set[str] = set()
        #: each local name's account: a name added again is a new account
        self.accounts = dict.fromkeys(self.pending.versions, 0)
        self.write()
        self.service = None
        self.boot()
        # (a project [acl] may keep to some: root's)
        filename, data = wheel("vault-lib", "1.0")
        ctype, body = multipart_body(twine_fields("vault-lib", "1.0", data),
                                     [("content", filename, data)])
        response, text = self.request("POST", "/", {"Content-Type": ctype,
                                                    **self.basic("root")}, body)
        assert response.code == 200, (response.code, text)

    def teardown(self):
        if getattr(self, "service", None) is not None and self.service.running:
            self.stop()
        if getattr(self, "patched", None) is not None:
            self.patched()
        if getattr(self, "folder", None) is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self):
        """Stop the daemon, and wait for its stop (its folders' locks let go) as a restart does."""
        stopped = self.service.stopService()
        for _ in range(100):
            if stopped.called:
                return
            self.reactor.advance(0.1)
        raise AssertionError("the daemon did not stop")

    def write(self):
        with open(self.path, "w") as f:
            f.write(self.pending.text(self.folder))

    def load(self):
        return load_config(self.path)

    def boot(self):
        """Start a daemon of the file (its directory the fake one), as a restart does."""
        import pypid.auth.ldap as ldap_module
        directory = self.directory
        real = ldap_module.make_directory

        def make_directory(settings, reactor, fallback_ca=None, held=None):
            return attrs.evolve(directory, key=settings.key) if settings.url else None
        ldap_module.make_directory = make_directory
        self.patched = lambda: setattr(ldap_module, "make_directory", real)
        self.service = self.build_service(self.load(), self.reactor,
                                          pools=self.checking_pools(), load_config=self.load)
        self.service.startService()
        assert self.service.ready.called, "the daemon did not start"
        self.site = self.service.getServiceNamed("web").web.site

    def request(self, method, path, headers=None, data=None):
        # (a client of its own each time: no cookie kept from an earlier answer)
        client = site_treq(self.site)
        d = client.request(method, "http://pypi.test" + path, headers=headers or {},
                           data=data, allow_redirects=False)
        response = d.result
        assert not isinstance(response, Failure), response
        return response, client.content(response).result

    # -- changes of the configuration ----------------------------------------------

    @rule(name=st.sampled_from(LOCAL_USERS[1:]))
    def add_or_remove_user(self, name):
        if name in self.pending.versions:
            del self.pending.versions[name]
            self.pending.ops -= {name}
            self.pending.readers -= {name}
        else:
            self.pending.versions[name] = 0

    @rule(name=st.sampled_from(LOCAL_USERS))
    def change_password(self, name):
        if name in self.pending.versions:
            self.pending.versions[name] += 1

    @rule(name=st.sampled_from(LOCAL_USERS[1:]), group=st.sampled_from(("ops", "readers")))
    def toggle_group(self, name, group):
        if name in self.pending.versions:
            members = getattr(self.pending, group)
            setattr(self.pending, group, members ^ {name})

    @rule()
    def toggle_private(self):
        self.pending.private = not self.pending.private

    @rule()
    def toggle_acl(self):
        self.pending.acl = not self.pending.acl

    @rule()
    def toggle_directory(self):
        self.pending.ldap = not self.pending.ldap

    @rule(allow=st.sampled_from(ALLOWS), on=st.booleans())
    def single_sign_on(self, allow, on):
        self.pending.sso, self.pending.allow = on, allow

    @rule(issuer=st.sampled_from(ISSUERS))
    def switch_provider(self, issuer):
        self.pending.issuer = issuer

    @rule(restart=st.booleans())
    def apply(self, restart):
        """The file written, then taken by a restart or by C{SIGHUP} (a reload)."""
        self.write()
        if restart:
            self.stop()
            self.patched()
            self.boot()
            # (minted tokens live in memory: a restart ends them)
            self.ended |= {held.value for held in self.held if held.source == "minted"}
        else:
            self.service.reload()
            if self.pending.private != self.in_force.private:
                # (refused whole, naming the key: nothing of the file taken)
                return
        for name in set(self.pending.versions) - set(self.in_force.versions):
            self.accounts[name] = self.accounts.get(name, 0) + 1
        self.in_force = self.pending.copy()
        # A token whose person the configuration taken no longer has ends
        # for good: a name given back, a provider switched back or an
        # allow widened again is another person, or too late.
        self.ended |= {held.value for held in self.held
                       if is_token(held) and not self.stands(held)}

    # -- identities -----------------------------------------------------------------

    def password_of(self, name):
        if name in DIRECTORY_PEOPLE:
            return f"dir-{name}"
        return user_password(name, self.in_force.versions.get(name, 0))

    def basic(self, name, password=None):
        password = self.password_of(name) if password is None else password
        return {"Authorization": basic(name, password).decode()}

    @rule(name=st.sampled_from(LOCAL_USERS + tuple(DIRECTORY_PEOPLE)))
    def log_in(self, name):
        """A person logs in through the form (a local or a directory user)."""
        response, body = self.request(
            "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
            f"user={name}&password={self.password_of(name)}".encode())
        expected = self.in_force.local(name) or (self.in_force.ldap and name in DIRECTORY_PEOPLE)
        assert (response.code == 303) == expected, (name, response.code, body)
        if response.code == 303:
            cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
            local = self.in_force.local(name)
            self.held.append(Credential(name, "password" if local else "ldap", cookie,
                                  self.in_force.versions.get(name),
                                  frozenset() if local else DIRECTORY_PEOPLE[name],
                                  account=self.accounts[name] if local else 0))

    @rule(name=st.sampled_from(tuple(PROVIDER_PEOPLE)))
    def sign_in(self, name):
        """
        A person of the provider signs in: the session the callback opens
        once the provider vouched for them (the callback's own checks, a
        local name, the directory's, C{allow}, are the reference's here).
        """
        force = self.in_force
        groups = PROVIDER_PEOPLE[name]
        if not force.sso or force.local(name) or not force.allows(name, groups):
            return
        from pypid.core.access.sso_flow import provider_key
        sessions = self.service.getServiceNamed("access").sessions
        value, _ = sessions.book.open(name, groups, "sso", self.reactor.seconds(), os.urandom,
                                      provider_key(force.issuer, "pypid"),
                                      person=f"{force.issuer}#{name}")
        self.held.append(Credential(name, "sso", f"pypid-session={value}",
                              groups=groups, issuer=force.issuer))

    @rule()
    def mint(self):
        """
        Trusted publishing mints a token for a publisher of C{vault-*} (its
        C{[publishers]} rule is its grant, in every index): it lives in
        memory, so a restart ends it.
        """
        publishing = self.service.getServiceNamed("access").publishing
        text, _ = publishing.tokens.issue("publisher:github:acme/vault", ["vault-*"],
                                          30 * DAY, "")
        self.held.append(Credential("publisher:github:acme/vault", "minted", text))

    @rule(data=st.data())
    def issue_token(self, data):
        """A person with a standing session or a password issues a read token."""
        sessions = [h for h in self.held if h.value.startswith("pypid-session=")
                    and self.stands(h)]
        if not sessions:
            return
        self.issue(data.draw(st.sampled_from(sessions)), data.draw(st.sampled_from(KEPT)))

    def issue(self, held, kept=""):
        """
        The person of the session C{held} issues a read token on the
        console, kept to the index C{kept} (empty: every index).
        """
        _, page = self.request("GET", "/console/tokens", {"Cookie": held.value})
        found = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert found is not None, page[:300]
        response, body = self.request(
            "POST", "/console/tokens", {"Cookie": held.value,
                                        "Content-Type": "application/x-www-form-urlencoded"},
            f"csrf={found.group(1).decode()}&actions=read&expires=30d&indexes={kept}".encode())
        if kept == "secret" and not self.principals(held.owner, held.groups) & {"readers", "ops"}:
            # (an index hidden from the person is refused as a missing one)
            assert response.code == 400 and b"not an index of this server" in body, (
                response.code, body[:500])
            return
        assert response.code == 200, (response.code, body[:500])
        text = re.search(rb"pypid-[0-9a-f]+-[A-Za-z0-9_-]+", body)
        assert text is not None, body[:500]
        self.held.append(attrs.evolve(held, value=text.group(0).decode(), kept=kept))
        # the person's own tokens, and theirs only, are on their page (an
        # admin's: everyone's)
        _, page = self.request("GET", "/console/tokens", {"Cookie": held.value})
        shown = set(re.findall(rb'/console/tokens/([0-9a-f]+)/revoke', page))
        admin = "ops" in self.principals(held.owner, held.groups)
        theirs = {token_id(h.value).encode() for h in self.held
                  if is_token(h) and (admin or h.person == held.person)
                  and not (h.source == "minted" and h.value in self.ended)}
        assert shown == theirs, (held, shown, theirs)

    # -- the reference --------------------------------------------------------------

    def stands(self, held):
        """
        Whether a session or token still stands for its person, by the
        configuration alone (a session or a token that ended, when it stood
        for nobody at a change, never stands again).
        """
        force = self.in_force
        token = is_token(held)
        if held.value in self.ended:
            return False
        if held.source == "minted":
            return True
        if held.source == "password":
            if not force.local(held.owner):
                return False
            return token or force.versions[held.owner] == held.version
        if force.local(held.owner):
            return False
        if held.source == "ldap":
            return force.ldap
        return (force.sso and force.issuer == held.issuer
                and force.allows(held.owner, held.groups))

    def principals(self, name, outside=frozenset()):
        return self.in_force.groups_of(name, outside)

    def sees_vault(self, groups):
        """Whether one of C{groups} sees C{vault-lib} ([acl] keeps it to ops; admins see all)."""
        return not self.in_force.acl or "ops" in groups

    @invariant()
    def rights_follow_the_configuration(self):
        if not hasattr(self, "service"):
            return
        force = self.in_force
        # (past the login throttle's window: the names the configuration did
        # not know were tried, and counted, at the steps before; sessions
        # are used below, so their idle time starts again)
        self.reactor.advance(THROTTLE_WINDOW + 1)
        # passwords: every name, with the password it has now
        for name in LOCAL_USERS + tuple(DIRECTORY_PEOPLE):
            response, _ = self.request("GET", "/secret/simple/", self.basic(name))
            if force.local(name):
                groups = self.principals(name)
            elif force.ldap and name in DIRECTORY_PEOPLE:
                groups = self.principals(name, DIRECTORY_PEOPLE[name])
            else:
                # (a name the configuration does not know: refused, or held
                # back by the login throttle, which counts such tries)
                assert response.code in (401, 429), (name, response.code)
                continue
            reads = bool(groups & {"readers", "ops"})
            assert response.code == (200 if reads else 404), (name, groups, response.code)
            response, _ = self.request("GET", "/simple/vault-lib/", self.basic(name))
            assert response.code == (200 if self.sees_vault(groups) else 404), (
                name, groups, response.code)
        response, _ = self.request("GET", "/simple/vault-lib/")
        assert response.code == (200 if self.sees_vault(set()) else 404), response.code
        for held in self.held:
            stands = self.stands(held)
            if held.value.startswith("pypid-session="):
                response, _ = self.request("GET", "/console/groups", {"Cookie": held.value})
                if not stands:
                    self.ended.add(held.value)
                    assert response.code != 200 and response.code != 403, (held, response.code)
                    continue
                admin = "ops" in self.principals(held.owner, held.groups)
                assert response.code == (200 if admin else 403), (held, response.code)
            else:
                response, _ = self.request(
                    "GET", "/secret/simple/", {"Authorization": basic("__token__",
                                                                      held.value).decode()})
                if not stands:
                    assert response.code == 401, (held, response.code)
                    continue
                if held.source == "minted":
                    # (it enters every index, and reads what anyone reads:
                    # the secret index's list, empty; vault-lib where anyone
                    # sees it)
                    assert response.code == 200, (held, response.code)
                    response, _ = self.request(
                        "GET", "/simple/vault-lib/",
                        {"Authorization": basic("__token__", held.value).decode()})
                    assert response.code == (200 if self.sees_vault(set()) else 404), (
                        held, response.code)
                    continue
                # (a token kept to another index enters no index hidden
                # from anyone, and reads there only what anyone reads)
                groups = self.principals(held.owner, held.groups)
                reads = bool(groups & {"readers", "ops"}) and held.kept in ("", "secret")
                assert response.code == (200 if reads else 404), (held, groups, response.code)
                response, _ = self.request(
                    "GET", "/simple/vault-lib/", {"Authorization": basic("__token__",
                                                                         held.value).decode()})
                sees = self.sees_vault(set()) or (self.sees_vault(groups)
                                                  and held.kept in ("", "default"))
                assert response.code == (200 if sees else 404), (held, groups, response.code)


class AccessModelTests(SynchronousTestCase):
    """The configuration-change machine, in the profile the environment names (L{PROFILE})."""

    def test_tokens_of_people_gone(self):
        """
        Tokens made before each change, by C{SIGHUP} and by a restart: a
        name removed and added again, the provider switched (and back),
        C{allow} narrowed then widened. Each token ends for good with its
        person, and a namesake sees none of the old person's tokens.
        """
        for restart in (False, True):
            machine = AccessMachine()
            machine.start()
            try:
                machine.log_in(name="amy")
                machine.issue(machine.held[-1])
                for _ in range(2):
                    machine.add_or_remove_user(name="amy")
                    machine.apply(restart=restart)
                    machine.rights_follow_the_configuration()
                machine.log_in(name="amy")
                machine.issue(machine.held[-1])
                machine.single_sign_on(allow="", on=True)
                machine.apply(restart=restart)
                machine.sign_in(name="gina")
                machine.issue(machine.held[-1])
                for issuer in reversed(ISSUERS):
                    machine.switch_provider(issuer=issuer)
                    machine.apply(restart=restart)
                    machine.rights_follow_the_configuration()
                    machine.sign_in(name="gina")
                    machine.issue(machine.held[-1])
                for allow in ("hank", ""):
                    machine.single_sign_on(allow=allow, on=True)
                    machine.apply(restart=restart)
                    machine.rights_follow_the_configuration()
                ended = [held for held in machine.held
                         if is_token(held) and held.value in machine.ended]
                self.assertEqual(len(ended), 4, (restart, ended))
            finally:
                machine.teardown()

    def test_configuration_and_identities(self):
        case = AccessMachine.TestCase
        case.settings = settings.get_profile(PROFILE)
        case(methodName="runTest").runTest()
