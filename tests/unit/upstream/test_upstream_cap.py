"""
Tests for the size cap of the upstream file cache (issue 29, C{[upstream]
max_cache_size}): L{pypid.upstream.kept.KeptFiles} in the order of
eviction, and L{pypid.upstream.downloads.UpstreamFiles} evicting the least
recently downloaded files past the cap (pre-cached ones protected), a file
evicted fetched again when asked for, the order kept in the snapshot's
state, and the start-up checks of the cap.
"""

import attrs
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import ConfigError, load_config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.storage.base.interface import StorageError
from pypid.upstream.cache import PageCache
from pypid.upstream.confusion import UpstreamPolicy
from pypid.upstream.fetch import UpstreamClient
from pypid.upstream.file_cache import EVICTION_DELAY, EvictionBatches
from pypid.upstream.kept import KeptFiles
from pypid.upstream.proxy import UpstreamProxy
from pypid.upstream.source import UpstreamSource
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now
from tests.harness.memory_storage import MemoryStorage
from tests.harness.upstream import INDEX_A, ORIGIN_A, Origins, drain, page

NOW = 1767225600.0


def record(name, size):
    return FileRecord(name, "p", "p", "1.0", "bdist_wheel", name, size, "ab" * 32, NOW)


class KeptFilesTests(SynchronousTestCase):
    """The table of kept files, least recently downloaded first."""

    def test_order_and_size(self):
        kept = KeptFiles()
        for name in ("a", "b", "c"):
            kept.put(record(name, 10))
        self.assertEqual(kept.size, 30)
        kept.touch("a")
        self.assertEqual([r.filename for r in kept], ["b", "c", "a"])
        self.assertEqual([r.filename for r in kept.over(15, True)], ["b", "c"])
        self.assertEqual(kept.over(30, True), [])
        kept.pin("b")
        self.assertEqual([r.filename for r in kept.over(15, True)], ["c", "a"])
        self.assertEqual([r.filename for r in kept.over(15, False)], ["b", "c"])
        self.assertEqual([r.filename for r in kept.over(15, True, busy=["c"])], ["a"])
        changes = kept.changes
        kept.remove("b")
        self.assertEqual((kept.size, len(kept), kept.changes), (20, 2, changes + 1))
        self.assertEqual(kept.pinned(), [])
        kept.put(record("a", 15))  # (replaced: its size counted once)
        self.assertEqual(kept.size, 25)


class _SlowEvicting:
    """An evicting storage whose each removal ends when the test says (C{ends})."""

    def __init__(self):
        self.batches = []
        self.ends = []

    def evict(self, records):
        self.batches.append([r.filename for r in records])
        self.ends.append(Deferred())
        return self.ends[-1]


class EvictionBatchesTests(SynchronousTestCase):
    """The removal of evicted files: one batch per L{EVICTION_DELAY}, waited for while under way."""

    def setUp(self):
        self.clock = Clock()
        self.storage = _SlowEvicting()
        self.batches = EvictionBatches(self.storage, self.clock)

    def test_one_batch_per_delay(self):
        """Files handed over within the delay are removed in one call, after it."""
        self.batches.remove_later(record("a", 10))
        self.clock.advance(EVICTION_DELAY / 2)
        self.batches.remove_later(record("b", 10))
        self.assertEqual(self.storage.batches, [])
        self.clock.advance(EVICTION_DELAY / 2)
        self.assertEqual(self.storage.batches, [["a", "b"]])
        self.batches.remove_later(record("c", 10))
        self.clock.advance(EVICTION_DELAY)
        self.assertEqual(self.storage.batches, [["a", "b"], ["c"]])

    def test_under_way_until_removed(self):
        """A file's eviction is under way until its batch's removal ends, then counted."""
        self.assertIsNone(self.batches.under_way("a"))
        self.batches.remove_later(record("a", 10))
        waiting = self.batches.under_way("a")
        self.assertNoResult(waiting)
        self.clock.advance(EVICTION_DELAY)
        self.assertIs(self.batches.under_way("a"), waiting)
        self.storage.ends[0].callback(None)
        self.assertIsNone(self.successResultOf(waiting))
        self.assertIsNone(self.batches.under_way("a"))
        self.assertEqual(self.batches.evicted, 1)

    def test_failed_removal(self):
        """A removal that fails ends the wait all the same, and counts no file evicted."""
        self.batches.remove_later(record("a", 10))
        waiting = self.batches.under_way("a")
        self.clock.advance(EVICTION_DELAY)
        self.storage.ends[0].errback(StorageError("disk gone"))
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(self.batches.evicted, 0)
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class EvictionTests(SynchronousTestCase):
    """A source with a cap of about two files' bytes, on memory storage."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.wheels = [make_wheel("widget", f"1.{n}") for n in range(4)]
        self.origins.route(INDEX_A + "widget/", page("widget", [
            (name, f"http://{ORIGIN_A}/f/{name}", data) for name, data in self.wheels]))
        for name, data in self.wheels:
            self.origins.route(f"http://{ORIGIN_A}/f/{name}", data)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        cap = max(len(data) for _, data in self.wheels) * 2 + 10
        self.source = self.make(cap)

    def make(self, cap, keep_precached=True):
        """A source of the upstream over the storage, with this cap."""
        config = attrs.evolve(load_config(None).upstream, mode="cache", url=INDEX_A,
                              max_cache_size=cap, max_file_size=cap // 2,
                              keep_precached=keep_precached)
        client = UpstreamClient(self.agent, self.clock, INDEX_A, (ORIGIN_A,), timeout=5)
        pages = PageCache(lambda project, previous: ensureDeferred(client.page(project, previous)), self.clock,
                          600.0)
        source = UpstreamSource.create(config, UpstreamPolicy("cache"), pages, client,
                                       self.storage, run_now, self.clock)
        index = Index(file_url_for(None))
        self.proxy = UpstreamProxy.create(source, index, index.file_url)
        return source

    def fetch(self, n):
        """The kept record of the C{n}th wheel, fetched if it is not kept."""
        drain(self.agent, ensureDeferred(self.source.pages.get("widget")))
        listed = self.proxy.pages.listed("widget", self.wheels[n][0])
        return self.successResultOf(drain(self.agent, self.source.files.fetch(listed)))

    def kept(self):
        return [r.filename for r in self.source.kept]

    def settle(self):
        """Let the batch of evicted files be removed from the storage."""
        self.clock.advance(EVICTION_DELAY)

    def stored(self):
        return sorted(self.storage.objects)

    def test_least_recently_downloaded_evicted(self):
        """Past the cap, the least recently downloaded go; a file evicted is fetched again."""
        names = [name for name, _ in self.wheels]
        self.fetch(0)
        self.fetch(1)
        self.source.files.served_kept(self.source.files.kept(names[0]))
        self.fetch(2)
        self.assertEqual(self.kept(), [names[0], names[2]])
        # (removed from the storage with the next batch)
        self.assertEqual(self.stored(), sorted(names[:3]))
        self.settle()
        self.assertEqual(self.stored(), sorted([names[0], names[2]]))
        self.assertLessEqual(self.source.kept.size, self.source.files._config.max_cache_size)
        self.assertEqual(self.source.files.evicted, 1)
        # asked for again: fetched again, and the least recent goes
        fetches = len(self.origins.seen)
        self.fetch(1)
        self.assertEqual(len(self.origins.seen), fetches + 1)
        self.assertEqual(self.kept(), [names[2], names[1]])
        self.settle()
        self.assertEqual(self.stored(), sorted([names[1], names[2]]))
        # the snapshot's state keeps the order, and a change to save
        self.assertEqual([f["filename"] for f in self.source.state()["files"]],
                         [names[2], names[1]])

    def test_report(self):
        """
        What C{GET /api/indexes} says of the cache (issue 44): the files
        kept and their bytes against the cap, the evictions, how files
        and pages were served.
        """
        names = [name for name, _ in self.wheels]
        for n in range(3):
            self.fetch(n)
        self.source.files.served_kept(self.source.files.kept(names[2]))
        self.settle()
        report = self.source.report()
        self.assertEqual((report["mode"], report["pages"]["cached"]), ("cache", 1))
        files = report["files"]
        self.assertEqual((files["kept"], files["bytes"], files["max_bytes"], files["evicted"]),
                         (2, self.source.kept.size, self.source.files._config.max_cache_size,
                          1))
        self.assertEqual(files["served"], dict(self.source.files.served))
        self.assertEqual(files["served"]["miss"], 3)
        self.assertGreaterEqual(sum(report["pages"]["served"].values()), 1)

    def test_precached_protected(self):
        """Files pre-caching asked for stay, the others go around them."""
        names = [name for name, _ in self.wheels]
        self.source.files.pin(names[0])
        self.fetch(0)
        self.fetch(1)
        self.fetch(2)
        self.fetch(3)
        self.assertEqual(self.kept(), [names[0], names[3]])
        self.assertEqual(self.source.state()["pinned"], [names[0]])

    def test_precached_not_protected(self):
        self.source = self.make(self.source.files._config.max_cache_size, keep_precached=False)
        names = [name for name, _ in self.wheels]
        self.source.files.pin(names[0])
        for n in range(3):
            self.fetch(n)
        self.assertEqual(self.kept(), [names[1], names[2]])

    def test_restart_keeps_the_order(self):
        """A start takes the snapshot's order back, and evicts what is over a smaller cap."""
        names = [name for name, _ in self.wheels]
        self.fetch(0)
        self.fetch(1)
        self.source.files.served_kept(self.source.files.kept(names[0]))
        state = self.source.state()
        # (room for one file now)
        again = self.make(max(len(data) for _, data in self.wheels) + 10)
        self.successResultOf(again.load(state, NOW))
        self.assertEqual([r.filename for r in again.kept], [names[0]])
        self.settle()
        self.assertEqual(self.stored(), [names[0]])

    def test_fetch_waits_for_its_eviction(self):
        """A file asked for while its removal waits is fetched once the removal is done."""
        names = [name for name, _ in self.wheels]
        for n in range(3):
            self.fetch(n)
        self.assertNotIn(names[0], self.kept())
        self.fetch(3)  # (names[1] joins the batch)
        drain(self.agent, ensureDeferred(self.source.pages.get("widget")))
        waiting = self.source.files.fetch(self.proxy.pages.listed("widget", names[0]))
        self.assertNoResult(waiting)
        self.settle()
        self.assertEqual(self.successResultOf(drain(self.agent, waiting)).filename, names[0])
        self.assertIn(names[0], self.stored())


class ConfigTests(SynchronousTestCase):
    def load(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return load_config(path, (), environ={})

    def test_read(self):
        config = self.load("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
                           "max_cache_size = 50G\nkeep_precached = no\n")
        self.assertEqual(config.upstream.max_cache_size, 50 << 30)
        self.assertFalse(config.upstream.keep_precached)
        self.assertEqual(load_config(None).upstream.max_cache_size, 0)

    def test_smaller_than_a_file(self):
        with self.assertRaises(ConfigError) as caught:
            self.load("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
                      "max_cache_size = 100M\n")
        self.assertIn("[upstream] max_cache_size: smaller than [upstream] max_file_size",
                      str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            self.load("[upstream]\nmax_cache_size = -5G\n")
        self.assertIn("[upstream] max_cache_size: expected a size", str(caught.exception))
