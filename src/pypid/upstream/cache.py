"""
The cache of upstream project pages: time to live, one upstream request per
miss however many clients ask at once, stale pages served while a refresh
runs in the background (or while the upstream is down), offline serving,
and the cached pages handed to the snapshot (their JSON form is in
L{pypid.upstream.cached_page}).

The fetch itself is passed in (C{fetch(project, previous) ->
Deferred[UpstreamPage]}, given the page the cache holds of the project, if
any, so that what was read for it need not be read again; failing with
L{UpstreamNotFound} or L{UpstreamError}), and so is the clock: the cache
does no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.records.metrics import Timings
from pypid.core.util.bounded import put_newest
from pypid.core.util.lru import ByteLRU
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.held_removals import CONFIRM_GONE, HeldRemovals
from pypid.upstream.page_model import UpstreamPage
from pypid.upstream.quarantines import Quarantine, Quarantines

log = Logger()


class Offline(Exception):
    """The project is not cached and the server is offline (C{offline = true})."""


#: The most projects whose pages are kept (the oldest fetched go first):
#: names are chosen by clients, so the cache must not grow with whatever
#: they ask for. A forgotten page is fetched again at its next request. The
#: same cap bounds the failures remembered (L{FAILURE_MEMORY}): past it
#: they are all forgotten, which only means asking the upstream again.
MAX_ENTRIES = 20000

#: The most "no such project" answers kept, apart from the pages: a client
#: asking for names that exist nowhere fills only these, and never pushes
#: a cached page out (20,001 such requests once emptied the whole cache,
#: so that the next upstream outage served nothing).
MAX_MISSING = 10000

#: The longest a "no such project" answer is kept (at most C{ttl}): a name
#: published upstream shows up this soon.
MISSING_TTL = 300.0

#: After a failed fetch of a project that is not cached, answer the same
#: failure at once for this long rather than wait for the upstream again.
FAILURE_MEMORY = 15.0

#: What one file of a cached page costs in memory, besides its strings
#: (its object, its slots, its tuple entry), and one page besides its files;
#: measured with tracemalloc on pages of 1,000 to 50,000 files (850 to
#: 1,300 bytes a file in all, with its strings).
FILE_COST = 620
PAGE_COST = 2000


#: A failure as L{remembered} keeps it: its type and arguments.
Remembered = tuple[type[BaseException], tuple[Any, ...]]


def remembered(error: BaseException) -> Remembered:
    """
    What is kept of a failure to answer again: its type and arguments, not
    the exception, whose traceback holds the frames it went through (and
    with them the refused page's bytes: 15 to 19 MB a failure, measured).
    """
    return type(error), error.args


def again(kept: Remembered) -> BaseException:
    """A new exception like the one L{remembered} kept."""
    kind, args = kept
    return kind(*args)


def recent(then: float, now: float) -> bool:
    """Whether a failure at C{then} is still remembered at C{now} (L{FAILURE_MEMORY})."""
    return 0 <= now - then < FAILURE_MEMORY


def page_cost(page: UpstreamPage) -> int:
    """An estimate of the memory a cached L{UpstreamPage} holds, in bytes."""
    reason = page.status.reason if page.status is not None else None
    return PAGE_COST + len(page.name) + len(reason or "") + sum(
        FILE_COST + len(f.filename) + len(f.url) + 64
        + len(f.requires_python or "") + len(f.yanked or "") + len(f.variant or "")
        for files in (page.files, page.variants, page.variant_wheels) for f in files
    ) + 64 * len(page.variants_failed) + 128 * len(page.variants_unusable)


class PageShare(Protocol):
    """
    A machine's cache of pages shared by its workers
    (L{pypid.upstream.machine_share.MachineShare}).
    """

    def page_kept(self, project: str, entry: CachedPage, held: object) -> Deferred[None]:
        """Give the others the page fetched here, and what it holds back; fires once told."""

    async def turn(self, name: str) -> Callable[[], None]:
        """Hold the machine's lock of C{name}'s fetch, the others' news taken in; its release."""


def page_lock(project: str) -> str:
    """The name of a page's lock among the machine's, apart from every file's."""
    return project + "/"


class PageCache:
    """
    Upstream project pages, by normalized name.

    Pages are bounded by count (L{MAX_ENTRIES}) and by their estimated
    memory (C{max_bytes}, L{page_cost}). The oldest fetched go first, but
    the pages of projects whose files are kept on disk (L{pin}) only after
    every other: those are the pages that serve kept files while the
    upstream is down. The page just fetched is always kept. "No such
    project" answers are kept apart (L{MAX_MISSING}, L{MISSING_TTL}).

    Every answer fetched goes through the L{Quarantines} first: once the
    upstream quarantined a project, a later "no such project" or page with
    no file is kept as a page with no file carrying that quarantine, until
    the upstream lists files of it again or an admin releases it
    (L{release}).

    @ivar entries: C{{project: CachedPage}} of the pages, oldest first.
    @ivar on_change: called (without arguments) when a page was fetched,
        so that the snapshot is saved soon; or L{None}.
    """

    def __init__(self, fetch: Callable[[str, UpstreamPage | None], Deferred[UpstreamPage]],
                 clock: IReactorTime,
                 ttl: float, offline: bool = False, max_bytes: int = 256 << 20,
                 on_change: Callable[[], None] | None = None,
                 confirm_gone: float = CONFIRM_GONE,
                 share: PageShare | None = None,
                 ) -> None:
        """
        @param confirm_gone: seconds that must part two fetches saying files
            are gone before the cache takes it (L{CONFIRM_GONE}).
        @param share: a machine's, told of each page fetched (with what it
            holds back, L{HeldRemovals.of}) before it is kept and its
            requests answered; a page is fetched in the machine's turn of
            it, so once per machine (the others take it in); L{None}: none.
        """
        self._share = share
        #: the machine's locks of the pages fetched here now (L{PageShare.turn})
        self._turns: dict[str, Callable[[], None]] = {}
        self._fetch = fetch
        #: what fetches said is gone, until a later fetch confirms it
        self._held = HeldRemovals(confirm_gone, MAX_ENTRIES)
        #: the projects an administrator asked to fetch again (L{refresh}):
        #: their next fetch is taken as it is
        self._final: set[str] = set()
        self._clock = clock
        self._ttl = ttl
        self._offline = offline
        self.entries: dict[str, CachedPage] = {}
        # the pages' order of eviction, oldest fetched first, and their
        # costs: pages not pinned (tier 0) before pinned ones (tier 1)
        self._order: ByteLRU[str, CachedPage] = ByteLRU(
            max_bytes, max_entries=MAX_ENTRIES, tiers=2, on_evict=self._evicted)
        self._missing: dict[str, CachedPage] = {}
        self._pinned: set[str] = set()
        self._inflight: dict[str, list[Deferred[CachedPage]]] = {}
        self._failures: dict[str, tuple[float, Remembered]] = {}
        #: the upstream's quarantines, remembered past a project's removal
        self.quarantines = Quarantines()
        self.changed = False
        self.on_change = on_change
        # called with each project whose page is forgotten (L{on_dropped})
        self._drop_listeners: list[Callable[[str], object]] = []
        # called with each page fetched (L{on_loaded})
        self._load_listeners: list[Callable[[str, UpstreamPage | None], object]] = []
        #: how pages were served, for C{/metrics}: C{hit} (fresh from the
        #: cache), C{stale} (the cached page while a refresh runs, the
        #: upstream fails, or offline), C{miss} (fetched while the client
        #: waited), C{unavailable} (not cached, and no upstream to ask)
        self.served = {"hit": 0, "stale": 0, "miss": 0, "unavailable": 0}
        #: the upstream fetches of pages: count, failures, latency
        self.timings = Timings()

    def on_dropped(self, listener: Callable[[str], object]) -> None:
        """
        Call C{listener(project)} whenever a page is forgotten from now on
        (so that what was made of it is not kept alive by its makers).
        """
        self._drop_listeners.append(listener)

    def on_loaded(self, listener: Callable[[str, UpstreamPage | None], object]) -> None:
        """
        Call C{listener(project, page)} with each page fetched from now on
        (L{None}: the upstream has no such project), once it is kept.
        """
        self._load_listeners.append(listener)

    def saved(self) -> None:
        """The pages were saved in a snapshot: nothing changed since."""
        self.changed = False

    def _note_change(self) -> None:
        """The pages changed: the snapshot is to be saved soon."""
        self.changed = True
        if self.on_change is not None:
            self.on_change()

    def pin(self, project: str) -> None:
        """
        Keep C{project}'s page past every unpinned one: files of it are
        kept on disk (a set as large as the projects of kept files).
        """
        self._pinned.add(project)
        self._order.retier(project, 1)

    def cached(self, project: str) -> CachedPage | None:
        """
        What is known of C{project} without asking: its L{CachedPage} (a page, or
        a kept "no such project"), or L{None}.
        """
        entry = self.entries.get(project)
        if entry is None:
            entry = self._missing.get(project)
        return entry

    def would_fetch(self, project: str) -> bool:
        """
        Whether a request for C{project} now would ask the upstream while
        the client waits: nothing kept of it, no fetch of it under way, no
        failure remembered, not offline.
        """
        if self._offline or project in self._inflight or self.cached(project) is not None:
            return False
        failed = self._failures.get(project)
        return failed is None or not recent(failed[0], self._clock.seconds())

    def hit(self, project: str) -> CachedPage | None:
        """
        The entry of C{project} when L{get} would serve it fresh from the
        cache now (the server online), without counting it; else L{None}.
        The express lane (L{pypid.web.serving.express}) asks this of every upstream
        a page reads, and counts the hits (L{count_hit}) only once it
        answers.
        """
        if self._offline:
            return None
        entry, ttl = self._kept(project)
        if entry is not None and entry.fresh(self._clock.seconds(), ttl):
            return entry
        return None

    def _kept(self, project: str) -> tuple[CachedPage | None, float]:
        """What is kept of C{project} (a page, or a "no such project"), and how long it is fresh."""
        entry = self.entries.get(project)
        if entry is not None:
            return entry, self._ttl
        return self._missing.get(project), min(self._ttl, MISSING_TTL)

    def count_hit(self) -> None:
        """Count a page served fresh from the cache without L{get} (see L{hit})."""
        self.served["hit"] += 1

    async def get(self, project: str) -> tuple[CachedPage, bool]:
        """
        The entry of C{project}: fresh, or stale while a refresh runs (or
        while the upstream fails), or fetched now.

        @return: C{(entry, stale)}.
        @raise UpstreamError: not cached, and the upstream failed.
        @raise Offline: not cached, and the server is offline.
        """
        entry, ttl = self._kept(project)
        now = self._clock.seconds()
        served = self.served
        if entry is not None and self._offline:
            stale = not entry.fresh(now, ttl)
            served["stale" if stale else "hit"] += 1
            return entry, stale
        if entry is not None and entry.fresh(now, ttl):
            served["hit"] += 1
            return entry, False
        if self._offline:
            served["unavailable"] += 1
            raise Offline(project)
        failed = self._failures.get(project)
        if entry is None and failed is not None and recent(failed[0], now):
            served["unavailable"] += 1
            raise again(failed[1])
        if entry is not None:
            # Served as it is; the refresh goes on behind (and a failure of it
            # leaves the stale entry in place).
            served["stale"] += 1
            self._refresh(project).addErrback(lambda _: None)
            return entry, True
        served["miss"] += 1
        return await self._refresh(project), False

    def refresh(self, project: str) -> Deferred[CachedPage]:
        """
        Fetch C{project} again now (an administrator asked for it), sharing
        a fetch already under way; what it says is taken at once (the
        upstream as it is now is what was asked for), where a fetch on
        expiry waits for a second one to confirm a removal (L{_steady}).
        """
        if self._offline:
            raise Offline(project)
        # (an administrator asked to see the upstream as it is now: what
        # this fetch says is taken whole, not held for a second one)
        self._final.add(project)
        return self._refresh(project)

    def _refresh(self, project: str) -> Deferred[CachedPage]:
        """One fetch per project at a time; every caller gets its result."""
        d: Deferred[CachedPage] = Deferred()
        waiting = self._inflight.get(project)
        if waiting is not None:
            waiting.append(d)
            return d
        self._inflight[project] = [d]
        # (a fetch may answer at once: the waiter is registered before it starts)
        ensureDeferred(self._load(project)).addBoth(self._loaded, project)
        return d

    async def _load(self, project: str) -> CachedPage | _Adopted:
        if self._share is not None:
            asked = self._clock.seconds()
            self._turns[project] = await self._share.turn(page_lock(project))
            kept = self.entries.get(project)
            if kept is not None and kept.fetched_at > asked:
                # (another worker fetched it while this one waited its turn;
                # a page of this very instant proves no such fetch)
                return _Adopted(kept)
        # (the fetch's time, not the wait for the machine's turn)
        started = self._clock.seconds()
        page: UpstreamPage | None
        try:
            kept = self.entries.get(project)
            page = await self._fetch(project, kept.page if kept is not None else None)
        except UpstreamNotFound:
            page = None
        except BaseException:
            self.timings.record("page", self._clock.seconds() - started, failed=True)
            raise
        now = self._clock.seconds()
        self.timings.record("page", now - started)
        return CachedPage(page, now)

    def release(self, project: str) -> Quarantine | None:
        """
        Forget the quarantine remembered of C{project} (an admin asked),
        and the page kept for it: the next request asks the upstream again.

        @return: the quarantine released, or L{None} when none is remembered.
        @raise pypid.upstream.quarantines.StillQuarantined: the upstream's
            latest page quarantines it (only the upstream lifts that).
        """
        released = self.quarantines.release(project)
        if released is not None:
            self._drop(project)
            self._note_change()
        return released

    def _loaded(self, result: CachedPage | _Adopted | Failure, project: str) -> None:
        if isinstance(result, _Adopted):
            self._answer(project, result.entry)
            return
        if not isinstance(result, CachedPage):
            self._failed(result, project)
            return
        # (steady first: a quarantine lifted on one fetch alone is not
        # lifted, nor forgotten where the quarantines remember it)
        if project in self._final:
            self._final.discard(project)
            self._held.forget(project)
        else:
            result = self._held.steady(project, self.entries.get(project), result)
        page = self.quarantines.seen(project, result.page, result.fetched_at)
        if page is not result.page:
            result = CachedPage(page, result.fetched_at)
        self._failures.pop(project, None)
        # (a "no such project" is shared only where it takes a page away)
        if self._share is None or (page is None and project not in self.entries):
            self._took(project, result)
            return
        # The others hold the page (and what it holds back) before it is
        # kept here, so before any client, here or there, is shown it; a
        # request for it meanwhile waits with the fetch's.
        taken = self._share.page_kept(project, result, self._held.of(project))
        taken.addBoth(lambda _: self._took(project, result))

    def _took(self, project: str, result: CachedPage) -> None:
        """Keep a page fetched (and shared, on a machine), and answer who waited for it."""
        self._keep(project, result)
        for listener in self._load_listeners:
            listener(project, result.page)
        if result.page is not None:
            # ("no such project" answers are not saved: no save for them)
            self._note_change()
        self._answer(project, result)

    def _answer(self, project: str, result: CachedPage) -> None:
        """Let go of the machine's turn (the page is told), and answer who waited for it."""
        self._turns.pop(project, _nothing)()
        for d in self._inflight.pop(project):
            d.callback(result)

    def _failed(self, result: Failure, project: str) -> None:
        """A fetch failed: remembered a while; who waited for it gets the failure."""
        self._turns.pop(project, _nothing)()
        waiting = self._inflight.pop(project)
        self._final.discard(project)
        if result.check(UpstreamError):
            self._failures[project] = (self._clock.seconds(), remembered(result.value))
            if len(self._failures) > MAX_ENTRIES:
                self._failures.clear()
        if not result.check(UpstreamError):
            log.failure("Fetching {project} from the upstream failed", result,
                        project=project)
        previous = self.cached(project)
        if previous is not None:
            log.warn("Serving the cached page of {project}: {error}",
                     project=project, error=result.getErrorMessage())
        for d in waiting:
            d.errback(result)

    def adopt(self, project: str, entry: CachedPage, held: object = None) -> None:
        """
        Keep the page another worker of the machine fetched and kept (or
        its "no such project", which took a page away), as fetched here:
        its rules (removals held, quarantines) were applied there, and what
        it holds back (C{held}, L{HeldRemovals.of}) is held here too.
        """
        current = self.cached(project)
        if current is not None and current.fetched_at > entry.fetched_at:
            return
        self.quarantines.seen(project, entry.page, entry.fetched_at)
        self._failures.pop(project, None)
        self._held.take(project, held)
        self._keep(project, entry)
        if entry.page is not None:
            self._note_change()

    def _keep(self, project: str, entry: CachedPage) -> None:
        """
        Keep a fetched entry, the newest, within the caps: the oldest pages
        are forgotten, not pinned first, then pinned ones; never this one
        (which its request is about to serve and list files from).
        """
        self._drop(project)
        if entry.page is None:
            put_newest(self._missing, project, entry, MAX_MISSING)
            return
        self.entries[project] = entry
        self._order.put(project, entry, page_cost(entry.page),
                        tier=int(project in self._pinned), keep=True)

    def _drop(self, project: str) -> None:
        self._missing.pop(project, None)
        if self.entries.get(project) is not None:
            self._order.pop(project)
            self._evicted(project)

    def _evicted(self, project: str, _entry: CachedPage | None = None) -> None:
        """Forget C{project}'s page (its own or evicted by the caps), and say so."""
        del self.entries[project]
        for listener in self._drop_listeners:
            listener(project)

    # -- the snapshot ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The cached pages, JSON-ready, for the snapshot."""
        # ("no such project" answers are not worth a restart's memory)
        return {project: entry_to_json(entry) for project, entry in self.entries.items()
                if entry.page is not None}

    def load_json(self, data: object, quarantines: object = None) -> None:
        """
        Take back the pages of a snapshot (unreadable entries are skipped),
        and the C{quarantines} remembered (L{Quarantines.to_json}); a
        quarantined page of a save from before they were kept is
        remembered as such.
        """
        self.quarantines.load_json(quarantines)
        if not isinstance(data, dict):
            return
        for project, value in data.items():
            try:
                entry = entry_from_json(value)
            except (KeyError, TypeError, ValueError) as e:
                log.warn("Ignoring the cached upstream page of {project}: {error}",
                         project=project, error=str(e))
                continue
            if entry.page is not None:
                if entry.page.quarantined and self.quarantines.get(project) is None:
                    self.quarantines.seen(project, entry.page, entry.fetched_at)
                self._keep(project, entry)


@attrs.frozen
class _Adopted:
    """A page another worker fetched while this one waited its turn: kept already."""

    entry: CachedPage


def _nothing() -> None:
    """No turn to let go of (a cache of one process)."""
