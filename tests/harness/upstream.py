"""
Upstream indexes in memory, for the tests of pypid's upstream support (they
were L{tests.unit.upstream.test_upstream_sources}' and L{tests.unit.upstream.test_index_upstreams}'):
L{Origins}, several origins in one resource told apart by C{Host}, with
their pages (L{page}) and files (C{BYTES_A}, C{BYTES_B}); L{make_source},
an L{pypid.upstream.source.UpstreamSource} reading one of them; and
L{Server}, the named indexes of issue 26 whose bases are upstreams:
C{staging} (hosted) based on C{release} (hosted) and two upstreams,
C{upstream:public} and C{upstream:vendor}, that both have a project
C{widget} (their own bytes); C{cool}, a view of C{upstream:public} with a
cooldown (of 800 days: the test pages' files date from 2024).
"""

import hashlib
import json
import os

import attrs
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.state.hosted_source import HostedSource
from pypid.storage.base.locks import KeyedLock
from pypid.upstream.cache import PageCache
from pypid.upstream.confusion import UpstreamPolicy
from pypid.upstream.fetch import UpstreamClient
from pypid.upstream.source import SourceSide, UpstreamSource
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.serving.index_root import IndexMaterials
from pypid.web.web_inputs import SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness.memory_storage import MemoryStorage

#: Two upstreams, and a host their files may come from: three origins.
ORIGIN_A = "127.0.0.1:9001"
ORIGIN_B = "127.0.0.1:9002"
FILES = "127.0.0.1:9003"
INDEX_A = f"http://{ORIGIN_A}/simple/"
INDEX_B = f"http://{ORIGIN_B}/simple/"


WHEEL = "widget-1.0-py3-none-any.whl"
BYTES_A = make_wheel("widget", "1.0", module_text="FROM = 'a'\n")[1]
BYTES_B = make_wheel("widget", "1.0", module_text="FROM = 'b'\n")[1]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def page(project, files):
    """A PEP 691 page of C{files}: C{(filename, url, bytes)}."""
    return json.dumps({
        "meta": {"api-version": "1.1"}, "name": project,
        "files": [{"filename": name, "url": url, "hashes": {"sha256": sha(data)},
                   "size": len(data), "upload-time": "2024-01-02T03:04:05Z"}
                  for name, url, data in files],
    }).encode()


class Origins(Resource):
    """
    Several origins in one resource, told apart by C{Host}: answers from
    C{routes[(host, path)]}, every request recorded with its C{Authorization}.
    """

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.routes = {}
        self.seen = []

    def route(self, url, body, status=200, headers=None):
        host, _, path = url.removeprefix("http://").partition("/")
        self.routes[(host, "/" + path)] = (status, headers or {}, body)

    def render_GET(self, request):
        host = request.getHeader(b"host").decode()
        path = request.uri.decode()
        self.seen.append((host, path, request.getHeader(b"authorization")))
        status, headers, body = self.routes.get((host, path), (404, {}, b"not here"))
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/vnd.pypi.simple.v1+json")
        for name, value in headers.items():
            request.setHeader(name, value)
        return body

    def authorizations(self):
        """C{{(host, path): Authorization}} of the requests made."""
        return {(host, path): given for host, path, given in self.seen}


def drain(agent, d):
    for _ in range(20):
        agent.flush()
    return d


def make_source(agent, clock, index_url, storage, name="default", labelled=False,
                credentials=None, policy=None, keep_removed=False, share=None):
    """
    A source of the upstream at C{index_url}, files kept in C{storage}
    (C{share}: a worker's, its cache shared with the machine's others).
    """
    config = attrs.evolve(load_config(None).upstream, mode="cache", url=index_url,
                          keep_removed=keep_removed)
    host = index_url.split("/")[2]
    client = UpstreamClient(agent, clock, index_url, (host, FILES), timeout=5,
                            credentials=credentials)
    pages = PageCache(lambda project, previous: ensureDeferred(client.page(project, previous)),
                      clock, 600.0, share=share)
    return UpstreamSource.create(config, policy or UpstreamPolicy("cache"), pages, client,
                                 storage, run_now, clock, name=name, labelled=labelled,
                                 share=share)


START = 1767225600.0
VENDORED, VENDORED_BYTES = make_wheel("vendored", "1.0")
DAY = 86400.0


class Server:
    """The named indexes of the module's docstring, and the default, in memory."""

    def __init__(self, case, keep_removed=False):
        self.case = case
        self.clock = Clock()
        self.clock.advance(START)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        for url, origin, data in ((INDEX_A, ORIGIN_A, BYTES_A), (INDEX_B, ORIGIN_B, BYTES_B)):
            self.origins.route(url + "widget/", page(
                "widget", [(WHEEL, f"http://{origin}/f/{WHEEL}", data)]))
            self.origins.route(f"http://{origin}/f/{WHEEL}", data)
        self.origins.route(INDEX_B + "vendored/", page(
            "vendored", [(VENDORED, f"http://{ORIGIN_B}/f/{VENDORED}", VENDORED_BYTES)]))
        self.origins.route(f"http://{ORIGIN_B}/f/{VENDORED}", VENDORED_BYTES)
        folder = os.path.abspath(case.mktemp())
        self.stacks = {}
        for name in ("default", "release", "staging"):
            storage = MemoryStorage(os.path.join(folder, name), self.clock)
            case.successResultOf(storage.prepare())
            self.stacks[name] = HostedSource(name, Index(file_url_for(None)), storage,
                                             KeyedLock(self.clock))
        self.kept = {}
        self.sources = {}
        sides = {}
        for name, url in (("public", INDEX_A), ("vendor", INDEX_B)):
            storage = self.kept[name] = MemoryStorage(os.path.join(folder, name), self.clock)
            case.successResultOf(storage.prepare())
            self.sources[name] = make_source(self.agent, self.clock, url, storage, name, True,
                                             policy=UpstreamPolicy("cache", ("private-*",)),
                                             keep_removed=keep_removed)
            sides["upstream:" + name] = SourceSide.of(self.sources[name], file_url_for(None))
        s = self.stacks
        staging = (ChainSource("staging", hosted=s["staging"].index),
                   ChainSource("release", hosted=s["release"].index),
                   ChainSource("upstream:public", upstream=sides["upstream:public"]),
                   ChainSource("upstream:vendor", upstream=sides["upstream:vendor"]))
        cool = (ChainSource("upstream:public", upstream=sides["upstream:public"]),)
        parts = [
            IndexMaterials("staging", ComposedIndex("staging", staging, Filters(), file_url_for(None)),
                       (s["staging"], s["release"]), hosted=True,
                       upstreams={n: sides[n] for n in ("upstream:public", "upstream:vendor")}),
            IndexMaterials("cool", ComposedIndex("cool", cool, Filters(min_age=800 * DAY),
                                         file_url_for(None)),
                       (), hosted=False, upstreams={"upstream:public": sides["upstream:public"]}),
        ]
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(self.clock))
        web = build_web([*one_index(s["default"].index, s["default"].storage, self.clock,
                                   locks=s["default"].locks), *(parts)],
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20))
        self.web = web
        self.client = site_treq(web.site)

    def request(self, path, headers=None):
        """C{(code, headers, body)} of a GET, the upstreams answering as it waits."""
        d = self.client.get("http://pypi.test" + path, headers=headers or {},
                            allow_redirects=False)
        response = self.case.successResultOf(drain(self.agent, d))
        body = self.case.successResultOf(drain(self.agent, response.content()))
        return response.code, response.headers, body

    def json_page(self, path):
        code, _, body = self.request(path, {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.case.assertEqual(code, 200, body)
        return json.loads(body)

    def asked(self):
        """The upstream requests made, as C{(origin, path)}."""
        return [(host, path) for host, path, _ in self.origins.seen]

    def host(self, index, name, version):
        """A file of C{name} hosted in C{index} (its record: pages only)."""
        filename = f"{name}-{version}-py3-none-any.whl"
        self.stacks[index].index.add(FileRecord(
            filename=filename, project=name, name=name, version=version,
            packagetype="bdist_wheel", path=None, size=3, sha256="1" * 64, upload_time=START))
        return filename
