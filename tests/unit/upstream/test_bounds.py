"""
Every cache and table that clients can grow has a cap: each test fills one
well past its cap through its own API, checks that its size stays at the
cap, and that the memory it holds (traced by C{tracemalloc}) after twice as
many more entries is what it was after the first round, within a margin.

Caps in the hundreds of thousands are lowered for the test (the module
constant is patched): the code that keeps the cap is the same.
"""

import gc
import hashlib
import tracemalloc

import attrs
from twisted.internet.defer import ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth import publisher_tokens, throttle, verifier
from pypid.auth.hashes import hash_password
from pypid.auth.oidc_errors import TooMany
from pypid.auth.publisher_tokens import PublisherTokens, ReplayCache
from pypid.auth.throttle import LoginThrottle
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.core.indexes.index import Index
from pypid.core.indexes.render import HTML, JSON
from pypid.core.indexes.rendered_pages import page_bytes
from pypid.core.records import metrics
from pypid.core.records.login_failures import LoginFailures
from pypid.core.records.metrics import RequestStats
from pypid.core.util.bounded import put_newest
from pypid.storage.bucket import object_reads as presigning
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketStorage
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from pypid.upstream import cache, cached_page, file_metadata, page_view, source
from pypid.upstream.cache import PageCache
from pypid.upstream.confusion import UpstreamPolicy
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import UpstreamSource
from pypid.upstream.transfer import VerifyError
from pypid.web.server import connections as web_connections
from pypid.web.server.connections import ConnectionCounter
from tests.harness.fakes import FAST
from tests.harness.records import make_record


def upstream_page(project, files=1, upload_time=None):
    """An upstream page of C{project} listing C{files} wheels."""
    listed = tuple(
        UpstreamFile(filename=f"{project}-1.{i}-py3-none-any.whl",
                     url=f"https://files.upstream.example/{project}-1.{i}-py3-none-any.whl",
                     sha256=hashlib.sha256(f"{project} {i}".encode()).hexdigest(),
                     project=project, version=f"1.{i}", packagetype="bdist_wheel",
                     upload_time=upload_time)
        for i in range(files))
    return UpstreamPage(project=project, name=project, files=listed)


def _Config():
    """The defaults of L{pypid.config.upstream_settings.UpstreamConfig}, in C{cache} mode."""
    return attrs.evolve(load_config(None).upstream, mode="cache",
                        url="https://upstream.example/simple/")


class _NoIndex:
    """A hosted index holding nothing (every project is upstream), serving no namespace."""

    class rendered:
        namespaces = None

    def project(self, name):
        return None


class _Channel:
    """What L{ConnectionCounter} keeps of a connection."""


class _Address:
    def __init__(self, host):
        self.host = host


def _sync_pool(reactor, threadpool, f, *args):
    return succeed(f(*args))


class PutNewestTests(SynchronousTestCase):
    """L{put_newest}: the table every bounded memory here is kept in."""

    def test_order_and_cap(self):
        """A touched key moves last; past the cap the least recently touched go."""
        table = {}
        for key in "abc":
            put_newest(table, key, key.upper(), 3)
        put_newest(table, "a", "A2", 3)
        put_newest(table, "d", "D", 3)
        self.assertEqual(table, {"c": "C", "a": "A2", "d": "D"})
        self.assertEqual(list(table), ["c", "a", "d"])


class BoundsTests(SynchronousTestCase):
    """Each structure stays at its cap, and its memory stays flat, however much comes."""

    def assert_flat(self, fill, size, cap, rounds=(1, 2), quiet=()):
        """
        Fill a structure with C{fill(start, stop)} (distinct keys) to its cap,
        then measure the memory traced after one and after two more caps'
        worth of new keys: it must not grow past a small margin, and
        C{size()} must stay at most C{cap}.

        @param quiet: modules whose C{log} the structure writes to: their
            events go nowhere while it is measured. What is measured is
            the structure, not the log's observers (under C{trial -j},
            the worker sends each event to the manager and holds it until
            answered: 1 MB for a few hundred lines).
        """
        for module in quiet:
            self.patch(module, "log", Logger(namespace=module.__name__,
                                             observer=lambda event: None))
        fill(0, cap)
        gc.collect()
        tracemalloc.start()
        try:
            fill(cap, 2 * cap)
            gc.collect()
            once = tracemalloc.get_traced_memory()[0]
            self.assertLessEqual(size(), cap)
            fill(2 * cap, 4 * cap)
            gc.collect()
            twice = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertLessEqual(size(), cap)
        self.assertLessEqual(twice, once + max(once // 10, 64 << 10),
                             f"memory grew from {once} to {twice} bytes")
        return once, twice

    # -- the upstream --------------------------------------------------------------------

    def make_proxy(self, fetch=None, policy=None):
        clock = Clock()
        clock.advance(1_000_000)
        pages = PageCache(fetch or (lambda project, previous=None: succeed(upstream_page(project))),
                          clock, 900.0)
        source = UpstreamSource.create(_Config(), policy or UpstreamPolicy("cache"), pages,
                                       None, None, None, clock)
        return UpstreamProxy.create(source, _NoIndex(), lambda f: f"/files/{f.filename}")

    def make_sides(self, fetch=None, policy=None):
        """C{(pages, view, files, kept)}: the upstream's sides, as the proxy builds them."""
        upstream = self.make_proxy(fetch, policy)
        return upstream.source.pages, upstream.pages, upstream.files, upstream.source.kept

    def show(self, sides, project, kind):
        """The page of C{project} the view of C{sides} renders, fetched first."""
        pages, view = sides[:2]
        entry, _ = self.successResultOf(ensureDeferred(pages.get(project)))
        return view.rendered(project, entry, kind)

    def test_page_cache(self):
        """The upstream page cache keeps at most L{cache.MAX_ENTRIES} projects."""
        self.patch(cache, "MAX_ENTRIES", 500)
        pages = self.make_sides()[0]

        def fill(start, stop):
            for i in range(start, stop):
                self.successResultOf(ensureDeferred(pages.get(f"project-{i}")))
        self.assert_flat(fill, lambda: len(pages.entries), 500)
        self.assertEqual(len(pages.entries), 500)
        self.assertIn("project-1999", pages.entries)
        self.assertNotIn("project-0", pages.entries)

    def test_page_cache_failures(self):
        """Failed fetches remembered are at most L{cache.MAX_ENTRIES}."""
        self.patch(cache, "MAX_ENTRIES", 500)
        pages = self.make_sides(fetch=lambda project, previous=None: fail(UpstreamError("down")))[0]

        def fill(start, stop):
            for i in range(start, stop):
                self.failureResultOf(ensureDeferred(pages.get(f"project-{i}")), UpstreamError)
        self.assert_flat(fill, lambda: len(pages._failures), 500)

    def test_missing_names(self):
        """"No such project" answers are kept for at most L{cache.MAX_MISSING} names."""
        self.patch(cache, "MAX_MISSING", 500)
        pages = self.make_sides(fetch=lambda project, previous=None: fail(UpstreamNotFound(project)))[0]

        def fill(start, stop):
            for i in range(start, stop):
                self.successResultOf(ensureDeferred(pages.get(f"nothing-{i}")))
        self.assert_flat(fill, lambda: len(pages._missing), 500)
        self.assertEqual(pages.entries, {})

    def test_page_bytes(self):
        """The cached pages' estimated bytes stay within C{max_bytes}, and so does memory."""
        budget = 200 * cache.page_cost(upstream_page("project-0000", files=5))
        pages = PageCache(lambda project, previous=None: succeed(upstream_page(project)), Clock(), 900.0,
                          max_bytes=budget)

        def fill(start, stop):
            for i in range(start, stop):
                page = upstream_page(f"project-{i:04}", files=5)
                pages._keep(page.project, cached_page.CachedPage(page, 1.0))
        self.assert_flat(fill, lambda: len(pages.entries), 200)
        self.assertLessEqual(sum(cache.page_cost(e.page) for e in pages.entries.values()),
                             budget)

    def test_file_failures(self):
        """Failed upstream files are remembered for at most L{cache.MAX_FAILED_FILES} names."""
        self.patch(cache, "MAX_FAILED_FILES", 300)
        upstream = self.make_sides()[2]
        from twisted.python.failure import Failure

        def fill(start, stop):
            for i in range(start, stop):
                name = f"f-{i}.whl"
                upstream._downloads[name] = []
                upstream._downloaded(Failure(VerifyError("wrong")), name)
        self.assert_flat(fill, lambda: len(upstream._failed), 300)

    def test_changed_hashes_log(self):
        """Files whose upstream hash changed are logged once, for at most MAX_CHANGES_LOGGED."""
        self.patch(page_view, "MAX_CHANGES_LOGGED", 300)
        _, upstream, _, cached = self.make_sides()
        kept = upstream_page("project", files=1).files[0]

        def fill(start, stop):
            for i in range(start, stop):
                name = f"f-{i}-1.0-py3-none-any.whl"
                cached.put(make_record(filename=name))
                upstream._as_kept(attrs.evolve(kept, filename=name))
                cached.clear()
        self.assert_flat(fill, lambda: len(upstream._changed), 300, quiet=(page_view,))

    def test_miss_budgets(self):
        """Per-address budgets are kept for at most L{source.MAX_ADDRESSES} addresses."""
        self.patch(source, "MAX_ADDRESSES", 500)
        misses = source.MissBudget(600)

        def fill(start, stop):
            for i in range(start, stop):
                misses.charge(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1.0)
        self.assert_flat(fill, lambda: len(misses._buckets), 500)

    def test_page_cache_snapshot(self):
        """A snapshot of more pages than the cap is loaded down to the cap."""
        self.patch(cache, "MAX_ENTRIES", 50)
        pages = self.make_sides()[0]
        data = {f"project-{i}": cached_page.entry_to_json(
                    cached_page.CachedPage(upstream_page(f"project-{i}"), 1.0))
                for i in range(120)}
        pages.load_json(data)
        self.assertEqual(len(pages.entries), 50)

    def test_rendered_pages(self):
        """The rendered upstream pages are kept for at most L{page_view.MAX_RENDERED} projects."""
        self.patch(cache, "MAX_ENTRIES", 300)
        self.patch(page_view, "MAX_RENDERED", 300)
        sides = self.make_sides()
        upstream = sides[1]

        def fill(start, stop):
            for i in range(start, stop):
                for kind in (HTML, JSON):
                    self.show(sides, f"project-{i}", kind)
        self.assert_flat(fill, lambda: len(upstream._rendered), 300)
        self.assertEqual(len(upstream._rendered), 300)
        # (the bytes counted are those of the pages kept)
        self.assertEqual(upstream._rendered.bytes, sum(
            page_bytes(page) for _, memo in upstream._rendered.items()
            for page in memo.pages.values()))

    def test_rendered_memory(self):
        """Big pages are kept within L{page_view.RENDERED_MEMORY} bytes, the newest always."""
        sides = self.make_sides(fetch=lambda project, previous=None: succeed(upstream_page(project, 200)))
        upstream = sides[1]
        page = self.show(sides, "big-0", HTML)
        one = page_bytes(page)
        upstream._rendered.max_bytes = one * 5
        for i in range(1, 40):
            self.show(sides, f"big-{i}", HTML)
            self.assertLessEqual(upstream._rendered.bytes, one * 5 + one // 10)
        self.assertIn("big-39", upstream._rendered)
        self.assertLessEqual(len(upstream._rendered), 5)
        # A page larger than the whole budget is still served, and kept alone.
        upstream._rendered.max_bytes = one // 2
        self.show(sides, "big-40", HTML)
        self.assertEqual(list(upstream._rendered), ["big-40"])

    def test_hidden_files_log(self):
        """The projects whose hidden files were logged are at most L{page_view.MAX_RENDERED}."""
        self.patch(cache, "MAX_ENTRIES", 200)
        self.patch(page_view, "MAX_RENDERED", 200)
        sides = self.make_sides(
            fetch=lambda project, previous=None: succeed(upstream_page(project, 1, upload_time=999_990.0)),
            policy=UpstreamPolicy("cache", min_age=3600.0))
        upstream = sides[1]

        def fill(start, stop):
            for i in range(start, stop):
                self.show(sides, f"new-{i}", HTML)
        self.assert_flat(fill, lambda: len(upstream._hidden), 200, quiet=(page_view,))
        self.assertEqual(len(upstream._hidden), 200)

    def test_metadata_memory(self):
        """Upstream metadata in memory stays within L{file_metadata.METADATA_MEMORY}, tiny files too."""
        self.patch(file_metadata, "METADATA_MEMORY", 100_000)
        metadata = self.make_sides()[2]._metadata
        memory = metadata._memory

        def fill(start, stop):
            for i in range(start, stop):
                metadata.keep(f"f-{i}.whl", b"" if i % 2 else b"M" * 300)
        # (each entry costs at least 300 bytes: no more than 500 are kept)
        self.assert_flat(fill, lambda: len(memory), 500)
        self.assertLessEqual(memory.bytes, 100_000)
        self.assertEqual(memory.bytes, sum(
            file_metadata.held(name, data) for name, (data, _) in memory.items()))

    # -- S3 ------------------------------------------------------------------------------

    def test_presigned_urls(self):
        """The presigned URL cache holds at most L{presigning.MAX_PRESIGNED} URLs."""
        self.patch(presigning, "MAX_PRESIGNED", 500)
        clock = Clock()
        clock.advance(1_700_000_000)
        credentials = CredentialSource(Credentials("AKIDEXAMPLE", "secret"), None, clock)
        client = S3Client(Bucket("http://127.0.0.1:9", "bucket", "us-east-1"), credentials,
                          None, clock, run=None)
        storage = BucketStorage(client, Layout("pkgs/"), None, clock, self.mktemp())

        def fill(start, stop):
            for i in range(start, stop):
                storage.locate(make_record(path=f"file-{i}.whl"))
        self.assert_flat(fill, lambda: len(storage.state()["presigned"]), 500)
        self.assertEqual(len(storage.state()["presigned"]), 500)
        # A snapshot's URLs are taken back within the cap too.
        state = storage.state()
        state["presigned"].update({f"pkgs/more-{i}.whl": [f"u{i}", clock.seconds() + 3600]
                                   for i in range(300)})
        again = BucketStorage(client, Layout("pkgs/"), None, clock, self.mktemp())
        again.restore_state(state)
        self.assertEqual(len(again.state()["presigned"]), 500)

    # -- logins --------------------------------------------------------------------------

    def test_credential_cache(self):
        """The credential cache remembers at most C{cache_size} successes."""
        users = {f"user-{i}": hash_password(f"password-{i}", FAST) for i in range(160)}
        clock = Clock()
        checker = PasswordVerifier(users, clock, object(), cache_size=40,
                                   run_in_pool=_sync_pool)

        def fill(start, stop):
            for i in range(start, stop):
                self.assertTrue(self.successResultOf(
                    checker.verify(f"user-{i}", f"password-{i}")))
        self.assert_flat(fill, lambda: len(checker._cache), 40)
        self.assertEqual(len(checker._cache), 40)
        self.assertEqual(verifier.CACHE_SIZE, PasswordVerifier(users, clock, object())._cache_size)

    def test_throttle_table(self):
        """The login throttle remembers at most L{throttle.MAX_KEYS} keys."""
        self.patch(throttle, "MAX_KEYS", 1000)
        clock = Clock()
        table = LoginThrottle(clock)

        def fill(start, stop):
            for i in range(start, stop):
                user, address = f"user-{i}", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
                table.started(user, address)
                table.failed(user, address)
                clock.advance(0.001)
        self.assert_flat(fill, lambda: len(table._failures), 1000)
        self.assertEqual(len(table._failures), 1000)
        self.assertEqual(table._pending, {})

    def test_throttle_user_names(self):
        """
        The user names counted across clients (a flood of made-up names
        from many IPv6 networks) stay within L{throttle.MAX_KEYS}, and so do
        the pairs and networks.
        """
        self.patch(throttle, "MAX_KEYS", 1000)
        clock = Clock()
        table = LoginThrottle(clock)

        def fill(start, stop):
            for i in range(start, stop):
                user, address = f"made-up-{i}", f"2001:db8:{i // 65536:x}:{i % 65536:x}::1"
                table.started(user, address)
                table.failed(user, address)
                clock.advance(0.001)
        self.assert_flat(fill, lambda: len(table._identities), 1000)
        self.assertEqual(len(table._identities), 1000)
        self.assertEqual(len(table._failures), 1000)
        self.assertEqual(table._identity_pending, {})

    def test_throttle_good_clients(self):
        """The clients users logged in from stay within L{throttle.MAX_GOOD}."""
        self.patch(throttle, "MAX_GOOD", 1000)
        clock = Clock()
        table = LoginThrottle(clock)

        def fill(start, stop):
            for i in range(start, stop):
                user, address = f"user-{i % 50}", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
                table.started(user, address)
                table.succeeded(user, address)
        self.assert_flat(fill, lambda: len(table._good), 1000)
        self.assertEqual(len(table._good), 1000)

    def test_throttle_forgets_expired_first(self):
        """Past the cap, pairs whose failures left the window go before live ones."""
        self.patch(throttle, "MAX_KEYS", 100)
        clock = Clock()
        table = LoginThrottle(clock, max_failures=3)
        for i in range(30):
            table.started("old", f"10.0.0.{i}")
            table.failed("old", f"10.0.0.{i}")
        clock.advance(throttle.WINDOW + 1)
        for _ in range(3):
            table.started("victim", "10.9.9.9")
            table.failed("victim", "10.9.9.9")
        for i in range(30):
            table.started("new", f"10.1.0.{i}")
            table.failed("new", f"10.1.0.{i}")
        self.assertEqual(len(table._failures), 100)
        self.assertGreater(table.wait("victim", "10.9.9.9"), 0)
        self.assertNotIn(("old", "10.0.0.0"), table._failures)

    def test_replays(self):
        """Past C{limit} live jtis, exchanges are refused; none is forgotten before it expires."""
        clock = Clock()
        replays = ReplayCache(limit=500)
        counter = iter(range(10**9))

        def fill(start, stop):
            for _ in range(start, stop):
                key = ("ci", f"jti-{next(counter)}")
                # (each of another publisher: one alone stops at its share)
                owner = f"publisher:ci:{key[1]}"
                try:
                    replays.add(key, clock.seconds() + 60, clock.seconds(), owner)
                except TooMany:
                    # Live ones are kept: wait for them to expire.
                    self.assertTrue(replays.seen(("ci", "jti-0"), clock.seconds())
                                    or len(replays) == 500)
                    clock.advance(61)
                    replays.add(key, clock.seconds() + 60, clock.seconds(), owner)
        self.assert_flat(fill, lambda: len(replays), 500)
        self.assertEqual(len(replays._expiry), len(replays))
        self.assertEqual(publisher_tokens.MAX_REPLAYS, ReplayCache().limit)

    def test_minted_tokens(self):
        """Past C{limit} live minted tokens, minting is refused until some expire."""
        clock = Clock()
        tokens = PublisherTokens(clock, limit=200)

        def fill(start, stop):
            for i in range(start, stop):
                # (of fifty publishers: one alone stops at its share)
                publisher = f"publisher:ci:{i % 50}"
                try:
                    tokens.issue(publisher, ["project"], 60, f"token {i}")
                except TooMany:
                    clock.advance(61)
                    tokens.issue(publisher, ["project"], 60, f"token {i}")
        self.assert_flat(fill, lambda: len(tokens), 200)
        self.assertEqual(publisher_tokens.MAX_MINTED, PublisherTokens(clock).limit)

    def test_login_failures(self):
        """The audit log's failed-login folding keeps at most C{max_keys} keys a minute."""
        folding = LoginFailures()
        now = [0.0]

        def fill(start, stop):
            for i in range(start, stop):
                folding.add(now[0], "login-failed", f"user-{i}", f"10.0.{i // 256 % 256}.{i % 256}")
                now[0] += 0.001
        cap = folding.max_keys
        self.assert_flat(fill, lambda: len(folding._repeats), cap * 20)
        self.assertEqual(len(folding._repeats), cap)
        self.assertEqual(list(folding._overflow), [("login-failed", "refused")])

    # -- the web -------------------------------------------------------------------------

    def test_connections_per_address(self):
        """Addresses are counted only while they hold a connection, and each up to the limit."""
        counter = ConnectionCounter(limit=4)
        held = []

        def fill(start, stop):
            for i in range(start, stop):
                address = _Address(f"10.0.{i // 256 % 256}.{i % 256}")
                for _ in range(6):
                    channel = _Channel()
                    if counter.opened(channel, address, 0.0):
                        held.append(channel)
                while len(held) > 400:
                    counter.closed(held.pop(0))
        self.assert_flat(fill, lambda: len(counter._open), 100, quiet=(web_connections,))
        self.assertEqual(counter.open, 400)
        self.assertTrue(all(count <= 4 for count in counter._open.values()))
        for channel in held:
            counter.closed(channel)
        self.assertEqual(counter._open, {})

    def test_route_memo(self):
        """The metrics' route memo keeps at most its cap of paths, whatever clients ask."""
        self.patch(metrics, "_ROUTE_MEMO", 1000)
        stats = RequestStats()

        def fill(start, stop):
            for i in range(start, stop):
                stats.record(b"GET", f"/simple/project-{i}/".encode(), 200, 0.001, 100, 0,
                             lambda: False)
            stats.settle()
        self.assert_flat(fill, lambda: len(stats._memo), 1000)
        self.assertLessEqual(len(stats._routes), len(metrics.ROUTES))

    def test_project_pages(self):
        """
        The projects' rendered pages stay within C{[pypid] page_cache_size}
        however many projects a crawler walks, and the memory they hold is
        flat; the project list is kept apart.
        """
        index = Index(lambda record: record.filename)
        for i in range(1200):
            for version in ("1.0", "1.1", "2.0"):
                index.add(make_record(project=f"project-{i:05}", version=version))
        projects = [index.project(f"project-{i:05}") for i in range(1200)]
        one = sum(page_bytes(index.rendered.project_page(projects[0], kind)) for kind in (HTML, JSON))
        index.rendered.max_bytes = 300 * one + one // 2  # (gzip sizes differ a little)
        index.rendered.root_page(HTML)

        def fill(start, stop):
            for project in projects[start:stop]:
                for kind in (HTML, JSON):
                    index.rendered.project_page(project, kind)
        self.assert_flat(fill, lambda: index.rendered.kept_projects, 300)
        # (the budget is 300 times the first project's pages: the others'
        # gzip sizes differ by a few bytes, 2,429 to 2,435 measured, so the
        # last may not fit; the budget itself is never passed)
        self.assertIn(index.rendered.kept_projects, (299, 300))
        self.assertLessEqual(index.rendered.bytes, index.rendered.max_bytes)
        self.assertEqual(index.rendered.bytes, sum(
            page_bytes(value) for project in projects for value in project.rendered.values()))
        self.assertIs(index.rendered.root_page(HTML), index.rendered.root_page(HTML))
