"""
Tests for L{pypid.upstream.machine_share}: an upstream's cache shared by
two workers over one folder and one ring: a page one fetched is the
other's without asking the upstream, a file's fetch waits for the lock
another worker holds, pins and wrong bytes are told, a worker's own
announcements are not news to it, a worker that starts reads the pages
written since its snapshot.
"""

import hashlib
import json
import os

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.distribution import inspect
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.shared_folder import SharedFolder
from pypid.upstream.cache import PageCache
from pypid.upstream.cached_page import CachedPage
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.machine_share import LOCK_RETRY, SINCE_SLACK, MachineShare
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, write_file


def _page(project, versions):
    files = tuple(
        UpstreamFile(filename=f"{project}-{v}-py3-none-any.whl",
                     url=f"https://files.upstream.example/{project}-{v}-py3-none-any.whl",
                     sha256=hashlib.sha256(f"{project} {v}".encode()).hexdigest(),
                     project=project, version=v, packagetype="bdist_wheel")
        for v in versions)
    return UpstreamPage(project=project, name=project, files=files)


class MachineShareTests(SynchronousTestCase):
    """Two workers' shares of one upstream cache."""

    def setUp(self):
        self.ring = ChangeRing.create(slots=16, slot_size=512)
        self.addCleanup(self.ring.close)
        self.root = os.path.abspath(self.mktemp())
        self.clock = Clock()
        self.journal = MemoryJournal(Clock())
        self.one, self.two = self.worker(1), self.worker(2)
        self.news = {1: [], 2: []}
        for number, share in ((1, self.one), (2, self.two)):
            share.on_news(lambda news, number=number: self.news[number].append(news))

    def worker(self, number):
        ring = ChangeRing.attach(self.ring.fileno(), number)
        self.addCleanup(ring.close)
        hub = Hub(ring)
        folder = SharedFolder(LocalStorage(self.root, run_now, Clock(), worker=number),
                              StoreChanges(self.journal, "", Clock()), hub, run_now, Clock())
        self.successResultOf(folder.prepare())
        return MachineShare(hub, folder, self.root, run_now, self.clock)

    def cache(self, share, fetch):
        """A worker's page cache over C{share}, taking in the others' pages (as its source does)."""
        cache = PageCache(fetch, self.clock, ttl=600.0, share=share)
        share.on_news(lambda news: [cache.adopt(project, *kept)
                                    for project, kept in news.pages.items()])
        return cache

    def test_page_shared(self):
        """
        A page worker 1 fetched is in worker 2's next look, as kept there
        (fetched when it was), and worker 2 keeps it without asking.
        """
        asked = []

        def fetch(project, previous):
            asked.append(project)
            return succeed(_page(project, ["1.0", "2.0"]))
        one = self.cache(self.one, fetch)
        two = self.cache(self.two, lambda project, previous: fail(AssertionError("asked")))
        self.clock.advance(100)
        entry, stale = self.successResultOf(one.get("shared-app"))
        self.assertEqual((asked, stale), (["shared-app"], False))
        self.assertIsNone(self.successResultOf(self.two.sync()))
        [news] = self.news[2]
        self.assertEqual(news.pages, {"shared-app": (entry, {"going": {}, "lifting": None})})
        two.adopt("shared-app", *news.pages["shared-app"])
        self.assertEqual(two.hit("shared-app"), entry)
        # (its own page is no news to worker 1)
        self.successResultOf(self.one.sync())
        self.assertEqual(self.news[1], [])

    def test_page_fetched_once(self):
        """
        Two workers asked for one page at once: the second waits for the
        first's turn and takes its page in; the upstream is asked once.
        A failed fetch lets go of the turn too.
        """
        asked, answers = [], []

        def fetch(project, previous):
            asked.append(project)
            answers.append(Deferred())
            return answers[-1]
        one, two = self.cache(self.one, fetch), self.cache(self.two, fetch)
        self.clock.advance(100)
        first = Deferred.fromCoroutine(one.get("raced"))
        second = Deferred.fromCoroutine(two.get("raced"))
        self.clock.advance(LOCK_RETRY)
        self.assertEqual(asked, ["raced"])
        answers[0].callback(_page("raced", ["1.0"]))
        entry, _ = self.successResultOf(first)
        self.clock.advance(LOCK_RETRY)
        self.assertEqual(self.successResultOf(second), (entry, False))
        self.assertEqual(asked, ["raced"])
        failing = Deferred.fromCoroutine(one.get("failing"))
        answers[1].errback(UpstreamError("down"))
        self.failureResultOf(failing, UpstreamError)
        again = Deferred.fromCoroutine(two.get("failing"))
        self.assertEqual(asked, ["raced", "failing", "failing"])
        answers[2].callback(_page("failing", ["1.0"]))
        self.assertEqual(self.successResultOf(again)[0].page.project, "failing")

    def test_older_page_not_taken(self):
        """A page older than the one kept here is not taken over it."""
        cache = self.cache(self.two, lambda project, previous: succeed(_page(project, ["3.0"])))
        self.clock.advance(200)
        newer, _ = self.successResultOf(cache.get("older"))
        cache.adopt("older", CachedPage(_page("older", ["1.0"]), 100.0))
        self.assertEqual(cache.hit("older"), newer)

    def test_one_fetch_at_a_time(self):
        """
        A worker's turn at a file waits while another holds its lock, and
        takes in what the other did once it has it.
        """
        release = self.successResultOf(self.one.turn("f-1.0-py3-none-any.whl"))
        waiting = Deferred.fromCoroutine(self.two.turn("f-1.0-py3-none-any.whl"))
        self.assertNoResult(waiting)
        self.clock.advance(LOCK_RETRY)
        self.assertNoResult(waiting)
        # (another file's turn is not held by it)
        other = self.successResultOf(self.two.turn("g-1.0-py3-none-any.whl"))
        other()
        self.one.failed("f-1.0-py3-none-any.whl", "its bytes were wrong", 12.5)
        release()
        self.clock.advance(LOCK_RETRY)
        self.successResultOf(waiting)()
        self.assertEqual([news.failures for news in self.news[2]],
                         [{"f-1.0-py3-none-any.whl": (12.5, "its bytes were wrong")}])

    def test_pins(self):
        """A pin is told to the others."""
        self.two.pinned("p-1.0-py3-none-any.whl")
        self.successResultOf(self.one.sync())
        self.assertEqual([news.pins for news in self.news[1]], [["p-1.0-py3-none-any.whl"]])

    def test_files_of_the_folder(self):
        """A file kept in the folder by another worker is news, read from the folder."""
        filename, data = make_wheel("kept-app", "1.0")
        folder = self.one._folder
        temp = write_file(os.path.join(folder.temp_dir, "up-" + filename), data)
        inspected = inspect(temp, filename, filename, 1767225600.0)
        self.successResultOf(folder.publish(temp, inspected.record, inspected.metadata))
        self.successResultOf(self.two.sync())
        [news] = self.news[2]
        self.assertEqual([(c.filename, c.record.sha256) for c in news.files],
                         [(filename, inspected.record.sha256)])

    def test_unreadable_page(self):
        """A page that cannot be read is left out (the worker asks the upstream itself)."""
        cache = self.cache(self.one, lambda project, previous: succeed(_page(project, ["1.0"])))
        self.successResultOf(cache.get("broken"))
        for name in os.listdir(os.path.join(self.root, ".pypid", "machine", "pages")):
            with open(os.path.join(self.root, ".pypid", "machine", "pages", name), "w") as f:
                f.write("{")
        self.successResultOf(self.two.sync())
        self.assertEqual(self.news[2], [])

    def test_removal_held_and_shared(self):
        """
        A removal one worker's fetch saw is held by the other too, so that
        the other's next fetch confirms it; a project gone is shared where
        it takes a page away, never as a miss of a name never kept.
        """
        pages = {"going-app": _page("going-app", ["1.0", "2.0"])}

        def fetch(project, previous):
            page = pages.get(project)
            if page is None:
                return fail(UpstreamNotFound(project))
            return succeed(page)
        one = self.cache(self.one, fetch)
        two = self.cache(self.two, fetch)
        self.successResultOf(one.get("going-app"))
        self.successResultOf(self.two.sync())
        two.adopt("going-app", *self.news[2][-1].pages["going-app"])
        pages["going-app"] = _page("going-app", ["2.0"])
        self.clock.advance(700)
        # (stale: served, and fetched again behind)
        self.successResultOf(one.get("going-app"))
        # (held: still listed, until a fetch a minute later says so again)
        self.assertEqual(len(one.cached("going-app").page.files), 2)
        self.successResultOf(self.two.sync())
        two.adopt("going-app", *self.news[2][-1].pages["going-app"])
        self.clock.advance(700)
        self.successResultOf(two.get("going-app"))
        self.assertEqual([f.version for f in two.cached("going-app").page.files], ["2.0"])
        # (gone upstream: shared, as it takes the page away)
        del pages["going-app"]
        self.clock.advance(700)
        self.successResultOf(two.get("going-app"))
        self.clock.advance(700)
        self.successResultOf(two.get("going-app"))
        self.assertIsNone(two.cached("going-app").page)
        self.successResultOf(self.one.sync())
        page, held = self.news[1][-1].pages["going-app"]
        self.assertIsNone(page.page)
        one.adopt("going-app", page, held)
        self.assertIsNone(one.cached("going-app").page)
        before = len(self.news[1])
        self.successResultOf(two.get("never-kept"))
        self.successResultOf(self.one.sync())
        self.assertEqual(len(self.news[1]), before)

    def test_pages_since(self):
        """
        A worker that starts reads the pages the others wrote since its
        snapshot was saved (a little before, L{SINCE_SLACK}): the
        announcements of them went by before it was on the ring. Older
        ones, and files of an older server that do not name their
        project, are left to the snapshot.
        """
        cache = self.cache(self.one, lambda project, previous: succeed(_page(project, ["1.0"])))
        self.clock.advance(100)
        for project in ("fresh-app", "stale-app", "no-name-app"):
            self.successResultOf(cache.get(project))
        pages = os.path.join(self.root, ".pypid", "machine", "pages")
        by_name = {}
        for name in os.listdir(pages):
            with open(os.path.join(pages, name)) as f:
                by_name[json.load(f)["project"]] = os.path.join(pages, name)
        saved = 1_000_000.0
        os.utime(by_name["stale-app"], (saved - SINCE_SLACK - 1, saved - SINCE_SLACK - 1))
        with open(by_name["no-name-app"]) as f:
            data = json.load(f)
        del data["project"]
        with open(by_name["no-name-app"], "w") as f:
            json.dump(data, f)
        read = self.successResultOf(self.two.pages_since(saved))
        self.assertEqual(sorted(read), ["fresh-app"])
        entry, held = read["fresh-app"]
        self.assertEqual(entry, cache.cached("fresh-app"))

    def test_pages_since_none_written(self):
        """A machine whose workers wrote no page yet has none to read."""
        self.assertEqual(self.successResultOf(self.two.pages_since(0.0)), {})

    def test_refresh_at_the_same_instant(self):
        """
        A refresh on a clock that did not move since the page was kept
        (as a test's clock) asks the upstream again: a page of the same
        instant is no proof that another worker fetched it meanwhile.
        """
        versions = ["1.0"]
        cache = self.cache(self.one, lambda project, previous: succeed(
            _page(project, list(versions))))
        self.successResultOf(cache.get("moving-app"))
        versions.append("2.0")
        entry = self.successResultOf(cache.refresh("moving-app"))
        self.assertEqual([f.version for f in entry.page.files], ["1.0", "2.0"])
