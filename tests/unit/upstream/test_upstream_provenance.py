"""
Tests for the upstream's provenance (PEP 740, issue 28): read from the
upstream's pages in both forms, fetched (bounded, once for every caller)
when a file is kept or when pypid's Integrity API is first asked, never
for a page; checked to name the file and the sha256 its page gives; kept
with the kept file, so it is served when the upstream is down; and linked
from the pages pypid makes (pypid's own URL).
"""

import json

from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.dists.provenance import MAX_PROVENANCE_SIZE, Publisher, provenance_document
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for, provenance_url_for
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.parser import parse_page
from pypid.upstream.proxy import UpstreamProxy
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness.memory_storage import MemoryStorage
from tests.harness.sigstore_root import TestSigstore, github_claims
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
from tests.harness.upstream_pages import PAGE_URL, anchor, html_body

FILE_URL = f"http://{ORIGIN_A}/f/{WHEEL}"
UPSTREAM_PROVENANCE = f"http://{ORIGIN_A}/integrity/widget/1.0/{WHEEL}/provenance"
BASE = "https://pypi.internal.example/"
INTEGRITY = f"/integrity/widget/1.0/{WHEEL}/provenance"

SIGSTORE = TestSigstore()


def provenance_of(filename, sha256):
    """A provenance object of the file C{filename} (C{sha256}), as the upstream serves one."""
    return provenance_document([(Publisher("GitHub", (("repository", "acme/widget"),)), [
        SIGSTORE.attest(filename, sha256, claims=github_claims(repository="acme/widget"))])])


GOOD = provenance_of(WHEEL, sha(BYTES_A))


def json_page(provenance=UPSTREAM_PROVENANCE):
    entry = {"filename": WHEEL, "url": FILE_URL, "hashes": {"sha256": sha(BYTES_A)},
             "size": len(BYTES_A)}
    if provenance is not ...:
        entry["provenance"] = provenance
    return json.dumps({"meta": {"api-version": "1.3"}, "name": "widget",
                       "files": [entry]}).encode()


#: a provenance URL on the parse tests' page's origin
PAGE_PROVENANCE = f"https://upstream.example/integrity/widget/1.0/{WHEEL}/provenance"


class ParseTests(SynchronousTestCase):
    """The provenance URL of each file, from both forms of a page."""

    def parse_json(self, value):
        page = parse_page(json_page(value), "application/vnd.pypi.simple.v1+json", PAGE_URL,
                          "widget")
        [f] = page.files
        return f.provenance_url

    def test_json(self):
        self.assertEqual(self.parse_json(PAGE_PROVENANCE), PAGE_PROVENANCE)
        self.assertIsNone(self.parse_json(None))
        self.assertIsNone(self.parse_json(...))

    def test_only_https_or_the_page_origin(self):
        """https anywhere, or the page's own origin; another scheme or plain host is ignored."""
        self.assertEqual(self.parse_json("https://elsewhere.example/p"),
                         "https://elsewhere.example/p")
        for value in ("http://elsewhere.example/p", "javascript:alert(1)", "ftp://x.example/p",
                      42, "http://[::1", "x" * 5000):
            self.assertIsNone(self.parse_json(value), value)

    def test_relative(self):
        """A relative URL is resolved against the page's."""
        self.assertEqual(self.parse_json("../../integrity/widget/1.0/p"),
                         PAGE_URL.rsplit("/", 3)[0] + "/integrity/widget/1.0/p")

    def test_html(self):
        href = f"{FILE_URL}#sha256={sha(BYTES_A)}"
        body = html_body(anchor(href, f' data-provenance="{PAGE_PROVENANCE}"'))
        [f] = parse_page(body, "text/html", PAGE_URL, "widget").files
        self.assertEqual(f.provenance_url, PAGE_PROVENANCE)
        self.assertTrue(f.has_provenance)

    def test_saved(self):
        """The URL is kept in the cache's saved pages; a page saved before has none."""
        page = parse_page(json_page(PAGE_PROVENANCE), "application/vnd.pypi.simple.v1+json",
                          PAGE_URL, "widget")
        saved = json.loads(json.dumps(entry_to_json(CachedPage(page, 1.0))))
        self.assertEqual(entry_from_json(saved).page.files[0].provenance_url, PAGE_PROVENANCE)
        del saved["page"]["files"][0]["provenance_url"]
        self.assertIsNone(entry_from_json(saved).page.files[0].provenance_url)


class _Served:
    """The default index over one upstream (L{Origins}), served in memory, with a base URL."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(FILE_URL, BYTES_A)
        self.origins.route(INDEX_A + "widget/", json_page())
        self.origins.route(UPSTREAM_PROVENANCE, GOOD)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        self.source = make_source(self.agent, self.clock, INDEX_A, self.storage)
        self.index = Index(file_url_for(BASE), provenance_url=provenance_url_for(BASE))
        self.proxy = UpstreamProxy.create(self.source, self.index, self.index.file_url,
                                          provenance_url=provenance_url_for(BASE))
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, upstream=self.proxy),
                        access, run_now, self.clock,
                        SiteSettings(max_upload_size=1 << 20, base_url=BASE),
                        SiteServices(upstream=self.proxy))
        self.treq = site_treq(web.site)

    def get(self, path, accept=None):
        """GET C{path}: a page as JSON, anything else with no C{Accept}."""
        if accept is None and path.startswith("/simple/"):
            accept = "application/vnd.pypi.simple.v1+json"
        d = self.treq.get("http://pypi.test" + path,
                          headers={"accept": accept} if accept else {})
        drain(self.agent, d)
        response = self.successResultOf(d)
        return response.code, self.successResultOf(drain(self.agent, response.content()))

    def fetches(self):
        return len([s for s in self.origins.seen if s[1].startswith("/integrity/")])


class ServedTests(_Served, SynchronousTestCase):
    def test_page_links_pypid(self):
        """Both page forms link pypid's own Integrity API, and fetching them fetches no provenance."""
        code, body = self.get("/simple/widget/")
        [f] = json.loads(body)["files"]
        self.assertEqual(f["provenance"], BASE.rstrip("/") + INTEGRITY)
        code, body = self.get("/simple/widget/", "text/html")
        self.assertIn(b'data-provenance="' + BASE.rstrip("/").encode() + INTEGRITY.encode(),
                      body)
        self.assertEqual(self.fetches(), 0)

    def test_served_on_first_ask(self):
        """The first request fetches and checks it; later ones are answered from memory."""
        self.get("/simple/widget/")
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))
        self.assertEqual(self.fetches(), 1)

    def test_kept_with_the_file(self):
        """
        A file kept brings its provenance along (fetched in the background),
        kept in storage with it: served with the upstream gone.
        """
        self.get("/simple/widget/")
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        drain(self.agent, None)
        record = self.source.files.kept(WHEEL)
        self.assertIsNotNone(record.provenance_sha256)
        self.assertEqual(self.successResultOf(self.storage.read_provenance(record)), GOOD)
        self.origins.routes.clear()
        self.source.files._provenance._memory.clear()
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))

    def test_version_must_match(self):
        self.get("/simple/widget/")
        self.assertEqual(self.get(INTEGRITY.replace("/1.0/", "/2.0/"))[0], 404)
        self.assertEqual(self.get(INTEGRITY.replace("/1.0/", "/1.0.0/"))[0], 200)

    def test_none_offered(self):
        self.origins.route(INDEX_A + "widget/", json_page(None))
        self.get("/simple/widget/")
        code, body = self.get(INTEGRITY)
        self.assertEqual(code, 404)
        self.assertIn(b"no provenance available", body)
        self.assertEqual(self.fetches(), 0)


class ReplacedTests(_Served, SynchronousTestCase):
    """
    The upstream replaces a file under its name (issue 45, item 5): a
    provenance is kept by the file's digest, never served for other bytes.
    """

    NEW = BYTES_A + b"\0"

    def replace(self, provenance=None):
        """The upstream now gives other bytes under the name, with C{provenance} of them."""
        self.origins.route(FILE_URL, self.NEW)
        entry = {"filename": WHEEL, "url": FILE_URL, "hashes": {"sha256": sha(self.NEW)},
                 "size": len(self.NEW), "provenance": UPSTREAM_PROVENANCE}
        self.origins.route(INDEX_A + "widget/", json.dumps(
            {"meta": {"api-version": "1.3"}, "name": "widget", "files": [entry]}).encode())
        if provenance is None:
            self.origins.routes.pop((ORIGIN_A, UPSTREAM_PROVENANCE.split(ORIGIN_A)[1]))
        else:
            self.origins.route(UPSTREAM_PROVENANCE, provenance)
        self.successResultOf(drain(self.agent, self.proxy.refresh("widget")))

    def test_new_provenance(self):
        """The old provenance, in memory, is not served for the new bytes; theirs is."""
        self.get("/simple/widget/")
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))
        new = provenance_of(WHEEL, sha(self.NEW))
        self.replace(new)
        self.assertEqual(self.get(INTEGRITY), (200, new))
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, self.NEW))
        drain(self.agent, None)
        record = self.source.files.kept(WHEEL)
        self.assertEqual(self.successResultOf(self.storage.read_provenance(record)), new)

    def test_none_for_the_new_bytes(self):
        """
        The new bytes come with no provenance the upstream can give: none is
        served, none kept with the new file.
        """
        self.get("/simple/widget/")
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))
        self.replace()
        self.assertEqual(self.get(INTEGRITY)[0], 404)
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, self.NEW))
        drain(self.agent, None)
        self.assertIsNone(self.source.files.kept(WHEEL).provenance_sha256)
        self.assertEqual(self.get(INTEGRITY)[0], 404)

    def test_kept_file_wins(self):
        """
        A file kept before the upstream replaced it is served as kept, with
        its own provenance; the page links that one, not the new bytes'.
        """
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        drain(self.agent, None)
        self.replace(provenance_of(WHEEL, sha(self.NEW)))
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.assertEqual(self.get(INTEGRITY), (200, GOOD))
        [f] = json.loads(self.get("/simple/widget/")[1])["files"]
        self.assertEqual((f["hashes"]["sha256"], f["provenance"]),
                         (sha(BYTES_A), BASE.rstrip("/") + INTEGRITY))

    def test_kept_file_without_provenance(self):
        """A kept file whose own provenance was never had: no link, 404, whatever the page gives."""
        self.origins.route(INDEX_A + "widget/", json_page(None))
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        self.replace(provenance_of(WHEEL, sha(self.NEW)))
        [f] = json.loads(self.get("/simple/widget/")[1])["files"]
        self.assertEqual(f["hashes"]["sha256"], sha(BYTES_A))
        self.assertIsNone(f["provenance"])
        self.assertEqual(self.get(INTEGRITY)[0], 404)

    def test_checked_as_served(self):
        """
        A provenance kept with a file that names another sha256 (kept by a
        server before this check) is not served: 404.
        """
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        drain(self.agent, None)
        record = self.source.files.kept(WHEEL)
        stale = provenance_of(WHEEL, "0" * 64)
        self.source.kept.put(self.successResultOf(self.storage.keep_provenance(record, stale)))
        code, body = self.get(INTEGRITY)
        self.assertEqual(code, 404, body)
        self.assertIn(b"no provenance available", body)


class HostileTests(_Served, SynchronousTestCase):
    """An upstream provenance that is not this file's is dropped, logged, remembered, never served."""

    def refused(self, body, status=200):
        self.origins.route(UPSTREAM_PROVENANCE, body, status)
        self.get("/simple/widget/")
        code, answer = self.get(INTEGRITY)
        self.assertEqual(code, 404, answer)
        self.assertEqual(self.get(INTEGRITY)[0], 404)
        # (remembered: the second request did not ask again)
        self.assertEqual(self.fetches(), 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_another_sha256(self):
        self.refused(provenance_of(WHEEL, "0" * 64))

    def test_another_file(self):
        self.refused(provenance_of("widget-2.0-py3-none-any.whl", sha(BYTES_A)))

    def test_not_json(self):
        self.refused(b"<html>not json</html>")

    def test_huge(self):
        self.refused(b"[" * (MAX_PROVENANCE_SIZE + 10))

    def test_upstream_error(self):
        self.refused(b"oops", 500)

    def test_not_kept_with_the_file(self):
        """A file kept whose upstream provenance is wrong is kept without one."""
        self.origins.route(UPSTREAM_PROVENANCE, provenance_of(WHEEL, "0" * 64))
        self.get("/simple/widget/")
        self.assertEqual(self.get(f"/files/widget/{WHEEL}"), (200, BYTES_A))
        drain(self.agent, None)
        self.assertIsNone(self.source.files.kept(WHEEL).provenance_sha256)
        self.assertEqual(self.get(INTEGRITY)[0], 404)
