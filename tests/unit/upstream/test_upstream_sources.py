"""
Tests of L{pypid.upstream.source}: an upstream as every index that reads it
shares it (several upstreams side by side, each with its own pages and
files), the credentials of L{pypid.upstream.fetch}'s client (sent to the
origin of the upstream's C{url} alone, never shown), the factory of named
upstreams, and L{SourceSide}, a source as L{pypid.core.indexes.composition.compose} reads it.
"""

import base64
import json

import attrs
from treq.testing import RequestSequence, RequestTraversalAgent, StringStubbingResource
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.config.upstream_settings import UpstreamCredentials
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.render import HTML, JSON
from pypid.upstream.factory import UpstreamPart, cache_settings
from pypid.upstream.fetch import ACCEPT, UpstreamClient, UpstreamError
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import SourceSide
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness.memory_storage import MemoryStorage
from tests.harness.upstream import (
    BYTES_A,
    BYTES_B,
    FILES,
    INDEX_A,
    INDEX_B,
    ORIGIN_A,
    ORIGIN_B,
    WHEEL,
    Origins,
    drain,
    make_source,
    page,
    sha,
)
from tests.harness.upstream_server import UpstreamIndex, start_in_reactor

SECRET = "s3cret-Pa55-7f1c"
BASIC = b"Basic " + base64.b64encode(f"alice:{SECRET}".encode())
ALICE = UpstreamCredentials("alice", SECRET)


def hosted_record():
    """A hosted file of C{widget}, another version than the upstreams'."""
    return FileRecord(filename="widget-0.1-py3-none-any.whl", project="widget", name="widget",
                      version="0.1", packagetype="bdist_wheel", path=None, size=3,
                      sha256="1" * 64, upload_time=1.0)


class CredentialTests(SynchronousTestCase):
    """The client's C{Authorization}: to the origin of its C{url} only."""

    def setUp(self):
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.clock = Clock()

    def client(self, credentials=ALICE):
        return UpstreamClient(self.agent, self.clock, INDEX_A, (ORIGIN_A, FILES), timeout=5,
                              credentials=credentials)

    def fetch_page(self, client, project="widget"):
        return self.successResultOf(drain(self.agent, ensureDeferred(client.page(project))))

    def test_basic_to_origin(self):
        """A user name and password go, as Basic, with a request for a page of C{url}."""
        self.origins.route(INDEX_A + "widget/", page("widget", []))
        self.fetch_page(self.client())
        self.assertEqual(self.origins.authorizations(), {(ORIGIN_A, "/simple/widget/"): BASIC})

    def test_bearer(self):
        """A token alone goes as a bearer token."""
        self.origins.route(INDEX_A + "widget/", page("widget", []))
        self.fetch_page(self.client(UpstreamCredentials(None, SECRET)))
        self.assertEqual(self.origins.seen[0][2], b"Bearer " + SECRET.encode())

    def test_none(self):
        """Without credentials, no C{Authorization} at all."""
        self.origins.route(INDEX_A + "widget/", page("widget", []))
        self.fetch_page(self.client(None))
        self.assertEqual(self.origins.seen[0][2], None)

    def test_not_to_file_host(self):
        """A file on another of C{hosts} is fetched without them; one on the origin with them."""
        self.origins.route(f"http://{FILES}/f/{WHEEL}", BYTES_A)
        self.origins.route(f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)
        client = self.client()
        for url in (f"http://{FILES}/f/{WHEEL}", f"http://{ORIGIN_A}/f/{WHEEL}"):
            self.successResultOf(drain(self.agent, ensureDeferred(client.open(url))))
        self.assertEqual(self.origins.authorizations(),
                         {(FILES, f"/f/{WHEEL}"): None, (ORIGIN_A, f"/f/{WHEEL}"): BASIC})

    def test_other_port_is_another_origin(self):
        """The same host on another port is another origin: nothing sent."""
        other = "127.0.0.1:9004"
        self.origins.route(f"http://{other}/f/{WHEEL}", BYTES_A)
        client = UpstreamClient(self.agent, self.clock, INDEX_A, (ORIGIN_A, other),
                                credentials=UpstreamCredentials("alice", SECRET))
        self.successResultOf(drain(self.agent, ensureDeferred(
            client.open(f"http://{other}/f/{WHEEL}"))))
        self.assertEqual(self.origins.seen[0][2], None)

    def test_not_after_redirect_to_another_origin(self):
        """
        A redirect within the origin keeps them; one to another origin (an
        allowed host) drops them, and so does the rest of the chain there.
        """
        self.origins.route(INDEX_A + "Widget/", b"", 301,
                           {"location": INDEX_A + "widget/"})
        self.origins.route(INDEX_A + "widget/", b"", 302,
                           {"location": f"http://{FILES}/mirror/widget/"})
        self.origins.route(f"http://{FILES}/mirror/widget/", page("widget", []))
        self.fetch_page(self.client(), "Widget")
        self.assertEqual(self.origins.seen, [
            (ORIGIN_A, "/simple/Widget/", BASIC),
            (ORIGIN_A, "/simple/widget/", BASIC),
            (FILES, "/mirror/widget/", None),
        ])

    def test_scripted_exchange(self):
        """
        The whole exchange, header by header (treq's L{RequestSequence}):
        the page with C{Authorization}, the redirect's target on the files
        host without it.
        """
        asked = {b"Accept": [ACCEPT.encode()], b"Accept-Encoding": [b"gzip"],
                 b"Connection": [b"close"]}
        sequence = RequestSequence([
            ((b"get", INDEX_A + "widget/", {},
              {**asked, b"Host": [ORIGIN_A.encode()], b"Authorization": [BASIC]}, b""),
             (302, {b"location": f"http://{FILES}/mirror/widget/"}, b"")),
            ((b"get", f"http://{FILES}/mirror/widget/", {},
              {**asked, b"Host": [FILES.encode()]}, b""),
             (200, {b"content-type": b"application/vnd.pypi.simple.v1+json"},
              page("widget", []))),
        ])
        agent = RequestTraversalAgent(StringStubbingResource(sequence))
        client = UpstreamClient(agent, self.clock, INDEX_A, (ORIGIN_A, FILES),
                                credentials=ALICE)
        with sequence.consume(self.fail):
            found = self.successResultOf(drain(agent, ensureDeferred(client.page("widget"))))
        self.assertEqual(found.project, "widget")

    def test_secret_never_shown(self):
        """
        The secret is in no log line, no error and no C{repr}: a refusal
        (401), an unusable page, a page with refused entries.
        """
        self.origins.route(INDEX_A + "refused/", b"go away", 401)
        self.origins.route(INDEX_A + "broken/", b"{not json")
        self.origins.route(INDEX_A + "odd/", page("odd", [("odd-1.0.exe", "/x", b"x")]))
        client = self.client()
        errors = []
        with capturedLogs() as events:
            for project in ("refused", "broken"):
                d = drain(self.agent, ensureDeferred(client.page(project)))
                errors.append(self.failureResultOf(d, UpstreamError).getErrorMessage())
            self.fetch_page(client, "odd")
        shown = "\n".join([*errors, *(formatEvent(e) for e in events), repr(client),
                           repr(vars(client)), repr(UpstreamCredentials("alice", SECRET))])
        self.assertIn("401", shown)
        self.assertIn("odd-1.0.exe", shown)
        for secret in (SECRET, BASIC.decode(), base64.b64encode(SECRET.encode()).decode()):
            self.assertNotIn(secret, shown.replace(repr(vars(client)), ""))
        self.assertNotIn(SECRET, repr(client))


class TwoUpstreamsTests(SynchronousTestCase):
    """Two upstreams with the same project: each serves its own page and files."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(INDEX_A + "widget/", page(
            "widget", [(WHEEL, f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)]))
        self.origins.route(INDEX_B + "widget/", page(
            "widget", [(WHEEL, f"http://{ORIGIN_B}/f/{WHEEL}", BYTES_B)]))
        self.origins.route(f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)
        self.origins.route(f"http://{ORIGIN_B}/f/{WHEEL}", BYTES_B)
        self.storage = {}
        self.sources = {}
        for name, url in (("a", INDEX_A), ("b", INDEX_B)):
            storage = self.storage[name] = MemoryStorage(self.mktemp(), self.clock)
            self.successResultOf(storage.prepare())
            self.sources[name] = make_source(self.agent, self.clock, url, storage, name, True)
        self.index = Index(file_url_for(None))
        self.proxies = {name: UpstreamProxy.create(source, self.index, self.index.file_url)
                        for name, source in self.sources.items()}

    def served(self, name):
        """C{(sha256 on the page, sha256 of the bytes kept)} of the file through C{name}."""
        proxy = self.proxies[name]
        entry, _ = self.successResultOf(drain(self.agent, ensureDeferred(self.sources[name].pages.get("widget"))))
        body = json.loads(proxy.pages.rendered("widget", entry, JSON).body)
        listed = proxy.pages.listed("widget", WHEEL)
        record = self.successResultOf(drain(self.agent, proxy.files.fetch(listed)))
        return (body["files"][0]["hashes"]["sha256"], record.sha256,
                self.storage[name].objects[record.path])

    def test_own_pages_and_files(self):
        """Each upstream's page lists its bytes, and its files are fetched from it alone."""
        self.assertEqual(self.served("a"), (sha(BYTES_A), sha(BYTES_A), BYTES_A))
        self.assertEqual(self.served("b"), (sha(BYTES_B), sha(BYTES_B), BYTES_B))
        self.assertEqual(sorted((host, path) for host, path, _ in self.origins.seen), [
            (ORIGIN_A, f"/f/{WHEEL}"), (ORIGIN_A, "/simple/widget/"),
            (ORIGIN_B, f"/f/{WHEEL}"), (ORIGIN_B, "/simple/widget/")])
        self.assertEqual([r.sha256 for r in self.sources["a"].kept], [sha(BYTES_A)])
        self.assertEqual([r.sha256 for r in self.sources["b"].kept], [sha(BYTES_B)])

    def test_own_state(self):
        """Each source's snapshot state holds its pages and files only."""
        self.served("a")
        self.assertEqual(self.sources["b"].state()["files"], [])
        self.assertFalse(self.sources["b"].state_changed())
        self.assertTrue(self.sources["a"].state_changed())
        state = self.sources["a"].state()
        self.assertEqual([f["sha256"] for f in state["files"]], [sha(BYTES_A)])
        self.assertFalse(self.sources["a"].state_changed())

    def test_shared_by_two_indexes(self):
        """
        Two indexes reading one upstream share its cache (one fetch), each
        with its own rules: a name hosted in one is not asked there.
        """
        hosting = Index(file_url_for(None))
        hosting.add(hosted_record())
        source = self.sources["a"]
        other = UpstreamProxy.create(source, hosting, hosting.file_url)
        self.assertTrue(self.proxies["a"].decide("widget").allowed)
        self.assertFalse(other.decide("widget").allowed)
        self.served("a")
        self.assertIn("widget", other.source.pages.entries)
        self.assertEqual(len([s for s in self.origins.seen if s[1] == "/simple/widget/"]), 1)

    def test_labelled_families(self):
        """A labelled source's families carry C{upstream} first; names stay those of today."""
        families = list(self.sources["a"].metric_families())
        self.assertEqual([f.name for f in families], [
            "pypid_upstream_pages", "pypid_upstream_files", "pypid_upstream_cached_pages",
            "pypid_upstream_cached_files", "pypid_upstream_fetches",
            "pypid_upstream_fetch_errors", "pypid_upstream_fetch_duration_seconds",
            "pypid_upstream_cached_bytes", "pypid_upstream_evicted_files_total",
            "pypid_upstream_takedowns_total", "pypid_upstream_withheld_files"])
        self.assertEqual(families[0].labels, ("upstream", "result"))
        self.assertTrue(all(values[0] == "a" for f in families for values, _ in f.samples))


class DefaultSourceTests(SynchronousTestCase):
    """The default source: families as they always were; credentials never on pages."""

    def test_default_families_unlabelled(self):
        """Unlabelled, the families are those the proxy gave before the split, then issue 29's."""
        clock = Clock()
        source = make_source(None, clock, INDEX_A, None)
        families = list(source.metric_families())
        self.assertEqual([(f.name, f.labels) for f in families], [
            ("pypid_upstream_pages", ("result",)), ("pypid_upstream_files", ("result",)),
            ("pypid_upstream_cached_pages", ()), ("pypid_upstream_cached_files", ()),
            ("pypid_upstream_fetches", ("kind",)), ("pypid_upstream_fetch_errors", ("kind",)),
            ("pypid_upstream_fetch_duration_seconds", ("kind",)),
            # (issue 29: added after them)
            ("pypid_upstream_cached_bytes", ()), ("pypid_upstream_evicted_files_total", ()),
            # (issue 46)
            ("pypid_upstream_takedowns_total", ()), ("pypid_upstream_withheld_files", ())])

    def test_secret_not_on_pages(self):
        """The pages for clients and people and the families hold no trace of the secret."""
        clock = Clock()
        clock.advance(1767225600)
        origins = Origins()
        agent = RequestTraversalAgent(origins)
        origins.route(INDEX_A + "widget/", page(
            "widget", [(WHEEL, f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)]))
        storage = MemoryStorage(self.mktemp(), clock)
        self.successResultOf(storage.prepare())
        source = make_source(agent, clock, INDEX_A, storage,
                             credentials=UpstreamCredentials("alice", SECRET))
        index = Index(file_url_for(None))
        proxy = UpstreamProxy.create(source, index, index.file_url)
        verifier = PasswordVerifier({}, clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(clock))
        web = build_web(one_index(index, storage, clock, upstream=proxy), access, run_now, clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(upstream=proxy))
        treq = site_treq(web.site)
        bodies = []
        with capturedLogs() as events:
            for url in ("http://pypi.test/simple/widget/", "http://pypi.test/project/widget/"):
                d = treq.get(url)
                drain(agent, d)
                response = self.successResultOf(d)
                bodies.append(self.successResultOf(drain(agent, response.content())))
        self.assertEqual(origins.seen[0][2], BASIC)
        self.assertIn(WHEEL.encode(), bodies[0])
        shown = b"\n".join(bodies).decode("utf-8", "replace") + "\n".join(
            formatEvent(e) for e in events) + repr(list(source.metric_families()))
        for secret in (SECRET, BASIC.decode()):
            self.assertNotIn(secret, shown)


class SourceSideTests(SynchronousTestCase):
    """L{SourceSide}: a source as L{compose} reads it, without I/O."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(INDEX_A + "widget/", page(
            "widget", [(WHEEL, f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A)]))
        self.source = make_source(self.agent, self.clock, INDEX_A, None, "a")
        self.url = file_url_for(None)
        self.side = SourceSide.of(self.source, self.url)
        self.release = Index(self.url)
        self.order = (ChainSource("release", hosted=self.release),
                      ChainSource("upstream:a", upstream=self.side))

    def compose(self):
        return compose(self.order, "widget", Filters(), self.clock.seconds(), self.url)

    def cache(self):
        self.successResultOf(drain(self.agent, self.source.pages.get("widget")))

    def test_nothing_cached(self):
        """Before the page is cached, the upstream gives nothing (and asks nothing)."""
        self.assertIsNone(self.side.cached("widget"))
        self.assertEqual(self.compose().files, ())
        self.assertEqual(self.origins.seen, [])

    def test_cached_files(self):
        """The cached page's files are listed, from the upstream, with the same token twice."""
        self.cache()
        composition = self.compose()
        self.assertEqual([(f.filename, s.name) for f, s in composition.files],
                         [(WHEEL, "upstream:a")])
        self.assertEqual(composition.files[0][0].sha256, sha(BYTES_A))
        first = self.side.cached("widget")[0]
        self.assertIs(self.side.cached("widget")[0], first)
        self.assertEqual(composition.delegate.name, "upstream:a")
        self.assertIn(WHEEL.encode(), self.side.page("widget", HTML).body)

    def test_page_order(self):
        """
        A page listing its files out of order is composed and served in
        version order, then by filename; its JSON page announces the
        versions in that order (read off the ordered files, not sorted again).
        """
        listed = ["widget-2.0-py3-none-any.whl", "widget-1.10.tar.gz",
                  "widget-1.9-py3-none-any.whl", "widget-1.10-py3-none-any.whl",
                  "widget-1.0.0-py3-none-any.whl", "widget-1.0.tar.gz"]
        self.origins.route(INDEX_A + "widget/", page(
            "widget", [(name, f"http://{ORIGIN_A}/f/{name}", BYTES_A) for name in listed]))
        self.cache()
        ordered = ["widget-1.0.tar.gz", "widget-1.0.0-py3-none-any.whl",
                   "widget-1.9-py3-none-any.whl", "widget-1.10-py3-none-any.whl",
                   "widget-1.10.tar.gz", "widget-2.0-py3-none-any.whl"]
        self.assertEqual([f.filename for f, _ in self.compose().files], ordered)
        served = json.loads(self.side.page("widget", JSON).body)
        self.assertEqual([f["filename"] for f in served["files"]], ordered)
        self.assertEqual(served["versions"], ["1.0", "1.0.0", "1.9", "1.10", "2.0"])

    def test_hosted_in_chain_blocks(self):
        """A project hosted in an earlier source gets no upstream file (no merge)."""
        self.cache()
        self.release.add(hosted_record())
        self.assertEqual([s.name for _, s in self.compose().files], ["release"])
        self.assertFalse(self.side.decide("widget", True).allowed)
        self.assertTrue(self.side.decide("widget", False).allowed)


class FactoryTests(SynchronousTestCase):
    """L{UpstreamPart} for C{[upstream]} and each C{[upstream:NAME]}."""

    def config(self, named=True):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f"[storage]\npath = {self.mktemp()}\n"
                    f"[upstream]\nmode = cache\nurl = {INDEX_A}\n")
            if named:
                f.write(f"[upstream:vendor]\nmode = cache\nurl = {INDEX_B}\n"
                        "username = alice\npassword_env = VENDOR_PASSWORD\n")
        return load_config(path, environ={"VENDOR_PASSWORD": SECRET})

    def test_cache_roots(self):
        """C{[upstream]} keeps its cache in C{.upstream}, a named one in C{.indexes/.upstreams/NAME}."""
        config = self.config()
        root = config.storage.path
        self.assertEqual(cache_settings(config, None).storage.path, f"{root}/.upstream")
        self.assertEqual(cache_settings(config, "vendor").storage.path,
                         f"{root}/.indexes/.upstreams/vendor")
        self.assertEqual(cache_settings(config, "vendor").stores["s3"].prefix,
                         config.stores["s3"].prefix + ".indexes/.upstreams/vendor/")
        self.assertFalse(cache_settings(config, "vendor").stores["s3"].bucket_snapshot)
        # (on every cloud: a cache on the packages' own prefix would hold
        # them, and evict them)
        for backend in ("s3", "azure", "gcs"):
            on = attrs.evolve(config, storage=attrs.evolve(config.storage, backend=backend))
            for name, where in ((None, ".upstream/"), ("vendor", ".indexes/.upstreams/vendor/")):
                cached = cache_settings(on, name).bucket
                self.assertEqual(cached.prefix, on.bucket.prefix + where)
                self.assertFalse(cached.bucket_snapshot)

    def test_named_part(self):
        """A named part: its own source, labelled families, no default proxy, no secret shown."""
        config = self.config()
        part = UpstreamPart.named(config, "vendor", run_now, MemoryReactorClock())
        self.assertEqual(part.source.name, "vendor")
        self.assertEqual(part.source.client.index_url, INDEX_B)
        self.assertRaises(LookupError, lambda: part.proxy)
        families = list(part.metric_families())
        self.assertEqual(families[0].labels, ("upstream", "result"))
        storage = [f for f in families if f.name == "pypid_storage_operations"]
        self.assertEqual(storage[0].labels, ("store", "operation"))
        self.assertNotIn(SECRET, repr(families) + repr(config) + repr(part.source))

    def test_default_labelled_beside_named(self):
        """Beside named upstreams the default's families say C{upstream="default"}; alone, no label."""
        index = Index(file_url_for(None))
        with_named = UpstreamPart.from_config(self.config(), run_now, MemoryReactorClock(),
                                              index, index.file_url)
        alone = UpstreamPart.from_config(self.config(named=False), run_now,
                                         MemoryReactorClock(), index, index.file_url)
        self.assertEqual(next(with_named.metric_families()).labels, ("upstream", "result"))
        self.assertEqual(next(alone.metric_families()).labels, ("result",))
        self.assertIs(alone.proxy.source, alone.source)


class CredentialServerTests(TestCase):
    """Against the test upstream on loopback: one that wants credentials, one that does not."""

    async def test_with_and_without(self):
        """The client with credentials is served by both; without, refused by the first."""
        from twisted.internet import reactor

        wheel = make_wheel("widget", "1.0")
        index = UpstreamIndex()
        index.add(*wheel)
        guarded = await start_in_reactor(index, reactor, authorization=BASIC)
        self.addCleanup(guarded.stop)
        open_ = await start_in_reactor(index, reactor)
        self.addCleanup(open_.stop)
        credentials = UpstreamCredentials("alice", SECRET)
        from twisted.web.client import Agent
        agent = Agent(reactor)
        for server, given, ok in ((guarded, credentials, True), (guarded, None, False),
                                  (open_, credentials, True), (open_, None, True)):
            host = server.base.split("/")[2]
            client = UpstreamClient(agent, reactor, server.base + "simple/", (host,),
                                    credentials=given)
            if ok:
                found = await client.page("widget")
                self.assertEqual([f.filename for f in found.files], [wheel[0]])
            else:
                with self.assertRaises(UpstreamError) as caught:
                    await client.page("widget")
                self.assertIn("401", str(caught.exception))
        self.assertEqual([given for path, given in guarded.resource.authorizations],
                         [BASIC, None])
        self.assertEqual([given for path, given in open_.resource.authorizations],
                         [BASIC, None])
