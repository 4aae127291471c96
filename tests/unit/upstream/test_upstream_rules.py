"""
Tests of the upstream rules (L{pypid.upstream.confusion}) and the page cache
(L{pypid.upstream.cache}): pure logic, with a clock and a fake fetch.
"""

import json

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.model import FileRecord
from pypid.upstream.cache import Offline, PageCache
from pypid.upstream.confusion import UpstreamPolicy, matches, merged
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.parser import upstream_status

NOW = 1_800_000_000.0
DAY = 86400.0


def upstream_file(filename, upload_time=NOW - 30 * DAY, **extra):
    """An upstream file of C{holy-grail} (or of the project the filename names)."""
    project, version = filename.split("-")[0].replace("_", "-"), filename.split("-")[1]
    version = version.removesuffix(".tar.gz")
    packagetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    return UpstreamFile(filename=filename, url="https://upstream.example/f/" + filename,
                        sha256="a" * 64, project=project, version=version,
                        packagetype=packagetype, upload_time=upload_time, **extra)


def page(*files, project="holy-grail"):
    """An upstream page of C{project}."""
    return UpstreamPage(project=project, name=project, files=tuple(files))


def hosted(filename):
    """A hosted record."""
    return FileRecord(filename=filename, project="holy-grail", name="holy-grail",
                      version="1.0", packagetype="sdist" if filename.endswith(".tar.gz")
                      else "bdist_wheel", path=filename, size=1, sha256="b" * 64,
                      upload_time=NOW)


class PolicyTests(SynchronousTestCase):
    """Which projects may be asked upstream, and which files shown."""

    def test_none(self):
        """Without an upstream nothing is asked."""
        self.assertFalse(UpstreamPolicy().decide("holy-grail", False).allowed)

    def test_hosted_never_asked(self):
        """A hosted name is not asked upstream, in any spelling."""
        policy = UpstreamPolicy(mode="cache")
        for spelling in ("holy-grail", "Holy_Grail", "holy.grail"):
            decision = policy.decide(spelling, hosted=True)
            self.assertFalse(decision.allowed)
            self.assertIn("hosted here", decision.reason)
        self.assertTrue(policy.decide("holy-grail", hosted=False).allowed)

    def test_private(self):
        """Names matching a private pattern never leave the server, in any spelling."""
        policy = UpstreamPolicy(mode="cache", private=("acme-*", "corp-*"))
        for name in ("acme-tools", "ACME.Tools", "corp_db", "corp-"):
            self.assertFalse(policy.decide(name, hosted=False).allowed, name)
        self.assertTrue(policy.decide("acmetools", hosted=False).allowed)

    def test_merge(self):
        """An allow-listed hosted project is asked, to merge; private still wins."""
        policy = UpstreamPolicy(mode="cache", merge=("holy-*",), private=("holy-secret",))
        decision = policy.decide("Holy.Grail", hosted=True)
        self.assertTrue(decision.allowed)
        self.assertTrue(decision.merge)
        self.assertFalse(policy.decide("holy-secret", hosted=True).allowed)

    def test_cooldown(self):
        """Files younger than min_age are hidden, except for exempt projects."""
        old = upstream_file("holy_grail-1.0.tar.gz", NOW - 30 * DAY)
        new = upstream_file("holy_grail-2.0.tar.gz", NOW - 3600)
        policy = UpstreamPolicy(mode="cache", min_age=7 * DAY)
        self.assertEqual(policy.visible(page(old, new), NOW), ((old,), (new,)))
        exempt = UpstreamPolicy(mode="cache", min_age=7 * DAY, min_age_exempt=("holy-*",))
        self.assertEqual(exempt.visible(page(old, new), NOW), ((old, new), ()))
        self.assertEqual(UpstreamPolicy(mode="cache").visible(page(old, new), NOW),
                         ((old, new), ()))

    def test_merged_local_wins(self):
        """Upstream files with a hosted filename, or naming a hosted distribution, are dropped."""
        wheel = "holy_grail-1.0-py3-none-any.whl"
        spelled = upstream_file("Holy.Grail-1.0-py3-none-any.whl")
        same = upstream_file(wheel)
        other_sdist = upstream_file("holy_grail-1.0.zip")
        newer = upstream_file("holy_grail-2.0-py3-none-any.whl")
        kept = merged([hosted(wheel), hosted("holy_grail-1.0.tar.gz")],
                      [same, spelled, other_sdist, newer])
        self.assertEqual(kept, (newer,))

    def test_matches(self):
        """Glob patterns match normalized names."""
        self.assertTrue(matches("acme-x", ("acme-*",)))
        self.assertFalse(matches("xacme-x", ("acme-*",)))


class PageCacheTests(SynchronousTestCase):
    """The upstream page cache."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.calls = []
        self.answers = {}

    def fetch(self, project, previous=None):
        """Record the call and answer from C{self.answers} (a Deferred, page or error)."""
        self.calls.append(project)
        answer = self.answers.get(project)
        if isinstance(answer, Deferred):
            return answer
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)

    def cache(self, **kwargs):
        """A cache with a 60 s TTL over L{fetch}."""
        return PageCache(self.fetch, self.clock, 60.0, **kwargs)

    def get(self, cache, project="holy-grail"):
        """The result of C{cache.get}, as a Deferred."""
        return ensureDeferred(cache.get(project))

    def test_miss_then_hit(self):
        """A miss fetches; within the TTL the page is served without asking again."""
        self.answers["holy-grail"] = page(upstream_file("holy_grail-1.0.tar.gz"))
        cache = self.cache()
        entry, stale = self.successResultOf(self.get(cache))
        self.assertEqual(entry.page, self.answers["holy-grail"])
        self.assertFalse(stale)
        self.clock.advance(59)
        self.successResultOf(self.get(cache))
        self.assertEqual(self.calls, ["holy-grail"])

    def test_single_flight(self):
        """Concurrent misses for one project make exactly one upstream request."""
        pending = self.answers["holy-grail"] = Deferred()
        cache = self.cache()
        gets = [self.get(cache) for _ in range(5)]
        for d in gets:
            self.assertNoResult(d)
        pending.callback(page())
        for d in gets:
            self.assertEqual(self.successResultOf(d)[0].page, page())
        self.assertEqual(self.calls, ["holy-grail"])

    def test_stale_while_refreshing(self):
        """Past the TTL the old page is served at once while a refresh runs."""
        self.answers["holy-grail"] = page(upstream_file("holy_grail-1.0.tar.gz"))
        cache = self.cache()
        self.successResultOf(self.get(cache))
        self.clock.advance(61)
        newer = page(upstream_file("holy_grail-1.0.tar.gz"),
                     upstream_file("holy_grail-2.0.tar.gz"))
        pending = self.answers["holy-grail"] = Deferred()
        entry, stale = self.successResultOf(self.get(cache))
        self.assertTrue(stale)
        self.assertEqual(entry.page.files[0].filename, "holy_grail-1.0.tar.gz")
        pending.callback(newer)
        entry, stale = self.successResultOf(self.get(cache))
        self.assertEqual((entry.page, stale), (newer, False))

    def expired(self, cache, project="holy-grail"):
        """The page asked for past its time to live (fetched again behind): what is kept then."""
        self.clock.advance(61)
        self.successResultOf(self.get(cache, project))
        return cache.cached(project).page

    def test_gone_once_is_no_change(self):
        """
        Issue 59, finding 7: a fetch on expiry that no longer lists files of
        the page kept, or the project's 404, is taken only once a fetch
        C{confirm_gone} seconds before or more said the same; a flap keeps
        the page, and never drops it. An administrator's refresh takes what
        the upstream says at once.
        """
        one, two = upstream_file("holy_grail-1.0.tar.gz"), upstream_file("holy_grail-2.0.tar.gz")
        both, short = page(one, two), page(two)
        for gone in (short, UpstreamNotFound("holy-grail")):
            with self.subTest(gone=gone):
                self.answers["holy-grail"] = both
                cache = self.cache(confirm_gone=120.0)
                self.successResultOf(self.get(cache))
                loaded = []
                cache.on_loaded(lambda project, found, loaded=loaded: loaded.append(found))
                # (a flap: gone once, listed again at the next fetch)
                self.answers["holy-grail"] = gone
                self.assertEqual(self.expired(cache), both)
                self.answers["holy-grail"] = both
                self.assertEqual(self.expired(cache), both)
                self.assertEqual(loaded, [both, both])
                # (gone on two fetches too close together: still kept)
                self.answers["holy-grail"] = gone
                self.assertEqual(self.expired(cache), both)
                self.assertEqual(self.expired(cache), both)
                # (far enough apart: taken)
                expected = short if gone is short else None
                self.assertEqual(self.expired(cache), expected)
                self.assertEqual(loaded[-1], expected)
                # (an administrator's refresh: at once)
                self.answers["holy-grail"] = both
                self.successResultOf(self.get(cache))
                self.answers["holy-grail"] = gone
                self.assertEqual(self.successResultOf(cache.refresh("holy-grail")).page,
                                 expected)

    def test_each_file_on_its_own(self):
        """
        A page that loses its oldest file at each fetch (a retention policy
        upstream) shows its new files at once, and takes each removal once
        two fetches far enough apart said it (the wait does not start again).
        """
        files = [upstream_file(f"holy_grail-{n}.0.tar.gz") for n in range(1, 9)]
        self.answers["holy-grail"] = page(*files[:5])
        cache = self.cache(confirm_gone=100.0)
        self.successResultOf(self.get(cache))
        for step in range(1, 4):
            self.answers["holy-grail"] = page(*files[step:step + 5])
            listed = [f.filename for f in self.expired(cache).files]
            # (every new file at once; the removed ones until confirmed)
            self.assertEqual(listed[-1], files[step + 4].filename)
            self.assertIn(files[step - 1].filename, listed)
        listed = [f.filename for f in self.expired(cache).files]
        self.assertNotIn(files[0].filename, listed)
        self.assertIn(files[3].filename, listed)

    def test_status_taken_at_once(self):
        """A quarantine the upstream gives, with files gone, is taken at the first fetch."""
        self.answers["holy-grail"] = page(upstream_file("holy_grail-1.0.tar.gz"))
        cache = self.cache()
        self.successResultOf(self.get(cache))
        quarantined = attrs.evolve(page(), status=upstream_status("quarantined", "malware"))
        self.answers["holy-grail"] = quarantined
        self.assertEqual(self.expired(cache).status, quarantined.status)

    def test_lift_confirmed(self):
        """
        Issue 59 (review): one page without the quarantine (a stale replica)
        does not lift it; two far enough apart do.
        """
        bad = upstream_file("holy_grail-6.6.tar.gz")
        self.answers["holy-grail"] = attrs.evolve(
            page(bad), status=upstream_status("quarantined", "malware"))
        cache = self.cache(confirm_gone=100.0)
        self.successResultOf(self.get(cache))
        self.answers["holy-grail"] = page(bad)
        self.assertTrue(self.expired(cache).quarantined)
        self.assertTrue(self.expired(cache).quarantined)
        self.assertFalse(self.expired(cache).quarantined)

    def test_other_statuses_held_too(self):
        """An archived project's files are not taken away by one 404 either."""
        archived = attrs.evolve(page(upstream_file("holy_grail-2.0.tar.gz")),
                                status=upstream_status("archived", None))
        self.answers["holy-grail"] = archived
        cache = self.cache()
        self.successResultOf(self.get(cache))
        self.answers["holy-grail"] = UpstreamNotFound("holy-grail")
        self.assertEqual(self.expired(cache), archived)

    def test_stale_while_down(self):
        """When the refresh fails the stale page stays, and is retried at the next request."""
        self.answers["holy-grail"] = page()
        cache = self.cache()
        self.successResultOf(self.get(cache))
        self.clock.advance(61)
        self.answers["holy-grail"] = UpstreamError("the upstream answered 503")
        entry, stale = self.successResultOf(self.get(cache))
        self.assertTrue(stale)
        entry, stale = self.successResultOf(self.get(cache))
        self.assertTrue(stale)
        self.assertEqual(len(self.calls), 3)

    def test_miss_while_down(self):
        """An uncached project with the upstream failing is an L{UpstreamError}."""
        self.answers["holy-grail"] = UpstreamError("cannot reach the upstream")
        self.failureResultOf(self.get(self.cache()), UpstreamError)

    def test_not_found_cached(self):
        """The upstream's "no such project" is cached like a page."""
        self.answers["nothing"] = UpstreamNotFound("nothing")
        cache = self.cache()
        entry, _ = self.successResultOf(self.get(cache, "nothing"))
        self.assertIsNone(entry.page)
        self.successResultOf(self.get(cache, "nothing"))
        self.assertEqual(self.calls, ["nothing"])

    def test_offline(self):
        """Offline, cached pages are served however old; others are L{Offline}; nothing is asked."""
        self.answers["holy-grail"] = page()
        online = self.cache()
        self.successResultOf(self.get(online))
        offline = self.cache(offline=True)
        offline.load_json(online.to_json())
        self.clock.advance(10 * DAY)
        entry, stale = self.successResultOf(self.get(offline))
        self.assertEqual(entry.page, page())
        self.assertTrue(stale, "an old page is served offline, marked stale")
        self.failureResultOf(self.get(offline, "other"), Offline)
        self.assertEqual(self.calls, ["holy-grail"])

    def test_forced_refresh(self):
        """An administrator's refresh fetches at once, even within the TTL."""
        self.answers["holy-grail"] = page()
        cache = self.cache()
        self.successResultOf(self.get(cache))
        newer = self.answers["holy-grail"] = page(upstream_file("holy_grail-2.0.tar.gz"))
        self.assertEqual(self.successResultOf(cache.refresh("holy-grail")).page, newer)
        self.assertEqual(len(self.calls), 2)

    def test_snapshot_round_trip(self):
        """Cached pages survive the snapshot's JSON; cached absences are left out."""
        self.answers["holy-grail"] = page(upstream_file(
            "holy_grail-1.0-py3-none-any.whl", requires_python=">=3.8", yanked="bad",
            metadata_sha256="c" * 64, size=123))
        self.answers["nothing"] = UpstreamNotFound("nothing")
        cache = self.cache()
        self.successResultOf(self.get(cache))
        self.successResultOf(self.get(cache, "nothing"))
        data = json.loads(json.dumps(cache.to_json()))
        restored = self.cache()
        restored.load_json(data)
        self.assertEqual(restored.entries, {"holy-grail": cache.entries["holy-grail"]})

    def test_snapshot_bad_entry_skipped(self):
        """An unreadable cached page in a snapshot is skipped, the others kept."""
        self.answers["holy-grail"] = page()
        cache = self.cache()
        self.successResultOf(self.get(cache))
        data = dict(cache.to_json(), broken={"page": {"project": 1}})
        restored = self.cache()
        restored.load_json(data)
        self.assertEqual(list(restored.entries), ["holy-grail"])


class PageCacheLimitTests(SynchronousTestCase):
    """What clients cannot make the page cache do."""

    def test_bounded(self):
        """The cache keeps at most MAX_ENTRIES projects, dropping the oldest fetched."""
        from pypid.upstream import cache as pages
        self.patch(pages, "MAX_ENTRIES", 3)
        clock = Clock()
        cache = PageCache(lambda project, previous=None: succeed(page(project=project)), clock, 60.0)
        for name in ("a", "b", "c", "d"):
            self.successResultOf(ensureDeferred(cache.get(name)))
        self.assertEqual(list(cache.entries), ["b", "c", "d"])

    def test_failure_remembered(self):
        """A failed miss is answered at once for a while, then asked again."""
        from pypid.upstream import cache as pages
        clock = Clock()
        calls = []

        def fetch(project, previous=None):
            calls.append(project)
            return fail(UpstreamError("down"))
        cache = PageCache(fetch, clock, 60.0)
        self.failureResultOf(ensureDeferred(cache.get("a")), UpstreamError)
        self.failureResultOf(ensureDeferred(cache.get("a")), UpstreamError)
        self.assertEqual(calls, ["a"])
        clock.advance(pages.FAILURE_MEMORY)
        self.failureResultOf(ensureDeferred(cache.get("a")), UpstreamError)
        self.assertEqual(calls, ["a", "a"])
