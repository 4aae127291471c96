"""
The cache of upstream project pages: time to live, one upstream request per
miss however many clients ask at once, stale pages served while a refresh
runs in the background (or while the upstream is down), offline serving,
and a JSON form for the snapshot.

The fetch itself is passed in (C{fetch(project) -> Deferred[UpstreamPage]},
failing with L{UpstreamNotFound} or L{UpstreamError}), and so is the clock:
the cache does no I/O of its own.
"""

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from pypid.core.metrics import Timings
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.parser import UpstreamFile, UpstreamPage

log = Logger()


class Offline(Exception):
    """The project is not cached and the server is offline (C{offline = true})."""


@attrs.frozen
class Entry:
    """
    What is known of one project upstream.

    @ivar page: the L{UpstreamPage}, or L{None} when the upstream said it
        has no such project.
    @ivar fetched_at: when it was fetched (POSIX time).
    """

    page: object
    fetched_at: float

    def fresh(self, now, ttl):
        """Whether the entry is younger than C{ttl}."""
        return 0 <= now - self.fetched_at < ttl


#: The most projects kept (the oldest fetched go first): names are chosen
#: by clients, so the cache must not grow with whatever they ask for. A
#: forgotten page is fetched again at its next request. The same cap bounds
#: the failures remembered (L{FAILURE_MEMORY}): past it they are all
#: forgotten, which only means asking the upstream again.
MAX_ENTRIES = 20000

#: After a failed fetch of a project that is not cached, answer the same
#: failure at once for this long rather than wait for the upstream again.
FAILURE_MEMORY = 15.0


class PageCache:
    """
    Upstream project pages, by normalized name.

    @ivar entries: C{{project: Entry}}.
    """

    def __init__(self, fetch, clock, ttl, offline=False):
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._offline = offline
        self.entries = {}
        self._inflight = {}
        self._failures = {}
        self.changed = False
        #: how pages were served, for C{/metrics}: C{hit} (fresh from the
        #: cache), C{stale} (the cached page while a refresh runs, the
        #: upstream fails, or offline), C{miss} (fetched while the client
        #: waited), C{unavailable} (not cached, and no upstream to ask)
        self.served = {"hit": 0, "stale": 0, "miss": 0, "unavailable": 0}
        #: the upstream fetches of pages: count, failures, latency
        self.timings = Timings()

    async def get(self, project):
        """
        The entry of C{project}: fresh, or stale while a refresh runs (or
        while the upstream fails), or fetched now.

        @return: C{(entry, stale)}.
        @raise UpstreamError: not cached, and the upstream failed.
        @raise Offline: not cached, and the server is offline.
        """
        entry = self.entries.get(project)
        now = self._clock.seconds()
        served = self.served
        if entry is not None and self._offline:
            stale = not entry.fresh(now, self._ttl)
            served["stale" if stale else "hit"] += 1
            return entry, stale
        if entry is not None and entry.fresh(now, self._ttl):
            served["hit"] += 1
            return entry, False
        if self._offline:
            served["unavailable"] += 1
            raise Offline(project)
        failed = self._failures.get(project)
        if entry is None and failed is not None and 0 <= now - failed[0] < FAILURE_MEMORY:
            served["unavailable"] += 1
            raise failed[1]
        if entry is not None:
            # Served as it is; the refresh goes on behind (and a failure of it
            # leaves the stale entry in place).
            served["stale"] += 1
            self._refresh(project).addErrback(lambda _: None)
            return entry, True
        served["miss"] += 1
        return await self._refresh(project), False

    def refresh(self, project):
        """
        Fetch C{project} again now (an administrator asked for it), sharing
        a fetch already under way.

        @rtype: L{Deferred} firing with the new L{Entry}
        """
        if self._offline:
            raise Offline(project)
        return self._refresh(project)

    def _refresh(self, project):
        """One fetch per project at a time; every caller gets its result."""
        d = Deferred()
        waiting = self._inflight.get(project)
        if waiting is not None:
            waiting.append(d)
            return d
        self._inflight[project] = [d]
        # (a fetch may answer at once: the waiter is registered before it starts)
        ensureDeferred(self._load(project)).addBoth(self._loaded, project)
        return d

    async def _load(self, project):
        started = self._clock.seconds()
        try:
            page = await self._fetch(project)
        except UpstreamNotFound:
            page = None
        except BaseException:
            self.timings.record("page", self._clock.seconds() - started, failed=True)
            raise
        now = self._clock.seconds()
        self.timings.record("page", now - started)
        return Entry(page, now)

    def _loaded(self, result, project):
        waiting = self._inflight.pop(project)
        if isinstance(result, Entry):
            self._failures.pop(project, None)
            self.entries.pop(project, None)
            self.entries[project] = result
            while len(self.entries) > MAX_ENTRIES:
                del self.entries[next(iter(self.entries))]
            self.changed = True
        else:
            if result.check(UpstreamError):
                self._failures[project] = (self._clock.seconds(), result.value)
                if len(self._failures) > MAX_ENTRIES:
                    self._failures.clear()
            if not result.check(UpstreamError):
                log.failure("Fetching {project} from the upstream failed", result,
                            project=project)
            previous = self.entries.get(project)
            if previous is not None:
                log.warn("Serving the cached page of {project}: {error}",
                         project=project, error=result.getErrorMessage())
        for d in waiting:
            d.callback(result) if isinstance(result, Entry) else d.errback(result)

    # -- the snapshot ---------------------------------------------------------

    def to_json(self):
        """The cached pages, JSON-ready, for the snapshot."""
        # ("no such project" answers are not worth a restart's memory)
        return {project: entry_to_json(entry) for project, entry in self.entries.items()
                if entry.page is not None}

    def load_json(self, data):
        """Take back the pages of a snapshot (unreadable entries are skipped)."""
        if not isinstance(data, dict):
            return
        for project, value in data.items():
            try:
                self.entries[project] = entry_from_json(value)
            except (KeyError, TypeError, ValueError) as e:
                log.warn("Ignoring the cached upstream page of {project}: {error}",
                         project=project, error=str(e))
        while len(self.entries) > MAX_ENTRIES:
            del self.entries[next(iter(self.entries))]


def entry_to_json(entry):
    """One L{Entry} as JSON-ready data."""
    page = entry.page
    return {
        "fetched_at": entry.fetched_at,
        "page": None if page is None else {
            "project": page.project,
            "name": page.name,
            "last_serial": page.last_serial,
            "files": [attrs.asdict(f) for f in page.files],
        },
    }


def entry_from_json(data):
    """The L{Entry} that L{entry_to_json} wrote."""
    page = data["page"]
    if page is not None:
        page = UpstreamPage(
            project=page["project"], name=page["name"], last_serial=page["last_serial"],
            files=tuple(UpstreamFile(**f) for f in page["files"]))
    return Entry(page, float(data["fetched_at"]))
