"""
Named indexes whose bases are upstreams (issue 26), in memory, through
the web: C{staging} (hosted) based on C{release} (hosted) and two
upstreams, C{upstream:public} and C{upstream:vendor}, that both have a
project C{widget} (their own bytes); C{cool}, a view of C{upstream:public}
with a cooldown (of 800 days: the test pages' files date from 2024). A project's page is fetched from the upstreams while the
client waits, the earlier upstream's file wins, its file is fetched from
that upstream alone; a project hosted anywhere in the chain asks no
upstream; a view serves no file its cooldown hides; and the registry
builds each named upstream's parts and keeps its state across a restart.
"""

import json
import os

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import ensureDeferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.state.indexes import IndexRegistry
from pypid.upstream.saved_state import SavedState, _read, state_path
from tests.harness.fakes import run_now
from tests.harness.memory_storage import MemoryStorage
from tests.harness.upstream import (
    BYTES_A,
    BYTES_B,
    DAY,
    INDEX_A,
    INDEX_B,
    ORIGIN_A,
    ORIGIN_B,
    START,
    VENDORED,
    VENDORED_BYTES,
    WHEEL,
    Origins,
    Server,
    drain,
    make_source,
    page,
    sha,
)


class ChainPageTests(SynchronousTestCase):
    """C{/NAME/simple/<p>/} and C{/NAME/files/...} of a named index whose bases are upstreams."""

    def setUp(self):
        self.server = Server(self)

    def test_upstream_project(self):
        """
        A project no hosted index has is fetched from each upstream as the
        client waits; the same filename from both is the earlier upstream's.
        """
        body = self.server.json_page("/staging/simple/widget/")
        self.assertEqual([(f["filename"], f["hashes"]["sha256"], f["url"])
                          for f in body["files"]],
                         [(WHEEL, sha(BYTES_A), f"../../files/widget/{WHEEL}")])
        self.assertEqual(sorted(self.server.asked()), [(ORIGIN_A, "/simple/widget/"),
                                                       (ORIGIN_B, "/simple/widget/")])
        # (the page again: from the caches, nothing asked)
        self.server.json_page("/staging/simple/widget/")
        self.assertEqual(len(self.server.asked()), 2)

    def test_file_from_its_upstream(self):
        """The file is fetched from the upstream whose page the index lists, and kept there."""
        code, headers, body = self.server.request(f"/staging/files/widget/{WHEEL}")
        self.assertEqual((code, body), (200, BYTES_A))
        self.assertIn((ORIGIN_A, f"/f/{WHEEL}"), self.server.asked())
        self.assertNotIn((ORIGIN_B, f"/f/{WHEEL}"), self.server.asked())
        self.assertEqual([r.sha256 for r in self.server.sources["public"].kept],
                         [sha(BYTES_A)])
        self.assertEqual(list(self.server.sources["vendor"].kept), [])

    def test_later_upstream_only(self):
        """A project only the second upstream has comes from it."""
        body = self.server.json_page("/staging/simple/vendored/")
        self.assertEqual([f["filename"] for f in body["files"]], [VENDORED])
        code, _, data = self.server.request(f"/staging/files/vendored/{VENDORED}")
        self.assertEqual((code, data), (200, VENDORED_BYTES))

    def test_hosted_in_a_base_asks_no_upstream(self):
        """A project hosted in release lists its own files in staging; no upstream is asked."""
        filename = self.server.host("release", "widget", "2.0")
        body = self.server.json_page("/staging/simple/widget/")
        self.assertEqual([f["filename"] for f in body["files"]], [filename])
        code, _, _ = self.server.request(f"/staging/files/widget/{WHEEL}")
        self.assertEqual(code, 404)
        self.assertEqual(self.server.asked(), [])

    def test_private_never_asked(self):
        """A name the upstreams' rules keep private is never asked for."""
        code, _, _ = self.server.request("/staging/simple/private-thing/")
        self.assertEqual(code, 404)
        self.assertEqual(self.server.asked(), [])

    def test_missing_everywhere(self):
        """A project no source has: 404, after asking."""
        code, _, body = self.server.request("/staging/simple/nothing-here/")
        self.assertEqual((code, body), (404, b"no such project\n"))

    def test_not_normalized_redirected(self):
        """A name spelt otherwise is redirected within the index, before anything is asked."""
        code, headers, _ = self.server.request("/staging/simple/Widget/")
        self.assertEqual(code, 301)
        self.assertEqual(headers.getRawHeaders("location"), ["/staging/simple/widget/"])
        self.assertEqual(self.server.asked(), [])

    def test_cooldown_view(self):
        """The view's cooldown hides the young upstream file, from its page and its files."""
        body = self.server.json_page("/cool/simple/widget/")
        self.assertEqual(body["files"], [])
        code, _, _ = self.server.request(f"/cool/files/widget/{WHEEL}")
        self.assertEqual(code, 404)
        # (the page's files date from 2024-01-02: 800 days old in 2026-03)
        self.server.clock.advance(80 * DAY)
        body = self.server.json_page("/cool/simple/widget/")
        self.assertEqual([f["filename"] for f in body["files"]], [WHEEL])
        code, _, data = self.server.request(f"/cool/files/widget/{WHEEL}")
        self.assertEqual((code, data), (200, BYTES_A))

    def test_upstream_down_with_hosted(self):
        """An upstream that fails leaves the page to the others, with a Warning."""
        self.server.origins.routes.pop(("127.0.0.1:9001", "/simple/widget/"))
        self.server.origins.route(INDEX_A + "widget/", b"down", status=503)
        code, headers, body = self.server.request("/staging/simple/widget/",
                                                  {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual(code, 200, body)
        self.assertEqual([f["hashes"]["sha256"] for f in json.loads(body)["files"]],
                         [sha(BYTES_B)])
        self.assertTrue(headers.hasHeader("warning"))


class ChainLegacyJSONTests(SynchronousTestCase):
    """
    Issue 46: C{/NAME/pypi/<p>/json} of a project a named index lists
    through its upstreams: from the cached pages, by the same rules as
    its simple page (the earlier upstream's file, a view's cooldown, a
    hosted name asking no upstream, 404 for a project no source has).
    """

    def setUp(self):
        self.server = Server(self)

    def legacy(self, path):
        code, headers, body = self.server.request(path)
        return code, json.loads(body) if code == 200 else body

    def test_upstream_project(self):
        code, found = self.legacy("/staging/pypi/widget/json")
        self.assertEqual(code, 200, found)
        self.assertEqual(found["info"]["version"], "1.0")
        self.assertEqual([(f["filename"], f["digests"]) for f in found["urls"]],
                         [(WHEEL, {"sha256": sha(BYTES_A)})])
        self.assertTrue(found["urls"][0]["url"].endswith(f"/staging/files/widget/{WHEEL}"))
        code, found = self.legacy("/staging/pypi/vendored/1.0/json")
        self.assertEqual((code, [f["filename"] for f in found["urls"]]), (200, [VENDORED]))

    def test_same_rules_as_the_simple_page(self):
        """A view's cooldown hides the young file here too; a hosted name asks no upstream."""
        code, body = self.legacy("/cool/pypi/widget/json")
        self.assertEqual(code, 404, body)
        self.server.clock.advance(80 * DAY)
        self.assertEqual(self.legacy("/cool/pypi/widget/json")[0], 200)
        self.assertEqual(self.legacy("/staging/pypi/nothing-here/json"),
                         (404, b"no such project\n"))
        self.assertEqual(self.legacy("/staging/pypi/private-thing/json")[0], 404)
        asked = len(self.server.asked())
        self.assertEqual(self.legacy("/staging/pypi/Widget/json")[0], 301)
        self.assertEqual(len(self.server.asked()), asked, "nothing asked for a redirect")

    def test_kept_until_the_page_moves(self):
        """The JSON is kept rendered, and rendered again once a refreshed page lists more."""
        first = self.legacy("/staging/pypi/widget/json")[1]
        self.assertEqual(self.legacy("/staging/pypi/widget/json")[1], first)
        newer = "widget-2.0-py3-none-any.whl"
        self.server.origins.route(INDEX_A + "widget/", page("widget", [
            (WHEEL, f"http://{ORIGIN_A}/f/{WHEEL}", BYTES_A),
            (newer, f"http://{ORIGIN_A}/f/{newer}", BYTES_A)]))
        self.server.clock.advance(3600)
        code, found = self.legacy("/staging/pypi/widget/json")
        self.assertEqual((code, found["info"]["version"]), (200, "2.0"))
        self.assertEqual(sorted(found["releases"]), ["1.0", "2.0"])

    def test_hosted_in_a_base(self):
        """A project hosted in a base is the hosted one's JSON; no upstream is asked."""
        filename = self.server.host("release", "widget", "2.0")
        code, found = self.legacy("/staging/pypi/widget/json")
        self.assertEqual(code, 200, found)
        self.assertEqual([f["filename"] for f in found["urls"]], [filename])
        self.assertEqual(self.server.asked(), [])


class RegistryUpstreamTests(SynchronousTestCase):
    """The registry builds each named upstream's parts, and their state survives a restart."""

    def config(self):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[storage]\npath = {folder}/packages\n"
                    f"[pypid]\nsnapshot = {folder}/index.json\n"
                    f"[upstream:public]\nmode = cache\nurl = {INDEX_A}\n"
                    "[index:staging]\nbases = upstream:public\n")
        return load_config(path)

    def test_parts_and_sides(self):
        """A named upstream is a part and a side of the indexes that name it."""
        clock = Clock()
        registry = IndexRegistry.from_config(self.config(), run_now, clock)
        self.assertEqual([name for name, _ in registry.upstream_parts("upstream")],
                         ["upstream:public"])
        self.assertEqual([name for name, _ in registry.upstream_parts("upstream-state")],
                         ["upstream-state:public"])
        self.assertEqual([s.name for s in registry.composed["staging"].order],
                         ["staging", "upstream:public"])
        self.assertIs(registry.composed["staging"].order[1].upstream,
                      registry.sides["upstream:public"])

    def test_state_saved_and_read_back(self):
        """The cached pages are saved to their own file, and read back by the next start."""
        upstream = StateCase(self)
        source, saved = upstream.start(INDEX_A)
        upstream.fetch(source)
        self.successResultOf(saved.stopService())
        self.assertEqual(saved.saves, 1)
        with open(upstream.path, "rb") as f:
            self.assertEqual(json.loads(f.read())["url"], INDEX_A)
        again, _ = upstream.start(INDEX_A)
        self.assertIn("widget", again.pages.entries)

    def test_other_url_not_read(self):
        """Pages saved for another URL are not served after the url changed."""
        upstream = StateCase(self)
        source, saved = upstream.start(INDEX_B)
        upstream.fetch(source)
        self.successResultOf(saved.stopService())
        moved, _ = upstream.start(INDEX_A)
        self.assertEqual(moved.pages.entries, {})

    def test_unreadable_state(self):
        """A state file that cannot be read is logged, and the pages are fetched again."""
        upstream = StateCase(self)
        os.makedirs(os.path.dirname(upstream.path))
        with open(upstream.path, "wb") as f:
            f.write(b"{not json")
        source, _ = upstream.start(INDEX_A)
        self.assertEqual(source.pages.entries, {})
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class SavedStateFailureTests(SynchronousTestCase):
    """A state that could not be saved is saved at the next tick."""

    def test_retried(self):
        upstream = StateCase(self)
        failures = [OSError(28, "No space left on device")]

        def run(f, *args):
            if failures and f is not _read:
                return fail(failures.pop())
            return run_now(f, *args)
        source, saved = upstream.start(INDEX_A, run)
        upstream.fetch(source)
        self.successResultOf(saved.save_if_changed())
        self.assertEqual((saved.saves, len(self.flushLoggedErrors(OSError))), (0, 1))
        self.assertTrue(source.state_changed())
        upstream.clock.advance(60)
        self.assertEqual(saved.saves, 1)
        self.assertTrue(os.path.exists(upstream.path))


class StateCase:
    """
    Starts of a source of C{widget}'s upstream (either of the module's two
    origins) with its state kept in one file, as after restarts.
    """

    def __init__(self, case):
        self.case = case
        self.clock = Clock()
        self.clock.advance(START)
        origins = Origins()
        self.agent = RequestTraversalAgent(origins)
        for url, origin, data in ((INDEX_A, ORIGIN_A, BYTES_A), (INDEX_B, ORIGIN_B, BYTES_B)):
            origins.route(url + "widget/", page(
                "widget", [(WHEEL, f"http://{origin}/f/{WHEEL}", data)]))
        self.path = state_path(os.path.abspath(case.mktemp()), "public")

    def start(self, url, run=run_now):
        """C{(source, SavedState)} of the upstream at C{url}, started (its state read)."""
        storage = MemoryStorage(self.case.mktemp(), self.clock)
        self.case.successResultOf(storage.prepare())
        source = make_source(self.agent, self.clock, url, storage, "public", True)
        saved = SavedState(source, self.path, run, self.clock, 60.0)
        self.case.successResultOf(saved.startService())
        return source, saved

    def fetch(self, source):
        """Cache C{widget}'s page."""
        self.case.successResultOf(drain(self.agent, ensureDeferred(source.pages.get("widget"))))
