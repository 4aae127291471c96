"""
The upstream cache against a hostile or broken upstream, in process: pypid's
site (through L{tests.harness.fakes.site_treq}) in front of an upstream played by a
Twisted resource (through treq's L{RequestTraversalAgent}), both on one
L{Clock}. Each test here failed before its fix (issue 16); the same
behaviours against the real daemon are in L{tests.e2e.test_upstream_hostile}.
"""

import hashlib
import json

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.upstream import cache, fetch
from pypid.upstream.cache import PageCache, RecentFailures
from pypid.upstream.confusion import UpstreamPolicy
from pypid.upstream.downloads import Admission
from pypid.upstream.fetch import FileHosts, UpstreamClient, UpstreamError
from pypid.upstream.page_model import UpstreamPage, UpstreamPageError
from pypid.upstream.parser import parse_page
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import MissBudget, UpstreamSource
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.respond import RETRY_AFTER
from pypid.web.serving.upstream_files import _sees_cut_short
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness.memory_storage import MemoryStorage

INDEX = "https://upstream.example/simple/"
FILES = "https://upstream.example/files/"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
WHEEL = make_wheel("holy-grail", "1.0")
OTHER = make_wheel("holy-grail", "1.0", module_text="CHANGED = True\n")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def entry(filename, data, **fields):
    """One PEP 691 file entry for C{data}."""
    value = {"filename": filename, "url": FILES + filename, "hashes": {"sha256": sha256(data)}}
    value.update(fields)
    return value


def json_page(name, files):
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name,
                       "files": files}).encode()


class Upstream(Resource):
    """
    The upstream: answers from C{routes} (path -> C{(status, headers, body)},
    or a callable given the request), sets a cookie on every answer, and
    records each request's path and headers.
    """

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.routes = {}
        self.requests = []

    def render_GET(self, request):
        path = request.uri.decode()
        self.requests.append((path, {k.lower(): v for k, v in
                                     request.requestHeaders.getAllRawHeaders()}))
        request.setHeader(b"set-cookie", b"session=" + b"x" * 500 + b"; Path=/")
        answer = self.routes.get(path, (404, {}, b"not here"))
        if callable(answer):
            return answer(request)
        status, headers, body = answer
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body

    def asked(self, path):
        return sum(1 for p, _ in self.requests if p == path)

    def page(self, name, files):
        self.routes[f"/simple/{name}/"] = (200, {b"content-type": JSON_TYPE.encode()},
                                           json_page(name, files))

    def file(self, filename, data):
        self.routes[f"/files/{filename}"] = (200, {}, data)


class _Harness:
    """pypid in cache mode in front of L{Upstream}, on one clock."""

    #: [upstream] values other than the defaults, per test
    upstream_settings = {}

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.upstream = Upstream()
        self.agent = RequestTraversalAgent(self.upstream)
        self.make()

    def make(self, cache_storage=None, **settings):
        values = {"mode": "cache", "url": INDEX, "ttl": 60.0, **self.upstream_settings,
                  **settings}
        config = attrs.evolve(load_config(None).upstream, **values)
        client = self.upstream_client = UpstreamClient(
            self.agent, self.clock, INDEX, ("upstream.example",), timeout=config.timeout,
            deadline=config.fetch_deadline, max_entries=config.max_page_files)
        pages = PageCache(lambda project, previous: ensureDeferred(client.page(project, previous)), self.clock,
                          config.ttl, max_bytes=config.page_cache_size)
        self.index = Index(file_url_for(None))
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        self.pages = pages
        source = UpstreamSource.create(
            config, UpstreamPolicy("cache"), pages, client,
            cache_storage if cache_storage is not None else self.storage, run_now, self.clock)
        self.proxy = UpstreamProxy.create(source, self.index, self.index.file_url)
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, upstream=self.proxy),
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20),
                        SiteServices(upstream=self.proxy))
        self.client = site_treq(web.site)

    def settle(self):
        for _ in range(20):
            self.agent.flush()
            self.client.flush()

    def get(self, path, headers=None):
        """GET C{path} of pypid: C{(status, headers, body)}."""
        d = self.client.get("http://pypid.example" + path, headers=headers)
        self.settle()
        response = self.successResultOf(d)
        body = self.client.content(response)
        self.settle()
        return response.code, response.headers, self.successResultOf(body)

    def page_of(self, name):
        code, _, body = self.get(f"/simple/{name}/", {"Accept": JSON_TYPE})
        self.assertEqual(code, 200, body)
        return json.loads(body)


class PageBoundsTests(_Harness, SynchronousTestCase):
    """A page costs bounded work and memory, whatever it lists."""

    upstream_settings = {"max_page_files": 1000}

    def test_too_many_values(self):
        """
        A page of a million non-files is refused before it is decoded (502),
        and the failure is remembered: the next request does not ask again.
        """
        body = b'{"meta": {"api-version": "1.1"}, "name": "holy-grail", "files": [' \
            + b",".join([b"1"] * 1_000_000) + b"]}"
        self.upstream.routes["/simple/holy-grail/"] = (
            200, {b"content-type": JSON_TYPE.encode()}, body)
        code, _, text = self.get("/simple/holy-grail/")
        self.assertEqual(code, 502)
        self.assertIn(b"more than 1000 entries", text)
        self.assertEqual(self.get("/simple/holy-grail/")[0], 502)
        self.assertEqual(self.upstream.asked("/simple/holy-grail/"), 1)

    def test_refused_entries_counted(self):
        """
        Refused entries under the cap are counted, and only a few kept as
        examples (each of ten million refusals was kept, with its page).
        """
        files = [{"filename": f"junk-{i}"} for i in range(900)]
        files.append(entry(WHEEL[0], WHEEL[1]))
        self.upstream.page("holy-grail", files)
        page = self.page_of("holy-grail")
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL[0]])
        kept = self.pages.entries["holy-grail"].page
        self.assertEqual(kept.refused, 900)
        self.assertEqual(len(kept.skipped), 20)

    def test_gzipped_page(self):
        """A page sent gzipped is inflated (within max_page_size) and read."""
        import gzip
        self.upstream.routes["/simple/holy-grail/"] = (
            200, {b"content-type": JSON_TYPE.encode(), b"content-encoding": b"gzip"},
            gzip.compress(json_page("holy-grail", [entry(*WHEEL)])))
        page = self.page_of("holy-grail")
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL[0]])

    def test_unasked_encoding(self):
        """A page in an encoding pypid did not ask for is refused (502), not misread."""
        self.upstream.routes["/simple/holy-grail/"] = (
            200, {b"content-type": JSON_TYPE.encode(), b"content-encoding": b"br"}, b"\x00")
        code, _, body = self.get("/simple/holy-grail/")
        self.assertEqual(code, 502)
        self.assertIn(b"an encoding pypid did not ask for ('br')", body)

    def test_html_anchors(self):
        """An HTML page stops at the anchor past the cap."""
        body = b"<html><body>" + b'<a href="x.whl">x</a>' * 1001 + b"</body></html>"
        self.upstream.routes["/simple/holy-grail/"] = (
            200, {b"content-type": b"text/html"}, body)
        code, _, text = self.get("/simple/holy-grail/")
        self.assertEqual(code, 502)
        self.assertIn(b"more than 1000 entries", text)


class PageCacheBoundsTests(SynchronousTestCase):
    """Pages are kept within count and bytes; misses never evict pages."""

    def setUp(self):
        self.clock = Clock()
        self.missing = set()

        def fetch(project, previous=None):
            from twisted.internet.defer import fail, succeed

            from pypid.upstream.fetch import UpstreamNotFound
            if project in self.missing:
                return fail(UpstreamNotFound(project))
            return succeed(UpstreamPage(project=project, name=project))
        self.fetch = fetch

    def get(self, pages, project):
        return self.successResultOf(ensureDeferred(pages.get(project)))[0]

    def test_misses_do_not_evict(self):
        """20,001 names that exist nowhere leave every cached page in place."""
        self.patch(cache, "MAX_ENTRIES", 50)
        pages = PageCache(self.fetch, self.clock, 600.0)
        for i in range(50):
            self.get(pages, f"real-{i}")
        self.missing.update(f"nothing-{i}" for i in range(20001))
        for name in self.missing:
            self.assertIsNone(self.get(pages, name).page)
        self.assertEqual(sorted(pages.entries), sorted(f"real-{i}" for i in range(50)))
        self.assertLessEqual(len(pages._missing), cache.MAX_MISSING)

    def test_pinned_last(self):
        """Pages of projects with kept files go only after every other."""
        self.patch(cache, "MAX_ENTRIES", 10)
        pages = PageCache(self.fetch, self.clock, 600.0)
        for i in range(10):
            self.get(pages, f"p-{i}")
        pages.pin("p-0")
        pages.pin("p-1")
        for i in range(10, 40):
            self.get(pages, f"p-{i}")
        self.assertIn("p-0", pages.entries)
        self.assertIn("p-1", pages.entries)
        self.assertEqual(len(pages.entries), 10)

    def test_pinned_over_budget(self):
        """
        With pinned pages over the budget, a page just fetched is still
        kept (its files are listed), and pinned pages go oldest first.
        """
        budget = 5 * (cache.PAGE_COST + len("p-99"))
        pages = PageCache(self.fetch, self.clock, 600.0, max_bytes=budget)
        for i in range(5):
            pages.pin(f"p-{i}")
            self.get(pages, f"p-{i}")
        self.get(pages, "p-50")
        self.assertIn("p-50", pages.entries)
        self.assertNotIn("p-0", pages.entries)
        self.assertEqual(sorted(pages.entries), ["p-1", "p-2", "p-3", "p-4", "p-50"])

    def test_bytes(self):
        """The pages' estimated memory stays within C{max_bytes}."""
        budget = 10 * (cache.PAGE_COST + len("p-99"))
        pages = PageCache(self.fetch, self.clock, 600.0, max_bytes=budget)
        for i in range(100):
            self.get(pages, f"p-{i}")
        self.assertEqual(len(pages.entries), 10)
        self.assertLessEqual(sum(cache.page_cost(e.page) for e in pages.entries.values()), budget)

    def test_failures_hold_no_frames(self):
        """
        A remembered failure keeps nothing of the stack it was raised
        through: its traceback held the refused page's bytes (15 to 19 MB
        each, growing RSS by 342 MiB after 18 refused pages).
        """
        import gc
        import weakref

        class Body:
            pass
        held = []

        def fetch(project, previous=None):
            async def failing():
                body = Body()
                held.append(weakref.ref(body))
                raise UpstreamError("the page is unusable")
            return ensureDeferred(failing())
        pages = PageCache(fetch, self.clock, 600.0)
        self.failureResultOf(ensureDeferred(pages.get("huge")), UpstreamError)
        gc.collect()
        self.assertIsNone(held[0]())
        failure = self.failureResultOf(ensureDeferred(pages.get("huge")), UpstreamError)
        self.assertEqual(str(failure.value), "the page is unusable")

    def test_missing_expires(self):
        """A name that exists nowhere is asked again after L{cache.MISSING_TTL}."""
        pages = PageCache(self.fetch, self.clock, 3600.0)
        self.missing.add("later")
        self.assertIsNone(self.get(pages, "later").page)
        self.missing.clear()
        self.clock.advance(cache.MISSING_TTL + 1)
        self.get(pages, "later")  # (stale: served while the refresh runs)
        self.assertIsNotNone(self.get(pages, "later").page)


class AdmissionTests(SynchronousTestCase):
    """L{Admission}: downloads at once, by count and by reserved bytes."""

    def test_count(self):
        slots = Admission(2, 100)
        first, second, third = (slots.acquire(1) for _ in range(3))
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertNoResult(third)
        slots.release(1)
        self.successResultOf(third)
        self.assertEqual((slots.running, slots.reserved), (2, 2))

    def test_space_in_order(self):
        """A large reservation waits, and is not overtaken by smaller ones."""
        slots = Admission(10, 100)
        self.successResultOf(slots.acquire(60))
        big = slots.acquire(60)
        small = slots.acquire(10)
        self.assertNoResult(big)
        self.assertNoResult(small)
        slots.release(60)
        self.successResultOf(big)
        self.successResultOf(small)
        self.assertEqual(slots.reserved, 70)

    def test_cancel(self):
        """A waiter that gives up leaves the queue."""
        slots = Admission(1, 100)
        self.successResultOf(slots.acquire(1))
        waiting = slots.acquire(1)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(slots.waiting, 0)
        slots.release(1)
        self.assertEqual(slots.running, 0)


class MissBudgetTests(SynchronousTestCase):
    """L{MissBudget}: per address, refilled steadily."""

    def test_budget(self):
        budget = MissBudget(60)
        self.assertEqual([budget.charge("10.0.0.1", 100.0) for _ in range(60)], [None] * 60)
        wait = budget.charge("10.0.0.1", 100.0)
        self.assertAlmostEqual(wait, 1.0)
        self.assertIsNone(budget.charge("10.0.0.2", 100.0))
        self.assertIsNone(budget.charge("10.0.0.1", 101.0))
        self.assertEqual(budget.refused, 1)


class MissLimitTests(_Harness, SynchronousTestCase):
    """Requests that must ask the upstream are limited per address."""

    upstream_settings = {"max_misses_per_address": 5}

    def test_limited(self):
        """The sixth miss gets 429 with Retry-After; a cached page still answers."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.assertEqual(self.get("/simple/holy-grail/")[0], 200)
        for i in range(4):
            self.assertEqual(self.get(f"/simple/nothing-{i}/")[0], 404)
        code, headers, body = self.get("/simple/nothing-9/")
        self.assertEqual(code, 429, body)
        self.assertEqual(headers.getRawHeaders(b"retry-after"), [b"12"])
        self.assertEqual(self.get("/simple/holy-grail/")[0], 200)
        # (a name whose "no such project" is kept costs nothing either)
        self.assertEqual(self.get("/simple/nothing-0/")[0], 404)
        self.assertEqual(self.upstream.asked("/simple/nothing-9/"), 0)


class FileBoundsTests(_Harness, SynchronousTestCase):
    """A file's download is capped by max_file_size and by its page's size."""

    upstream_settings = {"max_file_size": 1 << 20, "download_space": 1 << 20}

    def test_claim_over_the_cap(self):
        """A page claiming a terabyte: 502 without asking for the file."""
        self.upstream.page("holy-grail", [entry(*WHEEL, size=10 ** 12)])
        self.upstream.file(*WHEEL)
        code, _, body = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertEqual(code, 502)
        self.assertIn(b"max_file_size", body)
        self.assertEqual(self.upstream.asked(f"/files/{WHEEL[0]}"), 0)

    def test_body_over_the_cap(self):
        """A page without a size and an endless body: cut at max_file_size, nothing kept."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(WHEEL[0], b"x" * ((1 << 20) + 1))
        code, _, _ = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertNotEqual(code, 200)
        self.assertIsNone(self.proxy.files.kept(WHEEL[0]))
        self.assertIn(f"more than {1 << 20} bytes", str(cache.again(self.proxy.files._failed.lately(WHEEL[0]))))

    def test_body_over_its_claim(self):
        """A body longer than its page's size is cut there."""
        self.upstream.page("holy-grail", [entry(*WHEEL, size=len(WHEEL[1]))])
        self.upstream.file(WHEEL[0], WHEEL[1] + b"tail")
        code, _, body = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertNotEqual((code, body), (200, WHEEL[1] + b"tail"))
        self.assertIsNone(self.proxy.files.kept(WHEEL[0]))
        self.assertIn(f"more than {len(WHEEL[1])} bytes",
                      str(cache.again(self.proxy.files._failed.lately(WHEEL[0]))))

    def test_accept_encoding(self):
        """Files are asked for as they are; pages may come compressed."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(*WHEEL)
        code, _, body = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertEqual((code, body), (200, WHEEL[1]))
        headers = dict(self.upstream.requests)
        self.assertEqual(headers[f"/files/{WHEEL[0]}"][b"accept-encoding"], [b"identity"])
        self.assertEqual(headers["/simple/holy-grail/"][b"accept-encoding"], [b"gzip"])

    def test_no_cookies(self):
        """Cookies the upstream sets are never sent back."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(*WHEEL)
        for _ in range(3):
            self.get(f"/files/holy-grail/{WHEEL[0]}")
            self.clock.advance(61)
            self.get("/simple/holy-grail/")
        self.assertGreater(len(self.upstream.requests), 3)
        for path, headers in self.upstream.requests:
            self.assertNotIn(b"cookie", headers, path)


class DownloadQueueTests(_Harness, SynchronousTestCase):
    """Downloads wait their turn, and only so many wait."""

    upstream_settings = {"max_downloads": 1}

    def test_waiting_capped(self):
        """Past 64 waiting downloads a turn, a new one is refused (503, Retry-After)."""
        files = [make_wheel("holy-grail", f"1.{i}") for i in range(67)]
        self.upstream.page("holy-grail", [entry(*f) for f in files])
        hanging = []

        def hang(request):
            hanging.append(request)
            return NOT_DONE_YET
        for name, _ in files:
            self.upstream.routes[f"/files/{name}"] = hang
        self.page_of("holy-grail")
        fetches = [self.proxy.files.fetch(self.proxy.pages.listed("holy-grail", name))
                   for name, _ in files[:65]]
        self.settle()
        self.assertEqual(self.upstream.asked(f"/files/{files[0][0]}"), 1)
        self.assertEqual(self.upstream.asked(f"/files/{files[1][0]}"), 0)
        code, headers, body = self.get(f"/files/holy-grail/{files[66][0]}")
        self.assertEqual(code, 503, body)
        self.assertIn(b"64 upstream downloads are waiting already", body)
        self.assertEqual(headers.getRawHeaders(b"retry-after"), [RETRY_AFTER])
        for d in fetches:
            self.assertNoResult(d)
        # (each turn given in order: a 404 ends each download)
        for _ in range(len(fetches)):
            request = hanging.pop()
            request.setResponseCode(404)
            request.finish()
            self.settle()
        self.assertEqual(hanging, [])
        for d in fetches:
            self.failureResultOf(d)

    def test_kept_elsewhere(self):
        """
        A file another server (or an earlier run) kept under the name with
        other bytes: that file is the truth, on the page and in the bytes.
        """
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(*WHEEL)
        first = self.storage
        self.upstream.file(WHEEL[0], OTHER[1])
        self.upstream.page("holy-grail", [entry(WHEEL[0], OTHER[1])])
        self.page_of("holy-grail")
        self.successResultOf(self.proxy.files.fetch(self.proxy.pages.listed("holy-grail", WHEEL[0])))
        # (a second proxy on the same storage, that never saw the first's file)
        self.make(cache_storage=first)
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(*WHEEL)
        self.page_of("holy-grail")
        stored = self.successResultOf(self.proxy.files.fetch(self.proxy.pages.listed("holy-grail",
                                                                          WHEEL[0])))
        self.assertEqual(stored.sha256, sha256(OTHER[1]))
        page = self.page_of("holy-grail")
        self.assertEqual(page["files"][0]["hashes"]["sha256"], sha256(OTHER[1]))


class HashChangeTests(_Harness, SynchronousTestCase):
    """After the upstream changes a kept file's bytes, page and bytes agree."""

    def test_kept_bytes_win(self):
        """The page shows the kept file's hash, and the kept bytes are served."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(*WHEEL)
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL[0]}")[2], WHEEL[1])
        self.upstream.page("holy-grail", [entry(WHEEL[0], OTHER[1], size=len(OTHER[1]))])
        self.upstream.file(WHEEL[0], OTHER[1])
        self.clock.advance(61)
        self.get("/simple/holy-grail/")  # (stale; the refresh runs)
        self.assertEqual(self.pages.entries["holy-grail"].page.files[0].sha256,
                         sha256(OTHER[1]))
        page = self.page_of("holy-grail")
        self.assertEqual(page["files"][0]["hashes"]["sha256"], sha256(WHEEL[1]))
        self.assertEqual(page["files"][0]["size"], len(WHEEL[1]))
        code, _, body = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertEqual((code, sha256(body)), (200, sha256(WHEEL[1])))
        errors = self.flushLoggedErrors()
        self.assertEqual(errors, [])

    def test_metadata_in_memory(self):
        """Metadata kept in memory under one hash is fetched anew for another."""
        first, second = b"Metadata-Version: 2.1\nName: holy-grail\nVersion: 1.0\n", \
            b"Metadata-Version: 2.1\nName: holy-grail\nVersion: 1.0\nSummary: new\n"
        self.upstream.page("holy-grail", [entry(*WHEEL, **{"core-metadata": {
            "sha256": sha256(first)}})])
        self.upstream.file(WHEEL[0] + ".metadata", first)
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL[0]}.metadata")[2], first)
        self.upstream.page("holy-grail", [entry(*WHEEL, **{"core-metadata": {
            "sha256": sha256(second)}})])
        self.upstream.file(WHEEL[0] + ".metadata", second)
        self.clock.advance(61)
        self.get("/simple/holy-grail/")
        page = self.page_of("holy-grail")
        self.assertEqual(page["files"][0]["core-metadata"], {"sha256": sha256(second)})
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL[0]}.metadata")[2], second)


class FailureTests(_Harness, SynchronousTestCase):
    """Any upstream answer gives 502 or a page without the bad entry, never 500."""

    def test_bad_redirects(self):
        """A redirect to C{http://[x/}: 502 for a page and for a file, remembered."""
        self.upstream.routes["/simple/holy-grail/"] = (302, {b"location": b"http://[x/"}, b"")
        self.assertEqual(self.get("/simple/holy-grail/")[0], 502)
        self.assertEqual(self.get("/simple/holy-grail/")[0], 502)
        self.assertEqual(self.upstream.asked("/simple/holy-grail/"), 1)
        self.upstream.page("shrubbery", [entry(make_wheel("shrubbery", "1.0")[0], b"x")])
        name = make_wheel("shrubbery", "1.0")[0]
        self.upstream.routes[f"/files/{name}"] = (302, {b"location": b"http://[x/"}, b"")
        self.assertEqual(self.get(f"/files/shrubbery/{name}")[0], 502)
        self.assertEqual(self.get(f"/files/shrubbery/{name}")[0], 502)
        self.assertEqual(self.upstream.asked(f"/files/{name}"), 1)

    def test_bad_upload_time(self):
        """An upload time 99 hours off UTC is dropped, not a 500."""
        self.upstream.page("holy-grail", [entry(*WHEEL, **{
            "upload-time": "2020-01-01T00:00:00+99:00"})])
        page = self.page_of("holy-grail")
        self.assertEqual([f["filename"] for f in page["files"]], [WHEEL[0]])
        self.assertNotIn("upload-time", page["files"][0])

    def test_wrong_bytes_remembered(self):
        """A file that failed its hash gets 502 again at once, without asking."""
        self.upstream.page("holy-grail", [entry(*WHEEL)])
        self.upstream.file(WHEEL[0], WHEEL[1][:-1] + b"!")
        self.assertNotEqual(self.get(f"/files/holy-grail/{WHEEL[0]}")[0], 200)
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL[0]}")[0], 502)
        self.assertEqual(self.upstream.asked(f"/files/{WHEEL[0]}"), 1)
        self.clock.advance(cache.FAILURE_MEMORY + 1)
        self.upstream.file(*WHEEL)
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL[0]}")[2], WHEEL[1])

    def test_refused_host_not_remembered(self):
        """
        A file on a host C{hosts} does not name: 502, its status line and
        body naming the key; named at a reload, fetched at the next request
        (the refusal is not remembered as a failed file is).
        """
        self.upstream.page("holy-grail", [dict(entry(*WHEEL),
                                               url=f"https://files.elsewhere.example/files/{WHEEL[0]}")])
        self.upstream.file(*WHEEL)
        d = self.client.get(f"http://pypid.example/files/holy-grail/{WHEEL[0]}")
        self.settle()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 502)
        # (the advice whole, last, in the status line; all of it in the body)
        self.assertTrue(response.phrase.endswith(
            b"; set [upstream] hosts = files.elsewhere.example (or add *: any host at a "
            b"public address)"), response.phrase)
        self.assertLessEqual(len(response.phrase), 200)
        self.assertIn(response.phrase.split(b"; ", 1)[1],
                      self.successResultOf(self.client.content(response)))
        self.assertEqual(self.upstream.asked(f"/files/{WHEEL[0]}"), 0)
        self.upstream_client.reconfigure(("upstream.example", "files.elsewhere.example"), None)
        code, _, body = self.get(f"/files/holy-grail/{WHEEL[0]}")
        self.assertEqual((code, body), (200, WHEEL[1]))

    def test_trickle(self):
        """A body that trickles a byte a second is given up at fetch_deadline."""
        self.make(fetch_deadline=30.0, timeout=5.0)
        self.upstream.page("holy-grail", [entry(*WHEEL)])

        def trickle(request):
            gone = []
            request.notifyFinish().addBoth(gone.append)

            def more(left):
                if left and not gone:
                    request.write(b"x")
                    self.clock.callLater(1, more, left - 1)
            more(10_000)
            return NOT_DONE_YET
        self.upstream.routes[f"/files/{WHEEL[0]}"] = trickle
        self.page_of("holy-grail")
        d = self.proxy.files.fetch(self.proxy.pages.listed("holy-grail", WHEEL[0]))
        for _ in range(40):
            self.clock.advance(1)
            self.settle()
        failure = self.failureResultOf(d, UpstreamError)
        self.assertIn("the download took longer than 30 s ([upstream] fetch_deadline)",
                      str(failure.value))
        self.assertIsNone(self.proxy.files.kept(WHEEL[0]))
        self.assertEqual(self.proxy.files._downloads, {})
        self.assertEqual(self.proxy.files.timings.errors.get("file"), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RecentFailuresTests(SynchronousTestCase):
    """The fetches that failed lately: remembered L{cache.FAILURE_MEMORY} seconds, bounded."""

    def test_remembered_for_a_while(self):
        """A failure is told while recent, then forgotten."""
        clock = Clock()
        failed = RecentFailures(clock)
        self.assertIsNone(failed.lately("a.whl"))
        failed.remember("a.whl", "wrong bytes")
        clock.advance(cache.FAILURE_MEMORY - 1)
        self.assertEqual(failed.lately("a.whl"), "wrong bytes")
        clock.advance(1)
        self.assertIsNone(failed.lately("a.whl"))

    def test_oldest_forgotten(self):
        """Past L{cache.MAX_FAILED_FILES} names the oldest are forgotten; a new failure is last."""
        self.patch(cache, "MAX_FAILED_FILES", 2)
        failed = RecentFailures(Clock())
        for name in ("a", "b", "a", "c"):
            failed.remember(name, name.upper())
        self.assertEqual((len(failed), failed.lately("b"), failed.lately("a")), (2, None, "A"))


class ClientTests(SynchronousTestCase):
    """Small things of L{UpstreamClient} and L{FileHosts}."""

    def test_redirect_to_spaces(self):
        """
        A redirect to a URL with a space or a control byte is percent-encoded,
        as treq did (Twisted's agent refuses such a URI with a ValueError,
        which was a 500).
        """
        from twisted.web.iweb import UNKNOWN_LENGTH
        clock = Clock()
        asked = []

        class Response:
            code = 302
            length = UNKNOWN_LENGTH

            def __init__(self, location):
                from twisted.web.http_headers import Headers
                self.headers = Headers({b"location": [location]})

            def deliverBody(self, protocol):
                protocol.makeConnection(None)

        class Agent:
            def request(self, method, uri, headers, body):
                if b" " in uri or b"\x7f" in uri:
                    raise ValueError("Invalid URI")
                asked.append(uri)
                if len(asked) == 1:
                    from twisted.internet.defer import succeed
                    return succeed(Response(b"/a b\x7f/"))
                return Deferred()
        client = UpstreamClient(Agent(), clock, INDEX, ("upstream.example",), timeout=5)
        d = ensureDeferred(client.page("holy-grail"))
        self.assertEqual(asked[-1], b"https://upstream.example/a%20b%7F/")
        clock.advance(5)
        self.failureResultOf(d, UpstreamError)

    def test_agent_refusal(self):
        """A URI the agent refuses is an L{UpstreamError}, not a 500."""
        class Agent:
            def request(self, *args):
                raise ValueError("Invalid URI")
        client = UpstreamClient(Agent(), Clock(), INDEX, ("upstream.example",))
        failure = self.failureResultOf(ensureDeferred(client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("cannot be fetched: Invalid URI", str(failure.value))

    def test_reads_at_once(self):
        """Pages (and metadata) are read L{fetch.MAX_READS} at a time; more wait."""
        asked, waiting = [], []

        class Agent:
            def request(self, method, uri, headers, body):
                asked.append(uri)
                waiting.append(Deferred())
                return waiting[-1]
        client = UpstreamClient(Agent(), Clock(), INDEX, ("upstream.example",))
        pages = [ensureDeferred(client.page(f"p-{i}")) for i in range(fetch.MAX_READS + 3)]
        self.assertEqual(len(asked), fetch.MAX_READS)
        while waiting:
            waiting.pop(0).errback(ConnectionError("gone"))
        self.assertEqual(len(asked), fetch.MAX_READS + 3)
        for d in pages:
            self.failureResultOf(d, UpstreamError)

    def test_long_display_name(self):
        """A display name of millions of separators is replaced by the normalized name."""
        body = json.dumps({"meta": {"api-version": "1.1"},
                           "name": "holy" + "_" * 100_000 + "grail", "files": []}).encode()
        page = parse_page(body, JSON_TYPE, INDEX + "holy-grail/", "holy-grail")
        self.assertEqual(page.name, "holy-grail")
        self.assertEqual(cache.page_cost(UpstreamPage(project="x", name="x" * 1000)),
                         cache.PAGE_COST + 1000)

    def test_long_yank_reason(self):
        """A yank reason of megabytes is cut to YANK_REASON_BYTES, in both formats; "" stays."""
        from pypid.core.dists.model import YANK_REASON_BYTES
        reason = "broken " * 300_000
        body = json_page("holy-grail", [entry(WHEEL[0], WHEEL[1], yanked=reason),
                                        entry(OTHER[0] + ".x.whl", OTHER[1], yanked="")])
        files = parse_page(body, JSON_TYPE, INDEX + "holy-grail/", "holy-grail").files
        html = (f'<a href="{FILES}{WHEEL[0]}#sha256={sha256(WHEEL[1])}" '
                f'data-yanked="{reason}">{WHEEL[0]}</a>').encode()
        files += parse_page(html, "text/html", INDEX + "holy-grail/", "holy-grail").files
        cut = [f.yanked for f in files]
        self.assertEqual([len(r.encode()) <= YANK_REASON_BYTES for r in cut], [True] * 3)
        self.assertTrue(cut[0].startswith("broken broken"))
        self.assertEqual(cut[1], "")
        self.assertEqual(cut[2], cut[0])

    def test_empty_user_with_password(self):
        """C{http://:pw@host/} carries credentials, and is refused."""
        hosts = FileHosts(("upstream.example",))
        self.assertFalse(hosts.allows("http://:pw@upstream.example/x"))
        self.assertFalse(hosts.allows("http://@upstream.example/x"))
        self.assertFalse(hosts.allows("http://[x/"))

    def test_header_timeout_wrapped(self):
        """
        The agent wraps a cancelled request (C{ResponseNeverReceived}): still
        "did not answer within", not "cannot reach".
        """
        clock = Clock()

        class Agent:
            def request(self, *args):
                def cancel(d):
                    d.errback(ResponseNeverReceived([CancelledError()]))
                return Deferred(cancel)
        client = UpstreamClient(Agent(), clock, INDEX, ("upstream.example",), timeout=5)
        d = ensureDeferred(client.page("holy-grail"))
        clock.advance(5)
        failure = self.failureResultOf(d, UpstreamError)
        self.assertIn("did not answer within 5 s", str(failure.value))

    def test_outbound_client_keeps_no_cookies(self):
        """The treq client S3 uses keeps no cookie either."""
        from http.cookiejar import Cookie

        from pypid.http.client import make_http
        http, pool = make_http(Clock(), 5)
        jar = http._cookiejar
        jar.set_cookie(Cookie(0, "a", "b", None, False, "upstream.example", True, False, "/",
                              True, False, None, False, None, None, {}))
        self.assertEqual(len(jar), 0)


class CutShortTests(SynchronousTestCase):
    """Who may be fed a file while it is fetched."""

    def test_clients(self):
        class Request:
            def __init__(self, proto):
                self.clientproto = proto

        class Listed:
            def __init__(self, size):
                self.size = size
        self.assertTrue(_sees_cut_short(Request(b"HTTP/1.1"), Listed(None)))
        self.assertTrue(_sees_cut_short(Request(b"HTTP/1.0"), Listed(10)))
        self.assertFalse(_sees_cut_short(Request(b"HTTP/1.0"), Listed(None)))


# -- property-based: any mutation of a valid page parses or is refused cleanly --------------

_VALID_JSON = json_page("holy-grail", [
    entry(*WHEEL, size=len(WHEEL[1]), **{"upload-time": "2024-01-02T03:04:05Z",
                                         "requires-python": ">=3.8", "yanked": False,
                                         "core-metadata": {"sha256": "a" * 64}}),
    entry("holy_grail-0.9.tar.gz", b"sdist", yanked="broken"),
])
_VALID_HTML = (
    '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1">'
    "<title>Links for holy-grail</title></head><body><h1>Links for holy-grail</h1>"
    f'<a href="{FILES}{WHEEL[0]}#sha256={sha256(WHEEL[1])}" data-requires-python="&gt;=3.8"'
    ' data-dist-info-metadata="sha256=' + "b" * 64 + '" data-size="12" '
    'data-upload-time="2024-01-02T03:04:05Z">w</a><br/>'
    f'<a href="../../files/holy_grail-0.9.tar.gz#sha256={"c" * 64}" data-yanked="">s</a>'
    "</body></html>").encode()


def _mutated(base):
    """Byte strings made from C{base} by cutting, splicing and overwriting."""
    position = st.integers(0, len(base))
    junk = st.sampled_from([b"", b"\x00", b"[", b"]", b"{", b"}", b'"', b",", b"<a href=",
                            b"http://[x/", b"+99:00", b"1e999", b"-1", b"\xff\xfe", b"%",
                            b"9" * 40, b"&#0;", b"<!--", b"<![foo[", b"null", b"true"])
    return st.lists(st.tuples(position, position, junk), min_size=1, max_size=6).map(
        lambda edits: _apply(base, edits))


def _apply(base, edits):
    data = base
    for start, stop, piece in edits:
        start, stop = sorted((min(start, len(data)), min(stop, len(data))))
        data = data[:start] + piece + data[stop:]
    return data


class PagePropertyTests(SynchronousTestCase):
    """
    Whatever bytes an upstream sends for a page, L{parse_page} gives an
    L{UpstreamPage} or raises L{UpstreamPageError}: nothing else, so no
    upstream page can make a 500.
    """

    def check(self, body, content_type):
        try:
            page = parse_page(body, content_type, INDEX + "holy-grail/", "holy-grail",
                              max_entries=50)
        except UpstreamPageError:
            return
        self.assertIsInstance(page, UpstreamPage)
        for f in page.files:
            self.assertTrue(FileHosts(("upstream.example",)).allows(f.url)
                            or f.url.startswith(("http://", "https://")))

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_mutated(_VALID_JSON))
    def test_json(self, body):
        self.check(body, JSON_TYPE)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_mutated(_VALID_HTML))
    def test_html(self, body):
        self.check(body, "text/html; charset=utf-8")


class PeoplePageTests(_Harness, SynchronousTestCase):
    """The pages for people of a project known from the upstream's cache."""

    def test_cached_page_without_files(self):
        """A cached upstream page that lists no files has no page for people: 404, not a 500."""
        self.upstream.page("holy-grail", [])
        self.assertEqual(self.page_of("holy-grail")["files"], [])
        code, _, body = self.get("/project/holy-grail/")
        self.assertEqual((code, body), (404, b"no such project\n"))
